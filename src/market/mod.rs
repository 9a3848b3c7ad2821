//! The market: publication, the matching engine, and the durable record of both. Each box of the path of an order
//! (docs/architecture.md) is one file:
//!
//! ```text
//!  API handler ── Market::check (publish.rs: rules, signature, chain reads) ──▶ Market::publish (here)
//!                                                                       │ mpsc
//!  sequencer.rs: takes every waiting publication and unpublication, gives arrival numbers, writes them in
//!  ONE transaction (group commit), then: book (book.rs, the read index), engine ◀─ Add/Cancel, answers
//!                                                                       │
//!  matching writer thread (dragon_matching::pipeline, one shard): Engine::apply ── events ──▶ channel
//!                                                                       │
//!  events.rs: deal proposals + new remaining volumes in ONE transaction, then the book, the feed, and the
//!  proposal ids to the settler (the queue `Market::start` returns)
//!                                                                       │
//!  chain.rs: what chain sync and the settler report (settlements, failures, cancellations, reorgs), applied to
//!  the book and the engine in the store's commit order
//! ```
//!
//! Why this order: an order is durable before it is answered (200) and before the engine sees it, so nothing the
//! engine matched can be lost with the order. Engine events are written after their orders, in engine order;
//! after a crash the open orders are re-added in arrival order with their stored remaining volumes, which
//! reproduces the book, and re-proposes any deal whose events were not yet written (the engine is
//! deterministic, and the book is quiescent: no compatible combination rests in it).
//!
//! The order record and its engine view live in `order/` (`record.rs`, `convert.rs`), re-exported here.

pub mod book;
mod chain;
mod events;
pub mod explain;
pub mod publish;
mod sequencer;

pub use crate::order::{convert, record};
pub use convert::engine_order;
pub use publish::PublishError;

use crate::chain::ChainError;
use crate::chain::reads::ChainReader;
use crate::chain::update::{ChainUpdate, Proposals, RebuildStep, TaskUpdate};
use crate::ids::OrderHash;
use crate::order::{Domain, OrderKind};
use crate::store::deals::DealRow;
use crate::store::{Store, StoreError};
use alloy::primitives::U256;
use book::Book;
use dragon_matching as m;
use record::{OrderRecord, OrderStatus};
pub use sequencer::BookChange;
use sequencer::{EngineSlot, Op, Sequencer};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
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
    /// A deal appeared on chain (whoever matched it).
    DealCreated(Box<DealRow>),
    /// A task changed status on chain.
    TaskUpdated(TaskUpdate),
}

pub type Listener = Arc<dyn Fn(&MarketEvent) + Send + Sync>;

