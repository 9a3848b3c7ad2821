//! The local market on embedded defaults: a PostgreSQL cluster in a data folder, an anvil chain, and the
//! server, beside a demo pool ([`demo`]). `dragon local` (the README's run command) and the integration-test harness both start their
//! PostgreSQL and anvil through this module, so what the tests run is what a user runs.
//!
//! Child processes are started under `setpriv --pdeathsig`, so they die with the process that started them,
//! even when it is killed or a test panics: nothing is left running. (The parent is the *thread* that spawned
//! the child, so callers spawn from a thread that lives as long as they need the child.)

pub mod demo;

// The anvil keys live with the other development accounts (`demo`); the tests read them here.
use anyhow::{Context, anyhow, bail};
pub use demo::{ANVIL_DEV_KEY, ANVIL_OPERATOR_KEY};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL cluster owned by this process.
#[derive(Debug)]
pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    child: Child,
}

/// Whether we run as root, in which case PostgreSQL (which refuses root) runs as the `postgres` user.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// Finds a PostgreSQL server binary: on PATH, else in Debian's versioned folder (newest first).
pub fn pg_bin(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name))).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().ok_or_else(|| {
        anyhow!("PostgreSQL server binary `{name}` not found: install PostgreSQL (Debian: apt-get install postgresql) or set DATABASE_URL")
    })
}

/// A free TCP port on loopback, for a child to bind a moment later.
///
/// Taken below Linux's ephemeral range (32768 and up), where no outgoing connection and no `bind(0)` can land,
/// and never the same twice in a process: a port the OS hands out for `bind(0)` is one it may hand to the next
/// connection too, and with many servers starting at once (the tests) one of them then found its port taken.
/// Processes start at different points of the range, so two of them rarely meet.
pub fn free_port() -> anyhow::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let start = (std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()))
        % SPAN;
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..SPAN {
        let port = LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return Ok(port as u16);
        }
    }
    // The whole range busy: let the OS choose, as before.
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A command that dies with its parent, as the `postgres` user when we are root.
fn guarded(program: &Path, as_postgres: bool) -> Command {
    let mut cmd = Command::new("setpriv");
    if as_postgres {
        cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
    }
    cmd.arg("--pdeathsig=TERM").arg("--").arg(program);
    cmd
}

impl PgCluster {
    /// Starts (creating it first when `dir` holds no cluster) a cluster listening on 127.0.0.1:`port`.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Self> {
        let root = is_root();
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        if root && let Some(parent) = dir.parent() {
            // PostgreSQL refuses root and runs as `postgres`, which must be able to reach the data folder.
            let reachable = Command::new("setpriv")
                .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--", "test", "-x"])
                .arg(parent)
                .status()
                .is_ok_and(|s| s.success());
            if !reachable {
                bail!(
                    "the `postgres` user cannot reach {}: PostgreSQL cannot run as root, so give it access \
                     (chmod o+x on each folder above it) or choose a --data-dir outside private folders",
                    parent.display()
                );
            }
        }
        if root {
            let st = Command::new("chown").arg("postgres:postgres").arg(&dir).status()?;
            if !st.success() {
                bail!("cannot give {} to the postgres user", dir.display());
            }
        }
        if !dir.join("PG_VERSION").exists() {
            let out = guarded(&pg_bin("initdb")?, root)
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
                .arg(&dir)
                .stdin(Stdio::null())
                .output()
                .context("running initdb")?;
            if !out.status.success() {
                bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
        }
        let log = std::fs::File::create(dir.join("server.log"))?;
        let child = guarded(&pg_bin("postgres")?, root)
            .arg("-D")
            .arg(&dir)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-k"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        let mut cluster = PgCluster { dir, port, child };
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                bail!("postgres exited ({status}) during start-up: {}", log.lines().last().unwrap_or(""));
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && std::fs::read_to_string(self.dir.join("server.log"))
                    .is_ok_and(|l| l.contains("ready to accept connections"))
            {
                return Ok(());
            }
            if start.elapsed() > timeout {
                bail!("postgres did not become ready in {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The postmaster's process id (its backends are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Fast shutdown (SIGINT: roll back open transactions, checkpoint, exit), then wait.
    pub fn stop(mut self) -> anyhow::Result<()> {
        signal(self.child.id(), "INT")?;
        self.child.wait()?;
        Ok(())
    }
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    // The child is setpriv's exec'd program, so its pid is the server's pid.
    Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status()?;
    Ok(())
}

/// An anvil node owned by this process.
#[derive(Debug)]
pub struct Anvil {
    pub port: u16,
    child: Child,
}

/// The anvil the project installs (`contracts/node_modules`), or `DRAGON_ANVIL` when set.
pub fn anvil_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("DRAGON_ANVIL") {
        return Ok(PathBuf::from(p));
    }
    // The platform package's ELF file, not `.bin/anvil`: that is a node wrapper, and a signal to the wrapper
    // would not reach the real node.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("contracts/node_modules/@foundry-rs/anvil-{}-{arch}/bin/anvil", std::env::consts::OS));
    if p.is_file() {
        Ok(p)
    } else {
        bail!("anvil not found at {}: run `make setup` (npm ci in contracts/) or set DRAGON_ANVIL", p.display())
    }
}

impl Anvil {
    /// Starts anvil on 127.0.0.1:`port` with `extra` arguments, and waits until it listens.
    pub fn start(port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let mut child = guarded(&anvil_bin()?, false)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting anvil")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("anvil stdout not captured"))?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Listening on") => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("reading anvil output: {e}"),
                None => bail!("anvil exited before listening ({:?})", child.try_wait()?),
            }
        }
        // Keep draining stdout so anvil never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Anvil { port, child })
    }

    /// The node's process id (a launcher's children included when counting its work).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        signal(self.child.id(), "TERM")?;
        self.child.wait()?;
        Ok(())
    }
}

