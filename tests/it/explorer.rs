//! The explorer page in a real headless Chromium (Debian's `chromium`, driven by npm `playwright-core` from
//! `tests/browser/explorer.mjs`), against a settling server on anvil and PostgreSQL: orders published over the
//! API appear without a reload within a second, deals and task statuses arrive live, charts render, the order,
//! deal, task, pool and address pages and the search work, and the page logs no error.
//!
//! With `DRAGON_SCREENSHOTS=<dir>` the script saves the main views there (`docs/img/` holds the committed ones).

use crate::harness::{database, root};
use crate::market::{Server, World, provider};
use crate::settle::{settling, until};
use alloy::primitives::U256;
use dragon::chain::contracts::hub::DragonHub;
use dragon::order::AnyOrder;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CATEGORY: u64 = 1;
/// A cent of RLC in nRLC: the workerpool prices of this test are realistic ones.
const CENT: u64 = 10_000_000;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

async fn publish_all(server: &Server, w: &World, orders: &[AnyOrder]) {
    for o in orders {
        let key = if o.kind() == dragon::order::OrderKind::Request { &w.requester } else { &w.owner };
        let (s, b) = server.publish(key, o).await;
        assert_eq!(s, 200, "{b}");
    }
}

/// The deals of a request, once chain sync has recorded as many as `n`.
async fn deals_of(server: &Server, w: &World, req: &AnyOrder, n: usize) -> Vec<Value> {
    let h = req.order_hash(&w.domain);
    until("the request's deals on chain", async || {
        let (_, b) = server.get(&format!("/deals?requestorderHash={h}")).await;
        let deals = b["deals"].as_array().cloned().unwrap_or_default();
        (deals.len() >= n).then_some(deals)
    })
    .await
}

/// `tests/browser/explorer.mjs` driving headless Chromium on the explorer of `base`: commands go in one a line,
/// each answer is a JSON line.
struct Browser {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Browser {
    fn start(base: &str) -> Browser {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(std::path::Path::new(&chromium).exists(), "{chromium} is missing: run `make setup` (apt chromium)");
        assert!(
            root().join("tests/browser/node_modules/playwright-core").exists(),
            "playwright-core is not installed: run `make setup` (npm ci in tests/browser)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(root().join("tests/browser/explorer.mjs"))
            .arg(base)
            .arg(json!({"category": CATEGORY}).to_string())
            .env("CHROMIUM", &chromium)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Browser { child, stdin, lines }
    }

    async fn send(&mut self, command: &str) {
        self.stdin.write_all(format!("{command}\n").as_bytes()).await.expect("stdin");
    }

    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(90), self.lines.next_line())
            .await
            .expect("a line from the browser script in time")
            .expect("read")
            .expect("the browser script ended early");
        let v: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_ne!(v["step"], "error", "{v}");
        v
    }

    async fn ask(&mut self, command: &str) -> Value {
        self.send(command).await;
        self.next().await
    }

