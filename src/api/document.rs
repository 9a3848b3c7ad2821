//! The OpenAPI document: every operation with exactly the parameters, bodies and answers the server has.
//!
//! Query and path parameters are written from the same tables the handlers validate with
//! ([`validate::Param`]), so the document cannot say something the server does not do; the schemas of orders
//! and records are written here once per kind. Schemathesis checks the document against the running server
//! (`tests/it/schemathesis.rs`).
//!
//! `openapi/openapi.json` is [`document`] without a chain: `chainId` is any decimal text. The server serves it
//! at `/openapi.json` with its own chain as `chainId`'s only value.

use super::validate::{DEFAULT_PAGE_SIZE, MAX_SAFE, Param};
use crate::order::OrderKind;
use serde_json::{Map, Value, json};

const ADDRESS: &str = "^(0[xX])?[0-9a-fA-F]{40}$";
const ADDRESS_OR_ANY: &str = "^(any|(0[xX])?[0-9a-fA-F]{40})$";
const BYTES32: &str = "^0[xX][0-9a-fA-F]{64}$";

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The schema of a query or path parameter, as [`validate::params`](super::validate::params) reads it.
pub fn param_schema(p: Param) -> Value {
    match p {
        Param::Address => {
            json!({"type": "string", "pattern": ADDRESS, "description": "An address, any case, `0x` optional."})
        }
        Param::AddressOrAny => {
            json!({"type": "string", "pattern": ADDRESS_OR_ANY, "description": "An address, or `any`."})
        }
        Param::AddressOrAnyUnless(other, _) => json!({
            "type": "string", "pattern": ADDRESS_OR_ANY,
            "description": format!("An address, or `any`. Required unless `{other}` is given.")
        }),
        Param::Bytes32 => json!({"type": "string", "pattern": BYTES32}),
        Param::Bool => json!({"type": "boolean"}),
        Param::Int(min, max) => json!({"type": "integer", "minimum": min, "maximum": max}),
        Param::AddressOrHash => json!({
            "type": "string", "pattern": "^0[xX]([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$",
            "description": "An address (20 bytes) or a deal id, task id or order hash (32 bytes), 0x-hex."
        }),
    }
}

/// `chainId`: text compared with the chain this server serves.
fn chain_schema(chain: Option<u64>) -> Value {
    match chain {
        Some(id) => json!({"type": "string", "enum": [id.to_string()], "description": "The chain this server serves."}),
        None => json!({
            "type": "string", "pattern": "^[0-9]+$",
            "description": "The chain this server serves, as decimal text (the server's own /openapi.json names it)."
        }),
    }
}

/// Whether an operation takes `chainId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    Required,
    Optional,
    None,
}

