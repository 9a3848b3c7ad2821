//! Beyond the peer: what an address or a hash is, so that one search box finds a deal, a task, an order of any
//! kind or a participant without trying each route (and without a 404 for every wrong guess).

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate;
use crate::wire::json::{parse_address, parse_bytes32};
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::json;

/// The query of `/search` (besides chainId).
pub const SEARCH_PARAMS: [(&str, validate::Param); 1] = [("q", validate::Param::AddressOrHash)];

/// `{ok, type, id, roles?}`: `type` is `deal`, `task`, `apporder`, `datasetorder`, `workerpoolorder`,
/// `requestorder`, `address` (with `roles`: deals per role and orders per kind, only those above zero) or
/// `null` when nothing is known of it.
#[get("/search")]
pub async fn search(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query = validate::Query::parse(req.query_string());
    let p = validate::params(&query, &SEARCH_PARAMS, &["q"]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &query)?;
    let text = p.text("q").unwrap_or_default();
    let hex_len = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).map(str::len);
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    let body = match hex_len {
        Some(40) => {
            let a = parse_address(text).map_err(|e| ApiError::BadRequest(format!("q: {e}")))?;
            let roles = state
                .on_main(
                    async move { crate::store::explorer::address_roles(&**store.client().await?, chain_id, a).await },
                )
                .await?;
            let roles: serde_json::Map<_, _> = roles.into_iter().map(|(k, n)| (k, json!(n))).collect();
            json!({"ok": true, "type": "address", "id": a.to_checksum(None), "roles": roles})
        }
        Some(64) => {
            let h = parse_bytes32(text).map_err(|e| ApiError::BadRequest(format!("q: {e}")))?;
            let kind = state
                .on_main(async move { crate::store::explorer::hash_kind(&**store.client().await?, chain_id, h).await })
                .await?;
            json!({"ok": true, "type": kind, "id": format!("{h:#x}")})
        }
        _ => {
            return Err(ApiError::BadRequest(
                "q: an address (0x + 40 hex digits) or a hash (0x + 64 hex digits)".into(),
            ));
        }
    };
    Ok(HttpResponse::Ok().json(body))
}
