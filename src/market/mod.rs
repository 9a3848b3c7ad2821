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
//! Why this order: an order is durable before it is answered 201 and before the engine sees it, so nothing the
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
use alloy::primitives::U256;
use book::Book;
use dragon_matching as m;
use dragon_matching::pipeline::{EventSink, Input, Pipeline, PipelineConfig, Scope, Submitter};
use record::{OrderRecord, OrderStatus};
use std::collections::HashMap;
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
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            max_open_orders: 1_000,
            max_requests_per_asset: 10_000,
            max_orders_per_category: 100_000,
            max_group: 4_096,
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
}

pub type Listener = Arc<dyn Fn(&MarketEvent) + Send + Sync>;

enum Op {
    Publish { records: Vec<OrderRecord>, reply: oneshot::Sender<Vec<Result<Arc<OrderRecord>, PublishError>>> },
    Close { hashes: Vec<OrderHash>, status: OrderStatus, reply: oneshot::Sender<Result<Vec<OrderHash>, PublishError>> },
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
    pub stats: Arc<MarketStats>,
    config: MarketConfig,
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    submitter: Submitter,
    pipeline: Arc<Mutex<Option<Pipeline>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline::start(PipelineConfig::default(), ChannelSink(events_tx));
        let submitter = pipeline.submitter();
        let book = Arc::new(Book::default());

        // The book as it was: open orders in arrival order, with their stored remaining volumes.
        let client = store.client().await?;
        let open = crate::store::orders::load_open(&**client, chain_id).await?;
        let next_seq = crate::store::orders::max_seq(&**client).await? + 1;
        drop(client);
        let rebuilt = open.len();
        for r in open {
            let order = r.engine_order();
            book.insert(Arc::new(r));
            if submitter.submit(Input::Add(order)).is_err() {
                return Err(StoreError::Pool("the matching engine stopped while the book was rebuilt".into()));
            }
        }
        tracing::info!(orders = rebuilt, next_seq, "book rebuilt from the store");

        let (ops_tx, ops_rx) = mpsc::channel(1024);
        let stats = Arc::new(MarketStats::default());
        let market = Arc::new(Market {
            chain_id,
            domain,
            book: book.clone(),
            reader,
            stats: stats.clone(),
            config,
            ops: Mutex::new(Some(ops_tx)),
            submitter: submitter.clone(),
            pipeline: Arc::new(Mutex::new(Some(pipeline))),
            tasks: Mutex::new(Vec::new()),
        });
        let seq = Sequencer {
            store: store.clone(),
            book: book.clone(),
            submitter,
            listener: listener.clone(),
            next_seq,
            stats: stats.clone(),
            max_group: config.max_group,
        };
        let writer = EventWriter { store, book, listener, chain_id, stats };
        let t1 = tokio::spawn(seq.run(ops_rx));
        let t2 = tokio::spawn(writer.run(events_rx));
        if let Ok(mut t) = market.tasks.lock() {
            t.extend([t1, t2]);
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
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Close { hashes, status, reply }).await.map_err(|_| PublishError::ShuttingDown)?;
        rx.await.map_err(|_| PublishError::ShuttingDown)?
    }

    /// Whether the matching thread is alive.
    pub fn matching_alive(&self) -> bool {
        self.submitter.check_alive().is_ok()
    }

    /// The engine's latest snapshot (depth and best prices per category).
    pub fn snapshot(&self) -> Option<Arc<m::pipeline::Snapshot>> {
        self.pipeline.lock().ok()?.as_ref().map(|p| p.snapshot(0))
    }

    /// Drains: refuses new work, lets the sequencer finish what it took, waits for the engine's events to be
    /// written, then stops the matching thread.
    pub async fn shutdown(&self) {
        if let Ok(mut g) = self.ops.lock() {
            g.take();
        }
        let tasks: Vec<_> = self.tasks.lock().map(|mut t| t.drain(..).collect()).unwrap_or_default();
        let mut tasks = tasks.into_iter();
        // The sequencer ends when the last sender is gone and its queue is empty.
        if let Some(seq) = tasks.next() {
            let _ = seq.await;
        }
        for _ in 0..500 {
            if self.submitter.idle() || !self.matching_alive() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Stopping the pipeline drops the sink, which ends the event writer once it has written everything.
        let pipeline = self.pipeline.lock().ok().and_then(|mut p| p.take());
        if let Some(p) = pipeline {
            let _ = tokio::task::spawn_blocking(move || drop(p.shutdown())).await;
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

struct Sequencer {
    store: Store,
    book: Arc<Book>,
    submitter: Submitter,
    listener: Listener,
    next_seq: u64,
    stats: Arc<MarketStats>,
    max_group: usize,
}

impl Sequencer {
    async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(first) = rx.recv().await {
            let mut ops = vec![first];
            let mut orders = op_size(&ops[0]);
            while orders < self.max_group {
                match rx.try_recv() {
                    Ok(op) => {
                        orders += op_size(&op);
                        ops.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.commit(ops).await;
        }
        tracing::debug!("sequencer drained");
    }

    async fn commit(&mut self, mut ops: Vec<Op>) {
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
                    }
                }
                return;
            }
        };
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
                        if self.submitter.submit(Input::Add(r.engine_order())).is_err() {
                            tracing::error!("matching engine down: order stored, not matched until restart");
                        }
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
                            let _ =
                                self.submitter.submit(Input::Cancel { hash: m::OrderHash(h.0.0), scope: scope(&r) });
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
    }

    /// One transaction for the whole group. Returns the inserted hashes and, per close op, the closed hashes.
    async fn write(&self, ops: &[Op]) -> Result<(HashMap<OrderHash, ()>, Vec<Vec<OrderHash>>), StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let records: Vec<&OrderRecord> = ops
            .iter()
            .flat_map(|op| match op {
                Op::Publish { records, .. } => records.iter().collect::<Vec<_>>(),
                Op::Close { .. } => Vec::new(),
            })
            .collect();
        let inserted =
            if records.is_empty() { Vec::new() } else { crate::store::orders::insert(&*tx, &records).await? };
        let mut closed = Vec::new();
        for op in ops {
            if let Op::Close { hashes, status, .. } = op {
                closed.push(crate::store::orders::close(&*tx, hashes, *status).await?);
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

fn op_size(op: &Op) -> usize {
    match op {
        Op::Publish { records, .. } => records.len(),
        Op::Close { hashes, .. } => hashes.len(),
    }
}

struct EventWriter {
    store: Store,
    book: Arc<Book>,
    listener: Listener,
    chain_id: u64,
    stats: Arc<MarketStats>,
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
        for r in self.book.set_remaining(&updates) {
            (self.listener)(&MarketEvent::Updated(r));
        }
        self.stats.deals_proposed.fetch_add(deals.len() as u64, Ordering::Relaxed);
        for (id, deal) in ids.into_iter().zip(deals) {
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
