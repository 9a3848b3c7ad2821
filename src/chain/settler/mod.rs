//! The settler: puts the engine's deal proposals on chain with the exchange's operator key.
//!
//! One transaction is in flight at a time. The first proposal goes out alone with `matchOrders`; whatever
//! accumulates meanwhile goes out together with `matchOrdersBatch`, which skips a failing deal with a
//! `MatchOrdersFailed(index, reason)` event instead of reverting the others. The engine never waits: it
//! reserves the volume when it proposes, and this task works from the store's `deal_proposals` rows.
//!
//! Write-ahead (`wal.rs`): every transaction is signed here and stored with its raw bytes before it is
//! broadcast, and followed until it is mined or known dead; a restart follows what the store holds before
//! signing anything new. A proposal fails only when its transaction can no longer land.
//!
//! The call (`calldata.rs`): the proposals still to settle, with their orders in the hub's form, as one
//! `matchOrders` or one `matchOrdersBatch`. RPC errors (`errors.rs`): a revert is final, the rest is retried.
//!
//! Budgets (`budget.rs`): the operator pays every deal's gas, so deals are admitted against gas budgets per
//! window (operator, requester, workerpool owner, free deals) and deferred, volume kept, when they do not fit.
//!
//! Outcomes: chain sync marks a proposal `settled` when it sees its `OrdersMatched` (so the consumption and
//! the settlement are recorded in one transaction); the settler reports as failed what reverted, what the batch
//! skipped, and what a dead transaction carried, to the market ([`BookKeeper::settlement_failed`]), which
//! records it with the transaction's outcome and gives the volume back to the book (`market/chain.rs`).
//! Errors of the RPC (no answer, no gas money) are retried with backoff and the proposals wait; a revert is final.
//!
//! Leadership (issue 19): several instances on one PostgreSQL run one settler between them. Each instance keeps
//! a candidacy for the lease `settler:<chain_id>` (`cluster::lease`); only the tenure's holder runs the loop
//! below, and every write it makes (the write-ahead record, a replacement, a deferral, an outcome) checks the
//! tenure's fence in the same store transaction. A refused write, or the lease lost, stops the loop at once:
//! what it had stored is followed by the next leader, which first follows every stored transaction (sending the
//! identical bytes again), then settles the `proposed` proposals it finds in the store, whoever's engine made
//! them, besides those its own engine queues.

use super::contracts::hub::DragonHub;
use super::reads::ChainReader;
use super::update::{BookKeeper, Proposals};
use crate::store::Store;
use crate::store::leases::Fence;
use crate::store::proposals;
use crate::store::settlement_txs::{Mined, Record, SettlementTx};
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, RwLock, watch};

pub mod budget;
mod calldata;
mod errors;
mod wal;

pub use budget::Budgets;
pub use errors::{SendError, classify};

/// Settler settings.
#[derive(Debug, Clone, Copy)]
pub struct SettlerConfig {
    /// Most deals per `matchOrdersBatch`.
    pub max_batch: usize,
    /// How long a transaction may stay unmined before it is replaced with higher fees.
    pub receipt_timeout: Duration,
    /// Fee increase of a replacement, in percent (nodes require at least 10).
    pub bump_percent: u128,
    /// Fee bumps of one transaction; past them it is still followed (and sent again if the node loses it), as
    /// long as its nonce is unused it may land.
    pub max_replacements: u32,
    /// Longest wait between retries of a retryable error.
    pub max_backoff: Duration,
    /// Longest wait between two looks at a transaction in flight (receipt, nonce, the node's pool); the first
    /// looks come sooner.
    pub poll: Duration,
    /// Gas limit above the node's estimate, in percent: a batch whose deals change between the estimate and
    /// the block (one skipped, one not) must not run out of gas.
    pub gas_margin_percent: u64,
    /// Deadline of each JSON-RPC call of the settler.
    pub rpc_timeout: Duration,
    /// How often a leader looks in the store for proposals nobody queued for it (made by another instance's
    /// engine, or left by an earlier leader).
    pub store_poll: Duration,
    /// Blocks below the head at which a nonce counts as used (chain sync's confirmations): a transaction is
    /// declared dead only when what took its nonce cannot be reorganised away any more.
    pub confirmations: u64,
    pub budgets: Budgets,
}

