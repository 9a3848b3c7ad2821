//! One typed configuration for `dragon serve`: flags, then the environment, then an optional TOML file, then
//! defaults, in that order of precedence. Secrets (the database URL, which may hold a password; keys) come from
//! the environment only, so they never sit in a file or show in `ps`.

use crate::chain::deploy::Deployment;
use crate::market::MarketConfig;
use crate::store::StoreConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("DATABASE_URL is not set: point it at a PostgreSQL database (environment only: it may hold a password)")]
    NoDatabase,
    #[error(
        "no deployment: pass --deployment PATH (the file `dragon chain deploy` writes) or set it in the config file"
    )]
    NoDeployment,
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Deployment(String),
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

/// Abuse limits and timeouts of the API.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct Limits {
    /// Largest request body, in bytes (a batch of 1,000 orders is about 1 MB).
    pub body_bytes: usize,
    /// Most orders in one batch.
    pub batch_orders: usize,
    /// Requests per second per client IP (burst: the same number).
    pub per_ip_per_second: u32,
    /// Order writes per second per authenticated address (each order of a batch counts).
    pub per_address_per_second: u32,
    /// Concurrent connections.
    pub max_connections: usize,
    /// Seconds a client has to send its request head.
    pub client_timeout_secs: u64,
    /// Seconds a challenge stays valid.
    pub challenge_ttl_secs: u64,
    /// Seconds a session token stays valid.
    pub session_ttl_secs: u64,
    /// Seconds between purges of expired challenges and sessions (and sweeps of idle rate-limit keys).
    pub purge_interval_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 2 * 1024 * 1024,
            batch_orders: 1_000,
            per_ip_per_second: 2_000,
            per_address_per_second: 20_000,
            max_connections: 10_000,
            client_timeout_secs: 10,
            challenge_ttl_secs: 300,
            session_ttl_secs: 3_600,
            purge_interval_secs: 30,
        }
    }
}

impl Limits {
    pub fn challenge_ttl(&self) -> Duration {
        Duration::from_secs(self.challenge_ttl_secs)
    }
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_ttl_secs)
    }
    pub fn purge_interval(&self) -> Duration {
        Duration::from_secs(self.purge_interval_secs)
    }
}

/// Limits of the public live feed (`[feed]` in the TOML file); see `docs/feed.md`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct FeedLimits {
    /// Open feed connections, both wire forms.
    pub max_connections: usize,
    /// Open feed connections from one client address.
    pub max_connections_per_ip: usize,
    /// Subscriptions (chain, topic) one connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// Categories one subscription may filter on.
    pub max_categories_per_subscription: usize,
    /// Seconds a socket.io session may stay without connecting to its namespace.
    pub connect_timeout_secs: u64,
}

impl Default for FeedLimits {
    fn default() -> Self {
        let d = crate::feed::FeedConfig::default();
        FeedLimits {
            max_connections: d.max_subscribers,
            max_connections_per_ip: d.max_connections_per_ip,
            max_subscriptions_per_connection: d.max_subscriptions_per_connection,
            max_categories_per_subscription: d.max_categories_per_subscription,
            connect_timeout_secs: d.connect_timeout.as_secs(),
        }
    }
}

