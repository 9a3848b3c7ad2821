//! The four order books, in iExec's market API dialect: list with filters and paging, one order by hash,
//! publish (one order, or a batch beyond the peer), unpublish (by hash, last, all).
//!
//! Writes authenticate before they read their body, in the peer's order of checks: `chainId` (400), then the
//! `authorization` header (403), then the body (400), then the publication rules (403).

mod cache;
mod list;
mod publish;
mod unpublish;

pub use cache::QueryCache;
pub use list::{find, get_one, list, required, spec};
pub use publish::{publish, publish_batch};
pub use unpublish::{resource_field, unpublish};

use crate::order::OrderKind;
use crate::order::record::{MAX_SAFE, OrderRecord, OrderStatus};
use crate::wire::iso_time;
use actix_web::web;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A published order as the market API shows it in listings, in publications and on the feed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_hash: String,
    pub chain_id: u64,
    /// The signed order: addresses checksummed, uint fields as JSON numbers (exact decimal strings above
    /// 2^53-1, which the peer refuses).
    pub order: Box<RawValue>,
    /// Volume still available to match.
    pub remaining: u64,
    pub status: OrderStatus,
    /// ISO-8601, milliseconds, UTC.
    pub publication_timestamp: String,
    pub signer: String,
    /// Dataset orders only: free and of iExec's "infinite" volume, i.e. for bulk processing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<bool>,
    /// Workerpool orders in the book answers only, beyond the peer: the workerpool's track record
    /// (`docs/track-records.md`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_record: Option<Value>,
}

/// iExec's "infinite" dataset volume (Number.MAX_SAFE_INTEGER); one less is accepted too, as the peer does for
/// orders signed before it settled on that value.
const BULK_VOLUME: u64 = MAX_SAFE - 1;

fn bulk(volume: u64, price: u64) -> bool {
    volume >= BULK_VOLUME && price == 0
}

pub(super) fn is_bulk(r: &OrderRecord) -> bool {
    bulk(r.volume(), r.price())
}

pub(super) fn is_bulk_brief(b: &crate::order::record::Brief) -> bool {
    bulk(b.volume, b.price)
}

impl From<&OrderRecord> for OrderView {
    fn from(r: &OrderRecord) -> Self {
        OrderView {
            order_hash: r.hash.to_string(),
            chain_id: r.chain_id,
            order: r.json.clone(),
            remaining: r.remaining,
            status: r.status,
            publication_timestamp: iso_time(r.published_ms),
            signer: r.signer.to_checksum(None),
            bulk: (r.kind() == OrderKind::Dataset).then(|| is_bulk(r)),
            track_record: None,
        }
    }
}

/// The record's JSON as listings show it, made once per record (see [`crate::order::record::Shown`]).
pub fn shown(r: &OrderRecord) -> bytes::Bytes {
    r.shown.get_or(r.remaining, r.status, || {
        // Serialising a struct of strings and numbers into a Vec cannot fail.
        bytes::Bytes::from(serde_json::to_vec(&OrderView::from(r)).unwrap_or_default())
    })
}

pub fn view(r: &OrderRecord) -> Value {
    serde_json::to_value(OrderView::from(r)).unwrap_or(Value::Null)
}

/// The book a route serves, attached to its resources: the four kinds share their handlers.
type Kind = web::Data<OrderKind>;

/// Registers the routes of one kind: `/{kind}orders`, `/{kind}orders/batch`, `/{kind}orders/{hash}` and its
/// `/explain`; any
/// other method on them is a 405.
pub fn routes(cfg: &mut web::ServiceConfig, kind: OrderKind) {
    let base = format!("/{kind}orders");
    let fallback = || web::to(crate::api::fallback);
    cfg.service(
        web::resource(base.clone())
            .app_data(Kind::new(kind))
            .route(web::get().to(list))
            .route(web::post().to(publish))
            .route(web::put().to(unpublish))
            .default_service(fallback()),
    )
    .service(
        web::resource(format!("{base}/batch"))
            .app_data(Kind::new(kind))
            .route(web::post().to(publish_batch))
            .default_service(fallback()),
    )
    .service(
        web::resource(format!("{base}/{{hash}}/explain"))
            .app_data(Kind::new(kind))
            .route(web::get().to(crate::api::explain::explain_order))
            .default_service(fallback()),
    )
    .service(
        web::resource(format!("{base}/{{hash}}"))
            .app_data(Kind::new(kind))
            .route(web::get().to(get_one))
            .default_service(fallback()),
    );
}
