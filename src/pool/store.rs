//! The pool's tables (`schema/0004_pool.sql`, `0005_pool_replication.sql`). Functions take a client or a
//! transaction; ids are stored as raw bytes.

use crate::pool::protocol::{Capacity, ReplicateStatus, StatusUpdate};
use crate::store::StoreError;
use alloy::primitives::{Address, B256, Bytes};
use serde::Serialize;
use tokio_postgres::GenericClient;

fn b256(row: &tokio_postgres::Row, i: &str) -> Result<B256, StoreError> {
    let v: Vec<u8> = row.get(i);
    B256::try_from(v.as_slice())
        .map_err(|_| StoreError::Corrupt { table: "pool", detail: format!("{i} is {} bytes", v.len()) })
}

fn address(row: &tokio_postgres::Row, i: &str) -> Result<Address, StoreError> {
    let v: Vec<u8> = row.get(i);
    Address::try_from(v.as_slice())
        .map_err(|_| StoreError::Corrupt { table: "pool", detail: format!("{i} is {} bytes", v.len()) })
}

pub async fn cursor(c: &impl GenericClient, pool: Address) -> Result<Option<u64>, StoreError> {
    let r = c.query_opt("SELECT block FROM pool_cursor WHERE workerpool = $1", &[&pool.as_slice()]).await?;
    Ok(r.map(|r| r.get::<_, i64>(0) as u64))
}

pub async fn set_cursor(c: &impl GenericClient, pool: Address, block: u64) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO pool_cursor (workerpool, block) VALUES ($1, $2)
         ON CONFLICT (workerpool) DO UPDATE SET block = EXCLUDED.block",
        &[&pool.as_slice(), &(block as i64)],
    )
    .await?;
    Ok(())
}

/// A deal of the pool, as read from the hub when its notice came.
#[derive(Debug, Clone)]
pub struct NewDeal {
    pub deal_id: B256,
    pub workerpool: Address,
    pub block: u64,
    pub bot_first: u64,
    pub bot_size: u64,
    pub trust: u64,
    pub category: u64,
    pub callback: Address,
}

/// Records a deal and its tasks (RECEIVED); a deal seen twice changes nothing.
pub async fn insert_deal(c: &impl GenericClient, d: &NewDeal) -> Result<(), StoreError> {
    let n = c
        .execute(
            "INSERT INTO pool_deals (deal_id, workerpool, block, bot_first, bot_size, trust, category, callback)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            &[
                &d.deal_id.as_slice(),
                &d.workerpool.as_slice(),
                &(d.block as i64),
                &(d.bot_first as i64),
                &(d.bot_size as i64),
                &(d.trust as i64),
                &(d.category as i64),
                &d.callback.as_slice(),
            ],
        )
        .await?;
    if n == 0 {
        return Ok(());
    }
    // Before any contribution, as many replicates as newcomers need to agree for a consensus.
    let wanted = crate::pool::scheduler::contributions_needed(d.trust, []) as i32;
    for idx in d.bot_first..d.bot_first + d.bot_size {
        let task = crate::ids::TaskId::of(crate::ids::DealId(d.deal_id), idx).0;
        c.execute(
            "INSERT INTO pool_tasks (task_id, deal_id, idx, status, replicates_wanted)
             VALUES ($1, $2, $3, 'RECEIVED', $4) ON CONFLICT DO NOTHING",
            &[&task.as_slice(), &d.deal_id.as_slice(), &(idx as i64), &wanted],
        )
        .await?;
        event(c, task, None, "RECEIVED").await?;
    }
    Ok(())
}

/// A task the scheduler still has to drive.
#[derive(Debug, Clone)]
pub struct OpenTask {
    pub task_id: B256,
    pub deal_id: B256,
    pub idx: u64,
    pub status: String,
    pub callback: Address,
    pub trust: u64,
}

pub async fn open_tasks(c: &impl GenericClient) -> Result<Vec<OpenTask>, StoreError> {
    let rows = c
        .query(
            "SELECT t.task_id, t.deal_id, t.idx, t.status, d.callback, d.trust
             FROM pool_tasks t JOIN pool_deals d USING (deal_id)
             WHERE t.status NOT IN ('COMPLETED', 'FAILED') ORDER BY t.created_at, t.idx",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenTask {
                task_id: b256(r, "task_id")?,
                deal_id: b256(r, "deal_id")?,
                idx: r.get::<_, i64>("idx") as u64,
                status: r.get("status"),
                callback: address(r, "callback")?,
                trust: r.get::<_, i64>("trust") as u64,
            })
        })
        .collect()
}

