// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {HubStorage} from "./HubStorage.sol";
import {IexecLibCore_v5} from "./libs/IexecLibCore_v5.sol";
import {App} from "./registries/Apps.sol";
import {Dataset} from "./registries/Datasets.sol";
import {Workerpool} from "./registries/Workerpools.sol";

interface ITokenSpender {
    function receiveApproval(address from, uint256 value, address token, bytes calldata data) external returns (bool);
}

/// @title Dragon task module: PoCo2's task lifecycle (initialize, contribute, reveal, reopen, finalize,
/// contributeAndFinalize, claim) and the task views.
/// @notice Runs only by delegatecall from `DragonHub` (its storage is the hub's); calling it directly only
/// touches its own empty storage. Consensus, deadlines, rewards, scores and kitty follow PoCo's
/// IexecPoco2 exactly; the storage is packed (see `HubStorage`), and a trust-1 task finished with
/// `contributeAndFinalize` stores only what cannot be recomputed (its result hash, seal and consensus
/// value are keccak256 of the digest and are rebuilt by the views).
contract DragonTasks is HubStorage {
    uint8 private constant UNSET = 0;
    uint8 private constant ACTIVE = 1;
    uint8 private constant REVEALING = 2;
    uint8 private constant COMPLETED = 3;
    uint8 private constant FAILED = 4;

    uint8 private constant C_CONTRIBUTED = 1;
    uint8 private constant C_PROVED = 2;
    uint8 private constant C_REJECTED = 3;

    // =====================================================================================================
    // Errors
    // =====================================================================================================
    // PoCo's task functions revert without a reason; these carry what a settler or a worker needs to tell
    // a lost race (someone initialized or finalized first) from a late call or a bad signature without
    // replaying the transaction. Statuses are PoCo's numbering (task: 0 UNSET, 1 ACTIVE, 2 REVEALING,
    // 3 COMPLETED, 4 FAILED; contribution: 0 UNSET, 1 CONTRIBUTED, 2 PROVED, 3 REJECTED).

    /// `idx` is outside the deal's [botFirst, botFirst + botSize) (an unknown deal has botSize 0).
    error TaskIndexOutOfRange(bytes32 dealid, uint256 idx, uint256 botFirst, uint256 botSize);
    error TaskAlreadyInitialized(bytes32 taskid);
    error TaskNotActive(bytes32 taskid, uint8 status);
    error TaskNotRevealing(bytes32 taskid, uint8 status);
    /// Only ACTIVE and REVEALING tasks can fail by claim.
    error TaskNotClaimable(bytes32 taskid, uint8 status);
    error ContributionDeadlineReached(bytes32 taskid, uint256 deadline);
    error RevealDeadlineReached(bytes32 taskid, uint256 deadline);
    error FinalDeadlineReached(bytes32 taskid, uint256 deadline);
    error FinalDeadlineNotReached(bytes32 taskid, uint256 deadline);
    error AlreadyContributed(bytes32 taskid, address worker);
    /// A TEE task (tag bit 0) needs an enclave challenge.
    error EnclaveChallengeRequired(bytes32 taskid);
    /// The scheduler's EIP-191 signature over (worker, taskid, enclaveChallenge) does not check out.
    error InvalidAuthorization(bytes32 taskid, address worker, address scheduler);
    error InvalidEnclaveSignature(bytes32 taskid, address enclaveChallenge);
    /// Only a CONTRIBUTED contribution can be revealed (not an absent, proved or rejected one).
    error ContributionNotRevealable(bytes32 taskid, address worker, uint8 status);
    error ContributionNotInConsensus(bytes32 taskid, address worker, bytes32 resultHash, bytes32 consensus);
    /// The digest does not hash to the contributed result hash.
    error ResultHashMismatch(bytes32 taskid, address worker);
    /// The digest does not hash to the contributed result seal.
    error ResultSealMismatch(bytes32 taskid, address worker);
    /// reopen / finalize are the scheduler's (the workerpool owner recorded in the deal).
    error NotScheduler(bytes32 taskid, address caller, address scheduler);
    /// reopen needs the reveal deadline passed with nobody having revealed.
    error CannotReopen(bytes32 taskid, uint256 revealDeadline, uint256 revealCounter);
    /// finalize needs every winner revealed, or at least one reveal once the reveal deadline passed.
    error CannotFinalize(bytes32 taskid, uint256 revealCounter, uint256 winnerCounter, uint256 revealDeadline);
    /// Callback data must be empty without a callback, and otherwise hash to the result digest.
    error ResultsCallbackMismatch(bytes32 taskid);
    /// contributeAndFinalize is for a task nobody contributed to yet.
    error TaskHasContributions(bytes32 taskid);
    /// contributeAndFinalize is for trust-1 deals only.
    error TrustNotOne(bytes32 taskid, uint256 trust);
    error ArrayLengthMismatch(uint256 dealids, uint256 idxs);

    // =====================================================================================================
    // Lifecycle
    // =====================================================================================================

    function initialize(bytes32 dealid, uint256 idx) public returns (bytes32 taskid) {
        DealStore storage deal = _deals[dealid];
        uint256 botFirst = deal.botFirst;
        uint256 botSize = deal.botSize;
        if (idx < botFirst || idx >= botFirst + botSize) revert TaskIndexOutOfRange(dealid, idx, botFirst, botSize);
        taskid = keccak256(abi.encodePacked(dealid, idx));
        TaskStore storage task = _tasks[taskid];
        if (task.status != UNSET) revert TaskAlreadyInitialized(taskid);
        task.dealid = dealid;
        task.status = ACTIVE;
        task.idx = uint48(idx);
        task.timeref = uint40(_categories[deal.category].workClockTimeRef);
        emit TaskInitialize(taskid, deal.workerpoolPointer);
    }

    function contribute(
        bytes32 taskid,
        bytes32 resultHash,
        bytes32 resultSeal,
        address enclaveChallenge,
        bytes calldata enclaveSign,
        bytes calldata authorizationSign
    ) external {
        TaskStore storage task = _tasks[taskid];
        DealStore storage deal = _deals[task.dealid];
        ContributionStore storage contribution = _contributions[taskid][msg.sender];
        uint256 timeref = task.timeref;
        _requireStatus(task, taskid, ACTIVE);
        _requireBeforeContributionDeadline(deal, taskid, timeref);
        if (contribution.status != UNSET) revert AlreadyContributed(taskid, msg.sender);
        _checkAuthorization(deal, taskid, resultHash, resultSeal, enclaveChallenge, enclaveSign, authorizationSign);

        contribution.status = C_CONTRIBUTED;
        contribution.enclaveChallenge = enclaveChallenge;
        contribution.resultHash = resultHash;
        contribution.resultSeal = resultSeal;
        task.contributors.push(msg.sender);
        _lock(msg.sender, deal.workerStake);
        emit TaskContribute(taskid, msg.sender, resultHash);

        // PoCo score policy 1/3: weight from the worker's score, groups grow multiplicatively.
        uint256 weight = _max(_scores[msg.sender] / 3, 3) - 1;
        uint256 group = _groups[taskid][resultHash];
        uint256 delta = _max(group, 1) * weight - group;
        contribution.weight = uint8(_log2(weight));
        group += delta;
        _groups[taskid][resultHash] = group;
        uint256 total = task.consensusTotal + delta;
        task.consensusTotal = total;

        // Consensus when group * trust > total * (trust - 1); PoCo's total starts at 1.
        uint256 trust = _dealTrust(deal);
        if (group * trust > (total + 1) * (trust - 1)) {
            uint256 winners = 0;
            address[] storage contributors = task.contributors;
            for (uint256 i = 0; i < contributors.length; ++i) {
                ContributionStore storage c = _contributions[taskid][contributors[i]];
                if (c.resultHash == resultHash && c.status == C_CONTRIBUTED) ++winners;
            }
            task.status = REVEALING;
            task.consensusValue = resultHash;
            task.revealDeadline = uint40(block.timestamp + timeref * REVEAL_DEADLINE_RATIO);
            task.revealCounter = 0;
            task.winnerCounter = uint32(winners);
            emit TaskConsensus(taskid, resultHash);
        }
    }

    function reveal(bytes32 taskid, bytes32 resultDigest) external {
        TaskStore storage task = _tasks[taskid];
        ContributionStore storage contribution = _contributions[taskid][msg.sender];
        _requireStatus(task, taskid, REVEALING);
        uint256 revealDeadline = task.revealDeadline;
        if (revealDeadline <= block.timestamp) revert RevealDeadlineReached(taskid, revealDeadline);
        uint8 cstatus = contribution.status;
        if (cstatus != C_CONTRIBUTED) revert ContributionNotRevealable(taskid, msg.sender, cstatus);
        bytes32 resultHash = contribution.resultHash;
        bytes32 consensus = task.consensusValue;
        if (resultHash != consensus) revert ContributionNotInConsensus(taskid, msg.sender, resultHash, consensus);
        if (resultHash != keccak256(abi.encodePacked(taskid, resultDigest))) {
            revert ResultHashMismatch(taskid, msg.sender);
        }
        if (contribution.resultSeal != keccak256(abi.encodePacked(msg.sender, taskid, resultDigest))) {
            revert ResultSealMismatch(taskid, msg.sender);
        }
        contribution.status = C_PROVED;
        task.revealCounter += 1;
        task.resultDigest = resultDigest;
        emit TaskReveal(taskid, msg.sender, resultDigest);
    }

    /// Nobody revealed before the reveal deadline: the scheduler reopens contributions; the silent
    /// winners are rejected and their group is forgotten.
    function reopen(bytes32 taskid) external {
        TaskStore storage task = _tasks[taskid];
        DealStore storage deal = _deals[task.dealid];
        _requireScheduler(deal, taskid);
        _requireStatus(task, taskid, REVEALING);
        _requireBeforeFinalDeadline(deal, task, taskid);
        if (task.revealDeadline > block.timestamp || task.revealCounter != 0) {
            revert CannotReopen(taskid, task.revealDeadline, task.revealCounter);
        }
        bytes32 consensus = task.consensusValue;
        address[] storage contributors = task.contributors;
        for (uint256 i = 0; i < contributors.length; ++i) {
            ContributionStore storage c = _contributions[taskid][contributors[i]];
            if (c.resultHash == consensus) c.status = C_REJECTED;
        }
        task.consensusTotal -= _groups[taskid][consensus];
        _groups[taskid][consensus] = 0;
        task.status = ACTIVE;
        task.consensusValue = 0;
        task.revealDeadline = 0;
        task.winnerCounter = 0;
        emit TaskReopen(taskid);
    }

    function finalize(bytes32 taskid, bytes calldata results, bytes calldata resultsCallback) external {
        TaskStore storage task = _tasks[taskid];
        bytes32 dealid = task.dealid;
        DealStore storage deal = _deals[dealid];
        _requireScheduler(deal, taskid);
        _requireStatus(task, taskid, REVEALING);
        _requireBeforeFinalDeadline(deal, task, taskid);
        uint256 revealCounter = task.revealCounter;
        if (
            revealCounter != task.winnerCounter && (revealCounter == 0 || task.revealDeadline > block.timestamp)
        ) revert CannotFinalize(taskid, revealCounter, task.winnerCounter, task.revealDeadline);
        address callback = deal.callback;
        if (
            !(callback == address(0) && resultsCallback.length == 0)
                && keccak256(resultsCallback) != task.resultDigest
        ) revert ResultsCallbackMismatch(taskid);
        task.status = COMPLETED;
        if (results.length != 0) task.results = results;
        if (resultsCallback.length != 0) task.resultsCallback = resultsCallback;

        _successWork(deal, taskid);
        _distributeRewards(deal, task, taskid);
        emit TaskFinalize(taskid, results);
        _executeCallback(callback, taskid, resultsCallback);
    }

    /// Trust 1: the only contribution is the result; no reveal round.
    function contributeAndFinalize(
        bytes32 taskid,
        bytes32 resultDigest,
        bytes calldata results,
        bytes calldata resultsCallback,
        address enclaveChallenge,
        bytes calldata enclaveSign,
        bytes calldata authorizationSign
    ) external {
        TaskStore storage task = _tasks[taskid];
        DealStore storage deal = _deals[task.dealid];
        uint256 timeref = task.timeref;
        _requireStatus(task, taskid, ACTIVE);
        _requireBeforeContributionDeadline(deal, taskid, timeref);
        if (task.contributors.length != 0) revert TaskHasContributions(taskid);
        uint256 trust = _dealTrust(deal);
        if (trust != 1) revert TrustNotOne(taskid, trust);
        bytes32 resultHash = keccak256(abi.encodePacked(taskid, resultDigest));
        bytes32 resultSeal = keccak256(abi.encodePacked(msg.sender, taskid, resultDigest));
        address callback = deal.callback;
        if (!(callback == address(0) && resultsCallback.length == 0) && keccak256(resultsCallback) != resultDigest) {
            revert ResultsCallbackMismatch(taskid);
        }
        _checkAuthorization(deal, taskid, resultHash, resultSeal, enclaveChallenge, enclaveSign, authorizationSign);

        ContributionStore storage contribution = _contributions[taskid][msg.sender];
        contribution.status = C_PROVED;
        contribution.enclaveChallenge = enclaveChallenge;
        // resultHash / resultSeal / consensusValue are recomputed by the views from resultDigest.
        task.status = COMPLETED;
        task.revealDeadline = uint40(block.timestamp + timeref * REVEAL_DEADLINE_RATIO);
        task.revealCounter = 1;
        task.winnerCounter = 1;
        task.resultDigest = resultDigest;
        if (results.length != 0) task.results = results;
        if (resultsCallback.length != 0) task.resultsCallback = resultsCallback;
        _fastWorker[taskid] = msg.sender;

        _successWork(deal, taskid);
        uint256 workerpoolPrice = deal.workerpoolPrice;
        uint256 workerReward = workerpoolPrice * (100 - deal.schedulerRewardRatio) / 100;
        _reward(msg.sender, workerReward, taskid);
        _reward(deal.workerpoolOwner, workerpoolPrice - workerReward, taskid);

        emit TaskContribute(taskid, msg.sender, resultHash);
        emit TaskConsensus(taskid, resultHash);
        emit TaskReveal(taskid, msg.sender, resultDigest);
        emit TaskFinalize(taskid, results);
        _executeCallback(callback, taskid, resultsCallback);
    }

    /// After the final deadline an unfinished task fails: the payer is refunded, the workerpool's stake
    /// goes to the kitty, contributors get their stakes back.
    function claim(bytes32 taskid) public {
        TaskStore storage task = _tasks[taskid];
        uint8 status = task.status;
        if (status != ACTIVE && status != REVEALING) revert TaskNotClaimable(taskid, status);
        DealStore storage deal = _deals[task.dealid];
        uint256 finalDeadline = deal.startTime + uint256(task.timeref) * FINAL_DEADLINE_RATIO;
        if (finalDeadline > block.timestamp) revert FinalDeadlineNotReached(taskid, finalDeadline);
        task.status = FAILED;

        uint256 workerpoolPrice = deal.workerpoolPrice;
        uint256 poolStake = workerpoolPrice * WORKERPOOL_STAKE_RATIO / 100;
        _unlock(_sponsorOf(deal), deal.appPrice + deal.datasetPrice + workerpoolPrice);
        _seize(deal.workerpoolOwner, poolStake, taskid);
        // PoCo: the seized pool stake is rewarded to the kitty and locked there in one step.
        _accounts[KITTY_ADDRESS].locked += SafeCast.toUint128(poolStake);
        emit Reward(KITTY_ADDRESS, poolStake, taskid);
        emit Lock(KITTY_ADDRESS, poolStake);

        uint256 workerStake = deal.workerStake;
        address[] storage contributors = task.contributors;
        for (uint256 i = 0; i < contributors.length; ++i) {
            _unlock(contributors[i], workerStake);
        }
        emit TaskClaimed(taskid);
    }

    function initializeArray(bytes32[] calldata dealids, uint256[] calldata idxs) external returns (bool) {
        if (dealids.length != idxs.length) revert ArrayLengthMismatch(dealids.length, idxs.length);
        for (uint256 i = 0; i < dealids.length; ++i) {
            initialize(dealids[i], idxs[i]);
        }
        return true;
    }

    function claimArray(bytes32[] calldata taskids) external returns (bool) {
        for (uint256 i = 0; i < taskids.length; ++i) {
            claim(taskids[i]);
        }
        return true;
    }

    function initializeAndClaimArray(bytes32[] calldata dealids, uint256[] calldata idxs) external returns (bool) {
        if (dealids.length != idxs.length) revert ArrayLengthMismatch(dealids.length, idxs.length);
        for (uint256 i = 0; i < dealids.length; ++i) {
            claim(initialize(dealids[i], idxs[i]));
        }
        return true;
    }

    // =====================================================================================================
    // Internals
    // =====================================================================================================

    /// The scheduler (workerpool owner) authorises the worker with an EIP-191 signature over
    /// keccak256(worker, taskid, enclaveChallenge); a TEE task also needs the enclave's signature over
    /// keccak256(resultHash, resultSeal). (No TEE broker on Dragon: PoCo's teebroker is zero here too.)
    function _checkAuthorization(
        DealStore storage deal,
        bytes32 taskid,
        bytes32 resultHash,
        bytes32 resultSeal,
        address enclaveChallenge,
        bytes calldata enclaveSign,
        bytes calldata authorizationSign
    ) private view {
        if (enclaveChallenge == address(0) && (deal.tag[31] & 0x01 != 0)) revert EnclaveChallengeRequired(taskid);
        address scheduler = deal.workerpoolOwner;
        if (
            !_verifyEthSigned(
                scheduler, keccak256(abi.encodePacked(msg.sender, taskid, enclaveChallenge)), authorizationSign
            )
        ) revert InvalidAuthorization(taskid, msg.sender, scheduler);
        if (
            enclaveChallenge != address(0)
                && !_verifyEthSigned(enclaveChallenge, keccak256(abi.encodePacked(resultHash, resultSeal)), enclaveSign)
        ) revert InvalidEnclaveSignature(taskid, enclaveChallenge);
    }

    function _requireStatus(TaskStore storage task, bytes32 taskid, uint8 expected) private view {
        uint8 status = task.status;
        if (status == expected) return;
        if (expected == ACTIVE) revert TaskNotActive(taskid, status);
        revert TaskNotRevealing(taskid, status);
    }

    function _requireBeforeContributionDeadline(DealStore storage deal, bytes32 taskid, uint256 timeref)
        private
        view
    {
        uint256 deadline = deal.startTime + timeref * CONTRIBUTION_DEADLINE_RATIO;
        if (deadline <= block.timestamp) revert ContributionDeadlineReached(taskid, deadline);
    }

    function _requireBeforeFinalDeadline(DealStore storage deal, TaskStore storage task, bytes32 taskid)
        private
        view
    {
        uint256 deadline = deal.startTime + uint256(task.timeref) * FINAL_DEADLINE_RATIO;
        if (deadline <= block.timestamp) revert FinalDeadlineReached(taskid, deadline);
    }

    function _requireScheduler(DealStore storage deal, bytes32 taskid) private view {
        address scheduler = deal.workerpoolOwner;
        if (msg.sender != scheduler) revert NotScheduler(taskid, msg.sender, scheduler);
    }

    function _sponsorOf(DealStore storage deal) private view returns (address) {
        address sponsor = deal.sponsor;
        return sponsor == address(0) ? deal.requester : sponsor;
    }

    /// PoCo successWork: the payer's locked task price is spent, app and dataset owners are paid, the
    /// workerpool's stake is released and the kitty pays the workerpool a bonus.
    function _successWork(DealStore storage deal, bytes32 taskid) private {
        uint256 appPrice = deal.appPrice;
        uint256 datasetPrice = deal.datasetPrice;
        uint256 workerpoolPrice = deal.workerpoolPrice;
        address workerpoolOwner = deal.workerpoolOwner;
        _seize(_sponsorOf(deal), appPrice + datasetPrice + workerpoolPrice, taskid);
        if (appPrice > 0) _reward(deal.appOwner, appPrice, taskid);
        if (datasetPrice > 0) _reward(deal.datasetOwner, datasetPrice, taskid);
        _unlock(workerpoolOwner, workerpoolPrice * WORKERPOOL_STAKE_RATIO / 100);
        uint256 kitty = _accounts[KITTY_ADDRESS].locked;
        if (kitty > 0) {
            kitty = _min(_max(kitty * KITTY_RATIO / 100, KITTY_MIN), kitty);
            _seize(KITTY_ADDRESS, kitty, taskid);
            _reward(workerpoolOwner, kitty, taskid);
        }
    }

    /// PoCo distributeRewards: proved workers share (workerpool price + seized stakes) minus the
    /// scheduler's ratio by log2 weight; the others lose their stake and a third of their score.
    function _distributeRewards(DealStore storage deal, TaskStore storage task, bytes32 taskid) private {
        address[] memory contributors = task.contributors;
        uint256 workerStake = deal.workerStake;
        uint256 totalLogWeight = 0;
        uint256 totalReward = deal.workerpoolPrice;
        for (uint256 i = 0; i < contributors.length; ++i) {
            ContributionStore storage c = _contributions[taskid][contributors[i]];
            if (c.status == C_PROVED) totalLogWeight += c.weight;
            else totalReward += workerStake;
        }
        uint256 workersReward = totalReward * (100 - deal.schedulerRewardRatio) / 100;
        for (uint256 i = 0; i < contributors.length; ++i) {
            address worker = contributors[i];
            ContributionStore storage c = _contributions[taskid][worker];
            if (c.status == C_PROVED) {
                uint256 workerReward = workersReward * c.weight / totalLogWeight;
                totalReward -= workerReward;
                _unlock(worker, workerStake);
                _reward(worker, workerReward, taskid);
                if (contributors.length > 1) {
                    _scores[worker] += 1;
                    emit AccurateContribution(worker, taskid);
                }
            } else {
                _seize(worker, workerStake, taskid);
                _scores[worker] = _scores[worker] * 2 / 3;
                emit FaultyContribution(worker, taskid);
            }
        }
        _reward(deal.workerpoolOwner, totalReward, taskid);
    }

    /// EIP-1154 callback, with PoCo's gas allowance; its failure does not undo the finalization.
    function _executeCallback(address target, bytes32 taskid, bytes calldata resultsCallback) private {
        if (target == address(0)) return;
        (bool ok,) = target.call{gas: CALLBACK_GAS}(
            abi.encodeWithSignature("receiveResult(bytes32,bytes)", taskid, resultsCallback)
        );
        ok;
        assert(gasleft() > CALLBACK_GAS / 63);
    }

    function _max(uint256 x, uint256 y) private pure returns (uint256) {
        return x > y ? x : y;
    }

    function _min(uint256 x, uint256 y) private pure returns (uint256) {
        return x < y ? x : y;
    }

    function _log2(uint256 x) private pure returns (uint256 r) {
        while (x > 1) {
            x >>= 1;
            ++r;
        }
    }

    // =====================================================================================================
    // Views
    // =====================================================================================================

    function viewTask(bytes32 taskid) public view returns (IexecLibCore_v5.Task memory t) {
        TaskStore storage s = _tasks[taskid];
        t.status = IexecLibCore_v5.TaskStatusEnum(s.status);
        if (s.status == UNSET) return t;
        DealStore storage deal = _deals[s.dealid];
        t.dealid = s.dealid;
        t.idx = s.idx;
        t.timeref = s.timeref;
        t.contributionDeadline = deal.startTime + t.timeref * CONTRIBUTION_DEADLINE_RATIO;
        t.revealDeadline = s.revealDeadline;
        t.finalDeadline = deal.startTime + t.timeref * FINAL_DEADLINE_RATIO;
        t.revealCounter = s.revealCounter;
        t.winnerCounter = s.winnerCounter;
        t.resultDigest = s.resultDigest;
        t.results = s.results;
        t.resultsCallback = s.resultsCallback;
        address fast = _fastWorker[taskid];
        if (fast != address(0)) {
            t.contributors = new address[](1);
            t.contributors[0] = fast;
            t.consensusValue = keccak256(abi.encodePacked(taskid, s.resultDigest));
        } else {
            t.contributors = s.contributors;
            t.consensusValue = s.consensusValue;
        }
    }

    function viewContribution(bytes32 taskid, address worker)
        public
        view
        returns (IexecLibCore_v5.Contribution memory c)
    {
        ContributionStore storage s = _contributions[taskid][worker];
        c.status = IexecLibCore_v5.ContributionStatusEnum(s.status);
        c.enclaveChallenge = s.enclaveChallenge;
        c.weight = s.weight;
        if (s.status != UNSET && _fastWorker[taskid] == worker) {
            bytes32 digest = _tasks[taskid].resultDigest;
            c.resultHash = keccak256(abi.encodePacked(taskid, digest));
            c.resultSeal = keccak256(abi.encodePacked(worker, taskid, digest));
        } else {
            c.resultHash = s.resultHash;
            c.resultSeal = s.resultSeal;
        }
    }

    function viewScore(address worker) external view returns (uint256) {
        return _scores[worker];
    }

    /// EIP-1154 oracle read: the callback data of a completed task.
    function resultFor(bytes32 taskid) external view returns (bytes memory) {
        TaskStore storage s = _tasks[taskid];
        require(s.status == COMPLETED, "task-pending");
        return s.resultsCallback;
    }

    // =====================================================================================================
    // Asset views and PoCo's legacy ABI accessors (used by iExec's Java middleware)
    // =====================================================================================================

    function viewApp(address app) external view returns (IexecLibCore_v5.AppInfo memory) {
        App a = App(app);
        return IexecLibCore_v5.AppInfo(
            a.owner(), a.m_appName(), a.m_appType(), a.m_appMultiaddr(), a.m_appChecksum(), a.m_appMREnclave()
        );
    }

    function viewDataset(address dataset) external view returns (IexecLibCore_v5.DatasetInfo memory) {
        Dataset d = Dataset(dataset);
        return IexecLibCore_v5.DatasetInfo(d.owner(), d.m_datasetName(), d.m_datasetMultiaddr(), d.m_datasetChecksum());
    }

    function viewWorkerpool(address workerpool) external view returns (IexecLibCore_v5.WorkerpoolInfo memory) {
        Workerpool w = Workerpool(workerpool);
        return IexecLibCore_v5.WorkerpoolInfo(
            w.owner(), w.m_workerpoolDescription(), w.m_workerStakeRatioPolicy(), w.m_schedulerRewardRatioPolicy()
        );
    }

    function viewDealABILegacy_pt1(bytes32 id)
        external
        view
        returns (address, address, uint256, address, address, uint256, address, address, uint256)
    {
        IexecLibCore_v5.Deal memory d = _viewDeal(id);
        return (
            d.app.pointer,
            d.app.owner,
            d.app.price,
            d.dataset.pointer,
            d.dataset.owner,
            d.dataset.price,
            d.workerpool.pointer,
            d.workerpool.owner,
            d.workerpool.price
        );
    }

    function viewDealABILegacy_pt2(bytes32 id)
        external
        view
        returns (uint256, bytes32, address, address, address, string memory)
    {
        IexecLibCore_v5.Deal memory d = _viewDeal(id);
        return (d.trust, d.tag, d.requester, d.beneficiary, d.callback, d.params);
    }

    function viewConfigABILegacy(bytes32 id)
        external
        view
        returns (uint256, uint256, uint256, uint256, uint256, uint256)
    {
        IexecLibCore_v5.Deal memory d = _viewDeal(id);
        return (d.category, d.startTime, d.botFirst, d.botSize, d.workerStake, d.schedulerRewardRatio);
    }

    function viewAccountABILegacy(address account) external view returns (uint256, uint256) {
        AccountStore memory a = _accounts[account];
        return (a.stake, a.locked);
    }

    function viewTaskABILegacy(bytes32 taskid)
        external
        view
        returns (
            IexecLibCore_v5.TaskStatusEnum,
            bytes32,
            uint256,
            uint256,
            uint256,
            uint256,
            uint256,
            bytes32,
            uint256,
            uint256,
            address[] memory,
            bytes memory
        )
    {
        IexecLibCore_v5.Task memory t = viewTask(taskid);
        return (
            t.status,
            t.dealid,
            t.idx,
            t.timeref,
            t.contributionDeadline,
            t.revealDeadline,
            t.finalDeadline,
            t.consensusValue,
            t.revealCounter,
            t.winnerCounter,
            t.contributors,
            t.results
        );
    }

    function viewContributionABILegacy(bytes32 taskid, address worker)
        external
        view
        returns (IexecLibCore_v5.ContributionStatusEnum, bytes32, bytes32, address)
    {
        IexecLibCore_v5.Contribution memory c = viewContribution(taskid, worker);
        return (c.status, c.resultHash, c.resultSeal, c.enclaveChallenge);
    }

    function viewCategoryABILegacy(uint256 catid) external view returns (string memory, string memory, uint256) {
        CategoryStore storage c = _categories[catid];
        return (c.name, c.description, c.workClockTimeRef);
    }

    // =====================================================================================================
    // Rarely used PoCo entry points kept for ABI compatibility
    // =====================================================================================================

    /// ERC-20 approveAndCall on staked RLC (PoCo IexecERC20).
    function approveAndCall(address spender, uint256 value, bytes calldata extraData) external returns (bool) {
        require(spender != address(0), "ERC20: approve zero address");
        _allowances[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        require(ITokenSpender(spender).receiveApproval(msg.sender, value, address(this), extraData), "approval-refused");
        return true;
    }

    /// The EIP-712 domain separator follows the chain id by itself here; kept so PoCo tooling can call it.
    function updateDomainSeparator() external {}
}
