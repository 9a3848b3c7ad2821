//! One side of a book: price levels in a B-tree, each level a FIFO of (arrival, slab index).
//!
//! Why not one B-tree keyed by (price, arrival)? With a million resting orders such a tree is deep and cold in
//! cache, and every add and cancel pays a descent of cache misses. Distinct prices are few, so the level tree is
//! small and hot; arrival numbers only grow, so an add is a push at the back of its level. A removal is lazy: the
//! level's live count drops and the entry stays as a tombstone, skipped by iteration, until the level empties (it
//! is dropped) or is more than half tombstones (it is compacted). An entry is valid when the slab slot it names
//! holds a matchable order with that arrival number (the caller's `valid`), so a reused slot never revives it.
//! An order that comes back (a released deal) is put back at its arrival position, or finds its tombstone there.

use std::collections::{BTreeMap, VecDeque};

pub(crate) type Ix = u32;

/// Two words a book stores beside each entry so that scans can rule an order out without reading it (a cache
/// miss per order on a big book): what they hold is up to the book's owner (see the marks in `engine/books.rs`).
pub(crate) type Marks = [u64; 2];

#[derive(Clone, Debug, Default)]
struct Level {
    queue: VecDeque<(u64, Ix, Marks)>,
    live: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct LevelBook<P> {
    levels: BTreeMap<P, Level>,
    live: usize,
    /// The best price, kept beside the tree: a scan probing many small groups (cold on a big book) reads it
    /// without descending to the tree's first leaf.
    first: Option<P>,
}

impl<P> Default for LevelBook<P> {
    fn default() -> Self {
        LevelBook { levels: BTreeMap::new(), live: 0, first: None }
    }
}

impl<P: Ord + Copy> LevelBook<P> {
    /// Adds a matchable order (it must not be in the book already).
    pub(crate) fn insert(&mut self, price: P, seq: u64, ix: Ix, marks: Marks) {
        if self.first.is_none_or(|f| price < f) {
            self.first = Some(price);
        }
        let level = self.levels.entry(price).or_default();
        level.live += 1;
        self.live += 1;
        match level.queue.back() {
            Some(&(last, _, _)) if last >= seq => match level.queue.binary_search_by_key(&seq, |e| e.0) {
                // Its tombstone is still there: valid again.
                Ok(_) => {}
                Err(pos) => level.queue.insert(pos, (seq, ix, marks)),
            },
            _ => level.queue.push_back((seq, ix, marks)),
        }
    }

    /// Removes an order that is no longer matchable (`valid` must already be false for it).
    pub(crate) fn remove(&mut self, price: P, valid: impl Fn(u64, Ix, Marks) -> bool) {
        let Some(level) = self.levels.get_mut(&price) else {
            debug_assert!(false, "removing from a missing level");
            return;
        };
        level.live -= 1;
        self.live -= 1;
        if level.live == 0 {
            self.levels.remove(&price);
            if self.first == Some(price) {
                self.first = self.levels.keys().next().copied();
            }
        } else if level.queue.len() > 2 * level.live as usize + 8 {
            level.queue.retain(|&(s, i, m)| valid(s, i, m));
        }
    }

    /// Number of matchable orders.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The best price (every level present has a live order).
    pub(crate) fn first_price(&self) -> Option<P> {
        self.first
    }

    /// Valid entries in (price, arrival) order, from `from` (inclusive) to price `hi` (inclusive). `valid` sees
    /// the marks first, so it can reject an entry without touching the order.
    pub(crate) fn between<'a>(
        &'a self,
        from: (P, u64),
        hi: P,
        valid: impl Fn(u64, Ix, Marks) -> bool + 'a,
    ) -> impl Iterator<Item = (P, u64, Ix)> + 'a {
        let levels = (from.0 <= hi).then(|| self.levels.range(from.0..=hi));
        levels
            .into_iter()
            .flatten()
            .flat_map(move |(p, l)| {
                let start = if *p == from.0 { l.queue.partition_point(|e| e.0 < from.1) } else { 0 };
                l.queue.range(start..).map(move |&(s, i, m)| (*p, s, i, m))
            })
            .filter(move |&(_, s, i, m)| valid(s, i, m))
            .map(|(p, s, i, _)| (p, s, i))
    }

    /// Valid entries up to price `hi` (inclusive).
    pub(crate) fn up_to<'a>(
        &'a self,
        hi: P,
        valid: impl Fn(u64, Ix, Marks) -> bool + 'a,
    ) -> impl Iterator<Item = (P, u64, Ix)> + 'a {
        self.levels
            .range(..=hi)
            .flat_map(|(p, l)| l.queue.iter().map(move |&(s, i, m)| (*p, s, i, m)))
            .filter(move |&(_, s, i, m)| valid(s, i, m))
            .map(|(p, s, i, _)| (p, s, i))
    }

    /// All valid entries, best first.
    #[cfg(test)]
    pub(crate) fn iter<'a>(
        &'a self,
        valid: impl Fn(u64, Ix, Marks) -> bool + 'a,
    ) -> impl Iterator<Item = (P, u64, Ix)> + 'a {
        self.levels
            .iter()
            .flat_map(|(p, l)| l.queue.iter().map(move |&(s, i, m)| (*p, s, i, m)))
            .filter(move |&(_, s, i, m)| valid(s, i, m))
            .map(|(p, s, i, _)| (p, s, i))
    }
}

