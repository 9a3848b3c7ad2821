//! `GET /capacity`: how many more tasks the pool can take now, for the market-maker bot (`dragon bot`), which
//! sizes its workerpool orders to it.
//!
//! The rule, kept here so that the bot and the docs have one place to point at:
//! - **slots**: the slots of the alive workers (heartbeat younger than the pool's `--worker-lost-after`), because
//!   `/workers/work` hands a worker new work only while it runs fewer replicates than that: the CPUs it
//!   registered, believed as far as its contributions prove them ([`super::rules::slots`]: one for a newcomer,
//!   one more per contribution seen on chain, in a public pool), so that a worker claiming many CPUs does not
//!   make the bot sell what nobody has shown it can run;
//! - **busy**: tasks that hold, or are about to take, a worker: `RECEIVED` and `INITIALIZED` (the queue), and
//!   `RUNNING`, `CONSENSUS_REACHED`, `AT_LEAST_ONE_REVEALED` (a worker computes, reveals or uploads);
//! - **free** = max(0, slots − busy). A lost worker's task still counts as busy: the pool may yet hand it to
//!   another worker, so the estimate errs on the side of not selling what it cannot run.
//!
//! Only the rule is here, apart from HTTP and the database: the handler (`api::observe`) reads the workers and
//! the tasks and applies it.

use serde::Serialize;
use std::collections::BTreeMap;

/// Tasks that occupy a worker or wait for one.
const BUSY: [&str; 5] = ["RECEIVED", "INITIALIZED", "RUNNING", "CONSENSUS_REACHED", "AT_LEAST_ONE_REVEALED"];

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

/// The rule, apart from the database: `alive_slots` holds one entry per alive worker, its slots.
pub fn capacity(alive_slots: &[i64], lost: i64, tasks: &[(String, i64)]) -> Capacity {
    let busy = tasks.iter().filter(|(s, _)| BUSY.contains(&s.as_str())).map(|(_, n)| n).sum::<i64>();
    let alive = alive_slots.len() as i64;
    // A worker registered with 0 CPUs still runs one replicate at a time.
    let slots = alive_slots.iter().map(|c| (*c).max(1)).fold(0i64, |a, b| a.saturating_add(b));
    Capacity { alive, lost, slots, busy, free: (slots - busy).max(0), tasks: tasks.iter().cloned().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_is_alive_cpus_minus_busy_tasks_never_negative() {
        let t = |v: &[(&str, i64)]| v.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect::<Vec<_>>();
        let c = capacity(&[1, 1, 1], 1, &t(&[("COMPLETED", 9), ("RUNNING", 1), ("INITIALIZED", 1), ("FINALIZING", 2)]));
        assert_eq!((c.alive, c.slots, c.busy, c.free), (3, 3, 2, 1));
        let c = capacity(&[1], 2, &t(&[("RUNNING", 2), ("RECEIVED", 1)]));
        assert_eq!((c.slots, c.busy, c.free), (1, 3, 0));
        let c = capacity(&[4, 0], 0, &t(&[("RUNNING", 2)]));
        assert_eq!((c.slots, c.free), (5, 3), "a 4-CPU worker offers four slots; 0 CPUs counts as one");
        assert_eq!(capacity(&[], 0, &[]).free, 0);
    }
}
