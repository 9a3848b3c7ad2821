//! The peer's dialect, fact by fact: one row per fact of `../shared/reference/market-api-facts.md` that can be
//! observed over HTTP, each asserting the status and the whole body (placeholders only for what no one can know
//! in advance: a publication's time, a challenge's random text). Where Dragon deliberately answers otherwise
//! (it does more than the peer, or does not copy a bug of it), the row says why, and `docs/api.md` lists it.
//!
//! Rows share one server and World per test function, grouped by route.

use crate::harness::database;
use crate::market::{Server, World, app_order_of, provider, request_of};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::app_registry::AppRegistry;
use dragon::chain::contracts::hub::{DragonHub, IexecLibOrders_v5 as sol};
use dragon::order::{AnyOrder, signature};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How a row authenticates.
enum Auth<'a> {
    No,
    /// A challenge of this key, signed now (single use).
    As(&'a PrivateKeySigner),
    Raw(String),
}

/// The table's client: requests at the host root, answers compared exactly.
struct Table {
    base: String,
    chain: u64,
    http: reqwest::Client,
    /// Rows asserted by this test function.
    rows: AtomicUsize,
}

fn err(error: &str, code: &str) -> Value {
    json!({"ok": false, "error": error, "code": code})
}

/// Whether `got` is `expected`, where `"<iso>"` stands for an ISO-8601 time with milliseconds, `"<challenge>"`
/// for the peer's login text, `"<any>"` for any value.
fn same(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::String(e), _) if e == "<any>" => true,
        (Value::String(e), Value::String(g)) if e == "<iso>" => {
            g.len() == 24 && g.ends_with('Z') && g.as_bytes()[10] == b'T' && g.as_bytes()[19] == b'.'
        }
        (Value::String(e), Value::String(g)) if e == "<challenge>" => g
            .strip_prefix("Sign this message to log into iExec Gateway: ")
            .is_some_and(|r| r.len() == 64 && r.bytes().all(|b| b.is_ascii_hexdigit())),
        (Value::Object(e), Value::Object(g)) => {
            e.len() == g.len() && e.iter().all(|(k, v)| g.get(k).is_some_and(|x| same(v, x)))
        }
        (Value::Array(e), Value::Array(g)) => e.len() == g.len() && e.iter().zip(g).all(|(a, b)| same(a, b)),
        _ => expected == got,
    }
}

impl Table {
    fn new(server: &Server) -> Table {
        Table {
            base: server.base.clone(),
            chain: server.chain_id,
            http: reqwest::Client::new(),
            rows: AtomicUsize::new(0),
        }
    }

    async fn login(&self, key: &PrivateKeySigner) -> String {
        let url = format!("{}/challenge?chainId={}&address={}", self.base, self.chain, key.address());
        let c: Value = self.http.get(url).send().await.expect("challenge").json().await.expect("JSON");
        let text = c["data"]["message"]["challenge"].as_str().expect("challenge text");
        let hash = dragon::api::auth::challenge_hash(self.chain, text);
        format!("{hash:#x}_{}_{}", signature::sign_digest(key, &hash).expect("sign"), key.address())
    }

    async fn call(&self, method: Method, path: &str, auth: Auth<'_>, body: Option<&str>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::No => {}
            Auth::As(key) => req = req.header("authorization", self.login(key).await),
            Auth::Raw(h) => req = req.header("authorization", h),
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// One fact: the request, and the peer's answer, exactly.
    async fn row(
        &self,
        fact: &str,
        (method, path): (Method, &str),
        auth: Auth<'_>,
        body: Option<Value>,
        status: u16,
        expected: Value,
    ) -> Value {
        let text = body.map(|b| b.to_string());
        self.row_raw(fact, (method, path), auth, text.as_deref(), status, expected).await
    }

    async fn row_raw(
        &self,
        fact: &str,
        (method, path): (Method, &str),
        auth: Auth<'_>,
        body: Option<&str>,
        status: u16,
        expected: Value,
    ) -> Value {
        let (s, got) = self.call(method.clone(), path, auth, body).await;
        assert!(
            s == status && same(&expected, &got),
            "fact: {fact}\n{method} {path}\nexpected {status} {expected}\n     got {s} {got}"
        );
        self.counted();
        got
    }

    /// A row where Dragon deliberately answers otherwise than the peer; `why` says why (docs/api.md lists it).
    #[allow(clippy::too_many_arguments)]
    async fn differs(
        &self,
        fact: &str,
        why: &str,
        req: (Method, &str),
        auth: Auth<'_>,
        body: Option<Value>,
        status: u16,
        expected: Value,
    ) -> Value {
        assert!(!why.is_empty());
        self.row(&format!("{fact} [Dragon differs: {why}]"), req, auth, body, status, expected).await
    }

    /// A row asserted outside [`Table::row`] (a wait for what the chain did, a probe).
    fn counted(&self) {
        self.rows.fetch_add(1, Ordering::Relaxed);
    }

    async fn get(&self, path: &str) -> Value {
        let (s, b) = self.call(Method::GET, path, Auth::No, None).await;
        assert_eq!(s, 200, "{path}: {b}");
        b
    }
}

fn get(path: &str) -> (Method, &str) {
    (Method::GET, path)
}

fn post(path: &str) -> (Method, &str) {
    (Method::POST, path)
}

fn put(path: &str) -> (Method, &str) {
    (Method::PUT, path)
}

/// An order as the peer serves it back: addresses checksummed, uint fields as JSON numbers.
fn served(o: &AnyOrder) -> Value {
    let mut v = o.to_json();
    for f in ["appprice", "datasetprice", "workerpoolprice", "appmaxprice", "datasetmaxprice", "workerpoolmaxprice"] {
        if let Some(n) = v[f].as_str().and_then(|s| s.parse::<u64>().ok()) {
            v[f] = json!(n);
        }
    }
    for f in ["volume", "category", "trust"] {
        if let Some(n) = v[f].as_str().and_then(|s| s.parse::<u64>().ok()) {
            v[f] = json!(n);
        }
    }
    v
}

/// A listed or published record of `o`.
fn record(w: &World, o: &AnyOrder, remaining: u64, status: &str, signer: Address, at: &str) -> Value {
    let mut r = json!({
        "orderHash": o.order_hash(&w.domain).to_string(),
        "chainId": w.deployment.chain_id,
        "order": served(o),
        "remaining": remaining,
        "status": status,
        "publicationTimestamp": at,
        "signer": signer.to_checksum(None),
    });
    if let AnyOrder::Dataset(d) = o {
        r["bulk"] = json!(d.volume >= U256::from((1u64 << 53) - 2) && d.datasetprice.0.is_zero());
    }
    r
}

fn hash(w: &World, o: &AnyOrder) -> String {
    o.order_hash(&w.domain).to_string()
}

/// `{"order": o}` as a body.
fn body(o: &AnyOrder) -> Option<Value> {
    Some(json!({"order": o.to_json()}))
}

fn with_app(o: AnyOrder, f: impl FnOnce(&mut dragon::order::AppOrder)) -> AnyOrder {
    let AnyOrder::App(mut a) = o else { panic!("an app order") };
    f(&mut a);
    AnyOrder::App(a)
}

fn with_request(o: AnyOrder, f: impl FnOnce(&mut dragon::order::RequestOrder)) -> AnyOrder {
    let AnyOrder::Request(mut r) = o else { panic!("a request") };
    f(&mut r);
    AnyOrder::Request(r)
}

async fn until_status(t: &Table, path: &str, status: &str) -> Value {
    crate::harness::until_within(&format!("{path} {status}"), Duration::from_secs(30), async || {
        let (_, b) = t.call(Method::GET, path, Auth::No, None).await;
        (b["status"] == status).then_some(b)
    })
    .await
}

fn done(t: &Table, test: &str) {
    println!("dialect table, {test}: {} rows", t.rows.load(Ordering::Relaxed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_envelope_chain_challenge_and_authorization() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let t = Table::new(&server);
    let c = w.deployment.chain_id;
    let owner = w.owner.address();

    // -- Envelope; GET /version
    t.differs(
        "GET /version: {ok, version}",
        "the version is Dragon's own, not the peer's 7.1.2",
        get("/version"),
        Auth::No,
        None,
        200,
        json!({"ok": true, "version": env!("CARGO_PKG_VERSION")}),
    )
    .await;
    t.differs(
        "routes at the host root; an unknown route",
        "the peer (koa) answers 404 with the text `Not Found`; Dragon answers every error in JSON",
        get("/nowhere"),
        Auth::No,
        None,
        404,
        err("Not Found", "not_found"),
    )
    .await;
    t.differs(
        "a method a route does not have",
        "the peer answers 405 with no body; Dragon adds the JSON error body (and the Allow header)",
        (Method::DELETE, "/apporders"),
        Auth::No,
        None,
        405,
        err("Method Not Allowed", "method_not_allowed"),
    )
    .await;

    // -- chainId: required on every route but /version, compared as text with the served chain.
    for route in ["/apporders?app=any", "/deals", "/categories", "/ohlc?category=0"] {
        let expected = err("chainId is a required field", "bad_request");
        t.row("chainId missing: 400 chainId is a required field", get(route), Auth::No, None, 400, expected).await;
    }
    t.row(
        "chainId missing on GET by hash: 400",
        get(&format!("/apporders/{:#x}", B256::repeat_byte(1))),
        Auth::No,
        None,
        400,
        err("chainId is a required field", "bad_request"),
    )
    .await;
    t.row(
        "chainId unknown: 400 chainId <value> is not supported",
        get("/apporders?chainId=1&app=any"),
        Auth::No,
        None,
        400,
        err("chainId 1 is not supported", "bad_request"),
    )
    .await;
    t.row(
        "chainId compared as a string: 031337 is not the served 31337",
        get(&format!("/deals?chainId=0{c}")),
        Auth::No,
        None,
        400,
        err(&format!("chainId 0{c} is not supported"), "bad_request"),
    )
    .await;
    t.row(
        "POST: chainId validated before the authorization (400 even without a header)",
        post("/apporders"),
        Auth::No,
        body(&w.app_order(1, 1, 1)),
        400,
        err("chainId is a required field", "bad_request"),
    )
    .await;
    t.row(
        "PUT: chainId validated before the authorization",
        put("/apporders?chainId=5"),
        Auth::No,
        Some(json!({"orderHash": format!("{:#x}", B256::ZERO)})),
        400,
        err("chainId 5 is not supported", "bad_request"),
    )
    .await;
    t.differs(
        "GET /metrics without chainId",
        "the peer answers 400 chainId is a required field; Dragon answers its Prometheus metrics there",
        get("/metrics"),
        Auth::No,
        None,
        200,
        json!("<any>"),
    )
    .await;
    let (s, text) = t.call(Method::GET, "/metrics", Auth::No, None).await;
    assert!(s == 200 && text.as_str().is_some_and(|m| m.contains("dragon_open_orders")), "{text}");

    // -- GET /challenge
    t.row(
        "GET /challenge: {ok, data: typedData}, the domain's chainId a string",
        get(&format!("/challenge?chainId={c}&address={owner}")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "data": {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"}
                ],
                "Challenge": [{"name": "challenge", "type": "string"}]
            },
            "domain": {"name": "iExec Gateway", "version": "1", "chainId": c.to_string()},
            "primaryType": "Challenge",
            "message": {"challenge": "<challenge>"}
        }}),
    )
    .await;
    t.row(
        "GET /challenge without address: 400 address is a required field",
        get(&format!("/challenge?chainId={c}")),
        Auth::No,
        None,
        400,
        err("address is a required field", "bad_request"),
    )
    .await;
    t.row(
        "GET /challenge with a bad address: 400 address is not a valid ethereum address",
        get(&format!("/challenge?chainId={c}&address=0x123")),
        Auth::No,
        None,
        400,
        err("address is not a valid ethereum address", "bad_request"),
    )
    .await;
    t.row(
        "GET /challenge: the address is checked before chainId (yup checks fields last first)",
        get("/challenge?address=nope"),
        Auth::No,
        None,
        400,
        err("address is not a valid ethereum address", "bad_request"),
    )
    .await;
    let first = t.get(&format!("/challenge?chainId={c}&address={owner}")).await;
    let second = t
        .differs(
            "(src) while a challenge is unused, /challenge returns the same one",
            "Dragon gives a fresh challenge each time, valid 5 minutes (the peer's never expires): two logins of one \
             address at once do not spend each other's challenge",
            get(&format!("/challenge?chainId={c}&address={owner}")),
            Auth::No,
            None,
            200,
            json!("<any>"),
        )
        .await;
    assert_ne!(first["data"]["message"], second["data"]["message"]);

