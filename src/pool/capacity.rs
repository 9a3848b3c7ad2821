//! `GET /capacity`: how many more tasks the pool can take now, for the market-maker bot (`dragon bot`), which
//! sizes its workerpool orders to it.
//!
//! The rule, kept here so that the bot and the docs have one place to point at:
//! - **slots**: one per alive worker (heartbeat younger than 60 s), because `/workers/work` hands a worker its
//!   unfinished replicate before anything new, so a worker runs one task at a time;
//! - **busy**: tasks that hold, or are about to take, a worker: `RECEIVED` and `INITIALIZED` (the queue), and
//!   `RUNNING`, `CONSENSUS_REACHED`, `AT_LEAST_ONE_REVEALED` (a worker computes, reveals or uploads);
//! - **free** = max(0, slots − busy). A lost worker's task still counts as busy: the pool may yet hand it to
//!   another worker, so the estimate errs on the side of not selling what it cannot run.

use super::api::{PoolApiError, PoolState};
use super::store;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use std::collections::BTreeMap;

/// Tasks that occupy a worker or wait for one.
const BUSY: [&str; 5] = ["RECEIVED", "INITIALIZED", "RUNNING", "CONSENSUS_REACHED", "AT_LEAST_ONE_REVEALED"];

/// Tasks one worker runs at once (see the module's rule).
const SLOTS_PER_WORKER: i64 = 1;

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Capacity {
    pub alive: i64,
    pub lost: i64,
    pub slots: i64,
    pub busy: i64,
    pub free: i64,
    /// Every task status with its count.
    pub tasks: BTreeMap<String, i64>,
}

/// The rule, apart from the database.
pub fn capacity(alive: i64, lost: i64, tasks: &[(String, i64)]) -> Capacity {
    let busy = tasks.iter().filter(|(s, _)| BUSY.contains(&s.as_str())).map(|(_, n)| n).sum::<i64>();
    let slots = alive * SLOTS_PER_WORKER;
    Capacity { alive, lost, slots, busy, free: (slots - busy).max(0), tasks: tasks.iter().cloned().collect() }
}

pub(super) async fn handler(state: web::Data<PoolState>) -> Result<HttpResponse, PoolApiError> {
    let c = state.store.client().await?;
    let workers = store::workers(&**c).await?;
    let counts = store::task_counts(&**c).await?;
    let alive = workers.iter().filter(|w| w.alive).count() as i64;
    let lost = workers.len() as i64 - alive;
    Ok(HttpResponse::Ok().json(capacity(alive, lost, &counts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_is_alive_slots_minus_busy_tasks_never_negative() {
        let t = |v: &[(&str, i64)]| v.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect::<Vec<_>>();
        let c = capacity(3, 1, &t(&[("COMPLETED", 9), ("RUNNING", 1), ("INITIALIZED", 1), ("FINALIZING", 2)]));
        assert_eq!((c.slots, c.busy, c.free), (3, 2, 1));
        let c = capacity(1, 2, &t(&[("RUNNING", 2), ("RECEIVED", 1)]));
        assert_eq!((c.slots, c.busy, c.free), (1, 3, 0));
        assert_eq!(capacity(0, 0, &[]).free, 0);
    }
}
