// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Test} from "./utils/Test.sol";

/// Checks that the home-made test base and the cheatcodes it declares behave as forge-std's would.
contract SmokeTest is Test {
    function test_cheatcodes() public {
        vm.warp(1000);
        assertEq(block.timestamp, 1000);
        (address a, uint256 k) = makeAddrAndKey("alice");
        bytes32 digest = keccak256("hello");
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(k, digest);
        assertEq(ecrecover(digest, v, r, s), a);
        vm.deal(a, 1 ether);
        assertEq(a.balance, 1 ether);
    }

    function test_expectRevert() public {
        vm.expectRevert(bytes("boom"));
        this.boom();
    }

    function boom() external pure {
        revert("boom");
    }

    function testFuzz_bound(uint256 x) public pure {
        uint256 y = bound(x, 5, 10);
        assertGe(y, 5);
        assertLe(y, 10);
    }

    function test_assertionsFail() public {
        vm.expectRevert(bytes("assertEq(uint) failed: 1 != 2"));
        this.failingAssert();
    }

    function failingAssert() external pure {
        assertEq(uint256(1), uint256(2));
    }
}
