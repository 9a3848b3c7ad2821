//! Why the hub refused a transaction, as a type the settler can act on and a line a user can read.
//!
//! The hub reports failures three ways, and [`decode`] / [`from_reason`] turn each into a [`Revert`]:
//! - matching keeps PoCo's `Error(string)` reasons (`iExecV5-matchOrders-0xNN`, which iExec's SDK parses too),
//!   plus a few Dragon strings for limits PoCo does not have; `matchOrdersBatch` reports the same strings per
//!   deal in `MatchOrdersFailed(index, reason)`. Each one is a [`MatchReason`];
//! - the task module (initialize, contribute, reveal, reopen, finalize, claim, ...) reverts with custom errors,
//!   decoded with `sol!` bindings of the module's own artifact (`contracts/artifacts/DragonTasks.json`; the
//!   hub serves the module through its fallback, so these are the hub's errors too);
//! - the compiler's `Panic(uint256)`, and anything else (empty data, an unknown selector).

use std::fmt;

use alloy::primitives::Bytes;
use alloy::sol_types::{Panic, Revert as RevertString, SolError, SolInterface};

mod abi {
    // Separate bindings rather than `contracts::hub`'s: those are generated without derives, and a typed
    // revert must compare and print.
    #![allow(missing_docs, clippy::too_many_arguments)]
    alloy::sol!(
        #[sol(all_derives)]
        DragonTasks,
        "contracts/artifacts/DragonTasks.json"
    );
}

/// The task module's bindings: its custom errors are `DragonTasks::TaskNotActive`, ... with their fields.
pub use abi::DragonTasks;

/// The hub's custom errors (all raised by the task module), generated from its ABI.
pub type TaskError = DragonTasks::DragonTasksErrors;

/// A decoded revert of Dragon's hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// `matchOrders`, `sponsorMatchOrders` or one deal of `matchOrdersBatch` refused the orders.
    MatchOrders(MatchReason),
    /// A task function refused the call (the module's custom errors).
    Task(TaskError),
    /// Any other `Error(string)`: the escrow, order management, the owner's functions, `resultFor`, ...
    Message(String),
    /// `Panic(uint256)`: an assert, an arithmetic overflow, an out-of-range index, ...
    Panic(u64),
    /// Revert data that is none of the above; empty when the contract reverted without data (refused calldata,
    /// an unknown function).
    Unknown(Bytes),
}

/// Decodes the revert data of a call to the hub (what `eth_call` / `eth_estimateGas` return).
pub fn decode(data: &[u8]) -> Revert {
    if data.len() >= 4 {
        let selector = [data[0], data[1], data[2], data[3]];
        if selector == RevertString::SELECTOR {
            if let Ok(r) = RevertString::abi_decode(data) {
                return from_reason(&r.reason);
            }
        } else if selector == Panic::SELECTOR {
            if let Ok(p) = Panic::abi_decode(data) {
                // Solidity's codes are all below 0x100; a larger one is not the compiler's and stays recognisable.
                return Revert::Panic(u64::try_from(p.code).unwrap_or(u64::MAX));
            }
        } else if let Ok(e) = TaskError::abi_decode(data) {
            return Revert::Task(e);
        }
    }
    Revert::Unknown(Bytes::copy_from_slice(data))
}

/// Classifies a revert string, such as the `reason` of a `MatchOrdersFailed` event.
pub fn from_reason(reason: &str) -> Revert {
    match MatchReason::from_reason(reason) {
        Some(m) => Revert::MatchOrders(m),
        None => Revert::Message(reason.to_owned()),
    }
}

impl Revert {
    /// Whether the revert is final: sending the same transaction again cannot succeed until something else
    /// changes on chain.
    ///
    /// Every contract revert is final for a given proposal: the same orders and volume fail the same way until
    /// the chain's state changes (a deposit, a new owner, ...), and chain sync is what notices such changes
    /// and lets the engine propose again; so the settler releases the proposal's volume instead of retrying.
    /// The one exception is `Panic(0x01)`: the only `assert` in Dragon's contracts checks that the
    /// transaction left enough gas for a result callback, so more gas can make it pass.
    /// Transport errors, timeouts and dropped transactions are not reverts and are classified by the settler.
    pub fn is_final(&self) -> bool {
        !matches!(self, Revert::Panic(0x01))
    }
}

