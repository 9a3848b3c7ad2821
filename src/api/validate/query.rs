//! Query strings: read as Node reads them, then each declared parameter checked in yup's order; the peer's
//! paging and `chainId`.

use super::*;

/// A query string as Node's `querystring` reads it: `+` is a space, `%xx` is decoded, a key given twice makes
/// an array.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query_string: &str) -> Query {
        let pairs: Vec<(String, String)> =
            actix_web::web::Query::<Vec<(String, String)>>::from_query(query_string).map(|q| q.0).unwrap_or_default();
        Query(pairs)
    }

    pub fn get(&self, name: &str) -> Input<'_> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        match (values.next(), values.next()) {
            (None, _) => Input::Absent,
            (Some(v), None) => Input::Text(Cow::Borrowed(v)),
            (Some(a), Some(b)) => {
                let mut all = vec![a.clone(), b.clone()];
                all.extend(values.cloned());
                Input::Repeated(all)
            }
        }
    }
}

/// How a query parameter is read.
#[derive(Debug, Clone, Copy)]
pub enum Param {
    Address,
    AddressOrAny,
    /// An address or `any`, required unless the named parameter is given, with this message.
    AddressOrAnyUnless(&'static str, &'static str),
    Bytes32,
    Bool,
    /// An integer between the two bounds.
    Int(u64, u64),
    /// An address or a 32-byte hash, 0x-hex.
    AddressOrHash,
}

/// A validated query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Address(Address),
    AddressOrAny(AddressOrAny),
    Bytes32(B256),
    Bool(bool),
    Int(u64),
    Text(String),
}

/// The validated parameters of a query (those given).
#[derive(Debug, Default)]
pub struct Params(Vec<(&'static str, Value)>);

impl Params {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn address(&self, name: &str) -> Option<Address> {
        match self.get(name) {
            Some(Value::Address(a)) => Some(*a),
            _ => None,
        }
    }

    pub fn address_or_any(&self, name: &str) -> Option<AddressOrAny> {
        match self.get(name) {
            Some(Value::AddressOrAny(a)) => Some(*a),
            _ => None,
        }
    }

    pub fn bytes32(&self, name: &str) -> Option<B256> {
        match self.get(name) {
            Some(Value::Bytes32(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }
}

/// Validates the parameters `spec` declares (others are ignored, as yup ignores them), in yup's order: the last
/// declared first. A parameter named in `required` must be given.
pub fn params(q: &Query, spec: &[(&'static str, Param)], required: &[&str]) -> Result<Params, String> {
    let mut out = Params::default();
    for (name, p) in spec.iter().rev() {
        let v = q.get(name);
        let must = required.contains(name);
        let value = match *p {
            Param::Address => address(name, &v, must)?.map(Value::Address),
            Param::AddressOrAny => address_or_any(name, &v, must)?.map(Value::AddressOrAny),
            Param::AddressOrAnyUnless(other, message) => {
                let given = out.get(other).is_some();
                match (&v, given) {
                    (Input::Absent, false) => return Err(message.to_owned()),
                    _ => address_or_any(name, &v, false)?.map(Value::AddressOrAny),
                }
            }
            Param::Bytes32 => bytes32(name, &v, must)?.map(Value::Bytes32),
            Param::Bool => boolean(name, &v, must)?.map(Value::Bool),
            Param::Int(min, max) => integer(name, &v, must, min, max)?.map(Value::Int),
            Param::AddressOrHash => match string(name, &v, must)? {
                None => None,
                Some(s) => {
                    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or("");
                    let ok = matches!(hex.len(), 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit());
                    if !ok {
                        return Err(format!(
                            "{name} must be an address (0x and 40 hex digits) or a hash (0x and 64 hex digits)"
                        ));
                    }
                    Some(Value::Text(s))
                }
            },
        };
        if let Some(value) = value {
            out.0.push((name, value));
        }
    }
    Ok(out)
}

/// The peer's paging: `pageIndex` and `pageSize` (default 20); without either, the legacy `page` is an offset.
/// Returns `(skip, limit)`.
pub fn paging(p: &Params) -> (u64, u64) {
    let (index, size) = (p.int("pageIndex"), p.int("pageSize"));
    if index.is_some() || size.is_some() {
        let limit = size.unwrap_or(DEFAULT_PAGE_SIZE);
        (limit.saturating_mul(index.unwrap_or(0)), limit)
    } else {
        (p.int("page").unwrap_or(0), DEFAULT_PAGE_SIZE)
    }
}

/// The peer's `nextPage`: present when the page came back full, the offset of the next one.
pub fn next_page(skip: u64, limit: u64, returned: usize) -> Option<u64> {
    (returned as u64 == limit).then(|| skip.saturating_add(limit))
}

pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// The paging parameters of every listing, as the peer declares them (after the filters).
pub const PAGING: [(&str, Param); 3] =
    [("page", Param::Int(0, MAX_SAFE)), ("pageIndex", Param::Int(0, MAX_SAFE)), ("pageSize", Param::Int(10, 1000))];

/// `chainId`: compared as text with the chain this server serves, as the peer compares it.
pub fn chain_id(q: &Query, served: u64) -> Result<String, String> {
    let v = q.get("chainId");
    let text = string("chainId", &v, false)?.ok_or_else(|| required("chainId"))?;
    if text == served.to_string() { Ok(text) } else { Err(format!("chainId {text} is not supported")) }
}
