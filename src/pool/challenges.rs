//! The pool's login challenges: kept by nonce, bounded in count and age, each usable once.
//!
//! Anyone may ask for a challenge (it comes before any identity is proven), so the book must stay cheap under a
//! flood: keyed by the nonce the challenge text carries, a stranger asking in a worker's name adds an entry
//! and never touches the worker's own pending one; entries sit in issue order, so the expired ones and, past
//! the count bound, the oldest ones are dropped from the front, a few at a time, never by scanning the whole
//! book. In memory: a challenge lives a minute, and a restarted pool only makes the worker ask again.

use alloy::primitives::{Address, B256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct ChallengeBook {
    max: usize,
    ttl: Duration,
    // A std mutex: every section is a few map operations with no await inside.
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_nonce: HashMap<B256, (Address, Instant)>,
    /// Issue order; may still hold nonces already used (they are skipped when they reach the front).
    order: VecDeque<(B256, Instant)>,
}

impl ChallengeBook {
    pub fn new(max: usize, ttl: Duration) -> Self {
        ChallengeBook { max: max.max(1), ttl, inner: Mutex::new(Inner::default()) }
    }

    /// A fresh nonce for `worker`, recorded; the oldest challenges go if the book is full.
    pub fn issue(&self, worker: Address) -> Result<B256, getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw)?;
        let nonce = B256::from(raw);
        let now = Instant::now();
        let mut inner = self.lock();
        while let Some(&(old, at)) = inner.order.front() {
            if now.duration_since(at) < self.ttl && inner.order.len() < self.max {
                break;
            }
            inner.order.pop_front();
            inner.by_nonce.remove(&old);
        }
        inner.by_nonce.insert(nonce, (worker, now));
        inner.order.push_back((nonce, now));
        Ok(nonce)
    }

    /// Takes the challenge of `nonce` (one use): the worker it was issued to, unless it is unknown or expired.
    pub fn take(&self, nonce: B256) -> Option<Address> {
        let (worker, at) = self.lock().by_nonce.remove(&nonce)?;
        (at.elapsed() < self.ttl).then_some(worker)
    }

    /// Challenges kept now (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.lock().by_nonce.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that matters (at worst a
        // nonce sits in one and not the other): carry on with them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The nonce of a challenge text (`… (nonce 0x…)`, see [`super::protocol::challenge_text`]).
pub fn nonce_of(text: &str) -> Option<B256> {
    let (_, tail) = text.rsplit_once("(nonce ")?;
    tail.strip_suffix(')')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::protocol::challenge_text;

    #[test]
    fn a_challenge_is_taken_once_by_its_nonce() {
        let book = ChallengeBook::new(10, Duration::from_secs(60));
        let w = Address::repeat_byte(1);
        let n = book.issue(w).expect("nonce");
        let text = challenge_text(Address::repeat_byte(9), w, n);
        assert_eq!(nonce_of(&text), Some(n));
        assert_eq!(book.take(n), Some(w));
        assert_eq!(book.take(n), None, "one use");
        assert_eq!(nonce_of("let me in"), None);
        assert_eq!(nonce_of("x (nonce 0x12)"), None);
    }

    #[test]
    fn asking_in_a_workers_name_does_not_touch_its_pending_challenge() {
        let book = ChallengeBook::new(100, Duration::from_secs(60));
        let w = Address::repeat_byte(1);
        let mine = book.issue(w).expect("nonce");
        for _ in 0..50 {
            book.issue(w).expect("nonce");
        }
        assert_eq!(book.take(mine), Some(w));
    }

    #[test]
    fn the_book_is_bounded_in_count_and_age() {
        let book = ChallengeBook::new(5, Duration::from_secs(60));
        let first = book.issue(Address::repeat_byte(1)).expect("nonce");
        let rest: Vec<B256> = (0..10).map(|_| book.issue(Address::repeat_byte(2)).expect("nonce")).collect();
        assert_eq!(book.len(), 5, "never more than the bound");
        assert_eq!(book.take(first), None, "the oldest went first");
        assert!(book.take(rest[9]).is_some(), "the newest stays");

        let book = ChallengeBook::new(100, Duration::from_millis(20));
        let old = book.issue(Address::repeat_byte(1)).expect("nonce");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(book.take(old), None, "expired");
        let stale = book.issue(Address::repeat_byte(1)).expect("nonce");
        std::thread::sleep(Duration::from_millis(30));
        book.issue(Address::repeat_byte(1)).expect("nonce");
        assert_eq!(book.len(), 1, "expired challenges are dropped as new ones come");
        assert_eq!(book.take(stale), None);
    }
}