impl fmt::Display for Revert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Revert::MatchOrders(m) => write!(f, "orders not matched: {m} ({})", m.reason()),
            Revert::Task(e) => write!(f, "task call refused: {}", TaskErrorDisplay(e)),
            Revert::Message(m) => write!(f, "reverted: {m}"),
            Revert::Panic(code) => write!(f, "panic 0x{code:02x} ({})", panic_meaning(*code)),
            Revert::Unknown(data) if data.is_empty() => f.write_str("reverted without a reason"),
            Revert::Unknown(data) => write!(f, "reverted with undecoded data {data}"),
        }
    }
}

fn panic_meaning(code: u64) -> &'static str {
    match code {
        0x00 => "generic compiler panic",
        0x01 => "assertion failed: not enough gas left for the result callback",
        0x11 => "arithmetic overflow or underflow",
        0x12 => "division by zero",
        0x21 => "invalid enum value",
        0x22 => "invalid storage byte array",
        0x31 => "pop on an empty array",
        0x32 => "array index out of bounds",
        0x41 => "out of memory",
        0x51 => "call to an uninitialized function",
        _ => "unknown panic code",
    }
}

// ---------------------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------------------

macro_rules! match_reasons {
    ($($variant:ident = $reason:literal, $code:expr, $meaning:literal;)*) => {
        /// Why matching refused a deal: PoCo's `iExecV5-matchOrders-0xNN` codes, in the order the hub checks them,
        /// then Dragon's own reasons.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MatchReason {
            $(#[doc = $meaning] $variant,)*
        }

        impl MatchReason {
            /// Every reason, in the order the hub checks them.
            pub const ALL: &'static [MatchReason] = &[$(MatchReason::$variant,)*];

            /// The exact revert string the hub uses.
            pub fn reason(self) -> &'static str {
                match self { $(MatchReason::$variant => $reason,)* }
            }

            /// PoCo's code (the `NN` of `iExecV5-matchOrders-0xNN`); `None` for Dragon's own reasons.
            pub fn code(self) -> Option<u8> {
                match self { $(MatchReason::$variant => $code,)* }
            }

            fn meaning(self) -> &'static str {
                match self { $(MatchReason::$variant => $meaning,)* }
            }
        }
    };
}

