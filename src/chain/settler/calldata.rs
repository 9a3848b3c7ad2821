//! A settlement's call: the proposals still to settle with their orders in the hub's form, and the calldata of
//! `matchOrders` (one deal) or `matchOrdersBatch` (several, each order sent once, deals naming them by index).

use crate::chain::contracts::hub::{DragonHub, IexecLibOrders_v5 as sol};
use crate::ids::OrderHash;
use crate::order::AnyOrder;
use crate::order::record::{OrderRecord, OrderStatus};
use crate::store::Store;
use crate::store::proposals::{self, Proposal};
use alloy::primitives::B256;
use alloy::sol_types::SolCall;
use std::collections::HashMap;

/// The proposals still to settle, with their orders; and those that cannot be (an order left the book
/// meanwhile), with the reason.
pub(super) async fn load(
    store: &Store,
    ids: &[i64],
) -> Result<(Vec<ToSettle>, Vec<(i64, String)>), crate::store::StoreError> {
    let client = store.client().await?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(p) = proposals::get(&**client, *id).await?
            && p.status == "proposed"
        {
            found.push(p);
        }
    }
    let hashes: Vec<OrderHash> = found.iter().flat_map(|p| p.orders().collect::<Vec<_>>()).collect();
    let orders: HashMap<OrderHash, OrderRecord> =
        crate::store::orders::get_many(&**client, &hashes).await?.into_iter().map(|r| (r.hash, r)).collect();
    let mut deals = Vec::new();
    let mut gone = Vec::new();
    for p in found {
        let closed = p.orders().find_map(|h| match orders.get(&h) {
            None => Some(format!("order {h} is unknown")),
            Some(r) if matches!(r.status, OrderStatus::Canceled | OrderStatus::Dead) => {
                Some(format!("order {h} was {} before settlement", r.status.as_str()))
            }
            Some(_) => None,
        });
        if let Some(reason) = closed {
            gone.push((p.id, reason));
            continue;
        }
        let get = |h: &OrderHash| orders.get(h).map(|r| r.order.clone());
        let (Some(AnyOrder::App(a)), Some(AnyOrder::Workerpool(w)), Some(AnyOrder::Request(r))) =
            (get(&p.app), get(&p.workerpool), get(&p.request))
        else {
            gone.push((p.id, "stored orders do not match the proposal".into()));
            continue;
        };
        let d = match p.dataset.as_ref().and_then(get) {
            Some(AnyOrder::Dataset(d)) => Some(d),
            _ => None,
        };
        deals.push(ToSettle {
            proposal: p,
            app: (&a).into(),
            dataset: d.as_ref().map(Into::into),
            workerpool: (&w).into(),
            request: (&r).into(),
        });
    }
    Ok((deals, gone))
}

/// A proposal with its orders in the hub's form.
pub(super) struct ToSettle {
    pub(super) proposal: Proposal,
    app: sol::AppOrder,
    dataset: Option<sol::DatasetOrder>,
    workerpool: sol::WorkerpoolOrder,
    request: sol::RequestOrder,
}

/// `matchOrders` for one deal; `matchOrdersBatch` for several, each order sent once.
pub(super) fn calldata(deals: &[ToSettle]) -> alloy::primitives::Bytes {
    let input = if let [d] = deals {
        DragonHub::matchOrdersCall {
            appOrder: d.app.clone(),
            datasetOrder: d.dataset.clone().unwrap_or_else(sol::DatasetOrder::none),
            workerpoolOrder: d.workerpool.clone(),
            requestOrder: d.request.clone(),
        }
        .abi_encode()
    } else {
        let mut apps = Indexed::default();
        let mut datasets = Indexed::default();
        let mut pools = Indexed::default();
        let mut requests = Indexed::default();
        let mut matches = Vec::with_capacity(deals.len());
        for d in deals {
            let p = &d.proposal;
            matches.push(DragonHub::BatchMatch {
                app: apps.index(p.app.0, || d.app.clone()),
                dataset: match (&p.dataset, &d.dataset) {
                    (Some(h), Some(o)) => datasets.index(h.0, || o.clone()),
                    _ => datasets.index(B256::ZERO, sol::DatasetOrder::none),
                },
                workerpool: pools.index(p.workerpool.0, || d.workerpool.clone()),
                request: requests.index(p.request.0, || d.request.clone()),
            });
        }
        DragonHub::matchOrdersBatchCall {
            appOrders: apps.items,
            datasetOrders: datasets.items,
            workerpoolOrders: pools.items,
            requestOrders: requests.items,
            matches,
        }
        .abi_encode()
    };
    input.into()
}

/// Orders of one kind for a batch, each given once.
struct Indexed<T> {
    items: Vec<T>,
    at: HashMap<B256, u32>,
}

impl<T> Default for Indexed<T> {
    fn default() -> Self {
        Indexed { items: Vec::new(), at: HashMap::new() }
    }
}

impl<T> Indexed<T> {
    fn index(&mut self, key: B256, make: impl FnOnce() -> T) -> u32 {
        *self.at.entry(key).or_insert_with(|| {
            self.items.push(make());
            (self.items.len() - 1) as u32
        })
    }
}