impl Default for SettlerConfig {
    fn default() -> Self {
        SettlerConfig {
            max_batch: 50,
            receipt_timeout: Duration::from_secs(60),
            bump_percent: 25,
            max_replacements: 5,
            max_backoff: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            gas_margin_percent: 20,
            rpc_timeout: Duration::from_secs(20),
            store_poll: Duration::from_secs(1),
            confirmations: 0,
            budgets: Budgets::default(),
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
    /// Proposals held back by the gas budgets.
    pub deferred: AtomicU64,
    /// Whether this instance is the settler's leader now, and the epoch of its tenure (0 when not leading).
    pub leading: AtomicBool,
    pub epoch: AtomicI64,
    /// Tenures begun, and tenures ended by a refused (fenced) write.
    pub tenures: AtomicU64,
    pub fenced: AtomicU64,
}

/// Controls a running settler.
#[derive(Debug, Clone)]
pub struct SettlerHandle {
    gate: Arc<RwLock<()>>,
    wake: Arc<Notify>,
    pub stats: Arc<SettlerStats>,
    pub operator: Address,
}

impl SettlerHandle {
    /// Waits until no transaction is in flight and holds the settler still until the guard is dropped.
    pub async fn pause(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.gate.clone().write_owned().await
    }

    /// Makes the settler look at its stored transactions again (a reorg reopened some).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Everything the settler works with.
pub struct Settler {
    pub store: Store,
    /// The market, told of failures: what a failure does to the book and its orders is its business.
    pub book: Arc<dyn BookKeeper>,
    pub reader: Arc<ChainReader>,
    pub hub: Address,
    pub config: SettlerConfig,
    /// Woken after each receipt, so chain sync records the deals at once.
    pub sync: Arc<Notify>,
    /// No fillers: every field of a settlement is set here, and sent as signed (`wal.rs`).
    provider: DynProvider,
    wallet: EthereumWallet,
    operator: Address,
    chain_id: u64,
    /// The lease tenure this settler acts under, passed to every write; `None` only outside a tenure.
    fence: Option<Fence>,
    /// Set when a fenced write was refused: the tenure is over, whatever the lease's keeper still believes.
    deposed: AtomicBool,
}

impl std::fmt::Debug for Settler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settler").field("operator", &self.operator).finish()
    }
}

/// Gas below what any deal costs (a `matchOrders` costs about 265,000, a deal in a batch about 190,000, a skipped
/// one still its calldata): the floor at which a deal is checked against the budgets before any estimate.
const LEAST_GAS_PER_DEAL: u64 = 50_000;

/// Why a tenure's loop ended.
enum End {
    /// The market is gone (shutdown): the settler ends.
    Closed,
    /// A fenced write was refused: another instance leads now.
    Fenced,
}

/// What one round of settling leaves to do.
enum Step {
    Done,
    /// Nothing was decided: try these again later (RPC down, no gas money).
    Retry(Vec<i64>),
    /// Settle each of these alone (their batch reverted, or was refused at estimation).
    Alone(Vec<i64>),
}

/// Proposals held back by the budgets, by id, with when to try again.
#[derive(Debug, Default)]
struct Deferred(HashMap<i64, tokio::time::Instant>);

impl Deferred {
    fn add(&mut self, id: i64, until: std::time::SystemTime) {
        let wait = until.duration_since(std::time::SystemTime::now()).unwrap_or_default();
        // At least a second: clocks of the database and of this host may disagree a little.
        self.0.insert(id, tokio::time::Instant::now() + wait.max(Duration::from_secs(1)));
    }

    fn next_due(&self) -> Option<tokio::time::Instant> {
        self.0.values().min().copied()
    }