pub async fn set_task_status(
    c: &impl GenericClient,
    task: B256,
    status: &str,
    error: Option<&str>,
    tx: Option<B256>,
) -> Result<(), StoreError> {
    let changed = c
        .execute(
            "UPDATE pool_tasks SET status = $2, error = COALESCE($3, error), last_tx = COALESCE($4, last_tx),
                    updated_at = now()
             WHERE task_id = $1 AND status <> $2",
            &[&task.as_slice(), &status, &error, &tx.as_ref().map(|t| t.as_slice())],
        )
        .await?;
    if changed == 1 {
        event(c, task, None, status).await?;
    }
    Ok(())
}

/// Appends a status change to the task's timeline.
async fn event(c: &impl GenericClient, task: B256, worker: Option<Address>, status: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO pool_events (task_id, worker, status) VALUES ($1, $2, $3)",
        &[&task.as_slice(), &worker.as_ref().map(|w| w.as_slice()), &status],
    )
    .await?;
    Ok(())
}

/// One entry of a task's timeline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_checksum")]
    pub worker: Option<Address>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

fn opt_checksum<S: serde::Serializer>(v: &Option<Address>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(a) => s.collect_str(&a.to_checksum(None)),
        None => s.serialize_none(),
    }
}

/// The timeline of a task, oldest first.
pub async fn events(c: &impl GenericClient, task: B256) -> Result<Vec<EventView>, StoreError> {
    let rows = c
        .query(
            "SELECT status, worker, (EXTRACT(EPOCH FROM at) * 1000)::int8 AS at FROM pool_events
             WHERE task_id = $1 ORDER BY id",
            &[&task.as_slice()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let worker: Option<Vec<u8>> = r.get("worker");
            Ok(EventView {
                status: r.get("status"),
                worker: worker.map(|_| address(r, "worker")).transpose()?,
                at: r.get("at"),
            })
        })
        .collect()
}

pub async fn set_task_results(c: &impl GenericClient, task: B256, results: &[u8]) -> Result<(), StoreError> {
    c.execute("UPDATE pool_tasks SET results = $2 WHERE task_id = $1", &[&task.as_slice(), &results]).await?;
    Ok(())
}

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

pub async fn upsert_worker(c: &impl GenericClient, worker: Address, cap: &Capacity) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO pool_workers (address, cpu, memory, gpu) VALUES ($1, $2, $3, $4)
         ON CONFLICT (address) DO UPDATE SET cpu = EXCLUDED.cpu, memory = EXCLUDED.memory, gpu = EXCLUDED.gpu,
                                             last_seen = now()",
        &[&worker.as_slice(), &(cap.cpu as i32), &(cap.memory as i64), &cap.gpu],
    )
    .await?;
    Ok(())
}

/// A heartbeat; the worker's registered CPUs and its proven contributions (see `schema/0007`), `None` when it
/// never registered.
pub async fn touch_worker(c: &impl GenericClient, worker: Address) -> Result<Option<(i32, i32)>, StoreError> {
    let r = c
        .query_opt(
            "UPDATE pool_workers SET last_seen = now() WHERE address = $1 RETURNING cpu, proven",
            &[&worker.as_slice()],
        )
        .await?;
    Ok(r.map(|r| (r.get(0), r.get(1))))
}

/// The worker lost a task for lack of progress: its claimed CPUs are believed again only as new contributions
/// prove them.
pub async fn reset_proven(c: &impl GenericClient, worker: Address) -> Result<(), StoreError> {
    c.execute("UPDATE pool_workers SET proven = 0 WHERE address = $1", &[&worker.as_slice()]).await?;
    Ok(())
}

/// How many unfinished replicates of open tasks the worker holds (each takes one of its CPUs).
pub async fn busy_replicates(c: &impl GenericClient, worker: Address) -> Result<i64, StoreError> {
    let r = c
        .query_one(
            "SELECT count(*) FROM pool_replicates r JOIN pool_tasks t USING (task_id)
             WHERE r.worker = $1 AND r.status = ANY($2) AND t.status NOT IN ('COMPLETED', 'FAILED')",
            &[&worker.as_slice(), &&ReplicateStatus::UNFINISHED[..]],
        )
        .await?;
    Ok(r.get(0))
}

