//! The pool's observability: `GET /status`, `/status/tasks/<taskid>`, `/metrics` (Prometheus) and
//! `/capacity` (what the market-maker bot sizes its orders to).

use super::body::parse_taskid;
use super::error::{PoolApiError, Res};
use super::state::PoolState;
use crate::pool::store;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use std::fmt::Write as _;

#[derive(Debug, Deserialize)]
pub(super) struct StatusQuery {
    limit: Option<i64>,
}

pub(super) async fn status(state: web::Data<PoolState>, q: web::Query<StatusQuery>) -> Res<HttpResponse> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let c = state.store.client().await?;
    let workers = store::workers_within(&**c, state.worker_lost_after, limit).await?;
    let tasks = store::tasks(&**c, limit).await?;
    let replicates = store::replicates(&**c, limit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "workerpool": state.workerpool.to_checksum(None),
        "workers": workers,
        "tasks": tasks,
        "replicates": replicates,
    })))
}

/// One task's timeline: every status change of the task and of its replicates, oldest first.
pub(super) async fn task_timeline(state: web::Data<PoolState>, path: web::Path<String>) -> Res<HttpResponse> {
    let taskid = parse_taskid(&path)?;
    let events = store::events(&**state.store.client().await?, taskid).await?;
    if events.is_empty() {
        return Err(PoolApiError::NotFound(format!("task {taskid:#x}")));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"taskid": taskid, "events": events})))
}

/// Prometheus text: tasks by status, workers (alive or not), and the queue (initialized tasks nobody runs yet).
pub(super) async fn metrics(state: web::Data<PoolState>) -> Res<HttpResponse> {
    let c = state.store.client().await?;
    let counts = store::task_counts(&**c).await?;
    let workers = store::worker_slots(&**c, state.worker_lost_after, state.membership.vouched()).await?;
    let alive = workers.iter().filter(|(_, alive)| *alive).count();
    let queue = counts.iter().find(|(s, _)| s == "INITIALIZED").map_or(0, |(_, n)| *n);
    let mut out = String::new();
    let _ = writeln!(out, "# HELP dragon_pool_tasks Tasks of the pool by status.\n# TYPE dragon_pool_tasks gauge");
    for (s, n) in &counts {
        let _ = writeln!(out, "dragon_pool_tasks{{status=\"{s}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP dragon_pool_workers Registered workers.\n# TYPE dragon_pool_workers gauge");
    let _ = writeln!(out, "dragon_pool_workers{{state=\"alive\"}} {alive}");
    let _ = writeln!(out, "dragon_pool_workers{{state=\"lost\"}} {}", workers.len() - alive);
    let _ = writeln!(
        out,
        "# HELP dragon_pool_queue_depth Initialized tasks waiting for a worker.\n# TYPE dragon_pool_queue_depth gauge"
    );
    let _ = writeln!(out, "dragon_pool_queue_depth {queue}");
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out))
}

/// `GET /capacity`: the rule of [`crate::pool::capacity::capacity`] over the alive workers' slots and the tasks by status.
pub(super) async fn capacity(state: web::Data<PoolState>) -> Res<HttpResponse> {
    let c = state.store.client().await?;
    let workers = store::worker_slots(&**c, state.worker_lost_after, state.membership.vouched()).await?;
    let counts = store::task_counts(&**c).await?;
    let alive: Vec<i64> = workers.iter().filter(|(_, alive)| *alive).map(|(slots, _)| *slots).collect();
    let lost = (workers.len() - alive.len()) as i64;
    Ok(HttpResponse::Ok().json(crate::pool::capacity::capacity(&alive, lost, &counts)))
}
