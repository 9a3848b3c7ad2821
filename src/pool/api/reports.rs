//! `POST /workers/status`: a worker's report of its replicate, judged by the pool's rules and, from
//! `CONTRIBUTED` on, by the chain.

use super::body::{JSON_LIMIT, read_json};
use super::error::{PoolApiError, Res};
use super::state::{C_CONTRIBUTED, C_PROVED, PoolState, contribution_status};
use crate::executor::result::result_hash;
use crate::pool::protocol::{ReplicateStatus, StatusUpdate};
use crate::pool::rules::{self, ChainCheck, Decision};
use crate::pool::store;
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Address;

/// Checks a report of `CONTRIBUTED` or later against the worker's contribution on chain; returns the report
/// with the chain's result hash and seal. A reported hash, or digest, other than the one contributed is refused.
pub(super) async fn checked_on_chain(
    state: &PoolState,
    worker: Address,
    u: &StatusUpdate,
    check: ChainCheck,
) -> Res<StatusUpdate> {
    let k =
        state.read_chain("the worker's contribution", state.hub().viewContribution(u.taskid, worker).call()).await?;
    let status: u8 = k.status;
    let ok = match check {
        ChainCheck::None => true,
        ChainCheck::Contributed => status == C_CONTRIBUTED || status == C_PROVED,
        ChainCheck::Revealed => status == C_PROVED,
    };
    if !ok {
        return Err(PoolApiError::NotOnChain(format!(
            "{} needs the worker's contribution {} on chain; the hub shows it {}",
            u.status.as_str(),
            if check == ChainCheck::Revealed { "revealed" } else { "made" },
            contribution_status(status)
        )));
    }
    if u.result_hash.is_some_and(|h| h != k.resultHash)
        || u.result_digest.is_some_and(|d| result_hash(u.taskid, d) != k.resultHash)
    {
        return Err(PoolApiError::NotOnChain("the reported result is not the one contributed on chain".into()));
    }
    let mut checked = u.clone();
    checked.result_hash = Some(k.resultHash);
    checked.result_seal = Some(k.resultSeal);
    Ok(checked)
}

pub(super) async fn status_update(
    state: web::Data<PoolState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    let u: StatusUpdate = read_json(&req, payload, JSON_LIMIT).await?;
    if !rules::reportable(u.status) {
        return Err(PoolApiError::StatusNotAllowed(u.status.as_str()));
    }
    let ignored = |status: &str, why: &str| {
        HttpResponse::Ok().json(serde_json::json!({"ok": true, "changed": false, "status": status, "reason": why}))
    };
    // Judged against the replicate as it is, and written only if it is still so (the scheduler may change it
    // meanwhile): a few tries.
    let mut last = String::new();
    for _ in 0..3 {
        let current = store::replicate_status(&**state.store.client().await?, u.taskid, worker)
            .await?
            .ok_or_else(|| PoolApiError::NotFound(format!("replicate of task {:#x} for this worker", u.taskid)))?;
        if let Decision::Ignore(why) = rules::decide(&current, u.status) {
            return Ok(ignored(&current, why));
        }
        let check = rules::chain_check(u.status);
        let report = match check {
            ChainCheck::None => u.clone(),
            _ => checked_on_chain(&state, worker, &u, check).await?,
        };
        let mut c = state.store.client().await?;
        if u.status == ReplicateStatus::ResultUploaded {
            // The pool records RESULT_UPLOADED itself when it takes an archive; a revealed winner whose archive
            // was not the one taken has nothing more to do.
            if store::has_result(&**c, u.taskid).await? {
                return Ok(ignored(&current, "the task's archive is stored: nothing more to upload"));
            }
            return Err(PoolApiError::NotUploaded);
        }
        let tx = c.transaction().await?;
        if !store::apply_report(&*tx, worker, &current, &report).await? {
            last = current;
            continue;
        }
        if let (Some(hash), Some(seal)) = (report.result_hash, report.result_seal)
            && check != ChainCheck::None
        {
            store::record_contribution(&*tx, u.taskid, worker, hash, seal).await?;
        }
        tx.commit().await?;
        tracing::info!(worker = %worker, task = %u.taskid, status = u.status.as_str(), "replicate status");
        state.wake.notify_one();
        return Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "changed": true, "status": u.status})));
    }
    Ok(ignored(&last, "the replicate kept changing meanwhile: report again"))
}
