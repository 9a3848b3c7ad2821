//! The publication rules: what an order must satisfy before it enters the book. Each refusal is a
//! [`PublishError`], whose status and stable code are given in `api/error.rs` only.
//!
//! The signature rule is the hub's own (`HubStorage._verifySignature`): a valid signature of the owner (ECDSA
//! with v 0/1/27/28 or EIP-2098, low s; ERC-1271 when the owner is a contract), or else a presignature by the
//! owner on chain. So an order accepted here is one `matchOrders` accepts.

use super::{Market, MarketError};
use crate::chain::ChainError;
use crate::ids::OrderHash;
use crate::order::convert::{TooLarge, engine_order};
use crate::order::record::{OrderRecord, OrderStatus};
pub use crate::order::required_stake;
use crate::order::signature::SignatureError;
use crate::order::{AnyOrder, OrderKind};
use crate::store::orders::volume_fits;
use alloy::primitives::{Address, B256, Bytes, U256};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why an order was not published (or unpublished). The messages are iexec-market-api's own, word for word
/// (its clients match them); what only Dragon checks has its own message. The stable code says the same for
/// programs.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The body breaks a validation rule: the message is yup's, as the peer writes it (`order.volume must be
    /// greater than or equal to 1`).
    #[error("{0}")]
    InvalidOrder(String),
    #[error("the order is {size} bytes of JSON, more than the {limit} this exchange accepts")]
    OrderTooLarge { size: usize, limit: usize },
    #[error("field `params` is {size} bytes, more than the {limit} this exchange accepts")]
    ParamsTooLarge { size: usize, limit: usize },
    /// The request's params ask a minimum track record in a form Dragon does not read (`docs/track-records.md`).
    #[error("{0}")]
    InvalidTrackRecord(String),
    #[error("orderHash {claimed} does not match the order, whose hash is {actual}")]
    HashMismatch { claimed: OrderHash, actual: OrderHash },
    /// A uint beyond what the order book holds, in yup's words with Dragon's bound.
    #[error("{0}")]
    ValueTooLarge(String),
    #[error("Resource not deployed")]
    UnknownAsset { kind: OrderKind, asset: Address },
    #[error("only order signer {owner} can publish an order")]
    NotOwner { owner: Address, authenticated: Address },
    /// No signature and no presignature on chain (the reason is logged, never answered: the peer says only this).
    #[error("invalid sign")]
    MissingSignature { owner: Address },
    #[error("invalid sign")]
    InvalidSignature(String),
    #[error("order already published")]
    Duplicate(OrderHash),
    /// Filled or cancelled on chain: the record stays, and the same order is not published again.
    #[error("order already published")]
    Closed { hash: OrderHash, status: OrderStatus },
    #[error("order already consumed")]
    FullyConsumed(OrderHash),
    #[error("{}", stake_message(*.kind, .required))]
    InsufficientStake { kind: OrderKind, account: Address, required: U256, available: U256 },
    #[error("maximum of {limit} published open {kind}order has been reached for wallet {signer}")]
    TooManyOrders { signer: Address, kind: OrderKind, limit: usize },
    #[error("the book is full: {0}")]
    BookFull(String),
    #[error("No {}apporder published for app {app}", if *.tee { "tee enabled " } else { "" })]
    NoAppOrder { app: Address, tee: bool },
    #[error("appmaxprice for app {app} is too low, actual best price is {best} nRLC")]
    AppPriceTooLow { app: Address, best: u64 },
    #[error("No datasetorder published for dataset {dataset}")]
    NoDatasetOrder { dataset: Address },
    #[error("datasetmaxprice for dataset {dataset} is too low, actual best price is {best} nRLC")]
    DatasetPriceTooLow { dataset: Address, best: u64 },
    #[error(
        "field `{field}`: {address} is a contract that is not a registered {role}; group restrictions (ERC-734) are not supported"
    )]
    UnsupportedRestriction { field: &'static str, address: Address, role: &'static str },
    /// Unpublication of an order that is not open (or not of this kind).
    #[error("{kind}order with orderHash {hash} is not published")]
    NotPublished { kind: OrderKind, hash: OrderHash },
    #[error("only order signer {signer} can unpublish an order")]
    NotSigner { signer: Address },
    #[error("no open {kind}order published by signer {signer} for {field} {address}")]
    NothingToUnpublish { kind: OrderKind, signer: Address, field: &'static str, address: Address },
    /// Not a refusal: the market could not check or take the order (store, chain or engine unavailable).
    #[error(transparent)]
    Market(#[from] super::MarketError),
}

impl From<ChainError> for PublishError {
    fn from(e: ChainError) -> Self {
        PublishError::Market(e.into())
    }
}

impl From<crate::store::StoreError> for PublishError {
    fn from(e: crate::store::StoreError) -> Self {
        PublishError::Market(e.into())
    }
}

fn stake_message(kind: OrderKind, required: &U256) -> String {
    match kind {
        OrderKind::Workerpool => "workerpool owner's stake is too low to cover required workerpool lock".into(),
        _ => format!(
            "requester stake is too low to cover requestorder payment, minimum stake required is {required} nRLC"
        ),
    }
}

impl From<TooLarge> for PublishError {
    fn from(e: TooLarge) -> Self {
        PublishError::ValueTooLarge(format!("order.{} must be less than or equal to {}", e.field, u64::MAX))
    }
}

/// Orders of a batch checked together (see `check_many`).
const GROUP: usize = 25;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Restrictions of `order`: (field, address, the registry role a plain restriction names, kind of that role).
fn restrictions(order: &AnyOrder) -> Vec<(&'static str, Address, Option<OrderKind>)> {
    let mut v = match order {
        AnyOrder::App(o) => vec![
            ("datasetrestrict", o.datasetrestrict, Some(OrderKind::Dataset)),
            ("workerpoolrestrict", o.workerpoolrestrict, Some(OrderKind::Workerpool)),
            ("requesterrestrict", o.requesterrestrict, None),
        ],
        AnyOrder::Dataset(o) => vec![
            ("apprestrict", o.apprestrict, Some(OrderKind::App)),
            ("workerpoolrestrict", o.workerpoolrestrict, Some(OrderKind::Workerpool)),
            ("requesterrestrict", o.requesterrestrict, None),
        ],
        AnyOrder::Workerpool(o) => vec![
            ("apprestrict", o.apprestrict, Some(OrderKind::App)),
            ("datasetrestrict", o.datasetrestrict, Some(OrderKind::Dataset)),
            ("requesterrestrict", o.requesterrestrict, None),
        ],
        AnyOrder::Request(o) => vec![("workerpool", o.workerpool, Some(OrderKind::Workerpool))],
    };
    v.retain(|(_, a, _)| *a != Address::ZERO);
    v
}

fn role(kind: Option<OrderKind>) -> &'static str {
    match kind {
        Some(OrderKind::App) => "app",
        Some(OrderKind::Dataset) => "dataset",
        Some(OrderKind::Workerpool) => "workerpool",
        _ => "requester",
    }
}

