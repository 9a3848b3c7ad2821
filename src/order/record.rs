//! A published order as the market keeps it: the signed order, who signed it, what remains of it, its status,
//! and its engine view (u64 amounts), which the API's filters read.

use crate::ids::OrderHash;
use crate::order::{AnyOrder, OrderKind};
use alloy::primitives::Address;
use dragon_matching as m;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An order's life, as iExec's market API keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// In the book (possibly partly matched).
    Open,
    /// Nothing remains to match.
    Filled,
    /// Unpublished by its owner or cancelled on chain.
    Canceled,
    /// Cannot be matched any more (stake gone, asset transferred).
    Dead,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Filled => "filled",
            OrderStatus::Canceled => "canceled",
            OrderStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => OrderStatus::Open,
            "filled" => OrderStatus::Filled,
            "canceled" => OrderStatus::Canceled,
            "dead" => OrderStatus::Dead,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct OrderRecord {
    /// Arrival number: the engine's time priority and the publication order.
    pub seq: u64,
    pub hash: OrderHash,
    pub chain_id: u64,
    pub order: AnyOrder,
    /// `order` as JSON text, made once: the store, the answers and the feed all use it as it is.
    pub json: Box<serde_json::value::RawValue>,
    /// The address whose signature (or presignature) the order carries: the asset owner or the requester.
    pub signer: Address,
    /// The volume still available to match.
    pub remaining: u64,
    pub status: OrderStatus,
    /// Publication time, Unix milliseconds.
    pub published_ms: i64,
    /// The engine's view of the order with its declared volume.
    pub view: m::Order,
    /// The record as listings show it, serialised at most once (see [`Shown`]).
    pub shown: Shown,
}

/// A record's listing JSON, made the first time a page shows it and reused by every later page: a book query
/// then copies bytes instead of checksumming addresses and formatting times for each order it returns. Filed
/// with the remaining volume and status it was made from, and used only while they are the record's; a clone
/// starts empty, since clones are how records change.
#[derive(Default)]
pub struct Shown(std::sync::OnceLock<(u64, OrderStatus, bytes::Bytes)>);

impl Clone for Shown {
    fn clone(&self) -> Self {
        Shown::default()
    }
}

impl std::fmt::Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Shown(made)" } else { "Shown(empty)" })
    }
}

impl Shown {
    /// The JSON made by `make` for a record with `remaining` and `status`, made once.
    pub fn get_or(&self, remaining: u64, status: OrderStatus, make: impl Fn() -> bytes::Bytes) -> bytes::Bytes {
        let made = self.0.get_or_init(|| (remaining, status, make()));
        if made.0 == remaining && made.1 == status {
            return made.2.clone();
        }
        // Changed in place after it was shown (records change by cloning, so this is a safety net).
        make()
    }
}

/// The uint fields of the four kinds of orders.
pub const UINT_FIELDS: [&str; 9] = [
    "appprice",
    "datasetprice",
    "workerpoolprice",
    "appmaxprice",
    "datasetmaxprice",
    "workerpoolmaxprice",
    "volume",
    "category",
    "trust",
];

