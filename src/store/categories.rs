//! The `categories` table: the hub's categories, with the CreateCategory event that made each one.

use super::{StoreError, fixed};
use alloy::primitives::B256;
use serde::Serialize;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;

/// A category as the hub defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub catid: u64,
    pub chain_id: u64,
    pub name: String,
    pub description: String,
    /// Reference duration of a task, in seconds.
    pub work_clock_time_ref: u64,
}

/// Where a category was created on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub block: u64,
    /// Unix seconds.
    pub timestamp: u64,
    pub tx_hash: B256,
}

/// A category in the market API's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryView {
    pub catid: u64,
    pub chain_id: u64,
    pub name: String,
    pub description: String,
    /// Reference duration of a task, in seconds.
    pub work_clock_time_ref: u64,
    /// The CreateCategory event's transaction.
    pub transaction_hash: Option<String>,
    pub block_number: Option<u64>,
    /// ISO-8601 time of that block.
    pub block_timestamp: Option<String>,
}

/// Categories as read from the hub at start-up (their events come with chain sync).
pub async fn upsert(client: &impl GenericClient, categories: &[Category]) -> Result<(), StoreError> {
    for c in categories {
        client
            .execute(
                "INSERT INTO categories (chain_id, catid, name, description, work_clock_time_ref)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (chain_id, catid) DO UPDATE
                 SET name = EXCLUDED.name, description = EXCLUDED.description,
                     work_clock_time_ref = EXCLUDED.work_clock_time_ref",
                &[&(c.chain_id as i64), &(c.catid as i64), &c.name, &c.description, &(c.work_clock_time_ref as i64)],
            )
            .await?;
    }
    Ok(())
}

/// The filters and page of a listing.
#[derive(Debug, Clone, Copy, Default)]
pub struct CategoryFilter {
    pub min_ref: Option<u64>,
    pub max_ref: Option<u64>,
    pub skip: u64,
    pub limit: u64,
}

const VIEW: &str = "catid, name, description, work_clock_time_ref, transaction_hash, block_number,
    (extract(epoch FROM block_timestamp) * 1000)::bigint";

fn view(chain_id: u64, r: &tokio_postgres::Row) -> Result<CategoryView, StoreError> {
    let tx: Option<&[u8]> = r.get(4);
    let tx = tx.map(|t| fixed::<32>("categories", t).map(|h| format!("{:#x}", B256::from(h)))).transpose()?;
    Ok(CategoryView {
        catid: r.get::<_, i64>(0) as u64,
        chain_id,
        name: r.get(1),
        description: r.get(2),
        work_clock_time_ref: r.get::<_, i64>(3) as u64,
        transaction_hash: tx,
        block_number: r.get::<_, Option<i64>>(5).map(|b| b as u64),
        block_timestamp: r.get::<_, Option<i64>>(6).map(crate::wire::iso_time),
    })
}

/// A page of categories, by reference duration then id, with the count of all that the filter admits.
pub async fn list(
    client: &impl GenericClient,
    chain_id: u64,
    f: CategoryFilter,
) -> Result<(Vec<CategoryView>, u64), StoreError> {
    let chain = chain_id as i64;
    let (min, max) = (f.min_ref.map(|v| v as i64), f.max_ref.map(|v| v as i64));
    let cond = "chain_id = $1 AND ($2::bigint IS NULL OR work_clock_time_ref >= $2)
        AND ($3::bigint IS NULL OR work_clock_time_ref <= $3)";
    let count: i64 =
        client.query_one(&format!("SELECT COUNT(*) FROM categories WHERE {cond}"), &[&chain, &min, &max]).await?.get(0);
    // Offsets past i64 are past every row.
    let skip = i64::try_from(f.skip).unwrap_or(i64::MAX);
    let rows = client
        .query(
            &format!(
                "SELECT {VIEW} FROM categories WHERE {cond} ORDER BY work_clock_time_ref, catid OFFSET $4 LIMIT $5"
            ),
            &[&chain, &min, &max, &skip, &(f.limit as i64)],
        )
        .await?;
    let page = rows.iter().map(|r| view(chain_id, r)).collect::<Result<Vec<_>, _>>()?;
    Ok((page, count as u64))
}

pub async fn get(client: &impl GenericClient, chain_id: u64, catid: u64) -> Result<Option<CategoryView>, StoreError> {
    let Ok(id) = i64::try_from(catid) else { return Ok(None) };
    let row = client
        .query_opt(
            &format!("SELECT {VIEW} FROM categories WHERE chain_id = $1 AND catid = $2"),
            &[&(chain_id as i64), &id],
        )
        .await?;
    row.map(|r| view(chain_id, &r)).transpose()
}

/// A category created on chain (chain sync): the event is the truth, whatever start-up read before it.
pub async fn insert_at(client: &impl GenericClient, c: &Category, at: Created) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO categories (chain_id, catid, name, description, work_clock_time_ref, block_number,
                                     transaction_hash, block_timestamp)
             VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8))
             ON CONFLICT (chain_id, catid) DO UPDATE
             SET name = EXCLUDED.name, description = EXCLUDED.description,
                 work_clock_time_ref = EXCLUDED.work_clock_time_ref, block_number = EXCLUDED.block_number,
                 transaction_hash = EXCLUDED.transaction_hash, block_timestamp = EXCLUDED.block_timestamp",
            &[
                &(c.chain_id as i64),
                &(c.catid as i64),
                &c.name,
                &c.description,
                &(c.work_clock_time_ref as i64),
                &(at.block as i64),
                &at.tx_hash.as_slice(),
                &(at.timestamp as f64),
            ],
        )
        .await?;
    Ok(())
}

/// Whether some category of the chain lacks its event (a database from before events were kept).
pub async fn missing_events(client: &impl GenericClient, chain_id: u64) -> Result<bool, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM categories WHERE chain_id = $1 AND transaction_hash IS NULL)",
            &[&(chain_id as i64)],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn delete_from(client: &impl GenericClient, chain_id: u64, block: u64) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM categories WHERE chain_id = $1 AND block_number >= $2",
            &[&(chain_id as i64), &(block as i64)],
        )
        .await?;
    Ok(())
}

/// The ids of the chain's categories, ascending.
pub async fn ids(client: &impl GenericClient, chain_id: u64) -> Result<Vec<u64>, StoreError> {
    let rows =
        client.query("SELECT catid FROM categories WHERE chain_id = $1 ORDER BY catid", &[&(chain_id as i64)]).await?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}
