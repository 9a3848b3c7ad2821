//! The scheduler's loop: deals in, tasks initialized, tasks finalized.
//!
//! Each tick it (1) reads the pool's `SchedulerNotice` logs after its stored cursor and records each deal with
//! its tasks (RECEIVED) and the new cursor in one transaction, so a range is recorded wholly or not at all;
//! (2) reads every open task on chain and acts on the difference:
//!
//! | on chain  | pool row                 | action                                                        |
//! |-----------|--------------------------|---------------------------------------------------------------|
//! | UNSET     | RECEIVED                 | `initializeArray` of all such tasks → INITIALIZED             |
//! | ACTIVE    | RECEIVED                 | (initialized by a previous run) → INITIALIZED                 |
//! | ACTIVE    | INITIALIZED / RUNNING    | workers pull it (`POST /workers/work`); the number of         |
//! |           |                          | replicates it still wants is worked out from the contributions|
//! | REVEALING | any                      | CONSENSUS_REACHED; once revealed AT_LEAST_ONE_REVEALED; once  |
//! |           |                          | every winner revealed (or one did and the reveal deadline     |
//! |           |                          | passed) and the result is uploaded, `finalize` → COMPLETED    |
//! | REVEALING | nobody revealed, reveal  | `reopen` → INITIALIZED: the silent winners are rejected and   |
//! |           | deadline passed          | new replicates are handed out                                 |
//! | ACTIVE or | final deadline passed    | `claimArray` of all such tasks → FAILED (requester refunded)  |
//! | REVEALING |                          |                                                               |
//! | COMPLETED | any                      | COMPLETED                                                     |
//! | FAILED    | any                      | FAILED (claimed by someone)                                   |
//!
//! Before that, the replicates of workers silent for `worker_lost_after` that have not contributed on chain are
//! marked WORKER_LOST, which frees their place for another worker. So are, for each ACTIVE task, the replicates
//! handed out longer ago than the task's progress bound (its category's time plus a margin,
//! [`super::rules::progress_bound`]) that are still not contributed on chain, whether their worker pings or not:
//! a worker cannot hold a task by staying alive. Deadlines are compared with the chain's time (the latest
//! block's timestamp), which is what the hub checks.
//!
//! The chain is the truth and the row only records what was last seen, so nothing here needs to survive a
//! crash besides the cursor and the rows: a transaction sent just before a crash shows on chain at the next
//! tick. Transactions are sent one at a time from the owner's account (alloy's nonce cache is per provider).

use super::config::PoolConfig;
use super::protocol::{contributions_needed, worker_weight};
use super::store::{self, NewDeal, OpenTask};
use crate::chain::ChainError;
use crate::chain::contracts::hub::DragonHub;
use crate::chain::revert::{self, Revert, TaskError};
use crate::chain::setup::Account;
use crate::store::{Store, StoreError};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Most blocks read per `eth_getLogs`.
const MAX_RANGE: u64 = 2_000;
/// Most tasks per `initializeArray`: about 50k gas each, so a batch stays far below a block's gas limit.
const INIT_BATCH: usize = 100;
/// Most tasks per `claimArray` (a claim unlocks each contributor's stake: more gas per task than initialize).
const CLAIM_BATCH: usize = 50;
/// How long a sent transaction may wait for its receipt before the tick gives up (it is looked at again on
/// chain at the next tick).
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

// PoCo's task statuses on chain.
const UNSET: u8 = 0;
const ACTIVE: u8 = 1;
const REVEALING: u8 = 2;
const COMPLETED: u8 = 3;
const FAILED: u8 = 4;
// A contribution rejected by `reopen` no longer counts in the consensus.
const C_REJECTED: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<alloy::contract::Error> for SchedulerError {
    fn from(e: alloy::contract::Error) -> Self {
        SchedulerError::Chain(e.into())
    }
}

impl From<alloy::transports::TransportError> for SchedulerError {
    fn from(e: alloy::transports::TransportError) -> Self {
        SchedulerError::Chain(e.into())
    }
}

impl From<tokio_postgres::Error> for SchedulerError {
    fn from(e: tokio_postgres::Error) -> Self {
        SchedulerError::Store(e.into())
    }
}

/// What [`Scheduler::drive`] leaves to do (batched by the tick).
enum Step {
    Done,
    Initialize,
    Claim,
}

/// How a transaction of the scheduler ended.
enum Sent {
    Mined(B256),
    /// The hub refused it, and will refuse it again until something changes on chain.
    Refused(Revert),
}

