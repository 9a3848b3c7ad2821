//! The EIP-712 side of PoCo orders: the `sol!` structs whose derived type strings are exactly PoCo's
//! (`sign` is not part of them), the `iExecODB` domain, and the order hash.

use super::OrderKind;
use crate::ids::OrderHash;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::sol_types::{Eip712Domain, SolStruct};

alloy::sol! {
    struct AppOrder {
        address app;
        uint256 appprice;
        uint256 volume;
        bytes32 tag;
        address datasetrestrict;
        address workerpoolrestrict;
        address requesterrestrict;
        bytes32 salt;
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
    }
}

/// PoCo's EIP-712 domain for one chain and hub: `{name: "iExecODB", version: "5.0.0", chainId, verifyingContract}`.
/// The separator is computed once here because every order hash needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub chain_id: U256,
    pub hub: Address,
    separator: B256,
}

impl Domain {
    pub const NAME: &'static str = "iExecODB";
    pub const VERSION: &'static str = "5.0.0";

    pub fn new(chain_id: U256, hub: Address) -> Self {
        let eip712 =
            Eip712Domain::new(Some(Self::NAME.into()), Some(Self::VERSION.into()), Some(chain_id), Some(hub), None);
        Domain { chain_id, hub, separator: eip712.separator() }
    }

    pub fn separator(&self) -> B256 {
        self.separator
    }

    /// The typed-data digest `keccak256(0x1901 ‖ domainSeparator ‖ structHash)`: PoCo's order id.
    pub fn order_hash(&self, struct_hash: B256) -> OrderHash {
        let mut buf = [0u8; 66];
        buf[..2].copy_from_slice(&[0x19, 0x01]);
        buf[2..34].copy_from_slice(self.separator.as_slice());
        buf[34..].copy_from_slice(struct_hash.as_slice());
        OrderHash(keccak256(buf))
    }
}

/// The EIP-712 type string of each kind, as derived from the structs above (and checked against PoCo's in tests).
pub fn type_string(kind: OrderKind) -> String {
    match kind {
        OrderKind::App => AppOrder::eip712_encode_type().into_owned(),
        OrderKind::Dataset => DatasetOrder::eip712_encode_type().into_owned(),
        OrderKind::Workerpool => WorkerpoolOrder::eip712_encode_type().into_owned(),
        OrderKind::Request => RequestOrder::eip712_encode_type().into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_are_pocos() {
        assert_eq!(
            type_string(OrderKind::App),
            "AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
        );
        assert_eq!(
            type_string(OrderKind::Dataset),
            "DatasetOrder(address dataset,uint256 datasetprice,uint256 volume,bytes32 tag,address apprestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
        );
        assert_eq!(
            type_string(OrderKind::Workerpool),
            "WorkerpoolOrder(address workerpool,uint256 workerpoolprice,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address apprestrict,address datasetrestrict,address requesterrestrict,bytes32 salt)"
        );
        assert_eq!(
            type_string(OrderKind::Request),
            "RequestOrder(address app,uint256 appmaxprice,address dataset,uint256 datasetmaxprice,address workerpool,uint256 workerpoolmaxprice,address requester,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address beneficiary,address callback,string params,bytes32 salt)"
        );
    }

    #[test]
    fn domain_separator_follows_eip712() {
        // keccak256(abi.encode(typeHash, keccak(name), keccak(version), chainId, hub)), spelled out by hand.
        let hub = Address::repeat_byte(0x11);
        let d = Domain::new(U256::from(134), hub);
        let type_hash = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
        let mut enc = Vec::new();
        enc.extend_from_slice(type_hash.as_slice());
        enc.extend_from_slice(keccak256("iExecODB").as_slice());
        enc.extend_from_slice(keccak256("5.0.0").as_slice());
        enc.extend_from_slice(&U256::from(134).to_be_bytes::<32>());
        enc.extend_from_slice(&[0u8; 12]);
        enc.extend_from_slice(hub.as_slice());
        assert_eq!(d.separator(), keccak256(enc));
        assert_ne!(Domain::new(U256::from(1), hub).separator(), d.separator());
    }
}
