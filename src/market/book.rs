//! The read side of the market: every open order, sorted as the market API lists them, answered from memory.
//!
//! The engine owns matching; this index only mirrors durable state for queries. It is written by the
//! sequencer (after an insert or a cancel commits) and by the event writer (after volume changes commit), so a
//! reader never sees an order that a crash could take back. Readers share a read lock and filter in sort
//! order; writers hold the write lock for a few map operations per order.

use super::record::{Brief, OrderRecord, OrderStatus};
use crate::ids::OrderHash;
use crate::order::OrderKind;
use crate::store::track_records::TrackRecord;
use alloy::primitives::Address;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Sort key, as iexec-market-api sorts its listings: offers by price ascending, requests by
/// `workerpoolmaxprice` descending, then publication time (milliseconds), then order hash. (The engine's time
/// priority is the arrival number; within one millisecond the two may differ, and each follows its own rule.)
type Key = (u64, i64, [u8; 32]);

fn key(r: &OrderRecord) -> Key {
    let price = match r.kind() {
        OrderKind::Request => u64::MAX - r.price(),
        _ => r.price(),
    };
    (price, r.published_ms, r.hash.0.0)
}

fn slot(kind: OrderKind) -> usize {
    match kind {
        OrderKind::App => 0,
        OrderKind::Dataset => 1,
        OrderKind::Workerpool => 2,
        OrderKind::Request => 3,
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_hash: HashMap<OrderHash, Arc<OrderRecord>>,
    sorted: [BTreeMap<Key, Entry>; 4],
    /// Open orders per (kind, signer), for the per-signer cap.
    per_signer: HashMap<(OrderKind, Address), usize>,
    /// Open orders per (kind, asset): an app order's app, a dataset order's dataset, ...
    per_asset: HashMap<(OrderKind, Address), BTreeMap<Key, Entry>>,
    /// The same orders per (kind, asset) in no order, in one contiguous run each: a listing's count reads them
    /// as a stream (the sorted map's nodes, a few KiB each wherever the allocator put them, cost about four
    /// times as much to walk: docs/benchmarks.md, issue 20).
    dense: HashMap<(OrderKind, Address), Vec<Entry>>,
    /// Where each open order sits in its `dense` run.
    dense_at: HashMap<OrderHash, usize>,
    /// Open workerpool and request orders per (kind, category).
    per_category: HashMap<(OrderKind, u64), usize>,
    /// Open requests per dataset they name.
    requests_by_dataset: HashMap<Address, BTreeMap<Key, Arc<OrderRecord>>>,
    /// Workerpools' track records, shown beside their orders: kept with the book so that a change bumps the
    /// version that listings are cached under.
    records: HashMap<Address, TrackRecord>,
}

/// An open order in the sorted maps: its record, and what listings filter on, inline.
#[derive(Debug)]
struct Entry {
    brief: Brief,
    record: Arc<OrderRecord>,
}

/// A page of a listing.
#[derive(Debug)]
pub struct Page {
    pub orders: Vec<Arc<OrderRecord>>,
    /// Every order the filter admits, on all pages.
    pub count: usize,
}

#[derive(Debug, Default)]
pub struct Book {
    inner: RwLock<Inner>,
    /// Bumped by every change: an answer computed at version v is still the answer while it is v.
    version: std::sync::atomic::AtomicU64,
}

impl Book {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A writer that panicked left whole map operations behind it; the maps stay usable.
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        let g = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bumped while the lock is held: a reader that saw version v before reading saw no later change.
        self.version.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        g
    }

    /// The current version (see [`Book::version`]); read it before querying.
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Adds (or replaces) an open order.
    pub fn insert(&self, record: Arc<OrderRecord>) {
        let mut g = self.write();
        insert(&mut g, record);
    }

    /// Empties the index (the engine is being rebuilt from the store).
    pub fn clear(&self) {
        let mut g = self.write();
        *g = Inner::default();
    }

    /// Sets workerpools' track records (see `store::track_records`).
    pub fn set_records(&self, records: impl IntoIterator<Item = (Address, TrackRecord)>) {
        let mut g = self.write();
        g.records.extend(records);
    }

    /// A workerpool's track record as last set; `None` for a pool without any deal seen.
    pub fn record(&self, workerpool: &Address) -> Option<TrackRecord> {
        self.read().records.get(workerpool).copied()
    }

    /// Removes an order; returns it.
    pub fn remove(&self, hash: &OrderHash) -> Option<Arc<OrderRecord>> {
        let mut g = self.write();
        remove(&mut g, hash)
    }

    /// Sets remaining volumes (an order with nothing left leaves the book, marked filled); returns the new
    /// records of the orders found.
    pub fn set_remaining(&self, updates: &[(OrderHash, u64)]) -> Vec<Arc<OrderRecord>> {
        let mut g = self.write();
        let mut out = Vec::with_capacity(updates.len());
        for (hash, remaining) in updates {
            let Some(old) = g.by_hash.get(hash).cloned() else { continue };
            let mut r = OrderRecord::clone(&old);
            r.remaining = *remaining;
            let r = Arc::new(r);
            if *remaining == 0 {
                remove(&mut g, hash);
                let mut filled = OrderRecord::clone(&r);
                filled.status = OrderStatus::Filled;
                out.push(Arc::new(filled));
            } else {
                // Same key (price and arrival do not change): replace in place.
                insert(&mut g, r.clone());
                out.push(r);
            }
        }
        out
    }

    pub fn get(&self, hash: &OrderHash) -> Option<Arc<OrderRecord>> {
        self.read().by_hash.get(hash).cloned()
    }

    pub fn open_count(&self, kind: OrderKind, signer: Address) -> usize {
        self.read().per_signer.get(&(kind, signer)).copied().unwrap_or(0)
    }

    /// Open orders of `kind` on `asset` (requests: naming that app).
    pub fn asset_count(&self, kind: OrderKind, asset: Address) -> usize {
        self.read().per_asset.get(&(kind, asset)).map_or(0, BTreeMap::len)
    }

    /// Open requests naming `dataset`.
    pub fn requests_of_dataset(&self, dataset: Address) -> usize {
        self.read().requests_by_dataset.get(&dataset).map_or(0, BTreeMap::len)
    }

    /// Open requests for `app`.
    pub fn requests_of_app(&self, app: Address) -> Vec<Arc<OrderRecord>> {
        let g = self.read();
        g.per_asset
            .get(&(OrderKind::Request, app))
            .map(|m| m.values().map(|e| e.record.clone()).collect())
            .unwrap_or_default()
    }

    /// Open requests naming `dataset`.
    pub fn requests_naming_dataset(&self, dataset: Address) -> Vec<Arc<OrderRecord>> {
        self.read().requests_by_dataset.get(&dataset).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Open orders of `kind` (workerpool or request) in `category`.
    pub fn category_count(&self, kind: OrderKind, category: u64) -> usize {
        self.read().per_category.get(&(kind, category)).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.read().by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open orders per kind.
    pub fn counts(&self) -> [usize; 4] {
        let g = self.read();
        [0, 1, 2, 3].map(|i| g.sorted[i].len())
    }

    /// The first open order of `kind` on `asset`, in book order (cheapest, then oldest), that satisfies `pred`.
    pub fn first_of_asset(
        &self,
        kind: OrderKind,
        asset: Address,
        pred: impl Fn(&OrderRecord) -> bool,
    ) -> Option<Arc<OrderRecord>> {
        let g = self.read();
        g.per_asset.get(&(kind, asset)).and_then(|m| m.values().find(|e| pred(&e.record)).map(|e| e.record.clone()))
    }

    /// The first `n` open orders of `kind` (of `asset`, when given) that `filter` admits, in book order: unlike
    /// [`Book::query`], stops at `n` instead of counting them all.
    pub fn take(
        &self,
        kind: OrderKind,
        asset: Option<Address>,
        filter: impl Fn(&OrderRecord) -> bool,
        n: usize,
    ) -> Vec<Arc<OrderRecord>> {
        let g = self.read();
        let source = match asset {
            Some(a) => g.per_asset.get(&(kind, a)),
            None => Some(&g.sorted[slot(kind)]),
        };
        source
            .map(|s| s.values().filter(|e| filter(&e.record)).take(n).map(|e| e.record.clone()).collect())
            .unwrap_or_default()
    }

    /// A page of the open orders of `kind` that `filter` admits, in book order: `limit` of them after the
    /// first `skip`. When `asset` is given, only that asset's orders are walked: the page in the sorted map,
    /// stopping once full, and the count in the asset's contiguous run. The filter decides on each order's
    /// [`Brief`], kept beside it, and reads the record only to confirm what the brief's short forms cannot tell:
    /// counting a thousand orders streams through memory instead of following a thousand pointers (most of a
    /// listing's time before, docs/benchmarks.md, issue 20).
    pub fn query(
        &self,
        kind: OrderKind,
        asset: Option<Address>,
        filter: impl Fn(&Brief, &OrderRecord) -> bool,
        skip: usize,
        page_size: usize,
    ) -> Page {
        let g = self.read();
        let empty = BTreeMap::new();
        let source = match asset {
            Some(a) => g.per_asset.get(&(kind, a)).unwrap_or(&empty),
            None => &g.sorted[slot(kind)],
        };
        let admitted = |e: &&Entry| filter(&e.brief, &e.record);
        let Some(a) = asset else {
            let mut count = 0;
            let mut orders = Vec::with_capacity(page_size.min(source.len()));
            for e in source.values().filter(admitted) {
                if count >= skip && orders.len() < page_size {
                    orders.push(e.record.clone());
                }
                count += 1;
            }
            return Page { orders, count };
        };
        // The page from the sorted map, stopping once full; the count from the contiguous run.
        let orders = source.values().filter(admitted).skip(skip).take(page_size).map(|e| e.record.clone()).collect();
        let count = g.dense.get(&(kind, a)).map_or(0, |d| d.iter().filter(admitted).count());
        Page { orders, count }
    }
}

fn insert(g: &mut Inner, record: Arc<OrderRecord>) {
    let k = key(&record);
    let kind = record.kind();
    if let Some(old) = g.by_hash.insert(record.hash, record.clone()) {
        // Replacing: counts are unchanged, the keys are the same.
        debug_assert_eq!(key(&old), k);
    } else {
        *g.per_signer.entry((kind, record.signer)).or_default() += 1;
        if let Some(c) = record.category() {
            *g.per_category.entry((kind, c)).or_default() += 1;
        }
    }
    if let Some(d) = requested_dataset(&record) {
        g.requests_by_dataset.entry(d).or_default().insert(k, record.clone());
    }
    let brief = record.brief();
    let asset = record.asset();
    match g.dense_at.get(&record.hash) {
        Some(&at) => {
            if let Some(e) = g.dense.get_mut(&(kind, asset)).and_then(|d| d.get_mut(at)) {
                *e = Entry { brief, record: record.clone() };
            }
        }
        None => {
            let d = g.dense.entry((kind, asset)).or_default();
            d.push(Entry { brief, record: record.clone() });
            let at = d.len() - 1;
            g.dense_at.insert(record.hash, at);
        }
    }
    g.sorted[slot(kind)].insert(k, Entry { brief, record: record.clone() });
    g.per_asset.entry((kind, asset)).or_default().insert(k, Entry { brief, record });
}

fn remove(g: &mut Inner, hash: &OrderHash) -> Option<Arc<OrderRecord>> {
    let r = g.by_hash.remove(hash)?;
    let k = key(&r);
    let kind = r.kind();
    g.sorted[slot(kind)].remove(&k);
    if let Some(m) = g.per_asset.get_mut(&(kind, r.asset())) {
        m.remove(&k);
        if m.is_empty() {
            g.per_asset.remove(&(kind, r.asset()));
        }
    }
    if let Some(at) = g.dense_at.remove(hash)
        && let Some(d) = g.dense.get_mut(&(kind, r.asset()))
        && at < d.len()
    {
        d.swap_remove(at);
        match d.get(at) {
            Some(moved) => {
                let moved = moved.record.hash;
                g.dense_at.insert(moved, at);
            }
            None if d.is_empty() => {
                g.dense.remove(&(kind, r.asset()));
            }
            None => {}
        }
    }
    decrement(&mut g.per_signer, (kind, r.signer));
    if let Some(c) = r.category() {
        decrement(&mut g.per_category, (kind, c));
    }
    if let Some(d) = requested_dataset(&r)
        && let Some(m) = g.requests_by_dataset.get_mut(&d)
    {
        m.remove(&k);
        if m.is_empty() {
            g.requests_by_dataset.remove(&d);
        }
    }
    Some(r)
}

fn decrement<K: std::hash::Hash + Eq>(m: &mut HashMap<K, usize>, k: K) {
    if let Some(c) = m.get_mut(&k) {
        *c -= 1;
        if *c == 0 {
            m.remove(&k);
        }
    }
}

fn requested_dataset(r: &OrderRecord) -> Option<Address> {
    match &r.order {
        crate::order::AnyOrder::Request(o) if o.dataset != Address::ZERO => Some(o.dataset),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::record::raw_json;
    use crate::order::{AnyOrder, AppOrder, Domain};
    use alloy::primitives::{B256, U256};
    use proptest::prelude::*;

    /// Order `i`: one of two apps, one of three prices, public or restricted to a requester.
    fn record(i: u8, remaining: u64) -> Arc<OrderRecord> {
        let order = AnyOrder::App(AppOrder {
            app: Address::repeat_byte(1 + i % 2),
            appprice: crate::money::Nrlc(U256::from(i % 3)),
            volume: U256::from(9),
            tag: B256::ZERO,
            datasetrestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: if i.is_multiple_of(5) { Address::repeat_byte(7) } else { Address::ZERO },
            salt: B256::repeat_byte(i),
            sign: None,
        });
        let hash = order.order_hash(&Domain::new(U256::from(1), Address::ZERO));
        let view = crate::order::convert::engine_order(&order, hash, U256::from(remaining)).expect("small values");
        Arc::new(OrderRecord {
            seq: u64::from(i),
            hash,
            chain_id: 1,
            json: raw_json(&order),
            order,
            signer: Address::repeat_byte(2),
            remaining,
            status: OrderStatus::Open,
            published_ms: 1_700_000_000_000 + i64::from(i % 4),
            view,
            shown: Default::default(),
        })
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Remove(u8),
        Remaining(u8, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..24).prop_map(Op::Insert),
            (0u8..24).prop_map(Op::Remove),
            (0u8..24, 0u64..4).prop_map(|(i, r)| Op::Remaining(i, r)),
        ]
    }

    proptest! {
        /// A listing's page and count, which come from two structures (the sorted map and the contiguous run),
        /// are those of the open orders sorted and filtered, after any sequence of inserts, removals and
        /// volume changes.
        #[test]
        fn a_listing_is_the_open_orders_sorted_and_filtered(ops in proptest::collection::vec(op(), 0..80),
                                                            skip in 0usize..4, size in 1usize..6) {
            let book = Book::default();
            let mut open: HashMap<u8, Arc<OrderRecord>> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(i) => {
                        let r = record(i, 3);
                        book.insert(r.clone());
                        open.insert(i, r);
                    }
                    Op::Remove(i) => {
                        book.remove(&record(i, 3).hash);
                        open.remove(&i);
                    }
                    Op::Remaining(i, n) => {
                        book.set_remaining(&[(record(i, 3).hash, n)]);
                        if let Some(r) = open.get_mut(&i) {
                            if n == 0 {
                                open.remove(&i);
                            } else {
                                let mut x = OrderRecord::clone(r);
                                x.remaining = n;
                                *r = Arc::new(x);
                            }
                        }
                    }
                }
            }
            for app in [Address::repeat_byte(1), Address::repeat_byte(2)] {
                let public = |b: &Brief, _: &OrderRecord| b.roles.requester.is_zero() && b.remaining >= 2;
                let mut want: Vec<&Arc<OrderRecord>> = open
                    .values()
                    .filter(|r| r.asset() == app && r.roles().requester.is_zero() && r.remaining >= 2)
                    .collect();
                want.sort_by_key(|r| key(r));
                let page = book.query(OrderKind::App, Some(app), public, skip, size);
                prop_assert_eq!(page.count, want.len());
                let got: Vec<_> = page.orders.iter().map(|r| (r.hash, r.remaining)).collect();
                let want: Vec<_> = want.iter().skip(skip).take(size).map(|r| (r.hash, r.remaining)).collect();
                prop_assert_eq!(got, want);
            }
            let g = book.read();
            prop_assert_eq!(g.dense_at.len(), open.len());
            prop_assert_eq!(g.dense.values().map(Vec::len).sum::<usize>(), open.len());
        }
    }
}
