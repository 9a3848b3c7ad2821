//! The scheduler's side of the tables: its cursor on chain, the deals and their tasks as the chain shows them.

use super::row::{address, b256};
use super::timeline::event;
use crate::store::StoreError;
use alloy::primitives::{Address, B256};
use tokio_postgres::GenericClient;

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
    let wanted = crate::pool::protocol::contributions_needed(d.trust, []) as i32;
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

pub async fn set_task_results(c: &impl GenericClient, task: B256, results: &[u8]) -> Result<(), StoreError> {
    c.execute("UPDATE pool_tasks SET results = $2 WHERE task_id = $1", &[&task.as_slice(), &results]).await?;
    Ok(())
}

pub async fn set_replicates_wanted(c: &impl GenericClient, task: B256, wanted: u64) -> Result<(), StoreError> {
    c.execute(
        "UPDATE pool_tasks SET replicates_wanted = $2 WHERE task_id = $1 AND replicates_wanted IS DISTINCT FROM $2",
        &[&task.as_slice(), &(wanted.min(i32::MAX as u64) as i32)],
    )
    .await?;
    Ok(())
}
