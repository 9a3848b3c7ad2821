//! Beyond the peer: tasks across deals with their live statuses, and one task with its history, for the
//! explorer (the peer lists tasks only inside their deal).

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, MAX_SAFE, Param, Query};
use crate::ids::TaskId;
use crate::store::explorer::TaskRow;
use actix_web::{HttpRequest, HttpResponse, get, web};
use serde_json::{Value, json};

/// The query of `/tasks` (besides chainId).
pub const TASK_PARAMS: [(&str, Param); 3] =
    [("category", Param::Int(0, MAX_SAFE)), ("workerpool", Param::Address), ("pageSize", Param::Int(1, 200))];

pub fn view(t: &TaskRow) -> Value {
    json!({
        "taskid": t.task_id.to_string(),
        "dealid": t.deal_id.to_string(),
        "idx": t.index,
        "category": t.category,
        "workerpool": t.workerpool.to_checksum(None),
        "status": t.status,
        "lastEvent": t.last_event,
        "blockNumber": t.block_number,
        "results": t.results,
    })
}

/// Tasks of the most recent deals, newest deal first, with their statuses (`UNSET`, `ACTIVE`, `REVEALING`,
/// `COMPLETED`, `FAILED`); the feed's `task_updated` events keep them current.
#[get("/tasks")]
pub async fn tasks(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let p = validate::params(&q, &TASK_PARAMS, &[]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
    let size = p.int("pageSize").unwrap_or(20) as i64;
    let pool = p.address("workerpool");
    let store = state.store.clone();
    let (chain_id, category) = (state.market.chain_id, p.int("category"));
    let rows = state
        .on_main(async move {
            crate::store::explorer::recent_tasks(&**store.client().await?, chain_id, category, pool, size).await
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"ok": true, "tasks": rows.iter().map(view).collect::<Vec<_>>()})))
}

/// One task by id: its deal, status, results and every event the hub emitted for it.
#[get("/tasks/{taskid}")]
pub async fn task(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, &Query::parse(req.query_string()))?;
    let id = validate::bytes32("taskid", &validate::Input::Text(id.as_str().into()), true)
        .map_err(ApiError::BadRequest)?
        .map(TaskId)
        .unwrap_or(TaskId(Default::default()));
    let store = state.store.clone();
    let chain_id = state.market.chain_id;
    let found = state
        .on_main(async move { crate::store::explorer::task(&**store.client().await?, chain_id, id).await })
        .await?;
    let (t, events) = found.ok_or_else(|| ApiError::NotFound("task".into()))?;
    let mut body = view(&t);
    body["events"] = events.iter().map(|(e, b)| json!({"event": e, "blockNumber": b})).collect();
    body["ok"] = json!(true);
    Ok(HttpResponse::Ok().json(body))
}
