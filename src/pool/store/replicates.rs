//! Replicates: handed out to workers, moved forward by their reports and by what the chain shows, ended with
//! their task.

use super::deals::set_task_status;
use super::row::{address, b256};
use super::timeline::event;
use crate::pool::protocol::{ReplicateStatus, StatusUpdate};
use crate::store::StoreError;
use alloy::primitives::{Address, B256, Bytes};
use tokio_postgres::GenericClient;

/// Marks the task's replicates that are still running as finished with the task (COMPLETED or ABORTED); the
/// ones that ended before (FAILED, ABORTED, WORKER_LOST) keep how they ended.
pub async fn close_replicates(c: &impl GenericClient, task: B256, status: &str) -> Result<(), StoreError> {
    c.execute(
        "UPDATE pool_replicates SET status = $2, updated_at = now()
         WHERE task_id = $1 AND status <> 'COMPLETED' AND status <> ALL($3)",
        &[&task.as_slice(), &status, &&ReplicateStatus::DEAD[..]],
    )
    .await?;
    Ok(())
}

/// What `POST /workers/work` hands out.
#[derive(Debug, Clone)]
pub struct Handed {
    pub task_id: B256,
    pub deal_id: B256,
    pub idx: u64,
}

/// The worker's own unfinished replicate that it is not `running`, if any (it is handed back: the worker
/// restarted or lost track).
pub async fn unfinished_replicate(
    c: &impl GenericClient,
    worker: Address,
    running: &[B256],
) -> Result<Option<Handed>, StoreError> {
    let running: Vec<&[u8]> = running.iter().map(|t| t.as_slice()).collect();
    let r = c
        .query_opt(
            "SELECT t.task_id, t.deal_id, t.idx FROM pool_replicates r JOIN pool_tasks t USING (task_id)
             WHERE r.worker = $1 AND r.status = ANY($2) AND t.status NOT IN ('COMPLETED', 'FAILED')
               AND r.task_id <> ALL($3)
             ORDER BY r.created_at LIMIT 1",
            &[&worker.as_slice(), &&ReplicateStatus::UNFINISHED[..], &running],
        )
        .await?;
    r.map(|r| {
        Ok(Handed { task_id: b256(&r, "task_id")?, deal_id: b256(&r, "deal_id")?, idx: r.get::<_, i64>("idx") as u64 })
    })
    .transpose()
}

/// Takes the oldest initialized task that has fewer live replicates (not FAILED, ABORTED or WORKER_LOST) than it
/// wants (`replicates_wanted`, see `Scheduler::plan_replicates`; at trust 1, one), and gives it to `worker` as a
/// new replicate. A worker gets at most one replicate of a task: the hub takes one contribution per worker. Run
/// in a transaction: `FOR UPDATE SKIP LOCKED` keeps two workers asking at once from getting the same slot.
pub async fn claim_task(c: &impl GenericClient, worker: Address) -> Result<Option<Handed>, StoreError> {
    let r = c
        .query_opt(
            "SELECT t.task_id, t.deal_id, t.idx FROM pool_tasks t JOIN pool_deals d USING (deal_id)
             WHERE t.status IN ('INITIALIZED', 'RUNNING')
               AND NOT EXISTS (SELECT 1 FROM pool_replicates r WHERE r.task_id = t.task_id AND r.worker = $1)
               AND (SELECT count(*) FROM pool_replicates r
                    WHERE r.task_id = t.task_id AND r.status <> ALL($2))
                   < COALESCE(t.replicates_wanted, GREATEST(d.trust, 1))
             ORDER BY t.created_at, t.idx LIMIT 1 FOR UPDATE OF t SKIP LOCKED",
            &[&worker.as_slice(), &&ReplicateStatus::DEAD[..]],
        )
        .await?;
    let Some(r) = r else { return Ok(None) };
    let handed =
        Handed { task_id: b256(&r, "task_id")?, deal_id: b256(&r, "deal_id")?, idx: r.get::<_, i64>("idx") as u64 };
    c.execute(
        "INSERT INTO pool_replicates (task_id, worker, status) VALUES ($1, $2, 'CREATED')",
        &[&handed.task_id.as_slice(), &worker.as_slice()],
    )
    .await?;
    event(c, handed.task_id, Some(worker), "CREATED").await?;
    set_task_status(c, handed.task_id, "RUNNING", None, None).await?;
    Ok(Some(handed))
}

