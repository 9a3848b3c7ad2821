// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {App} from "../src/registries/Apps.sol";
import {Dataset} from "../src/registries/Datasets.sol";
import {Workerpool} from "../src/registries/Workerpools.sol";
import {IexecLibCore_v5 as C} from "../src/libs/IexecLibCore_v5.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

contract RegistriesTest is HubFixture {
    function test_app() public {
        address owner_ = makeAddr("owner");
        App predicted = appRegistry.predictApp(owner_, "n", "DOCKER", "m", keccak256("c"), "e");
        App created = appRegistry.createApp(owner_, "n", "DOCKER", "m", keccak256("c"), "e");
        assertEq(address(predicted), address(created));
        assertEq(created.owner(), owner_);
        assertEq(created.m_appName(), "n");
        assertEq(created.m_appType(), "DOCKER");
        assertEq(created.m_appMultiaddr(), bytes("m"));
        assertEq(created.m_appChecksum(), keccak256("c"));
        assertEq(created.m_appMREnclave(), bytes("e"));
        assertEq(address(created.registry()), address(appRegistry));
        assertTrue(appRegistry.isRegistered(address(created)));
        assertEq(appRegistry.ownerOf(uint256(uint160(address(created)))), owner_);
        assertEq(appRegistry.tokenOfOwnerByIndex(owner_, 0), uint256(uint160(address(created))));
        assertEq(appRegistry.name(), "iExec Application Registry (V5)");
        assertEq(appRegistry.symbol(), "iExecAppsV5");
        // same arguments and owner: CREATE2 collision
        vm.expectRevert(bytes("Create2: Failed on deploy"));
        appRegistry.createApp(owner_, "n", "DOCKER", "m", keccak256("c"), "e");
    }

    function test_ownerFollowsTheNFT() public {
        address newOwner = makeAddr("newOwner");
        vm.prank(appOwner);
        appRegistry.transferFrom(appOwner, newOwner, uint256(uint160(app)));
        assertEq(App(app).owner(), newOwner);
        assertEq(appRegistry.ownerOfEntry(app), newOwner);
    }

    function test_dataset() public view {
        Dataset ds = Dataset(dataset);
        assertEq(ds.owner(), datasetOwner);
        assertEq(ds.m_datasetName(), "dataset");
        assertEq(ds.m_datasetMultiaddr(), bytes("ipfs://d"));
        assertEq(ds.m_datasetChecksum(), keccak256("d"));
        assertTrue(datasetRegistry.isRegistered(dataset));
        assertFalse(datasetRegistry.isRegistered(app));
        assertEq(
            address(datasetRegistry.predictDataset(datasetOwner, "dataset", "ipfs://d", keccak256("d"))), dataset
        );
    }

    function test_workerpoolPolicy() public {
        Workerpool wp = Workerpool(workerpool);
        assertEq(wp.m_workerpoolDescription(), "pool");
        assertEq(wp.m_workerStakeRatioPolicy(), 30);
        assertEq(wp.m_schedulerRewardRatioPolicy(), 1);
        assertEq(address(workerpoolRegistry.predictWorkerpool(scheduler, "pool")), workerpool);
        vm.expectRevert(bytes("caller is not the owner"));
        wp.changePolicy(50, 10);
        vm.startPrank(scheduler);
        vm.expectRevert(abi.encodeWithSelector(Workerpool.InvalidSchedulerRewardRatio.selector, 101));
        wp.changePolicy(50, 101);
        uint256 tooBig = uint256(type(uint128).max) + 1;
        vm.expectRevert(abi.encodeWithSelector(SafeCast.SafeCastOverflowedUintDowncast.selector, 128, tooBig));
        wp.changePolicy(tooBig, 10);
        wp.changePolicy(50, 10);
        vm.stopPrank();
        assertEq(wp.m_workerStakeRatioPolicy(), 50);
        assertEq(wp.m_schedulerRewardRatioPolicy(), 10);
        // new deals take the new policy
        bytes32 dealid = _matchDefault();
        assertEq(hub.viewDeal(dealid).workerStake, WORKERPOOL_PRICE * 50 / 100);
        assertEq(hub.viewDeal(dealid).schedulerRewardRatio, 10);
    }

    function test_assetViews() public view {
        C.AppInfo memory ai = tasks.viewApp(app);
        assertEq(ai.owner, appOwner);
        assertEq(ai.m_appName, "app");
        assertEq(ai.m_appType, "DOCKER");
        assertEq(ai.m_appMultiaddr, bytes("docker.io/dragon/app:1"));
        assertEq(ai.m_appChecksum, keccak256("app"));
        C.DatasetInfo memory di = tasks.viewDataset(dataset);
        assertEq(di.owner, datasetOwner);
        assertEq(di.m_datasetName, "dataset");
        C.WorkerpoolInfo memory wi = tasks.viewWorkerpool(workerpool);
        assertEq(wi.owner, scheduler);
        assertEq(wi.m_workerpoolDescription, "pool");
        assertEq(wi.m_workerStakeRatioPolicy, 30);
        assertEq(wi.m_schedulerRewardRatioPolicy, 1);
    }

    function test_legacyViews() public {
        bytes32 dealid = _matchWithTrust(3, 2);
        (address ap, address ao, uint256 apr,,, uint256 dpr, address wp, address wo, uint256 wpr) =
            tasks.viewDealABILegacy_pt1(dealid);
        assertEq(ap, app);
        assertEq(ao, appOwner);
        assertEq(apr, APP_PRICE);
        assertEq(dpr, 0);
        assertEq(wp, workerpool);
        assertEq(wo, scheduler);
        assertEq(wpr, WORKERPOOL_PRICE);
        (uint256 trust,, address req, address ben, address cb, string memory params) =
            tasks.viewDealABILegacy_pt2(dealid);
        assertEq(trust, 3);
        assertEq(req, requester);
        assertEq(ben, requester);
        assertEq(cb, address(0));
        assertEq(params, _requestOrder().params);
        (uint256 cat, uint256 start, uint256 bf, uint256 bs, uint256 ws, uint256 srr) =
            tasks.viewConfigABILegacy(dealid);
        assertEq(cat, 0);
        assertEq(start, block.timestamp);
        assertEq(bf, 0);
        assertEq(bs, 2);
        assertEq(ws, WORKERPOOL_PRICE * 30 / 100);
        assertEq(srr, 1);
        (uint256 stake, uint256 locked) = tasks.viewAccountABILegacy(requester);
        assertEq(stake, hub.balanceOf(requester));
        assertEq(locked, 2 * (APP_PRICE + WORKERPOOL_PRICE));

        bytes32 taskid = tasks.initialize(dealid, 1);
        _contribute(workers[0], taskid, keccak256("x"));
        (C.TaskStatusEnum st, bytes32 did, uint256 idx,,,,,,,, address[] memory contributors,) =
            tasks.viewTaskABILegacy(taskid);
        assertEq(uint256(st), uint256(C.TaskStatusEnum.ACTIVE));
        assertEq(did, dealid);
        assertEq(idx, 1);
        assertEq(contributors.length, 1);
        (C.ContributionStatusEnum cs, bytes32 rh,, address enclave) =
            tasks.viewContributionABILegacy(taskid, workers[0]);
        assertEq(uint256(cs), uint256(C.ContributionStatusEnum.CONTRIBUTED));
        assertEq(rh, _resultHash(taskid, keccak256("x")));
        assertEq(enclave, address(0));
        (string memory name_,, uint256 ref) = tasks.viewCategoryABILegacy(4);
        assertEq(name_, "XL");
        assertEq(ref, 36000);
    }

    function test_unknownDealIsEmpty() public view {
        C.Deal memory d = hub.viewDeal(keccak256("nothing"));
        assertEq(d.requester, address(0));
        assertEq(d.trust, 0);
        assertEq(d.sponsor, address(0));
    }
}
