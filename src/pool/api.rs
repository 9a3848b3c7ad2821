//! The pool's HTTP API: the workers' protocol (pull-based: every call comes from the worker, so a worker behind
//! NAT works), the result archives, and the pool's status and metrics. This file is also where the pool's
//! errors meet HTTP: [`PoolApiError`] gives every failure a status and the stable JSON body
//! `{"ok": false, "error": "...", "code": "..."}`; internal causes are logged, never sent.
//!
//! Every caller is a stranger until proven otherwise, in this order: the per-IP limit comes before anything
//! else; a token (or, for a login, a single-use challenge and its signature, then membership) before any body
//! is read; the chain before any claim of progress or right to upload ([`super::rules`],
//! [`super::membership`]). Each body is read with a bound on its size and its time. `docs/pool.md`, "Limits and
//! what the pool trusts", lists the bounds.

use super::challenges::{ChallengeBook, nonce_of};
use super::membership::{Membership, MembershipError};
use super::protocol::{
    Assignment, Authorization, Capacity, Challenge, Login, ReplicateStatus, Session, StatusUpdate, Work, WorkRequest,
    authorization_hash, challenge_text,
};
use super::rules::{self, ChainCheck, Decision};
use super::{PoolConfig, PoolError, PoolLimits, store};
use crate::chain::contracts::hub::DragonHub;
use crate::executor::result::result_hash;
use crate::store::{Store, StoreError};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use alloy::primitives::{Address, B256, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use futures_util::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt::Write as _;
use std::net::{IpAddr, TcpListener};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Largest JSON body of a worker's call (a status report with its callback data and error is the largest).
const JSON_LIMIT: usize = 64 << 10;
/// Largest login body (an address, a challenge text and a signature).
const LOGIN_LIMIT: usize = 4 << 10;
/// How long a JSON body may take to arrive.
const JSON_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
// PoCo's contribution statuses on chain.
const C_UNSET: u8 = 0;
const C_CONTRIBUTED: u8 = 1;
const C_PROVED: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PoolApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("not a member of this pool: {0}")]
    NotMember(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the worker is not registered: POST /workers/register first")]
    NotRegistered,
    #[error("a worker may not report {0}: the pool sets it")]
    StatusNotAllowed(&'static str),
    #[error("the chain does not show it: {0}")]
    NotOnChain(String),
    #[error("no archive of this task is stored: POST /results/<taskid> first")]
    NotUploaded,
    #[error("the archive of task {0:#x} is stored already; the first accepted archive is final")]
    ResultExists(B256),
    #[error("request body too large (at most {0} bytes)")]
    TooLarge(usize),
    #[error("{0}")]
    Timeout(&'static str),
    #[error("too many requests: at most {0} per second from one address")]
    RateLimited(u32),
    #[error("the result archive is not usable: {0}")]
    BadArchive(String),
    #[error("the archive's digest {found:#x} is not the result digest {revealed:#x} revealed on chain")]
    ResultMismatch { found: B256, revealed: B256 },
    /// The chain did not answer (in time): nothing was decided, the call may be made again.
    #[error("the chain is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PoolApiError {
    fn code(&self) -> &'static str {
        match self {
            PoolApiError::BadRequest(_) => "bad_request",
            PoolApiError::Unauthorized(_) => "unauthorized",
            PoolApiError::Forbidden(_) => "forbidden",
            PoolApiError::NotMember(_) => "not_member",
            PoolApiError::NotFound(_) => "not_found",
            PoolApiError::NotRegistered => "not_registered",
            PoolApiError::StatusNotAllowed(_) => "status_not_allowed",
            PoolApiError::NotOnChain(_) => "not_on_chain",
            PoolApiError::NotUploaded => "not_uploaded",
            PoolApiError::ResultExists(_) => "result_exists",
            PoolApiError::TooLarge(_) => "body_too_large",
            PoolApiError::Timeout(_) => "timeout",
            PoolApiError::RateLimited(_) => "rate_limited",
            PoolApiError::BadArchive(_) => "bad_archive",
            PoolApiError::ResultMismatch { .. } => "result_mismatch",
            PoolApiError::Unavailable(_) => "unavailable",
            PoolApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for PoolApiError {
    fn from(e: StoreError) -> Self {
        PoolApiError::Internal(e.into())
    }
}

impl From<tokio_postgres::Error> for PoolApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        PoolApiError::Internal(e.into())
    }
}

impl ResponseError for PoolApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            PoolApiError::BadRequest(_) | PoolApiError::StatusNotAllowed(_) => StatusCode::BAD_REQUEST,
            PoolApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            PoolApiError::Forbidden(_) | PoolApiError::NotMember(_) => StatusCode::FORBIDDEN,
            PoolApiError::NotFound(_) => StatusCode::NOT_FOUND,
            PoolApiError::NotRegistered
            | PoolApiError::NotOnChain(_)
            | PoolApiError::NotUploaded
            | PoolApiError::ResultExists(_) => StatusCode::CONFLICT,
            PoolApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PoolApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            PoolApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            PoolApiError::BadArchive(_) | PoolApiError::ResultMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PoolApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PoolApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PoolApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "pool API internal error");
            }
            PoolApiError::Unavailable(why) => tracing::warn!(reason = %why, "pool API: chain unavailable"),
            _ => {}
        }
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, PoolApiError::RateLimited(_)) {
            resp.insert_header(("retry-after", "1"));
        }
        resp.json(serde_json::json!({"ok": false, "error": self.to_string(), "code": self.code()}))
    }
}

