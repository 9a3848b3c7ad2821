//! The single-threaded engine: commands in, events out.
//!
//! See the crate documentation for the rule and the invariants. Everything here is deterministic: no hash map is
//! ever iterated to take a decision (only looked up), arrival sequence numbers and proposal ids come from counters.
//!
//! This module is the facade: the commands and events, the [`Engine`] and its queries, and the commands that add,
//! cancel and lower an order. The rest of the engine is one `impl Engine` per concern, each in its own file over
//! the same fields, so that no concern keeps a copy of state another one changes. Sibling imports go one way,
//! `orders` <- `indexes` <- `books` <- `matching` <- `proposals`:
//! - `orders`: where every known order lives (a slab per kind) with its volumes, and how a book entry is checked;
//! - `indexes`: the by-app and by-dataset indices of requests;
//! - `books`: the per-category books (counters, ask and bid groups, parked requests), the app and dataset books,
//!   the marks, parking, and the only way in and out of all of them;
//! - `matching`: which requests to scan after a command, and the scan of one request;
//! - `proposals`: a deal's reservation, and `Confirm` / `Release` / `ReleaseCapped` (a release matches again).

mod books;
mod indexes;
mod matching;
mod orders;
mod proposals;

use std::collections::BTreeMap;

use crate::book::{Ix, LevelBook};
use crate::hash::HashMap;
use crate::types::{
    Address, AppOrder, DatasetOrder, Nrlc, Order, OrderHash, OrderKind, RequestOrder, TrackRecord, WorkerpoolOrder,
};

use books::{CategoryBook, top_of};
use indexes::RequestIndex;
use orders::{BidKey, Entry, OrderRef, Slab, valid_entry, valid_parked, valid_unparked};
use proposals::Proposal;

/// Identifies a proposed deal until it is confirmed or released.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ProposalId(pub u64);

/// What the engine is asked to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Command {
    /// Add an order (its hash computed and its signature verified outside).
    Add(Order),
    /// Remove an order (cancelled on chain or by its owner). Its reserved volume stays reserved until the
    /// proposals holding it are confirmed or released; released volume does not come back to a cancelled order.
    Cancel(OrderHash),
    /// Lower the unreserved remaining volume of an order (after an on-chain consumption the engine did not
    /// propose). `remaining` must not exceed the current unreserved remaining; 0 takes the order out of the book.
    Lower { hash: OrderHash, remaining: u64 },
    /// The proposed deal was matched on chain: its reserved volume is consumed for good.
    Confirm(ProposalId),
    /// The proposed deal will not happen: its volume goes back to its orders (except cancelled ones), and matching
    /// runs again.
    Release(ProposalId),
    /// `Release`, when the chain has less of some of the deal's orders than the engine counts (someone else consumed
    /// them meanwhile): `caps` is, for the deal's app, dataset, workerpool and request orders in this order, the
    /// most volume each may hold in the engine afterwards, remaining plus reserved (what the chain has left of it;
    /// `u64::MAX` for no cap; the dataset's is ignored for a dataset-less deal). Each order keeps its arrival number
    /// (its time priority) and gets back at most what its cap leaves once its other pending proposals are counted;
    /// an order left with nothing, and nothing reserved, is `Filled`. Then matching runs as after `Release`.
    ReleaseCapped { id: ProposalId, caps: [u64; 4] },
    /// Dragon's own: the workerpool's track record is now `record` (the exchange derives it from the chain). Its
    /// known orders, and those added later, carry it, so requests with a minimum track record (rule 0x3f, not a
    /// PoCo rule) weigh it. A better record can make its resting orders acceptable to a request without any order
    /// arriving, so they are matched again as if they had just been released (invariant Q: every new combination
    /// holds one of them).
    TrackRecord { workerpool: Address, record: TrackRecord },
}

