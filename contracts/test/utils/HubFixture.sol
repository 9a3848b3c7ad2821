// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "./Test.sol";
import {IHubEvents} from "../../src/interfaces/IHubEvents.sol";
import {RLC} from "../../src/RLC.sol";
import {DragonHub} from "../../src/DragonHub.sol";
import {DragonTasks} from "../../src/DragonTasks.sol";
import {AppRegistry} from "../../src/registries/Apps.sol";
import {DatasetRegistry} from "../../src/registries/Datasets.sol";
import {WorkerpoolRegistry, Workerpool} from "../../src/registries/Workerpools.sol";
import {IexecLibOrders_v5 as O} from "../../src/libs/IexecLibOrders_v5.sol";
import {IexecLibCore_v5 as C} from "../../src/libs/IexecLibCore_v5.sol";

/// Deploys token, registries and hub; creates one app, dataset and workerpool; funds everyone; builds
/// and signs orders with real ECDSA keys over the EIP-712 digests (computed here independently of the
/// hub's assembly hashing).
abstract contract HubFixture is Test, IHubEvents {
    RLC internal rlc;
    AppRegistry internal appRegistry;
    DatasetRegistry internal datasetRegistry;
    WorkerpoolRegistry internal workerpoolRegistry;
    DragonHub internal hub;
    DragonTasks internal tasks; // the hub's address, typed as the task module

    address internal appOwner;
    uint256 internal appKey;
    address internal datasetOwner;
    uint256 internal datasetKey;
    address internal scheduler;
    uint256 internal schedulerKey;
    address internal requester;
    uint256 internal requesterKey;
    address internal sponsor;
    address[] internal workers;

    address internal app;
    address internal dataset;
    address internal workerpool;

    uint256 internal constant FUNDS = 1_000_000e9; // 1M RLC
    uint256 internal constant APP_PRICE = 3e9;
    uint256 internal constant DATASET_PRICE = 1e9;
    uint256 internal constant WORKERPOOL_PRICE = 10e9;
    address internal constant KITTY = 0x99c2268479b93fDe36232351229815DF80837e23;

    bytes32 internal constant TEE_TAG = bytes32(uint256(1));

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        (appOwner, appKey) = makeAddrAndKey("appOwner");
        (datasetOwner, datasetKey) = makeAddrAndKey("datasetOwner");
        (scheduler, schedulerKey) = makeAddrAndKey("scheduler");
        (requester, requesterKey) = makeAddrAndKey("requester");
        sponsor = makeAddr("sponsor");
        for (uint256 i = 0; i < 5; ++i) {
            workers.push(makeAddr(string.concat("worker", vm.toString(i))));
        }

        rlc = new RLC();
        appRegistry = new AppRegistry();
        datasetRegistry = new DatasetRegistry();
        workerpoolRegistry = new WorkerpoolRegistry();
        hub = new DragonHub(rlc, address(appRegistry), address(datasetRegistry), address(workerpoolRegistry));
        tasks = DragonTasks(address(hub));

        app = address(
            appRegistry.createApp(appOwner, "app", "DOCKER", bytes("docker.io/dragon/app:1"), keccak256("app"), "")
        );
        dataset = address(datasetRegistry.createDataset(datasetOwner, "dataset", bytes("ipfs://d"), keccak256("d")));
        workerpool = address(workerpoolRegistry.createWorkerpool(scheduler, "pool"));

        _fund(requester, FUNDS);
        _fund(scheduler, FUNDS);
        _fund(sponsor, FUNDS);
        for (uint256 i = 0; i < workers.length; ++i) {
            _fund(workers[i], FUNDS);
        }
    }

    function _fund(address who, uint256 amount) internal {
        rlc.mint(who, amount);
        vm.startPrank(who);
        rlc.approve(address(hub), amount);
        hub.deposit(amount);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ orders

    function _appOrder() internal view returns (O.AppOrder memory o) {
        o.app = app;
        o.appprice = APP_PRICE;
        o.volume = 1000;
        o.salt = keccak256("app salt");
    }

    function _datasetOrder() internal view returns (O.DatasetOrder memory o) {
        o.dataset = dataset;
        o.datasetprice = DATASET_PRICE;
        o.volume = 1000;
        o.salt = keccak256("dataset salt");
    }

    function _noDatasetOrder() internal pure returns (O.DatasetOrder memory o) {}

    function _workerpoolOrder() internal view returns (O.WorkerpoolOrder memory o) {
        o.workerpool = workerpool;
        o.workerpoolprice = WORKERPOOL_PRICE;
        o.volume = 1000;
        o.category = 0;
        o.trust = 5;
        o.salt = keccak256("workerpool salt");
    }

    function _requestOrder() internal view returns (O.RequestOrder memory o) {
        o.app = app;
        o.appmaxprice = APP_PRICE;
        o.dataset = address(0);
        o.datasetmaxprice = 0;
        o.workerpool = address(0);
        o.workerpoolmaxprice = WORKERPOOL_PRICE;
        o.requester = requester;
        o.volume = 1;
        o.category = 0;
        o.trust = 1;
        o.beneficiary = requester;
        o.callback = address(0);
        o.params = '{"iexec_args":"--dragon"}';
        o.salt = keccak256("request salt");
    }

    // ------------------------------------------------------------------ EIP-712, computed independently

    function _domainSeparator() internal view returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("iExecODB"),
                keccak256("5.0.0"),
                block.chainid,
                address(hub)
            )
        );
    }

    function _digest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(), structHash));
    }

    function _hash(O.AppOrder memory o) internal view returns (bytes32) {
        return _digest(O.hashRef(o));
    }

    function _hash(O.DatasetOrder memory o) internal view returns (bytes32) {
        return _digest(O.hashRef(o));
    }

    function _hash(O.WorkerpoolOrder memory o) internal view returns (bytes32) {
        return _digest(O.hashRef(o));
    }

    function _hash(O.RequestOrder memory o) internal view returns (bytes32) {
        return _digest(O.hashRef(o));
    }

    function _sig(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    function _sign(O.AppOrder memory o) internal view returns (O.AppOrder memory) {
        o.sign = _sig(appKey, _hash(o));
        return o;
    }

    function _sign(O.DatasetOrder memory o) internal view returns (O.DatasetOrder memory) {
        o.sign = _sig(datasetKey, _hash(o));
        return o;
    }

    function _sign(O.WorkerpoolOrder memory o) internal view returns (O.WorkerpoolOrder memory) {
        o.sign = _sig(schedulerKey, _hash(o));
        return o;
    }

    function _sign(O.RequestOrder memory o) internal view returns (O.RequestOrder memory) {
        o.sign = _sig(requesterKey, _hash(o));
        return o;
    }

    /// Signs all four orders (dataset only if it has one) and matches them.
    function _match(O.AppOrder memory a, O.DatasetOrder memory d, O.WorkerpoolOrder memory w, O.RequestOrder memory r)
        internal
        returns (bytes32)
    {
        _sign(a);
        if (d.dataset != address(0)) _sign(d);
        _sign(w);
        _sign(r);
        return hub.matchOrders(a, d, w, r);
    }

    function _matchDefault() internal returns (bytes32) {
        return _match(_appOrder(), _noDatasetOrder(), _workerpoolOrder(), _requestOrder());
    }

    function _matchWithTrust(uint256 trust, uint256 volume) internal returns (bytes32) {
        O.RequestOrder memory r = _requestOrder();
        r.trust = trust;
        r.volume = volume;
        return _match(_appOrder(), _noDatasetOrder(), _workerpoolOrder(), r);
    }

    // ------------------------------------------------------------------ tasks

    function _taskid(bytes32 dealid, uint256 idx) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(dealid, idx));
    }

    function _authorization(address worker, bytes32 taskid, address enclave) internal pure returns (bytes memory) {
        bytes32 h = keccak256(abi.encodePacked(worker, taskid, enclave));
        bytes32 digest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", h));
        return _sig(uint256(keccak256("scheduler")), digest);
    }

    function _resultHash(bytes32 taskid, bytes32 digest) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(taskid, digest));
    }

    function _resultSeal(address worker, bytes32 taskid, bytes32 digest) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(worker, taskid, digest));
    }

    function _contribute(address worker, bytes32 taskid, bytes32 digest) internal {
        bytes memory auth = _authorization(worker, taskid, address(0));
        vm.prank(worker);
        tasks.contribute(
            taskid, _resultHash(taskid, digest), _resultSeal(worker, taskid, digest), address(0), "", auth
        );
    }

    function _reveal(address worker, bytes32 taskid, bytes32 digest) internal {
        vm.prank(worker);
        tasks.reveal(taskid, digest);
    }

    function _stake(address who) internal view returns (uint256) {
        return hub.balanceOf(who);
    }

    function _locked(address who) internal view returns (uint256) {
        return hub.frozenOf(who);
    }

    function _status(bytes32 taskid) internal view returns (C.TaskStatusEnum) {
        return tasks.viewTask(taskid).status;
    }

    /// Escrow conservation: sum of stakes and locks over every account the fixture knows equals the
    /// hub's token balance and its totalSupply.
    function _assertConservation(address[] memory extra) internal view {
        uint256 sum = _stake(KITTY) + _locked(KITTY);
        address[6] memory fixed_ = [appOwner, datasetOwner, scheduler, requester, sponsor, address(0)];
        for (uint256 i = 0; i < 5; ++i) {
            sum += _stake(fixed_[i]) + _locked(fixed_[i]);
        }
        for (uint256 i = 0; i < workers.length; ++i) {
            sum += _stake(workers[i]) + _locked(workers[i]);
        }
        for (uint256 i = 0; i < extra.length; ++i) {
            sum += _stake(extra[i]) + _locked(extra[i]);
        }
        assertEq(sum, hub.totalSupply(), "sum of accounts != totalSupply");
        assertEq(rlc.balanceOf(address(hub)), hub.totalSupply(), "token balance != totalSupply");
    }
}