impl Market {
    /// Checks an order against every publication rule that needs no commit, and returns the record to publish
    /// (without its arrival number). `authenticated` is the address that logged in.
    ///
    /// The rules are iexec-market-api's, checked in its order so that an order breaking several gets the
    /// peer's answer: already published, asset registered and owned by the signer, signature, open orders of
    /// the signer, volume left on chain, stake, a matchable app (and dataset) order for a request. Dragon's own
    /// bounds (book capacity, restrictions to contracts) come after the peer's rule they are closest to.
    pub async fn check(
        &self,
        order: AnyOrder,
        claimed: Option<OrderHash>,
        authenticated: Address,
    ) -> Result<OrderRecord, PublishError> {
        self.check_many(vec![Ok((order, claimed))], authenticated)
            .await
            .pop()
            .unwrap_or(Err(PublishError::Market(MarketError::ShuttingDown)))
    }

    /// [`Market::check`] of many orders of one signer: what the store knows of them is read in one query, then
    /// each is checked (concurrently); one answer per order, in order.
    pub async fn check_many(
        &self,
        orders: Vec<Result<(AnyOrder, Option<OrderHash>), PublishError>>,
        authenticated: Address,
    ) -> Vec<Result<OrderRecord, PublishError>> {
        let hashes: Vec<OrderHash> = orders.iter().flatten().map(|(o, _)| o.order_hash(&self.domain)).collect();
        // Every signature goes to the recovery threads at once, while the store is read: recovery is most of the
        // work, and a signature is recovered whether or not an earlier rule will refuse its order, which costs a
        // stranger's batch no more than a valid one (the rate per address counts both).
        let sign_of = |o: &AnyOrder| o.sign().filter(|s| !s.is_empty()).cloned();
        let signed: Vec<(B256, Bytes)> =
            orders.iter().flatten().zip(&hashes).filter_map(|((o, _), h)| Some((h.0, sign_of(o)?))).collect();
        let (priors, recovered) =
            tokio::join!(crate::store::orders::prior_known(&self.store, &hashes), self.recoverer.recover_many(signed));
        let mut priors = match priors {
            Ok(p) => p.into_iter(),
            Err(e) => {
                // Every order of the batch waits on this one read: each gets its error.
                let e = e.to_string();
                let down = || PublishError::Market(MarketError::Store(crate::store::StoreError::Pool(e.clone())));
                return orders.iter().map(|_| Err(down())).collect();
            }
        };
        let mut recovered = recovered.into_iter();
        let mut hashes = hashes.into_iter();
        let checks: Vec<_> = orders
            .into_iter()
            .map(|o| {
                o.map(|(order, claimed)| {
                    let pre = sign_of(&order).and_then(|_| recovered.next());
                    (order, claimed, hashes.next(), priors.next(), pre)
                })
            })
            .collect();
        // Checked in groups small enough for `join_all` to poll them in place (past 30 it allocates a task per
        // future): within a group, a read of the chain for an asset the index has not seen yet runs concurrently.
        let mut out = Vec::with_capacity(checks.len());
        let mut checks = checks.into_iter().peekable();
        while checks.peek().is_some() {
            let group = checks.by_ref().take(GROUP).map(|c| async move {
                match c? {
                    (order, claimed, Some(hash), Some(prior), pre) => {
                        self.check_with(order, hash, claimed, authenticated, prior, pre).await
                    }
                    _ => Err(PublishError::Market(MarketError::ShuttingDown)),
                }
            });
            out.extend(futures_util::future::join_all(group).await);
        }
        out
    }

