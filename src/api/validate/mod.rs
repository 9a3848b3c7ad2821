//! Request validation in the peer's words. iexec-market-api validates queries and bodies with `yup`, and its
//! clients match the messages yup writes (`chainId is a required field`, `pageSize must be greater than or
//! equal to 10`, `app is not a valid ethereum address`, ...). This module applies the same rules with the same
//! messages, without JavaScript:
//!
//! - values are read as the peer reads them, within what the OpenAPI document (JSON Schema) can say exactly:
//!   an integer is a decimal number whose value is an integer (`12`, `2.0`, `1e3`; an order's uint field in a
//!   string is decimal digits), a boolean is `true` or `false`. The peer also takes whatever JavaScript's
//!   `Number()` reads (`0x10`, ` 20 `, `Infinity`) and `1`, `0`, `TRUE` as booleans; Dragon refuses those with
//!   yup's message, so that the server, its document and every client read one value one way. Addresses are
//!   read in any case, `0x` optional;
//! - the first error reported is the one yup reports: fields are checked in the REVERSE order of their
//!   declaration (yup sorts an object's fields topologically and walks them backwards), and within a field the
//!   type comes first, then the tests in the order they were added.
//!
//! Beyond the peer (its bug 2): an order's uint fields written as plain decimal digits, in a string or as a
//! JSON integer, are read exactly over the whole range the order book holds, not only up to 2^53-1.

mod order;
mod query;

pub use order::{draft_order, signed_order};
pub use query::*;

use alloy::primitives::{Address, B256, U256};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// JavaScript's `Number.MAX_SAFE_INTEGER`: the peer's bound on every integer.
pub const MAX_SAFE: u64 = (1 << 53) - 1;

/// One value as a request carries it, before any cast.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    Absent,
    Null,
    Text(Cow<'a, str>),
    /// A JSON number, as written.
    Number(&'a str),
    Bool(bool),
    /// A JSON object or array, as written.
    Composite(&'a str),
    /// A query parameter given more than once (Node's querystring makes an array of it).
    Repeated(Vec<String>),
}

impl<'a> Input<'a> {
    /// A value of a JSON document.
    pub fn json(raw: Option<&'a RawValue>) -> Input<'a> {
        let Some(raw) = raw else { return Input::Absent };
        let text = raw.get().trim();
        match text.as_bytes().first() {
            Some(b'"') => {
                serde_json::from_str::<String>(text).map_or(Input::Composite(text), |s| Input::Text(s.into()))
            }
            Some(b'n') => Input::Null,
            Some(b't') => Input::Bool(true),
            Some(b'f') => Input::Bool(false),
            Some(b'{' | b'[') => Input::Composite(text),
            _ => Input::Number(text),
        }
    }

    /// yup's `printValue(originalValue, quoteStrings)`, for type errors.
    fn printed(&self) -> String {
        match self {
            Input::Absent => "undefined".into(),
            Input::Null => "null".into(),
            Input::Text(s) => format!("\"{s}\""),
            Input::Number(n) => (*n).to_owned(),
            Input::Bool(b) => b.to_string(),
            Input::Composite(c) => c.to_string(),
            Input::Repeated(v) => format!("[{}]", v.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")),
        }
    }

    /// yup's `string()` cast: scalars become their text; objects and arrays stay what they are (a type error).
    fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Input::Text(s) => Some(Cow::Borrowed(s.as_ref())),
            Input::Number(n) => Some(Cow::Borrowed(*n)),
            Input::Bool(b) => Some(Cow::Owned(b.to_string())),
            _ => None,
        }
    }
}

/// A number as Dragon reads one (see the module's doc): `Some(Ok(n))` for a decimal number whose value is an
/// integer (`12`, `-1`, `2.0`, `1e3`), `Some(Err(()))` for one that is not (`1.5`), `None` for anything else. Exact:
/// no floating point on the way. Values beyond i128 saturate (they are past every bound).
fn decimal(text: &str) -> Option<Result<i128, ()>> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) {
                return None;
            }
            // Past a few hundred, only the sign of the exponent matters.
            let magnitude = digits.trim_start_matches('0').parse::<i64>().unwrap_or(0).min(1_000)
                + i64::from(digits.len() > 4) * 1_000;
            if e.starts_with('-') { -magnitude } else { magnitude }
        }
    };
    let digits: String = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    // Where the decimal point falls in `digits` (leading zeros dropped).
    let point = int.trim_start_matches('0').len() as i64
        - if int.trim_start_matches('0').is_empty() {
            (frac.len() - frac.trim_start_matches('0').len()) as i64
        } else {
            0
        }
        + exponent;
    if digits.is_empty() {
        return Some(Ok(0));
    }
    if point <= 0 {
        return Some(Err(()));
    }
    let point = point as usize;
    let (whole, fraction) = if point >= digits.len() { (digits, "") } else { digits.split_at(point) };
    if fraction.bytes().any(|b| b != b'0') {
        return Some(Err(()));
    }
    let zeros = point.saturating_sub(digits.len());
    let value = if whole.len() + zeros > 38 {
        i128::MAX
    } else {
        format!("{whole}{}", "0".repeat(zeros)).parse::<i128>().unwrap_or(i128::MAX)
    };
    Some(Ok(if negative { -value } else { value }))
}

