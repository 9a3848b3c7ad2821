//! iExec's own JavaScript SDK (npm `iexec` 8.24.0 and 9.0.1, unchanged) against a real `dragon serve`: the flows
//! of `tests/sdk/flows.mjs`, run by node with `iexecGatewayURL` = the in-process server and `hubAddress` = the
//! hub of an anvil with Dragon's contracts. Publication (with the SDK's own hash checked against the API's),
//! unpublication by hash / last / all, every orderbook filter the SDK sends, fetch by hash, requester deals.
//!
//! Roles: KEY0 owns the app, dataset and workerpool (`appOwner`, `datasetOwner`, `poolOwner`), KEY1 is the
//! requester, KEY2 only appears in restrictions.

use crate::fixtures::{KEY0, KEY1};
use crate::harness::{database, root};
use crate::market::{Server, World};
use dragon::order::{AnyOrder, OrderKind};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

const NULL_TAG: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";
/// The TEE bit alone: a filter's `minTag` (the SDK refuses it on an order without a TEE framework).
const TEE_TAG: &str = "0x0000000000000000000000000000000000000000000000000000000000000001";
/// TEE + Scone: the TEE tag SDK 8 signs.
const SCONE_TAG: &str = "0x0000000000000000000000000000000000000000000000000000000000000003";
/// What SDK 9 ORs into every tag it signs: TEE + TDX.
const TDX_TAG: &str = "0x0000000000000000000000000000000000000000000000000000000000000009";

const KINDS: [(&str, OrderKind); 4] = [
    ("apporder", OrderKind::App),
    ("datasetorder", OrderKind::Dataset),
    ("workerpoolorder", OrderKind::Workerpool),
    ("requestorder", OrderKind::Request),
];

/// Runs `tests/sdk/flows.mjs` with `cfg` (its `flow` names the flow): the flow's JSON output, or its stderr
/// (the SDK's error message) when it exits 1.
pub async fn run_flow(cfg: Value) -> Result<Value, String> {
    let flow = cfg["flow"].as_str().unwrap_or("?").to_owned();
    let mut child = tokio::process::Command::new("node")
        .arg(root().join("tests/sdk/flows.mjs"))
        .current_dir(root().join("tests/sdk"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (on PATH?)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(cfg.to_string().as_bytes()).await.expect("write config");
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(180), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("flow {flow} timed out"))
        .expect("node output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_slice(&out.stdout).expect("flow output is JSON")),
        Some(1) => Err(stderr),
        other => panic!("flow {flow} exited with {other:?} (bad config?): {stderr}"),
    }
}

/// Runs `tests/sdk/flows.mjs` with a config built on the World's chain and the server's URL.
struct Flows {
    base: Value,
}

impl Flows {
    fn new(w: &World, server: &Server) -> Flows {
        assert!(
            root().join("tests/sdk/node_modules/iexec8").exists(),
            "iExec's SDK is not installed: run scripts/setup.sh (npm ci in tests/sdk)"
        );
        Flows {
            base: json!({
                "rpc": w.node.url(),
                "hub": w.deployment.hub.to_checksum(None),
                "api": server.base,
                "chainId": server.chain_id,
                "keys": {"appOwner": KEY0, "datasetOwner": KEY0, "poolOwner": KEY0, "requester": KEY1, "minter": KEY0},
                "assets": {
                    "app": w.app.to_checksum(None),
                    "dataset": w.dataset.to_checksum(None),
                    "workerpool": w.pool.to_checksum(None),
                },
            }),
        }
    }

    /// The flow's JSON output, or its stderr (the SDK's error message) when it exits non-zero.
    async fn run(&self, flow: &str, options: Value) -> Result<Value, String> {
        let mut cfg = self.base.clone();
        cfg["flow"] = json!(flow);
        for (k, v) in options.as_object().expect("options are an object") {
            cfg[k] = v.clone();
        }
        run_flow(cfg).await
    }

    async fn ok(&self, flow: &str, options: Value) -> Value {
        self.run(flow, options).await.unwrap_or_else(|e| panic!("flow {flow} failed: {e}"))
    }
}

/// The hashes published for `kind` by a publish flow.
fn hashes(published: &Value, kind: &str) -> Vec<String> {
    published[kind]["hashes"]
        .as_array()
        .unwrap_or_else(|| panic!("no {kind} in {published}"))
        .iter()
        .map(|h| h.as_str().expect("hash").to_owned())
        .collect()
}

/// Checks a publish flow's output: each order, as the SDK signed and posted it, hashes here (Dragon's code) to
/// the hash that both the SDK computed and the API answered (flows.mjs fails when those two differ), and the
/// API serves it back by hash, open, with every field as posted.
async fn check_published(w: &World, server: &Server, published: &Value, tag: &str) {
    for (kind, k) in KINDS {
        let Some(p) = published.get(kind) else { continue };
        let orders = p["orders"].as_array().expect("orders");
        let hashes = hashes(published, kind);
        assert_eq!(orders.len(), hashes.len());
        for (order, hash) in orders.iter().zip(&hashes) {
            let parsed = AnyOrder::from_json(k, &order.to_string()).expect("the SDK's order parses");
            assert_eq!(&parsed.order_hash(&w.domain).to_string(), hash, "{kind} {order}");
            assert_eq!(hash, &hash.to_lowercase());
            assert_eq!(order["tag"], tag, "{kind}: the SDK's tag");
            let (status, got) = server.get(&format!("/{kind}s/{hash}")).await;
            assert_eq!(status, 200, "{got}");
            assert_eq!(got["orderHash"], hash.as_str());
            assert_eq!(got["status"], "open");
            assert_eq!(got["chainId"], server.chain_id.to_string(), "by hash, chainId is the query's text");
            for (field, value) in as_served(order).as_object().expect("order object") {
                assert_eq!(&got["order"][field], value, "{kind} {hash}: field {field}");
            }
            assert_eq!(got["remaining"].as_u64().map(|r| r.to_string()).as_deref(), order["volume"].as_str());
        }
    }
}

/// An order as the SDK posted it (uint256 fields as decimal strings), in the form the market API serves it back:
/// uint fields as JSON numbers (up to 2^53-1, as iexec-market-api prints them).
fn as_served(order: &Value) -> Value {
    let mut v = order.clone();
    for field in dragon::market::record::UINT_FIELDS {
        if let Some(n) = v[field].as_str().and_then(|s| s.parse::<u64>().ok()).filter(|n| *n < 1 << 53) {
            v[field] = json!(n);
        }
    }
    v
}

/// One orderbook query and the hashes it must return, in order.
struct Query {
    name: &'static str,
    kind: &'static str,
    options: Value,
    expected: Vec<String>,
}

fn q(name: &'static str, kind: &'static str, options: Value, expected: Vec<String>) -> Query {
    Query { name, kind, options, expected }
}

/// Runs the queries through the SDK's `fetch*Orderbook` and checks each answer: the hashes in order, the
/// count, no next page (all fit in one page of 20).
async fn check_orderbook(flows: &Flows, queries: Vec<Query>) -> Value {
    check_orderbook_and(flows, queries, json!([])).await
}

/// The same, plus `extra` queries (`[[name, kind, options, {followMore}]]`) run in the same flow but left to the
/// caller to check in the returned output.
async fn check_orderbook_and(flows: &Flows, queries: Vec<Query>, extra: Value) -> Value {
    let list: Vec<Value> = queries.iter().map(|x| json!([x.name, x.kind, x.options])).collect();
    let out = flows.ok("orderbook", json!({"queries": list, "extraQueries": extra})).await;
    for x in &queries {
        let r = &out["queries"][x.name];
        let got: Vec<&str> = r["hashes"].as_array().expect("hashes").iter().filter_map(Value::as_str).collect();
        assert_eq!(got, x.expected, "query {} ({} {})", x.name, x.kind, x.options);
        assert_eq!(r["count"], x.expected.len(), "query {}: count", x.name);
        assert_eq!(r["more"], false, "query {}: more()", x.name);
        if !x.expected.is_empty() {
            // What SDK users read: numbers where iexec-market-api sends numbers, the order's uint256 as strings.
            let t = &r["types"];
            assert_eq!(
                (&t["chainId"], &t["remaining"], &t["orderHash"], &t["status"], &t["signer"]),
                (&json!("number"), &json!("number"), &json!("string"), &json!("string"), &json!("string")),
                "query {}: {t}",
                x.name
            );
            assert_eq!(t["publicationTimestamp"], "string");
            assert_eq!(t["order"]["volume"], "number");
        }
    }
    out
}

fn pick(all: &[String], idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| all[i].clone()).collect()
}

