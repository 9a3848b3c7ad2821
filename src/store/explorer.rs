//! Read-only views across `deals`, `tasks`, `task_events` and `orders` for the explorer page: recent tasks with
//! their statuses, one task's history, a workerpool's record, and what a searched address or hash is.

use super::deals::task_status;
use super::{StoreError, fixed};
use crate::ids::{DealId, TaskId};
use alloy::primitives::{Address, B256};
use serde_json::Value;
use tokio_postgres::GenericClient;

/// A task with its deal and last event.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub task_id: TaskId,
    pub deal_id: DealId,
    pub index: u64,
    pub category: u64,
    pub workerpool: Address,
    pub status: &'static str,
    pub last_event: Option<String>,
    pub block_number: Option<u64>,
    pub results: Option<Value>,
}

const TASK_COLUMNS: &str = "t.task_id, t.deal_id, t.idx, d.category, d.workerpool, e.event, e.block_number, e.data";

/// The last event of each task `t`, joined laterally (newest first by the index on task_events).
const LAST_EVENT: &str = "LEFT JOIN LATERAL (
        SELECT event, block_number, data FROM task_events x
        WHERE x.chain_id = t.chain_id AND x.task_id = t.task_id
        ORDER BY block_number DESC, log_index DESC LIMIT 1) e ON true";

fn task_row(r: &tokio_postgres::Row) -> Result<TaskRow, StoreError> {
    let event: Option<String> = r.get(5);
    Ok(TaskRow {
        task_id: TaskId(B256::from(fixed::<32>("tasks", r.get(0))?)),
        deal_id: DealId(B256::from(fixed::<32>("tasks", r.get(1))?)),
        index: r.get::<_, i64>(2) as u64,
        category: r.get::<_, i64>(3) as u64,
        workerpool: Address::from(fixed::<20>("deals", r.get(4))?),
        status: task_status(event.as_deref()),
        last_event: event,
        block_number: r.get::<_, Option<i64>>(6).map(|b| b as u64),
        results: r.get::<_, Option<Value>>(7).and_then(|d| d.get("results").cloned()),
    })
}

/// Tasks of the most recent deals (newest deal first, then by index), optionally of one category or workerpool.
/// Every deal has a task, so the latest `limit` deals hold the answer: they are picked first (by the block
/// index), and only their tasks are joined and sorted, however many deals the chain holds.
pub async fn recent_tasks(
    client: &impl GenericClient,
    chain_id: u64,
    category: Option<u64>,
    workerpool: Option<Address>,
    limit: i64,
) -> Result<Vec<TaskRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "WITH d AS (
                    SELECT chain_id, deal_id, category, workerpool, block_number, log_index FROM deals
                    WHERE chain_id = $1 AND ($2::bigint IS NULL OR category = $2)
                      AND ($3::bytea IS NULL OR workerpool = $3)
                    ORDER BY block_number DESC, log_index DESC LIMIT $4)
                 SELECT {TASK_COLUMNS} FROM d JOIN tasks t USING (chain_id, deal_id) {LAST_EVENT}
                 ORDER BY d.block_number DESC, d.log_index DESC, t.idx LIMIT $4"
            ),
            &[&(chain_id as i64), &category.map(|c| c as i64), &workerpool.map(|a| a.to_vec()), &limit],
        )
        .await?;
    rows.iter().map(task_row).collect()
}

/// One task with every event it had, oldest first: `(task, [(event, block)])`.
pub async fn task(
    client: &impl GenericClient,
    chain_id: u64,
    id: TaskId,
) -> Result<Option<(TaskRow, Vec<(String, u64)>)>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {TASK_COLUMNS} FROM tasks t JOIN deals d USING (chain_id, deal_id) {LAST_EVENT}
                 WHERE t.chain_id = $1 AND t.task_id = $2"
            ),
            &[&(chain_id as i64), &id.0.as_slice()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let events = client
        .query(
            "SELECT event, block_number FROM task_events WHERE chain_id = $1 AND task_id = $2
             ORDER BY block_number, log_index",
            &[&(chain_id as i64), &id.0.as_slice()],
        )
        .await?;
    let events = events.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).collect();
    Ok(Some((task_row(&row)?, events)))
}

