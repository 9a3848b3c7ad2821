//! The edge between PoCo orders and the matching engine: uint256 fields become the engine's `u64` values, or
//! a clear error naming the field (the engine never sees a value it cannot represent).

use crate::ids::OrderHash;
use crate::order::{AnyOrder, AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder};
use alloy::primitives::{Address, B256, U256};
use dragon_matching as m;

/// A field whose uint256 value is beyond what the engine represents (2^64 - 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {value} is too large for the order book (at most 2^64-1)")]
pub struct TooLarge {
    pub field: &'static str,
    pub value: U256,
}

/// The engine's one uint256 -> u64 converter, with the field named on failure.
pub fn small(field: &'static str, value: U256) -> Result<u64, TooLarge> {
    m::u64_from_uint256(&value.to_be_bytes::<32>()).map_err(|_| TooLarge { field, value })
}

fn price(field: &'static str, value: crate::money::Nrlc) -> Result<m::Nrlc, TooLarge> {
    small(field, value.0).map(m::Nrlc)
}

fn addr(a: Address) -> m::Address {
    m::Address(a.0.0)
}

fn tag(t: B256) -> m::Tag {
    m::Tag(t.0)
}

/// The engine's view of `order`, whose hash is `hash` and of which `remaining` is still available.
pub fn engine_order(order: &AnyOrder, hash: OrderHash, remaining: U256) -> Result<m::Order, TooLarge> {
    let hash = m::OrderHash(hash.0.0);
    let volume = small("volume", remaining)?;
    Ok(match order {
        AnyOrder::App(AppOrder {
            app,
            appprice,
            tag: t,
            datasetrestrict,
            workerpoolrestrict,
            requesterrestrict,
            ..
        }) => m::Order::App(m::AppOrder {
            hash,
            app: addr(*app),
            price: price("appprice", *appprice)?,
            volume,
            tag: tag(*t),
            dataset_restrict: addr(*datasetrestrict),
            workerpool_restrict: addr(*workerpoolrestrict),
            requester_restrict: addr(*requesterrestrict),
        }),
        AnyOrder::Dataset(DatasetOrder {
            dataset,
            datasetprice,
            tag: t,
            apprestrict,
            workerpoolrestrict,
            requesterrestrict,
            ..
        }) => m::Order::Dataset(m::DatasetOrder {
            hash,
            dataset: addr(*dataset),
            price: price("datasetprice", *datasetprice)?,
            volume,
            tag: tag(*t),
            app_restrict: addr(*apprestrict),
            workerpool_restrict: addr(*workerpoolrestrict),
            requester_restrict: addr(*requesterrestrict),
        }),
        AnyOrder::Workerpool(o @ WorkerpoolOrder { .. }) => m::Order::Workerpool(m::WorkerpoolOrder {
            hash,
            workerpool: addr(o.workerpool),
            price: price("workerpoolprice", o.workerpoolprice)?,
            volume,
            tag: tag(o.tag),
            category: small("category", o.category)?,
            trust: small("trust", o.trust)?,
            app_restrict: addr(o.apprestrict),
            dataset_restrict: addr(o.datasetrestrict),
            requester_restrict: addr(o.requesterrestrict),
            record: m::TrackRecord::default(),
        }),
        AnyOrder::Request(o @ RequestOrder { .. }) => m::Order::Request(m::RequestOrder {
            hash,
            app: addr(o.app),
            app_max_price: price("appmaxprice", o.appmaxprice)?,
            dataset: addr(o.dataset),
            dataset_max_price: price("datasetmaxprice", o.datasetmaxprice)?,
            workerpool: addr(o.workerpool),
            workerpool_max_price: price("workerpoolmaxprice", o.workerpoolmaxprice)?,
            requester: addr(o.requester),
            volume,
            tag: tag(o.tag),
            category: small("category", o.category)?,
            trust: small("trust", o.trust)?,
            // Publication refused an invalid requirement (`min_track_record`); an order stored before the field
            // existed is read as asking none.
            min_record: min_track_record(&o.params).unwrap_or_default(),
        }),
    })
}

