//! The event writer: what the matching thread did (deal proposals, remaining volumes), written to the store in
//! ONE transaction per batch of events, in engine order, then applied to the book index and told to the feed
//! and the settler. The engine never waits for it (an unbounded channel); it never gives up a write (the
//! engine has moved on, so the write is retried until the store takes it).

use super::book::Book;
use super::sequencer::{EngineSlot, Gone, Op};
use super::{Listener, MarketEvent, MarketStats};
use crate::cluster::owner::Owned;
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
    /// In a cluster, the categories this engine was built for, with their tenures (fixed for the engine's life:
    /// any change rebuilds it). `None`: a single instance.
    pub(super) owned: Option<Owned>,
    /// Set once a write was refused for good (a tenure over, an app or dataset order promised elsewhere): this
    /// engine's view is no longer the store's, so everything it still says is dropped until it is rebuilt.
    pub(super) diverged: bool,
}

/// Why a batch of engine events was not written.
enum WriteError {
    /// Worth retrying: the store is away.
    Store(StoreError),
    /// Never worth retrying: the tenure is over. The lease's keeper steps down (at once, or at its next
    /// renewal), and the new set of categories rebuilds the engine.
    Fenced(String),
    /// Never worth retrying: another owner promised these app or dataset orders' volume first. The engine is
    /// rebuilt from the store now.
    Overdrawn(String),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        if e.is_fenced() { WriteError::Fenced(e.to_string()) } else { WriteError::Store(e) }
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Store(e.into())
    }
}

impl EventWriter {
    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Vec<m::Event>>) {
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

    async fn write(&mut self, events: &[m::Event]) {
        if self.diverged {
            return;
        }
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
                // In a cluster, chain updates name orders of categories this engine does not hold: expected.
                m::Event::Rejected { subject, reason } if self.owned.is_some() => {
                    tracing::debug!(?subject, ?reason, "engine rejected a command");
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
        let mut updates: Vec<(OrderHash, u64)> = order.iter().map(|h| (*h, remaining[h])).collect();
        // The engine has moved on; these writes must happen. Retry until the store takes them.
        let mut delay = Duration::from_millis(50);
        let (ids, assets) = loop {
            match self.try_write(&updates, &deals).await {
                Ok(written) => break written,
                Err(WriteError::Store(e)) => {
                    tracing::error!(error = %e, "writing matching results failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(WriteError::Fenced(why)) => {
                    // Rebuilding now would give the engine the same categories and the same refusal: the keeper's
                    // step-down (`Op::Own`) rebuilds it, and until then it says nothing more.
                    tracing::warn!(%why, deals = deals.len(), "matching results refused by the fence: dropped until the engine is rebuilt");
                    self.diverged = true;
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(WriteError::Overdrawn(why)) => {
                    tracing::warn!(%why, deals = deals.len(), "matching results refused: the engine is rebuilt from the store");
                    self.diverged = true;
                    self.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    if let Some(ops) = self.ops.upgrade() {
                        let (reply, _) = tokio::sync::oneshot::channel();
                        let _ = ops.try_send(Op::Rebuild { before: std::sync::Mutex::new(None), reply });
                    }
                    return;
                }
            }
        };
        // App and dataset orders as the store counts them, other owners' proposals included: the book shows
        // that, and the engine is lowered to it where it believed more.
        for (h, left) in assets {
            if let Some(u) = updates.iter_mut().find(|u| u.0 == h)
                && left < u.1
            {
                u.1 = left;
                if let (Some(s), Some(r)) = (self.engine.submitter(), self.book.get(&h)) {
                    let scope = super::sequencer::scope(&r);
                    let _ = s.submit(dragon_matching::pipeline::Input::Lower {
                        hash: m::OrderHash(h.0.0),
                        remaining: left,
                        scope,
                    });
                }
            }
        }
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

    /// One transaction: the proposals and the volumes. In a cluster, under the tenures of every category
    /// involved, and with app and dataset orders (shared by every owner) reserved in the store: locked, counted
    /// with every owner's proposals, refused when over, and set to what the store counts (returned).
    async fn try_write(
        &self,
        updates: &[(OrderHash, u64)],
        deals: &[m::Deal],
    ) -> Result<(Vec<i64>, Vec<(OrderHash, u64)>), WriteError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let Some(owned) = &self.owned else {
            crate::store::orders::set_remaining(&*tx, updates).await?;
            let ids = crate::store::proposals::insert(&*tx, self.chain_id, deals).await?;
            tx.commit().await?;
            return Ok((ids, Vec::new()));
        };
        let category = |h: &OrderHash| self.book.get(h).and_then(|r| r.category());
        let mut fences = Vec::new();
        for c in deals.iter().map(|d| d.category).chain(updates.iter().filter_map(|(h, _)| category(h))) {
            let f = owned.get(&c).ok_or_else(|| WriteError::Fenced(format!("category {c} is not owned here")))?;
            if !fences.contains(&f) {
                fences.push(f);
            }
        }
        crate::store::leases::check_all(&*tx, &fences).await?;
        let mut assets: Vec<OrderHash> = deals
            .iter()
            .flat_map(|d| [Some(d.app), d.dataset])
            .flatten()
            .map(|h| OrderHash(h.0.into()))
            .chain(updates.iter().filter(|(h, _)| category(h).is_none()).map(|(h, _)| *h))
            .collect();
        assets.sort();
        assets.dedup();
        let own: Vec<(OrderHash, u64)> = updates.iter().filter(|(h, _)| !assets.contains(h)).copied().collect();
        crate::store::orders::set_remaining(&*tx, &own).await?;
        let ids = crate::store::proposals::insert(&*tx, self.chain_id, deals).await?;
        let over = crate::store::orders::overdrawn(&*tx, &assets).await?;
        if !over.is_empty() {
            return Err(WriteError::Overdrawn(format!(
                "{} app or dataset order(s) promised by another owner first",
                over.len()
            )));
        }
        let left = crate::store::orders::recompute(&*tx, &assets).await?;
        tx.commit().await?;
        Ok((ids, left.into_iter().map(|r| (r.hash, r.remaining)).collect()))
    }
}
