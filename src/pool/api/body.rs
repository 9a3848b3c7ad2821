//! Reading what a caller sends: bodies bounded in size and time, and the ids in paths and queries.

use super::error::{PoolApiError, Res};
use actix_web::{HttpRequest, web};
use alloy::primitives::{Address, B256};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Largest JSON body of a worker's call (a status report with its callback data and error is the largest).
pub(super) const JSON_LIMIT: usize = 64 << 10;
/// Largest login body (an address, a challenge text and a signature).
pub(super) const LOGIN_LIMIT: usize = 4 << 10;
/// How long a JSON body may take to arrive.
pub(super) const JSON_TIMEOUT: Duration = Duration::from_secs(10);

/// The body, at most `limit` bytes, within `timeout`. Handlers call it only once the caller is authenticated
/// (and, for an upload, entitled), so a stranger never makes the pool read, or wait for, a body.
pub(super) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Res<web::Bytes> {
    within_announced(req, limit)?;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| PoolApiError::BadRequest(format!("reading the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(PoolApiError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| PoolApiError::Timeout("the body did not arrive in time"))?
}

/// Refuses a body whose announced length (`Content-Length`) is past `limit`, from the headers alone.
pub(super) fn within_announced(req: &HttpRequest, limit: usize) -> Res<()> {
    let announced =
        req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(PoolApiError::TooLarge(limit));
    }
    Ok(())
}

pub(super) async fn read_json<T: DeserializeOwned>(req: &HttpRequest, payload: web::Payload, limit: usize) -> Res<T> {
    let body = read_body(req, payload, limit, JSON_TIMEOUT).await?;
    serde_json::from_slice(&body).map_err(|e| PoolApiError::BadRequest(format!("invalid JSON body: {e}")))
}

pub(super) fn parse_address(s: &str) -> Res<Address> {
    s.parse().map_err(|_| PoolApiError::BadRequest(format!("`{s}` is not an address")))
}

pub(super) fn parse_taskid(s: &str) -> Res<B256> {
    s.parse().map_err(|_| PoolApiError::BadRequest(format!("`{s}` is not a task id (32 bytes as 0x-hex)")))
}