    /// The ids whose time has come, oldest proposal first.
    fn take_due(&mut self, now: tokio::time::Instant) -> Vec<i64> {
        let mut due: Vec<i64> = self.0.iter().filter(|(_, t)| **t <= now).map(|(id, _)| *id).collect();
        due.sort_unstable();
        for id in &due {
            self.0.remove(id);
        }
        due
    }
}

impl Settler {
    /// A settler signing with `key` and sending through `rpc_url`.
    pub fn new(
        store: Store,
        book: Arc<dyn BookKeeper>,
        reader: Arc<ChainReader>,
        rpc_url: &str,
        key: PrivateKeySigner,
        config: SettlerConfig,
        sync: Arc<Notify>,
    ) -> Result<Self, super::ChainError> {
        let url = rpc_url.parse().map_err(|_| super::ChainError::BadUrl(rpc_url.to_owned()))?;
        let operator = key.address();
        // Every call has a deadline: a request that never returns would hold the one settlement in flight, and
        // every deal behind it, forever. A timed-out call is an RPC error, retried like any other.
        let http = alloy::transports::http::reqwest::Client::builder()
            .timeout(config.rpc_timeout)
            .build()
            .map_err(|e| super::ChainError::BadUrl(format!("{rpc_url}: {e}")))?;
        let provider = ProviderBuilder::new().disable_recommended_fillers().connect_reqwest(http, url).erased();
        let hub = reader.deployment().hub;
        let chain_id = reader.deployment().chain_id;
        Ok(Settler {
            store,
            book,
            reader,
            hub,
            config,
            sync,
            provider,
            wallet: EthereumWallet::from(key),
            operator,
            chain_id,
            fence: None,
            deposed: AtomicBool::new(false),
        })
    }

    /// Starts the settler on the queue of new proposals' ids that `Market::start` handed back (a proposal
    /// queued twice is settled once), as a candidate for the lease whose tenures `tenure` announces: it settles
    /// only while it holds one. Each tenure first follows every stored transaction that may still land
    /// (`sync::resolve_pending` kept their proposals pending at start-up).
    pub fn spawn(
        self,
        rx: Proposals,
        tenure: watch::Receiver<Option<Fence>>,
    ) -> (SettlerHandle, tokio::task::JoinHandle<()>) {
        let handle = SettlerHandle {
            gate: Arc::new(RwLock::new(())),
            wake: Arc::new(Notify::new()),
            stats: Arc::default(),
            operator: self.operator,
        };
        let (gate, stats, wake) = (handle.gate.clone(), handle.stats.clone(), handle.wake.clone());
        let task = tokio::spawn(self.lead(rx, tenure, gate, stats, wake));
        (handle, task)
    }

    /// The candidate: waits for a tenure, settles during it, and stops the moment it ends (the lease's keeper
    /// steps down, or a fenced write is refused).
    async fn lead(
        mut self,
        mut rx: Proposals,
        mut tenure: watch::Receiver<Option<Fence>>,
        gate: Arc<RwLock<()>>,
        stats: Arc<SettlerStats>,
        wake: Arc<Notify>,
    ) {
        loop {
            let Some(fence) = wait_for_tenure(&mut tenure, &mut rx).await else { break };
            // What was queued before this tenure is in the store: the tenure reads it from there.
            while rx.try_recv().is_ok() {}
            tracing::info!(epoch = fence.epoch, holder = %fence.holder, "settler leading");
            self.fence = Some(fence.clone());
            self.deposed.store(false, Ordering::Relaxed);
            stats.epoch.store(fence.epoch, Ordering::Relaxed);
            stats.leading.store(true, Ordering::Relaxed);
            stats.tenures.fetch_add(1, Ordering::Relaxed);
            let end = {
                let run = self.run(&mut rx, &gate, &stats, &wake);
                let lost = tenure_ends(&mut tenure, &fence);
                tokio::select! {
                    end = run => Some(end),
                    () = lost => None,
                }
            };
            stats.leading.store(false, Ordering::Relaxed);
            stats.epoch.store(0, Ordering::Relaxed);
            self.fence = None;
            match end {
                Some(End::Closed) => break,
                Some(End::Fenced) => {
                    stats.fenced.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        epoch = fence.epoch,
                        "settler deposed: a fenced write was refused; back to candidate"
                    );
                    // The keeper learns at its next renewal that the tenure is over; no new one before that.
                    tenure_ends(&mut tenure, &fence).await;
                }
                None => tracing::warn!(epoch = fence.epoch, "settler stopped: its lease tenure ended"),
            }
        }
        tracing::debug!("settler stopped");
    }

