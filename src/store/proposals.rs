//! The `deal_proposals` table: the deals the engine proposed, recorded in the same transaction as the volume
//! changes they cause, and what settlement made of them (`proposed` → `submitted` → `settled` | `failed`). A
//! proposal the settler's gas budgets hold back stays `proposed` (its volume reserved) with a `deferred: ...`
//! reason until it goes out.

use super::{StoreError, fixed};
use crate::ids::OrderHash;
use alloy::primitives::B256;
use dragon_matching::Deal;
use serde::Serialize;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;

/// A proposal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub id: i64,
    pub app: OrderHash,
    pub dataset: Option<OrderHash>,
    pub workerpool: OrderHash,
    pub request: OrderHash,
    pub volume: u64,
    pub category: u64,
    pub status: String,
    pub reason: Option<String>,
    pub tx_hash: Option<B256>,
    pub batch_index: Option<i32>,
    pub deal_id: Option<B256>,
    pub attempts: i32,
}

impl Proposal {
    /// The orders of the deal: app, dataset (if any), workerpool, request.
    pub fn orders(&self) -> impl Iterator<Item = OrderHash> + '_ {
        [Some(self.app), self.dataset, Some(self.workerpool), Some(self.request)].into_iter().flatten()
    }
}

/// A proposal in the API's form.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalView {
    pub id: i64,
    pub apporder_hash: String,
    pub datasetorder_hash: Option<String>,
    pub workerpoolorder_hash: String,
    pub requestorder_hash: String,
    pub volume: u64,
    pub category: u64,
    /// `proposed`, `submitted`, `settled` or `failed`.
    pub status: String,
    /// Why it failed (the hub's revert reason, decoded), or, while `proposed`, why it waits (`deferred: ...`).
    pub reason: Option<String>,
    pub transaction_hash: Option<String>,
    pub dealid: Option<String>,
}

impl From<&Proposal> for ProposalView {
    fn from(p: &Proposal) -> Self {
        ProposalView {
            id: p.id,
            apporder_hash: p.app.to_string(),
            datasetorder_hash: p.dataset.map(|h| h.to_string()),
            workerpoolorder_hash: p.workerpool.to_string(),
            requestorder_hash: p.request.to_string(),
            volume: p.volume,
            category: p.category,
            status: p.status.clone(),
            reason: p.reason.clone(),
            transaction_hash: p.tx_hash.map(|h| h.to_string()),
            dealid: p.deal_id.map(|h| h.to_string()),
        }
    }
}

const COLUMNS: &str = "id, app_hash, dataset_hash, workerpool_hash, request_hash, volume, category, status, reason, \
                       tx_hash, batch_index, deal_id, attempts";

fn hash32(v: &[u8]) -> Result<B256, StoreError> {
    Ok(B256::from(fixed::<32>("deal_proposals", v)?))
}

fn row(r: &tokio_postgres::Row) -> Result<Proposal, StoreError> {
    let opt = |i: usize| -> Result<Option<B256>, StoreError> { r.get::<_, Option<&[u8]>>(i).map(hash32).transpose() };
    Ok(Proposal {
        id: r.get(0),
        app: OrderHash(hash32(r.get(1))?),
        dataset: opt(2)?.map(OrderHash),
        workerpool: OrderHash(hash32(r.get(3))?),
        request: OrderHash(hash32(r.get(4))?),
        volume: r.get::<_, i64>(5) as u64,
        category: r.get::<_, i64>(6) as u64,
        status: r.get(7),
        reason: r.get(8),
        tx_hash: opt(9)?,
        batch_index: r.get(10),
        deal_id: opt(11)?,
        attempts: r.get(12),
    })
}

