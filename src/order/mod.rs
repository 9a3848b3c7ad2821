//! PoCo's four signed orders, bit-compatible with iExec: the same fields and JSON names as the SDK and market
//! API ([`json`]), the same EIP-712 types, domain and order hash ([`typed`]), and the same signature rules
//! ([`signature`]). [`login`] is the market API's signed login challenge, computed by the exchange and its clients
//! alike.
//!
//! The JSON structs here are what users write and read; [`PocoOrder::typed`] turns one into its `sol!` twin,
//! whose derived EIP-712 encoding gives the struct hash.

pub mod convert;
pub use crate::wire::json;
pub mod login;
pub mod record;
pub mod recoverer;
pub mod signature;
pub mod typed;

/// A fresh random salt: each order signed with one is a new order, never the replay of an earlier one.
pub fn fresh_salt() -> Result<B256, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(B256::from(b))
}

use crate::ids::OrderHash;
use crate::money::Nrlc;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolStruct;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::fmt;
pub use typed::Domain;

/// The four kinds of PoCo orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    App,
    Dataset,
    Workerpool,
    Request,
}

impl OrderKind {
    pub const ALL: [OrderKind; 4] = [OrderKind::App, OrderKind::Dataset, OrderKind::Workerpool, OrderKind::Request];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::App => "app",
            OrderKind::Dataset => "dataset",
            OrderKind::Workerpool => "workerpool",
            OrderKind::Request => "request",
        }
    }
}

impl fmt::Display for OrderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An app owner's offer to run its app, with restrictions on who may use it with what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppOrder {
    #[serde(with = "json::address")]
    pub app: Address,
    pub appprice: Nrlc,
    #[serde(with = "json::u256")]
    pub volume: U256,
    #[serde(with = "json::bytes32")]
    pub tag: B256,
    #[serde(with = "json::address")]
    pub datasetrestrict: Address,
    #[serde(with = "json::address")]
    pub workerpoolrestrict: Address,
    #[serde(with = "json::address")]
    pub requesterrestrict: Address,
    #[serde(with = "json::bytes32")]
    pub salt: B256,
    #[serde(default, with = "json::opt_bytes", skip_serializing_if = "Option::is_none")]
    pub sign: Option<Bytes>,
}

/// A dataset owner's offer to let its dataset be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetOrder {
    #[serde(with = "json::address")]
    pub dataset: Address,
    pub datasetprice: Nrlc,
    #[serde(with = "json::u256")]
    pub volume: U256,
    #[serde(with = "json::bytes32")]
    pub tag: B256,
    #[serde(with = "json::address")]
    pub apprestrict: Address,
    #[serde(with = "json::address")]
    pub workerpoolrestrict: Address,
    #[serde(with = "json::address")]
    pub requesterrestrict: Address,
    #[serde(with = "json::bytes32")]
    pub salt: B256,
    #[serde(default, with = "json::opt_bytes", skip_serializing_if = "Option::is_none")]
    pub sign: Option<Bytes>,
}

/// A worker pool's offer of computing time in one category, at one trust level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerpoolOrder {
    #[serde(with = "json::address")]
    pub workerpool: Address,
    pub workerpoolprice: Nrlc,
    #[serde(with = "json::u256")]
    pub volume: U256,
    #[serde(with = "json::bytes32")]
    pub tag: B256,
    #[serde(with = "json::u256")]
    pub category: U256,
    #[serde(with = "json::u256")]
    pub trust: U256,
    #[serde(with = "json::address")]
    pub apprestrict: Address,
    #[serde(with = "json::address")]
    pub datasetrestrict: Address,
    #[serde(with = "json::address")]
    pub requesterrestrict: Address,
    #[serde(with = "json::bytes32")]
    pub salt: B256,
    #[serde(default, with = "json::opt_bytes", skip_serializing_if = "Option::is_none")]
    pub sign: Option<Bytes>,
}

/// A requester's bid: run this app (on this dataset) at most at these prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestOrder {
    #[serde(with = "json::address")]
    pub app: Address,
    pub appmaxprice: Nrlc,
    #[serde(with = "json::address")]
    pub dataset: Address,
    pub datasetmaxprice: Nrlc,
    #[serde(with = "json::address")]
    pub workerpool: Address,
    pub workerpoolmaxprice: Nrlc,
    #[serde(with = "json::address")]
    pub requester: Address,
    #[serde(with = "json::u256")]
    pub volume: U256,
    #[serde(with = "json::bytes32")]
    pub tag: B256,
    #[serde(with = "json::u256")]
    pub category: U256,
    #[serde(with = "json::u256")]
    pub trust: U256,
    #[serde(with = "json::address")]
    pub beneficiary: Address,
    #[serde(with = "json::address")]
    pub callback: Address,
    pub params: String,
    #[serde(with = "json::bytes32")]
    pub salt: B256,
    #[serde(default, with = "json::opt_bytes", skip_serializing_if = "Option::is_none")]
    pub sign: Option<Bytes>,
}