    /// Marks the tenure over when `e` is a refused fenced write; returns whether it was.
    fn fenced(&self, e: &crate::store::StoreError) -> bool {
        if e.is_fenced() {
            self.deposed.store(true, Ordering::Relaxed);
        }
        e.is_fenced()
    }

    fn is_deposed(&self) -> bool {
        self.deposed.load(Ordering::Relaxed)
    }

    async fn run(&self, rx: &mut Proposals, gate: &RwLock<()>, stats: &SettlerStats, wake: &Notify) -> End {
        let mut queue: VecDeque<i64> = VecDeque::new();
        let mut alone: VecDeque<i64> = VecDeque::new();
        let mut deferred = Deferred::default();
        let mut backoff = Duration::from_millis(100);
        // Stored transactions come first: at the start of a tenure, and whenever a reorg reopens some.
        let mut resume = true;
        // Then the proposals in the store, and again every `store_poll`: another instance's engine queues
        // nothing here.
        let mut refill_at = tokio::time::Instant::now();
        loop {
            if self.is_deposed() {
                return End::Fenced;
            }
            if queue.is_empty() && alone.is_empty() && !resume {
                let due = deferred.next_due();
                tokio::select! {
                    id = rx.recv() => match id {
                        Some(id) => queue.push_back(id),
                        None => return End::Closed,
                    },
                    () = wake.notified() => resume = true,
                    () = tokio::time::sleep_until(refill_at) => {}
                    () = async {
                        match due {
                            Some(t) => tokio::time::sleep_until(t).await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
            }
            while let Ok(id) = rx.try_recv() {
                queue.push_back(id);
            }
            if tokio::time::Instant::now() >= refill_at {
                refill_at = tokio::time::Instant::now() + self.config.store_poll;
                self.refill(&mut queue, &alone, &deferred).await;
            }
            // Deferred proposals are older than anything queued since: they go first.
            for id in deferred.take_due(tokio::time::Instant::now()).into_iter().rev() {
                queue.push_front(id);
            }
            let held = gate.read().await;
            if resume {
                match self.resume(stats).await {
                    Ok(more) => {
                        resume = false;
                        alone.extend(more);
                    }
                    Err(e) if self.fenced(&e) => return End::Fenced,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the stored settlements failed; retrying");
                        drop(held);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.config.max_backoff);
                        continue;
                    }
                }
            }
            let single = !alone.is_empty();
            let mut ids: Vec<i64> = Vec::new();
            if let Some(id) = alone.pop_front() {
                ids.push(id);
            }
            while !single && ids.len() < self.config.max_batch {
                let Some(id) = queue.pop_front() else { break };
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            stats.queued.store((queue.len() + alone.len()) as u64, Ordering::Relaxed);
            if ids.is_empty() {
                continue;
            }
            // `settle` returns only once its transaction is mined, dead, or was never sent: one transaction in
            // flight at a time is what lets the next one take the node's pending nonce count as its nonce (see
            // `send_new`), and what makes a nonce used by someone else the proof that ours is dead (`wal.rs`).
            match self.settle(&ids, stats, &mut deferred).await {
                Step::Done => backoff = Duration::from_millis(100),
                Step::Alone(ids) => alone.extend(ids),
                Step::Retry(again) => {
                    // Nothing was decided: the proposals wait at the front, in order.
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    let back = if single { &mut alone } else { &mut queue };
                    for id in again.into_iter().rev() {
                        back.push_front(id);
                    }
                    resume = true;
                    drop(held);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
            stats.deferred.store(deferred.0.len() as u64, Ordering::Relaxed);
        }
    }

    /// Queues the `proposed` proposals of the store that are not queued or deferred here already.
    async fn refill(&self, queue: &mut VecDeque<i64>, alone: &VecDeque<i64>, deferred: &Deferred) {
        let limit = (self.config.max_batch * 20) as i64;
        let found = match self.store.client().await {
            Ok(c) => proposals::unsent(&**c, self.chain_id, limit).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(ids) => {
                let known: std::collections::HashSet<i64> = queue.iter().chain(alone.iter()).copied().collect();
                let new: Vec<i64> =
                    ids.into_iter().filter(|id| !known.contains(id) && !deferred.0.contains_key(id)).collect();
                if !new.is_empty() {
                    tracing::debug!(proposals = new.len(), "proposals found in the store");
                }
                queue.extend(new);
            }
            Err(e) => tracing::warn!(error = %e, "reading the proposals to settle failed; retrying later"),
        }
    }

    /// Follows every stored transaction that may still land, nonce by nonce, to its end. Returns the proposals
    /// of reverted batches, to be settled one by one.
    async fn resume(&self, stats: &SettlerStats) -> Result<Vec<i64>, crate::store::StoreError> {
        let rows = crate::store::settlement_txs::pending(&**self.store.client().await?, self.chain_id).await?;
        let mut nonces: Vec<(Address, u64)> = rows.iter().map(|r| (r.operator, r.nonce)).collect();
        nonces.dedup();
        let mut alone = Vec::new();
        for (operator, nonce) in nonces {
            tracing::info!(%operator, nonce, "following a stored settlement");
            let outcome = self.follow(operator, nonce, stats).await;
            alone.extend(self.finish(outcome).await);
            if let Some(f) = self.fence.as_ref().filter(|_| self.is_deposed()) {
                return Err(crate::store::StoreError::Fenced { lease: f.name.clone(), epoch: f.epoch });
            }
        }
        Ok(alone)
    }

    /// Settles `ids` in one transaction: budgets, estimate, signature, write-ahead record, broadcast, and the
    /// transaction followed to its end.
    async fn settle(&self, ids: &[i64], stats: &SettlerStats, deferred: &mut Deferred) -> Step {
        tracing::debug!(proposals = ?ids, "settling");
        let (mut deals, gone) = match calldata::load(&self.store, ids).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "settler cannot read the store; retrying");
                return Step::Retry(ids.to_vec());
            }
        };
        if !gone.is_empty() {
            self.fail(gone).await;
        }
        // Deals that would not fit even at a floor far below what any deal costs are deferred before the node
        // is asked for an estimate: under a flood, each costs reads of the store, not an RPC.
        if !deals.is_empty() {
            let ids: Vec<i64> = deals.iter().map(|d| d.proposal.id).collect();
            match self.admit(&ids, LEAST_GAS_PER_DEAL * ids.len() as u64).await {
                Ok(v) if !v.deferred.is_empty() => {
                    self.defer(&v.deferred, deferred).await;
                    deals.retain(|d| v.admitted.contains(&d.proposal.id));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the gas budgets failed; retrying");
                    return Step::Retry(ids);
                }
            }
        }
        // The estimate prices the batch, the budgets say which of its deals may go; a smaller batch costs more
        // per deal, so the two are asked again until they agree (each round removes at least one deal).
        let (input, gas_limit) = loop {
            if deals.is_empty() {
                return Step::Done;
            }
            let input = calldata::calldata(&deals);
            let ids: Vec<i64> = deals.iter().map(|d| d.proposal.id).collect();
            let call =
                TransactionRequest::default().with_from(self.operator).with_to(self.hub).with_input(input.clone());
            let estimate = match self.provider.estimate_gas(call).await {
                Ok(g) => g,
                Err(e) => {
                    return match classify(&alloy::contract::Error::TransportError(e)) {
                        SendError::Final(reason) if ids.len() == 1 => {
                            self.fail(vec![(ids[0], reason)]).await;
                            Step::Done
                        }
                        SendError::Final(reason) => {
                            // A batch does not revert for one bad deal; if it does, something is wrong with the
                            // whole: each deal alone finds the culprit.
                            tracing::warn!(%reason, "batch refused; settling its deals one by one");
                            Step::Alone(ids)
                        }
                        SendError::NoGasMoney(m) => self.no_gas_money(stats, &m, ids),
                        SendError::Retryable(m) => {
                            tracing::warn!(error = %m, "estimating a settlement failed; retrying");
                            Step::Retry(ids)
                        }
                    };
                }
            };
            let gas_limit = estimate.saturating_add(estimate.saturating_mul(self.config.gas_margin_percent) / 100);
            let verdict = match self.admit(&ids, gas_limit).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the gas budgets failed; retrying");
                    return Step::Retry(ids);
                }
            };
            if verdict.deferred.is_empty() {
                break (input, gas_limit);
            }
            self.defer(&verdict.deferred, deferred).await;
            deals.retain(|d| verdict.admitted.contains(&d.proposal.id));
        };
        let ids: Vec<i64> = deals.iter().map(|d| d.proposal.id).collect();
        match self.send_new(&ids, input, gas_limit, stats).await {
            Ok(nonce) => {
                let outcome = self.follow(self.operator, nonce, stats).await;
                let alone = self.finish(outcome).await;
                if alone.is_empty() { Step::Done } else { Step::Alone(alone) }
            }
            Err(step) => step,
        }
    }

    /// Records deferred proposals (their reason, shown by `GET /proposals`) and when to try them again.
    async fn defer(&self, deferrals: &[budget::Deferral], deferred: &mut Deferred) {
        let reasons: Vec<(i64, String)> = deferrals.iter().map(|d| (d.proposal, d.reason.clone())).collect();
        let res = async {
            let mut c = self.store.client().await?;
            let tx = c.transaction().await?;
            crate::store::leases::check_opt(&*tx, self.fence.as_ref()).await?;
            proposals::defer(&*tx, &reasons).await?;
            tx.commit().await?;
            Ok::<_, crate::store::StoreError>(())
        }
        .await;
        if let Err(e) = res
            && !self.fenced(&e)
        {
            tracing::warn!(error = %e, "recording deferred proposals failed");
        }
        for d in deferrals {
            tracing::info!(proposal = d.proposal, reason = %d.reason, "settlement deferred");
            deferred.add(d.proposal, d.until);
        }
    }

    /// The budget verdict for `ids` sharing `gas_limit`.
    async fn admit(&self, ids: &[i64], gas_limit: u64) -> Result<budget::Verdict, crate::store::StoreError> {
        let keys = crate::store::settlement_charges::keys(&**self.store.client().await?, ids).await?;
        // Keep the batch order (the store answers in any order).
        let keys: Vec<_> = ids.iter().filter_map(|id| keys.iter().find(|k| k.proposal == *id).copied()).collect();
        let share = gas_limit.div_ceil(ids.len().max(1) as u64);
        budget::admit(&self.store, self.chain_id, &self.config.budgets, &keys, share).await
    }

    fn no_gas_money(&self, stats: &SettlerStats, message: &str, ids: Vec<i64>) -> Step {
        if !stats.out_of_gas_money.swap(true, Ordering::Relaxed) {
            tracing::error!(operator = %self.operator, error = %message,
                "the operator account cannot pay for gas: deals wait until it is funded");
        }
        Step::Retry(ids)
    }

    /// Builds, signs, records and broadcasts a new transaction for `ids`; returns its nonce, to be followed.
    /// `Err` when nothing may be on its way to the chain (nothing stored, or a stored row the node refused at
    /// its only broadcast, whose proposals went back to `proposed`).
    async fn send_new(
        &self,
        ids: &[i64],
        input: alloy::primitives::Bytes,
        gas_limit: u64,
        stats: &SettlerStats,
    ) -> Result<u64, Step> {
        let retry = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "{what} failed; retrying");
            Step::Retry(ids.to_vec())
        };
        let fees = self.provider.estimate_eip1559_fees().await.map_err(|e| retry("estimating fees", &e))?;
        // The pending count is the next free nonce: every earlier settlement of ours was followed to its end
        // (mined or dead) before this one was built, so no transaction of ours is waiting with this nonce.
        let nonce = self
            .provider
            .get_transaction_count(self.operator)
            .pending()
            .await
            .map_err(|e| retry("reading the operator's nonce", &e))?;
        let balance = self.provider.get_balance(self.operator).await.map_err(|e| retry("reading the balance", &e))?;
        let max_cost = U256::from(gas_limit) * U256::from(fees.max_fee_per_gas);
        if balance < max_cost {
            // Not signed, not stored: the proposals stay `proposed` and wait for the money.
            return Err(self.no_gas_money(stats, &format!("balance {balance} wei below {max_cost} wei"), ids.to_vec()));
        }
        let signed = self
            .sign(self.hub, input, nonce, gas_limit, fees.max_fee_per_gas, fees.max_priority_fee_per_gas)
            .await
            .map_err(|e| retry("signing a settlement", &e))?;
        let row = crate::store::settlement_txs::NewTx {
            chain_id: self.chain_id,
            operator: self.operator,
            nonce,
            hash: signed.hash,
            raw: &signed.raw,
            proposals: ids,
            gas_limit,
            max_fee_per_gas: signed.max_fee_per_gas,
            max_priority_fee_per_gas: signed.max_priority_fee_per_gas,
        };
        // The write-ahead record: the transaction and its proposals' `submitted`, together, before any byte
        // leaves. From the commit on, a restart knows this transaction may reach the chain.
        let id = match crate::store::settlement_txs::record_new(&self.store, &row, self.fence.as_ref()).await {
            Ok(id) => id,
            // Refused by the fence: not stored, so never sent; the next leader settles these proposals.
            Err(e) if self.fenced(&e) => return Err(Step::Done),
            Err(e) => return Err(retry("recording a settlement", &e)),
        };
        match self.broadcast(&signed.raw).await {
            wal::Sent::Accepted => {}
            wal::Sent::Refused(m) => {
                // Refused at its first and only broadcast: no copy exists outside the store, so it is dead and
                // its proposals can go out again in another transaction.
                self.discard(id, ids, &m).await;
                return Err(match wal::classify_refusal(&m) {
                    SendError::NoGasMoney(m) => self.no_gas_money(stats, &m, ids.to_vec()),
                    _ => retry("sending a settlement", &m),
                });
            }
            wal::Sent::Unknown(m) => {
                // It may have reached the node: followed like any stored transaction (sent again if absent).
                tracing::warn!(error = %m, tx = %signed.hash, "sending a settlement got no answer; following it");
            }
        }
        stats.out_of_gas_money.store(false, Ordering::Relaxed);
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        if ids.len() > 1 {
            stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(tx = %signed.hash, nonce, deals = ids.len(), gas_limit, max_fee = signed.max_fee_per_gas, %balance, "settlement sent");
        Ok(nonce)
    }

    /// A row the node refused at its only broadcast: dead, and its proposals back to `proposed`, together.
    async fn discard(&self, id: i64, ids: &[i64], message: &str) {
        let mut delay = Duration::from_millis(100);
        while let Err(e) =
            crate::store::settlement_txs::record_refused(&self.store, id, ids, message, self.fence.as_ref()).await
        {
            if self.fenced(&e) {
                // The next leader follows the row: the node refused it, so it finds the nonce unused or taken.
                return;
            }
            tracing::error!(error = %e, "recording a refused settlement failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.max_backoff);
        }
    }

    /// Records how a followed nonce ended. Returns the proposals of a reverted batch, to settle one by one.
    async fn finish(&self, outcome: wal::Outcome) -> Vec<i64> {
        match outcome {
            wal::Outcome::Gone => Vec::new(),
            wal::Outcome::Dead(rows) => {
                let Some(last) = rows.last() else { return Vec::new() };
                let mut ids: Vec<i64> = rows.iter().flat_map(|r| r.proposals.iter().copied()).collect();
                ids.sort_unstable();
                ids.dedup();
                let reason = format!(
                    "transaction {:#x} dead: its nonce {} was used by another transaction of the operator",
                    last.hash, last.nonce
                );
                tracing::warn!(tx = %last.hash, nonce = last.nonce, "a stored settlement can no longer land");
                let failures = ids.iter().map(|id| (*id, reason.clone())).collect();
                let record = Record::Dead { operator: last.operator, nonce: last.nonce, reason: reason.clone() };
                self.fail_recording(failures, record).await;
                Vec::new()
            }
            wal::Outcome::Mined(row, receipt) => {
                self.sync.notify_one();
                let mined = Mined {
                    succeeded: receipt.status(),
                    block_number: receipt.block_number.unwrap_or_default(),
                    gas_used: receipt.gas_used,
                    effective_gas_price: receipt.effective_gas_price,
                };
                let ids = row.proposals.clone();
                if receipt.status() {
                    let failures = self.skipped(&receipt, &ids);
                    self.fail_recording(failures, self.mined(row, mined, false)).await;
                    Vec::new()
                } else if ids.len() == 1 {
                    let reason =
                        self.replay(&row.raw).await.unwrap_or_else(|| format!("transaction {:#x} reverted", row.hash));
                    self.fail_recording(vec![(ids[0], reason)], self.mined(row, mined, false)).await;
                    Vec::new()
                } else {
                    tracing::warn!(tx = %row.hash, "batch reverted; settling its deals one by one");
                    self.fail_recording(Vec::new(), self.mined(row, mined, true)).await;
                    ids
                }
            }
        }
    }

    /// The deals a mined batch skipped (`MatchOrdersFailed`), with the decoded reason.
    fn skipped(&self, receipt: &TransactionReceipt, ids: &[i64]) -> Vec<(i64, String)> {
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
        failures
    }

    /// Why a mined transaction reverted: the same call simulated on the latest state, whose revert reason is
    /// what the next attempt would meet (the state it reverted on may be gone already).
    async fn replay(&self, raw: &[u8]) -> Option<String> {
        let (to, input) = wal::call_of(raw)?;
        let call = TransactionRequest::default().with_from(self.operator).with_to(to).with_input(input);
        match self.provider.call(call).await {
            Ok(_) => None,
            Err(e) => match classify(&alloy::contract::Error::TransportError(e)) {
                SendError::Final(reason) => Some(reason),
                _ => None,
            },
        }
    }

    /// Reports failed proposals to the market, which fails them, gives their volume back to the book and closes
    /// what the failure shows unusable (`market/chain.rs`).
    pub async fn fail(&self, failures: Vec<(i64, String)>) {
        self.fail_recording(failures, Record::None).await;
    }

    /// [`Settler::fail`], with what the settlement log records about the transaction: the market writes both in
    /// one store transaction, so a crash never records one without the other. Retried until the store takes it.
    async fn fail_recording(&self, failures: Vec<(i64, String)>, record: Record) {
        let mut delay = Duration::from_millis(100);
        while let Err(e) = self.book.settlement_failed(&failures, &record, self.fence.as_ref()).await {
            if super::update::is_fenced(&e) {
                // Nothing was recorded: the next leader follows the same nonce and records its outcome.
                self.deposed.store(true, Ordering::Relaxed);
                return;
            }
            tracing::error!(error = %e, "recording failed settlements; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.config.max_backoff);
        }
    }

    /// The record of a mined row: its deals charged their share of the gas it used, and charges older than two
    /// budget windows (and a day), which count in no budget any more, pruned.
    fn mined(&self, row: SettlementTx, mined: Mined, unsubmit: bool) -> Record {
        let gas = budget::split(mined.gas_used, row.proposals.len());
        let charges: Vec<(i64, u64)> = row.proposals.iter().copied().zip(gas).collect();
        let keep_secs = (self.config.budgets.budget_window_secs * 2).max(86_400);
        Record::Mined { row: Box::new(row), mined, unsubmit, charges, keep_secs }
    }
}

/// The next tenure announced on `tenure`; `None` when the keeper or the market is gone. Ids queued meanwhile
/// are dropped: the tenure reads them from the store.
async fn wait_for_tenure(tenure: &mut watch::Receiver<Option<Fence>>, rx: &mut Proposals) -> Option<Fence> {
    loop {
        if let Some(f) = tenure.borrow_and_update().clone() {
            return Some(f);
        }
        tokio::select! {
            changed = tenure.changed() => changed.ok()?,
            id = rx.recv() => {
                id?;
            }
        }
    }
}

/// Completes when `tenure` announces anything but `fence` (stepped down, or another tenure), or its keeper is gone.
async fn tenure_ends(tenure: &mut watch::Receiver<Option<Fence>>, fence: &Fence) {
    loop {
        if tenure.borrow_and_update().as_ref() != Some(fence) {
            return;
        }
        if tenure.changed().await.is_err() {
            return;
        }
    }
}