/// One operation of the document.
struct Op {
    method: &'static str,
    path: String,
    id: String,
    summary: String,
    tag: &'static str,
    chain: Chain,
    query: Vec<(&'static str, Param)>,
    required: Vec<&'static str>,
    path_params: Vec<(&'static str, Param)>,
    body: Option<Value>,
    /// The 200 answer (its `content`), or a whole response map when `responses` is set.
    ok: Value,
    /// Error statuses, all answered with ErrorBody.
    errors: Vec<u16>,
    auth: bool,
    links: Option<Value>,
}

impl Op {
    /// An operation at `path` (GET until [`Op::write`] says otherwise).
    fn at(path: impl Into<String>, id: impl Into<String>, tag: &'static str, summary: &str) -> Op {
        Op {
            method: "get",
            path: path.into(),
            id: id.into(),
            summary: summary.to_owned(),
            tag,
            chain: Chain::Required,
            query: Vec::new(),
            required: Vec::new(),
            path_params: Vec::new(),
            body: None,
            ok: json!({}),
            errors: vec![400, 429, 503],
            auth: false,
            links: None,
        }
    }

    fn query(mut self, query: Vec<(&'static str, Param)>, required: &[&'static str]) -> Op {
        self.query = query;
        self.required = required.to_vec();
        self
    }

    fn path_param(mut self, name: &'static str, p: Param) -> Op {
        self.path_params.push((name, p));
        self
    }

    fn ok(mut self, schema: Value) -> Op {
        self.ok = json!({"description": "OK", "content": {"application/json": {"schema": schema}}});
        self
    }

    fn errors(mut self, errors: &[u16]) -> Op {
        self.errors = errors.to_vec();
        self
    }

    fn links(mut self, links: Value) -> Op {
        self.links = Some(links);
        self
    }

    fn write(mut self, method: &'static str, body: Value) -> Op {
        self.method = method;
        self.body = Some(json!({"required": true, "content": {"application/json": {"schema": body}}}));
        self.errors = vec![400, 403, 413, 429, 503];
        self.auth = true;
        self
    }

    fn render(self, chain: Option<u64>) -> Value {
        let mut params = Vec::new();
        for (name, p) in &self.path_params {
            params.push(json!({"name": name, "in": "path", "required": true, "schema": param_schema(*p)}));
        }
        // The query is one object, serialized as the usual `name=value` pairs (form, exploded): JSON Schema can
        // then say what one parameter alone cannot (`app` or `appOwner`), and that other names are ignored, as
        // the peer ignores them.
        let mut props = Map::new();
        let mut required: Vec<&str> = Vec::new();
        if self.chain != Chain::None {
            props.insert("chainId".into(), chain_schema(chain));
            if self.chain == Chain::Required {
                required.push("chainId");
            }
        }
        let mut one_of_two = Vec::new();
        for (name, p) in &self.query {
            props.insert((*name).into(), param_schema(*p));
            if self.required.contains(name) {
                required.push(name);
            }
            if let Param::AddressOrAnyUnless(other, _) = p {
                one_of_two.push(json!({"required": [name]}));
                one_of_two.push(json!({"required": [other]}));
            }
        }
        if !props.is_empty() {
            let mut schema =
                json!({"type": "object", "properties": props, "required": required, "additionalProperties": true});
            if !one_of_two.is_empty() {
                schema["anyOf"] = Value::Array(one_of_two);
            }
            params.push(json!({
                "name": "query", "in": "query", "required": !required.is_empty(), "style": "form", "explode": true,
                "schema": schema,
                "description": "The query parameters; names not listed here are ignored."
            }));
        }
        let mut responses = Map::new();
        let mut ok = self.ok;
        if let Some(links) = self.links {
            ok["links"] = links;
        }
        responses.insert("200".into(), ok);
        for code in &self.errors {
            responses.insert(
                code.to_string(),
                json!({"description": error_description(*code),
                       "content": {"application/json": {"schema": reference("ErrorBody")}}}),
            );
        }
        let mut op = json!({
            "tags": [self.tag],
            "summary": self.summary,
            "operationId": self.id,
            "parameters": params,
            "responses": responses,
        });
        if let Some(body) = self.body {
            op["requestBody"] = body;
        }
        if self.auth {
            // Not a `security` requirement: the peer answers a missing header 403 `invalid authorization`, as any
            // other authentication failure, where OpenAPI tools expect 401 for a declared one.
            op["description"] = json!(
                "Header `authorization`: `<challengeHash>_<signature>_<address>` (GET /challenge signed as EIP-712 typed data, single use) or, beyond the peer, `Bearer <token>` from POST /sessions. Without it, or with a wrong one: 403 `invalid authorization`, before the body is read."
            );
        }
        op
    }
}

fn error_description(code: u16) -> &'static str {
    match code {
        400 => "A parameter or the body breaks a rule (yup's message, as iexec-market-api writes it)",
        403 => "Authentication failed (`invalid authorization`), or the publication rules refuse",
        404 => "Not found",
        413 => "The body, the order or its params are larger than this exchange accepts",
        429 => "Rate limit exceeded",
        503 => {
            "The store, the chain or the matching engine is unavailable, or (a cluster) no instance owns the order's category now"
        }
        _ => "Error",
    }
}

fn uint_schema(min: u64, bound: &str) -> Value {
    json!({"anyOf": [
        {"type": "integer", "minimum": min, "maximum": bound.parse::<u64>().unwrap_or(u64::MAX)},
        {"type": "string", "pattern": decimal_at_most(min, bound)}
    ]})
}

/// A regular expression for the decimal texts of the integers from `min` (0 or 1) to `max` (a decimal, no
/// leading zero), leading zeros and a `+` allowed: what the server reads from a string.
fn decimal_at_most(min: u64, max: &str) -> String {
    let d: Vec<u8> = max.bytes().map(|b| b - b'0').collect();
    let n = d.len();
    // Numbers without a leading zero, from 1 up to max.
    let mut alts = vec![format!("[1-9][0-9]{{0,{}}}", n.saturating_sub(2))];
    for i in 0..n {
        let (lo, hi) = (if i == 0 { 1 } else { 0 }, d[i]);
        if hi > lo {
            let prefix: String = d[..i].iter().map(|x| char::from(b'0' + x)).collect();
            let class = if hi - 1 == lo { format!("{lo}") } else { format!("[{lo}-{}]", hi - 1) };
            alts.push(format!("{prefix}{class}[0-9]{{{}}}", n - i - 1));
        }
    }
    alts.push(max.to_owned());
    let nonzero = alts.join("|");
    if min == 0 { format!("^\\+?(0+|0*({nonzero}))$") } else { format!("^\\+?0*({nonzero})$") }
}

/// The uint fields of each kind of order, with their least value.
fn uint_fields(kind: OrderKind) -> &'static [(&'static str, u64)] {
    match kind {
        OrderKind::App => &[("appprice", 0), ("volume", 1)],
        OrderKind::Dataset => &[("datasetprice", 0), ("volume", 1)],
        OrderKind::Workerpool => &[("workerpoolprice", 0), ("volume", 1), ("category", 0), ("trust", 0)],
        OrderKind::Request => &[
            ("appmaxprice", 0),
            ("datasetmaxprice", 0),
            ("workerpoolmaxprice", 0),
            ("volume", 1),
            ("category", 0),
            ("trust", 0),
        ],
    }
}