type Res<T> = Result<T, PoolApiError>;

/// What the handlers share.
pub struct PoolState {
    pub(super) store: Store,
    workerpool: Address,
    owner: PrivateKeySigner,
    /// Open login challenges, by nonce.
    challenges: ChallengeBook,
    /// Wakes the scheduler when a worker reports progress, so that finalize does not wait a whole poll.
    wake: Arc<Notify>,
    /// Reads the hub: membership, contributions, the consensus.
    chain: alloy::providers::DynProvider,
    hub: Address,
    pub(super) worker_lost_after: Duration,
    pub(super) membership: Membership,
    limits: PoolLimits,
    max_result_bytes: usize,
    /// Requests per second per client IP.
    rates: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState").field("workerpool", &self.workerpool).finish()
    }
}

impl PoolState {
    pub fn new(store: Store, config: &PoolConfig, wake: Arc<Notify>, chain: alloy::providers::DynProvider) -> Self {
        let per_ip = NonZeroU32::new(config.limits.per_ip_per_second).unwrap_or(NonZeroU32::MIN);
        PoolState {
            store,
            workerpool: config.workerpool,
            owner: config.owner.clone(),
            challenges: ChallengeBook::new(config.limits.max_challenges, config.limits.challenge_ttl),
            wake,
            chain,
            hub: config.deployment.hub,
            worker_lost_after: config.worker_lost_after,
            membership: config.membership.clone(),
            limits: config.limits.clone(),
            max_result_bytes: config.max_result_bytes,
            rates: RateLimiter::keyed(Quota::per_second(per_ip)),
        }
    }

    /// The worker behind the request's bearer token (read from the headers only: no body is read before).
    async fn worker(&self, req: &HttpRequest) -> Res<Address> {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(PoolApiError::Unauthorized("missing `Authorization: Bearer <token>` (POST /workers/login)"))?;
        let token = token.trim();
        // Tokens are 64 hex characters: anything else is no token, and is not looked up.
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PoolApiError::Unauthorized("unknown or expired token"));
        }
        let c = self.store.client().await?;
        store::session(&**c, token).await?.ok_or(PoolApiError::Unauthorized("unknown or expired token"))
    }

    fn hub(&self) -> DragonHub::DragonHubInstance<&alloy::providers::DynProvider> {
        DragonHub::new(self.hub, &self.chain)
    }

    /// A read of the chain within the pool's chain timeout; a failure is `503 unavailable` (the worker may ask
    /// again), never a verdict on the worker.
    async fn read_chain<T, E: std::fmt::Display>(
        &self,
        what: &str,
        call: impl std::future::IntoFuture<Output = Result<T, E>>,
    ) -> Res<T> {
        match tokio::time::timeout(self.limits.chain_timeout, call.into_future()).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(PoolApiError::Unavailable(format!("reading {what}: {e}"))),
            Err(_) => Err(PoolApiError::Unavailable(format!(
                "reading {what}: no answer within {} s",
                self.limits.chain_timeout.as_secs()
            ))),
        }
    }

    fn authorize(&self, worker: Address, taskid: B256) -> Res<Authorization> {
        let hash = authorization_hash(worker, taskid, Address::ZERO);
        let sig = self
            .owner
            .sign_message_sync(hash.as_slice())
            .map_err(|e| PoolApiError::Internal(anyhow::anyhow!("signing an authorization: {e}")))?;
        Ok(Authorization { worker, taskid, enclave_challenge: Address::ZERO, sign: sig.as_bytes().to_vec().into() })
    }
}