/// What the four order kinds share: a JSON form, an EIP-712 twin, and a signature slot.
pub trait PocoOrder: Serialize + DeserializeOwned + Clone {
    const KIND: OrderKind;
    type Typed: SolStruct;

    fn typed(&self) -> Self::Typed;
    fn sign(&self) -> Option<&Bytes>;
    fn set_sign(&mut self, sign: Bytes);

    /// `hashStruct` as alloy's `eip712_hash_struct`, with the type hash computed once per kind: alloy hashes the
    /// type's text again on every call, which was a third of the hashing per published order.
    fn struct_hash(&self) -> B256 {
        // One static for all kinds (a static in a generic function is shared), indexed by kind.
        static TYPE_HASHES: [std::sync::OnceLock<B256>; 4] = [const { std::sync::OnceLock::new() }; 4];
        let type_hash = TYPE_HASHES[Self::KIND as usize]
            .get_or_init(|| alloy::primitives::keccak256(Self::Typed::eip712_encode_type().as_bytes()));
        let mut hasher = alloy::primitives::Keccak256::new();
        hasher.update(type_hash);
        hasher.update(self.typed().eip712_encode_data());
        hasher.finalize()
    }

    fn order_hash(&self, domain: &Domain) -> OrderHash {
        domain.order_hash(self.struct_hash())
    }
}

/// The `sign` accessors, the same for every kind.
macro_rules! sign_slot {
    () => {
        fn sign(&self) -> Option<&Bytes> {
            self.sign.as_ref()
        }
        fn set_sign(&mut self, sign: Bytes) {
            self.sign = Some(sign);
        }
    };
}

impl PocoOrder for AppOrder {
    const KIND: OrderKind = OrderKind::App;
    type Typed = typed::AppOrder;

    fn typed(&self) -> typed::AppOrder {
        typed::AppOrder {
            app: self.app,
            appprice: self.appprice.0,
            volume: self.volume,
            tag: self.tag,
            datasetrestrict: self.datasetrestrict,
            workerpoolrestrict: self.workerpoolrestrict,
            requesterrestrict: self.requesterrestrict,
            salt: self.salt,
        }
    }
    sign_slot!();
}

impl PocoOrder for DatasetOrder {
    const KIND: OrderKind = OrderKind::Dataset;
    type Typed = typed::DatasetOrder;

    fn typed(&self) -> typed::DatasetOrder {
        typed::DatasetOrder {
            dataset: self.dataset,
            datasetprice: self.datasetprice.0,
            volume: self.volume,
            tag: self.tag,
            apprestrict: self.apprestrict,
            workerpoolrestrict: self.workerpoolrestrict,
            requesterrestrict: self.requesterrestrict,
            salt: self.salt,
        }
    }
    sign_slot!();
}

impl PocoOrder for WorkerpoolOrder {
    const KIND: OrderKind = OrderKind::Workerpool;
    type Typed = typed::WorkerpoolOrder;

    fn typed(&self) -> typed::WorkerpoolOrder {
        typed::WorkerpoolOrder {
            workerpool: self.workerpool,
            workerpoolprice: self.workerpoolprice.0,
            volume: self.volume,
            tag: self.tag,
            category: self.category,
            trust: self.trust,
            apprestrict: self.apprestrict,
            datasetrestrict: self.datasetrestrict,
            requesterrestrict: self.requesterrestrict,
            salt: self.salt,
        }
    }
    sign_slot!();
}

impl PocoOrder for RequestOrder {
    const KIND: OrderKind = OrderKind::Request;
    type Typed = typed::RequestOrder;

    fn typed(&self) -> typed::RequestOrder {
        typed::RequestOrder {
            app: self.app,
            appmaxprice: self.appmaxprice.0,
            dataset: self.dataset,
            datasetmaxprice: self.datasetmaxprice.0,
            workerpool: self.workerpool,
            workerpoolmaxprice: self.workerpoolmaxprice.0,
            requester: self.requester,
            volume: self.volume,
            tag: self.tag,
            category: self.category,
            trust: self.trust,
            beneficiary: self.beneficiary,
            callback: self.callback,
            params: self.params.clone(),
            salt: self.salt,
        }
    }
    sign_slot!();
}

