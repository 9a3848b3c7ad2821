//! The `categories` table: the hub's categories, as last read from the chain.

use super::StoreError;
use serde::Serialize;
use tokio_postgres::GenericClient;
use utoipa::ToSchema;

/// A category in the market API's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub catid: u64,
    pub chain_id: u64,
    pub name: String,
    pub description: String,
    /// Reference duration of a task, in seconds.
    pub work_clock_time_ref: u64,
}

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

pub async fn list(client: &impl GenericClient, chain_id: u64) -> Result<Vec<Category>, StoreError> {
    let rows = client
        .query(
            "SELECT catid, name, description, work_clock_time_ref FROM categories WHERE chain_id = $1 ORDER BY catid",
            &[&(chain_id as i64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Category {
            catid: r.get::<_, i64>(0) as u64,
            chain_id,
            name: r.get(1),
            description: r.get(2),
            work_clock_time_ref: r.get::<_, i64>(3) as u64,
        })
        .collect())
}

/// A category created on chain at `block` (chain sync); a reorg above `block` deletes it.
pub async fn insert_at(client: &impl GenericClient, c: &Category, block: u64) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO categories (chain_id, catid, name, description, work_clock_time_ref, block_number)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain_id, catid) DO NOTHING",
            &[
                &(c.chain_id as i64),
                &(c.catid as i64),
                &c.name,
                &c.description,
                &(c.work_clock_time_ref as i64),
                &(block as i64),
            ],
        )
        .await?;
    Ok(())
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