/// The key of a request's params that asks a minimum track record of the workerpool (Dragon's own; iExec
/// workers ignore keys they do not know): `{"dragon_min_track_record": {"tasks": 20, "completed": 0.95}}`.
pub const MIN_TRACK_RECORD_KEY: &str = "dragon_min_track_record";

/// Most finished tasks a requirement may ask (beyond any workerpool's history for years; keeps the figures in
/// range).
pub const MAX_REQUIRED_TASKS: u64 = 1_000_000_000;

/// The minimum track record a request's params ask (none when the params are not a JSON object or lack the
/// key), or why it is invalid: `tasks` an integer 0..=10^9 (default 0), `completed` a number 0..=1 with at most
/// four decimals, the share of finished tasks that completed (default 0); no other member.
pub fn min_track_record(params: &str) -> Result<m::MinTrackRecord, String> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(params) else {
        return Ok(m::MinTrackRecord::NONE);
    };
    let Some(v) = map.get(MIN_TRACK_RECORD_KEY) else {
        return Ok(m::MinTrackRecord::NONE);
    };
    let key = MIN_TRACK_RECORD_KEY;
    let serde_json::Value::Object(req) = v else {
        return Err(format!("params.{key} must be an object {{\"tasks\": <integer>, \"completed\": <0..1>}}"));
    };
    if let Some(other) = req.keys().find(|k| *k != "tasks" && *k != "completed") {
        return Err(format!("params.{key}.{other} is not a known member (tasks, completed)"));
    }
    let tasks = match req.get("tasks") {
        None => 0,
        Some(t) => t
            .as_u64()
            .filter(|t| *t <= MAX_REQUIRED_TASKS)
            .ok_or_else(|| format!("params.{key}.tasks must be an integer from 0 to {MAX_REQUIRED_TASKS}"))?,
    };
    let completed_bp = match req.get("completed") {
        None => 0,
        Some(c) => {
            let bad = || format!("params.{key}.completed must be a number from 0 to 1 with at most 4 decimals");
            let f = c.as_f64().filter(|f| (0.0..=1.0).contains(f)).ok_or_else(bad)?;
            let bp = (f * 10_000.0).round();
            // 0.95 is 9500.000000000002 in binary: allow that, refuse a fifth decimal.
            if (f * 10_000.0 - bp).abs() > 1e-6 {
                return Err(bad());
            }
            bp as u16
        }
    };
    Ok(m::MinTrackRecord { tasks, completed_bp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_track_record_reads_the_documented_field_and_refuses_the_rest() {
        let ok = |p: &str| min_track_record(p).expect(p);
        assert_eq!(ok(""), m::MinTrackRecord::NONE);
        assert_eq!(ok("plain args"), m::MinTrackRecord::NONE);
        assert_eq!(ok(r#"{"iexec_args":"x"}"#), m::MinTrackRecord::NONE);
        let full = r#"{"iexec_args":"x","dragon_min_track_record":{"tasks":20,"completed":0.95}}"#;
        assert_eq!(ok(full), m::MinTrackRecord { tasks: 20, completed_bp: 9500 });
        assert_eq!(ok(r#"{"dragon_min_track_record":{"completed":1}}"#).completed_bp, 10_000);
        assert_eq!(ok(r#"{"dragon_min_track_record":{"completed":0.0001}}"#).completed_bp, 1);
        for bad in [
            r#"{"dragon_min_track_record":0.95}"#,
            r#"{"dragon_min_track_record":{"tasks":-1}}"#,
            r#"{"dragon_min_track_record":{"tasks":2.5}}"#,
            r#"{"dragon_min_track_record":{"tasks":1000000001}}"#,
            r#"{"dragon_min_track_record":{"completed":1.01}}"#,
            r#"{"dragon_min_track_record":{"completed":"0.9"}}"#,
            r#"{"dragon_min_track_record":{"completed":0.12345}}"#,
            r#"{"dragon_min_track_record":{"completed":0.9,"rate":1}}"#,
        ] {
            assert!(min_track_record(bad).is_err(), "{bad} accepted");
        }
    }
}
