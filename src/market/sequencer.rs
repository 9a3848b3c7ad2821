//! The sequencer: the one writer of the book. It takes every waiting publication and unpublication from its
//! queue, gives them arrival numbers, writes them in ONE store transaction (group commit), and only then puts
//! them in the book index and the engine and answers. It also owns the engine's life: started from the store,
//! stopped once its events are written, rebuilt from the store.
//!
//! Why one task and this order:
//! - the store commits before anything is answered or matched, so a crash loses nothing the engine matched;
//! - arrival numbers are the engine's time priority: given here, in queue order, they are the order of the
//!   commits, and a restart that re-adds open orders by arrival number rebuilds the same book;
//! - chain updates, rebuilds and sweeps wait for the group in progress and then run alone, in queue order, so
//!   the engine never sees a chain change interleaved with half a group (see `chain.rs`).

use super::book::Book;
use super::events::EventWriter;
use super::{Listener, MarketError, MarketEvent, MarketStats, PublishError, publish};
use crate::chain::update::{ChainUpdate, RebuildStep};
use crate::cluster::owner::Owned;
use crate::ids::OrderHash;
use crate::order::record::{OrderRecord, OrderStatus};
use crate::store::leases::Fence;
use crate::store::{Store, StoreError, orders};
use alloy::primitives::Address;
use dashmap::DashMap;
use dragon_matching as m;
use dragon_matching::pipeline::{EventSink, Input, Pipeline, PipelineConfig, Scope, Submitter};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub(super) enum Op {
    Publish {
        records: Vec<OrderRecord>,
        reply: oneshot::Sender<Vec<Result<Arc<OrderRecord>, PublishError>>>,
    },
    /// Takes open orders out: `status` `canceled` or `dead`, or `None` to delete them (unpublication: the peer
    /// forgets an unpublished order, which may then be published again).
    Close {
        hashes: Vec<OrderHash>,
        status: Option<OrderStatus>,
        reply: oneshot::Sender<Result<Vec<OrderHash>, MarketError>>,
    },
    /// App and dataset orders left the book: requests that no longer have a matchable one die, as with the peer.
    Sweep {
        apps: Vec<Address>,
        datasets: Vec<Address>,
    },
    Chain {
        update: ChainUpdate,
        reply: oneshot::Sender<()>,
    },
    // In a mutex only to make `Op` Sync (group commits borrow ops across awaits); taken once.
    Rebuild {
        before: Mutex<Option<RebuildStep>>,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
    /// The categories this instance owns changed (a cluster): the engine is rebuilt with exactly those.
    Own(Owned),
    /// What other instances changed in the book (a cluster): the read index follows, and the engine where the
    /// change concerns an order it holds without owning it (app and dataset orders).
    Remote(Vec<BookChange>),
}

/// A change of the book made by another instance of the cluster, as it reaches this one.
#[derive(Debug)]
pub enum BookChange {
    /// The order as it is now (open, or closed: then it leaves the book).
    Put(Box<OrderRecord>),
    /// Unpublished.
    Gone(OrderHash),
}

/// The running engine: its pipeline, a submitter, the task writing its events, and its pending proposals
/// (store id → the engine's deal). Replaced whole when the engine is rebuilt.
#[derive(Default)]
pub(super) struct EngineSlot {
    pub(super) pipeline: Mutex<Option<Pipeline>>,
    pub(super) submitter: Mutex<Option<Submitter>>,
    pub(super) writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(super) proposals: DashMap<i64, m::Deal>,
}

impl EngineSlot {
    pub(super) fn submitter(&self) -> Option<Submitter> {
        self.submitter.lock().ok().and_then(|s| s.clone())
    }
}

/// Hands the engine's events to the event writer without ever blocking the matching thread.
struct ChannelSink(mpsc::UnboundedSender<Vec<m::Event>>);

impl EventSink for ChannelSink {
    fn publish(&self, _shard: usize, events: &[m::Event]) {
        // The receiver only goes away at shutdown, when events no longer matter.
        let _ = self.0.send(events.to_vec());
    }
}

pub(super) fn scope(r: &OrderRecord) -> Scope {
    match r.category() {
        Some(c) => Scope::Category(c),
        None => Scope::AllShards,
    }
}

/// Waits until the engine has handled every input, stops it, and waits until its events are written.
pub(super) async fn stop_engine(engine: &EngineSlot) {
    if let Some(s) = engine.submitter() {
        for _ in 0..500 {
            if s.idle() || s.check_alive().is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    if let Ok(mut s) = engine.submitter.lock() {
        s.take();
    }
    // Stopping the pipeline drops the sink, which ends the event writer once it has written everything.
    let pipeline = engine.pipeline.lock().ok().and_then(|mut p| p.take());
    if let Some(p) = pipeline {
        let _ = tokio::task::spawn_blocking(move || drop(p.shutdown())).await;
    }
    let writer = engine.writer.lock().ok().and_then(|mut w| w.take());
    if let Some(w) = writer {
        let _ = w.await;
    }
}

/// The one task that changes the book: publications, unpublications and chain updates all pass through its
/// queue, so the store, the book index and the engine see them in the same order.
pub(super) struct Sequencer {
    pub(super) store: Store,
    pub(super) book: Arc<Book>,
    pub(super) listener: Listener,
    pub(super) next_seq: u64,
    /// The end (exclusive) of the block of arrival numbers `next_seq` is taken from (`store::orders::SEQ_BLOCK`).
    pub(super) seq_end: u64,
    pub(super) stats: Arc<MarketStats>,
    pub(super) max_group: usize,
    pub(super) chain_id: u64,
    pub(super) engine: Arc<EngineSlot>,
    /// The current engine's submitter (a copy of the slot's, kept here off the slot's lock).
    pub(super) submitter: Option<Submitter>,
    /// The sequencer's own queue, for the event writer's sweeps (weak: the queue closes when the market does).
    pub(super) ops: mpsc::WeakSender<Op>,
    /// The settler's queue of proposal ids, handed to each event writer (one per engine).
    pub(super) proposals: mpsc::UnboundedSender<i64>,
    /// In a cluster, the categories this instance owns, with the tenures its writes carry; the engine holds
    /// their workerpool orders and requests only. `None`: a single instance, which owns everything unfenced.
    pub(super) owned: Option<Owned>,
}

impl Sequencer {
    /// Whether this instance's engine holds `r`: every order alone; in a cluster, the orders of the categories it
    /// owns, and every app and dataset order (offered in every category).
    pub(super) fn holds(&self, r: &OrderRecord) -> bool {
        match (&self.owned, r.category()) {
            (Some(owned), Some(c)) => owned.contains_key(&c),
            _ => true,
        }
    }

    /// The tenures a write touching these categories must carry (none alone); `Err` when one is a category this
    /// instance does not own now.
    fn fences(&self, categories: impl Iterator<Item = u64>) -> Result<Vec<Fence>, StoreError> {
        let Some(owned) = &self.owned else { return Ok(Vec::new()) };
        let mut fences: Vec<Fence> = Vec::new();
        for c in categories {
            let f = owned.get(&c).ok_or_else(|| StoreError::Fenced { lease: format!("category {c}"), epoch: 0 })?;
            if !fences.iter().any(|x| x.name == f.name) {
                fences.push(f.clone());
            }
        }
        Ok(fences)
    }

    pub(super) fn submit(&self, input: Input) {
        let ok = self.submitter.as_ref().is_some_and(|s| s.submit(input).is_ok());
        if !ok {
            tracing::error!("matching engine down: the change is stored, and applied to the engine at restart");
        }
    }

    /// Starts an engine with the book as the store has it: open orders in arrival order, with their stored
    /// remaining volumes.
    pub(super) async fn start_engine(&mut self) -> Result<usize, StoreError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline::start(PipelineConfig::default(), ChannelSink(events_tx));
        let submitter = pipeline.submitter();
        let client = self.store.client().await?;
        let open = crate::store::orders::load_open(&**client, self.chain_id).await?;
        // Records first: workerpool orders take their pool's record as they are added, so the rebuilt engine
        // matches what the running one would have.
        let records = crate::store::track_records::of(&**client, self.chain_id, None).await?;
        drop(client);
        self.book.clear();
        self.engine.proposals.clear();
        let rebuilt = open.len();
        self.book.set_records(records.clone());
        for (pool, record) in records {
            let input = Input::TrackRecord { workerpool: m::Address(pool.0.0), record: record.all_time.engine() };
            if submitter.submit(input).is_err() {
                return Err(StoreError::Pool("the matching engine stopped while the book was rebuilt".into()));
            }
        }
        for r in open {
            let order = r.engine_order();
            let held = self.holds(&r);
            self.book.insert(Arc::new(r));
            if !held {
                continue;
            }
            if submitter.submit(Input::Add(order)).is_err() {
                return Err(StoreError::Pool("the matching engine stopped while the book was rebuilt".into()));
            }
        }
        tracing::info!(orders = rebuilt, next_seq = self.next_seq, "book rebuilt from the store");
        let writer = EventWriter {
            store: self.store.clone(),
            book: self.book.clone(),
            listener: self.listener.clone(),
            chain_id: self.chain_id,
            stats: self.stats.clone(),
            engine: self.engine.clone(),
            ops: self.ops.clone(),
            proposals: self.proposals.clone(),
            owned: self.owned.clone(),
            diverged: false,
        };
        let handle = tokio::spawn(writer.run(events_rx));
        if let (Ok(mut p), Ok(mut s), Ok(mut w)) =
            (self.engine.pipeline.lock(), self.engine.submitter.lock(), self.engine.writer.lock())
        {
            *p = Some(pipeline);
            *s = Some(submitter.clone());
            *w = Some(handle);
        }
        self.submitter = Some(submitter);
        Ok(rebuilt)
    }

    pub(super) async fn rebuild(&mut self, before: Mutex<Option<RebuildStep>>) -> Result<usize, StoreError> {
        self.submitter = None;
        stop_engine(&self.engine).await;
        let step = before.into_inner().ok().flatten();
        let outcome = match step {
            Some(f) => f.await,
            None => Ok(()),
        };
        // The engine comes back whatever `before` did: the store is the truth either way.
        let rebuilt = self.start_engine().await?;
        if self.owned.is_some() {
            // In a cluster, an app or dataset order may have left the store (filled by another owner) with no
            // change reaching this instance after the reload: the requests it held that nothing serves now die,
            // as they would have on that change.
            let mut gone = Gone::default();
            let requests = self.book.query(crate::order::OrderKind::Request, None, |_, _| true, 0, usize::MAX).orders;
            for r in requests.iter().filter(|r| self.holds(r)) {
                if let crate::order::AnyOrder::Request(o) = &r.order {
                    if !gone.apps.contains(&o.app) {
                        gone.apps.push(o.app);
                    }
                    if !o.dataset.is_zero() && !gone.datasets.contains(&o.dataset) {
                        gone.datasets.push(o.dataset);
                    }
                }
            }
            Box::pin(self.sweep(gone)).await;
        }
        outcome.map(|()| rebuilt)
    }

    /// Requests that no app order (or, naming a dataset, no dataset order) can serve any more die, as with the
    /// peer when an app or dataset order is unpublished, filled, cancelled or dead: what the publication rule
    /// required of a request stays true of every request in the book.
    pub(super) async fn sweep(&mut self, gone: Gone) {
        let mut dead: Vec<OrderHash> = Vec::new();
        let mut candidates = Vec::new();
        for app in gone.apps {
            candidates.extend(self.book.requests_of_app(app));
        }
        for dataset in gone.datasets {
            candidates.extend(self.book.requests_naming_dataset(dataset));
        }
        for r in candidates {
            if let crate::order::AnyOrder::Request(o) = &r.order
                && self.holds(&r)
                && publish::matchable(&self.book, o).is_err()
                && !dead.contains(&r.hash)
            {
                dead.push(r.hash);
            }
        }
        if dead.is_empty() {
            return;
        }
        tracing::debug!(requests = dead.len(), "requests left without a matchable app or dataset order are dead");
        let (reply, _) = oneshot::channel();
        self.commit(vec![Op::Close { hashes: dead, status: Some(OrderStatus::Dead), reply }]).await;
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.recv().await {
            if !matches!(first, Op::Publish { .. } | Op::Close { .. }) {
                self.alone(first).await;
                continue;
            }
            let mut ops = vec![first];
            let mut orders = op_size(&ops[0]);
            let mut held = None;
            // Other instances' changes arrive all the time in a cluster: they touch orders this group does not
            // write (other categories, or app and dataset orders it does not hold the writes of), so they are
            // applied as they come rather than cutting the group; their sweeps and rebuild wait for its commit.
            let (mut remote_gone, mut rebuild) = (Gone::default(), false);
            while orders < self.max_group {
                match rx.try_recv() {
                    Ok(op @ (Op::Publish { .. } | Op::Close { .. })) => {
                        orders += op_size(&op);
                        ops.push(op);
                    }
                    Ok(Op::Remote(changes)) => {
                        let (g, r) = self.remote(changes);
                        remote_gone.extend(g);
                        rebuild |= r;
                    }
                    Ok(op) => {
                        // Applied after this group, in queue order.
                        held = Some(op);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let gone = self.commit(ops).await;
            self.sweep(gone).await;
            if rebuild {
                self.rebuild_for_remote().await;
            }
            self.sweep(remote_gone).await;
            if let Some(op) = held {
                self.alone(op).await;
            }
        }
        tracing::debug!("sequencer drained");
    }

    /// An operation that runs alone, between two group commits.
    async fn alone(&mut self, op: Op) {
        match op {
            Op::Chain { update, reply } => {
                let gone = self.chain(update).await;
                let _ = reply.send(());
                self.sweep(gone).await;
            }
            Op::Rebuild { before, reply } => {
                let _ = reply.send(self.rebuild(before).await);
            }
            Op::Sweep { apps, datasets } => self.sweep(Gone { apps, datasets }).await,
            Op::Own(owned) => {
                if self.owned.as_ref() != Some(&owned) {
                    tracing::info!(categories = ?owned.keys().collect::<Vec<_>>(), "rebuilding the engine for the categories owned now");
                    self.owned = Some(owned);
                    if let Err(e) = self.rebuild(Mutex::new(None)).await {
                        tracing::error!(error = %e, "rebuilding the engine failed");
                    }
                }
            }
            Op::Remote(changes) => {
                let (gone, rebuild) = self.remote(changes);
                if rebuild {
                    self.rebuild_for_remote().await;
                }
                self.sweep(gone).await;
            }
            Op::Publish { .. } | Op::Close { .. } => {
                let gone = self.commit(vec![op]).await;
                self.sweep(gone).await;
            }
        }
    }

    async fn rebuild_for_remote(&mut self) {
        tracing::info!("another instance changed orders this engine holds: rebuilding it from the store");
        if let Err(e) = self.rebuild(Mutex::new(None)).await {
            tracing::error!(error = %e, "rebuilding the engine failed");
        }
    }

    /// Applies other instances' changes to the read index, and to the engine for the app and dataset orders it
    /// holds (new ones added, lowered ones lowered, gone ones cancelled). Returns the app and dataset orders that
    /// left, and whether the engine must be rebuilt: a change to an order whose volume the engine cannot follow
    /// (one of an owned category changed by someone else, which only the chain side does, or volume coming
    /// back to an app or dataset order).
    fn remote(&mut self, changes: Vec<BookChange>) -> (Gone, bool) {
        let mut gone = Gone::default();
        let mut rebuild = false;
        for change in changes {
            let (hash, now) = match change {
                BookChange::Put(r) => (r.hash, Some(*r)),
                BookChange::Gone(h) => (h, None),
            };
            let before = self.book.get(&hash);
            let owned = before.as_deref().or(now.as_ref()).is_some_and(|r| r.category().is_some() && self.holds(r));
            let open = now.filter(|r| r.status == OrderStatus::Open && r.remaining > 0);
            if owned {
                let same = match (&before, &open) {
                    (Some(b), Some(n)) => b.remaining == n.remaining,
                    (None, None) => true,
                    _ => false,
                };
                rebuild |= !same;
                continue;
            }
            match (before, open) {
                (was, Some(n)) => {
                    let n = Arc::new(n);
                    self.book.insert(n.clone());
                    if n.category().is_none() {
                        match was {
                            None => self.submit(Input::Add(n.engine_order())),
                            Some(w) if n.remaining < w.remaining => self.submit(Input::Lower {
                                hash: m::OrderHash(hash.0.0),
                                remaining: n.remaining,
                                scope: scope(&n),
                            }),
                            Some(w) => rebuild |= n.remaining > w.remaining,
                        }
                    }
                }
                (Some(b), None) => {
                    self.book.remove(&hash);
                    if b.category().is_none() {
                        self.submit(Input::Cancel { hash: m::OrderHash(hash.0.0), scope: scope(&b) });
                        gone.add(&b);
                    }
                }
                (None, None) => {}
            }
        }
        (gone, rebuild)
    }

    /// Gives the group's publications their arrival numbers, in queue order (a number lost to a failed commit
    /// leaves a harmless gap), from blocks taken from the store: blocks rise, so numbers keep rising here and
    /// pass every number stored, and no other instance on the database is given these.
    async fn number(&mut self, ops: &mut [Op]) -> Result<(), StoreError> {
        for op in ops {
            let Op::Publish { records, .. } = op else { continue };
            for r in records {
                if self.next_seq >= self.seq_end {
                    let client = self.store.client().await?;
                    self.next_seq = orders::reserve_seq_block(&**client).await?;
                    self.seq_end = self.next_seq + orders::SEQ_BLOCK;
                }
                r.seq = self.next_seq;
                self.next_seq += 1;
            }
        }
        Ok(())
    }

    /// Writes a group of publications and closes in one transaction, then applies it to the book, the engine and
    /// the feed. Returns the apps and datasets whose orders left the book.
    async fn commit(&mut self, mut ops: Vec<Op>) -> Gone {
        let outcome = match self.number(&mut ops).await {
            Ok(()) => self.write(&ops).await,
            Err(e) => Err(e),
        };
        let (mut inserted, closed) = match outcome {
            Ok(x) => x,
            Err(e) => {
                if e.is_fenced() {
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                }
                tracing::error!(error = %e, "group commit failed; the orders are refused");
                // Refused by a category's fence: ownership moved, and the new owner takes the order.
                let why = |r: &OrderRecord| match r.category() {
                    Some(category) if e.is_fenced() => MarketError::NoOwner { category },
                    _ => MarketError::Store(StoreError::Pool(e.to_string())),
                };
                for op in ops {
                    match op {
                        Op::Publish { records, reply } => {
                            let _ = reply.send(records.iter().map(|r| Err(why(r).into())).collect());
                        }
                        Op::Close { reply, .. } => {
                            let _ = reply.send(Err(MarketError::Store(StoreError::Pool(e.to_string()))));
                        }
                        _ => {}
                    }
                }
                return Gone::default();
            }
        };
        let mut gone = Gone::default();
        self.stats.commits.fetch_add(1, Ordering::Relaxed);
        let mut closed = closed.into_iter();
        for op in ops {
            match op {
                Op::Publish { records, reply } => {
                    let mut answers = Vec::with_capacity(records.len());
                    for r in records {
                        // Removed once taken: the same order twice in a group (two requests racing) is taken once.
                        if inserted.remove(&r.hash).is_none() {
                            answers.push(Err(self.why_not_inserted(r.hash).await));
                            continue;
                        }
                        let r = Arc::new(r);
                        self.book.insert(r.clone());
                        self.submit(Input::Add(r.engine_order()));
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                        (self.listener)(&MarketEvent::Published(r.clone()));
                        answers.push(Ok(r));
                    }
                    let _ = reply.send(answers);
                }
                Op::Close { reply, .. } => {
                    let hashes = closed.next().unwrap_or_default();
                    for h in &hashes {
                        if let Some(r) = self.book.remove(h) {
                            gone.add(&r);
                            self.submit(Input::Cancel { hash: m::OrderHash(h.0.0), scope: scope(&r) });
                            self.stats.unpublished.fetch_add(1, Ordering::Relaxed);
                            (self.listener)(&MarketEvent::Unpublished {
                                kind: r.kind(),
                                hash: *h,
                                category: r.category(),
                            });
                        }
                    }
                    let _ = reply.send(Ok(hashes));
                }
                _ => {}
            }
        }
        gone
    }

    /// One transaction for the whole group. Returns the inserted hashes and, per close op, the closed hashes.
    async fn write(&self, ops: &[Op]) -> Result<(HashMap<OrderHash, ()>, Vec<Vec<OrderHash>>), StoreError> {
        let mut client = self.store.client().await?;
        // One row per hash: the same order sent twice at once (two requests racing, or a stranger doing it on
        // purpose) would otherwise fail the whole group's statement, and with it everyone else's orders.
        let mut once = std::collections::HashSet::new();
        let records: Vec<&OrderRecord> = ops
            .iter()
            .flat_map(|op| match op {
                Op::Publish { records, .. } => records.iter().collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .filter(|r| once.insert(r.hash))
            .collect();
        // In a cluster, every order of a category is written under that category's tenure, checked in the same
        // transaction (closed orders too: their categories come from the book).
        let closing = ops.iter().flat_map(|op| match op {
            Op::Close { hashes, .. } => hashes.iter().filter_map(|h| self.book.get(h)?.category()).collect(),
            _ => Vec::new(),
        });
        let fences = self.fences(records.iter().filter_map(|r| r.category()).chain(closing))?;
        // Asked before they are noted: hashes no table can hold are copied in, without the conflict check.
        let fresh = records.iter().all(|r| !self.store.may_hold(&r.hash));
        // Before the commit, so that no publication can find the store silent about a hash it holds.
        self.store.note_hashes(records.iter().map(|r| &r.hash));
        // Publications alone are one statement, atomic by itself: no BEGIN and COMMIT round trips around it.
        if fences.is_empty() && !ops.iter().any(|op| matches!(op, Op::Close { .. })) {
            let inserted = if records.is_empty() {
                Vec::new()
            } else if fresh {
                match orders::copy_fresh(&client, &records).await {
                    Ok(()) => records.iter().map(|r| r.hash).collect(),
                    Err(e) if orders::is_unique_violation(&e) => orders::insert(&client, &records).await?,
                    Err(e) => return Err(e),
                }
            } else {
                orders::insert(&client, &records).await?
            };
            return Ok((inserted.into_iter().map(|h| (h, ())).collect(), Vec::new()));
        }
        let tx = client.transaction().await?;
        // The fence and the insert are sent together (one round trip): the check holds the lease rows until the
        // commit whichever statement runs first, and a refused check rolls the insert back with the transaction.
        let fenced = fences.iter().collect::<Vec<_>>();
        let (checked, inserted) = tokio::join!(crate::store::leases::check_all(&*tx, &fenced), async {
            if records.is_empty() { Ok(Vec::new()) } else { orders::insert(&tx, &records).await }
        });
        checked?;
        let inserted = inserted?;
        let mut closed = Vec::new();
        for op in ops {
            if let Op::Close { hashes, status, .. } = op {
                closed.push(match status {
                    Some(status) => crate::store::orders::close(&*tx, hashes, *status).await?,
                    None => crate::store::orders::delete_open(&*tx, hashes).await?,
                });
            }
        }
        tx.commit().await?;
        Ok((inserted.into_iter().map(|h| (h, ())).collect(), closed))
    }

    /// An insert skipped on conflict: the order exists, open or closed.
    async fn why_not_inserted(&self, hash: OrderHash) -> PublishError {
        let found = match self.store.client().await {
            Ok(c) => crate::store::orders::get(&**c, &hash).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(Some(r)) if r.status != OrderStatus::Open => PublishError::Closed { hash, status: r.status },
            Ok(_) => PublishError::Duplicate(hash),
            Err(e) => MarketError::Store(e).into(),
        }
    }
}

/// Apps and datasets whose orders left the book, whose requests [`Sequencer::sweep`] checks.
#[derive(Debug, Default)]
pub(super) struct Gone {
    pub(super) apps: Vec<Address>,
    pub(super) datasets: Vec<Address>,
}

impl Gone {
    fn extend(&mut self, other: Gone) {
        for a in other.apps {
            if !self.apps.contains(&a) {
                self.apps.push(a);
            }
        }
        for d in other.datasets {
            if !self.datasets.contains(&d) {
                self.datasets.push(d);
            }
        }
    }

    pub(super) fn add(&mut self, r: &OrderRecord) {
        let (list, asset) = match &r.order {
            crate::order::AnyOrder::App(o) => (&mut self.apps, o.app),
            crate::order::AnyOrder::Dataset(o) => (&mut self.datasets, o.dataset),
            _ => return,
        };
        if !list.contains(&asset) {
            list.push(asset);
        }
    }
}

fn op_size(op: &Op) -> usize {
    match op {
        Op::Publish { records, .. } => records.len(),
        Op::Close { hashes, .. } => hashes.len(),
        _ => 0,
    }
}
