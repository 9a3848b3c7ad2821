// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Public data shapes of the iExec PoCo v5 protocol.
/// @notice These are the ABI shapes PoCo clients decode (`viewDeal`, `viewTask`, ...). Dragon stores its
/// state packed (see `HubStorage`) and only builds these structs in view functions.
library IexecLibCore_v5 {
    struct Account {
        uint256 stake;
        uint256 locked;
    }

    struct Category {
        string name;
        string description;
        uint256 workClockTimeRef;
    }

    struct DatasetInfo {
        address owner;
        string m_datasetName;
        bytes m_datasetMultiaddr;
        bytes32 m_datasetChecksum;
    }

    struct AppInfo {
        address owner;
        string m_appName;
        string m_appType;
        bytes m_appMultiaddr;
        bytes32 m_appChecksum;
        bytes m_appMREnclave;
    }

    struct WorkerpoolInfo {
        address owner;
        string m_workerpoolDescription;
        uint256 m_workerStakeRatioPolicy;
        uint256 m_schedulerRewardRatioPolicy;
    }

    struct Resource {
        address pointer;
        address owner;
        uint256 price;
    }

    struct Deal {
        Resource app;
        Resource dataset;
        Resource workerpool;
        uint256 trust;
        uint256 category;
        bytes32 tag;
        address requester;
        address beneficiary;
        address callback;
        string params;
        uint256 startTime;
        uint256 botFirst;
        uint256 botSize;
        uint256 workerStake;
        uint256 schedulerRewardRatio;
        address sponsor;
    }

    enum TaskStatusEnum {
        UNSET,
        ACTIVE,
        REVEALING,
        COMPLETED,
        FAILED
    }

    struct Task {
        TaskStatusEnum status;
        bytes32 dealid;
        uint256 idx;
        uint256 timeref;
        uint256 contributionDeadline;
        uint256 revealDeadline;
        uint256 finalDeadline;
        bytes32 consensusValue;
        uint256 revealCounter;
        uint256 winnerCounter;
        address[] contributors;
        bytes32 resultDigest;
        bytes results;
        uint256 resultsTimestamp;
        bytes resultsCallback;
    }

    enum ContributionStatusEnum {
        UNSET,
        CONTRIBUTED,
        PROVED,
        REJECTED
    }

    struct Contribution {
        ContributionStatusEnum status;
        bytes32 resultHash;
        bytes32 resultSeal;
        address enclaveChallenge;
        uint256 weight;
    }
}