/// Proposals no transaction carries yet (`proposed`), oldest first, at most `limit`: what a settler that did not
/// make them (another instance's engine made them, or an earlier leader left them) settles from the store.
pub async fn unsent(client: &impl GenericClient, chain_id: u64, limit: i64) -> Result<Vec<i64>, StoreError> {
    let rows = client
        .query(
            "SELECT id FROM deal_proposals WHERE status = 'proposed' AND chain_id = $1 ORDER BY id LIMIT $2",
            &[&(chain_id as i64), &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Proposals not yet settled nor failed, oldest first.
pub async fn pending(client: &impl GenericClient, chain_id: u64) -> Result<Vec<Proposal>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM deal_proposals
                 WHERE status IN ('proposed', 'submitted') AND chain_id = $1 ORDER BY id"
            ),
            &[&(chain_id as i64)],
        )
        .await?;
    rows.iter().map(row).collect()
}

pub async fn get(client: &impl GenericClient, id: i64) -> Result<Option<Proposal>, StoreError> {
    let r = client.query_opt(&format!("SELECT {COLUMNS} FROM deal_proposals WHERE id = $1"), &[&id]).await?;
    r.as_ref().map(row).transpose()
}

/// Proposals that involve an order, newest first.
pub async fn by_order(client: &impl GenericClient, hash: &OrderHash, limit: i64) -> Result<Vec<Proposal>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM deal_proposals
                 WHERE app_hash = $1 OR dataset_hash = $1 OR workerpool_hash = $1 OR request_hash = $1
                 ORDER BY id DESC LIMIT $2"
            ),
            &[&hash.0.as_slice(), &limit],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// Records that `ids` (in batch order) go out in transaction `tx` (written with the transaction itself, before
/// it is broadcast).
pub async fn mark_submitted(client: &impl GenericClient, ids: &[i64], tx: B256) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE deal_proposals p SET status = 'submitted', tx_hash = $2, batch_index = u.n - 1,
                    attempts = attempts + 1, reason = NULL, updated_at = now()
             FROM unnest($1::bigint[]) WITH ORDINALITY AS u(id, n)
             WHERE p.id = u.id AND p.status IN ('proposed', 'submitted')",
            &[&ids, &tx.as_slice()],
        )
        .await?;
    Ok(())
}

/// The transaction of pending proposals became `tx` (a replacement accepted by the node, or the row of their
/// nonce that was mined).
pub async fn set_tx(client: &impl GenericClient, ids: &[i64], tx: B256) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE deal_proposals SET tx_hash = $2, updated_at = now()
             WHERE id = ANY($1) AND status IN ('submitted', 'settled') AND tx_hash IS DISTINCT FROM $2",
            &[&ids, &tx.as_slice()],
        )
        .await?;
    Ok(())
}

/// Proposals the gas budgets hold back: still `proposed`, with why and until when.
pub async fn defer(client: &impl GenericClient, deferred: &[(i64, String)]) -> Result<(), StoreError> {
    let ids: Vec<i64> = deferred.iter().map(|d| d.0).collect();
    let reasons: Vec<&str> = deferred.iter().map(|d| d.1.as_str()).collect();
    client
        .execute(
            "UPDATE deal_proposals p SET reason = u.reason, updated_at = now()
             FROM unnest($1::bigint[], $2::text[]) AS u(id, reason)
             WHERE p.id = u.id AND p.status = 'proposed' AND p.reason IS DISTINCT FROM u.reason",
            &[&ids, &reasons],
        )
        .await?;
    Ok(())
}

/// How often settling this request failed for a reason that may be its own (not a reorg, a restart, or a
/// transaction of the operator that died).
pub async fn own_failures(client: &impl GenericClient, request: &OrderHash) -> Result<i64, StoreError> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM deal_proposals WHERE request_hash = $1 AND status = 'failed'
             AND reason NOT LIKE '%reorg%' AND reason NOT LIKE '%restart%' AND reason NOT LIKE '%another transaction%'",
            &[&request.0.as_slice()],
        )
        .await?
        .get(0))
}

