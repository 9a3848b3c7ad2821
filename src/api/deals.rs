//! Deals on chain (recorded by chain sync, whoever matched them), their tasks, and the price history.

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, MAX_SAFE, Param, Query};
use crate::ids::{DealId, OrderHash};
use crate::store::deals::DealFilter;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::json;

/// The query of `/ohlc` (besides chainId).
pub const OHLC_PARAMS: [(&str, Param); 1] = [("category", Param::Int(0, MAX_SAFE))];

/// The parameters of `/deals`, paging included.
pub fn deal_params() -> Vec<(&'static str, Param)> {
    let mut spec = DEAL_PARAMS.to_vec();
    spec.extend(validate::PAGING);
    spec
}

/// The filters of `/deals`, in the peer's order of declaration.
const DEAL_PARAMS: [(&str, Param); 13] = [
    ("category", Param::Int(0, MAX_SAFE)),
    ("requester", Param::Address),
    ("beneficiary", Param::Address),
    ("app", Param::Address),
    ("dataset", Param::Address),
    ("workerpool", Param::Address),
    ("appOwner", Param::Address),
    ("datasetOwner", Param::Address),
    ("workerpoolOwner", Param::Address),
    ("apporderHash", Param::Bytes32),
    ("datasetorderHash", Param::Bytes32),
    ("workerpoolorderHash", Param::Bytes32),
    ("requestorderHash", Param::Bytes32),
];

/// Deals on chain, as the peer lists them: newest block first, then by deal id; `{ok, deals, count, nextPage?}`.
#[get("/deals")]
pub async fn deals(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let p = validate::params(&q, &deal_params(), &[]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
    let filter = DealFilter {
        category: p.int("category"),
        requester: p.address("requester"),
        beneficiary: p.address("beneficiary"),
        app: p.address("app"),
        dataset: p.address("dataset"),
        workerpool: p.address("workerpool"),
        app_owner: p.address("appOwner"),
        dataset_owner: p.address("datasetOwner"),
        workerpool_owner: p.address("workerpoolOwner"),
        app_hash: p.bytes32("apporderHash").map(OrderHash),
        dataset_hash: p.bytes32("datasetorderHash").map(OrderHash),
        workerpool_hash: p.bytes32("workerpoolorderHash").map(OrderHash),
        request_hash: p.bytes32("requestorderHash").map(OrderHash),
    };
    let (skip, limit) = validate::paging(&p);
    let offset = i64::try_from(skip).unwrap_or(i64::MAX);
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    let (deals, count) = state
        .on_main(async move {
            crate::store::deals::list(&**store.client().await?, chain_id, &filter, offset, limit as i64).await
        })
        .await?;
    let next_page = validate::next_page(skip, limit, deals.len());
    let mut body = json!({"ok": true, "deals": deals, "count": count});
    if let Some(n) = next_page {
        body["nextPage"] = json!(n);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// One deal by id, with (beyond the peer) its tasks and their statuses (`UNSET` until initialized, `ACTIVE`,
/// `REVEALING`, `COMPLETED`, `FAILED`).
#[get("/deals/{dealid}")]
pub async fn deal(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, &Query::parse(req.query_string()))?;
    let id = validate::bytes32("dealid", &validate::Input::Text(id.as_str().into()), true)
        .map_err(ApiError::BadRequest)?
        .map(DealId)
        .unwrap_or(DealId(Default::default()));
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

/// Price history of a category as the peer gives it: `[[blockTimestamp, workerpool price, volume], ...]` for
/// the last 100 deals, newest block first.
#[get("/ohlc")]
pub async fn ohlc(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let p = validate::params(&q, &OHLC_PARAMS, &["category"]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
    let store = state.store.clone();
    let (chain_id, category) = (state.market.chain_id, p.int("category").unwrap_or(0));
    let rows = state
        .on_main(async move { crate::store::deals::ohlc(&**store.client().await?, chain_id, category, 100).await })
        .await?;
    let ohlc: Vec<_> = rows
        .into_iter()
        .map(|(t, price, volume)| {
            let price = price.parse::<u64>().ok().filter(|p| *p <= MAX_SAFE).map_or(json!(price), |p| json!(p));
            json!([crate::wire::iso_time(t * 1000), price, volume])
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"ok": true, "ohlc": ohlc})))
}
