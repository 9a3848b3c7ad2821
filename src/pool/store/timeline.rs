//! `task_events`: every status change of a task and of its replicates, appended as it happens and read back
//! oldest first (`GET /status/tasks/<taskid>`).

use super::row::address;
use crate::store::StoreError;
use alloy::primitives::{Address, B256};
use serde::Serialize;
use tokio_postgres::GenericClient;

/// Appends a status change to the task's timeline.
pub(super) async fn event(
    c: &impl GenericClient,
    task: B256,
    worker: Option<Address>,
    status: &str,
) -> Result<(), StoreError> {
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
