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
    // The serializer's own output is valid JSON; the fallback (`null`) is never taken.
    serde_json::value::RawValue::from_string(v.to_string()).unwrap_or_default()
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
/// `market::book::Book::query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    pub kind: OrderKind,
    pub signer: Address,
    pub asset: Address,
    pub roles: Roles,
    pub price: u64,
    pub volume: u64,
    pub remaining: u64,
    pub tag: [u8; 32],
    pub category: Option<u64>,
    /// A workerpool order's or a request's trust.
    pub trust: Option<u64>,
}

impl OrderRecord {
    pub fn brief(&self) -> Brief {
        Brief {
            kind: self.kind(),
            signer: self.signer,
            asset: self.asset(),
            roles: self.roles(),
            price: self.price(),
            volume: self.volume(),
            remaining: self.remaining,
            tag: self.tag(),
            category: self.category(),
            trust: match self.view {
                m::Order::Workerpool(o) => Some(o.trust),
                m::Order::Request(o) => Some(o.trust),
                _ => None,
            },
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
