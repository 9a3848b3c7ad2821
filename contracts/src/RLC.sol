// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

interface ITokenSpender {
    function receiveApproval(address from, uint256 value, address token, bytes calldata data) external returns (bool);
}

/// @title Test RLC for development chains: 9 decimals, minted by its deployer.
/// @notice Has RLC's `approveAndCall`, so a deposit into the hub takes one transaction.
contract RLC is ERC20 {
    address public immutable minter;

    constructor() ERC20("iExec RLC Token (Dragon dev)", "RLC") {
        minter = msg.sender;
    }

    function decimals() public pure override returns (uint8) {
        return 9;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == minter, "RLC: only the deployer mints");
        _mint(to, amount);
    }

    function approveAndCall(address spender, uint256 value, bytes calldata extraData) external returns (bool) {
        _approve(msg.sender, spender, value);
        require(ITokenSpender(spender).receiveApproval(msg.sender, value, address(this), extraData), "RLC: call failed");
        return true;
    }
}
