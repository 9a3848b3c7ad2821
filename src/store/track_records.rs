//! Workerpools' track records, derived by SQL from what chain sync stores (`deals`, `tasks`, `task_events`,
//! `categories`, `sync_blocks`): nothing is kept apart, so a reorg's rollback undoes them by construction and
//! anyone holding the same chain events computes the same figures. `docs/track-records.md` defines each figure.

use super::{StoreError, fixed};
use alloy::primitives::Address;
use std::collections::BTreeMap;
use tokio_postgres::GenericClient;

/// Tasks of a deal followed by their events (as `deals::MAX_LISTED_TASKS`): beyond, a huge deal's tasks count
/// neither as finished nor as failed.
const FOLLOWED: i64 = super::deals::MAX_LISTED_TASKS as i64;

/// The figures of one workerpool over one window of deals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Deals whose workerpool it is.
    pub deals: u64,
    /// Tasks bought: the sum of those deals' volumes.
    pub tasks: u64,
    /// Tasks with a `TaskFinalize` event.
    pub completed: u64,
    /// Tasks with a `TaskClaimed` event (the requester was refunded, the pool's stake seized).
    pub claimed: u64,
    /// Tasks past their deal's final deadline, by chain time, with neither event (failed, not claimed yet).
    pub failed: u64,
    /// The lower median of (finalize block time - deal block time) over completed tasks, in seconds.
    pub median_seconds: Option<u64>,
}

impl Figures {
    /// Tasks whose outcome is settled: completed, claimed or failed.
    pub fn finished(&self) -> u64 {
        self.completed + self.claimed + self.failed
    }

    /// Completed over finished, `None` before any task finished.
    pub fn completed_rate(&self) -> Option<f64> {
        let f = self.finished();
        (f > 0).then(|| self.completed as f64 / f as f64)
    }

    /// What the matching engine weighs (all-time figures).
    pub fn engine(&self) -> dragon_matching::TrackRecord {
        dragon_matching::TrackRecord { finished: self.finished(), completed: self.completed }
    }
}

/// The chain time the figures were computed at: the last applied block that sync recorded with its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsOf {
    pub block: u64,
    /// Unix seconds.
    pub timestamp: i64,
}

/// A workerpool's track record: over all its deals, and over the deals of the last 30 days of chain time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackRecord {
    pub all_time: Figures,
    pub last_30_days: Figures,
    pub as_of: Option<AsOf>,
}

/// The chain's time at the last applied block whose time is recorded.
pub async fn chain_time(client: &impl GenericClient, chain_id: u64) -> Result<Option<AsOf>, StoreError> {
    let r = client
        .query_opt(
            "SELECT number, extract(epoch FROM block_timestamp)::bigint FROM sync_blocks
             WHERE chain_id = $1 AND block_timestamp IS NOT NULL ORDER BY number DESC LIMIT 1",
            &[&(chain_id as i64)],
        )
        .await?;
    Ok(r.map(|r| AsOf { block: r.get::<_, i64>(0) as u64, timestamp: r.get(1) }))
}

