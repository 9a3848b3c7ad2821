//! Domain types of the engine: typed hashes, addresses, tags, prices and the four PoCo order kinds.
//!
//! On chain every price, volume, category and trust is a `uint256`. The engine works in `u64`: 2^64 nRLC is
//! 1.8e10 RLC, more than the 87 M RLC in existence, and no realistic volume, category or trust comes near it. The
//! edge converts with [`u64_from_uint256`] (or `Nrlc::try_from([u8; 32])`), which rejects what does not fit
//! with [`ValueTooLarge`] instead of truncating.

use std::fmt;

/// The 32-byte EIP-712 digest that identifies an order on chain (PoCo's `orderHash`). Computed outside the engine.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct OrderHash(pub [u8; 32]);

/// A 20-byte Ethereum address. The zero address means "none" (dataset-less request) or "anyone" (restriction).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

/// A PoCo `bytes32` tag: a bit set of requirements (bit 0 of the last byte = TEE).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Tag(pub [u8; 32]);

/// A price in nRLC (1 RLC = 10^9 nRLC).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug)]
pub struct Nrlc(pub u64);

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    f.write_str("0x")?;
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Debug for OrderHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Display for OrderHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl Address {
    /// The zero address: "no dataset" in a request, "anyone" in a restriction.
    pub const ZERO: Address = Address([0; 20]);

    /// Whether this is the zero address.
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// PoCo restriction semantics: the zero address admits anyone, any other admits exactly itself.
    /// (PoCo also admits members of an ERC-734 identity contract; that needs chain state and is checked on chain.)
    pub fn admits(&self, candidate: Address) -> bool {
        self.is_zero() || *self == candidate
    }
}

impl Tag {
    /// The empty tag (no requirement).
    pub const ZERO: Tag = Tag([0; 32]);
    /// The TEE requirement: bit 0 of the last byte.
    pub const TEE: Tag = {
        let mut t = [0u8; 32];
        t[31] = 1;
        Tag(t)
    };

    /// Bitwise OR.
    #[must_use]
    pub fn union(self, other: Tag) -> Tag {
        let mut t = self.0;
        for (x, y) in t.iter_mut().zip(other.0.iter()) {
            *x |= *y;
        }
        Tag(t)
    }

    /// Whether every bit of `self` is set in `other` (`self & !other == 0`).
    pub fn is_subset_of(&self, other: &Tag) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(x, y)| x & !y == 0)
    }

    /// Whether the TEE bit is set.
    pub fn has_tee(&self) -> bool {
        self.0[31] & 1 != 0
    }
}

/// A `uint256` did not fit the engine's `u64`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ValueTooLarge;

impl fmt::Display for ValueTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "value does not fit in 64 bits (the matching engine's limit for prices, volumes, categories and trust)",
        )
    }
}
impl std::error::Error for ValueTooLarge {}

/// Converts a big-endian `uint256` to `u64`, rejecting values of 2^64 and above.
pub fn u64_from_uint256(be: &[u8; 32]) -> Result<u64, ValueTooLarge> {
    if be[..24].iter().any(|b| *b != 0) {
        return Err(ValueTooLarge);
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&be[24..]);
    Ok(u64::from_be_bytes(low))
}

impl TryFrom<[u8; 32]> for Nrlc {
    type Error = ValueTooLarge;
    fn try_from(be: [u8; 32]) -> Result<Self, Self::Error> {
        u64_from_uint256(&be).map(Nrlc)
    }
}

impl TryFrom<u128> for Nrlc {
    type Error = ValueTooLarge;
    fn try_from(v: u128) -> Result<Self, Self::Error> {
        u64::try_from(v).map(Nrlc).map_err(|_| ValueTooLarge)
    }
}

/// A workerpool's track record as the engine weighs it (Dragon's own, not PoCo's): of its tasks whose outcome
/// the chain has settled (finished: completed, claimed, or failed past their deadline), how many completed. The
/// exchange derives it from chain events (`docs/track-records.md`) and feeds it with [`Command::TrackRecord`].
///
/// [`Command::TrackRecord`]: crate::Command::TrackRecord
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct TrackRecord {
    pub finished: u64,
    pub completed: u64,
}

/// The least track record a request accepts from a workerpool (Dragon's own, from the request's params): at
/// least `tasks` finished tasks, of which at least `completed_bp` basis points (1/10000) completed. The default,
/// zero and zero, admits every workerpool, the ones without any history included.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MinTrackRecord {
    pub tasks: u64,
    /// 0..=10000; 9500 is 95%.
    pub completed_bp: u16,
}

impl MinTrackRecord {
    /// No requirement.
    pub const NONE: MinTrackRecord = MinTrackRecord { tasks: 0, completed_bp: 0 };

