//! Typed identifiers. Every id in Dragon is a 32-byte hash; giving each its own type keeps an order hash from
//! ever being passed where a deal id is expected.

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The id of an order: its full EIP-712 typed-data digest (`keccak256(0x1901 ‖ domainSeparator ‖ structHash)`),
/// exactly as PoCo keys consumed volume, presignatures and events by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderHash(pub B256);

impl fmt::Display for OrderHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for OrderHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrderHash({self})")
    }
}

impl From<OrderHash> for [u8; 32] {
    fn from(h: OrderHash) -> Self {
        h.0.0
    }
}

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub B256);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

hash_id!(
    /// The id of a deal on chain, as the hub derives it (from the request's hash and how much of it was consumed
    /// before).
    DealId
);

hash_id!(
    /// The id of a task: `keccak256(abi.encodePacked(dealid, index))`, as PoCo derives it.
    TaskId
);

impl TaskId {
    pub fn of(deal: DealId, index: u64) -> TaskId {
        let mut buf = [0u8; 64];
        buf[..32].copy_from_slice(deal.0.as_slice());
        buf[56..].copy_from_slice(&index.to_be_bytes());
        TaskId(alloy::primitives::keccak256(buf))
    }
}
