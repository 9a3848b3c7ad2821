//! The worker protocol's messages, shared by the pool's HTTP API and the worker's client so that the two cannot
//! drift apart. JSON, camelCase; hashes and addresses as 0x-hex. `docs/pool.md` documents each exchange.
//!
//! Also the arithmetic of PoCo's consensus the pool plans replicates with ([`contributions_needed`]), used by
//! both the scheduler and the store.

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

/// `GET /challenge?address=`: the text the worker signs (EIP-191 `personal_sign`) to log in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    pub challenge: String,
}

/// `POST /workers/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Login {
    pub address: Address,
    pub challenge: String,
    /// 65 bytes, r ‖ s ‖ v, over the EIP-191 message of `challenge`.
    pub signature: Bytes,
}

/// The answer to a login: the bearer token of every later call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub token: String,
}

/// `POST /workers/register`: what the worker offers.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub cpu: u32,
    /// Bytes of memory the worker gives to apps.
    pub memory: u64,
    pub gpu: bool,
}

/// The scheduler's permission for one worker to contribute to one task: the workerpool owner's EIP-191
/// signature over `keccak256(abi.encodePacked(worker, taskid, enclaveChallenge))`, which the hub checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    pub worker: Address,
    pub taskid: B256,
    pub enclave_challenge: Address,
    pub sign: Bytes,
}

/// `POST /workers/work` answers `{"work": null}` or one of these. A worker that asks again while a replicate of
/// its own is unfinished gets that replicate back (how it recovers after a restart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub taskid: B256,
    pub dealid: B256,
    pub index: u64,
    pub authorization: Authorization,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    pub work: Option<Assignment>,
}

/// `POST /workers/work`: the tasks the worker is running now (`{}` is none). The pool hands back an unfinished
/// replicate of the worker that is not among them (it restarted and lost track), else a new one while the worker
/// runs fewer replicates than the CPUs it registered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkRequest {
    #[serde(default)]
    pub running: Vec<B256>,
}

/// A replicate's status as the worker reports it (iExec's names; the pool sets the ones after upload).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicateStatus {
    Created,
    Started,
    Computing,
    Computed,
    Contributing,
    Contributed,
    Revealing,
    Revealed,
    ResultUploaded,
    Completed,
    Failed,
    Aborted,
    /// Set by the pool: the worker went silent before contributing, and the task was handed to another.
    WorkerLost,
}

