//! Beyond the peer: a workerpool's record on this exchange (deals, tasks by status, success rate), for the
//! explorer's pool page. Its open orders and deals come from the listings (`workerpool=` filters).

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::json;

/// A workerpool's deals on chain, tasks bought, tasks per status, and its success rate: completed tasks over
/// finished ones (completed or failed), `null` before any task finished.
#[get("/pools/{address}")]
pub async fn pool(
    state: web::Data<AppState>,
    req: HttpRequest,
    address: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, &validate::Query::parse(req.query_string()))?;
    let pool = validate::address("address", &validate::Input::Text(address.as_str().into()), true)
        .map_err(ApiError::BadRequest)?
        .unwrap_or_default();
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    let r = state
        .on_main(async move { crate::store::explorer::pool_record(&**store.client().await?, chain_id, pool).await })
        .await?;
    let count = |s: &str| r.tasks.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    let (done, failed) = (count("COMPLETED"), count("FAILED"));
    let rate = (done + failed > 0).then(|| done as f64 / (done + failed) as f64);
    let tasks: serde_json::Map<String, serde_json::Value> = ["UNSET", "ACTIVE", "REVEALING", "COMPLETED", "FAILED"]
        .iter()
        .map(|s| ((*s).to_owned(), json!(count(s))))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "ok": true,
        "workerpool": pool.to_checksum(None),
        "deals": r.deals,
        "volume": r.volume,
        "tasks": tasks,
        "successRate": rate,
    })))
}
