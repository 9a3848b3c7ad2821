//! The settler: puts the engine's deal proposals on chain with the exchange's operator key.
//!
//! One transaction is in flight at a time. The first proposal goes out alone with `matchOrders`; whatever
//! accumulates meanwhile goes out together with `matchOrdersBatch`, which skips a failing deal with a
//! `MatchOrdersFailed(index, reason)` event instead of reverting the others. The engine never waits: it
//! reserves the volume when it proposes, and this task works from the store's `deal_proposals` rows.
//!
//! Outcomes: chain sync marks a proposal `settled` when it sees its `OrdersMatched` (so the consumption and
//! the settlement are recorded in one transaction); the settler marks `failed` what reverted, what the batch
//! skipped, and what was dropped, and hands the volume back to the book through [`Market::chain_update`],
//! lowering each order to what the chain still has before anything is released. Errors of the RPC (no answer,
//! no gas money, nonce races) are retried with backoff and the proposals wait; a revert is final.

use super::contracts::hub::{DragonHub, IexecLibOrders_v5 as sol};
use super::reads::ChainReader;
use crate::ids::OrderHash;
use crate::market::record::{OrderRecord, OrderStatus};
use crate::market::{ChainUpdate, Market};
use crate::order::AnyOrder;
use crate::store::Store;
use crate::store::proposals::{self, Proposal};
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, RwLock, mpsc};

/// Settler settings.
#[derive(Debug, Clone, Copy)]
pub struct SettlerConfig {
    /// Most deals per `matchOrdersBatch`.
    pub max_batch: usize,
    /// How long a transaction may stay unmined before it is replaced with higher fees.
    pub receipt_timeout: Duration,
    /// Fee increase of a replacement, in percent (nodes require at least 10).
    pub bump_percent: u128,
    /// Replacements before a transaction's proposals are given up as dropped.
    pub max_replacements: u32,
    /// Longest wait between retries of a retryable error.
    pub max_backoff: Duration,
}

impl Default for SettlerConfig {
    fn default() -> Self {
        SettlerConfig {
            max_batch: 50,
            receipt_timeout: Duration::from_secs(60),
            bump_percent: 25,
            max_replacements: 5,
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Counters for metrics and health.
#[derive(Debug, Default)]
pub struct SettlerStats {
    pub transactions: AtomicU64,
    pub batches: AtomicU64,
    pub replaced: AtomicU64,
    pub retries: AtomicU64,
    /// Set while sending fails for lack of gas money; cleared by the next transaction that goes out.
    pub out_of_gas_money: AtomicBool,
    pub queued: AtomicU64,
}

/// What a failed send means for the proposals it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later; the proposals wait.
    Retryable(String),
    /// The operator account cannot pay for gas: retried, and reported by the health check meanwhile.
    NoGasMoney(String),
    /// The hub refused the deal: the proposal fails with this reason.
    Final(String),
}

/// Sorts an RPC error: a revert is final (with its decoded reason), everything else is retried.
pub fn classify(e: &alloy::contract::Error) -> SendError {
    use alloy::transports::RpcError;
    let alloy::contract::Error::TransportError(t) = e else {
        return SendError::Final(e.to_string());
    };
    match t {
        RpcError::ErrorResp(payload) => {
            if let Some(data) = payload.as_revert_data() {
                return SendError::Final(super::revert::decode(&data).to_string());
            }
            let m = payload.message.to_lowercase();
            if m.contains("insufficient funds") || m.contains("gas required exceeds allowance") {
                SendError::NoGasMoney(payload.message.to_string())
            } else if m.contains("revert") {
                SendError::Final(payload.message.to_string())
            } else {
                SendError::Retryable(payload.message.to_string())
            }
        }
        other => SendError::Retryable(other.to_string()),
    }
}

/// Controls a running settler.
#[derive(Debug, Clone)]
pub struct SettlerHandle {
    gate: Arc<RwLock<()>>,
    pub stats: Arc<SettlerStats>,
    pub operator: Address,
}

impl SettlerHandle {
    /// Waits until no transaction is in flight and holds the settler still until the guard is dropped.
    pub async fn pause(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.gate.clone().write_owned().await
    }
}

/// Everything the settler works with.
pub struct Settler {
    pub store: Store,
    pub market: Arc<Market>,
    pub reader: Arc<ChainReader>,
    pub hub: Address,
    pub config: SettlerConfig,
    /// Woken after each receipt, so chain sync records the deals at once.
    pub sync: Arc<Notify>,
    provider: DynProvider,
    operator: Address,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler").field("operator", &self.operator).finish()
    }
}

impl Settler {
    /// A settler sending from `key` through `rpc_url`. Nonces and gas come from alloy's fillers: the simple
    /// nonce manager asks the node for the pending nonce of each transaction, which is right for one
    /// transaction in flight and never leaves a gap after a failed send.
    pub fn new(
        store: Store,
        market: Arc<Market>,
        reader: Arc<ChainReader>,
        rpc_url: &str,
        key: PrivateKeySigner,
        config: SettlerConfig,
        sync: Arc<Notify>,
    ) -> Result<Self, super::ChainError> {
        let url = rpc_url.parse().map_err(|_| super::ChainError::BadUrl(rpc_url.to_owned()))?;
        let operator = key.address();
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(key))
            .connect_http(url)
            .erased();
        let hub = reader.deployment().hub;
        Ok(Settler { store, market, reader, hub, config, sync, provider, operator })
    }