    /// Ends the script; fails the test when the page logged any error.
    async fn finish(mut self) {
        let done = self.ask("quit").await;
        assert_eq!(done["step"], "done", "{done}");
        assert_eq!(done["errors"], json!([]), "the page logged errors");
        drop(self.stdin);
        let status =
            tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("node exits").expect("wait");
        assert!(status.success(), "node failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_shows_the_market_live_in_a_real_browser() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;

    // A book with some depth on both sides, and a price history: a request crossing two offers makes two
    // deals (10 tasks at 0.05 RLC, 2 at 0.06), a later one 3 more at 0.06.
    let asks = [
        w.pool_order(5 * CENT, 10, CATEGORY, 2),
        w.pool_order(6 * CENT, 8, CATEGORY, 3),
        w.pool_order(9 * CENT, 20, CATEGORY, 4),
    ];
    let bids = [w.request(&w.requester, 3 * CENT, 5, CATEGORY, 5), w.request(&w.requester, 4 * CENT, 3, CATEGORY, 6)];
    publish_all(&server, &w, &[w.app_order(2, 1000, 1)]).await;
    publish_all(&server, &w, &asks).await;
    publish_all(&server, &w, &bids).await;
    let first = w.request(&w.requester, 6 * CENT, 12, CATEGORY, 7);
    publish_all(&server, &w, std::slice::from_ref(&first)).await;
    deals_of(&server, &w, &first, 2).await;
    let second = w.request(&w.requester, 6 * CENT, 3, CATEGORY, 8);
    publish_all(&server, &w, std::slice::from_ref(&second)).await;
    deals_of(&server, &w, &second, 1).await;

    let mut browser = Browser::start(&server.base);

    // The market of category 1: depth (two areas), price history (three deals), both sides of the book, the
    // deals, amounts in RLC with the exact nRLC on hover.
    let ready = browser.next().await;
    assert_eq!(ready["step"], "ready", "{ready}");
    assert_eq!(ready["depthPaths"], 2, "asks and bids drawn: {ready}");
    assert_eq!(ready["priceDots"], 3, "one point per deal: {ready}");
    assert_eq!((ready["asks"].as_u64(), ready["bids"].as_u64()), (Some(2), Some(2)), "{ready}");
    assert_eq!(ready["deals"], 3, "{ready}");
    assert!(ready["copy"].as_u64().is_some_and(|n| n >= 6), "hashes have copy buttons: {ready}");
    // The cheapest offer left: 0.06 RLC (the one at 0.05 was consumed).
    assert_eq!(ready["rlc"], "0.06 RLC60,000,000 nRLC", "{ready}");
    assert_eq!(ready["nrlcTitle"], "60,000,000 nRLC", "{ready}");

    // An order published over the API shows within a second, without a reload.
    let fresh = w.pool_order(7 * CENT, 4, CATEGORY, 9);
    let h = fresh.order_hash(&w.domain).to_string();
    assert_eq!(browser.ask(&format!("watch {h}")).await["step"], "watching");
    let auth = server.login(&w.owner).await;
    let sent = now_ms();
    let (s, b) =
        server.send(reqwest::Method::POST, "/workerpoolorders", &auth, &json!({"order": fresh.to_json()})).await;
    assert_eq!(s, 200, "{b}");
    let answered = now_ms();
    let seen = browser.next().await;
    let at = seen["at"].as_i64().unwrap_or_else(|| panic!("the order never showed: {seen}"));
    // From the moment the POST leaves: the publication itself is part of what a user waits for. (The page can
    // show the order before the 200 arrives: the feed goes out at commit.)
    eprintln!(
        "explorer: order on the page {} ms after the POST was sent ({} ms after its 200)",
        at - sent,
        at - answered
    );
    assert!(at - sent < 1000, "the order showed {} ms after the POST was sent (at most 1000)", at - sent);
    assert_eq!(seen["sameLoad"], true, "no reload");
    assert_eq!(seen["offered"], "27", "the book's totals follow: 8 - 2 - 3 + 20 + 4 tasks offered: {seen}");

    // A request crossing the new offer: the deal appears among the recent deals, its tasks with their
    // statuses, and a task initialized on chain turns ACTIVE on the page.
    let live = w.request(&w.requester, 7 * CENT, 2, CATEGORY, 10);
    publish_all(&server, &w, std::slice::from_ref(&live)).await;
    let deal = deals_of(&server, &w, &live, 1).await.remove(0);
    let dealid = deal["dealid"].as_str().expect("dealid").to_owned();
    let shown = browser.ask(&format!("deal {dealid}")).await;
    assert_eq!((shown["step"].as_str(), shown["sameLoad"].as_bool()), (Some("deal"), Some(true)), "{shown}");
    assert_eq!(shown["priceDots"], 4, "the price history follows the deals: {shown}");
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let receipt = hub
        .initialize(dealid.parse().expect("id"), U256::ZERO)
        .send()
        .await
        .expect("initialize")
        .get_receipt()
        .await
        .expect("mined");
    assert!(receipt.status());
    let (_, one) = server.get(&format!("/deals/{dealid}")).await;
    let taskid = one["tasks"][0]["taskid"].as_str().expect("taskid").to_owned();
    let status = browser.ask(&format!("status {taskid} ACTIVE")).await;
    assert_eq!((status["step"].as_str(), status["sameLoad"].as_bool()), (Some("status"), Some(true)), "{status}");

    // The pages and the search.
    let request = live.order_hash(&w.domain).to_string();
    let pool = w.pool.to_checksum(None);
    let requester = w.requester.address().to_checksum(None);
    let blocked = bids[0].order_hash(&w.domain).to_string();
    let cfg = json!({"dealid": dealid, "taskid": taskid, "pool": pool, "request": request, "requester": requester,
                     "blocked": blocked});
    let pages = browser.ask(&format!("pages {cfg}")).await;
    assert_eq!(pages["step"], "pages", "{pages}");
    assert_eq!(pages["dealTasks"], 2, "the deal lists its two tasks: {pages}");
    assert_eq!(pages["dealActive"], 1, "{pages}");
    assert_eq!(pages["dealRequestLink"], 1, "{pages}");
    assert_eq!(pages["orderStatus"], "filled", "{pages}");
    assert_eq!(pages["orderDealLink"], 1, "{pages}");
    assert_eq!(pages["orderSettled"], 1, "{pages}");
    // Why not matched, on the blocked request's page: every offer (0.06, 0.07, 0.09 RLC) is above its 0.03 RLC.
    assert_eq!(pages["whyCodes"], json!(["workerpool_price"]), "{pages}");
    assert!(
        pages["whyText"].as_str().is_some_and(|t| t.contains(&format!(
            "workerpool price {} nRLC > the request's workerpoolmaxprice {} nRLC",
            6 * CENT,
            3 * CENT
        ))),
        "the cheapest offer first: {pages}"
    );
    assert_eq!(pages["whyRows"], 3, "one row per open offer: {pages}");
    assert!(pages["taskEvents"][0].as_str().is_some_and(|e| e.starts_with("TaskInitialize")), "{pages}");
    assert_eq!(pages["searchDeal"], format!("#/deal/{dealid}"), "{pages}");
    assert_eq!(pages["searchPool"], format!("#/pool/{pool}"), "{pages}");
    assert_eq!(pages["poolRate"], "—", "no task of the pool has finished: {pages}");
    assert_eq!(pages["poolDeals"], 4, "{pages}");
    assert_eq!(pages["poolOrders"], 3, "offers at 0.06, 0.09 and 0.07 RLC are open: {pages}");
    assert_eq!(pages["searchRequester"], format!("#/address/{requester}"), "{pages}");
    assert_eq!(pages["requesterDeals"], 4, "{pages}");
    assert_eq!(pages["searchUnknown"], format!("#/search/0x{}", "ab".repeat(32)), "{pages}");
    assert!(pages["malformedToast"].as_str().is_some_and(|t| t.starts_with("Enter an address")), "{pages}");
    assert_eq!(pages["dealsListed"], 4, "{pages}");
    assert_eq!(pages["tasksListed"], 17, "every task of the four deals: {pages}");
    assert_eq!(pages["sameLoad"], true, "hash routes never reload the page: {pages}");

    // The pool's track record: the initialized task completes on chain, the pool page follows, and every figure it
    // shows is the API's.
    crate::track_records::contribute_and_finalize(&w, &w.owner, taskid.parse().expect("taskid")).await;
    let api = until("the completed task in the track record", async || {
        let (_, b) = server.get(&format!("/workerpools/{pool}")).await;
        (b["trackRecord"]["allTime"]["completed"] == 1).then_some(b["trackRecord"].clone())
    })
    .await;
    let shown = browser.ask(&format!("track {pool} 1")).await;
    assert_eq!(shown["step"], "track", "{shown}");
    for window in ["allTime", "last30Days"] {
        for (k, v) in api[window].as_object().expect("figures") {
            let cell = shown[window][k]["v"].as_str().unwrap_or_else(|| panic!("{window}.{k} is not shown: {shown}"));
            let same = match v.as_f64() {
                Some(x) => cell.parse::<f64>().is_ok_and(|c| c == x),
                None => v.is_null() && cell.is_empty(),
            };
            assert!(same, "{window}.{k}: {cell} shown, {v} answered: {shown} against {api}");
        }
    }
    assert_eq!(api["allTime"]["deals"], 4, "{api}");
    assert_eq!(shown["allTime"]["completedRate"]["text"], "100.0%", "{shown}");
    assert!(shown["hint"].as_str().is_some_and(|h| h.contains("as of block")), "{shown}");
    assert_eq!(shown["sameLoad"], true, "{shown}");

    browser.finish().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_computed_by_a_pool_is_followed_live_to_its_result() {
    use crate::pool::{Pool, Worker, funded_worker, native_app, request, work_dir, worker_config};
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let (app, app_order) = native_app(&w).await;
    let key = funded_worker(&w).await;
    let worker = Worker::start(worker_config(&w, &pool, key, app, work_dir("explorer")));
    let mut browser = Browser::start(&server.base);
    assert_eq!(browser.next().await["step"], "ready");

    // Two tasks bought from the World's pool; the page opens the deal as soon as it is on chain.
    let req = request(&w, app, 2, "explorer", 0x53);
    publish_all(&server, &w, &[app_order, w.pool_order(5, 10, CATEGORY, 0x52), req.clone()]).await;
    let deal = deals_of(&server, &w, &req, 1).await.remove(0);
    let dealid = deal["dealid"].as_str().expect("dealid").to_owned();
    let at = browser.ask(&format!("goto #/deal/{dealid} deal")).await;
    eprintln!("explorer: the deal page opened with its tasks {}", at["statuses"]);
    assert_eq!(at["statuses"].as_array().map(Vec::len), Some(2), "{at}");
    let (_, one) = server.get(&format!("/deals/{dealid}")).await;
    for t in one["tasks"].as_array().expect("tasks") {
        let taskid = t["taskid"].as_str().expect("taskid");
        let done =
            browser.ask(&format!("wait tr[data-task=\"{taskid}\"][data-status=\"COMPLETED\"] td.result code")).await;
        assert_eq!(done["sameLoad"], true, "{done}");
        let short = format!("{}…{}", &taskid[..6], &taskid[taskid.len() - 4..]);
        assert_eq!(done["text"], format!("ipfs: /results/{short}"), "the result's location is shown: {done}");
        let copied = browser.ask(&format!("copy tr[data-task=\"{taskid}\"] td.result button.copy")).await;
        assert_eq!(copied["text"], format!("/results/{taskid}"), "{copied}");
    }
    assert_eq!(browser.ask("shot deal").await["step"], "shot");
    let at = browser.ask(&format!("goto #/pool/{} pool", w.pool.to_checksum(None))).await;
    assert_eq!(at["statuses"], json!(["COMPLETED", "COMPLETED"]), "{at}");
    let rate = browser.ask("wait #p-rate").await;
    assert_eq!(rate["text"], "100.0%", "both tasks completed: {rate}");
    assert_eq!(browser.ask("shot pool").await["step"], "shot");
    browser.finish().await;
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_routes_answer_with_types_caching_and_clear_errors() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let http = reqwest::Client::new();
    // The page names the chain; assets carry their type, an ETag, and revalidate to a 304.
    let page = http.get(format!("{}/", server.base)).send().await.expect("page");
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.expect("html");
    assert!(html.contains(&format!("content=\"{}\"", w.deployment.chain_id)), "{html}");
    for (path, ty) in [
        ("/explorer/app.js", "text/javascript; charset=utf-8"),
        ("/explorer/app.css", "text/css; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let r = http.get(format!("{}{path}", server.base)).send().await.expect("asset");
        assert_eq!((r.status().as_u16(), r.headers()["content-type"].to_str().ok()), (200, Some(ty)), "{path}");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let etag = r.headers()["etag"].clone();
        assert!(!r.bytes().await.expect("body").is_empty());
        let again =
            http.get(format!("{}{path}", server.base)).header("if-none-match", etag).send().await.expect("asset");
        assert_eq!(again.status().as_u16(), 304, "{path}");
    }

    // A deal with three tasks, one initialized.
    for o in [w.app_order(2, 100, 1), w.pool_order(5, 10, CATEGORY, 2)] {
        assert_eq!(server.publish(&w.owner, &o).await.0, 200);
    }
    let req = w.request(&w.requester, 8, 3, CATEGORY, 3);
    assert_eq!(server.publish(&w.requester, &req).await.0, 200);
    let deal = deals_of(&server, &w, &req, 1).await.remove(0);
    let dealid = deal["dealid"].as_str().expect("dealid").to_owned();
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    hub.initialize(dealid.parse().expect("id"), U256::from(1))
        .send()
        .await
        .expect("initialize")
        .get_receipt()
        .await
        .expect("mined");
    let tasks = until("the task ACTIVE in /tasks", async || {
        let (s, b) = server.get(&format!("/tasks?category={CATEGORY}")).await;
        assert_eq!(s, 200, "{b}");
        let t = b["tasks"].as_array().cloned().unwrap_or_default();
        t.iter().any(|t| t["status"] == "ACTIVE").then_some(t)
    })
    .await;
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks.iter().map(|t| t["idx"].as_u64()).collect::<Vec<_>>(), [Some(0), Some(1), Some(2)]);
    assert_eq!(tasks[1]["status"], "ACTIVE");
    assert_eq!(tasks[1]["lastEvent"], "TaskInitialize");
    assert_eq!(tasks[0]["dealid"], dealid.as_str());
    assert_eq!(server.get("/tasks?category=4").await.1["tasks"], json!([]));
    let taskid = tasks[1]["taskid"].as_str().expect("taskid");
    let (s, one) = server.get(&format!("/tasks/{taskid}")).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["events"][0]["event"], "TaskInitialize");
    assert_eq!(one["workerpool"], w.pool.to_checksum(None));

    let (_, pool) = server.get(&format!("/pools/{}", w.pool)).await;
    assert_eq!((pool["deals"].as_u64(), pool["volume"].as_u64()), (Some(1), Some(3)), "{pool}");
    assert_eq!(pool["tasks"], json!({"UNSET": 2, "ACTIVE": 1, "REVEALING": 0, "COMPLETED": 0, "FAILED": 0}));
    assert_eq!(pool["successRate"], Value::Null, "no task finished");

    // Search: each kind of id, an address's roles, something unknown.
    let find = async |q: &str| server.get(&format!("/search?q={q}")).await.1;
    assert_eq!(find(&dealid).await["type"], "deal");
    assert_eq!(find(taskid).await["type"], "task");
    assert_eq!(find(&req.order_hash(&w.domain).to_string()).await["type"], "requestorder");
    let pool_found = find(&format!("{:#x}", w.pool)).await;
    assert_eq!(pool_found["type"], "address");
    assert_eq!(pool_found["id"], w.pool.to_checksum(None));
    assert_eq!(pool_found["roles"], json!({"workerpool": 1, "workerpoolorders": 1}));
    assert_eq!(find(&format!("0x{}", "ab".repeat(32))).await["type"], Value::Null);

    // Bad input: a 400 or a 404 with the JSON error body, never a 500.
    for (path, status) in [
        ("/search?q=nope", 400),
        ("/search?q=0xzz00000000000000000000000000000000000000", 400),
        ("/tasks?pageSize=0", 400),
        ("/tasks?pageSize=201", 400),
        ("/tasks?workerpool=0x12", 400),
        ("/tasks/0x1234", 400),
        ("/pools/nope", 400),
    ] {
        let (s, b) = server.get(path).await;
        assert_eq!((s, b["code"].as_str()), (status, Some("bad_request")), "{path}: {b}");
    }
    let (s, b) = server.get(&format!("/tasks/0x{}", "cd".repeat(32))).await;
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")), "{b}");
    server.shutdown().await;
}