/// A `nats-server` of this process (Debian's package), for `dragon local --instances N`.
#[derive(Debug)]
pub struct NatsServer {
    port: u16,
    child: std::process::Child,
}

impl NatsServer {
    /// Starts nats-server on 127.0.0.1:`port` and waits (at most 10 s) until it accepts connections.
    pub fn start(port: u16) -> anyhow::Result<Self> {
        let bin = which("nats-server")
            .ok_or_else(|| anyhow!("nats-server not found: install it (Debian: apt-get install nats-server)"))?;
        let mut child = guarded(&bin, false)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Its start-up banner and connection notices; a failure to start shows as the exit status below.
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("nats-server exited before listening on {port} ({status})");
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("nats-server did not listen on {port} within 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(NatsServer { port, child })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(mut self) -> anyhow::Result<()> {
        signal(self.child.id(), "TERM")?;
        self.child.wait()?;
        Ok(())
    }
}

/// `program` on PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

/// Arguments of `dragon local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// Folder holding the local PostgreSQL cluster, the chain's state and the demo's files (kept across runs).
    #[arg(long, default_value = ".dragon")]
    pub data_dir: PathBuf,
    /// PostgreSQL port.
    #[arg(long, default_value_t = 54329)]
    pub pg_port: u16,
    /// Anvil port.
    #[arg(long, default_value_t = 8545)]
    pub anvil_port: u16,
    /// Address the REST API listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Address the local pool listens on (its workers' API and the results requesters download).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub pool_listen: std::net::SocketAddr,
    /// Address the local bot's metrics and status listen on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub bot_listen: std::net::SocketAddr,
    /// Run the exchange alone: no demo app, pool, worker or bot.
    #[arg(long)]
    pub no_pool: bool,
    /// Exchange instances on the one PostgreSQL and anvil (1-8). Past one, a NATS server starts too and carries
    /// the feed between them; instance i listens on `--listen`'s port + i.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub instances: u16,
    /// NATS port, with more than one instance.
    #[arg(long, default_value_t = 4222)]
    pub nats_port: u16,
}

/// Starts PostgreSQL and anvil, creates the databases, then serves the exchange beside the demo pool, its
/// worker and its bot until Ctrl-C or SIGTERM; then stops everything.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    // Spawned from this (main) thread, which outlives both children.
    let pg = PgCluster::start(&args.data_dir.join("pg"), args.pg_port)?;
    let anvil = Anvil::start(args.anvil_port, &["--state", &args.data_dir.join("anvil-state.json").to_string_lossy()])?;
    let nats = if args.instances > 1 { Some(NatsServer::start(args.nats_port)?) } else { None };
    let local_json = args.data_dir.join("local.json");
    let served = serve(&args, &pg, &anvil, nats.as_ref(), &local_json).await;
    let _ = std::fs::remove_file(&local_json);
    if let Some(n) = nats {
        n.stop()?;
    }
    anvil.stop()?;
    pg.stop()?;
    served
}

/// Where instance `i` of `dragon local` listens: `--listen`'s port + i.
fn instance_addr(first: std::net::SocketAddr, i: u16) -> anyhow::Result<std::net::SocketAddr> {
    let port = first.port().checked_add(i).ok_or_else(|| anyhow!("--listen's port + {i} is past 65535"))?;
    Ok(std::net::SocketAddr::new(first.ip(), port))
}

