//! The four order books, in iExec's market API dialect: list with filters and paging, one order by hash,
//! publish (one order, or a batch beyond the peer), unpublish (by hash, last, all).
//!
//! Writes authenticate before they read their body, in the peer's order of checks: `chainId` (400), then the
//! `authorization` header (403), then the body (400), then the publication rules (403).

use crate::api::auth::authenticated;
use crate::api::error::ApiError;
use crate::api::validate::{self, AddressOrAny, Param, Params, Query};
use crate::api::{check_chain, read_json_object};
use crate::ids::OrderHash;
use crate::market::{MarketError, PublishError};
use crate::order::record::{MAX_SAFE, OrderRecord, OrderStatus};
use crate::order::{AnyOrder, OrderKind};
use crate::server::AppState;
use crate::wire::iso_time;
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Address;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::Arc;

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
}

/// iExec's "infinite" dataset volume (Number.MAX_SAFE_INTEGER); one less is accepted too, as the peer does for
/// orders signed before it settled on that value.
const BULK_VOLUME: u64 = MAX_SAFE - 1;

fn is_bulk(r: &OrderRecord) -> bool {
    r.volume() >= BULK_VOLUME && r.price() == 0
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
        }
    }
}

pub fn view(r: &OrderRecord) -> Value {
    serde_json::to_value(OrderView::from(r)).unwrap_or(Value::Null)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    pub ok: bool,
    pub orders: Vec<OrderView>,
    /// Every order the filters admit, on all pages.
    pub count: usize,
    /// Present when this page came back full: the offset of the next page (the peer's legacy `page`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<u64>,
}

/// The query parameters each listing reads, in the peer's order of declaration (which sets the order in which
/// they are checked, see [`validate`]). Dragon's own filters come first.
pub fn spec(kind: OrderKind) -> Vec<(&'static str, Param)> {
    use Param::*;
    let int = Int(0, MAX_SAFE);
    let mut v: Vec<(&'static str, Param)> = match kind {
        OrderKind::App => vec![
            ("maxPrice", int),
            ("app", AddressOrAnyUnless("appOwner", "app or appOwner is required")),
            ("appOwner", Address),
            ("dataset", AddressOrAny),
            ("isDatasetStrict", Bool),
            ("workerpool", AddressOrAny),
            ("isWorkerpoolStrict", Bool),
            ("requester", AddressOrAny),
            ("isRequesterStrict", Bool),
            ("minTag", Bytes32),
            ("maxTag", Bytes32),
            ("minVolume", Int(1, MAX_SAFE)),
        ],
        OrderKind::Dataset => vec![
            ("maxPrice", int),
            ("dataset", AddressOrAnyUnless("datasetOwner", "dataset or datasetOwner is required")),
            ("datasetOwner", Address),
            ("app", AddressOrAny),
            ("isAppStrict", Bool),
            ("workerpool", AddressOrAny),
            ("isWorkerpoolStrict", Bool),
            ("requester", AddressOrAny),
            ("isRequesterStrict", Bool),
            ("minTag", Bytes32),
            ("maxTag", Bytes32),
            ("minVolume", Int(1, MAX_SAFE)),
            ("bulkOnly", Bool),
        ],
        OrderKind::Workerpool => vec![
            ("maxPrice", int),
            ("workerpool", AddressOrAny),
            ("workerpoolOwner", Address),
            ("app", AddressOrAny),
            ("isAppStrict", Bool),
            ("dataset", AddressOrAny),
            ("isDatasetStrict", Bool),
            ("requester", AddressOrAny),
            ("isRequesterStrict", Bool),
            ("category", int),
            ("minTag", Bytes32),
            ("maxTag", Bytes32),
            ("minVolume", Int(1, MAX_SAFE)),
            ("minTrust", int),
        ],
        OrderKind::Request => vec![
            ("minPrice", int),
            ("app", AddressOrAny),
            ("dataset", AddressOrAny),
            ("requester", AddressOrAny),
            ("beneficiary", AddressOrAny),
            ("category", int),
            ("minTag", Bytes32),
            ("maxTag", Bytes32),
            ("maxTrust", int),
            ("minVolume", Int(1, MAX_SAFE)),
            ("workerpool", AddressOrAny),
            ("isWorkerpoolStrict", Bool),
        ],
    };
    v.extend(validate::PAGING);
    v
}

