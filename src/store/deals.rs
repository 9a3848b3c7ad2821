//! The deals aggregate, tables `deals`, `tasks` and `task_events`: what chain sync saw on chain, keyed by block
//! so a reorg deletes exactly what the orphaned blocks brought. A deal's tasks are written with it and a task's
//! events name its task, so the three are one aggregate, written and deleted together.
//!
//! The `body` column keeps a deal in the market API's JSON form ([`DealRow::body`]), made here from the typed
//! row chain sync sends: `GET /deals` answers it as stored, the feed's `deal_created` sends the same.

use super::{StoreError, fixed};
use crate::ids::{DealId, OrderHash, TaskId};
use alloy::primitives::{Address, B256, U256};
use serde_json::{Value, json};
use tokio_postgres::GenericClient;

/// Tasks recorded per deal (their ids are precomputed so task events find their deal). A deal's volume is
/// bounded only by its orders' stakes; past this many tasks, the rest of a huge deal is not listed.
pub const MAX_LISTED_TASKS: u64 = 10_000;

/// A deal as sync records it.
#[derive(Debug, Clone)]
pub struct DealRow {
    pub deal_id: DealId,
    pub block_number: u64,
    /// Unix seconds.
    pub block_timestamp: u64,
    pub tx_hash: B256,
    pub log_index: u32,
    pub app_hash: OrderHash,
    pub dataset_hash: Option<OrderHash>,
    pub workerpool_hash: OrderHash,
    pub request_hash: OrderHash,
    pub volume: u64,
    pub category: u64,
    pub chain_id: u64,
    /// App, dataset and workerpool as the hub recorded them in the deal (a zero dataset when there is none).
    pub app: Resource,
    pub dataset: Resource,
    pub workerpool: Resource,
    pub requester: Address,
    pub beneficiary: Address,
    pub callback: Address,
    pub bot_first: u64,
    pub bot_size: u64,
    pub trust: U256,
    pub tag: B256,
    pub params: String,
    pub start_time: u64,
    pub worker_stake: U256,
    pub scheduler_reward_ratio: U256,
    pub proposal_id: Option<i64>,
}

/// An app, dataset or workerpool of a deal: the asset, its owner and its price, as the hub recorded them.
#[derive(Debug, Clone, Copy)]
pub struct Resource {
    pub pointer: Address,
    pub owner: Address,
    pub price: U256,
}

impl DealRow {
    /// The deal in the market API's JSON form, as the `body` column keeps it and the API and the feed answer it.
    pub fn body(&self) -> Value {
        let resource = |p: &Resource| json!({"pointer": p.pointer.to_checksum(None), "owner": p.owner.to_checksum(None), "price": number(p.price)});
        json!({
            "chainId": self.chain_id,
            "dealid": self.deal_id.to_string(),
            "app": resource(&self.app),
            "dataset": resource(&self.dataset),
            "workerpool": resource(&self.workerpool),
            "appHash": format!("{:#x}", self.app_hash.0),
            "datasetHash": format!("{:#x}", self.dataset_hash.map_or(B256::ZERO, |h| h.0)),
            "workerpoolHash": format!("{:#x}", self.workerpool_hash.0),
            "requestHash": format!("{:#x}", self.request_hash.0),
            "requester": self.requester.to_checksum(None),
            "beneficiary": self.beneficiary.to_checksum(None),
            "callback": self.callback.to_checksum(None),
            "botFirst": self.bot_first,
            "botSize": self.bot_size,
            "volume": self.volume,
            "category": self.category,
            "trust": number(self.trust),
            "tag": format!("{:#x}", self.tag),
            "params": self.params,
            "startTime": self.start_time,
            "workerStake": number(self.worker_stake),
            "schedulerRewardRatio": number(self.scheduler_reward_ratio),
            "blockNumber": self.block_number,
            "blockTimestamp": crate::wire::iso_time(self.block_timestamp as i64 * 1000),
            "transactionHash": format!("{:#x}", self.tx_hash),
        })
    }
}

/// A uint as the peer prints it: a JSON number up to 2^53-1 (exact in every JSON reader), an exact decimal string
/// beyond (a JavaScript number would round it).
fn number(v: U256) -> Value {
    match u64::try_from(v) {
        Ok(n) if n < (1 << 53) => json!(n),
        _ => json!(v.to_string()),
    }
}

/// A task event as sync records it.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    pub task_id: TaskId,
    pub block_number: u64,
    /// The block's time, unix seconds (track records measure deal to finalize with it).
    pub block_timestamp: u64,
    pub log_index: u32,
    pub change: TaskChange,
}