    // -- Authorization: every failure is 403 invalid authorization, whatever the reason.
    let refused = err("invalid authorization", "auth_invalid");
    let path = format!("/apporders?chainId={c}");
    let order = body(&w.app_order(1, 1, 2));
    t.row("no authorization header", post(&path), Auth::No, order.clone(), 403, refused.clone()).await;
    t.row("garbage authorization", post(&path), Auth::Raw("garbage".into()), order.clone(), 403, refused.clone()).await;
    let unknown = format!("{:#x}_0x{}_{owner}", B256::repeat_byte(7), "ab".repeat(65));
    t.row("an unknown challenge hash", post(&path), Auth::Raw(unknown), order.clone(), 403, refused.clone()).await;
    let theirs = t.login(&w.requester).await;
    let swapped = theirs.replace(&w.requester.address().to_string(), &owner.to_string());
    t.row("a challenge signed by another", post(&path), Auth::Raw(swapped), order.clone(), 403, refused.clone()).await;
    let zero = format!("{:#x}_0x{}_{}", B256::repeat_byte(7), "ab".repeat(65), Address::ZERO);
    t.row("the zero address", post(&path), Auth::Raw(zero), order.clone(), 403, refused.clone()).await;
    let once = t.login(&w.owner).await;
    let first = w.app_order(1, 1, 3);
    t.row(
        "a valid authorization publishes (200 {ok, published})",
        post(&path),
        Auth::Raw(once.clone()),
        body(&first),
        200,
        json!({"ok": true, "published": record(&w, &first, 1, "open", owner, "<iso>")}),
    )
    .await;
    t.row("a challenge is single use: replay", post(&path), Auth::Raw(once), order.clone(), 403, refused.clone()).await;
    t.row(
        "PUT without authorization",
        put(&path),
        Auth::No,
        Some(json!({"orderHash": hash(&w, &first)})),
        403,
        refused.clone(),
    )
    .await;
    t.differs(
        "POST /{kind}orders/batch (Dragon's): authentication before the body",
        "beyond the peer: the batch route is Dragon's own; it answers auth failures as the peer's routes do",
        post(&format!("/apporders/batch?chainId={c}")),
        Auth::No,
        Some(json!({"orders": []})),
        403,
        refused.clone(),
    )
    .await;

    // -- Bodies that are not JSON (peer bug 5: 500 Internal error).
    t.row_raw(
        "a body that is not JSON [beyond, peer bug 5: the peer answers 500 Internal error]",
        post(&path),
        Auth::As(&w.owner),
        Some("{not json"),
        400,
        err("the body is not JSON: key must be a string at line 1 column 2", "bad_request"),
    )
    .await;

