// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// A contract wallet (ERC-1271) that accepts exactly the digests its owner approved.
contract MockWallet {
    mapping(bytes32 => bool) public approved;

    function approveDigest(bytes32 digest) external {
        approved[digest] = true;
    }

    function isValidSignature(bytes32 digest, bytes calldata) external view returns (bytes4) {
        return approved[digest] ? bytes4(0x1626ba7e) : bytes4(0xffffffff);
    }

    function call(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call(data);
        require(ok, "MockWallet: call failed");
        return ret;
    }
}

/// An ERC-734 identity: a group whose members have key purpose 4.
contract MockIdentity {
    mapping(bytes32 => mapping(uint256 => bool)) public purposes;

    function addKey(address member, uint256 purpose) external {
        purposes[bytes32(uint256(uint160(member)))][purpose] = true;
    }

    function keyHasPurpose(bytes32 key, uint256 purpose) external view returns (bool) {
        return purposes[key][purpose];
    }
}

/// An EIP-1154 oracle consumer recording what the hub delivered.
contract MockCallback {
    bytes32 public lastTask;
    bytes public lastResult;
    uint256 public calls;

    function receiveResult(bytes32 taskid, bytes calldata result) external {
        lastTask = taskid;
        lastResult = result;
        calls += 1;
    }
}

/// A consumer whose callback always fails: finalization must still succeed.
contract RevertingCallback {
    function receiveResult(bytes32, bytes calldata) external pure {
        revert("nope");
    }
}

/// A contract receiving RLC-style approveAndCall notifications.
contract MockSpender {
    address public lastFrom;
    uint256 public lastValue;
    bytes public lastData;

    function receiveApproval(address from, uint256 value, address, bytes calldata data) external returns (bool) {
        lastFrom = from;
        lastValue = value;
        lastData = data;
        return true;
    }
}
