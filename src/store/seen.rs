//! Which order hashes the store may know: a fixed-size Bloom filter over every hash that has a row in `orders`,
//! `deals` (any of its four orders) or `order_marks`. `deal_proposals` needs no entry of its own: the engine
//! proposes only orders of the book, which are in `orders` first.
//!
//! Publication reads what the store knows of an order (`orders::prior_many`) before it accepts it. Nearly every
//! order published is new, and for a new hash that read answers nothing, at the cost of a round trip and most
//! of PostgreSQL's CPU per single order (docs/benchmarks.md, issue 20). A hash the filter has never seen is
//! answered here without the read. The filter errs one way only: a "maybe" costs the read it always cost, never
//! a wrong answer. So it is added to *before* each write commits (a rolled-back write leaves a harmless extra
//! "maybe"), and it answers "maybe" for everything until it has loaded what the tables held when it was enabled.
//!
//! Its size is fixed (16 MiB), whatever a stranger publishes: past some ten million hashes its "maybe"s grow
//! more frequent, which costs reads, not memory.

use super::StoreError;
use crate::ids::OrderHash;
use futures_util::TryStreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// 2^27 bits.
const WORDS: usize = 1 << 21;
const BITS: u64 = (WORDS as u64) * 64;

pub struct Seen {
    words: Box<[AtomicU64]>,
    loaded: AtomicBool,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen").field("loaded", &self.loaded.load(Ordering::Relaxed)).finish()
    }
}

impl Default for Seen {
    fn default() -> Self {
        Seen { words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(), loaded: AtomicBool::new(false) }
    }
}

/// Three bit positions from three disjoint words of the hash: order hashes are keccak digests, uniform already.
fn positions(hash: &[u8; 32]) -> [u64; 3] {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&hash[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b) % BITS
    };
    [word(0), word(1), word(2)]
}

impl Seen {
    pub fn add(&self, hash: &OrderHash) {
        for p in positions(&hash.0.0) {
            self.words[(p / 64) as usize].fetch_or(1 << (p % 64), Ordering::Release);
        }
    }

    /// False only when no table of the store holds this hash (as of the last write that added to the filter).
    pub fn may_hold(&self, hash: &OrderHash) -> bool {
        if !self.loaded.load(Ordering::Acquire) {
            return true;
        }
        positions(&hash.0.0)
            .iter()
            .all(|p| self.words[(*p / 64) as usize].load(Ordering::Acquire) & (1 << (p % 64)) != 0)
    }

    /// Adds every hash the tables hold, then starts answering. Writes that commit meanwhile add their own.
    pub async fn load(&self, client: &impl tokio_postgres::GenericClient) -> Result<usize, StoreError> {
        let rows = client
            .query_raw(
                "SELECT order_hash FROM orders
                 UNION ALL SELECT app_hash FROM deals
                 UNION ALL SELECT dataset_hash FROM deals WHERE dataset_hash IS NOT NULL
                 UNION ALL SELECT workerpool_hash FROM deals
                 UNION ALL SELECT request_hash FROM deals
                 UNION ALL SELECT order_hash FROM order_marks",
                std::iter::empty::<i32>(),
            )
            .await?;
        futures_util::pin_mut!(rows);
        let mut n = 0;
        while let Some(row) = rows.try_next().await? {
            let bytes: &[u8] = row.get(0);
            if let Ok(h) = <[u8; 32]>::try_from(bytes) {
                self.add(&OrderHash(h.into()));
                n += 1;
            }
        }
        self.loaded.store(true, Ordering::Release);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::keccak256;

    fn h(i: u64) -> OrderHash {
        OrderHash(keccak256(i.to_be_bytes()))
    }

    #[test]
    fn answers_maybe_until_loaded_then_never_misses_an_added_hash() {
        let seen = Seen::default();
        assert!(seen.may_hold(&h(1)), "not loaded: every hash may be known");
        seen.loaded.store(true, Ordering::Release);
        assert!(!seen.may_hold(&h(1)));
        for i in 0..100_000 {
            seen.add(&h(i));
        }
        assert!((0..100_000).all(|i| seen.may_hold(&h(i))), "no false negative");
        let false_maybes = (100_000..200_000).filter(|i| seen.may_hold(&h(*i))).count();
        assert!(false_maybes < 10, "{false_maybes} false positives in 100,000 at 100,000 entries");
    }
}