async fn serve(
    args: &LocalArgs,
    pg: &PgCluster,
    anvil: &Anvil,
    nats: Option<&NatsServer>,
    local_json: &Path,
) -> anyhow::Result<()> {
    crate::store::ensure_database(&pg.url("postgres"), "dragon").await?;
    let deployment = ensure_deployment(&anvil.url(), &args.data_dir.join("deployment.json")).await?;
    tracing::info!(hub = %deployment.hub, token = %deployment.token, "contracts deployed");
    let mut config = crate::config::Config::new(args.listen, pg.url("dragon"), anvil.url(), deployment.clone());
    // The local exchange settles with anvil's tenth development account unless told otherwise.
    config.operator_key = match crate::config::operator_key_from_env()? {
        Some(k) => Some(k),
        None => Some(ANVIL_OPERATOR_KEY.parse().context("operator key")?),
    };
    config.nats.url = nats.map(NatsServer::url);
    let demo = if args.no_pool { None } else { Some(demo::ensure(&anvil.url(), &deployment, &args.data_dir).await?) };
    let state = crate::server::AppState::connect(&config).await?;
    // The other instances: the same store, chain, operator key (one of them settles, by lease) and NATS.
    let mut others = Vec::new();
    for i in 1..args.instances {
        let listen = instance_addr(args.listen, i)?;
        let config = crate::config::Config { listen, ..config.clone() };
        let listener = std::net::TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
        let state = crate::server::AppState::connect(&config).await.with_context(|| format!("instance {i}"))?;
        others.push((listener, state));
    }
    let apis: Vec<String> = (0..args.instances)
        .map(|i| instance_addr(args.listen, i).map(|a| format!("http://{a}")))
        .collect::<Result<_, _>>()?;
    let deployment_path = std::fs::canonicalize(args.data_dir.join("deployment.json"))?;
    let mut info = serde_json::json!({
        "api": format!("http://{}", args.listen),
        "apis": apis,
        "rpc": anvil.url(),
        "chainId": deployment.chain_id,
        "hub": deployment.hub.to_checksum(None),
        "deployment": deployment_path,
    });
    if let Some(n) = nats {
        info["nats"] = serde_json::json!(n.url());
    }
    // One shutdown for everything: Ctrl-C or SIGTERM stops the exchange, the pool and the worker together.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    // A part that fails on its own stops the rest through the same signal.
    let supervised = |part: &'static str, f: std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>| {
        let stop = stop_tx.clone();
        async move {
            let res = f.await.context(part);
            if res.is_err() {
                let _ = stop.send(true);
            }
            res
        }
    };
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut side = tokio::task::JoinSet::new();
    for (i, (listener, state)) in others.into_iter().enumerate() {
        let stopped_instance = stopped();
        side.spawn(supervised(
            "an exchange instance",
            Box::pin(async move {
                crate::server::run(listener, state, stopped_instance)
                    .await
                    .with_context(|| format!("instance {}", i + 1))
            }),
        ));
    }
    let (bot_stop_tx, bot_stop_rx) = tokio::sync::watch::channel(false);
    let bot_stop_tx = std::sync::Arc::new(bot_stop_tx);
    let (bot_done_tx, mut bot_done_rx) = tokio::sync::watch::channel(false);
    let has_bot = demo.is_some();
    if let Some(demo) = &demo {
        let domain = crate::order::Domain::new(alloy::primitives::U256::from(deployment.chain_id), deployment.hub);
        for (owner, order) in demo::app_orders(demo, &domain)? {
            match state.market.check(order, None, owner).await {
                Ok(record) => {
                    for res in state.publish(vec![record]).await {
                        res.context("publishing the demo app's order")?;
                    }
                }
                // Published at an earlier start: it is still in the book.
                Err(
                    crate::market::publish::PublishError::Duplicate(_)
                    | crate::market::publish::PublishError::Closed { .. },
                ) => {}
                Err(e) => return Err(e).context("publishing the demo app's order"),
            }
        }
        crate::store::ensure_database(&pg.url("postgres"), "dragon_pool").await?;
        let pool_listener = std::net::TcpListener::bind(args.pool_listen)
            .with_context(|| format!("binding the pool's address {}", args.pool_listen))?;
        let mut pool = crate::pool::PoolConfig::new(
            demo.workerpool,
            demo::pool_owner()?,
            anvil.url(),
            deployment.clone(),
            pg.url("dragon_pool"),
            args.pool_listen,
        );
        // The demo pool runs its own worker only: a private pool, whose member's CPUs are believed from the start.
        pool.membership = crate::pool::membership::Membership::Private { allow: [demo::worker()?.address()].into() };
        let pool_url = pool.public_url.clone();
        let stopped_pool = stopped();
        side.spawn(supervised(
            "the local pool",
            Box::pin(async move { Ok(crate::pool::run(pool, pool_listener, stopped_pool).await?) }),
        ));
        let worker = crate::worker::WorkerConfig {
            key: demo::worker()?,
            pool_url: pool_url.clone(),
            rpc_url: anvil.url(),
            deployment: deployment.clone(),
            // As root, the demo app runs as nobody: its script and the worker's folder are reachable by others
            // (the data dir already is, for PostgreSQL's sake).
            executor: crate::executor::ExecutorConfig::Process {
                allow: demo.apps.iter().map(|a| a.address).collect(),
                user: None,
            },
            work_dir: args.data_dir.join("worker"),
            capacity: crate::pool::protocol::Capacity { cpu: demo::WORKER_CPUS, memory: 1 << 30, gpu: false },
            poll: std::time::Duration::from_secs(1),
            heartbeat: std::time::Duration::from_secs(10),
            app_env: Vec::new(),
            inputs: crate::worker::inputs::InputPolicy::default(),
            scratch_bytes: crate::executor::DEFAULT_SCRATCH_BYTES,
        };
        let stopped_worker = stopped();
        side.spawn(supervised(
            "the local worker",
            Box::pin(async move { Ok(crate::worker::run(worker, stopped_worker).await?) }),
        ));
        // The bot offers the worker's free slots in the demo category, for the demo apps only (a native app is
        // trusted code: the pool runs only its owner's apps, and its orders say so).
        let bot = crate::bot::BotConfig {
            workerpool: demo.workerpool,
            owner: demo::pool_owner()?,
            exchange_url: format!("http://{}", args.listen),
            pool_url: pool_url.clone(),
            rpc_url: anvil.url(),
            deployment: deployment.clone(),
            categories: vec![demo::CATEGORY],
            strategy: crate::bot::strategy::Strategy::Fixed([(demo::CATEGORY, demo::POOL_PRICE_NRLC)].into()),
            terms: crate::bot::OrderTerms { apprestrict: demo::app_restriction(demo), ..Default::default() },
            max_volume: 100,
            tick: std::time::Duration::from_secs(1),
            listen: args.bot_listen,
        };
        let bot_listener = std::net::TcpListener::bind(args.bot_listen)
            .with_context(|| format!("binding the bot's address {}", args.bot_listen))?;
        // The bot stops first, on its own signal, so that it withdraws its orders while the exchange still runs.
        let mut bot_rx = bot_stop_rx.clone();
        let stopped_bot = async move {
            let _ = bot_rx.wait_for(|s| *s).await;
        };
        side.spawn(supervised(
            "the local bot",
            Box::pin(async move {
                let res = crate::bot::run(bot, bot_listener, stopped_bot).await;
                let _ = bot_done_tx.send(true);
                Ok(res?)
            }),
        ));
        info["bot"] = serde_json::json!(format!("http://{}", args.bot_listen));
        info["pool"] = serde_json::json!(pool_url);
        info["results"] = serde_json::json!(pool_url);
        info["workerpool"] = serde_json::json!(demo.workerpool.to_checksum(None));
        info["apps"] = demo
            .apps
            .iter()
            .map(|a| serde_json::json!({"name": a.name, "address": a.address.to_checksum(None)}))
            .collect();
    }
    tracing::info!(postgres = %pg.url("dragon"), chain = %anvil.url(), "local market started");
    let (stop, bot_stop) = (stop_tx.clone(), bot_stop_tx.clone());
    tokio::spawn(async move {
        crate::runtime::shutdown_signal().await;
        let _ = bot_stop.send(true);
        if has_bot {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), bot_done_rx.wait_for(|d| *d)).await;
        }
        let _ = stop.send(true);
    });
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    // Written once everything listens: scripts wait for this file to find the endpoints.
    std::fs::write(local_json, format!("{info:#}\n")).with_context(|| format!("writing {}", local_json.display()))?;
    let served = crate::server::run(listener, state, stopped()).await;
    // However the exchange ended, the rest ends with it.
    let _ = bot_stop_tx.send(true);
    let _ = stop_tx.send(true);
    let mut first_err = served.err();
    while let Some(done) = side.join_next().await {
        let res = done.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = res {
            tracing::error!(error = %format!("{e:#}"), "a part of the local market failed");
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Reuses the deployment recorded in `path` when it is live on the chain, else deploys anew and records it.
pub async fn ensure_deployment(rpc_url: &str, path: &Path) -> anyhow::Result<crate::chain::deploy::Deployment> {
    use crate::chain::deploy::{Deployment, deploy, is_live};
    if let Ok(d) = Deployment::read(path)
        && is_live(rpc_url, &d).await?
    {
        return Ok(d);
    }
    let key = ANVIL_DEV_KEY.parse().context("dev key")?;
    let d = deploy(rpc_url, key).await?;
    d.write(path)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..200).map(|_| super::free_port().expect("a port")).collect();
        let distinct: std::collections::HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "never the same port twice");
        assert!(ports.iter().all(|p| (20_000..32_000).contains(p)), "{ports:?}");
        assert!(ports.iter().all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()));
    }
}
