//! Deals on chain (recorded by chain sync, whoever matched them), their tasks, the price history, and the
//! engine's proposals with what settlement made of them.

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::ids::{DealId, OrderHash};
use crate::order::json::{parse_address, parse_bytes32};
use crate::server::AppState;
use crate::store::deals::DealFilter;
use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct DealQuery {
    pub chain_id: u64,
    pub requester: Option<String>,
    pub beneficiary: Option<String>,
    pub app: Option<String>,
    pub dataset: Option<String>,
    pub workerpool: Option<String>,
    pub category: Option<u64>,
    pub apporder_hash: Option<String>,
    pub datasetorder_hash: Option<String>,
    pub workerpoolorder_hash: Option<String>,
    pub requestorder_hash: Option<String>,
    pub page_index: Option<usize>,
    pub page_size: Option<usize>,
}

fn address(field: &str, v: &Option<String>) -> Result<Option<alloy::primitives::Address>, ApiError> {
    v.as_deref().map(|v| parse_address(v).map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))).transpose()
}

fn hash(field: &str, v: &Option<String>) -> Result<Option<OrderHash>, ApiError> {
    v.as_deref()
        .map(|v| parse_bytes32(v).map(OrderHash).map_err(|e| ApiError::BadRequest(format!("{field}: {e}"))))
        .transpose()
}

/// Deals on chain, newest first, in the peer's format.
#[utoipa::path(params(DealQuery), responses((status = 200, description = "{ok, deals, count, nextPage?}")))]
#[get("/deals")]
pub async fn deals(state: web::Data<AppState>, q: web::Query<DealQuery>) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let filter = DealFilter {
        category: q.category,
        requester: address("requester", &q.requester)?,
        beneficiary: address("beneficiary", &q.beneficiary)?,
        app: address("app", &q.app)?,
        dataset: address("dataset", &q.dataset)?,
        workerpool: address("workerpool", &q.workerpool)?,
        app_hash: hash("apporderHash", &q.apporder_hash)?,
        dataset_hash: hash("datasetorderHash", &q.datasetorder_hash)?,
        workerpool_hash: hash("workerpoolorderHash", &q.workerpoolorder_hash)?,
        request_hash: hash("requestorderHash", &q.requestorder_hash)?,
    };
    let size = q.page_size.unwrap_or(20);
    if !(10..=1000).contains(&size) {
        return Err(ApiError::BadRequest("pageSize: must be between 10 and 1000".into()));
    }
    let index = q.page_index.unwrap_or(0);
    let offset =
        i64::try_from(index.saturating_mul(size)).map_err(|_| ApiError::BadRequest("pageIndex: too large".into()))?;
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    let (deals, count) = state
        .on_main(async move {
            crate::store::deals::list(&**store.client().await?, chain_id, &filter, offset, size as i64).await
        })
        .await?;
    let mut body = json!({"ok": true, "deals": deals, "count": count});
    if deals_full(&body, size) {
        body["nextPage"] = json!(index + 1);
    }
    Ok(HttpResponse::Ok().json(body))
}

fn deals_full(body: &serde_json::Value, size: usize) -> bool {
    body["deals"].as_array().is_some_and(|d| d.len() == size)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ChainQuery {
    pub chain_id: u64,
}

/// One deal by id, with its tasks and their statuses (`UNSET` until initialized, `ACTIVE`, `REVEALING`,
/// `COMPLETED`, `FAILED`).
#[utoipa::path(params(("dealid" = String, Path), ChainQuery), responses((status = 200), (status = 404, body = crate::api::error::ErrorBody)))]
#[get("/deals/{dealid}")]
pub async fn deal(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let id = DealId(parse_bytes32(&id).map_err(|e| ApiError::BadRequest(format!("dealid: {e}")))?);
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    let found =
        state.on_main(async move { crate::store::deals::get(&**store.client().await?, chain_id, id).await }).await?;
    let (mut body, tasks) = found.ok_or_else(|| ApiError::NotFound("deal".into()))?;
    body["tasks"] = tasks
        .iter()
        .map(|t| {
            json!({
                "taskid": t.task_id.to_string(),
                "idx": t.index,
                "status": t.status,
                "lastEvent": t.last_event,
                "blockNumber": t.block_number,
                "results": t.results,
            })
        })
        .collect();
    body["ok"] = json!(true);
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct OhlcQuery {
    pub chain_id: u64,
    pub category: u64,
}

/// Price history of a category: `[[blockTimestamp, workerpoolprice, volume], ...]`, one entry per deal on
/// chain, oldest first (the last 1,000).
#[utoipa::path(params(OhlcQuery), responses((status = 200)))]
#[get("/ohlc")]
pub async fn ohlc(state: web::Data<AppState>, q: web::Query<OhlcQuery>) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let store = state.store.clone();
    let (chain_id, category) = (state.market.chain_id, q.category);
    let rows = state
        .on_main(async move { crate::store::deals::ohlc(&**store.client().await?, chain_id, category, 1000).await })
        .await?;
    let ohlc: Vec<_> =
        rows.into_iter().map(|(t, price, volume)| json!([crate::api::iso_time(t * 1000), price, volume])).collect();
    Ok(HttpResponse::Ok().json(json!({"ok": true, "ohlc": ohlc})))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ProposalQuery {
    pub chain_id: u64,
    /// Proposals involving this order (any kind).
    pub order_hash: String,
}

/// Beyond the peer: the engine's deal proposals involving an order, newest first (the last 100), with their
/// settlement status (`proposed`, `submitted`, `settled`, `failed`) and, for a failure, the hub's reason.
#[utoipa::path(params(ProposalQuery), responses((status = 200, description = "{ok, proposals}")))]
#[get("/proposals")]
pub async fn proposals(state: web::Data<AppState>, q: web::Query<ProposalQuery>) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let h = OrderHash(parse_bytes32(&q.order_hash).map_err(|e| ApiError::BadRequest(format!("orderHash: {e}")))?);
    let store = state.store.clone();
    let found = state
        .on_main(async move { crate::store::proposals::by_order(&**store.client().await?, &h, 100).await })
        .await?;
    let views: Vec<crate::store::proposals::ProposalView> = found.iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(json!({"ok": true, "proposals": views})))
}

/// One proposal by id.
#[utoipa::path(params(("id" = i64, Path), ChainQuery), responses((status = 200), (status = 404, body = crate::api::error::ErrorBody)))]
#[get("/proposals/{id}")]
pub async fn proposal(
    state: web::Data<AppState>,
    id: web::Path<i64>,
    q: web::Query<ChainQuery>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let store = state.store.clone();
    let id = *id;
    let found = state.on_main(async move { crate::store::proposals::get(&**store.client().await?, id).await }).await?;
    let p = found.ok_or_else(|| ApiError::NotFound("proposal".into()))?;
    let mut v = serde_json::to_value(crate::store::proposals::ProposalView::from(&p)).unwrap_or_default();
    v["ok"] = json!(true);
    Ok(HttpResponse::Ok().json(v))
}
