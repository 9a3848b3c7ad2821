//! The requesters' and owners' `dragon` commands, run as the real binary against anvil with Dragon's contracts,
//! a settling exchange, a pool and a worker (as in `pool.rs`). The whole path goes through the CLI alone: an
//! owner registers an app and publishes its offers, a requester deposits, submits, waits, and fetches a result
//! that is checked against what the app computes; then `dragon run` does it in one command. Every error the
//! CLI promises to name plainly is provoked, with its exit code and its one line.

use crate::harness::{database, dragon_bin, until_within as until};
use crate::market::{Server, World, app_order_of, pool_order_of, provider};
use crate::pool::{Pool, Worker, funded_worker, work_dir, worker_config};
use crate::settle::settling;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use dragon::chain::contracts::hub::DragonHub;
use dragon::chain::contracts::token::RLC;
use dragon::ids::{DealId, TaskId};
use dragon::money::Nrlc;
use dragon::order::AnyOrder;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// A folder to run the CLI in, holding the `.dragon/local.json` that `dragon local` would write.
struct Place {
    dir: PathBuf,
}

impl Place {
    fn new(name: &str, w: &World, api: &str, gateway: Option<&str>) -> Place {
        let dir = std::env::temp_dir().join(format!("dragon-client-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".dragon")).expect("mkdir");
        let local = json!({
            "api": api,
            "rpc": w.node.url(),
            "chainId": w.deployment.chain_id,
            "hub": w.deployment.hub.to_checksum(None),
            "deployment": w.deployment_path,
        });
        std::fs::write(dir.join(".dragon/local.json"), format!("{local:#}\n")).expect("write local.json");
        // The result gateway comes from the configuration file (the local market has no pool of its own).
        if let Some(g) = gateway {
            std::fs::create_dir_all(dir.join("home/.config/dragon")).expect("mkdir");
            std::fs::write(dir.join("home/.config/dragon/config.toml"), format!("gateway = \"{g}\"\n")).expect("toml");
        }
        Place { dir }
    }

    /// Runs `dragon args` here, with `key` as DRAGON_PRIVATE_KEY; nothing else of the caller's environment
    /// that the CLI reads.
    async fn dragon(&self, key: Option<&PrivateKeySigner>, args: &[&str]) -> Output {
        self.run(key, args, false).await
    }

    /// Runs `dragon args` here, on a terminal (util-linux `script` gives it a pseudo-terminal) when `tty`.
    async fn run(&self, key: Option<&PrivateKeySigner>, args: &[&str], tty: bool) -> Output {
        let mut cmd = if tty {
            let mut c = tokio::process::Command::new("script");
            let line: Vec<String> =
                std::iter::once(dragon_bin()).chain(args.iter().copied()).map(|a| format!("'{a}'")).collect();
            c.args(["-qec", &line.join(" "), "/dev/null"]);
            c
        } else {
            let mut c = tokio::process::Command::new(dragon_bin());
            c.args(args);
            c
        };
        cmd.current_dir(&self.dir).env("HOME", self.dir.join("home"));
        cmd.env_remove("XDG_CONFIG_HOME");
        for v in ["DRAGON_PRIVATE_KEY", "DRAGON_API", "DRAGON_RPC_URL", "DRAGON_DEPLOYMENT", "DRAGON_GATEWAY"] {
            cmd.env_remove(v);
        }
        cmd.env_remove("DRAGON_CONFIG");
        if let Some(k) = key {
            cmd.env("DRAGON_PRIVATE_KEY", alloy::hex::encode_prefixed(k.to_bytes()));
        }
        let out = cmd.output().await.expect("dragon runs");
        eprintln!(
            "$ dragon {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command that must succeed; returns its standard output.
    async fn ok(&self, key: Option<&PrivateKeySigner>, args: &[&str]) -> String {
        let out = self.dragon(key, args).await;
        assert!(out.status.success(), "dragon {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs a command that must fail with `code` and one line holding `needle`; returns that line.
    async fn fails(&self, key: Option<&PrivateKeySigner>, args: &[&str], code: i32, needle: &str) -> String {
        let out = self.dragon(key, args).await;
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(out.status.code(), Some(code), "dragon {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err:?}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(needle), "`{needle}` not in: {err}");
        err.trim_end().to_owned()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write");
        p.to_str().expect("utf-8").to_owned()
    }
}

/// A native app that squares its argument into result.txt and says so on its standard output.
fn square_app(dir: &Path) -> String {
    let p = dir.join("square.sh");
    std::fs::write(
        &p,
        "#!/bin/sh\nset -eu\nn=\"${1:-0}\"\necho \"squaring $n\"\nprintf '%s\\n' \"$((n * n))\" > \"$IEXEC_OUT/result.txt\"\n\
         printf '{\"deterministic-output-path\":\"%s/result.txt\"}\\n' \"$IEXEC_OUT\" > \"$IEXEC_OUT/computed.json\"\n",
    )
    .expect("write app");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    p.to_str().expect("utf-8").to_owned()
}

/// A new key with gas money and `rlc` RLC in its wallet (minted by the token's minter), nothing deposited.
async fn new_requester(w: &World, rlc: u64) -> PrivateKeySigner {
    let key = PrivateKeySigner::random();
    let p = provider(&w.node.url(), &w.owner);
    let _: Value = p
        .raw_request("anvil_setBalance".into(), (key.address(), U256::from(10u128.pow(20))))
        .await
        .expect("anvil_setBalance");
    RLC::new(w.deployment.token, &p)
        .mint(key.address(), U256::from(rlc * Nrlc::PER_RLC))
        .send()
        .await
        .expect("mint")
        .get_receipt()
        .await
        .expect("mined");
    key
}

/// The unsigned order as JSON (the CLI signs it).
fn order_json(o: &AnyOrder) -> String {
    o.to_json_text()
}

/// The task lines of `dragon wait`'s plain output: `  task <idx> <taskid> <STATUS>: ...`.
fn task_ids(out: &str, status: &str) -> Vec<String> {
    let mut ids: Vec<String> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("task ") && l.contains(&format!(" {status}:")))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_gets_a_computed_result_through_the_cli_alone() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let pool = Pool::start(Pool::config(&w, database().await));
    let place = Place::new("e2e", &w, &server.base, Some(&pool.base));
    let owner = &w.owner;

    // The owner: an app, shown back; its offer and the pool's, published through the CLI.
    let script = square_app(&place.dir);
    let app = place.ok(Some(owner), &["app", "register", "--name", "square", "--multiaddr", &script]).await;
    let app: Address = app.trim().parse().expect("an address");
    let shown = place.ok(None, &["app", "show", &app.to_string()]).await;
    assert!(shown.contains("square") && shown.contains(&script), "{shown}");
    assert!(shown.contains(&owner.address().to_checksum(None)), "{shown}");
    let app_order = app_order_of(app, 3, 100, 0x61);
    let file = place.write("apporder.json", &order_json(&app_order));
    let hash = place.ok(Some(owner), &["order", "publish", "--kind", "app", &file]).await;
    assert_eq!(hash.trim(), app_order.order_hash(&w.domain).to_string());
    let pool_order = pool_order_of(w.pool, 5, 10, 0, 0x62);
    let file = place.write("poolorder.json", &order_json(&pool_order));
    place.ok(Some(owner), &["order", "publish", "--kind", "workerpool", &file]).await;
    let book = place.ok(None, &["orderbook", "--category", "0"]).await;
    let row = book.lines().find(|l| l.contains(&w.pool.to_checksum(None))).unwrap_or_else(|| panic!("{book}"));
    assert!(row.contains("0.000000005") && row.contains(" 5 ") && row.contains(" 10 "), "{row}");
    assert!(row.contains("no task finished (0 bought)"), "a pool without history: {row}");
    let worker = Worker::start(worker_config(&w, &pool, funded_worker(&w).await, app, work_dir("client")));

    // The requester: a deposit, then a request followed to its result.
    let me = new_requester(&w, 10).await;
    let out = place.ok(Some(&me), &["account", "deposit", "1RLC"]).await;
    assert!(out.contains("deposited 1 RLC (1000000000 nRLC)"), "{out}");
    let bal = place.ok(Some(&me), &["account", "balance"]).await;
    assert!(bal.contains("free    1 RLC (1000000000 nRLC)"), "{bal}");
    assert!(bal.contains("wallet  9 RLC (9000000000 nRLC)"), "{bal}");
    let out = place.ok(Some(&me), &["submit", "--app", &app.to_string(), "--max-price", "10", "--args", "12"]).await;
    // The price is said before signing: the best offer (5 nRLC), at most the --max-price.
    let mut lines = out.lines();
    let price = lines.next().unwrap_or_default();
    assert!(price.starts_with(&format!("will pay {} per task: the best current offer", dragon_amount(5))), "{out}");
    assert!(price.ends_with(&format!("at most {} (--max-price)", dragon_amount(10))), "{out}");
    let request = lines.next().and_then(|l| l.strip_prefix("request ")).unwrap_or_else(|| panic!("{out}")).to_owned();
    let deal = lines.next().and_then(|l| l.strip_prefix("deal ")).unwrap_or_else(|| panic!("{out}")).to_owned();
    let out = place.ok(None, &["wait", &request, "--timeout", "120"]).await;
    assert!(out.contains(&format!("deal {deal}")), "{out}");
    assert!(out.contains("completed: 1 task(s)"), "{out}");
    // The pool's track record beside its offer: the task it completed, all time and in the last 30 days.
    let pool_row = format!("{}  1/1 completed (100.0%), 0 claimed, 0 failed, median ", w.pool.to_checksum(None));
    let book = until("the track record in dragon orderbook", Duration::from_secs(30), async || {
        let book = place.ok(None, &["orderbook", "--category", "0"]).await;
        book.lines().any(|l| l.contains(&pool_row) && l.matches("1/1 completed").count() == 2).then_some(book)
    })
    .await;
    assert!(book.lines().next().is_some_and(|h| h.contains("TRACK RECORD") && h.contains("LAST 30 DAYS")), "{book}");
    let tasks = task_ids(&out, "COMPLETED");
    assert_eq!(tasks.len(), 1, "{out}");
    let task = &tasks[0];
    // Plain lines (stdout is a pipe): one per change, no terminal control codes.
    assert!(!out.contains('\x1b'), "{out:?}");
    // On a terminal: the block is redrawn in place (cursor up, lines cleared), with a clock.
    let shown = place.run(None, &["wait", &request, "--timeout", "30"], true).await;
    assert!(shown.status.success(), "{shown:?}");
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("\x1b[2K") && shown.contains(" s]"), "{shown:?}");
    assert!(shown.contains("completed: 1 task(s)"), "{shown:?}");
    let status = place.ok(None, &["status", task]).await;
    assert!(status.contains(&format!("{task} COMPLETED")), "{status}");
    // With the gateway known, the pool's own stage too.
    assert!(status.contains("(pool: COMPLETED)"), "{status}");
    let status = place.ok(None, &["status", &request]).await;
    assert!(status.contains("filled") && status.contains("completed: 1 task(s)"), "{status}");

    let out = place.ok(None, &["result", task, "--out", "res"]).await;
    assert!(out.contains("result.txt"), "{out}");
    let computed = std::fs::read_to_string(place.dir.join("res/result.txt")).expect("result.txt unpacked");
    assert_eq!(computed, format!("{}\n", 12 * 12));
    let printed = place.ok(None, &["stdout", task]).await;
    assert_eq!(printed, "squaring 12\n");

    // The escrow paid the deal: app 3 + workerpool 5 nRLC (the request allowed 10 for the pool).
    let bal = place.ok(Some(&me), &["account", "balance"]).await;
    assert!(bal.contains(&format!("free    {}", dragon_amount(1_000_000_000 - 8))), "{bal}");
    let out = place.ok(Some(&me), &["account", "withdraw", "0.5RLC"]).await;
    assert!(out.contains("withdrew 0.5 RLC (500000000 nRLC)"), "{out}");

    // `dragon run`: submit, wait and download in one command.
    let out = place
        .ok(Some(&me), &["run", "--app", &app.to_string(), "--max-price", "10", "--args", "7", "--out", "runs"])
        .await;
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("request 0x")), "{out}");
    let tasks = task_ids(&out, "COMPLETED");
    assert_eq!(tasks.len(), 1, "{out}");
    let computed =
        std::fs::read_to_string(place.dir.join("runs").join(&tasks[0]).join("result.txt")).expect("unpacked");
    assert_eq!(computed, "49\n");

    worker.shutdown().await;
    pool.shutdown().await;
    server.shutdown().await;
}

/// An amount as the CLI shows it.
fn dragon_amount(nrlc: u64) -> String {
    dragon::client::amount::show(Nrlc::from_u64(nrlc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cli_error_is_one_line_with_its_exit_code() {
    let w = World::new().await;
    let server = Server::start(settling(&w, database().await)).await;
    let place = Place::new("errors", &w, &server.base, None);
    let requester = &w.requester;
    let app = w.app.to_string();

    // An app order for the World's app; a workerpool offer at 50 nRLC in category 0.
    let (s, b) = server.publish(&w.owner, &w.app_order(0, 100, 0x71)).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = server.publish(&w.owner, &w.pool_order(50, 10, 0, 0x72)).await;
    assert_eq!(s, 200, "{b}");

    // No key, no endpoints.
    place.fails(None, &["submit", "--app", &app], 2, "no signing key: set DRAGON_PRIVATE_KEY").await;
    let elsewhere = Place { dir: place.dir.join("home") };
    std::fs::create_dir_all(&elsewhere.dir).expect("mkdir");
    elsewhere.fails(Some(requester), &["submit", "--app", &app], 2, "no exchange: pass --api URL").await;
    elsewhere.fails(None, &["result", &format!("{:#066x}", 1)], 2, "no result gateway").await;

    // A configuration file named but absent.
    place
        .fails(None, &["orderbook", "--config", "nowhere.toml"], 2, "cannot read the configuration file `nowhere.toml`")
        .await;

    // The exchange unreachable.
    let port = dragon::local::free_port().expect("port");
    let api = format!("http://127.0.0.1:{port}");
    let line = place.fails(Some(requester), &["submit", "--app", &app, "--api", &api], 1, "is unreachable").await;
    assert!(line.contains(&format!("the exchange at {api} is unreachable")), "{line}");
    place.fails(None, &["orderbook", "--api", &api], 1, "is unreachable").await;

    // An unknown app; an app with no offer.
    let nobody = Address::repeat_byte(0x42).to_string();
    let line = place.fails(Some(requester), &["submit", "--app", &nobody], 2, "unknown app").await;
    assert!(line.contains("not registered in the app registry"), "{line}");
    place.fails(None, &["app", "show", &nobody], 2, "unknown app").await;
    let owner = setup_account(&w);
    let bare = dragon::chain::setup::create_app(&w.deployment, &owner, "bare", b"/bin/true").await.expect("app");
    place.fails(Some(requester), &["submit", "--app", &bare.to_string()], 2, "has no open app order").await;

    // Too little deposit: a requester with RLC in the wallet but nothing in the escrow.
    let poor = new_requester(&w, 1).await;
    let line = place.fails(Some(&poor), &["submit", "--app", &app, "--max-price", "10"], 2, "too little deposit").await;
    assert!(line.contains(&format!("may cost {}", dragon_amount(10))), "{line}");
    assert!(line.contains(&format!("is {}", dragon_amount(0))), "{line}");
    place.fails(Some(&poor), &["account", "withdraw", "1"], 2, "cannot withdraw").await;
    place.fails(Some(&poor), &["account", "deposit", "2RLC"], 2, "cannot deposit 2 RLC").await;

    // Nothing within the max price: said before signing, and after the timeout the engine's explanation.
    let price_blocks = "workerpool price 50 nRLC > the request's workerpoolmaxprice 10 nRLC";
    let line = place
        .fails(Some(requester), &["submit", "--app", &app, "--max-price", "10", "--timeout", "2"], 2, "nothing matched")
        .await;
    assert!(line.contains(price_blocks) && line.contains("(dragon explain 0x"), "{line}");
    // The same through `dragon wait` on a request left open.
    let out = place.ok(Some(requester), &["submit", "--app", &app, "--max-price", "10", "--no-wait"]).await;
    assert!(
        out.contains(&format!("the best current offer, {} per task, is above --max-price", dragon_amount(50))),
        "{out}"
    );
    assert!(out.contains(&format!("workerpool_price: {price_blocks}")), "{out}");
    let request = out.lines().find_map(|l| l.strip_prefix("request ")).expect("a hash").to_owned();
    place.fails(None, &["wait", &request, "--timeout", "1"], 2, price_blocks).await;
    let status = place.ok(None, &["status", &request]).await;
    assert!(status.contains("open") && status.contains("waiting for a match"), "{status}");
    // `dragon explain`: the request's best counter-order and what blocks it, as text and as JSON.
    let text = place.ok(None, &["explain", &request]).await;
    assert!(
        text.starts_with(&format!("requestorder {request} (open, 1 left to match): no combination matches")),
        "{text}"
    );
    assert!(text.contains("workerpoolorder 0x") && text.contains(&format!("at {}", dragon_amount(50))), "{text}");
    assert!(text.contains(&format!("- workerpool_price: {price_blocks}")), "{text}");
    let json: Value = serde_json::from_str(&place.ok(None, &["explain", &request, "--json"]).await).expect("JSON");
    assert_eq!(json["combinations"][0]["blockers"][0]["code"], "workerpool_price", "{json}");
    place.fails(None, &["explain", &format!("{:#066x}", 9)], 2, "knows no order").await;
    // Without --max-price: the best current offer, said before signing, and matched at that price.
    let out = place.ok(Some(requester), &["submit", "--app", &app, "--timeout", "30"]).await;
    let first = out.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("will pay {} per task: the best current offer", dragon_amount(50))), "{out}");
    assert!(out.lines().any(|l| l.starts_with("deal 0x")), "{out}");

    // An id nobody knows; a task that is not completed.
    let unknown = format!("{:#066x}", 7);
    place.fails(None, &["wait", &unknown], 2, "unknown id").await;
    place.fails(None, &["stdout", &unknown, "--gateway", "http://127.0.0.1:1"], 2, "unknown task").await;

    // An owner's order taken out of the book, then again: the exchange's refusal, with its code.
    let order = w.app_order(5, 10, 0x74);
    let file = place.write("app2.json", &order_json(&order));
    let hash = place.ok(Some(&w.owner), &["order", "publish", "--kind", "app", &file]).await;
    let out = place.ok(Some(&w.owner), &["order", "unpublish", "--kind", "app", hash.trim()]).await;
    assert_eq!(out.trim(), hash.trim());
    place
        .fails(Some(&w.owner), &["order", "unpublish", "--kind", "app", hash.trim()], 2, "(order_not_published)")
        .await;
    // A requester cannot publish an owner's order.
    place.fails(Some(requester), &["order", "publish", "--kind", "app", &file], 2, "the exchange refused").await;

    // Datasets and workerpools are registered and shown like apps.
    let ds = place
        .ok(Some(&w.owner), &["dataset", "register", "--name", "prices", "--multiaddr", "https://example.org/p.csv"])
        .await;
    let shown = place.ok(None, &["dataset", "show", ds.trim()]).await;
    assert!(shown.contains("prices") && shown.contains("https://example.org/p.csv"), "{shown}");
    let wp = place.ok(Some(&w.owner), &["workerpool", "register", "--description", "my pool"]).await;
    let shown = place.ok(None, &["workerpool", "show", wp.trim()]).await;
    assert!(shown.contains("my pool") && shown.contains("worker stake 30%"), "{shown}");
    place.fails(None, &["workerpool", "show", &nobody], 2, "unknown workerpool").await;

    // Once the offer is cheap enough, the open request matches and its deal shows.
    let (s, b) = server.publish(&w.owner, &w.pool_order(10, 10, 0, 0x73)).await;
    assert_eq!(s, 200, "{b}");
    let status = until("the deal in dragon status", Duration::from_secs(30), async || {
        let s = place.ok(None, &["status", &request]).await;
        s.contains("deal 0x").then_some(s)
    })
    .await;
    assert!(status.contains("filled"), "{status}");

    // A task that fails: initialized, then claimed past its final deadline; `wait` exits 1 and names it.
    let dealid: B256 = status.lines().find_map(|l| l.strip_prefix("deal ")).expect("a deal line").parse().expect("id");
    let p = provider(&w.node.url(), &w.owner);
    let hub = DragonHub::new(w.deployment.hub, &p);
    hub.initialize(dealid, U256::ZERO).send().await.expect("initialize").get_receipt().await.expect("mined");
    let _: Value = p.raw_request("evm_increaseTime".into(), (100_000_000u64,)).await.expect("evm_increaseTime");
    let _: Value = p.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
    let task = TaskId::of(DealId(dealid), 0).0;
    let receipt = hub.claim(task).send().await.expect("claim").get_receipt().await.expect("mined");
    assert!(receipt.status(), "claimed");
    let line = place.fails(None, &["wait", &request, "--timeout", "30"], 1, "failed").await;
    assert!(line.contains(&format!("task {task} failed")), "{line}");

    server.shutdown().await;
}

fn setup_account(w: &World) -> dragon::chain::setup::Account {
    dragon::chain::setup::Account::new(&w.node.url(), &w.owner).expect("account")
}