fn address_fields(kind: OrderKind) -> &'static [&'static str] {
    match kind {
        OrderKind::App => &["app", "datasetrestrict", "workerpoolrestrict", "requesterrestrict"],
        OrderKind::Dataset => &["dataset", "apprestrict", "workerpoolrestrict", "requesterrestrict"],
        OrderKind::Workerpool => &["workerpool", "apprestrict", "datasetrestrict", "requesterrestrict"],
        OrderKind::Request => &["app", "dataset", "workerpool", "requester", "beneficiary", "callback"],
    }
}

fn title(kind: OrderKind) -> &'static str {
    match kind {
        OrderKind::App => "App",
        OrderKind::Dataset => "Dataset",
        OrderKind::Workerpool => "Workerpool",
        OrderKind::Request => "Request",
    }
}

/// A signed order of `kind` as the server reads it: every field required (a request's `params` too), unknown
/// fields ignored; uint fields as JSON integers or decimal strings up to the order book's bound (2^64-1;
/// volumes 2^63-1), read exactly.
fn order_schema(kind: OrderKind, max_params: usize) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in address_fields(kind) {
        props.insert((*f).into(), json!({"type": "string", "pattern": ADDRESS}));
        required.push(*f);
    }
    for (f, min) in uint_fields(kind) {
        let bound = if *f == "volume" { i64::MAX.to_string() } else { u64::MAX.to_string() };
        props.insert((*f).into(), uint_schema(*min, &bound));
        required.push(*f);
    }
    for f in ["tag", "salt"] {
        props.insert(f.into(), json!({"type": "string", "pattern": BYTES32}));
        required.push(f);
    }
    props.insert(
        "sign".into(),
        json!({"type": "string", "pattern": "^0x([0-9a-fA-F]{2})*$",
               "description": "The owner's signature (ECDSA, EIP-2098 or ERC-1271), or `0x` for an order presigned on chain."}),
    );
    required.push("sign");
    if kind == OrderKind::Request {
        props.insert(
            "params".into(),
            json!({"type": "string", "maxLength": max_params,
                   "description": format!("At most {max_params} bytes of UTF-8.")}),
        );
        required.push("params");
    }
    json!({
        "type": "object",
        "description": format!("A signed {}order (PoCo's fields). The whole order is at most 16 KiB of JSON.", kind),
        "properties": props,
        "required": required,
    })
}

/// A draft order for `POST /explain`: a signed order's fields, the signature not required (and not read).
fn draft_schema(kind: OrderKind, max_params: usize) -> Value {
    let mut schema = order_schema(kind, max_params);
    if let Some(required) = schema["required"].as_array_mut() {
        required.retain(|f| f != "sign");
    }
    if let Some(props) = schema["properties"].as_object_mut() {
        props.remove("sign");
        // As yup's `string()` reads it (and so publication, behind its login): a number or a boolean is its text.
        if let Some(params) = props.get_mut("params") {
            params["type"] = json!(["string", "number", "boolean"]);
        }
    }
    schema["description"] = json!(format!("A draft {kind}order: PoCo's fields, unsigned (a signature is ignored)."));
    schema
}

/// An order in a record: addresses checksummed, uint fields as JSON numbers (decimal strings above 2^53-1).
fn served_order_schema(kind: OrderKind) -> Value {
    let mut props = Map::new();
    for f in address_fields(kind) {
        props.insert((*f).into(), json!({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}));
    }
    for (f, _) in uint_fields(kind) {
        props.insert((*f).into(), json!({"type": ["integer", "string"]}));
    }
    for f in ["tag", "salt"] {
        props.insert(f.into(), json!({"type": "string", "pattern": "^0x[0-9a-f]{64}$"}));
    }
    props.insert("sign".into(), json!({"type": "string", "pattern": "^0x([0-9a-f]{2})*$"}));
    if kind == OrderKind::Request {
        props.insert("params".into(), json!({"type": "string"}));
    }
    let mut required: Vec<&str> = address_fields(kind).to_vec();
    required.extend(uint_fields(kind).iter().map(|(f, _)| *f));
    required.extend(["tag", "salt"]);
    json!({"type": "object", "properties": props, "required": required})
}

