// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {DragonHub} from "../src/DragonHub.sol";
import {DragonTasks} from "../src/DragonTasks.sol";
import {HubStorage} from "../src/HubStorage.sol";
import {IexecLibOrders_v5 as O} from "../src/libs/IexecLibOrders_v5.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// Exposes the escrow's reward path, whose inputs the public functions keep far below 2^128, so that the
/// overflow guard itself can be exercised.
contract RewardHarness is HubStorage {
    function reward(address account, uint256 value) external {
        _reward(account, value, bytes32(0));
    }

    function stakeOf(address account) external view returns (uint256) {
        return _accounts[account].stake;
    }
}

/// A workerpool registry that registers anything, owned by one scheduler: how a hub deployed over a
/// registry other than Dragon's sees workerpools whose policies Dragon's Workerpool would refuse.
contract OpenRegistry {
    address public immutable owner_;

    constructor(address o) {
        owner_ = o;
    }

    function ownerOfEntry(address) external view returns (address) {
        return owner_;
    }
}

contract PolicyPool {
    uint256 public stakeRatio;
    uint256 public rewardRatio;

    constructor(uint256 s, uint256 r) {
        stakeRatio = s;
        rewardRatio = r;
    }

    function policies() external view returns (uint256, uint256) {
        return (stakeRatio, rewardRatio);
    }
}

contract SafeCastTest is HubFixture {
    function test_reward_overflowReverts() public {
        RewardHarness h = new RewardHarness();
        address acc = makeAddr("acc");
        uint256 max = type(uint128).max;
        h.reward(acc, max);
        assertEq(h.stakeOf(acc), max);
        // One more would wrap the packed 128-bit stake to zero.
        vm.expectRevert(abi.encodeWithSelector(SafeCast.SafeCastOverflowedUintDowncast.selector, 128, max + 1));
        h.reward(acc, 1);
        address other = makeAddr("other");
        vm.expectRevert(abi.encodeWithSelector(SafeCast.SafeCastOverflowedUintDowncast.selector, 128, max + 1));
        h.reward(other, max + 1);
        assertEq(h.stakeOf(acc), max);
        assertEq(h.stakeOf(other), 0);
    }

    /// A hub over a foreign workerpool registry: policies that do not fit (stake ratio >= 2^128, scheduler
    /// ratio > 100, both of which used to be truncated) make the deal fail with a reason instead of being
    /// recorded with wrapped values; in a batch only that deal is skipped.
    function test_policyOutOfRange() public {
        OpenRegistry reg = new OpenRegistry(scheduler);
        hub = new DragonHub(rlc, address(appRegistry), address(datasetRegistry), address(reg));
        tasks = DragonTasks(address(hub));
        _fund(requester, FUNDS);
        _fund(scheduler, FUNDS);

        uint256[3] memory stakeRatios = [uint256(type(uint128).max) + 1, 30, uint256(type(uint128).max) + 30];
        uint256[3] memory rewardRatios = [uint256(1), 101, 1];
        for (uint256 i = 0; i < 3; ++i) {
            workerpool = address(new PolicyPool(stakeRatios[i], rewardRatios[i]));
            O.AppOrder memory a = _sign(_appOrder());
            O.WorkerpoolOrder memory w = _sign(_workerpoolOrder());
            O.RequestOrder memory r = _sign(_requestOrder());
            vm.expectRevert(bytes("Dragon: workerpool policy out of range"));
            hub.matchOrders(a, _noDatasetOrder(), w, r);
        }

        // Batch: a good pool and a bad one; the good deal settles, the bad one is reported.
        address good = address(new PolicyPool(30, 1));
        address bad = address(new PolicyPool(30, 256));
        O.AppOrder[] memory as_ = new O.AppOrder[](1);
        as_[0] = _sign(_appOrder());
        O.DatasetOrder[] memory ds = new O.DatasetOrder[](1);
        O.WorkerpoolOrder[] memory ws = new O.WorkerpoolOrder[](2);
        workerpool = bad;
        ws[0] = _sign(_workerpoolOrder());
        workerpool = good;
        ws[1] = _sign(_workerpoolOrder());
        O.RequestOrder[] memory rs = new O.RequestOrder[](2);
        O.RequestOrder memory r0 = _requestOrder();
        r0.workerpool = address(0);
        r0.salt = keccak256("bad pool");
        rs[0] = _sign(r0);
        r0.salt = keccak256("good pool");
        rs[1] = _sign(r0);
        DragonHub.BatchMatch[] memory ms = new DragonHub.BatchMatch[](2);
        ms[0] = DragonHub.BatchMatch(0, 0, 0, 0);
        ms[1] = DragonHub.BatchMatch(0, 0, 1, 1);
        vm.expectEmit(true, true, true, true, address(hub));
        emit MatchOrdersFailed(0, "Dragon: workerpool policy out of range");
        bytes32[] memory ids = hub.matchOrdersBatch(as_, ds, ws, rs, ms);
        assertEq(ids[0], bytes32(0));
        assertNotEq(ids[1], bytes32(0));
        assertEq(hub.viewDeal(ids[1]).schedulerRewardRatio, 1);
        assertEq(hub.viewDeal(ids[1]).workerStake, WORKERPOOL_PRICE * 30 / 100);
    }
}