impl FeedLimits {
    pub fn feed_config(&self) -> crate::feed::FeedConfig {
        crate::feed::FeedConfig {
            max_subscribers: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_subscriptions_per_connection: self.max_subscriptions_per_connection,
            max_categories_per_subscription: self.max_categories_per_subscription,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            ..crate::feed::FeedConfig::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Address the REST API listens on.
    pub listen: SocketAddr,
    /// PostgreSQL connection URL.
    pub database_url: String,
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// Dragon's contracts on that chain.
    pub deployment: Deployment,
    pub limits: Limits,
    pub feed: FeedLimits,
    pub market: MarketConfig,
    pub store: StoreConfig,
    /// The key that settles deals (`DRAGON_OPERATOR_KEY`, environment only). Without it the exchange keeps
    /// its book and proposes deals, but nothing goes on chain.
    pub operator_key: Option<alloy::signers::local::PrivateKeySigner>,
    pub settler: crate::chain::settler::SettlerConfig,
    pub sync: crate::chain::sync::SyncConfig,
    /// How this instance keeps its leases (the settler's): several instances on one PostgreSQL settle through
    /// one leader.
    pub lease: crate::cluster::LeaseConfig,
    /// NATS (`[nats] url`, or `DRAGON_NATS_URL`): the feed goes between instances; none for one instance.
    pub nats: crate::cluster::bus::NatsConfig,
}

impl Config {
    /// A configuration on defaults, for tests and the local market.
    pub fn new(listen: SocketAddr, database_url: String, rpc_url: String, deployment: Deployment) -> Self {
        Config {
            listen,
            database_url,
            rpc_url,
            deployment,
            limits: Limits::default(),
            feed: FeedLimits::default(),
            market: MarketConfig::default(),
            store: StoreConfig::default(),
            operator_key: None,
            settler: Default::default(),
            sync: Default::default(),
            lease: Default::default(),
            nats: Default::default(),
        }
    }
}

/// Arguments of `dragon serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML file with any of: listen, rpc_url, deployment, max_open_orders, max_requests_per_asset,
    /// max_orders_per_category, max_order_bytes, max_params_bytes, confirmations, settle_batch, [limits], [feed],
    /// [settlement] (gas budgets), [lease] (renew_ms, ttl_ms), [nats] (url).
    #[arg(long, env = "DRAGON_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Address the REST API listens on [default: 127.0.0.1:8080].
    #[arg(long, env = "DRAGON_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// JSON-RPC endpoint of the chain [default: http://127.0.0.1:8545].
    #[arg(long, env = "DRAGON_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Deployment file written by `dragon chain deploy` (hub, registries, chain id).
    #[arg(long, env = "DRAGON_DEPLOYMENT", value_name = "PATH")]
    pub deployment: Option<PathBuf>,
}

/// The optional TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    rpc_url: Option<String>,
    deployment: Option<PathBuf>,
    max_open_orders: Option<usize>,
    max_requests_per_asset: Option<usize>,
    max_orders_per_category: Option<usize>,
    /// Largest order document (JSON bytes) and request `params` (bytes) accepted.
    max_order_bytes: Option<usize>,
    max_params_bytes: Option<usize>,
    /// Blocks below the head before chain sync applies a block.
    confirmations: Option<u64>,
    /// Most deals per settlement batch.
    settle_batch: Option<usize>,
    limits: Option<Limits>,
    feed: Option<FeedLimits>,
    /// The settler's gas budgets.
    settlement: Option<crate::chain::settler::Budgets>,
    /// Lease renewal period and TTL.
    lease: Option<crate::cluster::LeaseConfig>,
    /// NATS, for the feed between instances.
    nats: Option<crate::cluster::bus::NatsConfig>,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let database_url = std::env::var("DATABASE_URL").map_err(|_| ConfigError::NoDatabase)?;
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = self.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let rpc_url = self.rpc_url.or(file.rpc_url).unwrap_or_else(|| "http://127.0.0.1:8545".into());
        let path = self.deployment.or(file.deployment).ok_or(ConfigError::NoDeployment)?;
        let deployment = Deployment::read(&path).map_err(|e| ConfigError::Deployment(e.to_string()))?;
        let mut config = Config::new(listen, database_url, rpc_url, deployment);
        if let Some(limits) = file.limits {
            config.limits = limits;
        }
        if let Some(feed) = file.feed {
            config.feed = feed;
        }
        if let Some(n) = file.max_open_orders {
            config.market.max_open_orders = n;
        }
        if let Some(n) = file.max_requests_per_asset {
            config.market.max_requests_per_asset = n;
        }
        if let Some(n) = file.max_orders_per_category {
            config.market.max_orders_per_category = n;
        }
        if let Some(n) = file.max_order_bytes {
            config.market.max_order_bytes = n;
        }
        if let Some(n) = file.max_params_bytes {
            config.market.max_params_bytes = n;
        }
        if let Some(n) = file.confirmations {
            config.sync.confirmations = n;
        }
        if let Some(n) = file.settle_batch {
            config.settler.max_batch = n;
        }
        if let Some(b) = file.settlement {
            config.settler.budgets = b;
        }
        if let Some(l) = file.lease {
            config.lease = l;
        }
        if let Some(n) = file.nats {
            config.nats = n;
        }
        if let Ok(url) = std::env::var("DRAGON_NATS_URL")
            && !url.is_empty()
        {
            config.nats.url = Some(url);
        }
        config.operator_key = operator_key_from_env()?;
        validate(&config)?;
        Ok(config)
    }
}

/// `DRAGON_OPERATOR_KEY`: a 32-byte hex private key (with or without 0x).
pub fn operator_key_from_env() -> Result<Option<alloy::signers::local::PrivateKeySigner>, ConfigError> {
    match std::env::var("DRAGON_OPERATOR_KEY") {
        Err(_) => Ok(None),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| ConfigError::Invalid {
            field: "DRAGON_OPERATOR_KEY",
            message: "must be a 32-byte private key in hex".into(),
        }),
    }
}

