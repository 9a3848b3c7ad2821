//! `dragon bot`: the market maker of one workerpool. It keeps the exchange's book supplied with the pool's
//! workerpool orders, sized to the pool's free capacity, and priced by a strategy.
//!
//! ```text
//!  dragon pool ──GET /capacity (free slots)──▶ bot ◀──GET /workerpoolorders, /depth, /ohlc── exchange
//!                                               │ per category, every tick: strategy price + capacity share
//!                                               └──POST /workerpoolorders (signed, fresh salt) / PUT (unpublish)──▶ exchange
//!  GET /metrics, /status on the bot's own listener: every decision, with its reason
//! ```
//!
//! - [`capacity`] splits the free slots between the served categories and turns (offer, share, price) into an
//!   [`capacity::Action`];
//! - [`strategy`] prices: `fixed` (a price per category) or `follow` (the book and recent deals, in bounds);
//! - [`client`] is the HTTP side (the pool's `/capacity`, the exchange's REST API with one session);
//! - [`metrics`] counts and shows decisions.
//!
//! The bot keeps one open order per category. It forgets its orders when it stops: it withdraws them all on the
//! way out, and again at start (a bot killed hard left them in the book).

pub mod capacity;
pub mod client;
pub mod metrics;
pub mod strategy;

use crate::chain::ChainError;
use crate::chain::contracts::hub::DragonHub;
use crate::chain::deploy::Deployment;
use crate::money::Nrlc;
use crate::order::{AnyOrder, Domain, WorkerpoolOrder};
use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use capacity::{Action, Offer};
use clap::{Args, ValueEnum};
use client::{ClientError, ExchangeClient, PoolClient};
use metrics::{CategoryView, Metrics};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use strategy::{Bounds, MarketView, Strategy};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyKind {
    Fixed,
    Follow,
}

/// The flags of `dragon bot`. The workerpool owner's key comes from the environment only (`DRAGON_POOL_KEY`).
#[derive(Debug, Args)]
pub struct BotArgs {
    /// The workerpool whose orders the bot publishes (its owner's key is DRAGON_POOL_KEY).
    #[arg(long, value_parser = crate::wire::json::parse_address)]
    pub workerpool: Address,
    /// The exchange's base URL (`dragon serve`).
    #[arg(long)]
    pub exchange: String,
    /// The pool's base URL (`dragon pool`), for its free capacity.
    #[arg(long)]
    pub pool: String,
    /// The chain: the workerpool's owner and the categories are checked there, and the deployment gives the
    /// orders' EIP-712 domain.
    #[command(flatten)]
    pub chain: crate::config::ChainArgs,
    /// A category to serve (repeat for several); the free capacity is split between them.
    #[arg(long = "category", value_name = "ID", required = true)]
    pub categories: Vec<u64>,
    /// How to price: `fixed` (--price) or `follow` (--min, --max, --step).
    #[arg(long, value_enum)]
    pub strategy: StrategyKind,
    /// Fixed price in nRLC: `N` for every category, or `CATEGORY=N` (repeat).
    #[arg(long = "price", value_name = "[CATEGORY=]NRLC")]
    pub prices: Vec<String>,
    /// The follow strategy's lowest price (nRLC).
    #[arg(long)]
    pub min: Option<u64>,
    /// The follow strategy's highest price (nRLC).
    #[arg(long)]
    pub max: Option<u64>,
    /// How far below the best competing ask the follow strategy prices (nRLC).
    #[arg(long, default_value_t = 1)]
    pub step: u64,
    /// The orders' trust.
    #[arg(long, default_value_t = 1)]
    pub trust: u64,
    /// The orders' tag (bytes32, 0x-hex).
    #[arg(long, value_parser = crate::wire::json::parse_bytes32)]
    pub tag: Option<B256>,
    /// Restrict the orders to one app.
    #[arg(long, value_parser = crate::wire::json::parse_address)]
    pub apprestrict: Option<Address>,
    /// Restrict the orders to one dataset.
    #[arg(long, value_parser = crate::wire::json::parse_address)]
    pub datasetrestrict: Option<Address>,
    /// Restrict the orders to one requester.
    #[arg(long, value_parser = crate::wire::json::parse_address)]
    pub requesterrestrict: Option<Address>,
    /// The largest volume of one order.
    #[arg(long, default_value_t = 100)]
    pub max_volume: u64,
    /// How often the bot looks at the pool and the book, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub tick_ms: u64,
    /// Address of the bot's own listener (`/metrics`, `/status`).
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("{0:#x} is not the owner of workerpool {1:#x} (its owner is {2:#x})")]
    NotOwner(Address, Address, Address),
    #[error("HTTP listener: {0}")]
    Http(#[source] std::io::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What the orders carry besides price, volume and category: the pool's stake, trust and tag choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerms {
    pub trust: u64,
    pub tag: B256,
    pub apprestrict: Address,
    pub datasetrestrict: Address,
    pub requesterrestrict: Address,
}