/// The workers holding a live replicate of the task (not FAILED, ABORTED or WORKER_LOST).
pub async fn live_workers(c: &impl GenericClient, task: B256) -> Result<Vec<Address>, StoreError> {
    let rows = c
        .query(
            "SELECT worker FROM pool_replicates WHERE task_id = $1 AND status <> ALL($2)",
            &[&task.as_slice(), &&ReplicateStatus::DEAD[..]],
        )
        .await?;
    rows.iter().map(|r| address(r, "worker")).collect()
}

/// Replicates not yet contributed, of open tasks, whose worker has sent nothing for `silence`.
pub async fn silent_replicates(
    c: &impl GenericClient,
    silence: std::time::Duration,
) -> Result<Vec<(B256, Address)>, StoreError> {
    let rows = c
        .query(
            "SELECT r.task_id, r.worker FROM pool_replicates r
             JOIN pool_workers w ON w.address = r.worker JOIN pool_tasks t ON t.task_id = r.task_id
             WHERE r.status = ANY($1) AND t.status NOT IN ('COMPLETED', 'FAILED')
               AND w.last_seen < now() - make_interval(secs => $2)",
            &[&&ReplicateStatus::BEFORE_CONTRIBUTION[..], &silence.as_secs_f64()],
        )
        .await?;
    rows.iter().map(|r| Ok((b256(r, "task_id")?, address(r, "worker")?))).collect()
}

/// The workers of the task's replicates, not yet contributed, handed out longer than `bound` ago: they made no
/// progress in the time the task allows (see `rules::progress_bound`), whether they ping or not.
pub async fn stalled_replicates(
    c: &impl GenericClient,
    task: B256,
    bound: std::time::Duration,
) -> Result<Vec<Address>, StoreError> {
    let rows = c
        .query(
            "SELECT worker FROM pool_replicates
             WHERE task_id = $1 AND status = ANY($2) AND created_at < now() - make_interval(secs => $3)",
            &[&task.as_slice(), &&ReplicateStatus::BEFORE_CONTRIBUTION[..], &bound.as_secs_f64()],
        )
        .await?;
    rows.iter().map(|r| address(r, "worker")).collect()
}

/// Records a contribution seen on chain: the replicate's result hash and seal become the chain's and stay so,
/// and its worker's proven count goes up by one (once per replicate). True the first time.
pub async fn record_contribution(
    c: &impl GenericClient,
    task: B256,
    worker: Address,
    hash: B256,
    seal: B256,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "WITH r AS (
                 UPDATE pool_replicates SET result_hash = $3, result_seal = $4, contributed_at = now()
                 WHERE task_id = $1 AND worker = $2 AND contributed_at IS NULL RETURNING worker)
             UPDATE pool_workers SET proven = proven + 1 WHERE address IN (SELECT worker FROM r)",
            &[&task.as_slice(), &worker.as_slice(), &hash.as_slice(), &seal.as_slice()],
        )
        .await?;
    Ok(n == 1)
}

/// Sets the status of a replicate the pool judges (lost, or contributed without saying so), if it is still
/// before its contribution: a report that came in meanwhile wins. True when it changed.
pub async fn mark_replicate(
    c: &impl GenericClient,
    task: B256,
    worker: Address,
    status: &str,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE pool_replicates SET status = $3, error = COALESCE($4, error), updated_at = now()
             WHERE task_id = $1 AND worker = $2 AND status = ANY($5)",
            &[&task.as_slice(), &worker.as_slice(), &status, &error, &&ReplicateStatus::BEFORE_CONTRIBUTION[..]],
        )
        .await?;
    if n == 1 {
        event(c, task, Some(worker), status).await?;
    }
    Ok(n == 1)
}

/// Once the task reached consensus: the replicates that reported another result hash are outvoted (they will
/// be slashed at finalize). FAILED here at once, so that the task's end does not mark them COMPLETED.
pub async fn outvote_replicates(c: &impl GenericClient, task: B256, consensus: B256) -> Result<(), StoreError> {
    let rows = c
        .query(
            "UPDATE pool_replicates SET status = 'FAILED', updated_at = now(),
                 error = 'outvoted: contributed another result than the consensus'
             WHERE task_id = $1 AND result_hash IS NOT NULL AND result_hash <> $2 AND status <> ALL($3)
             RETURNING worker",
            &[&task.as_slice(), &consensus.as_slice(), &&ReplicateStatus::DEAD[..]],
        )
        .await?;
    for r in &rows {
        event(c, task, Some(address(r, "worker")?), "FAILED").await?;
    }
    Ok(())
}

