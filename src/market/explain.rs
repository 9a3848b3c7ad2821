//! Why an order does not match (issue 21): the engine's own explanation (`dragon_matching::explain`, over the
//! rules the engine matches with), fed with the open orders of the book, plus what only the exchange knows of
//! the chain: whether the owners of a request and of a workerpool order have the stake to back them (the same
//! `required_stake` that publication and chain sync apply).
//!
//! Bounded for any caller: at most `dragon_matching::explain::MAX_COUNTERPARTS` counter-orders and
//! `MAX_CHOICES` app, dataset and workerpool orders per asset or category are read from the book, at most
//! [`MAX_PAIRINGS`] combinations are answered, and the stakes read are those of their members (one chain read
//! per distinct account, concurrently).

use super::Market;
use super::book::Book;
use super::record::{OrderRecord, OrderStatus};
use crate::ids::OrderHash;
use crate::market::{MarketError, PublishError};
use crate::order::{AnyOrder, OrderKind, required_stake};
use alloy::primitives::{Address, B256, U256};
use dragon_matching as m;
use dragon_matching::explain::{Blocker, MAX_CHOICES, MAX_COUNTERPARTS, Offers, Open, Pairing};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Most combinations an explanation answers.
pub const MAX_PAIRINGS: usize = 10;

/// One order of a combination, as an explanation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub kind: OrderKind,
    pub hash: OrderHash,
    /// The seller's price; a request's `workerpoolmaxprice`.
    pub price: u64,
    pub remaining: u64,
}

/// One condition that blocks a combination: a stable code, and what it means with the orders' numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    pub code: &'static str,
    /// The PoCo revert code (`iExecV5-matchOrders-0x..`) of a rule of `matchOrders`.
    pub poco: Option<u8>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combination {
    pub app: Option<Member>,
    pub dataset: Option<Member>,
    pub workerpool: Option<Member>,
    pub request: Option<Member>,
    pub blockers: Vec<Why>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub kind: OrderKind,
    pub hash: OrderHash,
    /// `None` for a draft (never published).
    pub status: Option<OrderStatus>,
    pub remaining: u64,
    /// Whether some combination has no blocker (a resting order never has one: the engine would have matched
    /// it; a draft may).
    pub matches: bool,
    /// Fewest blockers first, at most [`MAX_PAIRINGS`].
    pub combinations: Vec<Combination>,
}

/// The stable code of a blocker, and of each rule of `matchOrders`: the one table of both.
pub fn code(b: Blocker) -> &'static str {
    use m::Rule as R;
    match b {
        Blocker::Rule(r) => match r {
            R::Category => "category",
            R::Trust => "trust",
            R::AppPrice => "app_price",
            R::DatasetPrice => "dataset_price",
            R::WorkerpoolPrice => "workerpool_price",
            R::TagSubset => "tag",
            R::TeeApp => "tee_app",
            R::App => "app",
            R::Dataset => "dataset",
            R::RequestWorkerpool => "request_workerpool_restrict",
            R::AppDatasetRestrict => "app_dataset_restrict",
            R::AppWorkerpoolRestrict => "app_workerpool_restrict",
            R::AppRequesterRestrict => "app_requester_restrict",
            R::DatasetAppRestrict => "dataset_app_restrict",
            R::DatasetWorkerpoolRestrict => "dataset_workerpool_restrict",
            R::DatasetRequesterRestrict => "dataset_requester_restrict",
            R::WorkerpoolAppRestrict => "workerpool_app_restrict",
            R::WorkerpoolDatasetRestrict => "workerpool_dataset_restrict",
            R::WorkerpoolRequesterRestrict => "workerpool_requester_restrict",
            R::TrackRecord => "track_record",
        },
        Blocker::Volume(_) => "volume",
        Blocker::NoAppOrder => "no_app_order",
        Blocker::NoDatasetOrder => "no_dataset_order",
        Blocker::NoWorkerpoolOrder => "no_workerpool_order",
        Blocker::NoRequestOrder => "no_request_order",
    }
}

/// Every code an explanation may answer (for the API document).
pub const CODES: [&str; 26] = [
    "category",
    "trust",
    "app_price",
    "dataset_price",
    "workerpool_price",
    "tag",
    "tee_app",
    "app",
    "dataset",
    "request_workerpool_restrict",
    "app_dataset_restrict",
    "app_workerpool_restrict",
    "app_requester_restrict",
    "dataset_app_restrict",
    "dataset_workerpool_restrict",
    "dataset_requester_restrict",
    "workerpool_app_restrict",
    "workerpool_dataset_restrict",
    "workerpool_requester_restrict",
    "track_record",
    "volume",
    "no_app_order",
    "no_dataset_order",
    "no_workerpool_order",
    "no_request_order",
    "stake",
];

