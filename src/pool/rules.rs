//! The rules the pool holds its workers to, apart from HTTP, the database and the chain (each is a plain
//! function of what the handler or the scheduler read, so the unit tests below state them):
//!
//! - **Statuses** ([`decide`]): a worker reports only the statuses of its own run (never `CREATED`, `COMPLETED`
//!   or `WORKER_LOST`, which the pool sets), only forward; a repeat or a step back is taken and ignored (a
//!   worker resuming after a restart reports again from an earlier step), and a replicate that is over
//!   (`COMPLETED`, `FAILED`, `ABORTED`) changes no more. `CONTRIBUTED` and later must be on chain
//!   ([`chain_check`]); a replicate the pool judged lost comes back only that way (the chain is the truth).
//! - **Progress** ([`progress_bound`]): a replicate must be contributed on chain within its category's time plus
//!   a margin, or it is lost, whether its worker pings or not.
//! - **Slots** ([`slots`]): a worker is handed at most as many replicates at once as it has CPUs, and, in a
//!   public pool, no more than one plus the contributions it has made: CPUs claimed are believed as work proves
//!   them (a private pool's owner vouches for its workers).

use super::protocol::ReplicateStatus;
use std::time::Duration;

/// The steps of a replicate, in order: every status up to COMPLETED (those after it are ends, not steps).
const STEPS: &[ReplicateStatus] = ReplicateStatus::ALL.split_at(10).0;

fn step(status: &str) -> Option<usize> {
    STEPS.iter().position(|s| s.as_str() == status)
}

fn step_of(s: ReplicateStatus) -> Option<usize> {
    STEPS.iter().position(|x| *x == s)
}

/// Whether a worker may report `s` at all: `CREATED`, `COMPLETED` and `WORKER_LOST` are the pool's to set.
pub fn reportable(s: ReplicateStatus) -> bool {
    !matches!(s, ReplicateStatus::Created | ReplicateStatus::Completed | ReplicateStatus::WorkerLost)
}

/// What the chain must show before a report is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainCheck {
    None,
    /// The worker's contribution is on chain (contributed or revealed), with the result hash it reports.
    Contributed,
    /// The worker's contribution is revealed.
    Revealed,
}

/// The chain check a report of `s` needs.
pub fn chain_check(s: ReplicateStatus) -> ChainCheck {
    match s {
        ReplicateStatus::Contributed | ReplicateStatus::Revealing => ChainCheck::Contributed,
        ReplicateStatus::Revealed | ReplicateStatus::ResultUploaded => ChainCheck::Revealed,
        _ => ChainCheck::None,
    }
}

/// What a report does to a replicate in status `current`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The replicate moves to the reported status (once its [`chain_check`] passes).
    Move,
    /// Nothing changes; the worker is told why.
    Ignore(&'static str),
}

/// The rule for a reportable status `reported` on a replicate in `current` (see the module documentation).
pub fn decide(current: &str, reported: ReplicateStatus) -> Decision {
    const OVER: &str = "the replicate is over: reports no longer change it";
    const BEHIND: &str = "a repeat or a step back: the replicate is already past it";
    match current {
        "COMPLETED" | "FAILED" | "ABORTED" => return Decision::Ignore(OVER),
        // Lost to the pool's judgement; a contribution found on chain after all is the truth.
        "WORKER_LOST" => {
            return match step_of(reported) {
                Some(s) if s >= step_of(ReplicateStatus::Contributed).unwrap_or(usize::MAX) => Decision::Move,
                _ => Decision::Ignore("the replicate was lost: only its contribution on chain brings it back"),
            };
        }
        _ => {}
    }
    let at = step(current).unwrap_or(0);
    match reported {
        // The worker gives up (its run failed, or the task is over on chain): it frees its place, unless its
        // result is already uploaded.
        ReplicateStatus::Failed | ReplicateStatus::Aborted => {
            if at < step_of(ReplicateStatus::ResultUploaded).unwrap_or(usize::MAX) {
                Decision::Move
            } else {
                Decision::Ignore(OVER)
            }
        }
        _ => match step_of(reported) {
            Some(s) if s > at => Decision::Move,
            _ => Decision::Ignore(BEHIND),
        },
    }
}

/// How long a replicate may go without a contribution on chain: the category's time (the app's own time bound
/// on the worker), plus `margin` for fetching the app and its inputs and sending the contribution, but never
/// more than twice the category's time. Why that cap: the hub takes contributions until 7 × the category's
/// time after the deal, and the worker that takes over needs time too.
pub fn progress_bound(category_time: Duration, margin: Duration) -> Duration {
    category_time.saturating_add(margin.min(category_time.saturating_mul(2)))
}

