// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Enumerable} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Enumerable.sol";

/// @title ERC-721 registry of iExec assets (apps, datasets or workerpools).
/// @notice Each asset is a small contract the registry creates with CREATE2; its address is its token id
/// and its `owner()` is the token's current holder. Enumerable, as iExec clients list a user's assets with
/// `balanceOf` / `tokenOfOwnerByIndex`.
abstract contract Registry is ERC721Enumerable {
    constructor(string memory name_, string memory symbol_) ERC721(name_, symbol_) {}

    /// PoCo's registration check.
    function isRegistered(address entry) external view returns (bool) {
        return _ownerOf(uint256(uint160(entry))) != address(0);
    }

    /// Dragon: owner of a registered entry, or zero when `entry` is not registered here (one call
    /// instead of PoCo's isRegistered + entry.owner() + registry.ownerOf()).
    function ownerOfEntry(address entry) external view returns (address) {
        return _ownerOf(uint256(uint160(entry)));
    }

    /// CREATE2 of `initcode` with PoCo's salt (the constructor arguments and the owner), then mint the
    /// token. The same asset (same arguments, same owner) cannot be created twice.
    function _createEntry(address owner_, bytes memory args, bytes memory initcode) internal returns (address entry) {
        bytes32 salt = _salt(args, owner_);
        entry = _predict(salt, initcode);
        require(entry.code.length == 0, "Create2: Failed on deploy");
        assembly ("memory-safe") {
            entry := create2(0, add(initcode, 0x20), mload(initcode), salt)
        }
        require(entry != address(0), "Create2: Failed on deploy");
        // Plain _mint: PoCo mints without the ERC721Receiver check, so contracts can own assets freely.
        _mint(owner_, uint256(uint160(entry)));
    }

    function _salt(bytes memory args, address owner_) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(args, owner_));
    }

    function _predict(bytes32 salt, bytes memory initcode) internal view returns (address) {
        return address(
            uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, keccak256(initcode)))))
        );
    }
}

/// @notice Base of registered assets: the owner is whoever holds the registry's token for this address.
abstract contract RegistryEntry {
    Registry public immutable registry;

    constructor() {
        registry = Registry(msg.sender);
    }

    modifier onlyOwner() {
        require(owner() == msg.sender, "caller is not the owner");
        _;
    }

    function owner() public view returns (address) {
        return registry.ownerOf(uint256(uint160(address(this))));
    }
}
