// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// The two console.log shapes the tests print with. forge intercepts static calls to this address and
/// prints them with the test's output (npm has no usable forge-std to take them from).
library console {
    address private constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    function log(string memory s) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string)", s));
        ok;
    }

    function log(string memory s, uint256 v) internal view {
        (bool ok,) = CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", s, v));
        ok;
    }
}
