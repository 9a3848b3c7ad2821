//! Reading ids out of the pool's rows, where they are stored as raw bytes.

use crate::store::StoreError;
use alloy::primitives::{Address, B256};

pub(super) fn b256(row: &tokio_postgres::Row, i: &str) -> Result<B256, StoreError> {
    let v: Vec<u8> = row.get(i);
    B256::try_from(v.as_slice())
        .map_err(|_| StoreError::Corrupt { table: "pool", detail: format!("{i} is {} bytes", v.len()) })
}

pub(super) fn address(row: &tokio_postgres::Row, i: &str) -> Result<Address, StoreError> {
    let v: Vec<u8> = row.get(i);
    Address::try_from(v.as_slice())
        .map_err(|_| StoreError::Corrupt { table: "pool", detail: format!("{i} is {} bytes", v.len()) })
}
