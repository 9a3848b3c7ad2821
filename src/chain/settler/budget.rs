//! The economic guard of settlement: gas budgets over a sliding window.
//!
//! The operator pays the gas of every deal it settles, and nothing in a deal pays it back: an attacker who owns an
//! app, a workerpool and a requester key can match free orders with each other forever, and a minimum price does
//! not help (he pays himself). So the operator's spending is bounded instead, by budgets of gas per window:
//!
//! - one for the whole operator: a flood of any kind costs at most this much per window;
//! - one per requester (the request order's signer) and one per workerpool owner, smaller, so one party cannot
//!   take the whole operator budget from the others (many keys can; the operator budget still holds);
//! - one, small, shared by every deal whose total price is zero: free deals are where a flood costs the attacker
//!   nothing, and this keeps them from crowding out paid deals.
//!
//! A deal is checked before its transaction is signed, with its share of the gas limit (the node's estimate plus
//! the margin: more than it can use), and charged once mined with its share of the receipt's `gasUsed`. A deal
//! that does not fit is deferred, not failed: it stays `proposed` with its volume reserved and a `deferred: ...`
//! reason, and goes out when the window has let go of enough older charges. Failing it would release its volume,
//! and the engine would propose the same deal again at once.

use crate::store::settlement_charges::{self, Budget, DealKeys, Spent};
use crate::store::{Store, StoreError};
use alloy::primitives::Address;
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Gas budgets per window (see the module's doc). Each is at least 1; a deal needing more gas than a whole
/// budget goes out when that budget's window holds no other charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    /// Length of the sliding window, in seconds.
    pub budget_window_secs: u64,
    /// Gas the operator spends on settlement per window, all deals together.
    pub operator_gas_budget: u64,
    /// Gas per window for the deals of one requester (signer of the request order).
    pub requester_gas_budget: u64,
    /// Gas per window for the deals of one workerpool owner.
    pub workerpool_owner_gas_budget: u64,
    /// Gas per window for all deals whose total price (app + dataset + workerpool) is zero, together.
    pub free_deal_gas_budget: u64,
}

impl Default for Budgets {
    /// Generous for honest use: about 3,000 to 5,000 deals an hour in all (matchOrders costs about 265,000 gas
    /// alone, 190,000 per deal in a batch), a thousand per requester, two thousand per pool owner, and about a
    /// hundred free deals. At 1 gwei the operator budget is 1 ETH an hour: size it to what the operator is paid.
    fn default() -> Self {
        Budgets {
            budget_window_secs: 3_600,
            operator_gas_budget: 1_000_000_000,
            requester_gas_budget: 250_000_000,
            workerpool_owner_gas_budget: 500_000_000,
            free_deal_gas_budget: 25_000_000,
        }
    }
}

impl Budgets {
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.budget_window_secs)
    }

    fn of(&self, b: Budget) -> u64 {
        match b {
            Budget::Operator => self.operator_gas_budget,
            Budget::Free => self.free_deal_gas_budget,
            Budget::Requester(_) => self.requester_gas_budget,
            Budget::WorkerpoolOwner(_) => self.workerpool_owner_gas_budget,
        }
    }

    /// The config keys that must be at least 1, with their values.
    pub fn positive(&self) -> [(&'static str, u64); 5] {
        [
            ("settlement.budget_window_secs", self.budget_window_secs),
            ("settlement.operator_gas_budget", self.operator_gas_budget),
            ("settlement.requester_gas_budget", self.requester_gas_budget),
            ("settlement.workerpool_owner_gas_budget", self.workerpool_owner_gas_budget),
            ("settlement.free_deal_gas_budget", self.free_deal_gas_budget),
        ]
    }
}

/// A deal held back, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub proposal: i64,
    pub reason: String,
    pub until: SystemTime,
}

/// Which deals of a batch may go out now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub admitted: Vec<i64>,
    pub deferred: Vec<Deferral>,
}

fn spent_of(s: &Spent, b: Budget) -> u64 {
    match b {
        Budget::Operator => s.operator,
        Budget::Free => s.free,
        Budget::Requester(a) => s.requesters.get(&a).copied().unwrap_or(0),
        Budget::WorkerpoolOwner(a) => s.workerpool_owners.get(&a).copied().unwrap_or(0),
    }
}

fn add(s: &mut Spent, b: Budget, gas: u64) {
    match b {
        Budget::Operator => s.operator += gas,
        Budget::Free => s.free += gas,
        Budget::Requester(a) => *s.requesters.entry(a).or_default() += gas,
        Budget::WorkerpoolOwner(a) => *s.workerpool_owners.entry(a).or_default() += gas,
    }
}