/// The JSON text of an order as the market API shows it: the peer's form, with uint fields as JSON numbers. A
/// value above 2^53-1 (which the peer refuses, and which a JavaScript number would round) stays an exact
/// decimal string.
pub fn raw_json(order: &AnyOrder) -> Box<serde_json::value::RawValue> {
    // Written directly rather than through a `serde_json::Value` (a map, a string per field, then the text):
    // this runs for every order published. Same text as `to_json` with its uints turned into numbers, keys in
    // the map's (sorted) order; a unit test compares the two.
    use crate::order::AnyOrder as A;
    let mut f: Vec<(&'static str, String)> = Vec::with_capacity(16);
    let address = |a: &alloy::primitives::Address| {
        if a.is_zero() {
            "\"0x0000000000000000000000000000000000000000\"".to_owned()
        } else {
            format!("\"{}\"", a.to_checksum(None))
        }
    };
    let uint = |u: &alloy::primitives::U256| match u64::try_from(*u) {
        Ok(n) if n <= MAX_SAFE => n.to_string(),
        _ => format!("\"{u}\""),
    };
    let bytes32 = |b: &alloy::primitives::B256| format!("\"{b:#x}\"");
    let sign = |f: &mut Vec<(&'static str, String)>, s: &Option<alloy::primitives::Bytes>| {
        if let Some(s) = s {
            f.push(("sign", format!("\"0x{}\"", alloy::hex::encode(s))));
        }
    };
    match order {
        A::App(o) => {
            f.extend([
                ("app", address(&o.app)),
                ("appprice", uint(&o.appprice.0)),
                ("volume", uint(&o.volume)),
                ("tag", bytes32(&o.tag)),
                ("datasetrestrict", address(&o.datasetrestrict)),
                ("workerpoolrestrict", address(&o.workerpoolrestrict)),
                ("requesterrestrict", address(&o.requesterrestrict)),
                ("salt", bytes32(&o.salt)),
            ]);
            sign(&mut f, &o.sign);
        }
        A::Dataset(o) => {
            f.extend([
                ("dataset", address(&o.dataset)),
                ("datasetprice", uint(&o.datasetprice.0)),
                ("volume", uint(&o.volume)),
                ("tag", bytes32(&o.tag)),
                ("apprestrict", address(&o.apprestrict)),
                ("workerpoolrestrict", address(&o.workerpoolrestrict)),
                ("requesterrestrict", address(&o.requesterrestrict)),
                ("salt", bytes32(&o.salt)),
            ]);
            sign(&mut f, &o.sign);
        }
        A::Workerpool(o) => {
            f.extend([
                ("workerpool", address(&o.workerpool)),
                ("workerpoolprice", uint(&o.workerpoolprice.0)),
                ("volume", uint(&o.volume)),
                ("tag", bytes32(&o.tag)),
                ("category", uint(&o.category)),
                ("trust", uint(&o.trust)),
                ("apprestrict", address(&o.apprestrict)),
                ("datasetrestrict", address(&o.datasetrestrict)),
                ("requesterrestrict", address(&o.requesterrestrict)),
                ("salt", bytes32(&o.salt)),
            ]);
            sign(&mut f, &o.sign);
        }
        A::Request(o) => {
            f.extend([
                ("app", address(&o.app)),
                ("appmaxprice", uint(&o.appmaxprice.0)),
                ("dataset", address(&o.dataset)),
                ("datasetmaxprice", uint(&o.datasetmaxprice.0)),
                ("workerpool", address(&o.workerpool)),
                ("workerpoolmaxprice", uint(&o.workerpoolmaxprice.0)),
                ("requester", address(&o.requester)),
                ("volume", uint(&o.volume)),
                ("tag", bytes32(&o.tag)),
                ("category", uint(&o.category)),
                ("trust", uint(&o.trust)),
                ("beneficiary", address(&o.beneficiary)),
                ("callback", address(&o.callback)),
                // A string always serialises.
                ("params", serde_json::to_string(&o.params).unwrap_or_default()),
                ("salt", bytes32(&o.salt)),
            ]);
            sign(&mut f, &o.sign);
        }
    }
    f.sort_unstable_by_key(|(k, _)| *k);
    let mut text = String::with_capacity(f.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>() + 2);
    text.push('{');
    for (i, (k, v)) in f.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push('"');
        text.push_str(k);
        text.push_str("\":");
        text.push_str(v);
    }
    text.push('}');
    // Valid JSON by construction; the fallback (`null`) is never taken.
    serde_json::value::RawValue::from_string(text).unwrap_or_default()
}

/// [`raw_json`] as it was first written, through a `serde_json::Value`: the reference its tests compare with.
#[cfg(test)]
pub(crate) fn raw_json_via_value(order: &AnyOrder) -> String {
    let mut v = order.to_json();
    if let serde_json::Value::Object(m) = &mut v {
        for field in UINT_FIELDS {
            if let Some(x) = m.get_mut(field)
                && let Some(n) = x.as_str().and_then(|s| s.parse::<u64>().ok()).filter(|n| *n <= MAX_SAFE)
            {
                *x = serde_json::Value::from(n);
            }
        }
    }
    v.to_string()
}

/// JavaScript's `Number.MAX_SAFE_INTEGER`, the largest integer every JSON reader holds exactly.
pub const MAX_SAFE: u64 = (1 << 53) - 1;

impl OrderRecord {
    pub fn kind(&self) -> OrderKind {
        self.order.kind()
    }

