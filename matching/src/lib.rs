//! Dragon's matching engine: per-category order books for iExec PoCo orders. Commands in, events out.
//!
//! ```text
//!   the market's sequencer (src/market), the one producer             market event writer (store, feed)
//!        │ Input::Add / Cancel / Lower / Confirm / Release / ReleaseCapped      ▲ events per shard, in order
//!        ▼                                                                       │
//!   pipeline::Submitter ── route: category % shards, app/dataset orders to all ──┐
//!        │  lock-free bounded queue per shard (crossbeam ArrayQueue)             │
//!        ▼                                                                       │
//!   writer thread of shard s  ──  Engine::apply(Command) -> [Event] ─────────────┘  (EventSink)
//!        │   owns its Engine: books per category, app/dataset books, indices, proposals
//!        └── every N commands / when the queue drains: Snapshot ──arc-swap──▶ readers (listings, depth, best)
//! ```
//!
//! ```
//! use dragon_matching::{
//!     Address, AppOrder, Command, Engine, Event, Nrlc, Order, OrderHash, RequestOrder, Tag, WorkerpoolOrder,
//! };
//! let (app, pool, me) = (Address([1; 20]), Address([2; 20]), Address([3; 20]));
//! let mut engine = Engine::new();
//! engine.execute(Command::Add(Order::App(AppOrder {
//!     hash: OrderHash([1; 32]), app, price: Nrlc(1), volume: 10, tag: Tag::ZERO,
//!     dataset_restrict: Address::ZERO, workerpool_restrict: Address::ZERO, requester_restrict: Address::ZERO,
//! })));
//! engine.execute(Command::Add(Order::Workerpool(WorkerpoolOrder {
//!     hash: OrderHash([2; 32]), workerpool: pool, price: Nrlc(5), volume: 3, tag: Tag::ZERO, category: 0,
//!     trust: 0, app_restrict: Address::ZERO, dataset_restrict: Address::ZERO, requester_restrict: Address::ZERO,
//!     record: Default::default(),
//! })));
//! let events = engine.execute(Command::Add(Order::Request(RequestOrder {
//!     hash: OrderHash([3; 32]), app, app_max_price: Nrlc(2), dataset: Address::ZERO,
//!     dataset_max_price: Nrlc(0), workerpool: Address::ZERO, workerpool_max_price: Nrlc(6), requester: me,
//!     volume: 5, tag: Tag::ZERO, category: 0, trust: 0, min_record: Default::default(),
//! })));
//! // One deal of 3 (the workerpool order's volume) at the sellers' prices; 2 units of the request rest.
//! let Event::DealProposed(deal) = events[0] else { panic!("expected a deal") };
//! assert_eq!((deal.volume, deal.app_price, deal.workerpool_price), (3, Nrlc(1), Nrlc(5)));
//! assert!(matches!(events[1], Event::Resting { remaining: 2, .. }));
//! engine.execute(Command::Confirm(deal.id)); // the workerpool order is filled
//! ```
//!
//! # The crate
//! - [`types`]: `OrderHash`, `Address`, `Tag`, `Nrlc` newtypes and the four order kinds, with `u64` amounts
//!   (the edge converts `uint256` with [`u64_from_uint256`] / `Nrlc::try_from`, rejecting what does not fit).
//! - [`compat`]: [`check`], the PoCo `matchOrders` predicate without chain state (codes 00, 02-07, 10-1b), each
//!   rule a [`Rule`] named by its revert code, and Dragon's own minimum track record (0x3f, not a PoCo code).
//! - [`explain`]: why an order does not match: its best counter-orders and, for each, every blocking condition,
//!   from [`failures`] (all the rules a combination fails; [`check`] is its first) and the engine's other needs
//!   (volume left, an order of each kind).
//! - [`engine`]: [`Engine`], pure and single-threaded: no I/O, no async, no clock; its hash maps take random keys
//!   against flooding, but are only looked up, so nothing random reaches the events.
//! - [`pipeline`]: threads, queues and snapshots around engines (std threads only; still no I/O). Dragon runs one
//!   shard, fed by one producer, the market's sequencer, so its book follows the global rule exactly.
//!
//! # Books
//! Per category: workerpool orders (asks, price ascending then arrival) and request orders (bids,
//! `workerpoolmaxprice` descending then arrival). App orders are booked by app address and dataset orders by
//! dataset address (price ascending then arrival). Arrival is a sequence number given when `Add` is applied.
//! Two indices of requests, by app and by dataset, each a flat B-tree per category keyed by bid priority and
//! holding exactly the live requests, tell which requests a new app or dataset order may serve.
//!
//! Each book is a B-tree of price levels, each level a FIFO of (arrival, slab index, marks) (`book.rs`): distinct
//! prices are few, so the tree stays small and hot in cache, an add is a push at the back of its level, and a
//! removal is lazy (a tombstone skipped by iteration, compacted when a level is half tombstones). The marks are
//! two words copied from the order (folded tag, low bytes of addresses) that let a scan rule an order out without
//! reading it.
//!
//! # Indexed by what blocks an order
//! Each category keeps every resting workerpool order and request in exactly one book: the group of what may keep
//! it from the other side whatever the price (or, for a request, the parked book). Best price and depth come from
//! per-price counters (orders and volume at each price, a small tree that stays in cache), and listings merge the
//! groups that start before the price by which enough orders have come. Scans look up only the groups that admit
//! them:
//! - **ask groups**, keyed by the workerpool order's (app restriction, dataset restriction, requester restriction,
//!   trust): a request probes (by hash) the groups whose restrictions are zero or its own app, dataset and
//!   requester (at most 8, 4 without a dataset, 1 when no ask of the category is restricted), for each trust level
//!   present that is at least its own; they are merged into ask priority, and a group's entries are read only
//!   once its cheapest price could come first;
//! - **bid groups**, keyed by the request's (tag, workerpool restriction, trust): a workerpool order probes the
//!   tags its own tag covers (the subsets of its tag bits, or the tags present, whichever are fewer), the
//!   restriction zero or itself, and the trust levels present up to its own, merged into bid priority one request
//!   at a time, after one look at the best bid has shown that some request can pay it;
//! - **parked requests**: a request whose app (or named dataset) has no order in the books is in no bid group, so
//!   workerpool orders never walk it. When the app or dataset gets its first order, its requests are put back
//!   (the new app or dataset order itself finds them through the by-app or by-dataset index); when it loses its
//!   last, they are parked again.
//!
//! What the groups leave to the marks (about 2 ns per order walked, without reading it): a request's tag and
//! workerpool restriction against asks, a workerpool order's requester, app and dataset restrictions against bids.
//!
//! # Cost, and what stays unbounded
//! Adding, cancelling and matching cost a few B-tree and hash-map steps (O(log n)) plus the scan. The scan is
//! bounded by price and by the groups: a new request walks only the asks it can pay in the groups that admit it, a
//! new workerpool order only the bids that can pay it in the groups that admit it. What stays unbounded, and is
//! to be capped at publication (`docs/benchmarks.md` measures each case):
//! - orders blocked only by what the marks cover (above): walked at ~2 ns each;
//! - requests of an app that cross the best ask but are blocked elsewhere, walked by every new order of that app
//!   (or dataset): the by-app index is not grouped;
//! - parking and unparking: O(requests naming the app or dataset), paid in one command when its first order
//!   arrives or its last leaves (about 0.44 s for a million requests);
//! - the number of groups a scan probes: for a workerpool order, the tags present that its tag covers (at most
//!   2^(its tag bits)) times the trust levels present up to its own; for a request, up to 8 restriction keys
//!   times the trust levels present from its own up. Distinct restriction addresses cost nothing (one probe
//!   each way), distinct tags and trust levels do.
//!
//! Each resting order is in one group, the per-price counters and (requests) the by-app index: what a book of a
//! million orders still pays per add is the cache misses of the order map and of that index (see
//! `docs/benchmarks.md`, issue 11).
//!
//! # The matching rule
//! After every command: take the resting requests in bid priority; for each request R, repeatedly walk the
//! workerpool orders of R's category in ask priority, for each walk R's app's orders, and when R names a dataset
//! that dataset's orders; the first (workerpool, app, dataset) compatible with R and each other ([`check`]) makes
//! a deal of the smallest remaining volume of the four, at the sellers' prices; stop when R is used up or no
//! combination remains; go to the next request. `tests/it/reference.rs` implements exactly this, slowly, and the
//! property tests require the engine's events to equal it on random command streams.
//!
//! # Incremental matching
//! Invariant **Q** (quiescence): after every command, no compatible combination exists among resting orders.
//! Compatibility does not depend on volume, and volumes only fall while matching; so after a command, every
//! combination that can exist contains an order that just became matchable: the added order, or an order that a
//! `Release` brought back from zero remaining. `Cancel`, `Lower` and `Confirm` create none and match nothing.
//! - Added request R: scan R alone (the full rule for R; other requests have no combination).
//! - Added workerpool order W: the requests of W's category with `workerpoolmaxprice >= W.price` in the bid groups
//!   that admit W (a prefix of each group, merged into bid priority), each scanned with W as the only
//!   workerpool; stop when W is used up. Requests outside those groups, and parked ones, cannot combine with W.
//! - Added app (dataset) order: from the by-app (by-dataset) index, per category, the requests whose
//!   `workerpoolmaxprice` reaches the category's best ask (a prefix per category), merged into global bid priority
//!   (app and dataset orders are shared across categories, so the order across categories matters), each scanned
//!   with that app (dataset) order fixed.
//! - Release: one order back = as if added; several = the union of their candidate requests, in bid priority,
//!   each scanned without restriction.
//! - TrackRecord (Dragon's own): a workerpool's record changes whether requests with a minimum track record
//!   accept its orders, so its resting orders whose record changed are matched again exactly as released ones.
//!
//! A new order is matched before it is booked (it enters every scan as the fixed order, or as the request being
//! scanned, never through the books), so an order filled at once never touches the books.
//!
//! Within a request's scan, price ranges stop at the request's maximum prices (rules 03-05 are the book order),
//! pairwise necessary conditions skip workerpool and app orders early, and after a deal the scan resumes at the
//! same workerpool order (earlier combinations were incompatible and stay so). Under Q, the first combination of
//! the restricted scan is the first of the full scan, so deals and their order are exactly the rule's.
//!
//! # Volumes: no over-fill, reserved volume
//! Each order has `remaining` (matchable) and `reserved` (held by pending proposals). A deal moves its volume from
//! remaining to reserved on all four orders at once, so the sum of pending and confirmed deal volumes of an order
//! never exceeds its volume. `Confirm` consumes the reservation (the order is `Filled` when both reach 0);
//! `Release` gives it back (not to a cancelled order) and the order re-enters the book with its original
//! arrival number, keeping its time priority. An order leaves the books when remaining reaches 0 and is forgotten
//! when nothing is reserved either. `Lower` only ever lowers remaining (on-chain consumption seen by the edge).
//! `ReleaseCapped` is `Release` for a deal whose orders were partly consumed on chain by someone else meanwhile:
//! each order gets back at most what the chain still has of it (remaining plus reserved capped), keeps its
//! arrival number, and is `Filled` if nothing is left; so the edge never has to cancel and re-add an order (which
//! would lose its time priority) to keep released volume within the chain's.
//!
//! # Determinism and safety
//! The engine iterates only ordered structures (B-trees, vectors); hash maps are only looked up. Sequence numbers
//! and proposal ids come from counters. So the same commands give the same events, and a shard's journal replays
//! exactly. The crate has no `unsafe` (denied workspace-wide). The pipeline shares no mutable state: each engine
//! is owned by one writer thread, commands travel through lock-free queues, events through a non-blocking sink,
//! and readers load immutable snapshots through `ArcSwap` without ever blocking the writer (see [`pipeline`] for
//! the routing of app and dataset orders across shards and what it costs).

mod book;
pub mod compat;
pub mod engine;
pub mod explain;
mod hash;
pub mod pipeline;
pub mod types;

pub use compat::{Failures, Rule, check, compatible, failures};
pub use engine::{
    CategoryDepth, Command, Deal, Engine, Event, Level, OrderState, ProposalId, RejectReason, Stats, Subject,
};
pub use pipeline::PipelineDown;
pub use types::{
    Address, AppOrder, DatasetOrder, MinTrackRecord, Nrlc, Order, OrderHash, OrderKind, RequestOrder, Tag, TrackRecord,
    ValueTooLarge, WorkerpoolOrder, u64_from_uint256,
};
