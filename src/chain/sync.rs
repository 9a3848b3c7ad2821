//! Chain sync: the hub's and the registries' events, applied to the store in chain order from a stored cursor.
//!
//! Each step reads the logs of a block range (up to the head minus the configured confirmations), and writes
//! everything they imply in ONE database transaction together with the new cursor and the hashes of the
//! blocks it applied. What it writes is keyed by block (deals, task events, the block that closed an order),
//! so undoing a reorg is deleting what the orphaned blocks brought and recomputing remaining volumes with the
//! same formula as always (`store::orders::recompute`). After each commit the market brings the book and the
//! engine in line; after a reorg the engine is rebuilt from the store, as at a restart.
//!
//! A restart resumes from the cursor: a range is either wholly applied with its cursor or not at all, and
//! every insert is keyed so that applying a range twice changes nothing.

use super::ChainError;
use super::contracts::app_registry::AppRegistry;
use super::contracts::hub::DragonHub;
use super::deploy::Deployment;
use super::reads::ChainReader;
use super::settler::SettlerHandle;
use super::update::{BookKeeper, ChainUpdate, TaskUpdate};
use crate::ids::{DealId, OrderHash, TaskId};
use crate::order::OrderKind;
use crate::order::record::{OrderRecord, OrderStatus};
use crate::store::deals::{DealRow, Resource, TaskChange, TaskEvent};
use crate::store::order_marks::{Mark, MarkRow};
use crate::store::orders::LiveBy;
use crate::store::{Store, StoreError};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Sync settings.
#[derive(Debug, Clone, Copy)]
pub struct SyncConfig {
    /// Blocks below the head before a block is applied (0 on a local anvil: blocks are final at once, and a
    /// reorg is undone when it comes).
    pub confirmations: u64,
    /// How often the head is polled when nothing wakes sync earlier.
    pub poll: Duration,
    /// Most blocks per range (one `eth_getLogs`, one transaction).
    pub max_range: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { confirmations: 0, poll: Duration::from_millis(500), max_range: 2_000 }
    }
}

#[derive(Debug, Default)]
pub struct SyncStats {
    /// The chain's head at the last poll.
    pub head: AtomicU64,
    /// The last block applied.
    pub cursor: AtomicU64,
    pub deals: AtomicU64,
    pub reorgs: AtomicU64,
    pub ranges: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Logs and headers disagree: the chain moved during the read. Retried.
    #[error("the chain changed while block {0} was read")]
    Moving(u64),
    #[error("reorg deeper than the {0} recorded blocks: rebuild the database from the chain")]
    TooDeep(i64),
}

impl From<alloy::transports::TransportError> for SyncError {
    fn from(e: alloy::transports::TransportError) -> Self {
        SyncError::Chain(e.into())
    }
}

impl From<alloy::contract::Error> for SyncError {
    fn from(e: alloy::contract::Error) -> Self {
        SyncError::Chain(e.into())
    }
}

impl From<tokio_postgres::Error> for SyncError {
    fn from(e: tokio_postgres::Error) -> Self {
        SyncError::Store(e.into())
    }
}

pub struct ChainSync {
    store: Store,
    reader: Arc<ChainReader>,
    provider: DynProvider,
    deployment: Deployment,
    config: SyncConfig,
    market: Option<Arc<dyn BookKeeper>>,
    settler: Option<SettlerHandle>,
    pub wake: Arc<Notify>,
    pub stats: Arc<SyncStats>,
}

impl std::fmt::Debug for ChainSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSync").field("config", &self.config).finish()
    }
}

/// What one range brings, before it is written.
#[derive(Default)]
struct Range {
    deals: Vec<DealRow>,
    task_events: Vec<TaskEvent>,
    cancelled: Vec<(OrderHash, u64)>,
    categories: Vec<(crate::store::categories::Category, crate::store::categories::Created)>,
    /// (registry kind, asset, new owner, block)
    transfers: Vec<(OrderKind, Address, Address, u64)>,
    /// Accounts whose free stake went down, with the last block that changed it.
    stake_down: BTreeMap<Address, u64>,
    /// Every account an escrow event names: the reader's stake index re-reads those it holds.
    stake_changed: BTreeSet<Address>,
    marks: Vec<crate::store::order_marks::MarkRow>,
    /// (number, hash, timestamp) of the blocks recorded for reorg detection; the last one's time is the chain
    /// time track records are computed at.
    hashes: Vec<(u64, B256, u64)>,
}