/// Back to `proposed` (a transaction that never made it: retried later).
pub async fn unsubmit(client: &impl GenericClient, ids: &[i64]) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE deal_proposals SET status = 'proposed', tx_hash = NULL, batch_index = NULL, updated_at = now()
             WHERE id = ANY($1) AND status = 'submitted'",
            &[&ids],
        )
        .await?;
    Ok(())
}

/// Marks pending proposals failed with a reason; returns those that were pending.
pub async fn fail(client: &impl GenericClient, failures: &[(i64, String)]) -> Result<Vec<Proposal>, StoreError> {
    let ids: Vec<i64> = failures.iter().map(|f| f.0).collect();
    let reasons: Vec<&str> = failures.iter().map(|f| f.1.as_str()).collect();
    let rows = client
        .query(
            &format!(
                "UPDATE deal_proposals p SET status = 'failed', reason = u.reason, updated_at = now()
                 FROM unnest($1::bigint[], $2::text[]) AS u(id, reason)
                 WHERE p.id = u.id AND p.status IN ('proposed', 'submitted')
                 RETURNING {}",
                COLUMNS.split(", ").map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ")
            ),
            &[&ids, &reasons],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// Fails every pending proposal of the chain but `keep` (those whose transaction may still land), before a
/// reorg rebuilds the engine, which then proposes again what is still possible; returns them.
pub async fn fail_pending_except(
    client: &impl GenericClient,
    chain_id: u64,
    reason: &str,
    keep: &[i64],
) -> Result<Vec<Proposal>, StoreError> {
    let rows = client
        .query(
            &format!(
                "UPDATE deal_proposals SET status = 'failed', reason = $2, updated_at = now()
                 WHERE status IN ('proposed', 'submitted') AND chain_id = $1 AND NOT (id = ANY($3))
                 RETURNING {COLUMNS}"
            ),
            &[&(chain_id as i64), &reason, &keep],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// Fails the pending proposals that no stored settlement transaction may still settle (never sent, or whose
/// transaction is final without having settled them); returns them. Proposals sent before the settlement log
/// existed (a hash, no row) are left to the start-up, which asks the chain.
pub async fn fail_unsent(
    client: &impl GenericClient,
    chain_id: u64,
    reason: &str,
) -> Result<Vec<Proposal>, StoreError> {
    let rows = client
        .query(
            &format!(
                "UPDATE deal_proposals p SET status = 'failed', reason = $2, updated_at = now()
                 WHERE p.status IN ('proposed', 'submitted') AND p.chain_id = $1
                   AND NOT EXISTS (SELECT 1 FROM settlement_txs t
                                   WHERE t.chain_id = p.chain_id AND t.proposals @> ARRAY[p.id]
                                     AND (t.status = 'pending' OR (t.status = 'mined' AND t.succeeded)))
                   AND (p.tx_hash IS NULL OR EXISTS (SELECT 1 FROM settlement_txs t WHERE t.tx_hash = p.tx_hash))
                 RETURNING {}",
                COLUMNS.split(", ").map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ")
            ),
            &[&(chain_id as i64), &reason],
        )
        .await?;
    rows.iter().map(row).collect()
}

/// Proposals among `ids` that deals of blocks `from..` settled go back to `submitted` (their transaction, of the
/// settlement log, is followed again after a reorg); returns how many.
pub async fn unsettle_from(
    client: &impl GenericClient,
    chain_id: u64,
    from: u64,
    ids: &[i64],
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE deal_proposals SET status = 'submitted', deal_id = NULL, updated_at = now()
             WHERE id = ANY($3) AND status = 'settled'
               AND deal_id IN (SELECT deal_id FROM deals WHERE chain_id = $1 AND block_number >= $2)",
            &[&(chain_id as i64), &(from as i64), &ids],
        )
        .await?)
}

/// Proposals that deals of blocks `from..` settled fail (a reorg took the deals away); returns how many.
pub async fn fail_settled_from(
    client: &impl GenericClient,
    chain_id: u64,
    from: u64,
    reason: &str,
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE deal_proposals SET status = 'failed', reason = $3, updated_at = now()
             WHERE deal_id IN (SELECT deal_id FROM deals WHERE chain_id = $1 AND block_number >= $2)",
            &[&(chain_id as i64), &(from as i64), &reason],
        )
        .await?)
}

