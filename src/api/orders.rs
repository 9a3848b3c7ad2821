//! The four order books, in iExec's market API dialect: list with filters and paging, one order by hash,
//! publish (one order, or a batch beyond the peer), unpublish (by hash, last, all).

use crate::api::auth::authenticated;
use crate::api::error::ApiError;
use crate::api::{check_chain, iso_time};
use crate::ids::OrderHash;
use crate::market::PublishError;
use crate::market::record::{OrderRecord, OrderStatus};
use crate::order::json::{parse_address, parse_bytes32};
use crate::order::{AnyOrder, OrderKind};
use crate::server::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Address;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// A published order as the market API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_hash: String,
    pub chain_id: u64,
    /// The signed order (uint256 fields as decimal strings: exact over their whole range).
    #[schema(value_type = Object)]
    pub order: Box<serde_json::value::RawValue>,
    /// Volume still available to match.
    pub remaining: u64,
    pub status: OrderStatus,
    /// ISO-8601, milliseconds, UTC.
    pub publication_timestamp: String,
    pub signer: String,
    /// Dataset orders only: whether the order is for bulk processing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bulk: Option<bool>,
}

/// iExec's "infinite" dataset volume (Number.MAX_SAFE_INTEGER), which marks a bulk dataset order.
const BULK_VOLUME: u64 = (1 << 53) - 1;

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
            bulk: (r.kind() == OrderKind::Dataset).then(|| r.volume() >= BULK_VOLUME),
        }
    }
}

pub fn view(r: &OrderRecord) -> Value {
    serde_json::to_value(OrderView::from(r)).unwrap_or(Value::Null)
}

/// Filters of the four listings (each listing takes those the peer gives it; the rest are ignored).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    pub chain_id: u64,
    /// An app address, or `any`.
    pub app: Option<String>,
    pub app_owner: Option<String>,
    pub dataset: Option<String>,
    pub dataset_owner: Option<String>,
    pub workerpool: Option<String>,
    pub workerpool_owner: Option<String>,
    pub requester: Option<String>,
    pub beneficiary: Option<String>,
    pub is_app_strict: Option<bool>,
    pub is_dataset_strict: Option<bool>,
    pub is_workerpool_strict: Option<bool>,
    pub is_requester_strict: Option<bool>,
    pub bulk_only: Option<bool>,
    pub category: Option<u64>,
    /// Orders whose tag has all these bits.
    pub min_tag: Option<String>,
    /// Orders whose tag has no bit outside these.
    pub max_tag: Option<String>,
    pub min_trust: Option<u64>,
    pub max_trust: Option<u64>,
    /// Least remaining volume.
    pub min_volume: Option<u64>,
    /// Beyond the peer: highest price (offers) in nRLC.
    pub max_price: Option<u64>,
    /// Beyond the peer: lowest workerpoolmaxprice (requests) in nRLC.
    pub min_price: Option<u64>,
    pub page_index: Option<usize>,
    /// 10..=1000, default 20.
    pub page_size: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderList {
    pub ok: bool,
    pub orders: Vec<OrderView>,
    /// Every order the filters admit, on all pages.
    pub count: usize,
    /// Present when this page came back full: the index of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page: Option<usize>,
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
    fn admits(self, restrict: Address) -> bool {
        match self {
            Restrict::PublicOnly => restrict == Address::ZERO,
            Restrict::Any => true,
            Restrict::To(a, strict) => restrict == a || (!strict && restrict == Address::ZERO),
        }
    }
}

fn address(field: &str, v: &str) -> Result<Address, ApiError> {
    parse_address(v).map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
}

/// An exact-match filter that also takes `any`.
fn equal_or_any(field: &str, v: &Option<String>) -> Result<Option<Address>, ApiError> {
    match v.as_deref() {
        None | Some("any") => Ok(None),
        Some(s) => address(field, s).map(Some),
    }
}

fn restrict(field: &str, v: &Option<String>, strict: Option<bool>) -> Result<Restrict, ApiError> {
    Ok(match v.as_deref() {
        None => Restrict::PublicOnly,
        Some("any") => Restrict::Any,
        Some(s) => Restrict::To(address(field, s)?, strict.unwrap_or(false)),
    })
}

fn tag(field: &str, v: &Option<String>) -> Result<Option<[u8; 32]>, ApiError> {
    v.as_deref()
        .map(|s| parse_bytes32(s).map(|b| b.0).map_err(|e| ApiError::BadRequest(format!("{field}: {e}"))))
        .transpose()
}

