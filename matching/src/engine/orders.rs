//! Where the engine keeps every known order: one slab per kind, so that books, indices and proposals hold 4-byte
//! indices instead of 32-byte hashes, and beside each order its arrival number and volumes.
//!
//! An order is known from its `Add` until it has nothing left to match and nothing reserved (`forget_if_dead`);
//! its slot is then reused. Books remove lazily (see `crate::book`), so a book entry names a slot and the arrival
//! number it was booked with: `valid_entry` and its two variants tell a live entry from a tombstone, or from a
//! slot reused by a later order.

use std::cmp::Reverse;

use crate::book::Ix;
use crate::types::{OrderHash, OrderKind, RequestOrder};

use super::Engine;

/// Ask priority: price ascending, then arrival.
pub(super) type AskKey = (u64, u64);
/// Bid priority: workerpoolmaxprice descending, then arrival.
pub(super) type BidKey = (Reverse<u64>, u64);

/// What the engine tracks of every order besides the order itself: kept apart so that one dispatch on the kind
/// (`Engine::vol`, `Engine::vol_mut`) serves every volume change.
#[derive(Clone, Copy, Debug)]
pub(super) struct Volumes {
    pub(super) seq: u64,
    pub(super) remaining: u64,
    pub(super) reserved: u64,
    pub(super) cancelled: bool,
    /// Requests only: live but kept out of the bid groups because their app (or dataset) has no order in the
    /// books, so that workerpool orders never walk them (see `Engine::set_available`).
    pub(super) parked: bool,
}

impl Volumes {
    /// In the book (matchable).
    pub(super) fn live(&self) -> bool {
        self.remaining > 0 && !self.cancelled
    }
    /// Can be forgotten: nothing to match and nothing reserved.
    pub(super) fn dead(&self) -> bool {
        (self.remaining == 0 || self.cancelled) && self.reserved == 0
    }
}

#[derive(Clone, Debug)]
pub(super) struct Entry<O> {
    pub(super) order: O,
    pub(super) v: Volumes,
}

impl<O> Entry<O> {
    pub(super) fn new(order: O, seq: u64, volume: u64) -> Self {
        Entry { order, v: Volumes { seq, remaining: volume, reserved: 0, cancelled: false, parked: false } }
    }
}

/// A vector with reusable slots, so that books hold 4-byte indices instead of 32-byte hashes.
#[derive(Clone, Debug)]
pub(super) struct Slab<T> {
    pub(super) items: Vec<Option<T>>,
    free: Vec<Ix>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { items: Vec::new(), free: Vec::new() }
    }
}

impl<T> Slab<T> {
    pub(super) fn insert(&mut self, t: T) -> Ix {
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(t);
            i
        } else {
            self.items.push(Some(t));
            Ix::try_from(self.items.len() - 1).expect("fewer than 2^32 live orders of one kind")
        }
    }
    pub(super) fn remove(&mut self, i: Ix) {
        self.items[i as usize].take().expect("slab index of a live entry");
        self.free.push(i);
    }
    pub(super) fn get(&self, i: Ix) -> &T {
        self.items[i as usize].as_ref().expect("slab index of a live entry")
    }
    pub(super) fn get_mut(&mut self, i: Ix) -> &mut T {
        self.items[i as usize].as_mut().expect("slab index of a live entry")
    }
}

/// Whether a book entry (arrival `seq`, slot `i`) still names a matchable order (see `book`).
pub(super) fn valid_entry<O>(slab: &Slab<Entry<O>>, seq: u64, i: Ix) -> bool {
    slab.items.get(i as usize).and_then(Option::as_ref).is_some_and(|e| e.v.seq == seq && e.v.live())
}

/// The same for the parked book of a category.
pub(super) fn valid_parked(slab: &Slab<Entry<RequestOrder>>, seq: u64, i: Ix) -> bool {
    slab.items.get(i as usize).and_then(Option::as_ref).is_some_and(|e| e.v.seq == seq && e.v.live() && e.v.parked)
}

/// The same for a bid group, which holds only requests that are not parked.
pub(super) fn valid_unparked(slab: &Slab<Entry<RequestOrder>>, seq: u64, i: Ix) -> bool {
    slab.items.get(i as usize).and_then(Option::as_ref).is_some_and(|e| e.v.seq == seq && e.v.live() && !e.v.parked)
}

/// A known order: its kind and its slot in that kind's slab. Small and `Copy`, so that a proposal or a scan holds
/// orders without borrowing the engine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum OrderRef {
    App(Ix),
    Dataset(Ix),
    Workerpool(Ix),
    Request(Ix),
}

impl OrderRef {
    pub(super) fn kind(self) -> OrderKind {
        match self {
            OrderRef::App(_) => OrderKind::App,
            OrderRef::Dataset(_) => OrderKind::Dataset,
            OrderRef::Workerpool(_) => OrderKind::Workerpool,
            OrderRef::Request(_) => OrderKind::Request,
        }
    }
}

impl Engine {
    /// The volumes of any order: the one place that dispatches on the kind to read them.
    pub(super) fn vol(&self, r: OrderRef) -> &Volumes {
        match r {
            OrderRef::App(i) => &self.apps.get(i).v,
            OrderRef::Dataset(i) => &self.datasets.get(i).v,
            OrderRef::Workerpool(i) => &self.pools.get(i).v,
            OrderRef::Request(i) => &self.requests.get(i).v,
        }
    }

    pub(super) fn vol_mut(&mut self, r: OrderRef) -> &mut Volumes {
        match r {
            OrderRef::App(i) => &mut self.apps.get_mut(i).v,
            OrderRef::Dataset(i) => &mut self.datasets.get_mut(i).v,
            OrderRef::Workerpool(i) => &mut self.pools.get_mut(i).v,
            OrderRef::Request(i) => &mut self.requests.get_mut(i).v,
        }
    }

    pub(super) fn hash_of(&self, r: OrderRef) -> OrderHash {
        match r {
            OrderRef::App(i) => self.apps.get(i).order.hash,
            OrderRef::Dataset(i) => self.datasets.get(i).order.hash,
            OrderRef::Workerpool(i) => self.pools.get(i).order.hash,
            OrderRef::Request(i) => self.requests.get(i).order.hash,
        }
    }

    /// A known, not cancelled order.
    pub(super) fn live_ref(&self, hash: &OrderHash) -> Option<OrderRef> {
        let r = *self.by_hash.get(hash)?;
        (!self.vol(r).cancelled).then_some(r)
    }

    /// Drops the order's record when it has nothing left to match nor reserved. Returns whether it did.
    pub(super) fn forget_if_dead(&mut self, r: OrderRef, hash: OrderHash) -> bool {
        let dead = self.vol(r).dead();
        if dead {
            match r {
                OrderRef::App(i) => self.apps.remove(i),
                OrderRef::Dataset(i) => self.datasets.remove(i),
                OrderRef::Workerpool(i) => self.pools.remove(i),
                OrderRef::Request(i) => self.requests.remove(i),
            }
            self.by_hash.remove(&hash);
        }
        dead
    }
}