    /// Starts the settler on the queue the market's listener feeds with the ids of new proposals (a proposal
    /// queued twice is settled once). Proposals pending at start-up were resolved before the market started
    /// (`sync::resolve_pending`), so the queue is all there is to settle.
    pub fn spawn(self, rx: mpsc::UnboundedReceiver<i64>) -> (SettlerHandle, tokio::task::JoinHandle<()>) {
        let handle = SettlerHandle { gate: Arc::new(RwLock::new(())), stats: Arc::default(), operator: self.operator };
        let (gate, stats) = (handle.gate.clone(), handle.stats.clone());
        let task = tokio::spawn(self.run(rx, gate, stats));
        (handle, task)
    }

    async fn run(self, mut rx: mpsc::UnboundedReceiver<i64>, gate: Arc<RwLock<()>>, stats: Arc<SettlerStats>) {
        let mut queue: VecDeque<i64> = VecDeque::new();
        let mut backoff = Duration::from_millis(100);
        loop {
            if queue.is_empty() {
                match rx.recv().await {
                    Some(id) => queue.push_back(id),
                    None => break,
                }
            }
            while let Ok(id) = rx.try_recv() {
                queue.push_back(id);
            }
            let _held = gate.read().await;
            let mut ids: Vec<i64> = Vec::new();
            while ids.len() < self.config.max_batch {
                let Some(id) = queue.pop_front() else { break };
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            stats.queued.store(queue.len() as u64, Ordering::Relaxed);
            match self.settle(&ids, &stats).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(again) => {
                    // Nothing was decided: the proposals wait at the front, in order.
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    for id in again.into_iter().rev() {
                        queue.push_front(id);
                    }
                    drop(_held);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
        tracing::debug!("settler stopped");
    }

    /// Settles `ids` in one transaction. `Err` gives back the ids to retry later.
    async fn settle(&self, ids: &[i64], stats: &SettlerStats) -> Result<(), Vec<i64>> {
        let loaded = match self.load(ids).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "settler cannot read the store; retrying");
                return Err(ids.to_vec());
            }
        };
        let (deals, gone) = loaded;
        if !gone.is_empty() {
            self.fail(gone).await;
        }
        if deals.is_empty() {
            return Ok(());
        }
        let batch = deals.len() > 1;
        let tx = build_tx(self.hub, &deals);
        let ids: Vec<i64> = deals.iter().map(|d| d.proposal.id).collect();
        let pending = match self.provider.send_transaction(tx.clone()).await {
            Ok(p) => p,
            Err(e) => {
                return match classify(&alloy::contract::Error::TransportError(e)) {
                    SendError::Final(reason) if !batch => {
                        self.fail(vec![(ids[0], reason)]).await;
                        Ok(())
                    }
                    SendError::Final(reason) => {
                        // A batch does not revert for one bad deal; if it does, something is wrong with the
                        // whole: try each deal alone, which finds the culprit.
                        tracing::warn!(%reason, "batch refused; settling its deals one by one");
                        for id in &ids {
                            let _ = Box::pin(self.settle(&[*id], stats)).await;
                        }
                        Ok(())
                    }
                    SendError::NoGasMoney(m) => {
                        if !stats.out_of_gas_money.swap(true, Ordering::Relaxed) {
                            tracing::error!(operator = %self.operator, error = %m,
                                "the operator account cannot pay for gas: deals wait until it is funded");
                        }
                        Err(ids)
                    }
                    SendError::Retryable(m) => {
                        tracing::warn!(error = %m, "sending a settlement failed; retrying");
                        Err(ids)
                    }
                };
            }
        };
        stats.out_of_gas_money.store(false, Ordering::Relaxed);
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        if batch {
            stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        let mut hash = *pending.tx_hash();
        if let Err(e) = self.mark_submitted(&ids, hash).await {
            tracing::warn!(error = %e, "recording a submitted settlement failed; chain sync will still see it");
        }
        let receipt = match self.receipt(pending, &tx, &ids, &mut hash, stats).await {
            Some(r) => r,
            None => {
                let reason = "transaction dropped (not mined after every fee bump)".to_string();
                self.fail(ids.iter().map(|id| (*id, reason.clone())).collect()).await;
                return Ok(());
            }
        };
        self.sync.notify_one();
        if !receipt.status() {
            if batch {
                tracing::warn!(tx = %hash, "batch reverted; settling its deals one by one");
                if let Ok(c) = self.store.client().await {
                    let _ = proposals::unsubmit(&**c, &ids).await;
                }
                for id in &ids {
                    let _ = Box::pin(self.settle(&[*id], stats)).await;
                }
            } else {
                let reason = self.replay(&tx).await.unwrap_or_else(|| format!("transaction {hash} reverted"));
                self.fail(vec![(ids[0], reason)]).await;
            }
            return Ok(());
        }
        let mut failures = Vec::new();
        for log in receipt.inner.logs() {
            if log.address() != self.hub {
                continue;
            }
            if let Ok(ev) = log.log_decode::<DragonHub::MatchOrdersFailed>() {
                let i = usize::try_from(ev.inner.data.index).unwrap_or(usize::MAX);
                if let Some(id) = ids.get(i) {
                    failures.push((*id, super::revert::from_reason(&ev.inner.data.reason).to_string()));
                }
            }
        }
        if !failures.is_empty() {
            self.fail(failures).await;
        }
        Ok(())
    }

    /// Waits for the receipt, replacing the transaction with higher fees while it stays unmined.
    async fn receipt(
        &self,
        first: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
        tx: &TransactionRequest,
        ids: &[i64],
        hash: &mut B256,
        stats: &SettlerStats,
    ) -> Option<TransactionReceipt> {
        let mut pending = first;
        let mut hashes = vec![*hash];
        for attempt in 0..=self.config.max_replacements {
            match pending.with_timeout(Some(self.config.receipt_timeout)).get_receipt().await {
                Ok(r) => return Some(r),
                Err(e) => tracing::warn!(tx = %hash, error = %e, "settlement not mined in time"),
            }
            // A replaced transaction may still have been mined meanwhile.
            for h in &hashes {
                if let Ok(Some(r)) = self.provider.get_transaction_receipt(*h).await {
                    return Some(r);
                }
            }
            if attempt == self.config.max_replacements {
                break;
            }
            let sent = self.provider.get_transaction_by_hash(*hash).await.ok().flatten()?;
            let bump = |v: u128| v + v * self.config.bump_percent / 100 + 1;
            use alloy::consensus::Transaction as _;
            let again = tx
                .clone()
                .with_nonce(sent.inner.nonce())
                .with_gas_limit(sent.inner.gas_limit())
                .with_max_fee_per_gas(bump(sent.inner.max_fee_per_gas()))
                .with_max_priority_fee_per_gas(bump(sent.inner.max_priority_fee_per_gas().unwrap_or(0)));
            match self.provider.send_transaction(again).await {
                Ok(p) => {
                    stats.replaced.fetch_add(1, Ordering::Relaxed);
                    *hash = *p.tx_hash();
                    hashes.push(*hash);
                    let _ = self.mark_submitted(ids, *hash).await;
                    pending = p;
                }
                Err(e) => {
                    // "nonce too low": one of the versions was mined; its receipt is found above next round.
                    tracing::warn!(error = %e, "replacing a settlement failed");
                    pending = alloy::providers::PendingTransactionBuilder::new(self.provider.root().clone(), *hash);
                }
            }
        }
        None
    }

    /// Why a mined transaction reverted: the same call simulated on the latest state, whose revert reason is
    /// what the next attempt would meet (the state it reverted on may be gone already).
    async fn replay(&self, tx: &TransactionRequest) -> Option<String> {
        let call = tx.clone().with_from(self.operator);
        match self.provider.call(call).await {
            Ok(_) => None,
            Err(e) => match classify(&alloy::contract::Error::TransportError(e)) {
                SendError::Final(reason) => Some(reason),
                _ => None,
            },
        }
    }

    async fn mark_submitted(&self, ids: &[i64], tx: B256) -> Result<(), crate::store::StoreError> {
        proposals::mark_submitted(&**self.store.client().await?, ids, tx).await
    }

    /// The proposals still to settle, with their orders; and those that cannot be (an order left the book
    /// meanwhile), with the reason.
    async fn load(&self, ids: &[i64]) -> Result<(Vec<ToSettle>, Vec<(i64, String)>), crate::store::StoreError> {
        let client = self.store.client().await?;
        let mut found = Vec::new();
        for id in ids {
            if let Some(p) = proposals::get(&**client, *id).await?
                && p.status == "proposed"
            {
                found.push(p);
            }
        }
        let hashes: Vec<OrderHash> = found.iter().flat_map(|p| p.orders().collect::<Vec<_>>()).collect();
        let orders: HashMap<OrderHash, OrderRecord> =
            crate::store::orders::get_many(&**client, &hashes).await?.into_iter().map(|r| (r.hash, r)).collect();
        let mut deals = Vec::new();
        let mut gone = Vec::new();
        for p in found {
            let closed = p.orders().find_map(|h| match orders.get(&h) {
                None => Some(format!("order {h} is unknown")),
                Some(r) if matches!(r.status, OrderStatus::Canceled | OrderStatus::Dead) => {
                    Some(format!("order {h} was {} before settlement", r.status.as_str()))
                }
                Some(_) => None,
            });
            if let Some(reason) = closed {
                gone.push((p.id, reason));
                continue;
            }
            let get = |h: &OrderHash| orders.get(h).map(|r| r.order.clone());
            let (Some(AnyOrder::App(a)), Some(AnyOrder::Workerpool(w)), Some(AnyOrder::Request(r))) =
                (get(&p.app), get(&p.workerpool), get(&p.request))
            else {
                gone.push((p.id, "stored orders do not match the proposal".into()));
                continue;
            };
            let d = match p.dataset.as_ref().and_then(get) {
                Some(AnyOrder::Dataset(d)) => Some(d),
                _ => None,
            };
            deals.push(ToSettle {
                proposal: p,
                app: (&a).into(),
                dataset: d.as_ref().map(Into::into),
                workerpool: (&w).into(),
                request: (&r).into(),
            });
        }
        Ok((deals, gone))
    }

    /// Fails proposals and gives their volume back to the book: each order is first set to what the chain
    /// and the other pending proposals leave of it (never more than the chain says is left), an order the
    /// failure shows to be unusable is closed as dead, and only then is the reservation released.
    pub async fn fail(&self, failures: Vec<(i64, String)>) {
        let mut delay = Duration::from_millis(100);
        loop {
            let _order = self.market.chain_lock.lock().await;
            match self.try_fail(&failures).await {
                Ok(update) => {
                    if let Err(e) = self.market.chain_update(update).await {
                        tracing::warn!(error = %e, "the market did not take the failed proposals");
                    }
                    return;
                }
                Err(e) => {
                    drop(_order);
                    tracing::error!(error = %e, "recording failed settlements; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    async fn try_fail(&self, failures: &[(i64, String)]) -> anyhow::Result<ChainUpdate> {
        for (id, reason) in failures {
            tracing::info!(proposal = id, %reason, "settlement failed");
        }
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let failed = proposals::fail(&*tx, failures).await?;
        let mut hashes: Vec<OrderHash> = failed.iter().flat_map(|p| p.orders().collect::<Vec<_>>()).collect();
        hashes.sort();
        hashes.dedup();
        // Orders a reason names as unusable on chain (owner changed, signature no longer valid).
        let mut dead = Vec::new();
        for p in &failed {
            if let Some(h) = p.reason.as_deref().and_then(|r| unusable_order(p, r)) {
                dead.push(h);
            }
        }
        // Orders whose owner can no longer back them (the hub refused the payment or the pool's stake), and
        // requests that failed again and again: proposing them once more would fail the same way.
        let orders = crate::store::orders::get_many(&*tx, &hashes).await?;
        for o in &orders {
            let required = crate::market::publish::required_stake(&o.order, U256::from(o.remaining.max(1)));
            if !required.is_zero() {
                let account = match &o.order {
                    AnyOrder::Workerpool(w) => {
                        self.reader.owner(crate::order::OrderKind::Workerpool, w.workerpool).await?
                    }
                    _ => o.signer,
                };
                if self.reader.stake(account).await? < required {
                    dead.push(o.hash);
                }
            }
            if matches!(o.order, AnyOrder::Request(_)) {
                let n: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM deal_proposals WHERE request_hash = $1 AND status = 'failed'
                         AND reason NOT LIKE '%reorg%' AND reason NOT LIKE '%restart%'",
                        &[&o.hash.0.as_slice()],
                    )
                    .await?
                    .get(0);
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

/// Failed settlements after which a request is given up as dead.
const MAX_FAILURES: i64 = 3;

/// The order a hub refusal names as unusable for good: its signature no longer verifies (the asset changed
/// owner) or its asset is gone.
fn unusable_order(p: &Proposal, reason: &str) -> Option<OrderHash> {
    const PREFIX: &str = "iExecV5-matchOrders-0x";
    let at = reason.find(PREFIX)? + PREFIX.len();
    match reason.get(at..at + 2)? {
        "20" | "21" => Some(p.app),
        "30" | "31" => p.dataset,
        "40" | "41" => Some(p.workerpool),
        "50" => Some(p.request),
        _ => None,
    }
}

/// A proposal with its orders in the hub's form.
struct ToSettle {
    proposal: Proposal,
    app: sol::AppOrder,
    dataset: Option<sol::DatasetOrder>,
    workerpool: sol::WorkerpoolOrder,
    request: sol::RequestOrder,
}

/// `matchOrders` for one deal; `matchOrdersBatch` for several, each order sent once.
fn build_tx(hub: Address, deals: &[ToSettle]) -> TransactionRequest {
    let input = if let [d] = deals {
        DragonHub::matchOrdersCall {
            appOrder: d.app.clone(),
            datasetOrder: d.dataset.clone().unwrap_or_else(sol::DatasetOrder::none),
            workerpoolOrder: d.workerpool.clone(),
            requestOrder: d.request.clone(),
        }
        .abi_encode()
    } else {
        let mut apps = Indexed::default();
        let mut datasets = Indexed::default();
        let mut pools = Indexed::default();
        let mut requests = Indexed::default();
        let mut matches = Vec::with_capacity(deals.len());
        for d in deals {
            let p = &d.proposal;
            matches.push(DragonHub::BatchMatch {
                app: apps.index(p.app.0, || d.app.clone()),
                dataset: match (&p.dataset, &d.dataset) {
                    (Some(h), Some(o)) => datasets.index(h.0, || o.clone()),
                    _ => datasets.index(B256::ZERO, sol::DatasetOrder::none),
                },
                workerpool: pools.index(p.workerpool.0, || d.workerpool.clone()),
                request: requests.index(p.request.0, || d.request.clone()),
            });
        }
        DragonHub::matchOrdersBatchCall {
            appOrders: apps.items,
            datasetOrders: datasets.items,
            workerpoolOrders: pools.items,
            requestOrders: requests.items,
            matches,
        }
        .abi_encode()
    };
    TransactionRequest::default().with_to(hub).with_input(input)
}

/// Orders of one kind for a batch, each given once.
struct Indexed<T> {
    items: Vec<T>,
    at: HashMap<B256, u32>,
}

impl<T> Default for Indexed<T> {
    fn default() -> Self {
        Indexed { items: Vec::new(), at: HashMap::new() }
    }
}

impl<T> Indexed<T> {
    fn index(&mut self, key: B256, make: impl FnOnce() -> T) -> u32 {
        *self.at.entry(key).or_insert_with(|| {
            self.items.push(make());
            (self.items.len() - 1) as u32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::{Revert, SolError};
    use alloy::transports::{RpcError, TransportErrorKind};

    /// An error answer as a node sends it (the payload type is alloy's, inferred from the variant).
    fn resp(message: &'static str, data: Option<&str>) -> alloy::contract::Error {
        let body = match data {
            Some(d) => serde_json::json!({"code": 3, "message": message, "data": d}),
            None => serde_json::json!({"code": -32000, "message": message}),
        };
        let payload = serde_json::from_value(body).expect("an error payload");
        alloy::contract::Error::TransportError(RpcError::ErrorResp(payload))
    }

    #[test]
    fn reverts_are_final_with_their_decoded_reason_and_the_rest_is_retried() {
        let data = format!("0x{}", alloy::hex::encode(Revert::from("iExecV5-matchOrders-0x60").abi_encode()));
        let SendError::Final(reason) = classify(&resp("execution reverted", Some(&data))) else {
            panic!("a revert with data is final")
        };
        assert!(reason.contains("iExecV5-matchOrders-0x60"), "{reason}");
        assert!(matches!(classify(&resp("execution reverted", None)), SendError::Final(_)));
        assert!(matches!(
            classify(&resp("Insufficient funds for gas * price + value", None)),
            SendError::NoGasMoney(_)
        ));
        assert!(matches!(classify(&resp("nonce too low", None)), SendError::Retryable(_)));
        assert!(matches!(classify(&resp("replacement transaction underpriced", None)), SendError::Retryable(_)));
        let transport = alloy::contract::Error::TransportError(RpcError::Transport(TransportErrorKind::BackendGone));
        assert!(matches!(classify(&transport), SendError::Retryable(_)));
    }

    #[test]
    fn a_refusal_names_the_order_it_makes_unusable() {
        let h = |b: u8| OrderHash(B256::repeat_byte(b));
        let p = Proposal {
            id: 1,
            app: h(1),
            dataset: Some(h(2)),
            workerpool: h(3),
            request: h(4),
            volume: 1,
            category: 0,
            status: "failed".into(),
            reason: None,
            tx_hash: None,
            batch_index: None,
            deal_id: None,
            attempts: 1,
        };
        let said = |code: &str| unusable_order(&p, &format!("orders not matched: x (iExecV5-matchOrders-0x{code})"));
        assert_eq!(said("21"), Some(h(1)));
        assert_eq!(said("31"), Some(h(2)));
        assert_eq!(said("41"), Some(h(3)));
        assert_eq!(said("50"), Some(h(4)));
        assert_eq!(said("60"), None, "volume 0 is the chain's consumed volume, handled by the cap");
        assert_eq!(unusable_order(&p, "transaction dropped"), None);
    }
}
