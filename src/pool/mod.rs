//! `dragon pool`: the scheduler of one workerpool.
//!
//! ```text
//!  chain ──SchedulerNotice(pool, deal)──▶ scheduler ──initialize──▶ chain
//!                                            │  tasks, replicates, results: PostgreSQL (schema/0004, 0005)
//!  worker ──login / register / ping / work / status / upload──▶ api (HTTP, pull: a worker behind NAT works)
//!                                            │
//!  chain ◀──finalize(results = {"storage":"ipfs","location":"/results/<taskid>"})── scheduler
//!  iExec SDK task.fetchResults ──GET <public-url>/results/<taskid>──▶ api
//! ```
//!
//! - [`scheduler`] reads the pool's deals from a stored cursor, records their tasks, initializes them, and
//!   finalizes each one once its contribution is revealed and its result uploaded. Each tick it reads every open
//!   task on chain and moves its row forward, so a restart (or a lost update) resumes where the chain is.
//! - [`api`] is the workers' protocol and the pool's observability (`/status`, `/metrics`); it signs each
//!   worker's authorization (the owner's EIP-191 signature the hub checks in `contribute`).
//! - [`protocol`] holds the messages, shared with the worker's client ([`crate::worker`]).
//!
//! The scheduler also keeps tasks going when things fail: replicates of silent workers are handed to others,
//! replication asks for more replicates while results disagree, a task nobody revealed is reopened, and a task
//! past its final deadline is claimed (the requester is refunded). See `docs/pool.md`.

pub mod api;
pub mod capacity;
pub mod challenges;
mod config;
pub mod membership;
pub mod protocol;
pub mod results;
pub mod rules;
pub mod scheduler;
pub mod store;

pub use config::{PoolArgs, PoolConfig, PoolError, PoolLimits};

use crate::chain::ChainError;
use crate::store::{Store, StoreConfig};
use std::net::TcpListener;
use std::sync::Arc;

/// Runs the pool until `shutdown` resolves: checks the owner, migrates the database, then runs the scheduler
/// and the workers' API side by side; one shutdown stops both.
pub async fn run(
    config: PoolConfig,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PoolError> {
    let store = Store::connect(&config.database_url, StoreConfig::default()).await?;
    let owner = crate::chain::setup::Account::new(&config.rpc_url, &config.owner)?;
    let hub = crate::chain::contracts::hub::DragonHub::new(config.deployment.hub, &owner.provider);
    let info = hub.viewWorkerpool(config.workerpool).call().await.map_err(ChainError::from)?;
    if info.owner != owner.address {
        return Err(PoolError::NotOwner(owner.address, config.workerpool, info.owner));
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    let chain = owner.provider.clone();
    let scheduler = scheduler::Scheduler::new(store.clone(), owner, &config, wake.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sched = tokio::spawn(scheduler.run(stop_rx));
    let state = api::PoolState::new(store, &config, wake, chain);
    tracing::info!(workerpool = %config.workerpool, listen = %config.listen, membership = %config.membership, "pool started");
    let res = api::serve(listener, state, shutdown).await;
    let _ = stop_tx.send(true);
    if let Err(e) = sched.await {
        tracing::error!(error = %e, "scheduler task ended abnormally");
    }
    res
}