impl ChainSync {
    pub fn new(store: Store, reader: Arc<ChainReader>, provider: DynProvider, config: SyncConfig) -> Self {
        let deployment = reader.deployment().clone();
        ChainSync {
            store,
            reader,
            provider,
            deployment,
            config,
            market: None,
            settler: None,
            wake: Arc::new(Notify::new()),
            stats: Arc::default(),
        }
    }

    /// From now on, applied changes go to the market, and reorgs pause the settler.
    pub fn attach(&mut self, market: Arc<dyn BookKeeper>, settler: Option<SettlerHandle>) {
        self.market = Some(market);
        self.settler = settler;
    }

    fn chain_id(&self) -> u64 {
        self.deployment.chain_id
    }

    /// Applies ranges until the cursor reaches the confirmed head.
    pub async fn catch_up(&self) -> Result<(), SyncError> {
        while self.step().await? {}
        Ok(())
    }

    /// Runs until `stop` resolves; errors are logged and retried.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut delay = self.config.poll;
        loop {
            let progressed = match self.step().await {
                Ok(p) => {
                    delay = self.config.poll;
                    p
                }
                Err(e) => {
                    tracing::warn!(error = %e, "chain sync step failed; retrying");
                    delay = (delay * 2).min(Duration::from_secs(10));
                    false
                }
            };
            if progressed {
                continue;
            }
            tokio::select! {
                () = &mut stop => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
        tracing::debug!("chain sync stopped");
    }

    /// One step: undo a reorg if there was one, else apply the next range. Returns whether it did anything.
    pub async fn step(&self) -> Result<bool, SyncError> {
        let head = self.provider.get_block_number().await?;
        self.stats.head.store(head, Ordering::Relaxed);
        let client = self.store.client().await?;
        let cursor = crate::store::sync::cursor(&**client, self.chain_id())
            .await?
            .unwrap_or(self.deployment.block_number.saturating_sub(1));
        let last = crate::store::sync::recent(&**client, self.chain_id(), 1).await?;
        drop(client);
        self.stats.cursor.store(cursor, Ordering::Relaxed);
        if let Some(&(n, h)) = last.first()
            && self.hash_at(n).await? != Some(h)
        {
            self.undo_reorg().await?;
            return Ok(true);
        }
        let safe = head.saturating_sub(self.config.confirmations);
        if cursor >= safe {
            return Ok(false);
        }
        let from = cursor + 1;
        let to = safe.min(from + self.config.max_range - 1);
        self.apply_range(from, to).await?;
        self.stats.cursor.store(to, Ordering::Relaxed);
        self.stats.ranges.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    async fn hash_at(&self, n: u64) -> Result<Option<B256>, SyncError> {
        Ok(self.provider.get_block_by_number(n.into()).await?.map(|b| b.header.hash))
    }

    async fn apply_range(&self, from: u64, to: u64) -> Result<(), SyncError> {
        let d = &self.deployment;
        let filter = Filter::new()
            .address(vec![d.hub, d.app_registry, d.dataset_registry, d.workerpool_registry])
            .from_block(from)
            .to_block(to);
        let mut logs = self.provider.get_logs(&filter).await?;
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        // Every block that carried an event, and the range's last block: their hashes are checked against
        // the logs now and against the chain at each later step (reorg detection).
        let mut numbers: BTreeSet<u64> = logs.iter().filter_map(|l| l.block_number).collect();
        numbers.insert(to);
        let mut headers: HashMap<u64, (B256, u64)> = HashMap::new();
        for n in numbers {
            let b = self.provider.get_block_by_number(n.into()).await?.ok_or(SyncError::Moving(n))?;
            headers.insert(n, (b.header.hash, b.header.timestamp));
        }
        for l in &logs {
            let n = l.block_number.unwrap_or_default();
            if l.removed || l.block_hash != headers.get(&n).map(|h| h.0) {
                return Err(SyncError::Moving(n));
            }
        }
        let mut range = Range { hashes: headers.iter().map(|(n, h)| (*n, h.0, h.1)).collect(), ..Range::default() };
        range.hashes.sort();
        for l in &logs {
            self.read_log(l, &headers, &mut range).await?;
        }
        let _order = match &self.market {
            Some(m) => Some(m.chain_lock().lock().await),
            None => None,
        };
        let update = self.write_range(from, to, range).await?;
        if let Some(m) = &self.market
            && let Err(e) = m.apply(update).await
        {
            tracing::warn!(error = %e, "the market did not take chain changes (stored; applied at restart)");
        }
        Ok(())
    }

    async fn read_log(&self, l: &Log, headers: &HashMap<u64, (B256, u64)>, r: &mut Range) -> Result<(), SyncError> {
        let d = &self.deployment;
        let block = l.block_number.unwrap_or_default();
        let log_index = l.log_index.unwrap_or_default() as u32;
        let topic = l.topic0().copied().unwrap_or_default();
        let address = l.address();
        if address != d.hub {
            if topic == AppRegistry::Transfer::SIGNATURE_HASH
                && let Ok(t) = l.log_decode::<AppRegistry::Transfer>()
                && t.inner.data.from != Address::ZERO
            {
                let kind = if address == d.app_registry {
                    OrderKind::App
                } else if address == d.dataset_registry {
                    OrderKind::Dataset
                } else {
                    OrderKind::Workerpool
                };
                let asset = Address::from_word(B256::from(t.inner.data.tokenId));
                r.transfers.push((kind, asset, t.inner.data.to, block));
            }
            return Ok(());
        }
        macro_rules! ev {
            ($t:ty) => {
                l.log_decode::<$t>().ok().map(|x| x.inner.data)
            };
        }
        let mark = |hash: OrderHash, mark: Mark| MarkRow { hash, block_number: block, log_index, mark };
        let task_event = |task: B256, change: TaskChange| TaskEvent {
            task_id: TaskId(task),
            block_number: block,
            block_timestamp: headers.get(&block).map_or(0, |h| h.1),
            log_index,
            change,
        };
        match topic {
            t if t == DragonHub::OrdersMatched::SIGNATURE_HASH => {
                let Some(e) = ev!(DragonHub::OrdersMatched) else { return Ok(()) };
                let timestamp = headers.get(&block).map_or(0, |h| h.1);
                let tx_hash = l.transaction_hash.unwrap_or_default();
                r.deals.push(self.deal_row(e, block, timestamp, tx_hash, log_index).await?);
            }
            t if t == DragonHub::ClosedAppOrder::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::ClosedAppOrder) {
                    r.cancelled.push((OrderHash(e.appHash), block));
                    r.marks.push(mark(OrderHash(e.appHash), Mark::Closed));
                }
            }
            t if t == DragonHub::ClosedDatasetOrder::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::ClosedDatasetOrder) {
                    r.cancelled.push((OrderHash(e.datasetHash), block));
                    r.marks.push(mark(OrderHash(e.datasetHash), Mark::Closed));
                }
            }
            t if t == DragonHub::ClosedWorkerpoolOrder::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::ClosedWorkerpoolOrder) {
                    r.cancelled.push((OrderHash(e.workerpoolHash), block));
                    r.marks.push(mark(OrderHash(e.workerpoolHash), Mark::Closed));
                }
            }
            t if t == DragonHub::ClosedRequestOrder::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::ClosedRequestOrder) {
                    r.cancelled.push((OrderHash(e.requestHash), block));
                    r.marks.push(mark(OrderHash(e.requestHash), Mark::Closed));
                }
            }
            t if t == DragonHub::CreateCategory::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::CreateCategory) {
                    let c = crate::store::categories::Category {
                        catid: u64::try_from(e.catid).unwrap_or(u64::MAX),
                        chain_id: self.chain_id(),
                        name: e.name,
                        description: e.description,
                        work_clock_time_ref: u64::try_from(e.workClockTimeRef).unwrap_or(u64::MAX),
                    };
                    let created = crate::store::categories::Created {
                        block,
                        timestamp: headers.get(&block).map_or(0, |h| h.1),
                        tx_hash: l.transaction_hash.unwrap_or_default(),
                    };
                    r.categories.push((c, created));
                }
            }
            t if t == DragonHub::SignedAppOrder::SIGNATURE_HASH
                || t == DragonHub::SignedDatasetOrder::SIGNATURE_HASH
                || t == DragonHub::SignedWorkerpoolOrder::SIGNATURE_HASH
                || t == DragonHub::SignedRequestOrder::SIGNATURE_HASH =>
            {
                // Each carries the order hash as its only (unindexed) word; the hub keeps who presigned.
                if let Some(word) = l.data().data.get(..32) {
                    let hash = OrderHash(B256::from_slice(word));
                    let signer = self.reader.presigned(hash, Some(block)).await?;
                    r.marks.push(mark(hash, Mark::Presigned { signer }));
                }
            }
            // Free stake goes down: a withdrawal or transfer out, or a lock for a deal or a contribution.
            t if t == DragonHub::Transfer::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::Transfer) {
                    if e.from != Address::ZERO {
                        r.stake_down.insert(e.from, block);
                    }
                    r.stake_changed.extend([e.from, e.to].into_iter().filter(|a| *a != Address::ZERO));
                }
            }
            t if t == DragonHub::Lock::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::Lock) {
                    r.stake_down.insert(e.owner, block);
                    r.stake_changed.insert(e.owner);
                }
            }
            t if t == DragonHub::Unlock::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::Unlock) {
                    r.stake_changed.insert(e.owner);
                }
            }
            t if t == DragonHub::Reward::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::Reward) {
                    r.stake_changed.insert(e.owner);
                }
            }
            t if t == DragonHub::Seize::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::Seize) {
                    r.stake_changed.insert(e.owner);
                }
            }
            t if t == DragonHub::TaskInitialize::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::TaskInitialize) {
                    r.task_events.push(task_event(e.taskid, TaskChange::Initialize { workerpool: e.workerpool }));
                }
            }
            t if t == DragonHub::TaskContribute::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::TaskContribute) {
                    let change = TaskChange::Contribute { worker: e.worker, hash: e.hash };
                    r.task_events.push(task_event(e.taskid, change));
                }
            }
            t if t == DragonHub::TaskConsensus::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::TaskConsensus) {
                    r.task_events.push(task_event(e.taskid, TaskChange::Consensus { consensus: e.consensus }));
                }
            }
            t if t == DragonHub::TaskReveal::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::TaskReveal) {
                    let change = TaskChange::Reveal { worker: e.worker, digest: e.digest };
                    r.task_events.push(task_event(e.taskid, change));
                }
            }
            t if t == DragonHub::TaskReopen::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::TaskReopen) {
                    r.task_events.push(task_event(e.taskid, TaskChange::Reopen));
                }
            }
            t if t == DragonHub::TaskFinalize::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::TaskFinalize) {
                    r.task_events.push(task_event(e.taskid, TaskChange::Finalize { results: e.results }));
                }
            }
            t if t == DragonHub::TaskClaimed::SIGNATURE_HASH => {
                if let Some(e) = ev!(DragonHub::TaskClaimed) {
                    r.task_events.push(task_event(e.taskid, TaskChange::Claimed));
                }
            }
            // SchedulerNotice repeats what OrdersMatched says, for the pool.
            _ => {}
        }
        Ok(())
    }

    /// The deal as the hub stores it, read at the block that created it.
    async fn deal_row(
        &self,
        e: DragonHub::OrdersMatched,
        block: u64,
        timestamp: u64,
        tx_hash: B256,
        log_index: u32,
    ) -> Result<DealRow, SyncError> {
        let hub = DragonHub::new(self.deployment.hub, &self.provider);
        let deal = hub.viewDeal(e.dealid).block(block.into()).call().await?;
        let nz = |h: B256| (h != B256::ZERO).then_some(OrderHash(h));
        let id = DealId(e.dealid);
        let volume = u64::try_from(e.volume).unwrap_or(u64::MAX);
        let category = u64::try_from(deal.category).unwrap_or(u64::MAX);
        let bot_first = u64::try_from(deal.botFirst).unwrap_or(u64::MAX);
        let resource = |p: &super::contracts::hub::IexecLibCore_v5::Resource| Resource {
            pointer: p.pointer,
            owner: p.owner,
            price: p.price,
        };
        Ok(DealRow {
            deal_id: id,
            block_number: block,
            block_timestamp: timestamp,
            tx_hash,
            log_index,
            app_hash: OrderHash(e.appHash),
            dataset_hash: nz(e.datasetHash),
            workerpool_hash: OrderHash(e.workerpoolHash),
            request_hash: OrderHash(e.requestHash),
            volume,
            category,
            chain_id: self.chain_id(),
            app: resource(&deal.app),
            dataset: resource(&deal.dataset),
            workerpool: resource(&deal.workerpool),
            requester: deal.requester,
            beneficiary: deal.beneficiary,
            callback: deal.callback,
            bot_first,
            bot_size: u64::try_from(deal.botSize).unwrap_or(u64::MAX),
            trust: deal.trust,
            tag: deal.tag,
            params: deal.params,
            start_time: u64::try_from(deal.startTime).unwrap_or(u64::MAX),
            worker_stake: deal.workerStake,
            scheduler_reward_ratio: deal.schedulerRewardRatio,
            proposal_id: None,
        })
    }

    /// Writes a range and the cursor in one transaction; returns what the market must apply.
    async fn write_range(&self, from: u64, to: u64, mut r: Range) -> Result<ChainUpdate, SyncError> {
        let chain_id = self.chain_id();
        // Stakes are read before the transaction, at the range's last block.
        let mut stakes = HashMap::new();
        let mut accounts: BTreeSet<Address> = r.stake_down.keys().copied().collect();
        accounts.extend(self.reader.indexed_accounts(r.stake_changed.iter().copied()));
        let hub = DragonHub::new(self.deployment.hub, &self.provider);
        for account in accounts {
            stakes.insert(account, hub.viewAccount(account).block(to.into()).call().await?.stake);
        }
        let mut client = self.store.client().await?;
        let before = crate::store::track_records::chain_time(&**client, chain_id).await?.map(|a| a.timestamp);
        let tx = client.transaction().await?;
        let mut update = ChainUpdate::default();
        let mut touched: Vec<OrderHash> = Vec::new();
        // Deals: Dragon's own proposals are recognised by their orders (the settler may have replaced the
        // transaction, so its hash is only a preference), and become settled in this same transaction.
        for d in &mut r.deals {
            let orders = (d.app_hash, d.dataset_hash, d.workerpool_hash, d.request_hash);
            if let Some(id) = crate::store::proposals::pending_for_deal(&*tx, orders, d.tx_hash).await? {
                crate::store::proposals::settle(&*tx, id, d.deal_id.0).await?;
                d.proposal_id = Some(id);
                update.confirmed.push(id);
            }
            touched.extend(
                [Some(d.app_hash), d.dataset_hash, Some(d.workerpool_hash), Some(d.request_hash)].into_iter().flatten(),
            );
        }
        // Before the commit: publication skips its store read for hashes the store is known not to hold.
        self.store.note_hashes(
            r.deals
                .iter()
                .flat_map(|d| {
                    [Some(&d.app_hash), d.dataset_hash.as_ref(), Some(&d.workerpool_hash), Some(&d.request_hash)]
                })
                .flatten()
                .chain(r.marks.iter().map(|m| &m.hash)),
        );
        let inserted = crate::store::deals::insert(&*tx, chain_id, &r.deals).await?;
        crate::store::deals::insert_task_events(&*tx, chain_id, &r.task_events).await?;
        crate::store::order_marks::insert(&*tx, chain_id, &r.marks).await?;
        for (c, created) in &r.categories {
            crate::store::categories::insert_at(&*tx, c, *created).await?;
        }
        // Cancelled on chain.
        for (h, block) in &r.cancelled {
            update.closed.extend(
                crate::store::orders::close_at_block(&*tx, &[*h], OrderStatus::Canceled, *block, "cancelled on chain")
                    .await?,
            );
        }
        // Asset transfers: orders signed by the former owner no longer verify.
        for (kind, asset, new_owner, block) in &r.transfers {
            let orders = crate::store::orders::live_by(&*tx, LiveBy::Asset, *asset, &[*kind]).await?;
            let stale: Vec<OrderHash> = orders.iter().filter(|o| o.signer != *new_owner).map(|o| o.hash).collect();
            update.closed.extend(
                crate::store::orders::close_at_block(&*tx, &stale, OrderStatus::Dead, *block, "asset transferred")
                    .await?,
            );
        }
        touched.sort();
        touched.dedup();
        let recomputed = crate::store::orders::recompute(&*tx, &touched).await?;
        // Stakes that went down: orders the account can no longer back die, as the hub would refuse them.
        for (account, block) in &r.stake_down {
            let stake = stakes.get(account).copied().unwrap_or_default();
            let mut orders =
                crate::store::orders::live_by(&*tx, LiveBy::Owner, *account, &[OrderKind::Workerpool]).await?;
            orders.extend(crate::store::orders::live_by(&*tx, LiveBy::Signer, *account, &[OrderKind::Request]).await?);
            let short: Vec<OrderHash> = orders
                .iter()
                .filter(|o| o.remaining > 0 && crate::order::required_stake(&o.order, U256::from(o.remaining)) > stake)
                .map(|o| o.hash)
                .collect();
            update.closed.extend(
                crate::store::orders::close_at_block(&*tx, &short, OrderStatus::Dead, *block, "stake too low").await?,
            );
        }
        let closed: BTreeSet<OrderHash> = update.closed.iter().map(|o| o.hash).collect();
        update.recomputed = recomputed.into_iter().filter(|o| !closed.contains(&o.hash)).collect();
        crate::store::sync::advance(&*tx, chain_id, to, &r.hashes).await?;
        tx.commit().await?;

        self.stats.deals.fetch_add(inserted.len() as u64, Ordering::Relaxed);
        for (_, asset, owner, _) in &r.transfers {
            self.reader.set_owner(*asset, *owner);
        }
        for (account, stake) in &stakes {
            self.reader.set_stake(*account, *stake);
        }
        let client = self.store.client().await?;
        update.deals = r.deals.into_iter().filter(|d| inserted.contains(&d.deal_id)).collect();
        // Track records, for the engine: those of the pools whose figures this range may have moved (computed
        // after the commit, from the store as it now is; a pool that did not move gets the record it had, which
        // the engine ignores).
        let now = r.hashes.iter().max_by_key(|h| h.0).map(|h| h.2 as i64);
        let moved = crate::store::track_records::moved(&**client, chain_id, from, to, before, now).await?;
        if !moved.is_empty() {
            let records = crate::store::track_records::of(&**client, chain_id, Some(&moved)).await?;
            update.records = records.into_iter().collect();
        }
        for e in &r.task_events {
            let deal = crate::store::deals::task_deal(&**client, chain_id, e.task_id).await?;
            update.tasks.push(TaskUpdate {
                chain_id,
                task_id: e.task_id,
                deal,
                event: e.change.event(),
                block_number: e.block_number,
            });
        }
        Ok(update)
    }

    /// Finds where the stored chain and the node's chain part, and undoes everything above that point: the
    /// settler holds still, the engine stops, the store rolls back, and the engine is rebuilt from it.
    async fn undo_reorg(&self) -> Result<(), SyncError> {
        let recorded =
            crate::store::sync::recent(&**self.store.client().await?, self.chain_id(), crate::store::sync::KEPT_BLOCKS)
                .await?;
        let mut base = None;
        for (n, h) in &recorded {
            if self.hash_at(*n).await? == Some(*h) {
                base = Some(*n);
                break;
            }
        }
        let Some(base) = base else {
            return Err(SyncError::TooDeep(crate::store::sync::KEPT_BLOCKS));
        };
        let from = base + 1;
        tracing::warn!(from, "chain reorganised: undoing the orphaned blocks");
        let _paused = match &self.settler {
            Some(s) => Some(s.pause().await),
            None => None,
        };
        let store = self.store.clone();
        let chain_id = self.chain_id();
        let rollback = async move { rollback(&store, chain_id, from).await };
        match &self.market {
            Some(m) => {
                m.rebuild(Box::pin(rollback)).await.map_err(|e| SyncError::Store(StoreError::Pool(e.to_string())))?;
            }
            None => rollback.await?,
        }
        // Owners and stakes read from orphaned blocks are read again.
        self.reader.forget_indexed();
        // Transactions mined in the orphaned blocks are pending again: the settler follows them.
        if let Some(s) = &self.settler {
            s.wake();
        }
        self.stats.reorgs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads the hub's CreateCategory events from its deployment block, for a store whose categories lack them (a
/// database from before events were kept: chain sync has passed those blocks). Chain sync keeps them after.
pub async fn backfill_categories(
    store: &Store,
    provider: &DynProvider,
    deployment: &Deployment,
) -> Result<(), SyncError> {
    if !crate::store::categories::missing_events(&**store.client().await?, deployment.chain_id).await? {
        return Ok(());
    }
    let head = provider.get_block_number().await?;
    const SPAN: u64 = 10_000;
    let mut from = deployment.block_number;
    while from <= head {
        let to = head.min(from + SPAN - 1);
        let filter = Filter::new()
            .address(deployment.hub)
            .event_signature(DragonHub::CreateCategory::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        for l in provider.get_logs(&filter).await? {
            let Ok(e) = l.log_decode::<DragonHub::CreateCategory>() else { continue };
            let e = e.inner.data;
            let block = l.block_number.unwrap_or_default();
            let timestamp = provider.get_block_by_number(block.into()).await?.map_or(0, |b| b.header.timestamp);
            let c = crate::store::categories::Category {
                catid: u64::try_from(e.catid).unwrap_or(u64::MAX),
                chain_id: deployment.chain_id,
                name: e.name,
                description: e.description,
                work_clock_time_ref: u64::try_from(e.workClockTimeRef).unwrap_or(u64::MAX),
            };
            let created =
                crate::store::categories::Created { block, timestamp, tx_hash: l.transaction_hash.unwrap_or_default() };
            crate::store::categories::insert_at(&**store.client().await?, &c, created).await?;
        }
        from = to + 1;
    }
    Ok(())
}

/// Fills `order_marks` for the blocks chain sync passed before that table existed (a database from an earlier
/// version), from the hub's deployment block to the cursor, once: afterwards chain sync keeps it. Without this,
/// an order presigned or closed back then would be judged on an incomplete index.
pub async fn backfill_marks(store: &Store, reader: &ChainReader, provider: &DynProvider) -> Result<(), SyncError> {
    let deployment = reader.deployment();
    let chain_id = deployment.chain_id;
    let client = store.client().await?;
    if crate::store::order_marks::backfilled(&**client, chain_id).await? {
        return Ok(());
    }
    let cursor = crate::store::sync::cursor(&**client, chain_id).await?;
    drop(client);
    let mut rows = Vec::new();
    if let Some(cursor) = cursor {
        const SPAN: u64 = 10_000;
        let closed = [
            DragonHub::ClosedAppOrder::SIGNATURE_HASH,
            DragonHub::ClosedDatasetOrder::SIGNATURE_HASH,
            DragonHub::ClosedWorkerpoolOrder::SIGNATURE_HASH,
            DragonHub::ClosedRequestOrder::SIGNATURE_HASH,
        ];
        let signed = [
            DragonHub::SignedAppOrder::SIGNATURE_HASH,
            DragonHub::SignedDatasetOrder::SIGNATURE_HASH,
            DragonHub::SignedWorkerpoolOrder::SIGNATURE_HASH,
            DragonHub::SignedRequestOrder::SIGNATURE_HASH,
        ];
        let mut from = deployment.block_number;
        while from <= cursor {
            let to = cursor.min(from + SPAN - 1);
            let filter = Filter::new()
                .address(deployment.hub)
                .event_signature([closed, signed].concat())
                .from_block(from)
                .to_block(to);
            for l in provider.get_logs(&filter).await? {
                let (Some(word), Some(topic)) = (l.data().data.get(..32), l.topic0()) else { continue };
                let hash = OrderHash(B256::from_slice(word));
                let block = l.block_number.unwrap_or_default();
                let mark = if closed.contains(topic) {
                    Mark::Closed
                } else {
                    Mark::Presigned { signer: reader.presigned(hash, Some(block)).await? }
                };
                let log_index = l.log_index.unwrap_or_default() as u32;
                rows.push(MarkRow { hash, block_number: block, log_index, mark });
            }
            from = to + 1;
        }
    }
    store.note_hashes(rows.iter().map(|m| &m.hash));
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    crate::store::order_marks::insert(&*tx, chain_id, &rows).await?;
    crate::store::order_marks::set_backfilled(&*tx, chain_id).await?;
    tx.commit().await?;
    if !rows.is_empty() {
        tracing::info!(marks = rows.len(), "presignatures and closures read back from the hub's deployment");
    }
    Ok(())
}

/// Gives task events stored before their block's time was kept (schema 0010) that time, from the block headers,
/// so track records measure deal to finalize over the whole history. Nothing to do on a store synced since.
pub async fn backfill_task_times(store: &Store, provider: &DynProvider, chain_id: u64) -> Result<(), SyncError> {
    loop {
        let blocks = crate::store::track_records::untimed_blocks(&**store.client().await?, chain_id, 500).await?;
        if blocks.is_empty() {
            return Ok(());
        }
        for n in blocks {
            let b = provider.get_block_by_number(n.into()).await?.ok_or(SyncError::Moving(n))?;
            crate::store::track_records::set_block_time(&**store.client().await?, chain_id, n, b.header.timestamp)
                .await?;
        }
    }
}

/// Undoes blocks `from..` in the store: their deals, task events, categories and order closures go, and the
/// remaining volumes of every order involved are recomputed. A deal that one of the settler's stored
/// transactions made goes back to `submitted` with that transaction, which the settler follows again (it may
/// land again, with the same bytes); other proposals those deals settled fail as reorged out; pending
/// proposals fail (the rebuilt engine proposes again), except those whose transaction may still land.
pub async fn rollback(store: &Store, chain_id: u64, from: u64) -> Result<(), StoreError> {
    use crate::store::{proposals, settlement_charges, settlement_txs};
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let reopened = settlement_txs::reopen_from(&*tx, chain_id, from).await?;
    let reopened_ids: Vec<i64> = reopened.iter().map(|r| r.id).collect();
    settlement_charges::uncharge(&*tx, &reopened_ids).await?;
    let carried: Vec<i64> = reopened.iter().flat_map(|r| r.proposals.iter().copied()).collect();
    let unsettled = proposals::unsettle_from(&*tx, chain_id, from, &carried).await?;
    let orphaned = proposals::fail_settled_from(&*tx, chain_id, from, "reorged out").await?;
    let pending: Vec<i64> = proposals::pending(&*tx, chain_id).await?.iter().map(|p| p.id).collect();
    let keep = settlement_txs::in_flight(&*tx, chain_id, &pending).await?;
    let failed = proposals::fail_pending_except(&*tx, chain_id, "engine rebuilt after a reorg", &keep).await?;
    let mut touched = crate::store::deals::delete_from(&*tx, chain_id, from).await?;
    touched.extend(crate::store::orders::reopen_from(&*tx, from).await?);
    touched.extend(failed.iter().flat_map(|p| p.orders().collect::<Vec<_>>()));
    crate::store::categories::delete_from(&*tx, chain_id, from).await?;
    crate::store::order_marks::delete_from(&*tx, chain_id, from).await?;
    crate::store::sync::rewind(&*tx, chain_id, from).await?;
    touched.sort();
    touched.dedup();
    let recomputed: Vec<OrderRecord> = crate::store::orders::recompute(&*tx, &touched).await?;
    tx.commit().await?;
    tracing::info!(
        from,
        orders = recomputed.len(),
        settled_undone = orphaned + unsettled,
        back_in_flight = unsettled,
        pending_failed = failed.len(),
        "reorg rolled back"
    );
    Ok(())
}

/// At start-up, before the engine exists: pending proposals that no stored transaction may still settle fail
/// (never sent, or sent by a version without the settlement log and not mined), and the engine proposes again
/// from the rebuilt book what is still possible; their orders get their volume back. Proposals whose transaction
/// may still land stay pending: the settler follows that transaction first. Call after [`ChainSync::catch_up`],
/// which settles those that made it.
pub async fn resolve_pending(store: &Store, provider: &DynProvider, chain_id: u64) -> Result<usize, SyncError> {
    let mut client = store.client().await?;
    let pending = crate::store::proposals::pending(&**client, chain_id).await?;
    let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
    let flying: BTreeSet<i64> =
        crate::store::settlement_txs::in_flight(&**client, chain_id, &ids).await?.into_iter().collect();
    let mut failures = Vec::new();
    for p in pending.iter().filter(|p| !flying.contains(&p.id)) {
        let reason = match p.tx_hash {
            None => "not sent before the exchange restarted".to_string(),
            // Final (mined without its deal, or dead) without the proposal having been told: it cannot land.
            Some(h) if crate::store::settlement_txs::known(&**client, h).await? => {
                format!("transaction {h:#x} did not settle it before the exchange restarted")
            }
            // Sent before the settlement log existed: only its receipt can tell.
            Some(h) => match provider.get_transaction_receipt(h).await? {
                Some(r) if r.status() => "not settled by its transaction (skipped in its batch)".to_string(),
                Some(_) => format!("transaction {h:#x} reverted"),
                None => format!("transaction {h:#x} not mined before the exchange restarted"),
            },
        };
        failures.push((p.id, reason));
    }
    if !flying.is_empty() {
        tracing::info!(proposals = flying.len(), "proposals whose transaction may still land stay pending");
    }
    let tx = client.transaction().await?;
    let failed = crate::store::proposals::fail(&*tx, &failures).await?;
    let mut touched: Vec<OrderHash> = failed.iter().flat_map(|p| p.orders().collect::<Vec<_>>()).collect();
    touched.sort();
    touched.dedup();
    crate::store::orders::recompute(&*tx, &touched).await?;
    tx.commit().await?;
    Ok(failed.len())
}
