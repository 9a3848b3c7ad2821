//! The pool's HTTP API: the workers' protocol (pull-based: every call comes from the worker, so a worker behind
//! NAT works), the result archives, and the pool's status and metrics. This file is also where the pool's
//! errors meet HTTP: [`PoolApiError`] gives every failure a status and the stable JSON body
//! `{"ok": false, "error": "...", "code": "..."}`; internal causes are logged, never sent.

use super::protocol::{
    Assignment, Authorization, Capacity, Challenge, Login, Session, StatusUpdate, Work, WorkRequest,
    authorization_hash, challenge_text,
};
use super::{PoolConfig, PoolError, store};
use crate::store::{Store, StoreError};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use alloy::primitives::{Address, B256, Signature};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use dashmap::DashMap;
use serde::Deserialize;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a login challenge stays valid.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum PoolApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the worker is not registered: POST /workers/register first")]
    NotRegistered,
    #[error("the result archive is not usable: {0}")]
    BadArchive(String),
    #[error("the archive's digest {found:#x} is not the reported result digest {reported:#x}")]
    ResultMismatch { found: B256, reported: B256 },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PoolApiError {
    fn code(&self) -> &'static str {
        match self {
            PoolApiError::BadRequest(_) => "bad_request",
            PoolApiError::Unauthorized(_) => "unauthorized",
            PoolApiError::Forbidden(_) => "forbidden",
            PoolApiError::NotFound(_) => "not_found",
            PoolApiError::NotRegistered => "not_registered",
            PoolApiError::BadArchive(_) => "bad_archive",
            PoolApiError::ResultMismatch { .. } => "result_mismatch",
            PoolApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for PoolApiError {
    fn from(e: StoreError) -> Self {
        PoolApiError::Internal(e.into())
    }
}

impl ResponseError for PoolApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            PoolApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            PoolApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            PoolApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            PoolApiError::NotFound(_) => StatusCode::NOT_FOUND,
            PoolApiError::NotRegistered => StatusCode::CONFLICT,
            PoolApiError::BadArchive(_) | PoolApiError::ResultMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PoolApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let PoolApiError::Internal(cause) = self {
            tracing::error!(error = format!("{cause:#}"), "pool API internal error");
        }
        HttpResponse::build(self.status_code())
            .json(serde_json::json!({"ok": false, "error": self.to_string(), "code": self.code()}))
    }
}

type Res<T> = Result<T, PoolApiError>;

/// What the handlers share.
pub struct PoolState {
    pub(super) store: Store,
    workerpool: Address,
    owner: PrivateKeySigner,
    /// Open login challenges by worker. In memory: a challenge lives minutes, and a restarted pool only makes
    /// the worker ask for a new one.
    challenges: DashMap<Address, (String, Instant)>,
    /// Wakes the scheduler when a worker reports progress, so that finalize does not wait a whole poll.
    wake: Arc<Notify>,
    /// Reads the hub: an upload is taken only when its archive is the consensus on chain.
    chain: alloy::providers::DynProvider,
    hub: Address,
    pub(super) worker_lost_after: Duration,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState").field("workerpool", &self.workerpool).finish()
    }
}

impl PoolState {
    pub fn new(store: Store, config: &PoolConfig, wake: Arc<Notify>, chain: alloy::providers::DynProvider) -> Self {
        PoolState {
            store,
            workerpool: config.workerpool,
            owner: config.owner.clone(),
            challenges: DashMap::new(),
            wake,
            chain,
            hub: config.deployment.hub,
            worker_lost_after: config.worker_lost_after,
        }
    }

    /// The worker behind the request's bearer token.
    async fn worker(&self, req: &HttpRequest) -> Res<Address> {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(PoolApiError::Unauthorized("missing `Authorization: Bearer <token>` (POST /workers/login)"))?;
        let c = self.store.client().await?;
        store::session(&**c, token.trim()).await?.ok_or(PoolApiError::Unauthorized("unknown or expired token"))
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

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: PoolState,
    max_result_bytes: usize,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PoolError> {
    let data = web::Data::new(state);
    let server =
        HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::JsonConfig::default().limit(64 << 10).error_handler(|e, _| {
                    actix_web::Error::from(PoolApiError::BadRequest(format!("invalid JSON body: {e}")))
                }))
                .app_data(web::PayloadConfig::new(max_result_bytes))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    actix_web::Error::from(PoolApiError::BadRequest(format!("invalid query: {e}")))
                }))
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
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(PoolError::Http)?
        .run();
    let handle = server.handle();
    tokio::select! {
        res = server => res.map_err(PoolError::Http),
        () = shutdown => {
            handle.stop(true).await;
            Ok(())
        }
    }
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

async fn challenge(state: web::Data<PoolState>, q: web::Query<AddressQuery>) -> Res<HttpResponse> {
    let worker = parse_address(&q.address)?;
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|e| PoolApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    let text = challenge_text(state.workerpool, worker, B256::from(nonce));
    state.challenges.retain(|_, (_, at)| at.elapsed() < CHALLENGE_TTL);
    state.challenges.insert(worker, (text.clone(), Instant::now()));
    Ok(HttpResponse::Ok().json(Challenge { challenge: text }))
}

