//! Chain sync's cursor and the hashes of applied blocks (`sync_cursor`, `sync_blocks`).

use super::{StoreError, fixed};
use alloy::primitives::B256;
use tokio_postgres::GenericClient;

/// How many recorded block hashes are kept: a reorg deeper than this many recorded blocks cannot be undone
/// exactly, and sync stops with an error saying so.
pub const KEPT_BLOCKS: i64 = 1024;

/// The last block applied, if any.
pub async fn cursor(client: &impl GenericClient, chain_id: u64) -> Result<Option<u64>, StoreError> {
    let r = client.query_opt("SELECT block FROM sync_cursor WHERE chain_id = $1", &[&(chain_id as i64)]).await?;
    Ok(r.map(|r| r.get::<_, i64>(0) as u64))
}

/// Moves the cursor to `block` and records the hashes and times (unix seconds) of the blocks that matter (see
/// the schema): `(number, hash, timestamp)`.
pub async fn advance(
    client: &impl GenericClient,
    chain_id: u64,
    block: u64,
    hashes: &[(u64, B256, u64)],
) -> Result<(), StoreError> {
    let chain = chain_id as i64;
    client
        .execute(
            "INSERT INTO sync_cursor (chain_id, block) VALUES ($1, $2)
             ON CONFLICT (chain_id) DO UPDATE SET block = EXCLUDED.block",
            &[&chain, &(block as i64)],
        )
        .await?;
    let numbers: Vec<i64> = hashes.iter().map(|h| h.0 as i64).collect();
    let values: Vec<&[u8]> = hashes.iter().map(|h| h.1.as_slice()).collect();
    let times: Vec<f64> = hashes.iter().map(|h| h.2 as f64).collect();
    client
        .execute(
            "INSERT INTO sync_blocks (chain_id, number, hash, block_timestamp)
             SELECT $1, n, h, to_timestamp(t) FROM unnest($2::bigint[], $3::bytea[], $4::float8[]) AS u(n, h, t)
             ON CONFLICT (chain_id, number) DO UPDATE SET hash = EXCLUDED.hash, block_timestamp = EXCLUDED.block_timestamp",
            &[&chain, &numbers, &values, &times],
        )
        .await?;
    client
        .execute(
            "DELETE FROM sync_blocks WHERE chain_id = $1 AND number < (
                SELECT number FROM sync_blocks WHERE chain_id = $1 ORDER BY number DESC OFFSET $2 LIMIT 1)",
            &[&chain, &KEPT_BLOCKS],
        )
        .await?;
    Ok(())
}

/// Recorded block hashes, newest first.
pub async fn recent(client: &impl GenericClient, chain_id: u64, limit: i64) -> Result<Vec<(u64, B256)>, StoreError> {
    let rows = client
        .query(
            "SELECT number, hash FROM sync_blocks WHERE chain_id = $1 ORDER BY number DESC LIMIT $2",
            &[&(chain_id as i64), &limit],
        )
        .await?;
    rows.iter().map(|r| Ok((r.get::<_, i64>(0) as u64, B256::from(fixed::<32>("sync_blocks", r.get(1))?)))).collect()
}

/// Forgets blocks `from..` and puts the cursor just below them.
pub async fn rewind(client: &impl GenericClient, chain_id: u64, from: u64) -> Result<(), StoreError> {
    let chain = chain_id as i64;
    client.execute("DELETE FROM sync_blocks WHERE chain_id = $1 AND number >= $2", &[&chain, &(from as i64)]).await?;
    client.execute("UPDATE sync_cursor SET block = $2 WHERE chain_id = $1", &[&chain, &(from as i64 - 1)]).await?;
    Ok(())
}