impl ReplicateStatus {
    pub const ALL: [ReplicateStatus; 13] = [
        ReplicateStatus::Created,
        ReplicateStatus::Started,
        ReplicateStatus::Computing,
        ReplicateStatus::Computed,
        ReplicateStatus::Contributing,
        ReplicateStatus::Contributed,
        ReplicateStatus::Revealing,
        ReplicateStatus::Revealed,
        ReplicateStatus::ResultUploaded,
        ReplicateStatus::Completed,
        ReplicateStatus::Failed,
        ReplicateStatus::Aborted,
        ReplicateStatus::WorkerLost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplicateStatus::Created => "CREATED",
            ReplicateStatus::Started => "STARTED",
            ReplicateStatus::Computing => "COMPUTING",
            ReplicateStatus::Computed => "COMPUTED",
            ReplicateStatus::Contributing => "CONTRIBUTING",
            ReplicateStatus::Contributed => "CONTRIBUTED",
            ReplicateStatus::Revealing => "REVEALING",
            ReplicateStatus::Revealed => "REVEALED",
            ReplicateStatus::ResultUploaded => "RESULT_UPLOADED",
            ReplicateStatus::Completed => "COMPLETED",
            ReplicateStatus::Failed => "FAILED",
            ReplicateStatus::Aborted => "ABORTED",
            ReplicateStatus::WorkerLost => "WORKER_LOST",
        }
    }

    /// Statuses in which the worker still has something to do: the replicate is handed back to it on request.
    pub const UNFINISHED: [&'static str; 8] =
        ["CREATED", "STARTED", "COMPUTING", "COMPUTED", "CONTRIBUTING", "CONTRIBUTED", "REVEALING", "REVEALED"];

    /// Statuses before the contribution: a replicate in one of these whose worker goes silent is lost, and
    /// another worker can take its place in the consensus.
    pub const BEFORE_CONTRIBUTION: [&'static str; 5] = ["CREATED", "STARTED", "COMPUTING", "COMPUTED", "CONTRIBUTING"];

    /// Statuses that no longer hold a place in the task's consensus.
    pub const DEAD: [&'static str; 3] = ["FAILED", "ABORTED", "WORKER_LOST"];
}

/// `POST /workers/status`: one change of a replicate. The result fields come with COMPUTED (and may be
/// repeated later); `error` with FAILED.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    pub taskid: B256,
    pub status: ReplicateStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_digest: Option<B256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_hash: Option<B256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_seal: Option<B256>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_data: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StatusUpdate {
    pub fn new(taskid: B256, status: ReplicateStatus) -> Self {
        StatusUpdate {
            taskid,
            status,
            result_digest: None,
            result_hash: None,
            result_seal: None,
            callback_data: None,
            error: None,
        }
    }
}

/// The `results` bytes put on chain with finalize: the JSON iExec's SDK decodes in `task.fetchResults`, which
/// then downloads `ipfsGatewayURL + location`. Storage "ipfs" is what the SDK accepts; the pool's HTTP server
/// plays the gateway.
pub fn result_link(taskid: B256) -> Vec<u8> {
    serde_json::json!({"storage": "ipfs", "location": result_path(taskid)}).to_string().into_bytes()
}

/// Where the pool serves (and takes) a task's result archive.
pub fn result_path(taskid: B256) -> String {
    format!("/results/{taskid:#x}")
}

/// The text a worker signs to log in to `workerpool`.
pub fn challenge_text(workerpool: Address, worker: Address, nonce: B256) -> String {
    format!("Dragon pool {workerpool:#x}: log in as worker {worker:#x} (nonce {nonce:#x})")
}

/// The digest the hub checks an authorization against (before the EIP-191 prefix).
pub fn authorization_hash(worker: Address, taskid: B256, enclave_challenge: Address) -> B256 {
    alloy::primitives::keccak256([worker.as_slice(), taskid.as_slice(), enclave_challenge.as_slice()].concat())
}

// ---- PoCo's consensus, as the pool plans replicates for it --------------------------------------------------
// Here rather than in the scheduler because the store's claim rule (how many replicates a new task wants) uses it
// too, and the store sits below the scheduler.

/// More replicates than this are never asked for one task (a task whose results keep disagreeing is left to
/// its deadline rather than to every worker of the pool).
const MAX_EXTRA_REPLICATES: u64 = 8;

/// A worker's weight in PoCo's consensus (score policy 1/3): 2 for a newcomer, growing once its score
/// reaches 12.
pub fn worker_weight(score: U256) -> u128 {
    let third = u128::try_from(score / U256::from(3)).unwrap_or(u128::MAX);
    third.max(3) - 1
}

/// How many more contributions the hub needs before the best group of results wins, assuming they agree with
/// it and come from newcomers (weight 2, the least there is): PoCo reaches consensus once
/// `group * trust > (total + 1) * (trust - 1)`, where a group's value is the product of its members' weights and
/// `total` the sum of all groups. `groups` are the values of the groups so far (none before any contribution).
/// At trust 1 that is one contribution; at trust 3, two newcomers that agree, or three against one dissenter.
pub fn contributions_needed(trust: u64, groups: impl IntoIterator<Item = u128>) -> u64 {
    let trust = u128::from(trust.max(1));
    let mut best = 0u128;
    let mut total = 0u128;
    for g in groups {
        best = best.max(g);
        total = total.saturating_add(g);
    }
    let mut needed = 0;
    while best.saturating_mul(trust) <= total.saturating_add(1).saturating_mul(trust - 1) {
        if needed == MAX_EXTRA_REPLICATES {
            break;
        }
        let grown = best.max(1).saturating_mul(2);
        total = total.saturating_add(grown - best);
        best = grown;
        needed += 1;
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    #[test]
    fn replicate_statuses_serialize_as_their_names() {
        let all = ReplicateStatus::ALL;
        for s in all {
            assert_eq!(serde_json::to_value(s).expect("json"), serde_json::json!(s.as_str()));
        }
        assert!(ReplicateStatus::UNFINISHED.iter().all(|n| all.iter().any(|s| s.as_str() == *n)));
    }

    #[test]
    fn the_result_link_is_what_the_sdk_decodes() {
        let t = B256::repeat_byte(0xab);
        let link: serde_json::Value = serde_json::from_slice(&result_link(t)).expect("JSON bytes");
        assert_eq!(link["storage"], "ipfs");
        assert_eq!(link["location"], format!("/results/0x{}", "ab".repeat(32)));
    }

    #[test]
    fn an_authorization_recovers_to_the_owner_over_the_hubs_digest() {
        let owner = PrivateKeySigner::random();
        let (worker, taskid) = (Address::repeat_byte(1), B256::repeat_byte(2));
        let hash = authorization_hash(worker, taskid, Address::ZERO);
        // keccak256(abi.encodePacked(address, bytes32, address)): 20 + 32 + 20 bytes.
        let mut packed = worker.to_vec();
        packed.extend_from_slice(taskid.as_slice());
        packed.extend_from_slice(Address::ZERO.as_slice());
        assert_eq!(hash, alloy::primitives::keccak256(packed));
        let sig = owner.sign_message_sync(hash.as_slice()).expect("sign");
        assert_eq!(sig.recover_address_from_msg(hash.as_slice()).expect("recover"), owner.address());
    }

    #[test]
    fn newcomers_needed_by_trust_before_any_contribution() {
        let needed: Vec<u64> = (0..=5).map(|trust| contributions_needed(trust, [])).collect();
        assert_eq!(needed, [1, 1, 1, 2, 2, 3]);
    }

    #[test]
    fn a_dissent_at_trust_3_asks_for_three_agreeing_newcomers() {
        // The dissenter alone: its own group needs one more newcomer (the pool then hands out two in all).
        assert_eq!(contributions_needed(3, [2]), 1);
        // One dissenter, one agreeing: two more.
        assert_eq!(contributions_needed(3, [2, 2]), 2);
        // One dissenter, two agreeing: one more.
        assert_eq!(contributions_needed(3, [2, 4]), 1);
        // One dissenter, three agreeing: the hub's consensus holds (8 * 3 > 11 * 2).
        assert_eq!(contributions_needed(3, [2, 8]), 0);
    }

    #[test]
    fn results_that_keep_disagreeing_are_bounded() {
        let many = vec![2u128; 200];
        assert_eq!(contributions_needed(1000, many), MAX_EXTRA_REPLICATES);
    }

    #[test]
    fn weights_follow_poco_score_policy() {
        assert_eq!(worker_weight(U256::ZERO), 2);
        assert_eq!(worker_weight(U256::from(11)), 2);
        assert_eq!(worker_weight(U256::from(12)), 3);
        assert_eq!(worker_weight(U256::from(300)), 99);
        assert_eq!(worker_weight(U256::MAX), u128::MAX - 1);
    }
}