    async fn check_with(
        &self,
        order: AnyOrder,
        hash: OrderHash,
        claimed: Option<OrderHash>,
        authenticated: Address,
        prior: crate::store::orders::Prior,
        recovered: Option<Result<Address, SignatureError>>,
    ) -> Result<OrderRecord, PublishError> {
        if let Some(claimed) = claimed
            && claimed != hash
        {
            return Err(PublishError::HashMismatch { claimed, actual: hash });
        }
        let volume = order.volume();
        if !volume_fits(volume) {
            return Err(PublishError::ValueTooLarge(format!(
                "order.volume must be less than or equal to {}",
                i64::MAX
            )));
        }
        let view = engine_order(&order, hash, volume)?;
        if let AnyOrder::Request(r) = &order {
            crate::order::convert::min_track_record(&r.params).map_err(PublishError::InvalidTrackRecord)?;
        }

        // Already published: open, filled or cancelled on chain. A dead order (its owner lost the stake or the
        // asset) may come back, with its first publication time, as the peer keeps it.
        if self.book.get(&hash).is_some() {
            return Err(PublishError::Duplicate(hash));
        }
        let published_ms = match prior.stored {
            Some((OrderStatus::Dead, at)) => at,
            Some((OrderStatus::Open, _)) => return Err(PublishError::Duplicate(hash)),
            Some((status, _)) => return Err(PublishError::Closed { hash, status }),
            None => now_ms(),
        };

        let kind = order.kind();
        let owner = match &order {
            AnyOrder::Request(r) => r.requester,
            _ => {
                let asset = match &order {
                    AnyOrder::App(o) => o.app,
                    AnyOrder::Dataset(o) => o.dataset,
                    AnyOrder::Workerpool(o) => o.workerpool,
                    AnyOrder::Request(o) => o.app,
                };
                let owner = self.reader.owner(kind, asset).await?;
                if owner == Address::ZERO {
                    return Err(PublishError::UnknownAsset { kind, asset });
                }
                owner
            }
        };
        if owner != authenticated {
            return Err(PublishError::NotOwner { owner, authenticated });
        }

        // Restrictions and signature, concurrently (each reads the chain only for an address the index has never
        // seen, or for a contract signer); their verdicts in the peer's order.
        let restrictions = async {
            for (field, address, role_kind) in restrictions(&order) {
                if !self.reader.has_code(address).await? {
                    continue;
                }
                let registered = match role_kind {
                    Some(k) => self.reader.owner(k, address).await? != Address::ZERO,
                    None => false,
                };
                if !registered {
                    return Err(PublishError::UnsupportedRestriction { field, address, role: role(role_kind) });
                }
            }
            Ok(())
        };
        let signature = self.check_signature(&order, hash, owner, prior.presigner, recovered);
        let (r, s) = tokio::join!(restrictions, signature);
        s?;
        let open = self.book.open_count(kind, owner);
        if open >= self.config.max_open_orders {
            return Err(PublishError::TooManyOrders { signer: owner, kind, limit: self.config.max_open_orders });
        }
        self.check_capacity(&order)?;
        // What the chain consumed (all of it once closed), and what the engine's unsettled proposals hold of it.
        let consumed = if prior.closed { volume } else { U256::from(prior.consumed) };
        let remaining = volume.saturating_sub(consumed).saturating_sub(U256::from(prior.reserved));
        if remaining.is_zero() {
            return Err(PublishError::FullyConsumed(hash));
        }
        let remaining_u64 = remaining.to::<u64>();
        self.check_stake(&order, owner, remaining).await?;
        if let AnyOrder::Request(r) = &order {
            self.check_offers(r)?;
        }
        r?;
        Ok(OrderRecord {
            seq: 0,
            hash,
            chain_id: self.chain_id,
            json: super::record::raw_json(&order),
            order,
            signer: owner,
            remaining: remaining_u64,
            status: OrderStatus::Open,
            published_ms,
            view,
            shown: Default::default(),
        })
    }

