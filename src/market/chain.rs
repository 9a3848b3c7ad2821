//! Chain updates: what chain sync and the settler report (deals settled, proposals failed, orders cancelled or
//! dead on chain, reorgs) brought into the book index and the engine, after the store has it, and in the order
//! the store committed it. Also what a settlement failure does to the book and the store
//! ([`Market::settlement_failed`]): the settler only reports it.
//!
//! The market meets the chain side here, through [`BookKeeper`], the trait chain sync and the settler hold: imports go
//! from the market to the chain, never back.

use super::sequencer::{Gone, Sequencer, scope};
use super::{Market, MarketError, MarketEvent};
use crate::chain::update::{BookFuture, BookKeeper, ChainUpdate, RebuildStep};
use crate::ids::OrderHash;
use crate::order::AnyOrder;
use crate::order::record::OrderStatus;
use crate::store::leases::Fence;
use crate::store::settlement_txs::Record;
use alloy::primitives::U256;
use dragon_matching as m;
use dragon_matching::pipeline::Input;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Failed settlements after which a request is given up as dead.
const MAX_FAILURES: i64 = 3;

impl Sequencer {
    /// Applies `u` to the book index and the engine, in this order, each step for a reason:
    ///
    /// 1. failed proposals are taken out of the engine's pending set first, so the caps below count only the
    ///    reservations that stay;
    /// 2. closed orders leave the book and the engine (a Cancel also drops what they had reserved), before any
    ///    volume comes back that could match them;
    /// 3. recomputed volumes: an order with no volume coming back is lowered now (the engine matches what it
    ///    holds at once, so it must never hold volume the chain has consumed); an order with volume coming back
    ///    is not lowered here but gets a cap for its release below, so the engine sets it in one step;
    /// 4. releases (`ReleaseCapped`): each order of a failed proposal gets its volume back, capped at what the
    ///    chain still has of it plus what the engine still reserves on it, so released volume never exceeds the
    ///    chain's and an order that someone else consumed meanwhile keeps its time priority;
    /// 5. confirmations: a settled proposal's reservation becomes consumption (it cannot come back any more);
    /// 6. workerpools' track records, once the volumes are right, since a better record matches again;
    /// 7. deals and task changes go to the feed, after the book is right.
    ///
    /// Returns the app and dataset orders that left the book, and whether the engine must be rebuilt from the
    /// store: a proposal made before the engine was (re)built, kept pending because its transaction could still
    /// land, failed since; the engine never held its reservation, so only the store knows the volume that comes
    /// back.
    pub(super) fn apply_chain(&mut self, u: ChainUpdate) -> (Gone, bool) {
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
        // Last: a better record may match the pool's orders again, against the book as the chain now leaves it.
        for (pool, record) in &u.records {
            self.submit(Input::TrackRecord { workerpool: m::Address(pool.0.0), record: record.all_time.engine() });
        }
        if !u.records.is_empty() {
            self.book.set_records(u.records);
        }
        for d in u.deals {
            (self.listener)(&MarketEvent::DealCreated(Box::new(d)));
        }
        for t in u.tasks {
            (self.listener)(&MarketEvent::TaskUpdated(t));
        }
        (gone, unknown)
    }

    /// Applies a chain update, then rebuilds the engine if the update released volume it never held; returns the
    /// app and dataset orders that left the book.
    pub(super) async fn chain(&mut self, update: ChainUpdate) -> Gone {
        let (gone, unknown) = self.apply_chain(update);
        if unknown && self.owned.is_some() {
            // In a cluster the proposal may be another owner's: failing every unsent proposal here would fail
            // theirs. The store already has the volume back; this engine takes it by a rebuild, and the owner by
            // the change it receives (`Sequencer::remote`).
            tracing::info!("a proposal this engine does not hold failed: rebuilding the engine from the store");
            if let Err(e) = self.rebuild(Mutex::new(None)).await {
                tracing::error!(error = %e, "rebuilding the engine failed");
            }
        } else if unknown {
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
}

impl BookKeeper for Market {
    fn chain_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.chain_lock
    }

    fn apply(&self, update: ChainUpdate) -> BookFuture<'_, ()> {
        Box::pin(async move { Ok(self.chain_update(update).await?) })
    }

    fn rebuild(&self, before: RebuildStep) -> BookFuture<'_, usize> {
        Box::pin(async move { Ok(Market::rebuild(self, before).await?) })
    }

    fn settlement_failed<'a>(
        &'a self,
        failures: &'a [(i64, String)],
        record: &'a Record,
        fence: Option<&'a Fence>,
    ) -> BookFuture<'a, ()> {
        Box::pin(async move { Ok(self.settlement_failed(failures, record, fence).await?) })
    }
}