/// Middleware: the per-IP limit on every request, before anything else is done for it.
async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let (Some(state), Some(peer)) = (req.app_data::<web::Data<PoolState>>(), req.peer_addr())
        && state.rates.check_key(&peer.ip()).is_err()
    {
        return Err(PoolApiError::RateLimited(state.limits.per_ip_per_second).into());
    }
    next.call(req).await
}

/// The body, at most `limit` bytes, within `timeout`. Handlers call it only once the caller is authenticated
/// (and, for an upload, entitled), so a stranger never makes the pool read, or wait for, a body.
async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize, timeout: Duration) -> Res<web::Bytes> {
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
fn within_announced(req: &HttpRequest, limit: usize) -> Res<()> {
    let announced =
        req.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(PoolApiError::TooLarge(limit));
    }
    Ok(())
}

async fn read_json<T: DeserializeOwned>(req: &HttpRequest, payload: web::Payload, limit: usize) -> Res<T> {
    let body = read_body(req, payload, limit, JSON_TIMEOUT).await?;
    serde_json::from_slice(&body).map_err(|e| PoolApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: PoolState,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PoolError> {
    let data = web::Data::new(state);
    // The per-IP buckets of addresses gone quiet are forgotten now and then, so the map does not grow without
    // bound.
    let sweeper = {
        let data = data.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                data.rates.retain_recent();
                data.rates.shrink_to_fit();
            }
        })
    };
    let server =
        HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    actix_web::Error::from(PoolApiError::BadRequest(format!("invalid query: {e}")))
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    actix_web::Error::from(PoolApiError::BadRequest(format!("invalid path: {e}")))
                }))
                .wrap(actix_web::middleware::from_fn(per_ip))
                .route("/challenge", web::get().to(challenge))
                .route("/workers/login", web::post().to(login))
                .route("/workers/register", web::post().to(register))
                .route("/workers/ping", web::post().to(ping))
                .route("/workers/work", web::post().to(work))
                .route("/workers/status", web::post().to(status_update))
                .route("/results/{taskid}", web::post().to(upload))
                .route("/results/{taskid}", web::get().to(download))
                .route("/status", web::get().to(status))
                .route("/status/tasks/{taskid}", web::get().to(task_timeline))
                .route("/metrics", web::get().to(metrics))
                .route("/capacity", web::get().to(super::capacity::handler))
                .default_service(web::to(|| async { PoolApiError::NotFound("route".into()).error_response() }))
        })
        .disable_signals()
        .client_request_timeout(HEAD_TIMEOUT)
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(PoolError::Http)?
        .run();
    let handle = server.handle();
    let res = tokio::select! {
        res = server => res.map_err(PoolError::Http),
        () = shutdown => {
            handle.stop(true).await;
            Ok(())
        }
    };
    sweeper.abort();
    res
}

#[derive(Debug, Deserialize)]
struct AddressQuery {
    address: String,
}

fn parse_address(s: &str) -> Res<Address> {
    s.parse().map_err(|_| PoolApiError::BadRequest(format!("`{s}` is not an address")))
}

fn parse_taskid(s: &str) -> Res<B256> {
    s.parse().map_err(|_| PoolApiError::BadRequest(format!("`{s}` is not a task id (32 bytes as 0x-hex)")))
}

fn not_member(e: MembershipError) -> PoolApiError {
    match e {
        MembershipError::Chain(why) => PoolApiError::Unavailable(why),
        other => PoolApiError::NotMember(other.to_string()),
    }
}

