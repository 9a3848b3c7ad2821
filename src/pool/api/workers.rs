//! `GET /challenge` and `POST /workers/login|register|ping|work`: how a worker joins the pool and is handed
//! replicates.

use super::body::{JSON_LIMIT, LOGIN_LIMIT, parse_address, read_json};
use super::error::{PoolApiError, Res};
use super::state::PoolState;
use crate::pool::challenges::nonce_of;
use crate::pool::membership::MembershipError;
use crate::pool::protocol::{Assignment, Capacity, Challenge, Login, Session, Work, WorkRequest, challenge_text};
use crate::pool::{rules, store};
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Signature;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(super) struct AddressQuery {
    address: String,
}

pub(super) fn not_member(e: MembershipError) -> PoolApiError {
    match e {
        MembershipError::Chain(why) => PoolApiError::Unavailable(why),
        other => PoolApiError::NotMember(other.to_string()),
    }
}

pub(super) async fn challenge(state: web::Data<PoolState>, q: web::Query<AddressQuery>) -> Res<HttpResponse> {
    let worker = parse_address(&q.address)?;
    // A private pool tells a stranger no before keeping anything for it.
    if !state.membership.may_join(worker) {
        return Err(not_member(MembershipError::NotListed(worker)));
    }
    let nonce =
        state.challenges.issue(worker).map_err(|e| PoolApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(HttpResponse::Ok().json(Challenge { challenge: challenge_text(state.workerpool, worker, nonce) }))
}

pub(super) async fn login(state: web::Data<PoolState>, req: HttpRequest, payload: web::Payload) -> Res<HttpResponse> {
    const UNKNOWN: &str = "unknown, used or expired challenge: GET /challenge again";
    let Login { address, challenge, signature } = read_json(&req, payload, LOGIN_LIMIT).await?;
    // One use: the challenge is gone whether the rest checks out or not.
    let nonce = nonce_of(&challenge).ok_or(PoolApiError::Unauthorized(UNKNOWN))?;
    let issued_to = state.challenges.take(nonce).ok_or(PoolApiError::Unauthorized(UNKNOWN))?;
    if issued_to != address || challenge != challenge_text(state.workerpool, address, nonce) {
        return Err(PoolApiError::Unauthorized(UNKNOWN));
    }
    let sig = Signature::from_raw(&signature)
        .map_err(|_| PoolApiError::BadRequest("`signature` is not a 65-byte signature".into()))?;
    let signer = sig
        .recover_address_from_msg(challenge.as_bytes())
        .map_err(|_| PoolApiError::Unauthorized("the signature does not recover"))?;
    if signer != address {
        return Err(PoolApiError::Unauthorized("the challenge is not signed by `address`"));
    }
    // Only now, for a key proven held, is the chain asked.
    state.membership.check(&state.chain, state.hub, address, state.limits.chain_timeout).await.map_err(not_member)?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| PoolApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    let token = alloy::hex::encode(raw);
    let mut c = state.store.client().await?;
    let tx = c.transaction().await?;
    store::insert_session(&*tx, &token, address, state.limits.session_ttl, state.limits.sessions_per_worker).await?;
    tx.commit().await?;
    tracing::info!(worker = %address, "worker logged in");
    Ok(HttpResponse::Ok().json(Session { token }))
}

pub(super) async fn register(
    state: web::Data<PoolState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    let cap: Capacity = read_json(&req, payload, JSON_LIMIT).await?;
    let l = &state.limits;
    if cap.cpu > l.max_cpu {
        return Err(PoolApiError::BadRequest(format!("cpu {} is more than this pool takes ({})", cap.cpu, l.max_cpu)));
    }
    if cap.memory > l.max_memory {
        return Err(PoolApiError::BadRequest(format!(
            "memory {} bytes is more than this pool takes ({} bytes)",
            cap.memory, l.max_memory
        )));
    }
    store::upsert_worker(&**state.store.client().await?, worker, &cap).await?;
    tracing::info!(worker = %worker, cpu = cap.cpu, memory = cap.memory, gpu = cap.gpu, "worker registered");
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

pub(super) async fn ping(state: web::Data<PoolState>, req: HttpRequest) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    if store::touch_worker(&**state.store.client().await?, worker).await?.is_none() {
        return Err(PoolApiError::NotRegistered);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

pub(super) async fn work(state: web::Data<PoolState>, req: HttpRequest, payload: web::Payload) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    let body: WorkRequest = read_json(&req, payload, JSON_LIMIT).await?;
    // A worker runs at most as many replicates as the CPUs this pool takes.
    if body.running.len() > state.limits.max_cpu as usize {
        return Err(PoolApiError::BadRequest(format!(
            "{} running tasks: more than a worker of this pool runs ({})",
            body.running.len(),
            state.limits.max_cpu
        )));
    }
    let mut c = state.store.client().await?;
    let Some((cpu, proven)) = store::touch_worker(&**c, worker).await? else {
        return Err(PoolApiError::NotRegistered);
    };
    let handed = match store::unfinished_replicate(&**c, worker, &body.running).await? {
        Some(h) => Some(h),
        // Its slots: its CPUs, as far as its contributions prove them (see `rules::slots`).
        None if store::busy_replicates(&**c, worker).await?
            < rules::slots(i64::from(cpu), i64::from(proven), state.membership.vouched()) =>
        {
            let tx = c.transaction().await?;
            let h = store::claim_task(&*tx, worker).await?;
            tx.commit().await?;
            h
        }
        None => None,
    };
    let work = match handed {
        Some(h) => {
            tracing::info!(worker = %worker, task = %h.task_id, "task handed out");
            Some(Assignment {
                taskid: h.task_id,
                dealid: h.deal_id,
                index: h.idx,
                authorization: state.authorize(worker, h.task_id)?,
            })
        }
        None => None,
    };
    Ok(HttpResponse::Ok().json(Work { work }))
}