/// A deal the engine proposes: the four orders to pass to `matchOrders`, at the sellers' prices.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Deal {
    pub id: ProposalId,
    pub app: OrderHash,
    pub dataset: Option<OrderHash>,
    pub workerpool: OrderHash,
    pub request: OrderHash,
    pub volume: u64,
    pub app_price: Nrlc,
    /// 0 for a dataset-less deal.
    pub dataset_price: Nrlc,
    pub workerpool_price: Nrlc,
    pub category: u64,
}

/// What a rejected command referred to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Subject {
    Order(OrderHash),
    Proposal(ProposalId),
}

/// Why a command was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RejectReason {
    /// An order with this hash is already known (resting, or holding reserved volume).
    DuplicateOrder,
    /// The order has volume 0.
    ZeroVolume,
    /// The order's own asset (app, dataset, workerpool; the request's app) is the zero address.
    ZeroAddress,
    /// No such live order (never added, cancelled, or filled).
    UnknownOrder,
    /// `Lower` asked for more than the current unreserved remaining volume.
    NotALowering,
    /// No such pending proposal.
    UnknownProposal,
}

/// What the engine reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// The order rests in the book with this unreserved remaining volume. Emitted after an `Add` (once its own
    /// deals are proposed, if volume is left) and after a `Lower` to a non-zero value; deals and releases change
    /// remaining volumes without this event (apply the deal volumes).
    Resting { hash: OrderHash, kind: OrderKind, remaining: u64 },
    /// A deal is proposed: its volume is reserved from the four orders at once.
    DealProposed(Deal),
    /// The order's remaining volume reached 0 with nothing reserved: it is gone for good.
    Filled { hash: OrderHash },
    /// The order was cancelled.
    Cancelled { hash: OrderHash },
    /// The command was not applied.
    Rejected { subject: Subject, reason: RejectReason },
}

/// A view of one live order's volumes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OrderState {
    pub kind: OrderKind,
    /// Arrival sequence number (time priority).
    pub seq: u64,
    /// Volume available to match.
    pub remaining: u64,
    /// Volume held by pending proposals.
    pub reserved: u64,
    pub cancelled: bool,
}

/// One price level of a book side.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Level {
    pub price: Nrlc,
    /// Sum of the unreserved remaining volumes at this price.
    pub volume: u64,
    pub orders: u32,
}

/// The top of one category's book.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CategoryDepth {
    pub category: u64,
    /// Workerpool orders, best (cheapest) first.
    pub asks: Vec<Level>,
    /// Request orders by `workerpoolmaxprice`, best (highest) first.
    pub bids: Vec<Level>,
    pub ask_orders: usize,
    pub bid_orders: usize,
}

/// Engine counters (cheap, for benchmarks and metrics).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    pub commands: u64,
    pub deals: u64,
    /// Requests examined by the incremental matching (candidates whose combinations were scanned).
    pub requests_scanned: u64,
}

/// The matching engine for any number of categories. Single-threaded and deterministic: the same commands
/// always give the same events.
#[derive(Clone, Debug)]
pub struct Engine {
    apps: Slab<Entry<AppOrder>>,
    datasets: Slab<Entry<DatasetOrder>>,
    pools: Slab<Entry<WorkerpoolOrder>>,
    requests: Slab<Entry<RequestOrder>>,
    by_hash: HashMap<OrderHash, OrderRef>,
    categories: HashMap<u64, CategoryBook>,
    app_book: HashMap<Address, LevelBook<u64>>,
    dataset_book: HashMap<Address, LevelBook<u64>>,
    /// Requests by app, keyed by (category, bid priority): what a new app order may match.
    requests_by_app: HashMap<Address, RequestIndex>,
    /// Requests naming a dataset, by dataset: what a new dataset order may match.
    requests_by_dataset: HashMap<Address, RequestIndex>,
    /// Pending proposals. Ids come from a counter and most proposals are settled soon, so a B-tree keeps the
    /// busy end (the newest ids) hot in cache, where a hash map would touch a random bucket of a big table.
    proposals: BTreeMap<ProposalId, Proposal>,
    next_seq: u64,
    next_proposal: u64,
    proposal_stride: u64,
    stats: Stats,
    /// Requests to scan after an app or dataset order or a release, with their bid priority (reused buffer, so
    /// that matching allocates nothing per command once warm).
    candidates: Vec<(BidKey, Ix)>,
    /// Requests moved in or out of the bid groups when an app or dataset comes or goes (reused buffer).
    flipping: Vec<Ix>,
    /// The order being added, while it is matched and before it is booked.
    unbooked: Option<OrderRef>,
    /// The last track record given for each workerpool (absent: empty), copied into its orders.
    records: HashMap<Address, TrackRecord>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

impl Engine {
    /// An engine whose proposal ids are 1, 2, 3...
    pub fn new() -> Self {
        Self::with_proposal_ids(1, 1)
    }

