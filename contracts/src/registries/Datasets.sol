// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Registry, RegistryEntry} from "./Registry.sol";

contract Dataset is RegistryEntry {
    string public m_datasetName;
    bytes public m_datasetMultiaddr;
    bytes32 public m_datasetChecksum;

    constructor(string memory datasetName, bytes memory datasetMultiaddr, bytes32 datasetChecksum) {
        m_datasetName = datasetName;
        m_datasetMultiaddr = datasetMultiaddr;
        m_datasetChecksum = datasetChecksum;
    }
}

contract DatasetRegistry is Registry {
    constructor() Registry("iExec Dataset Registry (V5)", "iExecDatasetsV5") {}

    function createDataset(
        address datasetOwner,
        string calldata datasetName,
        bytes calldata datasetMultiaddr,
        bytes32 datasetChecksum
    ) external returns (Dataset dataset) {
        bytes memory args = abi.encode(datasetName, datasetMultiaddr, datasetChecksum);
        dataset = Dataset(_createEntry(datasetOwner, args, abi.encodePacked(type(Dataset).creationCode, args)));
    }

    function predictDataset(
        address datasetOwner,
        string calldata datasetName,
        bytes calldata datasetMultiaddr,
        bytes32 datasetChecksum
    ) external view returns (Dataset) {
        bytes memory args = abi.encode(datasetName, datasetMultiaddr, datasetChecksum);
        return Dataset(_predict(_salt(args, datasetOwner), abi.encodePacked(type(Dataset).creationCode, args)));
    }
}