    /// The order's own asset: app, dataset or workerpool; a request's app.
    pub fn asset(&self) -> Address {
        match &self.order {
            AnyOrder::App(o) => o.app,
            AnyOrder::Dataset(o) => o.dataset,
            AnyOrder::Workerpool(o) => o.workerpool,
            AnyOrder::Request(o) => o.app,
        }
    }

    /// The category of a workerpool or request order.
    pub fn category(&self) -> Option<u64> {
        match self.view {
            m::Order::Workerpool(o) => Some(o.category),
            m::Order::Request(o) => Some(o.category),
            _ => None,
        }
    }

    /// A workerpool order's or a request's trust.
    pub fn trust(&self) -> Option<u64> {
        match self.view {
            m::Order::Workerpool(o) => Some(o.trust),
            m::Order::Request(o) => Some(o.trust),
            _ => None,
        }
    }

    /// The price the book sorts by: the seller's price, or a request's `workerpoolmaxprice`.
    pub fn price(&self) -> u64 {
        match self.view {
            m::Order::App(o) => o.price.0,
            m::Order::Dataset(o) => o.price.0,
            m::Order::Workerpool(o) => o.price.0,
            m::Order::Request(o) => o.workerpool_max_price.0,
        }
    }

    pub fn volume(&self) -> u64 {
        match self.view {
            m::Order::App(o) => o.volume,
            m::Order::Dataset(o) => o.volume,
            m::Order::Workerpool(o) => o.volume,
            m::Order::Request(o) => o.volume,
        }
    }

    pub fn tag(&self) -> [u8; 32] {
        match self.view {
            m::Order::App(o) => o.tag.0,
            m::Order::Dataset(o) => o.tag.0,
            m::Order::Workerpool(o) => o.tag.0,
            m::Order::Request(o) => o.tag.0,
        }
    }

    /// The engine's view with `remaining` as its volume: what is added to the engine.
    pub fn engine_order(&self) -> m::Order {
        let mut o = self.view;
        let v = match &mut o {
            m::Order::App(o) => &mut o.volume,
            m::Order::Dataset(o) => &mut o.volume,
            m::Order::Workerpool(o) => &mut o.volume,
            m::Order::Request(o) => &mut o.volume,
        };
        *v = self.remaining;
        o
    }

    /// The address in each role, as the typed columns of the store hold them: an order's own asset in its
    /// own role, its restriction (zero = none) in the others; a request's app, dataset, workerpool, requester.
    pub fn roles(&self) -> Roles {
        let z = Address::ZERO;
        match &self.order {
            AnyOrder::App(o) => Roles {
                app: o.app,
                dataset: o.datasetrestrict,
                workerpool: o.workerpoolrestrict,
                requester: o.requesterrestrict,
                beneficiary: z,
            },
            AnyOrder::Dataset(o) => Roles {
                app: o.apprestrict,
                dataset: o.dataset,
                workerpool: o.workerpoolrestrict,
                requester: o.requesterrestrict,
                beneficiary: z,
            },
            AnyOrder::Workerpool(o) => Roles {
                app: o.apprestrict,
                dataset: o.datasetrestrict,
                workerpool: o.workerpool,
                requester: o.requesterrestrict,
                beneficiary: z,
            },
            AnyOrder::Request(o) => Roles {
                app: o.app,
                dataset: o.dataset,
                workerpool: o.workerpool,
                requester: o.requester,
                beneficiary: o.beneficiary,
            },
        }
    }
}

/// What listings filter an order on, copied out of its record when it enters the book (see
/// `market::book::Book::query`). Small on purpose: a listing's count walks every order of an asset, and the walk
/// costs what it reads (addresses as [`Short`], the tag as its low 8 bytes). Whatever the short forms cannot
/// decide is confirmed on the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    pub kind: OrderKind,
    /// Any of the tag's first 24 bytes set: `tag_low` is not the whole tag.
    pub tag_high: bool,
    pub signer: Short,
    pub roles: ShortRoles,
    pub price: u64,
    pub volume: u64,
    pub remaining: u64,
    /// The tag's last 8 bytes, where iExec's tags put their bits (TEE, GPU, ...).
    pub tag_low: u64,
    pub category: Option<u64>,
    /// A workerpool order's or a request's trust.
    pub trust: Option<u64>,
}