/// The budgets a deal draws on.
fn budgets_of(k: &DealKeys) -> Vec<Budget> {
    let mut b = vec![Budget::Operator];
    if k.free {
        b.push(Budget::Free);
    }
    b.push(Budget::Requester(k.requester));
    b.push(Budget::WorkerpoolOwner(k.workerpool_owner));
    b
}

fn describe(b: Budget) -> String {
    match b {
        Budget::Operator => "the operator".into(),
        Budget::Free => "free deals".into(),
        Budget::Requester(a) => format!("requester {}", a.to_checksum(None)),
        Budget::WorkerpoolOwner(a) => format!("workerpool owner {}", a.to_checksum(None)),
    }
}

/// Decides, in batch order, which of `keys` fit their budgets with `share` gas each (their part of the gas limit);
/// the others are deferred with the reason and the time their first exhausted budget lets them through.
pub async fn admit(
    store: &Store,
    chain_id: u64,
    budgets: &Budgets,
    keys: &[DealKeys],
    share: u64,
) -> Result<Verdict, StoreError> {
    let client = store.client().await?;
    let mut requesters: Vec<Address> = keys.iter().map(|k| k.requester).collect();
    let mut owners: Vec<Address> = keys.iter().map(|k| k.workerpool_owner).collect();
    requesters.sort();
    requesters.dedup();
    owners.sort();
    owners.dedup();
    let window = budgets.budget_window_secs;
    let charged = settlement_charges::spent(&**client, chain_id, window, &requesters, &owners).await?;
    let mut used = charged.clone();
    let mut verdict = Verdict::default();
    let mut exhausted: Vec<(i64, Budget)> = Vec::new();
    for k in keys {
        let draws = budgets_of(k);
        // A deal bigger than a whole budget still fits an empty window, or it would wait forever.
        let short = draws.iter().copied().find(|b| spent_of(&used, *b) + share.min(budgets.of(*b)) > budgets.of(*b));
        match short {
            None => {
                for b in draws {
                    add(&mut used, b, share);
                }
                verdict.admitted.push(k.proposal);
            }
            Some(b) => exhausted.push((k.proposal, b)),
        }
    }
    // One look at the window per exhausted budget: when its charges will have aged out enough for one share.
    let mut until: Vec<(Budget, SystemTime, u64)> = Vec::new();
    for (proposal, b) in exhausted {
        let (when, total) = match until.iter().find(|u| u.0 == b) {
            Some(u) => (u.1, u.2),
            None => {
                let limit = budgets.of(b);
                let room = limit - share.min(limit);
                // The deals admitted from this batch are charged when mined and stay a whole window: if they
                // leave no room, only their leaving makes some; otherwise the older charges must age out.
                let this_batch = spent_of(&used, b) - spent_of(&charged, b);
                let later = SystemTime::now() + budgets.window();
                let when = if this_batch > room {
                    later
                } else {
                    settlement_charges::fits_at(&**client, chain_id, window, b, room - this_batch)
                        .await?
                        .and_then(|ms| u64::try_from(ms).ok())
                        .map_or(later, |ms| UNIX_EPOCH + Duration::from_millis(ms))
                };
                let total = spent_of(&used, b);
                until.push((b, when, total));
                (when, total)
            }
        };
        let ms = when.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        verdict.deferred.push(Deferral {
            proposal,
            reason: format!(
                "deferred: gas budget of {} exhausted until {} ({total} of {} gas used in the last {window} s)",
                describe(b),
                crate::wire::iso_time(ms),
                budgets.of(b),
            ),
            until: when,
        });
    }
    Ok(verdict)
}

/// Splits a transaction's `gas_used` over its `n` deals (the first ones take the remainder).
pub fn split(gas_used: u64, n: usize) -> Vec<u64> {
    let n64 = n.max(1) as u64;
    let (each, rest) = (gas_used / n64, gas_used % n64);
    (0..n as u64).map(|i| each + u64::from(i < rest)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_is_split_exactly_over_the_deals() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(9, 3), vec![3, 3, 3]);
        assert_eq!(split(7, 1), vec![7]);
        assert_eq!(split(5, 0), Vec::<u64>::new());
        assert_eq!(split(1_234_567, 50).iter().sum::<u64>(), 1_234_567);
    }

    #[test]
    fn a_free_deal_draws_on_the_free_budget_and_a_paid_one_does_not() {
        let k = |free| DealKeys {
            proposal: 1,
            requester: Address::repeat_byte(1),
            workerpool_owner: Address::repeat_byte(2),
            free,
        };
        assert!(budgets_of(&k(true)).contains(&Budget::Free));
        assert!(!budgets_of(&k(false)).contains(&Budget::Free));
        assert_eq!(budgets_of(&k(false))[0], Budget::Operator);
    }
}
