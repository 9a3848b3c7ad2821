//! What the server says about itself: `GET /version`, `GET /health`, and its documentation (`/docs`,
//! `/openapi.json`).

use crate::api::state::AppState;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub ok: bool,
    /// Dragon's version (semver).
    pub version: &'static str,
}

/// The server's version.
#[get("/version")]
pub async fn version() -> web::Json<Version> {
    web::Json(Version { ok: true, version: env!("CARGO_PKG_VERSION") })
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// True when every dependency answered.
    pub ok: bool,
    pub database: DependencyHealth,
    pub chain: ChainHealth,
    /// Whether the matching thread is alive.
    pub matching: bool,
    pub sync: SyncHealth,
    /// Absent when no operator key is configured (nothing is settled on chain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settler: Option<SettlerHealth>,
    /// In a cluster, the categories whose book this instance owns now (absent for a single instance, which
    /// owns them all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<Vec<u64>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncHealth {
    /// Last block applied by chain sync.
    pub block: u64,
    /// Blocks between the chain's head and `block`.
    pub lag: u64,
    pub reorgs: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettlerHealth {
    pub operator: String,
    /// The operator account cannot pay for gas: deals wait until it is funded. Does not make `ok` false: the
    /// book keeps working.
    pub out_of_gas_money: bool,
    /// Proposals waiting to be sent.
    pub queued: u64,
    /// Whether this instance leads the cluster's settler now (holds its lease); only the leader sends.
    pub leading: bool,
    /// The epoch of the leader's lease tenure, while leading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyHealth {
    pub ok: bool,
    /// Applied schema version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i32>,
    /// Why the dependency is unhealthy (no internal detail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainHealth {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_number: Option<u64>,
    /// Dragon's hub, when configured and answering as the hub of this chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// Whether the server can reach its database and its chain: 200 when both answer, 503 otherwise.
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, crate::api::error::ApiError> {
    if let Some(cached) = state.health.get() {
        return Ok(respond(cached));
    }
    let (store, chain) = (state.store.clone(), state.chain.clone());
    let checked = state
        .bg(async move {
            let t = HEALTH_TIMEOUT;
            let db = async { tokio::time::timeout(t, store.schema_version()).await.map_err(|_| "timeout") };
            let ch = async { tokio::time::timeout(t, chain.head()).await.map_err(|_| "timeout") };
            tokio::join!(db, ch)
        })
        .await;
    let Some((db, chain)) = checked else {
        return Err(crate::api::error::ApiError::Unavailable("shutting down"));
    };
    let db = db.unwrap_or(Err(crate::store::StoreError::Pool("timed out".into())));
    let chain = chain.unwrap_or(Err(crate::chain::ChainError::Timeout(HEALTH_TIMEOUT)));
    let database = match db {
        Ok(v) => DependencyHealth { ok: true, schema_version: Some(v), error: None },
        Err(e) => {
            tracing::warn!(error = %e, "health: database unreachable");
            DependencyHealth { ok: false, schema_version: None, error: Some("database unreachable") }
        }
    };
    let chain = match chain {
        Ok(h) => ChainHealth {
            ok: true,
            chain_id: Some(h.chain_id),
            block_number: Some(h.block_number),
            hub: h.hub.map(|a| a.to_checksum(None)),
            error: None,
        },
        Err(e) => {
            tracing::warn!(error = %e, "health: chain or hub unreachable");
            let error = match e {
                crate::chain::ChainError::Contract(_) | crate::chain::ChainError::NotOurHub { .. } => "hub unreachable",
                _ => "chain unreachable",
            };
            ChainHealth { ok: false, chain_id: None, block_number: None, hub: None, error: Some(error) }
        }
    };
    let matching = state.market.matching_alive();
    use std::sync::atomic::Ordering::Relaxed;
    let (head, block) = (state.sync.head.load(Relaxed), state.sync.cursor.load(Relaxed));
    let sync = SyncHealth { block, lag: head.saturating_sub(block), reorgs: state.sync.reorgs.load(Relaxed) };
    let settler = state.settler.as_ref().map(|h| SettlerHealth {
        operator: h.operator.to_checksum(None),
        out_of_gas_money: h.stats.out_of_gas_money.load(Relaxed),
        queued: h.stats.queued.load(Relaxed),
        leading: h.stats.leading.load(Relaxed),
        epoch: Some(h.stats.epoch.load(Relaxed)).filter(|e| *e > 0),
    });
    let categories = state.market.owned_categories();
    let body = Arc::new(Health {
        ok: database.ok && chain.ok && matching,
        database,
        chain,
        matching,
        sync,
        settler,
        categories,
    });
    state.health.put(body.clone());
    Ok(respond(body))
}

fn respond(body: Arc<Health>) -> HttpResponse {
    if body.ok { HttpResponse::Ok().json(&*body) } else { HttpResponse::ServiceUnavailable().json(&*body) }
}

/// How long one health check may wait for a dependency.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a health answer is reused: a load balancer polling every 100 ms costs one check a second.
const HEALTH_CACHE: Duration = Duration::from_secs(1);

/// The last health answer, reused for [`HEALTH_CACHE`].
#[derive(Debug, Default)]
pub struct HealthCache(Mutex<Option<(Instant, Arc<Health>)>>);

impl HealthCache {
    fn get(&self) -> Option<Arc<Health>> {
        let g = self.0.lock().ok()?;
        g.as_ref().filter(|(at, _)| at.elapsed() < HEALTH_CACHE).map(|(_, h)| h.clone())
    }
    fn put(&self, h: Arc<Health>) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some((Instant::now(), h));
        }
    }
}

/// Swagger UI over `/openapi.json` (assets vendored from npm `swagger-ui-dist`, embedded in the binary).
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(crate::api::swagger::PAGE)
}

/// The OpenAPI document of this server: its chain, its market's limits and its batch size.
#[get("/openapi.json")]
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(crate::api::openapi_json_for(
        Some(state.market.chain_id),
        &state.market.config,
        state.limits.batch_orders,
    ))
}