impl Default for OrderTerms {
    fn default() -> Self {
        OrderTerms {
            trust: 1,
            tag: B256::ZERO,
            apprestrict: Address::ZERO,
            datasetrestrict: Address::ZERO,
            requesterrestrict: Address::ZERO,
        }
    }
}

/// The typed configuration of one bot.
#[derive(Debug, Clone)]
pub struct BotConfig {
    pub workerpool: Address,
    pub owner: PrivateKeySigner,
    pub exchange_url: String,
    pub pool_url: String,
    pub rpc_url: String,
    pub deployment: Deployment,
    pub categories: Vec<u64>,
    pub strategy: Strategy,
    pub terms: OrderTerms,
    pub max_volume: u64,
    pub tick: Duration,
    pub listen: SocketAddr,
}

fn parse_prices(categories: &[u64], raw: &[String]) -> Result<BTreeMap<u64, u64>, BotError> {
    let mut prices = BTreeMap::new();
    for p in raw {
        let bad = || BotError::Config(format!("--price `{p}`: expected NRLC or CATEGORY=NRLC (integers)"));
        match p.split_once('=') {
            Some((c, n)) => {
                let c: u64 = c.trim().parse().map_err(|_| bad())?;
                if !categories.contains(&c) {
                    return Err(BotError::Config(format!("--price `{p}`: category {c} is not served (--category)")));
                }
                prices.insert(c, n.trim().parse().map_err(|_| bad())?);
            }
            None => {
                let n: u64 = p.trim().parse().map_err(|_| bad())?;
                for c in categories {
                    prices.entry(*c).or_insert(n);
                }
            }
        }
    }
    if let Some(c) = categories.iter().find(|c| !prices.contains_key(c)) {
        return Err(BotError::Config(format!("the fixed strategy needs a price for category {c}: --price {c}=NRLC")));
    }
    Ok(prices)
}

impl BotArgs {
    pub fn into_config(self) -> Result<BotConfig, BotError> {
        let owner =
            crate::config::key_from_env("DRAGON_POOL_KEY", "the workerpool owner's").map_err(BotError::Config)?;
        let mut categories = self.categories.clone();
        categories.sort_unstable();
        categories.dedup();
        let strategy = match self.strategy {
            StrategyKind::Fixed => {
                if self.min.is_some() || self.max.is_some() {
                    return Err(BotError::Config("--min and --max belong to --strategy follow".into()));
                }
                Strategy::Fixed(parse_prices(&categories, &self.prices)?)
            }
            StrategyKind::Follow => {
                if !self.prices.is_empty() {
                    return Err(BotError::Config(
                        "--price belongs to --strategy fixed; follow takes --min and --max".into(),
                    ));
                }
                let (Some(min), Some(max)) = (self.min, self.max) else {
                    return Err(BotError::Config("--strategy follow needs --min and --max (nRLC)".into()));
                };
                if min > max {
                    return Err(BotError::Config(format!("--min {min} is above --max {max}")));
                }
                Strategy::Follow(Bounds { min, max, step: self.step })
            }
        };
        if self.trust == 0 {
            return Err(BotError::Config("--trust must be at least 1".into()));
        }
        if self.max_volume == 0 {
            return Err(BotError::Config("--max-volume must be at least 1".into()));
        }
        for (name, url) in [("--exchange", &self.exchange), ("--pool", &self.pool)] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(BotError::Config(format!("{name} `{url}` is not an http(s) URL")));
            }
        }
        let deployment = Deployment::read(&self.chain.deployment)?;
        Ok(BotConfig {
            workerpool: self.workerpool,
            owner,
            exchange_url: self.exchange,
            pool_url: self.pool,
            rpc_url: self.chain.rpc_url,
            deployment,
            categories,
            strategy,
            terms: OrderTerms {
                trust: self.trust,
                tag: self.tag.unwrap_or_default(),
                apprestrict: self.apprestrict.unwrap_or_default(),
                datasetrestrict: self.datasetrestrict.unwrap_or_default(),
                requesterrestrict: self.requesterrestrict.unwrap_or_default(),
            },
            max_volume: self.max_volume,
            tick: Duration::from_millis(self.tick_ms.max(50)),
            listen: self.listen,
        })
    }
}