/// The figures per (workerpool, window) in ONE statement, so that they and the chain time they are computed at
/// come from one snapshot of the store: the chain time (`asof`), the deals of the pools asked (all with `$2`
/// NULL) with their window flag and final deadline (start time + 10 x the category's reference time, PoCo's),
/// their tasks' settled outcomes, and the lower median. One row at least (the chain time), with NULL figures
/// when no deal matches.
const FIGURES: &str = "
    WITH asof AS (
        SELECT number, block_timestamp AS t FROM sync_blocks
        WHERE chain_id = $1 AND block_timestamp IS NOT NULL ORDER BY number DESC LIMIT 1),
    d AS (
        SELECT d.deal_id, d.workerpool, d.volume, d.block_timestamp,
               d.block_timestamp > (SELECT t FROM asof) - interval '30 days' AS recent,
               to_timestamp((d.body->>'startTime')::bigint + 10 * c.work_clock_time_ref) AS deadline
        FROM deals d LEFT JOIN categories c ON c.chain_id = d.chain_id AND c.catid = d.category
        WHERE d.chain_id = $1 AND ($2::bytea[] IS NULL OR d.workerpool = ANY($2))),
    outcome AS (
        SELECT t.deal_id, x.event, extract(epoch FROM x.block_timestamp - d.block_timestamp) AS secs
        FROM d JOIN tasks t ON t.chain_id = $1 AND t.deal_id = d.deal_id
        JOIN task_events x ON x.chain_id = $1 AND x.task_id = t.task_id
        WHERE x.event IN ('TaskFinalize', 'TaskClaimed')),
    counts AS (
        SELECT deal_id, count(*) FILTER (WHERE event = 'TaskFinalize') AS completed,
               count(*) FILTER (WHERE event = 'TaskClaimed') AS claimed
        FROM outcome GROUP BY deal_id),
    per_deal AS (
        SELECT d.*, COALESCE(c.completed, 0) AS completed, COALESCE(c.claimed, 0) AS claimed
        FROM d LEFT JOIN counts c USING (deal_id)),
    w(recent_only) AS (VALUES (false), (true)),
    totals AS (
        SELECT p.workerpool, w.recent_only, count(*) AS deals, sum(p.volume)::bigint AS tasks,
               sum(p.completed)::bigint AS completed, sum(p.claimed)::bigint AS claimed,
               COALESCE(sum(CASE WHEN p.deadline <= (SELECT t FROM asof)
                   THEN GREATEST(LEAST(p.volume, $3) - p.completed - p.claimed, 0) ELSE 0 END), 0)::bigint AS failed
        FROM per_deal p JOIN w ON NOT w.recent_only OR p.recent
        GROUP BY p.workerpool, w.recent_only),
    medians AS (
        SELECT d.workerpool, w.recent_only, percentile_disc(0.5) WITHIN GROUP (ORDER BY o.secs)::bigint AS median
        FROM outcome o JOIN d USING (deal_id) JOIN w ON NOT w.recent_only OR d.recent
        WHERE o.event = 'TaskFinalize' AND o.secs IS NOT NULL
        GROUP BY d.workerpool, w.recent_only)
    SELECT (SELECT number FROM asof), extract(epoch FROM (SELECT t FROM asof))::bigint,
           x.workerpool, x.recent_only, x.deals, x.tasks, x.completed, x.claimed, x.failed, x.median
    FROM (SELECT 1) one LEFT JOIN (
        SELECT * FROM totals LEFT JOIN medians USING (workerpool, recent_only)) x ON true";

/// Track records of `pools` (every workerpool with a deal when `None`) at the chain time of the last applied
/// block (without one, nothing is past its deadline and nothing is recent). Pools without any deal get empty
/// figures when asked by name.
pub async fn of(
    client: &impl GenericClient,
    chain_id: u64,
    pools: Option<&[Address]>,
) -> Result<BTreeMap<Address, TrackRecord>, StoreError> {
    let list: Option<Vec<Vec<u8>>> = pools.map(|p| p.iter().map(|a| a.to_vec()).collect());
    let rows = client.query(FIGURES, &[&(chain_id as i64), &list, &FOLLOWED]).await?;
    let as_of = rows.first().and_then(|r| {
        let block: Option<i64> = r.get(0);
        let timestamp: Option<i64> = r.get(1);
        Some(AsOf { block: block? as u64, timestamp: timestamp? })
    });
    let mut out: BTreeMap<Address, TrackRecord> = BTreeMap::new();
    for a in pools.into_iter().flatten() {
        out.insert(*a, TrackRecord { as_of, ..TrackRecord::default() });
    }
    for r in &rows {
        let Some(pool) = r.get::<_, Option<&[u8]>>(2) else { continue };
        let pool = Address::from(fixed::<20>("deals", pool)?);
        let n = |i: usize| r.get::<_, Option<i64>>(i).unwrap_or(0).max(0) as u64;
        let figures = Figures {
            deals: n(4),
            tasks: n(5),
            completed: n(6),
            claimed: n(7),
            failed: n(8),
            median_seconds: r.get::<_, Option<i64>>(9).map(|s| s.max(0) as u64),
        };
        let rec = out.entry(pool).or_insert(TrackRecord { as_of, ..TrackRecord::default() });
        if r.get::<_, bool>(3) {
            rec.last_30_days = figures;
        } else {
            rec.all_time = figures;
        }
    }
    Ok(out)
}