/// An address by its first 8 bytes, for listings' filters: zero exactly for the zero address (so "public" is
/// decided here), equal for equal addresses, and equal for some distinct ones (anyone can grind an address
/// sharing a prefix), so equality with a nonzero address is confirmed on the full address ([`Short::is`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short(u64);

impl Short {
    pub fn of(a: &Address) -> Short {
        let prefix = u64::from_be_bytes(a.0[..8].try_into().unwrap_or_default());
        // A nonzero address with 8 zero leading bytes must not read as public.
        if prefix == 0 && !a.is_zero() { Short(1) } else { Short(prefix) }
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether this is `a`; `full` gives the whole address, read only when the prefixes agree on a nonzero one.
    pub fn is(self, a: &Address, full: impl FnOnce() -> Address) -> bool {
        self == Short::of(a) && (self.is_zero() || full() == *a)
    }
}

/// [`Roles`] as [`Short`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortRoles {
    pub app: Short,
    pub dataset: Short,
    pub workerpool: Short,
    pub requester: Short,
    pub beneficiary: Short,
}

impl OrderRecord {
    pub fn brief(&self) -> Brief {
        let tag = self.tag();
        let r = self.roles();
        Brief {
            kind: self.kind(),
            tag_high: tag[..24].iter().any(|b| *b != 0),
            signer: Short::of(&self.signer),
            roles: ShortRoles {
                app: Short::of(&r.app),
                dataset: Short::of(&r.dataset),
                workerpool: Short::of(&r.workerpool),
                requester: Short::of(&r.requester),
                beneficiary: Short::of(&r.beneficiary),
            },
            price: self.price(),
            volume: self.volume(),
            remaining: self.remaining,
            tag_low: u64::from_be_bytes(tag[24..].try_into().unwrap_or_default()),
            category: self.category(),
            trust: self.trust(),
        }
    }
}

