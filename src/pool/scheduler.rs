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
//! | ACTIVE    | INITIALIZED / RUNNING    | workers pull it (`POST /workers/work`)                        |
//! | REVEALING | any                      | CONSENSUS_REACHED; once revealed AT_LEAST_ONE_REVEALED; once  |
//! |           |                          | the result is uploaded, `finalize` → COMPLETED                |
//! | COMPLETED | any                      | COMPLETED                                                     |
//! | FAILED    | any                      | FAILED (claimed by someone)                                   |
//!
//! The chain is the truth and the row only records what was last seen, so nothing here needs to survive a
//! crash besides the cursor and the rows: a transaction sent just before a crash shows on chain at the next
//! tick. Transactions are sent one at a time from the owner's account (alloy's nonce cache is per provider).

use super::PoolConfig;
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
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Most blocks read per `eth_getLogs`.
const MAX_RANGE: u64 = 2_000;
/// Most tasks per `initializeArray`: about 50k gas each, so a batch stays far below a block's gas limit.
const INIT_BATCH: usize = 100;
/// How long a sent transaction may wait for its receipt before the tick gives up (it is looked at again on
/// chain at the next tick).
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

// PoCo's task statuses on chain.
const UNSET: u8 = 0;
const ACTIVE: u8 = 1;
const REVEALING: u8 = 2;
const COMPLETED: u8 = 3;
const FAILED: u8 = 4;

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

/// What [`Scheduler::drive`] leaves to do.
enum Step {
    Done,
    Initialize,
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

    /// One pass: new deals, then every open task.
    pub async fn tick(&self) -> Result<(), SchedulerError> {
        while self.scan_notices().await? {}
        let open = store::open_tasks(&**self.store.client().await?).await?;
        let mut uninitialized = Vec::new();
        for t in open {
            match self.drive(&t).await {
                Ok(Step::Initialize) => uninitialized.push(t),
                Ok(Step::Done) => {}
                Err(e) => tracing::warn!(task = %t.task_id, error = %e, "task step failed; retrying next tick"),
            }
        }
        for batch in uninitialized.chunks(INIT_BATCH) {
            self.initialize_all(batch).await?;
        }
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

    /// Moves one task forward according to the chain; tasks to initialize are left to the caller, which
    /// batches them.
    async fn drive(&self, t: &OpenTask) -> Result<Step, SchedulerError> {
        let c = self.store.client().await?;
        let on_chain = self.hub().viewTask(t.task_id).call().await?;
        match on_chain.status {
            UNSET if t.status == "RECEIVED" => return Ok(Step::Initialize),
            ACTIVE if t.status == "RECEIVED" => {
                store::set_task_status(&**c, t.task_id, "INITIALIZED", None, None).await?;
            }
            REVEALING => {
                let revealed = on_chain.revealCounter > U256::ZERO;
                let all_revealed = revealed && on_chain.revealCounter == on_chain.winnerCounter;
                let uploaded = store::uploaded_digest(&**c, t.task_id).await?;
                if uploaded.is_some_and(|d| d != on_chain.resultDigest) {
                    // Checked at upload against the worker's report; a worker that reported one digest and
                    // revealed another gets no finalize with its archive.
                    tracing::warn!(task = %t.task_id, "the uploaded archive is not the revealed result");
                }
                if all_revealed && uploaded == Some(on_chain.resultDigest) {
                    self.finalize(t, on_chain.resultDigest).await?;
                } else {
                    let status = if revealed { "AT_LEAST_ONE_REVEALED" } else { "CONSENSUS_REACHED" };
                    if t.status != status {
                        store::set_task_status(&**c, t.task_id, status, None, None).await?;
                    }
                }
            }
            COMPLETED => {
                store::set_task_status(&**c, t.task_id, "COMPLETED", None, None).await?;
                store::close_replicates(&**c, t.task_id, "COMPLETED").await?;
            }
            FAILED => {
                store::set_task_status(&**c, t.task_id, "FAILED", Some("the task failed on chain (claimed)"), None)
                    .await?;
                store::close_replicates(&**c, t.task_id, "ABORTED").await?;
            }
            _ => {}
        }
        Ok(Step::Done)
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
                store::set_task_status(&**c, t.task_id, "COMPLETED", None, Some(tx)).await?;
                store::close_replicates(&**c, t.task_id, "COMPLETED").await?;
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
