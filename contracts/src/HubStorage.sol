// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IHubEvents} from "./interfaces/IHubEvents.sol";
import {IexecLibCore_v5} from "./libs/IexecLibCore_v5.sol";

/// @title Storage layout and internal escrow shared by the hub and its task module.
/// @notice The hub delegatecalls its task module (`DragonTasks`) for the PoCo2 functions, so both contracts
/// inherit this one base and therefore one storage layout. Do not add state variables anywhere else.
///
/// Storage is packed for gas: a PoCo deal takes ~20 storage slots, a Dragon deal 5 in the common case
/// (no dataset, no tag, no callback, requester pays and is the beneficiary, trust 1) plus its `params` string. Fields that are zero in
/// the common case live in slots of their own so that they cost nothing when unused.
abstract contract HubStorage is IHubEvents {
    // ------------------------------------------------------------------ PoCo constants
    uint256 internal constant CONTRIBUTION_DEADLINE_RATIO = 7;
    uint256 internal constant REVEAL_DEADLINE_RATIO = 2;
    uint256 internal constant FINAL_DEADLINE_RATIO = 10;
    uint256 internal constant WORKERPOOL_STAKE_RATIO = 30;
    uint256 internal constant KITTY_RATIO = 10;
    uint256 internal constant KITTY_MIN = 1e9;
    address internal constant KITTY_ADDRESS = 0x99c2268479b93fDe36232351229815DF80837e23;
    uint256 internal constant GROUPMEMBER_PURPOSE = 4;
    uint256 internal constant CALLBACK_GAS = 100_000;

    // ------------------------------------------------------------------ packed records
    /// One slot per account: unlocked stake and locked ("frozen") amount, in nRLC.
    struct AccountStore {
        uint128 stake;
        uint128 locked;
    }

    struct DealStore {
        // slot 0
        address appPointer;
        uint96 appPrice;
        // slot 1
        address appOwner;
        uint40 startTime;
        uint40 category;
        uint8 schedulerRewardRatio;
        uint8 flags; // DEAL_HAS_EXTRA: slot 5 holds beneficiary and trust
        // slot 2
        address workerpoolPointer;
        uint96 workerpoolPrice;
        // slot 3
        address workerpoolOwner;
        uint96 workerStake;
        // slot 4
        address requester;
        uint48 botFirst;
        uint48 botSize;
        // slot 5, written only when beneficiary != requester or trust > 1 (the common deal skips it)
        address beneficiary;
        uint64 trust;
        // slot 6 (zero unless a callback is set)
        address callback;
        // slot 7 (zero when the requester pays)
        address sponsor;
        // slots 8, 9 (zero without a dataset)
        address datasetPointer;
        uint96 datasetPrice;
        address datasetOwner;
        // slot 10 (zero without a tag)
        bytes32 tag;
        // slot 11+
        string params;
    }

    uint8 internal constant DEAL_HAS_EXTRA = 1;

    struct TaskStore {
        // slot 0
        bytes32 dealid;
        // slot 1
        uint8 status; // IexecLibCore_v5.TaskStatusEnum
        uint48 idx;
        uint40 timeref;
        uint40 revealDeadline;
        uint32 revealCounter;
        uint32 winnerCounter;
        // slot 2: consensus total weight minus the initial 1 PoCo starts with (so initialize writes nothing here)
        uint256 consensusTotal;
        bytes32 consensusValue;
        bytes32 resultDigest;
        address[] contributors;
        bytes results;
        bytes resultsCallback;
    }

    struct ContributionStore {
        // slot 0
        uint8 status; // IexecLibCore_v5.ContributionStatusEnum
        uint8 weight; // log2 of the contribution weight, as PoCo stores it
        address enclaveChallenge;
        // slots 1, 2
        bytes32 resultHash;
        bytes32 resultSeal;
    }

    struct CategoryStore {
        string name;
        string description;
        uint256 workClockTimeRef;
    }

    // ------------------------------------------------------------------ state (layout shared with DragonTasks)
    address internal _owner;
    uint256 internal _totalSupply;
    mapping(address => AccountStore) internal _accounts;
    mapping(address => mapping(address => uint256)) internal _allowances;
    CategoryStore[] internal _categories;
    mapping(bytes32 => uint256) internal _consumed;
    mapping(bytes32 => address) internal _presigned;
    mapping(bytes32 => DealStore) internal _deals;
    mapping(bytes32 => TaskStore) internal _tasks;
    mapping(bytes32 => mapping(address => ContributionStore)) internal _contributions;
    mapping(bytes32 => mapping(bytes32 => uint256)) internal _groups;
    mapping(address => uint256) internal _scores;
    /// Trust-1 tasks completed by contributeAndFinalize keep their single worker here instead of in
    /// `TaskStore.contributors` (one slot instead of two).
    mapping(bytes32 => address) internal _fastWorker;

    // ------------------------------------------------------------------ errors
    /// A value does not fit Dragon's packed storage (a price above 2^96 nRLC, a trust above 2^64, ...).
    /// PoCo would accept such orders but no account can pay for them.
    error ValueOutOfRange();

    function _dealTrust(DealStore storage deal) internal view returns (uint256) {
        return deal.flags & DEAL_HAS_EXTRA != 0 ? deal.trust : 1;
    }

    function _dealBeneficiary(DealStore storage deal) internal view returns (address) {
        return deal.flags & DEAL_HAS_EXTRA != 0 ? deal.beneficiary : deal.requester;
    }

    /// PoCo's Deal shape of a packed deal (all zero for an unknown id).
    function _viewDeal(bytes32 id) internal view returns (IexecLibCore_v5.Deal memory deal) {
        DealStore storage s = _deals[id];
        address requester = s.requester;
        if (requester == address(0)) return deal;
        deal.app = IexecLibCore_v5.Resource(s.appPointer, s.appOwner, s.appPrice);
        deal.dataset = IexecLibCore_v5.Resource(s.datasetPointer, s.datasetOwner, s.datasetPrice);
        deal.workerpool = IexecLibCore_v5.Resource(s.workerpoolPointer, s.workerpoolOwner, s.workerpoolPrice);
        deal.trust = _dealTrust(s);
        deal.category = s.category;
        deal.tag = s.tag;
        deal.requester = requester;
        deal.beneficiary = _dealBeneficiary(s);
        deal.callback = s.callback;
        deal.params = s.params;
        deal.startTime = s.startTime;
        deal.botFirst = s.botFirst;
        deal.botSize = s.botSize;
        deal.workerStake = s.workerStake;
        deal.schedulerRewardRatio = s.schedulerRewardRatio;
        address sponsor = s.sponsor;
        deal.sponsor = sponsor == address(0) ? requester : sponsor;
    }

    // ------------------------------------------------------------------ escrow internals
    // Escrow moves between accounts inside the hub; PoCo routes them through the hub's own balance and
    // emits ERC-20 Transfer events for each hop, Dragon emits only the Lock/Unlock/Reward/Seize events.

    function _lock(address account, uint256 value) internal {
        AccountStore storage a = _accounts[account];
        uint256 stake = a.stake;
        require(value <= stake, "IexecEscrow: Transfer amount exceeds balance");
        unchecked {
            a.stake = uint128(stake - value);
            a.locked = uint128(a.locked + value); // sum stays <= totalSupply < 2^128
        }
        emit Lock(account, value);
    }

    function _unlock(address account, uint256 value) internal {
        AccountStore storage a = _accounts[account];
        uint256 locked = a.locked;
        require(value <= locked, "IexecEscrow: unlock exceeds locked");
        unchecked {
            a.locked = uint128(locked - value);
            a.stake = uint128(a.stake + value);
        }
        emit Unlock(account, value);
    }

    /// Takes `value` from `account`'s locked funds; the caller must give the same value back out with
    /// `_reward` (or into the kitty) in the same transaction.
    function _seize(address account, uint256 value, bytes32 ref) internal {
        AccountStore storage a = _accounts[account];
        uint256 locked = a.locked;
        require(value <= locked, "IexecEscrow: seize exceeds locked");
        unchecked {
            a.locked = uint128(locked - value);
        }
        emit Seize(account, value, ref);
    }

    /// Rewards only hand back value seized or locked in the same transaction, so the stake cannot exceed
    /// the total supply (< 2^128); the checked cast turns a broken invariant into a revert
    /// (`SafeCastOverflowedUintDowncast`) instead of a stake wrapped to a small number.
    function _reward(address account, uint256 value, bytes32 ref) internal {
        AccountStore storage a = _accounts[account];
        a.stake = SafeCast.toUint128(a.stake + value);
        emit Reward(account, value, ref);
    }

    // ------------------------------------------------------------------ signatures
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// ECDSA (65-byte r,s,v with v in {27,28} or {0,1}; 64-byte EIP-2098 r,vs) or ERC-1271 when `account`
    /// is a contract. High-s signatures are rejected. Malformed signatures are simply invalid.
    function _verifySignature(address account, bytes32 digest, bytes calldata sig) internal view returns (bool) {
        if (account.code.length > 0) {
            (bool ok, bytes memory ret) =
                account.staticcall(abi.encodeWithSelector(0x1626ba7e, digest, sig)); // isValidSignature
            return ok && ret.length >= 32 && bytes4(abi.decode(ret, (bytes32))) == 0x1626ba7e;
        }
        return account != address(0) && _recover(digest, sig) == account;
    }

    function _recover(bytes32 digest, bytes calldata sig) internal pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint256 v;
        if (sig.length == 65) {
            assembly ("memory-safe") {
                r := calldataload(sig.offset)
                s := calldataload(add(sig.offset, 0x20))
                v := byte(0, calldataload(add(sig.offset, 0x40)))
            }
            if (v < 27) v += 27;
        } else if (sig.length == 64) {
            bytes32 vs;
            assembly ("memory-safe") {
                r := calldataload(sig.offset)
                vs := calldataload(add(sig.offset, 0x20))
            }
            s = vs & bytes32(0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff);
            v = (uint256(vs) >> 255) + 27;
        } else {
            return address(0);
        }
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, uint8(v), r, s);
    }

    /// EIP-191 "\x19Ethereum Signed Message:\n32" over keccak256(message), as PoCo's contribution authorizations.
    function _verifyEthSigned(address account, bytes32 messageHash, bytes calldata sig) internal view returns (bool) {
        bytes32 digest;
        assembly ("memory-safe") {
            mstore(0x00, "\x19Ethereum Signed Message:\n32")
            mstore(0x1c, messageHash)
            digest := keccak256(0x00, 0x3c)
        }
        return _verifySignature(account, digest, sig);
    }
}
