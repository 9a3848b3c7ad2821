//! The publication rules: what an order must satisfy before it enters the book. Each refusal is a
//! [`PublishError`] with its own stable code (mapped to HTTP in `api/error.rs` only).
//!
//! The signature rule is the hub's own (`HubStorage._verifySignature`): a valid signature of the owner (ECDSA
//! with v 0/1/27/28 or EIP-2098, low s; ERC-1271 when the owner is a contract), or else a presignature by the
//! owner on chain. So an order accepted here is one `matchOrders` accepts.

use super::Market;
use super::convert::{TooLarge, engine_order};
use super::record::{OrderRecord, OrderStatus};
use crate::chain::ChainError;
use crate::ids::OrderHash;
use crate::order::{AnyOrder, OrderKind, signature};
use crate::store::orders::volume_fits;
use alloy::primitives::{Address, U256};
use dragon_matching as m;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why an order was not published (or unpublished).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid order: {0}")]
    InvalidOrder(String),
    #[error("the order is {size} bytes of JSON, more than the {limit} this exchange accepts")]
    OrderTooLarge { size: usize, limit: usize },
    #[error("field `params` is {size} bytes, more than the {limit} this exchange accepts")]
    ParamsTooLarge { size: usize, limit: usize },
    #[error("orderHash {claimed} does not match the order, whose hash is {actual}")]
    HashMismatch { claimed: OrderHash, actual: OrderHash },
    #[error("{0}")]
    ValueTooLarge(String),
    #[error("{kind} {asset} is not registered")]
    UnknownAsset { kind: OrderKind, asset: Address },
    #[error("the order belongs to {owner}, not to the authenticated {authenticated}")]
    NotOwner { owner: Address, authenticated: Address },
    #[error("the order is neither signed nor presigned on chain by its owner {owner}")]
    MissingSignature { owner: Address },
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    #[error("order {0} is already published")]
    Duplicate(OrderHash),
    #[error("order {hash} is {status}, and is never reopened", status = .status.as_str())]
    Closed { hash: OrderHash, status: OrderStatus },
    #[error("order {0} is fully consumed on chain")]
    FullyConsumed(OrderHash),
    #[error("stake of {account} is {available} nRLC, but this order needs {required} nRLC")]
    InsufficientStake { account: Address, required: U256, available: U256 },
    #[error("{signer} already has {limit} open {kind} orders, the most allowed")]
    TooManyOrders { signer: Address, kind: OrderKind, limit: usize },
    #[error("the book is full: {0}")]
    BookFull(String),
    #[error("no open {0} order can serve this request within its prices and restrictions")]
    NoCompatibleOffer(&'static str),
    #[error(
        "field `{field}`: {address} is a contract that is not a registered {role}; group restrictions (ERC-734) are not supported"
    )]
    UnsupportedRestriction { field: &'static str, address: Address, role: &'static str },
    #[error("order {0} is not open")]
    NotOpen(OrderHash),
    #[error("unknown order {0}")]
    NotFound(OrderHash),
    #[error("the chain is unavailable: {0}")]
    Chain(#[from] ChainError),
    #[error("the store is unavailable: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("the matching engine is unavailable")]
    MatchingDown,
    #[error("the exchange is shutting down")]
    ShuttingDown,
}