/// A bad order document: the field at fault (when there is one) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct OrderJsonError {
    pub field: Option<String>,
    pub message: String,
}

/// Reads one order of a known kind from JSON text, naming the offending field on error.
pub fn from_json<O: PocoOrder>(text: &str) -> Result<O, OrderJsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let order = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        OrderJsonError { field: (path != "." && !path.is_empty()).then_some(path), message: e.into_inner().to_string() }
    })?;
    de.end().map_err(|e| OrderJsonError { field: None, message: e.to_string() })?;
    Ok(order)
}

/// An order of any kind, for tools that take the kind as an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyOrder {
    App(AppOrder),
    Dataset(DatasetOrder),
    Workerpool(WorkerpoolOrder),
    Request(RequestOrder),
}

/// Applies one expression to whichever order an [`AnyOrder`] holds.
macro_rules! each {
    ($any:expr, $o:ident => $body:expr) => {
        match $any {
            AnyOrder::App($o) => $body,
            AnyOrder::Dataset($o) => $body,
            AnyOrder::Workerpool($o) => $body,
            AnyOrder::Request($o) => $body,
        }
    };
}

impl AnyOrder {
    pub fn from_json(kind: OrderKind, text: &str) -> Result<Self, OrderJsonError> {
        Ok(match kind {
            OrderKind::App => AnyOrder::App(from_json(text)?),
            OrderKind::Dataset => AnyOrder::Dataset(from_json(text)?),
            OrderKind::Workerpool => AnyOrder::Workerpool(from_json(text)?),
            OrderKind::Request => AnyOrder::Request(from_json(text)?),
        })
    }

    pub fn kind(&self) -> OrderKind {
        match self {
            AnyOrder::App(_) => OrderKind::App,
            AnyOrder::Dataset(_) => OrderKind::Dataset,
            AnyOrder::Workerpool(_) => OrderKind::Workerpool,
            AnyOrder::Request(_) => OrderKind::Request,
        }
    }

    pub fn order_hash(&self, domain: &Domain) -> OrderHash {
        each!(self, o => o.order_hash(domain))
    }

    pub fn sign(&self) -> Option<&Bytes> {
        each!(self, o => o.sign())
    }

    /// The volume the order declares (what remains of it is chain state).
    pub fn volume(&self) -> U256 {
        each!(self, o => o.volume)
    }

    pub fn set_sign(&mut self, sign: Bytes) {
        each!(self, o => o.set_sign(sign))
    }

    /// Signs the order as `key` in `domain` (EIP-712, as iExec's tools do); returns its hash.
    pub fn sign_with(
        &mut self,
        domain: &Domain,
        key: &alloy::signers::local::PrivateKeySigner,
    ) -> Result<OrderHash, alloy::signers::Error> {
        let hash = self.order_hash(domain);
        self.set_sign(signature::sign_digest(key, &hash.0)?);
        Ok(hash)
    }

    /// The order's JSON text (the SDK's form), for storing and answering without building a `Value`.
    pub fn to_json_text(&self) -> String {
        // As in `to_json`: these plain structs always serialize.
        each!(self, o => serde_json::to_string(o).unwrap_or_default())
    }

    pub fn to_json(&self) -> serde_json::Value {
        // Serializing these plain structs cannot fail: every field has an infallible Serialize.
        each!(self, o => serde_json::to_value(o).unwrap_or_default())
    }
}

