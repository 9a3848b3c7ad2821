//! Beyond the peer: the engine's proposals, with what settlement made of them.

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, MAX_SAFE, Param, Query};
use crate::ids::OrderHash;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::json;

/// The query of `/proposals` (besides chainId).
pub const PROPOSAL_PARAMS: [(&str, Param); 1] = [("orderHash", Param::Bytes32)];

/// Beyond the peer: the engine's deal proposals involving an order, newest first (the last 100), with their
/// settlement status (`proposed`, `submitted`, `settled`, `failed`) and, for a failure, the hub's reason.
#[get("/proposals")]
pub async fn proposals(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let p = validate::params(&q, &PROPOSAL_PARAMS, &["orderHash"]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
    let h = OrderHash(p.bytes32("orderHash").unwrap_or_default());
    let store = state.store.clone();
    let found = state
        .on_main(async move { crate::store::proposals::by_order(&**store.client().await?, &h, 100).await })
        .await?;
    let views: Vec<crate::store::proposals::ProposalView> = found.iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({"ok": true, "proposals": views})))
}

/// One proposal by id.
#[get("/proposals/{id}")]
pub async fn proposal(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, &Query::parse(req.query_string()))?;
    let id = validate::integer("id", &validate::Input::Text(id.as_str().into()), true, 0, MAX_SAFE)
        .map_err(ApiError::BadRequest)?
        .unwrap_or(0) as i64;
    let store = state.store.clone();
    let found = state.on_main(async move { crate::store::proposals::get(&**store.client().await?, id).await }).await?;
    let p = found.ok_or_else(|| ApiError::NotFound("proposal".into()))?;
    let mut v = serde_json::to_value(crate::store::proposals::ProposalView::from(&p)).unwrap_or_default();
    v["ok"] = json!(true);
    Ok(HttpResponse::Ok().json(v))
}