match_reasons! {
    CategoryMismatch = "iExecV5-matchOrders-0x00", Some(0x00), "the request's category is not the workerpool order's";
    UnknownCategory = "iExecV5-matchOrders-0x01", Some(0x01), "the category does not exist";
    TrustTooHigh = "iExecV5-matchOrders-0x02", Some(0x02), "the request asks for more trust than the workerpool order offers";
    AppPriceTooHigh = "iExecV5-matchOrders-0x03", Some(0x03), "the app price is above the request's app max price";
    DatasetPriceTooHigh = "iExecV5-matchOrders-0x04", Some(0x04), "the dataset price is above the request's dataset max price";
    WorkerpoolPriceTooHigh = "iExecV5-matchOrders-0x05", Some(0x05), "the workerpool price is above the request's workerpool max price";
    TagNotOffered = "iExecV5-matchOrders-0x06", Some(0x06), "the workerpool order's tag lacks a bit the app, dataset or request tag needs";
    TeeAppRequired = "iExecV5-matchOrders-0x07", Some(0x07), "a TEE tag is required but the app order does not carry it";
    AppMismatch = "iExecV5-matchOrders-0x10", Some(0x10), "the request names another app";
    DatasetMismatch = "iExecV5-matchOrders-0x11", Some(0x11), "the request names another dataset";
    RequestRestrictsWorkerpool = "iExecV5-matchOrders-0x12", Some(0x12), "the request's workerpool restriction excludes this workerpool";
    AppRestrictsDataset = "iExecV5-matchOrders-0x13", Some(0x13), "the app order's dataset restriction excludes this dataset";
    AppRestrictsWorkerpool = "iExecV5-matchOrders-0x14", Some(0x14), "the app order's workerpool restriction excludes this workerpool";
    AppRestrictsRequester = "iExecV5-matchOrders-0x15", Some(0x15), "the app order's requester restriction excludes this requester";
    DatasetRestrictsApp = "iExecV5-matchOrders-0x16", Some(0x16), "the dataset order's app restriction excludes this app";
    DatasetRestrictsWorkerpool = "iExecV5-matchOrders-0x17", Some(0x17), "the dataset order's workerpool restriction excludes this workerpool";
    DatasetRestrictsRequester = "iExecV5-matchOrders-0x18", Some(0x18), "the dataset order's requester restriction excludes this requester";
    WorkerpoolRestrictsApp = "iExecV5-matchOrders-0x19", Some(0x19), "the workerpool order's app restriction excludes this app";
    WorkerpoolRestrictsDataset = "iExecV5-matchOrders-0x1a", Some(0x1a), "the workerpool order's dataset restriction excludes this dataset";
    WorkerpoolRestrictsRequester = "iExecV5-matchOrders-0x1b", Some(0x1b), "the workerpool order's requester restriction excludes this requester";
    AppNotRegistered = "iExecV5-matchOrders-0x20", Some(0x20), "the app is not registered";
    AppOrderNotSigned = "iExecV5-matchOrders-0x21", Some(0x21), "the app order is not signed or presigned by the app's current owner";
    DatasetNotRegistered = "iExecV5-matchOrders-0x30", Some(0x30), "the dataset is not registered";
    DatasetOrderNotSigned = "iExecV5-matchOrders-0x31", Some(0x31), "the dataset order is not signed or presigned by the dataset's current owner";
    WorkerpoolNotRegistered = "iExecV5-matchOrders-0x40", Some(0x40), "the workerpool is not registered";
    WorkerpoolOrderNotSigned = "iExecV5-matchOrders-0x41", Some(0x41), "the workerpool order is not signed or presigned by the workerpool's current owner";
    RequestOrderNotSigned = "iExecV5-matchOrders-0x50", Some(0x50), "the request order is not signed or presigned by its requester";
    NoVolume = "iExecV5-matchOrders-0x60", Some(0x60), "one of the orders has no volume left (consumed or cancelled)";
    ValueOutOfRange = "Dragon: value out of range", None, "a price, volume or trust does not fit the hub's packed storage";
    WorkerpoolPolicyOutOfRange = "Dragon: workerpool policy out of range", None, "the workerpool reports a stake or scheduler ratio the hub cannot use";
    // The escrow's own message: from matching it means this; from `contribute` or a transfer it means the
    // caller's stake is short, but the settler only sees it from matching.
    InsufficientStake = "IexecEscrow: Transfer amount exceeds balance", None, "the payer cannot lock the deal's price, or the workerpool owner its stake";
    BatchIndexOutOfRange = "Dragon: batch index out of range", None, "a batch match points past its order arrays";
}

impl MatchReason {
    /// The reason a revert string names, if it is one of matching's.
    pub fn from_reason(reason: &str) -> Option<MatchReason> {
        MatchReason::ALL.iter().copied().find(|m| m.reason() == reason)
    }
}

impl fmt::Display for MatchReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.meaning())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Task module
// ---------------------------------------------------------------------------------------------------------

fn task_status(status: u8) -> &'static str {
    match status {
        0 => "UNSET",
        1 => "ACTIVE",
        2 => "REVEALING",
        3 => "COMPLETED",
        4 => "FAILED",
        _ => "?",
    }
}

fn contribution_status(status: u8) -> &'static str {
    match status {
        0 => "UNSET",
        1 => "CONTRIBUTED",
        2 => "PROVED",
        3 => "REJECTED",
        _ => "?",
    }
}

// The match is exhaustive on purpose: an error added to the module's ABI fails to compile here until it has
// a sentence of its own.
struct TaskErrorDisplay<'a>(&'a TaskError);