/// `unpublishAll*`'s answer: newest first.
fn newest_first(groups: &[&[String]]) -> Vec<String> {
    let mut v: Vec<String> = groups.iter().flat_map(|g| g.iter().cloned()).collect();
    v.reverse();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk8_publishes_lists_fetches_and_unpublishes_every_kind() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let flows = Flows::new(&w, &server);
    let pool = w.pool.to_checksum(None);
    let app = w.app.to_checksum(None);
    let dataset = w.dataset.to_checksum(None);
    let requester = w.requester.address().to_checksum(None);
    let other = w.other.address().to_checksum(None);

    // Orders that differ in what the filters look at. Requests are in categories 1 and 3, where no workerpool
    // order is, so nothing matches on arrival and every order stays open with its whole volume.
    let mut apporders = vec![
        json!({"appprice": "5"}),                                 // 0
        json!({"appprice": "1"}),                                 // 1: the cheapest
        json!({"appprice": "3", "workerpoolrestrict": pool}),     // 2
        json!({"appprice": "3", "requesterrestrict": requester}), // 3
        json!({"appprice": "3", "datasetrestrict": dataset}),     // 4
        json!({"appprice": "4", "volume": "2000000"}),            // 5
        json!({"appprice": "2", "tag": SCONE_TAG}),               // 6
        json!({"appprice": "2", "requesterrestrict": other}),     // 7
    ];
    apporders.extend((6..=12).map(|p| json!({"appprice": p.to_string()}))); // 8..=14
    let datasetorders = vec![
        json!({"datasetprice": "2", "volume": "100"}),                // 0
        json!({"datasetprice": "1"}),                                 // 1
        json!({"datasetprice": "1", "apprestrict": app}),             // 2
        json!({"datasetprice": "3", "workerpoolrestrict": pool}),     // 3
        json!({"datasetprice": "2", "requesterrestrict": requester}), // 4
    ];
    let workerpoolorders = vec![
        json!({"workerpoolprice": "2"}),                                   // 0
        json!({"workerpoolprice": "1", "trust": "5"}),                     // 1
        json!({"workerpoolprice": "3", "category": "2", "volume": "100"}), // 2
        json!({"workerpoolprice": "1", "apprestrict": app}),               // 3
        json!({"workerpoolprice": "2", "requesterrestrict": requester}),   // 4
        json!({"workerpoolprice": "4", "tag": SCONE_TAG}),                 // 5
        json!({"workerpoolprice": "5", "datasetrestrict": dataset}),       // 6
    ];
    let requestorders = vec![
        json!({"workerpoolmaxprice": "2", "category": "1"}), // 0
        json!({"workerpoolmaxprice": "5", "category": "1"}), // 1
        json!({"workerpoolmaxprice": "3", "category": "1", "workerpool": pool}), // 2
        json!({"workerpoolmaxprice": "1", "category": "3", "trust": "5"}), // 3
        json!({"workerpoolmaxprice": "4", "category": "1", "volume": "100"}), // 4
        json!({"workerpoolmaxprice": "2", "category": "1", "tag": SCONE_TAG, "appmaxprice": "2"}), // 5
        json!({"workerpoolmaxprice": "2", "category": "1", "dataset": dataset, "datasetmaxprice": "1"}), // 6
    ];
    let published = flows
        .ok(
            "publish",
            json!({"sdk": 8, "orders": {
                "apporder": apporders, "datasetorder": datasetorders,
                "workerpoolorder": workerpoolorders, "requestorder": requestorders,
            }}),
        )
        .await;
    // SDK 8 leaves tags as given: check the default ones (the TEE ones are checked by the tag filters).
    let mut standard = published.clone();
    for (kind, idx) in [("apporder", 6), ("workerpoolorder", 5), ("requestorder", 5)] {
        for key in ["orders", "hashes"] {
            standard[kind][key].as_array_mut().expect("array").remove(idx);
        }
    }
    check_published(&w, &server, &standard, NULL_TAG).await;
    let (a, d, wp, r) = (
        hashes(&published, "apporder"),
        hashes(&published, "datasetorder"),
        hashes(&published, "workerpoolorder"),
        hashes(&published, "requestorder"),
    );
    assert_eq!(published["apporder"]["orders"][6]["tag"], SCONE_TAG);

    // Offers list cheapest first, then by arrival; requests highest workerpoolmaxprice first, then by arrival.
    let public_apps = pick(&a, &[1, 6, 5, 0, 8, 9, 10, 11, 12, 13, 14]);
    let with = |extra: usize, at: usize| {
        let mut v = public_apps.clone();
        v.insert(at, a[extra].clone());
        v
    };
    // Paging: 11 public app orders, pages of 10, followed through the SDK's more().
    let paging = json!([["pages", "app", {"app": "$app", "pageSize": 10}, {"followMore": true}]]);
    let out = check_orderbook_and(
        &flows,
        vec![
            q("app", "app", json!({"app": "$app"}), public_apps.clone()),
            q("app.owner", "app", json!({"appOwner": "$appOwner"}), public_apps.clone()),
            q(
                "app.any",
                "app",
                json!({"app": "$app", "dataset": "any", "workerpool": "any", "requester": "any"}),
                pick(&a, &[1, 6, 7, 2, 3, 4, 5, 0, 8, 9, 10, 11, 12, 13, 14]),
            ),
            q("app.workerpool", "app", json!({"app": "$app", "workerpool": "$workerpool"}), with(2, 2)),
            q(
                "app.workerpoolStrict",
                "app",
                json!({"app": "$app", "workerpool": "$workerpool", "isWorkerpoolStrict": true}),
                pick(&a, &[2]),
            ),
            q("app.requester", "app", json!({"app": "$app", "requester": "$requester"}), with(3, 2)),
            q(
                "app.requesterStrict",
                "app",
                json!({"app": "$app", "requester": "$requester", "isRequesterStrict": true}),
                pick(&a, &[3]),
            ),
            q("app.otherRequester", "app", json!({"app": "$app", "requester": other}), with(7, 2)),
            q("app.dataset", "app", json!({"app": "$app", "dataset": "$dataset"}), with(4, 2)),
            q(
                "app.datasetStrict",
                "app",
                json!({"app": "$app", "dataset": "$dataset", "isDatasetStrict": true}),
                pick(&a, &[4]),
            ),
            q("app.minVolume", "app", json!({"app": "$app", "minVolume": 1_000_000}), pick(&a, &[5])),
            q("app.minTagTee", "app", json!({"app": "$app", "minTag": TEE_TAG}), pick(&a, &[6])),
            q(
                "app.maxTagNone",
                "app",
                json!({"app": "$app", "maxTag": NULL_TAG}),
                pick(&a, &[1, 5, 0, 8, 9, 10, 11, 12, 13, 14]),
            ),
            q("app.otherOwner", "app", json!({"appOwner": requester}), vec![]),
            // dataset orders
            q("dataset", "dataset", json!({"dataset": "$dataset"}), pick(&d, &[1, 0])),
            q("dataset.owner", "dataset", json!({"datasetOwner": "$datasetOwner"}), pick(&d, &[1, 0])),
            q("dataset.app", "dataset", json!({"dataset": "$dataset", "app": "$app"}), pick(&d, &[1, 2, 0])),
            q(
                "dataset.appStrict",
                "dataset",
                json!({"dataset": "$dataset", "app": "$app", "isAppStrict": true}),
                pick(&d, &[2]),
            ),
            q(
                "dataset.any",
                "dataset",
                json!({"dataset": "$dataset", "app": "any", "workerpool": "any", "requester": "any"}),
                pick(&d, &[1, 2, 0, 4, 3]),
            ),
            q(
                "dataset.workerpool",
                "dataset",
                json!({"dataset": "$dataset", "workerpool": "$workerpool"}),
                pick(&d, &[1, 0, 3]),
            ),
            q(
                "dataset.workerpoolStrict",
                "dataset",
                json!({"dataset": "$dataset", "workerpool": "$workerpool", "isWorkerpoolStrict": true}),
                pick(&d, &[3]),
            ),
            q(
                "dataset.requester",
                "dataset",
                json!({"dataset": "$dataset", "requester": "$requester"}),
                pick(&d, &[1, 0, 4]),
            ),
            q(
                "dataset.requesterStrict",
                "dataset",
                json!({"dataset": "$dataset", "requester": "$requester", "isRequesterStrict": true}),
                pick(&d, &[4]),
            ),
            q("dataset.minVolume", "dataset", json!({"dataset": "$dataset", "minVolume": 50}), pick(&d, &[0])),
            q("dataset.bulkOnly", "dataset", json!({"dataset": "$dataset", "bulkOnly": true}), vec![]),
            // workerpool orders
            q("workerpool.category0", "workerpool", json!({"category": 0}), pick(&wp, &[1, 0, 5])),
            q("workerpool.category1", "workerpool", json!({"category": 1}), vec![]),
            q("workerpool.category2", "workerpool", json!({"category": 2}), pick(&wp, &[2])),
            q("workerpool", "workerpool", json!({"workerpool": "$workerpool"}), pick(&wp, &[1, 0, 2, 5])),
            q("workerpool.owner", "workerpool", json!({"workerpoolOwner": "$poolOwner"}), pick(&wp, &[1, 0, 2, 5])),
            q(
                "workerpool.app",
                "workerpool",
                json!({"workerpool": "$workerpool", "app": "$app"}),
                pick(&wp, &[1, 3, 0, 2, 5]),
            ),
            q(
                "workerpool.appStrict",
                "workerpool",
                json!({"workerpool": "$workerpool", "app": "$app", "isAppStrict": true}),
                pick(&wp, &[3]),
            ),
            q(
                "workerpool.datasetStrict",
                "workerpool",
                json!({"workerpool": "$workerpool", "dataset": "$dataset", "isDatasetStrict": true}),
                pick(&wp, &[6]),
            ),
            q(
                "workerpool.requester",
                "workerpool",
                json!({"workerpool": "$workerpool", "requester": "$requester"}),
                pick(&wp, &[1, 0, 4, 2, 5]),
            ),
            q(
                "workerpool.requesterStrict",
                "workerpool",
                json!({"workerpool": "$workerpool", "requester": "$requester", "isRequesterStrict": true}),
                pick(&wp, &[4]),
            ),
            q(
                "workerpool.requesterAny",
                "workerpool",
                json!({"workerpool": "$workerpool", "requester": "any"}),
                pick(&wp, &[1, 0, 4, 2, 5]),
            ),
            q(
                "workerpool.minTrust",
                "workerpool",
                json!({"workerpool": "$workerpool", "minTrust": 5}),
                pick(&wp, &[1]),
            ),
            q(
                "workerpool.minTagTee",
                "workerpool",
                json!({"workerpool": "$workerpool", "minTag": TEE_TAG}),
                pick(&wp, &[5]),
            ),
            q(
                "workerpool.maxTagNone",
                "workerpool",
                json!({"workerpool": "$workerpool", "maxTag": NULL_TAG}),
                pick(&wp, &[1, 0, 2]),
            ),
            q(
                "workerpool.minVolume",
                "workerpool",
                json!({"workerpool": "$workerpool", "minVolume": 50}),
                pick(&wp, &[2]),
            ),
            // request orders
            q("request.category1", "request", json!({"category": 1}), pick(&r, &[1, 4, 0, 5, 6])),
            q("request.category0", "request", json!({"category": 0}), vec![]),
            q("request.requester", "request", json!({"requester": "$requester"}), pick(&r, &[1, 4, 0, 5, 6, 3])),
            q("request.app", "request", json!({"app": "$app"}), pick(&r, &[1, 4, 0, 5, 6, 3])),
            q("request.dataset", "request", json!({"dataset": "$dataset"}), pick(&r, &[6])),
            q("request.beneficiary", "request", json!({"beneficiary": "$requester"}), pick(&r, &[1, 4, 0, 5, 6, 3])),
            q("request.otherBeneficiary", "request", json!({"beneficiary": other}), vec![]),
            q("request.anyBeneficiary", "request", json!({"beneficiary": "any"}), pick(&r, &[1, 4, 0, 5, 6, 3])),
            q(
                "request.workerpoolAny",
                "request",
                json!({"requester": "$requester", "workerpool": "any"}),
                pick(&r, &[1, 4, 2, 0, 5, 6, 3]),
            ),
            q(
                "request.workerpool",
                "request",
                json!({"requester": "$requester", "workerpool": "$workerpool"}),
                pick(&r, &[1, 4, 2, 0, 5, 6, 3]),
            ),
            q(
                "request.workerpoolStrict",
                "request",
                json!({"requester": "$requester", "workerpool": "$workerpool", "isWorkerpoolStrict": true}),
                pick(&r, &[2]),
            ),
            q(
                "request.maxTrust0",
                "request",
                json!({"requester": "$requester", "maxTrust": 0}),
                pick(&r, &[1, 4, 0, 5, 6]),
            ),
            q("request.minTagTee", "request", json!({"requester": "$requester", "minTag": TEE_TAG}), pick(&r, &[5])),
            q(
                "request.maxTagNone",
                "request",
                json!({"requester": "$requester", "maxTag": NULL_TAG}),
                pick(&r, &[1, 4, 0, 6, 3]),
            ),
            q("request.minVolume", "request", json!({"requester": "$requester", "minVolume": 50}), pick(&r, &[4])),
        ],
        paging,
    )
    .await;

    let pages = &out["queries"]["pages"];
    assert_eq!(
        (pages["count"].as_u64(), pages["more"].as_bool(), pages["pages"].as_u64()),
        (Some(11), Some(true), Some(2))
    );
    assert_eq!(pages["hashes"], json!(public_apps));
    // The SDK takes `any` as an owner and sends it; the peer's API refuses it (an owner is an address), and so
    // does Dragon, in the same words.
    for (kind, owner) in [("app", "appOwner"), ("dataset", "datasetOwner")] {
        let query = json!([["anyOwner", kind, {owner: "any"}]]);
        let err = flows.run("orderbook", json!({"queries": query})).await.expect_err("an owner is an address");
        assert!(err.contains(&format!("API error: {owner} is not a valid ethereum address")), "{err}");
    }

    // One order of each kind by hash.
    let chosen = json!({"apporder": a[1], "datasetorder": d[2], "workerpoolorder": wp[3], "requestorder": r[6]});
    let fetched = flows.ok("fetch", json!({"hashes": chosen})).await;
    for (kind, idx) in [("apporder", 1), ("datasetorder", 2), ("workerpoolorder", 3), ("requestorder", 6)] {
        let rec = &fetched[kind]["record"];
        let posted = &published[kind]["orders"][idx];
        assert_eq!(rec["orderHash"], chosen[kind], "{kind}");
        assert_eq!(rec["chainId"], server.chain_id.to_string());
        assert_eq!(rec["status"], "open");
        let signer = if kind == "requestorder" { &requester } else { &w.owner.address().to_checksum(None) };
        assert_eq!(rec["signer"], signer.as_str());
        assert_eq!(rec["remaining"].as_u64().map(|v| v.to_string()).as_deref(), posted["volume"].as_str());
        assert!(rec["publicationTimestamp"].as_str().is_some_and(|t| t.ends_with('Z') && t.contains('.')), "{rec}");
        assert_eq!(rec["order"], as_served(posted), "{kind}: the order as posted");
        assert!(rec.get("ok").is_none(), "the SDK strips ok");
    }
    // An unknown hash: the SDK's message carries the API's error.
    let missing = format!("0x{}", "ab".repeat(32));
    let got = flows.ok("fetch", json!({"hashes": {"apporder": missing}})).await;
    assert_eq!(got["apporder"]["error"], "API error: apporder not found");

    // Requester deals: none yet (on-chain deals are listed once chain sync exists): the envelope, no more().
    // Also with every filter the SDK sends, and the deals of each order.
    let deals = flows.ok("deals", json!({"match": false, "byOrder": chosen})).await;
    assert_eq!((deals["count"].as_u64(), &deals["deals"], &deals["more"]), (Some(0), &json!([]), &json!(false)));
    for (kind, _) in KINDS {
        assert_eq!(deals["byOrder"][kind], json!({"count": 0, "deals": []}), "fetchDealsBy {kind}");
    }
    // What `iexec app run` does: the cheapest app and workerpool orders, as Dragon serves them (uint fields as
    // JSON numbers, as the peer serves them), go into the SDK's matchOrders on Dragon's hub, and the deal is made
    // on chain. Then the requester's deals, with every filter the SDK sends.
    let filters = json!({"appAddress": "$app", "workerpoolAddress": "$workerpool", "page": 0, "pageSize": 10});
    let run = flows.ok("deals", json!({"match": true, "timeoutMs": 30000, "dealOptions": filters})).await;
    let m = &run["match"];
    assert!(m["dealid"].as_str().is_some_and(|d| d.len() == 66), "{run}");
    assert_eq!(m["volume"], "1", "{run}");
    assert_eq!(m["apporder"]["appprice"], 1);
    assert_eq!(m["workerpoolorder"]["workerpoolprice"], 1);
    assert_eq!(m["workerpoolorder"]["trust"], 5, "the cheapest workerpool order of category 0 first");
    // Chain sync saw the deal the SDK made directly on chain: the SDK lists it among the requester's deals
    // (with every filter), and Dragon's book lost the volume the deal consumed.
    assert_eq!(run["found"], true, "fetchRequesterDeals lists the deal made on chain: {run}");
    assert!(run["count"].as_u64().is_some_and(|c| c >= 1), "{run}");
    // The deal has no dataset: a dataset filter leaves it out.
    let with_dataset = json!({"appAddress": "$app", "datasetAddress": "$dataset", "page": 0, "pageSize": 10});
    let none = flows.ok("deals", json!({"match": false, "dealOptions": with_dataset})).await;
    assert_eq!(none["count"], 0, "{none}");
    let (s, deal) = server.get(&format!("/deals/{}", m["dealid"].as_str().unwrap_or_default())).await;
    assert_eq!(s, 200, "{deal}");
    assert_eq!(
        deal["requester"],
        KEY1.parse::<alloy::signers::local::PrivateKeySigner>().expect("key").address().to_checksum(None)
    );
    for (kind, k) in [("app", OrderKind::App), ("workerpool", OrderKind::Workerpool)] {
        let o = AnyOrder::from_json(k, &m[format!("{kind}order")].to_string()).expect("order");
        let volume: u64 = m[format!("{kind}order")]["volume"].as_u64().expect("volume");
        let (_, got) = server.get(&format!("/{kind}orders/{}", o.order_hash(&w.domain))).await;
        assert_eq!(got["remaining"], volume - 1, "{kind} order lowered by the direct deal: {got}");
    }

    // Unpublish, per kind: 3 fresh orders, then by hash, last, all (requests in category 1 again: no match).
    let out = flows
        .ok("unpublish", json!({"sdk": 8, "orders": {"requestorder": {"category": "1", "workerpoolmaxprice": "2"}}}))
        .await;
    let support = out["supportApporder"].as_str().expect("support app order").to_owned();
    for (kind, earlier) in [("requestorder", &r), ("datasetorder", &d), ("workerpoolorder", &wp), ("apporder", &a)] {
        let o = &out[kind];
        let fresh: Vec<String> = o["published"]
            .as_array()
            .expect("published")
            .iter()
            .map(|h| h.as_str().expect("hash").to_owned())
            .collect();
        assert_eq!(o["byHash"], fresh[0].as_str(), "{kind}: unpublish by hash");
        assert_eq!(o["last"], fresh[2].as_str(), "{kind}: unpublishLast takes the newest");
        let support = [support.clone()];
        let groups: Vec<&[String]> =
            if kind == "apporder" { vec![earlier, &support, &fresh[1..2]] } else { vec![earlier, &fresh[1..2]] };
        assert_eq!(o["all"], json!(newest_first(&groups)), "{kind}: unpublishAll");
        check_nothing_left(&w, &out, kind);
        // Unpublished orders are gone, as with the peer.
        for h in &fresh {
            let (s, got) = server.get(&format!("/{kind}s/{h}")).await;
            assert_eq!((s, got["error"].as_str()), (404, Some(format!("{kind} not found").as_str())), "{kind} {h}");
        }
    }
    // The book is empty, and the SDK finds none of the earlier orders.
    check_orderbook(
        &flows,
        vec![
            q(
                "app.any",
                "app",
                json!({"app": "$app", "dataset": "any", "workerpool": "any", "requester": "any"}),
                vec![],
            ),
            q("dataset.any", "dataset", json!({"dataset": "$dataset", "app": "any", "requester": "any"}), vec![]),
            q("workerpool", "workerpool", json!({"workerpool": "$workerpool"}), vec![]),
            q("request", "request", json!({"requester": "$requester", "workerpool": "any"}), vec![]),
        ],
    )
    .await;
    let fetched = flows.ok("fetch", json!({"hashes": chosen})).await;
    for (kind, _) in KINDS {
        assert_eq!(fetched[kind]["error"], format!("API error: {kind} not found"), "{kind}");
    }

    // Values far from the defaults keep their hash: a params string with escapes and non-ASCII text, a large price
    // and the largest volume the hub holds.
    let params = json!({"iexec_args": "h\u{e9}llo \"w\u{f6}rld\" \\ \u{2713} \u{1f600}\n", "iexec_input_files": ["https://x.test/a%20b?c=d&e"]});
    let published = flows
        .ok(
            "publish",
            json!({"sdk": 8, "kinds": ["apporder", "requestorder"], "orders": {
                "apporder": {"appprice": "1000000000000", "volume": "281474976710655"},
                "requestorder": {"appmaxprice": "1000000000000", "category": "4", "volume": "1", "params": params},
            }}),
        )
        .await;
    check_published(&w, &server, &published, NULL_TAG).await;
    let posted = published["requestorder"]["order"]["params"].as_str().expect("params string");
    let posted: Value = serde_json::from_str(posted).expect("params is JSON");
    assert_eq!(posted["iexec_args"], params["iexec_args"], "{posted}");
    server.shutdown().await;
}

