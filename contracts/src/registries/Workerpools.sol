// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Registry, RegistryEntry} from "./Registry.sol";

contract Workerpool is RegistryEntry {
    string public m_workerpoolDescription;
    // Both policies in one slot: the hub reads them with a single call (`policies()`) when matching.
    uint128 private _workerStakeRatioPolicy; // % of the workerpool price a worker stakes per contribution
    uint128 private _schedulerRewardRatioPolicy; // % of the task reward kept by the scheduler

    /// The scheduler's share of a task's reward is a percentage (PoCo's changePolicy bound).
    error InvalidSchedulerRewardRatio(uint256 ratio);

    event PolicyUpdate(
        uint256 oldWorkerStakeRatioPolicy,
        uint256 newWorkerStakeRatioPolicy,
        uint256 oldSchedulerRewardRatioPolicy,
        uint256 newSchedulerRewardRatioPolicy
    );

    constructor(string memory description) {
        m_workerpoolDescription = description;
        _workerStakeRatioPolicy = 30;
        _schedulerRewardRatioPolicy = 1;
    }

    function m_workerStakeRatioPolicy() external view returns (uint256) {
        return _workerStakeRatioPolicy;
    }

    function m_schedulerRewardRatioPolicy() external view returns (uint256) {
        return _schedulerRewardRatioPolicy;
    }

    function policies() external view returns (uint256 workerStakeRatio, uint256 schedulerRewardRatio) {
        return (_workerStakeRatioPolicy, _schedulerRewardRatioPolicy);
    }

    function changePolicy(uint256 newWorkerStakeRatioPolicy, uint256 newSchedulerRewardRatioPolicy)
        external
        onlyOwner
    {
        if (newSchedulerRewardRatioPolicy > 100) revert InvalidSchedulerRewardRatio(newSchedulerRewardRatioPolicy);
        uint128 stakeRatio = SafeCast.toUint128(newWorkerStakeRatioPolicy);
        emit PolicyUpdate(
            _workerStakeRatioPolicy, newWorkerStakeRatioPolicy, _schedulerRewardRatioPolicy, newSchedulerRewardRatioPolicy
        );
        _workerStakeRatioPolicy = stakeRatio;
        _schedulerRewardRatioPolicy = uint128(newSchedulerRewardRatioPolicy); // <= 100
    }
}

contract WorkerpoolRegistry is Registry {
    constructor() Registry("iExec Workerpool Registry (V5)", "iExecWorkerpoolV5") {}

    function createWorkerpool(address workerpoolOwner, string calldata description)
        external
        returns (Workerpool workerpool)
    {
        bytes memory args = abi.encode(description);
        workerpool =
            Workerpool(_createEntry(workerpoolOwner, args, abi.encodePacked(type(Workerpool).creationCode, args)));
    }

    function predictWorkerpool(address workerpoolOwner, string calldata description)
        external
        view
        returns (Workerpool)
    {
        bytes memory args = abi.encode(description);
        return Workerpool(
            _predict(_salt(args, workerpoolOwner), abi.encodePacked(type(Workerpool).creationCode, args))
        );
    }
}
