//! `GET /version` and `GET /health`.

use crate::server::AppState;
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    pub ok: bool,
    /// Dragon's version (semver).
    pub version: &'static str,
}

/// The server's version.
#[utoipa::path(responses((status = 200, body = Version)))]
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
#[utoipa::path(responses(
    (status = 200, description = "Database and chain reachable", body = Health),
    (status = 503, description = "A dependency is unreachable", body = Health)
))]
#[get("/health")]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (db, chain) = tokio::join!(state.store.schema_version(), state.chain.head());
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
    let body = Health { ok: database.ok && chain.ok, database, chain };
    if body.ok { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