/// After unpublishAll*, nothing is left: unpublishLast* and unpublishAll* fail with the API's reason, as with
/// iexec-market-api (the SDK would otherwise return `undefined` where it promises a hash).
fn check_nothing_left(w: &World, out: &Value, kind: &str) {
    let (field, signer, resource) = match kind {
        "apporder" => ("app", w.owner.address(), w.app),
        "datasetorder" => ("dataset", w.owner.address(), w.dataset),
        "workerpoolorder" => ("workerpool", w.owner.address(), w.pool),
        _ => ("requester", w.requester.address(), w.requester.address()),
    };
    let expected = format!("API error: no open {kind} published by signer {signer} for {field} {resource}");
    for key in ["last", "all"] {
        let got = &out[kind]["again"][key];
        assert!(got["error"].as_str().is_some_and(|e| e.contains(&expected)), "{kind}: {key} again: {got}");
    }
}

/// Polls the API until the order of `kind` with `hash` has `status`.
async fn wait_status(server: &Server, kind: &str, hash: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, got) = server.get(&format!("/{kind}s/{hash}")).await;
        if got["status"] == status {
            return got;
        }
        last = got;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{kind} {hash} never became {status}: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk9_tee_orders_publish_list_match_and_unpublish() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let flows = Flows::new(&w, &server);

    // No app order at all: SDK 9's request is refused, and the SDK shows the API's reason.
    let only_request = json!({"sdk": 9, "kinds": ["requestorder"], "orders": {"requestorder": {"category": "1"}}});
    let err = flows.run("publish", only_request).await.expect_err("no app order");
    let expected = format!("API error: No tee enabled apporder published for app {}", w.app.to_checksum(None));
    assert!(err.contains(&expected), "{err}");

    // A standard app order (SDK 8, tag 0), then one order of each kind signed by SDK 9: every tag is TEE + TDX,
    // the app order first so that the request has a TEE app order to be served by. The request is in category
    // 1, where no workerpool order is: it stays open.
    let standard = flows.ok("publish", json!({"sdk": 8, "kinds": ["apporder"]})).await;
    check_published(&w, &server, &standard, NULL_TAG).await;
    let std_app = hashes(&standard, "apporder").remove(0);
    let published = flows.ok("publish", json!({"sdk": 9, "orders": {"requestorder": {"category": "1"}}})).await;
    check_published(&w, &server, &published, TDX_TAG).await;
    let h = |kind: &str| hashes(&published, kind).remove(0);
    let (a9, d9, w9, r9) = (h("apporder"), h("datasetorder"), h("workerpoolorder"), h("requestorder"));

    check_orderbook(
        &flows,
        vec![
            // Same price: arrival order.
            q("app", "app", json!({"app": "$app"}), vec![std_app.clone(), a9.clone()]),
            q("app.minTagTdx", "app", json!({"app": "$app", "minTag": ["tee", "tdx"]}), vec![a9.clone()]),
            q("app.minTagTee", "app", json!({"app": "$app", "minTag": TEE_TAG}), vec![a9.clone()]),
            q("app.minTagScone", "app", json!({"app": "$app", "minTag": ["tee", "scone"]}), vec![]),
            q("app.maxTagNone", "app", json!({"app": "$app", "maxTag": NULL_TAG}), vec![std_app.clone()]),
            q("app.maxTagTdx", "app", json!({"app": "$app", "maxTag": TDX_TAG}), vec![std_app.clone(), a9.clone()]),
            q("dataset.minTagTdx", "dataset", json!({"dataset": "$dataset", "minTag": TDX_TAG}), vec![d9.clone()]),
            q("dataset.maxTagNone", "dataset", json!({"dataset": "$dataset", "maxTag": NULL_TAG}), vec![]),
            q("workerpool.minTagTdx", "workerpool", json!({"category": 0, "minTag": ["tee", "tdx"]}), vec![w9.clone()]),
            q("workerpool.maxTagNone", "workerpool", json!({"category": 0, "maxTag": NULL_TAG}), vec![]),
            q("request.minTagTdx", "request", json!({"requester": "$requester", "minTag": TDX_TAG}), vec![r9.clone()]),
            q("request.maxTagNone", "request", json!({"requester": "$requester", "maxTag": NULL_TAG}), vec![]),
        ],
    )
    .await;

    // A request in category 0 meets the TEE workerpool order on arrival. PoCo's TEE rule: the deal takes the
    // TEE app order, never the standard one (which is cheaper by arrival).
    let matching = json!({"sdk": 9, "kinds": ["requestorder"], "orders": {"requestorder": {"volume": "1"}}});
    let matched = hashes(&flows.ok("publish", matching).await, "requestorder").remove(0);
    wait_status(&server, "requestorder", &matched, "filled").await;
    let fetched =
        flows.ok("fetch", json!({"hashes": {"apporder": a9, "workerpoolorder": w9, "requestorder": matched}})).await;
    assert_eq!(fetched["requestorder"]["record"]["status"], "filled");
    assert_eq!(fetched["requestorder"]["record"]["remaining"], 0);
    assert_eq!(fetched["workerpoolorder"]["record"]["remaining"], 9);
    assert_eq!(fetched["apporder"]["record"]["remaining"], 9);
    let (_, std) = server.get(&format!("/apporders/{std_app}")).await;
    assert_eq!(std["remaining"], 10, "the standard app order is untouched: {std}");

    // Unpublish with SDK 9 (its requests in category 1 again: the TEE workerpool order still has volume).
    let out = flows.ok("unpublish", json!({"sdk": 9, "orders": {"requestorder": {"category": "1"}}})).await;
    let support = out["supportApporder"].as_str().expect("support app order").to_owned();
    for (kind, earlier) in [
        ("requestorder", vec![r9.clone()]),
        ("datasetorder", vec![d9.clone()]),
        ("workerpoolorder", vec![w9.clone()]),
        ("apporder", vec![std_app.clone(), a9.clone(), support.clone()]),
    ] {
        let o = &out[kind];
        let fresh: Vec<String> = o["published"]
            .as_array()
            .expect("published")
            .iter()
            .map(|h| h.as_str().expect("hash").to_owned())
            .collect();
        assert_eq!(o["byHash"], fresh[0].as_str(), "{kind}: unpublish by hash");
        assert_eq!(o["last"], fresh[2].as_str(), "{kind}: unpublishLast takes the newest");
        assert_eq!(o["all"], json!(newest_first(&[&earlier, &fresh[1..2]])), "{kind}: unpublishAll");
        check_nothing_left(&w, &out, kind);
    }
    let fetched = flows
        .ok("fetch", json!({"hashes": {"apporder": a9, "datasetorder": d9, "workerpoolorder": w9, "requestorder": r9}}))
        .await;
    for (kind, _) in KINDS {
        assert_eq!(fetched[kind]["error"], format!("API error: {kind} not found"), "{kind}");
    }
    // The matched request was not open: it stays filled.
    assert_eq!(wait_status(&server, "requestorder", &matched, "filled").await["remaining"], 0);

    server.shutdown().await;
}