    /// An engine whose proposal ids are `first`, `first + stride`, ... (the pipeline gives shard `s` of `n` the
    /// ids `s + k n`, so an id tells its shard).
    pub fn with_proposal_ids(first: u64, stride: u64) -> Self {
        Engine {
            apps: Slab::default(),
            datasets: Slab::default(),
            pools: Slab::default(),
            requests: Slab::default(),
            by_hash: HashMap::default(),
            categories: HashMap::default(),
            app_book: HashMap::default(),
            dataset_book: HashMap::default(),
            requests_by_app: HashMap::default(),
            requests_by_dataset: HashMap::default(),
            proposals: BTreeMap::new(),
            next_seq: 0,
            next_proposal: first,
            proposal_stride: stride.max(1),
            stats: Stats::default(),
            candidates: Vec::new(),
            flipping: Vec::new(),
            unbooked: None,
            records: HashMap::default(),
        }
    }

    /// An engine sized for about `orders` known orders (of all kinds together) without growing: growing a hash
    /// map or a slab of a million entries copies it whole, a pause of milliseconds on the writer thread.
    pub fn with_capacity(orders: usize) -> Self {
        let mut e = Self::new();
        e.reserve_orders(orders);
        e
    }

    /// Reserves room for `orders` more known orders (see [`Engine::with_capacity`]). Slabs are reserved per kind
    /// for the whole number, since the mix is not known.
    pub fn reserve_orders(&mut self, orders: usize) {
        self.by_hash.reserve(orders);
        self.apps.items.reserve(orders / 8);
        self.datasets.items.reserve(orders / 8);
        self.pools.items.reserve(orders / 2);
        self.requests.items.reserve(orders / 2);
    }

    /// Applies one command and returns its events.
    pub fn execute(&mut self, cmd: Command) -> Vec<Event> {
        let mut out = Vec::new();
        self.apply(cmd, &mut out);
        out
    }

