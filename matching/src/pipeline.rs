//! The lock-free pipeline: producers submit, one writer thread per shard of categories applies, readers load the
//! snapshots it publishes.
//!
//! ```text
//!  producers (in Dragon, one: the market's sequencer)     readers (listings, depth, best price)
//!     │ Submitter::submit(Input)   (clone per thread)          ▲ Pipeline::snapshot(shard): Arc<Snapshot>
//!     ▼ route: category % shards; app/dataset to all          │ (arc-swap load: no lock, never blocks the writer)
//!  ┌──────────────┐  ┌──────────────┐                          │
//!  │ ArrayQueue 0 │  │ ArrayQueue 1 │ ...  bounded MPMC, lock-free
//!  └──────┬───────┘  └──────┬───────┘                          │
//!         ▼                 ▼                                  │
//!   writer thread 0    writer thread 1   each owns one Engine: Engine::apply, journal, publish ──┘
//!         │                 │            a snapshot every `publish_every` commands or when the queue drains
//!         ▼                 ▼
//!      EventSink::publish(shard, events)  (e.g. QueueSink: a lock-free SegQueue)
//! ```
//!
//! **Producers.** Any number of threads may submit: the queues are multi-producer and a [`Submitter`] is cheap to
//! clone (the pipeline test drives several at once). Dragon has one producer per engine, the market's sequencer
//! task (`src/market`): it submits each order after the transaction that stores it, in arrival order, what the
//! chain tells of orders and deals (cancels, lowers, confirms, releases), and the open orders when the engine is
//! rebuilt. One task writing the book is what makes the engine's order of commands the store's; signatures and
//! the conversion to `u64` are checked before.
//!
//! **Shards.** Dragon runs one shard (the default [`PipelineConfig`]), where the global rule holds exactly. Several
//! shards work and are tested, but nothing in Dragon uses them: the routing and its cost below are what a second
//! shard would bring.
//!
//! **Routing.** A workerpool or request order belongs to its category, and a category to shard
//! `category % shards` ([`shard_of`]). App and dataset orders are not bound to a category: a request of any
//! category may need them, so they go to every shard. To keep "no over-fill" without any cross-shard lock, their
//! volume is split: shard `s` gets [`share`]`(volume, s, shards)` (an equal part, the remainder to the first
//! shards; the parts add up to the volume). A shard whose part is 0 does not receive the order. Cancels and
//! lowers of app/dataset orders ([`Scope::AllShards`]) go to every shard (a `Lower` carries each shard's part of
//! the new remaining volume; a shard already below its part answers `NotALowering` and keeps its volume, so the
//! total never rises). Proposal ids are `shard + k * shards`, so `Confirm`/`Release` go to `id % shards`.
//!
//! **What this costs.** Within a shard every invariant of the engine holds exactly, and each shard is
//! deterministic: replaying its journal through `Engine::with_proposal_ids(shard, shards)` gives the same events
//! (that is how the pipeline test checks it). Across shards, an app or dataset order can be exhausted in one shard
//! while another still holds part of its volume: a compatible combination may then wait in one shard although the
//! volume exists in another. iExec apps and datasets are usually offered with large volumes, so the split would
//! rarely bind; where it did, a command moving volume between shards would be needed.
//!
//! **Why it is safe without locks.** Each engine is owned by exactly one thread (no shared mutable state); the
//! queues are crossbeam's lock-free bounded queues; snapshots are immutable values behind `ArcSwap`, so a reader
//! holds an `Arc` to a consistent old or new snapshot and the writer never waits for readers. The only blocking
//! is deliberate: a writer parks when its queue is empty (a producer unparks it), and `submit` yields while a full
//! queue applies back-pressure. The event sink is called by the writer and must not block (a `SegQueue` does not).
//!
//! **Liveness.** A writer that stops (a panic in the engine or the sink, or [`Pipeline::shutdown`]) sets its
//! shard's `down` flag from a drop guard, so unwinding sets it too. `submit` checks the flag before each push and
//! while it waits on a full queue, so it never spins on a dead shard: it returns [`PipelineDown`]. Commands a
//! dead writer had not applied are lost (they stay in its queue), and so are events it had not handed to the
//! sink; the caller must treat the shard's state as unknown from its last published snapshot on, e.g. by
//! restarting from the journal. [`Submitter::check_alive`] / [`Pipeline::check_alive`] let a health check see it
//! without submitting.
//!
//! **Caveats.** `QueueSink` is unbounded: its consumer must keep up (or use a sink that applies its own policy).
//! A `Submitter` used after [`Pipeline::shutdown`] gets `Err(PipelineDown)`, except in a race with the writer's
//! exit, where a command may be accepted and never applied: stop the producers before shutting down.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_queue::{ArrayQueue, SegQueue};