impl fmt::Display for TaskErrorDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DragonTasks::DragonTasksErrors as E;
        match self.0 {
            E::TaskIndexOutOfRange(e) => write!(
                f,
                "task index {} is outside deal {}'s range [{}, {} + {})",
                e.idx, e.dealid, e.botFirst, e.botFirst, e.botSize
            ),
            E::TaskAlreadyInitialized(e) => write!(f, "task {} is already initialized", e.taskid),
            E::TaskNotActive(e) => {
                write!(f, "task {} is not ACTIVE (it is {})", e.taskid, task_status(e.status))
            }
            E::TaskNotRevealing(e) => {
                write!(f, "task {} is not REVEALING (it is {})", e.taskid, task_status(e.status))
            }
            E::TaskNotClaimable(e) => write!(
                f,
                "task {} cannot be claimed (it is {}; only ACTIVE or REVEALING tasks fail)",
                e.taskid,
                task_status(e.status)
            ),
            E::ContributionDeadlineReached(e) => {
                write!(f, "task {}'s contribution deadline ({}) has passed", e.taskid, e.deadline)
            }
            E::RevealDeadlineReached(e) => {
                write!(f, "task {}'s reveal deadline ({}) has passed", e.taskid, e.deadline)
            }
            E::FinalDeadlineReached(e) => {
                write!(f, "task {}'s final deadline ({}) has passed", e.taskid, e.deadline)
            }
            E::FinalDeadlineNotReached(e) => {
                write!(f, "task {}'s final deadline ({}) has not come yet", e.taskid, e.deadline)
            }
            E::AlreadyContributed(e) => write!(f, "worker {} already contributed to task {}", e.worker, e.taskid),
            E::EnclaveChallengeRequired(e) => {
                write!(f, "task {} is a TEE task and needs an enclave challenge", e.taskid)
            }
            E::InvalidAuthorization(e) => write!(
                f,
                "the scheduler {}'s authorization of worker {} for task {} is invalid",
                e.scheduler, e.worker, e.taskid
            ),
            E::InvalidEnclaveSignature(e) => {
                write!(f, "enclave {}'s signature for task {} is invalid", e.enclaveChallenge, e.taskid)
            }
            E::ContributionNotRevealable(e) => write!(
                f,
                "worker {}'s contribution to task {} cannot be revealed (it is {})",
                e.worker,
                e.taskid,
                contribution_status(e.status)
            ),
            E::ContributionNotInConsensus(e) => write!(
                f,
                "worker {}'s result {} for task {} is not the consensus {}",
                e.worker, e.resultHash, e.taskid, e.consensus
            ),
            E::ResultHashMismatch(e) => {
                write!(f, "the digest does not match worker {}'s result hash for task {}", e.worker, e.taskid)
            }
            E::ResultSealMismatch(e) => {
                write!(f, "the digest does not match worker {}'s result seal for task {}", e.worker, e.taskid)
            }
            E::NotScheduler(e) => write!(f, "{} is not task {}'s scheduler ({})", e.caller, e.taskid, e.scheduler),
            E::CannotReopen(e) => write!(
                f,
                "task {} cannot be reopened (reveal deadline {}, {} reveal(s))",
                e.taskid, e.revealDeadline, e.revealCounter
            ),
            E::CannotFinalize(e) => write!(
                f,
                "task {} cannot be finalized yet ({} of {} winners revealed, reveal deadline {})",
                e.taskid, e.revealCounter, e.winnerCounter, e.revealDeadline
            ),
            E::ResultsCallbackMismatch(e) => {
                write!(f, "task {}'s callback data does not match its deal's callback or result", e.taskid)
            }
            E::TaskHasContributions(e) => {
                write!(f, "task {} already has contributions: contributeAndFinalize is for a fresh task", e.taskid)
            }
            E::TrustNotOne(e) => {
                write!(f, "task {} has trust {}: contributeAndFinalize needs trust 1", e.taskid, e.trust)
            }
            E::ArrayLengthMismatch(e) => {
                write!(f, "{} deal ids but {} task indexes", e.dealids, e.idxs)
            }
            E::ValueOutOfRange(_) => f.write_str("a value does not fit the hub's packed storage"),
            E::SafeCastOverflowedUintDowncast(e) => {
                write!(f, "value {} does not fit {} bits", e.value, e.bits)
            }
        }
    }
}