impl PublishError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::InvalidOrder(_) => "invalid_order",
            PublishError::OrderTooLarge { .. } => "order_too_large",
            PublishError::ParamsTooLarge { .. } => "params_too_large",
            PublishError::HashMismatch { .. } => "hash_mismatch",
            PublishError::ValueTooLarge(_) => "value_too_large",
            PublishError::UnknownAsset { .. } => "unknown_asset",
            PublishError::NotOwner { .. } => "not_owner",
            PublishError::MissingSignature { .. } => "missing_signature",
            PublishError::InvalidSignature(_) => "invalid_signature",
            PublishError::Duplicate(_) => "duplicate_order",
            PublishError::Closed { .. } => "order_closed",
            PublishError::FullyConsumed(_) => "fully_consumed",
            PublishError::InsufficientStake { .. } => "insufficient_stake",
            PublishError::TooManyOrders { .. } => "too_many_orders",
            PublishError::BookFull(_) => "book_full",
            PublishError::NoCompatibleOffer(_) => "no_compatible_offer",
            PublishError::UnsupportedRestriction { .. } => "unsupported_restriction",
            PublishError::NotOpen(_) => "order_not_open",
            PublishError::NotFound(_) => "order_not_found",
            PublishError::Chain(_) => "chain_unavailable",
            PublishError::Store(_) => "store_unavailable",
            PublishError::MatchingDown => "matching_unavailable",
            PublishError::ShuttingDown => "shutting_down",
        }
    }
}

impl From<TooLarge> for PublishError {
    fn from(e: TooLarge) -> Self {
        PublishError::ValueTooLarge(e.to_string())
    }
}

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

/// Reads a submitted order of `kind` from its JSON text, within the size bounds of `config`: the text is
/// measured before it is parsed, so an oversized document costs no more than its bytes on the wire.
pub fn parse_order(kind: OrderKind, text: &str, config: &super::MarketConfig) -> Result<AnyOrder, PublishError> {
    if text.len() > config.max_order_bytes {
        return Err(PublishError::OrderTooLarge { size: text.len(), limit: config.max_order_bytes });
    }
    let order = AnyOrder::from_json(kind, text).map_err(|e| PublishError::InvalidOrder(e.to_string()))?;
    if let AnyOrder::Request(r) = &order
        && r.params.len() > config.max_params_bytes
    {
        return Err(PublishError::ParamsTooLarge { size: r.params.len(), limit: config.max_params_bytes });
    }
    Ok(order)
}

impl Market {
    /// Checks an order against every publication rule that needs no commit, and returns the record to publish
    /// (without its arrival number). `authenticated` is the address that logged in.
    pub async fn check(
        &self,
        order: AnyOrder,
        claimed: Option<OrderHash>,
        authenticated: Address,
    ) -> Result<OrderRecord, PublishError> {
        let hash = order.order_hash(&self.domain);
        if let Some(claimed) = claimed
            && claimed != hash
        {
            return Err(PublishError::HashMismatch { claimed, actual: hash });
        }
        let volume = order.volume();
        if volume.is_zero() {
            return Err(PublishError::InvalidOrder("field `volume`: must be at least 1".into()));
        }
        if !volume_fits(volume) {
            return Err(PublishError::ValueTooLarge(format!("field `volume`: {volume} is too large (at most 2^63-1)")));
        }
        let view = engine_order(&order, hash, volume)?;
        if let m::Order::Request(r) = view
            && r.app == m::Address::ZERO
        {
            return Err(PublishError::InvalidOrder("field `app`: a request order must name an app".into()));
        }
        if self.book.get(&hash).is_some() {
            return Err(PublishError::Duplicate(hash));
        }

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
        let open = self.book.open_count(kind, owner);
        if open >= self.config.max_open_orders {
            return Err(PublishError::TooManyOrders { signer: owner, kind, limit: self.config.max_open_orders });
        }
        self.check_capacity(&order)?;

        // Chain reads, concurrently: restrictions, signature, consumed volume, stake.
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
        let signature = self.check_signature(&order, hash, owner);
        let consumed = async { Ok::<_, PublishError>(self.reader.consumed(hash).await?) };
        let (r, s, consumed) = tokio::join!(restrictions, signature, consumed);
        r?;
        s?;
        let consumed = consumed?;
        let remaining = volume.saturating_sub(consumed);
        if remaining.is_zero() {
            return Err(PublishError::FullyConsumed(hash));
        }
        let remaining_u64 = remaining.to::<u64>();
        self.check_stake(&order, owner, remaining).await?;
        if let AnyOrder::Request(r) = &order {
            self.check_offers(r)?;
        }
        Ok(OrderRecord {
            seq: 0,
            hash,
            chain_id: self.chain_id,
            json: super::record::raw_json(&order),
            order,
            signer: owner,
            remaining: remaining_u64,
            status: OrderStatus::Open,
            published_ms: now_ms(),
            view,
        })
    }

