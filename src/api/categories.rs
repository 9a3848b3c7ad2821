//! `GET /categories` and `GET /categories/{catid}`: the hub's categories, as chain sync recorded them.

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, MAX_SAFE, Param, Query};
use crate::store::categories::{CategoryFilter, CategoryView};
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryList {
    pub ok: bool,
    pub categories: Vec<CategoryView>,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u64>,
}

/// The query of `/categories` (besides chainId), in the peer's order.
pub fn category_params() -> Vec<(&'static str, Param)> {
    let mut spec =
        vec![("minWorkClockTimeRef", Param::Int(0, MAX_SAFE)), ("maxWorkClockTimeRef", Param::Int(0, MAX_SAFE))];
    spec.extend(validate::PAGING);
    spec
}

/// The hub's categories, by reference duration then id, with the peer's filters and paging.
#[get("/categories")]
pub async fn categories(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let p = validate::params(&q, &category_params(), &[]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
    let (skip, limit) = validate::paging(&p);
    let filter =
        CategoryFilter { min_ref: p.int("minWorkClockTimeRef"), max_ref: p.int("maxWorkClockTimeRef"), skip, limit };
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    let (categories, count) = state
        .on_main(async move { crate::store::categories::list(&**store.client().await?, chain_id, filter).await })
        .await?;
    let next_page = validate::next_page(skip, limit, categories.len());
    Ok(HttpResponse::Ok().json(CategoryList { ok: true, categories, count, next_page }))
}

/// One category as the peer answers it: the record beside `ok`, with `chainId` as the query gave it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OneCategory {
    pub ok: bool,
    pub catid: u64,
    /// As the query gave it.
    pub chain_id: String,
    pub name: String,
    pub description: String,
    pub work_clock_time_ref: u64,
    pub transaction_hash: Option<String>,
    pub block_number: Option<u64>,
    pub block_timestamp: Option<String>,
}

/// One category.
#[get("/categories/{catid}")]
pub async fn category(
    state: web::Data<AppState>,
    req: HttpRequest,
    catid: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let chain_id = check_chain(&state, &q)?;
    let catid = validate::integer("catid", &validate::Input::Text(catid.as_str().into()), true, 0, MAX_SAFE)
        .map_err(ApiError::BadRequest)?
        .unwrap_or(0);
    let store = state.store.clone();
    let chain = state.market.chain_id;
    let c = state
        .on_main(async move { crate::store::categories::get(&**store.client().await?, chain, catid).await })
        .await?
        .ok_or_else(|| ApiError::NotFound("category".into()))?;
    Ok(HttpResponse::Ok().json(OneCategory {
        ok: true,
        catid: c.catid,
        chain_id,
        name: c.name,
        description: c.description,
        work_clock_time_ref: c.work_clock_time_ref,
        transaction_hash: c.transaction_hash,
        block_number: c.block_number,
        block_timestamp: c.block_timestamp,
    }))
}
