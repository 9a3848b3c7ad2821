//! The market as numbers: `GET /metrics` (the peer's counters, or Prometheus text) and `GET /depth` (Dragon's).

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, MAX_SAFE, Param, Query};
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

/// The query of `/depth` (besides chainId).
pub const DEPTH_PARAMS: [(&str, Param); 1] = [("category", Param::Int(0, MAX_SAFE))];

/// With `chainId`: the peer's JSON `{lastBlock, checkpointBlock, apporders, ...}`. Without: Prometheus text.
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let m = &state.market;
    let [app, dataset, workerpool, request] = m.book.counts();
    let q = Query::parse(req.query_string());
    if !matches!(q.get("chainId"), validate::Input::Absent) {
        check_chain(&state, &q)?;
        // The last block chain sync applied (the peer's watcher's last block); sync replays nothing behind it.
        let last = state.sync.cursor.load(Ordering::Relaxed);
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
        (
            "dragon_fenced_writes_total",
            "Writes refused because this instance no longer owned the category, or another owner had promised the app or dataset order first (cluster only).",
            s.fenced.load(Ordering::Relaxed),
        ),
        ("dragon_sync_deals_total", "Deals chain sync recorded.", state.sync.deals.load(Ordering::Relaxed)),
        ("dragon_sync_reorgs_total", "Reorgs undone by chain sync.", state.sync.reorgs.load(Ordering::Relaxed)),
        (
            "dragon_chain_index_cold_reads_total",
            "Reads of the node that filled the chain index (an asset, account or address seen for the first time).",
            m.reader.cold_reads(),
        ),
        (
            "dragon_feed_relay_dropped_total",
            "Feed events not sent to NATS: the queue to it was full (cluster-wide feed only).",
            state.feed.stats().relay_dropped,
        ),
        (
            "dragon_cluster_book_changes_dropped_total",
            "Book changes not sent to the other instances: the queue to NATS was full (cluster only).",
            state.router.as_ref().map_or(0, |r| r.dropped.load(Ordering::Relaxed)),
        ),
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
            (
                "dragon_settle_tenures_total",
                "Settler lease tenures this instance began.",
                st.tenures.load(Ordering::Relaxed),
            ),
            (
                "dragon_settle_fenced_total",
                "Tenures ended by a write the lease's fence refused.",
                st.fenced.load(Ordering::Relaxed),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"));
        }
        out.push_str(&format!(
            "# HELP dragon_settle_out_of_gas_money Whether the operator account cannot pay for gas.\n# TYPE dragon_settle_out_of_gas_money gauge\ndragon_settle_out_of_gas_money {}\n",
            u8::from(st.out_of_gas_money.load(Ordering::Relaxed))
        ));
        out.push_str(&format!(
            "# HELP dragon_settle_leader Whether this instance leads the settler (holds its lease).
# TYPE dragon_settle_leader gauge
dragon_settle_leader {}
",
            u8::from(st.leading.load(Ordering::Relaxed))
        ));
    }
    out.push_str(&format!(
        "# HELP dragon_matching_up Whether the matching thread is alive.\n# TYPE dragon_matching_up gauge\ndragon_matching_up {}\n",
        u8::from(m.matching_alive())
    ));
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out))
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
#[get("/depth")]
pub async fn depth(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let p = validate::params(&q, &DEPTH_PARAMS, &["category"]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
    let cat = p.int("category").unwrap_or(0);
    let snap = state.market.snapshot().ok_or(ApiError::Unavailable("the matching engine is unavailable"))?;
    let lv = |l: &dragon_matching::Level| DepthLevel { price: l.price.0, volume: l.volume, orders: l.orders };
    let (asks, bids) = match snap.category(cat) {
        Some(v) => (v.depth.asks.iter().map(lv).collect(), v.depth.bids.iter().map(lv).collect()),
        None => (Vec::new(), Vec::new()),
    };
    Ok(HttpResponse::Ok().json(Depth {
        ok: true,
        category: cat,
        best_ask: snap.best_ask(cat).map(|p| p.0),
        best_bid: snap.best_bid(cat).map(|p| p.0),
        asks,
        bids,
    }))
}