fn required(path: &str) -> String {
    format!("{path} is a required field")
}

fn not_type(path: &str, ty: &str, value: &str, original: &Input<'_>) -> String {
    let cast = match original {
        Input::Text(s) if format!("\"{s}\"") == value => ".".to_owned(),
        Input::Bool(b) if b.to_string() == value => ".".to_owned(),
        Input::Composite(c) if *c == value => ".".to_owned(),
        other => format!(" (cast from the value `{}`).", other.printed()),
    };
    format!("{path} must be a `{ty}` type, but the final value was: `{value}`{cast}")
}

/// A present value, or the error yup gives an absent or null one (`None` when absent and optional).
fn present<'i, 'a>(path: &str, v: &'i Input<'a>, is_required: bool) -> Result<Option<&'i Input<'a>>, String> {
    match v {
        Input::Absent if is_required => Err(required(path)),
        Input::Absent => Ok(None),
        Input::Null if is_required => Err(required(path)),
        Input::Null => Err(format!("{path} cannot be null")),
        v => Ok(Some(v)),
    }
}

/// yup's `string()`: the value's text.
pub fn string(path: &str, v: &Input<'_>, is_required: bool) -> Result<Option<String>, String> {
    let Some(v) = present(path, v, is_required)? else { return Ok(None) };
    match v.as_text() {
        // yup's string().required() also refuses the empty string.
        Some(s) if s.is_empty() && is_required => Err(required(path)),
        Some(s) => Ok(Some(s.into_owned())),
        None => Err(not_type(path, "string", &v.printed(), v)),
    }
}

/// An address as ethers' `getAddress` takes it after yup lowercased it: 40 hex digits, `0x` optional.
pub fn parse_address(text: &str) -> Option<Address> {
    let hex = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")).unwrap_or(text);
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.parse().ok()).flatten()
}

/// yup's `addressSchema()` of the peer.
pub fn address(path: &str, v: &Input<'_>, is_required: bool) -> Result<Option<Address>, String> {
    match string(path, v, is_required)? {
        None => Ok(None),
        Some(s) => parse_address(&s).map(Some).ok_or_else(|| format!("{path} is not a valid ethereum address")),
    }
}

/// An address or the keyword `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressOrAny {
    Any,
    Address(Address),
}

/// The peer's `addressOrAnySchema()`.
pub fn address_or_any(path: &str, v: &Input<'_>, is_required: bool) -> Result<Option<AddressOrAny>, String> {
    match string(path, v, is_required)? {
        None => Ok(None),
        Some(s) if s == "any" => Ok(Some(AddressOrAny::Any)),
        Some(s) => parse_address(&s)
            .map(|a| Some(AddressOrAny::Address(a)))
            .ok_or_else(|| format!("{path} is neither \"any\" nor a valid ethereum address")),
    }
}

/// The peer's `bytes32Schema()`: `0x` and 64 hex digits, in any case (yup lowercases first).
pub fn bytes32(path: &str, v: &Input<'_>, is_required: bool) -> Result<Option<B256>, String> {
    match string(path, v, is_required)? {
        None => Ok(None),
        Some(s) => {
            let lower = s.to_ascii_lowercase();
            lower
                .strip_prefix("0x")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|_| lower.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("{path} must be a bytes32 hexstring"))
        }
    }
}

/// yup's `boolean()`: `true` or `false` (see the module's doc).
pub fn boolean(path: &str, v: &Input<'_>, is_required: bool) -> Result<Option<bool>, String> {
    let Some(v) = present(path, v, is_required)? else { return Ok(None) };
    match v {
        Input::Bool(b) => Ok(Some(*b)),
        Input::Text(s) if s == "true" => Ok(Some(true)),
        Input::Text(s) if s == "false" => Ok(Some(false)),
        _ => Err(not_type(path, "boolean", &v.printed(), v)),
    }
}

/// A number: a decimal integer, `Err` with yup's message otherwise.
fn number(path: &str, v: &Input<'_>) -> Result<i128, String> {
    let read = match v {
        Input::Text(s) => decimal(s),
        Input::Number(n) => decimal(n),
        _ => None,
    };
    match read {
        Some(Ok(n)) => Ok(n),
        Some(Err(())) => Err(format!("{path} must be an integer")),
        None => Err(not_type(path, "number", "NaN", v)),
    }
}

