//! The single-threaded engine: books, commands, events and the incremental matching.
//!
//! See the crate documentation for the rule and the invariants. Everything here is deterministic: no hash map is
//! ever iterated to take a decision (only looked up), arrival sequence numbers and proposal ids come from counters.

use std::cmp::{Reverse, min};
use std::collections::{BTreeMap, BTreeSet, HashMap as StdHashMap};
use std::hash::Hash;

/// Hash maps of the engine: looked up, never iterated (see `hash`).
type HashMap<K, V> = StdHashMap<K, V, KeyedState>;

use crate::book::{Ix, LevelBook, Levels, Marks};
use crate::compat::{app_may_serve, compatible, pool_may_serve};
use crate::hash::KeyedState;
use crate::types::{
    Address, AppOrder, DatasetOrder, Nrlc, Order, OrderHash, OrderKind, RequestOrder, Tag, WorkerpoolOrder,
};

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

/// Ask priority: price ascending, then arrival.
type AskKey = (u64, u64);
/// Bid priority: workerpoolmaxprice descending, then arrival.
type BidKey = (Reverse<u64>, u64);

/// What the engine tracks of every order besides the order itself: kept apart so that one dispatch on the kind
/// (`Engine::vol`, `Engine::vol_mut`) serves every volume change.
#[derive(Clone, Copy, Debug)]
struct Volumes {
    seq: u64,
    remaining: u64,
    reserved: u64,
    cancelled: bool,
    /// Requests only: live but kept out of the bid groups because their app (or dataset) has no order in the
    /// books, so that workerpool orders never walk them (see `Engine::set_available`).
    parked: bool,
}

impl Volumes {
    /// In the book (matchable).
    fn live(&self) -> bool {
        self.remaining > 0 && !self.cancelled
    }
    /// Can be forgotten: nothing to match and nothing reserved.
    fn dead(&self) -> bool {
        (self.remaining == 0 || self.cancelled) && self.reserved == 0
    }
}

#[derive(Clone, Debug)]
struct Entry<O> {
    order: O,
    v: Volumes,
}

impl<O> Entry<O> {
    fn new(order: O, seq: u64, volume: u64) -> Self {
        Entry { order, v: Volumes { seq, remaining: volume, reserved: 0, cancelled: false, parked: false } }
    }
}

/// A vector with reusable slots, so that books hold 4-byte indices instead of 32-byte hashes.
#[derive(Clone, Debug)]
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<Ix>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { items: Vec::new(), free: Vec::new() }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, t: T) -> Ix {
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(t);
            i
        } else {
            self.items.push(Some(t));
            Ix::try_from(self.items.len() - 1).expect("fewer than 2^32 live orders of one kind")
        }
    }
    fn remove(&mut self, i: Ix) {
        self.items[i as usize].take().expect("slab index of a live entry");
        self.free.push(i);
    }
    fn get(&self, i: Ix) -> &T {
        self.items[i as usize].as_ref().expect("slab index of a live entry")
    }
    fn get_mut(&mut self, i: Ix) -> &mut T {
        self.items[i as usize].as_mut().expect("slab index of a live entry")
    }
}

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

fn low4(a: &Address) -> u32 {
    u32::from_be_bytes(a.0[16..].try_into().expect("4-byte slice"))
}

/// Marks of a workerpool order in its ask group: (folded tag, low bits of its workerpool). The group key already
/// settles the restrictions and trust; these settle the request's tag (06) and workerpool restriction (12).
fn ask_marks(w: &WorkerpoolOrder) -> Marks {
    [fold(&w.tag), low64(&w.workerpool)]
}

/// Whether a workerpool order with these marks may serve the request (necessary conditions only; a zero low part
/// of a non-zero address only lets more through, which the full check then sorts out).
fn ask_marks_admit(m: Marks, r: &RequestOrder) -> bool {
    fold(&r.tag) & !m[0] == 0 && (r.workerpool.is_zero() || low64(&r.workerpool) == m[1])
}