/// A workerpool's record: deals, tasks bought, and its tasks per status.
#[derive(Debug, Clone, Default)]
pub struct PoolRecord {
    pub deals: u64,
    pub volume: u64,
    /// `(status, tasks)` for the statuses that occur.
    pub tasks: Vec<(&'static str, u64)>,
}

pub async fn pool_record(
    client: &impl GenericClient,
    chain_id: u64,
    workerpool: Address,
) -> Result<PoolRecord, StoreError> {
    let (chain, pool) = (chain_id as i64, workerpool.to_vec());
    let totals = client
        .query_one(
            "SELECT COUNT(*), COALESCE(SUM(volume), 0)::bigint FROM deals WHERE chain_id = $1 AND workerpool = $2",
            &[&chain, &pool],
        )
        .await?;
    let by_event = client
        .query(
            &format!(
                "SELECT e.event, COUNT(*) FROM tasks t JOIN deals d USING (chain_id, deal_id) {LAST_EVENT}
                 WHERE t.chain_id = $1 AND d.workerpool = $2 GROUP BY e.event"
            ),
            &[&chain, &pool],
        )
        .await?;
    let mut tasks: Vec<(&'static str, u64)> = Vec::new();
    for r in &by_event {
        let status = task_status(r.get::<_, Option<&str>>(0));
        let n = r.get::<_, i64>(1) as u64;
        match tasks.iter_mut().find(|(s, _)| *s == status) {
            Some((_, total)) => *total += n,
            None => tasks.push((status, n)),
        }
    }
    Ok(PoolRecord { deals: totals.get::<_, i64>(0) as u64, volume: totals.get::<_, i64>(1) as u64, tasks })
}

/// What a 32-byte hash names: `"deal"`, `"task"`, or an order of the given kind (`"apporder"`, ...).
pub async fn hash_kind(client: &impl GenericClient, chain_id: u64, h: B256) -> Result<Option<String>, StoreError> {
    let row = client
        .query_opt(
            "SELECT 'deal' FROM deals WHERE chain_id = $1 AND deal_id = $2
             UNION ALL SELECT 'task' FROM tasks WHERE chain_id = $1 AND task_id = $2
             UNION ALL SELECT kind || 'order' FROM orders WHERE order_hash = $2 AND chain_id = $1
             LIMIT 1",
            &[&(chain_id as i64), &h.as_slice()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The roles an address plays in the market: `(role, count)` with role one of `workerpool`, `app`, `dataset`,
/// `requester` (deals on chain) and `workerpoolorders`, `apporders`, `datasetorders`, `requestorders` (orders
/// it signed or whose asset it is, any status).
pub async fn address_roles(
    client: &impl GenericClient,
    chain_id: u64,
    a: Address,
) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = client
        .query(
            "SELECT 'workerpool', COUNT(*) FROM deals WHERE chain_id = $1 AND workerpool = $2
             UNION ALL SELECT 'app', COUNT(*) FROM deals WHERE chain_id = $1 AND app = $2
             UNION ALL SELECT 'dataset', COUNT(*) FROM deals WHERE chain_id = $1 AND dataset = $2
             UNION ALL SELECT 'requester', COUNT(*) FROM deals WHERE chain_id = $1 AND requester = $2
             UNION ALL SELECT kind || 'orders', COUNT(*) FROM orders
                 WHERE chain_id = $1 AND (asset = $2 OR signer = $2) GROUP BY kind",
            &[&(chain_id as i64), &a.as_slice()],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64)).filter(|(_, n)| *n > 0).collect())
}
