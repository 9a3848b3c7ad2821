//! The `deal_proposals` table: the deals the engine proposed, recorded in the same transaction as the volume
//! changes they cause.

use super::StoreError;
use dragon_matching::Deal;
use tokio_postgres::GenericClient;

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

/// A proposal as the API shows it.
#[derive(Debug, Clone)]
pub struct ProposalRow {
    pub id: i64,
    pub app: [u8; 32],
    pub dataset: Option<[u8; 32]>,
    pub workerpool: [u8; 32],
    pub request: [u8; 32],
    pub volume: u64,
    pub app_price: String,
    pub dataset_price: String,
    pub workerpool_price: String,
    pub category: u64,
    pub status: String,
    pub reason: Option<String>,
    pub created_ms: i64,
}

/// The proposals that involve `request_hash`, oldest first.
pub async fn for_request(client: &impl GenericClient, request_hash: &[u8; 32]) -> Result<Vec<ProposalRow>, StoreError> {
    let rows = client
        .query(
            "SELECT id, app_hash, dataset_hash, workerpool_hash, request_hash, volume, app_price::text,
                    dataset_price::text, workerpool_price::text, category, status, reason,
                    (extract(epoch FROM created_at) * 1000)::bigint
             FROM deal_proposals WHERE request_hash = $1 ORDER BY id",
            &[&request_hash.as_slice()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let fx = |i: usize| super::fixed::<32>("deal_proposals", r.get(i));
            Ok(ProposalRow {
                id: r.get(0),
                app: fx(1)?,
                dataset: r.get::<_, Option<&[u8]>>(2).map(|d| super::fixed::<32>("deal_proposals", d)).transpose()?,
                workerpool: fx(3)?,
                request: fx(4)?,
                volume: r.get::<_, i64>(5) as u64,
                app_price: r.get(6),
                dataset_price: r.get(7),
                workerpool_price: r.get(8),
                category: r.get::<_, i64>(9) as u64,
                status: r.get(10),
                reason: r.get(11),
                created_ms: r.get(12),
            })
        })
        .collect()
}

/// Number of proposals by status, for metrics.
pub async fn count_by_status(client: &impl GenericClient) -> Result<Vec<(String, i64)>, StoreError> {
    let rows = client.query("SELECT status, count(*) FROM deal_proposals GROUP BY status", &[]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
