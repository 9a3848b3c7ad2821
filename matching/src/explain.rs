//! Why an order does not match: for an order (resting, or a draft), its best counter-orders and, for each, every
//! condition that keeps the pair apart.
//!
//! The conditions are the engine's own: the rules of [`failures`] (the function [`check`](crate::check) and the
//! engine's matching read), an order with no volume left (the engine matches only remaining volume), and a
//! missing app, dataset, workerpool or request order (the engine needs all of the combination). Nothing here
//! decides compatibility on its own: a combination has no blocker exactly when the engine would match it (the
//! property tests in `tests/it/explain.rs` hold the two together).
//!
//! Pure and bounded: the caller hands the candidate orders, in book priority, and at most [`MAX_COUNTERPARTS`]
//! counter-orders, [`MAX_CHOICES`] app, dataset (and, for an app or dataset order, workerpool) orders per
//! counter-order are examined. Within those, the combination with the fewest blockers is shown (the first in
//! book order among equals).

use crate::compat::{Failures, Rule, failures};
use crate::types::{Address, AppOrder, DatasetOrder, Nrlc, Order, OrderKind, RequestOrder, Tag, WorkerpoolOrder};

/// Counter-orders examined (the subject's other side: workerpool orders for a request, requests otherwise).
pub const MAX_COUNTERPARTS: usize = 256;
/// App, dataset or workerpool orders tried with each counter-order.
pub const MAX_CHOICES: usize = 32;

/// An order and the volume it still has to match: 0 when it is used up or all of it is held by pending deals.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Open<T> {
    pub order: T,
    pub remaining: u64,
}

/// The orders an explanation may pair the subject with, each in book priority (cheapest then oldest; requests by
/// `workerpoolmaxprice` descending then oldest). Orders of other assets or categories may be included: they are
/// filtered (apps, datasets) or shown with their blockers (workerpool orders and requests of another category).
#[derive(Clone, Copy, Debug, Default)]
pub struct Offers<'a> {
    pub apps: &'a [Open<AppOrder>],
    pub datasets: &'a [Open<DatasetOrder>],
    pub pools: &'a [Open<WorkerpoolOrder>],
    pub requests: &'a [Open<RequestOrder>],
}

/// One condition that keeps a combination from matching.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Blocker {
    /// A rule of `matchOrders` fails.
    Rule(Rule),
    /// This order of the combination has no volume left to match.
    Volume(OrderKind),
    /// The request's app has no open app order.
    NoAppOrder,
    /// The request names a dataset that has no open dataset order.
    NoDatasetOrder,
    /// No open workerpool order to pair with.
    NoWorkerpoolOrder,
    /// No open request to pair with.
    NoRequestOrder,
}

/// A combination of the subject with counter-orders, and what blocks it (nothing: the engine matches it). `None`
/// for a member that does not exist (a dataset-less request has no dataset order; a missing one is a blocker).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pairing {
    pub app: Option<Open<AppOrder>>,
    pub dataset: Option<Open<DatasetOrder>>,
    pub workerpool: Option<Open<WorkerpoolOrder>>,
    pub request: Option<Open<RequestOrder>>,
    pub blockers: Vec<Blocker>,
}

impl Pairing {
    /// Whether the engine would match this combination.
    pub fn matches(&self) -> bool {
        self.blockers.is_empty()
    }
}

