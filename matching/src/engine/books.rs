//! The books: per category, the per-price counters, the ask and bid groups and the parked requests; per app and
//! per dataset, its orders. Each is made of `crate::book` level books; this module decides which book an order
//! goes to and what is stored beside it (the marks).
//!
//! Why groups: an order is booked under what may keep it from the other side whatever the price (restrictions
//! and trust; crate docs, "Indexed by what blocks an order"), so that a scan looks up only the groups that admit
//! it, and the marks settle without reading the order what the group key leaves open. `insert_in_books` and
//! `remove_from_books` are the only way in and out: they keep the counters, the groups, the parked book and the
//! request indices in step. Parking is here because it moves requests between a bid group and the parked book.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;

use crate::book::{Ix, LevelBook, Levels, Marks};
use crate::hash::HashMap;
use crate::types::{Address, RequestOrder, Tag, WorkerpoolOrder};

use super::Engine;
use super::indexes::{index_insert, index_remove};
use super::orders::{Entry, OrderRef, Slab, valid_entry, valid_parked, valid_unparked};

/// OR of the tag's four 64-bit words: `a ⊆ b` implies `fold(a) ⊆ fold(b)`, so a failed folded test rules a pair
/// out exactly (the converse does not hold; the full check follows).
fn fold(t: &Tag) -> u64 {
    t.0.chunks_exact(8).fold(0, |acc, w| acc | u64::from_be_bytes(w.try_into().expect("8-byte chunk")))
}

/// The last 8 bytes of an address: different values mean different addresses.
fn low64(a: &Address) -> u64 {
    u64::from_be_bytes(a.0[12..].try_into().expect("8-byte slice"))
}

/// The last 4 bytes of an address.
fn low32(a: &Address) -> u64 {
    u64::from(low4(a))
}

pub(super) fn low4(a: &Address) -> u32 {
    u32::from_be_bytes(a.0[16..].try_into().expect("4-byte slice"))
}

/// Marks of a workerpool order in its ask group: (folded tag, low bits of its workerpool). The group key already
/// settles the restrictions and trust; these settle the request's tag (06) and workerpool restriction (12).
fn ask_marks(w: &WorkerpoolOrder) -> Marks {
    [fold(&w.tag), low64(&w.workerpool)]
}

/// Whether a workerpool order with these marks may serve the request (necessary conditions only; a zero low part
/// of a non-zero address only lets more through, which the full check then sorts out).
pub(super) fn ask_marks_admit(m: Marks, r: &RequestOrder) -> bool {
    fold(&r.tag) & !m[0] == 0 && (r.workerpool.is_zero() || low64(&r.workerpool) == m[1])
}

/// Marks of a request in its bid group: (low bits of its requester, low bits of its app and dataset). The group
/// key settles tag, workerpool restriction and trust; these settle the workerpool order's restrictions (19-1b).
fn bid_marks(r: &RequestOrder) -> Marks {
    [low64(&r.requester), (low32(&r.app) << 32) | low32(&r.dataset)]
}

pub(super) fn bid_marks_admit(m: Marks, w: &WorkerpoolOrder) -> bool {
    (w.requester_restrict.is_zero() || low64(&w.requester_restrict) == m[0])
        && (w.app_restrict.is_zero() || low32(&w.app_restrict) == m[1] >> 32)
        && (w.dataset_restrict.is_zero() || low32(&w.dataset_restrict) == m[1] & 0xffff_ffff)
}

/// The mark of a request in the by-app and by-dataset indices: the low bits of its requester (small, so that the
/// indices' tree nodes stay few cache lines).
fn index_mark(r: &RequestOrder) -> u32 {
    low4(&r.requester)
}

/// What keeps a workerpool order from a request regardless of price: its restrictions on the app, the dataset and
/// the requester (the exact part of the key), and its trust. A request looks up only the groups that admit it
/// (each restriction zero or its own address, trust at least its own), so asks it could never use are never
/// walked.
type AskKey3 = (Address, Address, Address);

