// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {HubFixture} from "./utils/HubFixture.sol";
import {IexecLibCore_v5 as C} from "../src/libs/IexecLibCore_v5.sol";
import {MockSpender} from "./mocks/Mocks.sol";

contract EscrowTest is HubFixture {
    address alice;
    address bob;

    function setUp() public override {
        super.setUp();
        alice = makeAddr("alice");
        bob = makeAddr("bob");
    }

    function test_metadata() public view {
        assertEq(hub.name(), "Staked RLC");
        assertEq(hub.symbol(), "SRLC");
        assertEq(uint256(hub.decimals()), 9);
        assertEq(rlc.decimals(), 9);
        assertEq(hub.token(), address(rlc));
        assertEq(hub.appregistry(), address(appRegistry));
        assertEq(hub.datasetregistry(), address(datasetRegistry));
        assertEq(hub.workerpoolregistry(), address(workerpoolRegistry));
        assertEq(hub.kitty_address(), KITTY);
        assertEq(hub.workerpool_stake_ratio(), 30);
    }

    function test_depositWithdraw() public {
        rlc.mint(alice, 100e9);
        vm.startPrank(alice);
        rlc.approve(address(hub), 100e9);
        vm.expectEmit(true, true, false, true, address(hub));
        emit Transfer(address(0), alice, 60e9);
        assertTrue(hub.deposit(60e9));
        assertEq(hub.balanceOf(alice), 60e9);
        assertEq(rlc.balanceOf(alice), 40e9);
        C.Account memory acc = hub.viewAccount(alice);
        assertEq(acc.stake, 60e9);
        assertEq(acc.locked, 0);
        vm.expectRevert(bytes("IexecEscrow: burn amount exceeds balance"));
        hub.withdraw(60e9 + 1);
        assertTrue(hub.withdrawTo(10e9, bob));
        assertTrue(hub.withdraw(50e9));
        vm.stopPrank();
        assertEq(rlc.balanceOf(bob), 10e9);
        assertEq(rlc.balanceOf(alice), 90e9);
        assertEq(hub.balanceOf(alice), 0);
    }

    function test_depositWithoutAllowanceFails() public {
        rlc.mint(alice, 1e9);
        vm.prank(alice);
        // The token's refusal comes through unchanged (OpenZeppelin's ERC20 custom error here).
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(hub), 0, 1e9));
        hub.deposit(1e9);
    }

    function test_depositForAndArray() public {
        rlc.mint(alice, 10e9);
        vm.startPrank(alice);
        rlc.approve(address(hub), 10e9);
        hub.depositFor(4e9, bob);
        address[] memory targets = new address[](2);
        targets[0] = alice;
        targets[1] = bob;
        uint256[] memory amounts = new uint256[](2);
        amounts[0] = 1e9;
        amounts[1] = 2e9;
        hub.depositForArray(amounts, targets);
        vm.expectRevert(bytes("invalid-array-length"));
        hub.depositForArray(new uint256[](1), targets);
        vm.stopPrank();
        assertEq(hub.balanceOf(bob), 6e9);
        assertEq(hub.balanceOf(alice), 1e9);
    }

    function test_approveAndCallDeposits() public {
        rlc.mint(alice, 5e9);
        vm.prank(alice);
        rlc.approveAndCall(address(hub), 5e9, "");
        assertEq(hub.balanceOf(alice), 5e9);
        // only the token may call receiveApproval
        vm.prank(alice);
        vm.expectRevert(bytes("wrong-token"));
        hub.receiveApproval(alice, 1, address(rlc), "");
    }

    function test_transferAndAllowance() public {
        _fund(alice, 10e9);
        vm.prank(alice);
        hub.transfer(bob, 3e9);
        assertEq(hub.balanceOf(bob), 3e9);
        vm.prank(alice);
        hub.approve(bob, 4e9);
        assertEq(hub.allowance(alice, bob), 4e9);
        vm.prank(bob);
        hub.transferFrom(alice, bob, 4e9);
        assertEq(hub.balanceOf(bob), 7e9);
        assertEq(hub.allowance(alice, bob), 0);
        vm.prank(bob);
        vm.expectRevert(bytes("ERC20: insufficient allowance"));
        hub.transferFrom(alice, bob, 1);
        vm.prank(alice);
        vm.expectRevert(bytes("IexecEscrow: Transfer amount exceeds balance"));
        hub.transfer(bob, 3e9 + 1);
        vm.startPrank(alice);
        hub.increaseAllowance(bob, 5);
        hub.decreaseAllowance(bob, 2);
        vm.stopPrank();
        assertEq(hub.allowance(alice, bob), 3);
    }

    function test_lockedFundsCannotBeWithdrawn() public {
        _matchWithTrust(1, 10);
        uint256 locked = _locked(requester);
        assertEq(locked, 10 * (APP_PRICE + WORKERPOOL_PRICE));
        uint256 stake = _stake(requester);
        vm.prank(requester);
        vm.expectRevert(bytes("IexecEscrow: burn amount exceeds balance"));
        hub.withdraw(stake + 1);
        vm.prank(requester);
        hub.withdraw(stake);
        assertEq(_locked(requester), locked);
    }

    function test_recoverStrayTokens() public {
        rlc.mint(alice, 7e9);
        vm.prank(alice);
        rlc.transfer(address(hub), 7e9); // not a deposit
        vm.prank(alice);
        vm.expectRevert(bytes("Ownable: caller is not the owner"));
        hub.recover();
        uint256 before = hub.balanceOf(address(this));
        assertEq(hub.recover(), 7e9);
        assertEq(hub.balanceOf(address(this)), before + 7e9);
        assertEq(rlc.balanceOf(address(hub)), hub.totalSupply());
    }

    function test_escrowApproveAndCall() public {
        _fund(alice, 3e9);
        MockSpender spender = new MockSpender();
        vm.prank(alice);
        assertTrue(tasks.approveAndCall(address(spender), 2e9, hex"abcd"));
        assertEq(hub.allowance(alice, address(spender)), 2e9);
        assertEq(spender.lastFrom(), alice);
        assertEq(spender.lastValue(), 2e9);
        assertEq(spender.lastData(), hex"abcd");
    }

    // ------------------------------------------------------------------ categories and ownership

    function test_defaultCategories() public view {
        assertEq(hub.countCategory(), 5);
        string[5] memory names = ["XS", "S", "M", "L", "XL"];
        uint256[5] memory refs = [uint256(300), 1200, 3600, 10800, 36000];
        for (uint256 i = 0; i < 5; ++i) {
            C.Category memory c = hub.viewCategory(i);
            assertEq(c.name, names[i]);
            assertEq(c.workClockTimeRef, refs[i]);
        }
    }

    function test_createCategory() public {
        vm.prank(alice);
        vm.expectRevert(bytes("Ownable: caller is not the owner"));
        hub.createCategory("XXL", "{}", 100000);
        vm.expectEmit(false, false, false, true, address(hub));
        emit CreateCategory(5, "XXL", "{}", 100000);
        assertEq(hub.createCategory("XXL", "{}", 100000), 5);
        assertEq(hub.countCategory(), 6);
        assertEq(hub.viewCategory(5).description, "{}");
        vm.expectRevert(abi.encodeWithSignature("Panic(uint256)", 0x32)); // index out of bounds
        hub.viewCategory(6);
    }

    function test_renounceOwnership() public {
        hub.renounceOwnership();
        assertEq(hub.owner(), address(0));
        vm.expectRevert(bytes("Ownable: caller is not the owner"));
        hub.createCategory("x", "", 1);
    }

    function test_transferOwnership() public {
        hub.transferOwnership(alice);
        assertEq(hub.owner(), alice);
        vm.expectRevert(bytes("Ownable: caller is not the owner"));
        hub.createCategory("x", "", 1);
        vm.prank(alice);
        hub.createCategory("x", "", 1);
    }

    // ------------------------------------------------------------------ fuzz

    /// Any sequence of deposit / partial withdraw / transfer keeps the books exact.
    function testFuzz_escrowBooks(uint96 dep, uint96 wd, uint96 tr) public {
        rlc.mint(alice, dep);
        vm.startPrank(alice);
        rlc.approve(address(hub), dep);
        hub.deposit(dep);
        uint256 w = bound(wd, 0, dep);
        hub.withdraw(w);
        uint256 t = bound(tr, 0, dep - w);
        hub.transfer(bob, t);
        vm.stopPrank();
        assertEq(hub.balanceOf(alice), uint256(dep) - w - t);
        assertEq(hub.balanceOf(bob), t);
        assertEq(rlc.balanceOf(alice), w);
        address[] memory extra = new address[](2);
        extra[0] = alice;
        extra[1] = bob;
        _assertConservation(extra);
    }

    /// Withdrawing more than the free stake always fails and changes nothing.
    function testFuzz_overdraw(uint96 dep, uint96 extra) public {
        vm.assume(extra > 0);
        rlc.mint(alice, dep);
        vm.startPrank(alice);
        rlc.approve(address(hub), dep);
        hub.deposit(dep);
        vm.expectRevert(bytes("IexecEscrow: burn amount exceeds balance"));
        hub.withdraw(uint256(dep) + extra);
        vm.stopPrank();
        assertEq(hub.balanceOf(alice), dep);
    }
}
