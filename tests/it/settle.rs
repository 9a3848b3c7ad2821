//! Settlement and chain sync against a real anvil and PostgreSQL: requests become deals on chain with no other
//! action, deals made by anyone show in the book and the deal list, and every fault the chain produces
//! (cancellations, stake and ownership changes, reorgs, a killed server, an operator without gas money) is
//! undone or absorbed without losing anything.

use crate::harness::database;
use crate::market::{Server, World, app_order_of, pool_order_of, provider, request_of, signed_in};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::app_registry::AppRegistry;
use dragon::chain::contracts::hub::{DragonHub, IexecLibOrders_v5 as sol};
use dragon::chain::setup;
use dragon::config::Config;
use dragon::order::AnyOrder;
use serde_json::{Value, json};
use std::time::Duration;

/// anvil's fourth development account: the exchange's operator in these tests.
pub const OPERATOR: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

pub fn operator() -> PrivateKeySigner {
    OPERATOR.parse().expect("key")
}

/// The World's config with the operator key: the server settles.
pub fn settling(w: &World, db: String) -> Config {
    let mut c = w.config(db);
    c.operator_key = Some(operator());
    c.settler.receipt_timeout = Duration::from_secs(20);
    c.settler.max_backoff = Duration::from_millis(500);
    c.sync.poll = Duration::from_millis(100);
    c
}

/// Polls `f` until it gives a value, for at most 30 s.
pub async fn until<T>(what: &str, f: impl AsyncFnMut() -> Option<T>) -> T {
    crate::harness::until_within(what, Duration::from_secs(30), f).await
}

fn h(w: &World, o: &AnyOrder) -> String {
    o.order_hash(&w.domain).to_string()
}

/// A request paying exactly the given prices (so the requester's deposit can be sized to one deal).
fn exact_request(
    w: &World,
    who: &PrivateKeySigner,
    app_price: u64,
    pool_price: u64,
    volume: u64,
    salt: u8,
) -> AnyOrder {
    let r = request_of(who.address(), w.app, [app_price, pool_price], volume, 1, "{\"iexec_args\":\"settle\"}", salt);
    w.signed(who, r)
}

/// Cancels an app order on chain, as its owner.
async fn close_on_chain(w: &World, order: &AnyOrder) {
    let AnyOrder::App(a) = order else { panic!("an app order") };
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let close = sol::AppOrderOperation { order: sol::AppOrder::from(a), operation: 1, sign: Bytes::new() };
    hub.manageAppOrder(close).send().await.expect("close").get_receipt().await.expect("mined");
}

async fn deals_of(server: &Server, request: &str) -> Vec<Value> {
    let (s, b) = server.get(&format!("/deals?requestorderHash={request}")).await;
    assert_eq!(s, 200, "{b}");
    b["deals"].as_array().cloned().unwrap_or_default()
}

