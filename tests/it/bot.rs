//! `dragon bot`, the market maker, against real components: anvil with Dragon's contracts, a settling exchange
//! and a pool with its workers in process (as in `pool.rs`), the bot in process talking to both over HTTP. The
//! bot keeps the book supplied as the pool's capacity changes, renews consumed orders, follows the book within
//! its bounds, and refuses bad configuration with one clear line.

use crate::harness::{database, dragon_bin, until_within as until};
use crate::market::{Server, World, pool_order_of};
use crate::pool::{
    Pool, Worker, completed_tasks, deal_of, funded_worker, native_app, request, work_dir, worker_config,
};
use crate::settle::settling;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use dragon::bot::strategy::{Bounds, Strategy};
use dragon::bot::{BotConfig, BotError, OrderTerms};
use dragon::chain::setup;
use serde_json::Value;
use std::net::TcpListener;
use std::time::Duration;

const CATEGORY: u64 = 1;

/// A `dragon bot` running in this process.
struct Bot {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), BotError>>,
}

impl Bot {
    fn config(w: &World, server: &Server, pool: &Pool, strategy: Strategy) -> BotConfig {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let listen = listener.local_addr().expect("addr");
        drop(listener);
        BotConfig {
            workerpool: w.pool,
            owner: w.owner.clone(),
            exchange_url: server.base.clone(),
            pool_url: pool.base.clone(),
            rpc_url: w.node.url(),
            deployment: w.deployment.clone(),
            categories: vec![CATEGORY],
            strategy,
            terms: OrderTerms::default(),
            max_volume: 100,
            tick: Duration::from_millis(200),
            listen,
        }
    }

    fn start(config: BotConfig) -> Bot {
        let listener = TcpListener::bind(config.listen).expect("bind the bot's port");
        let base = format!("http://{}", config.listen);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(dragon::bot::run(config, listener, async move {
            let _ = rx.await;
        }));
        Bot { base, stop: Some(tx), task }
    }

    async fn get(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.base)).await.expect("bot request").text().await.expect("body")
    }

    /// The last decision in the category, from `/status`.
    async fn decision(&self) -> Value {
        let s: Value = serde_json::from_str(&self.get("/status").await).expect("status JSON");
        s["categories"][0].clone()
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("bot task").expect("bot ran cleanly");
    }
}