/// The peer's `number().integer().min(min).max(max)`, as a u64.
pub fn integer(path: &str, v: &Input<'_>, is_required: bool, min: u64, max: u64) -> Result<Option<u64>, String> {
    let Some(v) = present(path, v, is_required)? else { return Ok(None) };
    let n = number(path, v)?;
    if n < i128::from(min) {
        return Err(format!("{path} must be greater than or equal to {min}"));
    }
    if n > i128::from(max) {
        return Err(format!("{path} must be less than or equal to {max}"));
    }
    Ok(Some(n as u64))
}

/// An order's uint field, with Dragon's bound `max` (above the peer's 2^53-1: its bug 2), read exactly over the
/// whole range: a JSON number whose value is an integer, or a string of decimal digits (`+` and leading zeros
/// allowed). The messages are yup's.
pub fn uint(path: &str, v: &Input<'_>, min: u64, max: U256) -> Result<U256, String> {
    let value = match v {
        Input::Absent | Input::Null => return Err(required(path)),
        Input::Text(s) => {
            let d = s.strip_prefix('+').unwrap_or(s);
            if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
                // A negative or fractional number in a string reads as the number it is; the rest is no number.
                return Err(match decimal(s) {
                    Some(Ok(n)) if n < i128::from(min) => format!("{path} must be greater than or equal to {min}"),
                    Some(_) => format!("{path} must be an integer"),
                    None => not_type(path, "number", "NaN", v),
                });
            }
            U256::from_str_radix(d.trim_start_matches('0').max("0"), 10).unwrap_or(U256::MAX)
        }
        Input::Number(n) => match exact_integer(n) {
            Some(Ok(value)) => value,
            Some(Err(negative)) if negative => return Err(format!("{path} must be greater than or equal to {min}")),
            _ => return Err(format!("{path} must be an integer")),
        },
        _ => return Err(not_type(path, "number", "NaN", v)),
    };
    if value < U256::from(min) {
        return Err(format!("{path} must be greater than or equal to {min}"));
    }
    if value > max {
        return Err(format!("{path} must be less than or equal to {max}"));
    }
    Ok(value)
}

/// A JSON number's exact value when it is a non-negative integer (`5`, `5.0`, `1e3`): `Ok(value)`, `Err(true)`
/// when negative, `Err(false)` when not an integer; `None` when the text is no number.
fn exact_integer(text: &str) -> Option<Result<U256, bool>> {
    if text.bytes().all(|b| b.is_ascii_digit()) && !text.is_empty() {
        return Some(Ok(U256::from_str_radix(text, 10).unwrap_or(U256::MAX)));
    }
    match decimal(text)? {
        Ok(n) if n < 0 => Some(Err(true)),
        Ok(n) if n == i128::MAX => Some(Ok(U256::MAX)),
        Ok(n) => Some(Ok(U256::from(n as u128))),
        Err(()) => Some(Err(false)),
    }
}