impl Market {
    /// Fails proposals and gives their volume back to the book: each order is first set to what the chain
    /// and the other pending proposals leave of it (never more than the chain says is left), an order the
    /// failure shows to be unusable is closed as dead, and only then is the reservation released. `record` (how
    /// the settler's transaction ended) is written in the same store transaction, so a crash never records one
    /// without the other. An error leaves the store as it was: the settler calls again, unless the error is
    /// [`StoreError::Fenced`](crate::store::StoreError::Fenced): `fence` (the settler's lease tenure) is checked
    /// in the same store transaction, so a deposed settler records nothing.
    pub async fn settlement_failed(
        &self,
        failures: &[(i64, String)],
        record: &Record,
        fence: Option<&Fence>,
    ) -> Result<(), MarketError> {
        // Held from the store transaction until the book has it, as chain sync does (see `BookKeeper::chain_lock`).
        let _order = self.chain_lock.lock().await;
        let update = self.record_failures(failures, record, fence).await?;
        if let Err(e) = self.chain_update(update).await {
            tracing::warn!(error = %e, "the market did not take the failed proposals");
        }
        Ok(())
    }

    /// What a settlement failure does, in ONE store transaction with `record`: the proposals fail; orders the failure
    /// shows unusable die (the hub named them, their owner cannot back them any more, or a request failed
    /// [`MAX_FAILURES`] times: proposing them again would fail the same way); the remaining volume of every
    /// order involved is recomputed and capped by what the chain says is left of it (chain sync may not have seen
    /// a foreign deal yet). Returns what the book must apply.
    async fn record_failures(
        &self,
        failures: &[(i64, String)],
        record: &Record,
        fence: Option<&Fence>,
    ) -> Result<ChainUpdate, MarketError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        crate::store::leases::check_opt(&*tx, fence).await?;
        for (id, reason) in failures {
            tracing::info!(proposal = id, %reason, "settlement failed");
        }
        crate::store::settlement_txs::record(&*tx, self.chain_id, record).await?;
        if failures.is_empty() {
            tx.commit().await?;
            return Ok(ChainUpdate::default());
        }
        let failed = crate::store::proposals::fail(&*tx, failures).await?;
        let mut hashes: Vec<OrderHash> = failed.iter().flat_map(|p| p.orders().collect::<Vec<_>>()).collect();
        hashes.sort();
        hashes.dedup();
        // Orders a reason names as unusable on chain (owner changed, signature no longer valid).
        let mut dead = Vec::new();
        for p in &failed {
            if let Some(h) = p.reason.as_deref().and_then(|r| crate::chain::revert::unusable_order(p, r)) {
                dead.push(h);
            }
        }
        // Orders whose owner can no longer back them (the hub refused the payment or the pool's stake), and
        // requests that failed again and again: proposing them once more would fail the same way.
        let orders = crate::store::orders::get_many(&*tx, &hashes).await?;
        for o in &orders {
            let required = crate::order::required_stake(&o.order, U256::from(o.remaining.max(1)));
            if !required.is_zero() {
                let account = match &o.order {
                    AnyOrder::Workerpool(w) => {
                        self.reader.owner(crate::order::OrderKind::Workerpool, w.workerpool).await?
                    }
                    _ => o.signer,
                };
                if self.reader.stake_fresh(account).await? < required {
                    dead.push(o.hash);
                }
            }
            if matches!(o.order, AnyOrder::Request(_)) {
                let n = crate::store::proposals::own_failures(&*tx, &o.hash).await?;
                if n >= MAX_FAILURES {
                    dead.push(o.hash);
                }
            }
        }
        dead.sort();
        dead.dedup();
        for h in &dead {
            tracing::info!(order = %h, "order closed as dead: its settlement cannot succeed");
        }
        let closed =
            crate::store::orders::close_at_block(&*tx, &dead, OrderStatus::Dead, 0, "refused by the hub").await?;
        // The chain's consumed volume bounds what can come back, even before chain sync has seen why.
        let mut recomputed = crate::store::orders::recompute(&*tx, &hashes).await?;
        let consumed = futures_util::future::join_all(recomputed.iter().map(|r| self.reader.consumed(r.hash))).await;
        let mut capped = Vec::new();
        for (r, c) in recomputed.iter_mut().zip(consumed) {
            let Ok(c) = c else { continue };
            let left = U256::from(r.volume()).saturating_sub(c);
            let left = u64::try_from(left).unwrap_or(u64::MAX);
            if left < r.remaining {
                r.remaining = left;
                if left == 0 {
                    r.status = OrderStatus::Filled;
                }
                capped.push((r.hash, left));
            }
        }
        crate::store::orders::set_remaining(&*tx, &capped).await?;
        tx.commit().await?;
        Ok(ChainUpdate {
            released: failed.iter().map(|p| (p.id, p.reason.clone().unwrap_or_default())).collect(),
            closed,
            recomputed,
            ..ChainUpdate::default()
        })
    }
}
