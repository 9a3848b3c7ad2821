//! Beyond the peer: a workerpool's record on this exchange (deals, tasks by status, success rate), and its track
//! record from chain events (`docs/track-records.md`), for the explorer's pool page and for requesters choosing
//! a pool. Its open orders and deals come from the listings (`workerpool=` filters).

use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate;
use crate::store::track_records::{Figures, TrackRecord};
use actix_web::{HttpRequest, HttpResponse, get, web};
use alloy::primitives::Address;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

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

/// A workerpool's track record (`docs/track-records.md`): its figures over all its deals and over those of the
/// last 30 days of chain time, derived from chain events only, at the last block chain sync applied.
#[get("/workerpools/{address}")]
pub async fn workerpool(
    state: web::Data<AppState>,
    req: HttpRequest,
    address: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, &validate::Query::parse(req.query_string()))?;
    let wp = validate::address("address", &validate::Input::Text(address.as_str().into()), true)
        .map_err(ApiError::BadRequest)?
        .unwrap_or_default();
    // A pool's figures change only when chain sync applies blocks: repeated asks between two steps (a hostile
    // caller naming the pool with the longest history) cost one aggregation per step, not one per request.
    let at = (state.sync.cursor.load(Ordering::Acquire), state.sync.reorgs.load(Ordering::Acquire));
    let record = match state.track_records.get(&wp, at) {
        Some(r) => r,
        None => {
            let store = state.store.clone();
            let chain_id = state.market.chain_id;
            let records = state
                .on_main(async move {
                    crate::store::track_records::of(&**store.client().await?, chain_id, Some(&[wp])).await
                })
                .await?;
            let r = records.get(&wp).copied().unwrap_or_default();
            state.track_records.put(wp, at, r);
            r
        }
    };
    Ok(HttpResponse::Ok().json(json!({
        "ok": true,
        "workerpool": wp.to_checksum(None),
        "trackRecord": track_record_json(&record, true),
    })))
}

/// Track records answered at a sync step `(cursor, reorgs)`, valid while chain sync has applied nothing since.
/// Bounded: emptied when full (a new step empties it anyway, one stale entry at a time).
#[derive(Debug, Default)]
pub struct TrackRecordCache(Mutex<HashMap<Address, (SyncStep, TrackRecord)>>);

/// Chain sync's `(cursor, reorgs)`: what it had applied when a record was computed.
type SyncStep = (u64, u64);

impl TrackRecordCache {
    const MAX_ENTRIES: usize = 4096;

    fn get(&self, key: &Address, at: SyncStep) -> Option<TrackRecord> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).filter(|(when, _)| *when == at).map(|(_, r)| *r)
    }

    fn put(&self, key: Address, at: SyncStep, record: TrackRecord) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= Self::MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (at, record));
    }
}

/// A track record in the API's JSON form: `allTime` and `last30Days` figures, and with `as_of` the block (and
/// its time) they were computed at.
pub fn track_record_json(r: &TrackRecord, as_of: bool) -> serde_json::Value {
    let figures = |f: &Figures| {
        json!({
            "deals": f.deals,
            "tasks": f.tasks,
            "completed": f.completed,
            "claimed": f.claimed,
            "failed": f.failed,
            "finished": f.finished(),
            "completedRate": f.completed_rate(),
            "medianSecondsToFinalize": f.median_seconds,
        })
    };
    let mut v = json!({"allTime": figures(&r.all_time), "last30Days": figures(&r.last_30_days)});
    if as_of {
        v["asOf"] = match r.as_of {
            Some(a) => json!({"blockNumber": a.block, "blockTimestamp": crate::wire::iso_time(a.timestamp * 1000)}),
            None => serde_json::Value::Null,
        };
    }
    v
}