/// The parameters a listing requires (besides chainId): none, as the document can say it; `app` or `appOwner`
/// (and `dataset` or `datasetOwner`) is a rule between two parameters, checked by [`validate::params`].
pub fn required(_kind: OrderKind) -> &'static [&'static str] {
    &[]
}

/// A restriction filter: absent = public orders only; `any` = no filter; an address = public or that address
/// (exactly that address when strict).
#[derive(Debug, Clone, Copy)]
enum Restrict {
    PublicOnly,
    Any,
    To(Address, bool),
}

impl Restrict {
    fn of(p: &Params, name: &str, strict: &str) -> Restrict {
        match p.address_or_any(name) {
            None => Restrict::PublicOnly,
            Some(AddressOrAny::Any) => Restrict::Any,
            Some(AddressOrAny::Address(a)) => Restrict::To(a, p.bool(strict).unwrap_or(false)),
        }
    }

    fn admits(self, restrict: Address) -> bool {
        match self {
            Restrict::PublicOnly => restrict == Address::ZERO,
            Restrict::Any => true,
            Restrict::To(a, strict) => restrict == a || (!strict && restrict == Address::ZERO),
        }
    }
}

/// An exact-match filter that also takes `any` (= no filter).
fn exact(p: &Params, name: &str) -> Option<Address> {
    match p.address_or_any(name) {
        Some(AddressOrAny::Address(a)) => Some(a),
        _ => None,
    }
}

type Filter = Box<dyn Fn(&OrderRecord) -> bool + Send + Sync>;

/// The listing's filter for `kind`, and the asset whose index narrows the walk.
fn filter(kind: OrderKind, p: &Params) -> (Option<Address>, Filter) {
    // The zero tag as minTag asks for nothing (the peer ignores it).
    let min_tag = p.bytes32("minTag").map(|t| t.0);
    let max_tag = p.bytes32("maxTag").map(|t| t.0);
    let min_volume = p.int("minVolume");
    let common = move |r: &OrderRecord| {
        let t = r.tag();
        min_tag.is_none_or(|m| t.iter().zip(m).all(|(a, b)| a & b == b))
            && max_tag.is_none_or(|m| t.iter().zip(m).all(|(a, b)| a & !b == 0))
            && min_volume.is_none_or(|v| r.remaining >= v)
    };
    let category = p.int("category");
    match kind {
        OrderKind::App | OrderKind::Dataset | OrderKind::Workerpool => {
            let (own, owner) = match kind {
                OrderKind::App => (exact(p, "app"), p.address("appOwner")),
                OrderKind::Dataset => (exact(p, "dataset"), p.address("datasetOwner")),
                _ => (exact(p, "workerpool"), p.address("workerpoolOwner")),
            };
            let app = Restrict::of(p, "app", "isAppStrict");
            let dataset = Restrict::of(p, "dataset", "isDatasetStrict");
            let workerpool = Restrict::of(p, "workerpool", "isWorkerpoolStrict");
            let requester = Restrict::of(p, "requester", "isRequesterStrict");
            // The peer applies minTrust only above 1 (trust 0 and 1 mean the same to PoCo).
            let min_trust = p.int("minTrust").filter(|t| *t > 1);
            let bulk_only = p.bool("bulkOnly").unwrap_or(false);
            let max_price = p.int("maxPrice");
            let f = move |r: &OrderRecord| {
                let roles = r.roles();
                let restrictions = match kind {
                    OrderKind::App => dataset.admits(roles.dataset) && workerpool.admits(roles.workerpool),
                    OrderKind::Dataset => {
                        app.admits(roles.app) && workerpool.admits(roles.workerpool) && (!bulk_only || is_bulk(r))
                    }
                    _ => {
                        app.admits(roles.app)
                            && dataset.admits(roles.dataset)
                            && category.is_none_or(|c| r.category() == Some(c))
                            && min_trust.is_none_or(|t| match r.view {
                                dragon_matching::Order::Workerpool(o) => o.trust >= t,
                                _ => false,
                            })
                    }
                };
                restrictions
                    && requester.admits(roles.requester)
                    && owner.is_none_or(|o| r.signer == o)
                    && max_price.is_none_or(|m| r.price() <= m)
                    && common(r)
            };
            (own, Box::new(f))
        }
        OrderKind::Request => {
            let app = exact(p, "app");
            let dataset = exact(p, "dataset");
            let requester = exact(p, "requester");
            let beneficiary = exact(p, "beneficiary");
            // The request's own `workerpool` field, as a restriction: omitted = requests for any pool only.
            let workerpool = Restrict::of(p, "workerpool", "isWorkerpoolStrict");
            let max_trust = p.int("maxTrust");
            let min_price = p.int("minPrice");
            let f = move |r: &OrderRecord| {
                let roles = r.roles();
                dataset.is_none_or(|d| roles.dataset == d)
                    && requester.is_none_or(|a| roles.requester == a)
                    && beneficiary.is_none_or(|b| roles.beneficiary == b)
                    && workerpool.admits(roles.workerpool)
                    && category.is_none_or(|c| r.category() == Some(c))
                    && max_trust.is_none_or(|t| match r.view {
                        dragon_matching::Order::Request(o) => o.trust <= t,
                        _ => false,
                    })
                    && min_price.is_none_or(|m| r.price() >= m)
                    && common(r)
            };
            (app, Box::new(f))
        }
    }
}

