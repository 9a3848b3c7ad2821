// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IexecLibOrders_v5 as O} from "../src/libs/IexecLibOrders_v5.sol";
import {IexecLibCore_v5 as C} from "../src/libs/IexecLibCore_v5.sol";
import {MockCallback, RevertingCallback} from "./mocks/Mocks.sol";
import {DragonTasks as D} from "../src/DragonTasks.sol";

contract TasksTest is HubFixture {
    uint256 constant T = 300; // category 0
    uint256 constant WORKER_STAKE = WORKERPOOL_PRICE * 30 / 100;
    uint256 constant POOL_STAKE = WORKERPOOL_PRICE * 30 / 100;
    bytes32 constant GOOD = keccak256("good result");
    bytes32 constant BAD = keccak256("bad result");

    /// A deal with the given trust and volume (workerpool order accepts trust up to 100).
    function _deal(uint256 trust, uint256 volume) internal returns (bytes32) {
        O.WorkerpoolOrder memory w = _workerpoolOrder();
        w.trust = 100;
        O.RequestOrder memory r = _requestOrder();
        r.trust = trust;
        r.volume = volume;
        return _match(_appOrder(), _noDatasetOrder(), w, r);
    }

    function _noExtra() internal pure returns (address[] memory) {
        return new address[](0);
    }

    // PoCo's numbering, as the custom errors report statuses.
    uint8 constant S_UNSET = 0;
    uint8 constant S_COMPLETED = 3;
    uint8 constant S_FAILED = 4;
    uint8 constant CS_PROVED = 2;

    // ------------------------------------------------------------------ initialize

    function test_initialize() public {
        bytes32 dealid = _deal(1, 3);
        bytes32 taskid = _taskid(dealid, 2);
        vm.expectEmit(true, true, false, true, address(hub));
        emit TaskInitialize(taskid, workerpool);
        assertEq(tasks.initialize(dealid, 2), taskid);
        C.Task memory t = tasks.viewTask(taskid);
        assertEq(uint256(t.status), uint256(C.TaskStatusEnum.ACTIVE));
        assertEq(t.dealid, dealid);
        assertEq(t.idx, 2);
        assertEq(t.timeref, T);
        assertEq(t.contributionDeadline, block.timestamp + 7 * T);
        assertEq(t.finalDeadline, block.timestamp + 10 * T);
        assertEq(t.revealDeadline, 0);
        assertEq(t.contributors.length, 0);
    }

    function test_initialize_reverts() public {
        bytes32 dealid = _deal(1, 3);
        vm.expectRevert(abi.encodeWithSelector(D.TaskIndexOutOfRange.selector, dealid, 3, 0, 3));
        tasks.initialize(dealid, 3); // idx >= botFirst + botSize
        bytes32 unknown = keccak256("no such deal");
        vm.expectRevert(abi.encodeWithSelector(D.TaskIndexOutOfRange.selector, unknown, 0, 0, 0));
        tasks.initialize(unknown, 0);
        tasks.initialize(dealid, 0);
        vm.expectRevert(abi.encodeWithSelector(D.TaskAlreadyInitialized.selector, _taskid(dealid, 0)));
        tasks.initialize(dealid, 0); // twice
    }

    function test_initialize_belowBotFirst() public {
        // Second deal of the same request starts at botFirst = 1.
        O.WorkerpoolOrder memory w = _workerpoolOrder();
        O.RequestOrder memory r = _requestOrder();
        r.volume = 2;
        O.AppOrder memory a = _appOrder();
        a.volume = 1;
        _match(a, _noDatasetOrder(), w, r);
        a.salt = keccak256("second");
        bytes32 second = _match(a, _noDatasetOrder(), w, r);
        vm.expectRevert(abi.encodeWithSelector(D.TaskIndexOutOfRange.selector, second, 0, 1, 1));
        tasks.initialize(second, 0);
        tasks.initialize(second, 1);
    }

    // ------------------------------------------------------------------ contribute

    function test_contribute() public {
        bytes32 taskid = tasks.initialize(_deal(3, 1), 0);
        uint256 before = _stake(workers[0]);
        vm.expectEmit(true, true, false, true, address(hub));
        emit TaskContribute(taskid, workers[0], _resultHash(taskid, GOOD));
        _contribute(workers[0], taskid, GOOD);
        assertEq(_stake(workers[0]), before - WORKER_STAKE);
        assertEq(_locked(workers[0]), WORKER_STAKE);
        C.Contribution memory c = tasks.viewContribution(taskid, workers[0]);
        assertEq(uint256(c.status), uint256(C.ContributionStatusEnum.CONTRIBUTED));
        assertEq(c.resultHash, _resultHash(taskid, GOOD));
        assertEq(c.resultSeal, _resultSeal(workers[0], taskid, GOOD));
        assertEq(c.weight, 1); // log2(2)
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.ACTIVE)); // trust 3 needs two workers
    }

    function test_contribute_reverts() public {
        bytes32 taskid = tasks.initialize(_deal(3, 1), 0);
        bytes32 h = _resultHash(taskid, GOOD);
        bytes32 s = _resultSeal(workers[0], taskid, GOOD);
        // authorization signed for another worker
        bytes memory wrongAuth = _authorization(workers[1], taskid, address(0));
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.InvalidAuthorization.selector, taskid, workers[0], scheduler));
        tasks.contribute(taskid, h, s, address(0), "", wrongAuth);
        // twice
        _contribute(workers[0], taskid, GOOD);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.AlreadyContributed.selector, taskid, workers[0]));
        tasks.contribute(taskid, h, s, address(0), "", auth);
        // after the contribution deadline
        uint256 deadline = tasks.viewTask(taskid).contributionDeadline;
        vm.warp(deadline);
        bytes memory auth1 = _authorization(workers[1], taskid, address(0));
        vm.prank(workers[1]);
        vm.expectRevert(abi.encodeWithSelector(D.ContributionDeadlineReached.selector, taskid, deadline));
        tasks.contribute(taskid, h, s, address(0), "", auth1);
    }

    function test_contribute_notInitialized() public {
        bytes32 taskid = _taskid(_deal(3, 1), 0);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.TaskNotActive.selector, taskid, S_UNSET));
        tasks.contribute(taskid, bytes32(0), bytes32(0), address(0), "", auth);
    }

    function test_contribute_needsStake() public {
        bytes32 taskid = tasks.initialize(_deal(3, 1), 0);
        address poor = makeAddr("poor");
        bytes memory auth = _authorization(poor, taskid, address(0));
        vm.prank(poor);
        vm.expectRevert(bytes("IexecEscrow: Transfer amount exceeds balance"));
        tasks.contribute(taskid, _resultHash(taskid, GOOD), _resultSeal(poor, taskid, GOOD), address(0), "", auth);
    }

    function test_contribute_teeNeedsEnclave() public {
        O.AppOrder memory a = _appOrder();
        a.tag = TEE_TAG;
        O.WorkerpoolOrder memory w = _workerpoolOrder();
        w.tag = TEE_TAG;
        O.RequestOrder memory r = _requestOrder();
        r.tag = TEE_TAG;
        bytes32 taskid = tasks.initialize(_match(a, _noDatasetOrder(), w, r), 0);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        bytes32 h = _resultHash(taskid, GOOD);
        bytes32 s = _resultSeal(workers[0], taskid, GOOD);
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.EnclaveChallengeRequired.selector, taskid));
        tasks.contribute(taskid, h, s, address(0), "", auth);

        // with an enclave challenge signed by the scheduler and the enclave's signature over (hash, seal)
        (address enclave, uint256 enclaveKey) = makeAddrAndKey("enclave");
        bytes memory auth2 = _authorization(workers[0], taskid, enclave);
        bytes32 m = keccak256(abi.encodePacked(h, s));
        bytes memory enclaveSign =
            _sig(enclaveKey, keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", m)));
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.InvalidEnclaveSignature.selector, taskid, enclave));
        tasks.contribute(taskid, h, s, enclave, _sig(appKey, m), auth2);
        vm.prank(workers[0]);
        tasks.contribute(taskid, h, s, enclave, enclaveSign, auth2);
        assertEq(tasks.viewContribution(taskid, workers[0]).enclaveChallenge, enclave);
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.REVEALING)); // trust 1
    }

    // ------------------------------------------------------------------ consensus, reveal, finalize

    /// k agreeing fresh workers (weight 2 each) reach consensus exactly when trust <= 2^k:
    /// trust 2^(k-1)+1 needs k workers, for k = 2..5.
    function test_replication_2to5Workers() public {
        for (uint256 k = 2; k <= 5; ++k) {
            uint256 snap = vm.snapshotState();
            _replicate(k, (1 << (k - 1)) + 1);
            vm.revertToState(snap);
        }
    }

    function _replicate(uint256 k, uint256 trust) internal {
        bytes32 taskid = tasks.initialize(_deal(trust, 1), 0);
        uint256[] memory before = new uint256[](k);
        for (uint256 i = 0; i < k; ++i) {
            before[i] = _stake(workers[i]);
            _contribute(workers[i], taskid, GOOD);
            C.TaskStatusEnum expected = i + 1 < k ? C.TaskStatusEnum.ACTIVE : C.TaskStatusEnum.REVEALING;
            assertEq(uint256(_status(taskid)), uint256(expected), "consensus at the wrong contribution");
        }
        C.Task memory t = tasks.viewTask(taskid);
        assertEq(t.consensusValue, _resultHash(taskid, GOOD));
        assertEq(t.winnerCounter, k);
        assertEq(t.revealDeadline, block.timestamp + 2 * T);
        for (uint256 i = 0; i < k; ++i) {
            _reveal(workers[i], taskid, GOOD);
        }
        uint256 schedulerBefore = _stake(scheduler);
        uint256 appOwnerBefore = _stake(appOwner);
        vm.prank(scheduler);
        tasks.finalize(taskid, bytes("ipfs://result"), "");
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.COMPLETED));
        uint256 workersReward = WORKERPOOL_PRICE * 99 / 100;
        uint256 each = workersReward / k;
        for (uint256 i = 0; i < k; ++i) {
            assertEq(_stake(workers[i]), before[i] + each, "worker reward");
            assertEq(_locked(workers[i]), 0);
            assertEq(tasks.viewScore(workers[i]), 1, "score +1 with several contributors");
        }
        assertEq(_stake(scheduler), schedulerBefore + POOL_STAKE + WORKERPOOL_PRICE - each * k);
        assertEq(_stake(appOwner), appOwnerBefore + APP_PRICE);
        assertEq(_locked(requester), 0);
        assertEq(tasks.viewTask(taskid).results, bytes("ipfs://result"));
        _assertConservation(_noExtra());
    }

    /// trust 5 (three agreeing workers needed); the fourth worker disagrees and is slashed.
    function test_wrongResultSlashed() public {
        bytes32 taskid = tasks.initialize(_deal(5, 1), 0);
        _contribute(workers[3], taskid, BAD); // first, so it is in the contributors list
        uint256 badBefore = _stake(workers[3]) + _locked(workers[3]);
        uint256[3] memory before;
        for (uint256 i = 0; i < 3; ++i) {
            before[i] = _stake(workers[i]);
            _contribute(workers[i], taskid, GOOD);
        }
        // group(good) = 8 after three, total = 1 + 2 + 8 = 11: 8 * 5 > 11 * 4 is false; a fourth good one:
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.ACTIVE));
        uint256 before4 = _stake(workers[4]);
        _contribute(workers[4], taskid, GOOD); // group 16, total 19: 80 > 76
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.REVEALING));
        assertEq(tasks.viewTask(taskid).winnerCounter, 4);

        // The bad worker cannot reveal.
        vm.prank(workers[3]);
        vm.expectRevert(
            abi.encodeWithSelector(
                D.ContributionNotInConsensus.selector,
                taskid,
                workers[3],
                _resultHash(taskid, BAD),
                _resultHash(taskid, GOOD)
            )
        );
        tasks.reveal(taskid, BAD);
        // A good worker cannot reveal a digest other than its own.
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.ResultHashMismatch.selector, taskid, workers[0]));
        tasks.reveal(taskid, BAD);

        for (uint256 i = 0; i < 3; ++i) {
            _reveal(workers[i], taskid, GOOD);
        }
        _reveal(workers[4], taskid, GOOD);
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.ContributionNotRevealable.selector, taskid, workers[0], CS_PROVED));
        tasks.reveal(taskid, GOOD); // twice

        // give the bad worker a score to check the 2/3 rule: set by a previous success is overkill here,
        // score 0 stays 0; check the event and the seized stake instead.
        vm.expectEmit(true, true, false, false, address(hub));
        emit FaultyContribution(workers[3], taskid);
        vm.prank(scheduler);
        tasks.finalize(taskid, "r", "");

        assertEq(_stake(workers[3]) + _locked(workers[3]), badBefore - WORKER_STAKE, "bad worker slashed");
        assertEq(uint256(tasks.viewContribution(taskid, workers[3]).status), uint256(C.ContributionStatusEnum.CONTRIBUTED));
        uint256 each = ((WORKERPOOL_PRICE + WORKER_STAKE) * 99 / 100) / 4;
        for (uint256 i = 0; i < 3; ++i) {
            assertEq(_stake(workers[i]), before[i] + each);
        }
        assertEq(_stake(workers[4]), before4 + each);
        _assertConservation(_noExtra());
    }

    function test_scorePolicy() public {
        // Worker 0 earns score on two replicated tasks, then loses a third of it when wrong.
        for (uint256 round = 0; round < 2; ++round) {
            O.WorkerpoolOrder memory w = _workerpoolOrder();
            w.trust = 100;
            O.RequestOrder memory r = _requestOrder();
            r.trust = 3;
            r.salt = keccak256(abi.encode(round));
            bytes32 taskid = tasks.initialize(_match(_appOrder(), _noDatasetOrder(), w, r), 0);
            _contribute(workers[0], taskid, GOOD);
            _contribute(workers[1], taskid, GOOD);
            _reveal(workers[0], taskid, GOOD);
            _reveal(workers[1], taskid, GOOD);
            vm.prank(scheduler);
            tasks.finalize(taskid, "", "");
        }
        assertEq(tasks.viewScore(workers[0]), 2);
        // Third task: trust 2; workers 1 and 2 agree (worker 0 disagrees first).
        O.WorkerpoolOrder memory w3 = _workerpoolOrder();
        w3.trust = 100;
        O.RequestOrder memory r3 = _requestOrder();
        r3.trust = 3;
        r3.salt = keccak256("third");
        bytes32 t3 = tasks.initialize(_match(_appOrder(), _noDatasetOrder(), w3, r3), 0);
        _contribute(workers[0], t3, BAD);
        _contribute(workers[2], t3, GOOD);
        _contribute(workers[3], t3, GOOD);
        _contribute(workers[4], t3, GOOD);
        assertEq(uint256(_status(t3)), uint256(C.TaskStatusEnum.REVEALING));
        _reveal(workers[2], t3, GOOD);
        _reveal(workers[3], t3, GOOD);
        _reveal(workers[4], t3, GOOD);
        vm.prank(scheduler);
        tasks.finalize(t3, "", "");
        assertEq(tasks.viewScore(workers[0]), 1, "score * 2 / 3");
        _assertConservation(_noExtra());
    }

    function test_finalize_reverts() public {
        bytes32 taskid = tasks.initialize(_deal(3, 1), 0);
        _contribute(workers[0], taskid, GOOD);
        _contribute(workers[1], taskid, GOOD);
        _reveal(workers[0], taskid, GOOD);
        // not the scheduler
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(D.NotScheduler.selector, taskid, requester, scheduler));
        tasks.finalize(taskid, "", "");
        // one of two winners revealed, reveal deadline not reached
        uint256 revealDeadline = tasks.viewTask(taskid).revealDeadline;
        vm.prank(scheduler);
        vm.expectRevert(abi.encodeWithSelector(D.CannotFinalize.selector, taskid, 1, 2, revealDeadline));
        tasks.finalize(taskid, "", "");
        // results callback given without a callback and not matching the digest
        vm.warp(revealDeadline);
        vm.prank(scheduler);
        vm.expectRevert(abi.encodeWithSelector(D.ResultsCallbackMismatch.selector, taskid));
        tasks.finalize(taskid, "", "junk");
        // after the reveal deadline, one reveal is enough
        vm.prank(scheduler);
        tasks.finalize(taskid, "", "");
        // the silent winner loses its stake
        assertEq(_locked(workers[1]), 0);
        vm.prank(scheduler);
        vm.expectRevert(abi.encodeWithSelector(D.TaskNotRevealing.selector, taskid, S_COMPLETED));
        tasks.finalize(taskid, "", ""); // already completed
        _assertConservation(_noExtra());
    }

    function test_finalize_afterFinalDeadline() public {
        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        _contribute(workers[0], taskid, GOOD);
        _reveal(workers[0], taskid, GOOD);
        uint256 finalDeadline = tasks.viewTask(taskid).finalDeadline;
        vm.warp(finalDeadline);
        vm.prank(scheduler);
        vm.expectRevert(abi.encodeWithSelector(D.FinalDeadlineReached.selector, taskid, finalDeadline));
        tasks.finalize(taskid, "", "");
    }

    function test_reveal_afterDeadline() public {
        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        _contribute(workers[0], taskid, GOOD);
        uint256 revealDeadline = tasks.viewTask(taskid).revealDeadline;
        vm.warp(revealDeadline);
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.RevealDeadlineReached.selector, taskid, revealDeadline));
        tasks.reveal(taskid, GOOD);
    }

    // ------------------------------------------------------------------ reopen

    function test_reopen() public {
        bytes32 taskid = tasks.initialize(_deal(3, 1), 0);
        _contribute(workers[0], taskid, BAD);
        _contribute(workers[1], taskid, BAD);
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.REVEALING));
        // too early
        uint256 revealDeadline = tasks.viewTask(taskid).revealDeadline;
        vm.prank(scheduler);
        vm.expectRevert(abi.encodeWithSelector(D.CannotReopen.selector, taskid, revealDeadline, 0));
        tasks.reopen(taskid);
        vm.warp(revealDeadline);
        // only the scheduler
        vm.prank(requester);
        vm.expectRevert(abi.encodeWithSelector(D.NotScheduler.selector, taskid, requester, scheduler));
        tasks.reopen(taskid);
        vm.expectEmit(true, false, false, false, address(hub));
        emit TaskReopen(taskid);
        vm.prank(scheduler);
        tasks.reopen(taskid);
        C.Task memory t = tasks.viewTask(taskid);
        assertEq(uint256(t.status), uint256(C.TaskStatusEnum.ACTIVE));
        assertEq(t.consensusValue, bytes32(0));
        assertEq(uint256(tasks.viewContribution(taskid, workers[0]).status), uint256(C.ContributionStatusEnum.REJECTED));

        // New workers reach consensus; the rejected ones are not winners and get slashed at finalize.
        _contribute(workers[2], taskid, GOOD);
        _contribute(workers[3], taskid, GOOD);
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.REVEALING));
        assertEq(tasks.viewTask(taskid).winnerCounter, 2);
        uint256 w0 = _stake(workers[0]) + _locked(workers[0]);
        _reveal(workers[2], taskid, GOOD);
        _reveal(workers[3], taskid, GOOD);
        vm.prank(scheduler);
        tasks.finalize(taskid, "", "");
        assertEq(_stake(workers[0]) + _locked(workers[0]), w0 - WORKER_STAKE);
        _assertConservation(_noExtra());
    }

    function test_reopen_notAfterReveal() public {
        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        _contribute(workers[0], taskid, GOOD);
        _reveal(workers[0], taskid, GOOD);
        uint256 revealDeadline = tasks.viewTask(taskid).revealDeadline;
        vm.warp(revealDeadline);
        vm.prank(scheduler);
        vm.expectRevert(abi.encodeWithSelector(D.CannotReopen.selector, taskid, revealDeadline, 1));
        tasks.reopen(taskid);
    }

    // ------------------------------------------------------------------ claim and kitty

    function test_claim_afterFinalDeadline() public {
        bytes32 dealid = _deal(3, 1);
        bytes32 taskid = tasks.initialize(dealid, 0);
        _contribute(workers[0], taskid, GOOD);
        uint256 requesterBefore = _stake(requester);
        uint256 workerBefore = _stake(workers[0]);
        uint256 finalDeadline = tasks.viewTask(taskid).finalDeadline;
        vm.warp(finalDeadline - 1);
        vm.expectRevert(abi.encodeWithSelector(D.FinalDeadlineNotReached.selector, taskid, finalDeadline));
        tasks.claim(taskid);
        vm.warp(block.timestamp + 1);
        vm.expectEmit(true, false, false, false, address(hub));
        emit TaskClaimed(taskid);
        tasks.claim(taskid); // anyone can claim
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.FAILED));
        assertEq(_stake(requester), requesterBefore + APP_PRICE + WORKERPOOL_PRICE, "refund");
        assertEq(_locked(requester), 0);
        assertEq(_locked(scheduler), 0, "pool stake seized");
        assertEq(_locked(KITTY), POOL_STAKE, "to the kitty");
        assertEq(_stake(workers[0]), workerBefore + WORKER_STAKE, "worker stake returned");
        vm.expectRevert(abi.encodeWithSelector(D.TaskNotClaimable.selector, taskid, S_FAILED));
        tasks.claim(taskid); // twice
        _assertConservation(_noExtra());
    }

    function test_claim_completedTaskReverts() public {
        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        vm.prank(workers[0]);
        tasks.contributeAndFinalize(taskid, GOOD, "", "", address(0), "", auth);
        vm.warp(block.timestamp + 10 * T);
        vm.expectRevert(abi.encodeWithSelector(D.TaskNotClaimable.selector, taskid, S_COMPLETED));
        tasks.claim(taskid);
    }

    function test_kittyRewardsNextSuccess() public {
        // Fill the kitty with 12 failed tasks, then a success pays the pool max(10%, 1 RLC) of it.
        bytes32 dealid = _deal(1, 12);
        bytes32[] memory ids = new bytes32[](12);
        uint256[] memory idx = new uint256[](12);
        for (uint256 i = 0; i < 12; ++i) {
            ids[i] = dealid;
            idx[i] = i;
        }
        vm.warp(block.timestamp + 10 * T);
        assertTrue(tasks.initializeAndClaimArray(ids, idx));
        uint256 kitty = 12 * POOL_STAKE; // 36 RLC
        assertEq(_locked(KITTY), kitty);

        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        uint256 schedulerBefore = _stake(scheduler);
        vm.prank(workers[0]);
        tasks.contributeAndFinalize(taskid, GOOD, "", "", address(0), "", auth);
        uint256 bonus = kitty * 10 / 100; // 3.6 RLC > 1 RLC minimum
        uint256 schedulerReward = WORKERPOOL_PRICE - WORKERPOOL_PRICE * 99 / 100;
        assertEq(_stake(scheduler), schedulerBefore + POOL_STAKE + bonus + schedulerReward);
        assertEq(_locked(KITTY), kitty - bonus);
        _assertConservation(_noExtra());
    }

    function test_initializeArray_claimArray() public {
        bytes32 dealid = _deal(1, 3);
        bytes32[] memory ids = new bytes32[](3);
        uint256[] memory idx = new uint256[](3);
        bytes32[] memory taskids = new bytes32[](3);
        for (uint256 i = 0; i < 3; ++i) {
            ids[i] = dealid;
            idx[i] = i;
            taskids[i] = _taskid(dealid, i);
        }
        vm.expectRevert(abi.encodeWithSelector(D.ArrayLengthMismatch.selector, 3, 2));
        tasks.initializeArray(ids, new uint256[](2));
        vm.expectRevert(abi.encodeWithSelector(D.ArrayLengthMismatch.selector, 3, 2));
        tasks.initializeAndClaimArray(ids, new uint256[](2));
        assertTrue(tasks.initializeArray(ids, idx));
        vm.warp(block.timestamp + 10 * T);
        uint256 before = _stake(requester);
        assertTrue(tasks.claimArray(taskids));
        assertEq(_stake(requester), before + 3 * (APP_PRICE + WORKERPOOL_PRICE));
        _assertConservation(_noExtra());
    }

    // ------------------------------------------------------------------ contributeAndFinalize

    function test_contributeAndFinalize() public {
        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        uint256 workerBefore = _stake(workers[0]);
        uint256 schedulerBefore = _stake(scheduler);
        uint256 appOwnerBefore = _stake(appOwner);
        vm.recordLogs();
        vm.prank(workers[0]);
        tasks.contributeAndFinalize(taskid, GOOD, bytes("ipfs://out"), "", address(0), "", auth);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 seen;
        for (uint256 i = 0; i < logs.length; ++i) {
            bytes32 t0 = logs[i].topics[0];
            if (
                t0 == keccak256("TaskContribute(bytes32,address,bytes32)")
                    || t0 == keccak256("TaskConsensus(bytes32,bytes32)")
                    || t0 == keccak256("TaskReveal(bytes32,address,bytes32)")
                    || t0 == keccak256("TaskFinalize(bytes32,bytes)")
            ) ++seen;
        }
        assertEq(seen, 4, "PoCo's four events");

        uint256 workerReward = WORKERPOOL_PRICE * 99 / 100;
        assertEq(_stake(workers[0]), workerBefore + workerReward);
        assertEq(_stake(scheduler), schedulerBefore + POOL_STAKE + WORKERPOOL_PRICE - workerReward);
        assertEq(_stake(appOwner), appOwnerBefore + APP_PRICE);
        assertEq(_locked(requester), 0);
        assertEq(tasks.viewScore(workers[0]), 0, "no score for a single contributor");

        C.Task memory t = tasks.viewTask(taskid);
        assertEq(uint256(t.status), uint256(C.TaskStatusEnum.COMPLETED));
        assertEq(t.consensusValue, _resultHash(taskid, GOOD));
        assertEq(t.resultDigest, GOOD);
        assertEq(t.revealCounter, 1);
        assertEq(t.winnerCounter, 1);
        assertEq(t.contributors.length, 1);
        assertEq(t.contributors[0], workers[0]);
        assertEq(t.results, bytes("ipfs://out"));
        C.Contribution memory c = tasks.viewContribution(taskid, workers[0]);
        assertEq(uint256(c.status), uint256(C.ContributionStatusEnum.PROVED));
        assertEq(c.resultHash, _resultHash(taskid, GOOD));
        assertEq(c.resultSeal, _resultSeal(workers[0], taskid, GOOD));
        _assertConservation(_noExtra());
    }

    function test_contributeAndFinalize_reverts() public {
        bytes32 t3 = tasks.initialize(_deal(3, 1), 0);
        bytes memory auth = _authorization(workers[0], t3, address(0));
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.TrustNotOne.selector, t3, 3));
        tasks.contributeAndFinalize(t3, GOOD, "", "", address(0), "", auth);

        bytes32 t1 = tasks.initialize(_deal(1, 1), 0);
        bytes memory auth1 = _authorization(workers[0], t1, address(0));
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.ResultsCallbackMismatch.selector, t1)); // no callback set
        tasks.contributeAndFinalize(t1, GOOD, "", "x", address(0), "", auth1);
        vm.prank(workers[1]);
        vm.expectRevert(abi.encodeWithSelector(D.InvalidAuthorization.selector, t1, workers[1], scheduler));
        tasks.contributeAndFinalize(t1, GOOD, "", "", address(0), "", auth1);
        uint256 deadline = tasks.viewTask(t1).contributionDeadline;
        vm.warp(deadline);
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.ContributionDeadlineReached.selector, t1, deadline));
        tasks.contributeAndFinalize(t1, GOOD, "", "", address(0), "", auth1);
    }

    /// A trust-1 task whose only contribution was never revealed is reopened with that contribution
    /// still listed: contributeAndFinalize must not finish it behind the rejected worker's back.
    function test_contributeAndFinalize_afterReopen() public {
        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        _contribute(workers[0], taskid, GOOD);
        vm.warp(tasks.viewTask(taskid).revealDeadline);
        vm.prank(scheduler);
        tasks.reopen(taskid);
        bytes memory auth = _authorization(workers[1], taskid, address(0));
        vm.prank(workers[1]);
        vm.expectRevert(abi.encodeWithSelector(D.TaskHasContributions.selector, taskid));
        tasks.contributeAndFinalize(taskid, GOOD, "", "", address(0), "", auth);
    }

    /// A contribution whose seal is not the worker's own cannot be revealed, even with the right digest.
    function test_reveal_sealMismatch() public {
        bytes32 taskid = tasks.initialize(_deal(1, 1), 0);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        vm.prank(workers[0]);
        tasks.contribute(taskid, _resultHash(taskid, GOOD), _resultSeal(workers[1], taskid, GOOD), address(0), "", auth);
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.ResultSealMismatch.selector, taskid, workers[0]));
        tasks.reveal(taskid, GOOD);
    }

    // ------------------------------------------------------------------ scenarios

    function test_scenario_callbackContract() public {
        MockCallback consumer = new MockCallback();
        O.RequestOrder memory r = _requestOrder();
        r.callback = address(consumer);
        bytes32 dealid = _match(_appOrder(), _noDatasetOrder(), _workerpoolOrder(), r);
        assertEq(hub.viewDeal(dealid).callback, address(consumer));
        bytes32 taskid = tasks.initialize(dealid, 0);
        bytes memory data = abi.encode(uint256(42));
        bytes32 digest = keccak256(data);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        vm.prank(workers[0]);
        vm.expectRevert(abi.encodeWithSelector(D.ResultsCallbackMismatch.selector, taskid)); // must hash to the digest
        tasks.contributeAndFinalize(taskid, GOOD, "", data, address(0), "", auth);
        vm.prank(workers[0]);
        tasks.contributeAndFinalize(taskid, digest, "", data, address(0), "", auth);
        assertEq(consumer.calls(), 1);
        assertEq(consumer.lastTask(), taskid);
        assertEq(consumer.lastResult(), data);
        assertEq(tasks.resultFor(taskid), data);
    }

    function test_scenario_callbackFailureDoesNotRevert() public {
        RevertingCallback consumer = new RevertingCallback();
        O.RequestOrder memory r = _requestOrder();
        r.callback = address(consumer);
        r.trust = 3;
        O.WorkerpoolOrder memory w = _workerpoolOrder();
        bytes32 taskid = tasks.initialize(_match(_appOrder(), _noDatasetOrder(), w, r), 0);
        bytes memory data = hex"beef";
        bytes32 digest = keccak256(data);
        _contribute(workers[0], taskid, digest);
        _contribute(workers[1], taskid, digest);
        _reveal(workers[0], taskid, digest);
        _reveal(workers[1], taskid, digest);
        vm.prank(scheduler);
        tasks.finalize(taskid, "", data);
        assertEq(uint256(_status(taskid)), uint256(C.TaskStatusEnum.COMPLETED));
        assertEq(tasks.resultFor(taskid), data);
    }

    function test_scenario_beneficiaryAndDataset() public {
        address beneficiary = makeAddr("beneficiary");
        O.DatasetOrder memory d = _datasetOrder();
        O.RequestOrder memory r = _requestOrder();
        r.dataset = dataset;
        r.datasetmaxprice = DATASET_PRICE;
        r.beneficiary = beneficiary;
        bytes32 dealid = _match(_appOrder(), d, _workerpoolOrder(), r);
        assertEq(hub.viewDeal(dealid).beneficiary, beneficiary);
        bytes32 taskid = tasks.initialize(dealid, 0);
        uint256 datasetOwnerBefore = _stake(datasetOwner);
        bytes memory auth = _authorization(workers[0], taskid, address(0));
        vm.prank(workers[0]);
        tasks.contributeAndFinalize(taskid, GOOD, "", "", address(0), "", auth);
        assertEq(_stake(datasetOwner), datasetOwnerBefore + DATASET_PRICE);
        _assertConservation(_noExtra());
    }

    function test_scenario_sponsoredTaskPaidBySponsor() public {
        O.AppOrder memory a = _sign(_appOrder());
        O.DatasetOrder memory d = _noDatasetOrder();
        O.WorkerpoolOrder memory w = _sign(_workerpoolOrder());
        O.RequestOrder memory r = _sign(_requestOrder());
        vm.prank(sponsor);
        bytes32 dealid = hub.sponsorMatchOrders(a, d, w, r);
        uint256 sponsorLocked = _locked(sponsor);
        assertEq(sponsorLocked, APP_PRICE + WORKERPOOL_PRICE);
        // failed task: refund goes to the sponsor, not the requester
        bytes32 taskid = tasks.initialize(dealid, 0);
        vm.warp(block.timestamp + 10 * T);
        uint256 requesterBefore = _stake(requester);
        tasks.claim(taskid);
        assertEq(_locked(sponsor), 0);
        assertEq(_stake(requester), requesterBefore);
        _assertConservation(_noExtra());
    }

    function test_scenario_bagOfTasks() public {
        uint256 n = 10;
        bytes32 dealid = _deal(1, n);
        bytes32[] memory ids = new bytes32[](n);
        uint256[] memory idx = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            ids[i] = dealid;
            idx[i] = i;
        }
        tasks.initializeArray(ids, idx);
        uint256 requesterLocked = _locked(requester);
        assertEq(requesterLocked, n * (APP_PRICE + WORKERPOOL_PRICE));
        for (uint256 i = 0; i < n; ++i) {
            bytes32 taskid = _taskid(dealid, i);
            address worker = workers[i % workers.length];
            bytes memory auth = _authorization(worker, taskid, address(0));
            vm.prank(worker);
            tasks.contributeAndFinalize(taskid, keccak256(abi.encode(i)), "", "", address(0), "", auth);
        }
        assertEq(_locked(requester), 0);
        assertEq(_locked(scheduler), 0);
        _assertConservation(_noExtra());
    }

    // ------------------------------------------------------------------ consensus model

    /// Random trust and a random agree/disagree pattern over five fresh workers: the hub reaches
    /// consensus exactly when PoCo's rule says so (group * trust > total * (trust - 1), total starting at
    /// 1, groups growing as max(group, 1) * weight - group with weight 2), on the right value, with the
    /// right number of winners.
    function testFuzz_consensusMatchesPoCoRule(uint8 trustSeed, uint8 pattern) public {
        uint256 trust = bound(trustSeed, 1, 40);
        bytes32 taskid = tasks.initialize(_deal(trust, 1), 0);
        uint256 total = 1;
        uint256 gGood = 0;
        uint256 gBad = 0;
        uint256 nGood = 0;
        uint256 nBad = 0;
        for (uint256 i = 0; i < 5; ++i) {
            bool good = (pattern >> i) & 1 == 1;
            _contribute(workers[i], taskid, good ? GOOD : BAD);
            uint256 g = good ? gGood : gBad;
            uint256 delta = (g > 1 ? g : 1) * 2 - g;
            g += delta;
            total += delta;
            if (good) {
                gGood = g;
                ++nGood;
            } else {
                gBad = g;
                ++nBad;
            }
            bool consensus = g * trust > total * (trust - 1);
            C.Task memory t = tasks.viewTask(taskid);
            if (consensus) {
                assertEq(uint256(t.status), uint256(C.TaskStatusEnum.REVEALING), "consensus expected");
                assertEq(t.consensusValue, _resultHash(taskid, good ? GOOD : BAD));
                assertEq(t.winnerCounter, good ? nGood : nBad);
                return;
            }
            assertEq(uint256(t.status), uint256(C.TaskStatusEnum.ACTIVE), "no consensus expected");
        }
    }
}