fn address(a: m::Address) -> String {
    Address::from(a.0).to_checksum(None)
}

fn tag(t: m::Tag) -> String {
    format!("{}", B256::from(t.0))
}

fn kind_of(k: m::OrderKind) -> OrderKind {
    match k {
        m::OrderKind::App => OrderKind::App,
        m::OrderKind::Dataset => OrderKind::Dataset,
        m::OrderKind::Workerpool => OrderKind::Workerpool,
        m::OrderKind::Request => OrderKind::Request,
    }
}

/// What a blocker means, with the numbers of the orders of `p` (a member that is missing says so).
fn message(b: Blocker, p: &Pairing) -> String {
    use m::Rule as R;
    let (a, d, w, r) =
        (p.app.map(|x| x.order), p.dataset.map(|x| x.order), p.workerpool.map(|x| x.order), p.request.map(|x| x.order));
    let Some(r) = r else {
        return "no open request order to pair with".into();
    };
    let pool = || w.map_or("the workerpool".to_owned(), |w| format!("workerpool {}", address(w.workerpool)));
    let restrict = |who: &str, field: &str, restrict: Option<m::Address>, what: &str, candidate: String| {
        format!(
            "{who}'s {field} admits only {}, not {what} {candidate}",
            restrict.map_or("another address".to_owned(), address)
        )
    };
    let dataset_addr = d.map_or(r.dataset, |d| d.dataset);
    match b {
        Blocker::Rule(rule) => match rule {
            R::Category => format!(
                "the workerpool order is in category {}, the request in category {}",
                w.map_or(r.category, |w| w.category),
                r.category
            ),
            R::Trust => format!("request trust {} > workerpool trust {}", r.trust, w.map_or(0, |w| w.trust)),
            R::AppPrice => format!(
                "app price {} nRLC > the request's appmaxprice {} nRLC",
                a.map_or(0, |a| a.price.0),
                r.app_max_price.0
            ),
            R::DatasetPrice => format!(
                "dataset price {} nRLC > the request's datasetmaxprice {} nRLC",
                d.map_or(0, |d| d.price.0),
                r.dataset_max_price.0
            ),
            R::WorkerpoolPrice => format!(
                "workerpool price {} nRLC > the request's workerpoolmaxprice {} nRLC",
                w.map_or(0, |w| w.price.0),
                r.workerpool_max_price.0
            ),
            R::TagSubset => {
                let asked = a.map_or(m::Tag::ZERO, |a| a.tag).union(d.map_or(m::Tag::ZERO, |d| d.tag)).union(r.tag);
                format!(
                    "the tag asked by the app, dataset and request, {}, has bits the workerpool tag {} lacks",
                    tag(asked),
                    w.map_or_else(|| tag(m::Tag::ZERO), |w| tag(w.tag))
                )
            }
            R::TeeApp => "TEE is asked, but the app order's tag has no TEE bit".into(),
            R::App => "the app order is for another app than the request's".into(),
            R::Dataset => "the dataset order is for another dataset than the request's".into(),
            R::RequestWorkerpool => restrict("the request", "workerpool", Some(r.workerpool), "", pool()),
            R::AppDatasetRestrict => restrict(
                "the app order",
                "datasetrestrict",
                a.map(|a| a.dataset_restrict),
                "dataset",
                address(dataset_addr),
            ),
            R::AppWorkerpoolRestrict => {
                restrict("the app order", "workerpoolrestrict", a.map(|a| a.workerpool_restrict), "", pool())
            }
            R::AppRequesterRestrict => restrict(
                "the app order",
                "requesterrestrict",
                a.map(|a| a.requester_restrict),
                "requester",
                address(r.requester),
            ),
            R::DatasetAppRestrict => {
                restrict("the dataset order", "apprestrict", d.map(|d| d.app_restrict), "app", address(r.app))
            }
            R::DatasetWorkerpoolRestrict => {
                restrict("the dataset order", "workerpoolrestrict", d.map(|d| d.workerpool_restrict), "", pool())
            }
            R::DatasetRequesterRestrict => restrict(
                "the dataset order",
                "requesterrestrict",
                d.map(|d| d.requester_restrict),
                "requester",
                address(r.requester),
            ),
            R::WorkerpoolAppRestrict => {
                restrict("the workerpool order", "apprestrict", w.map(|w| w.app_restrict), "app", address(r.app))
            }
            R::WorkerpoolDatasetRestrict => restrict(
                "the workerpool order",
                "datasetrestrict",
                w.map(|w| w.dataset_restrict),
                "dataset",
                address(dataset_addr),
            ),
            R::WorkerpoolRequesterRestrict => restrict(
                "the workerpool order",
                "requesterrestrict",
                w.map(|w| w.requester_restrict),
                "requester",
                address(r.requester),
            ),
            R::TrackRecord => {
                let record = w.map(|w| w.record).unwrap_or_default();
                let share = |completed: u64, finished: u64| {
                    if finished == 0 {
                        "no finished task".to_owned()
                    } else {
                        format!("{completed} of {finished} finished tasks completed")
                    }
                };
                format!(
                    "the request asks a workerpool track record of at least {:.2}% completed over at least {} finished tasks; {} has {}",
                    f64::from(r.min_record.completed_bp) / 100.0,
                    r.min_record.tasks,
                    pool(),
                    share(record.completed, record.finished)
                )
            }
        },
        Blocker::Volume(k) => {
            format!("the {} order has no volume left to match (used up, or held by pending deals)", kind_of(k))
        }
        Blocker::NoAppOrder => format!("app {} has no open app order", address(r.app)),
        Blocker::NoDatasetOrder => format!("dataset {} has no open dataset order", address(r.dataset)),
        Blocker::NoWorkerpoolOrder => format!("no open workerpool order in category {}", r.category),
        Blocker::NoRequestOrder => "no open request order to pair with".into(),
    }
}