/// Per-price counters of one side of a category's book (orders and unreserved volume at each price): what best
/// price and depth need, without a second copy of the orders (they live in one group each). Updating it costs one
/// descent of a tree of distinct prices, which stays small and hot in cache however many orders rest.
#[derive(Clone, Debug)]
pub(crate) struct Levels<P> {
    levels: BTreeMap<P, LevelCount>,
    orders: usize,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LevelCount {
    pub(crate) orders: u32,
    /// Sum of the remaining volumes; `u128` because a level of many `u64` volumes can pass `u64::MAX`.
    pub(crate) volume: u128,
}

impl<P> Default for Levels<P> {
    fn default() -> Self {
        Levels { levels: BTreeMap::new(), orders: 0 }
    }
}

impl<P: Ord + Copy> Levels<P> {
    pub(crate) fn add(&mut self, price: P, volume: u64) {
        let l = self.levels.entry(price).or_default();
        l.orders += 1;
        l.volume += u128::from(volume);
        self.orders += 1;
    }

    /// Takes out an order that had `volume` remaining.
    pub(crate) fn remove(&mut self, price: P, volume: u64) {
        let Some(l) = self.levels.get_mut(&price) else {
            debug_assert!(false, "removing from a missing level");
            return;
        };
        l.orders -= 1;
        l.volume -= u128::from(volume);
        self.orders -= 1;
        if l.orders == 0 {
            self.levels.remove(&price);
        }
    }

    /// An order at `price` went from `old` to `new` remaining (both non-zero).
    pub(crate) fn change(&mut self, price: P, old: u64, new: u64) {
        if let Some(l) = self.levels.get_mut(&price) {
            l.volume = l.volume - u128::from(old) + u128::from(new);
        } else {
            debug_assert!(false, "changing a missing level");
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.orders
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.orders == 0
    }

    pub(crate) fn first_price(&self) -> Option<P> {
        self.levels.keys().next().copied()
    }

    /// Levels, best first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (P, LevelCount)> + '_ {
        self.levels.iter().map(|(p, l)| (*p, *l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(usize),
        Revive(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u64..4).prop_map(Op::Insert),
            3 => any::<usize>().prop_map(Op::Remove),
            1 => any::<usize>().prop_map(Op::Revive),
        ]
    }

    proptest! {
        /// The level book lists exactly the live entries, in (price, arrival) order, through tombstones,
        /// compactions and revivals (an order put back at its old arrival number).
        #[test]
        fn level_book_equals_a_sorted_set(ops in proptest::collection::vec(op(), 1..400)) {
            let mut book: LevelBook<u64> = LevelBook::default();
            let mut live: BTreeSet<(u64, u64)> = BTreeSet::new();
            let mut removed: Vec<(u64, u64)> = Vec::new();
            let mut seq = 0u64;
            for op in ops {
                match op {
                    Op::Insert(p) => {
                        seq += 1;
                        book.insert(p, seq, seq as Ix, [seq, 0]);
                        live.insert((p, seq));
                    }
                    Op::Remove(k) if !live.is_empty() => {
                        let e = *live.iter().nth(k % live.len()).expect("non-empty");
                        live.remove(&e);
                        removed.push(e);
                        let valid = |s: u64, _, m: Marks| m[0] == s && live.iter().any(|x| x.1 == s);
                        book.remove(e.0, valid);
                    }
                    Op::Revive(k) if !removed.is_empty() => {
                        let e = removed.swap_remove(k % removed.len());
                        book.insert(e.0, e.1, e.1 as Ix, [e.1, 0]);
                        live.insert(e);
                    }
                    _ => {}
                }
                let valid = |s: u64, _, m: Marks| m[0] == s && live.iter().any(|x| x.1 == s);
                let listed: Vec<(u64, u64)> = book.iter(valid).map(|(p, s, _)| (p, s)).collect();
                let expected: Vec<(u64, u64)> = live.iter().copied().collect();
                prop_assert_eq!(&listed, &expected);
                prop_assert_eq!(book.len(), live.len());
                prop_assert_eq!(book.first_price(), live.first().map(|e| e.0));
                if let Some(&(p, s)) = live.iter().nth(live.len() / 2) {
                    let from: Vec<(u64, u64)> = book.between((p, s), 2, valid).map(|(p, s, _)| (p, s)).collect();
                    let exp: Vec<(u64, u64)> = live.range((p, s)..).filter(|e| e.0 <= 2).copied().collect();
                    prop_assert_eq!(from, exp);
                }
                for lvl in book.levels.values() {
                    prop_assert!(lvl.queue.len() <= 2 * lvl.live as usize + 9, "compaction keeps levels bounded");
                }
            }
        }
    }
}
