//! The market: publication, the matching engine, and the durable record of both.
//!
//! ```text
//!  API handler ── Market::check (rules, signature, chain reads) ──▶ Market::publish
//!                                                                       │ mpsc
//!  sequencer task: takes every waiting publication and unpublication, gives arrival numbers, writes them in
//!  ONE transaction (group commit), then: book (read index) ◀─ insert/remove ─┐, engine ◀─ Add/Cancel, answers
//!                                                                       │
//!  matching writer thread (dragon_matching::pipeline, one shard): Engine::apply ── events ──▶ channel
//!                                                                       │
//!  event writer task: deal proposals + new remaining volumes in ONE transaction, then the book and the feed
//! ```
//!
//! Why this order: an order is durable before it is answered (200) and before the engine sees it, so nothing the
//! engine matched can be lost with the order. Engine events are written after their orders, in engine order;
//! after a crash the open orders are re-added in arrival order with their stored remaining volumes, which
//! reproduces the book, and re-proposes any deal whose events were not yet written (the engine is
//! deterministic, and the book is quiescent: no compatible combination rests in it).

pub mod book;
pub mod convert;
pub mod publish;
pub mod record;

pub use convert::engine_order;
pub use publish::PublishError;

use crate::chain::reads::ChainReader;
use crate::ids::OrderHash;
use crate::order::{Domain, OrderKind};
use crate::store::{Store, StoreError};
use alloy::primitives::{Address, U256};
use book::Book;
use dashmap::DashMap;
use dragon_matching as m;
use dragon_matching::pipeline::{EventSink, Input, Pipeline, PipelineConfig, Scope, Submitter};
use record::{OrderRecord, OrderStatus};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Market settings.
#[derive(Debug, Clone, Copy)]
pub struct MarketConfig {
    /// Open orders allowed per signer and kind.
    pub max_open_orders: usize,
    /// Open requests allowed per app and per dataset they name. The engine walks an app's requests when the
    /// app gets its first order or loses its last (docs/benchmarks.md, issue 11): this bounds that walk.
    pub max_requests_per_asset: usize,
    /// Open workerpool orders, and open requests, allowed per category: bounds the orders a scan may pass
    /// over when rules other than price keep them apart (issue 11).
    pub max_orders_per_category: usize,
    /// Most orders written by one commit.
    pub max_group: usize,
    /// Largest order document accepted, in bytes of its JSON text. iExec's clients send a few hundred bytes;
    /// the bound is what keeps a flood of free orders from filling the exchange's memory and every page of the
    /// books (docs/security.md).
    pub max_order_bytes: usize,
    /// Largest `params` of a request order, in bytes (UTF-8).
    pub max_params_bytes: usize,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            max_open_orders: 1_000,
            max_requests_per_asset: 10_000,
            max_orders_per_category: 100_000,
            max_group: 4_096,
            max_order_bytes: 16 * 1024,
            max_params_bytes: 8 * 1024,
        }
    }
}

/// What the market tells the feed, after the change is durable.
#[derive(Debug, Clone)]
pub enum MarketEvent {
    Published(Arc<OrderRecord>),
    /// Remaining volume or status changed (a deal, a fill).
    Updated(Arc<OrderRecord>),
    Unpublished {
        kind: OrderKind,
        hash: OrderHash,
        category: Option<u64>,
    },
    DealProposed {
        id: i64,
        deal: m::Deal,
    },
    /// A proposal failed on chain; its volume went back to the book.
    ProposalFailed {
        id: i64,
        category: Option<u64>,
        reason: String,
    },
    /// A deal appeared on chain (whoever matched it), in the API's form.
    DealCreated(serde_json::Value),
    /// A task changed status on chain, in the API's form.
    TaskUpdated(serde_json::Value),
}

pub type Listener = Arc<dyn Fn(&MarketEvent) + Send + Sync>;

