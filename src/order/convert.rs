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
        }),
    })
}