/// The pending proposal a deal on chain settles: the one of the same four orders, locked for the caller's
/// transaction. The settler may have replaced its transaction, so `tx_hash` is only a preference.
pub async fn pending_for_deal(
    client: &impl GenericClient,
    (app, dataset, workerpool, request): (OrderHash, Option<OrderHash>, OrderHash, OrderHash),
    tx_hash: B256,
) -> Result<Option<i64>, StoreError> {
    let row = client
        .query_opt(
            "SELECT id FROM deal_proposals
             WHERE status IN ('proposed', 'submitted') AND app_hash = $1 AND workerpool_hash = $2
               AND request_hash = $3 AND dataset_hash IS NOT DISTINCT FROM $4
             ORDER BY (tx_hash IS NOT DISTINCT FROM $5) DESC, id LIMIT 1 FOR UPDATE",
            &[
                &app.0.as_slice(),
                &workerpool.0.as_slice(),
                &request.0.as_slice(),
                &dataset.map(|h| h.0.to_vec()),
                &tx_hash.as_slice(),
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A pending proposal settled as `deal_id`.
pub async fn settle(client: &impl GenericClient, id: i64, deal_id: B256) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "UPDATE deal_proposals SET status = 'settled', deal_id = $2, reason = NULL, updated_at = now()
             WHERE id = $1 AND status IN ('proposed', 'submitted')",
            &[&id, &deal_id.as_slice()],
        )
        .await?;
    Ok(n == 1)
}

/// Inserts the proposals of one chain; returns their ids, in the order given.
pub async fn insert(client: &impl GenericClient, chain_id: u64, deals: &[Deal]) -> Result<Vec<i64>, StoreError> {
    if deals.is_empty() {
        return Ok(Vec::new());
    }
    let h = |x: &dragon_matching::OrderHash| x.0.to_vec();
    let app: Vec<Vec<u8>> = deals.iter().map(|d| h(&d.app)).collect();
    let dataset: Vec<Option<Vec<u8>>> = deals.iter().map(|d| d.dataset.as_ref().map(h)).collect();
    let workerpool: Vec<Vec<u8>> = deals.iter().map(|d| h(&d.workerpool)).collect();
    let request: Vec<Vec<u8>> = deals.iter().map(|d| h(&d.request)).collect();
    let volume: Vec<i64> = deals.iter().map(|d| d.volume as i64).collect();
    let app_price: Vec<String> = deals.iter().map(|d| d.app_price.0.to_string()).collect();
    let dataset_price: Vec<String> = deals.iter().map(|d| d.dataset_price.0.to_string()).collect();
    let workerpool_price: Vec<String> = deals.iter().map(|d| d.workerpool_price.0.to_string()).collect();
    let category: Vec<i64> = deals.iter().map(|d| d.category as i64).collect();
    let rows = client
        .query(
            "INSERT INTO deal_proposals (chain_id, app_hash, dataset_hash, workerpool_hash, request_hash, volume,
                                         app_price, dataset_price, workerpool_price, category)
             SELECT $1, a, d, w, r, v, ap::numeric, dp::numeric, wp::numeric, c
             FROM unnest($2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bigint[], $7::text[], $8::text[],
                         $9::text[], $10::bigint[]) WITH ORDINALITY AS u(a, d, w, r, v, ap, dp, wp, c, n)
             ORDER BY n
             RETURNING id",
            &[
                &(chain_id as i64),
                &app,
                &dataset,
                &workerpool,
                &request,
                &volume,
                &app_price,
                &dataset_price,
                &workerpool_price,
                &category,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