use crate::engine::{CategoryDepth, Command, Engine, Event, ProposalId, Stats};
use crate::types::{Nrlc, Order, OrderHash};

/// The shard of a category: `category % shards`.
pub fn shard_of(category: u64, shards: usize) -> usize {
    (category % shards as u64) as usize
}

/// Shard `shard`'s part of an app/dataset order's volume: `volume / shards`, plus one for the first
/// `volume % shards` shards. The parts add up to `volume`.
pub fn share(volume: u64, shard: usize, shards: usize) -> u64 {
    let n = shards as u64;
    volume / n + u64::from((shard as u64) < volume % n)
}

/// The writer thread of a shard has stopped (it panicked, or the pipeline was shut down): commands for the
/// shard are no longer applied.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PipelineDown {
    pub shard: usize,
}

impl fmt::Display for PipelineDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "matching writer of shard {} has stopped", self.shard)
    }
}

impl std::error::Error for PipelineDown {}

/// Where a cancel or lower goes: the order's category for workerpool and request orders, every shard for app and
/// dataset orders.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    Category(u64),
    AllShards,
}

/// What producers submit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Input {
    Add(Order),
    Cancel {
        hash: OrderHash,
        scope: Scope,
    },
    Lower {
        hash: OrderHash,
        remaining: u64,
        scope: Scope,
    },
    Confirm(ProposalId),
    Release(ProposalId),
    /// See [`Command::ReleaseCapped`].
    ReleaseCapped {
        id: ProposalId,
        caps: [u64; 4],
    },
    /// See [`Command::TrackRecord`]; every shard (a workerpool's orders may be in any category).
    TrackRecord {
        workerpool: crate::types::Address,
        record: crate::types::TrackRecord,
    },
}

/// Receives each shard's events, in the shard's order, on the shard's writer thread. Must not block.
pub trait EventSink: Send + Sync + 'static {
    fn publish(&self, shard: usize, events: &[Event]);
}

/// An [`EventSink`] into a lock-free unbounded queue, drained by whoever consumes events.
#[derive(Debug, Default)]
pub struct QueueSink {
    queue: SegQueue<(usize, Event)>,
}

impl QueueSink {
    pub fn new() -> Self {
        Self::default()
    }
    /// The next event, if any, with its shard.
    pub fn pop(&self) -> Option<(usize, Event)> {
        self.queue.pop()
    }
}

impl EventSink for QueueSink {
    fn publish(&self, shard: usize, events: &[Event]) {
        for e in events {
            self.queue.push((shard, *e));
        }
    }
}

impl<S: EventSink> EventSink for Arc<S> {
    fn publish(&self, shard: usize, events: &[Event]) {
        (**self).publish(shard, events);
    }
}

/// Pipeline settings.
#[derive(Clone, Copy, Debug)]
pub struct PipelineConfig {
    /// Number of writer threads (shards of categories). At least 1.
    pub shards: usize,
    /// Capacity of each shard's input queue (back-pressure beyond it).
    pub queue_capacity: usize,
    /// Publish a snapshot at least every this many commands (and whenever the queue drains).
    pub publish_every: u64,
    /// Price levels per side and category in snapshots.
    pub depth_levels: usize,
    /// Orders listed per side and category in snapshots (best first).
    pub listed_orders: usize,
    /// Orders each shard's engine is sized for up front ([`Engine::with_capacity`]); 0 grows on demand.
    pub capacity: usize,
    /// Keep each shard's applied commands, returned by [`Pipeline::shutdown`] (for replay and tests).
    pub journal: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            shards: 1,
            queue_capacity: 65_536,
            publish_every: 1_024,
            depth_levels: 20,
            listed_orders: 50,
            capacity: 0,
            journal: false,
        }
    }
}

/// An immutable view of one shard, published by its writer.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub shard: usize,
    /// Commands applied when the snapshot was taken.
    pub applied: u64,
    /// Each category of the shard, ascending by category.
    pub categories: Vec<CategoryView>,
    pub known_orders: usize,
    pub pending_proposals: usize,
    pub stats: Stats,
}

/// One category in a snapshot: its depth and its best orders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategoryView {
    pub depth: CategoryDepth,
    /// The first workerpool orders in ask priority: (hash, price, remaining volume).
    pub top_asks: Vec<(OrderHash, Nrlc, u64)>,
    /// The first request orders in bid priority: (hash, workerpoolmaxprice, remaining volume).
    pub top_bids: Vec<(OrderHash, Nrlc, u64)>,
}