/// The explanation of `subject`: at most `limit` combinations with its best counter-orders, those with the fewest
/// blockers first (then in book order of the counter-order).
pub fn explain(subject: &Open<Order>, offers: &Offers<'_>, limit: usize) -> Vec<Pairing> {
    let remaining = subject.remaining;
    let mut out: Vec<Pairing> = Vec::new();
    match subject.order {
        Order::Request(order) => {
            let r = Open { order, remaining };
            let (apps, datasets) = (apps_of(offers, &r), datasets_of(offers, &r));
            let pools: Vec<Open<WorkerpoolOrder>> = offers.pools.iter().take(MAX_COUNTERPARTS).copied().collect();
            if pools.is_empty() {
                out.push(best(&r, &[], &apps, &datasets));
            }
            out.extend(pools.iter().map(|w| best(&r, std::slice::from_ref(w), &apps, &datasets)));
        }
        Order::Workerpool(order) => {
            let w = [Open { order, remaining }];
            out.extend(
                offers
                    .requests
                    .iter()
                    .take(MAX_COUNTERPARTS)
                    .map(|r| best(r, &w, &apps_of(offers, r), &datasets_of(offers, r))),
            );
        }
        Order::App(order) => {
            let a = [Open { order, remaining }];
            let requests = offers.requests.iter().filter(|r| r.order.app == order.app);
            out.extend(
                requests.take(MAX_COUNTERPARTS).map(|r| best(r, &pools_of(offers, r), &a, &datasets_of(offers, r))),
            );
        }
        Order::Dataset(order) => {
            let d = [Open { order, remaining }];
            let requests =
                offers.requests.iter().filter(|r| !order.dataset.is_zero() && r.order.dataset == order.dataset);
            out.extend(requests.take(MAX_COUNTERPARTS).map(|r| best(r, &pools_of(offers, r), &apps_of(offers, r), &d)));
        }
    }
    if out.is_empty() {
        // Only a workerpool, app or dataset order with no request to pair with gets here.
        let mut p = Pairing { app: None, dataset: None, workerpool: None, request: None, blockers: Vec::new() };
        match subject.order {
            Order::App(order) => p.app = Some(Open { order, remaining }),
            Order::Dataset(order) => p.dataset = Some(Open { order, remaining }),
            Order::Workerpool(order) => p.workerpool = Some(Open { order, remaining }),
            Order::Request(order) => p.request = Some(Open { order, remaining }),
        }
        if remaining == 0 {
            p.blockers.push(Blocker::Volume(subject.order.kind()));
        }
        p.blockers.push(Blocker::NoRequestOrder);
        out.push(p);
    }
    // A stable sort: among equals, the counter-orders' book order.
    out.sort_by_key(|p| p.blockers.len());
    out.truncate(limit);
    out
}

fn apps_of(offers: &Offers<'_>, r: &Open<RequestOrder>) -> Vec<Open<AppOrder>> {
    offers.apps.iter().filter(|a| a.order.app == r.order.app).take(MAX_CHOICES).copied().collect()
}

fn datasets_of(offers: &Offers<'_>, r: &Open<RequestOrder>) -> Vec<Open<DatasetOrder>> {
    if r.order.dataset.is_zero() {
        return Vec::new();
    }
    offers.datasets.iter().filter(|d| d.order.dataset == r.order.dataset).take(MAX_CHOICES).copied().collect()
}

fn pools_of(offers: &Offers<'_>, r: &Open<RequestOrder>) -> Vec<Open<WorkerpoolOrder>> {
    offers.pools.iter().filter(|w| w.order.category == r.order.category).take(MAX_CHOICES).copied().collect()
}

/// The combination of `r` with one of `pools`, `apps` and (when `r` names a dataset) `datasets` that has the
/// fewest blockers, the first in the given order among equals (the engine's scan order: workerpool, then app,
/// then dataset). An empty list is a missing order: a stand-in that passes every rule on its own takes its place,
/// so that the rules the other orders fail are still shown.
fn best(
    r: &Open<RequestOrder>,
    pools: &[Open<WorkerpoolOrder>],
    apps: &[Open<AppOrder>],
    datasets: &[Open<DatasetOrder>],
) -> Pairing {
    let with_dataset = !r.order.dataset.is_zero();
    let app_choices: Vec<Option<&Open<AppOrder>>> =
        if apps.is_empty() { vec![None] } else { apps.iter().map(Some).collect() };
    let dataset_choices: Vec<Option<&Open<DatasetOrder>>> =
        if !with_dataset || datasets.is_empty() { vec![None] } else { datasets.iter().map(Some).collect() };
    let pool_choices: Vec<Option<&Open<WorkerpoolOrder>>> =
        if pools.is_empty() { vec![None] } else { pools.iter().map(Some).collect() };
    let mut found: Option<Pairing> = None;
    'scan: for w in &pool_choices {
        for a in &app_choices {
            for d in &dataset_choices {
                let blockers = blockers(r, *w, *a, *d, with_dataset);
                if found.as_ref().is_none_or(|f| blockers.len() < f.blockers.len()) {
                    let done = blockers.is_empty();
                    found = Some(Pairing {
                        app: a.copied(),
                        dataset: d.copied(),
                        workerpool: w.copied(),
                        request: Some(*r),
                        blockers,
                    });
                    if done {
                        break 'scan;
                    }
                }
            }
        }
    }
    found.unwrap_or_else(|| unreachable!("every choice list has at least one entry"))
}