/// What keeps a request from a workerpool order regardless of price: its tag and workerpool restriction (the exact
/// part), and its trust. A workerpool order looks up only the tags its own covers, the restriction zero or
/// itself, and trust up to its own.
type BidKey2 = (Tag, Address);

/// Books grouped by an exact key and a trust level, looked up by hash (never iterated): the trust levels present
/// are listed apart (`ask_trusts`, `bid_trusts`), so a scan looks up each admitted level with one hash probe
/// instead of walking a tree per key, which on a big book is one cache miss fewer per group.
type Groups<K, P> = HashMap<(K, u64), LevelBook<P>>;

/// One bid group: (tag, workerpool restriction, trust).
pub(super) type BidGroup = (Tag, Address, u64);

/// One category's workerpool orders and requests: each live one counted at its price, and booked in exactly one
/// group (a parked request in the parked book instead).
#[derive(Clone, Debug, Default)]
pub(super) struct CategoryBook {
    /// Counters per price of every live workerpool order: best ask and depth.
    pub(super) asks: Levels<u64>,
    /// Counters per price of every live request, parked or not: best bid and depth.
    pub(super) bids: Levels<Reverse<u64>>,
    /// The asks, by what may block them: what requests scan, and (merged) the listings. Each live workerpool order
    /// is in exactly one group.
    pub(super) ask_groups: Groups<AskKey3, u64>,
    /// The keys of `ask_groups`, ordered: what a listing merges (rarely, so the hash map is never iterated).
    pub(super) ask_keys: BTreeSet<(AskKey3, u64)>,
    /// Number of ask groups with a non-zero app, dataset and requester restriction: a request skips the lookups
    /// no group can answer (on most books, all but one).
    pub(super) ask_restricted: [u32; 3],
    /// Number of ask groups of each trust level.
    pub(super) ask_trusts: BTreeMap<u64, u32>,
    /// The requests that are not parked, by what may block them: what workerpool orders scan. Each live request
    /// is in exactly one group, or in `parked`.
    pub(super) bid_groups: Groups<BidKey2, Reverse<u64>>,
    /// The keys of `bid_groups`, ordered.
    pub(super) bid_keys: BTreeSet<(BidKey2, u64)>,
    /// The parked requests (their app or dataset has no order): listed, never scanned by workerpool orders.
    pub(super) parked: LevelBook<Reverse<u64>>,
    /// Number of bid groups of each tag, to enumerate the tags a workerpool order covers (ordered, so iterable).
    pub(super) bid_tags: BTreeMap<Tag, u32>,
    /// Number of bid groups with a workerpool restriction.
    pub(super) bid_restricted: u32,
    /// Number of bid groups of each trust level.
    pub(super) bid_trusts: BTreeMap<u64, u32>,
}

/// Inserts into a group's book; returns whether the group is new.
fn group_insert<K: Hash + Eq, P: Ord + Copy>(
    groups: &mut Groups<K, P>,
    key: (K, u64),
    (p, seq, i, m): (P, u64, Ix, Marks),
) -> bool {
    let book = groups.entry(key).or_default();
    let created = book.is_empty();
    book.insert(p, seq, i, m);
    created
}

/// Removes from a group's book; returns whether the group is gone (emptied groups are dropped, so that lookups
/// never walk them).
fn group_remove<K: Hash + Eq, P: Ord + Copy>(
    groups: &mut Groups<K, P>,
    key: &(K, u64),
    p: P,
    valid: impl Fn(u64, Ix, Marks) -> bool,
) -> bool {
    let Some(book) = groups.get_mut(key) else {
        debug_assert!(false, "removing from a missing group");
        return false;
    };
    book.remove(p, valid);
    let gone = book.is_empty();
    if gone {
        groups.remove(key);
    }
    gone
}

