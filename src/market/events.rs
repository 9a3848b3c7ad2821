//! The event writer: what the matching thread did (deal proposals, remaining volumes), written to the store in
//! ONE transaction per batch of events, in engine order, then applied to the book index and told to the feed
//! and the settler. The engine never waits for it (an unbounded channel); it never gives up a write (the
//! engine has moved on, so the write is retried until the store takes it).

use super::book::Book;
use super::sequencer::{EngineSlot, Gone, Op};
use super::{Listener, MarketEvent, MarketStats};
use crate::ids::OrderHash;
use crate::order::record::OrderStatus;
use crate::store::{Store, StoreError};
use dragon_matching as m;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Writes what the engine did, in engine order, and only then tells the book, the feed and the settler.
pub(super) struct EventWriter {
    pub(super) store: Store,
    pub(super) book: Arc<Book>,
    pub(super) listener: Listener,
    pub(super) chain_id: u64,
    pub(super) stats: Arc<MarketStats>,
    pub(super) engine: Arc<EngineSlot>,
    /// The sequencer's queue, for sweeps after app or dataset orders were filled.
    pub(super) ops: mpsc::WeakSender<Op>,
    /// The settler's queue: each new proposal's id, once it is stored.
    pub(super) proposals: mpsc::UnboundedSender<i64>,
}

impl EventWriter {
    pub(super) async fn run(self, mut rx: mpsc::UnboundedReceiver<Vec<m::Event>>) {
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
            // No settler (no operator key): nobody receives, and the proposals wait in the store.
            let _ = self.proposals.send(id);
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
