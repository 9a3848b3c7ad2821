// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Registry, RegistryEntry} from "./Registry.sol";

contract App is RegistryEntry {
    string public m_appName;
    string public m_appType;
    bytes public m_appMultiaddr;
    bytes32 public m_appChecksum;
    bytes public m_appMREnclave;

    constructor(
        string memory appName,
        string memory appType,
        bytes memory appMultiaddr,
        bytes32 appChecksum,
        bytes memory appMREnclave
    ) {
        m_appName = appName;
        m_appType = appType;
        m_appMultiaddr = appMultiaddr;
        m_appChecksum = appChecksum;
        m_appMREnclave = appMREnclave;
    }
}

contract AppRegistry is Registry {
    constructor() Registry("iExec Application Registry (V5)", "iExecAppsV5") {}

    function createApp(
        address appOwner,
        string calldata appName,
        string calldata appType,
        bytes calldata appMultiaddr,
        bytes32 appChecksum,
        bytes calldata appMREnclave
    ) external returns (App app) {
        bytes memory args = abi.encode(appName, appType, appMultiaddr, appChecksum, appMREnclave);
        app = App(_createEntry(appOwner, args, abi.encodePacked(type(App).creationCode, args)));
    }

    function predictApp(
        address appOwner,
        string calldata appName,
        string calldata appType,
        bytes calldata appMultiaddr,
        bytes32 appChecksum,
        bytes calldata appMREnclave
    ) external view returns (App) {
        bytes memory args = abi.encode(appName, appType, appMultiaddr, appChecksum, appMREnclave);
        return App(_predict(_salt(args, appOwner), abi.encodePacked(type(App).creationCode, args)));
    }
}