/// Records a session valid for `ttl`; the worker's sessions beyond the newest `keep` end, and expired ones
/// are purged (both by index).
pub async fn insert_session(
    c: &impl GenericClient,
    token: &str,
    worker: Address,
    ttl: std::time::Duration,
    keep: i64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO pool_sessions (token, worker, expires_at)
         VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))",
        &[&token, &worker.as_slice(), &ttl.as_secs_f64()],
    )
    .await?;
    c.execute(
        "DELETE FROM pool_sessions WHERE worker = $1 AND token NOT IN
             (SELECT token FROM pool_sessions WHERE worker = $1 ORDER BY expires_at DESC LIMIT $2)",
        &[&worker.as_slice(), &keep.max(1)],
    )
    .await?;
    c.execute("DELETE FROM pool_sessions WHERE expires_at < now()", &[]).await?;
    Ok(())
}

pub async fn session(c: &impl GenericClient, token: &str) -> Result<Option<Address>, StoreError> {
    let r = c.query_opt("SELECT worker FROM pool_sessions WHERE token = $1 AND expires_at > now()", &[&token]).await?;
    r.map(|r| address(&r, "worker")).transpose()
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

pub async fn set_replicates_wanted(c: &impl GenericClient, task: B256, wanted: u64) -> Result<(), StoreError> {
    c.execute(
        "UPDATE pool_tasks SET replicates_wanted = $2 WHERE task_id = $1 AND replicates_wanted IS DISTINCT FROM $2",
        &[&task.as_slice(), &(wanted.min(i32::MAX as u64) as i32)],
    )
    .await?;
    Ok(())
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

/// Whether the task's archive is stored (the first accepted one is final).
pub async fn has_result(c: &impl GenericClient, task: B256) -> Result<bool, StoreError> {
    let r = c.query_one("SELECT EXISTS (SELECT 1 FROM pool_results WHERE task_id = $1)", &[&task.as_slice()]).await?;
    Ok(r.get(0))
}

/// Stores the task's archive, with the `digest` checked against the chain, unless one is stored already (the
/// first accepted archive is final: false then, and nothing changes).
pub async fn put_result(
    c: &impl GenericClient,
    task: B256,
    worker: Address,
    zip: &[u8],
    digest: B256,
) -> Result<bool, StoreError> {
    use sha2::Digest;
    let sha: [u8; 32] = sha2::Sha256::digest(zip).into();
    let inserted = c
        .execute(
            "INSERT INTO pool_results (task_id, worker, zip, sha256, digest) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (task_id) DO NOTHING",
            &[&task.as_slice(), &worker.as_slice(), &zip, &sha.as_slice(), &digest.as_slice()],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    // The upload is the replicate's RESULT_UPLOADED, whether or not the worker's report of it comes before the
    // task is finalized (after which a report no longer changes the replicate).
    let n = c
        .execute(
            "UPDATE pool_replicates SET status = 'RESULT_UPLOADED', updated_at = now()
             WHERE task_id = $1 AND worker = $2 AND status NOT IN ('RESULT_UPLOADED', 'COMPLETED', 'ABORTED')",
            &[&task.as_slice(), &worker.as_slice()],
        )
        .await?;
    if n == 1 {
        event(c, task, Some(worker), "RESULT_UPLOADED").await?;
    }
    Ok(true)
}

pub async fn result_zip(c: &impl GenericClient, task: B256) -> Result<Option<Vec<u8>>, StoreError> {
    let r = c.query_opt("SELECT zip FROM pool_results WHERE task_id = $1", &[&task.as_slice()]).await?;
    Ok(r.map(|r| r.get(0)))
}

/// The digest of the uploaded archive (checked at upload against what its worker reported), if any.
pub async fn uploaded_digest(c: &impl GenericClient, task: B256) -> Result<Option<B256>, StoreError> {
    let r = c
        .query_opt(
            "SELECT COALESCE(r.digest, p.result_digest) FROM pool_results r
             LEFT JOIN pool_replicates p ON p.task_id = r.task_id AND p.worker = r.worker
             WHERE r.task_id = $1",
            &[&task.as_slice()],
        )
        .await?;
    Ok(r.and_then(|r| r.get::<_, Option<Vec<u8>>>(0)).and_then(|d| B256::try_from(d.as_slice()).ok()))
}

// ---- the status API and metrics ------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    #[serde(with = "crate::wire::json::address")]
    pub address: Address,
    pub cpu: i32,
    pub memory: i64,
    pub gpu: bool,
    /// Contributions seen on chain since the worker last lost a task for lack of progress.
    pub proven: i32,
    /// Seconds since the last heartbeat.
    pub last_seen_secs: f64,
    pub alive: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub taskid: B256,
    pub dealid: B256,
    pub index: i64,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub result_uploaded: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicateView {
    pub taskid: B256,
    #[serde(with = "crate::wire::json::address")]
    pub worker: Address,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_hash: Option<B256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A worker is alive while its last heartbeat is younger than this, unless the pool says otherwise
/// (`--worker-lost-after`; iExec: lost after 60 s).
pub const ALIVE_SECS: f64 = 60.0;

/// The first `limit` workers, alive while their last heartbeat is younger than [`ALIVE_SECS`].
pub async fn workers(c: &impl GenericClient, limit: i64) -> Result<Vec<WorkerView>, StoreError> {
    workers_within(c, std::time::Duration::from_secs_f64(ALIVE_SECS), limit).await
}

/// The first `limit` workers to register, alive while their last heartbeat is younger than `lost_after` (the
/// pool's --worker-lost-after).
pub async fn workers_within(
    c: &impl GenericClient,
    lost_after: std::time::Duration,
    limit: i64,
) -> Result<Vec<WorkerView>, StoreError> {
    let rows = c
        .query(
            "SELECT address, cpu, memory, gpu, proven, EXTRACT(EPOCH FROM now() - last_seen)::float8 AS age
             FROM pool_workers ORDER BY registered_at LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let age: f64 = r.get("age");
            Ok(WorkerView {
                address: address(r, "address")?,
                cpu: r.get("cpu"),
                memory: r.get("memory"),
                gpu: r.get("gpu"),
                proven: r.get("proven"),
                last_seen_secs: age,
                alive: age < lost_after.as_secs_f64(),
            })
        })
        .collect()
}

/// Every worker's slots ([`crate::pool::rules::slots`]: its CPUs as far as its contributions prove them) and
/// whether it is alive (heartbeat younger than `lost_after`). One row per member that registered.
pub async fn worker_slots(
    c: &impl GenericClient,
    lost_after: std::time::Duration,
    vouched: bool,
) -> Result<Vec<(i64, bool)>, StoreError> {
    let rows = c
        .query(
            "SELECT cpu, proven, last_seen > now() - make_interval(secs => $1) AS alive FROM pool_workers",
            &[&lost_after.as_secs_f64()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (cpu, proven): (i32, i32) = (r.get("cpu"), r.get("proven"));
            (crate::pool::rules::slots(i64::from(cpu), i64::from(proven), vouched), r.get("alive"))
        })
        .collect())
}

/// The most recent tasks (at most `limit`), newest first.
pub async fn tasks(c: &impl GenericClient, limit: i64) -> Result<Vec<TaskView>, StoreError> {
    let rows = c
        .query(
            "SELECT t.task_id, t.deal_id, t.idx, t.status, t.error,
                    EXISTS (SELECT 1 FROM pool_results r WHERE r.task_id = t.task_id) AS uploaded
             FROM pool_tasks t ORDER BY t.created_at DESC, t.idx DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TaskView {
                taskid: b256(r, "task_id")?,
                dealid: b256(r, "deal_id")?,
                index: r.get("idx"),
                status: r.get("status"),
                error: r.get("error"),
                result_uploaded: r.get("uploaded"),
            })
        })
        .collect()
}

pub async fn replicates(c: &impl GenericClient, limit: i64) -> Result<Vec<ReplicateView>, StoreError> {
    let rows = c
        .query(
            "SELECT task_id, worker, status, result_hash, error FROM pool_replicates
             ORDER BY created_at DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let hash: Option<Vec<u8>> = r.get("result_hash");
            Ok(ReplicateView {
                taskid: b256(r, "task_id")?,
                worker: address(r, "worker")?,
                status: r.get("status"),
                result_hash: hash.and_then(|h| B256::try_from(h.as_slice()).ok()),
                error: r.get("error"),
            })
        })
        .collect()
}

/// Tasks by status.
pub async fn task_counts(c: &impl GenericClient) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = c.query("SELECT status, count(*) FROM pool_tasks GROUP BY status ORDER BY status", &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