fn open<T>(r: &OrderRecord, pick: impl Fn(m::Order) -> Option<T>) -> Option<Open<T>> {
    // A record leaves the book when nothing is left of it; one read from the store (filled, cancelled, dead)
    // has nothing to match.
    let remaining = if r.status == OrderStatus::Open { r.remaining } else { 0 };
    pick(r.view).map(|order| Open { order, remaining })
}

fn as_app(o: m::Order) -> Option<m::AppOrder> {
    if let m::Order::App(x) = o { Some(x) } else { None }
}
fn as_dataset(o: m::Order) -> Option<m::DatasetOrder> {
    if let m::Order::Dataset(x) = o { Some(x) } else { None }
}
fn as_pool(o: m::Order) -> Option<m::WorkerpoolOrder> {
    if let m::Order::Workerpool(x) = o { Some(x) } else { None }
}
fn as_request(o: m::Order) -> Option<m::RequestOrder> {
    if let m::Order::Request(x) = o { Some(x) } else { None }
}

fn addr(a: m::Address) -> Address {
    Address::from(a.0)
}

/// The candidate orders for `subject`, from the book, each kind in book order, and the records they come from.
fn gather(book: &Book, subject: &m::Order) -> Vec<Arc<OrderRecord>> {
    let mut out: Vec<Arc<OrderRecord>> = Vec::new();
    let pools_of =
        |category: u64, n: usize| book.take(OrderKind::Workerpool, None, |r| r.category() == Some(category), n);
    let apps_of = |app: m::Address| book.take(OrderKind::App, Some(addr(app)), |_| true, MAX_CHOICES);
    let datasets_of = |dataset: m::Address| {
        if dataset.is_zero() {
            Vec::new()
        } else {
            book.take(OrderKind::Dataset, Some(addr(dataset)), |_| true, MAX_CHOICES)
        }
    };
    match subject {
        m::Order::Request(r) => {
            let mut pools = pools_of(r.category, MAX_COUNTERPARTS);
            // Offers of other categories, when the request's own has few: their blocker is the category.
            if pools.len() < MAX_PAIRINGS {
                let more = MAX_PAIRINGS - pools.len();
                pools.extend(book.take(OrderKind::Workerpool, None, |o| o.category() != Some(r.category), more));
            }
            out.extend(pools);
            out.extend(apps_of(r.app));
            out.extend(datasets_of(r.dataset));
        }
        other => {
            let requests = match other {
                m::Order::Workerpool(w) => {
                    book.take(OrderKind::Request, None, |o| o.category() == Some(w.category), MAX_COUNTERPARTS)
                }
                m::Order::App(a) => book.take(OrderKind::Request, Some(addr(a.app)), |_| true, MAX_COUNTERPARTS),
                m::Order::Dataset(d) => {
                    let mut v = book.requests_naming_dataset(addr(d.dataset));
                    v.truncate(MAX_COUNTERPARTS);
                    v
                }
                m::Order::Request(_) => Vec::new(),
            };
            let views: Vec<m::RequestOrder> = requests.iter().filter_map(|r| as_request(r.view)).collect();
            let apps: BTreeSet<m::Address> = views.iter().map(|r| r.app).collect();
            let datasets: BTreeSet<m::Address> = views.iter().map(|r| r.dataset).collect();
            let categories: BTreeSet<u64> = views.iter().map(|r| r.category).collect();
            out.extend(requests);
            if !matches!(other, m::Order::App(_)) {
                apps.into_iter().for_each(|a| out.extend(apps_of(a)));
            }
            if !matches!(other, m::Order::Dataset(_)) {
                datasets.into_iter().for_each(|d| out.extend(datasets_of(d)));
            }
            if !matches!(other, m::Order::Workerpool(_)) {
                categories.into_iter().for_each(|c| out.extend(pools_of(c, MAX_CHOICES)));
            }
        }
    }
    out
}

