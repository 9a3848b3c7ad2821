//! Categories, metrics and depth: the read-only views of the market.

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::server::AppState;
use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::Ordering;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct CategoryQuery {
    pub chain_id: u64,
    pub page_index: Option<usize>,
    pub page_size: Option<usize>,
}

async fn categories_of(state: &AppState) -> Result<Vec<crate::store::categories::Category>, ApiError> {
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    state.on_main(async move { crate::store::categories::list(&**store.client().await?, chain_id).await }).await
}

/// The hub's categories.
#[utoipa::path(params(CategoryQuery), responses((status = 200, description = "{ok, categories, count}")))]
#[get("/categories")]
pub async fn categories(state: web::Data<AppState>, q: web::Query<CategoryQuery>) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let all = categories_of(&state).await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "categories": all, "count": all.len()})))
}

/// One category.
#[utoipa::path(params(("catid" = u64, Path), CategoryQuery), responses((status = 200), (status = 404, body = crate::api::error::ErrorBody)))]
#[get("/categories/{catid}")]
pub async fn category(
    state: web::Data<AppState>,
    catid: web::Path<u64>,
    q: web::Query<CategoryQuery>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let all = categories_of(&state).await?;
    let c = all.into_iter().find(|c| c.catid == *catid).ok_or_else(|| ApiError::NotFound("category".into()))?;
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["ok"] = json!(true);
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct MetricsQuery {
    pub chain_id: Option<u64>,
}

/// With `chainId`: the peer's JSON `{lastBlock, checkpointBlock, apporders, ...}`. Without: Prometheus text.
#[utoipa::path(params(MetricsQuery), responses((status = 200)))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, q: web::Query<MetricsQuery>) -> Result<HttpResponse, ApiError> {
    let m = &state.market;
    let [app, dataset, workerpool, request] = m.book.counts();
    if let Some(chain_id) = q.chain_id {
        check_chain(&state, chain_id)?;
        let chain = state.chain.clone();
        let last = state.bg(async move { chain.head().await.ok().map(|h| h.block_number) }).await.flatten();
        return Ok(HttpResponse::Ok().json(json!({
            "ok": true, "lastBlock": last, "checkpointBlock": last,
            "apporders": app, "datasetorders": dataset, "workerpoolorders": workerpool, "requestorders": request,
        })));
    }
    let s = &m.stats;
    let mut out = String::new();
    out.push_str("# HELP dragon_open_orders Open orders in the book.\n# TYPE dragon_open_orders gauge\n");
    for (k, n) in [("app", app), ("dataset", dataset), ("workerpool", workerpool), ("request", request)] {
        out.push_str(&format!("dragon_open_orders{{kind=\"{k}\"}} {n}\n"));
    }
    for (name, help, v) in [
        ("dragon_orders_published_total", "Orders accepted and durable.", s.published.load(Ordering::Relaxed)),
        ("dragon_orders_unpublished_total", "Orders taken out by their owners.", s.unpublished.load(Ordering::Relaxed)),
        ("dragon_group_commits_total", "Store commits of the sequencer.", s.commits.load(Ordering::Relaxed)),
        ("dragon_deals_proposed_total", "Deals the engine proposed.", s.deals_proposed.load(Ordering::Relaxed)),
        ("dragon_sync_deals_total", "Deals chain sync recorded.", state.sync.deals.load(Ordering::Relaxed)),
        ("dragon_sync_reorgs_total", "Reorgs undone by chain sync.", state.sync.reorgs.load(Ordering::Relaxed)),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"));
    }
    let (head, cursor) = (state.sync.head.load(Ordering::Relaxed), state.sync.cursor.load(Ordering::Relaxed));
    out.push_str(&format!(
        "# HELP dragon_sync_lag_blocks Blocks between the chain's head and the last block applied.\n# TYPE dragon_sync_lag_blocks gauge\ndragon_sync_lag_blocks {}\n",
        head.saturating_sub(cursor)
    ));
    if let Some(st) = state.settler.as_ref().map(|h| &h.stats) {
        for (name, help, v) in [
            (
                "dragon_settle_transactions_total",
                "Settlement transactions sent.",
                st.transactions.load(Ordering::Relaxed),
            ),
            ("dragon_settle_batches_total", "Of which matchOrdersBatch.", st.batches.load(Ordering::Relaxed)),
            (
                "dragon_settle_replaced_total",
                "Transactions replaced with higher fees.",
                st.replaced.load(Ordering::Relaxed),
            ),
            (
                "dragon_settle_retries_total",
                "Sends retried after a retryable error.",
                st.retries.load(Ordering::Relaxed),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"));
        }
        out.push_str(&format!(
            "# HELP dragon_settle_out_of_gas_money Whether the operator account cannot pay for gas.\n# TYPE dragon_settle_out_of_gas_money gauge\ndragon_settle_out_of_gas_money {}\n",
            u8::from(st.out_of_gas_money.load(Ordering::Relaxed))
        ));
    }
    out.push_str(&format!(
        "# HELP dragon_matching_up Whether the matching thread is alive.\n# TYPE dragon_matching_up gauge\ndragon_matching_up {}\n",
        u8::from(m.matching_alive())
    ));
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct DepthQuery {
    pub chain_id: u64,
    pub category: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepthLevel {
    /// nRLC.
    pub price: u64,
    pub volume: u64,
    pub orders: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Depth {
    pub ok: bool,
    pub category: u64,
    /// Lowest workerpool price, nRLC.
    pub best_ask: Option<u64>,
    /// Highest request workerpoolmaxprice, nRLC.
    pub best_bid: Option<u64>,
    pub asks: Vec<DepthLevel>,
    pub bids: Vec<DepthLevel>,
}

/// Beyond the peer: depth (price levels) and best prices of a category, from the engine's latest snapshot.
#[utoipa::path(params(DepthQuery), responses((status = 200, body = Depth)))]
#[get("/depth")]
pub async fn depth(state: web::Data<AppState>, q: web::Query<DepthQuery>) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let snap = state.market.snapshot().ok_or(ApiError::Unavailable("the matching engine is unavailable"))?;
    let lv = |l: &dragon_matching::Level| DepthLevel { price: l.price.0, volume: l.volume, orders: l.orders };
    let (asks, bids) = match snap.category(q.category) {
        Some(v) => (v.depth.asks.iter().map(lv).collect(), v.depth.bids.iter().map(lv).collect()),
        None => (Vec::new(), Vec::new()),
    };
    Ok(HttpResponse::Ok().json(Depth {
        ok: true,
        category: q.category,
        best_ask: snap.best_ask(q.category).map(|p| p.0),
        best_bid: snap.best_bid(q.category).map(|p| p.0),
        asks,
        bids,
    }))
}