/// What the chain did to the book, already written to the store by chain sync or the settler; the market
/// brings the book index and the engine in line, in this order: closes, lowers, releases, confirmations.
#[derive(Debug, Default)]
pub struct ChainUpdate {
    /// Proposals settled on chain (the engine's reservation becomes consumption).
    pub confirmed: Vec<i64>,
    /// Proposals that failed, with the reason: their volume goes back to the orders still open, after the
    /// lowers below.
    pub released: Vec<(i64, String)>,
    /// Orders closed in the store (cancelled on chain, dead).
    pub closed: Vec<OrderRecord>,
    /// Orders whose remaining volume the store recomputed, as they now are in the store.
    pub recomputed: Vec<OrderRecord>,
    /// New deals on chain and task changes, in the API's form, for the feed.
    pub deals: Vec<serde_json::Value>,
    pub tasks: Vec<serde_json::Value>,
}

impl ChainUpdate {
    pub fn is_empty(&self) -> bool {
        self.confirmed.is_empty()
            && self.released.is_empty()
            && self.closed.is_empty()
            && self.recomputed.is_empty()
            && self.deals.is_empty()
            && self.tasks.is_empty()
    }
}

/// Store work run while the engine is stopped, before it is rebuilt from the store (a reorg's rollback).
pub type RebuildStep = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