/// Counts one more (`up`) or one fewer group under `key`.
fn count<K: Ord>(counts: &mut BTreeMap<K, u32>, key: K, up: bool) {
    if up {
        *counts.entry(key).or_default() += 1;
    } else if let Some(n) = counts.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

/// Removes from a book keyed by address; returns whether the address has no book left.
fn remove_keyed<P: Ord + Copy>(
    map: &mut HashMap<Address, LevelBook<P>>,
    addr: &Address,
    price: P,
    valid: impl Fn(u64, Ix, Marks) -> bool,
) -> bool {
    let Some(book) = map.get_mut(addr) else {
        return false;
    };
    book.remove(price, valid);
    let gone = book.is_empty();
    if gone {
        map.remove(addr);
    }
    gone
}

/// The first `n` orders in priority among `books` (together holding every order that `levels` counts, each valid
/// in one book: `valid` gets the flag that comes with the book): the counters give the price by which `n` orders
/// have come, and only the books that start before it are read.
pub(super) fn top_of<'a, P: Ord + Copy + 'a>(
    levels: &Levels<P>,
    books: impl Iterator<Item = (&'a LevelBook<P>, bool)>,
    n: usize,
    valid: impl Fn(u64, Ix, bool) -> bool + Copy + 'a,
) -> Vec<Ix> {
    let mut seen = 0usize;
    let mut cutoff = None;
    for (p, l) in levels.iter() {
        if seen >= n {
            break;
        }
        seen += l.orders as usize;
        cutoff = Some(p);
    }
    let Some(cutoff) = cutoff else {
        return Vec::new();
    };
    let mut found: Vec<(P, u64, Ix)> = Vec::new();
    for (b, flag) in books {
        if b.first_price().is_some_and(|f| f <= cutoff) {
            found.extend(b.up_to(cutoff, move |s, i, _| valid(s, i, flag)).take(n));
        }
    }
    found.sort_unstable_by_key(|x| (x.0, x.1));
    found.truncate(n);
    found.into_iter().map(|(_, _, i)| i).collect()
}

impl Engine {
    /// A booked workerpool order or request went from `old` to `new` remaining (both non-zero): its level's volume
    /// follows.
    pub(super) fn level_change(&mut self, r: OrderRef, old: u64, new: u64) {
        match r {
            OrderRef::Workerpool(i) => {
                let o = &self.pools.get(i).order;
                if let Some(b) = self.categories.get_mut(&o.category) {
                    b.asks.change(o.price.0, old, new);
                }
            }
            OrderRef::Request(i) => {
                let o = &self.requests.get(i).order;
                if let Some(b) = self.categories.get_mut(&o.category) {
                    b.bids.change(Reverse(o.workerpool_max_price.0), old, new);
                }
            }
            OrderRef::App(_) | OrderRef::Dataset(_) => {}
        }
    }

    /// Books an order that became matchable (added with volume left, or back from zero by a release). The first
    /// order of an app or dataset unparks the requests naming it.
    pub(super) fn insert_in_books(&mut self, r: OrderRef) {
        match r {
            OrderRef::App(i) => {
                let e = self.apps.get(i);
                let (app, price, seq) = (e.order.app, e.order.price.0, e.v.seq);
                let book = self.app_book.entry(app).or_default();
                let first = book.is_empty();
                book.insert(price, seq, i, [0; 2]);
                if first {
                    self.set_available(Asset::App(app));
                }
            }
            OrderRef::Dataset(i) => {
                let e = self.datasets.get(i);
                let (dataset, price, seq) = (e.order.dataset, e.order.price.0, e.v.seq);
                let book = self.dataset_book.entry(dataset).or_default();
                let first = book.is_empty();
                book.insert(price, seq, i, [0; 2]);
                if first {
                    self.set_available(Asset::Dataset(dataset));
                }
            }
            OrderRef::Workerpool(i) => {
                let e = self.pools.get(i);
                let (o, seq) = (&e.order, e.v.seq);
                let book = self.categories.entry(o.category).or_default();
                book.asks.add(o.price.0, e.v.remaining);
                let key = ((o.app_restrict, o.dataset_restrict, o.requester_restrict), o.trust);
                if group_insert(&mut book.ask_groups, key, (o.price.0, seq, i, ask_marks(o))) {
                    Self::count_ask_group(book, &key, true);
                }
            }
            OrderRef::Request(i) => {
                let parked = !self.assets_available(&self.requests.get(i).order);
                let e = self.requests.get_mut(i);
                e.v.parked = parked;
                let (o, seq, p) = (&e.order, e.v.seq, Reverse(e.order.workerpool_max_price.0));
                let book = self.categories.entry(o.category).or_default();
                book.bids.add(p, e.v.remaining);
                if parked {
                    book.parked.insert(p, seq, i, [0; 2]);
                } else {
                    Self::bid_group_insert(book, o, seq, i);
                }
                let m = index_mark(o);
                index_insert(&mut self.requests_by_app, o.app, o.category, (p, seq), i, m);
                if !o.dataset.is_zero() {
                    index_insert(&mut self.requests_by_dataset, o.dataset, o.category, (p, seq), i, m);
                }
            }
        }
    }

    /// Takes an order that stopped being matchable (its state already says so) out of the books; it had `was`
    /// remaining before.
    pub(super) fn remove_from_books(&mut self, r: OrderRef, was: u64) {
        match r {
            OrderRef::App(i) => {
                let (slab, e) = (&self.apps, self.apps.get(i));
                let app = e.order.app;
                if remove_keyed(&mut self.app_book, &app, e.order.price.0, |s, i, _| valid_entry(slab, s, i)) {
                    self.set_available(Asset::App(app));
                }
            }
            OrderRef::Dataset(i) => {
                let (slab, e) = (&self.datasets, self.datasets.get(i));
                let dataset = e.order.dataset;
                if remove_keyed(&mut self.dataset_book, &dataset, e.order.price.0, |s, i, _| valid_entry(slab, s, i)) {
                    self.set_available(Asset::Dataset(dataset));
                }
            }
            OrderRef::Workerpool(i) => {
                let (slab, o) = (&self.pools, &self.pools.get(i).order);
                if let Some(b) = self.categories.get_mut(&o.category) {
                    let valid = |s, i, _| valid_entry(slab, s, i);
                    b.asks.remove(o.price.0, was);
                    let key = ((o.app_restrict, o.dataset_restrict, o.requester_restrict), o.trust);
                    if group_remove(&mut b.ask_groups, &key, o.price.0, valid) {
                        Self::count_ask_group(b, &key, false);
                    }
                    if b.asks.is_empty() && b.bids.is_empty() {
                        self.categories.remove(&o.category);
                    }
                }
            }
            OrderRef::Request(i) => {
                let (slab, e) = (&self.requests, self.requests.get(i));
                let (o, p) = (&e.order, Reverse(e.order.workerpool_max_price.0));
                if let Some(b) = self.categories.get_mut(&o.category) {
                    b.bids.remove(p, was);
                    if e.v.parked {
                        b.parked.remove(p, |s, i, _| valid_parked(slab, s, i));
                    } else {
                        Self::bid_group_remove(b, o, slab);
                    }
                    if b.asks.is_empty() && b.bids.is_empty() {
                        self.categories.remove(&o.category);
                    }
                }
                let key = (p, e.v.seq);
                index_remove(&mut self.requests_by_app, &o.app, o.category, &key);
                if !o.dataset.is_zero() {
                    index_remove(&mut self.requests_by_dataset, &o.dataset, o.category, &key);
                }
            }
        }
    }

    /// Counts an ask group in (`up`) or out.
    fn count_ask_group(book: &mut CategoryBook, key: &(AskKey3, u64), up: bool) {
        let ((app, dataset, requester), trust) = key;
        for (n, a) in book.ask_restricted.iter_mut().zip([app, dataset, requester]) {
            if !a.is_zero() {
                if up {
                    *n += 1;
                } else {
                    *n -= 1;
                }
            }
        }
        count(&mut book.ask_trusts, *trust, up);
        if up {
            book.ask_keys.insert(*key);
        } else {
            book.ask_keys.remove(key);
        }
    }

    /// Books a request that is not parked in its bid group.
    fn bid_group_insert(book: &mut CategoryBook, o: &RequestOrder, seq: u64, i: Ix) {
        let p = Reverse(o.workerpool_max_price.0);
        if group_insert(&mut book.bid_groups, ((o.tag, o.workerpool), o.trust), (p, seq, i, bid_marks(o))) {
            Self::count_bid_group(book, o, true);
        }
    }

    /// Call once the request is no longer valid in its group (not live, or parked).
    fn bid_group_remove(book: &mut CategoryBook, o: &RequestOrder, slab: &Slab<Entry<RequestOrder>>) {
        let p = Reverse(o.workerpool_max_price.0);
        let key = ((o.tag, o.workerpool), o.trust);
        if group_remove(&mut book.bid_groups, &key, p, |s, i, _| valid_unparked(slab, s, i)) {
            Self::count_bid_group(book, o, false);
        }
    }

    /// Counts a bid group in (`up`) or out: the tags, trust levels and restrictions present are what a new
    /// workerpool order enumerates to find the groups that admit it.
    fn count_bid_group(book: &mut CategoryBook, o: &RequestOrder, up: bool) {
        count(&mut book.bid_tags, o.tag, up);
        count(&mut book.bid_trusts, o.trust, up);
        let key = ((o.tag, o.workerpool), o.trust);
        if up {
            book.bid_keys.insert(key);
        } else {
            book.bid_keys.remove(&key);
        }
        if !o.workerpool.is_zero() {
            if up {
                book.bid_restricted += 1;
            } else {
                book.bid_restricted -= 1;
            }
        }
    }

    /// Whether a request's app has an order in the books, and its dataset too if it names one: otherwise it is
    /// parked, out of the bid groups.
    fn assets_available(&self, o: &RequestOrder) -> bool {
        self.app_book.contains_key(&o.app) && (o.dataset.is_zero() || self.dataset_book.contains_key(&o.dataset))
    }

    /// An app or dataset got its first order in the books, or lost its last: park or unpark its live requests
    /// accordingly. This walks all of them (it is what keeps workerpool orders from walking them): the cost is
    /// O(requests naming the asset), paid only when the asset comes or goes.
    fn set_available(&mut self, asset: Asset) {
        let index = match asset {
            Asset::App(a) => self.requests_by_app.get(&a),
            Asset::Dataset(d) => self.requests_by_dataset.get(&d),
        };
        let Some(index) = index else {
            return;
        };
        let mut flipping = std::mem::take(&mut self.flipping);
        flipping.clear();
        for book in index.values() {
            flipping.extend(book.tree.values().map(|&(i, _)| i));
        }
        for &ri in &flipping {
            let parked = !self.assets_available(&self.requests.get(ri).order);
            let e = self.requests.get_mut(ri);
            if e.v.parked == parked {
                continue;
            }
            e.v.parked = parked;
            let (o, seq) = (&e.order, e.v.seq);
            let Some(book) = self.categories.get_mut(&o.category) else {
                debug_assert!(false, "a live request has a category book");
                continue;
            };
            let o = &self.requests.get(ri).order;
            let p = Reverse(o.workerpool_max_price.0);
            let requests = &self.requests;
            if parked {
                Self::bid_group_remove(book, o, requests);
                book.parked.insert(p, seq, ri, [0; 2]);
            } else {
                book.parked.remove(p, |s, i, _| valid_parked(requests, s, i));
                Self::bid_group_insert(book, o, seq, ri);
            }
        }
        self.flipping = flipping;
    }
}

/// An app or a dataset, whose coming or going parks or unparks the requests naming it.
#[derive(Clone, Copy, Debug)]
enum Asset {
    App(Address),
    Dataset(Address),
}