    async fn check_signature(&self, order: &AnyOrder, hash: OrderHash, owner: Address) -> Result<(), PublishError> {
        let sign = order.sign().filter(|s| !s.is_empty()).cloned();
        let mut refusal = None;
        if let Some(sign) = sign {
            if self.reader.has_code(owner).await? {
                if self.reader.contract_accepts(owner, hash.0, sign).await? {
                    return Ok(());
                }
                refusal = Some(format!("the contract {owner} does not accept this signature (ERC-1271)"));
            } else {
                // Recovery is ~30 µs of CPU: run it off the async threads, in parallel with other orders.
                let digest = hash.0;
                let res = tokio::task::spawn_blocking(move || signature::recover_signer(&digest, &sign))
                    .await
                    .map_err(|_| PublishError::InvalidSignature("verification failed".into()))?;
                match res {
                    Ok(signer) if signer == owner => return Ok(()),
                    Ok(signer) => refusal = Some(format!("signed by {signer}, not by the owner {owner}")),
                    Err(e) => refusal = Some(e.to_string()),
                }
            }
        }
        // As the hub: without a valid signature, a presignature by the owner will do.
        if self.reader.presigned(hash).await? == owner {
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
        let available = self.reader.stake(owner).await?;
        if available < required {
            return Err(PublishError::InsufficientStake { account: owner, required, available });
        }
        Ok(())
    }

    /// A request is refused when no open app order (and dataset order, when it names one) can serve it.
    fn check_offers(&self, r: &crate::order::RequestOrder) -> Result<(), PublishError> {
        let admits = |restrict: Address, candidate: Address| restrict == Address::ZERO || restrict == candidate;
        // PoCo rule 07: a TEE request needs a TEE app.
        let tee = |tag: &alloy::primitives::B256| tag.0[31] & 1 == 1;
        let app_ok = self.book.any_of_asset(OrderKind::App, r.app, |rec| {
            matches!(&rec.order, AnyOrder::App(a)
                if a.appprice.0 <= r.appmaxprice.0
                    && (!tee(&r.tag) || tee(&a.tag))
                    && admits(a.datasetrestrict, r.dataset)
                    && admits(a.requesterrestrict, r.requester)
                    && (r.workerpool == Address::ZERO || admits(a.workerpoolrestrict, r.workerpool)))
        });
        if !app_ok {
            return Err(PublishError::NoCompatibleOffer("app"));
        }
        if r.dataset != Address::ZERO {
            let dataset_ok = self.book.any_of_asset(OrderKind::Dataset, r.dataset, |rec| {
                matches!(&rec.order, AnyOrder::Dataset(d)
                    if d.datasetprice.0 <= r.datasetmaxprice.0
                        && admits(d.apprestrict, r.app)
                        && admits(d.requesterrestrict, r.requester)
                        && (r.workerpool == Address::ZERO || admits(d.workerpoolrestrict, r.workerpool)))
            });
            if !dataset_ok {
                return Err(PublishError::NoCompatibleOffer("dataset"));
            }
        }
        Ok(())
    }
}

/// The free stake an order needs for its whole `remaining` volume, as the hub locks it at matching (PoCo: the
/// pool owner's stake is 30% of the workerpool price per task; the requester pays the three prices per
/// task). Zero for app and dataset orders.
pub fn required_stake(order: &AnyOrder, remaining: U256) -> U256 {
    let per_task = match order {
        AnyOrder::Workerpool(o) => o.workerpoolprice.0.saturating_mul(U256::from(30)) / U256::from(100),
        AnyOrder::Request(o) => {
            o.appmaxprice.0.saturating_add(o.datasetmaxprice.0).saturating_add(o.workerpoolmaxprice.0)
        }
        _ => return U256::ZERO,
    };
    per_task.saturating_mul(remaining)
}