/// What a task event says, typed; the `data` column keeps it as JSON ([`TaskChange::data`]).
#[derive(Debug, Clone)]
pub enum TaskChange {
    Initialize { workerpool: Address },
    Contribute { worker: Address, hash: B256 },
    Consensus { consensus: B256 },
    Reveal { worker: Address, digest: B256 },
    Reopen,
    Finalize { results: alloy::primitives::Bytes },
    Claimed,
}

impl TaskChange {
    /// The event's name as the hub gives it (`TaskInitialize`, `TaskContribute`, ...).
    pub fn event(&self) -> &'static str {
        match self {
            TaskChange::Initialize { .. } => "TaskInitialize",
            TaskChange::Contribute { .. } => "TaskContribute",
            TaskChange::Consensus { .. } => "TaskConsensus",
            TaskChange::Reveal { .. } => "TaskReveal",
            TaskChange::Reopen => "TaskReopen",
            TaskChange::Finalize { .. } => "TaskFinalize",
            TaskChange::Claimed => "TaskClaimed",
        }
    }

    /// The event's arguments as the `data` column keeps them (the task view reads `results` back).
    pub fn data(&self) -> Value {
        match self {
            TaskChange::Initialize { workerpool } => json!({"workerpool": workerpool}),
            TaskChange::Contribute { worker, hash } => json!({"worker": worker, "hash": hash}),
            TaskChange::Consensus { consensus } => json!({"consensus": consensus}),
            TaskChange::Reveal { worker, digest } => json!({"worker": worker, "digest": digest}),
            TaskChange::Reopen | TaskChange::Claimed => json!({}),
            TaskChange::Finalize { results } => json!({"results": results}),
        }
    }
}

/// The peer's task statuses, from the last event of a task.
pub fn task_status(last_event: Option<&str>) -> &'static str {
    match last_event {
        None => "UNSET",
        Some("TaskInitialize" | "TaskContribute" | "TaskReopen") => "ACTIVE",
        Some("TaskConsensus" | "TaskReveal") => "REVEALING",
        Some("TaskFinalize") => "COMPLETED",
        Some("TaskClaimed") => "FAILED",
        Some(_) => "ACTIVE",
    }
}

/// Inserts deals and their tasks; a deal already recorded is skipped. Returns the deals inserted.
pub async fn insert(client: &impl GenericClient, chain_id: u64, deals: &[DealRow]) -> Result<Vec<DealId>, StoreError> {
    let mut inserted = Vec::new();
    for d in deals {
        let n = client
            .execute(
                "INSERT INTO deals (chain_id, deal_id, block_number, block_timestamp, tx_hash, log_index, app_hash,
                                    dataset_hash, workerpool_hash, request_hash, volume, category, body, app, dataset,
                                    workerpool, requester, beneficiary, workerpool_price, proposal_id)
                 VALUES ($1, $2, $3, to_timestamp($4), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                         $18, $19::text::numeric, $20)
                 ON CONFLICT DO NOTHING",
                &[
                    &(chain_id as i64),
                    &d.deal_id.0.as_slice(),
                    &(d.block_number as i64),
                    &(d.block_timestamp as f64),
                    &d.tx_hash.as_slice(),
                    &(d.log_index as i32),
                    &d.app_hash.0.as_slice(),
                    &d.dataset_hash.map(|h| h.0.to_vec()),
                    &d.workerpool_hash.0.as_slice(),
                    &d.request_hash.0.as_slice(),
                    &(d.volume as i64),
                    &(d.category as i64),
                    &d.body(),
                    &d.app.pointer.as_slice(),
                    &d.dataset.pointer.as_slice(),
                    &d.workerpool.pointer.as_slice(),
                    &d.requester.as_slice(),
                    &d.beneficiary.as_slice(),
                    &d.workerpool.price.to_string(),
                    &d.proposal_id,
                ],
            )
            .await?;
        if n == 0 {
            continue;
        }
        let listed = d.volume.min(MAX_LISTED_TASKS);
        let ids: Vec<Vec<u8>> = (0..listed).map(|i| TaskId::of(d.deal_id, d.bot_first + i).0.to_vec()).collect();
        let idx: Vec<i64> = (0..listed).map(|i| (d.bot_first + i) as i64).collect();
        client
            .execute(
                "INSERT INTO tasks (chain_id, task_id, deal_id, idx)
                 SELECT $1, t, $2, i FROM unnest($3::bytea[], $4::bigint[]) AS u(t, i) ON CONFLICT DO NOTHING",
                &[&(chain_id as i64), &d.deal_id.0.as_slice(), &ids, &idx],
            )
            .await?;
        inserted.push(d.deal_id);
    }
    Ok(inserted)
}

