//! Amounts for people: typed in nRLC (`1500`) or RLC (`1.5RLC`, `1.5 RLC`), shown in RLC with the exact nRLC
//! alongside.

use crate::money::Nrlc;
use alloy::primitives::U256;

/// Parses `123` (nRLC), `123nRLC`, or `1.5RLC` / `1.5 RLC` (at most 9 decimals).
pub fn parse(s: &str) -> Result<Nrlc, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, rlc) = if let Some(n) = lower.strip_suffix("nrlc") {
        (n.trim(), false)
    } else if let Some(n) = lower.strip_suffix("rlc") {
        (n.trim(), true)
    } else {
        (lower.as_str(), false)
    };
    let bad = || format!("`{s}` is not an amount: give nRLC as an integer (1500) or RLC with a suffix (1.5RLC)");
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) if rlc => (i, f),
        Some(_) => return Err(bad()),
        None => (num, ""),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (!frac.is_empty() && !digits(frac)) {
        return Err(bad());
    }
    if frac.len() > 9 {
        return Err(format!("`{s}`: RLC has 9 decimals (1 nRLC = 0.000000001 RLC)"));
    }
    let too_large = || format!("`{s}` is too large");
    let int = U256::from_str_radix(int, 10).map_err(|_| too_large())?;
    if !rlc {
        return Ok(Nrlc(int));
    }
    let frac = if frac.is_empty() {
        U256::ZERO
    } else {
        U256::from_str_radix(&format!("{frac:0<9}"), 10).map_err(|_| bad())?
    };
    int.checked_mul(U256::from(Nrlc::PER_RLC)).and_then(|v| v.checked_add(frac)).map(Nrlc).ok_or_else(too_large)
}

/// `1.5 RLC (1500000000 nRLC)`; nRLC alone when too large for a decimal.
pub fn show(n: Nrlc) -> String {
    match n.to_rlc() {
        Some(rlc) => format!("{rlc} RLC ({} nRLC)", n.0),
        None => format!("{} nRLC", n.0),
    }
}

/// The RLC part alone, for tables.
pub fn rlc(n: Nrlc) -> String {
    n.to_rlc().map(|d| d.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_in_nrlc_or_rlc() {
        assert_eq!(parse("1500"), Ok(Nrlc::from_u64(1500)));
        assert_eq!(parse("1500nRLC"), Ok(Nrlc::from_u64(1500)));
        assert_eq!(parse("1.5RLC"), Ok(Nrlc::from_u64(1_500_000_000)));
        assert_eq!(parse("2 rlc"), Ok(Nrlc::from_u64(2_000_000_000)));
        assert_eq!(parse("0.000000001RLC"), Ok(Nrlc::from_u64(1)));
        assert!(parse("0.0000000001RLC").is_err());
        assert!(parse("1.5").is_err(), "a fraction of an nRLC");
        assert!(parse("-1").is_err());
        assert!(parse("RLC").is_err());
        assert!(parse("1e9").is_err());
    }

    #[test]
    fn amounts_show_rlc_and_exact_nrlc() {
        assert_eq!(show(Nrlc::from_u64(1_500_000_000)), "1.5 RLC (1500000000 nRLC)");
        assert_eq!(show(Nrlc::ZERO), "0 RLC (0 nRLC)");
        assert_eq!(show(Nrlc(U256::MAX)), format!("{} nRLC", U256::MAX));
    }
}
