//! A signed order of a request body, read field by field as the peer's `signed<Kind>orderSchema()` reads it.

use super::*;
use crate::money::Nrlc;

/// The largest value the order book holds in each uint field: the engine's u64, and the store's i64 for volumes
/// (iExec's bulk dataset volume, 2^53-1, fits).
fn uint_bound(field: &str) -> U256 {
    if field == "volume" { U256::from(i64::MAX as u64) } else { U256::from(u64::MAX) }
}

/// How a field of a signed order is checked (the peer's `signed<Kind>orderSchema()`).
#[derive(Debug, Clone, Copy)]
enum Rule {
    Address,
    /// A uint with its least value (volume: 1).
    Uint(u64),
    Bytes32,
    Sign,
    Params,
}

/// The fields of each kind, in the order the peer declares them (the salt and the signature come last).
fn order_fields(kind: crate::order::OrderKind) -> &'static [(&'static str, Rule)] {
    use crate::order::OrderKind as K;
    use Rule::*;
    match kind {
        K::App => &[
            ("app", Address),
            ("appprice", Uint(0)),
            ("volume", Uint(1)),
            ("tag", Bytes32),
            ("datasetrestrict", Address),
            ("workerpoolrestrict", Address),
            ("requesterrestrict", Address),
            ("salt", Bytes32),
            ("sign", Sign),
        ],
        K::Dataset => &[
            ("dataset", Address),
            ("datasetprice", Uint(0)),
            ("volume", Uint(1)),
            ("tag", Bytes32),
            ("apprestrict", Address),
            ("workerpoolrestrict", Address),
            ("requesterrestrict", Address),
            ("salt", Bytes32),
            ("sign", Sign),
        ],
        K::Workerpool => &[
            ("workerpool", Address),
            ("workerpoolprice", Uint(0)),
            ("volume", Uint(1)),
            ("tag", Bytes32),
            ("category", Uint(0)),
            ("trust", Uint(0)),
            ("apprestrict", Address),
            ("datasetrestrict", Address),
            ("requesterrestrict", Address),
            ("salt", Bytes32),
            ("sign", Sign),
        ],
        K::Request => &[
            ("app", Address),
            ("appmaxprice", Uint(0)),
            ("dataset", Address),
            ("datasetmaxprice", Uint(0)),
            ("workerpool", Address),
            ("workerpoolmaxprice", Uint(0)),
            ("requester", Address),
            ("volume", Uint(1)),
            ("tag", Bytes32),
            ("category", Uint(0)),
            ("trust", Uint(0)),
            ("beneficiary", Address),
            ("callback", Address),
            ("params", Params),
            ("salt", Bytes32),
            ("sign", Sign),
        ],
    }
}

/// A checked field's value.
enum Val {
    Address(Address),
    Uint(U256),
    Bytes32(B256),
    Sign(alloy::primitives::Bytes),
    Params(String),
}

/// Checks one field by its rule. `path` names it in the message of a failure.
fn checked(path: &str, rule: Rule, v: &Input<'_>) -> Result<Val, String> {
    Ok(match rule {
        Rule::Address => Val::Address(address(path, v, true)?.unwrap_or_default()),
        Rule::Uint(min) => {
            let field = path.rsplit('.').next().unwrap_or(path);
            Val::Uint(uint(path, v, min, uint_bound(field))?)
        }
        Rule::Bytes32 => Val::Bytes32(bytes32(path, v, true)?.unwrap_or_default()),
        Rule::Sign => {
            // Beyond the peer (its bug 4: an unanchored pattern let any text through to the chain call):
            // `0x` and whole bytes of hex, nothing else. `0x` alone is an order presigned on chain.
            let s = string(path, v, true)?.unwrap_or_default();
            let bytes = s
                .strip_prefix("0x")
                .filter(|h| h.len() % 2 == 0)
                .and_then(|h| alloy::hex::decode(h).ok())
                .ok_or_else(|| format!("{path} must be a valid signature"))?;
            Val::Sign(bytes.into())
        }
        // Optional for the peer, which then fails to hash the order (500); required here (400).
        Rule::Params => Val::Params(string(path, v, false)?.ok_or_else(|| required(path))?),
    })
}

/// Reads the signed order of `kind` at `path` of a request body as the peer validates it: the first error in
/// yup's order and words, unknown fields ignored, values normalised (checksummed addresses, lowercase hex,
/// exact integers).
pub fn signed_order(
    kind: crate::order::OrderKind,
    raw: Option<&RawValue>,
    path: &str,
) -> Result<crate::order::AnyOrder, String> {
    order(kind, raw, path, true)
}

/// Reads a draft order (`POST /explain`): as [`signed_order`], but without its signature (`sign` is ignored).
pub fn draft_order(
    kind: crate::order::OrderKind,
    raw: Option<&RawValue>,
    path: &str,
) -> Result<crate::order::AnyOrder, String> {
    order(kind, raw, path, false)
}