/// The open orders of `pool` in the category: (hash, price, remaining).
async fn offers(server: &Server, pool: Address) -> Vec<(String, u64, u64)> {
    let (s, b) = server.get(&format!("/workerpoolorders?category={CATEGORY}&pageSize=100")).await;
    assert_eq!(s, 200, "{b}");
    b["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter(|r| r["order"]["workerpool"].as_str().and_then(|a| a.parse::<Address>().ok()) == Some(pool))
        .map(|r| {
            let price = r["order"]["workerpoolprice"].as_u64().expect("price, a JSON number");
            (r["orderHash"].as_str().expect("hash").to_owned(), price, r["remaining"].as_u64().expect("remaining"))
        })
        .collect()
}

/// Waits until the pool's only open order has `price` and `remaining`; returns its hash.
async fn offered(server: &Server, pool: Address, price: u64, remaining: u64) -> String {
    let what = format!("one open order at {price} with {remaining} remaining");
    until(&what, Duration::from_secs(90), async || {
        let o = offers(server, pool).await;
        (o.len() == 1 && o[0].1 == price && o[0].2 == remaining).then(|| o[0].0.clone())
    })
    .await
}

/// Ages a stopped worker's last heartbeat past the pool's 60 s: what a minute of silence does, without the
/// minute.
async fn silence(pool_db: &str, worker: Address) {
    let (client, conn) = tokio_postgres::connect(pool_db, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let n = client
        .execute(
            "UPDATE pool_workers SET last_seen = now() - interval '2 minutes' WHERE address = $1",
            &[&worker.as_slice()],
        )
        .await
        .expect("age the heartbeat");
    assert_eq!(n, 1);
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{series} in {metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_keeps_the_book_supplied_as_capacity_changes() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool_db = database().await;
    let pool = Pool::start(Pool::config(&w, pool_db.clone()));
    let (app, app_order) = native_app(&w).await;
    let (s, b) = server.publish(&w.owner, &app_order).await;
    assert_eq!(s, 200, "{b}");
    let key_a = funded_worker(&w).await;
    let a = Worker::start(worker_config(&w, &pool, key_a.clone(), app, work_dir("bot-a")));
    until("worker a registered", Duration::from_secs(60), async || {
        (pool.status().await["workers"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let bot = Bot::start(Bot::config(&w, &server, &pool, Strategy::Fixed([(CATEGORY, 5)].into())));

    // One worker: volume 1 at the fixed price.
    let first = offered(&server, w.pool, 5, 1).await;
    // A second worker registers: the bot offers 2, in place of the first order (withdrawn, not left beside it).
    let key_b = funded_worker(&w).await;
    let b_worker = Worker::start(worker_config(&w, &pool, key_b.clone(), app, work_dir("bot-b")));
    let second = offered(&server, w.pool, 5, 2).await;
    assert_ne!(first, second);
    // Withdrawn: unpublished, so the exchange no longer knows it (as iExec's market API forgets it).
    let (s, old) = server.get(&format!("/workerpoolorders/{first}")).await;
    assert_eq!((s, old["error"].as_str()), (404, Some("workerpoolorder not found")), "{old}");
    assert_eq!(bot.decision().await["action"], "raise");

    // A request consumes the whole offer: the deal runs on both workers, and once they are free again the bot
    // renews the offer with a new order.
    let dealid = deal_of(&w, &server, &[&request(&w, app, 2, "bot", 0x71)]).await;
    let (_, filled) = server.get(&format!("/workerpoolorders/{second}")).await;
    assert_eq!((filled["status"].as_str(), filled["remaining"].as_u64()), (Some("filled"), Some(0)), "{filled}");
    completed_tasks(&server, &dealid, Duration::from_secs(90)).await;
    let renewed = offered(&server, w.pool, 5, 2).await;
    assert_ne!(renewed, second);
    // Renewed as soon as one task ends (volume 1), then raised when the other does; or both at once.
    let d = bot.decision().await;
    assert!(d["action"] == "renew" || d["action"] == "raise", "{d}");
    assert_eq!(d["orderHash"].as_str(), Some(renewed.as_str()), "{d}");

    // Worker b stops and falls silent: the bot lowers its offer to what worker a can run.
    b_worker.shutdown().await;
    silence(&pool_db, key_b.address()).await;
    offered(&server, w.pool, 5, 1).await;
    assert_eq!(bot.decision().await["action"], "lower");
    // Worker a too: nothing left to sell, nothing in the book.
    a.shutdown().await;
    silence(&pool_db, key_a.address()).await;
    until("the offer withdrawn", Duration::from_secs(60), async || {
        offers(&server, w.pool).await.is_empty().then_some(())
    })
    .await;
    let d = bot.decision().await;
    assert_eq!((d["action"].as_str(), d["volume"].as_u64()), (Some("withdraw"), Some(0)), "{d}");
    assert!(d["reason"].as_str().expect("reason").contains("0 alive workers"), "{d}");

    // Every decision shows in the metrics.
    let m = bot.get("/metrics").await;
    let decided = |a: &str| {
        counter(&m, &format!("dragon_bot_decisions_total{{category=\"1\",strategy=\"fixed\",action=\"{a}\"}}"))
    };
    for a in ["publish", "raise", "renew", "lower", "withdraw"] {
        assert!(decided(a) >= 1, "{a}: {m}");
    }
    assert_eq!(counter(&m, "dragon_bot_orders_total{category=\"1\",event=\"renewed\"}"), 1, "{m}");
    assert!(counter(&m, "dragon_bot_orders_total{category=\"1\",event=\"withdrawn\"}") >= 3, "{m}");
    assert_eq!(counter(&m, "dragon_bot_volume{category=\"1\",strategy=\"fixed\"}"), 0, "{m}");

    // A new worker: the bot offers again; stopped, it takes its offer out of the book on the way out.
    let c = Worker::start(worker_config(&w, &pool, funded_worker(&w).await, app, work_dir("bot-c")));
    offered(&server, w.pool, 5, 1).await;
    bot.shutdown().await;
    assert!(offers(&server, w.pool).await.is_empty(), "a stopped bot leaves no offer behind");
    c.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follow_strategy_undercuts_within_its_bounds() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let follow = Strategy::Follow(Bounds { min: 4, max: 20, step: 1 });

    // Configuration the chain refutes: a key that does not own the workerpool, a category the hub lacks.
    let mut c = Bot::config(&w, &server, &pool, follow.clone());
    c.owner = w.other.clone();
    let listener = TcpListener::bind(c.listen).expect("bind");
    let err = dragon::bot::run(c, listener, std::future::pending()).await.expect_err("not the owner");
    assert!(matches!(err, BotError::NotOwner(..)), "{err}");
    let mut c = Bot::config(&w, &server, &pool, follow.clone());
    c.categories = vec![99];
    let listener = TcpListener::bind(c.listen).expect("bind");
    let err = dragon::bot::run(c, listener, std::future::pending()).await.expect_err("no such category");
    assert!(err.to_string().contains("category 99 does not exist"), "{err}");

    let worker = Worker::start(worker_config(&w, &pool, funded_worker(&w).await, w.app, work_dir("bot-follow")));
    let bot = Bot::start(Bot::config(&w, &server, &pool, follow));
    // An empty book and no deal: the maximum.
    offered(&server, w.pool, 20, 1).await;

    // A rival pool offers at 10: the bot undercuts it by one step, and stays there (its own order is no rival).
    let owner = setup::Account::new(&w.node.url(), &w.other).expect("account");
    let rival = setup::create_workerpool(&w.deployment, &owner, "rival").await.expect("rival pool");
    let publish_rival = async |price: u64, salt: u8| {
        let o = w.signed(&w.other, pool_order_of(rival, price, 1, CATEGORY, salt));
        let (s, b) = server.publish(&w.other, &o).await;
        assert_eq!(s, 200, "{b}");
    };
    publish_rival(10, 0x81).await;
    let at9 = offered(&server, w.pool, 9, 1).await;
    let d = bot.decision().await;
    assert!(d["reason"].as_str().expect("reason").contains("undercut the best competing ask 10 by 1"), "{d}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(offers(&server, w.pool).await, vec![(at9, 9, 1)], "no chasing its own price");

    // The rival goes to 2: the bot follows down to its minimum, not below.
    publish_rival(2, 0x82).await;
    offered(&server, w.pool, 4, 1).await;
    // The status shows the latest decision: the reprice, or a later tick keeping the price (the reprice is
    // counted in the metrics below either way).
    let d = bot.decision().await;
    assert!(d["action"] == "reprice" || d["action"] == "keep", "{d}");
    assert!(d["reason"].as_str().expect("reason").contains("held at the minimum 4"), "{d}");
    let m = bot.get("/metrics").await;
    assert_eq!(counter(&m, "dragon_bot_price{category=\"1\",strategy=\"follow\"}"), 4, "{m}");
    assert!(counter(&m, "dragon_bot_decisions_total{category=\"1\",strategy=\"follow\",action=\"reprice\"}") >= 2);

    // The pool goes away: unknown capacity is no capacity, the offer leaves the book.
    worker.shutdown().await;
    pool.shutdown().await;
    until("the offer withdrawn", Duration::from_secs(60), async || {
        offers(&server, w.pool).await.is_empty().then_some(())
    })
    .await;
    let m = bot.get("/metrics").await;
    assert!(counter(&m, "dragon_bot_pool_errors_total{reason=\"unreachable\"}") >= 1, "{m}");
    assert!(bot.decision().await["reason"].as_str().expect("reason").starts_with("pool unreachable"));
    bot.shutdown().await;
    server.shutdown().await;
}

/// `dragon bot` with `args` (after the common flags) and `key` as DRAGON_POOL_KEY.
fn bot_command(args: &[&str], key: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(dragon_bin());
    cmd.args(["bot", "--workerpool", "0x00000000000000000000000000000000000000aa", "--rpc-url", "http://127.0.0.1:1"]);
    cmd.args(args).env_remove("DRAGON_POOL_KEY").env("RUST_LOG", "warn");
    if let Some(k) = key {
        cmd.env("DRAGON_POOL_KEY", k);
    }
    cmd.output().expect("run dragon bot")
}

#[test]
fn bad_bot_configuration_exits_2_with_one_line() {
    let key = alloy::hex::encode_prefixed(PrivateKeySigner::random().to_bytes());
    fn with(more: &[&'static str]) -> Vec<&'static str> {
        let urls = ["--exchange", "http://127.0.0.1:1", "--pool", "http://127.0.0.1:2", "--category", "1"];
        [&urls[..], more].concat()
    }
    let deployment = ["--deployment", "/nonexistent/deployment.json"];
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (with(&["--strategy", "fixed", "--price", "5", "--deployment", "d.json"]), None, "DRAGON_POOL_KEY is not set"),
        (
            with(&["--strategy", "fixed", "--price", "5", "--deployment", "d.json"]),
            Some("0x12"),
            "not a valid secp256k1",
        ),
        (with(&["--strategy", "follow", "--min", "3", "--deployment", "d.json"]), Some(&key), "needs --min and --max"),
        (
            with(&["--strategy", "follow", "--min", "9", "--max", "3", "--deployment", "d.json"]),
            Some(&key),
            "--min 9 is above --max 3",
        ),
        (
            with(&["--category", "2", "--strategy", "fixed", "--price", "1=5", "--deployment", "d.json"]),
            Some(&key),
            "needs a price for category 2",
        ),
        (with(&["--strategy", "fixed", "--price", "cheap", "--deployment", "d.json"]), Some(&key), "--price `cheap`"),
        (
            with(&["--strategy", "fixed", "--price", "3=5", "--deployment", "d.json"]),
            Some(&key),
            "category 3 is not served",
        ),
        (
            with(&["--strategy", "fixed", "--price", "5", "--trust", "0", "--deployment", "d.json"]),
            Some(&key),
            "--trust must be at least 1",
        ),
        (
            with(&[&["--strategy", "fixed", "--price", "5"][..], &deployment[..]].concat()),
            Some(&key),
            "/nonexistent/deployment.json",
        ),
    ];
    for (args, k, needle) in cases {
        let out = bot_command(&args, k);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: expected exit 2, stderr: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err:?} does not mention {needle:?}");
    }
    let out = bot_command(
        &[
            "--exchange",
            "localhost:8080",
            "--pool",
            "http://p",
            "--category",
            "1",
            "--strategy",
            "fixed",
            "--price",
            "5",
            "--deployment",
            "d.json",
        ],
        Some(&key),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--exchange `localhost:8080` is not an http(s) URL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_command_supplies_the_book_and_withdraws_on_sigterm() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let worker = Worker::start(worker_config(&w, &pool, funded_worker(&w).await, w.app, work_dir("bot-cmd")));
    let port = dragon::local::free_port().expect("port");
    let mut bot = tokio::process::Command::new(dragon_bin())
        .args(["bot", "--workerpool", &w.pool.to_string(), "--exchange", &server.base, "--pool", &pool.base])
        .args(["--rpc-url", &w.node.url(), "--deployment"])
        .arg(&w.deployment_path)
        .args(["--category", "1", "--strategy", "fixed", "--price", "7", "--tick-ms", "200"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("DRAGON_POOL_KEY", crate::fixtures::KEY0)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn dragon bot");
    offered(&server, w.pool, 7, 1).await;
    let m = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.expect("metrics").text().await.expect("m");
    assert_eq!(counter(&m, "dragon_bot_volume{category=\"1\",strategy=\"fixed\"}"), 1, "{m}");

    let pid = bot.id().expect("pid");
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
    let status = tokio::time::timeout(Duration::from_secs(30), bot.wait()).await.expect("exit").expect("wait");
    assert!(status.success(), "dragon bot stops cleanly on SIGTERM: {status}");
    assert!(offers(&server, w.pool).await.is_empty(), "its offer withdrawn on the way out");
    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}
