//! Workers (their registration, heartbeat and proven contributions) and their sessions.

use super::row::address;
use crate::pool::protocol::{Capacity, ReplicateStatus};
use crate::store::StoreError;
use alloy::primitives::Address;
use tokio_postgres::GenericClient;

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