/// PoCo refuses a deal whose request (or dataset) order is TEE when the app order is not, so no standard app
/// order can serve a request signed by SDK 9: Dragon should refuse to publish it, as it refuses a request that no
/// open app order can serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk9_request_needs_a_tee_app_order() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let flows = Flows::new(&w, &server);
    flows.ok("publish", json!({"sdk": 8, "kinds": ["apporder"]})).await;
    let only_request = json!({"sdk": 9, "kinds": ["requestorder"], "orders": {"requestorder": {"category": "1"}}});
    let err = flows.run("publish", only_request).await.expect_err("only a standard app order");
    let expected = format!("API error: No tee enabled apporder published for app {}", w.app.to_checksum(None));
    assert!(err.contains(&expected), "{err}");
    server.shutdown().await;
}

/// SDK 9's bulk processing (`order.prepareDatasetBulk`) takes dataset orders at price 0 and volume
/// `DATASET_INFINITE_VOLUME` (2^53 - 1), which dataset owners publish for `fetchDatasetOrderbook({bulkOnly:
/// true})`. The hub accepts such an order (only a deal's volume must fit 48 bits), so Dragon should publish it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk9_bulk_dataset_orders_are_published() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let flows = Flows::new(&w, &server);
    let bulk = json!({"datasetprice": "0", "volume": "9007199254740991"});
    let published =
        flows.ok("publish", json!({"sdk": 9, "kinds": ["datasetorder"], "orders": {"datasetorder": bulk}})).await;
    let hash = hashes(&published, "datasetorder").remove(0);
    check_orderbook(
        &flows,
        vec![q("dataset.bulkOnly", "dataset", json!({"dataset": "$dataset", "bulkOnly": true}), vec![hash.clone()])],
    )
    .await;
    // `bulk` is in the listed record (as the peer lists dataset orders), not in the answer by hash (which the
    // peer builds field by field, without it).
    let (_, list) = server.get(&format!("/datasetorders?dataset={}&bulkOnly=true", w.dataset)).await;
    assert_eq!((list["count"].as_u64(), &list["orders"][0]["bulk"]), (Some(1), &json!(true)), "{list}");
    let (_, got) = server.get(&format!("/datasetorders/{hash}")).await;
    assert!(got.get("bulk").is_none(), "{got}");
    server.shutdown().await;
}