fn order(
    kind: crate::order::OrderKind,
    raw: Option<&RawValue>,
    path: &str,
    signed: bool,
) -> Result<crate::order::AnyOrder, String> {
    let input = Input::json(raw);
    let text = match &input {
        Input::Absent | Input::Null => return Err(required(path)),
        Input::Composite(text) if text.starts_with('{') => *text,
        other => return Err(not_type(path, "object", &other.printed(), other)),
    };
    // Fields borrowed from the body when their names need no unescaping (always, from real clients); owned
    // otherwise.
    if let Ok(fields) = serde_json::from_str::<std::collections::BTreeMap<&str, &RawValue>>(text) {
        return typed(kind, path, signed, |name| fields.get(name).copied());
    }
    let fields: std::collections::BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(text).map_err(|_| format!("{path} must be a `object` type"))?;
    typed(kind, path, signed, |name| fields.get(name).map(AsRef::as_ref))
}

/// Checks every field of `kind` (in the order of the peer's schema, so that the first failure is the peer's)
/// and builds the order from the checked values.
fn typed<'a>(
    kind: crate::order::OrderKind,
    path: &str,
    signed: bool,
    field: impl Fn(&str) -> Option<&'a RawValue>,
) -> Result<crate::order::AnyOrder, String> {
    use crate::order::{AnyOrder, AppOrder, DatasetOrder, OrderKind as K, RequestOrder, WorkerpoolOrder};
    let fields = order_fields(kind);
    let mut vals: Vec<Option<Val>> = (0..fields.len()).map(|_| None).collect();
    for (i, (name, rule)) in fields.iter().enumerate().rev() {
        if !signed && matches!(rule, Rule::Sign) {
            continue;
        }
        let input = Input::json(field(name));
        // The field's full path is only for the message of a failure: checked again with it then, which fails
        // the same way, so valid orders (nearly all) skip formatting a path per field.
        vals[i] = Some(checked(name, *rule, &input).or_else(|_| checked(&format!("{path}.{name}"), *rule, &input))?);
    }
    let mut v = Checked(vals.into_iter());
    Ok(match kind {
        K::App => AnyOrder::App(AppOrder {
            app: v.address(),
            appprice: Nrlc(v.uint()),
            volume: v.uint(),
            tag: v.bytes32(),
            datasetrestrict: v.address(),
            workerpoolrestrict: v.address(),
            requesterrestrict: v.address(),
            salt: v.bytes32(),
            sign: v.sign(),
        }),
        K::Dataset => AnyOrder::Dataset(DatasetOrder {
            dataset: v.address(),
            datasetprice: Nrlc(v.uint()),
            volume: v.uint(),
            tag: v.bytes32(),
            apprestrict: v.address(),
            workerpoolrestrict: v.address(),
            requesterrestrict: v.address(),
            salt: v.bytes32(),
            sign: v.sign(),
        }),
        K::Workerpool => AnyOrder::Workerpool(WorkerpoolOrder {
            workerpool: v.address(),
            workerpoolprice: Nrlc(v.uint()),
            volume: v.uint(),
            tag: v.bytes32(),
            category: v.uint(),
            trust: v.uint(),
            apprestrict: v.address(),
            datasetrestrict: v.address(),
            requesterrestrict: v.address(),
            salt: v.bytes32(),
            sign: v.sign(),
        }),
        K::Request => AnyOrder::Request(RequestOrder {
            app: v.address(),
            appmaxprice: Nrlc(v.uint()),
            dataset: v.address(),
            datasetmaxprice: Nrlc(v.uint()),
            workerpool: v.address(),
            workerpoolmaxprice: Nrlc(v.uint()),
            requester: v.address(),
            volume: v.uint(),
            tag: v.bytes32(),
            category: v.uint(),
            trust: v.uint(),
            beneficiary: v.address(),
            callback: v.address(),
            params: v.params(),
            salt: v.bytes32(),
            sign: v.sign(),
        }),
    })
}

/// The checked values of one order, taken in the order `order_fields` declares them (struct literals evaluate
/// their fields in the order written, which is that order). A value of another rule cannot occur at a position.
struct Checked(std::vec::IntoIter<Option<Val>>);

impl Checked {
    fn next(&mut self) -> Option<Val> {
        self.0.next().flatten()
    }
    fn address(&mut self) -> Address {
        match self.next() {
            Some(Val::Address(a)) => a,
            _ => Address::ZERO,
        }
    }
    fn uint(&mut self) -> U256 {
        match self.next() {
            Some(Val::Uint(u)) => u,
            _ => U256::ZERO,
        }
    }
    fn bytes32(&mut self) -> B256 {
        match self.next() {
            Some(Val::Bytes32(b)) => b,
            _ => B256::ZERO,
        }
    }
    /// `None` for a draft, whose signature is not read.
    fn sign(&mut self) -> Option<alloy::primitives::Bytes> {
        match self.next() {
            Some(Val::Sign(b)) => Some(b),
            _ => None,
        }
    }
    fn params(&mut self) -> String {
        match self.next() {
            Some(Val::Params(p)) => p,
            _ => String::new(),
        }
    }
}
