//! Listing one kind's book with the peer's filters and paging, and one order by hash (from the book, or from
//! the store once it left the book).

use super::cache::QueryCache;
use super::is_bulk_brief;
use crate::api::check_chain;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, AddressOrAny, Param, Params, Query};
use crate::ids::OrderHash;
use crate::order::OrderKind;
use crate::order::record::{Brief, MAX_SAFE, OrderRecord, OrderStatus, Short};
use crate::wire::iso_time;
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Address;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;

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

    /// `short` is the order's restriction; `full` gives it whole (read only to confirm a prefix match).
    fn admits(self, short: Short, full: impl FnOnce() -> Address) -> bool {
        match self {
            Restrict::PublicOnly => short.is_zero(),
            Restrict::Any => true,
            Restrict::To(a, strict) => (!strict && short.is_zero()) || short.is(&a, full),
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

/// `minTag` (every bit of `m` set) or, with `within`, `maxTag` (no bit outside `m`), on the brief's low 8 bytes
/// when the order's and the filter's tags fit in them, else on the record's whole tag.
fn tag_check(b: &Brief, r: &OrderRecord, m: &[u8; 32], within: bool) -> bool {
    let low = |t: &[u8; 32]| u64::from_be_bytes(t[24..].try_into().unwrap_or_default());
    if !b.tag_high && m[..24].iter().all(|x| *x == 0) {
        let (t, m) = (b.tag_low, low(m));
        return if within { t & !m == 0 } else { t & m == m };
    }
    let t = r.tag();
    if within { t.iter().zip(m).all(|(a, b)| a & !b == 0) } else { t.iter().zip(m).all(|(a, b)| a & b == *b) }
}

type Filter = Box<dyn Fn(&Brief, &OrderRecord) -> bool + Send + Sync>;

/// The listing's filter for `kind`, and the asset whose index narrows the walk. It decides on the order's
/// [`Brief`] and reads the record only to confirm what the brief's short forms cannot tell.
fn filter(kind: OrderKind, p: &Params) -> (Option<Address>, Filter) {
    // The zero tag as minTag asks for nothing (the peer ignores it).
    let min_tag = p.bytes32("minTag").map(|t| t.0);
    let max_tag = p.bytes32("maxTag").map(|t| t.0);
    let min_volume = p.int("minVolume");
    let common = move |b: &Brief, r: &OrderRecord| {
        min_tag.is_none_or(|m| tag_check(b, r, &m, false))
            && max_tag.is_none_or(|m| tag_check(b, r, &m, true))
            && min_volume.is_none_or(|v| b.remaining >= v)
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
            let f = move |b: &Brief, r: &OrderRecord| {
                let roles = b.roles;
                let restrictions = match kind {
                    OrderKind::App => {
                        dataset.admits(roles.dataset, || r.roles().dataset)
                            && workerpool.admits(roles.workerpool, || r.roles().workerpool)
                    }
                    OrderKind::Dataset => {
                        app.admits(roles.app, || r.roles().app)
                            && workerpool.admits(roles.workerpool, || r.roles().workerpool)
                            && (!bulk_only || is_bulk_brief(b))
                    }
                    _ => {
                        app.admits(roles.app, || r.roles().app)
                            && dataset.admits(roles.dataset, || r.roles().dataset)
                            && category.is_none_or(|c| b.category == Some(c))
                            && min_trust
                                .is_none_or(|t| b.kind == OrderKind::Workerpool && b.trust.is_some_and(|x| x >= t))
                    }
                };
                restrictions
                    && requester.admits(roles.requester, || r.roles().requester)
                    && owner.is_none_or(|o| b.signer.is(&o, || r.signer))
                    && max_price.is_none_or(|m| b.price <= m)
                    && common(b, r)
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
            let f = move |b: &Brief, r: &OrderRecord| {
                let roles = b.roles;
                dataset.is_none_or(|d| roles.dataset.is(&d, || r.roles().dataset))
                    && requester.is_none_or(|a| roles.requester.is(&a, || r.roles().requester))
                    && beneficiary.is_none_or(|x| roles.beneficiary.is(&x, || r.roles().beneficiary))
                    && workerpool.admits(roles.workerpool, || r.roles().workerpool)
                    && category.is_none_or(|c| b.category == Some(c))
                    && max_trust.is_none_or(|t| b.kind == OrderKind::Request && b.trust.is_some_and(|x| x <= t))
                    && min_price.is_none_or(|m| b.price >= m)
                    && common(b, r)
            };
            (app, Box::new(f))
        }
    }
}

/// Beyond the peer: a workerpool order carries its workerpool's track record, as the book holds it (the last
/// figures chain sync derived; none seen yet is all zeros). Other kinds are left as the peer has them.
fn track_record(book: &crate::market::book::Book, r: &OrderRecord) -> Option<serde_json::Value> {
    (r.kind() == OrderKind::Workerpool).then(|| {
        let record = book.record(&r.roles().workerpool).unwrap_or_default();
        crate::api::pools::track_record_json(&record, false)
    })
}

/// The view a listing shows: what [`listed`] must equal, byte for byte.
#[cfg(test)]
fn with_record(book: &crate::market::book::Book, r: &OrderRecord) -> super::OrderView {
    super::OrderView { track_record: track_record(book, r), ..super::OrderView::from(r) }
}

/// An order's JSON in a listing: the record's shown JSON (made once), and for a workerpool order its pool's
/// current track record spliced in as the last member, where `OrderView` serialises it: the bytes of the view
/// with its record, without serialising the order again.
fn listed(book: &crate::market::book::Book, r: &OrderRecord) -> bytes::Bytes {
    let shown = super::shown(r);
    let Some(record) = track_record(book, r).filter(|_| shown.last() == Some(&b'}')) else { return shown };
    let record = serde_json::to_vec(&record).unwrap_or_default();
    let mut out = Vec::with_capacity(shown.len() + record.len() + 16);
    out.extend_from_slice(&shown[..shown.len() - 1]);
    out.extend_from_slice(br#","trackRecord":"#);
    out.extend_from_slice(&record);
    out.push(b'}');
    bytes::Bytes::from(out)
}

/// Orders serialized per chunk of a streamed page.
const CHUNK_ORDERS: usize = 16;

/// A page's JSON as a stream of small chunks, so that a page of large orders never sits whole in memory: the
/// orders are shared with the book (`Arc`), and each chunk is serialized as the client reads.
fn stream_page(
    book: Arc<crate::market::book::Book>,
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
            buf.extend_from_slice(&listed(&book, r));
        }
        Ok(bytes::Bytes::from(buf))
    });
    let tail = futures_util::stream::once(async move { Ok(bytes::Bytes::from(page_tail(count, next_page))) });
    head.chain(chunks).chain(tail)
}