async fn order(server: &Server, kind: &str, hash: &str) -> Value {
    let (s, b) = server.get(&format!("/{kind}orders/{hash}")).await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn proposals(server: &Server, hash: &str) -> Vec<Value> {
    let (s, b) = server.get(&format!("/proposals?orderHash={hash}")).await;
    assert_eq!(s, 200, "{b}");
    b["proposals"].as_array().cloned().unwrap_or_default()
}

async fn consumed(w: &World, hash: &str) -> U256 {
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    hub.viewConsumed(hash.parse().expect("hash")).call().await.expect("viewConsumed")
}

async fn set_balance(w: &World, who: Address, wei: U256) {
    let p = provider(&w.node.url(), &w.owner);
    let _: Value = p.raw_request("anvil_setBalance".into(), (who, wei)).await.expect("anvil_setBalance");
}

/// A fresh requester with `deposit` nRLC in the hub and gas money.
pub(crate) async fn requester_with(w: &World, deposit: u64) -> PrivateKeySigner {
    let key = PrivateKeySigner::random();
    set_balance(w, key.address(), U256::from(10u128.pow(20))).await;
    let url = w.node.url();
    let minter = setup::Account::new(&url, &w.owner).expect("account");
    let who = setup::Account::new(&url, &key).expect("account");
    setup::fund(&w.deployment, &minter, &[&who], U256::from(deposit)).await.expect("fund");
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_request_becomes_a_deal_on_chain_with_no_other_action() {
    let w = World::new().await;
    let db = database().await;
    let server = Server::start(settling(&w, db.clone())).await;
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    let req = w.request(&w.requester, 8, 3, 1, 3);
    for (key, o) in [(&w.owner, &app), (&w.owner, &pool), (&w.requester, &req)] {
        let (s, b) = server.publish(key, o).await;
        assert_eq!(s, 200, "{b}");
    }
    let deal = until("the deal on chain", async || deals_of(&server, &h(&w, &req)).await.into_iter().next()).await;
    let dealid = deal["dealid"].as_str().expect("dealid").to_owned();
    // The chain agrees: the three orders are consumed by 3, and the deal is the hub's.
    assert_eq!(consumed(&w, &h(&w, &req)).await, U256::from(3));
    assert_eq!(consumed(&w, &h(&w, &pool)).await, U256::from(3));
    assert_eq!(consumed(&w, &h(&w, &app)).await, U256::from(3));
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    let on_chain = hub.viewDeal(dealid.parse().expect("id")).call().await.expect("viewDeal");
    assert_eq!(on_chain.requester, w.requester.address());
    assert_eq!(deal["requester"], w.requester.address().to_checksum(None));
    assert_eq!(deal["volume"], 3);
    assert_eq!(deal["workerpool"]["price"], 5);
    assert_eq!(deal["app"]["pointer"], w.app.to_checksum(None));
    assert_eq!(deal["requestHash"], h(&w, &req));
    // The deal with its tasks, not yet initialized.
    let (s, one) = server.get(&format!("/deals/{dealid}")).await;
    assert_eq!(s, 200, "{one}");
    let tasks = one["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|t| t["status"] == "UNSET"), "{one}");
    // The proposal is settled with this deal; the book shows what is left.
    let p = proposals(&server, &h(&w, &req)).await;
    assert_eq!((p.len(), p[0]["status"].as_str(), p[0]["dealid"].as_str()), (1, Some("settled"), Some(&*dealid)));
    assert_eq!(order(&server, "request", &h(&w, &req)).await["status"], "filled");
    assert_eq!(order(&server, "workerpool", &h(&w, &pool)).await["remaining"], 7);
    // Price history from the deal.
    let (_, ohlc) = server.get("/ohlc?category=1").await;
    assert_eq!(ohlc["ohlc"].as_array().map(Vec::len), Some(1), "{ohlc}");
    assert_eq!(ohlc["ohlc"][0][1], 5, "the price, a JSON number as the peer gives it");
    assert_eq!(ohlc["ohlc"][0][2], 3);

    // A task initialized on chain shows ACTIVE in the deal view (task events are synced).
    let tasks_hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    tasks_hub
        .initialize(dealid.parse().expect("id"), U256::ZERO)
        .send()
        .await
        .expect("initialize")
        .get_receipt()
        .await
        .expect("mined");
    until("the task ACTIVE", async || {
        let (_, one) = server.get(&format!("/deals/{dealid}")).await;
        (one["tasks"][0]["status"] == "ACTIVE").then_some(())
    })
    .await;

    // A restart resumes from the cursor: nothing applied twice, the same book.
    server.shutdown().await;
    let server = Server::start(settling(&w, db)).await;
    assert_eq!(deals_of(&server, &h(&w, &req)).await.len(), 1);
    assert_eq!(order(&server, "workerpool", &h(&w, &pool)).await["remaining"], 7);
    let (_, one) = server.get(&format!("/deals/{dealid}")).await;
    assert_eq!(one["tasks"][0]["status"], "ACTIVE");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_gas_money_deals_wait_then_settle_in_one_batch_with_one_failing_deal() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let op = operator().address();
    set_balance(&w, op, U256::ZERO).await;
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 100, 1, 2);
    for o in [&app, &pool] {
        assert_eq!(server.publish(&w.owner, o).await.0, 200);
    }
    // Three requests, one per requester; the poor one can pay for one task (7 nRLC) and asks for two,
    // singly: each order passes publication, the second deal cannot be paid.
    let poor = requester_with(&w, 10).await;
    let rich = [&w.requester, &w.other];
    let mut reqs = Vec::new();
    for (i, who) in rich.iter().enumerate() {
        let r = exact_request(&w, who, 2, 5, 2, 10 + i as u8);
        assert_eq!(server.publish(who, &r).await.0, 200);
        reqs.push(r);
    }
    let poor_a = exact_request(&w, &poor, 2, 5, 1, 20);
    let poor_b = exact_request(&w, &poor, 2, 5, 1, 21);
    for r in [&poor_a, &poor_b] {
        let (s, b) = server.publish(&poor, r).await;
        assert_eq!(s, 200, "{b}");
    }
    // No gas money: the proposals wait, proposed, and the health check says why.
    until("the settler to notice", async || {
        let (_, health) = server.get("/health").await;
        (health["settler"]["outOfGasMoney"] == true).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for r in reqs.iter().chain([&poor_a, &poor_b]) {
        let p = proposals(&server, &h(&w, r)).await;
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0]["status"], "proposed");
        assert!(deals_of(&server, &h(&w, r)).await.is_empty());
    }
    // Money back: everything that waited goes out as one batch; the unpayable deal alone fails, with the
    // hub's reason, and its request dies (its owner cannot pay for it).
    set_balance(&w, op, U256::from(10u128.pow(20))).await;
    for r in reqs.iter().chain([&poor_a]) {
        until("each payable deal", async || deals_of(&server, &h(&w, r)).await.into_iter().next()).await;
    }
    let failed = until("the failing proposal", async || {
        let p = proposals(&server, &h(&w, &poor_b)).await;
        p.into_iter().find(|p| p["status"] == "failed")
    })
    .await;
    assert!(failed["reason"].as_str().is_some_and(|r| r.contains("exceeds balance")), "{failed}");
    assert!(failed["transactionHash"].is_string(), "it was sent: {failed}");
    let dead = until("the unpayable request out of the book", async || {
        let o = order(&server, "request", &h(&w, &poor_b)).await;
        (o["status"] != "open").then_some(o)
    })
    .await;
    assert_eq!(dead["status"], "dead", "{dead}");
    assert_eq!(consumed(&w, &h(&w, &poor_b)).await, U256::ZERO);
    // One batch carried the waiting deals.
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.expect("metrics").text().await.expect("text");
    let batches = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dragon_settle_batches_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("batch counter");
    assert!(batches >= 1, "{metrics}");
    // The pool's remaining volume is what the chain consumed: 2 + 2 + 1.
    assert_eq!(consumed(&w, &h(&w, &pool)).await, U256::from(5));
    until("the pool's remaining", async || {
        let o = order(&server, "workerpool", &h(&w, &pool)).await;

        (o["remaining"] == 95).then_some(())
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_cancelled_on_chain_or_left_without_stake_or_owner_leave_the_book() {
    let w = World::new().await;
    let server = Server::start(w.config(database().await)).await;
    let app = w.app_order(2, 10, 1);
    let app2 = w.app_order(3, 10, 2);
    let pool = w.pool_order(5, 10, 1, 3);
    for o in [&app, &app2, &pool] {
        assert_eq!(server.publish(&w.owner, o).await.0, 200);
    }
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));

    // Cancelled on chain by its owner.
    close_on_chain(&w, &app).await;
    let o = until("the cancelled order", async || {
        let o = order(&server, "app", &h(&w, &app)).await;
        (o["status"] != "open").then_some(o)
    })
    .await;
    assert_eq!(o["status"], "canceled");
    assert_eq!(server.get(&format!("/apporders?app={}", w.app)).await.1["count"], 1);

    // The pool owner withdraws its whole stake: the pool order (30% of 5 x 10 needed) dies.
    let balance = hub.balanceOf(w.owner.address()).call().await.expect("balance");
    hub.withdraw(balance).send().await.expect("withdraw").get_receipt().await.expect("mined");
    let o = until("the pool order without stake", async || {
        let o = order(&server, "workerpool", &h(&w, &pool)).await;
        (o["status"] != "open").then_some(o)
    })
    .await;
    assert_eq!(o["status"], "dead");
    assert_eq!(server.get("/workerpoolorders?category=1").await.1["count"], 0);

    // The app changes hands: the former owner's orders no longer verify.
    let apps = AppRegistry::new(w.deployment.app_registry, provider(&w.node.url(), &w.owner));
    let token = U256::from_be_slice(w.app.as_slice());
    apps.transferFrom(w.owner.address(), w.other.address(), token)
        .send()
        .await
        .expect("transfer")
        .get_receipt()
        .await
        .expect("mined");
    let o = until("the app order of the former owner", async || {
        let o = order(&server, "app", &h(&w, &app2)).await;
        (o["status"] != "open").then_some(o)
    })
    .await;
    assert_eq!(o["status"], "dead");
    // The new owner publishes at once: the owner cache was dropped.
    let mine = w.signed(&w.other, {
        let AnyOrder::App(mut a) = w.app_order(4, 5, 9) else { unreachable!() };
        a.sign = None;
        AnyOrder::App(a)
    });
    let (s, b) = server.publish(&w.other, &mine).await;
    assert_eq!(s, 200, "{b}");
    server.shutdown().await;
}

/// Rows of the store that sync writes or derives, in a stable order, to compare states.
async fn snapshot(db: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(db, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let mut out = Vec::new();
    for q in [
        "SELECT encode(order_hash, 'hex') || ' ' || remaining || ' ' || status || ' ' || coalesce(closed_block, -1)
         FROM orders ORDER BY seq",
        "SELECT encode(deal_id, 'hex') || ' ' || volume FROM deals ORDER BY deal_id",
        "SELECT count(*)::text FROM tasks",
        "SELECT count(*)::text FROM task_events",
        "SELECT id || ' ' || status FROM deal_proposals ORDER BY id",
    ] {
        for r in client.query(q, &[]).await.expect("snapshot query") {
            out.push(r.get::<_, String>(0));
        }
    }
    out
}

async fn health(server: &Server) -> Value {
    server.get("/health").await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_is_undone_exactly() {
    let w = World::new().await;
    let db = database().await;
    let server = Server::start(w.config(db.clone())).await;
    let app = w.app_order(2, 10, 1);
    let app2 = w.app_order(3, 10, 2);
    let pool = w.pool_order(5, 10, 1, 3);
    for o in [&app, &app2, &pool] {
        assert_eq!(server.publish(&w.owner, o).await.0, 200);
    }
    let p = provider(&w.node.url(), &w.owner);
    let before_block = p.get_block_number().await.expect("block");
    until("sync at the head", async || {
        (health(&server).await["sync"]["block"].as_u64() >= Some(before_block)).then_some(())
    })
    .await;
    let before = snapshot(&db).await;

    // On chain, outside Dragon: a deal on Dragon's app and pool orders, and a cancellation.
    let req = w.request(&w.requester, 8, 2, 1, 7);
    w.match_directly(&w.requester, &app, &pool, &req).await;
    close_on_chain(&w, &app2).await;
    until("the foreign deal in the book", async || {
        (order(&server, "workerpool", &h(&w, &pool)).await["remaining"] == 8).then_some(())
    })
    .await;
    until("the cancellation", async || {
        (order(&server, "app", &h(&w, &app2)).await["status"] == "canceled").then_some(())
    })
    .await;
    let after = snapshot(&db).await;
    assert_ne!(before, after);
    let tracked = |b: Value| b["trackRecord"]["allTime"]["tasks"].clone();
    let (_, b) = server.get(&format!("/workerpools/{}", w.pool)).await;
    assert_eq!(tracked(b), 2, "the foreign deal's tasks count in the pool's track record");

    // The two blocks are orphaned: replaced by two empty ones.
    let depth = p.get_block_number().await.expect("block") - before_block;
    let _: Value = p.raw_request("anvil_reorg".into(), (depth, Vec::<Value>::new())).await.expect("anvil_reorg");
    until("the reorg undone", async || (health(&server).await["sync"]["reorgs"].as_u64() >= Some(1)).then_some(()))
        .await;
    let head = p.get_block_number().await.expect("block");
    until("sync at the new head", async || {
        (health(&server).await["sync"]["block"].as_u64() >= Some(head)).then_some(())
    })
    .await;
    assert_eq!(snapshot(&db).await, before, "the store is as before the orphaned blocks");
    assert_eq!(order(&server, "workerpool", &h(&w, &pool)).await["remaining"], 10);
    assert_eq!(order(&server, "app", &h(&w, &app2)).await["status"], "open");
    assert_eq!(server.get("/deals").await.1["count"], 0);
    // Track records derive from the rows the rollback deleted: the deal is gone from them too, in the book's copy.
    let (_, b) = server.get(&format!("/workerpools/{}", w.pool)).await;
    assert_eq!((tracked(b.clone()), &b["trackRecord"]["allTime"]["deals"]), (json!(0), &json!(0)), "{b}");
    assert_eq!(tracked(order(&server, "workerpool", &h(&w, &pool)).await), 0);
    assert_eq!(consumed(&w, &h(&w, &pool)).await, U256::ZERO, "the chain agrees");
    // The book works on: a request matches the restored volume (no settler here: it stays proposed).
    let req2 = w.request(&w.requester, 8, 10, 1, 8);
    assert_eq!(server.publish(&w.requester, &req2).await.0, 200);
    until("the whole pool matched", async || {
        (order(&server, "workerpool", &h(&w, &pool)).await["status"] == "filled").then_some(())
    })
    .await;
    server.shutdown().await;
}

async fn mine(w: &World, blocks: u64) {
    let p = provider(&w.node.url(), &w.owner);
    for _ in 0..blocks {
        let _: Value = p.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
    }
}

async fn automine(w: &World, on: bool) {
    let p = provider(&w.node.url(), &w.owner);
    let _: Value = p.raw_request("evm_setAutomine".into(), (on,)).await.expect("evm_setAutomine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_carries_deals_and_task_changes_and_confirmations_delay_them() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let w = World::new().await;
    let mut config = settling(&w, database().await);
    config.sync.confirmations = 2;
    let server = Server::start(config).await;
    let url = format!("{}/feed", server.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect /feed");
    for topic in ["deals", "tasks"] {
        let sub = serde_json::json!({"op": "subscribe", "chainId": w.deployment.chain_id, "topic": topic});
        ws.send(Message::text(sub.to_string())).await.expect("send");
    }
    let mut next = async || loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("an event in time");
        if let Some(Ok(Message::Text(t))) = m {
            let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
            if v.get("event").is_some() {
                return v;
            }
        }
    };
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    let req = w.request(&w.requester, 8, 1, 1, 3);
    for (key, o) in [(&w.owner, &app), (&w.owner, &pool), (&w.requester, &req)] {
        assert_eq!(server.publish(key, o).await.0, 200);
    }
    assert_eq!(next().await["event"], "deal_proposed");
    // Settled on chain at once, but listed only after two more blocks (confirmations = 2).
    let proposal = until("the settlement transaction", async || {
        proposals(&server, &h(&w, &req)).await.into_iter().find(|p| p["transactionHash"].is_string())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(deals_of(&server, &h(&w, &req)).await.is_empty(), "not listed before its confirmations");
    assert_eq!(proposals(&server, &h(&w, &req)).await[0]["status"], "submitted", "{proposal}");
    mine(&w, 2).await;
    let created = next().await;
    assert_eq!(created["event"], "deal_created", "{created}");
    let dealid = created["data"]["dealid"].as_str().expect("dealid").to_owned();
    assert_eq!(created["data"]["requestHash"], h(&w, &req));
    assert_eq!(deals_of(&server, &h(&w, &req)).await.len(), 1);
    // A task initialized on chain: `task_updated` once confirmed.
    let hub = DragonHub::new(w.deployment.hub, provider(&w.node.url(), &w.owner));
    hub.initialize(dealid.parse().expect("id"), U256::ZERO)
        .send()
        .await
        .expect("init")
        .get_receipt()
        .await
        .expect("mined");
    mine(&w, 2).await;
    let task = next().await;
    assert_eq!(
        (task["event"].as_str(), task["data"]["status"].as_str()),
        (Some("task_updated"), Some("ACTIVE")),
        "{task}"
    );
    assert_eq!(task["data"]["dealid"], dealid);
    assert_eq!(task["data"]["category"], 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_settlement_is_replaced_with_higher_fees_and_settles_once() {
    let w = World::new().await;
    let mut config = settling(&w, database().await);
    config.settler.receipt_timeout = Duration::from_secs(2);
    let server = Server::start(config).await;
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 10, 1, 2);
    for o in [&app, &pool] {
        assert_eq!(server.publish(&w.owner, o).await.0, 200);
    }
    // Blocks stop: the settlement waits in the mempool past the receipt timeout and is replaced.
    automine(&w, false).await;
    let req = w.request(&w.requester, 8, 2, 1, 3);
    assert_eq!(server.publish(&w.requester, &req).await.0, 200);
    let first = until("the first transaction", async || {
        proposals(&server, &h(&w, &req))
            .await
            .into_iter()
            .find_map(|p| p["transactionHash"].as_str().map(str::to_owned))
    })
    .await;
    let second = until("a replacement", async || {
        let p = proposals(&server, &h(&w, &req)).await;
        p[0]["transactionHash"].as_str().filter(|t| *t != first).map(str::to_owned)
    })
    .await;
    mine(&w, 1).await;
    automine(&w, true).await;
    let deal = until("the deal", async || deals_of(&server, &h(&w, &req)).await.into_iter().next()).await;
    assert_eq!(deal["transactionHash"], second, "the replacement was mined, not the original");
    assert_eq!(consumed(&w, &h(&w, &req)).await, U256::from(2), "settled once");
    let p = proposals(&server, &h(&w, &req)).await;
    assert_eq!((p.len(), p[0]["status"].as_str()), (1, Some("settled")));
    let metrics = reqwest::get(format!("{}/metrics", server.base)).await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.lines().any(|l| l.strip_prefix("dragon_settle_replaced_total ").is_some_and(|v| v != "0")),
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_consumed_by_someone_else_meanwhile_is_never_released_to_the_book() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let url = format!("{}/feed", server.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect /feed");
    let sub = serde_json::json!({"op": "subscribe", "chainId": w.deployment.chain_id, "topic": "deals"});
    ws.send(Message::text(sub.to_string())).await.expect("send");
    let op = operator().address();
    set_balance(&w, op, U256::ZERO).await;
    let app = w.app_order(2, 100, 1);
    let pool = w.pool_order(5, 3, 1, 2);
    for o in [&app, &pool] {
        assert_eq!(server.publish(&w.owner, o).await.0, 200);
    }
    // Dragon proposes the pool's whole volume to a request; the settler cannot send it yet.
    let req = w.request(&w.requester, 8, 3, 1, 3);
    assert_eq!(server.publish(&w.requester, &req).await.0, 200);
    until("the proposal", async || proposals(&server, &h(&w, &req)).await.into_iter().next()).await;
    // Meanwhile someone matches the same pool order directly on chain, for all of its volume.
    let theirs = w.request(&w.other, 8, 3, 1, 4);
    w.match_directly(&w.other, &app, &pool, &theirs).await;
    // Gas money back: Dragon's deal fails (nothing left), and the pool's volume does not come back.
    set_balance(&w, op, U256::from(10u128.pow(20))).await;
    let failed = until("the failure", async || {
        proposals(&server, &h(&w, &req)).await.into_iter().find(|p| p["status"] == "failed")
    })
    .await;
    assert!(failed["reason"].as_str().is_some_and(|r| r.contains("0x60")), "volume 0 on chain: {failed}");
    // The feed said so too, with the same reason.
    let event = loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("an event in time");
        if let Some(Ok(Message::Text(t))) = m {
            let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
            if v["event"] == "deal_failed" {
                break v;
            }
        }
    };
    assert_eq!(event["data"]["proposalId"], failed["id"]);
    assert_eq!(event["data"]["reason"], failed["reason"]);
    let o = until("the request back in the book", async || {
        let o = order(&server, "request", &h(&w, &req)).await;
        (o["status"] == "open").then_some(o)
    })
    .await;
    assert_eq!(o["remaining"], 3);
    let pool_now = order(&server, "workerpool", &h(&w, &pool)).await;
    assert_eq!((pool_now["status"].as_str(), pool_now["remaining"].as_u64()), (Some("filled"), Some(0)), "{pool_now}");
    // No new proposal: nothing left to match it with.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(proposals(&server, &h(&w, &req)).await.len(), 1);
    assert_eq!(server.get("/deals").await.1["count"], 1, "only their deal");
    server.shutdown().await;
}

/// The README's run command (`dragon local`) as a user runs it: its own PostgreSQL and anvil, contracts
/// deployed, and an operator that settles. Orders posted over HTTP end as a deal on its chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_market_settles_deals_on_its_own_chain() {
    use dragon::local::free_port;
    use dragon::order::Domain;
    let (api, pool) = (free_port().expect("port"), free_port().expect("port"));
    let (listen, pool_listen) = (format!("127.0.0.1:{api}"), format!("127.0.0.1:{pool}"));
    let local = crate::harness::Local::start("local", &["--listen", &listen, "--pool-listen", &pool_listen]).await;
    let (info, home) = (&local.info, local.home.clone());
    let d = dragon::chain::deploy::Deployment::read(std::path::Path::new(info["deployment"].as_str().expect("path")))
        .expect("deployment");
    let url = info["rpc"].as_str().expect("rpc").to_owned();
    let owner: PrivateKeySigner = crate::fixtures::KEY0.parse().expect("key");
    let requester: PrivateKeySigner = crate::fixtures::KEY1.parse().expect("key");
    let (o, r) = (setup::Account::new(&url, &owner).expect("a"), setup::Account::new(&url, &requester).expect("a"));
    setup::fund(&d, &o, &[&o, &r], U256::from(1_000_000_000u64)).await.expect("fund");
    let app = setup::create_app(&d, &o, "local", b"docker.io/dragon/local:1").await.expect("app");
    let pool = setup::create_workerpool(&d, &o, "local pool").await.expect("pool");
    let domain = Domain::new(U256::from(d.chain_id), d.hub);
    let app_order = signed_in(&domain, &owner, app_order_of(app, 1, 10, 1));
    let pool_order = signed_in(&domain, &owner, pool_order_of(pool, 3, 10, 0, 2));
    let request = signed_in(
        &domain,
        &requester,
        request_of(requester.address(), app, [1, 3], 2, 0, "{\"iexec_args\":\"local\"}", 3),
    );
    let server = Server::attach(info["api"].as_str().expect("api"), d.chain_id);
    for (key, order) in [(&owner, &app_order), (&owner, &pool_order), (&requester, &request)] {
        let (s, b) = server.publish(key, order).await;
        assert_eq!(s, 200, "{b}");
    }
    let rh = request.order_hash(&domain).to_string();
    let deal = until("the deal on the local chain", async || deals_of(&server, &rh).await.into_iter().next()).await;
    assert_eq!(deal["volume"], 2);
    let hub = DragonHub::new(d.hub, provider(&url, &owner));
    assert_eq!(hub.viewConsumed(rh.parse().expect("hash")).call().await.expect("consumed"), U256::from(2));
    let (_, health) = server.get("/health").await;
    assert_eq!(
        health["settler"]["operator"],
        dragon::local::ANVIL_OPERATOR_KEY.parse::<PrivateKeySigner>().expect("key").address().to_checksum(None)
    );

    // The demo pool beside it: its bot offers the worker's slots for the demo app, and a requester gets the
    // demo app's result with the CLI alone, finding every endpoint in local.json.
    let workerpool = info["workerpool"].as_str().expect("workerpool").to_owned();
    assert_eq!(info["results"], info["pool"], "{info}");
    let demo_app = info["apps"][0]["address"].as_str().expect("the demo app").to_owned();
    assert_eq!(info["apps"][0]["name"], "hello");
    let offer = until("the bot's offer", async || {
        // Restricted to the demo app, so listed to those who ask for that app (the peer's rule).
        let (_, b) = server.get(&format!("/workerpoolorders?workerpool={workerpool}&app={demo_app}")).await;
        b["orders"].as_array().and_then(|o| o.first().cloned())
    })
    .await;
    assert_eq!(offer["order"]["apprestrict"].as_str().map(str::to_lowercase), Some(demo_app.to_lowercase()), "{offer}");
    let book = tokio::process::Command::new(crate::harness::dragon_bin())
        .current_dir(&home)
        .args(["orderbook", "--category", "0", "--app", &demo_app])
        .output()
        .await
        .expect("dragon orderbook");
    let table = String::from_utf8_lossy(&book.stdout);
    assert!(book.status.success() && table.contains(&workerpool), "the README's orderbook shows the offer: {table}");
    let out = home.join("out");
    let run = tokio::process::Command::new(crate::harness::dragon_bin())
        .current_dir(&home)
        .args(["run", "--app", &demo_app, "--workerpool", &workerpool, "--args", "local market"])
        .args(["--out"])
        .arg(&out)
        .env("DRAGON_PRIVATE_KEY", dragon::local::demo::REQUESTER_KEY)
        .output()
        .await
        .expect("dragon run");
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "dragon run: {said}");
    // As a new user runs it, without --max-price: the pool's offer is taken, and its price said first.
    assert!(said.starts_with("will pay 0.01 RLC (10000000 nRLC) per task: the best current offer"), "{said}");
    let task_dir = std::fs::read_dir(&out).expect("out").next().expect("one task folder").expect("entry").path();
    assert_eq!(std::fs::read_to_string(task_dir.join("result.txt")).expect("result"), "Hello, local market!\n");
    let (s, bot) = reqwest_get(info["bot"].as_str().expect("bot")).await;
    assert_eq!(s, 200, "{bot}");
    assert!(bot.contains("dragon_bot_price{category=\"0\",strategy=\"fixed\"} 10000000"), "{bot}");
    assert!(bot.contains("dragon_bot_alive_workers 1"), "{bot}");

    // Ctrl-C equivalent: drains and stops everything.
    local.stop().await;
}

async fn reqwest_get(base: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}/metrics")).await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}