impl Snapshot {
    /// One category, if it has a book.
    pub fn category(&self, category: u64) -> Option<&CategoryView> {
        self.categories.iter().find(|c| c.depth.category == category)
    }

    /// The cheapest workerpool order price of a category.
    pub fn best_ask(&self, category: u64) -> Option<Nrlc> {
        self.category(category)?.depth.asks.first().map(|l| l.price)
    }

    /// The highest `workerpoolmaxprice` of a category's requests.
    pub fn best_bid(&self, category: u64) -> Option<Nrlc> {
        self.category(category)?.depth.bids.first().map(|l| l.price)
    }
}

/// What a shard hands back at shutdown.
#[derive(Debug)]
pub struct ShardReport {
    pub shard: usize,
    pub engine: Engine,
    /// The commands the shard applied, in order (empty unless `journal`).
    pub journal: Vec<Command>,
}

#[derive(Debug)]
struct Shard {
    queue: ArrayQueue<Command>,
    sleeping: AtomicBool,
    stop: AtomicBool,
    /// Set when the writer thread ends, normally or by a panic (see `DownOnDrop`).
    down: AtomicBool,
    /// Commands pushed to the queue (by all producers) and applied by the writer: equal when the shard is idle.
    pushed: AtomicU64,
    applied: AtomicU64,
    snapshot: ArcSwap<Snapshot>,
}

/// Cheap to clone; give one to each producer thread.
#[derive(Clone, Debug)]
pub struct Submitter {
    shards: Arc<[Arc<Shard>]>,
    threads: Arc<[Thread]>,
}

impl Submitter {
    fn down(&self, shard: usize) -> Result<(), PipelineDown> {
        if self.shards[shard].down.load(Ordering::SeqCst) { Err(PipelineDown { shard }) } else { Ok(()) }
    }

    fn push(&self, shard: usize, mut cmd: Command) -> Result<(), PipelineDown> {
        let s = &self.shards[shard];
        // A dead writer's queue still accepts pushes until it is full; refuse first rather than lose silently.
        self.down(shard)?;
        loop {
            match s.queue.push(cmd) {
                Ok(()) => {
                    s.pushed.fetch_add(1, Ordering::AcqRel);
                    break;
                }
                Err(back) => {
                    // A full queue whose writer died never drains: without this check the loop never ends.
                    self.down(shard)?;
                    // Back-pressure: the writer is behind; give it the core.
                    cmd = back;
                    self.threads[shard].unpark();
                    thread::yield_now();
                }
            }
        }
        // Pairs with the writer's `sleeping.store(true)` then `queue.is_empty()`: with SeqCst on both sides,
        // either the writer sees the command or we see it sleeping and wake it.
        if s.sleeping.load(Ordering::SeqCst) {
            self.threads[shard].unpark();
        }
        // The writer may have died between the first check and the push; then the command is likely lost.
        self.down(shard)
    }

    /// Pushes to every shard, even past a dead one: a live shard still gets its part of an app/dataset order, or
    /// its cancel. Returns the first (lowest) dead shard.
    fn push_all(&self, cmd: impl Fn(usize) -> Option<Command>) -> Result<(), PipelineDown> {
        let mut first = Ok(());
        for s in 0..self.shards.len() {
            if let Some(c) = cmd(s) {
                let r = self.push(s, c);
                if first.is_ok() {
                    first = r;
                }
            }
        }
        first
    }

