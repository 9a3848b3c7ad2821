//! The order flood of issue 16, measured: what strangers' free keys can make `dragon serve` hold in memory.
//!
//! Attackers (fresh keys: zero-priced requests need no stake) publish request orders with the largest `params`
//! a request body can carry, then orders at the largest size the server accepts, while readers ask for pages of
//! 1,000 orders with ever-new query strings (so the query cache never answers). The server's resident memory
//! (VmRSS, and its peak VmHWM) is sampled from /proc throughout. Real PostgreSQL and anvil, the release binary,
//! default limits (those a stranger meets).
//!
//! `cargo bench --bench flood`. Environment: `FLOOD_ATTACKERS` (4), `FLOOD_BIG` orders of `FLOOD_BIG_BYTES`
//! params (200 of 1,900,000: what a 2 MiB body can carry), `FLOOD_MAX` orders at the accepted size (3,000),
//! `FLOOD_MAX_BYTES` (8,000), `FLOOD_READERS` (2).

mod common;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use common::session;
use dragon::chain::setup::{self, Account};
use dragon::local::{Anvil, PgCluster, free_port};
use dragon::money::Nrlc;
use dragon::order::{AnyOrder, AppOrder, Domain, RequestOrder};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// (VmRSS, VmHWM) of `pid`, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let attackers = env("FLOOD_ATTACKERS", 4);
    let (big, big_bytes) = (env("FLOOD_BIG", 200), env("FLOOD_BIG_BYTES", 1_900_000));
    let (max, max_bytes) = (env("FLOOD_MAX", 3_000), env("FLOOD_MAX_BYTES", 8_000));
    let readers = env("FLOOD_READERS", 2);

    let dir = std::env::temp_dir().join(format!("dragon-flood-{}", std::process::id()));
    let pg = PgCluster::start(&dir.join("pg"), free_port()?)?;
    dragon::store::ensure_database(&pg.url("postgres"), "flood").await?;
    let anvil = Anvil::start(free_port()?, &[])?;
    let key: PrivateKeySigner = KEY0.parse()?;
    let d = dragon::chain::deploy::deploy(&anvil.url(), key.clone()).await?;
    let owner = Account::new(&anvil.url(), &key)?;
    setup::fund(&d, &owner, &[&owner], U256::from(1_000 * Nrlc::PER_RLC)).await?;
    let app = setup::create_app(&d, &owner, "flood", b"docker.io/flood:1").await?;
    let dep_path = dir.join("deployment.json");
    d.write(&dep_path)?;
    let port = free_port()?;
    let cfg_path = dir.join("dragon.toml");
    std::fs::write(&cfg_path, format!("listen = \"127.0.0.1:{port}\"\n"))?;
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_dragon"))
        .args(["serve", "--rpc-url", &anvil.url(), "--config"])
        .arg(&cfg_path)
        .arg("--deployment")
        .arg(&dep_path)
        .env("DATABASE_URL", pg.url("flood"))
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()?;
    let pid = server.id().ok_or_else(|| anyhow::anyhow!("no server pid"))?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    for _ in 0..300 {
        if http.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chain_id = d.chain_id;
    let domain = Domain::new(U256::from(chain_id), d.hub);

    // A free app order, so that requests for the app are publishable.
    let mut offer = AnyOrder::App(AppOrder {
        app,
        appprice: Nrlc::ZERO,
        volume: U256::from(1u64 << 40),
        tag: B256::ZERO,
        datasetrestrict: Address::ZERO,
        workerpoolrestrict: Address::ZERO,
        requesterrestrict: Address::ZERO,
        salt: B256::repeat_byte(1),
        sign: None,
    });
    offer.sign_with(&domain, &key)?;
    let owner_auth = session(&http, &base, &key, chain_id).await?;
    let r = http
        .post(format!("{base}/apporders?chainId={chain_id}"))
        .header("authorization", &owner_auth)
        .json(&json!({"order": offer.to_json()}))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "app order refused: {}", r.text().await?);

    // Attackers: fresh keys with gas money only, each with a session.
    let mut keys = Vec::new();
    for _ in 0..attackers {
        let k = PrivateKeySigner::random();
        let _: Value =
            owner.provider.raw_request("anvil_setBalance".into(), (k.address(), U256::from(10u128.pow(20)))).await?;
        let auth = session(&http, &base, &k, chain_id).await?;
        keys.push((k, auth));
    }

    let (rss0, _) = rss_mib(pid);
    println!("| phase | orders sent | accepted | refused | server RSS at end (MiB) | peak RSS so far (MiB) |");
    println!("|---|---|---|---|---|---|");
    println!("| idle, after start | 0 | 0 | 0 | {rss0:.0} | {:.0} |", rss_mib(pid).1);

    // Readers: pages of 1,000 requests, each query string new, for as long as the flood lasts.
    let stop = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(AtomicU64::new(0));
    let mut reader_tasks = Vec::new();
    for r in 0..readers {
        let (http, base, stop, pages) = (http.clone(), base.clone(), stop.clone(), pages.clone());
        reader_tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                // An unknown parameter makes every query string new: the cache never answers.
                let url = format!("{base}/requestorders?chainId={chain_id}&app={app}&pageSize=1000&n{r}={i}");
                if let Ok(resp) = http.get(url).send().await {
                    let _ = resp.bytes().await;
                    pages.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    for (phase, count, bytes) in [("oversized params", big, big_bytes), ("largest accepted params", max, max_bytes)] {
        let next = Arc::new(AtomicUsize::new(0));
        let (ok, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let params = Arc::new(format!("{{\"iexec_args\":\"{}\"}}", "z".repeat(bytes.saturating_sub(20))));
        let mut tasks = Vec::new();
        for (k, auth) in keys.clone() {
            let (http, base, next, ok, refused, params, domain) =
                (http.clone(), base.clone(), next.clone(), ok.clone(), refused.clone(), params.clone(), domain.clone());
            let phase_salt = u64::from(bytes as u32) << 32;
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let mut o = AnyOrder::Request(RequestOrder {
                        app,
                        appmaxprice: Nrlc::ZERO,
                        dataset: Address::ZERO,
                        datasetmaxprice: Nrlc::ZERO,
                        workerpool: Address::ZERO,
                        workerpoolmaxprice: Nrlc::ZERO,
                        requester: k.address(),
                        volume: U256::from(1),
                        tag: B256::ZERO,
                        category: U256::ZERO,
                        trust: U256::from(1),
                        beneficiary: k.address(),
                        callback: Address::ZERO,
                        params: params.to_string(),
                        salt: B256::left_padding_from(&(phase_salt + i as u64).to_be_bytes()),
                        sign: None,
                    });
                    if o.sign_with(&domain, &k).is_err() {
                        continue;
                    }
                    let r = http
                        .post(format!("{base}/requestorders?chainId={chain_id}"))
                        .header("authorization", &auth)
                        .json(&json!({"order": o.to_json()}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                        _ => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        // Readers go on a little: pages of what was accepted.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (rss, hwm) = rss_mib(pid);
        println!(
            "| {phase} ({bytes} bytes) | {count} | {} | {} | {rss:.0} | {hwm:.0} |",
            ok.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in reader_tasks {
        let _ = t.await;
    }
    let (rss, hwm) = rss_mib(pid);
    println!(
        "\npages of 1,000 read meanwhile: {}; final RSS {rss:.0} MiB, peak {hwm:.0} MiB",
        pages.load(Ordering::Relaxed)
    );
    server.kill().await?;
    drop(anvil);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
