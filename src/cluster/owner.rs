//! Which categories' books this instance owns (issue 19): one lease per category (`category:<chain>:<id>`), so
//! exactly one instance at a time matches and writes a category's orders, proposals and volumes, each write
//! fenced by the tenure's epoch (`store::leases::check_all`).
//!
//! How the categories are spread: every instance keeps a membership lease (`member:<chain>:<instance>`), and the
//! live members share the categories by rendezvous hashing: category `c` goes to the member with the highest
//! `keccak(chain, c, member)`. Every instance computes the same answer from the same members, and a member
//! joining or leaving moves only the categories it wins or held. An instance competes only for the categories
//! it wins, through one [`LeaseKeeper`] each; it stops (and releases) a keeper whose category it no longer wins,
//! so the winner takes it at once rather than after the TTL.
//!
//! Safety never rests on the spread: two instances that briefly disagree on the members both compete, and the
//! lease gives the category to one. Liveness is the TTL: a dead owner's membership and category leases both
//! expire after it, then the next winner's keeper takes the category at its next attempt.

use super::lease::{LeaseConfig, LeaseKeeper};
use crate::store::leases::{self, Fence};
use crate::store::{Store, StoreError};
use alloy::primitives::keccak256;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The categories this instance owns now, each with the tenure its writes carry.
pub type Owned = BTreeMap<u64, Fence>;

/// The member that wins category `c` among `members` (empty: none).
pub fn winner(chain_id: u64, c: u64, members: &[String]) -> Option<&String> {
    members.iter().max_by_key(|m| {
        let mut bytes = Vec::with_capacity(16 + m.len());
        bytes.extend_from_slice(&chain_id.to_be_bytes());
        bytes.extend_from_slice(&c.to_be_bytes());
        bytes.extend_from_slice(m.as_bytes());
        keccak256(&bytes)
    })
}

/// Starts the owner of this instance's share of the categories; its answer is the `watch` of [`Owned`]. Runs
/// until `stop` completes, then releases every lease it holds.
pub fn spawn(
    store: Store,
    pg: tokio_postgres::Config,
    chain_id: u64,
    holder: String,
    config: LeaseConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (watch::Receiver<Owned>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Owned::new());
    let task = tokio::spawn(run(store, pg, chain_id, holder, config, tx, stop));
    (rx, task)
}

struct Candidacy {
    tenure: watch::Receiver<Option<Fence>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn run(
    store: Store,
    pg: tokio_postgres::Config,
    chain_id: u64,
    holder: String,
    config: LeaseConfig,
    tx: watch::Sender<Owned>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop_member, member_stopped) = oneshot::channel::<()>();
    let (member, member_task) =
        LeaseKeeper::spawn(pg.clone(), leases::member(chain_id, &holder), holder.clone(), config, async move {
            let _ = member_stopped.await;
        });
    let mut candidacies: HashMap<u64, Candidacy> = HashMap::new();
    tokio::pin!(stop);
    // The members and categories are read once per renewal period; tenures are looked at more often, so that a
    // category lost (a keeper stepping down) leaves the market's hands within a few milliseconds.
    let mut next_read = tokio::time::Instant::now();
    let mut wanted: Vec<u64> = Vec::new();
    loop {
        if tokio::time::Instant::now() >= next_read {
            next_read = tokio::time::Instant::now() + config.renew();
            let is_member = member.tenure.borrow().is_some();
            match wanted_categories(&store, chain_id, &holder, is_member).await {
                Ok(w) => wanted = w,
                Err(e) => tracing::warn!(error = %e, "reading the cluster's members failed; the share stays"),
            }
            for c in &wanted {
                candidacies.entry(*c).or_insert_with(|| {
                    let (stop, stopped) = oneshot::channel::<()>();
                    let (keeper, task) = LeaseKeeper::spawn(
                        pg.clone(),
                        leases::category(chain_id, *c),
                        holder.clone(),
                        config,
                        async move {
                            let _ = stopped.await;
                        },
                    );
                    Candidacy { tenure: keeper.tenure, stop, task }
                });
            }
            let leaving: Vec<u64> = candidacies.keys().filter(|c| !wanted.contains(c)).copied().collect();
            for c in leaving {
                if let Some(cand) = candidacies.remove(&c) {
                    // Out of the market's hands first, then released (the keeper releases on stop).
                    publish(&tx, &candidacies);
                    let _ = cand.stop.send(());
                    let _ = cand.task.await;
                    tracing::info!(category = c, "category handed over to the member that wins it now");
                }
            }
        }
        publish(&tx, &candidacies);
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    tx.send_replace(Owned::new());
    for (_, cand) in candidacies.drain() {
        let _ = cand.stop.send(());
        let _ = cand.task.await;
    }
    let _ = stop_member.send(());
    let _ = member_task.await;
}

/// The categories this instance wins among the live members (none while its own membership is not held).
async fn wanted_categories(store: &Store, chain_id: u64, holder: &str, member: bool) -> Result<Vec<u64>, StoreError> {
    if !member {
        return Ok(Vec::new());
    }
    let client = store.client().await?;
    let mut members = leases::live_members(&**client, chain_id).await?;
    if !members.iter().any(|m| m == holder) {
        members.push(holder.to_owned());
    }
    let categories = crate::store::categories::ids(&**client, chain_id).await?;
    Ok(categories.into_iter().filter(|c| winner(chain_id, *c, &members).is_some_and(|w| w == holder)).collect())
}

fn publish(tx: &watch::Sender<Owned>, candidacies: &HashMap<u64, Candidacy>) {
    let now: Owned = candidacies.iter().filter_map(|(c, cand)| cand.tenure.borrow().clone().map(|f| (*c, f))).collect();
    tx.send_if_modified(|held| {
        if *held == now {
            return false;
        }
        tracing::info!(categories = ?now.keys().collect::<Vec<_>>(), "categories owned");
        *held = now;
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_categories_spread_over_the_members_and_a_leaving_member_moves_only_its_own() {
        let members: Vec<String> = (0..3).map(|i| format!("instance-{i}")).collect();
        let owners: Vec<&String> = (0..30).map(|c| winner(1, c, &members).expect("a winner")).collect();
        for m in &members {
            assert!(owners.iter().filter(|o| **o == m).count() >= 3, "{m} gets a share: {owners:?}");
        }
        let fewer = &members[..2];
        for (c, before) in owners.iter().enumerate() {
            let after = winner(1, c as u64, fewer).expect("a winner");
            if *before != &members[2] {
                assert_eq!(after, *before, "category {c} moved although its owner stayed");
            }
        }
        assert!(winner(1, 0, &[]).is_none());
    }
}
