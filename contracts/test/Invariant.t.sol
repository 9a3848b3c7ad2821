// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "./utils/Test.sol";
import {HubFixture} from "./utils/HubFixture.sol";
import {DragonHub} from "../src/DragonHub.sol";
import {IexecLibOrders_v5 as O} from "../src/libs/IexecLibOrders_v5.sol";
import {console} from "./utils/console.sol";

/// Drives the hub through random sequences of deposits, withdrawals, escrow transfers, deals (single and
/// batched), successful and failed tasks, and replicated tasks with slashing.
contract EscrowHandler is HubFixture {
    uint256 public ghostDeposited;
    uint256 public ghostWithdrawn;
    // Ghost counters: what the random run actually did, so a run that only reverted cannot pass unnoticed.
    uint256 public matchCalls; // matchOne + matchBatch calls
    uint256 public dealsExpected; // deals whose payer and pool could pay and whose orders were valid
    uint256 public dealsMatched; // deals the hub settled
    uint256 public dealsRejected; // deals refused (badly signed or not fundable), as expected
    uint256 public unexpectedMatchFailures; // a fundable, valid deal that did not settle
    string public lastUnexpectedFailure;
    uint256 public tasksInitialized;
    uint256 public tasksDone;
    uint256 public tasksClaimed;
    uint256 private nonce;

    bytes32[] private openDeals; // deals with tasks left
    mapping(bytes32 => uint256) private nextIdx;

    constructor() {
        setUp();
    }

    function actors() public view returns (address[] memory list) {
        list = new address[](4 + workers.length);
        list[0] = requester;
        list[1] = scheduler;
        list[2] = appOwner;
        list[3] = sponsor;
        for (uint256 i = 0; i < workers.length; ++i) {
            list[4 + i] = workers[i];
        }
    }

    function _actor(uint256 seed) internal view returns (address) {
        address[] memory list = actors();
        return list[seed % list.length];
    }

    // ------------------------------------------------------------------ escrow actions

    function deposit(uint256 seed, uint256 amount) external {
        amount = bound(amount, 0, 1000e9);
        address who = _actor(seed);
        rlc.mint(who, amount);
        vm.startPrank(who);
        rlc.approve(address(hub), amount);
        hub.deposit(amount);
        vm.stopPrank();
        ghostDeposited += amount;
    }

    function withdraw(uint256 seed, uint256 amount) external {
        address who = _actor(seed);
        amount = bound(amount, 0, hub.balanceOf(who));
        vm.prank(who);
        hub.withdraw(amount);
        ghostWithdrawn += amount;
    }

    function transfer(uint256 fromSeed, uint256 toSeed, uint256 amount) external {
        address from = _actor(fromSeed);
        amount = bound(amount, 0, hub.balanceOf(from));
        vm.prank(from);
        hub.transfer(_actor(toSeed), amount);
    }

    // ------------------------------------------------------------------ market actions

    function _freshRequest(uint256 volume, uint256 trust) internal returns (O.RequestOrder memory r) {
        r = _requestOrder();
        r.volume = volume;
        r.trust = trust;
        r.salt = keccak256(abi.encode("inv", nonce++));
        _sign(r);
    }

    function _pool() internal view returns (O.WorkerpoolOrder memory w) {
        w = _workerpoolOrder();
        w.volume = type(uint32).max;
        w.trust = 100;
        _sign(w);
    }

    function _app() internal view returns (O.AppOrder memory a) {
        a = _appOrder();
        a.volume = type(uint32).max;
        _sign(a);
    }

    uint256 private constant DEAL_COST = APP_PRICE + WORKERPOOL_PRICE; // per task, no dataset
    uint256 private constant POOL_STAKE = WORKERPOOL_PRICE * 30 / 100; // per task

    /// Whether `payer` and the pool can lock a deal of `volume` tasks now (the only reason a valid deal of
    /// this handler may be refused).
    function _fundable(address payer, uint256 volume) internal view returns (bool) {
        return hub.balanceOf(payer) >= DEAL_COST * volume && hub.balanceOf(scheduler) >= POOL_STAKE * volume;
    }

    function _unexpected(string memory what) internal {
        ++unexpectedMatchFailures;
        lastUnexpectedFailure = what;
    }

    function matchOne(uint256 volume, uint256 trust, bool sponsored) external {
        ++matchCalls;
        volume = bound(volume, 1, 5);
        O.RequestOrder memory r = _freshRequest(volume, bound(trust, 1, 4));
        O.AppOrder memory a = _app();
        O.WorkerpoolOrder memory w = _pool();
        O.DatasetOrder memory d = _noDatasetOrder();
        bool fundable = _fundable(sponsored ? sponsor : requester, volume);
        if (fundable) ++dealsExpected;
        bool ok;
        bytes32 id;
        string memory reason;
        if (sponsored) {
            vm.prank(sponsor);
            try hub.sponsorMatchOrders(a, d, w, r) returns (bytes32 id_) {
                (ok, id) = (true, id_);
            } catch Error(string memory why) {
                reason = why;
            } catch {
                reason = "revert without a reason string";
            }
        } else {
            try hub.matchOrders(a, d, w, r) returns (bytes32 id_) {
                (ok, id) = (true, id_);
            } catch Error(string memory why) {
                reason = why;
            } catch {
                reason = "revert without a reason string";
            }
        }
        if (ok) {
            openDeals.push(id);
            ++dealsMatched;
            if (!fundable) _unexpected("settled a deal its payer could not fund");
        } else {
            ++dealsRejected;
            // Only the escrow may refuse a valid deal, and only when it is not fundable.
            if (fundable || keccak256(bytes(reason)) != keccak256("IexecEscrow: Transfer amount exceeds balance")) {
                _unexpected(reason);
            }
        }
    }

    function matchBatch(uint256 n, uint256 badMask) external {
        ++matchCalls;
        n = bound(n, 1, 6);
        O.AppOrder[] memory as_ = new O.AppOrder[](1);
        as_[0] = _app();
        O.DatasetOrder[] memory ds = new O.DatasetOrder[](1);
        O.WorkerpoolOrder[] memory ws = new O.WorkerpoolOrder[](1);
        ws[0] = _pool();
        O.RequestOrder[] memory rs = new O.RequestOrder[](n);
        DragonHub.BatchMatch[] memory ms = new DragonHub.BatchMatch[](n);
        for (uint256 i = 0; i < n; ++i) {
            rs[i] = _freshRequest(1, 1);
            if ((badMask >> i) & 1 == 1) rs[i].sign = hex"00";
            ms[i] = DragonHub.BatchMatch(0, 0, 0, uint32(i));
        }
        // Which deals should settle: well signed, and fundable after the deals before them locked.
        uint256 payerLeft = hub.balanceOf(requester);
        uint256 poolLeft = hub.balanceOf(scheduler);
        bool[] memory expected = new bool[](n);
        for (uint256 i = 0; i < n; ++i) {
            if ((badMask >> i) & 1 == 1 || payerLeft < DEAL_COST || poolLeft < POOL_STAKE) continue;
            expected[i] = true;
            payerLeft -= DEAL_COST;
            poolLeft -= POOL_STAKE;
            ++dealsExpected;
        }
        bytes32[] memory ids = hub.matchOrdersBatch(as_, ds, ws, rs, ms);
        for (uint256 i = 0; i < n; ++i) {
            bool settled = ids[i] != bytes32(0);
            if (settled) {
                openDeals.push(ids[i]);
                ++dealsMatched;
            } else {
                ++dealsRejected;
            }
            if (settled != expected[i]) _unexpected(string.concat("batch deal ", vm.toString(i)));
        }
    }

    function _nextTask(uint256 seed) internal returns (bytes32 dealid, bytes32 taskid, bool ok) {
        if (openDeals.length == 0) return (0, 0, false);
        uint256 k = seed % openDeals.length;
        dealid = openDeals[k];
        uint256 idx = nextIdx[dealid];
        if (idx >= hub.viewDeal(dealid).botSize) {
            openDeals[k] = openDeals[openDeals.length - 1];
            openDeals.pop();
            return (0, 0, false);
        }
        nextIdx[dealid] = idx + 1;
        taskid = tasks.initialize(dealid, idx);
        ++tasksInitialized;
        ok = true;
    }

    /// Completes a task: trust 1 by contributeAndFinalize, higher trust by replicated contributions with
    /// one dissenting worker (slashed).
    function completeTask(uint256 seed) external {
        (bytes32 dealid, bytes32 taskid, bool ok) = _nextTask(seed);
        if (!ok) return;
        uint256 trust = hub.viewDeal(dealid).trust;
        if (trust == 1) {
            address worker = workers[seed % workers.length];
            bytes memory auth = _authorization(worker, taskid, address(0));
            vm.prank(worker);
            try tasks.contributeAndFinalize(taskid, keccak256("r"), "", "", address(0), "", auth) {
                ++tasksDone;
            } catch {}
            return;
        }
        // Contributions: worker 0 dissents, workers 1.. agree until consensus.
        try this.contributeAs(workers[0], taskid, keccak256("bad")) {} catch {}
        for (uint256 i = 1; i < workers.length; ++i) {
            if (uint8(tasks.viewTask(taskid).status) != C_ACTIVE()) break;
            try this.contributeAs(workers[i], taskid, keccak256("good")) {} catch {}
        }
        if (uint8(tasks.viewTask(taskid).status) != C_REVEALING()) return;
        for (uint256 i = 1; i < workers.length; ++i) {
            vm.prank(workers[i]);
            try tasks.reveal(taskid, keccak256("good")) {} catch {}
        }
        vm.prank(scheduler);
        try tasks.finalize(taskid, "", "") {
            ++tasksDone;
        } catch {}
    }

    function contributeAs(address worker, bytes32 taskid, bytes32 digest) external {
        require(msg.sender == address(this));
        _contribute(worker, taskid, digest);
    }

    function C_ACTIVE() internal pure returns (uint8 s) {
        s = 1;
    }

    function C_REVEALING() internal pure returns (uint8 s) {
        s = 2;
    }

    /// Lets time run out on a task and claims it.
    function failTask(uint256 seed) external {
        (, bytes32 taskid, bool ok) = _nextTask(seed);
        if (!ok) return;
        if (seed % 2 == 0) {
            try this.contributeAs(workers[seed % workers.length], taskid, keccak256("x")) {} catch {}
        }
        vm.warp(block.timestamp + 36000 * 10);
        tasks.claim(taskid);
        ++tasksClaimed;
    }

    /// Liveness after whatever the run did: a freshly funded requester's deal settles and its trust-1 task
    /// completes, paying the worker.
    function probeSettlement() external returns (bytes32 dealid) {
        _fund(requester, DEAL_COST);
        _fund(scheduler, POOL_STAKE);
        ghostDeposited += DEAL_COST + POOL_STAKE;
        O.RequestOrder memory r = _freshRequest(1, 1);
        dealid = hub.matchOrders(_app(), _noDatasetOrder(), _pool(), r);
        bytes32 taskid = tasks.initialize(dealid, 0);
        address worker = workers[0];
        uint256 before = hub.balanceOf(worker);
        vm.prank(worker);
        tasks.contributeAndFinalize(taskid, keccak256("probe"), "", "", address(0), "", _authorization(worker, taskid, address(0)));
        require(hub.balanceOf(worker) > before, "probe: worker not paid");
    }

    function sumOfAccounts() external view returns (uint256 sum) {
        address[] memory list = actors();
        for (uint256 i = 0; i < list.length; ++i) {
            sum += hub.balanceOf(list[i]) + hub.frozenOf(list[i]);
        }
        sum += hub.balanceOf(KITTY) + hub.frozenOf(KITTY);
        sum += hub.balanceOf(datasetOwner) + hub.frozenOf(datasetOwner);
    }

    function hubAddress() external view returns (address) {
        return address(hub);
    }

    function rlcBalance(address who) external view returns (uint256) {
        return rlc.balanceOf(who);
    }

    function initialSupply() external view returns (uint256) {
        return FUNDS * (3 + workers.length);
    }
}