fn page_tail(count: usize, next_page: Option<u64>) -> String {
    match next_page {
        Some(n) => format!(r#"],"count":{count},"nextPage":{n}}}"#),
        None => format!(r#"],"count":{count}}}"#),
    }
}

/// A page's JSON in one piece: the records' listing JSON (made once per record) between the page's head and
/// tail; the same bytes as [`OrderList`] serialised.
fn built_page(
    book: &crate::market::book::Book,
    orders: &[Arc<OrderRecord>],
    count: usize,
    next_page: Option<u64>,
) -> bytes::Bytes {
    const HEAD: &[u8] = br#"{"ok":true,"orders":["#;
    let shown: Vec<bytes::Bytes> = orders.iter().map(|r| listed(book, r)).collect();
    let mut buf = Vec::with_capacity(HEAD.len() + shown.iter().map(|s| s.len() + 1).sum::<usize>() + 48);
    buf.extend_from_slice(HEAD);
    for (i, s) in shown.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(s);
    }
    buf.extend_from_slice(page_tail(count, next_page).as_bytes());
    bytes::Bytes::from(buf)
}

pub async fn list(state: web::Data<AppState>, req: HttpRequest, kind: super::Kind) -> Result<HttpResponse, ApiError> {
    let kind = **kind;
    let key = (kind, req.query_string().to_owned());
    // Read before querying, so the answer is at least as new as the version it is filed under.
    let version = state.market.book.version();
    // Only answers to valid queries are filed, so the same query string is valid again: answered before parsing.
    if let Some(body) = state.queries.get(&key, version) {
        return Ok(HttpResponse::Ok().content_type("application/json").body(body));
    }
    let q = Query::parse(req.query_string());
    // chainId is declared first, so yup checks it last.
    let p = validate::params(&q, &spec(kind), &[]).map_err(ApiError::BadRequest)?;
    check_chain(&state, &q)?;
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
            state.market.book.clone(),
            page.orders,
            page.count,
            next_page,
        )));
    }
    let body = built_page(&state.market.book, &page.orders, page.count, next_page);
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
    /// Workerpool orders only, beyond the peer: the workerpool's track record, as in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_record: Option<serde_json::Value>,
}

/// A published order by hash: from the book while open, from the store once it left it.
pub async fn find(state: &AppState, hash: OrderHash) -> Result<Option<Arc<OrderRecord>>, ApiError> {
    if let Some(r) = state.market.book.get(&hash) {
        return Ok(Some(r));
    }
    let store = state.store.clone();
    Ok(state
        .on_main(async move {
            let c = store.client().await?;
            crate::store::orders::get(&**c, &hash).await
        })
        .await?
        .map(Arc::new))
}

