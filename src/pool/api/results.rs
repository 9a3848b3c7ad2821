//! `POST /results/<taskid>` and `GET /results/<taskid>`: a task's result archive, taken once from a revealed
//! winner of the consensus, and served as iExec's SDK downloads it.

use super::body::{parse_taskid, read_body, within_announced};
use super::error::{PoolApiError, Res};
use super::state::{C_PROVED, PoolState, contribution_status};
use crate::pool::{protocol, results, store};
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Address;

/// Takes a task's result archive, once: from a worker whose own contribution is revealed on chain with the
/// consensus, digesting to the revealed digest. Everything but the archive's bytes is checked before a byte of
/// the body is read.
pub(super) async fn upload(
    state: web::Data<PoolState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    let taskid = parse_taskid(&path)?;
    within_announced(&req, state.max_result_bytes)?;
    let callback = store::upload_context(&**state.store.client().await?, worker, taskid)
        .await?
        .ok_or_else(|| PoolApiError::Forbidden(format!("this worker has no replicate of task {taskid:#x}")))?;
    // The right to upload is the chain's to say: a revealed winner of the consensus.
    let hub = state.hub();
    let mine = state.read_chain("the worker's contribution", hub.viewContribution(taskid, worker).call()).await?;
    let task = state.read_chain("the task", hub.viewTask(taskid).call()).await?;
    let status: u8 = mine.status;
    if status != C_PROVED || mine.resultHash != task.consensusValue {
        return Err(PoolApiError::Forbidden(format!(
            "only a worker whose contribution to task {taskid:#x} is revealed with the consensus uploads its result              (this worker's contribution: {})",
            contribution_status(status)
        )));
    }
    if store::has_result(&**state.store.client().await?, taskid).await? {
        return Err(PoolApiError::ResultExists(taskid));
    }
    let body = read_body(&req, payload, state.max_result_bytes, state.limits.upload_timeout).await?;
    // Unpacking and digesting is blocking work.
    let zip = body.clone();
    let found = web::block(move || results::archive_digest(&zip, taskid, callback != Address::ZERO))
        .await
        .map_err(|e| PoolApiError::Internal(anyhow::anyhow!("digesting an archive: {e}")))?
        .map_err(|e| PoolApiError::BadArchive(e.to_string()))?;
    if found != task.resultDigest {
        return Err(PoolApiError::ResultMismatch { found, revealed: task.resultDigest });
    }
    let mut c = state.store.client().await?;
    let tx = c.transaction().await?;
    if !store::put_result(&*tx, taskid, worker, &body, found).await? {
        return Err(PoolApiError::ResultExists(taskid));
    }
    store::record_contribution(&*tx, taskid, worker, mine.resultHash, mine.resultSeal).await?;
    tx.commit().await?;
    tracing::info!(worker = %worker, task = %taskid, bytes = body.len(), "result uploaded");
    state.wake.notify_one();
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "location": protocol::result_path(taskid)})))
}

/// The archive exactly as uploaded: what iExec's SDK downloads as `ipfsGatewayURL + location`.
pub(super) async fn download(state: web::Data<PoolState>, path: web::Path<String>) -> Res<HttpResponse> {
    let taskid = parse_taskid(&path)?;
    let zip = store::result_zip(&**state.store.client().await?, taskid)
        .await?
        .ok_or_else(|| PoolApiError::NotFound(format!("result of task {taskid:#x}")))?;
    Ok(HttpResponse::Ok().content_type("application/zip").body(zip))
}