/// Workerpools whose figures blocks `from..=to` may have changed: the pool of a deal they brought, of a task
/// they finalized or claimed, or of a deal whose final deadline, or whose 30th day, chain time passed between
/// `before` (the chain time before them, unix seconds) and `now`. Called after the range is committed.
pub async fn moved(
    client: &impl GenericClient,
    chain_id: u64,
    from: u64,
    to: u64,
    before: Option<i64>,
    now: Option<i64>,
) -> Result<Vec<Address>, StoreError> {
    // One indexed query per cause. A final deadline is at most 10 x the longest reference time after the deal's
    // block (its start time is its block's time), so only deals that recent are looked at for deadlines.
    let rows = client
        .query(
            "SELECT workerpool FROM deals WHERE chain_id = $1 AND block_number BETWEEN $2 AND $3
             UNION
             SELECT d.workerpool FROM task_events x JOIN tasks t USING (chain_id, task_id)
                 JOIN deals d ON d.chain_id = t.chain_id AND d.deal_id = t.deal_id
             WHERE x.chain_id = $1 AND x.block_number BETWEEN $2 AND $3
               AND x.event IN ('TaskFinalize', 'TaskClaimed')
             UNION
             SELECT d.workerpool FROM deals d JOIN categories c ON c.chain_id = d.chain_id AND c.catid = d.category
             WHERE d.chain_id = $1 AND $4::bigint IS NOT NULL AND $5::bigint IS NOT NULL
               AND d.block_timestamp > to_timestamp($4) - make_interval(secs => (
                   SELECT COALESCE(max(10 * work_clock_time_ref), 0) FROM categories WHERE chain_id = $1))
               AND (d.body->>'startTime')::bigint + 10 * c.work_clock_time_ref > $4
               AND (d.body->>'startTime')::bigint + 10 * c.work_clock_time_ref <= $5
             UNION
             SELECT workerpool FROM deals
             WHERE chain_id = $1 AND $4::bigint IS NOT NULL AND $5::bigint IS NOT NULL
               AND block_timestamp > to_timestamp($4) - interval '30 days'
               AND block_timestamp <= to_timestamp($5) - interval '30 days'",
            &[&(chain_id as i64), &(from as i64), &(to as i64), &before, &now],
        )
        .await?;
    rows.iter().map(|r| Ok(Address::from(fixed::<20>("deals", r.get(0))?))).collect()
}

/// Task events stored without their block's time (written before the schema kept it): their blocks, at most
/// `limit`, lowest first, for the start-up backfill.
pub async fn untimed_blocks(client: &impl GenericClient, chain_id: u64, limit: i64) -> Result<Vec<u64>, StoreError> {
    let rows = client
        .query(
            "SELECT DISTINCT block_number FROM task_events WHERE chain_id = $1 AND block_timestamp IS NULL
             ORDER BY block_number LIMIT $2",
            &[&(chain_id as i64), &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}

/// Sets the block time of the task events of `block`.
pub async fn set_block_time(
    client: &impl GenericClient,
    chain_id: u64,
    block: u64,
    timestamp: u64,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE task_events SET block_timestamp = to_timestamp($3) WHERE chain_id = $1 AND block_number = $2",
            &[&(chain_id as i64), &(block as i64), &(timestamp as f64)],
        )
        .await?;
    Ok(())
}
