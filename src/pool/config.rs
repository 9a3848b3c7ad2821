//! `dragon pool`'s flags ([`PoolArgs`]), the typed configuration they make ([`PoolConfig`]), the bounds of what
//! a worker can make the pool keep or do ([`PoolLimits`]), and how the pool fails ([`PoolError`]). Below the
//! scheduler and the API, which both read it.

use super::membership;
use crate::chain::ChainError;
use crate::chain::deploy::Deployment;
use crate::money::Nrlc;
use crate::store::StoreError;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// The flags of `dragon pool`. Secrets come from the environment only: the owner's key (`DRAGON_POOL_KEY`) and
/// the database URL (`DATABASE_URL`, which may hold a password).
#[derive(Debug, Args)]
pub struct PoolArgs {
    /// The workerpool this scheduler runs (its owner's key is DRAGON_POOL_KEY).
    #[arg(long, value_parser = crate::wire::json::parse_address)]
    pub workerpool: Address,
    #[command(flatten)]
    pub chain: crate::config::ChainArgs,
    /// Address the workers' HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The base URL under which requesters reach this pool: the `ipfsGatewayURL` to give iExec's SDK.
    /// Default: http://<listen>.
    #[arg(long)]
    pub public_url: Option<String>,
    /// How often the scheduler polls the chain, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Seconds without a heartbeat after which a worker's replicates not yet contributed are WORKER_LOST and
    /// their tasks go to other workers.
    #[arg(long, default_value_t = 60)]
    pub worker_lost_after: u64,
    /// A worker allowed to join (repeat for several). With it the pool is private: these workers only, whatever
    /// their stake. Without it the pool is public: any worker with --min-worker-stake deposited in the hub.
    #[arg(long = "worker-allow", value_parser = crate::wire::json::parse_address)]
    pub worker_allow: Vec<Address>,
    /// Public pool: the nRLC a worker must have in the hub (stake plus locked, `viewAccount`) to log in
    /// [default: 1000000000, 1 RLC].
    #[arg(long, conflicts_with = "worker_allow")]
    pub min_worker_stake: Option<u64>,
    /// Most CPUs a worker may register (a larger claim is refused with 400).
    #[arg(long, default_value_t = PoolLimits::default().max_cpu)]
    pub max_worker_cpu: u32,
    /// Most memory a worker may register, in MiB (a larger claim is refused with 400; the default is 1 TiB).
    #[arg(long, default_value_t = PoolLimits::default().max_memory >> 20)]
    pub max_worker_memory_mib: u64,
    /// Seconds a replicate may go without a contribution on chain beyond its category's time before it is
    /// WORKER_LOST, even if its worker keeps pinging (at most twice the category's time are added).
    #[arg(long, default_value_t = PoolLimits::default().progress_margin.as_secs())]
    pub progress_margin: u64,
    /// Requests per second per client IP on the pool's API (the burst is as large); past it: 429.
    #[arg(long, default_value_t = PoolLimits::default().per_ip_per_second)]
    pub per_ip_per_second: u32,
}

/// The bounds of what a worker (or anyone) can make the pool keep or do. `docs/pool.md` ("Limits and what the
/// pool trusts") lists them with their defaults.
#[derive(Debug, Clone)]
pub struct PoolLimits {
    /// Most CPUs a worker may register.
    pub max_cpu: u32,
    /// Most bytes of memory a worker may register.
    pub max_memory: u64,
    /// Requests per second per client IP (burst: the same number).
    pub per_ip_per_second: u32,
    /// Most login challenges kept at once (the oldest goes first past it).
    pub max_challenges: usize,
    /// How long a login challenge stays valid.
    pub challenge_ttl: Duration,
    /// Most live sessions per worker (a new login ends the oldest past it).
    pub sessions_per_worker: i64,
    /// How long a session token stays valid.
    pub session_ttl: Duration,
    /// Added to a category's time (up to twice that time) to give the bound within which a replicate must be
    /// contributed on chain ([`super::rules::progress_bound`]).
    pub progress_margin: Duration,
    /// How long a read of the chain may take while a worker waits (login, a status check, an upload).
    pub chain_timeout: Duration,
    /// How long an upload's body may take to arrive.
    pub upload_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits {
            max_cpu: 64,
            max_memory: 1 << 40,
            per_ip_per_second: 100,
            max_challenges: 10_000,
            challenge_ttl: Duration::from_secs(60),
            sessions_per_worker: 4,
            session_ttl: Duration::from_secs(24 * 3600),
            progress_margin: Duration::from_secs(300),
            chain_timeout: Duration::from_secs(5),
            upload_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:#x} is not the owner of workerpool {1:#x} (its owner is {2:#x})")]
    NotOwner(Address, Address, Address),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
}

/// The typed configuration of one pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub workerpool: Address,
    pub owner: PrivateKeySigner,
    pub rpc_url: String,
    pub deployment: Deployment,
    pub database_url: String,
    pub listen: SocketAddr,
    pub public_url: String,
    pub poll: Duration,
    /// Silence after which a worker's replicates not yet contributed are handed to other workers.
    pub worker_lost_after: Duration,
    /// Largest result archive a worker may upload.
    pub max_result_bytes: usize,
    /// Who may join: public (stake) or private (allow-list).
    pub membership: membership::Membership,
    pub limits: PoolLimits,
}

impl PoolConfig {
    pub fn new(
        workerpool: Address,
        owner: PrivateKeySigner,
        rpc_url: String,
        deployment: Deployment,
        database_url: String,
        listen: SocketAddr,
    ) -> Self {
        PoolConfig {
            workerpool,
            owner,
            rpc_url,
            deployment,
            database_url,
            listen,
            public_url: format!("http://{listen}"),
            poll: Duration::from_secs(1),
            worker_lost_after: Duration::from_secs(60),
            max_result_bytes: 64 << 20,
            membership: membership::Membership::default(),
            limits: PoolLimits::default(),
        }
    }
}

impl PoolArgs {
    pub fn into_config(self) -> Result<PoolConfig, PoolError> {
        let owner =
            crate::config::key_from_env("DRAGON_POOL_KEY", "the workerpool owner's").map_err(PoolError::Config)?;
        let database_url = std::env::var("DATABASE_URL")
            .map_err(|_| PoolError::Config("DATABASE_URL is not set: the pool's PostgreSQL database".into()))?;
        let deployment = Deployment::read(&self.chain.deployment)?;
        let mut c = PoolConfig::new(self.workerpool, owner, self.chain.rpc_url, deployment, database_url, self.listen);
        if let Some(url) = self.public_url {
            c.public_url = url.trim_end_matches('/').to_owned();
        }
        c.poll = Duration::from_millis(self.poll_ms.max(50));
        c.worker_lost_after = Duration::from_secs(self.worker_lost_after.max(1));
        c.membership = if self.worker_allow.is_empty() {
            let min_stake = self.min_worker_stake.map(Nrlc::from_u64).unwrap_or(membership::DEFAULT_MIN_STAKE);
            membership::Membership::Public { min_stake }
        } else {
            membership::Membership::Private { allow: self.worker_allow.into_iter().collect() }
        };
        c.limits.max_cpu = self.max_worker_cpu.max(1);
        c.limits.max_memory = self.max_worker_memory_mib.saturating_mul(1 << 20);
        c.limits.progress_margin = Duration::from_secs(self.progress_margin);
        c.limits.per_ip_per_second = self.per_ip_per_second.max(1);
        Ok(c)
    }
}