    async fn check_signature(
        &self,
        order: &AnyOrder,
        hash: OrderHash,
        owner: Address,
        presigner: Option<Address>,
        recovered: Option<Result<Address, SignatureError>>,
    ) -> Result<(), PublishError> {
        let sign = order.sign().filter(|s| !s.is_empty()).cloned();
        let mut refusal = None;
        if let Some(sign) = sign {
            if self.reader.has_code(owner).await? {
                if self.reader.contract_accepts(owner, hash.0, sign).await? {
                    return Ok(());
                }
                refusal = Some(format!("the contract {owner} does not accept this signature (ERC-1271)"));
            } else {
                // Recovery is ~30 µs of CPU: off the async threads, batched with other orders' (`Recoverer`).
                let recovered = match recovered {
                    Some(r) => r,
                    None => self.recoverer.recover(hash.0, sign).await,
                };
                match recovered {
                    Ok(signer) if signer == owner => return Ok(()),
                    Ok(signer) => refusal = Some(format!("signed by {signer}, not by the owner {owner}")),
                    // Not a verdict on the signature: the exchange is stopping (503, not 403).
                    Err(SignatureError::Unavailable) => {
                        return Err(MarketError::ShuttingDown.into());
                    }
                    Err(e) => refusal = Some(e.to_string()),
                }
            }
        }
        // As the hub: without a valid signature, a presignature by the owner will do. The index has every
        // presignature up to sync's cursor; one made since (the usual flow: presign, then publish at once) is
        // read from the node before refusing, so only a refusal can cost that read.
        if presigner == Some(owner) || self.reader.presigned(hash, None).await? == owner {
            return Ok(());
        }
        Err(match refusal {
            Some(r) => PublishError::InvalidSignature(r),
            None => PublishError::MissingSignature { owner },
        })
    }

