//! JSON forms of PoCo values, as iExec's SDK and market API write them.
//!
//! - uint256: a decimal string (`"1000"`) or a JSON integer over the *full* 256-bit range. JavaScript tools
//!   round integers above 2^53 and serde_json would read them as `f64`, so numbers are taken from the raw JSON
//!   text (`RawValue`) and parsed exactly. Printed as decimal strings, like the SDK does, so no reader loses
//!   precision (the market API's records print them as the peer does: see `order::record::raw_json`).
//! - address: `0x` + 40 hex digits in any case; printed EIP-55 checksummed.
//! - bytes32 and bytes: `0x`-hex; printed lowercase.
//!
//! Each error message says what was expected; the field name is added by the caller
//! (`serde_path_to_error`), so a user reads e.g. `appprice: number out of range (above 2^256-1)`.

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::value::RawValue;

/// Parses a uint256 from decimal digits (or `0x`-hex, which some tools emit).
pub fn parse_u256(text: &str) -> Result<U256, String> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{text}` is not a hexadecimal integer"));
        }
        return U256::from_str_radix(hex, 16).map_err(|_| "number out of range (above 2^256-1)".to_owned());
    }
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not an unsigned integer"));
    }
    U256::from_str_radix(text, 10).map_err(|_| "number out of range (above 2^256-1)".to_owned())
}

fn parse_u256_json(raw: &str) -> Result<U256, String> {
    let raw = raw.trim();
    if raw.starts_with('"') {
        let text: String = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        parse_u256(&text)
    } else if raw.starts_with(|c: char| c.is_ascii_digit()) {
        // A JSON number: only plain integers are uint256 values (no sign, fraction or exponent).
        if raw.bytes().all(|b| b.is_ascii_digit()) {
            parse_u256(raw)
        } else {
            Err(format!("`{raw}` is not an unsigned integer"))
        }
    } else if raw.starts_with('-') {
        Err(format!("`{raw}` is negative; expected an unsigned integer"))
    } else {
        Err(format!("expected an unsigned integer (decimal string or JSON integer), found `{raw}`"))
    }
}

/// `0x` + exactly `2 * N` hex digits (either case) into `N` bytes; `what` names the type in the error.
fn parse_fixed<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .filter(|h| h.len() == 2 * N && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("`{text}` is not {what} (0x followed by {} hex digits)", 2 * N))?;
    let mut out = [0u8; N];
    alloy::hex::decode_to_slice(hex, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub fn parse_address(text: &str) -> Result<Address, String> {
    parse_fixed::<20>(text, "an address").map(Address::from)
}

pub fn parse_bytes32(text: &str) -> Result<B256, String> {
    parse_fixed::<32>(text, "a bytes32").map(B256::from)
}

pub fn parse_bytes(text: &str) -> Result<Bytes, String> {
    let hex = text
        .strip_prefix("0x")
        .filter(|h| h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("`{text}` is not 0x-prefixed hex bytes"))?;
    alloy::hex::decode(hex).map(Bytes::from).map_err(|e| e.to_string())
}

fn string<'de, D: Deserializer<'de>>(d: D, what: &str) -> Result<String, D::Error> {
    let raw: Box<RawValue> = Deserialize::deserialize(d)?;
    serde_json::from_str::<String>(raw.get())
        .map_err(|_| D::Error::custom(format!("expected {what} as a string, found `{}`", raw.get())))
}

pub mod u256 {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(d)?;
        parse_u256_json(raw.get()).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

pub mod address {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        parse_address(&string(d, "an address")?).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(v: &Address, s: S) -> Result<S::Ok, S::Error> {
        // Most restrictions are the zero address, whose checksum form is itself: no keccak for it.
        if v.is_zero() {
            return s.serialize_str("0x0000000000000000000000000000000000000000");
        }
        s.collect_str(&v.to_checksum(None))
    }
}

pub mod bytes32 {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<B256, D::Error> {
        parse_bytes32(&string(d, "a bytes32")?).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(v: &B256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{v:#x}"))
    }
}

pub mod opt_bytes {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        parse_bytes(&string(d, "hex bytes")?).map(Some).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.collect_str(&format_args!("0x{}", alloy::hex::encode(b))),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u256_accepts_full_range_as_string_and_integer() {
        let max = U256::MAX.to_string();
        assert_eq!(parse_u256_json(&format!("\"{max}\"")), Ok(U256::MAX));
        assert_eq!(parse_u256_json(&max), Ok(U256::MAX));
        assert_eq!(parse_u256_json("0"), Ok(U256::ZERO));
        assert_eq!(parse_u256_json("\"0x10\""), Ok(U256::from(16)));
    }

    #[test]
    fn u256_rejects_what_is_not_a_uint256() {
        let over = format!("{}0", U256::MAX);
        assert!(parse_u256_json(&over).unwrap_err().contains("out of range"));
        assert!(parse_u256_json("-1").unwrap_err().contains("negative"));
        assert!(parse_u256_json("1.5").unwrap_err().contains("not an unsigned integer"));
        assert!(parse_u256_json("1e3").unwrap_err().contains("not an unsigned integer"));
        assert!(parse_u256_json("\"\"").is_err());
        assert!(parse_u256_json("\" 1\"").is_err());
        assert!(parse_u256_json("null").is_err());
        assert!(parse_u256_json("true").is_err());
    }

    #[test]
    fn addresses_in_any_case_print_checksummed() {
        let lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        let upper = "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED";
        let a = parse_address(lower).expect("lowercase");
        assert_eq!(parse_address(upper), Ok(a));
        assert_eq!(a.to_checksum(None), "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        assert!(parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea").is_err());
        assert!(parse_address("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_err());
        assert!(parse_address("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beazz").is_err());
    }

    #[test]
    fn bytes_need_even_hex() {
        assert_eq!(parse_bytes("0x").map(|b| b.len()), Ok(0));
        assert!(parse_bytes("0x123").is_err());
        assert!(parse_bytes("12").is_err());
        assert!(parse_bytes32("0x12").is_err());
    }
}