pub async fn insert_task_events(
    client: &impl GenericClient,
    chain_id: u64,
    events: &[TaskEvent],
) -> Result<(), StoreError> {
    for e in events {
        client
            .execute(
                "INSERT INTO task_events (chain_id, task_id, block_number, log_index, event, data, block_timestamp)
                 VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7)) ON CONFLICT DO NOTHING",
                &[
                    &(chain_id as i64),
                    &e.task_id.0.as_slice(),
                    &(e.block_number as i64),
                    &(e.log_index as i32),
                    &e.change.event(),
                    &e.change.data(),
                    &(e.block_timestamp as f64),
                ],
            )
            .await?;
    }
    Ok(())
}

/// The deal a task belongs to, with the task's index and the deal's category, when the deal is known.
pub async fn task_deal(
    client: &impl GenericClient,
    chain_id: u64,
    task: TaskId,
) -> Result<Option<(DealId, u64, u64)>, StoreError> {
    let r = client
        .query_opt(
            "SELECT t.deal_id, t.idx, d.category FROM tasks t JOIN deals d USING (chain_id, deal_id)
             WHERE t.chain_id = $1 AND t.task_id = $2",
            &[&(chain_id as i64), &task.0.as_slice()],
        )
        .await?;
    r.map(|r| {
        let deal = DealId(B256::from(fixed::<32>("tasks", r.get(0))?));
        Ok((deal, r.get::<_, i64>(1) as u64, r.get::<_, i64>(2) as u64))
    })
    .transpose()
}

/// Filters of the deal list (all optional, ANDed).
#[derive(Debug, Default, Clone)]
pub struct DealFilter {
    pub category: Option<u64>,
    pub requester: Option<Address>,
    pub beneficiary: Option<Address>,
    pub app: Option<Address>,
    pub dataset: Option<Address>,
    pub workerpool: Option<Address>,
    pub app_owner: Option<Address>,
    pub dataset_owner: Option<Address>,
    pub workerpool_owner: Option<Address>,
    pub app_hash: Option<OrderHash>,
    pub dataset_hash: Option<OrderHash>,
    pub workerpool_hash: Option<OrderHash>,
    pub request_hash: Option<OrderHash>,
}

/// Deals as the peer lists them (newest block first, then by deal id), with the total count: `(bodies, count)`.
/// Owners are those the hub recorded in the deal (its body), as the peer filters them.
pub async fn list(
    client: &impl GenericClient,
    chain_id: u64,
    f: &DealFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Value>, i64), StoreError> {
    let a = |x: &Option<Address>| x.map(|a| a.to_vec());
    let h = |x: &Option<OrderHash>| x.map(|h| h.0.to_vec());
    let cond = "chain_id = $1 AND ($2::bigint IS NULL OR category = $2) AND ($3::bytea IS NULL OR requester = $3)
        AND ($4::bytea IS NULL OR beneficiary = $4) AND ($5::bytea IS NULL OR app = $5)
        AND ($6::bytea IS NULL OR dataset = $6) AND ($7::bytea IS NULL OR workerpool = $7)
        AND ($8::bytea IS NULL OR app_hash = $8) AND ($9::bytea IS NULL OR dataset_hash = $9)
        AND ($10::bytea IS NULL OR workerpool_hash = $10) AND ($11::bytea IS NULL OR request_hash = $11)
        AND ($12::text IS NULL OR body->'app'->>'owner' = $12)
        AND ($13::text IS NULL OR body->'dataset'->>'owner' = $13)
        AND ($14::text IS NULL OR body->'workerpool'->>'owner' = $14)";
    let category = f.category.map(|c| c as i64);
    let (req, ben, app, ds, wp) = (a(&f.requester), a(&f.beneficiary), a(&f.app), a(&f.dataset), a(&f.workerpool));
    let (ah, dh, wh, rh) = (h(&f.app_hash), h(&f.dataset_hash), h(&f.workerpool_hash), h(&f.request_hash));
    let chain = chain_id as i64;
    let owner = |x: &Option<Address>| x.map(|a| a.to_checksum(None));
    let (ao, dso, wpo) = (owner(&f.app_owner), owner(&f.dataset_owner), owner(&f.workerpool_owner));
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 14] =
        [&chain, &category, &req, &ben, &app, &ds, &wp, &ah, &dh, &wh, &rh, &ao, &dso, &wpo];
    let count: i64 = client.query_one(&format!("SELECT COUNT(*) FROM deals WHERE {cond}"), &params).await?.get(0);
    let mut with_page: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params.to_vec();
    with_page.push(&offset);
    with_page.push(&limit);
    let rows = client
        .query(
            &format!("SELECT body FROM deals WHERE {cond} ORDER BY block_number DESC, deal_id OFFSET $15 LIMIT $16"),
            &with_page,
        )
        .await?;
    Ok((rows.iter().map(|r| r.get(0)).collect(), count))
}

