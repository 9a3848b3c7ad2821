// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {DragonHub} from "../src/DragonHub.sol";
import {IexecLibOrders_v5 as O} from "../src/libs/IexecLibOrders_v5.sol";
import {IexecLibCore_v5 as C} from "../src/libs/IexecLibCore_v5.sol";

contract BatchTest is HubFixture {
    function _requests(uint256 n) internal view returns (O.RequestOrder[] memory rs) {
        rs = new O.RequestOrder[](n);
        for (uint256 i = 0; i < n; ++i) {
            O.RequestOrder memory r = _requestOrder();
            r.salt = keccak256(abi.encode("batch", i));
            rs[i] = _sign(r);
        }
    }

    function _batch(O.RequestOrder[] memory rs, DragonHub.BatchMatch[] memory ms)
        internal
        returns (bytes32[] memory)
    {
        O.AppOrder[] memory as_ = new O.AppOrder[](1);
        as_[0] = _sign(_appOrder());
        O.DatasetOrder[] memory ds = new O.DatasetOrder[](1);
        O.WorkerpoolOrder[] memory ws = new O.WorkerpoolOrder[](1);
        ws[0] = _sign(_workerpoolOrder());
        return hub.matchOrdersBatch(as_, ds, ws, rs, ms);
    }

    function _matches(uint256 n) internal pure returns (DragonHub.BatchMatch[] memory ms) {
        ms = new DragonHub.BatchMatch[](n);
        for (uint256 i = 0; i < n; ++i) {
            ms[i] = DragonHub.BatchMatch(0, 0, 0, uint32(i));
        }
    }

    function test_batch_allSettled() public {
        uint256 n = 20;
        O.RequestOrder[] memory rs = _requests(n);
        bytes32[] memory ids = _batch(rs, _matches(n));
        for (uint256 i = 0; i < n; ++i) {
            assertEq(ids[i], keccak256(abi.encodePacked(_hash(rs[i]), uint256(0))));
            C.Deal memory deal = hub.viewDeal(ids[i]);
            assertEq(deal.botSize, 1);
            assertEq(deal.requester, requester);
            assertEq(hub.viewConsumed(_hash(rs[i])), 1);
        }
        assertEq(hub.viewConsumed(_hash(_appOrder())), n);
        assertEq(hub.viewConsumed(_hash(_workerpoolOrder())), n);
        assertEq(_locked(requester), n * (APP_PRICE + WORKERPOOL_PRICE));
        assertEq(_locked(scheduler), n * (WORKERPOOL_PRICE * 30 / 100));
        _assertConservation(new address[](0));
    }

    /// Deal 3 has a bad signature, deal 5 repeats an exhausted request, deal 7 points past the arrays,
    /// deal 9's requester cannot pay: those four are reported and skipped, the others settle.
    function test_batch_failingDealsAreSkipped() public {
        uint256 n = 10;
        O.RequestOrder[] memory rs = _requests(n);
        rs[3].sign = _sig(appKey, _hash(rs[3]));
        DragonHub.BatchMatch[] memory ms = _matches(n);
        ms[5].request = 4; // request 4 (volume 1) is consumed by deal 4 already
        ms[7].request = 99;
        // request 9 from a requester without funds
        (address broke, uint256 brokeKey) = makeAddrAndKey("broke");
        rs[9].requester = broke;
        rs[9].sign = _sig(brokeKey, _hash(rs[9]));

        vm.recordLogs();
        bytes32[] memory ids = _batch(rs, ms);
        Vm.Log[] memory logs = vm.getRecordedLogs();

        uint256[4] memory failed = [uint256(3), 5, 7, 9];
        string[4] memory reasons = [
            "iExecV5-matchOrders-0x50",
            "iExecV5-matchOrders-0x60",
            "Dragon: batch index out of range",
            "IexecEscrow: Transfer amount exceeds balance"
        ];
        uint256 k = 0;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].topics[0] != keccak256("MatchOrdersFailed(uint256,string)")) continue;
            assertEq(uint256(logs[i].topics[1]), failed[k], "failing index");
            assertEq(abi.decode(logs[i].data, (string)), reasons[k]);
            ++k;
        }
        assertEq(k, 4, "four failures reported");
        for (uint256 i = 0; i < n; ++i) {
            bool isFailed = i == 3 || i == 5 || i == 7 || i == 9;
            assertEq(ids[i] == bytes32(0), isFailed);
        }
        assertEq(hub.viewConsumed(_hash(_workerpoolOrder())), 6);
        assertEq(_locked(requester), 6 * (APP_PRICE + WORKERPOOL_PRICE));
        assertEq(hub.viewConsumed(_hash(rs[3])), 0, "failed deal consumed nothing");
        _assertConservation(new address[](0));
    }

    /// A batch of one equals matchOrders: same dealid and the same deal record.
    function test_batch_equalsMatchOrders() public {
        uint256 snap = vm.snapshotState();
        O.RequestOrder[] memory rs = _requests(1);
        bytes32 viaBatch = _batch(rs, _matches(1))[0];
        C.Deal memory a = hub.viewDeal(viaBatch);
        vm.revertToState(snap);
        bytes32 viaMatch = hub.matchOrders(_sign(_appOrder()), _noDatasetOrder(), _sign(_workerpoolOrder()), rs[0]);
        C.Deal memory b = hub.viewDeal(viaMatch);
        assertEq(viaBatch, viaMatch);
        assertEq(keccak256(abi.encode(a)), keccak256(abi.encode(b)));
    }

    /// Fuzz: a random subset of requests gets a broken signature; exactly the others settle.
    function testFuzz_batch_subsetFails(uint16 badMask) public {
        uint256 n = 12;
        O.RequestOrder[] memory rs = _requests(n);
        uint256 good = 0;
        for (uint256 i = 0; i < n; ++i) {
            if ((badMask >> i) & 1 == 1) rs[i].sign = hex"1234";
            else ++good;
        }
        bytes32[] memory ids = _batch(rs, _matches(n));
        for (uint256 i = 0; i < n; ++i) {
            assertEq(ids[i] == bytes32(0), (badMask >> i) & 1 == 1);
        }
        assertEq(_locked(requester), good * (APP_PRICE + WORKERPOOL_PRICE));
        _assertConservation(new address[](0));
    }
}