/// Marks of a request in its bid group: (low bits of its requester, low bits of its app and dataset). The group
/// key settles tag, workerpool restriction and trust; these settle the workerpool order's restrictions (19-1b).
fn bid_marks(r: &RequestOrder) -> Marks {
    [low64(&r.requester), (low32(&r.app) << 32) | low32(&r.dataset)]
}

fn bid_marks_admit(m: Marks, w: &WorkerpoolOrder) -> bool {
    (w.requester_restrict.is_zero() || low64(&w.requester_restrict) == m[0])
        && (w.app_restrict.is_zero() || low32(&w.app_restrict) == m[1] >> 32)
        && (w.dataset_restrict.is_zero() || low32(&w.dataset_restrict) == m[1] & 0xffff_ffff)
}

/// The mark of a request in the by-app and by-dataset indices: the low bits of its requester (small, so that the
/// indices' tree nodes stay few cache lines).
fn index_mark(r: &RequestOrder) -> u32 {
    low4(&r.requester)
}

/// Whether a book entry (arrival `seq`, slot `i`) still names a matchable order (see `book`).
fn valid_entry<O>(slab: &Slab<Entry<O>>, seq: u64, i: Ix) -> bool {
    slab.items.get(i as usize).and_then(Option::as_ref).is_some_and(|e| e.v.seq == seq && e.v.live())
}

/// The same for the parked book of a category.
fn valid_parked(slab: &Slab<Entry<RequestOrder>>, seq: u64, i: Ix) -> bool {
    slab.items.get(i as usize).and_then(Option::as_ref).is_some_and(|e| e.v.seq == seq && e.v.live() && e.v.parked)
}