/// See [`OrderRecord::roles`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub app: Address,
    pub dataset: Address,
    pub workerpool: Address,
    pub requester: Address,
    pub beneficiary: Address,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Nrlc;
    use crate::order::{AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder};
    use alloy::primitives::{Address, B256, Bytes, U256};
    use proptest::prelude::*;

    fn address() -> impl Strategy<Value = Address> {
        prop_oneof![Just(Address::ZERO), any::<[u8; 20]>().prop_map(Address::from)]
    }

    /// Small, at and around 2^53-1, and beyond u64: each side of the number-or-string rule.
    fn uint() -> impl Strategy<Value = U256> {
        prop_oneof![
            (0u64..1000).prop_map(U256::from),
            (MAX_SAFE - 2..MAX_SAFE + 2).prop_map(U256::from),
            any::<u64>().prop_map(U256::from),
            any::<[u8; 32]>().prop_map(|b| U256::from_be_bytes(b)),
        ]
    }

    fn b32() -> impl Strategy<Value = B256> {
        any::<[u8; 32]>().prop_map(B256::from)
    }

    fn sign() -> impl Strategy<Value = Option<Bytes>> {
        prop_oneof![
            Just(None),
            Just(Some(Bytes::new())),
            proptest::collection::vec(any::<u8>(), 65).prop_map(|v| Some(v.into()))
        ]
    }

    fn order() -> impl Strategy<Value = AnyOrder> {
        let app = (address(), uint(), uint(), b32(), address(), address(), address(), b32(), sign()).prop_map(
            |(app, p, volume, tag, d, w, r, salt, sign)| {
                AnyOrder::App(AppOrder {
                    app,
                    appprice: Nrlc(p),
                    volume,
                    tag,
                    datasetrestrict: d,
                    workerpoolrestrict: w,
                    requesterrestrict: r,
                    salt,
                    sign,
                })
            },
        );
        let dataset = (address(), uint(), uint(), b32(), address(), address(), address(), b32(), sign()).prop_map(
            |(dataset, p, volume, tag, a, w, r, salt, sign)| {
                AnyOrder::Dataset(DatasetOrder {
                    dataset,
                    datasetprice: Nrlc(p),
                    volume,
                    tag,
                    apprestrict: a,
                    workerpoolrestrict: w,
                    requesterrestrict: r,
                    salt,
                    sign,
                })
            },
        );
        let pool = (address(), uint(), uint(), b32(), uint(), uint(), (address(), address(), address()), b32(), sign())
            .prop_map(|(workerpool, p, volume, tag, category, trust, (a, d, r), salt, sign)| {
                AnyOrder::Workerpool(WorkerpoolOrder {
                    workerpool,
                    workerpoolprice: Nrlc(p),
                    volume,
                    tag,
                    category,
                    trust,
                    apprestrict: a,
                    datasetrestrict: d,
                    requesterrestrict: r,
                    salt,
                    sign,
                })
            });
        let request = (
            (address(), uint(), address(), uint(), address(), uint(), address()),
            (uint(), b32(), uint(), uint(), address(), address()),
            (".{0,40}", b32(), sign()),
        )
            .prop_map(
                |(
                    (app, ap, dataset, dp, workerpool, wp, requester),
                    (volume, tag, category, trust, beneficiary, callback),
                    (params, salt, sign),
                )| {
                    AnyOrder::Request(RequestOrder {
                        app,
                        appmaxprice: Nrlc(ap),
                        dataset,
                        datasetmaxprice: Nrlc(dp),
                        workerpool,
                        workerpoolmaxprice: Nrlc(wp),
                        requester,
                        volume,
                        tag,
                        category,
                        trust,
                        beneficiary,
                        callback,
                        params,
                        salt,
                        sign,
                    })
                },
            );
        prop_oneof![app, dataset, pool, request]
    }

    proptest! {
        /// The text written directly is, byte for byte, the text made through a `serde_json::Value`.
        #[test]
        fn raw_json_is_the_value_route_byte_for_byte(o in order()) {
            let (direct, via_value) = (raw_json(&o), raw_json_via_value(&o));
            prop_assert_eq!(direct.get(), via_value.as_str());
        }
    }

    #[test]
    fn shown_json_is_made_once_and_never_outlives_a_change() {
        let shown = Shown::default();
        let calls = std::cell::Cell::new(0);
        let make = |text: &'static str| {
            calls.set(calls.get() + 1);
            bytes::Bytes::from_static(text.as_bytes())
        };
        assert_eq!(shown.get_or(3, OrderStatus::Open, || make("a")), "a");
        assert_eq!(shown.get_or(3, OrderStatus::Open, || make("b")), "a", "made once");
        assert_eq!(calls.get(), 1);
        // Another remaining volume or status: made afresh, never the old bytes.
        assert_eq!(shown.get_or(2, OrderStatus::Open, || make("c")), "c");
        assert_eq!(shown.get_or(3, OrderStatus::Filled, || make("d")), "d");
        // A clone (how records change) starts empty.
        assert_eq!(shown.clone().get_or(3, OrderStatus::Open, || make("e")), "e");
    }
}

/// An order record as instances of a cluster pass it to each other (`cluster::route`): what the store keeps of
/// it, the order as its JSON text.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireRecord {
    pub seq: u64,
    pub hash: OrderHash,
    pub chain_id: u64,
    pub kind: OrderKind,
    pub order: String,
    pub signer: Address,
    pub remaining: u64,
    pub status: OrderStatus,
    pub published_ms: i64,
}

impl OrderRecord {
    pub fn to_wire(&self) -> WireRecord {
        WireRecord {
            seq: self.seq,
            hash: self.hash,
            chain_id: self.chain_id,
            kind: self.kind(),
            order: self.json.get().to_owned(),
            signer: self.signer,
            remaining: self.remaining,
            status: self.status,
            published_ms: self.published_ms,
        }
    }

    /// The record back from its wire form; `Err` when the order does not read (a peer of another version).
    /// The text is the sender's `json` (made by [`raw_json`]), kept as it came once it parses as the order.
    pub fn from_wire(w: WireRecord) -> Result<OrderRecord, String> {
        let order = AnyOrder::from_json(w.kind, &w.order).map_err(|e| e.to_string())?;
        let view = crate::order::convert::engine_order(&order, w.hash, order.volume()).map_err(|e| e.to_string())?;
        let json = serde_json::value::RawValue::from_string(w.order).map_err(|e| e.to_string())?;
        Ok(OrderRecord {
            seq: w.seq,
            hash: w.hash,
            chain_id: w.chain_id,
            json,
            order,
            signer: w.signer,
            remaining: w.remaining,
            status: w.status,
            published_ms: w.published_ms,
            view,
            shown: Shown::default(),
        })
    }
}