impl Market {
    /// Explains a published order (open, or read from the store in any status).
    pub async fn explain(&self, subject: &OrderRecord) -> Result<Explanation, MarketError> {
        let remaining = if subject.status == OrderStatus::Open { subject.remaining } else { 0 };
        self.explain_view(subject.hash, &subject.order, subject.signer, subject.view, remaining, Some(subject.status))
            .await
    }

    /// Explains a draft: an order not published (not even signed), as if it were published now. What the chain
    /// consumed of it counts, as publication counts it.
    pub async fn explain_draft(&self, order: AnyOrder) -> Result<Explanation, PublishError> {
        let hash = order.order_hash(&self.domain);
        if let Some(r) = self.book.get(&hash) {
            return Ok(self.explain(&r).await?);
        }
        let volume = order.volume();
        let view = super::engine_order(&order, hash, volume)?;
        // From chain sync's index, as publication reads it (docs/architecture.md, "The chain index").
        let prior = crate::store::orders::prior_known(&self.store, &[hash])
            .await
            .map_err(MarketError::from)?
            .pop()
            .unwrap_or_default();
        let consumed = if prior.closed { volume } else { U256::from(prior.consumed) };
        let remaining = volume.saturating_sub(consumed).saturating_sub(U256::from(prior.reserved));
        let remaining = u64::try_from(remaining).unwrap_or(u64::MAX);
        let owner = match &order {
            AnyOrder::Request(r) => r.requester,
            AnyOrder::Workerpool(w) => {
                self.reader.owner(OrderKind::Workerpool, w.workerpool).await.map_err(MarketError::from)?
            }
            // App and dataset orders need no stake.
            _ => Address::ZERO,
        };
        Ok(self.explain_view(hash, &order, owner, view, remaining, None).await?)
    }