/// The free stake an order needs for its whole `remaining` volume, as the hub locks it at matching (PoCo: the
/// pool owner's stake is 30% of the workerpool price per task; the requester pays the three prices per
/// task). Zero for app and dataset orders. A PoCo rule of the order alone: publication checks it, and chain sync
/// and settlement failures close the orders whose owner no longer has it.
pub fn required_stake(order: &AnyOrder, remaining: U256) -> U256 {
    let per_task = match order {
        AnyOrder::Workerpool(o) => o.workerpoolprice.0.saturating_mul(U256::from(30)) / U256::from(100),
        AnyOrder::Request(o) => {
            o.appmaxprice.0.saturating_add(o.datasetmaxprice.0).saturating_add(o.workerpoolmaxprice.0)
        }
        _ => return U256::ZERO,
    };
    per_task.saturating_mul(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"{"app":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed","appprice":"1000","volume":7,
        "tag":"0x0000000000000000000000000000000000000000000000000000000000000001",
        "datasetrestrict":"0x0000000000000000000000000000000000000000",
        "workerpoolrestrict":"0x0000000000000000000000000000000000000000",
        "requesterrestrict":"0x0000000000000000000000000000000000000000",
        "salt":"0x00000000000000000000000000000000000000000000000000000000000000ff"}"#;

    /// The cached type hash gives alloy's own `hashStruct`, for every kind (iExec's tools check whole order
    /// hashes in the SDK and chain tests).
    #[test]
    fn struct_hash_is_alloys_eip712_hash_struct() {
        let a = Address::repeat_byte(7);
        let w = |s: u8| B256::repeat_byte(s);
        let app = AppOrder {
            app: a,
            appprice: Nrlc::from_u64(3),
            volume: U256::from(2),
            tag: w(1),
            datasetrestrict: a,
            workerpoolrestrict: a,
            requesterrestrict: a,
            salt: w(2),
            sign: None,
        };
        assert_eq!(app.struct_hash(), app.typed().eip712_hash_struct());
        let dataset = DatasetOrder {
            dataset: a,
            datasetprice: Nrlc::from_u64(3),
            volume: U256::from(2),
            tag: w(1),
            apprestrict: a,
            workerpoolrestrict: a,
            requesterrestrict: a,
            salt: w(3),
            sign: None,
        };
        assert_eq!(dataset.struct_hash(), dataset.typed().eip712_hash_struct());
        let pool = WorkerpoolOrder {
            workerpool: a,
            workerpoolprice: Nrlc::from_u64(3),
            volume: U256::from(2),
            tag: w(1),
            category: U256::from(1),
            trust: U256::from(4),
            apprestrict: a,
            datasetrestrict: a,
            requesterrestrict: a,
            salt: w(4),
            sign: None,
        };
        assert_eq!(pool.struct_hash(), pool.typed().eip712_hash_struct());
        let request = RequestOrder {
            app: a,
            appmaxprice: Nrlc::from_u64(3),
            dataset: a,
            datasetmaxprice: Nrlc::from_u64(1),
            workerpool: a,
            workerpoolmaxprice: Nrlc::from_u64(9),
            requester: a,
            volume: U256::from(2),
            tag: w(1),
            category: U256::from(1),
            trust: U256::from(4),
            beneficiary: a,
            callback: a,
            params: "{\"iexec_args\":\"x\"}".into(),
            salt: w(5),
            sign: None,
        };
        assert_eq!(request.struct_hash(), request.typed().eip712_hash_struct());
        // Each kind its own type hash, even when asked in another order.
        assert_eq!(app.struct_hash(), app.typed().eip712_hash_struct());
    }

    #[test]
    fn json_round_trip_prints_sdk_form() {
        let o: AppOrder = from_json(APP).expect("valid order");
        assert_eq!(o.volume, U256::from(7));
        let out = serde_json::to_value(&o).expect("serializes");
        assert_eq!(out["app"], "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        assert_eq!(out["appprice"], "1000");
        assert_eq!(out["volume"], "7");
        assert!(out.get("sign").is_none());
        let again: AppOrder = from_json(&out.to_string()).expect("reparses");
        assert_eq!(again, o);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = APP.replace("\"1000\"", "\"-5\"");
        let e = from_json::<AppOrder>(&bad).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("appprice"), "{e}");

        let unknown = APP.replace("\"volume\"", "\"volumes\"");
        let e = from_json::<AppOrder>(&unknown).unwrap_err();
        assert!(e.to_string().contains("volumes"), "{e}");

        let missing = APP.replace("\"volume\":7,", "");
        let e = from_json::<AppOrder>(&missing).unwrap_err();
        assert!(e.to_string().contains("missing field `volume`"), "{e}");

        let e = from_json::<AppOrder>(&format!("{APP} {{}}")).unwrap_err();
        assert!(e.to_string().contains("trailing"), "{e}");
    }

    #[test]
    fn sign_is_not_hashed() {
        let domain = Domain::new(U256::from(1), Address::ZERO);
        let mut o: AppOrder = from_json(APP).expect("valid order");
        let h = o.order_hash(&domain);
        o.set_sign(Bytes::from(vec![1u8; 65]));
        assert_eq!(o.order_hash(&domain), h);
        o.salt = B256::ZERO;
        assert_ne!(o.order_hash(&domain), h);
    }
}
