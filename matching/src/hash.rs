//! A keyed hasher for the engine's hash maps, faster than SipHash on the 8- to 32-byte keys used here.
//!
//! Keys are order hashes (keccak digests), addresses, categories and proposal ids. Two random 64-bit keys drawn
//! per engine (from the standard library's random source) are mixed into every word with a folded 128-bit
//! multiply, so an attacker who grinds salts or addresses cannot aim at a bucket without knowing them. The maps
//! are only looked up, never iterated, so the random keys never affect the engine's output.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Hash maps of the engine: looked up, never iterated (see above).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, KeyedState>;

#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedState {
    k0: u64,
    k1: u64,
}

impl Default for KeyedState {
    fn default() -> Self {
        let s = RandomState::new();
        KeyedState { k0: s.hash_one(0x5eed_u64), k1: s.hash_one(0xd1a9_u64) | 1 }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { h: self.k0, k: self.k1 }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyedHasher {
    h: u64,
    k: u64,
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
            self.h = fold_mul(self.h ^ w, self.k);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.h = fold_mul(self.h ^ u64::from_le_bytes(buf), self.k);
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.h = fold_mul(self.h ^ x, self.k);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(self.h, self.k ^ 0x9e37_79b9_7f4a_7c15)
    }
}
