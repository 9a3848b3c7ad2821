// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {DragonHub} from "../src/DragonHub.sol";
import {IexecLibOrders_v5 as O} from "../src/libs/IexecLibOrders_v5.sol";

/// Scenarios for the gas figures in GAS.md. Each test performs only the operations being measured
/// (orders are signed in setUp), so that
///     forge test --match-path test/Gas.t.sol --isolate --gas-report
/// reports one transaction per hub call. Every test also checks the figure against its goal, so a gas
/// regression fails the build.
contract GasTest is HubFixture {
    O.AppOrder a;
    O.DatasetOrder d;
    O.DatasetOrder none;
    O.WorkerpoolOrder w;
    O.RequestOrder r;
    O.RequestOrder rd;
    O.AppOrder[] as_;
    O.DatasetOrder[] ds;
    O.WorkerpoolOrder[] ws;
    O.RequestOrder[] rs;
    DragonHub.BatchMatch[] ms;

    uint256 constant BATCH = 20;

    function setUp() public override {
        super.setUp();
        a = _sign(_appOrder());
        d = _sign(_datasetOrder());
        w = _sign(_workerpoolOrder());
        r = _sign(_requestOrder());
        O.RequestOrder memory r2 = _requestOrder();
        r2.dataset = dataset;
        r2.datasetmaxprice = DATASET_PRICE;
        rd = _sign(r2);

        as_.push(a);
        ds.push(none);
        ws.push(w);
        for (uint256 i = 0; i < BATCH; ++i) {
            O.RequestOrder memory ri = _requestOrder();
            ri.salt = keccak256(abi.encode("gas", i));
            rs.push(_sign(ri));
            ms.push(DragonHub.BatchMatch(0, 0, 0, uint32(i)));
        }
    }

    function test_gas_matchOrders() public {
        O.AppOrder memory a_ = a;
        O.DatasetOrder memory d_ = none;
        O.WorkerpoolOrder memory w_ = w;
        O.RequestOrder memory r_ = r;
        uint256 g = gasleft();
        hub.matchOrders(a_, d_, w_, r_);
        g -= gasleft();
        emit log_named_uint("matchOrders (no dataset), call frame gas", g);
        assertLe(g, 400_000);
    }

    function test_gas_matchOrders_withDataset() public {
        O.AppOrder memory a_ = a;
        O.DatasetOrder memory d_ = d;
        O.WorkerpoolOrder memory w_ = w;
        O.RequestOrder memory r_ = rd;
        uint256 g = gasleft();
        hub.matchOrders(a_, d_, w_, r_);
        g -= gasleft();
        emit log_named_uint("matchOrders (with dataset), call frame gas", g);
        assertLe(g, 400_000);
    }

    /// iExec's usual params are a JSON object of ~100 bytes (result storage provider and proxy).
    function test_gas_matchOrders_longParams() public {
        O.RequestOrder memory r_ = _requestOrder();
        r_.params =
            '{"iexec_result_storage_provider":"ipfs","iexec_result_storage_proxy":"https://result.v8-bellecour.iex.ec"}';
        r_.salt = keccak256("long params");
        _sign(r_);
        O.AppOrder memory a_ = a;
        O.DatasetOrder memory d_ = none;
        O.WorkerpoolOrder memory w_ = w;
        uint256 g = gasleft();
        hub.matchOrders(a_, d_, w_, r_);
        g -= gasleft();
        emit log_named_uint("matchOrders (no dataset, 105-byte params), call frame gas", g);
        assertLe(g, 400_000);
    }

    function test_gas_matchOrdersBatch20() public {
        O.AppOrder[] memory as2 = as_;
        O.DatasetOrder[] memory ds2 = ds;
        O.WorkerpoolOrder[] memory ws2 = ws;
        O.RequestOrder[] memory rs2 = rs;
        DragonHub.BatchMatch[] memory ms2 = ms;
        uint256 g = gasleft();
        bytes32[] memory ids = hub.matchOrdersBatch(as2, ds2, ws2, rs2, ms2);
        g -= gasleft();
        for (uint256 i = 0; i < BATCH; ++i) {
            assertTrue(ids[i] != bytes32(0));
        }
        emit log_named_uint("matchOrdersBatch x20, call frame gas per deal", g / BATCH);
        assertLe(g / BATCH, 200_000);
    }

    /// Match, then initialize + contributeAndFinalize. With --isolate each hub call is its own
    /// transaction, so the task's storage starts cold as on a real chain.
    function test_gas_trust1Task() public {
        O.AppOrder memory a_ = a;
        O.DatasetOrder memory d_ = none;
        O.WorkerpoolOrder memory w_ = w;
        O.RequestOrder memory r_ = r;
        bytes32 dealid_ = hub.matchOrders(a_, d_, w_, r_);
        bytes32 taskid_ = _taskid(dealid_, 0);
        bytes memory auth_ = _authorization(workers[0], taskid_, address(0));
        bytes memory results = bytes("ipfs://QmResultResultResultResultResultResult");
        uint256 g = gasleft();
        tasks.initialize(dealid_, 0);
        uint256 g1 = gasleft();
        vm.prank(workers[0]);
        tasks.contributeAndFinalize(taskid_, keccak256("result"), results, "", address(0), "", auth_);
        uint256 g2 = gasleft();
        emit log_named_uint("initialize, call frame gas", g - g1);
        emit log_named_uint("contributeAndFinalize, call frame gas", g1 - g2);
        assertLe(g - g2, 500_000);
    }
}