/// yup's `oneOf(values)`.
pub fn one_of(path: &str, value: &str, values: &[&str]) -> Result<(), String> {
    if values.contains(&value) {
        Ok(())
    } else {
        Err(format!("{path} must be one of the following values: {}", values.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Input<'_> {
        Input::Text(Cow::Borrowed(s))
    }

    #[test]
    fn numbers_are_decimal_and_exact() {
        assert_eq!(decimal("12"), Some(Ok(12)));
        assert_eq!(decimal("-1"), Some(Ok(-1)));
        assert_eq!(decimal("+7"), Some(Ok(7)));
        assert_eq!(decimal("2.0"), Some(Ok(2)));
        assert_eq!(decimal("1e3"), Some(Ok(1000)));
        assert_eq!(decimal("7941360701.0"), Some(Ok(7_941_360_701)));
        assert_eq!(decimal("1.5e1"), Some(Ok(15)));
        assert_eq!(decimal("150e-1"), Some(Ok(15)));
        assert_eq!(decimal("0.0"), Some(Ok(0)));
        assert_eq!(decimal("0.000e5"), Some(Ok(0)));
        assert_eq!(decimal("1e400"), Some(Ok(i128::MAX)));
        for fraction in ["1.5", "1e-3", ".5", "-0.5", "15e-2", "0.01e1"] {
            assert_eq!(decimal(fraction), Some(Err(())), "{fraction}");
        }
        for nan in ["abc", "0x10", " 20", "1e", "Infinity", "", "-", "1_000", "--1", "e5", "."] {
            assert_eq!(decimal(nan), None, "{nan}");
        }
    }

    #[test]
    fn integer_messages_are_yups() {
        let page = |s: &str| integer("pageSize", &text(s), false, 10, 1000);
        assert_eq!(page("20"), Ok(Some(20)));
        assert_eq!(page("5").unwrap_err(), "pageSize must be greater than or equal to 10");
        assert_eq!(page("1001").unwrap_err(), "pageSize must be less than or equal to 1000");
        assert_eq!(page("10.5").unwrap_err(), "pageSize must be an integer");
        assert_eq!(
            page("abc").unwrap_err(),
            "pageSize must be a `number` type, but the final value was: `NaN` (cast from the value `\"abc\"`)."
        );
        assert_eq!(
            page("").unwrap_err(),
            "pageSize must be a `number` type, but the final value was: `NaN` (cast from the value `\"\"`)."
        );
        assert_eq!(page("1e2"), Ok(Some(100)), "an integer written with an exponent is an integer");
        assert_eq!(page("10.5").unwrap_err(), "pageSize must be an integer");
        assert_eq!(page("-1").unwrap_err(), "pageSize must be greater than or equal to 10");
        assert_eq!(integer("x", &Input::Absent, false, 0, 5), Ok(None));
        assert_eq!(integer("x", &Input::Absent, true, 0, 5).unwrap_err(), "x is a required field");
        let big = integer("category", &text("9007199254740992"), false, 0, MAX_SAFE).unwrap_err();
        assert_eq!(big, "category must be less than or equal to 9007199254740991");
    }

    #[test]
    fn booleans_and_addresses_are_yups() {
        assert_eq!(boolean("s", &text("true"), false), Ok(Some(true)));
        assert_eq!(boolean("s", &text("false"), false), Ok(Some(false)));
        assert!(boolean("s", &text("1"), false).is_err());
        assert_eq!(
            boolean("isDatasetStrict", &text("abc"), false).unwrap_err(),
            "isDatasetStrict must be a `boolean` type, but the final value was: `\"abc\"`."
        );
        let a = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        assert!(address("app", &text(a), true).is_ok());
        assert!(address("app", &text(&a[2..]), true).is_ok(), "ethers takes an address without 0x");
        assert_eq!(address("app", &text("0x12"), true).unwrap_err(), "app is not a valid ethereum address");
        assert_eq!(address("app", &text(""), true).unwrap_err(), "app is a required field");
        assert_eq!(
            address_or_any("app", &text("nope"), false).unwrap_err(),
            "app is neither \"any\" nor a valid ethereum address"
        );
        assert_eq!(address_or_any("app", &text("any"), false), Ok(Some(AddressOrAny::Any)));
        assert_eq!(bytes32("orderHash", &text("0x12"), true).unwrap_err(), "orderHash must be a bytes32 hexstring");
        assert!(bytes32("h", &text(&format!("0x{}", "AB".repeat(32))), true).is_ok());
    }

    #[test]
    fn order_uints_are_exact_beyond_2_53() {
        let max = U256::from(u64::MAX);
        let raw = |s: &str| uint("order.appprice", &Input::Number(Box::leak(s.to_owned().into_boxed_str())), 0, max);
        assert_eq!(raw("9007199254740993"), Ok(U256::from(9_007_199_254_740_993u64)));
        assert_eq!(uint("order.appprice", &text("18446744073709551615"), 0, max), Ok(max));
        assert_eq!(
            uint("order.appprice", &text("18446744073709551616"), 0, max).unwrap_err(),
            "order.appprice must be less than or equal to 18446744073709551615"
        );
        assert_eq!(raw("1e3"), Ok(U256::from(1000)), "a JSON integer, as JSON Schema reads one");
        assert_eq!(raw("2.5").unwrap_err(), "order.appprice must be an integer");
        assert_eq!(uint("order.appprice", &text("1e3"), 0, max).unwrap_err(), "order.appprice must be an integer");
        assert_eq!(uint("order.appprice", &text("+007"), 0, max), Ok(U256::from(7)));
        assert_eq!(
            uint("order.volume", &text("0"), 1, max).unwrap_err(),
            "order.volume must be greater than or equal to 1"
        );
        assert_eq!(raw("-1").unwrap_err(), "order.appprice must be greater than or equal to 0");
        assert_eq!(
            uint("order.appprice", &Input::Bool(true), 0, max).unwrap_err(),
            "order.appprice must be a `number` type, but the final value was: `NaN` (cast from the value `true`)."
        );
        assert_eq!(uint("order.appprice", &Input::Null, 0, max).unwrap_err(), "order.appprice is a required field");
    }

    #[test]
    fn query_strings_are_read_as_node_reads_them() {
        let q = Query::parse("a=1+2&b=%41&c=x&c=y");
        assert!(matches!(q.get("a"), Input::Text(s) if s == "1 2"));
        assert!(matches!(q.get("b"), Input::Text(s) if s == "A"));
        assert!(matches!(q.get("c"), Input::Repeated(v) if v == ["x", "y"]));
        assert!(matches!(q.get("d"), Input::Absent));
    }
}
