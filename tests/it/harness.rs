//! The one helper every integration test uses: a real PostgreSQL and a real anvil.
//!
//! - PostgreSQL: one throwaway cluster per test process (or the server of `DATABASE_URL` when set), and a fresh
//!   database per test, so tests run in parallel without seeing each other's rows.
//! - anvil: one node per test, from the npm binary the project installs.
//!
//! Nothing is left running: children die with their parent (`setpriv --pdeathsig`, see `dragon::local`). The
//! cluster is spawned from a parked thread that lives as long as the test process, so it dies with the process
//! whatever the outcome; an anvil dies with its test's thread, or on drop. Data folders of earlier runs whose
//! process is gone are removed at the next start.

use dragon::local::{Anvil, PgCluster, free_port};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

static ADMIN_URL: OnceLock<Result<String, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

fn admin_url() -> &'static str {
    let res = ADMIN_URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            return Ok(url);
        }
        sweep_stale_dirs();
        let dir = std::env::temp_dir().join(format!("dragon-it-{}", std::process::id()));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres-owner".into())
            .spawn(move || {
                let started = free_port().and_then(|port| PgCluster::start(&dir, port));
                match started {
                    Ok(pg) => {
                        let _ = tx.send(Ok(pg.url("postgres")));
                        // Parked for the life of the process: the cluster dies with this thread, i.e. with it.
                        loop {
                            std::thread::park();
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(format!("{e:#}")));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        rx.recv().map_err(|e| e.to_string())?
    });
    match res {
        Ok(url) => url,
        Err(e) => panic!("test PostgreSQL could not start: {e}"),
    }
}

/// Removes the data folders of earlier test processes that no longer exist.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // `dragon-it-<pid>` or `dragon-it-<what>-<pid>`: the pid is the last part. Anything else is not ours (a
        // folder read as a dead pid would be removed under a running test: `dragon-it-local-<pid>` was).
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("dragon-it-")).and_then(|n| n.rsplit('-').next())
        else {
            continue;
        };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if !PathBuf::from("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh, empty database on the test server; returns its URL.
pub async fn database() -> String {
    let admin = admin_url();
    let name = format!("t{}_{}", std::process::id(), NEXT_DB.fetch_add(1, Ordering::Relaxed));
    dragon::store::ensure_database(admin, &name).await.expect("create test database");
    // Replace the database part of the URL (after the last '/', before any '?').
    let (base, query) = admin.split_once('?').map_or((admin, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A fresh anvil node for one test.
pub fn anvil() -> AnvilGuard {
    let port = free_port().expect("free port");
    AnvilGuard(Some(Anvil::start(port, &[]).expect("start anvil")))
}

/// Stops its anvil when dropped (also on panic).
#[derive(Debug)]
pub struct AnvilGuard(Option<Anvil>);

impl AnvilGuard {
    pub fn url(&self) -> String {
        self.0.as_ref().map(Anvil::url).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(a) = self.0.take() {
            a.stop().expect("stop anvil");
        }
    }
}

impl Drop for AnvilGuard {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            let _ = a.stop();
        }
    }
}

/// Sends the in-process components' logs (`DRAGON_TEST_LOG`, by default `dragon=info`) to the test's captured
/// output, so that a failing test shows what the pool and its workers did; passing tests print nothing.
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("DRAGON_TEST_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("dragon=info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().with_ansi(false).try_init();
    });
}

/// Path of the `dragon` binary built for these tests.
pub fn dragon_bin() -> &'static str {
    env!("CARGO_BIN_EXE_dragon")
}

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Polls `f` every 100 ms until it gives a value; fails the test after `limit`.
pub async fn until_within<T>(what: &str, limit: std::time::Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// `dragon local` as a user runs it, in a fresh home folder named after `what` (its data folder is
/// `<home>/.dragon`, where the CLI finds `local.json`), on free PostgreSQL and anvil ports, with `args` added.
/// Ready once `local.json` is written: a fresh cluster, the contracts deployed, the demo assets (slow on a loaded
/// machine).
pub struct Local {
    pub home: PathBuf,
    pub child: tokio::process::Child,
    pub info: serde_json::Value,
}

impl Local {
    pub async fn start(what: &str, args: &[&str]) -> Local {
        let home = std::env::temp_dir().join(format!("dragon-it-{what}-{}", std::process::id()));
        let dir = home.join(".dragon");
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&dir).expect("data dir");
        let (pg, rpc) = (free_port().expect("port"), free_port().expect("port"));
        let child = tokio::process::Command::new(dragon_bin())
            .args(["local", "--pg-port", &pg.to_string(), "--anvil-port", &rpc.to_string()])
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "warn")
            .env_remove("DRAGON_OPERATOR_KEY")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn dragon local");
        let info = until_within("local.json", std::time::Duration::from_secs(120), async || {
            std::fs::read_to_string(dir.join("local.json")).ok().and_then(|t| serde_json::from_str(&t).ok())
        })
        .await;
        Local { home, child, info }
    }

    /// Ctrl-C's equivalent (SIGTERM): asserts that everything drains and stops cleanly, then removes the folder.
    pub async fn stop(mut self) {
        let pid = self.child.id().expect("pid");
        std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill -TERM");
        let status = self.child.wait().await.expect("wait");
        assert!(status.success(), "dragon local stops cleanly: {status}");
        let _ = std::fs::remove_dir_all(&self.home);
    }
}