/// The same for a bid group, which holds only requests that are not parked.
fn valid_unparked(slab: &Slab<Entry<RequestOrder>>, seq: u64, i: Ix) -> bool {
    slab.items.get(i as usize).and_then(Option::as_ref).is_some_and(|e| e.v.seq == seq && e.v.live() && !e.v.parked)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OrderRef {
    App(Ix),
    Dataset(Ix),
    Workerpool(Ix),
    Request(Ix),
}

impl OrderRef {
    fn kind(self) -> OrderKind {
        match self {
            OrderRef::App(_) => OrderKind::App,
            OrderRef::Dataset(_) => OrderKind::Dataset,
            OrderRef::Workerpool(_) => OrderKind::Workerpool,
            OrderRef::Request(_) => OrderKind::Request,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Proposal {
    app: Ix,
    dataset: Option<Ix>,
    workerpool: Ix,
    request: Ix,
    volume: u64,
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
type BidGroup = (Tag, Address, u64);

#[derive(Clone, Debug, Default)]
struct CategoryBook {
    /// Counters per price of every live workerpool order: best ask and depth.
    asks: Levels<u64>,
    /// Counters per price of every live request, parked or not: best bid and depth.
    bids: Levels<Reverse<u64>>,
    /// The asks, by what may block them: what requests scan, and (merged) the listings. Each live workerpool order
    /// is in exactly one group.
    ask_groups: Groups<AskKey3, u64>,
    /// The keys of `ask_groups`, ordered: what a listing merges (rarely, so the hash map is never iterated).
    ask_keys: BTreeSet<(AskKey3, u64)>,
    /// Number of ask groups with a non-zero app, dataset and requester restriction: a request skips the lookups
    /// no group can answer (on most books, all but one).
    ask_restricted: [u32; 3],
    /// Number of ask groups of each trust level.
    ask_trusts: BTreeMap<u64, u32>,
    /// The requests that are not parked, by what may block them: what workerpool orders scan. Each live request
    /// is in exactly one group, or in `parked`.
    bid_groups: Groups<BidKey2, Reverse<u64>>,
    /// The keys of `bid_groups`, ordered.
    bid_keys: BTreeSet<(BidKey2, u64)>,
    /// The parked requests (their app or dataset has no order): listed, never scanned by workerpool orders.
    parked: LevelBook<Reverse<u64>>,
    /// Number of bid groups of each tag, to enumerate the tags a workerpool order covers (ordered, so iterable).
    bid_tags: BTreeMap<Tag, u32>,
    /// Number of bid groups with a workerpool restriction.
    bid_restricted: u32,
    /// Number of bid groups of each trust level.
    bid_trusts: BTreeMap<u64, u32>,
}

/// Requests of one app (or dataset), per category, in bid priority: one flat tree keyed by (price, arrival) per
/// category, holding exactly the live requests. Most prices hold one or two requests of a given app, so a tree of
/// price levels (each a queue) would cost an allocation and one more cold node per add on a big book.
type RequestIndex = BTreeMap<u64, IndexBook>;

/// One category of a request index, with its best entry kept beside the tree: a new app order looks at it in every
/// category its app has requests in, and usually stops there (no request of the app reaches the best ask).
#[derive(Clone, Debug, Default)]
struct IndexBook {
    first: Option<BidKey>,
    tree: BTreeMap<BidKey, (Ix, u32)>,
}

fn index_insert(map: &mut HashMap<Address, RequestIndex>, addr: Address, cat: u64, key: BidKey, i: Ix, m: u32) {
    let book = map.entry(addr).or_default().entry(cat).or_default();
    if book.first.is_none_or(|f| key < f) {
        book.first = Some(key);
    }
    book.tree.insert(key, (i, m));
}

fn index_remove(map: &mut HashMap<Address, RequestIndex>, addr: &Address, cat: u64, key: &BidKey) {
    if let Some(index) = map.get_mut(addr) {
        if let Some(book) = index.get_mut(&cat) {
            book.tree.remove(key);
            if book.first == Some(*key) {
                book.first = book.tree.keys().next().copied();
            }
            if book.tree.is_empty() {
                index.remove(&cat);
            }
        }
        if index.is_empty() {
            map.remove(addr);
        }
    }
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

/// Restricts a request's scan to combinations that contain one given order (all new combinations do).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fixed {
    None,
    Workerpool(Ix),
    App(Ix),
    Dataset(Ix),
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
    candidates: Vec<(BidKey, Ix)>,
    /// Requests moved in or out of the bid groups when an app or dataset comes or goes (reused buffer).
    flipping: Vec<Ix>,
    /// The order being added, while it is matched and before it is booked.
    unbooked: Option<OrderRef>,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
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
fn top_of<'a, P: Ord + Copy + 'a>(
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

    fn add(&mut self, order: Order, out: &mut Vec<Event>) {
        let hash = order.hash();
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

    fn confirm(&mut self, id: ProposalId, out: &mut Vec<Event>) {
        let Some(p) = self.proposals.remove(&id) else {
            out.push(Event::Rejected { subject: Subject::Proposal(id), reason: RejectReason::UnknownProposal });
            return;
        };
        for r in Self::proposal_refs(&p) {
            let v = self.vol_mut(r);
            v.reserved -= p.volume;
            let (remaining, cancelled) = (v.remaining, v.cancelled);
            let hash = self.hash_of(r);
            if self.forget_if_dead(r, hash) && remaining == 0 && !cancelled {
                out.push(Event::Filled { hash });
            }
        }
    }

    fn release(&mut self, id: ProposalId, caps: [u64; 4], out: &mut Vec<Event>) {
        let Some(p) = self.proposals.remove(&id) else {
            out.push(Event::Rejected { subject: Subject::Proposal(id), reason: RejectReason::UnknownProposal });
            return;
        };
        let mut back: [Option<OrderRef>; 4] = [None; 4];
        let members = [
            Some((OrderRef::App(p.app), caps[0])),
            p.dataset.map(|d| (OrderRef::Dataset(d), caps[1])),
            Some((OrderRef::Workerpool(p.workerpool), caps[2])),
            Some((OrderRef::Request(p.request), caps[3])),
        ];
        for (slot, (r, cap)) in back.iter_mut().zip(members.into_iter().flatten()) {
            let v = self.vol_mut(r);
            let (before, cancelled) = (v.remaining, v.cancelled);
            v.reserved -= p.volume;
            if cancelled {
                let hash = self.hash_of(r);
                self.forget_if_dead(r, hash);
                continue;
            }
            let now = (before + p.volume).min(cap.saturating_sub(v.reserved));
            v.remaining = now;
            match (before, now) {
                (_, 0) => {
                    if before > 0 {
                        self.remove_from_books(r, before);
                    }
                    let hash = self.hash_of(r);
                    if self.forget_if_dead(r, hash) {
                        out.push(Event::Filled { hash });
                    }
                }
                (0, _) => {
                    // The order re-enters the book with its original arrival number: it keeps its time priority.
                    self.insert_in_books(r);
                    *slot = Some(r);
                }
                _ if now != before => self.level_change(r, before, now),
                _ => {}
            }
        }
        let back: Vec<OrderRef> = back.into_iter().flatten().collect();
        match back.as_slice() {
            [] => {}
            [one] => self.match_new(*one, out),
            several => {
                // New combinations contain at least one re-entered order: scan, in bid priority, every request
                // that may form one, without restricting the scan to a given order.
                let mut cands = std::mem::take(&mut self.candidates);
                cands.clear();
                for &r in several {
                    self.collect_candidates(r, &mut cands);
                }
                cands.sort_unstable_by_key(|c| c.0);
                cands.dedup_by_key(|c| c.1);
                for &(_, ri) in &cands {
                    self.match_request(ri, Fixed::None, out);
                }
                self.candidates = cands;
            }
        }
    }

    // ----- incremental matching -----

    /// Runs the matching rule after `r` became matchable, knowing that no combination existed before: every new
    /// combination contains `r`, so only the requests that may combine with `r` are scanned (in bid priority, as
    /// the full rule would), and each scan is restricted to combinations containing `r`.
    fn match_new(&mut self, r: OrderRef, out: &mut Vec<Event>) {
        let fixed = match r {
            OrderRef::Request(ri) => {
                self.match_request(ri, Fixed::None, out);
                return;
            }
            OrderRef::Workerpool(wi) => {
                self.match_new_pool(wi, out);
                return;
            }
            OrderRef::App(i) => Fixed::App(i),
            OrderRef::Dataset(i) => Fixed::Dataset(i),
        };
        let mut cands = std::mem::take(&mut self.candidates);
        cands.clear();
        self.collect_candidates(r, &mut cands);
        // Candidates come from several categories: restore global bid priority (arrival numbers are unique, so
        // the order is total).
        cands.sort_unstable_by_key(|c| c.0);
        for &(_, ri) in &cands {
            if self.vol(r).remaining == 0 {
                break;
            }
            self.match_request(ri, fixed, out);
        }
        self.candidates = cands;
    }

    /// A new workerpool order scans the requests of the bid groups that admit it, merged into bid priority one
    /// request at a time (a cursor per group), so that it stops as soon as it is used up and never walks a
    /// request kept from it by tag, workerpool restriction or trust, nor a parked one.
    fn match_new_pool(&mut self, wi: Ix, out: &mut Vec<Event>) {
        let w = self.pools.get(wi).order;
        // Most new workerpool orders cross no bid at all: one look at the best bid settles it.
        let Some(book) = self.categories.get(&w.category) else {
            return;
        };
        if book.bids.first_price().is_none_or(|best| best > Reverse(w.price.0)) {
            return;
        }
        let groups = self.bid_groups_admitting(&w);
        let mut heads: Vec<Option<(BidKey, Ix)>> =
            groups.iter().map(|g| self.bid_group_head(&w, g, (Reverse(u64::MAX), 0))).collect();
        while self.pools.get(wi).v.live() {
            let Some((g, &Some((key, ri)))) =
                heads.iter().enumerate().filter(|(_, h)| h.is_some()).min_by_key(|(_, h)| h.map(|h| h.0))
            else {
                break;
            };
            self.match_request(ri, Fixed::Workerpool(wi), out);
            // The scan may have changed other groups only by parking requests, which their heads then fail to
            // match (their app has no order): re-reading this group from past `ri` is enough.
            heads[g] = self.bid_group_head(&w, &groups[g], (key.0, key.1 + 1));
        }
    }

    /// The bid groups of `w`'s category whose tag `w`'s covers, whose workerpool restriction admits `w`, and whose
    /// trust `w` reaches. Tags are enumerated from the side with fewer: the subsets of `w`'s tag bits, or the
    /// tags present in the category.
    fn bid_groups_admitting(&self, w: &WorkerpoolOrder) -> Vec<BidGroup> {
        let mut groups = Vec::new();
        let Some(book) = self.categories.get(&w.category) else {
            return groups;
        };
        let mut tags: Vec<Tag> = Vec::with_capacity(4);
        let bits = w.tag.0.iter().map(|b| b.count_ones()).sum::<u32>();
        if bits >= 20 || book.bid_tags.len() <= 1 << bits {
            tags.extend(book.bid_tags.keys().filter(|t| t.is_subset_of(&w.tag)));
        } else {
            let positions: Vec<(usize, u8)> = (0..32)
                .flat_map(|byte| (0..8).map(move |b| (byte, 1u8 << b)))
                .filter(|&(byte, bit)| w.tag.0[byte] & bit != 0)
                .collect();
            for mask in 0u32..1 << bits {
                let mut t = Tag::ZERO;
                for (k, &(byte, bit)) in positions.iter().enumerate() {
                    if mask & (1 << k) != 0 {
                        t.0[byte] |= bit;
                    }
                }
                if book.bid_tags.contains_key(&t) {
                    tags.push(t);
                }
            }
        }
        let pools: &[Address] = if book.bid_restricted > 0 { &[Address::ZERO, w.workerpool] } else { &[Address::ZERO] };
        for t in tags {
            for &wp in pools {
                for &trust in book.bid_trusts.range(..=w.trust).map(|(t, _)| t) {
                    if book.bid_groups.contains_key(&((t, wp), trust)) {
                        groups.push((t, wp, trust));
                    }
                }
            }
        }
        groups
    }

    /// The first request of a bid group, from `from` on, that may pay `w` and pass its restrictions' marks.
    fn bid_group_head(&self, w: &WorkerpoolOrder, group: &BidGroup, from: BidKey) -> Option<(BidKey, Ix)> {
        let requests = &self.requests;
        self.categories
            .get(&w.category)?
            .bid_groups
            .get(&((group.0, group.1), group.2))?
            .between(from, Reverse(w.price.0), |s, i, m| bid_marks_admit(m, w) && valid_unparked(requests, s, i))
            .next()
            .map(|(p, s, i)| ((p, s), i))
    }

    /// Appends the requests that may form a combination with `r` (a superset; each is checked when scanned).
    fn collect_candidates(&self, r: OrderRef, cands: &mut Vec<(BidKey, Ix)>) {
        match r {
            OrderRef::Request(ri) => {
                let e = self.requests.get(ri);
                cands.push(((Reverse(e.order.workerpool_max_price.0), e.v.seq), ri));
            }
            OrderRef::Workerpool(wi) => {
                let w = &self.pools.get(wi).order;
                for g in self.bid_groups_admitting(w) {
                    let mut from = (Reverse(u64::MAX), 0);
                    while let Some((key, ri)) = self.bid_group_head(w, &g, from) {
                        cands.push((key, ri));
                        from = (key.0, key.1 + 1);
                    }
                }
            }
            OrderRef::App(ai) => {
                let a = &self.apps.get(ai).order;
                if let Some(index) = self.requests_by_app.get(&a.app) {
                    self.collect_crossing(index, a.requester_restrict, cands);
                }
            }
            OrderRef::Dataset(di) => {
                let d = &self.datasets.get(di).order;
                if let Some(index) = self.requests_by_dataset.get(&d.dataset) {
                    self.collect_crossing(index, d.requester_restrict, cands);
                }
            }
        }
    }

    /// From an index of requests keyed by (category, bid priority), the requests whose workerpoolmaxprice reaches
    /// their category's best ask (any other cannot pay any workerpool order) and whose requester the new order's
    /// requester restriction admits.
    fn collect_crossing(&self, index: &RequestIndex, requester_restrict: Address, cands: &mut Vec<(BidKey, Ix)>) {
        let admits = |m: u32| requester_restrict.is_zero() || low4(&requester_restrict) == m;
        for (&cat, book) in index {
            let Some(best_ask) = self.categories.get(&cat).and_then(|b| b.asks.first_price()) else {
                continue;
            };
            // Usually no request of this app reaches the best ask: one look at the best bid settles it.
            if book.first.is_none_or(|best_bid| best_bid.0 > Reverse(best_ask)) {
                continue;
            }
            // The index holds exactly the live requests: the range is those that reach the best ask.
            cands.extend(
                book.tree
                    .range(..=(Reverse(best_ask), u64::MAX))
                    .filter(|(_, (_, m))| admits(*m))
                    .map(|(&key, &(i, _))| (key, i)),
            );
        }
    }

    /// The matching rule for one request: repeatedly take the first compatible combination in scan order and
    /// propose a deal of the smallest remaining volume, until the request is exhausted or none remains.
    fn match_request(&mut self, ri: Ix, fixed: Fixed, out: &mut Vec<Event>) {
        self.stats.requests_scanned += 1;
        // Combinations before the one just found were incompatible, and compatibility does not depend on volume:
        // the next scan resumes at the same workerpool order.
        let mut from: AskKey = (0, 0);
        loop {
            if !self.requests.get(ri).v.live() {
                return;
            }
            let Some((w, a, d, key)) = self.find_combination(ri, fixed, from) else {
                return;
            };
            from = key;
            self.propose(ri, w, a, d, out);
        }
    }

    /// The first compatible (workerpool, app, dataset) for request `ri` in scan order: workerpool orders of its
    /// category in ask priority (from `from` on), then its app's orders, then its dataset's orders, each in price
    /// then arrival order. Price ranges stop at the request's maximum prices (rules 03-05).
    fn find_combination<'a>(&'a self, ri: Ix, fixed: Fixed, from: AskKey) -> Option<(Ix, Ix, Option<Ix>, AskKey)> {
        let fixed_live = match fixed {
            Fixed::None => true,
            Fixed::Workerpool(i) => self.pools.get(i).v.live(),
            Fixed::App(i) => self.apps.get(i).v.live(),
            Fixed::Dataset(i) => self.datasets.get(i).v.live(),
        };
        if !fixed_live {
            return None;
        }
        let req = &self.requests.get(ri).order;

        // App and dataset first: a request whose app or dataset has no order costs two lookups, whatever the asks.
        let app_book = self.app_book.get(&req.app);
        if app_book.is_none() && !matches!(fixed, Fixed::App(_)) {
            return None;
        }
        let with_dataset = !req.dataset.is_zero();
        let dataset_book = if with_dataset { self.dataset_book.get(&req.dataset) } else { None };
        if with_dataset && dataset_book.is_none() && !matches!(fixed, Fixed::Dataset(_)) {
            return None;
        }

        let pool_slab = &self.pools;
        let pools_range = match fixed {
            Fixed::Workerpool(_) => None,
            _ => {
                let book = self.categories.get(&req.category)?;
                if book.asks.first_price().is_none_or(|best| best > req.workerpool_max_price.0) {
                    return None;
                }
                // Only the groups whose restrictions admit the request and whose trust reaches its own; merged
                // into ask priority.
                let [apps_r, datasets_r, requesters_r] = book.ask_restricted;
                let apps: &[Address] = if apps_r > 0 { &[Address::ZERO, req.app] } else { &[Address::ZERO] };
                let datasets: &[Address] =
                    if with_dataset && datasets_r > 0 { &[Address::ZERO, req.dataset] } else { &[Address::ZERO] };
                let requesters: &[Address] = if requesters_r > 0 && !req.requester.is_zero() {
                    &[Address::ZERO, req.requester]
                } else {
                    &[Address::ZERO]
                };
                // Each group starts as the lower bound its first price gives; its entries (a deque and the orders,
                // cold on a big book) are read only once that bound is the smallest: a group whose cheapest ask is
                // dearer than the one found costs one tree lookup.
                let admit = move |s, i, m| ask_marks_admit(m, req) && valid_entry(pool_slab, s, i);
                let start = move |g: &'a LevelBook<u64>| g.between(from, req.workerpool_max_price.0, admit).peekable();
                /// `None`, typed as what `f` would return (the iterator type has no name).
                fn not_started<T>(_f: impl FnOnce() -> T) -> Option<T> {
                    None
                }
                let mut groups = Vec::with_capacity(2);
                for &trust in book.ask_trusts.range(req.trust..).map(|(t, _)| t) {
                    for &app in apps {
                        for &dataset in datasets {
                            for &requester in requesters {
                                if let Some(g) = book.ask_groups.get(&((app, dataset, requester), trust))
                                    && let Some(first) = g.first_price()
                                {
                                    groups.push((Some(from.max((first, 0))), g, not_started(|| start(g))));
                                }
                            }
                        }
                    }
                }
                Some(std::iter::from_fn(move || {
                    loop {
                        let (k, _) = groups
                            .iter_mut()
                            .enumerate()
                            .filter_map(|(k, (bound, _, it))| match it {
                                None => bound.map(|b| (k, b)),
                                Some(it) => it.peek().map(|&(p, s, _)| (k, (p, s))),
                            })
                            .min_by_key(|&(_, key)| key)?;
                        let (bound, g, it) = &mut groups[k];
                        match it {
                            Some(it) => return it.next(),
                            None => {
                                *it = Some(start(g));
                                *bound = None;
                            }
                        }
                    }
                }))
            }
        };
        let pool_single = match fixed {
            Fixed::Workerpool(w) => {
                let e = self.pools.get(w);
                let k = (e.order.price.0, e.v.seq);
                (e.v.live() && k >= from).then_some((k, w))
            }
            _ => None,
        };
        let pools = pools_range.into_iter().flatten().map(|(p, s, i)| ((p, s), i)).chain(pool_single);

        let app_slab = &self.apps;
        let apps = || {
            let range = match fixed {
                Fixed::App(_) => None,
                _ => app_book.map(|b| b.up_to(req.app_max_price.0, move |s, i, _| valid_entry(app_slab, s, i))),
            };
            let single = match fixed {
                Fixed::App(a) => self.apps.get(a).v.live().then_some(a),
                _ => None,
            };
            range.into_iter().flatten().map(|(_, _, i)| i).chain(single)
        };

        let dataset_slab = &self.datasets;
        let datasets = || {
            let range = match fixed {
                Fixed::Dataset(_) => None,
                _ => dataset_book
                    .map(|b| b.up_to(req.dataset_max_price.0, move |s, i, _| valid_entry(dataset_slab, s, i))),
            };
            let single = match fixed {
                Fixed::Dataset(d) => self.datasets.get(d).v.live().then_some(d),
                _ => None,
            };
            range.into_iter().flatten().map(|(_, _, i)| i).chain(single)
        };

        for (key, wi) in pools {
            let w = &self.pools.get(wi).order;
            if !pool_may_serve(w, req) {
                continue;
            }
            for ai in apps() {
                let a = &self.apps.get(ai).order;
                if !app_may_serve(a, w, req) {
                    continue;
                }
                if !with_dataset {
                    if compatible(a, None, w, req) {
                        return Some((wi, ai, None, key));
                    }
                    continue;
                }
                for di in datasets() {
                    if compatible(a, Some(&self.datasets.get(di).order), w, req) {
                        return Some((wi, ai, Some(di), key));
                    }
                }
            }
        }
        None
    }

    fn propose(&mut self, ri: Ix, wi: Ix, ai: Ix, di: Option<Ix>, out: &mut Vec<Event>) {
        let mut volume =
            min(self.requests.get(ri).v.remaining, min(self.pools.get(wi).v.remaining, self.apps.get(ai).v.remaining));
        if let Some(d) = di {
            volume = min(volume, self.datasets.get(d).v.remaining);
        }
        debug_assert!(volume > 0, "matched orders are live");
        let id = ProposalId(self.next_proposal);
        self.next_proposal += self.proposal_stride;
        let p = Proposal { app: ai, dataset: di, workerpool: wi, request: ri, volume };
        self.proposals.insert(id, p);
        for r in Self::proposal_refs(&p) {
            self.reserve(r, volume);
        }
        let (w, a, req) = (&self.pools.get(wi).order, &self.apps.get(ai).order, &self.requests.get(ri).order);
        let d = di.map(|d| &self.datasets.get(d).order);
        out.push(Event::DealProposed(Deal {
            id,
            app: a.hash,
            dataset: d.map(|d| d.hash),
            workerpool: w.hash,
            request: req.hash,
            volume,
            app_price: a.price,
            dataset_price: d.map_or(Nrlc(0), |d| d.price),
            workerpool_price: w.price,
            category: req.category,
        }));
        self.stats.deals += 1;
    }

    // ----- bookkeeping -----

    fn proposal_refs(p: &Proposal) -> impl Iterator<Item = OrderRef> {
        [
            Some(OrderRef::App(p.app)),
            p.dataset.map(OrderRef::Dataset),
            Some(OrderRef::Workerpool(p.workerpool)),
            Some(OrderRef::Request(p.request)),
        ]
        .into_iter()
        .flatten()
    }

    /// The volumes of any order: the one place that dispatches on the kind to read them.
    fn vol(&self, r: OrderRef) -> &Volumes {
        match r {
            OrderRef::App(i) => &self.apps.get(i).v,
            OrderRef::Dataset(i) => &self.datasets.get(i).v,
            OrderRef::Workerpool(i) => &self.pools.get(i).v,
            OrderRef::Request(i) => &self.requests.get(i).v,
        }
    }

    fn vol_mut(&mut self, r: OrderRef) -> &mut Volumes {
        match r {
            OrderRef::App(i) => &mut self.apps.get_mut(i).v,
            OrderRef::Dataset(i) => &mut self.datasets.get_mut(i).v,
            OrderRef::Workerpool(i) => &mut self.pools.get_mut(i).v,
            OrderRef::Request(i) => &mut self.requests.get_mut(i).v,
        }
    }

    fn hash_of(&self, r: OrderRef) -> OrderHash {
        match r {
            OrderRef::App(i) => self.apps.get(i).order.hash,
            OrderRef::Dataset(i) => self.datasets.get(i).order.hash,
            OrderRef::Workerpool(i) => self.pools.get(i).order.hash,
            OrderRef::Request(i) => self.requests.get(i).order.hash,
        }
    }

    /// Moves `volume` from remaining to reserved; takes the order out of the books when it runs out.
    fn reserve(&mut self, r: OrderRef, volume: u64) {
        let v = self.vol_mut(r);
        v.remaining -= volume;
        v.reserved += volume;
        let remaining = v.remaining;
        if self.unbooked != Some(r) {
            if remaining == 0 {
                self.remove_from_books(r, volume);
            } else {
                self.level_change(r, remaining + volume, remaining);
            }
        }
    }

    /// A booked workerpool order or request went from `old` to `new` remaining (both non-zero): its level's volume
    /// follows.
    fn level_change(&mut self, r: OrderRef, old: u64, new: u64) {
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

    /// A known, not cancelled order.
    fn live_ref(&self, hash: &OrderHash) -> Option<OrderRef> {
        let r = *self.by_hash.get(hash)?;
        (!self.vol(r).cancelled).then_some(r)
    }

    /// Drops the order's record when it has nothing left to match nor reserved. Returns whether it did.
    fn forget_if_dead(&mut self, r: OrderRef, hash: OrderHash) -> bool {
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

    fn insert_in_books(&mut self, r: OrderRef) {
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
    fn remove_from_books(&mut self, r: OrderRef, was: u64) {
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
