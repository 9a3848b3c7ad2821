// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Vm} from "./Vm.sol";

/// @notice Minimal test base: cheatcodes, assertions that revert with a readable message, and
/// invariant-target registration (forge reads `targetContracts()` / `targetSelectors()` from the test).
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    bool public IS_TEST = true;

    // ds-test style log events: forge decodes and prints them (-vv).
    event log(string);
    event log_named_uint(string key, uint256 val);
    event log_named_bytes32(string key, bytes32 val);
    event log_named_address(string key, address val);

    // ---------------------------------------------------------------- invariant targets
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetedContracts;
    FuzzSelector[] private _targetedSelectors;
    address[] private _targetedSenders;

    function targetContract(address a) internal {
        _targetedContracts.push(a);
    }

    function targetSelector(FuzzSelector memory s) internal {
        _targetedSelectors.push(s);
    }

    function targetSender(address a) internal {
        _targetedSenders.push(a);
    }

    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }

    function targetSenders() public view returns (address[] memory) {
        return _targetedSenders;
    }

    // ---------------------------------------------------------------- helpers
    function makeAddr(string memory name) internal returns (address a) {
        a = vm.addr(uint256(keccak256(bytes(name))));
        vm.label(a, name);
    }

    function makeAddrAndKey(string memory name) internal returns (address a, uint256 key) {
        key = uint256(keccak256(bytes(name)));
        a = vm.addr(key);
        vm.label(a, name);
    }

    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + (x % (size + 1));
    }

    // ---------------------------------------------------------------- assertions
    function fail(string memory message) internal pure {
        revert(message);
    }

    function assertTrue(bool c) internal pure {
        if (!c) revert("assertion failed");
    }

    function assertTrue(bool c, string memory m) internal pure {
        if (!c) revert(m);
    }

    function assertFalse(bool c) internal pure {
        if (c) revert("assertion failed: expected false");
    }

    function assertFalse(bool c, string memory m) internal pure {
        if (c) revert(m);
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        if (a != b) revert(string.concat("assertEq(uint) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(uint256 a, uint256 b, string memory m) internal pure {
        if (a != b) revert(string.concat(m, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(address a, address b) internal pure {
        if (a != b) revert(string.concat("assertEq(address) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(address a, address b, string memory m) internal pure {
        if (a != b) revert(string.concat(m, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b) internal pure {
        if (a != b) revert(string.concat("assertEq(bytes32) failed: ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b, string memory m) internal pure {
        if (a != b) revert(string.concat(m, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bool a, bool b) internal pure {
        if (a != b) revert("assertEq(bool) failed");
    }

    function assertEq(bool a, bool b, string memory m) internal pure {
        if (a != b) revert(m);
    }

    function assertEq(string memory a, string memory b) internal pure {
        if (keccak256(bytes(a)) != keccak256(bytes(b))) {
            revert(string.concat("assertEq(string) failed: '", a, "' != '", b, "'"));
        }
    }

    function assertEq(string memory a, string memory b, string memory m) internal pure {
        if (keccak256(bytes(a)) != keccak256(bytes(b))) revert(string.concat(m, ": '", a, "' != '", b, "'"));
    }

    function assertEq(bytes memory a, bytes memory b) internal pure {
        if (keccak256(a) != keccak256(b)) revert("assertEq(bytes) failed");
    }

    function assertEq(bytes memory a, bytes memory b, string memory m) internal pure {
        if (keccak256(a) != keccak256(b)) revert(m);
    }

    function assertNotEq(uint256 a, uint256 b) internal pure {
        if (a == b) revert(string.concat("assertNotEq(uint) failed: both ", vm.toString(a)));
    }

    function assertNotEq(bytes32 a, bytes32 b) internal pure {
        if (a == b) revert("assertNotEq(bytes32) failed");
    }

    function assertNotEq(address a, address b) internal pure {
        if (a == b) revert("assertNotEq(address) failed");
    }

    function assertLt(uint256 a, uint256 b) internal pure {
        if (a >= b) revert(string.concat("assertLt failed: ", vm.toString(a), " >= ", vm.toString(b)));
    }

    function assertLt(uint256 a, uint256 b, string memory m) internal pure {
        if (a >= b) revert(string.concat(m, ": ", vm.toString(a), " >= ", vm.toString(b)));
    }

    function assertLe(uint256 a, uint256 b) internal pure {
        if (a > b) revert(string.concat("assertLe failed: ", vm.toString(a), " > ", vm.toString(b)));
    }

    function assertLe(uint256 a, uint256 b, string memory m) internal pure {
        if (a > b) revert(string.concat(m, ": ", vm.toString(a), " > ", vm.toString(b)));
    }

    function assertGt(uint256 a, uint256 b) internal pure {
        if (a <= b) revert(string.concat("assertGt failed: ", vm.toString(a), " <= ", vm.toString(b)));
    }

    function assertGt(uint256 a, uint256 b, string memory m) internal pure {
        if (a <= b) revert(string.concat(m, ": ", vm.toString(a), " <= ", vm.toString(b)));
    }

    function assertGe(uint256 a, uint256 b) internal pure {
        if (a < b) revert(string.concat("assertGe failed: ", vm.toString(a), " < ", vm.toString(b)));
    }

    function assertGe(uint256 a, uint256 b, string memory m) internal pure {
        if (a < b) revert(string.concat(m, ": ", vm.toString(a), " < ", vm.toString(b)));
    }
}
