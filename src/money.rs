//! Typed money. PoCo prices are uint256 amounts of nano-RLC (1 RLC = 10^9 nRLC); they stay integers from the
//! JSON edge to the chain. Decimal RLC exists only for people, through [`Nrlc::to_rlc`].

use alloy::primitives::U256;
use rust_decimal::Decimal;
use std::fmt;

/// An amount of nRLC, over PoCo's full uint256 range.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nrlc(pub U256);

impl Nrlc {
    pub const ZERO: Nrlc = Nrlc(U256::ZERO);
    /// nRLC per RLC.
    pub const PER_RLC: u64 = 1_000_000_000;

    pub fn from_u64(v: u64) -> Self {
        Nrlc(U256::from(v))
    }

    /// The amount in RLC for display, when it fits a `Decimal` (96-bit mantissa); `None` beyond that.
    pub fn to_rlc(self) -> Option<Decimal> {
        let n: u128 = self.0.try_into().ok()?;
        let n = i128::try_from(n).ok()?;
        Decimal::try_from_i128_with_scale(n, 9).ok().map(|d| d.normalize())
    }

    /// `self * volume`, or `None` on uint256 overflow (the chain would revert on it too).
    pub fn checked_mul_volume(self, volume: U256) -> Option<Nrlc> {
        self.0.checked_mul(volume).map(Nrlc)
    }
}

impl fmt::Display for Nrlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} nRLC", self.0)
    }
}

impl fmt::Debug for Nrlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nrlc({})", self.0)
    }
}

impl serde::Serialize for Nrlc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::wire::json::u256::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for Nrlc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::wire::json::u256::deserialize(d).map(Nrlc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlc_display_keeps_nine_decimals_exact() {
        assert_eq!(Nrlc::from_u64(1_500_000_001).to_rlc().map(|d| d.to_string()).as_deref(), Some("1.500000001"));
        assert_eq!(Nrlc::from_u64(2_000_000_000).to_rlc().map(|d| d.to_string()).as_deref(), Some("2"));
        assert_eq!(Nrlc(U256::MAX).to_rlc(), None);
    }

    #[test]
    fn volume_multiplication_detects_overflow() {
        assert_eq!(Nrlc::from_u64(3).checked_mul_volume(U256::from(7)), Some(Nrlc::from_u64(21)));
        assert_eq!(Nrlc(U256::MAX).checked_mul_volume(U256::from(2)), None);
    }
}