    // -- Rate limit: 429 Rate limit exceeded.
    let mut limited = w.config(database().await);
    limited.limits.per_ip_per_second = 2;
    let small = Server::start(limited).await;
    let t2 = Table::new(&small);
    let mut seen = None;
    for _ in 0..10 {
        let (s, b) = t2.call(Method::GET, "/version", Auth::No, None).await;
        if s == 429 {
            seen = Some(b);
            break;
        }
    }
    let b = seen.expect("a 429 within 10 requests at 2 per second");
    assert!(
        same(&err("Rate limit exceeded", "rate_limited"), &b),
        "429 [Dragon differs: per second and configurable (`per_ip_per_second`, default 2,000), not 100 a minute; \
         the socket's address, not x-real-ip/x-forwarded-for; no exempted origin]: {b}"
    );
    t.counted();
    small.shutdown().await;
    server.shutdown().await;
    done(&t, "envelope, chainId, challenge, authorization");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_publication_rules_in_the_peers_order_and_words() {
    let w = World::new().await;
    let mut config = w.config(database().await);
    // The peer's cap on open orders per signer and kind, so that its message is word for word.
    config.market.max_open_orders = 50;
    let server = Server::start(config).await;
    let t = Table::new(&server);
    let c = w.deployment.chain_id;
    let owner = w.owner.address();
    let apps = format!("/apporders?chainId={c}");
    let requests = format!("/requestorders?chainId={c}");

    // -- Body validation: 400 with yup's message.
    let o = w.app_order(1, 5, 1);
    let mut v = o.to_json();
    v.as_object_mut().expect("object").remove("volume");
    t.row(
        "body: a missing field",
        post(&apps),
        Auth::As(&w.owner),
        Some(json!({"order": v})),
        400,
        err("order.volume is a required field", "invalid_order"),
    )
    .await;
    let mut v = o.to_json();
    v["app"] = json!("0x1234");
    t.row(
        "body: a bad address",
        post(&apps),
        Auth::As(&w.owner),
        Some(json!({"order": v})),
        400,
        err("order.app is not a valid ethereum address", "invalid_order"),
    )
    .await;
    let zero_volume = w.signed(&w.owner, app_order_of(w.app, 1, 0, 2));
    t.row(
        "body: volume 0",
        post(&apps),
        Auth::As(&w.owner),
        body(&zero_volume),
        400,
        err("order.volume must be greater than or equal to 1", "invalid_order"),
    )
    .await;
    t.row(
        "body: no order",
        post(&apps),
        Auth::As(&w.owner),
        Some(json!({})),
        400,
        err("order is a required field", "invalid_order"),
    )
    .await;
    let mut v = o.to_json();
    v.as_object_mut().expect("object").remove("sign");
    v["volume"] = json!("zero");
    t.row(
        "body: the last field in error is reported (yup checks fields last first)",
        post(&apps),
        Auth::As(&w.owner),
        Some(json!({"order": v})),
        400,
        err("order.sign is a required field", "invalid_order"),
    )
    .await;
    let mut v = o.to_json();
    v["sign"] = json!("0xnot-hex");
    t.row(
        "body: a sign that is not hex [beyond, peer bug 4: its pattern is unanchored and the chain call fails, 500]",
        post(&apps),
        Auth::As(&w.owner),
        Some(json!({"order": v})),
        400,
        err("order.sign must be a valid signature", "invalid_order"),
    )
    .await;
    let big = w.signed(&w.owner, app_order_of(w.app, (1 << 53) + 1, 5, 3));
    let mut expected = record(&w, &big, 5, "open", owner, "<iso>");
    expected["order"]["appprice"] = json!("9007199254740993");
    t.differs(
        "body: a uint above 2^53-1 (order.appprice must be less than or equal to 9007199254740991)",
        "peer bug 2, not copied: the order is valid on chain, so Dragon publishes it with its exact EIP-712 hash and \
         prints the value as an exact decimal string",
        post(&apps),
        Auth::As(&w.owner),
        body(&big),
        200,
        json!({"ok": true, "published": expected}),
    )
    .await;
    let mut v = o.to_json();
    v["appprice"] = json!("18446744073709551616");
    t.row(
        "body: a uint above what the order book holds (Dragon's bound, in yup's words)",
        post(&apps),
        Auth::As(&w.owner),
        Some(json!({"order": v})),
        400,
        err("order.appprice must be less than or equal to 18446744073709551615", "invalid_order"),
    )
    .await;

    // -- Records: lowercase addresses are normalised, uint fields printed as JSON numbers.
    let lower = w.app_order(2, 7, 4);
    let mut v = lower.to_json();
    v["app"] = json!(format!("{:#x}", w.app).to_lowercase());
    v["appprice"] = json!(2);
    t.row(
        "record: {orderHash, order, chainId, signer, remaining, status, publicationTimestamp}, addresses checksummed",
        post(&apps),
        Auth::As(&w.owner),
        Some(json!({"order": v})),
        200,
        json!({"ok": true, "published": record(&w, &lower, 7, "open", owner, "<iso>")}),
    )
    .await;

    // -- 2. Already published (and not dead).
    t.row(
        "2. an open order published again: order already published",
        post(&apps),
        Auth::As(&w.owner),
        body(&lower),
        403,
        err("order already published", "duplicate_order"),
    )
    .await;
    // -- 3. The signer owns the asset, and is the authenticated address.
    let stranger = w.signed(&w.owner, app_order_of(Address::repeat_byte(0x42), 1, 1, 5));
    t.row(
        "3. an app the registry does not know: Resource not deployed",
        post(&apps),
        Auth::As(&w.owner),
        body(&stranger),
        403,
        err("Resource not deployed", "unknown_asset"),
    )
    .await;
    t.row(
        "3. signer != authenticated address: only order signer <owner> can publish an order",
        post(&apps),
        Auth::As(&w.requester),
        body(&w.app_order(1, 1, 6)),
        403,
        err(&format!("only order signer {} can publish an order", owner.to_checksum(None)), "not_owner"),
    )
    .await;
    let req_of_other = w.request(&w.other, 10, 1, 0, 7);
    t.row(
        "3. a requestorder's signer is its requester",
        post(&requests),
        Auth::As(&w.requester),
        body(&req_of_other),
        403,
        err(&format!("only order signer {} can publish an order", w.other.address().to_checksum(None)), "not_owner"),
    )
    .await;
    // -- 4. The signature, as the hub verifies it.
    let mut other_sig = w.app_order(1, 1, 8);
    other_sig.set_sign(w.app_order(1, 1, 9).sign().cloned().expect("signed"));
    t.row(
        "4. the signature of another order: invalid sign",
        post(&apps),
        Auth::As(&w.owner),
        body(&other_sig),
        403,
        err("invalid sign", "invalid_signature"),
    )
    .await;
    t.row(
        "4. an order signed by a non-owner: invalid sign",
        post(&apps),
        Auth::As(&w.owner),
        body(&w.signed(&w.requester, w.app_order(1, 1, 10))),
        403,
        err("invalid sign", "invalid_signature"),
    )
    .await;
    let mut short = w.app_order(1, 1, 11);
    short.set_sign(Bytes::from(vec![1, 2, 3]));
    t.row(
        "4. a signature of a bad length: invalid sign",
        post(&apps),
        Auth::As(&w.owner),
        body(&short),
        403,
        err("invalid sign", "invalid_signature"),
    )
    .await;
    let mut unsigned = w.app_order(1, 1, 12);
    unsigned.set_sign(Bytes::new());
    t.row(
        "4. no signature, no presignature: invalid sign",
        post(&apps),
        Auth::As(&w.owner),
        body(&unsigned),
        403,
        err("invalid sign", "missing_signature"),
    )
    .await;
    let presigned = w.app_order(1, 1, 13);
    let AnyOrder::App(a) = &presigned else { unreachable!() };
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let op = sol::AppOrderOperation { order: sol::AppOrder::from(a), operation: 0, sign: Bytes::new() };
    hub.manageAppOrder(op).send().await.expect("presign").get_receipt().await.expect("mined");
    let mut bare = presigned.clone();
    bare.set_sign(Bytes::new());
    t.differs(
        "4. a presigned order (hub.manageAppOrder SIGN) with sign 0x",
        "peer bug 3, not copied: the hub accepts it in matchOrders, so Dragon publishes it",
        post(&apps),
        Auth::As(&w.owner),
        body(&bare),
        200,
        json!({"ok": true, "published": record(&w, &bare, 1, "open", owner, "<iso>")}),
    )
    .await;
    // -- 6. Volume left on chain.
    let closed = w.app_order(1, 3, 14);
    let AnyOrder::App(a) = &closed else { unreachable!() };
    let op = sol::AppOrderOperation { order: sol::AppOrder::from(a), operation: 1, sign: Bytes::new() };
    let mined = hub.manageAppOrder(op).send().await.expect("close").get_receipt().await.expect("mined");
    // Dragon reads consumed volumes from chain sync's index, not from the node (issue 20): once sync has the block.
    server.synced(mined.block_number.expect("block")).await;
    t.row(
        "6. consumed on chain (closed): order already consumed",
        post(&apps),
        Auth::As(&w.owner),
        body(&closed),
        403,
        err("order already consumed", "fully_consumed"),
    )
    .await;
    // -- 7. Workerpool owner's stake: floor(price * 30 / 100) * remaining; equality passes.
    let stake = hub.viewAccount(owner).call().await.expect("viewAccount").stake;
    let stake_u64 = u64::try_from(stake).expect("stake fits");
    // price with floor(price * 30 / 100) == stake exactly (stake = 10^15 nRLC here: 1,000,000 RLC).
    let price = (stake_u64 * 100).div_ceil(30);
    assert_eq!(price * 30 / 100, stake_u64);
    let pools = format!("/workerpoolorders?chainId={c}");
    let exact = w.pool_order(price, 1, 4, 15);
    t.row(
        "7. a workerpoolorder whose lock equals the stake is published",
        post(&pools),
        Auth::As(&w.owner),
        body(&exact),
        200,
        json!({"ok": true, "published": record(&w, &exact, 1, "open", owner, "<iso>")}),
    )
    .await;
    t.row(
        "7. one more nRLC of lock: workerpool owner's stake is too low to cover required workerpool lock",
        post(&pools),
        Auth::As(&w.owner),
        body(&w.pool_order(price + 4, 1, 4, 16)),
        403,
        err("workerpool owner's stake is too low to cover required workerpool lock", "insufficient_stake"),
    )
    .await;
    // -- 8. Requester's stake: (appmaxprice + datasetmaxprice + workerpoolmaxprice) * remaining.
    let rstake =
        u64::try_from(hub.viewAccount(w.requester.address()).call().await.expect("stake").stake).expect("fits");
    let greedy = w.signed(
        &w.requester,
        request_of(w.requester.address(), w.app, [rstake / 2, rstake - rstake / 2 + 1], 1, 0, "{}", 17),
    );
    t.row(
        "8. requester stake is too low to cover requestorder payment, minimum stake required is <n> nRLC",
        post(&requests),
        Auth::As(&w.requester),
        body(&greedy),
        403,
        err(
            &format!(
                "requester stake is too low to cover requestorder payment, minimum stake required is {} nRLC",
                rstake + 1
            ),
            "insufficient_stake",
        ),
    )
    .await;
    // -- 9. A request needs a matchable open apporder (and datasetorder), cheapest first.
    let app2 = {
        let d = &w.deployment;
        let acct = dragon::chain::setup::Account::new(&w.node.url(), &w.owner).expect("account");
        dragon::chain::setup::create_app(d, &acct, "second", b"docker.io/dragon/second:1").await.expect("app")
    };
    let for_app2 = w.signed(&w.requester, request_of(w.requester.address(), app2, [5, 5], 1, 0, "", 18));
    t.row(
        "9. no apporder for the app: No apporder published for app <app>",
        post(&requests),
        Auth::As(&w.requester),
        body(&for_app2),
        403,
        err(&format!("No apporder published for app {}", app2.to_checksum(None)), "no_compatible_offer"),
    )
    .await;
    let tee = with_request(w.request(&w.requester, 5, 1, 0, 19), |r| r.tag = B256::with_last_byte(1));
    let tee = w.signed(&w.requester, tee);
    t.row(
        "9. a TEE request and no TEE apporder: No tee enabled apporder published for app <app>",
        post(&requests),
        Auth::As(&w.requester),
        body(&tee),
        403,
        err(&format!("No tee enabled apporder published for app {}", w.app.to_checksum(None)), "no_compatible_offer"),
    )
    .await;
    // The app's cheapest open order is at price 1 (the presigned one, published first among them).
    let cheap = w.signed(&w.requester, request_of(w.requester.address(), w.app, [0, 5], 1, 0, "", 20));
    t.row(
        "9. appmaxprice below the cheapest: appmaxprice for app <app> is too low, actual best price is <p> nRLC",
        post(&requests),
        Auth::As(&w.requester),
        body(&cheap),
        403,
        err(
            &format!("appmaxprice for app {} is too low, actual best price is 1 nRLC", w.app.to_checksum(None)),
            "max_price_too_low",
        ),
    )
    .await;
    let with_dataset = w.signed(
        &w.requester,
        with_request(request_of(w.requester.address(), w.app, [5, 5], 1, 0, "", 21), |r| r.dataset = w.dataset),
    );
    t.row(
        "9. no datasetorder: No datasetorder published for dataset <d>",
        post(&requests),
        Auth::As(&w.requester),
        body(&with_dataset),
        403,
        err(&format!("No datasetorder published for dataset {}", w.dataset.to_checksum(None)), "no_compatible_offer"),
    )
    .await;
    let ds = w.dataset_order(3, 10, 22);
    t.row(
        "a datasetorder's record carries bulk (false here)",
        post(&format!("/datasetorders?chainId={c}")),
        Auth::As(&w.owner),
        body(&ds),
        200,
        json!({"ok": true, "published": record(&w, &ds, 10, "open", owner, "<iso>")}),
    )
    .await;
    t.row(
        "9. datasetmaxprice below the cheapest: datasetmaxprice for dataset <d> is too low, actual best price is <p> nRLC",
        post(&requests),
        Auth::As(&w.requester),
        body(&with_dataset),
        403,
        err(
            &format!(
                "datasetmaxprice for dataset {} is too low, actual best price is 3 nRLC",
                w.dataset.to_checksum(None)
            ),
            "max_price_too_low",
        ),
    )
    .await;
    let empty_params = w.signed(&w.requester, request_of(w.requester.address(), w.app, [5, 5], 2, 3, "", 23));
    t.row(
        "10. a requestorder with params \"\" is published: {ok, published}",
        post(&requests),
        Auth::As(&w.requester),
        body(&empty_params),
        200,
        json!({"ok": true, "published": record(&w, &empty_params, 2, "open", w.requester.address(), "<iso>")}),
    )
    .await;
    // -- 5. At most 50 open orders per signer and kind (Dragon's cap is `max_open_orders`, 50 in this test).
    let open_now = t.get(&format!("/apporders?chainId={c}&appOwner={owner}")).await["count"].as_u64().expect("count");
    let login = t.login(&w.owner).await;
    let (_, s) = t.call(Method::POST, &format!("/sessions?chainId={c}"), Auth::Raw(login), None).await;
    let bearer = format!("Bearer {}", s["token"].as_str().expect("token"));
    let fill: Vec<Value> =
        (0..50 - open_now).map(|i| json!({"order": w.app_order(1, 1, 100 + i as u8).to_json()})).collect();
    let (s, b) = t
        .call(
            Method::POST,
            &format!("/apporders/batch?chainId={c}"),
            Auth::Raw(bearer),
            Some(&json!({"orders": fill}).to_string()),
        )
        .await;
    assert!(s == 200 && b["results"].as_array().is_some_and(|r| r.iter().all(|x| x["ok"] == true)), "{b}");
    t.row(
        "5. the 51st open apporder: maximum of 50 published open apporder has been reached for wallet <s>",
        post(&apps),
        Auth::As(&w.owner),
        body(&w.app_order(1, 1, 200)),
        403,
        err(
            &format!("maximum of 50 published open apporder has been reached for wallet {}", owner.to_checksum(None)),
            "too_many_orders",
        ),
    )
    .await;
    server.shutdown().await;
    done(&t, "publication");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_listings_and_one_order() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let t = Table::new(&server);
    let c = w.deployment.chain_id;
    let owner = w.owner.address();
    let other = w.other.address();
    let zero = Address::ZERO;

    // The book: app orders at prices 3, 1, 2 (published in that order), one restricted to `other` as requester,
    // one restricted to the pool, one with the TEE bit; a bulk dataset order; pool orders in categories 1 and 2
    // with trusts 1 and 5; requests.
    let a3 = w.app_order(3, 10, 1);
    let a1 = w.app_order(1, 10, 2);
    let a2 = w.app_order(2, 100, 3);
    let a_req = w.signed(&w.owner, with_app(w.app_order(1, 10, 4), |a| a.requesterrestrict = other));
    let a_pool = w.signed(&w.owner, with_app(w.app_order(1, 10, 5), |a| a.workerpoolrestrict = w.pool));
    let a_tee = w.signed(&w.owner, with_app(w.app_order(4, 10, 6), |a| a.tag = B256::with_last_byte(1)));
    let d_bulk = w.dataset_order(0, (1 << 53) - 1, 7);
    let d_paid = w.dataset_order(5, 10, 8);
    let p1 = w.pool_order(9, 5, 1, 9);
    let p5 = with_pool_trust(&w, w.pool_order(8, 5, 1, 10), 5);
    let p2 = w.pool_order(7, 5, 2, 11);
    let mut published = std::collections::HashMap::new();
    for o in [&a3, &a1, &a2, &a_req, &a_pool, &a_tee, &d_bulk, &d_paid, &p1, &p5, &p2] {
        let (s, b) = server.publish(&w.owner, o).await;
        assert_eq!(s, 200, "{b}");
        published.insert(hash(&w, o), b["published"]["publicationTimestamp"].as_str().expect("time").to_owned());
    }
    // Requests in category 3 (no pool there: they rest), at workerpoolmaxprice 4, 6, 6.
    let r4 = w.request(&w.requester, 4, 1, 3, 12);
    let r6 = w.request(&w.requester, 6, 1, 3, 13);
    let r6b = with_request(w.request(&w.requester, 6, 1, 3, 14), |r| r.workerpool = w.pool);
    let r6b = w.signed(&w.requester, r6b);
    for o in [&r4, &r6, &r6b] {
        let (s, b) = server.publish(&w.requester, o).await;
        assert_eq!(s, 200, "{b}");
        published.insert(hash(&w, o), b["published"]["publicationTimestamp"].as_str().expect("time").to_owned());
    }
    let rec = |o: &AnyOrder, signer: Address| {
        let remaining = o.volume().to::<u64>();
        record(&w, o, remaining, "open", signer, &published[&hash(&w, o)])
    };
    let list = |orders: Vec<Value>, count: u64| json!({"ok": true, "orders": orders, "count": count});
    let q = |route: &str, extra: &str| format!("/{route}?chainId={c}{extra}");

    // -- GET /apporders
    t.row(
        "GET /apporders without app or appOwner: 400 app or appOwner is required",
        get(&q("apporders", "")),
        Auth::No,
        None,
        400,
        err("app or appOwner is required", "bad_request"),
    )
    .await;
    let app = w.app;
    t.row(
        "GET /apporders?app: public orders only, by appprice, then publication time, then hash",
        get(&q("apporders", &format!("&app={app}"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a1, owner), rec(&a2, owner), rec(&a3, owner), rec(&a_tee, owner)], 4),
    )
    .await;
    t.row(
        "requester=<address>: public or restricted to it",
        get(&q("apporders", &format!("&app={app}&requester={other}"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a1, owner), rec(&a_req, owner), rec(&a2, owner), rec(&a3, owner), rec(&a_tee, owner)], 5),
    )
    .await;
    t.row(
        "isRequesterStrict=true: exactly that address",
        get(&q("apporders", &format!("&app={app}&requester={other}&isRequesterStrict=true"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a_req, owner)], 1),
    )
    .await;
    t.row(
        "strict without an address: public only",
        get(&q("apporders", &format!("&app={app}&isRequesterStrict=true"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a1, owner), rec(&a2, owner), rec(&a3, owner), rec(&a_tee, owner)], 4),
    )
    .await;
    t.row(
        "workerpool=any: no filter on the restriction",
        get(&q("apporders", &format!("&app={app}&workerpool=any"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a1, owner), rec(&a_pool, owner), rec(&a2, owner), rec(&a3, owner), rec(&a_tee, owner)], 5),
    )
    .await;
    t.row(
        "minTag: every bit of it set",
        get(&q("apporders", &format!("&app={app}&minTag={:#x}", B256::with_last_byte(1)))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a_tee, owner)], 1),
    )
    .await;
    t.row(
        "minTag 0x0 is ignored; maxTag: no bit outside it (untagged orders pass)",
        get(&q("apporders", &format!("&app={app}&minTag={:#x}&maxTag={:#x}", B256::ZERO, B256::ZERO))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a1, owner), rec(&a2, owner), rec(&a3, owner)], 3),
    )
    .await;
    t.row(
        "minVolume: remaining >= minVolume",
        get(&q("apporders", &format!("&app={app}&minVolume=11"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&a2, owner)], 1),
    )
    .await;
    t.row(
        "appOwner: the signer",
        get(&q("apporders", &format!("&appOwner={other}"))),
        Auth::No,
        None,
        200,
        list(vec![], 0),
    )
    .await;
    t.row(
        "a bad flag: <flag> must be a `boolean` type",
        get(&q("apporders", &format!("&app={app}&isDatasetStrict=abc"))),
        Auth::No,
        None,
        400,
        err("isDatasetStrict must be a `boolean` type, but the final value was: `\"abc\"`.", "bad_request"),
    )
    .await;
    t.row(
        "a bad restriction: <param> is neither \"any\" nor a valid ethereum address",
        get(&q("apporders", &format!("&app={app}&dataset=0x12"))),
        Auth::No,
        None,
        400,
        err("dataset is neither \"any\" nor a valid ethereum address", "bad_request"),
    )
    .await;
    // -- Paging
    t.row(
        "pageSize below 10",
        get(&q("apporders", &format!("&app={app}&pageSize=5"))),
        Auth::No,
        None,
        400,
        err("pageSize must be greater than or equal to 10", "bad_request"),
    )
    .await;
    t.row(
        "pageSize above 1000",
        get(&q("apporders", &format!("&app={app}&pageSize=1001"))),
        Auth::No,
        None,
        400,
        err("pageSize must be less than or equal to 1000", "bad_request"),
    )
    .await;
    t.row(
        "pageIndex below 0",
        get(&q("apporders", &format!("&app={app}&pageIndex=-1"))),
        Auth::No,
        None,
        400,
        err("pageIndex must be greater than or equal to 0", "bad_request"),
    )
    .await;
    t.row(
        "a page past the end: orders [] with the full count",
        get(&q("apporders", &format!("&app={app}&pageIndex=3&pageSize=10"))),
        Auth::No,
        None,
        200,
        list(vec![], 4),
    )
    .await;
    // 4 open app orders plus 6 more make 10: a full page of 10 has nextPage (the offset of the next page).
    let extra: Vec<AnyOrder> = (0..6).map(|i| w.app_order(10 + i, 1, 40 + i as u8)).collect();
    for o in &extra {
        let (s, b) = server.publish(&w.owner, o).await;
        assert_eq!(s, 200, "{b}");
        published.insert(hash(&w, o), b["published"]["publicationTimestamp"].as_str().expect("time").to_owned());
    }
    let rec = |o: &AnyOrder, signer: Address| {
        let remaining = o.volume().to::<u64>();
        record(&w, o, remaining, "open", signer, &published[&hash(&w, o)])
    };
    let mut ten = vec![rec(&a1, owner), rec(&a2, owner), rec(&a3, owner), rec(&a_tee, owner)];
    ten.extend(extra.iter().map(|o| rec(o, owner)));
    let mut full = list(ten.clone(), 10);
    full["nextPage"] = json!(10);
    t.row(
        "nextPage (a number) when the page is full, even when nothing follows",
        get(&q("apporders", &format!("&app={app}&pageSize=10"))),
        Auth::No,
        None,
        200,
        full,
    )
    .await;
    t.row(
        "the next page",
        get(&q("apporders", &format!("&app={app}&pageSize=10&pageIndex=1"))),
        Auth::No,
        None,
        200,
        list(vec![], 10),
    )
    .await;
    let mut legacy = list(ten[2..].to_vec(), 10);
    legacy["count"] = json!(10);
    t.row(
        "(src) legacy page: an offset, when neither pageIndex nor pageSize is given",
        get(&q("apporders", &format!("&app={app}&page=2"))),
        Auth::No,
        None,
        200,
        legacy,
    )
    .await;

    // -- GET /datasetorders
    let dataset = w.dataset;
    t.row(
        "GET /datasetorders without dataset or datasetOwner",
        get(&q("datasetorders", "")),
        Auth::No,
        None,
        400,
        err("dataset or datasetOwner is required", "bad_request"),
    )
    .await;
    t.row(
        "GET /datasetorders: by datasetprice; bulk in each record",
        get(&q("datasetorders", &format!("&dataset={dataset}"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&d_bulk, owner), rec(&d_paid, owner)], 2),
    )
    .await;
    t.row(
        "bulkOnly=true: datasetprice 0 and volume >= 2^53-2",
        get(&q("datasetorders", &format!("&datasetOwner={owner}&bulkOnly=true"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&d_bulk, owner)], 1),
    )
    .await;
    t.row(
        "isAppStrict=abc",
        get(&q("datasetorders", &format!("&dataset={dataset}&isAppStrict=abc"))),
        Auth::No,
        None,
        400,
        err("isAppStrict must be a `boolean` type, but the final value was: `\"abc\"`.", "bad_request"),
    )
    .await;

    // -- GET /workerpoolorders
    // Beyond the peer, each workerpool record carries its pool's track record (its figures: tests/it/track_records.rs).
    const TRACK: &str = "each workerpool record also carries trackRecord, the pool's track record from chain events (docs/track-records.md); the peer's members are unchanged";
    let tracked = |v: Value| {
        let mut v = v;
        for o in v["orders"].as_array_mut().into_iter().flatten() {
            o["trackRecord"] = json!("<any>");
        }
        v
    };
    t.differs(
        "GET /workerpoolorders: no required filter; by workerpoolprice",
        TRACK,
        get(&q("workerpoolorders", "")),
        Auth::No,
        None,
        200,
        tracked(list(vec![rec(&p2, owner), rec(&p5, owner), rec(&p1, owner)], 3)),
    )
    .await;
    t.differs(
        "category",
        TRACK,
        get(&q("workerpoolorders", "&category=1")),
        Auth::No,
        None,
        200,
        tracked(list(vec![rec(&p5, owner), rec(&p1, owner)], 2)),
    )
    .await;
    t.differs(
        "minTrust applied only above 1: trust >= minTrust",
        TRACK,
        get(&q("workerpoolorders", "&category=1&minTrust=2")),
        Auth::No,
        None,
        200,
        tracked(list(vec![rec(&p5, owner)], 1)),
    )
    .await;
    t.differs(
        "minTrust=1 is no filter",
        TRACK,
        get(&q("workerpoolorders", "&category=1&minTrust=1")),
        Auth::No,
        None,
        200,
        tracked(list(vec![rec(&p5, owner), rec(&p1, owner)], 2)),
    )
    .await;
    t.row(
        "workerpoolOwner",
        get(&q("workerpoolorders", &format!("&workerpoolOwner={other}"))),
        Auth::No,
        None,
        200,
        list(vec![], 0),
    )
    .await;

    // -- GET /requestorders
    let me = w.requester.address();
    t.row(
        "GET /requestorders: workerpool omitted = requests for any pool (0x0) only; by workerpoolmaxprice DESC",
        get(&q("requestorders", "")),
        Auth::No,
        None,
        200,
        list(vec![rec(&r6, me), rec(&r4, me)], 2),
    )
    .await;
    t.row(
        "workerpool=<address>: requests for it or any pool; same price: by publication time",
        get(&q("requestorders", &format!("&workerpool={}", w.pool))),
        Auth::No,
        None,
        200,
        list(vec![rec(&r6, me), rec(&r6b, me), rec(&r4, me)], 3),
    )
    .await;
    t.row(
        "isWorkerpoolStrict=true",
        get(&q("requestorders", &format!("&workerpool={}&isWorkerpoolStrict=true", w.pool))),
        Auth::No,
        None,
        200,
        list(vec![rec(&r6b, me)], 1),
    )
    .await;
    t.row(
        "requester, beneficiary (exact or any), category, maxTrust (trust <=)",
        get(&q("requestorders", &format!("&requester={me}&beneficiary=any&category=3&maxTrust=1"))),
        Auth::No,
        None,
        200,
        list(vec![rec(&r6, me), rec(&r4, me)], 2),
    )
    .await;
    t.row("maxTrust=0", get(&q("requestorders", "&maxTrust=0")), Auth::No, None, 200, list(vec![], 0)).await;
    t.row(
        "beneficiary of someone else",
        get(&q("requestorders", &format!("&beneficiary={zero}"))),
        Auth::No,
        None,
        200,
        list(vec![], 0),
    )
    .await;

    // -- GET one order
    let one = |o: &AnyOrder, signer: Address| {
        let mut r = rec(o, signer);
        let m = r.as_object_mut().expect("object");
        m.remove("bulk");
        m.insert("chainId".into(), json!(c.to_string()));
        m.insert("ok".into(), json!(true));
        r
    };
    t.row(
        "GET /apporders/:hash: {ok, orderHash, chainId (the query string), order, remaining, status, ...}",
        get(&q(&format!("apporders/{}", hash(&w, &a1)), "")),
        Auth::No,
        None,
        200,
        one(&a1, owner),
    )
    .await;
    t.row(
        "GET /datasetorders/:hash: no bulk (the peer builds the answer field by field)",
        get(&q(&format!("datasetorders/{}", hash(&w, &d_bulk)), "")),
        Auth::No,
        None,
        200,
        one(&d_bulk, owner),
    )
    .await;
    t.row(
        "unknown hash: 404 <kind>order not found",
        get(&q(&format!("workerpoolorders/{:#x}", B256::repeat_byte(9)), "")),
        Auth::No,
        None,
        404,
        err("workerpoolorder not found", "not_found"),
    )
    .await;
    t.row(
        "a hash of another kind: 404",
        get(&q(&format!("requestorders/{}", hash(&w, &a1)), "")),
        Auth::No,
        None,
        404,
        err("requestorder not found", "not_found"),
    )
    .await;
    t.row(
        "not a bytes32: 400 orderHash must be a bytes32 hexstring",
        get(&q("apporders/0x1234", "")),
        Auth::No,
        None,
        400,
        err("orderHash must be a bytes32 hexstring", "bad_request"),
    )
    .await;
    // -- GET /metrics?chainId: counts of open orders; +1 after a publication.
    let m = t.get(&q("metrics", "")).await;
    let block = m["lastBlock"].clone();
    t.row(
        "GET /metrics?chainId: {ok, lastBlock, checkpointBlock, apporders, ...}",
        get(&q("metrics", "")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "lastBlock": block, "checkpointBlock": block, "apporders": 12, "datasetorders": 2,
               "workerpoolorders": 3, "requestorders": 3}),
    )
    .await;
    let one_more = w.app_order(20, 1, 60);
    assert_eq!(server.publish(&w.owner, &one_more).await.0, 200);
    let m = t.get(&q("metrics", "")).await;
    assert_eq!(m["apporders"], 13, "+1 after a publication: {m}");
    t.counted();
    server.shutdown().await;
    done(&t, "listings");
}