    async fn explain_view(
        &self,
        hash: OrderHash,
        order: &AnyOrder,
        owner: Address,
        view: m::Order,
        remaining: u64,
        status: Option<OrderStatus>,
    ) -> Result<Explanation, MarketError> {
        let records = gather(&self.book, &view);
        // The subject is explained as itself, never as its own counter-order.
        let others = || records.iter().filter(|r| r.hash != hash);
        let apps: Vec<Open<m::AppOrder>> = others().filter_map(|r| open(r, as_app)).collect();
        let datasets: Vec<Open<m::DatasetOrder>> = others().filter_map(|r| open(r, as_dataset)).collect();
        // Each workerpool order with its pool's current track record, as the engine holds it.
        let with_record = |mut w: Open<m::WorkerpoolOrder>| {
            w.order.record =
                self.book.record(&Address::from(w.order.workerpool.0)).unwrap_or_default().all_time.engine();
            w
        };
        let pools: Vec<Open<m::WorkerpoolOrder>> = others().filter_map(|r| open(r, as_pool)).map(with_record).collect();
        let view = match view {
            m::Order::Workerpool(w) => m::Order::Workerpool(with_record(Open { order: w, remaining }).order),
            other => other,
        };
        let requests: Vec<Open<m::RequestOrder>> = others().filter_map(|r| open(r, as_request)).collect();
        let offers = Offers { apps: &apps, datasets: &datasets, pools: &pools, requests: &requests };
        let pairings = m::explain::explain(&Open { order: view, remaining }, &offers, MAX_PAIRINGS);

        // Stakes: of the subject's owner, and of the requesters and workerpool owners shown.
        let by_hash: HashMap<m::OrderHash, &Arc<OrderRecord>> =
            records.iter().map(|r| (m::OrderHash(r.hash.0.0), r)).collect();
        let mut backers: Vec<(m::OrderHash, Address, U256)> = Vec::new();
        let subject_hash = m::OrderHash(hash.0.0);
        let need = required_stake(order, U256::from(remaining.max(1)));
        if !need.is_zero() && owner != Address::ZERO {
            backers.push((subject_hash, owner, need));
        }
        for p in &pairings {
            let members = [p.workerpool.map(|w| w.order.hash), p.request.map(|r| r.order.hash)];
            for h in members.into_iter().flatten() {
                if h == subject_hash || backers.iter().any(|b| b.0 == h) {
                    continue;
                }
                if let Some(r) = by_hash.get(&h) {
                    let need = required_stake(&r.order, U256::from(r.remaining.max(1)));
                    if !need.is_zero() {
                        backers.push((h, r.signer, need));
                    }
                }
            }
        }
        let accounts: BTreeSet<Address> = backers.iter().map(|b| b.1).collect();
        let reads = accounts.iter().map(|a| async move { (*a, self.reader.stake(*a).await) });
        let mut stakes = HashMap::new();
        for (a, s) in futures_util::future::join_all(reads).await {
            stakes.insert(a, s?);
        }
        let short: HashMap<m::OrderHash, String> = backers
            .iter()
            .filter_map(|(h, who, need)| {
                let have = stakes.get(who).copied().unwrap_or_default();
                (have < *need).then(|| {
                    let role = if by_hash.get(h).map_or(order.kind(), |r| r.kind()) == OrderKind::Request {
                        "requester"
                    } else {
                        "workerpool owner"
                    };
                    (
                        *h,
                        format!(
                            "the {role} {who} has a free stake of {have} nRLC, below the {need} nRLC the order needs"
                        ),
                    )
                })
            })
            .collect();

        let member = |kind: OrderKind, h: m::OrderHash, price: u64, remaining: u64| Member {
            kind,
            hash: OrderHash(B256::from(h.0)),
            price,
            remaining,
        };
        let combinations: Vec<Combination> = pairings
            .iter()
            .map(|p| {
                let mut blockers: Vec<Why> = p
                    .blockers
                    .iter()
                    .map(|b| Why {
                        code: code(*b),
                        poco: if let Blocker::Rule(r) = b { Some(r.code()) } else { None },
                        message: message(*b, p),
                    })
                    .collect();
                let members = [p.workerpool.map(|w| w.order.hash), p.request.map(|r| r.order.hash)];
                let mut stake_msgs: Vec<&String> = members.iter().flatten().filter_map(|h| short.get(h)).collect();
                if let Some(s) = short.get(&subject_hash)
                    && !stake_msgs.contains(&s)
                {
                    stake_msgs.push(s);
                }
                blockers.extend(stake_msgs.into_iter().map(|s| Why { code: "stake", poco: None, message: s.clone() }));
                Combination {
                    app: p.app.map(|x| member(OrderKind::App, x.order.hash, x.order.price.0, x.remaining)),
                    dataset: p.dataset.map(|x| member(OrderKind::Dataset, x.order.hash, x.order.price.0, x.remaining)),
                    workerpool: p
                        .workerpool
                        .map(|x| member(OrderKind::Workerpool, x.order.hash, x.order.price.0, x.remaining)),
                    request: p
                        .request
                        .map(|x| member(OrderKind::Request, x.order.hash, x.order.workerpool_max_price.0, x.remaining)),
                    blockers,
                }
            })
            .collect();
        Ok(Explanation {
            kind: order.kind(),
            hash,
            status,
            remaining,
            matches: combinations.iter().any(|c| c.blockers.is_empty()),
            combinations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every blocker has a code of its own, listed in `CODES` (the document's list); `stake` is the market's.
    #[test]
    fn codes_are_distinct_and_listed() {
        let mut blockers: Vec<Blocker> = m::Rule::ALL.into_iter().map(Blocker::Rule).collect();
        blockers.extend([
            Blocker::Volume(m::OrderKind::Request),
            Blocker::NoAppOrder,
            Blocker::NoDatasetOrder,
            Blocker::NoWorkerpoolOrder,
            Blocker::NoRequestOrder,
        ]);
        let mut codes: Vec<&str> = blockers.iter().map(|b| code(*b)).collect();
        codes.push("stake");
        let distinct: BTreeSet<&str> = codes.iter().copied().collect();
        assert_eq!(distinct.len(), codes.len(), "{codes:?}");
        assert_eq!(distinct, CODES.into_iter().collect::<BTreeSet<_>>());
    }
}