fn record_schema(kind: OrderKind, one: bool) -> Value {
    let mut props = json!({
        "orderHash": {"type": "string", "pattern": "^0x[0-9a-f]{64}$"},
        "chainId": if one { json!({"type": "string", "description": "As the query gave it."}) } else { json!({"type": "integer"}) },
        "order": reference(&format!("{}OrderServed", title(kind))),
        "remaining": {"type": "integer", "minimum": 0},
        "status": reference("OrderStatus"),
        "publicationTimestamp": {"type": "string", "description": "ISO-8601 with milliseconds, UTC."},
        "signer": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"},
    });
    let mut required = vec!["orderHash", "chainId", "order", "remaining", "status", "publicationTimestamp", "signer"];
    if one {
        props["ok"] = json!({"type": "boolean", "const": true});
        required.push("ok");
    }
    if kind == OrderKind::Workerpool {
        props["trackRecord"] = json!({"allOf": [reference("TrackRecord")],
            "description": "Beyond the peer: the workerpool's track record (docs/track-records.md)."});
        required.push("trackRecord");
    } else if !one && kind == OrderKind::Dataset {
        props["bulk"] =
            json!({"type": "boolean", "description": "Free and of iExec's \"infinite\" volume: for bulk processing."});
        required.push("bulk");
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// A workerpool's track record: the same figures over all its deals and over those of the last 30 days.
fn track_record_schema() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    let figures = json!({"type": "object",
        "required": ["deals", "tasks", "completed", "claimed", "failed", "finished", "completedRate", "medianSecondsToFinalize"],
        "properties": {
            "deals": count, "tasks": count, "completed": count, "claimed": count, "failed": count, "finished": count,
            "completedRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                              "description": "completed / finished; null before any task finished."},
            "medianSecondsToFinalize": {"type": ["integer", "null"], "minimum": 0,
                                        "description": "Lower median of finalize block time minus deal block time."}}});
    json!({"type": "object", "required": ["allTime", "last30Days"],
           "properties": {"allTime": figures, "last30Days": figures}})
}

fn list_schema(items: &str, item: Value) -> Value {
    let mut props = Map::new();
    props.insert("ok".into(), json!({"type": "boolean", "const": true}));
    props.insert(items.into(), json!({"type": "array", "items": item}));
    props
        .insert("count".into(), json!({"type": "integer", "minimum": 0, "description": "All that the filters admit."}));
    props.insert(
        "nextPage".into(),
        json!({"type": "integer", "description": "When the page came back full: the offset of the next one."}),
    );
    json!({"type": "object", "properties": props, "required": ["ok", items, "count"]})
}

fn deal_schema() -> Value {
    let resource = json!({"type": "object", "required": ["pointer", "owner", "price"], "properties": {
        "pointer": {"type": "string"}, "owner": {"type": "string"}, "price": {"type": ["integer", "string"]}}});
    json!({"type": "object", "properties": {
        "dealid": {"type": "string"}, "chainId": {"type": "integer"},
        "app": resource, "dataset": resource, "workerpool": resource,
        "appHash": {"type": "string"}, "datasetHash": {"type": "string"}, "workerpoolHash": {"type": "string"},
        "requestHash": {"type": "string"}, "requester": {"type": "string"}, "beneficiary": {"type": "string"},
        "callback": {"type": "string"}, "params": {"type": "string"}, "tag": {"type": "string"},
        "volume": {"type": "integer"}, "category": {"type": "integer"}, "trust": {"type": ["integer", "string"]},
        "startTime": {"type": "integer"}, "botFirst": {"type": "integer"}, "botSize": {"type": "integer"},
        "workerStake": {"type": ["integer", "string"]}, "schedulerRewardRatio": {"type": ["integer", "string"]},
        "blockNumber": {"type": "integer"}, "blockTimestamp": {"type": "string"}, "transactionHash": {"type": "string"}
    }, "required": ["dealid", "chainId", "app", "dataset", "workerpool", "requester", "beneficiary", "callback",
                    "params", "category", "volume", "tag", "trust", "appHash", "datasetHash", "workerpoolHash",
                    "requestHash", "blockNumber", "blockTimestamp", "transactionHash"]})
}

fn task_schema() -> Value {
    json!({"type": "object", "required": ["taskid", "idx", "status"], "properties": {
        "taskid": {"type": "string"}, "dealid": {"type": "string"}, "idx": {"type": "integer"},
        "category": {"type": "integer"}, "workerpool": {"type": "string"},
        "status": {"type": "string", "enum": ["UNSET", "ACTIVE", "REVEALING", "COMPLETED", "FAILED"]},
        "lastEvent": {"type": ["string", "null"]}, "blockNumber": {"type": ["integer", "null"]}, "results": {}
    }})
}

fn unpublish_schema(kind: OrderKind) -> Value {
    let field = super::orders::resource_field(kind);
    let mut props = json!({
        "target": {"type": "string", "enum": ["unpublish_orderHash", "unpublish_last", "unpublish_all"],
                   "description": "Default `unpublish_orderHash`."},
        "orderHash": {"type": "string", "pattern": BYTES32},
    });
    props[field] = json!({"type": "string", "pattern": ADDRESS});
    json!({
        "type": "object",
        "properties": props,
        "oneOf": [
            {"required": ["orderHash"], "properties": {"target": {"enum": ["unpublish_orderHash"]}}},
            {"required": ["target", field], "properties": {"target": {"enum": ["unpublish_last", "unpublish_all"]}}}
        ]
    })
}

/// The document, with `chain` as `chainId`'s only value when given.
pub fn document(chain: Option<u64>, market: &crate::market::MarketConfig, batch_orders: usize) -> Value {
    use crate::api::{auth, categories, deals, market as m, orders, proposals};
    let mut doc = serde_json::to_value(<super::ApiDoc as utoipa::OpenApi>::openapi()).unwrap_or_default();
    let mut schemas = doc["components"]["schemas"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut paths = Map::new();
    let mut add = |op: Op| {
        let (path, method) = (op.path.clone(), op.method);
        let rendered = op.render(chain);
        paths.entry(path).or_insert_with(|| json!({}))[method] = rendered;
    };

    add(Op::at("/version", "version", "system", "The server's version (Dragon's, not the peer's 7.1.2).")
        .ok(reference("Version"))
        .errors(&[429])
        .chain_none());
    let mut health =
        Op::at("/health", "health", "system", "Whether the database, the chain and the matching engine answer.")
            .ok(reference("Health"))
            .errors(&[429])
            .chain_none();
    health.ok = json!({"description": "Every dependency answers", "content": {"application/json": {"schema": reference("Health")}}});
    let health_503 = json!({"description": "A dependency is unreachable", "content": {"application/json": {"schema": reference("Health")}}});
    add(health);
    add(Op::at(
        "/challenge",
        "challenge",
        "auth",
        "A login challenge: EIP-712 typed data to sign, single use, valid 5 minutes.",
    )
    .query(auth::CHALLENGE_PARAMS.to_vec(), &["address"])
    .ok(reference("ChallengeAnswer")));
    let mut session = Op::at("/sessions", "open_session", "auth",
        "Beyond the peer: a session from one signed challenge (`authorization: <hash>_<signature>_<address>`); later writes send `authorization: Bearer <token>`. A session token cannot open another.")
        .ok(reference("SessionAnswer"));
    session.method = "post";
    session.errors = vec![400, 403, 429, 503];
    session.auth = true;
    add(session);
    add(Op::at("/categories", "categories", "market", "The hub's categories, by reference duration then id.")
        .query(categories::category_params(), &[])
        .ok(reference("CategoryList"))
        .links(json!({"category": {"operationId": "category", "parameters": {"catid": "$response.body#/categories/0/catid"}}})));
    add(Op::at("/categories/{catid}", "category", "market", "One category.")
        .path_param("catid", Param::Int(0, MAX_SAFE))
        .ok(reference("OneCategory"))
        .errors(&[400, 404, 429, 503]));
    add(Op::at("/deals", "deals", "deals", "Deals on chain, newest block first then by deal id.")
        .query(deals::deal_params(), &[])
        .ok(list_schema("deals", reference("Deal")))
        .links(json!({"deal": {"operationId": "deal", "parameters": {"dealid": "$response.body#/deals/0/dealid"}}})));
    add(Op::at("/deals/{dealid}", "deal", "deals", "One deal, with (beyond the peer) its tasks and their statuses.")
        .path_param("dealid", Param::Bytes32)
        .ok(json!({"allOf": [reference("Deal"), {"type": "object", "required": ["ok", "tasks"], "properties": {
            "ok": {"type": "boolean", "const": true}, "tasks": {"type": "array", "items": reference("Task")}}}]}))
        .errors(&[400, 404, 429, 503]));
    add(Op::at("/ohlc", "ohlc", "deals", "Price history of a category: [blockTimestamp, workerpool price, volume] of its last 100 deals, newest first.")
        .query(deals::OHLC_PARAMS.to_vec(), &["category"])
        .ok(json!({"type": "object", "required": ["ok", "ohlc"], "properties": {"ok": {"type": "boolean", "const": true},
            "ohlc": {"type": "array", "items": {"type": "array", "minItems": 3, "maxItems": 3,
                "description": "[blockTimestamp (ISO-8601), workerpool price (a number; a decimal string above 2^53-1), volume]",
                "items": {"type": ["string", "integer"]}}}}})));
    add(Op::at("/proposals", "proposals", "deals", "Beyond the peer: the engine's deal proposals involving an order, with their settlement.")
        .query(proposals::PROPOSAL_PARAMS.to_vec(), &["orderHash"])
        .ok(json!({"type": "object", "required": ["ok", "proposals"], "properties": {
            "ok": {"type": "boolean", "const": true}, "proposals": {"type": "array", "items": reference("ProposalView")}}}))
        .links(json!({"proposal": {"operationId": "proposal", "parameters": {"id": "$response.body#/proposals/0/id"}}})));
    add(Op::at("/proposals/{id}", "proposal", "deals", "Beyond the peer: one proposal.")
        .path_param("id", Param::Int(0, MAX_SAFE))
        .ok(json!({"allOf": [reference("ProposalView"), {"type": "object", "required": ["ok"], "properties": {"ok": {"const": true}}}]}))
        .errors(&[400, 404, 429, 503]));
    let mut metrics =
        Op::at("/metrics", "metrics", "market", "With chainId: the peer's JSON metrics. Without: Prometheus text.");
    metrics.chain = Chain::Optional;
    metrics.ok = json!({"description": "OK", "content": {
        "application/json": {"schema": {"type": "object", "required": ["ok", "lastBlock", "checkpointBlock", "apporders", "datasetorders", "workerpoolorders", "requestorders"],
            "properties": {"ok": {"const": true}, "lastBlock": {"type": "integer"}, "checkpointBlock": {"type": "integer"},
                "apporders": {"type": "integer"}, "datasetorders": {"type": "integer"}, "workerpoolorders": {"type": "integer"}, "requestorders": {"type": "integer"}}}},
        "text/plain": {"schema": {"type": "string"}}}});
    add(metrics);
    add(Op::at(
        "/depth",
        "depth",
        "market",
        "Beyond the peer: price levels and best prices of a category, from the engine's snapshot.",
    )
    .query(m::DEPTH_PARAMS.to_vec(), &["category"])
    .ok(reference("Depth")));
    add(Op::at("/tasks", "tasks", "tasks", "Beyond the peer: tasks of the most recent deals, with their statuses.")
        .query(crate::api::tasks::TASK_PARAMS.to_vec(), &[])
        .ok(json!({"type": "object", "required": ["ok", "tasks"], "properties": {"ok": {"const": true}, "tasks": {"type": "array", "items": reference("Task")}}}))
        .links(json!({"task": {"operationId": "task", "parameters": {"taskid": "$response.body#/tasks/0/taskid"}}})));
    add(Op::at("/tasks/{taskid}", "task", "tasks", "Beyond the peer: one task with its events.")
        .path_param("taskid", Param::Bytes32)
        .ok(json!({"allOf": [reference("Task"), {"type": "object", "required": ["ok", "events"], "properties": {"ok": {"const": true},
            "events": {"type": "array", "items": {"type": "object", "properties": {"event": {"type": "string"}, "blockNumber": {"type": "integer"}}}}}}]}))
        .errors(&[400, 404, 429, 503]));
    add(Op::at("/pools/{address}", "pool", "pools", "Beyond the peer: a workerpool's deals, tasks by status and success rate.")
        .path_param("address", Param::Address)
        .ok(json!({"type": "object", "required": ["ok", "workerpool", "deals", "volume", "tasks", "successRate"], "properties": {
            "ok": {"const": true}, "workerpool": {"type": "string"}, "deals": {"type": "integer"}, "volume": {"type": "integer"},
            "tasks": {"type": "object", "additionalProperties": {"type": "integer"}}, "successRate": {"type": ["number", "null"]}}})));
    add(Op::at("/workerpools/{address}", "workerpool", "pools",
            "Beyond the peer: a workerpool's track record from chain events, all time and last 30 days of chain time.")
        .path_param("address", Param::Address)
        .ok(json!({"type": "object", "required": ["ok", "workerpool", "trackRecord"], "properties": {
            "ok": {"const": true}, "workerpool": {"type": "string"},
            "trackRecord": {"allOf": [reference("TrackRecord"), {"type": "object", "required": ["asOf"], "properties": {
                "asOf": {"type": ["object", "null"], "required": ["blockNumber", "blockTimestamp"], "properties": {
                    "blockNumber": {"type": "integer"}, "blockTimestamp": {"type": "string"}},
                    "description": "The last block chain sync applied, whose time the figures use; null before any."}}}]}}})));
    add(Op::at("/search", "search", "search", "Beyond the peer: what an address or a hash is.")
        .query(crate::api::search::SEARCH_PARAMS.to_vec(), &["q"])
        .ok(json!({"type": "object", "required": ["ok", "type", "id"], "properties": {
            "ok": {"const": true},
            "type": {"type": ["string", "null"], "enum": ["deal", "task", "apporder", "datasetorder", "workerpoolorder", "requestorder", "address", null]},
            "id": {"type": "string"}, "roles": {"type": "object", "additionalProperties": {"type": "integer"}}}})));

    for kind in OrderKind::ALL {
        let t = title(kind);
        let base = format!("/{kind}orders");
        schemas.insert(format!("{t}Order"), order_schema(kind, market.max_params_bytes));
        schemas.insert(format!("{t}OrderServed"), served_order_schema(kind));
        schemas.insert(format!("{t}OrderRecord"), record_schema(kind, false));
        schemas.insert(format!("{t}OrderOne"), record_schema(kind, true));
        add(Op::at(&base, format!("{kind}orders"), "orders",
                &format!("Open {kind}orders, with the peer's filters, sorting and paging (default page of {DEFAULT_PAGE_SIZE})."))
            .query(orders::spec(kind), orders::required(kind))
            .ok(list_schema("orders", reference(&format!("{t}OrderRecord"))))
            .errors(&[400, 429])
            .links(json!({
                "order": {"operationId": format!("{kind}order"), "parameters": {"orderHash": "$response.body#/orders/0/orderHash"}},
                "unpublish": {"operationId": format!("unpublish_{kind}orders"),
                              "requestBody": {"orderHash": "$response.body#/orders/0/orderHash"}},
            })));
        add(Op::at(
            format!("{base}/{{orderHash}}"),
            format!("{kind}order"),
            "orders",
            &format!("One {kind}order by hash, in any status."),
        )
        .path_param("orderHash", Param::Bytes32)
        .ok(reference(&format!("{t}OrderOne")))
        .errors(&[400, 404, 429, 503]));
        add(Op::at(
            format!("{base}/{{orderHash}}/explain"),
            format!("explain_{kind}order"),
            "orders",
            &format!("Beyond the peer: why this {kind}order does not match: its best counter-orders (at most 10), each with every condition that blocks it."),
        )
        .path_param("orderHash", Param::Bytes32)
        .ok(reference("ExplainAnswer"))
        .errors(&[400, 404, 429, 503]));
        add(Op::at(&base, format!("publish_{kind}order"), "orders",
                &format!("Publish a signed {kind}order (header `authorization`: a signed challenge, or `Bearer <session token>`)."))
            .write("post", json!({"type": "object", "required": ["order"], "properties": {
                "order": reference(&format!("{t}Order")),
                "orderHash": {"type": "string", "pattern": BYTES32, "description": "Beyond the peer: the hash the order must have (403 otherwise)."}}}))
            .ok(json!({"type": "object", "required": ["ok", "published"], "properties": {
                "ok": {"const": true}, "published": reference(&format!("{t}OrderRecord"))}}))
            .links(json!({"order": {"operationId": format!("{kind}order"), "parameters": {"orderHash": "$response.body#/published/orderHash"}}})));
        add(Op::at(&base, format!("unpublish_{kind}orders"), "orders",
                &format!("Unpublish {kind}orders: by hash (the default), the signer's last, or all of them."))
            .write("put", unpublish_schema(kind))
            .ok(json!({"type": "object", "required": ["ok", "unpublished"], "properties": {
                "ok": {"const": true}, "unpublished": {"type": "array", "items": {"type": "string"}, "description": "Newest first."}}})));
        add(Op::at(format!("{base}/batch"), format!("publish_{kind}orders_batch"), "orders",
                &format!("Beyond the peer: up to {batch_orders} signed {kind}orders, one answer per order."))
            .write("post", json!({"type": "object", "required": ["orders"], "properties": {
                "orders": {"type": "array", "minItems": 1, "maxItems": batch_orders, "items": {"type": "object",
                    "description": format!("`{{order, orderHash?}}` as the single publication takes it; each is checked on its own and answered in `results`.")}}}}))
            .ok(json!({"type": "object", "required": ["ok", "results"], "properties": {"ok": {"const": true}, "results": {"type": "array", "items": {
                "type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}, "published": reference(&format!("{t}OrderRecord")),
                "error": {"type": "string"}, "code": {"type": "string"}}}}}})));
    }
    let drafts: Vec<Value> = OrderKind::ALL
        .into_iter()
        .map(|kind| {
            let t = title(kind);
            schemas.insert(format!("{t}OrderDraft"), draft_schema(kind, market.max_params_bytes));
            json!({"type": "object", "required": ["kind", "order"], "properties": {
                "kind": {"type": "string", "const": kind.as_str()},
                "order": reference(&format!("{t}OrderDraft"))}})
        })
        .collect();
    let mut draft = Op::at("/explain", "explain_draft", "orders",
        "Beyond the peer: why a draft order (unsigned, not published) would or would not match now: a dry run of publication and matching. Answered as GET /{kind}orders/{orderHash}/explain; nothing is stored.")
        .ok(reference("ExplainAnswer"))
        .write("post", json!({"oneOf": drafts}));
    draft.auth = false;
    draft.errors = vec![400, 413, 429, 503];
    add(draft);
    // The stable codes, from the one table the market answers with.
    if let Some(code) = schemas.get_mut("ExplainBlocker").and_then(|b| b["properties"].get_mut("code")) {
        code["enum"] = json!(crate::market::explain::CODES);
    }
    schemas.insert("Deal".into(), deal_schema());
    schemas.insert("Task".into(), task_schema());
    schemas.insert("TrackRecord".into(), track_record_schema());
    if let Some(health) = paths.get_mut("/health") {
        health["get"]["responses"]["503"] = health_503;
    }
    doc["paths"] = Value::Object(paths);
    doc["components"]["schemas"] = Value::Object(schemas);
    doc
}

impl Op {
    fn chain_none(mut self) -> Op {
        self.chain = Chain::None;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_bounds_are_exact() {
        let re = decimal_at_most(0, "255");
        // A tiny matcher for the generated alternation: compare with the numbers themselves.
        let rx = regex_lite(&re);
        for n in 0..=300u32 {
            assert_eq!(rx(&n.to_string()), n <= 255, "{n} against {re}");
            assert_eq!(rx(&format!("00{n}")), n <= 255, "00{n}");
        }
        let one = regex_lite(&decimal_at_most(1, "18446744073709551615"));
        assert!(one("18446744073709551615") && one("1") && one("+0009") && !one("0") && !one("000"));
        assert!(!one("18446744073709551616") && !one("99999999999999999999") && !one("1a"));
        assert!(one("9999999999999999999") && one("18446744073709551609") && !one("18446744073709551620"));
    }

    /// Matches `re` (the subset `decimal_at_most` writes) by trying each alternative.
    fn regex_lite(re: &str) -> impl Fn(&str) -> bool + use<> {
        let re = re.to_owned();
        move |text: &str| {
            let t = text.strip_prefix('+').unwrap_or(text);
            let zero_ok = re.starts_with("^\\+?(0+|");
            let stripped = t.trim_start_matches('0');
            if stripped.is_empty() {
                return zero_ok && !t.is_empty();
            }
            if !t.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            let inner = re
                .rsplit_once("0*(")
                .map_or("", |(_, r)| r.strip_suffix("))$").or_else(|| r.strip_suffix(")$")).unwrap_or(r));
            inner.split('|').any(|alt| alt_matches(alt, stripped))
        }
    }

    fn alt_matches(alt: &str, s: &str) -> bool {
        // Alternatives: a literal, or `<prefix><class>[0-9]{k}`, or `[1-9][0-9]{0,k}`.
        if let Some(rest) = alt.strip_prefix("[1-9][0-9]{0,") {
            let k: usize = rest.trim_end_matches('}').parse().unwrap_or(0);
            return s.len() <= k + 1 && !s.starts_with('0');
        }
        if alt.bytes().all(|b| b.is_ascii_digit()) {
            return s == alt;
        }
        let (head, tail) = alt.split_once("[0-9]{").unwrap_or((alt, "0}"));
        let k: usize = tail.trim_end_matches('}').parse().unwrap_or(0);
        let (prefix, class) = match head.find('[') {
            Some(i) => (&head[..i], &head[i..]),
            None => (&head[..head.len() - 1], &head[head.len() - 1..]),
        };
        let (lo, hi) = if class.starts_with('[') {
            (class.as_bytes()[1], class.as_bytes()[3])
        } else {
            (class.as_bytes()[0], class.as_bytes()[0])
        };
        s.len() == prefix.len() + 1 + k && s.starts_with(prefix) && (lo..=hi).contains(&s.as_bytes()[prefix.len()])
    }
}