/// The bot's order in one category.
#[derive(Debug, Clone)]
struct Held {
    hash: String,
    price: u64,
    /// The remaining volume last seen, to count what deals consumed.
    remaining: u64,
}

struct Bot {
    config: BotConfig,
    /// The owner's account on chain, to read its free stake.
    account: crate::chain::setup::Account,
    domain: Domain,
    pool: PoolClient,
    exchange: ExchangeClient,
    metrics: Metrics,
    held: BTreeMap<u64, Held>,
    /// Categories whose last order was filled and not yet replaced: the next publication is its renewal, even
    /// if capacity only comes back ticks later.
    filled: std::collections::BTreeSet<u64>,
    /// Volume consumed from the bot's orders since it started, and the pool's task count when it started: their
    /// difference is volume dealt that the pool has not recorded as tasks yet (it reads deals every poll).
    consumed: u64,
    tasks_at_start: Option<u64>,
    /// Since when that difference has been above zero. A deal the hub refused never becomes tasks: past
    /// [`PENDING_LIMIT`] the bot stops waiting for them rather than under-offer for good.
    pending_since: Option<std::time::Instant>,
}

/// How long consumed volume may wait for the pool to record it as tasks (the pool reads deals every poll,
/// 1 s by default; settlement takes a block or a few).
const PENDING_LIMIT: Duration = Duration::from_secs(60);