/// A required key from the environment (`var`), for the commands that sign with one (pool, bot, worker): keys
/// never come from flags or files, and an error never echoes the value. `whose` says whose key it is.
pub fn key_from_env(var: &str, whose: &str) -> Result<alloy::signers::local::PrivateKeySigner, String> {
    let v = std::env::var(var).map_err(|_| format!("{var} is not set: {whose} hex private key"))?;
    v.trim().parse().map_err(|_| format!("{var} is not a valid secp256k1 private key"))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let err = |message: String| ConfigError::File { path: path.to_owned(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.to_string().replace('\n', " ")))
}

fn validate(c: &Config) -> Result<(), ConfigError> {
    let l = &c.limits;
    let positive = [
        ("limits.body_bytes", l.body_bytes as u64),
        ("limits.batch_orders", l.batch_orders as u64),
        ("limits.per_ip_per_second", u64::from(l.per_ip_per_second)),
        ("limits.per_address_per_second", u64::from(l.per_address_per_second)),
        ("limits.max_connections", l.max_connections as u64),
        ("limits.challenge_ttl_secs", l.challenge_ttl_secs),
        ("limits.session_ttl_secs", l.session_ttl_secs),
        ("limits.purge_interval_secs", l.purge_interval_secs),
        ("feed.max_connections", c.feed.max_connections as u64),
        ("feed.max_connections_per_ip", c.feed.max_connections_per_ip as u64),
        ("feed.max_subscriptions_per_connection", c.feed.max_subscriptions_per_connection as u64),
        ("feed.connect_timeout_secs", c.feed.connect_timeout_secs),
        ("max_open_orders", c.market.max_open_orders as u64),
        ("max_requests_per_asset", c.market.max_requests_per_asset as u64),
        ("max_orders_per_category", c.market.max_orders_per_category as u64),
        ("max_order_bytes", c.market.max_order_bytes as u64),
        ("max_params_bytes", c.market.max_params_bytes as u64),
        ("settle_batch", c.settler.max_batch as u64),
    ]
    .into_iter()
    .chain(c.settler.budgets.positive());
    for (field, v) in positive {
        if v == 0 {
            return Err(ConfigError::Invalid { field, message: "must be at least 1".into() });
        }
    }
    c.lease.validate().map_err(|message| ConfigError::Invalid { field: "lease", message })?;
    Ok(())
}

/// The chain a pool, worker or bot works on.
#[derive(Debug, clap::Args)]
pub struct ChainArgs {
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "DRAGON_RPC_URL")]
    pub rpc_url: String,
    /// Deployment file of Dragon's contracts (from `dragon chain deploy`).
    #[arg(long, value_name = "PATH")]
    pub deployment: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::Address;

    fn config() -> Config {
        let d = Deployment {
            chain_id: 1,
            token: Address::ZERO,
            hub: Address::ZERO,
            app_registry: Address::ZERO,
            dataset_registry: Address::ZERO,
            workerpool_registry: Address::ZERO,
            block_number: 0,
        };
        Config::new(SocketAddr::from(([127, 0, 0, 1], 0)), String::new(), String::new(), d)
    }

    #[test]
    fn the_settlement_table_sets_the_budgets_it_names_and_keeps_the_defaults_of_the_others() {
        let file: FileConfig =
            toml::from_str("[settlement]\noperator_gas_budget = 5000000\nfree_deal_gas_budget = 7\n").expect("parses");
        let b = file.settlement.expect("the table");
        assert_eq!((b.operator_gas_budget, b.free_deal_gas_budget), (5_000_000, 7));
        let defaults = crate::chain::settler::Budgets::default();
        assert_eq!(b.requester_gas_budget, defaults.requester_gas_budget);
        assert_eq!(b.budget_window_secs, 3_600);
        assert!(toml::from_str::<FileConfig>("[settlement]\noperator_gas = 1\n").is_err(), "unknown keys are refused");
    }

    #[test]
    fn a_zero_budget_or_window_is_refused_by_name() {
        let mut c = config();
        assert!(validate(&c).is_ok());
        c.settler.budgets.free_deal_gas_budget = 0;
        let Err(ConfigError::Invalid { field, .. }) = validate(&c) else { panic!("refused") };
        assert_eq!(field, "settlement.free_deal_gas_budget");
        let mut c = config();
        c.settler.budgets.budget_window_secs = 0;
        assert!(matches!(validate(&c), Err(ConfigError::Invalid { field: "settlement.budget_window_secs", .. })));
    }
}