    /// Routes and enqueues one input, yielding while a queue is full (back-pressure).
    ///
    /// `Ok` means enqueued, not applied. `Err(PipelineDown { shard })` means that shard's writer has stopped: the
    /// input (or that shard's part of it) is lost, and any earlier commands still in its queue are lost too.
    /// Inputs that go to every shard (app and dataset orders, their cancels and lowers) are still delivered to
    /// the live shards; the error names the first dead one. If the writer dies while the command is being pushed,
    /// it may have been applied or not: the shard's state is unknown past its last snapshot either way.
    pub fn submit(&self, input: Input) -> Result<(), PipelineDown> {
        let n = self.shards.len();
        match input {
            Input::Add(order) => match order {
                Order::Workerpool(o) => self.push(shard_of(o.category, n), Command::Add(order)),
                Order::Request(o) => self.push(shard_of(o.category, n), Command::Add(order)),
                Order::App(o) => self.push_all(|s| {
                    let volume = share(o.volume, s, n);
                    (volume > 0).then_some(Command::Add(Order::App(crate::types::AppOrder { volume, ..o })))
                }),
                Order::Dataset(o) => self.push_all(|s| {
                    let volume = share(o.volume, s, n);
                    (volume > 0).then_some(Command::Add(Order::Dataset(crate::types::DatasetOrder { volume, ..o })))
                }),
            },
            Input::Cancel { hash, scope: Scope::Category(c) } => self.push(shard_of(c, n), Command::Cancel(hash)),
            Input::Cancel { hash, scope: Scope::AllShards } => self.push_all(|_| Some(Command::Cancel(hash))),
            Input::Lower { hash, remaining, scope: Scope::Category(c) } => {
                self.push(shard_of(c, n), Command::Lower { hash, remaining })
            }
            Input::Lower { hash, remaining, scope: Scope::AllShards } => {
                self.push_all(|s| Some(Command::Lower { hash, remaining: share(remaining, s, n) }))
            }
            Input::Confirm(id) => self.push((id.0 % n as u64) as usize, Command::Confirm(id)),
            Input::Release(id) => self.push((id.0 % n as u64) as usize, Command::Release(id)),
            Input::ReleaseCapped { id, caps } => {
                self.push((id.0 % n as u64) as usize, Command::ReleaseCapped { id, caps })
            }
            Input::TrackRecord { workerpool, record } => {
                self.push_all(|_| Some(Command::TrackRecord { workerpool, record }))
            }
        }
    }

    /// `Err` with the first shard whose writer has stopped (panicked or shut down), `Ok` while all run.
    pub fn check_alive(&self) -> Result<(), PipelineDown> {
        (0..self.shards.len()).try_for_each(|s| self.down(s))
    }

    /// Whether every command pushed so far has been applied, its events handed to the sink and a snapshot
    /// published (the writer stores its count after both). Meaningful when no producer is submitting. Never true
    /// again for a shard whose writer died with commands in its queue: check [`Submitter::check_alive`] too.
    pub fn idle(&self) -> bool {
        self.shards.iter().all(|s| s.pushed.load(Ordering::Acquire) == s.applied.load(Ordering::Acquire))
    }
}

/// The running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    submitter: Submitter,
    handles: Vec<JoinHandle<ShardReport>>,
}

impl Pipeline {
    /// Starts one writer thread per shard.
    pub fn start(config: PipelineConfig, sink: impl EventSink) -> Self {
        let n = config.shards.max(1);
        let sink = Arc::new(sink);
        let shards: Vec<Arc<Shard>> = (0..n)
            .map(|s| {
                Arc::new(Shard {
                    queue: ArrayQueue::new(config.queue_capacity.max(1)),
                    sleeping: AtomicBool::new(false),
                    stop: AtomicBool::new(false),
                    down: AtomicBool::new(false),
                    pushed: AtomicU64::new(0),
                    applied: AtomicU64::new(0),
                    snapshot: ArcSwap::from_pointee(Snapshot { shard: s, ..Snapshot::default() }),
                })
            })
            .collect();
        let handles: Vec<JoinHandle<ShardReport>> = shards
            .iter()
            .enumerate()
            .map(|(s, shard)| {
                let shard = Arc::clone(shard);
                let sink = Arc::clone(&sink);
                thread::Builder::new()
                    .name(format!("matching-{s}"))
                    .spawn(move || {
                        let _down = DownOnDrop(&shard);
                        writer(s, n, config, &shard, &*sink)
                    })
                    .expect("spawn a matching writer thread")
            })
            .collect();
        let threads: Vec<Thread> = handles.iter().map(|h| h.thread().clone()).collect();
        Pipeline { submitter: Submitter { shards: shards.into(), threads: threads.into() }, handles }
    }

    /// A submitter for a producer thread.
    pub fn submitter(&self) -> Submitter {
        self.submitter.clone()
    }

    /// The latest published snapshot of a shard (lock-free; never blocks the writer).
    pub fn snapshot(&self, shard: usize) -> Arc<Snapshot> {
        self.submitter.shards[shard].snapshot.load_full()
    }

    /// `Err` with the first shard whose writer has stopped; see [`Submitter::check_alive`].
    pub fn check_alive(&self) -> Result<(), PipelineDown> {
        self.submitter.check_alive()
    }

    /// Commands applied so far by each shard.
    pub fn applied(&self) -> Vec<u64> {
        self.submitter.shards.iter().map(|s| s.applied.load(Ordering::Acquire)).collect()
    }