/// Hand-built calldata that a well-behaved ABI encoder never produces: the hub must refuse it rather than
/// act on a masked or truncated reading. Each case first checks that the untouched encoding succeeds (in
/// a snapshot), so a revert is caused by the corruption and not by something else.
contract DirtyCalldataTest is HubFixture {
    uint256 constant WORD = 32;

    function _word(bytes memory data, uint256 pos) internal pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := mload(add(add(data, 0x20), pos))
        }
    }

    function _setWord(bytes memory data, uint256 pos, uint256 v) internal pure {
        assembly ("memory-safe") {
            mstore(add(add(data, 0x20), pos), v)
        }
    }

    function _copy(bytes memory data) internal pure returns (bytes memory) {
        return bytes.concat(data);
    }

    function _truncate(bytes memory data, uint256 len) internal pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i = 0; i < len; ++i) {
            out[i] = data[i];
        }
    }

    function _orders()
        internal
        view
        returns (O.AppOrder memory a, O.DatasetOrder memory d, O.WorkerpoolOrder memory w, O.RequestOrder memory r)
    {
        a = _sign(_appOrder());
        d = _noDatasetOrder();
        w = _sign(_workerpoolOrder());
        r = _sign(_requestOrder());
    }

    function _matchCalldata() internal view returns (bytes memory) {
        (O.AppOrder memory a, O.DatasetOrder memory d, O.WorkerpoolOrder memory w, O.RequestOrder memory r) =
            _orders();
        return abi.encodeCall(DragonHub.matchOrders, (a, d, w, r));
    }

    /// The clean encoding settles (checked in a snapshot); the corrupted one reverts and settles nothing.
    function _assertRejected(bytes memory clean, bytes memory dirty, string memory what) internal {
        uint256 snap = vm.snapshotState();
        (bool okClean,) = address(hub).call(clean);
        assertTrue(okClean, string.concat(what, ": the clean encoding should succeed"));
        vm.revertToState(snap);
        uint256 lockedBefore = _locked(requester);
        (bool ok,) = address(hub).call(dirty);
        assertFalse(ok, string.concat(what, ": accepted"));
        assertEq(_locked(requester), lockedBefore, string.concat(what, ": escrow moved"));
        assertEq(hub.viewConsumed(_hash(_requestOrder())), 0, string.concat(what, ": request consumed"));
    }

    // Head of matchOrders(app, dataset, workerpool, request): four offsets (each order has a `bytes sign`,
    // so each is a dynamic tuple), relative to the start of the arguments (after the selector).
    function _orderStart(bytes memory data, uint256 k) internal pure returns (uint256) {
        return 4 + _word(data, 4 + k * WORD);
    }

    function test_matchOrders_dirtyAddressHighBits() public {
        bytes memory clean = _matchCalldata();
        // app order: app (word 0); workerpool order: workerpool (word 0); request: requester (word 6),
        // beneficiary (word 11), callback (word 12). Bits above 160 set, low 160 bits unchanged.
        uint256[2][5] memory fields = [[uint256(0), 0], [uint256(2), 0], [uint256(3), 6], [uint256(3), 11], [uint256(3), 12]];
        for (uint256 i = 0; i < fields.length; ++i) {
            bytes memory dirty = _copy(clean);
            uint256 pos = _orderStart(dirty, fields[i][0]) + fields[i][1] * WORD;
            _setWord(dirty, pos, _word(dirty, pos) | (uint256(1) << 200));
            _assertRejected(clean, dirty, string.concat("dirty address field ", vm.toString(i)));
        }
    }

    function test_matchOrders_offsetOutOfBounds() public {
        bytes memory clean = _matchCalldata();
        // The request order's offset beyond the calldata.
        bytes memory dirty = _copy(clean);
        _setWord(dirty, 4 + 3 * WORD, clean.length + 0x1000);
        _assertRejected(clean, dirty, "order offset past the end");
        // An offset so large that offset + position wraps around 2^256.
        dirty = _copy(clean);
        _setWord(dirty, 4 + 3 * WORD, type(uint256).max - 31);
        _assertRejected(clean, dirty, "order offset wrapping");
        // The request's `params` string (word 13 of the request) pointing past the end.
        dirty = _copy(clean);
        uint256 paramsPos = _orderStart(dirty, 3) + 13 * WORD;
        _setWord(dirty, paramsPos, clean.length);
        _assertRejected(clean, dirty, "params offset past the end");
        // The app order's `sign` (word 8) with a length larger than what follows.
        dirty = _copy(clean);
        uint256 signPos = _orderStart(dirty, 0) + _word(dirty, _orderStart(dirty, 0) + 8 * WORD);
        _setWord(dirty, signPos, 1 << 64);
        _assertRejected(clean, dirty, "sign length past the end");
    }

    function test_matchOrders_truncated() public {
        bytes memory clean = _matchCalldata();
        // Inside the head; inside the app order; and the last word, which holds the request signature's
        // final byte (v) followed by padding (dropping padding alone loses nothing, and is accepted).
        uint256[3] memory lengths = [uint256(4 + 3 * WORD), 4 + 4 * WORD + 5 * WORD, clean.length - WORD];
        for (uint256 i = 0; i < lengths.length; ++i) {
            _assertRejected(clean, _truncate(clean, lengths[i]), string.concat("truncated to ", vm.toString(lengths[i])));
        }
    }

    function test_matchOrdersBatch_dirtyIndex() public {
        (O.AppOrder memory a, O.DatasetOrder memory d, O.WorkerpoolOrder memory w, O.RequestOrder memory r) =
            _orders();
        O.AppOrder[] memory as_ = new O.AppOrder[](1);
        as_[0] = a;
        O.DatasetOrder[] memory ds = new O.DatasetOrder[](1);
        ds[0] = d;
        O.WorkerpoolOrder[] memory ws = new O.WorkerpoolOrder[](1);
        ws[0] = w;
        O.RequestOrder[] memory rs = new O.RequestOrder[](1);
        rs[0] = r;
        DragonHub.BatchMatch[] memory ms = new DragonHub.BatchMatch[](1);
        bytes memory clean = abi.encodeCall(DragonHub.matchOrdersBatch, (as_, ds, ws, rs, ms));
        // The last word is matches[0].request (a uint32): 2^32 would read as index 0 if masked.
        bytes memory dirty = _copy(clean);
        _setWord(dirty, clean.length - WORD, uint256(1) << 32);
        _assertRejected(clean, dirty, "uint32 index with high bits");
    }

    function test_manageOrder_enumOutOfRange() public {
        O.AppOrderOperation memory op = O.AppOrderOperation(_appOrder(), O.OrderOperationEnum.SIGN, "");
        bytes memory clean = abi.encodeCall(DragonHub.manageAppOrder, (op));
        // manageAppOrder((order, operation, sign)): the tuple starts at 4 + head[0]; operation is its word 1.
        bytes memory dirty = _copy(clean);
        uint256 pos = 4 + _word(clean, 4) + WORD;
        assertEq(_word(dirty, pos), 0); // SIGN
        _setWord(dirty, pos, 2); // neither SIGN (0) nor CLOSE (1)
        bytes32 h = _hash(_appOrder());

        uint256 snap = vm.snapshotState();
        vm.prank(appOwner);
        (bool okClean,) = address(hub).call(clean);
        assertTrue(okClean, "clean presign");
        assertEq(hub.viewPresigned(h), appOwner);
        vm.revertToState(snap);

        vm.prank(appOwner);
        (bool ok,) = address(hub).call(dirty);
        assertFalse(ok, "operation 2 accepted");
        assertEq(hub.viewPresigned(h), address(0));
        assertEq(hub.viewConsumed(h), 0);
    }

    // ------------------------------------------------------------------ task module (through the fallback)

    function test_contribute_dirtyEnclaveChallenge() public {
        bytes32 taskid = tasks.initialize(_matchWithTrust(3, 1), 0);
        address worker = workers[0];
        bytes32 digest = keccak256("result");
        bytes memory clean = abi.encodeCall(
            DragonTasks.contribute,
            (
                taskid,
                _resultHash(taskid, digest),
                _resultSeal(worker, taskid, digest),
                address(0),
                "",
                _authorization(worker, taskid, address(0))
            )
        );
        uint256 snap = vm.snapshotState();
        vm.prank(worker);
        (bool okClean,) = address(hub).call(clean);
        assertTrue(okClean, "clean contribute");
        vm.revertToState(snap);

        // enclaveChallenge is argument 3: high bits set over a zero address (a masked read would see
        // "no enclave" and accept the scheduler's authorization for it).
        bytes memory dirty = _copy(clean);
        _setWord(dirty, 4 + 3 * WORD, uint256(1) << 160);
        vm.prank(worker);
        (bool ok,) = address(hub).call(dirty);
        assertFalse(ok, "dirty enclaveChallenge accepted");

        // The authorization's offset past the end, then calldata cut inside the static arguments.
        dirty = _copy(clean);
        _setWord(dirty, 4 + 5 * WORD, clean.length);
        vm.prank(worker);
        (ok,) = address(hub).call(dirty);
        assertFalse(ok, "authorization offset past the end accepted");
        vm.prank(worker);
        (ok,) = address(hub).call(_truncate(clean, 4 + 3 * WORD));
        assertFalse(ok, "truncated contribute accepted");
        assertEq(hub.frozenOf(worker), 0, "no stake locked");
        assertEq(tasks.viewTask(taskid).contributors.length, 0);
    }

    function test_initialize_truncated() public {
        bytes32 dealid = _matchDefault();
        bytes memory clean = abi.encodeCall(DragonTasks.initialize, (dealid, 0));
        (bool ok,) = address(hub).call(_truncate(clean, clean.length - 1));
        assertFalse(ok, "truncated initialize accepted");
        assertEq(uint256(tasks.viewTask(_taskid(dealid, 0)).status), 0);
        (ok,) = address(hub).call(clean);
        assertTrue(ok, "clean initialize");
    }
}
