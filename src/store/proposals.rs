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
