//! order_marks: presignatures and closures of order hashes, as chain sync reads them from the hub's events.

use super::{StoreError, fixed};
use crate::ids::OrderHash;
use alloy::primitives::Address;
use tokio_postgres::GenericClient;

/// What the hub's `manage*Order` did to an order hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// SIGN: the hub recorded `signer` as the order's presigner.
    Presigned { signer: Address },
    /// CLOSE: the hub set the order's consumed volume to its whole volume.
    Closed,
}

/// One event, where it was.
#[derive(Debug, Clone, Copy)]
pub struct MarkRow {
    pub hash: OrderHash,
    pub block_number: u64,
    pub log_index: u32,
    pub mark: Mark,
}

/// Records marks; applying the same range twice changes nothing.
pub async fn insert(client: &impl GenericClient, chain_id: u64, rows: &[MarkRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let blocks: Vec<i64> = rows.iter().map(|r| r.block_number as i64).collect();
    let indexes: Vec<i32> = rows.iter().map(|r| r.log_index as i32).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|r| r.hash.0.as_slice()).collect();
    let marks: Vec<&str> = rows
        .iter()
        .map(|r| match r.mark {
            Mark::Presigned { .. } => "presigned",
            Mark::Closed => "closed",
        })
        .collect();
    let signers: Vec<Option<&[u8]>> = rows
        .iter()
        .map(|r| match &r.mark {
            Mark::Presigned { signer } => Some(signer.as_slice()),
            Mark::Closed => None,
        })
        .collect();
    client
        .execute(
            "INSERT INTO order_marks (chain_id, block_number, log_index, order_hash, mark, signer)
             SELECT $1, * FROM unnest($2::bigint[], $3::int[], $4::bytea[], $5::text[], $6::bytea[])
             ON CONFLICT DO NOTHING",
            &[&(chain_id as i64), &blocks, &indexes, &hashes, &marks, &signers],
        )
        .await?;
    Ok(())
}

/// Deletes the marks of blocks `from..` (a reorg orphaned them).
pub async fn delete_from(client: &impl GenericClient, chain_id: u64, from: u64) -> Result<(), StoreError> {
    client
        .execute(
            "DELETE FROM order_marks WHERE chain_id = $1 AND block_number >= $2",
            &[&(chain_id as i64), &(from as i64)],
        )
        .await?;
    Ok(())
}

/// Parses a stored presigner.
pub(super) fn signer(bytes: Option<&[u8]>) -> Result<Option<Address>, StoreError> {
    bytes.map(|b| fixed::<20>("order_marks", b).map(Address::from)).transpose()
}

/// Whether the marks of blocks before chain sync's cursor are in (a database from before this table was
/// created has passed them).
pub async fn backfilled(client: &impl GenericClient, chain_id: u64) -> Result<bool, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM sync_backfills WHERE chain_id = $1 AND name = 'order_marks')",
            &[&(chain_id as i64)],
        )
        .await?;
    Ok(row.get(0))
}

/// Records that the marks are complete up to chain sync's cursor.
pub async fn set_backfilled(client: &impl GenericClient, chain_id: u64) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO sync_backfills (chain_id, name) VALUES ($1, 'order_marks') ON CONFLICT DO NOTHING",
            &[&(chain_id as i64)],
        )
        .await?;
    Ok(())
}