    /// Whether `r` meets it. Exact integer arithmetic (no float): completed / finished >= bp / 10000.
    pub fn admits(&self, r: &TrackRecord) -> bool {
        r.finished >= self.tasks
            && u128::from(r.completed) * 10_000 >= u128::from(self.completed_bp) * u128::from(r.finished)
    }
}

/// An app order (`AppOrder` of PoCo, without salt and signature, which the engine does not need).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AppOrder {
    pub hash: OrderHash,
    pub app: Address,
    pub price: Nrlc,
    pub volume: u64,
    pub tag: Tag,
    pub dataset_restrict: Address,
    pub workerpool_restrict: Address,
    pub requester_restrict: Address,
}

/// A dataset order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DatasetOrder {
    pub hash: OrderHash,
    pub dataset: Address,
    pub price: Nrlc,
    pub volume: u64,
    pub tag: Tag,
    pub app_restrict: Address,
    pub workerpool_restrict: Address,
    pub requester_restrict: Address,
}

/// A workerpool order: an ask in its category's book.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WorkerpoolOrder {
    pub hash: OrderHash,
    pub workerpool: Address,
    pub price: Nrlc,
    pub volume: u64,
    pub tag: Tag,
    pub category: u64,
    pub trust: u64,
    pub app_restrict: Address,
    pub dataset_restrict: Address,
    pub requester_restrict: Address,
    /// The workerpool's track record. The engine sets it from the last [`Command::TrackRecord`] of the workerpool
    /// (empty before any): what the caller puts here is ignored.
    ///
    /// [`Command::TrackRecord`]: crate::Command::TrackRecord
    pub record: TrackRecord,
}

/// A request order: a bid in its category's book. `volume` is the volume still available to match
/// (PoCo's volume minus what is consumed on chain). `dataset` zero = dataset-less request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RequestOrder {
    pub hash: OrderHash,
    pub app: Address,
    pub app_max_price: Nrlc,
    pub dataset: Address,
    pub dataset_max_price: Nrlc,
    pub workerpool: Address,
    pub workerpool_max_price: Nrlc,
    pub requester: Address,
    pub volume: u64,
    pub tag: Tag,
    pub category: u64,
    pub trust: u64,
    /// Dragon's own: the least track record of the workerpool (from the request's params).
    pub min_record: MinTrackRecord,
}

/// Any of the four order kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Order {
    App(AppOrder),
    Dataset(DatasetOrder),
    Workerpool(WorkerpoolOrder),
    Request(RequestOrder),
}

/// Which of the four kinds an order is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OrderKind {
    App,
    Dataset,
    Workerpool,
    Request,
}

impl Order {
    /// The order's hash.
    pub fn hash(&self) -> OrderHash {
        match self {
            Order::App(o) => o.hash,
            Order::Dataset(o) => o.hash,
            Order::Workerpool(o) => o.hash,
            Order::Request(o) => o.hash,
        }
    }

    /// The order's (remaining) volume.
    pub fn volume(&self) -> u64 {
        match self {
            Order::App(o) => o.volume,
            Order::Dataset(o) => o.volume,
            Order::Workerpool(o) => o.volume,
            Order::Request(o) => o.volume,
        }
    }

    /// The order's kind.
    pub fn kind(&self) -> OrderKind {
        match self {
            Order::App(_) => OrderKind::App,
            Order::Dataset(_) => OrderKind::Dataset,
            Order::Workerpool(_) => OrderKind::Workerpool,
            Order::Request(_) => OrderKind::Request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint256_conversion_rejects_what_does_not_fit() {
        let mut be = [0u8; 32];
        be[31] = 7;
        be[24] = 1;
        assert_eq!(u64_from_uint256(&be), Ok((1u64 << 56) + 7));
        let mut too_big = [0u8; 32];
        too_big[23] = 1;
        assert_eq!(Nrlc::try_from(too_big), Err(ValueTooLarge));
        assert_eq!(Nrlc::try_from(u128::from(u64::MAX)), Ok(Nrlc(u64::MAX)));
        assert_eq!(Nrlc::try_from(u128::from(u64::MAX) + 1), Err(ValueTooLarge));
    }

    #[test]
    fn tag_and_restriction_semantics() {
        let a = Tag::TEE;
        let mut b = Tag::ZERO;
        b.0[0] = 0x80;
        assert!(a.is_subset_of(&a.union(b)));
        assert!(!a.union(b).is_subset_of(&a));
        assert!(Tag::ZERO.is_subset_of(&Tag::ZERO));
        assert!(a.has_tee() && !b.has_tee());
        let x = Address([1; 20]);
        assert!(Address::ZERO.admits(x));
        assert!(x.admits(x));
        assert!(!x.admits(Address([2; 20])));
        assert!(!x.admits(Address::ZERO));
    }
}
