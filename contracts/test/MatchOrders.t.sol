// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {HubFixture} from "./utils/HubFixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IexecLibOrders_v5 as O} from "../src/libs/IexecLibOrders_v5.sol";
import {IexecLibCore_v5 as C} from "../src/libs/IexecLibCore_v5.sol";
import {MockWallet, MockIdentity} from "./mocks/Mocks.sol";

contract MatchOrdersTest is HubFixture {
    O.AppOrder a;
    O.DatasetOrder d;
    O.WorkerpoolOrder w;
    O.RequestOrder r;

    function setUp() public override {
        super.setUp();
        a = _appOrder();
        d = _datasetOrder();
        w = _workerpoolOrder();
        r = _requestOrder();
        r.dataset = dataset;
        r.datasetmaxprice = DATASET_PRICE;
    }

    function _expect(string memory code) internal {
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = d.dataset == address(0) ? d : _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes(string.concat("iExecV5-matchOrders-", code)));
        hub.matchOrders(a_, d_, w_, r_);
    }

    function _ok() internal returns (bytes32) {
        return _match(a, d, w, r);
    }

    // ------------------------------------------------------------------ success

    function test_match_withDataset() public {
        uint256 before = _stake(requester);
        uint256 poolBefore = _stake(scheduler);
        r.volume = 3;
        vm.recordLogs();
        bytes32 dealid = _ok();
        bytes32 requestHash = _hash(r);
        assertEq(dealid, keccak256(abi.encodePacked(requestHash, uint256(0))), "dealid rule");

        C.Deal memory deal = hub.viewDeal(dealid);
        assertEq(deal.app.pointer, app);
        assertEq(deal.app.owner, appOwner);
        assertEq(deal.app.price, APP_PRICE);
        assertEq(deal.dataset.pointer, dataset);
        assertEq(deal.dataset.owner, datasetOwner);
        assertEq(deal.dataset.price, DATASET_PRICE);
        assertEq(deal.workerpool.pointer, workerpool);
        assertEq(deal.workerpool.owner, scheduler);
        assertEq(deal.workerpool.price, WORKERPOOL_PRICE);
        assertEq(deal.trust, 1);
        assertEq(deal.category, 0);
        assertEq(deal.tag, bytes32(0));
        assertEq(deal.requester, requester);
        assertEq(deal.beneficiary, requester);
        assertEq(deal.callback, address(0));
        assertEq(deal.params, r.params);
        assertEq(deal.startTime, block.timestamp);
        assertEq(deal.botFirst, 0);
        assertEq(deal.botSize, 3);
        assertEq(deal.workerStake, WORKERPOOL_PRICE * 30 / 100);
        assertEq(deal.schedulerRewardRatio, 1);
        assertEq(deal.sponsor, requester);

        uint256 cost = (APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE) * 3;
        assertEq(_stake(requester), before - cost);
        assertEq(_locked(requester), cost);
        assertEq(_stake(scheduler), poolBefore - (WORKERPOOL_PRICE * 30 / 100) * 3);
        assertEq(_locked(scheduler), (WORKERPOOL_PRICE * 30 / 100) * 3);

        assertEq(hub.viewConsumed(_hash(a)), 3);
        assertEq(hub.viewConsumed(_hash(d)), 3);
        assertEq(hub.viewConsumed(_hash(w)), 3);
        assertEq(hub.viewConsumed(requestHash), 3);

        // Events: Lock x2, SchedulerNotice, OrdersMatched with PoCo's signatures.
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool notice;
        bool matched;
        for (uint256 i = 0; i < logs.length; ++i) {
            if (logs[i].topics[0] == keccak256("SchedulerNotice(address,bytes32)")) {
                notice = true;
                assertEq(logs[i].topics[1], bytes32(uint256(uint160(workerpool))));
                assertEq(abi.decode(logs[i].data, (bytes32)), dealid);
            }
            if (logs[i].topics[0] == keccak256("OrdersMatched(bytes32,bytes32,bytes32,bytes32,bytes32,uint256)")) {
                matched = true;
                (bytes32 id, bytes32 ah, bytes32 dh, bytes32 wh, bytes32 rh, uint256 vol) =
                    abi.decode(logs[i].data, (bytes32, bytes32, bytes32, bytes32, bytes32, uint256));
                assertEq(id, dealid);
                assertEq(ah, _hash(a));
                assertEq(dh, _hash(d));
                assertEq(wh, _hash(w));
                assertEq(rh, requestHash);
                assertEq(vol, 3);
            }
        }
        assertTrue(notice && matched, "events missing");
    }

    function test_match_withoutDataset_secondDealIdFollowsConsumed() public {
        d = _noDatasetOrder();
        r.dataset = address(0);
        r.volume = 5;
        a.volume = 2; // first deal takes 2, then the app order is exhausted
        bytes32 first = _ok();
        C.Deal memory deal = hub.viewDeal(first);
        assertEq(deal.botSize, 2);
        assertEq(deal.dataset.pointer, address(0));
        assertEq(deal.dataset.price, 0);
        // A second app order continues the same request: dealid uses consumed = 2, botFirst = 2.
        a.salt = keccak256("another app order");
        a.volume = 10;
        bytes32 second = _ok();
        assertEq(second, keccak256(abi.encodePacked(_hash(r), uint256(2))));
        deal = hub.viewDeal(second);
        assertEq(deal.botFirst, 2);
        assertEq(deal.botSize, 3);
        assertEq(hub.viewConsumed(_hash(r)), 5);
    }

    function test_match_trustZeroStoredAsOne_tagUnion() public {
        r.trust = 0;
        a.tag = bytes32(uint256(0x10));
        r.tag = bytes32(uint256(0x100));
        w.tag = bytes32(uint256(0x1110));
        bytes32 dealid = _ok();
        C.Deal memory deal = hub.viewDeal(dealid);
        assertEq(deal.trust, 1);
        assertEq(deal.tag, bytes32(uint256(0x110)));
    }

    function test_match_presigned() public {
        // Owners presign instead of signing: empty signatures are then accepted.
        vm.prank(appOwner);
        hub.manageAppOrder(O.AppOrderOperation(a, O.OrderOperationEnum.SIGN, ""));
        vm.prank(datasetOwner);
        hub.manageDatasetOrder(O.DatasetOrderOperation(d, O.OrderOperationEnum.SIGN, ""));
        vm.prank(scheduler);
        hub.manageWorkerpoolOrder(O.WorkerpoolOrderOperation(w, O.OrderOperationEnum.SIGN, ""));
        vm.prank(requester);
        hub.manageRequestOrder(O.RequestOrderOperation(r, O.OrderOperationEnum.SIGN, ""));
        assertEq(hub.viewPresigned(_hash(a)), appOwner);
        assertEq(hub.viewPresigned(_hash(r)), requester);
        bytes32 dealid = hub.matchOrders(a, d, w, r);
        assertEq(hub.viewDeal(dealid).botSize, 1);
    }

    function test_match_shortSignaturesEIP2098() public {
        O.AppOrder memory a_ = a;
        (bytes32 rr, bytes32 vs) = vm.signCompact(appKey, _hash(a_));
        a_.sign = abi.encodePacked(rr, vs);
        bytes32 dealid = hub.matchOrders(a_, _sign(d), _sign(w), _sign(r));
        assertEq(hub.viewDeal(dealid).app.owner, appOwner);
    }

    function test_match_vZeroOneNormalised() public {
        O.AppOrder memory a_ = a;
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(appKey, _hash(a_));
        a_.sign = abi.encodePacked(rr, s, v - 27);
        hub.matchOrders(a_, _sign(d), _sign(w), _sign(r));
    }

    function test_match_highSRejected() public {
        O.AppOrder memory a_ = a;
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(appKey, _hash(a_));
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        // (r, n - s, flipped v) is the same signature's malleable twin: valid for ecrecover, rejected here.
        a_.sign = abi.encodePacked(rr, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        assertEq(ecrecover(_hash(a_), v == 27 ? 28 : 27, rr, bytes32(n - uint256(s))), appOwner);
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes("iExecV5-matchOrders-0x21"));
        hub.matchOrders(a_, d_, w_, r_);
    }

    function test_match_erc1271ContractOwner() public {
        MockWallet wallet = new MockWallet();
        address walletApp = address(appRegistry.createApp(address(wallet), "w", "DOCKER", "", bytes32(0), ""));
        a.app = walletApp;
        r.app = walletApp;
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes("iExecV5-matchOrders-0x21"));
        hub.matchOrders(a, d_, w_, r_);
        wallet.approveDigest(_hash(a));
        bytes32 dealid = hub.matchOrders(a, d_, w_, r_);
        assertEq(hub.viewDeal(dealid).app.owner, address(wallet));
    }

    /// A contract requester presigns its request (manageRequestOrder sent by the contract itself): the
    /// ERC-1271 check fails, the presignature is then accepted.
    function test_match_contractRequesterPresigned() public {
        MockWallet wallet = new MockWallet();
        rlc.mint(address(wallet), 100e9);
        wallet.call(address(rlc), abi.encodeCall(rlc.approve, (address(hub), 100e9)));
        wallet.call(address(hub), abi.encodeCall(hub.deposit, (100e9)));
        r.requester = address(wallet);
        r.beneficiary = address(wallet);
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        vm.expectRevert(bytes("iExecV5-matchOrders-0x50"));
        hub.matchOrders(a_, d_, w_, r);
        wallet.call(
            address(hub),
            abi.encodeCall(hub.manageRequestOrder, (O.RequestOrderOperation(r, O.OrderOperationEnum.SIGN, "")))
        );
        assertEq(hub.viewPresigned(_hash(r)), address(wallet));
        bytes32 dealid = hub.matchOrders(a_, d_, w_, r);
        assertEq(hub.viewDeal(dealid).requester, address(wallet));
        assertEq(hub.frozenOf(address(wallet)), APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE);
    }

    function test_match_sponsored() public {
        uint256 requesterBefore = _stake(requester);
        uint256 sponsorBefore = _stake(sponsor);
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        bytes32 expectedId = keccak256(abi.encodePacked(_hash(r), uint256(0)));
        vm.expectEmit(false, false, false, true, address(hub));
        emit DealSponsored(expectedId, sponsor);
        vm.prank(sponsor);
        bytes32 dealid = hub.sponsorMatchOrders(a_, d_, w_, r_);
        assertEq(dealid, expectedId);
        assertEq(hub.viewDeal(dealid).sponsor, sponsor);
        assertEq(_stake(requester), requesterBefore);
        assertEq(_stake(sponsor), sponsorBefore - (APP_PRICE + DATASET_PRICE + WORKERPOOL_PRICE));
    }

    function test_match_insufficientBalance() public {
        vm.prank(requester);
        hub.withdraw(FUNDS);
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes("IexecEscrow: Transfer amount exceeds balance"));
        hub.matchOrders(a_, d_, w_, r_);
    }

    function test_match_closedOrderHasNoVolume() public {
        vm.prank(requester);
        hub.manageRequestOrder(O.RequestOrderOperation(r, O.OrderOperationEnum.CLOSE, ""));
        assertEq(hub.viewConsumed(_hash(r)), r.volume);
        _expect("0x60");
    }

    function test_match_identityRestriction() public {
        MockIdentity group = new MockIdentity();
        a.requesterrestrict = address(group);
        _expect("0x15");
        group.addKey(requester, 4);
        _ok();
    }

    // ------------------------------------------------------------------ every revert code, in PoCo's order

    function test_revert_0x00_category() public {
        r.category = 1;
        _expect("0x00");
    }

    function test_revert_0x01_categoryExists() public {
        r.category = 5;
        w.category = 5;
        _expect("0x01");
    }

    function test_revert_0x02_trust() public {
        r.trust = w.trust + 1;
        _expect("0x02");
    }

    function test_revert_0x03_appprice() public {
        r.appmaxprice = APP_PRICE - 1;
        _expect("0x03");
    }

    function test_revert_0x04_datasetprice() public {
        r.datasetmaxprice = DATASET_PRICE - 1;
        _expect("0x04");
    }

    function test_revert_0x04_datasetpriceWithoutDataset() public {
        // No dataset: the (empty) dataset order's price still enters the check.
        d = _noDatasetOrder();
        d.datasetprice = 1;
        r.dataset = address(0);
        r.datasetmaxprice = 0;
        _expect("0x04");
    }

    function test_revert_0x05_workerpoolprice() public {
        r.workerpoolmaxprice = WORKERPOOL_PRICE - 1;
        _expect("0x05");
    }

    function test_revert_0x06_tagNotSubset() public {
        r.tag = bytes32(uint256(0x2));
        _expect("0x06");
    }

    function test_revert_0x06_datasetTag() public {
        d.tag = bytes32(uint256(0x4));
        w.tag = bytes32(uint256(0x2));
        _expect("0x06");
    }

    function test_revert_0x07_teeNeedsTeeApp() public {
        r.tag = TEE_TAG;
        w.tag = TEE_TAG;
        _expect("0x07");
        a.tag = TEE_TAG;
        _ok();
    }

    function test_revert_0x10_app() public {
        r.app = address(0x1234);
        _expect("0x10");
    }

    function test_revert_0x11_dataset() public {
        r.dataset = address(0);
        _expect("0x11");
    }

    function test_revert_0x12_requestWorkerpoolRestriction() public {
        r.workerpool = address(0x1234);
        _expect("0x12");
        r.workerpool = workerpool;
        _ok();
    }

    function test_revert_0x13_appDatasetRestriction() public {
        a.datasetrestrict = address(0x1234);
        _expect("0x13");
    }

    function test_revert_0x14_appWorkerpoolRestriction() public {
        a.workerpoolrestrict = address(0x1234);
        _expect("0x14");
    }

    function test_revert_0x15_appRequesterRestriction() public {
        a.requesterrestrict = address(0x1234);
        _expect("0x15");
    }

    function test_revert_0x16_datasetAppRestriction() public {
        d.apprestrict = address(0x1234);
        _expect("0x16");
    }

    function test_revert_0x17_datasetWorkerpoolRestriction() public {
        d.workerpoolrestrict = address(0x1234);
        _expect("0x17");
    }

    function test_revert_0x18_datasetRequesterRestriction() public {
        d.requesterrestrict = address(0x1234);
        _expect("0x18");
    }

    function test_revert_0x18_restrictionBlocksWithoutDataset() public {
        // Without a dataset, a non-zero restriction in the empty dataset order still blocks the deal.
        d = _noDatasetOrder();
        d.requesterrestrict = address(0x1234);
        r.dataset = address(0);
        _expect("0x18");
    }

    function test_revert_0x19_workerpoolAppRestriction() public {
        w.apprestrict = address(0x1234);
        _expect("0x19");
    }

    function test_revert_0x1a_workerpoolDatasetRestriction() public {
        w.datasetrestrict = address(0x1234);
        _expect("0x1a");
    }

    function test_revert_0x1b_workerpoolRequesterRestriction() public {
        w.requesterrestrict = address(0x1234);
        _expect("0x1b");
    }

    function test_revert_0x20_appNotRegistered() public {
        address fake = address(new MockWallet());
        a.app = fake;
        r.app = fake;
        _expect("0x20");
    }

    function test_revert_0x21_appSignature() public {
        O.AppOrder memory a_ = _sign(a);
        a_.sign = _sig(requesterKey, _hash(a_)); // signed by someone else
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes("iExecV5-matchOrders-0x21"));
        hub.matchOrders(a_, d_, w_, r_);
    }

    function test_revert_0x21_afterAppTransfer() public {
        // The signer must be the *current* owner: after an NFT transfer the old signature is void.
        vm.prank(appOwner);
        appRegistry.transferFrom(appOwner, requester, uint256(uint160(app)));
        _expect("0x21");
    }

    function test_revert_0x30_datasetNotRegistered() public {
        d.dataset = app; // an app is not a dataset
        r.dataset = app;
        _expect("0x30");
    }

    function test_revert_0x31_datasetSignature() public {
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = _sign(d);
        d_.sign = _sig(appKey, _hash(d_));
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes("iExecV5-matchOrders-0x31"));
        hub.matchOrders(a_, d_, w_, r_);
    }

    function test_revert_0x40_workerpoolNotRegistered() public {
        w.workerpool = dataset;
        _expect("0x40");
    }

    function test_revert_0x41_workerpoolSignature() public {
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        w_.sign = hex"00";
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes("iExecV5-matchOrders-0x41"));
        hub.matchOrders(a_, d_, w_, r_);
    }

    function test_revert_0x50_requestSignature() public {
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        r_.volume = 2; // signed for volume 1
        vm.expectRevert(bytes("iExecV5-matchOrders-0x50"));
        hub.matchOrders(a_, d_, w_, r_);
    }

    function test_revert_0x60_volume() public {
        _ok(); // request volume 1 consumed
        _expect("0x60");
    }

    function test_revert_valueOutOfRange() public {
        // Prices that Dragon's packed storage cannot hold (no real account could pay them).
        a.appprice = uint256(type(uint96).max) + 1;
        r.appmaxprice = a.appprice;
        O.AppOrder memory a_ = _sign(a);
        O.DatasetOrder memory d_ = _sign(d);
        O.WorkerpoolOrder memory w_ = _sign(w);
        O.RequestOrder memory r_ = _sign(r);
        vm.expectRevert(bytes("Dragon: value out of range"));
        hub.matchOrders(a_, d_, w_, r_);
    }

    // ------------------------------------------------------------------ order management

    function test_manage_bySignature() public {
        O.AppOrderOperation memory op = O.AppOrderOperation(a, O.OrderOperationEnum.CLOSE, "");
        bytes32 opHash = _digest(
            keccak256(
                abi.encode(
                    keccak256(
                        "AppOrderOperation(AppOrder order,uint256 operation)AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
                    ),
                    O.hashRef(a),
                    uint256(1)
                )
            )
        );
        op.sign = _sig(requesterKey, opHash);
        vm.expectRevert(bytes("invalid-sender-or-signature"));
        hub.manageAppOrder(op);
        op.sign = _sig(appKey, opHash);
        hub.manageAppOrder(op); // relayed by anyone
        assertEq(hub.viewConsumed(_hash(a)), a.volume);
    }

    function test_manage_onlyOwner() public {
        vm.prank(requester);
        vm.expectRevert(bytes("invalid-sender-or-signature"));
        hub.manageWorkerpoolOrder(O.WorkerpoolOrderOperation(w, O.OrderOperationEnum.SIGN, ""));
        vm.prank(appOwner);
        vm.expectRevert(bytes("invalid-sender-or-signature"));
        hub.manageRequestOrder(O.RequestOrderOperation(r, O.OrderOperationEnum.SIGN, ""));
    }

    // ------------------------------------------------------------------ hashing / domain

    function test_typehashesArePoCos() public pure {
        // The constants PoCo publishes in IexecLibOrders_v5.
        assertEq(O.EIP712DOMAIN_TYPEHASH, 0x8b73c3c69bb8fe3d512ecc4cf759cc79239f7b179b0ffacaa9a75d522b39400f);
        assertEq(O.APPORDER_TYPEHASH, 0x60815a0eeec47dddf1615fe53b31d016c31444e01b9d796db365443a6445d008);
        assertEq(O.DATASETORDER_TYPEHASH, 0x6cfc932a5a3d22c4359295b9f433edff52b60703fa47690a04a83e40933dd47c);
        assertEq(O.WORKERPOOLORDER_TYPEHASH, 0xaa3429fb281b34691803133d3d978a75bb77c617ed6bc9aa162b9b30920022bb);
        assertEq(O.REQUESTORDER_TYPEHASH, 0xf24e853034a3a450aba845a82914fbb564ad85accca6cf62be112a154520fae0);
        assertEq(
            O.APPORDEROPERATION_TYPEHASH, 0x0638bb0702457e2b4b01be8a202579b8bf97e587fb4f2cc4d4aad01f21a06ee0
        );
        assertEq(
            O.REQUESTORDEROPERATION_TYPEHASH, 0x0ded7b52c2d77595a40d242eca751df172b18e686326dbbed3f4748828af77c7
        );
    }

    function test_domain() public view {
        O.EIP712Domain memory dom = hub.domain();
        assertEq(dom.name, "iExecODB");
        assertEq(dom.version, "5.0.0");
        assertEq(dom.chainId, block.chainid);
        assertEq(dom.verifyingContract, address(hub));
        assertEq(hub.eip712domain_separator(), _domainSeparator());
    }

    function test_domainFollowsChainId() public {
        vm.chainId(4242);
        assertEq(hub.eip712domain_separator(), _domainSeparator());
    }

    function test_verifySignatureViews() public view {
        bytes32 h = _hash(a);
        assertTrue(hub.verifySignature(appOwner, h, _sig(appKey, h)));
        assertFalse(hub.verifySignature(requester, h, _sig(appKey, h)));
        assertFalse(hub.verifyPresignature(appOwner, h));
        assertTrue(hub.verifyPresignatureOrSignature(appOwner, h, _sig(appKey, h)));
    }

    function test_computeDealVolume() public {
        r.volume = 7;
        assertEq(hub.computeDealVolume(a, d, w, r), 7);
        _ok();
        assertEq(hub.computeDealVolume(a, d, w, r), 0);
    }

    // ------------------------------------------------------------------ fuzz

    /// Random volumes and prior consumption: the deal takes exactly the minimum remaining volume and the
    /// requester pays exactly price * volume.
    function testFuzz_match_volumeAndLocks(uint16 av, uint16 dv, uint16 wv, uint16 rv, uint64 ap, uint64 wp) public {
        a.volume = bound(av, 1, 500);
        d.volume = bound(dv, 1, 500);
        w.volume = bound(wv, 1, 500);
        r.volume = bound(rv, 1, 500);
        a.appprice = bound(ap, 0, 100e9);
        r.appmaxprice = a.appprice;
        w.workerpoolprice = bound(wp, 0, 100e9);
        r.workerpoolmaxprice = w.workerpoolprice;
        uint256 expected = _min(_min(a.volume, d.volume), _min(w.volume, r.volume));
        uint256 before = _stake(requester);
        uint256 poolBefore = _stake(scheduler);
        bytes32 dealid = _ok();
        assertEq(hub.viewDeal(dealid).botSize, expected);
        uint256 cost = (a.appprice + DATASET_PRICE + w.workerpoolprice) * expected;
        assertEq(before - _stake(requester), cost);
        assertEq(_locked(requester), cost);
        assertEq(poolBefore - _stake(scheduler), (w.workerpoolprice * 30 / 100) * expected);
        _assertConservation(new address[](0));
    }

    /// A random price mismatch reverts with the right code and changes nothing.
    function testFuzz_match_priceChecks(uint32 ap, uint32 apMax, uint32 wp, uint32 wpMax) public {
        a.appprice = ap;
        r.appmaxprice = apMax;
        w.workerpoolprice = wp;
        r.workerpoolmaxprice = wpMax;
        if (apMax < ap) {
            _expect("0x03");
        } else if (wpMax < wp) {
            _expect("0x05");
        } else {
            _ok();
        }
    }

    function _min(uint256 x, uint256 y) private pure returns (uint256) {
        return x < y ? x : y;
    }
}