async fn challenge(state: web::Data<PoolState>, q: web::Query<AddressQuery>) -> Res<HttpResponse> {
    let worker = parse_address(&q.address)?;
    // A private pool tells a stranger no before keeping anything for it.
    if !state.membership.may_join(worker) {
        return Err(not_member(MembershipError::NotListed(worker)));
    }
    let nonce =
        state.challenges.issue(worker).map_err(|e| PoolApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(HttpResponse::Ok().json(Challenge { challenge: challenge_text(state.workerpool, worker, nonce) }))
}

async fn login(state: web::Data<PoolState>, req: HttpRequest, payload: web::Payload) -> Res<HttpResponse> {
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

async fn register(state: web::Data<PoolState>, req: HttpRequest, payload: web::Payload) -> Res<HttpResponse> {
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

async fn ping(state: web::Data<PoolState>, req: HttpRequest) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    if store::touch_worker(&**state.store.client().await?, worker).await?.is_none() {
        return Err(PoolApiError::NotRegistered);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

async fn work(state: web::Data<PoolState>, req: HttpRequest, payload: web::Payload) -> Res<HttpResponse> {
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

fn contribution_status(s: u8) -> &'static str {
    match s {
        C_UNSET => "none",
        C_CONTRIBUTED => "contributed",
        C_PROVED => "revealed",
        _ => "rejected",
    }
}

/// Checks a report of `CONTRIBUTED` or later against the worker's contribution on chain; returns the report
/// with the chain's result hash and seal. A reported hash, or digest, other than the one contributed is refused.
async fn checked_on_chain(
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

async fn status_update(state: web::Data<PoolState>, req: HttpRequest, payload: web::Payload) -> Res<HttpResponse> {
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

/// Takes a task's result archive, once: from a worker whose own contribution is revealed on chain with the
/// consensus, digesting to the revealed digest. Everything but the archive's bytes is checked before a byte of
/// the body is read.
async fn upload(
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
    let found = web::block(move || super::results::archive_digest(&zip, taskid, callback != Address::ZERO))
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
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true, "location": super::protocol::result_path(taskid)})))
}

/// The archive exactly as uploaded: what iExec's SDK downloads as `ipfsGatewayURL + location`.
async fn download(state: web::Data<PoolState>, path: web::Path<String>) -> Res<HttpResponse> {
    let taskid = parse_taskid(&path)?;
    let zip = store::result_zip(&**state.store.client().await?, taskid)
        .await?
        .ok_or_else(|| PoolApiError::NotFound(format!("result of task {taskid:#x}")))?;
    Ok(HttpResponse::Ok().content_type("application/zip").body(zip))
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    limit: Option<i64>,
}

async fn status(state: web::Data<PoolState>, q: web::Query<StatusQuery>) -> Res<HttpResponse> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let c = state.store.client().await?;
    let workers = store::workers_within(&**c, state.worker_lost_after, limit).await?;
    let tasks = store::tasks(&**c, limit).await?;
    let replicates = store::replicates(&**c, limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "workerpool": state.workerpool.to_checksum(None),
        "workers": workers,
        "tasks": tasks,
        "replicates": replicates,
    })))
}

/// One task's timeline: every status change of the task and of its replicates, oldest first.
async fn task_timeline(state: web::Data<PoolState>, path: web::Path<String>) -> Res<HttpResponse> {
    let taskid = parse_taskid(&path)?;
    let events = store::events(&**state.store.client().await?, taskid).await?;
    if events.is_empty() {
        return Err(PoolApiError::NotFound(format!("task {taskid:#x}")));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"taskid": taskid, "events": events})))
}

/// Prometheus text: tasks by status, workers (alive or not), and the queue (initialized tasks nobody runs yet).
async fn metrics(state: web::Data<PoolState>) -> Res<HttpResponse> {
    let c = state.store.client().await?;
    let counts = store::task_counts(&**c).await?;
    let workers = store::worker_slots(&**c, state.worker_lost_after, state.membership.vouched()).await?;
    let alive = workers.iter().filter(|(_, alive)| *alive).count();
    let queue = counts.iter().find(|(s, _)| s == "INITIALIZED").map_or(0, |(_, n)| *n);
    let mut out = String::new();
    let _ = writeln!(out, "# HELP dragon_pool_tasks Tasks of the pool by status.\n# TYPE dragon_pool_tasks gauge");
    for (s, n) in &counts {
        let _ = writeln!(out, "dragon_pool_tasks{{status=\"{s}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP dragon_pool_workers Registered workers.\n# TYPE dragon_pool_workers gauge");
    let _ = writeln!(out, "dragon_pool_workers{{state=\"alive\"}} {alive}");
    let _ = writeln!(out, "dragon_pool_workers{{state=\"lost\"}} {}", workers.len() - alive);
    let _ = writeln!(
        out,
        "# HELP dragon_pool_queue_depth Initialized tasks waiting for a worker.\n# TYPE dragon_pool_queue_depth gauge"
    );
    let _ = writeln!(out, "dragon_pool_queue_depth {queue}");
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out))
}
