//! A signed order of a request body, read field by field as the peer's `signed<Kind>orderSchema()` reads it.

use super::*;

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

/// A checked field's value, in the JSON form the order types read.
fn checked(path: &str, rule: Rule, v: &Input<'_>) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match rule {
        Rule::Address => J::String(format!("{:#x}", address(path, v, true)?.unwrap_or_default())),
        Rule::Uint(min) => {
            let field = path.rsplit('.').next().unwrap_or(path);
            J::String(uint(path, v, min, uint_bound(field))?.to_string())
        }
        Rule::Bytes32 => J::String(format!("{:#x}", bytes32(path, v, true)?.unwrap_or_default())),
        Rule::Sign => {
            // Beyond the peer (its bug 4: an unanchored pattern let any text through to the chain call):
            // `0x` and whole bytes of hex, nothing else. `0x` alone is an order presigned on chain.
            let s = string(path, v, true)?.unwrap_or_default();
            let hex = s.strip_prefix("0x").filter(|h| h.len() % 2 == 0 && h.bytes().all(|b| b.is_ascii_hexdigit()));
            J::String(
                hex.map(|h| format!("0x{}", h.to_ascii_lowercase()))
                    .ok_or_else(|| format!("{path} must be a valid signature"))?,
            )
        }
        // Optional for the peer, which then fails to hash the order (500); required here (400).
        Rule::Params => J::String(string(path, v, false)?.ok_or_else(|| required(path))?),
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
    let fields: std::collections::BTreeMap<String, Box<RawValue>> = match &input {
        Input::Absent | Input::Null => return Err(required(path)),
        Input::Composite(text) if text.starts_with('{') => {
            serde_json::from_str(text).map_err(|_| format!("{path} must be a `object` type"))?
        }
        other => return Err(not_type(path, "object", &other.printed(), other)),
    };
    // The checked fields are written straight into the JSON text the order types read (no map in between).
    let mut text = String::with_capacity(1024);
    text.push('{');
    for (name, rule) in order_fields(kind).iter().rev() {
        if !signed && matches!(rule, Rule::Sign) {
            continue;
        }
        let input = Input::json(fields.get(*name).map(AsRef::as_ref));
        // The field's full path is only for the message of a failure: checked again with it then, which fails
        // the same way, so valid orders (nearly all) skip formatting a path per field.
        let v = checked(name, *rule, &input).or_else(|_| checked(&format!("{path}.{name}"), *rule, &input))?;
        if text.len() > 1 {
            text.push(',');
        }
        text.push('"');
        text.push_str(name);
        text.push_str("\":");
        text.push_str(&v.to_string());
    }
    text.push('}');
    crate::order::AnyOrder::from_json(kind, &text).map_err(|e| format!("{path}: {e}"))
}
