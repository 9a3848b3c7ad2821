//! What the handlers share ([`PoolState`]): the store, the owner's key that signs authorizations, the login
//! challenges, the chain, and the per-IP limiter; and how a handler reads the chain on a worker's behalf.

use super::error::{PoolApiError, Res};
use crate::chain::contracts::hub::DragonHub;
use crate::pool::challenges::ChallengeBook;
use crate::pool::config::{PoolConfig, PoolLimits};
use crate::pool::membership::Membership;
use crate::pool::protocol::{Authorization, authorization_hash};
use crate::pool::store;
use crate::store::Store;
use actix_web::HttpRequest;
use alloy::primitives::{Address, B256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

// PoCo's contribution statuses on chain.
const C_UNSET: u8 = 0;
pub(super) const C_CONTRIBUTED: u8 = 1;
pub(super) const C_PROVED: u8 = 2;

/// What the handlers share.
pub struct PoolState {
    pub(super) store: Store,
    pub(super) workerpool: Address,
    pub(super) owner: PrivateKeySigner,
    /// Open login challenges, by nonce.
    pub(super) challenges: ChallengeBook,
    /// Wakes the scheduler when a worker reports progress, so that finalize does not wait a whole poll.
    pub(super) wake: Arc<Notify>,
    /// Reads the hub: membership, contributions, the consensus.
    pub(super) chain: alloy::providers::DynProvider,
    pub(super) hub: Address,
    pub(super) worker_lost_after: Duration,
    pub(super) membership: Membership,
    pub(super) limits: PoolLimits,
    pub(super) max_result_bytes: usize,
    /// Requests per second per client IP.
    pub(super) rates: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolState").field("workerpool", &self.workerpool).finish()
    }
}

impl PoolState {
    pub fn new(store: Store, config: &PoolConfig, wake: Arc<Notify>, chain: alloy::providers::DynProvider) -> Self {
        let per_ip = NonZeroU32::new(config.limits.per_ip_per_second).unwrap_or(NonZeroU32::MIN);
        PoolState {
            store,
            workerpool: config.workerpool,
            owner: config.owner.clone(),
            challenges: ChallengeBook::new(config.limits.max_challenges, config.limits.challenge_ttl),
            wake,
            chain,
            hub: config.deployment.hub,
            worker_lost_after: config.worker_lost_after,
            membership: config.membership.clone(),
            limits: config.limits.clone(),
            max_result_bytes: config.max_result_bytes,
            rates: RateLimiter::keyed(Quota::per_second(per_ip)),
        }
    }

    /// The worker behind the request's bearer token (read from the headers only: no body is read before).
    pub(super) async fn worker(&self, req: &HttpRequest) -> Res<Address> {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(PoolApiError::Unauthorized("missing `Authorization: Bearer <token>` (POST /workers/login)"))?;
        let token = token.trim();
        // Tokens are 64 hex characters: anything else is no token, and is not looked up.
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PoolApiError::Unauthorized("unknown or expired token"));
        }
        let c = self.store.client().await?;
        store::session(&**c, token).await?.ok_or(PoolApiError::Unauthorized("unknown or expired token"))
    }

    pub(super) fn hub(&self) -> DragonHub::DragonHubInstance<&alloy::providers::DynProvider> {
        DragonHub::new(self.hub, &self.chain)
    }

    /// A read of the chain within the pool's chain timeout; a failure is `503 unavailable` (the worker may ask
    /// again), never a verdict on the worker.
    pub(super) async fn read_chain<T, E: std::fmt::Display>(
        &self,
        what: &str,
        call: impl std::future::IntoFuture<Output = Result<T, E>>,
    ) -> Res<T> {
        match tokio::time::timeout(self.limits.chain_timeout, call.into_future()).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(PoolApiError::Unavailable(format!("reading {what}: {e}"))),
            Err(_) => Err(PoolApiError::Unavailable(format!(
                "reading {what}: no answer within {} s",
                self.limits.chain_timeout.as_secs()
            ))),
        }
    }

    pub(super) fn authorize(&self, worker: Address, taskid: B256) -> Res<Authorization> {
        let hash = authorization_hash(worker, taskid, Address::ZERO);
        let sig = self
            .owner
            .sign_message_sync(hash.as_slice())
            .map_err(|e| PoolApiError::Internal(anyhow::anyhow!("signing an authorization: {e}")))?;
        Ok(Authorization { worker, taskid, enclave_challenge: Address::ZERO, sign: sig.as_bytes().to_vec().into() })
    }
}

pub(super) fn contribution_status(s: u8) -> &'static str {
    match s {
        C_UNSET => "none",
        C_CONTRIBUTED => "contributed",
        C_PROVED => "revealed",
        _ => "rejected",
    }
}