/// The requester's whole path with iExec's SDK alone against a settling exchange: the SDK publishes the offers
/// and the request, Dragon matches and settles with no other action, and the SDK lists the deal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk8_request_is_settled_by_dragon_and_listed() {
    let w = World::new().await;
    let server = Server::start(crate::settle::settling(&w, database().await)).await;
    let flows = Flows::new(&w, &server);
    let published =
        flows.ok("publish", json!({"sdk": 8, "kinds": ["apporder", "workerpoolorder", "requestorder"]})).await;
    let request = published["requestorder"]["hash"].as_str().expect("request hash").to_owned();
    let filters = json!({"appAddress": "$app", "page": 0, "pageSize": 10});
    let listed = crate::settle::until("the SDK to list the deal", async || {
        let out = flows.ok("deals", json!({"match": false, "dealOptions": filters})).await;
        out["deals"].as_array()?.iter().find(|d| d["requestHash"] == request.as_str()).cloned()
    })
    .await;
    assert_eq!(listed["volume"], 5, "the request's whole volume: {listed}");
    assert_eq!(
        listed["requester"],
        KEY1.parse::<alloy::signers::local::PrivateKeySigner>().expect("key").address().to_checksum(None)
    );
    let (_, got) = server.get(&format!("/requestorders/{request}")).await;
    assert_eq!(got["status"], "filled", "{got}");
    let (_, p) = server.get(&format!("/proposals?orderHash={request}")).await;
    assert_eq!(p["proposals"][0]["status"], "settled", "{p}");
    server.shutdown().await;
}