/// Runs the bot until `shutdown` resolves: checks the owner and the categories on chain, withdraws what an
/// earlier run left in the book, then ticks; on the way out it withdraws its orders.
pub async fn run(
    config: BotConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BotError> {
    if config.categories.is_empty() {
        return Err(BotError::Config("no category to serve: --category ID".into()));
    }
    if let Strategy::Fixed(prices) = &config.strategy
        && let Some(c) = config.categories.iter().find(|c| !prices.contains_key(c))
    {
        return Err(BotError::Config(format!("the fixed strategy has no price for category {c}")));
    }
    let account = crate::chain::setup::Account::new(&config.rpc_url, &config.owner)?;
    let hub = DragonHub::new(config.deployment.hub, &account.provider);
    let info = hub.viewWorkerpool(config.workerpool).call().await.map_err(ChainError::from)?;
    if info.owner != account.address {
        return Err(BotError::NotOwner(account.address, config.workerpool, info.owner));
    }
    let count: U256 = hub.countCategory().call().await.map_err(ChainError::from)?;
    if let Some(c) = config.categories.iter().find(|c| U256::from(**c) >= count) {
        return Err(BotError::Config(format!("category {c} does not exist on the hub ({count} categories)")));
    }
    let metrics = Metrics::default();
    let mut bot = Bot {
        account,
        domain: Domain::new(U256::from(config.deployment.chain_id), config.deployment.hub),
        pool: PoolClient::new(&config.pool_url)?,
        exchange: ExchangeClient::new(&config.exchange_url, config.deployment.chain_id, config.owner.clone())?,
        metrics: metrics.clone(),
        held: BTreeMap::new(),
        filled: Default::default(),
        consumed: 0,
        tasks_at_start: None,
        pending_since: None,
        config,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(metrics::serve(listener, metrics, async move {
        let _ = stop_rx.await;
    }));
    tracing::info!(
        workerpool = %bot.config.workerpool,
        strategy = bot.config.strategy.name(),
        categories = ?bot.config.categories,
        "bot started"
    );
    bot.withdraw_all("start: orders of an earlier run").await;
    tokio::pin!(shutdown);
    loop {
        bot.tick().await;
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(bot.config.tick) => {}
        }
    }
    bot.withdraw_all("stop").await;
    let _ = stop_tx.send(());
    match http.await {
        Ok(res) => res.map_err(BotError::Http),
        Err(e) => Err(BotError::Http(std::io::Error::other(e))),
    }
}

impl Bot {
    async fn withdraw_all(&mut self, why: &str) {
        match self.exchange.unpublish_all(self.config.workerpool).await {
            Ok(n) => {
                tracing::info!(withdrawn = n, reason = why, "bot withdrew every order of the workerpool");
                for (c, _) in std::mem::take(&mut self.held) {
                    self.metrics.order(c, "withdrawn");
                }
            }
            Err(e) => tracing::warn!(error = %e, reason = why, "bot could not withdraw its orders"),
        }
    }

    /// One look at the book and the pool, and one decision per category. The bot's own orders are read first,
    /// so that what deals consumed since the last tick counts before the capacity is.
    async fn tick(&mut self) {
        let mut open = BTreeMap::new();
        for category in self.config.categories.clone() {
            match self.refresh(category).await {
                Ok(o) => {
                    open.insert(category, o);
                }
                Err(e) => {
                    tracing::warn!(category, error = %e, "bot cannot read its order");
                    self.metrics.error(category, e.label(), None);
                }
            }
        }
        let (free, alive, why) = match self.pool.capacity().await {
            Ok(c) => {
                let total = c.tasks.values().sum::<u64>();
                let start = *self.tasks_at_start.get_or_insert(total);
                let recorded = total.saturating_sub(start);
                let mut pending = self.consumed.saturating_sub(recorded);
                if pending == 0 {
                    self.pending_since = None;
                } else if self.pending_since.get_or_insert_with(std::time::Instant::now).elapsed() > PENDING_LIMIT {
                    tracing::warn!(pending, "bot: dealt volume never reached the pool; no longer held back");
                    self.consumed = recorded;
                    self.pending_since = None;
                    pending = 0;
                }
                let free = c.free.saturating_sub(pending);
                let mut why = format!("{} alive workers, {} busy, {free} free", c.alive, c.busy);
                if pending > 0 {
                    why += &format!(" ({pending} dealt, not yet seen by the pool)");
                }
                (free, c.alive, why)
            }
            // Unknown capacity is no capacity: better no offer than deals the pool may not run.
            Err(e) => {
                tracing::warn!(error = %e, "bot cannot read the pool's capacity");
                self.metrics.pool_error(e.label());
                (0, 0, format!("pool unreachable ({})", e.label()))
            }
        };
        self.metrics.capacity(alive, free);
        let hub = DragonHub::new(self.config.deployment.hub, &self.account.provider);
        let stake = match hub.viewAccount(self.account.address).call().await {
            Ok(a) => Some(a.stake),
            // The exchange checks the stake again at publication: without the cap the bot only risks a refusal.
            Err(e) => {
                tracing::warn!(error = %e, "bot cannot read the owner's stake");
                None
            }
        };
        // A task at trust t takes t workers' replicates: the slots free now run free / t such tasks.
        let sellable = free / self.config.terms.trust.max(1);
        let shares = capacity::split(sellable, self.config.categories.len(), self.config.max_volume);
        for (category, volume) in self.config.categories.clone().into_iter().zip(shares) {
            // A category whose order could not be read is left as it is until the next tick.
            let Some(offer) = open.get(&category).copied() else { continue };
            if let Err((e, view)) = self.serve(category, offer, volume, stake, &why).await {
                tracing::warn!(category, error = %e, "bot decision failed");
                self.metrics.error(category, e.label(), view);
            }
        }
    }

    /// What is left of the bot's order in `category` (none when it left the book), counting what deals took.
    async fn refresh(&mut self, category: u64) -> Result<Option<Offer>, ClientError> {
        let Some(h) = self.held.get(&category).cloned() else { return Ok(None) };
        let r = self.exchange.order(&h.hash).await?;
        let remaining = if r.status == "open" { r.remaining } else { 0 };
        if r.status == "filled" || r.status == "open" {
            // A settlement the hub refused gives volume back: it was never dealt.
            self.consumed = (self.consumed + h.remaining).saturating_sub(remaining);
        }
        if r.status == "open" && remaining > 0 {
            self.held.insert(category, Held { remaining, ..h });
            return Ok(Some(Offer { price: h.price, remaining }));
        }
        tracing::info!(category, order = %h.hash, status = %r.status, "bot's order left the book");
        // Matched to nothing left: the book may show it `open` with 0 remaining until the deal settles.
        if r.status == "filled" || r.status == "open" {
            self.filled.insert(category);
        }
        self.held.remove(&category);
        Ok(None)
    }

    async fn market(&self, category: u64) -> Result<MarketView, ClientError> {
        let me = self.config.owner.address();
        let best_ask = self
            .exchange
            .asks(category)
            .await?
            .into_iter()
            .filter(|r| r.workerpool() != Some(self.config.workerpool) && r.signer.parse::<Address>().ok() != Some(me))
            .filter_map(|r| r.price())
            .min();
        Ok(MarketView {
            best_ask,
            best_bid: self.exchange.best_bid(category).await?,
            last_deal: self.exchange.last_deal(category).await?,
        })
    }

    async fn serve(
        &mut self,
        category: u64,
        open: Option<Offer>,
        share: u64,
        stake: Option<U256>,
        capacity: &str,
    ) -> Result<(), (ClientError, Option<CategoryView>)> {
        let strategy = self.config.strategy.name();
        let consumed = self.filled.contains(&category);
        let market = if self.config.strategy.reads_market() {
            self.market(category).await.map_err(|e| (e, None))?
        } else {
            MarketView::default()
        };
        let (price, price_why) = self.config.strategy.price(category, &market);
        let mut reason = format!("{capacity}; share {share}; {price_why}");
        let volume = match stake.map(|s| capacity::stake_cap(s, price)) {
            Some(cap) if cap < share => {
                reason += &format!("; the owner's free stake covers {cap}");
                cap
            }
            _ => share,
        };
        let action = capacity::decide(open, consumed, volume, price);
        let view = |action: Action, held: Option<&Held>| CategoryView {
            category,
            strategy,
            action: action.as_str().to_owned(),
            reason: reason.clone(),
            order_hash: held.map(|h| h.hash.clone()),
            price: held.map_or(0, |h| h.price),
            volume: held.map_or(0, |h| h.remaining),
        };
        if action == Action::Keep {
            tracing::debug!(category, strategy, price, volume, reason = %reason, "bot keeps its offer");
            self.metrics.decision(view(action, self.held.get(&category)), action.as_str());
            return Ok(());
        }
        // Forgotten only once out of the book: an order the exchange did not take back is still the bot's.
        if let Some(h) = self.held.get(&category).cloned() {
            self.exchange.unpublish(&h.hash).await.map_err(|e| (e, None))?;
            self.held.remove(&category);
            self.metrics.order(category, "withdrawn");
        }
        if action != Action::Withdraw {
            let hash = self.publish(category, price, volume).await.map_err(|e| {
                let failed = CategoryView { action: "error".into(), ..view(action, None) };
                (e, Some(failed))
            })?;
            self.metrics.order(category, "published");
            self.filled.remove(&category);
            if action == Action::Renew {
                self.metrics.order(category, "renewed");
            }
            self.held.insert(category, Held { hash, price, remaining: volume });
        }
        tracing::info!(
            category,
            strategy,
            action = action.as_str(),
            price,
            volume,
            reason = %reason,
            "bot decision"
        );
        self.metrics.decision(view(action, self.held.get(&category)), action.as_str());
        Ok(())
    }

    async fn publish(&mut self, category: u64, price: u64, volume: u64) -> Result<String, ClientError> {
        let t = self.config.terms;
        let mut order = AnyOrder::Workerpool(WorkerpoolOrder {
            workerpool: self.config.workerpool,
            workerpoolprice: Nrlc::from_u64(price),
            volume: U256::from(volume),
            tag: t.tag,
            category: U256::from(category),
            trust: U256::from(t.trust),
            apprestrict: t.apprestrict,
            datasetrestrict: t.datasetrestrict,
            requesterrestrict: t.requesterrestrict,
            salt: crate::order::fresh_salt()
                .map_err(|e| ClientError::Sign(format!("no randomness for the salt: {e}")))?,
            sign: None,
        });
        order.sign_with(&self.domain, &self.config.owner).map_err(|e| ClientError::Sign(e.to_string()))?;
        self.exchange.publish(&order).await
    }
}