/// Listings already answered, by query string, with the book version they were computed at: the same query
/// between two changes of the book gets the same bytes without walking the book again.
///
/// Bounded by bytes, not entries: a stranger chooses both the query strings and (through what he publishes) the
/// size of the pages, so only the bytes held say what the cache costs.
#[derive(Debug, Default)]
pub struct QueryCache {
    map: dashmap::DashMap<(OrderKind, String), (u64, bytes::Bytes)>,
    /// Bytes held: keys and bodies. Each insert adds its size before it is visible and each removal subtracts
    /// the size of what it removed, so the count never drifts from the map's content.
    bytes: std::sync::atomic::AtomicUsize,
}

impl QueryCache {
    /// Bytes held at most; past that the cache starts over (queries are cheap to recompute).
    pub const MAX_BYTES: usize = 64 << 20;
    /// Largest answer kept: bigger pages are streamed and never cached.
    pub const MAX_ENTRY: usize = 256 << 10;

    fn get(&self, key: &(OrderKind, String), version: u64) -> Option<bytes::Bytes> {
        self.map.get(key).filter(|e| e.0 == version).map(|e| e.1.clone())
    }

    fn put(&self, key: (OrderKind, String), version: u64, body: bytes::Bytes) {
        use std::sync::atomic::Ordering::Relaxed;
        let size = key.1.len() + body.len();
        if size > Self::MAX_ENTRY {
            return;
        }
        if self.bytes.load(Relaxed) + size > Self::MAX_BYTES {
            self.map.retain(|k, v| {
                self.bytes.fetch_sub(k.1.len() + v.1.len(), Relaxed);
                false
            });
        }
        self.bytes.fetch_add(size, Relaxed);
        if let Some((k, old)) = self.map.insert(key.clone(), (version, body)).map(|old| (key, old)) {
            self.bytes.fetch_sub(k.1.len() + old.1.len(), Relaxed);
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Orders serialized per chunk of a streamed page.
const CHUNK_ORDERS: usize = 16;

/// A page's JSON as a stream of small chunks, so that a page of large orders never sits whole in memory: the
/// orders are shared with the book (`Arc`), and each chunk is serialized as the client reads.
fn stream_page(
    orders: Vec<Arc<OrderRecord>>,
    count: usize,
    next_page: Option<u64>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, ApiError>> {
    let head = futures_util::stream::once(async { Ok(bytes::Bytes::from_static(br#"{"ok":true,"orders":["#)) });
    let chunks = futures_util::stream::iter((0..orders.len()).step_by(CHUNK_ORDERS)).map(move |start| {
        let mut buf = Vec::new();
        for (i, r) in orders[start..(start + CHUNK_ORDERS).min(orders.len())].iter().enumerate() {
            if start + i > 0 {
                buf.push(b',');
            }
            serde_json::to_writer(&mut buf, &OrderView::from(&**r)).map_err(|e| ApiError::Internal(e.into()))?;
        }
        Ok(bytes::Bytes::from(buf))
    });
    let tail = match next_page {
        Some(n) => format!(r#"],"count":{count},"nextPage":{n}}}"#),
        None => format!(r#"],"count":{count}}}"#),
    };
    let tail = futures_util::stream::once(async move { Ok(bytes::Bytes::from(tail)) });
    head.chain(chunks).chain(tail)
}

pub async fn list(state: web::Data<AppState>, req: HttpRequest, kind: OrderKind) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    // chainId is declared first, so yup checks it last.
    let p = validate::params(&q, &spec(kind), &[]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
    let key = (kind, req.query_string().to_owned());
    // Read before querying, so the answer is at least as new as the version it is filed under.
    let version = state.market.book.version();
    if let Some(body) = state.queries.get(&key, version) {
        return Ok(HttpResponse::Ok().content_type("application/json").body(body));
    }
    let (skip, limit) = validate::paging(&p);
    let (asset, f) = filter(kind, &p);
    let skip_usize = usize::try_from(skip).unwrap_or(usize::MAX);
    let page = state.market.book.query(kind, asset, f, skip_usize, limit as usize);
    let next_page = validate::next_page(skip, limit, page.orders.len());
    // What the record adds around its order's JSON (hash, signer, timestamp, field names): generous.
    const RECORD_OVERHEAD: usize = 320;
    let estimate: usize = page.orders.iter().map(|r| r.json.get().len() + RECORD_OVERHEAD).sum();
    if estimate > QueryCache::MAX_ENTRY {
        return Ok(HttpResponse::Ok().content_type("application/json").streaming(stream_page(
            page.orders,
            page.count,
            next_page,
        )));
    }
    let list = OrderList {
        ok: true,
        orders: page.orders.iter().map(|r| OrderView::from(&**r)).collect(),
        count: page.count,
        next_page,
    };
    let body = bytes::Bytes::from(serde_json::to_vec(&list).map_err(|e| ApiError::Internal(e.into()))?);
    state.queries.put(key, version, body.clone());
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

/// One order as the peer answers it by hash: the record's fields beside `ok`, with `chainId` as the query gave
/// it (a string), in any status.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OneOrder {
    pub ok: bool,
    pub order_hash: String,
    /// As the query gave it.
    pub chain_id: String,
    pub order: Box<RawValue>,
    pub remaining: u64,
    pub status: OrderStatus,
    pub publication_timestamp: String,
    pub signer: String,
}

pub async fn get_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: OrderKind,
    hash: &str,
) -> Result<HttpResponse, ApiError> {
    let q = Query::parse(req.query_string());
    let chain_id = check_chain(&state, &q)?;
    let text = validate::Input::Text(hash.into());
    let hash =
        OrderHash(validate::bytes32("orderHash", &text, true).map_err(ApiError::BadRequest)?.unwrap_or_default());
    let found = match state.market.book.get(&hash) {
        Some(r) => Some(r),
        None => {
            let store = state.store.clone();
            state
                .on_main(async move {
                    let c = store.client().await?;
                    crate::store::orders::get(&**c, &hash).await
                })
                .await?
                .map(Arc::new)
        }
    };
    match found {
        Some(r) if r.kind() == kind => Ok(HttpResponse::Ok().json(OneOrder {
            ok: true,
            order_hash: r.hash.to_string(),
            chain_id,
            order: r.json.clone(),
            remaining: r.remaining,
            status: r.status,
            publication_timestamp: iso_time(r.published_ms),
            signer: r.signer.to_checksum(None),
        })),
        _ => Err(ApiError::NotFound(format!("{kind}order"))),
    }
}

#[derive(Debug, Serialize)]
pub struct Published {
    pub ok: bool,
    pub published: OrderView,
}

/// Reads one submission (`{order, orderHash?}`) as the peer validates it, within the size bounds of the market:
/// the order's text is measured before it is read, so an oversized document costs no more than its bytes.
fn parse_submission(
    kind: OrderKind,
    body: &BTreeMap<String, Box<RawValue>>,
    config: &crate::market::MarketConfig,
) -> Result<(AnyOrder, Option<OrderHash>), PublishError> {
    if let Some(raw) = body.get("order")
        && raw.get().len() > config.max_order_bytes
    {
        return Err(PublishError::OrderTooLarge { size: raw.get().len(), limit: config.max_order_bytes });
    }
    let order = validate::signed_order(kind, body.get("order").map(AsRef::as_ref), "order")
        .map_err(PublishError::InvalidOrder)?;
    if let AnyOrder::Request(r) = &order
        && r.params.len() > config.max_params_bytes
    {
        return Err(PublishError::ParamsTooLarge { size: r.params.len(), limit: config.max_params_bytes });
    }
    let claimed =
        validate::bytes32("orderHash", &validate::Input::json(body.get("orderHash").map(AsRef::as_ref)), false)
            .map_err(PublishError::InvalidOrder)?
            .map(OrderHash);
    Ok((order, claimed))
}

/// Checks then publishes orders of one signer; one answer per order, in order.
async fn publish_all(
    state: &AppState,
    kind: OrderKind,
    who: Address,
    bodies: Vec<BTreeMap<String, Box<RawValue>>>,
) -> Result<Vec<Result<Arc<OrderRecord>, PublishError>>, ApiError> {
    let market = state.market.clone();
    let run = async move {
        let checks = bodies.iter().map(|b| {
            let market = market.clone();
            async move {
                let (order, claimed) = parse_submission(kind, b, &market.config)?;
                market.check(order, claimed, who).await
            }
        });
        // Chain reads and signature checks of a batch run concurrently (bounded by the futures themselves).
        let checked: Vec<Result<OrderRecord, PublishError>> = futures_util::future::join_all(checks).await;
        let mut slots: Vec<Option<Result<Arc<OrderRecord>, PublishError>>> = Vec::with_capacity(checked.len());
        let mut records = Vec::new();
        let mut positions = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Ok(r) if !seen.insert(r.hash) => slots.push(Some(Err(PublishError::Duplicate(r.hash)))),
                Ok(r) => {
                    positions.push(i);
                    records.push(r);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Err(e))),
            }
        }
        if !records.is_empty() {
            for (pos, res) in positions.into_iter().zip(market.publish(records).await) {
                slots[pos] = Some(res);
            }
        }
        slots.into_iter().map(|s| s.unwrap_or(Err(MarketError::ShuttingDown.into()))).collect::<Vec<_>>()
    };
    state.bg(run).await.ok_or(ApiError::Unavailable("shutting down"))
}

/// `chainId`, then the authorization header, then the per-address rate; the body is read only after.
async fn authorize(state: &AppState, req: &HttpRequest, orders: u32) -> Result<Address, ApiError> {
    check_chain(state, &Query::parse(req.query_string()))?;
    let who = authenticated(state, req).await?;
    state.rates.check_address(who, orders)?;
    Ok(who)
}

pub async fn publish(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    kind: OrderKind,
) -> Result<HttpResponse, ApiError> {
    let who = authorize(&state, &req, 1).await?;
    let body = read_json_object(payload, state.limits.body_bytes).await?;
    let mut answers = publish_all(&state, kind, who, vec![body]).await?;
    let record = answers.pop().unwrap_or(Err(MarketError::ShuttingDown.into()))?;
    Ok(HttpResponse::Ok().json(Published { ok: true, published: OrderView::from(&*record) }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<OrderView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct BatchAnswer {
    pub ok: bool,
    /// One answer per order, in the order sent.
    pub results: Vec<BatchItem>,
}

/// Beyond the peer: up to `batch_orders` publications in one request, one answer per order. The rate per
/// address counts every order, so it is checked once the body says how many there are.
pub async fn publish_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    kind: OrderKind,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, &Query::parse(req.query_string()))?;
    let who = authenticated(&state, &req).await?;
    let body = read_json_object(payload, state.limits.body_bytes).await?;
    let orders: Vec<BTreeMap<String, Box<RawValue>>> = match body.get("orders") {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| ApiError::BadRequest("orders must be an array of objects {order, orderHash?}".into()))?,
        None => return Err(ApiError::BadRequest("orders is a required field".into())),
    };
    let n = orders.len();
    if n == 0 || n > state.limits.batch_orders {
        return Err(ApiError::BadRequest(format!(
            "orders: between 1 and {} orders per batch",
            state.limits.batch_orders
        )));
    }
    state.rates.check_address(who, n as u32)?;
    let answers = publish_all(&state, kind, who, orders).await?;
    let results = answers
        .into_iter()
        .map(|a| match a {
            Ok(r) => BatchItem { ok: true, published: Some(OrderView::from(&*r)), error: None, code: None },
            Err(e) => {
                let e = ApiError::from(e);
                let (code, error) = (e.code(), e.to_string());
                BatchItem { ok: false, published: None, error: Some(error), code: Some(code) }
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(BatchAnswer { ok: true, results }))
}

#[derive(Debug, Serialize)]
pub struct Unpublished {
    pub ok: bool,
    /// Hashes of the orders taken out of the book, newest first.
    pub unpublished: Vec<String>,
}

const TARGETS: [&str; 3] = ["unpublish_orderHash", "unpublish_last", "unpublish_all"];

/// The resource field of each kind's unpublication (`app`, ..., a request's `requester`).
pub fn resource_field(kind: OrderKind) -> &'static str {
    match kind {
        OrderKind::App => "app",
        OrderKind::Dataset => "dataset",
        OrderKind::Workerpool => "workerpool",
        OrderKind::Request => "requester",
    }
}

/// What to unpublish, validated as the peer validates it (`target`, then the resource, then `orderHash`).
enum Target {
    Hash(OrderHash),
    Last(Address),
    All(Address),
}

fn unpublish_target(kind: OrderKind, body: &BTreeMap<String, Box<RawValue>>) -> Result<Target, String> {
    let field = |name: &str| validate::Input::json(body.get(name).map(AsRef::as_ref));
    let target = validate::string("target", &field("target"), false)?.unwrap_or_else(|| TARGETS[0].to_owned());
    validate::one_of("target", &target, &TARGETS)?;
    let by_resource = target != TARGETS[0];
    let name = resource_field(kind);
    let resource = validate::address(name, &field(name), by_resource)?;
    let hash = validate::bytes32("orderHash", &field("orderHash"), !by_resource)?;
    Ok(match (target.as_str(), resource, hash) {
        ("unpublish_last", Some(a), _) => Target::Last(a),
        ("unpublish_all", Some(a), _) => Target::All(a),
        (_, _, Some(h)) => Target::Hash(OrderHash(h)),
        _ => return Err(format!("{name} is a required field")),
    })
}

pub async fn unpublish(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    kind: OrderKind,
) -> Result<HttpResponse, ApiError> {
    let who = authorize(&state, &req, 1).await?;
    let body = read_json_object(payload, state.limits.body_bytes).await?;
    let target = unpublish_target(kind, &body).map_err(ApiError::BadRequest)?;
    let book = &state.market.book;
    let hashes: Vec<OrderHash> = match target {
        Target::Hash(h) => match book.get(&h) {
            Some(r) if r.kind() == kind && r.signer == who => vec![h],
            Some(r) if r.kind() == kind => return Err(PublishError::NotSigner { signer: r.signer }.into()),
            _ => return Err(PublishError::NotPublished { kind, hash: h }.into()),
        },
        Target::Last(resource) | Target::All(resource) => {
            let last = matches!(target, Target::Last(_));
            let mine = |r: &OrderRecord| {
                r.signer == who
                    && match &r.order {
                        AnyOrder::Request(o) => o.requester == resource,
                        _ => r.asset() == resource,
                    }
            };
            let index = (kind != OrderKind::Request).then_some(resource);
            let mut all = book.query(kind, index, mine, 0, usize::MAX).orders;
            if all.is_empty() {
                let field = resource_field(kind);
                return Err(PublishError::NothingToUnpublish { kind, signer: who, field, address: resource }.into());
            }
            // Newest first, as the peer answers (and as iExec's SDK hands the list to its caller).
            all.sort_by_key(|r| std::cmp::Reverse((r.published_ms, r.seq)));
            if last {
                all.truncate(1);
            }
            all.iter().map(|r| r.hash).collect()
        }
    };
    let market = state.market.clone();
    let asked = hashes.clone();
    let removed = state.on_main(async move { market.unpublish(hashes).await }).await?;
    let removed: std::collections::HashSet<OrderHash> = removed.into_iter().collect();
    let unpublished = asked.iter().filter(|h| removed.contains(h)).map(ToString::to_string).collect();
    Ok(HttpResponse::Ok().json(Unpublished { ok: true, unpublished }))
}

/// Registers the routes of one kind: `/{kind}orders`, `/{kind}orders/batch`, `/{kind}orders/{hash}`; any
/// other method on them is a 405.
pub fn routes(cfg: &mut web::ServiceConfig, kind: OrderKind) {
    let base = format!("/{kind}orders");
    cfg.service(
        web::resource(base.clone())
            .route(web::get().to(move |s: web::Data<AppState>, r: HttpRequest| list(s, r, kind)))
            .route(
                web::post().to(move |s: web::Data<AppState>, r: HttpRequest, p: web::Payload| publish(s, r, p, kind)),
            )
            .route(
                web::put().to(move |s: web::Data<AppState>, r: HttpRequest, p: web::Payload| unpublish(s, r, p, kind)),
            )
            .default_service(web::to(crate::api::fallback)),
    )
    .service(
        web::resource(format!("{base}/batch"))
            .route(
                web::post()
                    .to(move |s: web::Data<AppState>, r: HttpRequest, p: web::Payload| publish_batch(s, r, p, kind)),
            )
            .default_service(web::to(crate::api::fallback)),
    )
    .service(
        web::resource(format!("{base}/{{hash}}"))
            .route(web::get().to(move |s: web::Data<AppState>, r: HttpRequest, p: web::Path<String>| async move {
                get_one(s, r, kind, &p).await
            }))
            .default_service(web::to(crate::api::fallback)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::record::raw_json;
    use crate::order::{AppOrder, Domain};
    use alloy::primitives::{B256, U256};

    fn record(salt: u8) -> Arc<OrderRecord> {
        let order = AnyOrder::App(AppOrder {
            app: Address::repeat_byte(1),
            appprice: crate::money::Nrlc(U256::from(5)),
            volume: U256::from(3),
            tag: B256::ZERO,
            datasetrestrict: Address::ZERO,
            workerpoolrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: B256::repeat_byte(salt),
            sign: None,
        });
        let hash = order.order_hash(&Domain::new(U256::from(1), Address::ZERO));
        let view = crate::order::convert::engine_order(&order, hash, U256::from(3)).expect("small values");
        Arc::new(OrderRecord {
            seq: u64::from(salt),
            hash,
            chain_id: 1,
            json: raw_json(&order),
            order,
            signer: Address::repeat_byte(2),
            remaining: 3,
            status: OrderStatus::Open,
            published_ms: 1_700_000_000_000,
            view,
        })
    }

    #[tokio::test]
    async fn a_streamed_page_is_the_same_json_as_a_built_one() {
        for n in [0usize, 1, CHUNK_ORDERS, CHUNK_ORDERS + 1, 3 * CHUNK_ORDERS + 5] {
            let orders: Vec<_> = (0..n).map(|i| record(i as u8)).collect();
            for next_page in [None, Some(4)] {
                let built = OrderList {
                    ok: true,
                    orders: orders.iter().map(|r| OrderView::from(&**r)).collect(),
                    count: 99,
                    next_page,
                };
                let chunks: Vec<_> = stream_page(orders.clone(), 99, next_page).collect().await;
                let streamed: Vec<u8> =
                    chunks.into_iter().flat_map(|c| c.expect("chunk").to_vec()).collect::<Vec<u8>>();
                let a: Value = serde_json::from_slice(&streamed).expect("streamed page is JSON");
                assert_eq!(a, serde_json::to_value(&built).expect("json"), "{n} orders");
            }
        }
    }

    #[test]
    fn the_query_cache_is_bounded_by_bytes() {
        let cache = QueryCache::default();
        let body = bytes::Bytes::from(vec![b'x'; 100 << 10]);
        for i in 0..2_000 {
            cache.put((OrderKind::App, format!("q={i}")), 1, body.clone());
            assert!(cache.bytes() <= QueryCache::MAX_BYTES, "{} bytes after {i} puts", cache.bytes());
        }
        // The count is exact: what the map holds, keys included.
        let held: usize = cache.map.iter().map(|e| e.key().1.len() + e.value().1.len()).sum();
        assert_eq!(cache.bytes(), held);
        // Replacing an entry does not count it twice; an answer past the entry bound is not kept.
        cache.put((OrderKind::App, "q=1999".into()), 2, body.clone());
        assert_eq!(cache.bytes(), cache.map.iter().map(|e| e.key().1.len() + e.value().1.len()).sum::<usize>());
        cache.put((OrderKind::App, "big".into()), 1, bytes::Bytes::from(vec![0; QueryCache::MAX_ENTRY + 1]));
        assert!(cache.get(&(OrderKind::App, "big".into()), 1).is_none());
    }
}