/// How many replicates a worker that registered `cpu` CPUs and made `proven` contributions may hold at once;
/// `vouched`: the pool's owner vouches for its workers (a private pool), and their CPUs are believed as claimed.
pub fn slots(cpu: i64, proven: i64, vouched: bool) -> i64 {
    if vouched {
        return cpu.max(1);
    }
    cpu.max(1).min(proven.max(0).saturating_add(1))
}

/// At most this many characters of a worker's error message are kept.
pub const MAX_ERROR_CHARS: usize = 2_000;

/// `text` cut to [`MAX_ERROR_CHARS`] characters, without NUL (which PostgreSQL's text refuses: a worker must not
/// turn its report into the pool's internal error).
pub fn bounded_error(text: &str) -> String {
    text.chars().filter(|c| *c != '\0').take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReplicateStatus as S;

    #[test]
    fn the_pools_own_statuses_cannot_be_reported() {
        for s in ReplicateStatus::ALL {
            let pools = matches!(s, S::Created | S::Completed | S::WorkerLost);
            assert_eq!(reportable(s), !pools, "{s:?}");
        }
    }

    #[test]
    fn statuses_move_forward_only() {
        assert_eq!(decide("CREATED", S::Computing), Decision::Move);
        assert_eq!(decide("CREATED", S::Revealed), Decision::Move, "a resumed worker may jump (the chain is checked)");
        assert_eq!(
            decide("COMPUTED", S::Computing),
            Decision::Ignore("a repeat or a step back: the replicate is already past it")
        );
        assert!(matches!(decide("COMPUTED", S::Computed), Decision::Ignore(_)), "a repeat");
        assert!(matches!(decide("CONTRIBUTED", S::Computed), Decision::Ignore(_)), "a resumed worker's early steps");
        assert!(matches!(decide("RESULT_UPLOADED", S::Revealed), Decision::Ignore(_)));
        assert!(matches!(decide("RESULT_UPLOADED", S::ResultUploaded), Decision::Ignore(_)));
    }

    #[test]
    fn a_replicate_that_is_over_stays_over() {
        for over in ["COMPLETED", "FAILED", "ABORTED"] {
            for s in ReplicateStatus::ALL.into_iter().filter(|s| reportable(*s)) {
                assert!(matches!(decide(over, s), Decision::Ignore(_)), "{over} then {s:?}");
            }
        }
    }

    #[test]
    fn failing_frees_the_place_until_the_result_is_uploaded() {
        assert_eq!(decide("COMPUTING", S::Failed), Decision::Move);
        assert_eq!(decide("REVEALED", S::Aborted), Decision::Move);
        assert!(matches!(decide("RESULT_UPLOADED", S::Failed), Decision::Ignore(_)));
    }

    #[test]
    fn a_lost_replicate_comes_back_only_through_the_chain() {
        assert!(matches!(decide("WORKER_LOST", S::Computed), Decision::Ignore(_)));
        assert!(matches!(decide("WORKER_LOST", S::Failed), Decision::Ignore(_)));
        assert_eq!(decide("WORKER_LOST", S::Contributed), Decision::Move);
        assert_eq!(chain_check(S::Contributed), ChainCheck::Contributed);
        assert_eq!(chain_check(S::Revealing), ChainCheck::Contributed);
        assert_eq!(chain_check(S::Revealed), ChainCheck::Revealed);
        assert_eq!(chain_check(S::ResultUploaded), ChainCheck::Revealed);
        assert_eq!(chain_check(S::Computed), ChainCheck::None);
    }

    #[test]
    fn the_progress_bound_follows_the_category() {
        let s = Duration::from_secs;
        assert_eq!(progress_bound(s(300), s(300)), s(600), "XS: its time and the margin");
        assert_eq!(progress_bound(s(1200), s(300)), s(1500));
        assert_eq!(progress_bound(s(5), s(300)), s(15), "a short category: at most three times its time");
        assert_eq!(progress_bound(s(5), s(0)), s(5));
    }

    #[test]
    fn cpus_are_believed_as_contributions_prove_them() {
        assert_eq!(slots(64, 0, false), 1, "a newcomer: one at a time, whatever it claims");
        assert_eq!(slots(64, 3, false), 4);
        assert_eq!(slots(2, 10, false), 2, "never more than it registered");
        assert_eq!(slots(0, 0, false), 1, "0 CPUs runs one");
        assert_eq!(slots(i64::MAX, i64::MAX, false), i64::MAX);
        assert_eq!(slots(8, 0, true), 8, "a private pool's owner vouches for its workers");
        assert_eq!(slots(0, 0, true), 1);
    }

    #[test]
    fn error_messages_are_bounded() {
        assert_eq!(bounded_error("short"), "short");
        let long = "é".repeat(5_000);
        assert_eq!(bounded_error(&long).chars().count(), MAX_ERROR_CHARS);
        assert_eq!(bounded_error("a\0b"), "ab");
    }
}