/// `o` (a workerpool order) with `trust`, signed by the owner.
fn with_pool_trust(w: &World, o: AnyOrder, trust: u64) -> AnyOrder {
    let AnyOrder::Workerpool(mut p) = o else { panic!("a workerpool order") };
    p.trust = U256::from(trust);
    w.signed(&w.owner, AnyOrder::Workerpool(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_unpublication_and_what_the_chain_does_to_the_book() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let t = Table::new(&server);
    let c = w.deployment.chain_id;
    let owner = w.owner.address();
    let apps = format!("/apporders?chainId={c}");
    let hash_of = |o: &AnyOrder| hash(&w, o);

    let a1 = w.app_order(2, 10, 1);
    let a2 = w.app_order(3, 10, 2);
    let a3 = w.app_order(4, 10, 3);
    for o in [&a1, &a2, &a3] {
        assert_eq!(server.publish(&w.owner, o).await.0, 200);
    }
    // -- Validation of the body.
    t.row(
        "PUT: a bad target",
        put(&apps),
        Auth::As(&w.owner),
        Some(json!({"target": "everything"})),
        400,
        err(
            "target must be one of the following values: unpublish_orderHash, unpublish_last, unpublish_all",
            "bad_request",
        ),
    )
    .await;
    t.row(
        "PUT: target defaults to unpublish_orderHash, which needs orderHash",
        put(&apps),
        Auth::As(&w.owner),
        Some(json!({})),
        400,
        err("orderHash is a required field", "bad_request"),
    )
    .await;
    t.row(
        "PUT unpublish_last needs the resource field",
        put(&apps),
        Auth::As(&w.owner),
        Some(json!({"target": "unpublish_last"})),
        400,
        err("app is a required field", "bad_request"),
    )
    .await;
    t.row(
        "PUT unpublish_all of requestorders needs requester",
        put(&format!("/requestorders?chainId={c}")),
        Auth::As(&w.requester),
        Some(json!({"target": "unpublish_all"})),
        400,
        err("requester is a required field", "bad_request"),
    )
    .await;
    // -- Refusals: 403 with the peer's words.
    t.row(
        "PUT: unknown hash: <kind>order with orderHash <h> is not published",
        put(&apps),
        Auth::As(&w.owner),
        Some(json!({"orderHash": format!("{:#x}", B256::repeat_byte(5))})),
        403,
        err(&format!("apporder with orderHash {:#x} is not published", B256::repeat_byte(5)), "order_not_published"),
    )
    .await;
    t.row(
        "PUT: not the signer: only order signer <signer> can unpublish an order",
        put(&apps),
        Auth::As(&w.requester),
        Some(json!({"orderHash": hash_of(&a1)})),
        403,
        err(&format!("only order signer {} can unpublish an order", owner.to_checksum(None)), "not_signer"),
    )
    .await;
    t.row(
        "PUT: nothing to unpublish: no open <kind>order published by signer <s> for <field> <address>",
        put(&format!("/workerpoolorders?chainId={c}")),
        Auth::As(&w.owner),
        Some(json!({"target": "unpublish_all", "workerpool": format!("{:#x}", w.pool)})),
        403,
        err(
            &format!(
                "no open workerpoolorder published by signer {} for workerpool {}",
                owner.to_checksum(None),
                w.pool.to_checksum(None)
            ),
            "nothing_to_unpublish",
        ),
    )
    .await;
    // -- Unpublication: by hash, last, all; records are deleted.
    t.row(
        "PUT by hash: {ok, unpublished: [hash]}",
        put(&apps),
        Auth::As(&w.owner),
        Some(json!({"orderHash": hash_of(&a1)})),
        200,
        json!({"ok": true, "unpublished": [hash_of(&a1)]}),
    )
    .await;
    t.row(
        "an unpublished order is deleted: GET by hash 404",
        get(&format!("/apporders/{}?chainId={c}", hash_of(&a1))),
        Auth::No,
        None,
        404,
        err("apporder not found", "not_found"),
    )
    .await;
    t.row(
        "the same signed order can be published again",
        post(&apps),
        Auth::As(&w.owner),
        body(&a1),
        200,
        json!({"ok": true, "published": record(&w, &a1, 10, "open", owner, "<iso>")}),
    )
    .await;
    t.row(
        "PUT unpublish_last: the signer's most recent open order for the resource",
        put(&apps),
        Auth::As(&w.owner),
        Some(json!({"target": "unpublish_last", "app": format!("{:#x}", w.app)})),
        200,
        json!({"ok": true, "unpublished": [hash_of(&a1)]}),
    )
    .await;
    // A request that needs the app's orders, then all of them unpublished: the request dies.
    let req = w.request(&w.requester, 10, 1, 5, 4);
    assert_eq!(server.publish(&w.requester, &req).await.0, 200);
    t.row(
        "PUT unpublish_all: all of them, newest first",
        put(&apps),
        Auth::As(&w.owner),
        Some(json!({"target": "unpublish_all", "app": format!("{:#x}", w.app)})),
        200,
        json!({"ok": true, "unpublished": [hash_of(&a3), hash_of(&a2)]}),
    )
    .await;
    let dead = until_status(&t, &format!("/requestorders/{}?chainId={c}", hash_of(&req)), "dead").await;
    assert!(
        same(
            &json!({"ok": true, "orderHash": hash_of(&req), "chainId": c.to_string(), "order": served(&req),
                    "remaining": 1, "status": "dead", "publicationTimestamp": "<iso>",
                    "signer": w.requester.address().to_checksum(None)}),
            &dead
        ),
        "unpublishing the last apporder kills the requestorders it served: {dead}"
    );
    t.counted();
    t.row(
        "an unpublished order published again",
        post(&apps),
        Auth::As(&w.owner),
        body(&a2),
        200,
        json!({"ok": true, "published": record(&w, &a2, 10, "open", owner, "<iso>")}),
    )
    .await;
    let first_time = dead["publicationTimestamp"].as_str().expect("time").to_owned();
    t.row(
        "a dead order can be published again (with its first publication time, as the peer keeps it)",
        post(&format!("/requestorders?chainId={c}")),
        Auth::As(&w.requester),
        body(&req),
        200,
        json!({"ok": true, "published": record(&w, &req, 1, "open", w.requester.address(), &first_time)}),
    )
    .await;

    // -- The chain: a match on chain fills orders (remaining lowered, `filled` at 0).
    let pool = w.pool_order(5, 1, 0, 5);
    assert_eq!(server.publish(&w.owner, &pool).await.0, 200);
    let direct = w.request(&w.requester, 10, 1, 0, 6);
    w.match_directly(&w.requester, &a2, &pool, &direct).await;
    let filled = until_status(&t, &format!("/workerpoolorders/{}?chainId={c}", hash_of(&pool)), "filled").await;
    assert_eq!((filled["remaining"].as_u64(), filled["status"].as_str()), (Some(0), Some("filled")), "{filled}");
    t.counted();
    let a2_after = t.get(&format!("/apporders/{}?chainId={c}", hash_of(&a2))).await;
    assert_eq!((a2_after["remaining"].as_u64(), a2_after["status"].as_str()), (Some(9), Some("open")));
    t.counted();
    t.row(
        "a filled record stays: publishing it again is order already published",
        post(&format!("/workerpoolorders?chainId={c}")),
        Auth::As(&w.owner),
        body(&pool),
        403,
        err("order already published", "order_closed"),
    )
    .await;
    // -- Closed on chain: canceled.
    let AnyOrder::App(a) = &a2 else { unreachable!() };
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let op = sol::AppOrderOperation { order: sol::AppOrder::from(a), operation: 1, sign: Bytes::new() };
    hub.manageAppOrder(op).send().await.expect("close").get_receipt().await.expect("mined");
    let canceled = until_status(&t, &format!("/apporders/{}?chainId={c}", hash_of(&a2)), "canceled").await;
    assert_eq!(canceled["remaining"], 0, "{canceled}");
    t.counted();
    // -- The app changes hands: its former owner's open orders die; back to him, he publishes them again.
    let a4 = w.app_order(2, 10, 7);
    assert_eq!(server.publish(&w.owner, &a4).await.0, 200);
    let registry = AppRegistry::new(w.deployment.app_registry, provider(&w.node.url(), &w.owner));
    let token = U256::from_be_slice(w.app.as_slice());
    let give = registry.transferFrom(owner, w.other.address(), token);
    give.send().await.expect("transfer").get_receipt().await.expect("mined");
    until_status(&t, &format!("/apporders/{}?chainId={c}", hash_of(&a4)), "dead").await;
    t.counted();
    let back = AppRegistry::new(w.deployment.app_registry, provider(&w.node.url(), &w.other));
    let back = back.transferFrom(w.other.address(), owner, token);
    back.send().await.expect("transfer back").get_receipt().await.expect("mined");
    crate::harness::until_within("the app back", Duration::from_secs(30), async || {
        let (s, _) =
            t.call(Method::POST, &apps, Auth::As(&w.owner), Some(&json!({"order": a4.to_json()}).to_string())).await;
        (s == 200).then_some(())
    })
    .await;
    t.counted();
    server.shutdown().await;
    done(&t, "unpublication and the chain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_deals_ohlc_and_categories() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let t = Table::new(&server);
    let c = w.deployment.chain_id;
    let owner = w.owner.address();

    // Two deals on chain (blocks n and n+k), category 0, at workerpool prices 5 and 6.
    let app = w.app_order(2, 10, 1);
    let pool_a = w.pool_order(5, 1, 0, 2);
    let pool_b = w.pool_order(6, 1, 0, 3);
    let first = w.request(&w.requester, 10, 1, 0, 4);
    let second = w.request(&w.requester, 10, 1, 0, 5);
    let d1 = w.match_directly(&w.requester, &app, &pool_a, &first).await;
    let d2 = w.match_directly(&w.requester, &app, &pool_b, &second).await;
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let p = provider(&w.node.url(), &w.owner);
    // The deal as the peer stores it: viewDeal, the OrdersMatched hashes, its block and transaction.
    let deal_of = async |id: B256, request: &AnyOrder, pool: &AnyOrder| {
        let d = hub.viewDeal(id).call().await.expect("viewDeal");
        let filter = alloy::rpc::types::Filter::new()
            .address(w.deployment.hub)
            .event_signature(<DragonHub::OrdersMatched as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
            .from_block(0);
        let log = p
            .get_logs(&filter)
            .await
            .expect("logs")
            .into_iter()
            .find(|l| l.log_decode::<DragonHub::OrdersMatched>().is_ok_and(|e| e.inner.data.dealid == id))
            .expect("OrdersMatched");
        let block = log.block_number.expect("block");
        let at = p.get_block_by_number(block.into()).await.expect("block").expect("block").header.timestamp;
        let n = |v: U256| json!(u64::try_from(v).expect("small"));
        let res = |r: &dragon::chain::contracts::hub::IexecLibCore_v5::Resource| json!({"pointer": r.pointer.to_checksum(None), "owner": r.owner.to_checksum(None), "price": n(r.price)});
        json!({
            "chainId": c, "dealid": format!("{id:#x}"),
            "app": res(&d.app), "dataset": res(&d.dataset), "workerpool": res(&d.workerpool),
            "appHash": hash(&w, &app), "datasetHash": format!("{:#x}", B256::ZERO),
            "workerpoolHash": hash(&w, pool), "requestHash": hash(&w, request),
            "requester": d.requester.to_checksum(None), "beneficiary": d.beneficiary.to_checksum(None),
            "callback": d.callback.to_checksum(None), "botFirst": n(d.botFirst), "botSize": n(d.botSize),
            "volume": 1, "category": n(d.category), "trust": n(d.trust), "tag": format!("{:#x}", d.tag),
            "params": d.params, "startTime": n(d.startTime), "workerStake": n(d.workerStake),
            "schedulerRewardRatio": n(d.schedulerRewardRatio), "blockNumber": block,
            "blockTimestamp": dragon::api::iso_time(at as i64 * 1000),
            "transactionHash": format!("{:#x}", log.transaction_hash.expect("tx")),
        })
    };
    let deal1 = deal_of(d1, &first, &pool_a).await;
    let deal2 = deal_of(d2, &second, &pool_b).await;
    let (b1, b2) = (deal1["blockNumber"].as_u64().expect("n"), deal2["blockNumber"].as_u64().expect("n"));
    assert!(b2 > b1);
    crate::harness::until_within("the deals synced", Duration::from_secs(30), async || {
        let (_, b) = t.call(Method::GET, &format!("/deals?chainId={c}"), Auth::No, None).await;
        (b["count"] == 2).then_some(())
    })
    .await;

    // -- GET /deals
    t.row(
        "GET /deals: {ok, deals, count}, blockNumber desc then dealid",
        get(&format!("/deals?chainId={c}")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "deals": [deal2.clone(), deal1.clone()], "count": 2}),
    )
    .await;
    let by = |q: &str| format!("/deals?chainId={c}&{q}");
    for (fact, q, expect) in [
        ("filter requester", format!("requester={}", w.requester.address()), vec![&deal2, &deal1]),
        ("filter beneficiary", format!("beneficiary={}", owner), vec![]),
        ("filter app", format!("app={}", w.app), vec![&deal2, &deal1]),
        ("filter dataset", format!("dataset={}", w.dataset), vec![]),
        ("filter workerpool", format!("workerpool={}", w.pool), vec![&deal2, &deal1]),
        ("filter appOwner", format!("appOwner={owner}"), vec![&deal2, &deal1]),
        ("filter datasetOwner", format!("datasetOwner={owner}"), vec![]),
        ("filter workerpoolOwner", format!("workerpoolOwner={}", w.requester.address()), vec![]),
        ("filter category", "category=0".to_owned(), vec![&deal2, &deal1]),
        ("filter apporderHash", format!("apporderHash={}", hash(&w, &app)), vec![&deal2, &deal1]),
        ("filter workerpoolorderHash", format!("workerpoolorderHash={}", hash(&w, &pool_a)), vec![&deal1]),
        ("filter requestorderHash", format!("requestorderHash={}", hash(&w, &second)), vec![&deal2]),
        ("filter datasetorderHash", format!("datasetorderHash={:#x}", B256::repeat_byte(1)), vec![]),
    ] {
        let n = expect.len();
        t.row(
            &format!("GET /deals {fact}"),
            get(&by(&q)),
            Auth::No,
            None,
            200,
            json!({"ok": true, "deals": expect, "count": n}),
        )
        .await;
    }
    t.row(
        "GET /deals paging as orders: a page past the end",
        get(&by("pageIndex=1&pageSize=10")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "deals": [], "count": 2}),
    )
    .await;
    t.row(
        "GET /deals: pageSize below 10",
        get(&by("pageSize=2")),
        Auth::No,
        None,
        400,
        err("pageSize must be greater than or equal to 10", "bad_request"),
    )
    .await;
    t.row(
        "GET /deals: a bad address",
        get(&by("requester=nope")),
        Auth::No,
        None,
        400,
        err("requester is not a valid ethereum address", "bad_request"),
    )
    .await;
    // -- GET /deals/:dealid
    let mut one = deal1.clone();
    one["ok"] = json!(true);
    one["tasks"] = json!([{"taskid": "<any>", "idx": 0, "status": "UNSET", "lastEvent": null, "blockNumber": null, "results": null}]);
    t.differs(
        "GET /deals/:dealid: the deal and ok",
        "Dragon adds `tasks` (each task's status, from the hub's events)",
        get(&format!("/deals/{d1:#x}?chainId={c}")),
        Auth::No,
        None,
        200,
        one,
    )
    .await;
    t.row(
        "GET /deals/:dealid unknown: 404 deal not found",
        get(&format!("/deals/{:#x}?chainId={c}", B256::repeat_byte(3))),
        Auth::No,
        None,
        404,
        err("deal not found", "not_found"),
    )
    .await;
    t.row(
        "GET /deals/:dealid not bytes32: 400 dealid must be a bytes32 hexstring",
        get(&format!("/deals/0x12?chainId={c}")),
        Auth::No,
        None,
        400,
        err("dealid must be a bytes32 hexstring", "bad_request"),
    )
    .await;
    // -- GET /ohlc
    t.row(
        "GET /ohlc without category: 400 category is a required field",
        get(&format!("/ohlc?chainId={c}")),
        Auth::No,
        None,
        400,
        err("category is a required field", "bad_request"),
    )
    .await;
    t.row(
        "GET /ohlc: [[blockTimestamp, workerpool.price, volume]], the last 100, blockNumber desc",
        get(&format!("/ohlc?chainId={c}&category=0")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "ohlc": [
            [deal2["blockTimestamp"], 6, 1],
            [deal1["blockTimestamp"], 5, 1],
        ]}),
    )
    .await;

    // -- GET /categories: the hub's five, with their CreateCategory event.
    let filter = alloy::rpc::types::Filter::new()
        .address(w.deployment.hub)
        .event_signature(<DragonHub::CreateCategory as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .from_block(0);
    let mut cats = Vec::new();
    for l in p.get_logs(&filter).await.expect("logs") {
        let e = l.log_decode::<DragonHub::CreateCategory>().expect("CreateCategory").inner.data;
        let block = l.block_number.expect("block");
        let at = p.get_block_by_number(block.into()).await.expect("block").expect("block").header.timestamp;
        cats.push(json!({
            "catid": u64::try_from(e.catid).expect("id"), "chainId": c, "name": e.name, "description": e.description,
            "workClockTimeRef": u64::try_from(e.workClockTimeRef).expect("ref"),
            "transactionHash": format!("{:#x}", l.transaction_hash.expect("tx")), "blockNumber": block,
            "blockTimestamp": dragon::api::iso_time(at as i64 * 1000),
        }));
    }
    assert_eq!(cats.len(), 5, "the hub's default categories");
    t.row(
        "GET /categories: records with transactionHash, blockNumber, blockTimestamp; by workClockTimeRef",
        get(&format!("/categories?chainId={c}")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "categories": cats, "count": 5}),
    )
    .await;
    t.row(
        "GET /categories: minWorkClockTimeRef and maxWorkClockTimeRef, inclusive",
        get(&format!("/categories?chainId={c}&minWorkClockTimeRef=1200&maxWorkClockTimeRef=10800")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "categories": cats[1..4], "count": 3}),
    )
    .await;
    t.row(
        "GET /categories: paging bounds",
        get(&format!("/categories?chainId={c}&pageSize=9")),
        Auth::No,
        None,
        400,
        err("pageSize must be greater than or equal to 10", "bad_request"),
    )
    .await;
    t.row(
        "GET /categories: a page past the end",
        get(&format!("/categories?chainId={c}&pageIndex=1")),
        Auth::No,
        None,
        200,
        json!({"ok": true, "categories": [], "count": 5}),
    )
    .await;
    let mut two = cats[2].clone();
    two["ok"] = json!(true);
    two["chainId"] = json!(c.to_string());
    t.row(
        "GET /categories/:catid: the record and ok (chainId the query's text, as the peer answers it)",
        get(&format!("/categories/2?chainId={c}")),
        Auth::No,
        None,
        200,
        two,
    )
    .await;
    t.row(
        "GET /categories/:catid unknown: 404 category not found",
        get(&format!("/categories/9?chainId={c}")),
        Auth::No,
        None,
        404,
        err("category not found", "not_found"),
    )
    .await;
    t.row(
        "GET /categories/:catid not a number: 400",
        get(&format!("/categories/abc?chainId={c}")),
        Auth::No,
        None,
        400,
        err(
            "catid must be a `number` type, but the final value was: `NaN` (cast from the value `\"abc\"`).",
            "bad_request",
        ),
    )
    .await;
    // -- A partly consumed order is published with what is left of it (the app order of both deals: 2 of 10).
    t.row(
        "6. partly consumed on chain: published with volume - consumed",
        post(&format!("/apporders?chainId={c}")),
        Auth::As(&w.owner),
        body(&app),
        200,
        json!({"ok": true, "published": record(&w, &app, 8, "open", owner, "<iso>")}),
    )
    .await;
    server.shutdown().await;
    done(&t, "deals, ohlc, categories");
}
