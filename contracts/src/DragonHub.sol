// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {HubStorage} from "./HubStorage.sol";
import {DragonTasks} from "./DragonTasks.sol";
import {IexecLibCore_v5} from "./libs/IexecLibCore_v5.sol";
import {IexecLibOrders_v5} from "./libs/IexecLibOrders_v5.sol";

interface IEntryRegistry {
    function ownerOfEntry(address entry) external view returns (address);
    function isRegistered(address entry) external view returns (bool);
}

interface IWorkerpoolPolicies {
    function policies() external view returns (uint256 workerStakeRatio, uint256 schedulerRewardRatio);
}

interface IERC734 {
    function keyHasPurpose(bytes32 key, uint256 purpose) external view returns (bool);
}

/// @title Dragon hub: a PoCo v5-compatible settlement contract with batch matching.
/// @notice Matching (PoCo1), order management, escrow, categories and deal/account views live here; the
/// task lifecycle (PoCo2) lives in `DragonTasks`, reached through this contract's fallback by
/// delegatecall, so clients see one address with PoCo's whole ABI (`IDragonHub`).
///
/// Deployment: `new DragonHub(token, appRegistry, datasetRegistry, workerpoolRegistry)`; the constructor
/// deploys the task module, makes the deployer the owner (category management) and creates the five
/// default categories.
contract DragonHub is HubStorage {
    using IexecLibOrders_v5 for IexecLibOrders_v5.AppOrder;
    using IexecLibOrders_v5 for IexecLibOrders_v5.DatasetOrder;
    using IexecLibOrders_v5 for IexecLibOrders_v5.WorkerpoolOrder;
    using IexecLibOrders_v5 for IexecLibOrders_v5.RequestOrder;
    using IexecLibOrders_v5 for IexecLibOrders_v5.AppOrderOperation;
    using IexecLibOrders_v5 for IexecLibOrders_v5.DatasetOrderOperation;
    using IexecLibOrders_v5 for IexecLibOrders_v5.WorkerpoolOrderOperation;
    using IexecLibOrders_v5 for IexecLibOrders_v5.RequestOrderOperation;

    IERC20 private immutable _token;
    IEntryRegistry private immutable _appregistry;
    IEntryRegistry private immutable _datasetregistry;
    IEntryRegistry private immutable _workerpoolregistry;
    address private immutable _tasksModule;
    bytes32 private immutable _domainSeparator;
    uint256 private immutable _chainId;

    /// One deal of a `matchOrdersBatch` call: indexes into the order arrays.
    struct BatchMatch {
        uint32 app;
        uint32 dataset;
        uint32 workerpool;
        uint32 request;
    }

    /// What matching learns about one order; kept across the deals of a batch so an order shared by
    /// several deals is hashed, looked up and signature-checked once.
    struct OrderInfo {
        bytes32 hash;
        address owner;
        uint8 schedulerRewardRatio; // workerpool orders only (<= 100)
        uint128 workerStakeRatio; // workerpool orders only
        bool verified; // registered and signed by its owner
    }

    constructor(
        IERC20 token_,
        address appregistry_,
        address datasetregistry_,
        address workerpoolregistry_
    ) {
        _token = token_;
        _appregistry = IEntryRegistry(appregistry_);
        _datasetregistry = IEntryRegistry(datasetregistry_);
        _workerpoolregistry = IEntryRegistry(workerpoolregistry_);
        _tasksModule = address(new DragonTasks());
        _chainId = block.chainid;
        _domainSeparator = _computeDomainSeparator();
        _owner = msg.sender;
        _createCategory("XS", '{"description":"XS category"}', 300);
        _createCategory("S", '{"description":"S category"}', 1200);
        _createCategory("M", '{"description":"M category"}', 3600);
        _createCategory("L", '{"description":"L category"}', 10800);
        _createCategory("XL", '{"description":"XL category"}', 36000);
    }

    /// PoCo2 (task lifecycle) and its views are implemented by the task module.
    fallback() external {
        address tasks = _tasksModule;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, 0, calldatasize())
            let ok := delegatecall(gas(), tasks, ptr, calldatasize(), 0, 0)
            returndatacopy(ptr, 0, returndatasize())
            if iszero(ok) { revert(ptr, returndatasize()) }
            return(ptr, returndatasize())
        }
    }

    // =====================================================================================================
    // Ownership (PoCo's hub is Ownable: the owner manages categories)
    // =====================================================================================================

    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    modifier onlyOwner() {
        require(msg.sender == _owner, "Ownable: caller is not the owner");
        _;
    }

    function owner() external view returns (address) {
        return _owner;
    }

    function renounceOwnership() external onlyOwner {
        emit OwnershipTransferred(_owner, address(0));
        _owner = address(0);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        require(newOwner != address(0), "Ownable: new owner is the zero address");
        emit OwnershipTransferred(_owner, newOwner);
        _owner = newOwner;
    }

    // =====================================================================================================
    // EIP-712
    // =====================================================================================================

    function _computeDomainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(
                IexecLibOrders_v5.EIP712DOMAIN_TYPEHASH,
                keccak256("iExecODB"),
                keccak256("5.0.0"),
                block.chainid,
                address(this)
            )
        );
    }

    function _separator() private view returns (bytes32) {
        return block.chainid == _chainId ? _domainSeparator : _computeDomainSeparator();
    }

    function _typed(bytes32 structHash) private view returns (bytes32 digest) {
        bytes32 sep = _separator();
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, hex"1901")
            mstore(add(m, 0x02), sep)
            mstore(add(m, 0x22), structHash)
            digest := keccak256(m, 0x42)
        }
    }

    function domain() external view returns (IexecLibOrders_v5.EIP712Domain memory) {
        return IexecLibOrders_v5.EIP712Domain("iExecODB", "5.0.0", block.chainid, address(this));
    }

    function eip712domain_separator() external view returns (bytes32) {
        return _separator();
    }

    // =====================================================================================================
    // Signatures (PoCo IexecPoco1 helpers)
    // =====================================================================================================

    function verifySignature(address identity, bytes32 hash, bytes calldata signature) external view returns (bool) {
        return _verifySignature(identity, hash, signature);
    }

    function verifyPresignature(address identity, bytes32 hash) external view returns (bool) {
        return identity != address(0) && _presigned[hash] == identity;
    }

    function verifyPresignatureOrSignature(address identity, bytes32 hash, bytes calldata signature)
        external
        view
        returns (bool)
    {
        return _signedBy(identity, hash, signature);
    }

    function _signedBy(address identity, bytes32 hash, bytes calldata signature) private view returns (bool) {
        // Signature first: a valid one saves the cold presignature read (an empty one fails fast for an
        // EOA; a contract owner is always asked through ERC-1271, as PoCo does).
        if (_verifySignature(identity, hash, signature)) return true;
        return identity != address(0) && _presigned[hash] == identity;
    }

    /// Zero = anyone; equal address; or an ERC-734 identity contract where `account` has purpose 4.
    function _admits(address restriction, address account) private view returns (bool) {
        if (restriction == address(0) || restriction == account) return true;
        if (restriction.code.length == 0) return false;
        try IERC734(restriction).keyHasPurpose(bytes32(uint256(uint160(account))), GROUPMEMBER_PURPOSE) returns (
            bool ok
        ) {
            return ok;
        } catch {
            return false;
        }
    }

    // =====================================================================================================
    // Matching
    // =====================================================================================================

    function matchOrders(
        IexecLibOrders_v5.AppOrder calldata appOrder,
        IexecLibOrders_v5.DatasetOrder calldata datasetOrder,
        IexecLibOrders_v5.WorkerpoolOrder calldata workerpoolOrder,
        IexecLibOrders_v5.RequestOrder calldata requestOrder
    ) external returns (bytes32) {
        return _matchOrRevert(appOrder, datasetOrder, workerpoolOrder, requestOrder, requestOrder.requester);
    }

    /// The caller pays for the deal instead of the requester.
    function sponsorMatchOrders(
        IexecLibOrders_v5.AppOrder calldata appOrder,
        IexecLibOrders_v5.DatasetOrder calldata datasetOrder,
        IexecLibOrders_v5.WorkerpoolOrder calldata workerpoolOrder,
        IexecLibOrders_v5.RequestOrder calldata requestOrder
    ) external returns (bytes32 dealid) {
        dealid = _matchOrRevert(appOrder, datasetOrder, workerpoolOrder, requestOrder, msg.sender);
        emit DealSponsored(dealid, msg.sender);
    }

    /// Dragon: settles many deals in one transaction. Orders are given once each and `matches` pairs them
    /// by index, so an order shared by several deals (a workerpool order of volume 20 serving 20 requests)
    /// is sent, hashed and verified once. A deal that fails any check is skipped with a
    /// `MatchOrdersFailed(index, reason)` event (reason = the revert string of `matchOrders`) and dealid 0;
    /// the others are settled, in `matches` order. Requesters pay, as with `matchOrders`.
    function matchOrdersBatch(
        IexecLibOrders_v5.AppOrder[] calldata appOrders,
        IexecLibOrders_v5.DatasetOrder[] calldata datasetOrders,
        IexecLibOrders_v5.WorkerpoolOrder[] calldata workerpoolOrders,
        IexecLibOrders_v5.RequestOrder[] calldata requestOrders,
        BatchMatch[] calldata matches
    ) external returns (bytes32[] memory dealids) {
        OrderInfo[][4] memory infos = [
            new OrderInfo[](appOrders.length),
            new OrderInfo[](datasetOrders.length),
            new OrderInfo[](workerpoolOrders.length),
            new OrderInfo[](requestOrders.length)
        ];
        dealids = new bytes32[](matches.length);
        for (uint256 i = 0; i < matches.length; ++i) {
            BatchMatch calldata m = matches[i];
            if (
                m.app >= appOrders.length || m.dataset >= datasetOrders.length
                    || m.workerpool >= workerpoolOrders.length || m.request >= requestOrders.length
            ) {
                emit MatchOrdersFailed(i, "Dragon: batch index out of range");
                continue;
            }
            IexecLibOrders_v5.RequestOrder calldata r = requestOrders[m.request];
            (bytes32 dealid, string memory err) = _match(
                appOrders[m.app],
                datasetOrders[m.dataset],
                workerpoolOrders[m.workerpool],
                r,
                r.requester,
                [infos[0][m.app], infos[1][m.dataset], infos[2][m.workerpool], infos[3][m.request]]
            );
            if (bytes(err).length != 0) emit MatchOrdersFailed(i, err);
            else dealids[i] = dealid;
        }
    }

    function _matchOrRevert(
        IexecLibOrders_v5.AppOrder calldata a,
        IexecLibOrders_v5.DatasetOrder calldata d,
        IexecLibOrders_v5.WorkerpoolOrder calldata w,
        IexecLibOrders_v5.RequestOrder calldata r,
        address sponsor
    ) private returns (bytes32 dealid) {
        OrderInfo[4] memory info;
        string memory err;
        (dealid, err) = _match(a, d, w, r, sponsor, info);
        if (bytes(err).length != 0) revert(err);
    }

    /// All of PoCo's checks, in PoCo's order, then the balance checks, then the writes: a failing deal
    /// returns its reason before touching storage, which is what lets a batch skip it.
    function _match(
        IexecLibOrders_v5.AppOrder calldata a,
        IexecLibOrders_v5.DatasetOrder calldata d,
        IexecLibOrders_v5.WorkerpoolOrder calldata w,
        IexecLibOrders_v5.RequestOrder calldata r,
        address sponsor,
        OrderInfo[4] memory info // app, dataset, workerpool, request
    ) private returns (bytes32 dealid, string memory err) {
        bytes32 tag;
        {
            uint256 category = r.category;
            if (category != w.category) return (0, "iExecV5-matchOrders-0x00");
            if (category >= _categories.length) return (0, "iExecV5-matchOrders-0x01");
            if (r.trust > w.trust) return (0, "iExecV5-matchOrders-0x02");
            if (r.appmaxprice < a.appprice) return (0, "iExecV5-matchOrders-0x03");
            if (r.datasetmaxprice < d.datasetprice) return (0, "iExecV5-matchOrders-0x04");
            if (r.workerpoolmaxprice < w.workerpoolprice) return (0, "iExecV5-matchOrders-0x05");
            tag = a.tag | d.tag | r.tag;
            if (tag & ~w.tag != 0) return (0, "iExecV5-matchOrders-0x06");
            if ((tag ^ a.tag)[31] & 0x01 != 0) return (0, "iExecV5-matchOrders-0x07");
        }
        address app = a.app;
        address dataset = d.dataset;
        address workerpool = w.workerpool;
        address requester = r.requester;
        if (r.app != app) return (0, "iExecV5-matchOrders-0x10");
        if (r.dataset != dataset) return (0, "iExecV5-matchOrders-0x11");
        if (!_admits(r.workerpool, workerpool)) return (0, "iExecV5-matchOrders-0x12");
        if (!_admits(a.datasetrestrict, dataset)) return (0, "iExecV5-matchOrders-0x13");
        if (!_admits(a.workerpoolrestrict, workerpool)) return (0, "iExecV5-matchOrders-0x14");
        if (!_admits(a.requesterrestrict, requester)) return (0, "iExecV5-matchOrders-0x15");
        if (!_admits(d.apprestrict, app)) return (0, "iExecV5-matchOrders-0x16");
        if (!_admits(d.workerpoolrestrict, workerpool)) return (0, "iExecV5-matchOrders-0x17");
        if (!_admits(d.requesterrestrict, requester)) return (0, "iExecV5-matchOrders-0x18");
        if (!_admits(w.apprestrict, app)) return (0, "iExecV5-matchOrders-0x19");
        if (!_admits(w.datasetrestrict, dataset)) return (0, "iExecV5-matchOrders-0x1a");
        if (!_admits(w.requesterrestrict, requester)) return (0, "iExecV5-matchOrders-0x1b");

        // Authenticity: registered asset, order signed (or presigned) by the asset's current owner.
        OrderInfo memory ai = info[0];
        if (!ai.verified) {
            if (ai.hash == 0) ai.hash = _typed(a.hash());
            ai.owner = _appregistry.ownerOfEntry(app);
            if (ai.owner == address(0)) return (0, "iExecV5-matchOrders-0x20");
            if (!_signedBy(ai.owner, ai.hash, a.sign)) return (0, "iExecV5-matchOrders-0x21");
            ai.verified = true;
        }
        bool hasDataset = dataset != address(0);
        OrderInfo memory di = info[1];
        if (hasDataset && !di.verified) {
            if (di.hash == 0) di.hash = _typed(d.hash());
            di.owner = _datasetregistry.ownerOfEntry(dataset);
            if (di.owner == address(0)) return (0, "iExecV5-matchOrders-0x30");
            if (!_signedBy(di.owner, di.hash, d.sign)) return (0, "iExecV5-matchOrders-0x31");
            di.verified = true;
        }
        OrderInfo memory wi = info[2];
        if (!wi.verified) {
            if (wi.hash == 0) wi.hash = _typed(w.hash());
            wi.owner = _workerpoolregistry.ownerOfEntry(workerpool);
            if (wi.owner == address(0)) return (0, "iExecV5-matchOrders-0x40");
            if (!_signedBy(wi.owner, wi.hash, w.sign)) return (0, "iExecV5-matchOrders-0x41");
            (uint256 stakeRatio, uint256 rewardRatio) = IWorkerpoolPolicies(workerpool).policies();
            // Dragon's Workerpool bounds both in changePolicy, but a hub deployed over another registry
            // reads whatever its workerpools answer. Out-of-range policies are a reason like any other
            // (not a SafeCast revert): a revert here would sink every other deal of a batch, and a
            // scheduler ratio above 100 would make the deal's tasks impossible to finalize.
            if (stakeRatio > type(uint128).max || rewardRatio > 100) {
                return (0, "Dragon: workerpool policy out of range");
            }
            wi.workerStakeRatio = uint128(stakeRatio);
            wi.schedulerRewardRatio = uint8(rewardRatio);
            wi.verified = true;
        }
        OrderInfo memory ri = info[3];
        if (!ri.verified) {
            if (ri.hash == 0) ri.hash = _typed(r.hash());
            if (!_signedBy(requester, ri.hash, r.sign)) return (0, "iExecV5-matchOrders-0x50");
            ri.verified = true;
        }

        // Availability.
        uint256 botFirst = _consumed[ri.hash];
        uint256 volume = _min(a.volume - _consumed[ai.hash], r.volume - botFirst);
        volume = _min(volume, w.volume - _consumed[wi.hash]);
        if (hasDataset) volume = _min(volume, d.volume - _consumed[di.hash]);
        if (volume == 0) return (0, "iExecV5-matchOrders-0x60");

        // Dragon's packed storage bounds (unreachable with a real RLC supply; see HubStorage).
        uint256 appPrice = a.appprice;
        uint256 datasetPrice = hasDataset ? d.datasetprice : 0;
        uint256 workerpoolPrice = w.workerpoolprice;
        if (
            appPrice > type(uint96).max || datasetPrice > type(uint96).max || workerpoolPrice > type(uint96).max
                || volume > type(uint48).max || botFirst > type(uint48).max - volume || r.trust > type(uint64).max
        ) return (0, "Dragon: value out of range");
        uint256 workerStake = workerpoolPrice * wi.workerStakeRatio / 100;
        if (workerStake > type(uint96).max) return (0, "Dragon: value out of range");

        // Escrow: the sponsor pays the deal, the workerpool owner stakes 30% of its price per task.
        uint256 cost = (appPrice + datasetPrice + workerpoolPrice) * volume;
        uint256 poolStake = (workerpoolPrice * WORKERPOOL_STAKE_RATIO / 100) * volume;
        {
            uint256 sponsorStake = _accounts[sponsor].stake;
            if (sponsor == wi.owner) {
                if (cost + poolStake > sponsorStake) return (0, "IexecEscrow: Transfer amount exceeds balance");
            } else if (cost > sponsorStake || poolStake > _accounts[wi.owner].stake) {
                return (0, "IexecEscrow: Transfer amount exceeds balance");
            }
        }

        // Record.
        dealid = keccak256(abi.encodePacked(ri.hash, botFirst));
        DealStore storage deal = _deals[dealid];
        deal.appPointer = app;
        deal.appPrice = uint96(appPrice);
        deal.appOwner = ai.owner;
        deal.startTime = uint40(block.timestamp);
        deal.category = uint40(r.category);
        deal.schedulerRewardRatio = wi.schedulerRewardRatio;
        deal.workerpoolPointer = workerpool;
        deal.workerpoolPrice = uint96(workerpoolPrice);
        deal.workerpoolOwner = wi.owner;
        deal.workerStake = uint96(workerStake);
        deal.requester = requester;
        deal.botFirst = uint48(botFirst);
        deal.botSize = uint48(volume);
        if (r.beneficiary != requester || r.trust > 1) {
            deal.flags = DEAL_HAS_EXTRA;
            deal.beneficiary = r.beneficiary;
            deal.trust = uint64(r.trust == 0 ? 1 : r.trust);
        }
        if (r.callback != address(0)) deal.callback = r.callback;
        if (sponsor != requester) deal.sponsor = sponsor;
        if (hasDataset) {
            deal.datasetPointer = dataset;
            deal.datasetPrice = uint96(datasetPrice);
            deal.datasetOwner = di.owner;
        }
        if (tag != 0) deal.tag = tag;
        if (bytes(r.params).length != 0) deal.params = r.params;

        // Consume.
        _consumed[ai.hash] += volume;
        if (hasDataset) _consumed[di.hash] += volume;
        _consumed[wi.hash] += volume;
        _consumed[ri.hash] = botFirst + volume;

        // Lock.
        _lock(sponsor, cost);
        _lock(wi.owner, poolStake);

        emit SchedulerNotice(workerpool, dealid);
        emit OrdersMatched(dealid, ai.hash, hasDataset ? di.hash : bytes32(0), wi.hash, ri.hash, volume);
    }

    function _min(uint256 x, uint256 y) private pure returns (uint256) {
        return x < y ? x : y;
    }

    /// PoCo's volume computation (what `matchOrders` would settle now, before signature checks).
    function computeDealVolume(
        IexecLibOrders_v5.AppOrder calldata a,
        IexecLibOrders_v5.DatasetOrder calldata d,
        IexecLibOrders_v5.WorkerpoolOrder calldata w,
        IexecLibOrders_v5.RequestOrder calldata r
    ) external view returns (uint256 volume) {
        volume = _min(a.volume - _consumed[_typed(a.hash())], r.volume - _consumed[_typed(r.hash())]);
        volume = _min(volume, w.volume - _consumed[_typed(w.hash())]);
        if (d.dataset != address(0)) volume = _min(volume, d.volume - _consumed[_typed(d.hash())]);
    }

    // =====================================================================================================
    // Order management: presign (SIGN) or cancel (CLOSE), by the owner or with the owner's signature
    // =====================================================================================================

    function manageAppOrder(IexecLibOrders_v5.AppOrderOperation calldata op) external {
        address owner_ = IEntryRegistry(_appregistry).ownerOfEntry(op.order.app);
        _authorizeOperation(owner_, _typed(op.hash()), op.sign);
        bytes32 h = _typed(op.order.hash());
        if (op.operation == IexecLibOrders_v5.OrderOperationEnum.SIGN) {
            _presigned[h] = owner_;
            emit SignedAppOrder(h);
        } else {
            _consumed[h] = op.order.volume;
            emit ClosedAppOrder(h);
        }
    }

    function manageDatasetOrder(IexecLibOrders_v5.DatasetOrderOperation calldata op) external {
        address owner_ = IEntryRegistry(_datasetregistry).ownerOfEntry(op.order.dataset);
        _authorizeOperation(owner_, _typed(op.hash()), op.sign);
        bytes32 h = _typed(op.order.hash());
        if (op.operation == IexecLibOrders_v5.OrderOperationEnum.SIGN) {
            _presigned[h] = owner_;
            emit SignedDatasetOrder(h);
        } else {
            _consumed[h] = op.order.volume;
            emit ClosedDatasetOrder(h);
        }
    }

    function manageWorkerpoolOrder(IexecLibOrders_v5.WorkerpoolOrderOperation calldata op) external {
        address owner_ = IEntryRegistry(_workerpoolregistry).ownerOfEntry(op.order.workerpool);
        _authorizeOperation(owner_, _typed(op.hash()), op.sign);
        bytes32 h = _typed(op.order.hash());
        if (op.operation == IexecLibOrders_v5.OrderOperationEnum.SIGN) {
            _presigned[h] = owner_;
            emit SignedWorkerpoolOrder(h);
        } else {
            _consumed[h] = op.order.volume;
            emit ClosedWorkerpoolOrder(h);
        }
    }

    function manageRequestOrder(IexecLibOrders_v5.RequestOrderOperation calldata op) external {
        address owner_ = op.order.requester;
        _authorizeOperation(owner_, _typed(op.hash()), op.sign);
        bytes32 h = _typed(op.order.hash());
        if (op.operation == IexecLibOrders_v5.OrderOperationEnum.SIGN) {
            _presigned[h] = owner_;
            emit SignedRequestOrder(h);
        } else {
            _consumed[h] = op.order.volume;
            emit ClosedRequestOrder(h);
        }
    }

    function _authorizeOperation(address owner_, bytes32 opHash, bytes calldata sign) private view {
        require(
            owner_ != address(0) && (owner_ == msg.sender || _verifySignature(owner_, opHash, sign)),
            "invalid-sender-or-signature"
        );
    }

    // =====================================================================================================
    // Categories
    // =====================================================================================================

    function createCategory(string calldata name_, string calldata description, uint256 workClockTimeRef)
        external
        onlyOwner
        returns (uint256)
    {
        return _createCategory(name_, description, workClockTimeRef);
    }

    function _createCategory(string memory name_, string memory description, uint256 workClockTimeRef)
        private
        returns (uint256 catid)
    {
        // Task deadlines are stored on 40 bits: 10 * workClockTimeRef must fit.
        require(workClockTimeRef > 0 && workClockTimeRef <= type(uint32).max, "Dragon: bad workClockTimeRef");
        _categories.push(CategoryStore(name_, description, workClockTimeRef));
        catid = _categories.length - 1;
        emit CreateCategory(catid, name_, description, workClockTimeRef);
    }

    function viewCategory(uint256 catid) external view returns (IexecLibCore_v5.Category memory) {
        CategoryStore storage c = _categories[catid];
        return IexecLibCore_v5.Category(c.name, c.description, c.workClockTimeRef);
    }

    function countCategory() external view returns (uint256) {
        return _categories.length;
    }

    // =====================================================================================================
    // Escrow (token mode): RLC in, staked RLC (this contract's internal ERC-20, 9 decimals) out
    // =====================================================================================================

    function deposit(uint256 amount) external returns (bool) {
        _deposit(msg.sender, amount, msg.sender);
        return true;
    }

    function depositFor(uint256 amount, address target) external returns (bool) {
        _deposit(msg.sender, amount, target);
        return true;
    }

    function depositForArray(uint256[] calldata amounts, address[] calldata targets) external returns (bool) {
        require(amounts.length == targets.length, "invalid-array-length");
        for (uint256 i = 0; i < amounts.length; ++i) {
            _deposit(msg.sender, amounts[i], targets[i]);
        }
        return true;
    }

    function withdraw(uint256 amount) external returns (bool) {
        _withdraw(msg.sender, amount, msg.sender);
        return true;
    }

    function withdrawTo(uint256 amount, address target) external returns (bool) {
        _withdraw(msg.sender, amount, target);
        return true;
    }

    /// RLC's approveAndCall hook: deposit in the same transaction as the approval. Dragon supports plain
    /// deposits only (empty `data`); PoCo also accepts an encoded matchOrders here.
    function receiveApproval(address sender, uint256 amount, address token_, bytes calldata data)
        external
        returns (bool)
    {
        require(token_ == address(_token) && msg.sender == token_, "wrong-token");
        require(data.length == 0, "Dragon: unsupported operation");
        _deposit(sender, amount, sender);
        return true;
    }

    function _deposit(address from, uint256 amount, address target) private {
        require(target != address(0), "IexecEscrow: mint to the zero address");
        require(_token.transferFrom(from, address(this), amount), "failed-transferFrom");
        uint256 supply = _totalSupply + amount;
        require(supply <= type(uint128).max, "Dragon: supply overflow");
        _totalSupply = supply;
        unchecked {
            _accounts[target].stake += uint128(amount);
        }
        emit Transfer(address(0), target, amount);
    }

    function _withdraw(address from, uint256 amount, address to) private {
        AccountStore storage acc = _accounts[from];
        uint256 stake = acc.stake;
        require(amount <= stake, "IexecEscrow: burn amount exceeds balance");
        unchecked {
            acc.stake = uint128(stake - amount);
            _totalSupply -= amount;
        }
        emit Transfer(from, address(0), amount);
        require(_token.transfer(to, amount), "failed-transfer");
    }

    /// RLC sent to the hub without a deposit (plain transfers) is credited to the owner, as in PoCo.
    function recover() external onlyOwner returns (uint256 delta) {
        delta = _token.balanceOf(address(this)) - _totalSupply;
        uint256 supply = _totalSupply + delta;
        require(supply <= type(uint128).max, "Dragon: supply overflow");
        _totalSupply = supply;
        unchecked {
            _accounts[msg.sender].stake += uint128(delta);
        }
        emit Transfer(address(0), msg.sender, delta);
    }

    // ERC-20 over the unlocked stake, as PoCo's IexecERC20.

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = _allowances[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "ERC20: insufficient allowance");
            _approve(from, msg.sender, allowed - value);
        }
        _transfer(from, to, value);
        return true;
    }

    function increaseAllowance(address spender, uint256 added) external returns (bool) {
        _approve(msg.sender, spender, _allowances[msg.sender][spender] + added);
        return true;
    }

    function decreaseAllowance(address spender, uint256 subtracted) external returns (bool) {
        _approve(msg.sender, spender, _allowances[msg.sender][spender] - subtracted);
        return true;
    }

    function _approve(address holder, address spender, uint256 value) private {
        require(holder != address(0) && spender != address(0), "ERC20: approve zero address");
        _allowances[holder][spender] = value;
        emit Approval(holder, spender, value);
    }

    function _transfer(address from, address to, uint256 value) private {
        require(to != address(0), "IexecEscrow: Transfer to empty address");
        AccountStore storage f = _accounts[from];
        uint256 stake = f.stake;
        require(value <= stake, "IexecEscrow: Transfer amount exceeds balance");
        unchecked {
            f.stake = uint128(stake - value);
            _accounts[to].stake += uint128(value);
        }
        emit Transfer(from, to, value);
    }

    // =====================================================================================================
    // Views
    // =====================================================================================================

    function token() external view returns (address) {
        return address(_token);
    }

    function appregistry() external view returns (address) {
        return address(_appregistry);
    }

    function datasetregistry() external view returns (address) {
        return address(_datasetregistry);
    }

    function workerpoolregistry() external view returns (address) {
        return address(_workerpoolregistry);
    }

    /// Dragon: the task module this hub delegates PoCo2 calls to.
    function tasksModule() external view returns (address) {
        return _tasksModule;
    }

    function name() external pure returns (string memory) {
        return "Staked RLC";
    }

    function symbol() external pure returns (string memory) {
        return "SRLC";
    }

    function decimals() external pure returns (uint8) {
        return 9;
    }

    function totalSupply() external view returns (uint256) {
        return _totalSupply;
    }

    function balanceOf(address account) external view returns (uint256) {
        return _accounts[account].stake;
    }

    function frozenOf(address account) external view returns (uint256) {
        return _accounts[account].locked;
    }

    function allowance(address holder, address spender) external view returns (uint256) {
        return _allowances[holder][spender];
    }

    function viewAccount(address account) external view returns (IexecLibCore_v5.Account memory) {
        AccountStore memory a = _accounts[account];
        return IexecLibCore_v5.Account(a.stake, a.locked);
    }

    function viewConsumed(bytes32 id) external view returns (uint256) {
        return _consumed[id];
    }

    function viewPresigned(bytes32 id) external view returns (address) {
        return _presigned[id];
    }

    function viewDeal(bytes32 id) external view returns (IexecLibCore_v5.Deal memory) {
        return _viewDeal(id);
    }

    // PoCo's constant accessors.

    function contribution_deadline_ratio() external pure returns (uint256) {
        return CONTRIBUTION_DEADLINE_RATIO;
    }

    function reveal_deadline_ratio() external pure returns (uint256) {
        return REVEAL_DEADLINE_RATIO;
    }

    function final_deadline_ratio() external pure returns (uint256) {
        return FINAL_DEADLINE_RATIO;
    }

    function workerpool_stake_ratio() external pure returns (uint256) {
        return WORKERPOOL_STAKE_RATIO;
    }

    function kitty_ratio() external pure returns (uint256) {
        return KITTY_RATIO;
    }

    function kitty_min() external pure returns (uint256) {
        return KITTY_MIN;
    }

    function kitty_address() external pure returns (address) {
        return KITTY_ADDRESS;
    }

    function groupmember_purpose() external pure returns (uint256) {
        return GROUPMEMBER_PURPOSE;
    }

    function callbackgas() external pure returns (uint256) {
        return CALLBACK_GAS;
    }

    function teebroker() external pure returns (address) {
        return address(0);
    }
}