/// After a `reopen`: the replicates that contributed the consensus and did not reveal are rejected on chain;
/// they end ABORTED here, which frees their places.
pub async fn reject_replicates(c: &impl GenericClient, task: B256, consensus: B256) -> Result<(), StoreError> {
    let rows = c
        .query(
            "UPDATE pool_replicates SET status = 'ABORTED', updated_at = now(),
                 error = 'contributed the consensus but did not reveal in time: rejected at reopen'
             WHERE task_id = $1 AND result_hash = $2 AND status <> ALL($3) RETURNING worker",
            &[&task.as_slice(), &consensus.as_slice(), &&ReplicateStatus::DEAD[..]],
        )
        .await?;
    for r in &rows {
        event(c, task, Some(address(r, "worker")?), "ABORTED").await?;
    }
    Ok(())
}

/// The status of the worker's replicate of the task, if it has one.
pub async fn replicate_status(
    c: &impl GenericClient,
    task: B256,
    worker: Address,
) -> Result<Option<String>, StoreError> {
    let r = c
        .query_opt(
            "SELECT status FROM pool_replicates WHERE task_id = $1 AND worker = $2",
            &[&task.as_slice(), &worker.as_slice()],
        )
        .await?;
    Ok(r.map(|r| r.get(0)))
}

/// Moves a replicate from `from` to the reported status, with the report's fields, as judged by
/// `rules::decide` (and the chain). The result fields are taken only while the contribution is not on record
/// (after that they are the chain's); callback data only while there is none. False when the replicate is no
/// longer in `from` (something else changed it meanwhile: the caller reads it again).
pub async fn apply_report(
    c: &impl GenericClient,
    worker: Address,
    from: &str,
    u: &StatusUpdate,
) -> Result<bool, StoreError> {
    let opt = |b: &Option<B256>| b.map(|b| b.to_vec());
    let error = u.error.as_deref().map(crate::pool::rules::bounded_error);
    let error = error.as_deref();
    let n = c
        .execute(
            "UPDATE pool_replicates SET status = $4,
                 result_digest = CASE WHEN contributed_at IS NULL THEN COALESCE($5, result_digest)
                                      ELSE result_digest END,
                 result_hash = CASE WHEN contributed_at IS NULL THEN COALESCE($6, result_hash) ELSE result_hash END,
                 result_seal = CASE WHEN contributed_at IS NULL THEN COALESCE($7, result_seal) ELSE result_seal END,
                 callback_data = COALESCE(callback_data, $8),
                 error = COALESCE($9, error), updated_at = now()
             WHERE task_id = $1 AND worker = $2 AND status = $3",
            &[
                &u.taskid.as_slice(),
                &worker.as_slice(),
                &from,
                &u.status.as_str(),
                &opt(&u.result_digest),
                &opt(&u.result_hash),
                &opt(&u.result_seal),
                &u.callback_data.as_ref().map(|b| b.to_vec()),
                &error,
            ],
        )
        .await?;
    if n == 1 {
        event(c, u.taskid, Some(worker), u.status.as_str()).await?;
    }
    Ok(n == 1)
}

/// For an upload by `worker`: the deal's callback address, or `None` when the worker has no replicate of the
/// task.
pub async fn upload_context(
    c: &impl GenericClient,
    worker: Address,
    task: B256,
) -> Result<Option<Address>, StoreError> {
    let r = c
        .query_opt(
            "SELECT d.callback FROM pool_replicates r
             JOIN pool_tasks t USING (task_id) JOIN pool_deals d USING (deal_id)
             WHERE r.task_id = $1 AND r.worker = $2",
            &[&task.as_slice(), &worker.as_slice()],
        )
        .await?;
    r.map(|r| address(&r, "callback")).transpose()
}

/// The callback data whose keccak256 is the revealed `digest`, as the hub checks it at finalize (empty when no
/// replicate reported it). Any replicate's report is a candidate, and only the right bytes are taken: a worker
/// cannot make finalize fail by reporting other bytes under the consensus digest.
pub async fn callback_of(c: &impl GenericClient, task: B256, digest: B256) -> Result<Bytes, StoreError> {
    let rows = c
        .query(
            "SELECT DISTINCT callback_data FROM pool_replicates WHERE task_id = $1 AND callback_data IS NOT NULL",
            &[&task.as_slice()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, Vec<u8>>(0))
        .find(|d| alloy::primitives::keccak256(d) == digest)
        .map(Bytes::from)
        .unwrap_or_default())
}
