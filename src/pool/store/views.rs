//! What the status API and the metrics read: workers, tasks and replicates as JSON rows, and counts.

use super::row::{address, b256};
use crate::store::StoreError;
use alloy::primitives::{Address, B256};
use serde::Serialize;
use tokio_postgres::GenericClient;

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