pub async fn get_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: super::Kind,
    hash: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let kind = **kind;
    let q = Query::parse(req.query_string());
    let chain_id = check_chain(&state, &q)?;
    let text = validate::Input::Text(hash.as_str().into());
    let hash =
        OrderHash(validate::bytes32("orderHash", &text, true).map_err(ApiError::BadRequest)?.unwrap_or_default());
    match find(&state, hash).await? {
        Some(r) if r.kind() == kind => Ok(HttpResponse::Ok().json(OneOrder {
            ok: true,
            order_hash: r.hash.to_string(),
            chain_id,
            order: r.json.clone(),
            remaining: r.remaining,
            status: r.status,
            publication_timestamp: iso_time(r.published_ms),
            signer: r.signer.to_checksum(None),
            track_record: track_record(&state.market.book, &r),
        })),
        _ => Err(ApiError::NotFound(format!("{kind}order"))),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::api::orders::OrderView;
    use crate::market::book::Book;
    use crate::order::AnyOrder;
    use crate::order::record::raw_json;
    use crate::order::{AppOrder, Domain};
    use alloy::primitives::{B256, U256};
    use serde_json::Value;

    /// The page as a struct: what the bytes of [`built_page`] and [`stream_page`] must equal.
    #[derive(Debug, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct OrderList {
        ok: bool,
        orders: Vec<OrderView>,
        /// Every order the filters admit, on all pages.
        count: usize,
        /// Present when this page came back full: the offset of the next page (the peer's legacy `page`).
        #[serde(skip_serializing_if = "Option::is_none")]
        next_page: Option<u64>,
    }

    pub(in crate::api::orders) fn record(salt: u8) -> Arc<OrderRecord> {
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
            shown: Default::default(),
        })
    }

    /// Addresses that [`Short`] cannot tell apart by itself: two sharing their first 8 bytes, one with 8 zero
    /// leading bytes (not public), and the zero address.
    fn tricky_addresses() -> [Address; 5] {
        let mut a = [0x11u8; 20];
        let mut b = a;
        b[19] = 0x22;
        let mut c = [0u8; 20];
        c[19] = 1;
        a[8] = 0x33;
        [Address::ZERO, Address::from(a), Address::from(b), Address::from(c), Address::repeat_byte(0x44)]
    }

    fn tricky_tags() -> [B256; 5] {
        let mut high = [0u8; 32];
        high[0] = 0x80;
        let mut both = high;
        both[31] = 1;
        [B256::ZERO, B256::with_last_byte(1), B256::with_last_byte(3), B256::from(high), B256::from(both)]
    }

    fn record_of(order: AnyOrder, signer: Address) -> OrderRecord {
        let hash = order.order_hash(&Domain::new(U256::from(1), Address::ZERO));
        let view = crate::order::convert::engine_order(&order, hash, U256::from(3)).expect("small values");
        OrderRecord {
            seq: 1,
            hash,
            chain_id: 1,
            json: raw_json(&order),
            order,
            signer,
            remaining: 3,
            status: OrderStatus::Open,
            published_ms: 1_700_000_000_000,
            view,
            shown: Default::default(),
        }
    }

    /// A restriction query parameter: absent, `any`, or an address, strict or not.
    fn restrict_param(name: &str, strict: &str, choice: (u8, usize, bool)) -> String {
        let a = tricky_addresses()[choice.1 % 5];
        match choice.0 % 3 {
            0 => String::new(),
            1 => format!("&{name}=any"),
            _ => format!("&{name}={a:#x}&{strict}={}", choice.2),
        }
    }

    fn reference_restrict(q: &str, name: &str, strict: &str, restrict: Address) -> bool {
        let p: std::collections::HashMap<_, _> =
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        match p.get(name).map(String::as_str) {
            None => restrict.is_zero(),
            Some("any") => true,
            Some(a) => {
                let a: Address = a.parse().expect("address");
                restrict == a || (p.get(strict).map(String::as_str) != Some("true") && restrict.is_zero())
            }
        }
    }

    proptest::proptest! {
        /// The listing filter decides on the book's short forms (8-byte addresses, the tag's low bytes) and the
        /// record: it admits exactly the orders that a filter on the whole fields admits, also for addresses
        /// that share a prefix, one that looks public by its prefix, and tags beyond the low bytes.
        #[test]
        fn the_short_filter_admits_what_the_whole_fields_admit(
            roles in proptest::array::uniform4(0usize..5),
            tag in 0usize..5,
            dataset in (0u8..3, 0usize..5, proptest::bool::ANY),
            workerpool in (0u8..3, 0usize..5, proptest::bool::ANY),
            requester in (0u8..3, 0usize..5, proptest::bool::ANY),
            owner in proptest::option::of(0usize..5),
            min_tag in proptest::option::of(0usize..5),
            max_tag in proptest::option::of(0usize..5),
        ) {
            let addrs = tricky_addresses();
            let tags = tricky_tags();
            let order = AnyOrder::App(AppOrder {
                app: Address::repeat_byte(1),
                appprice: crate::money::Nrlc(U256::from(5)),
                volume: U256::from(3),
                tag: tags[tag],
                datasetrestrict: addrs[roles[0]],
                workerpoolrestrict: addrs[roles[1]],
                requesterrestrict: addrs[roles[2]],
                salt: B256::repeat_byte(1),
                sign: None,
            });
            let r = record_of(order, addrs[roles[3]]);
            let mut q = format!("app={:#x}", Address::repeat_byte(1));
            q += &restrict_param("dataset", "isDatasetStrict", dataset);
            q += &restrict_param("workerpool", "isWorkerpoolStrict", workerpool);
            q += &restrict_param("requester", "isRequesterStrict", requester);
            if let Some(o) = owner {
                q += &format!("&appOwner={:#x}", addrs[o]);
            }
            for (name, t) in [("minTag", min_tag), ("maxTag", max_tag)] {
                if let Some(t) = t {
                    q += &format!("&{name}={:#x}", tags[t]);
                }
            }
            let p = validate::params(&Query::parse(&q), &spec(OrderKind::App), &[]).expect("valid query");
            let (_, f) = filter(OrderKind::App, &p);
            let t = tags[tag].0;
            let expected = reference_restrict(&q, "dataset", "isDatasetStrict", addrs[roles[0]])
                && reference_restrict(&q, "workerpool", "isWorkerpoolStrict", addrs[roles[1]])
                && reference_restrict(&q, "requester", "isRequesterStrict", addrs[roles[2]])
                && owner.is_none_or(|o| addrs[o] == addrs[roles[3]])
                && min_tag.is_none_or(|m| t.iter().zip(tags[m].0).all(|(a, b)| a & b == b))
                && max_tag.is_none_or(|m| t.iter().zip(tags[m].0).all(|(a, b)| a & !b == 0));
            proptest::prop_assert_eq!(f(&r.brief(), &r), expected, "{}", q);
        }
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
                let book = Arc::new(Book::default());
                let chunks: Vec<_> = stream_page(book, orders.clone(), 99, next_page).collect().await;
                let streamed: Vec<u8> =
                    chunks.into_iter().flat_map(|c| c.expect("chunk").to_vec()).collect::<Vec<u8>>();
                let a: Value = serde_json::from_slice(&streamed).expect("streamed page is JSON");
                assert_eq!(a, serde_json::to_value(&built).expect("json"), "{n} orders");
                // The page built from the records' shown JSON is byte for byte the serialised list.
                let whole = built_page(&Book::default(), &orders, 99, next_page);
                assert_eq!(whole, serde_json::to_vec(&built).expect("json"), "{n} orders");
                assert_eq!(whole.as_ref(), streamed.as_slice(), "{n} orders");
            }
        }
    }

    #[test]
    fn a_workerpool_order_lists_with_its_pools_current_track_record() {
        use crate::order::WorkerpoolOrder;
        let pool = Address::repeat_byte(7);
        let order = AnyOrder::Workerpool(WorkerpoolOrder {
            workerpool: pool,
            workerpoolprice: crate::money::Nrlc(U256::from(9)),
            volume: U256::from(2),
            tag: B256::ZERO,
            category: U256::from(1),
            trust: U256::from(1),
            apprestrict: Address::ZERO,
            datasetrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
            salt: B256::repeat_byte(1),
            sign: None,
        });
        let hash = order.order_hash(&Domain::new(U256::from(1), Address::ZERO));
        let view = crate::order::convert::engine_order(&order, hash, U256::from(2)).expect("small values");
        let r = OrderRecord {
            seq: 1,
            hash,
            chain_id: 1,
            json: raw_json(&order),
            order,
            signer: Address::repeat_byte(2),
            remaining: 2,
            status: OrderStatus::Open,
            published_ms: 1_700_000_000_000,
            view,
            shown: Default::default(),
        };
        let book = Book::default();
        // No record yet, then one, then a better one: each listing carries the record of that moment, though the
        // order's own JSON was made once.
        assert_eq!(listed(&book, &r), serde_json::to_vec(&with_record(&book, &r)).expect("json"));
        let mut record = crate::store::track_records::TrackRecord::default();
        record.all_time.tasks = 4;
        record.all_time.completed = 3;
        book.set_records([(pool, record)]);
        let first = listed(&book, &r);
        assert_eq!(first, serde_json::to_vec(&with_record(&book, &r)).expect("json"));
        record.all_time.completed = 4;
        book.set_records([(pool, record)]);
        let second = listed(&book, &r);
        assert_eq!(second, serde_json::to_vec(&with_record(&book, &r)).expect("json"));
        assert_ne!(first, second);
    }
}
