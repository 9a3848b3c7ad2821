// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Vm} from "../test/utils/Vm.sol";
import {RLC} from "../src/RLC.sol";
import {DragonHub} from "../src/DragonHub.sol";
import {DragonTasks} from "../src/DragonTasks.sol";
import {AppRegistry} from "../src/registries/Apps.sol";
import {DatasetRegistry} from "../src/registries/Datasets.sol";
import {WorkerpoolRegistry} from "../src/registries/Workerpools.sol";
import {IexecLibOrders_v5 as O} from "../src/libs/IexecLibOrders_v5.sol";

/// Real transactions on a node (anvil), for receipt gas figures comparable to PoCo's hardhat reports.
/// Run by scripts/gas-anvil.sh: `run()` deploys and plays the scenarios, `claimLater(hub)` claims a task
/// once the node's clock has passed its final deadline.
contract GasScenario {
    Vm constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    // anvil's well-known dev keys
    uint256 constant K_DEPLOYER = 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80;
    uint256 constant K_APP = 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d;
    uint256 constant K_SCHED = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;
    uint256 constant K_REQ = 0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6;
    uint256 constant K_W1 = 0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a;
    uint256 constant K_W2 = 0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba;
    uint256 constant K_DATA = 0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e;

    RLC rlc;
    DragonHub hub;
    DragonTasks tasks;
    address app;
    address dataset;
    address pool;

    function run() external {
        vm.startBroadcast(K_DEPLOYER);
        rlc = new RLC();
        AppRegistry apps = new AppRegistry();
        DatasetRegistry datasets = new DatasetRegistry();
        WorkerpoolRegistry pools = new WorkerpoolRegistry();
        hub = new DragonHub(rlc, address(apps), address(datasets), address(pools));
        tasks = DragonTasks(address(hub));
        app = address(apps.createApp(vm.addr(K_APP), "app", "DOCKER", "docker.io/dragon/app:1", keccak256("a"), ""));
        dataset = address(datasets.createDataset(vm.addr(K_DATA), "dataset", "ipfs://d", keccak256("d")));
        pool = address(pools.createWorkerpool(vm.addr(K_SCHED), "pool"));
        uint256[4] memory funded = [K_REQ, K_SCHED, K_W1, K_W2];
        for (uint256 i = 0; i < 4; ++i) {
            rlc.mint(vm.addr(funded[i]), 1_000_000e9);
        }
        vm.stopBroadcast();
        for (uint256 i = 0; i < 4; ++i) {
            vm.startBroadcast(funded[i]);
            rlc.approve(address(hub), 1_000_000e9);
            hub.deposit(1_000_000e9);
            vm.stopBroadcast();
        }

        O.AppOrder memory a = _signApp();
        O.WorkerpoolOrder memory w = _signPool();
        O.DatasetOrder memory none;
        O.DatasetOrder memory d = _signDataset();

        vm.startBroadcast(K_REQ);
        // matchOrders without dataset (x3) and with dataset (x3)
        for (uint256 i = 0; i < 3; ++i) {
            hub.matchOrders(a, none, w, _request(keccak256(abi.encode("plain", i)), 1, address(0)));
        }
        for (uint256 i = 0; i < 3; ++i) {
            hub.matchOrders(a, d, w, _request(keccak256(abi.encode("dataset", i)), 1, dataset));
        }
        // a batch of 20 deals
        {
            O.AppOrder[] memory as_ = new O.AppOrder[](1);
            as_[0] = a;
            O.DatasetOrder[] memory ds = new O.DatasetOrder[](1);
            O.WorkerpoolOrder[] memory ws = new O.WorkerpoolOrder[](1);
            ws[0] = w;
            O.RequestOrder[] memory rs = new O.RequestOrder[](20);
            DragonHub.BatchMatch[] memory ms = new DragonHub.BatchMatch[](20);
            for (uint256 i = 0; i < 20; ++i) {
                rs[i] = _request(keccak256(abi.encode("batch", i)), 1, address(0));
                ms[i] = DragonHub.BatchMatch(0, 0, 0, uint32(i));
            }
            hub.matchOrdersBatch(as_, ds, ws, rs, ms);
        }
        bytes32 fast = hub.matchOrders(a, none, w, _request(keccak256("fast"), 1, address(0)));
        bytes32 replicated = hub.matchOrders(a, none, w, _requestTrust(keccak256("replicated"), 3));
        hub.matchOrders(a, none, w, _request(keccak256("claim"), 1, address(0)));
        vm.stopBroadcast();

        // trust 1: initialize + contributeAndFinalize
        bytes32 t1 = keccak256(abi.encodePacked(fast, uint256(0)));
        vm.startBroadcast(K_DEPLOYER);
        tasks.initialize(fast, 0);
        vm.stopBroadcast();
        vm.startBroadcast(K_W1);
        tasks.contributeAndFinalize(
            t1, keccak256("result"), "ipfs://QmResultResultResultResultResultResult", "", address(0), "", _auth(vm.addr(K_W1), t1)
        );
        vm.stopBroadcast();

        // trust 3: initialize, 2 x contribute, 2 x reveal, finalize
        bytes32 t3 = keccak256(abi.encodePacked(replicated, uint256(0)));
        vm.startBroadcast(K_DEPLOYER);
        tasks.initialize(replicated, 0);
        vm.stopBroadcast();
        uint256[2] memory ws2 = [K_W1, K_W2];
        bytes32 digest = keccak256("replicated result");
        for (uint256 i = 0; i < 2; ++i) {
            address worker = vm.addr(ws2[i]);
            vm.startBroadcast(ws2[i]);
            tasks.contribute(
                t3,
                keccak256(abi.encodePacked(t3, digest)),
                keccak256(abi.encodePacked(worker, t3, digest)),
                address(0),
                "",
                _auth(worker, t3)
            );
            vm.stopBroadcast();
        }
        for (uint256 i = 0; i < 2; ++i) {
            vm.startBroadcast(ws2[i]);
            tasks.reveal(t3, digest);
            vm.stopBroadcast();
        }
        vm.startBroadcast(K_SCHED);
        tasks.finalize(t3, "ipfs://QmResultResultResultResultResultResult", "");
        vm.stopBroadcast();

        // the claim task is initialized now and claimed by claimLater() after the final deadline
        vm.startBroadcast(K_DEPLOYER);
        tasks.initialize(_claimDeal(), 0);
        vm.stopBroadcast();
    }

    function claimLater(DragonHub hub_) external {
        hub = hub_;
        tasks = DragonTasks(address(hub_));
        rlc = RLC(hub_.token());
        vm.startBroadcast(K_DEPLOYER);
        tasks.claim(keccak256(abi.encodePacked(_claimDeal(), uint256(0))));
        vm.stopBroadcast();
    }

    // ------------------------------------------------------------------ orders

    function _claimDeal() internal view returns (bytes32) {
        // the "claim" request is the only order whose hash we need again: recompute it
        O.RequestOrder memory r = _requestUnsigned(keccak256("claim"), 1, address(0));
        r.app = _appAddress();
        return keccak256(abi.encodePacked(_digest(O.hashRef(r)), uint256(0)));
    }

    function _appAddress() internal view returns (address) {
        return app != address(0) ? app : _findApp();
    }

    function _findApp() internal view returns (address) {
        AppRegistry apps = AppRegistry(hub.appregistry());
        return address(uint160(apps.tokenOfOwnerByIndex(vm.addr(K_APP), 0)));
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", hub.eip712domain_separator(), structHash));
    }

    function _sig(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _signApp() internal view returns (O.AppOrder memory o) {
        o.app = app;
        o.appprice = 3e9;
        o.volume = 1000;
        o.salt = keccak256("app");
        o.sign = _sig(K_APP, _digest(O.hashRef(o)));
    }

    function _signDataset() internal view returns (O.DatasetOrder memory o) {
        o.dataset = dataset;
        o.datasetprice = 1e9;
        o.volume = 1000;
        o.salt = keccak256("dataset");
        o.sign = _sig(K_DATA, _digest(O.hashRef(o)));
    }

    function _signPool() internal view returns (O.WorkerpoolOrder memory o) {
        o.workerpool = pool;
        o.workerpoolprice = 10e9;
        o.volume = 1000;
        o.trust = 10;
        o.salt = keccak256("pool");
        o.sign = _sig(K_SCHED, _digest(O.hashRef(o)));
    }

    function _requestUnsigned(bytes32 salt, uint256 trust, address dataset_)
        internal
        view
        returns (O.RequestOrder memory o)
    {
        o.app = app;
        o.appmaxprice = 3e9;
        o.dataset = dataset_;
        o.datasetmaxprice = dataset_ == address(0) ? 0 : 1e9;
        o.workerpoolmaxprice = 10e9;
        o.requester = vm.addr(K_REQ);
        o.volume = 1;
        o.trust = trust;
        o.beneficiary = vm.addr(K_REQ);
        o.params = '{"iexec_args":"--dragon"}';
        o.salt = salt;
    }

    function _request(bytes32 salt, uint256 trust, address dataset_) internal view returns (O.RequestOrder memory o) {
        o = _requestUnsigned(salt, trust, dataset_);
        o.sign = _sig(K_REQ, _digest(O.hashRef(o)));
    }

    function _requestTrust(bytes32 salt, uint256 trust) internal view returns (O.RequestOrder memory) {
        return _request(salt, trust, address(0));
    }

    function _auth(address worker, bytes32 taskid) internal pure returns (bytes memory) {
        bytes32 h = keccak256(abi.encodePacked(worker, taskid, address(0)));
        return _sig(K_SCHED, keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", h)));
    }
}