    /// Applies one command, appending its events to `out` (no allocation when `out` has room).
    pub fn apply(&mut self, cmd: Command, out: &mut Vec<Event>) {
        self.stats.commands += 1;
        match cmd {
            Command::Add(order) => self.add(order, out),
            Command::Cancel(hash) => self.cancel(hash, out),
            Command::Lower { hash, remaining } => self.lower(hash, remaining, out),
            Command::Confirm(id) => self.confirm(id, out),
            Command::Release(id) => self.release(id, [u64::MAX; 4], out),
            Command::ReleaseCapped { id, caps } => self.release(id, caps, out),
            Command::TrackRecord { workerpool, record } => self.track_record(workerpool, record, out),
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of known orders: resting, or out of the books but holding reserved volume.
    pub fn known_orders(&self) -> usize {
        self.by_hash.len()
    }

    /// Number of pending proposals.
    pub fn pending_proposals(&self) -> usize {
        self.proposals.len()
    }

    /// The volumes of a known order (resting or holding reserved volume).
    pub fn order_state(&self, hash: &OrderHash) -> Option<OrderState> {
        let r = *self.by_hash.get(hash)?;
        let v = self.vol(r);
        Some(OrderState {
            kind: r.kind(),
            seq: v.seq,
            remaining: v.remaining,
            reserved: v.reserved,
            cancelled: v.cancelled,
        })
    }

    /// Categories that have a book, ascending.
    pub fn categories(&self) -> Vec<u64> {
        let mut c: Vec<u64> = self.categories.keys().copied().collect();
        c.sort_unstable();
        c
    }

    /// Cheapest workerpool order price of a category.
    pub fn best_ask(&self, category: u64) -> Option<Nrlc> {
        let book = self.categories.get(&category)?;
        book.asks.first_price().map(Nrlc)
    }

    /// Highest `workerpoolmaxprice` among the category's request orders.
    pub fn best_bid(&self, category: u64) -> Option<Nrlc> {
        let book = self.categories.get(&category)?;
        book.bids.first_price().map(|p| Nrlc(p.0))
    }

    /// The first `max_levels` price levels of each side of a category's book, from the per-price counters (no
    /// order is read, so a reader's snapshot costs the same on a deep book).
    pub fn depth(&self, category: u64, max_levels: usize) -> CategoryDepth {
        let Some(book) = self.categories.get(&category) else {
            return CategoryDepth { category, ..CategoryDepth::default() };
        };
        let level = |price: u64, l: crate::book::LevelCount| Level {
            price: Nrlc(price),
            volume: u64::try_from(l.volume).unwrap_or(u64::MAX),
            orders: l.orders,
        };
        let asks = book.asks.iter().take(max_levels).map(|(p, l)| level(p, l)).collect();
        let bids = book.bids.iter().take(max_levels).map(|(p, l)| level(p.0, l)).collect();
        CategoryDepth { category, asks, bids, ask_orders: book.asks.len(), bid_orders: book.bids.len() }
    }

    /// The first `n` workerpool orders of a category in ask priority, with their remaining volume.
    pub fn top_asks(&self, category: u64, n: usize) -> Vec<(OrderHash, Nrlc, u64)> {
        let Some(b) = self.categories.get(&category) else {
            return Vec::new();
        };
        let pools = &self.pools;
        let groups = b.ask_keys.iter().filter_map(|k| b.ask_groups.get(k)).map(|g| (g, false));
        top_of(&b.asks, groups, n, |s, i, _| valid_entry(pools, s, i))
            .into_iter()
            .map(|i| {
                let e = pools.get(i);
                (e.order.hash, e.order.price, e.v.remaining)
            })
            .collect()
    }

    /// The first `n` request orders of a category in bid priority, with their remaining volume.
    pub fn top_bids(&self, category: u64, n: usize) -> Vec<(OrderHash, Nrlc, u64)> {
        let Some(b) = self.categories.get(&category) else {
            return Vec::new();
        };
        let requests = &self.requests;
        // A request moved between its group and the parked book may leave a tombstone in the other one.
        let groups =
            b.bid_keys.iter().filter_map(|k| b.bid_groups.get(k)).map(|g| (g, false)).chain([(&b.parked, true)]);
        top_of(
            &b.bids,
            groups,
            n,
            |s, i, parked| {
                if parked { valid_parked(requests, s, i) } else { valid_unparked(requests, s, i) }
            },
        )
        .into_iter()
        .map(|i| {
            let e = requests.get(i);
            (e.order.hash, e.order.workerpool_max_price, e.v.remaining)
        })
        .collect()
    }

    // ----- commands -----

    fn add(&mut self, mut order: Order, out: &mut Vec<Event>) {
        let hash = order.hash();
        if let Order::Workerpool(w) = &mut order {
            w.record = self.records.get(&w.workerpool).copied().unwrap_or_default();
        }
        let reject = |reason| Event::Rejected { subject: Subject::Order(hash), reason };
        // One probe of the order map (a cache miss on a big book) serves the duplicate check and the insertion.
        let std::collections::hash_map::Entry::Vacant(slot) = self.by_hash.entry(hash) else {
            out.push(reject(RejectReason::DuplicateOrder));
            return;
        };
        if order.volume() == 0 {
            out.push(reject(RejectReason::ZeroVolume));
            return;
        }
        let own_zero = match &order {
            Order::App(o) => o.app.is_zero(),
            Order::Dataset(o) => o.dataset.is_zero(),
            Order::Workerpool(o) => o.workerpool.is_zero(),
            Order::Request(o) => o.app.is_zero(),
        };
        if own_zero {
            out.push(reject(RejectReason::ZeroAddress));
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let r = match order {
            Order::App(o) => OrderRef::App(self.apps.insert(Entry::new(o, seq, o.volume))),
            Order::Dataset(o) => OrderRef::Dataset(self.datasets.insert(Entry::new(o, seq, o.volume))),
            Order::Workerpool(o) => OrderRef::Workerpool(self.pools.insert(Entry::new(o, seq, o.volume))),
            Order::Request(o) => OrderRef::Request(self.requests.insert(Entry::new(o, seq, o.volume))),
        };
        slot.insert(r);
        // Match first, book after: the new order takes part in every scan as the fixed order (or as the request
        // being scanned), never through the books, so an order filled at once never touches them.
        self.unbooked = Some(r);
        self.match_new(r, out);
        self.unbooked = None;
        let remaining = self.vol(r).remaining;
        if remaining > 0 {
            self.insert_in_books(r);
            out.push(Event::Resting { hash, kind: order.kind(), remaining });
        }
    }

    /// Every known order of the workerpool takes the new record (those out of the books too: a release brings
    /// them back with it); the resting ones whose record changed are matched again. A scan of the workerpool
    /// slab: records change once per chain sync step at most, per workerpool whose figures moved.
    fn track_record(&mut self, workerpool: Address, record: TrackRecord, out: &mut Vec<Event>) {
        if record == TrackRecord::default() {
            self.records.remove(&workerpool);
        } else {
            self.records.insert(workerpool, record);
        }
        let mut back = Vec::new();
        for (i, slot) in self.pools.items.iter_mut().enumerate() {
            if let Some(e) = slot
                && e.order.workerpool == workerpool
                && e.order.record != record
            {
                e.order.record = record;
                if e.v.live() {
                    back.push(OrderRef::Workerpool(i as Ix));
                }
            }
        }
        self.match_back(&back, out);
    }

    fn cancel(&mut self, hash: OrderHash, out: &mut Vec<Event>) {
        let Some(r) = self.live_ref(&hash) else {
            out.push(Event::Rejected { subject: Subject::Order(hash), reason: RejectReason::UnknownOrder });
            return;
        };
        let v = self.vol_mut(r);
        let was = v.remaining;
        v.cancelled = true;
        v.remaining = 0;
        // After the state change: books remove lazily and check validity (see `book`).
        if was > 0 {
            self.remove_from_books(r, was);
        }
        out.push(Event::Cancelled { hash });
        self.forget_if_dead(r, hash);
    }

    fn lower(&mut self, hash: OrderHash, remaining: u64, out: &mut Vec<Event>) {
        let Some(r) = self.live_ref(&hash) else {
            out.push(Event::Rejected { subject: Subject::Order(hash), reason: RejectReason::UnknownOrder });
            return;
        };
        let current = self.vol(r).remaining;
        if remaining > current {
            out.push(Event::Rejected { subject: Subject::Order(hash), reason: RejectReason::NotALowering });
            return;
        }
        if remaining == current {
            return;
        }
        // Lowering creates no combination, so no matching is needed. Only the remaining volume changes; the book
        // keys (price, arrival) do not, so the order keeps its place.
        self.vol_mut(r).remaining = remaining;
        if remaining == 0 {
            self.remove_from_books(r, current);
        } else {
            self.level_change(r, current, remaining);
        }
        if remaining > 0 {
            out.push(Event::Resting { hash, kind: r.kind(), remaining });
        } else if self.forget_if_dead(r, hash) {
            out.push(Event::Filled { hash });
        }
    }
}