/// One deal, with its tasks: `(body, [(taskid, index, status, last event's block)])`.
pub async fn get(
    client: &impl GenericClient,
    chain_id: u64,
    id: DealId,
) -> Result<Option<(Value, Vec<TaskView>)>, StoreError> {
    let Some(row) = client
        .query_opt(
            "SELECT body FROM deals WHERE chain_id = $1 AND deal_id = $2",
            &[&(chain_id as i64), &id.0.as_slice()],
        )
        .await?
    else {
        return Ok(None);
    };
    let tasks = client
        .query(
            "SELECT t.task_id, t.idx, e.event, e.block_number, e.data
             FROM tasks t LEFT JOIN LATERAL (
                SELECT event, block_number, data FROM task_events x
                WHERE x.chain_id = t.chain_id AND x.task_id = t.task_id
                ORDER BY block_number DESC, log_index DESC LIMIT 1) e ON true
             WHERE t.chain_id = $1 AND t.deal_id = $2 ORDER BY t.idx",
            &[&(chain_id as i64), &id.0.as_slice()],
        )
        .await?;
    let tasks = tasks
        .iter()
        .map(|r| {
            let event: Option<String> = r.get(2);
            Ok(TaskView {
                task_id: TaskId(B256::from(fixed::<32>("tasks", r.get(0))?)),
                index: r.get::<_, i64>(1) as u64,
                status: task_status(event.as_deref()),
                last_event: event,
                block_number: r.get::<_, Option<i64>>(3).map(|b| b as u64),
                results: r.get::<_, Option<Value>>(4).and_then(|d| d.get("results").cloned()),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some((row.get(0), tasks)))
}

/// A task as the deal view shows it.
#[derive(Debug, Clone)]
pub struct TaskView {
    pub task_id: TaskId,
    pub index: u64,
    pub status: &'static str,
    pub last_event: Option<String>,
    pub block_number: Option<u64>,
    pub results: Option<Value>,
}

/// Price history of a category as the peer gives it: `(unix seconds, workerpool price, volume)` of the last
/// `limit` deals, newest block first (then cheapest, then by deal id).
pub async fn ohlc(
    client: &impl GenericClient,
    chain_id: u64,
    category: u64,
    limit: i64,
) -> Result<Vec<(i64, String, i64)>, StoreError> {
    let rows = client
        .query(
            "SELECT extract(epoch FROM block_timestamp)::bigint, workerpool_price::text, volume
             FROM deals WHERE chain_id = $1 AND category = $2
             ORDER BY block_number DESC, workerpool_price, deal_id LIMIT $3",
            &[&(chain_id as i64), &(category as i64), &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// Deletes what blocks `from..` brought (a reorg orphaned them): their deals (and their tasks), task events.
/// Returns the order hashes of the deleted deals, whose remaining volumes the caller recomputes.
pub async fn delete_from(client: &impl GenericClient, chain_id: u64, from: u64) -> Result<Vec<OrderHash>, StoreError> {
    let chain = chain_id as i64;
    let from = from as i64;
    client.execute("DELETE FROM task_events WHERE chain_id = $1 AND block_number >= $2", &[&chain, &from]).await?;
    let rows = client
        .query(
            "DELETE FROM deals WHERE chain_id = $1 AND block_number >= $2
             RETURNING app_hash, dataset_hash, workerpool_hash, request_hash",
            &[&chain, &from],
        )
        .await?;
    let mut out = Vec::new();
    for r in &rows {
        for i in 0..4 {
            if let Some(h) = r.get::<_, Option<&[u8]>>(i) {
                out.push(OrderHash(B256::from(fixed::<32>("deals", h)?)));
            }
        }
    }
    Ok(out)
}