enum Op {
    Publish {
        records: Vec<OrderRecord>,
        reply: oneshot::Sender<Vec<Result<Arc<OrderRecord>, PublishError>>>,
    },
    /// Takes open orders out: `status` `canceled` or `dead`, or `None` to delete them (unpublication: the peer
    /// forgets an unpublished order, which may then be published again).
    Close {
        hashes: Vec<OrderHash>,
        status: Option<OrderStatus>,
        reply: oneshot::Sender<Result<Vec<OrderHash>, PublishError>>,
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
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct MarketStats {
    pub published: AtomicU64,
    pub commits: AtomicU64,
    pub deals_proposed: AtomicU64,
    pub unpublished: AtomicU64,
}

pub struct Market {
    pub chain_id: u64,
    pub domain: Domain,
    pub book: Arc<Book>,
    pub reader: Arc<ChainReader>,
    /// For the publication rules that read what the book no longer holds (orders filled, cancelled or dead).
    pub store: Store,
    pub stats: Arc<MarketStats>,
    pub config: MarketConfig,
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    /// Held by chain sync and the settler from their store transaction until the market has applied it, so
    /// the market applies chain changes in the order the store committed them (each recomputed volume then
    /// includes every earlier change).
    pub chain_lock: tokio::sync::Mutex<()>,
    engine: Arc<EngineSlot>,
    /// The sequencer's task.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The running engine: its pipeline, a submitter, the task writing its events, and its pending proposals
/// (store id → the engine's deal). Replaced whole when the engine is rebuilt.
#[derive(Default)]
struct EngineSlot {
    pipeline: Mutex<Option<Pipeline>>,
    submitter: Mutex<Option<Submitter>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    proposals: DashMap<i64, m::Deal>,
}

impl EngineSlot {
    fn submitter(&self) -> Option<Submitter> {
        self.submitter.lock().ok().and_then(|s| s.clone())
    }
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market").field("chain_id", &self.chain_id).field("open", &self.book.len()).finish()
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

fn scope(r: &OrderRecord) -> Scope {
    match r.category() {
        Some(c) => Scope::Category(c),
        None => Scope::AllShards,
    }
}

impl Market {
    /// Rebuilds the book from the store and starts the sequencer, the matching thread and the event writer.
    pub async fn start(
        store: Store,
        reader: Arc<ChainReader>,
        config: MarketConfig,
        listener: Listener,
    ) -> Result<Arc<Market>, StoreError> {
        let chain_id = reader.deployment().chain_id;
        let domain = Domain::new(U256::from(chain_id), reader.deployment().hub);
        let book = Arc::new(Book::default());
        let stats = Arc::new(MarketStats::default());
        let engine = Arc::new(EngineSlot::default());
        let (ops_tx, ops_rx) = mpsc::channel(1024);
        let mut seq = Sequencer {
            store: store.clone(),
            book: book.clone(),
            listener: listener.clone(),
            next_seq: 0,
            stats: stats.clone(),
            max_group: config.max_group,
            chain_id,
            engine: engine.clone(),
            submitter: None,
            ops: ops_tx.downgrade(),
        };
        seq.start_engine().await?;
        let market = Arc::new(Market {
            chain_id,
            domain,
            book,
            reader,
            store,
            stats,
            config,
            ops: Mutex::new(Some(ops_tx)),
            chain_lock: tokio::sync::Mutex::new(()),
            engine,
            tasks: Mutex::new(Vec::new()),
        });
        let t1 = tokio::spawn(seq.run(ops_rx));
        if let Ok(mut t) = market.tasks.lock() {
            t.push(t1);
        }
        Ok(market)
    }

    fn sender(&self) -> Result<mpsc::Sender<Op>, PublishError> {
        self.ops.lock().ok().and_then(|g| g.clone()).ok_or(PublishError::ShuttingDown)
    }

    /// Publishes checked orders: durable, in the book and in the engine when this returns Ok.
    pub async fn publish(&self, records: Vec<OrderRecord>) -> Vec<Result<Arc<OrderRecord>, PublishError>> {
        let n = records.len();
        let fail = |e: fn() -> PublishError| (0..n).map(|_| Err(e())).collect();
        let Ok(tx) = self.sender() else { return fail(|| PublishError::ShuttingDown) };
        let (reply, rx) = oneshot::channel();
        if tx.send(Op::Publish { records, reply }).await.is_err() {
            return fail(|| PublishError::ShuttingDown);
        }
        rx.await.unwrap_or_else(|_| fail(|| PublishError::ShuttingDown))
    }

    /// Takes open orders out of the book for good (`canceled` or `dead`); returns those that were open.
    pub async fn close(&self, hashes: Vec<OrderHash>, status: OrderStatus) -> Result<Vec<OrderHash>, PublishError> {
        self.close_op(hashes, Some(status)).await
    }

    /// Unpublishes open orders: out of the book and out of the store (the same signed order may be published
    /// again); returns those that were open. Requests left without a matchable app or dataset order die.
    pub async fn unpublish(&self, hashes: Vec<OrderHash>) -> Result<Vec<OrderHash>, PublishError> {
        self.close_op(hashes, None).await
    }

    async fn close_op(
        &self,
        hashes: Vec<OrderHash>,
        status: Option<OrderStatus>,
    ) -> Result<Vec<OrderHash>, PublishError> {
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Close { hashes, status, reply }).await.map_err(|_| PublishError::ShuttingDown)?;
        rx.await.map_err(|_| PublishError::ShuttingDown)?
    }

    /// Brings the book and the engine in line with what the chain did (already in the store).
    pub async fn chain_update(&self, update: ChainUpdate) -> Result<(), PublishError> {
        if update.is_empty() {
            return Ok(());
        }
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Chain { update, reply }).await.map_err(|_| PublishError::ShuttingDown)?;
        rx.await.map_err(|_| PublishError::ShuttingDown)
    }

    /// Stops the engine once every event it produced is written, runs `before` on the store, then rebuilds the
    /// book and the engine from the store, as a restart does. Publications wait meanwhile. Returns the number
    /// of open orders re-added. The engine's pending proposals are forgotten: `before` must settle their fate
    /// in the store (a reorg's rollback fails them, and the new engine proposes again what is still possible).
    pub async fn rebuild(&self, before: RebuildStep) -> Result<usize, PublishError> {
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Rebuild { before: Mutex::new(Some(before)), reply })
            .await
            .map_err(|_| PublishError::ShuttingDown)?;
        rx.await.map_err(|_| PublishError::ShuttingDown)?.map_err(PublishError::Store)
    }

    /// Whether the matching thread is alive.
    pub fn matching_alive(&self) -> bool {
        self.engine.submitter().is_some_and(|s| s.check_alive().is_ok())
    }

    /// The engine's latest snapshot (depth and best prices per category).
    pub fn snapshot(&self) -> Option<Arc<m::pipeline::Snapshot>> {
        self.engine.pipeline.lock().ok()?.as_ref().map(|p| p.snapshot(0))
    }

    /// Drains: refuses new work, lets the sequencer finish what it took, waits for the engine's events to be
    /// written, then stops the matching thread.
    pub async fn shutdown(&self) {
        if let Ok(mut g) = self.ops.lock() {
            g.take();
        }
        let tasks: Vec<_> = self.tasks.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        // The sequencer ends when the last sender is gone and its queue is empty.
        for seq in tasks {
            let _ = seq.await;
        }
        stop_engine(&self.engine).await;
    }
}

/// Waits until the engine has handled every input, stops it, and waits until its events are written.
async fn stop_engine(engine: &EngineSlot) {
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

struct Sequencer {
    store: Store,
    book: Arc<Book>,
    listener: Listener,
    next_seq: u64,
    stats: Arc<MarketStats>,
    max_group: usize,
    chain_id: u64,
    engine: Arc<EngineSlot>,
    /// The current engine's submitter (a copy of the slot's, kept here off the slot's lock).
    submitter: Option<Submitter>,
    /// The sequencer's own queue, for the event writer's sweeps (weak: the queue closes when the market does).
    ops: mpsc::WeakSender<Op>,
}

impl Sequencer {
    fn submit(&self, input: Input) {
        let ok = self.submitter.as_ref().is_some_and(|s| s.submit(input).is_ok());
        if !ok {
            tracing::error!("matching engine down: the change is stored, and applied to the engine at restart");
        }
    }

    /// Starts an engine with the book as the store has it: open orders in arrival order, with their stored
    /// remaining volumes.
    async fn start_engine(&mut self) -> Result<usize, StoreError> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline::start(PipelineConfig::default(), ChannelSink(events_tx));
        let submitter = pipeline.submitter();
        let client = self.store.client().await?;
        let open = crate::store::orders::load_open(&**client, self.chain_id).await?;
        self.next_seq = self.next_seq.max(crate::store::orders::max_seq(&**client).await? + 1);
        drop(client);
        self.book.clear();
        self.engine.proposals.clear();
        let rebuilt = open.len();
        for r in open {
            let order = r.engine_order();
            self.book.insert(Arc::new(r));
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

    async fn rebuild(&mut self, before: Mutex<Option<RebuildStep>>) -> Result<usize, StoreError> {
        self.submitter = None;
        stop_engine(&self.engine).await;
        let step = before.into_inner().ok().flatten();
        let outcome = match step {
            Some(f) => f.await,
            None => Ok(()),
        };
        // The engine comes back whatever `before` did: the store is the truth either way.
        let rebuilt = self.start_engine().await?;
        outcome.map(|()| rebuilt)
    }

    /// See [`ChainUpdate`]. Lowers come before releases, and a failed proposal is released with each of its
    /// orders capped at what the chain still has of it (`ReleaseCapped`): released volume never exceeds the
    /// chain's, and an order that someone else consumed meanwhile keeps its time priority.
    ///
    /// Returns the app and dataset orders that left the book, and whether the engine must be rebuilt from the
    /// store: a proposal made before the engine was (re)built, kept pending because its transaction could still
    /// land, failed since; the engine never held its reservation, so only the store knows the volume that comes
    /// back.
    fn apply_chain(&mut self, u: ChainUpdate) -> (Gone, bool) {
        let mut gone = Gone::default();
        let mut released: Vec<(i64, m::Deal)> = Vec::new();
        let mut unknown = false;
        for (id, reason) in &u.released {
            let deal = self.engine.proposals.remove(id);
            unknown |= deal.is_none();
            let category = deal.map(|(_, d)| d.category);
            (self.listener)(&MarketEvent::ProposalFailed { id: *id, category, reason: reason.clone() });
            released.extend(deal);
        }
        let mut coming_back: HashMap<OrderHash, u64> = HashMap::new();
        for (_, d) in &released {
            for h in [Some(d.app), d.dataset, Some(d.workerpool), Some(d.request)].into_iter().flatten() {
                *coming_back.entry(OrderHash(h.0.into())).or_default() += d.volume;
            }
        }
        // What the engine still reserves on those orders for the other proposals it holds: a release's cap is
        // all an order may hold in the engine, reserved included, so it is the store's unreserved remaining plus
        // this (proposals kept across a restart are in neither: the store counts them pending, the engine never
        // held them).
        let mut held: HashMap<OrderHash, u64> = HashMap::new();
        if !coming_back.is_empty() {
            for p in self.engine.proposals.iter() {
                let d = p.value();
                for h in [Some(d.app), d.dataset, Some(d.workerpool), Some(d.request)].into_iter().flatten() {
                    let h = OrderHash(h.0.into());
                    if coming_back.contains_key(&h) {
                        *held.entry(h).or_default() += d.volume;
                    }
                }
            }
        }
        for r in u.closed {
            gone.add(&r);
            if let Some(old) = self.book.remove(&r.hash) {
                self.submit(Input::Cancel { hash: m::OrderHash(r.hash.0.0), scope: scope(&old) });
            } else {
                // Fully reserved orders are out of the book index but still in the engine.
                self.submit(Input::Cancel { hash: m::OrderHash(r.hash.0.0), scope: scope(&r) });
            }
            (self.listener)(&MarketEvent::Unpublished { kind: r.kind(), hash: r.hash, category: r.category() });
        }
        let mut caps: HashMap<OrderHash, u64> = HashMap::new();
        for r in u.recomputed {
            let hash = m::OrderHash(r.hash.0.0);
            let current = self.book.get(&r.hash).map_or(0, |o| o.remaining);
            let back = coming_back.get(&r.hash).copied().unwrap_or(0);
            if back > 0 {
                // The capped release below gives it back at most what the chain has.
                caps.insert(r.hash, r.remaining.saturating_add(held.get(&r.hash).copied().unwrap_or(0)));
            } else if r.remaining < current {
                self.submit(Input::Lower { hash, remaining: r.remaining, scope: scope(&r) });
            }
            let r = Arc::new(r);
            if r.remaining > 0 {
                self.book.insert(r.clone());
            } else {
                self.book.remove(&r.hash);
                gone.add(&r);
            }
            (self.listener)(&MarketEvent::Updated(r));
        }
        for (_, d) in released {
            let cap = |h: Option<m::OrderHash>| h.and_then(|h| caps.get(&OrderHash(h.0.into())).copied());
            let caps =
                [Some(d.app), d.dataset, Some(d.workerpool), Some(d.request)].map(|h| cap(h).unwrap_or(u64::MAX));
            self.submit(Input::ReleaseCapped { id: d.id, caps });
        }
        for id in u.confirmed {
            if let Some((_, d)) = self.engine.proposals.remove(&id) {
                self.submit(Input::Confirm(d.id));
            }
        }
        for d in u.deals {
            (self.listener)(&MarketEvent::DealCreated(d));
        }
        for t in u.tasks {
            (self.listener)(&MarketEvent::TaskUpdated(t));
        }
        (gone, unknown)
    }

    /// Requests that no app order (or, naming a dataset, no dataset order) can serve any more die, as with the
    /// peer when an app or dataset order is unpublished, filled, cancelled or dead: what the publication rule
    /// required of a request stays true of every request in the book.
    async fn sweep(&mut self, gone: Gone) {
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

    /// Applies a chain update, then rebuilds the engine if the update released volume it never held; returns the
    /// app and dataset orders that left the book.
    async fn chain(&mut self, update: ChainUpdate) -> Gone {
        let (gone, unknown) = self.apply_chain(update);
        if unknown {
            tracing::info!("a proposal from before the engine's start failed: rebuilding the engine from the store");
            // As at a restart: the proposals no transaction carries fail first (the new engine proposes them
            // again and holds them), so only those in flight stay unknown to it. Without this, every proposal
            // pending now would be unknown to the new engine, and each of their failures would rebuild it again.
            // Only the settler releases proposals, and it waits for this update to be applied: nothing it is
            // about to send can be failed here.
            let (store, chain_id) = (self.store.clone(), self.chain_id);
            let step: RebuildStep = Box::pin(async move {
                let mut client = store.client().await?;
                let tx = client.transaction().await?;
                let failed =
                    crate::store::proposals::fail_unsent(&*tx, chain_id, "not sent before the engine restarted")
                        .await?;
                let mut touched: Vec<OrderHash> = failed.iter().flat_map(|p| p.orders().collect::<Vec<_>>()).collect();
                touched.sort();
                touched.dedup();
                crate::store::orders::recompute(&*tx, &touched).await?;
                tx.commit().await?;
                Ok(())
            });
            if let Err(e) = self.rebuild(Mutex::new(Some(step))).await {
                tracing::error!(error = %e, "rebuilding the engine failed; the store keeps the volume for the next start");
            }
        }
        gone
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.recv().await {
            let first = match first {
                Op::Chain { update, reply } => {
                    let gone = self.chain(update).await;
                    let _ = reply.send(());
                    self.sweep(gone).await;
                    continue;
                }
                Op::Rebuild { before, reply } => {
                    let _ = reply.send(self.rebuild(before).await);
                    continue;
                }
                Op::Sweep { apps, datasets } => {
                    self.sweep(Gone { apps, datasets }).await;
                    continue;
                }
                op => op,
            };
            let mut ops = vec![first];
            let mut orders = op_size(&ops[0]);
            let mut held = None;
            while orders < self.max_group {
                match rx.try_recv() {
                    Ok(op @ (Op::Chain { .. } | Op::Rebuild { .. } | Op::Sweep { .. })) => {
                        // Applied after this group, in queue order.
                        held = Some(op);
                        break;
                    }
                    Ok(op) => {
                        orders += op_size(&op);
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            let gone = self.commit(ops).await;
            self.sweep(gone).await;
            match held {
                Some(Op::Chain { update, reply }) => {
                    let gone = self.chain(update).await;
                    let _ = reply.send(());
                    self.sweep(gone).await;
                }
                Some(Op::Sweep { apps, datasets }) => self.sweep(Gone { apps, datasets }).await,
                Some(Op::Rebuild { before, reply }) => {
                    let _ = reply.send(self.rebuild(before).await);
                }
                _ => {}
            }
        }
        tracing::debug!("sequencer drained");
    }

    /// Writes a group of publications and closes in one transaction, then applies it to the book, the engine and
    /// the feed. Returns the apps and datasets whose orders left the book.
    async fn commit(&mut self, mut ops: Vec<Op>) -> Gone {
        // Arrival numbers in queue order; a number lost to a failed commit leaves a harmless gap.
        for op in &mut ops {
            if let Op::Publish { records, .. } = op {
                for r in records {
                    r.seq = self.next_seq;
                    self.next_seq += 1;
                }
            }
        }
        let outcome = self.write(&ops).await;
        let (inserted, closed) = match outcome {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; the orders are refused");
                for op in ops {
                    match op {
                        Op::Publish { records, reply } => {
                            let _ = reply.send(
                                records
                                    .iter()
                                    .map(|_| Err(PublishError::Store(StoreError::Pool(e.to_string()))))
                                    .collect(),
                            );
                        }
                        Op::Close { reply, .. } => {
                            let _ = reply.send(Err(PublishError::Store(StoreError::Pool(e.to_string()))));
                        }
                        Op::Chain { .. } | Op::Rebuild { .. } | Op::Sweep { .. } => {}
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
                        if !inserted.contains_key(&r.hash) {
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
                Op::Chain { .. } | Op::Rebuild { .. } | Op::Sweep { .. } => {}
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
            }
        }
        gone
    }

    /// One transaction for the whole group. Returns the inserted hashes and, per close op, the closed hashes.
    async fn write(&self, ops: &[Op]) -> Result<(HashMap<OrderHash, ()>, Vec<Vec<OrderHash>>), StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let records: Vec<&OrderRecord> = ops
            .iter()
            .flat_map(|op| match op {
                Op::Publish { records, .. } => records.iter().collect::<Vec<_>>(),
                _ => Vec::new(),
            })
            .collect();
        let inserted =
            if records.is_empty() { Vec::new() } else { crate::store::orders::insert(&*tx, &records).await? };
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
            Err(e) => PublishError::Store(e),
        }
    }
}

/// Apps and datasets whose orders left the book, whose requests [`Sequencer::sweep`] checks.
#[derive(Debug, Default)]
struct Gone {
    apps: Vec<Address>,
    datasets: Vec<Address>,
}

impl Gone {
    fn add(&mut self, r: &OrderRecord) {
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
        Op::Chain { .. } | Op::Rebuild { .. } | Op::Sweep { .. } => 0,
    }
}

struct EventWriter {
    store: Store,
    book: Arc<Book>,
    listener: Listener,
    chain_id: u64,
    stats: Arc<MarketStats>,
    engine: Arc<EngineSlot>,
    /// The sequencer's queue, for sweeps after app or dataset orders were filled.
    ops: mpsc::WeakSender<Op>,
}

impl EventWriter {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Vec<m::Event>>) {
        while let Some(mut events) = rx.recv().await {
            while events.len() < 16_384 {
                match rx.try_recv() {
                    Ok(more) => events.extend(more),
                    Err(_) => break,
                }
            }
            self.write(&events).await;
        }
        tracing::debug!("event writer drained");
    }

    async fn write(&self, events: &[m::Event]) {
        let mut remaining: HashMap<OrderHash, u64> = HashMap::new();
        let mut order: Vec<OrderHash> = Vec::new();
        let mut deals = Vec::new();
        let current = |h: &OrderHash| self.book.get(h).map(|r| r.remaining);
        for e in events {
            match *e {
                m::Event::DealProposed(d) => {
                    deals.push(d);
                    for h in [Some(d.app), d.dataset, Some(d.workerpool), Some(d.request)].into_iter().flatten() {
                        let h = OrderHash(h.0.into());
                        let Some(base) = remaining.get(&h).copied().or_else(|| current(&h)) else { continue };
                        if !remaining.contains_key(&h) {
                            order.push(h);
                        }
                        remaining.insert(h, base.saturating_sub(d.volume));
                    }
                }
                m::Event::Resting { hash, remaining: r, .. } => {
                    let h = OrderHash(hash.0.into());
                    let known = remaining.get(&h).copied().or_else(|| current(&h));
                    if known.is_some_and(|k| k != r) {
                        if !remaining.contains_key(&h) {
                            order.push(h);
                        }
                        remaining.insert(h, r);
                    }
                }
                m::Event::Rejected { subject, reason } => {
                    tracing::warn!(?subject, ?reason, "engine rejected a command");
                }
                m::Event::Filled { .. } | m::Event::Cancelled { .. } => {}
            }
        }
        if deals.is_empty() && order.is_empty() {
            return;
        }
        let updates: Vec<(OrderHash, u64)> = order.iter().map(|h| (*h, remaining[h])).collect();
        // The engine has moved on; these writes must happen. Retry until the store takes them.
        let mut delay = Duration::from_millis(50);
        let ids = loop {
            match self.try_write(&updates, &deals).await {
                Ok(ids) => break ids,
                Err(e) => {
                    tracing::error!(error = %e, "writing matching results failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let mut gone = Gone::default();
        for r in self.book.set_remaining(&updates) {
            if r.status == OrderStatus::Filled {
                gone.add(&r);
            }
            (self.listener)(&MarketEvent::Updated(r));
        }
        if (!gone.apps.is_empty() || !gone.datasets.is_empty())
            && let Some(ops) = self.ops.upgrade()
        {
            // Never waits: the sequencer may itself be waiting for this writer (a rebuild stops the engine).
            if ops.try_send(Op::Sweep { apps: gone.apps, datasets: gone.datasets }).is_err() {
                tracing::warn!("the sequencer's queue is full: requests of filled app or dataset orders not swept");
            }
        }
        self.stats.deals_proposed.fetch_add(deals.len() as u64, Ordering::Relaxed);
        for (id, deal) in ids.into_iter().zip(deals) {
            self.engine.proposals.insert(id, deal);
            (self.listener)(&MarketEvent::DealProposed { id, deal });
        }
    }

    async fn try_write(&self, updates: &[(OrderHash, u64)], deals: &[m::Deal]) -> Result<Vec<i64>, StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        crate::store::orders::set_remaining(&*tx, updates).await?;
        let ids = crate::store::proposals::insert(&*tx, self.chain_id, deals).await?;
        tx.commit().await?;
        Ok(ids)
    }
}