/// Why the market could not do what it was asked, whatever the order: what it depends on is unavailable. A
/// refusal of the order itself is a [`PublishError`].
#[derive(Debug, thiserror::Error)]
pub enum MarketError {
    #[error("the chain is unavailable: {0}")]
    Chain(#[from] ChainError),
    #[error("the store is unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("the matching engine is unavailable")]
    MatchingDown,
    #[error("the exchange is shutting down")]
    ShuttingDown,
    /// A cluster: no instance owns the category now (its owner died and the next has not taken over yet, or
    /// ownership moved while the order was on its way). Worth retrying after a few seconds.
    #[error("no instance of the cluster owns category {category} now; retry in a few seconds")]
    NoOwner { category: u64 },
    /// A cluster: the instances could not reach each other.
    #[error("the cluster's message bus is unavailable: {0}")]
    Cluster(String),
}

impl From<tokio_postgres::Error> for MarketError {
    fn from(e: tokio_postgres::Error) -> Self {
        MarketError::Store(e.into())
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct MarketStats {
    pub published: AtomicU64,
    pub commits: AtomicU64,
    pub deals_proposed: AtomicU64,
    pub unpublished: AtomicU64,
    /// Writes refused by a category's fence, or by the store's count of a shared app or dataset order (a
    /// cluster): each one made this instance drop what it believed and rebuild from the store.
    pub fenced: AtomicU64,
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
    /// Signature recovery off the async threads, in batches.
    recoverer: crate::order::recoverer::Recoverer,
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    /// See [`crate::chain::update::BookKeeper::chain_lock`].
    pub chain_lock: tokio::sync::Mutex<()>,
    engine: Arc<EngineSlot>,
    /// The sequencer's task.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// In a cluster, the categories this instance owns now (`cluster::owner`); `None` alone.
    owned: Option<tokio::sync::watch::Receiver<crate::cluster::owner::Owned>>,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market").field("chain_id", &self.chain_id).field("open", &self.book.len()).finish()
    }
}

impl Market {
    /// Rebuilds the book from the store and starts the sequencer, the matching thread and the event writer.
    /// Returns the market and the ids of the deals its engine proposes, for the settler. That queue exists
    /// before the engine does, so no proposal made while the engine rebuilds its book at start-up is missed.
    pub async fn start(
        store: Store,
        reader: Arc<ChainReader>,
        recoverer: crate::order::recoverer::Recoverer,
        config: MarketConfig,
        listener: Listener,
        owned: Option<tokio::sync::watch::Receiver<crate::cluster::owner::Owned>>,
    ) -> Result<(Arc<Market>, Proposals), StoreError> {
        let chain_id = reader.deployment().chain_id;
        let domain = Domain::new(U256::from(chain_id), reader.deployment().hub);
        let book = Arc::new(Book::default());
        let stats = Arc::new(MarketStats::default());
        let engine = Arc::new(EngineSlot::default());
        let (ops_tx, ops_rx) = mpsc::channel(1024);
        let (proposals, proposed) = mpsc::unbounded_channel();
        let mut seq = Sequencer {
            store: store.clone(),
            book: book.clone(),
            listener: listener.clone(),
            next_seq: 0,
            seq_end: 0,
            stats: stats.clone(),
            max_group: config.max_group,
            chain_id,
            engine: engine.clone(),
            submitter: None,
            ops: ops_tx.downgrade(),
            proposals,
            owned: owned.as_ref().map(|o| o.borrow().clone()),
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
            recoverer,
            ops: Mutex::new(Some(ops_tx)),
            chain_lock: tokio::sync::Mutex::new(()),
            engine,
            tasks: Mutex::new(Vec::new()),
            owned: owned.clone(),
        });
        let t1 = tokio::spawn(seq.run(ops_rx));
        if let Ok(mut t) = market.tasks.lock() {
            t.push(t1);
        }
        if let Some(mut owned) = owned {
            // Each change of the categories owned reaches the sequencer in its queue, after what came before.
            let ops = market.ops.lock().ok().and_then(|g| g.as_ref().map(mpsc::Sender::downgrade));
            tokio::spawn(async move {
                while owned.changed().await.is_ok() {
                    let now = owned.borrow_and_update().clone();
                    let Some(tx) = ops.as_ref().and_then(mpsc::WeakSender::upgrade) else { break };
                    if tx.send(Op::Own(now)).await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok((market, proposed))
    }

    fn sender(&self) -> Result<mpsc::Sender<Op>, MarketError> {
        self.ops.lock().ok().and_then(|g| g.clone()).ok_or(MarketError::ShuttingDown)
    }

    /// Publishes checked orders: durable, in the book and in the engine when this returns Ok. In a cluster,
    /// only orders of the categories this instance owns (and app and dataset orders, which no category owns);
    /// others get [`MarketError::NoOwner`] (`cluster::route` hands them to their owner).
    pub async fn publish(&self, records: Vec<OrderRecord>) -> Vec<Result<Arc<OrderRecord>, PublishError>> {
        if records.iter().any(|r| r.category().is_some_and(|c| !self.owns(c))) {
            let (mine, theirs): (Vec<_>, Vec<_>) =
                records.into_iter().enumerate().partition(|(_, r)| r.category().is_none_or(|c| self.owns(c)));
            let mut out: Vec<Option<Result<Arc<OrderRecord>, PublishError>>> =
                (0..mine.len() + theirs.len()).map(|_| None).collect();
            for (i, r) in theirs {
                out[i] = Some(Err(MarketError::NoOwner { category: r.category().unwrap_or_default() }.into()));
            }
            let (positions, mine): (Vec<usize>, Vec<OrderRecord>) = mine.into_iter().unzip();
            if !mine.is_empty() {
                for (i, res) in positions.into_iter().zip(Box::pin(self.publish(mine)).await) {
                    out[i] = Some(res);
                }
            }
            return out.into_iter().map(|o| o.unwrap_or_else(|| Err(MarketError::ShuttingDown.into()))).collect();
        }
        let n = records.len();
        let fail = || (0..n).map(|_| Err(MarketError::ShuttingDown.into())).collect();
        let Ok(tx) = self.sender() else { return fail() };
        let (reply, rx) = oneshot::channel();
        if tx.send(Op::Publish { records, reply }).await.is_err() {
            return fail();
        }
        rx.await.unwrap_or_else(|_| fail())
    }

    /// Takes open orders out of the book for good (`canceled` or `dead`); returns those that were open.
    pub async fn close(&self, hashes: Vec<OrderHash>, status: OrderStatus) -> Result<Vec<OrderHash>, MarketError> {
        self.close_op(hashes, Some(status)).await
    }

    /// Unpublishes open orders: out of the book and out of the store (the same signed order may be published
    /// again); returns those that were open. Requests left without a matchable app or dataset order die.
    pub async fn unpublish(&self, hashes: Vec<OrderHash>) -> Result<Vec<OrderHash>, MarketError> {
        self.close_op(hashes, None).await
    }

    async fn close_op(
        &self,
        hashes: Vec<OrderHash>,
        status: Option<OrderStatus>,
    ) -> Result<Vec<OrderHash>, MarketError> {
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Close { hashes, status, reply }).await.map_err(|_| MarketError::ShuttingDown)?;
        rx.await.map_err(|_| MarketError::ShuttingDown)?
    }

    /// Brings the book and the engine in line with what the chain did (already in the store).
    pub async fn chain_update(&self, update: ChainUpdate) -> Result<(), MarketError> {
        if update.is_empty() {
            return Ok(());
        }
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Chain { update, reply }).await.map_err(|_| MarketError::ShuttingDown)?;
        rx.await.map_err(|_| MarketError::ShuttingDown)
    }

    /// Stops the engine once every event it produced is written, runs `before` on the store, then rebuilds the
    /// book and the engine from the store, as a restart does. Publications wait meanwhile. Returns the number
    /// of open orders re-added. The engine's pending proposals are forgotten: `before` must settle their fate
    /// in the store (a reorg's rollback fails them, and the new engine proposes again what is still possible).
    pub async fn rebuild(&self, before: RebuildStep) -> Result<usize, MarketError> {
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(Op::Rebuild { before: Mutex::new(Some(before)), reply })
            .await
            .map_err(|_| MarketError::ShuttingDown)?;
        rx.await.map_err(|_| MarketError::ShuttingDown)?.map_err(MarketError::Store)
    }

    /// Whether this instance matches and writes `category`'s orders: always alone; in a cluster, while it holds
    /// the category's lease.
    pub fn owns(&self, category: u64) -> bool {
        self.owned.as_ref().is_none_or(|o| o.borrow().contains_key(&category))
    }

    /// In a cluster, the categories owned now; `None` alone.
    pub fn owned_categories(&self) -> Option<Vec<u64>> {
        self.owned.as_ref().map(|o| o.borrow().keys().copied().collect())
    }

    /// Applies what other instances changed in the book (see [`BookChange`]).
    pub async fn remote(&self, changes: Vec<BookChange>) -> Result<(), MarketError> {
        self.sender()?.send(Op::Remote(changes)).await.map_err(|_| MarketError::ShuttingDown)
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
        sequencer::stop_engine(&self.engine).await;
    }
}