    /// Stops the writers once their queues are drained and returns their engines and journals. Panics if a
    /// writer panicked; [`Pipeline::try_shutdown`] does not.
    pub fn shutdown(self) -> Vec<ShardReport> {
        self.try_shutdown()
            .into_iter()
            .map(|r| r.unwrap_or_else(|down| panic!("{down}: its writer thread panicked")))
            .collect()
    }

    /// Stops the writers once their queues are drained; per shard, its engine and journal, or `PipelineDown` if
    /// its writer panicked (its engine is gone with it).
    pub fn try_shutdown(self) -> Vec<Result<ShardReport, PipelineDown>> {
        for (s, t) in self.submitter.shards.iter().zip(self.submitter.threads.iter()) {
            s.stop.store(true, Ordering::SeqCst);
            t.unpark();
        }
        self.handles.into_iter().enumerate().map(|(shard, h)| h.join().map_err(|_| PipelineDown { shard })).collect()
    }
}

/// Marks the shard down when the writer thread ends. A guard rather than a store after `writer` returns, so that
/// a panic in the engine or the sink, which unwinds past that store, still sets the flag.
struct DownOnDrop<'a>(&'a Shard);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        self.0.down.store(true, Ordering::SeqCst);
    }
}

fn publish_snapshot(s: usize, engine: &Engine, applied: u64, config: &PipelineConfig, shard: &Shard) {
    let categories = engine
        .categories()
        .into_iter()
        .map(|c| CategoryView {
            depth: engine.depth(c, config.depth_levels),
            top_asks: engine.top_asks(c, config.listed_orders),
            top_bids: engine.top_bids(c, config.listed_orders),
        })
        .collect();
    shard.snapshot.store(Arc::new(Snapshot {
        shard: s,
        applied,
        categories,
        known_orders: engine.known_orders(),
        pending_proposals: engine.pending_proposals(),
        stats: engine.stats(),
    }));
}

fn writer(s: usize, n: usize, config: PipelineConfig, shard: &Shard, sink: &dyn EventSink) -> ShardReport {
    let mut engine = Engine::with_proposal_ids(s as u64, n as u64);
    engine.reserve_orders(config.capacity);
    let mut journal = Vec::new();
    let mut events = Vec::with_capacity(256);
    let mut applied = 0u64;
    let mut since_publish = 0u64;
    loop {
        while let Some(cmd) = shard.queue.pop() {
            engine.apply(cmd, &mut events);
            if config.journal {
                journal.push(cmd);
            }
            applied += 1;
            since_publish += 1;
            if events.len() >= 256 {
                sink.publish(s, &events);
                events.clear();
            }
            if since_publish >= config.publish_every {
                sink.publish(s, &events);
                events.clear();
                publish_snapshot(s, &engine, applied, &config, shard);
                shard.applied.store(applied, Ordering::Release);
                since_publish = 0;
            }
        }
        // The queue is drained: flush events and publish what changed.
        if !events.is_empty() {
            sink.publish(s, &events);
            events.clear();
        }
        if since_publish > 0 {
            // Events, then snapshot, then the count: whoever sees the count sees both.
            publish_snapshot(s, &engine, applied, &config, shard);
            shard.applied.store(applied, Ordering::Release);
            since_publish = 0;
        }
        if shard.stop.load(Ordering::SeqCst) && shard.queue.is_empty() {
            break;
        }
        shard.sleeping.store(true, Ordering::SeqCst);
        if shard.queue.is_empty() && !shard.stop.load(Ordering::SeqCst) {
            // The timeout is a backstop only; producers unpark us.
            thread::park_timeout(Duration::from_millis(10));
        }
        shard.sleeping.store(false, Ordering::SeqCst);
    }
    ShardReport { shard: s, engine, journal }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The parts add up to the volume, differ by at most one, and a smaller volume never gives a larger part
        /// (so a broadcast `Lower` never raises a shard).
        #[test]
        fn shares_split_volume_exactly(volume in 0u64..10_000, lower in 0u64..10_000, shards in 1usize..9) {
            let parts: Vec<u64> = (0..shards).map(|s| share(volume, s, shards)).collect();
            prop_assert_eq!(parts.iter().sum::<u64>(), volume);
            prop_assert!(parts.iter().max().expect("shards") - parts.iter().min().expect("shards") <= 1);
            let lower = lower.min(volume);
            for s in 0..shards {
                prop_assert!(share(lower, s, shards) <= share(volume, s, shards));
            }
        }
    }

    #[test]
    fn categories_map_to_shards_by_modulo() {
        assert_eq!(shard_of(0, 3), 0);
        assert_eq!(shard_of(4, 3), 1);
        assert_eq!(shard_of(u64::MAX, 1), 0);
    }
}