/// The order a hub refusal names as unusable for good: its signature no longer verifies (the asset changed
/// owner) or its asset is gone.
pub fn unusable_order(p: &crate::store::proposals::Proposal, reason: &str) -> Option<crate::ids::OrderHash> {
    const PREFIX: &str = "iExecV5-matchOrders-0x";
    let at = reason.find(PREFIX)? + PREFIX.len();
    match reason.get(at..at + 2)? {
        "20" | "21" => Some(p.app),
        "30" | "31" => p.dataset,
        "40" | "41" => Some(p.workerpool),
        "50" => Some(p.request),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256, U256, address, b256};

    const TASK: B256 = b256!("0x1111111111111111111111111111111111111111111111111111111111111111");
    const WORKER: Address = address!("0x2222222222222222222222222222222222222222");

    fn revert_string(s: &str) -> Vec<u8> {
        RevertString::from(s).abi_encode()
    }

    #[test]
    fn every_match_reason_decodes_from_its_revert_string_and_event_reason() {
        for &m in MatchReason::ALL {
            assert_eq!(decode(&revert_string(m.reason())), Revert::MatchOrders(m));
            assert_eq!(from_reason(m.reason()), Revert::MatchOrders(m));
            if let Some(code) = m.code() {
                assert_eq!(m.reason(), format!("iExecV5-matchOrders-0x{code:02x}"));
            }
        }
        let r = decode(&revert_string("iExecV5-matchOrders-0x21"));
        assert_eq!(r, Revert::MatchOrders(MatchReason::AppOrderNotSigned));
        assert!(r.to_string().contains("app order is not signed"), "{r}");
        assert!(r.to_string().contains("iExecV5-matchOrders-0x21"), "{r}");
    }

    /// The table above and the hub's `_match` must name the same reasons: every string `_match` or the batch
    /// can return is known here, and every reason here is one the hub can return.
    #[test]
    fn match_reasons_are_exactly_the_hubs() {
        let hub = include_str!("../../contracts/src/DragonHub.sol");
        let mut in_source: Vec<&str> = hub
            .match_indices("\"iExecV5-matchOrders-0x")
            .map(|(i, _)| {
                let rest = &hub[i + 1..];
                rest.split('"').next().unwrap_or_default()
            })
            .collect();
        for dragon in
            ["Dragon: value out of range", "Dragon: workerpool policy out of range", "Dragon: batch index out of range"]
        {
            assert!(hub.contains(&format!("\"{dragon}\"")), "{dragon} is no longer in DragonHub.sol");
            in_source.push(dragon);
        }
        in_source.sort_unstable();
        in_source.dedup();
        for reason in &in_source {
            assert!(MatchReason::from_reason(reason).is_some(), "{reason} has no MatchReason");
        }
        let pocos: Vec<&str> = MatchReason::ALL.iter().filter(|m| m.code().is_some()).map(|m| m.reason()).collect();
        for reason in pocos {
            assert!(in_source.contains(&reason), "{reason} is not in DragonHub.sol");
        }
        let escrow = include_str!("../../contracts/src/HubStorage.sol");
        assert!(escrow.contains(MatchReason::InsufficientStake.reason()));
    }

    #[test]
    fn unknown_match_code_and_other_strings_are_messages() {
        assert_eq!(from_reason("iExecV5-matchOrders-0x99"), Revert::Message("iExecV5-matchOrders-0x99".to_owned()));
        let r = decode(&revert_string("task-pending"));
        assert_eq!(r, Revert::Message("task-pending".to_owned()));
        assert_eq!(r.to_string(), "reverted: task-pending");
        assert!(r.is_final());
    }

    #[test]
    fn task_errors_decode_with_their_fields() {
        let data = DragonTasks::TaskNotActive { taskid: TASK, status: 2 }.abi_encode();
        let r = decode(&data);
        match &r {
            Revert::Task(DragonTasks::DragonTasksErrors::TaskNotActive(e)) => {
                assert_eq!(e.taskid, TASK);
                assert_eq!(e.status, 2);
            }
            other => panic!("decoded as {other:?}"),
        }
        assert!(r.to_string().contains("is not ACTIVE (it is REVEALING)"), "{r}");
        assert!(r.is_final());

        let data = DragonTasks::ContributionNotRevealable { taskid: TASK, worker: WORKER, status: 2 }.abi_encode();
        let r = decode(&data);
        assert!(matches!(r, Revert::Task(DragonTasks::DragonTasksErrors::ContributionNotRevealable(_))));
        assert!(r.to_string().contains("(it is PROVED)"), "{r}");

        let data = DragonTasks::CannotFinalize {
            taskid: TASK,
            revealCounter: U256::from(1),
            winnerCounter: U256::from(2),
            revealDeadline: U256::from(1_700_000_600u64),
        }
        .abi_encode();
        assert!(decode(&data).to_string().contains("1 of 2 winners revealed"));
    }

    #[test]
    fn every_custom_error_of_the_abi_decodes() {
        // Zeroed arguments (more words than any error takes) behind each selector of the module's ABI.
        for i in 0..TaskError::COUNT {
            let Some(selector) = TaskError::selector_at(i) else { continue };
            let mut data = selector.to_vec();
            data.extend(std::iter::repeat_n(0u8, 32 * 8));
            let r = decode(&data);
            assert!(matches!(r, Revert::Task(_)), "selector {selector:?} decoded as {r:?}");
            assert!(r.to_string().len() > "task call refused: ".len(), "{r:?}");
        }
    }

    #[test]
    fn panics() {
        let r = decode(&Panic::from(0x11u64).abi_encode());
        assert_eq!(r, Revert::Panic(0x11));
        assert_eq!(r.to_string(), "panic 0x11 (arithmetic overflow or underflow)");
        assert!(r.is_final());
        let gas = decode(&Panic::from(0x01u64).abi_encode());
        assert_eq!(gas, Revert::Panic(0x01));
        assert!(!gas.is_final(), "more gas can pass the callback assert");
    }

    #[test]
    fn unknown_data() {
        assert_eq!(decode(&[]), Revert::Unknown(Bytes::new()));
        assert_eq!(decode(&[]).to_string(), "reverted without a reason");
        let junk = [0xde, 0xad, 0xbe, 0xef, 0x00];
        let r = decode(&junk);
        assert_eq!(r, Revert::Unknown(Bytes::copy_from_slice(&junk)));
        assert!(r.to_string().contains("0xdeadbeef00"), "{r}");
        // A known selector with truncated arguments is not trusted either.
        let mut short = DragonTasks::TaskNotActive { taskid: TASK, status: 1 }.abi_encode();
        short.truncate(20);
        assert!(matches!(decode(&short), Revert::Unknown(_)));
        let mut short_string = revert_string("iExecV5-matchOrders-0x00");
        short_string.truncate(40);
        assert!(matches!(decode(&short_string), Revert::Unknown(_)));
        assert!(r.is_final());
    }

    #[test]
    fn a_refusal_names_the_order_it_makes_unusable() {
        let h = |b: u8| crate::ids::OrderHash(B256::repeat_byte(b));
        let p = crate::store::proposals::Proposal {
            id: 1,
            app: h(1),
            dataset: Some(h(2)),
            workerpool: h(3),
            request: h(4),
            volume: 1,
            category: 0,
            status: "failed".into(),
            reason: None,
            tx_hash: None,
            batch_index: None,
            deal_id: None,
            attempts: 1,
        };
        let said = |code: &str| unusable_order(&p, &format!("orders not matched: x (iExecV5-matchOrders-0x{code})"));
        assert_eq!(said("21"), Some(h(1)));
        assert_eq!(said("31"), Some(h(2)));
        assert_eq!(said("41"), Some(h(3)));
        assert_eq!(said("50"), Some(h(4)));
        assert_eq!(said("60"), None, "volume 0 is the chain's consumed volume, handled by the cap");
        assert_eq!(unusable_order(&p, "transaction dropped"), None);
    }
}
