//! What the chain side (chain sync, the settler) hands to the market, and the market as the chain side sees it.
//!
//! Chain sync and the settler write the store first, then the market brings its book index and its engine in
//! line. They need the market, and the market reads the chain (`reads.rs`): to keep imports pointing one way
//! (market → chain), the chain side knows the market only as the trait [`BookKeeper`], defined here and implemented by
//! `market::Market`, and everything they exchange is a typed value of this module or of the store.

use crate::ids::{DealId, TaskId};
use crate::order::record::OrderRecord;
use crate::store::StoreError;
use crate::store::deals::DealRow;
use crate::store::settlement_txs::Record;
use std::future::Future;
use std::pin::Pin;

/// What the chain did to the book, already written to the store by chain sync or by a settlement failure; the
/// market brings the book index and the engine in line, in this order: closes, lowers, releases,
/// confirmations (`market/chain.rs` says why).
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
    /// New deals on chain, for the feed.
    pub deals: Vec<DealRow>,
    /// Task changes on chain, for the feed.
    pub tasks: Vec<TaskUpdate>,
    /// Workerpools' track records, as the store now derives them, for those whose figures may have moved.
    pub records: Vec<(alloy::primitives::Address, crate::store::track_records::TrackRecord)>,
}

impl ChainUpdate {
    pub fn is_empty(&self) -> bool {
        self.confirmed.is_empty()
            && self.released.is_empty()
            && self.closed.is_empty()
            && self.recomputed.is_empty()
            && self.deals.is_empty()
            && self.tasks.is_empty()
            && self.records.is_empty()
    }
}

/// A task event chain sync applied, with the deal it belongs to when the store knows it.
#[derive(Debug, Clone)]
pub struct TaskUpdate {
    pub chain_id: u64,
    pub task_id: TaskId,
    /// The deal, the task's index in it, and the deal's category.
    pub deal: Option<(DealId, u64, u64)>,
    /// `TaskInitialize`, `TaskContribute`, ... as the hub names them.
    pub event: &'static str,
    pub block_number: u64,
}

/// The ids of the deals the engine proposes, in the order it proposed them, for the settler: what
/// `market::Market::start` hands back (a proposal queued twice is settled once).
pub type Proposals = tokio::sync::mpsc::UnboundedReceiver<i64>;

/// Store work run while the engine is stopped, before it is rebuilt from the store (a reorg's rollback).
pub type RebuildStep = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

/// A future the market runs for the chain side.
pub type BookFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BookError>> + Send + 'a>>;

/// Why the market did not do what the chain side asked (shutting down, store unavailable).
pub type BookError = Box<dyn std::error::Error + Send + Sync>;

/// Whether the market refused a write because the caller's lease tenure is over ([`StoreError::Fenced`]): the
/// caller must stop, not retry.
pub fn is_fenced(e: &BookError) -> bool {
    match e.downcast_ref::<crate::market::MarketError>() {
        Some(crate::market::MarketError::Store(s)) => s.is_fenced(),
        _ => e.downcast_ref::<StoreError>().is_some_and(StoreError::is_fenced),
    }
}

/// The market, as chain sync and the settler use it.
pub trait BookKeeper: Send + Sync {
    /// Held by chain sync and by settlement failures from their store transaction until the market has applied
    /// it, so the market applies chain changes in the order the store committed them (each recomputed volume
    /// then includes every earlier change).
    fn chain_lock(&self) -> &tokio::sync::Mutex<()>;

    /// Brings the book and the engine in line with what the chain did (already in the store).
    fn apply(&self, update: ChainUpdate) -> BookFuture<'_, ()>;

    /// Stops the engine, runs `before` on the store, and rebuilds the book and the engine from the store.
    fn rebuild(&self, before: RebuildStep) -> BookFuture<'_, usize>;

    /// Settlement failed for these proposals (with their reasons): the market records it in the store together
    /// with `record` (how the transaction ended) in one transaction, decides what the failure does to their
    /// orders, and gives their volume back to the book. An error leaves the store untouched: call again.
    fn settlement_failed<'a>(
        &'a self,
        failures: &'a [(i64, String)],
        record: &'a Record,
        fence: Option<&'a crate::store::leases::Fence>,
    ) -> BookFuture<'a, ()>;
}