async fn login(state: web::Data<PoolState>, body: web::Json<Login>) -> Res<HttpResponse> {
    let Login { address, challenge, signature } = body.into_inner();
    // One use: a challenge is removed whether the signature checks out or not.
    let issued = state.challenges.remove(&address).map(|(_, v)| v);
    match issued {
        Some((text, at)) if text == challenge && at.elapsed() < CHALLENGE_TTL => {}
        _ => return Err(PoolApiError::Unauthorized("unknown or expired challenge: GET /challenge again")),
    }
    let sig = Signature::from_raw(&signature)
        .map_err(|_| PoolApiError::BadRequest("`signature` is not a 65-byte signature".into()))?;
    let signer = sig
        .recover_address_from_msg(challenge.as_bytes())
        .map_err(|_| PoolApiError::Unauthorized("the signature does not recover"))?;
    if signer != address {
        return Err(PoolApiError::Unauthorized("the challenge is not signed by `address`"));
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| PoolApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    let token = alloy::hex::encode(raw);
    store::insert_session(&**state.store.client().await?, &token, address).await?;
    tracing::info!(worker = %address, "worker logged in");
    Ok(HttpResponse::Ok().json(Session { token }))
}

async fn register(state: web::Data<PoolState>, req: HttpRequest, body: web::Json<Capacity>) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    store::upsert_worker(&**state.store.client().await?, worker, &body).await?;
    tracing::info!(worker = %worker, cpu = body.cpu, memory = body.memory, gpu = body.gpu, "worker registered");
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

async fn ping(state: web::Data<PoolState>, req: HttpRequest) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    if store::touch_worker(&**state.store.client().await?, worker).await?.is_none() {
        return Err(PoolApiError::NotRegistered);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

async fn work(state: web::Data<PoolState>, req: HttpRequest, body: web::Json<WorkRequest>) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    let mut c = state.store.client().await?;
    let Some(cpu) = store::touch_worker(&**c, worker).await? else {
        return Err(PoolApiError::NotRegistered);
    };
    let handed = match store::unfinished_replicate(&**c, worker, &body.running).await? {
        Some(h) => Some(h),
        // One replicate per registered CPU at most.
        None if store::busy_replicates(&**c, worker).await? < i64::from(cpu.max(1)) => {
            let tx = c.transaction().await.map_err(StoreError::from)?;
            let h = store::claim_task(&*tx, worker).await?;
            tx.commit().await.map_err(StoreError::from)?;
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

async fn status_update(
    state: web::Data<PoolState>,
    req: HttpRequest,
    body: web::Json<StatusUpdate>,
) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    let u = body.into_inner();
    if !store::update_replicate(&**state.store.client().await?, worker, &u).await? {
        return Err(PoolApiError::NotFound(format!("replicate of task {:#x} for this worker", u.taskid)));
    }
    tracing::info!(worker = %worker, task = %u.taskid, status = u.status.as_str(), "replicate status");
    state.wake.notify_one();
    Ok(HttpResponse::Ok().json(serde_json::json!({"ok": true})))
}

async fn upload(
    state: web::Data<PoolState>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Res<HttpResponse> {
    let worker = state.worker(&req).await?;
    let taskid = parse_taskid(&path)?;
    let c = state.store.client().await?;
    let (reported, callback) = store::upload_context(&**c, worker, taskid)
        .await?
        .ok_or_else(|| PoolApiError::Forbidden(format!("this worker has no replicate of task {taskid:#x}")))?;
    let reported = reported.ok_or_else(|| {
        PoolApiError::BadRequest("report COMPUTED with the result digest before uploading the archive".into())
    })?;
    // The archive must be the result the worker computed (and will reveal): unpacking and digesting it is
    // blocking work.
    let zip = body.clone();
    let found = web::block(move || super::results::archive_digest(&zip, taskid, callback != Address::ZERO))
        .await
        .map_err(|e| PoolApiError::Internal(anyhow::anyhow!("digesting an archive: {e}")))?
        .map_err(|e| PoolApiError::BadArchive(e.to_string()))?;
    if found != reported {
        return Err(PoolApiError::ResultMismatch { found, reported });
    }
    // Only the consensus result is kept: with replication, a worker outvoted (or lying) must not replace the
    // archive the winners upload. The worker uploads after its reveal, so the consensus is on chain by then.
    let hub = crate::chain::contracts::hub::DragonHub::new(state.hub, &state.chain);
    let task = hub.viewTask(taskid).call().await.map_err(|e| PoolApiError::Internal(e.into()))?;
    if task.consensusValue != crate::executor::result::result_hash(taskid, found) {
        return Err(PoolApiError::Forbidden(format!("the archive is not the consensus result of task {taskid:#x}")));
    }
    store::put_result(&**c, taskid, worker, &body).await?;
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
    let workers = store::workers_within(&**c, state.worker_lost_after).await?;
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
    let workers = store::workers_within(&**c, state.worker_lost_after).await?;
    let alive = workers.iter().filter(|w| w.alive).count();
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