/// The same path through a cluster: two instances on one PostgreSQL and one NATS, both with the operator key.
/// iExec's SDK talks only to the instance that does NOT own category 0 (the SDK's), so every order it publishes
/// is routed to the owner, the owner's engine proposes, whichever instance leads the settler settles, and the
/// SDK lists the deal from the instance it knows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk8_request_through_a_cluster_instance_that_does_not_own_its_category_is_settled() {
    let nats = crate::cluster::Nats::start();
    let w = World::new().await;
    let db = database().await;
    let start = || {
        let mut c = crate::settle::settling(&w, db.clone());
        c.nats.url = Some(nats.url());
        c.lease = crate::owners::fast();
        Server::start(c)
    };
    let (a, b) = (start().await, start().await);
    let shares = crate::owners::spread(&[&a, &b]).await;
    let stranger = if shares[0].contains(&0) { &b } else { &a };
    assert!(!crate::owners::owned(stranger).await.contains(&0));
    let flows = Flows::new(&w, stranger);
    let published =
        flows.ok("publish", json!({"sdk": 8, "kinds": ["apporder", "workerpoolorder", "requestorder"]})).await;
    let request = published["requestorder"]["hash"].as_str().expect("request hash").to_owned();
    let filters = json!({"appAddress": "$app", "page": 0, "pageSize": 10});
    let listed = crate::settle::until("the SDK to list the deal", async || {
        let out = flows.ok("deals", json!({"match": false, "dealOptions": filters})).await;
        out["deals"].as_array()?.iter().find(|d| d["requestHash"] == request.as_str()).cloned()
    })
    .await;
    assert_eq!(listed["volume"], 5, "the request's whole volume: {listed}");
    let (_, p) = crate::settle::until("the proposal settled", async || {
        let (s, p) = stranger.get(&format!("/proposals?orderHash={request}")).await;
        (p["proposals"][0]["status"] == "settled").then_some((s, p))
    })
    .await;
    assert_eq!(p["proposals"].as_array().map(Vec::len), Some(1), "one proposal: {p}");
    let got = crate::settle::until("the request filled on the instance the SDK knows", async || {
        let (_, got) = stranger.get(&format!("/requestorders/{request}")).await;
        (got["status"] == "filled").then_some(got)
    })
    .await;
    assert_eq!(got["remaining"], 0, "{got}");
    a.shutdown().await;
    b.shutdown().await;
}
