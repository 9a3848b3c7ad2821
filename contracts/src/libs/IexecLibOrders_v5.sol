// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title iExec PoCo v5 orders: ABI shapes and EIP-712 struct hashes.
/// @notice The struct layouts are those of PoCo (clients ABI-encode them); the `sign` fields are not hashed.
/// Hashing is done with inline assembly over calldata-copied memory words: identical results to
/// `keccak256(abi.encode(TYPEHASH, fields...))`, without abi.encode's per-field overhead.
library IexecLibOrders_v5 {
    bytes32 internal constant EIP712DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant APPORDER_TYPEHASH = keccak256(
        "AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 internal constant DATASETORDER_TYPEHASH = keccak256(
        "DatasetOrder(address dataset,uint256 datasetprice,uint256 volume,bytes32 tag,address apprestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 internal constant WORKERPOOLORDER_TYPEHASH = keccak256(
        "WorkerpoolOrder(address workerpool,uint256 workerpoolprice,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address apprestrict,address datasetrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 internal constant REQUESTORDER_TYPEHASH = keccak256(
        "RequestOrder(address app,uint256 appmaxprice,address dataset,uint256 datasetmaxprice,address workerpool,uint256 workerpoolmaxprice,address requester,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address beneficiary,address callback,string params,bytes32 salt)"
    );
    bytes32 internal constant APPORDEROPERATION_TYPEHASH = keccak256(
        "AppOrderOperation(AppOrder order,uint256 operation)AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 internal constant DATASETORDEROPERATION_TYPEHASH = keccak256(
        "DatasetOrderOperation(DatasetOrder order,uint256 operation)DatasetOrder(address dataset,uint256 datasetprice,uint256 volume,bytes32 tag,address apprestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 internal constant WORKERPOOLORDEROPERATION_TYPEHASH = keccak256(
        "WorkerpoolOrderOperation(WorkerpoolOrder order,uint256 operation)WorkerpoolOrder(address workerpool,uint256 workerpoolprice,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address apprestrict,address datasetrestrict,address requesterrestrict,bytes32 salt)"
    );
    bytes32 internal constant REQUESTORDEROPERATION_TYPEHASH = keccak256(
        "RequestOrderOperation(RequestOrder order,uint256 operation)RequestOrder(address app,uint256 appmaxprice,address dataset,uint256 datasetmaxprice,address workerpool,uint256 workerpoolmaxprice,address requester,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address beneficiary,address callback,string params,bytes32 salt)"
    );

    enum OrderOperationEnum {
        SIGN,
        CLOSE
    }

    struct EIP712Domain {
        string name;
        string version;
        uint256 chainId;
        address verifyingContract;
    }

    struct AppOrder {
        address app;
        uint256 appprice;
        uint256 volume;
        bytes32 tag;
        address datasetrestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct DatasetOrder {
        address dataset;
        uint256 datasetprice;
        uint256 volume;
        bytes32 tag;
        address apprestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct WorkerpoolOrder {
        address workerpool;
        uint256 workerpoolprice;
        uint256 volume;
        bytes32 tag;
        uint256 category;
        uint256 trust;
        address apprestrict;
        address datasetrestrict;
        address requesterrestrict;
        bytes32 salt;
        bytes sign;
    }

    struct RequestOrder {
        address app;
        uint256 appmaxprice;
        address dataset;
        uint256 datasetmaxprice;
        address workerpool;
        uint256 workerpoolmaxprice;
        address requester;
        uint256 volume;
        bytes32 tag;
        uint256 category;
        uint256 trust;
        address beneficiary;
        address callback;
        string params;
        bytes32 salt;
        bytes sign;
    }

    struct AppOrderOperation {
        AppOrder order;
        OrderOperationEnum operation;
        bytes sign;
    }

    struct DatasetOrderOperation {
        DatasetOrder order;
        OrderOperationEnum operation;
        bytes sign;
    }

    struct WorkerpoolOrderOperation {
        WorkerpoolOrder order;
        OrderOperationEnum operation;
        bytes sign;
    }

    struct RequestOrderOperation {
        RequestOrder order;
        OrderOperationEnum operation;
        bytes sign;
    }

    // The static head of an order in calldata is its fields in declaration order, one word each
    // (addresses are left-padded, exactly as abi.encode pads them). A struct hash is therefore
    // keccak256(typehash || first N head words): copy them after the typehash and hash.

    function hash(AppOrder calldata o) internal pure returns (bytes32 h) {
        bytes32 th = APPORDER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            calldatacopy(add(m, 0x20), o, 0x100) // 8 words
            h := keccak256(m, 0x120)
        }
    }

    function hash(DatasetOrder calldata o) internal pure returns (bytes32 h) {
        bytes32 th = DATASETORDER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            calldatacopy(add(m, 0x20), o, 0x100) // 8 words
            h := keccak256(m, 0x120)
        }
    }

    function hash(WorkerpoolOrder calldata o) internal pure returns (bytes32 h) {
        bytes32 th = WORKERPOOLORDER_TYPEHASH;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            calldatacopy(add(m, 0x20), o, 0x140) // 10 words
            h := keccak256(m, 0x160)
        }
    }

    function hash(RequestOrder calldata o) internal pure returns (bytes32 h) {
        bytes32 th = REQUESTORDER_TYPEHASH;
        bytes32 paramsHash = keccak256(bytes(o.params));
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, th)
            calldatacopy(add(m, 0x20), o, 0x1a0) // 13 words: app .. callback
            mstore(add(m, 0x1c0), paramsHash) // word 14: keccak256(params)
            mstore(add(m, 0x1e0), calldataload(add(o, 0x1c0))) // word 15: salt
            h := keccak256(m, 0x200)
        }
    }

    /// Reference implementations with abi.encode (used by tests to cross-check the assembly above).
    function hashRef(AppOrder memory o) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                APPORDER_TYPEHASH,
                o.app,
                o.appprice,
                o.volume,
                o.tag,
                o.datasetrestrict,
                o.workerpoolrestrict,
                o.requesterrestrict,
                o.salt
            )
        );
    }

    function hashRef(DatasetOrder memory o) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                DATASETORDER_TYPEHASH,
                o.dataset,
                o.datasetprice,
                o.volume,
                o.tag,
                o.apprestrict,
                o.workerpoolrestrict,
                o.requesterrestrict,
                o.salt
            )
        );
    }

    function hashRef(WorkerpoolOrder memory o) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                WORKERPOOLORDER_TYPEHASH,
                o.workerpool,
                o.workerpoolprice,
                o.volume,
                o.tag,
                o.category,
                o.trust,
                o.apprestrict,
                o.datasetrestrict,
                o.requesterrestrict,
                o.salt
            )
        );
    }

    function hashRef(RequestOrder memory o) internal pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                abi.encode(
                    REQUESTORDER_TYPEHASH,
                    o.app,
                    o.appmaxprice,
                    o.dataset,
                    o.datasetmaxprice,
                    o.workerpool,
                    o.workerpoolmaxprice
                ),
                abi.encode(
                    o.requester,
                    o.volume,
                    o.tag,
                    o.category,
                    o.trust,
                    o.beneficiary,
                    o.callback,
                    keccak256(bytes(o.params)),
                    o.salt
                )
            )
        );
    }

    function hash(AppOrderOperation calldata op) internal pure returns (bytes32) {
        return keccak256(abi.encode(APPORDEROPERATION_TYPEHASH, hash(op.order), op.operation));
    }

    function hash(DatasetOrderOperation calldata op) internal pure returns (bytes32) {
        return keccak256(abi.encode(DATASETORDEROPERATION_TYPEHASH, hash(op.order), op.operation));
    }

    function hash(WorkerpoolOrderOperation calldata op) internal pure returns (bytes32) {
        return keccak256(abi.encode(WORKERPOOLORDEROPERATION_TYPEHASH, hash(op.order), op.operation));
    }

    function hash(RequestOrderOperation calldata op) internal pure returns (bytes32) {
        return keccak256(abi.encode(REQUESTORDEROPERATION_TYPEHASH, hash(op.order), op.operation));
    }
}
