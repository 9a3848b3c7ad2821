//! Who may join the pool. A pool is public (any worker with enough stake deposited in the hub) or private (an
//! allow-list), as its owner configures `dragon pool` (`--min-worker-stake`, `--worker-allow`).
//!
//! Why stake: a worker the pool hands a task to holds a place in that task's consensus until it contributes or
//! is found to make no progress. A key costs nothing, a deposit does; the hub also needs the deal's worker stake
//! to take a contribution, so a worker with no deposit could never finish a task anyway. The check is made once
//! per login (a session lasts at most a day): a worker that withdraws later cannot contribute, and loses its
//! tasks by the progress rule ([`super::rules::progress_bound`]).

use crate::chain::contracts::hub::DragonHub;
use crate::money::Nrlc;
use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// A public pool's default: 1 RLC in the hub (the local demo and the tests' workers deposit 1,000).
pub const DEFAULT_MIN_STAKE: Nrlc = Nrlc(U256::from_limbs([Nrlc::PER_RLC, 0, 0, 0]));

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// Any worker whose deposit in the hub (stake plus locked) is at least `min_stake`.
    Public { min_stake: Nrlc },
    /// These workers only, whatever their deposit (the owner vouches for them).
    Private { allow: BTreeSet<Address> },
}

impl Default for Membership {
    fn default() -> Self {
        Membership::Public { min_stake: DEFAULT_MIN_STAKE }
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Membership::Public { min_stake } => write!(f, "public (a deposit of at least {min_stake})"),
            Membership::Private { allow } => write!(f, "private ({} workers allowed)", allow.len()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("{0:#x} is not on this private pool's allow-list")]
    NotListed(Address),
    #[error("{worker:#x} has {has} in the hub; this pool takes workers with at least {needs}")]
    Stake { worker: Address, has: Nrlc, needs: Nrlc },
    /// The chain did not answer (in time): nothing is known about the worker.
    #[error("reading the worker's account on chain: {0}")]
    Chain(String),
}

impl Membership {
    /// Whether the owner vouches for its workers (a private pool): their registered CPUs are believed from the
    /// start. In a public pool they are believed as contributions prove them ([`super::rules::slots`]).
    pub fn vouched(&self) -> bool {
        matches!(self, Membership::Private { .. })
    }

    /// What can be told without the chain: false when the worker can never join (off a private pool's list).
    /// Used before a challenge is even issued.
    pub fn may_join(&self, worker: Address) -> bool {
        match self {
            Membership::Public { .. } => true,
            Membership::Private { allow } => allow.contains(&worker),
        }
    }

    /// Whether `worker` is a member now; reads its hub account for a public pool, within `timeout`.
    pub async fn check(
        &self,
        chain: &DynProvider,
        hub: Address,
        worker: Address,
        timeout: Duration,
    ) -> Result<(), MembershipError> {
        let min_stake = match self {
            Membership::Private { allow } if allow.contains(&worker) => return Ok(()),
            Membership::Private { .. } => return Err(MembershipError::NotListed(worker)),
            Membership::Public { min_stake } => *min_stake,
        };
        let hub = DragonHub::new(hub, chain);
        let account = tokio::time::timeout(timeout, hub.viewAccount(worker).call())
            .await
            .map_err(|_| MembershipError::Chain(format!("no answer within {} s", timeout.as_secs())))?
            .map_err(|e| MembershipError::Chain(e.to_string()))?;
        let has = Nrlc(account.stake.saturating_add(account.locked));
        if has < min_stake {
            return Err(MembershipError::Stake { worker, has, needs: min_stake });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_public_pool_asking_one_rlc() {
        assert_eq!(DEFAULT_MIN_STAKE, Nrlc::from_u64(Nrlc::PER_RLC));
        assert_eq!(Membership::default(), Membership::Public { min_stake: Nrlc::from_u64(1_000_000_000) });
        assert!(Membership::default().may_join(Address::repeat_byte(1)));
    }

    #[test]
    fn a_private_pool_knows_its_members_without_the_chain() {
        let m = Membership::Private { allow: [Address::repeat_byte(1)].into() };
        assert!(m.may_join(Address::repeat_byte(1)));
        assert!(!m.may_join(Address::repeat_byte(2)));
    }
}
