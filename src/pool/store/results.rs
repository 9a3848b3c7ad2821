//! Result archives: stored once per task (the first accepted one is final) and served as uploaded.

use super::timeline::event;
use crate::store::StoreError;
use alloy::primitives::{Address, B256};
use tokio_postgres::GenericClient;

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