fn paging(q: &OrderQuery) -> Result<(usize, usize), ApiError> {
    let size = q.page_size.unwrap_or(20);
    if !(10..=1000).contains(&size) {
        return Err(ApiError::BadRequest("pageSize: must be between 10 and 1000".into()));
    }
    Ok((q.page_index.unwrap_or(0), size))
}

type Filter = Box<dyn Fn(&OrderRecord) -> bool + Send + Sync>;

/// The listing's filter for `kind`, and the asset whose index narrows the walk.
fn filter(kind: OrderKind, q: &OrderQuery) -> Result<(Option<Address>, Filter), ApiError> {
    let min_tag = tag("minTag", &q.min_tag)?;
    let max_tag = tag("maxTag", &q.max_tag)?;
    let (min_volume, max_price, min_price) = (q.min_volume, q.max_price, q.min_price);
    let common = move |r: &OrderRecord| {
        let t = r.tag();
        min_tag.is_none_or(|m| t.iter().zip(m).all(|(a, b)| a & b == b))
            && max_tag.is_none_or(|m| t.iter().zip(m).all(|(a, b)| a & !b == 0))
            && min_volume.is_none_or(|v| r.remaining >= v)
    };
    match kind {
        OrderKind::App | OrderKind::Dataset | OrderKind::Workerpool => {
            let (own, owner) = match kind {
                OrderKind::App => (equal_or_any("app", &q.app)?, equal_or_any("appOwner", &q.app_owner)?),
                OrderKind::Dataset => {
                    (equal_or_any("dataset", &q.dataset)?, equal_or_any("datasetOwner", &q.dataset_owner)?)
                }
                _ => {
                    (equal_or_any("workerpool", &q.workerpool)?, equal_or_any("workerpoolOwner", &q.workerpool_owner)?)
                }
            };
            let app = restrict("app", &q.app, q.is_app_strict)?;
            let dataset = restrict("dataset", &q.dataset, q.is_dataset_strict)?;
            let workerpool = restrict("workerpool", &q.workerpool, q.is_workerpool_strict)?;
            let requester = restrict("requester", &q.requester, q.is_requester_strict)?;
            let category = q.category;
            let min_trust = q.min_trust;
            let bulk_only = q.bulk_only.unwrap_or(false);
            let f = move |r: &OrderRecord| {
                let roles = r.roles();
                let restrictions = match kind {
                    OrderKind::App => dataset.admits(roles.dataset) && workerpool.admits(roles.workerpool),
                    OrderKind::Dataset => {
                        app.admits(roles.app)
                            && workerpool.admits(roles.workerpool)
                            && (!bulk_only || r.volume() >= BULK_VOLUME)
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
                    && max_price.is_none_or(|p| r.price() <= p)
                    && common(r)
            };
            Ok((own, Box::new(f)))
        }
        OrderKind::Request => {
            let app = equal_or_any("app", &q.app)?;
            let dataset = equal_or_any("dataset", &q.dataset)?;
            let requester = equal_or_any("requester", &q.requester)?;
            // iExec's SDK takes `beneficiary: 'any'` (addressOrAnySchema) and sends it as is.
            let beneficiary = equal_or_any("beneficiary", &q.beneficiary)?;
            let workerpool = restrict("workerpool", &q.workerpool, q.is_workerpool_strict)?;
            let (category, max_trust) = (q.category, q.max_trust);
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
                    && min_price.is_none_or(|p| r.price() >= p)
                    && common(r)
            };
            Ok((app, Box::new(f)))
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
    next_page: Option<usize>,
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

pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: OrderKind,
    q: OrderQuery,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let key = (kind, req.query_string().to_owned());
    // Read before querying, so the answer is at least as new as the version it is filed under.
    let version = state.market.book.version();
    if let Some(body) = state.queries.get(&key, version) {
        return Ok(HttpResponse::Ok().content_type("application/json").body(body));
    }
    match kind {
        OrderKind::App if q.app.is_none() && q.app_owner.is_none() => {
            return Err(ApiError::BadRequest("app or appOwner is required".into()));
        }
        OrderKind::Dataset if q.dataset.is_none() && q.dataset_owner.is_none() => {
            return Err(ApiError::BadRequest("dataset or datasetOwner is required".into()));
        }
        _ => {}
    }
    let (page_index, page_size) = paging(&q)?;
    let (asset, f) = filter(kind, &q)?;
    let page = state.market.book.query(kind, asset, f, page_index, page_size);
    let full = page.orders.len() == page_size && page.count > (page_index + 1) * page_size;
    let next_page = full.then_some(page_index + 1);
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ChainQuery {
    pub chain_id: u64,
}

pub async fn get_one(
    state: web::Data<AppState>,
    kind: OrderKind,
    hash: &str,
    q: ChainQuery,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let hash = OrderHash(parse_bytes32(hash).map_err(|e| ApiError::BadRequest(format!("orderHash: {e}")))?);
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
        Some(r) if r.kind() == kind => {
            let mut v = view(&r);
            v["ok"] = json!(true);
            Ok(HttpResponse::Ok().json(v))
        }
        _ => Err(ApiError::NotFound(format!("{kind}order"))),
    }
}

/// Body of a publication: the signed order (and, optionally, its hash, which must match).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishBody {
    #[schema(value_type = Object)]
    pub order: Box<serde_json::value::RawValue>,
    pub order_hash: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    pub ok: bool,
    pub published: OrderView,
}

fn parse_submission(
    kind: OrderKind,
    body: &PublishBody,
    config: &crate::market::MarketConfig,
) -> Result<(AnyOrder, Option<OrderHash>), PublishError> {
    let order = crate::market::publish::parse_order(kind, body.order.get(), config)?;
    let claimed = body
        .order_hash
        .as_deref()
        .map(|h| parse_bytes32(h).map(OrderHash).map_err(|e| PublishError::InvalidOrder(format!("orderHash: {e}"))))
        .transpose()?;
    Ok((order, claimed))
}

/// Checks then publishes orders of one signer; one answer per order, in order.
async fn publish_all(
    state: &AppState,
    kind: OrderKind,
    who: Address,
    bodies: Vec<PublishBody>,
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
        slots.into_iter().map(|s| s.unwrap_or(Err(PublishError::ShuttingDown))).collect::<Vec<_>>()
    };
    state.bg(run).await.ok_or(ApiError::Unavailable("shutting down"))
}

pub async fn publish(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: OrderKind,
    q: ChainQuery,
    body: PublishBody,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let who = authenticated(&state, &req).await?;
    state.rates.check_address(who, 1)?;
    let mut answers = publish_all(&state, kind, who, vec![body]).await?;
    let record = answers.pop().unwrap_or(Err(PublishError::ShuttingDown))?;
    Ok(HttpResponse::Created().json(Published { ok: true, published: OrderView::from(&*record) }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchBody {
    pub orders: Vec<PublishBody>,
}

#[derive(Debug, Serialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchAnswer {
    pub ok: bool,
    /// One answer per order, in the order sent.
    pub results: Vec<BatchItem>,
}

pub async fn publish_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: OrderKind,
    q: ChainQuery,
    body: BatchBody,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let n = body.orders.len();
    if n == 0 || n > state.limits.batch_orders {
        return Err(ApiError::BadRequest(format!(
            "orders: between 1 and {} orders per batch",
            state.limits.batch_orders
        )));
    }
    let who = authenticated(&state, &req).await?;
    state.rates.check_address(who, n as u32)?;
    let answers = publish_all(&state, kind, who, body.orders).await?;
    let results = answers
        .into_iter()
        .map(|a| match a {
            Ok(r) => BatchItem { ok: true, published: Some(OrderView::from(&*r)), error: None, code: None },
            Err(e) => {
                let code = e.code();
                let error = ApiError::Publish(e).to_string();
                BatchItem { ok: false, published: None, error: Some(error), code: Some(code) }
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(BatchAnswer { ok: true, results }))
}

/// Body of an unpublication.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnpublishBody {
    /// `unpublish_orderHash`, `unpublish_last` or `unpublish_all`.
    pub target: String,
    pub order_hash: Option<String>,
    pub app: Option<String>,
    pub dataset: Option<String>,
    pub workerpool: Option<String>,
    pub requester: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Unpublished {
    pub ok: bool,
    /// Hashes of the orders taken out of the book.
    pub unpublished: Vec<String>,
}

pub async fn unpublish(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: OrderKind,
    q: ChainQuery,
    body: UnpublishBody,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, q.chain_id)?;
    let who = authenticated(&state, &req).await?;
    state.rates.check_address(who, 1)?;
    let book = &state.market.book;
    let hashes: Vec<OrderHash> = match body.target.as_str() {
        "unpublish_orderHash" => {
            let h = body.order_hash.as_deref().ok_or_else(|| ApiError::BadRequest("orderHash is required".into()))?;
            let h = OrderHash(parse_bytes32(h).map_err(|e| ApiError::BadRequest(format!("orderHash: {e}")))?);
            match book.get(&h) {
                Some(r) if r.kind() == kind && r.signer == who => vec![h],
                Some(r) if r.kind() == kind => {
                    return Err(ApiError::Publish(PublishError::NotOwner { owner: r.signer, authenticated: who }));
                }
                _ => return Err(ApiError::Publish(PublishError::NotOpen(h))),
            }
        }
        target @ ("unpublish_last" | "unpublish_all") => {
            let (field, value) = match kind {
                OrderKind::App => ("app", &body.app),
                OrderKind::Dataset => ("dataset", &body.dataset),
                OrderKind::Workerpool => ("workerpool", &body.workerpool),
                OrderKind::Request => ("requester", &body.requester),
            };
            let asset = match value.as_deref() {
                Some(v) => address(field, v)?,
                None if kind == OrderKind::Request => who,
                None => return Err(ApiError::BadRequest(format!("{field} is required"))),
            };
            let mine =
                |r: &OrderRecord| r.signer == who && (kind != OrderKind::Request || r.roles().requester == asset);
            let index = (kind != OrderKind::Request).then_some(asset);
            let mut all = book.query(kind, index, mine, 0, usize::MAX).orders;
            // As iexec-market-api: nothing to unpublish is an error, which iExec's SDK shows as such (its
            // `unpublishLast*order` promises a hash, and would otherwise return undefined).
            if all.is_empty() {
                return Err(ApiError::NotFound(format!(
                    "open {kind}order published by signer {who} for {field} {asset}"
                )));
            }
            all.sort_by_key(|r| std::cmp::Reverse(r.seq));
            if target == "unpublish_last" {
                all.truncate(1);
            }
            all.iter().map(|r| r.hash).collect()
        }
        other => return Err(ApiError::BadRequest(format!("target: unknown `{other}`"))),
    };
    let market = state.market.clone();
    let asked = hashes.clone();
    let closed = state.on_main(async move { market.close(hashes, OrderStatus::Canceled).await }).await?;
    // The store answers in table order: answer in the order asked (newest first), as iexec-market-api does and
    // as the SDK's `unpublishAll*orders` hands the list to its caller.
    let closed: std::collections::HashSet<OrderHash> = closed.into_iter().collect();
    let unpublished = asked.iter().filter(|h| closed.contains(h)).map(ToString::to_string).collect();
    Ok(HttpResponse::Ok().json(Unpublished { ok: true, unpublished }))
}

/// Registers the routes of one kind: `/{kind}orders`, `/{kind}orders/batch`, `/{kind}orders/{hash}`.
pub fn routes(cfg: &mut web::ServiceConfig, kind: OrderKind) {
    let base = format!("/{kind}orders");
    cfg.service(
        web::resource(base.clone())
            .route(web::get().to(move |s: web::Data<AppState>, r: HttpRequest, q: web::Query<OrderQuery>| {
                list(s, r, kind, q.into_inner())
            }))
            .route(web::post().to(
                move |s: web::Data<AppState>, r: HttpRequest, q: web::Query<ChainQuery>, b: web::Json<PublishBody>| {
                    publish(s, r, kind, q.into_inner(), b.into_inner())
                },
            ))
            .route(web::put().to(
                move |s: web::Data<AppState>,
                      r: HttpRequest,
                      q: web::Query<ChainQuery>,
                      b: web::Json<UnpublishBody>| {
                    unpublish(s, r, kind, q.into_inner(), b.into_inner())
                },
            )),
    )
    .service(web::resource(format!("{base}/batch")).route(web::post().to(
        move |s: web::Data<AppState>, r: HttpRequest, q: web::Query<ChainQuery>, b: web::Json<BatchBody>| {
            publish_batch(s, r, kind, q.into_inner(), b.into_inner())
        },
    )))
    .service(web::resource(format!("{base}/{{hash}}")).route(web::get().to(
        move |s: web::Data<AppState>, p: web::Path<String>, q: web::Query<ChainQuery>| async move {
            get_one(s, kind, &p, q.into_inner()).await
        },
    )));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::record::raw_json;
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
        let view = crate::market::convert::engine_order(&order, hash, U256::from(3)).expect("small values");
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