pub struct Scheduler {
    store: Store,
    owner: Account,
    hub: Address,
    workerpool: Address,
    start_block: u64,
    poll: Duration,
    worker_lost_after: Duration,
    progress_margin: Duration,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("workerpool", &self.workerpool).finish()
    }
}

impl Scheduler {
    pub fn new(store: Store, owner: Account, config: &PoolConfig, wake: Arc<Notify>) -> Self {
        Scheduler {
            store,
            owner,
            hub: config.deployment.hub,
            workerpool: config.workerpool,
            start_block: config.deployment.block_number,
            poll: config.poll,
            worker_lost_after: config.worker_lost_after,
            progress_margin: config.limits.progress_margin,
            wake,
        }
    }

    fn hub(&self) -> DragonHub::DragonHubInstance<&alloy::providers::DynProvider> {
        DragonHub::new(self.hub, &self.owner.provider)
    }

    /// Ticks until `stop` turns true; errors are logged and the tick is tried again later.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut delay = self.poll;
        loop {
            match self.tick().await {
                Ok(()) => delay = self.poll,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler tick failed; retrying");
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
        tracing::debug!("scheduler stopped");
    }

    /// One pass: new deals, lost workers, then every open task.
    pub async fn tick(&self) -> Result<(), SchedulerError> {
        while self.scan_notices().await? {}
        self.mark_lost_workers().await?;
        let now = self.chain_time().await?;
        let open = store::open_tasks(&**self.store.client().await?).await?;
        let mut uninitialized = Vec::new();
        let mut late = Vec::new();
        for t in open {
            match self.drive(&t, now).await {
                Ok(Step::Initialize) => uninitialized.push(t),
                Ok(Step::Claim) => late.push(t),
                Ok(Step::Done) => {}
                Err(e) => tracing::warn!(task = %t.task_id, error = %e, "task step failed; retrying next tick"),
            }
        }
        for batch in uninitialized.chunks(INIT_BATCH) {
            self.initialize_all(batch).await?;
        }
        for batch in late.chunks(CLAIM_BATCH) {
            self.claim_all(batch).await?;
        }
        Ok(())
    }

    /// The latest block's timestamp: the time the hub's deadlines are checked against.
    async fn chain_time(&self) -> Result<U256, SchedulerError> {
        let block = self.owner.provider.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await?;
        Ok(U256::from(block.map(|b| b.header.timestamp).unwrap_or_default()))
    }

    /// Marks WORKER_LOST the replicates, not yet contributed, of workers silent for `worker_lost_after`, so that
    /// `claim_task` hands their tasks to other workers. A replicate whose contribution is on chain is kept: the
    /// hub takes one contribution per worker and task, so its place in the consensus cannot be given to anyone
    /// else (if its worker never reveals, the others' reveals finalize after the reveal deadline and it is
    /// slashed; if no winner reveals, the task is reopened).
    async fn mark_lost_workers(&self) -> Result<(), SchedulerError> {
        let c = self.store.client().await?;
        let silent = store::silent_replicates(&**c, self.worker_lost_after).await?;
        for (task, worker) in silent {
            let contribution = self.hub().viewContribution(task, worker).call().await?;
            if contribution.status == 0 {
                let why = format!("no heartbeat for {} s", self.worker_lost_after.as_secs());
                if store::mark_replicate(&**c, task, worker, "WORKER_LOST", Some(&why)).await? {
                    tracing::warn!(task = %task, worker = %worker, "worker lost; its task goes to another worker");
                }
            } else {
                // Its contribution was mined but not reported: keep it as what it is.
                store::record_contribution(&**c, task, worker, contribution.resultHash, contribution.resultSeal)
                    .await?;
                store::mark_replicate(&**c, task, worker, "CONTRIBUTED", None).await?;
            }
        }
        Ok(())
    }

    /// Marks WORKER_LOST the replicates of an ACTIVE task handed out longer than its progress bound ago and not
    /// contributed on chain (their workers may well be pinging), so that `claim_task` hands the task to others;
    /// such a worker's CPUs are believed again only as new contributions prove them. `timeref` is the task's
    /// category time, as the hub recorded it at initialize.
    async fn reclaim_stalled(&self, task: B256, timeref: U256) -> Result<(), SchedulerError> {
        let secs = u64::try_from(timeref).unwrap_or(u64::MAX);
        let bound = super::rules::progress_bound(Duration::from_secs(secs), self.progress_margin);
        let c = self.store.client().await?;
        for worker in store::stalled_replicates(&**c, task, bound).await? {
            let contribution = self.hub().viewContribution(task, worker).call().await?;
            if contribution.status == 0 {
                let why = format!("no contribution within {} s", bound.as_secs());
                if store::mark_replicate(&**c, task, worker, "WORKER_LOST", Some(&why)).await? {
                    store::reset_proven(&**c, worker).await?;
                    tracing::warn!(task = %task, worker = %worker, "no progress; the task goes to another worker");
                }
            } else {
                store::record_contribution(&**c, task, worker, contribution.resultHash, contribution.resultSeal)
                    .await?;
                store::mark_replicate(&**c, task, worker, "CONTRIBUTED", None).await?;
            }
        }
        Ok(())
    }

    /// Claims tasks past their final deadline in one `claimArray` (one by one when there is a single task or the
    /// batch is refused). The hub refunds the requester and releases the contributors' stakes.
    async fn claim_all(&self, tasks: &[OpenTask]) -> Result<(), SchedulerError> {
        let c = self.store.client().await?;
        const WHY: &str = "claimed after the final deadline: the requester is refunded";
        if tasks.len() > 1 {
            let hub = self.hub();
            let call = hub.claimArray(tasks.iter().map(|t| t.task_id).collect());
            match self.send(call.send().await).await? {
                Sent::Mined(tx) => {
                    tracing::info!(tasks = tasks.len(), "tasks claimed after their final deadline");
                    for t in tasks {
                        store::close_replicates(&**c, t.task_id, "ABORTED").await?;
                        store::set_task_status(&**c, t.task_id, "FAILED", Some(WHY), Some(tx)).await?;
                    }
                    return Ok(());
                }
                Sent::Refused(r) => tracing::debug!(reason = %r, "claimArray refused; one by one"),
            }
        }
        for t in tasks {
            let hub = self.hub();
            match self.send(hub.claim(t.task_id).send().await).await {
                Ok(Sent::Mined(tx)) => {
                    tracing::info!(task = %t.task_id, "task claimed after its final deadline");
                    store::close_replicates(&**c, t.task_id, "ABORTED").await?;
                    store::set_task_status(&**c, t.task_id, "FAILED", Some(WHY), Some(tx)).await?;
                }
                // Claimed (or finalized) by someone else meanwhile: the next tick reads it on chain.
                Ok(Sent::Refused(r)) => tracing::debug!(task = %t.task_id, reason = %r, "claim refused"),
                Err(e) => tracing::warn!(task = %t.task_id, error = %e, "claim failed; retrying next tick"),
            }
        }
        Ok(())
    }

    /// Works out how many live replicates an ACTIVE task wants: one per live contributor so far, plus the
    /// contributions the hub still needs for a consensus (see [`contributions_needed`]). `claim_task` hands
    /// out replicates until the task has that many live ones.
    async fn plan_replicates(&self, t: &OpenTask, contributors: &[Address]) -> Result<(), SchedulerError> {
        let c = self.store.client().await?;
        let live = store::live_workers(&**c, t.task_id).await?;
        let mut groups: HashMap<B256, u128> = HashMap::new();
        let mut live_contributed = 0u64;
        for w in contributors {
            let k = self.hub().viewContribution(t.task_id, *w).call().await?;
            if k.status == C_REJECTED {
                continue;
            }
            let weight = worker_weight(self.hub().viewScore(*w).call().await?);
            let g = groups.entry(k.resultHash).or_default();
            *g = (*g).max(1).saturating_mul(weight);
            if live.contains(w) {
                live_contributed += 1;
            }
        }
        let wanted = live_contributed + contributions_needed(t.trust, groups.into_values());
        store::set_replicates_wanted(&**c, t.task_id, wanted).await?;
        Ok(())
    }

    /// Initializes tasks in one `initializeArray` transaction (whichever deals they come from), or one by one when
    /// there is a single task or the batch is refused: then each refusal is attributed to its task.
    async fn initialize_all(&self, tasks: &[OpenTask]) -> Result<(), SchedulerError> {
        let c = self.store.client().await?;
        if tasks.len() > 1 {
            let hub = self.hub();
            let call = hub.initializeArray(
                tasks.iter().map(|t| t.deal_id).collect(),
                tasks.iter().map(|t| U256::from(t.idx)).collect(),
            );
            match self.send(call.send().await).await? {
                Sent::Mined(tx) => {
                    tracing::info!(tasks = tasks.len(), "tasks initialized");
                    for t in tasks {
                        store::set_task_status(&**c, t.task_id, "INITIALIZED", None, Some(tx)).await?;
                    }
                    return Ok(());
                }
                Sent::Refused(r) => tracing::debug!(reason = %r, "initializeArray refused; one by one"),
            }
        }
        for t in tasks {
            let hub = self.hub();
            let call = hub.initialize(t.deal_id, U256::from(t.idx));
            match self.send(call.send().await).await {
                Ok(Sent::Mined(tx)) => {
                    tracing::info!(task = %t.task_id, "task initialized");
                    store::set_task_status(&**c, t.task_id, "INITIALIZED", None, Some(tx)).await?;
                }
                // Initialized by someone else (anyone may): the next tick sees it ACTIVE.
                Ok(Sent::Refused(Revert::Task(TaskError::TaskAlreadyInitialized(_)))) => {}
                Ok(Sent::Refused(r)) => {
                    let why = format!("initialize refused: {r}");
                    tracing::warn!(task = %t.task_id, reason = %why, "task failed");
                    store::set_task_status(&**c, t.task_id, "FAILED", Some(&why), None).await?;
                }
                Err(e) => tracing::warn!(task = %t.task_id, error = %e, "initialize failed; retrying next tick"),
            }
        }
        Ok(())
    }

    /// Records the deals of one range of blocks; true when there may be more to read.
    async fn scan_notices(&self) -> Result<bool, SchedulerError> {
        let head = self.owner.provider.get_block_number().await?;
        let mut client = self.store.client().await?;
        let cursor = store::cursor(&**client, self.workerpool).await?.unwrap_or(self.start_block.saturating_sub(1));
        if cursor >= head {
            return Ok(false);
        }
        let from = cursor + 1;
        let to = head.min(from + MAX_RANGE - 1);
        let filter = Filter::new()
            .address(self.hub)
            .event_signature(DragonHub::SchedulerNotice::SIGNATURE_HASH)
            .topic1(self.workerpool.into_word())
            .from_block(from)
            .to_block(to);
        let logs = self.owner.provider.get_logs(&filter).await?;
        let mut deals = Vec::new();
        for l in &logs {
            let Ok(e) = l.log_decode::<DragonHub::SchedulerNotice>() else { continue };
            let dealid = e.inner.data.dealid;
            let d = self.hub().viewDeal(dealid).call().await?;
            let n = |v: U256| u64::try_from(v).unwrap_or(u64::MAX);
            deals.push(NewDeal {
                deal_id: dealid,
                workerpool: self.workerpool,
                block: l.block_number.unwrap_or(to),
                bot_first: n(d.botFirst),
                bot_size: n(d.botSize),
                trust: n(d.trust),
                category: n(d.category),
                callback: d.callback,
            });
        }
        let tx = client.transaction().await?;
        for d in &deals {
            store::insert_deal(&*tx, d).await?;
            tracing::info!(deal = %d.deal_id, tasks = d.bot_size, "deal received");
        }
        store::set_cursor(&*tx, self.workerpool, to).await?;
        tx.commit().await?;
        Ok(to < head)
    }

    /// Moves one task forward according to the chain; tasks to initialize or claim are left to the caller,
    /// which batches them. `now` is the chain's time.
    async fn drive(&self, t: &OpenTask, now: U256) -> Result<Step, SchedulerError> {
        let c = self.store.client().await?;
        let on_chain = self.hub().viewTask(t.task_id).call().await?;
        let open = on_chain.status == ACTIVE || on_chain.status == REVEALING;
        if open && on_chain.finalDeadline <= now {
            return Ok(Step::Claim);
        }
        match on_chain.status {
            UNSET if t.status == "RECEIVED" => return Ok(Step::Initialize),
            ACTIVE => {
                // Also a task reopened (by this scheduler or after a crash): it is handed out again.
                if t.status != "INITIALIZED" && t.status != "RUNNING" {
                    store::set_task_status(&**c, t.task_id, "INITIALIZED", None, None).await?;
                }
                self.reclaim_stalled(t.task_id, on_chain.timeref).await?;
                if !on_chain.contributors.is_empty() {
                    self.plan_replicates(t, &on_chain.contributors).await?;
                }
            }
            REVEALING => {
                let revealed = on_chain.revealCounter > U256::ZERO;
                let reveal_closed = on_chain.revealDeadline <= now;
                if !revealed && reveal_closed {
                    return self.reopen(t, on_chain.consensusValue).await.map(|()| Step::Done);
                }
                if t.trust > 1 {
                    store::outvote_replicates(&**c, t.task_id, on_chain.consensusValue).await?;
                }
                // Every winner revealed, or some did and the others are out of time (they will be slashed).
                let ready = revealed && (on_chain.revealCounter == on_chain.winnerCounter || reveal_closed);
                let uploaded = store::uploaded_digest(&**c, t.task_id).await?;
                if uploaded.is_some_and(|d| d != on_chain.resultDigest) {
                    // The upload is checked against the consensus on chain; this shows a digest that differs
                    // from it all the same (a hash collision aside, a bug).
                    tracing::warn!(task = %t.task_id, "the uploaded archive is not the revealed result");
                }
                if ready && uploaded == Some(on_chain.resultDigest) {
                    self.finalize(t, on_chain.resultDigest).await?;
                } else {
                    let status = if revealed { "AT_LEAST_ONE_REVEALED" } else { "CONSENSUS_REACHED" };
                    if t.status != status {
                        store::set_task_status(&**c, t.task_id, status, None, None).await?;
                    }
                }
            }
            COMPLETED => {
                store::close_replicates(&**c, t.task_id, "COMPLETED").await?;
                store::set_task_status(&**c, t.task_id, "COMPLETED", None, None).await?;
            }
            FAILED => {
                store::close_replicates(&**c, t.task_id, "ABORTED").await?;
                store::set_task_status(&**c, t.task_id, "FAILED", Some("the task failed on chain (claimed)"), None)
                    .await?;
            }
            _ => {}
        }
        Ok(Step::Done)
    }

    /// Nobody revealed before the reveal deadline: contributions open again, the silent winners are rejected
    /// (on chain and here), and the task goes back to the queue.
    async fn reopen(&self, t: &OpenTask, consensus: B256) -> Result<(), SchedulerError> {
        let c = self.store.client().await?;
        let hub = self.hub();
        match self.send(hub.reopen(t.task_id).send().await).await? {
            Sent::Mined(tx) => {
                tracing::warn!(task = %t.task_id, "no winner revealed in time: task reopened");
                store::reject_replicates(&**c, t.task_id, consensus).await?;
                store::set_task_status(&**c, t.task_id, "REOPENED", None, Some(tx)).await?;
                store::set_task_status(&**c, t.task_id, "INITIALIZED", None, None).await?;
            }
            // Someone revealed at the last moment, or the final deadline came: the next tick reads the chain.
            Sent::Refused(r) => tracing::warn!(task = %t.task_id, reason = %r, "reopen refused"),
        }
        Ok(())
    }

    async fn finalize(&self, t: &OpenTask, digest: B256) -> Result<(), SchedulerError> {
        let c = self.store.client().await?;
        let results = super::protocol::result_link(t.task_id);
        let callback = if t.callback == Address::ZERO {
            Bytes::new()
        } else {
            store::callback_of(&**c, t.task_id, digest).await?
        };
        store::set_task_results(&**c, t.task_id, &results).await?;
        store::set_task_status(&**c, t.task_id, "FINALIZING", None, None).await?;
        let hub = self.hub();
        let call = hub.finalize(t.task_id, Bytes::from(results), callback);
        match self.send(call.send().await).await? {
            Sent::Mined(tx) => {
                tracing::info!(task = %t.task_id, "task finalized");
                // Replicates first: a task shown COMPLETED has its replicates closed.
                store::close_replicates(&**c, t.task_id, "COMPLETED").await?;
                store::set_task_status(&**c, t.task_id, "COMPLETED", None, Some(tx)).await?;
            }
            Sent::Refused(r) => {
                // Not final for the task: the chain is read again next tick (a deadline passed, or someone
                // finalized first, shows there).
                tracing::warn!(task = %t.task_id, reason = %r, "finalize refused");
            }
        }
        Ok(())
    }

    /// Waits for a sent transaction; a refusal by the hub (at estimation or mined) is typed.
    async fn send(
        &self,
        sent: Result<alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>, alloy::contract::Error>,
    ) -> Result<Sent, SchedulerError> {
        let pending = match sent {
            Ok(p) => p,
            Err(e) => {
                if let Some(data) = e.as_revert_data() {
                    return Ok(Sent::Refused(revert::decode(&data)));
                }
                return Err(e.into());
            }
        };
        let receipt = pending.with_timeout(Some(RECEIPT_TIMEOUT)).get_receipt().await.map_err(ChainError::from)?;
        if !receipt.status() {
            return Ok(Sent::Refused(Revert::Message(format!("transaction {:#x} reverted", receipt.transaction_hash))));
        }
        Ok(Sent::Mined(receipt.transaction_hash))
    }
}