contract EscrowInvariantTest is Test {
    EscrowHandler handler;

    function setUp() public {
        handler = new EscrowHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](8);
        selectors[0] = EscrowHandler.deposit.selector;
        selectors[1] = EscrowHandler.withdraw.selector;
        selectors[2] = EscrowHandler.transfer.selector;
        selectors[3] = EscrowHandler.matchOne.selector;
        selectors[4] = EscrowHandler.matchBatch.selector;
        selectors[5] = EscrowHandler.completeTask.selector;
        selectors[6] = EscrowHandler.failTask.selector;
        selectors[7] = EscrowHandler.completeTask.selector; // twice: tasks are the interesting part
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    /// Escrow never creates or loses tokens: the hub's RLC balance equals its total supply, which equals
    /// deposits minus withdrawals and the sum over accounts of (stake + locked).
    function invariant_escrowConservation() public view {
        DragonHub hub = DragonHub(_hub());
        uint256 supply = hub.totalSupply();
        assertEq(supply, handler.initialSupply() + handler.ghostDeposited() - handler.ghostWithdrawn(), "deposits - withdrawals");
        assertEq(handler.sumOfAccounts(), supply, "sum of accounts");
        assertEq(_rlcBalance(address(hub)), supply, "token balance");
    }

    /// Every deal the handler expected to settle did (and no other), so the runs are not passing by
    /// reverting; then, whatever state the run left, a new deal still settles and its task completes.
    /// The counters are printed (forge test -vv) to show what each run exercised.
    function afterInvariant() public {
        console.log("match calls", handler.matchCalls());
        console.log("deals settled", handler.dealsMatched());
        console.log("deals expected to settle", handler.dealsExpected());
        console.log("deals refused as expected", handler.dealsRejected());
        console.log("tasks initialized", handler.tasksInitialized());
        console.log("tasks completed", handler.tasksDone());
        console.log("tasks claimed", handler.tasksClaimed());
        assertEq(handler.unexpectedMatchFailures(), 0, handler.lastUnexpectedFailure());
        assertEq(handler.dealsMatched(), handler.dealsExpected(), "deals settled vs expected");
        assertNotEq(handler.probeSettlement(), bytes32(0));
        invariant_escrowConservation();
    }

    function _hub() internal view returns (address) {
        (bool ok, bytes memory ret) = address(handler).staticcall(abi.encodeWithSignature("hubAddress()"));
        require(ok);
        return abi.decode(ret, (address));
    }

    function _rlcBalance(address who) internal view returns (uint256) {
        (bool ok, bytes memory ret) = address(handler).staticcall(abi.encodeWithSignature("rlcBalance(address)", who));
        require(ok);
        return abi.decode(ret, (uint256));
    }

    /// The handler is not vacuous: its market actions do settle deals and finish tasks (a random run may
    /// legitimately settle nothing, e.g. when the requester gave all its stake away first).
    function test_handlerExercisesEveryPath() public {
        handler.matchOne(1, 1, false); // trust 1
        handler.matchOne(1, 3, true); // trust 3, sponsored
        handler.matchBatch(3, 0);
        handler.matchBatch(3, 2); // second request badly signed
        assertEq(handler.dealsMatched(), 7);
        for (uint256 i = 0; i < 6; ++i) {
            handler.completeTask(i);
        }
        // 7 one-task deals, at most 6 completed: the loop finds the one left (popping finished deals)
        for (uint256 i = 0; i < 8 && handler.tasksClaimed() == 0; ++i) {
            handler.failTask(0);
        }
        assertGt(handler.tasksDone(), 3, "tasks completed");
        assertEq(handler.tasksClaimed(), 1);
        invariant_escrowConservation();
    }
}