/// Everything that keeps this combination from matching: the rules it fails, the members without volume, the
/// members missing (`None`, stood in for by a permissive order).
fn blockers(
    r: &Open<RequestOrder>,
    w: Option<&Open<WorkerpoolOrder>>,
    a: Option<&Open<AppOrder>>,
    d: Option<&Open<DatasetOrder>>,
    with_dataset: bool,
) -> Vec<Blocker> {
    let req = &r.order;
    let dataset = match d {
        Some(d) => Some(d.order),
        None if with_dataset => Some(DatasetOrder {
            hash: Default::default(),
            dataset: req.dataset,
            price: Nrlc(0),
            volume: 0,
            tag: Tag::ZERO,
            app_restrict: Address::ZERO,
            workerpool_restrict: Address::ZERO,
            requester_restrict: Address::ZERO,
        }),
        None => None,
    };
    let dataset_tag = dataset.map_or(Tag::ZERO, |d| d.tag);
    let app = match a {
        Some(a) => a.order,
        // The TEE bit only when the request or the dataset asks for it (rule 07 wants it on the app then).
        None => AppOrder {
            hash: Default::default(),
            app: req.app,
            price: Nrlc(0),
            volume: 0,
            tag: if req.tag.union(dataset_tag).has_tee() { Tag::TEE } else { Tag::ZERO },
            dataset_restrict: Address::ZERO,
            workerpool_restrict: Address::ZERO,
            requester_restrict: Address::ZERO,
        },
    };
    let pool = match w {
        Some(w) => w.order,
        // A workerpool every restriction admits, when they agree (when they do not, no workerpool would do).
        None => WorkerpoolOrder {
            hash: Default::default(),
            workerpool: [
                req.workerpool,
                app.workerpool_restrict,
                dataset.map_or(Address::ZERO, |d| d.workerpool_restrict),
            ]
            .into_iter()
            .find(|x| !x.is_zero())
            .unwrap_or(Address::ZERO),
            price: Nrlc(0),
            volume: 0,
            tag: Tag([0xff; 32]),
            category: req.category,
            trust: u64::MAX,
            // The best record possible, so that the stand-in never fails the request's minimum.
            record: crate::types::TrackRecord { finished: u64::MAX, completed: u64::MAX },
            app_restrict: Address::ZERO,
            dataset_restrict: Address::ZERO,
            requester_restrict: Address::ZERO,
        },
    };
    let failed: Failures = failures(&app, dataset.as_ref(), &pool, req);
    let mut out: Vec<Blocker> = failed.iter().map(Blocker::Rule).collect();
    let volumes = [
        (OrderKind::Request, Some(r.remaining)),
        (OrderKind::Workerpool, w.map(|w| w.remaining)),
        (OrderKind::App, a.map(|a| a.remaining)),
        (OrderKind::Dataset, d.map(|d| d.remaining)),
    ];
    out.extend(volumes.into_iter().filter(|(_, v)| *v == Some(0)).map(|(k, _)| Blocker::Volume(k)));
    if w.is_none() {
        out.push(Blocker::NoWorkerpoolOrder);
    }
    if a.is_none() {
        out.push(Blocker::NoAppOrder);
    }
    if with_dataset && d.is_none() {
        out.push(Blocker::NoDatasetOrder);
    }
    out
}