    /// The caps that keep every engine operation bounded (see [`super::MarketConfig`]).
    fn check_capacity(&self, order: &AnyOrder) -> Result<(), PublishError> {
        let c = &self.config;
        let (kind, category) = match order {
            AnyOrder::Workerpool(o) => (OrderKind::Workerpool, o.category),
            AnyOrder::Request(o) => {
                if self.book.asset_count(OrderKind::Request, o.app) >= c.max_requests_per_asset {
                    return Err(PublishError::BookFull(format!(
                        "app {} already has {} open requests",
                        o.app, c.max_requests_per_asset
                    )));
                }
                if o.dataset != Address::ZERO && self.book.requests_of_dataset(o.dataset) >= c.max_requests_per_asset {
                    return Err(PublishError::BookFull(format!(
                        "dataset {} already has {} open requests",
                        o.dataset, c.max_requests_per_asset
                    )));
                }
                (OrderKind::Request, o.category)
            }
            _ => return Ok(()),
        };
        let category = u64::try_from(category).unwrap_or(u64::MAX);
        if self.book.category_count(kind, category) >= c.max_orders_per_category {
            return Err(PublishError::BookFull(format!(
                "category {category} already has {} open {kind} orders",
                c.max_orders_per_category
            )));
        }
        Ok(())
    }

    async fn check_stake(&self, order: &AnyOrder, owner: Address, remaining: U256) -> Result<(), PublishError> {
        // What the hub locks when the whole remaining volume is matched (PoCo: the pool owner's stake is
        // 30% of the workerpool price per task; the requester pays the three prices per task).
        let required = required_stake(order, remaining);
        if required.is_zero() {
            return Ok(());
        }
        let mut available = self.reader.stake(owner).await?;
        if available < required {
            // The index may predate a deposit that sync has not applied yet: a refusal is confirmed fresh.
            available = self.reader.stake_fresh(owner).await?;
        }
        if available < required {
            return Err(PublishError::InsufficientStake { kind: order.kind(), account: owner, required, available });
        }
        Ok(())
    }

    fn check_offers(&self, r: &crate::order::RequestOrder) -> Result<(), PublishError> {
        matchable(&self.book, r)
    }
}

/// A request needs an open app order it can be matched with (and a dataset order, when it names a dataset),
/// as the peer decides it: the cheapest (then oldest) order whose restrictions admit the request's
/// workerpool, dataset or app, and requester (a TEE request needs a TEE app order), and a max price that
/// covers that order's price.
pub(super) fn matchable(book: &super::book::Book, r: &crate::order::RequestOrder) -> Result<(), PublishError> {
    let admits = |restrict: Address, candidate: Address| restrict == Address::ZERO || restrict == candidate;
    let tee = |tag: &alloy::primitives::B256| tag.0[31] & 1 == 1;
    let needs_tee = tee(&r.tag);
    let best_app = book.first_of_asset(OrderKind::App, r.app, |rec| {
        matches!(&rec.order, AnyOrder::App(a)
            if admits(a.workerpoolrestrict, r.workerpool)
                && admits(a.datasetrestrict, r.dataset)
                && admits(a.requesterrestrict, r.requester)
                && (!needs_tee || tee(&a.tag)))
    });
    match best_app {
        None => return Err(PublishError::NoAppOrder { app: r.app, tee: needs_tee }),
        Some(a) if U256::from(a.price()) > r.appmaxprice.0 => {
            return Err(PublishError::AppPriceTooLow { app: r.app, best: a.price() });
        }
        Some(_) => {}
    }
    if r.dataset != Address::ZERO {
        let best = book.first_of_asset(OrderKind::Dataset, r.dataset, |rec| {
            matches!(&rec.order, AnyOrder::Dataset(d)
                if admits(d.workerpoolrestrict, r.workerpool)
                    && admits(d.apprestrict, r.app)
                    && admits(d.requesterrestrict, r.requester))
        });
        match best {
            None => return Err(PublishError::NoDatasetOrder { dataset: r.dataset }),
            Some(d) if U256::from(d.price()) > r.datasetmaxprice.0 => {
                return Err(PublishError::DatasetPriceTooLow { dataset: r.dataset, best: d.price() });
            }
            Some(_) => {}
        }
    }
    Ok(())
}
