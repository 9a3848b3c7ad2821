//! `dragon worker`: joins a pool over HTTP and runs its tasks.
//!
//! ```text
//!  login (challenge) → register {cpu, memory, gpu} → loop { ping every 10 s; POST /workers/work }
//!  task: viewDeal, viewApp, viewCategory ─▶ Executor::run ─▶ result::package (zip + digest)
//!        ─▶ contribute(hash, seal, authorization) ─▶ wait for REVEALING ─▶ reveal(digest) ─▶ upload zip
//!        (each step reported with POST /workers/status)
//! ```
//!
//! The worker contributes and reveals with its own key, so its account needs the deal's worker stake in the
//! hub. It runs up to `--cpu` replicates at once, each in its own task. Each task has a folder
//! `<work-dir>/<taskid>/` holding `state.json` (the digest and how far the task went) and `result.zip`, written
//! before the step they enable: after a restart the pool hands the unfinished replicate back, and the worker goes
//! on from what the chain and that folder say, never computing or contributing twice.
//!
//! What a worker trusts, and what it does not (`docs/executors.md`, "Limits and what a worker trusts"): the
//! pool's owner chose its native apps, but requesters and dataset owners are strangers. So the worker makes
//! itself non-dumpable at start (its key is in its environment: no process without `CAP_SYS_PTRACE`, same user
//! included, can then read `/proc/<worker>/environ` or its memory), runs native apps as another user (`nobody`
//! when it runs as root), keeps its work dir private but for the apps' own workspaces, fetches inputs only for
//! an app its executor admits and only under [`inputs::InputPolicy`], and gives each container its slot's share
//! of the memory and CPU it registered.

pub mod address;
pub mod client;
pub mod inputs;

use crate::chain::ChainError;
use crate::chain::contracts::hub::DragonHub;
use crate::chain::deploy::Deployment;
use crate::chain::revert::{self, Revert, TaskError};
use crate::chain::setup::Account;
use crate::executor::result::{package, result_hash, result_seal};
use crate::executor::{
    AbortSignal, AppRef, AppUser, Executor, ExecutorConfig, Limits, TaskSpec, Workspace, abort_pair, args_from_params,
};
use crate::pool::protocol::{Assignment, Capacity, ReplicateStatus, StatusUpdate};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use clap::{Args, ValueEnum};
use client::{ClientError, PoolClient};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// The heartbeat task of one session; stopped when dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    fn start(pool: PoolClient, every: Duration) -> Heartbeat {
        Heartbeat(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = pool.ping().await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    Process,
    Docker,
}

/// The flags of `dragon worker`. The key comes from the environment only (`DRAGON_WORKER_KEY`).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Base URL of the pool's worker API.
    #[arg(long)]
    pub pool: String,
    #[command(flatten)]
    pub chain: crate::config::ChainArgs,
    /// How apps run: native programs (allow-listed) or Docker images.
    #[arg(long, value_enum, default_value = "docker")]
    pub executor: ExecutorKind,
    /// An app the `process` executor may run (repeat for several).
    #[arg(long = "allow-app", value_parser = crate::wire::json::parse_address)]
    pub allow_app: Vec<Address>,
    /// The user native apps run as, UID[:GID] or NAME[:GROUP] (`process` executor; the worker must run as root).
    /// Default: nobody (65534:65534) when the worker runs as root, else the worker's own user.
    #[arg(long)]
    pub app_user: Option<AppUser>,
    /// Size of a container's scratch space (a tmpfs on /tmp; the rest of its file system is read-only), in MiB.
    #[arg(long, default_value_t = crate::executor::DEFAULT_SCRATCH_BYTES >> 20)]
    pub app_tmp_mib: u64,
    /// A HOST:PORT (as written in URLs) the worker may fetch inputs and datasets from although its address is not
    /// public: an internal data server the operator trusts (repeat for several). Other non-public addresses
    /// (loopback, private, link-local, reserved) are refused.
    #[arg(long = "allow-input-host")]
    pub allow_input_host: Vec<inputs::AllowedHost>,
    /// The folder that datasets given by a local path must be in; without it, local dataset paths are refused.
    #[arg(long)]
    pub dataset_root: Option<PathBuf>,
    /// Input files a task may name (`iexec_input_files`); a request naming more fails its task.
    #[arg(long, default_value_t = inputs::DEFAULT_MAX_FILES)]
    pub max_input_files: usize,
    /// Largest input file or dataset, in MiB.
    #[arg(long, default_value_t = inputs::DEFAULT_MAX_FILE_BYTES >> 20)]
    pub max_input_file_mib: u64,
    /// Largest sum of a task's inputs (dataset and input files), in MiB.
    #[arg(long, default_value_t = inputs::DEFAULT_MAX_TASK_BYTES >> 20)]
    pub max_task_input_mib: u64,
    /// Time to resolve and connect to an input's host, in seconds.
    #[arg(long, default_value_t = inputs::DEFAULT_CONNECT_TIMEOUT.as_secs())]
    pub input_connect_timeout_secs: u64,
    /// Time for one input's fetch (redirects and transfer included), in seconds.
    #[arg(long, default_value_t = inputs::DEFAULT_FETCH_TIMEOUT.as_secs())]
    pub input_fetch_timeout_secs: u64,
    /// Time for all the fetches of one task, in seconds.
    #[arg(long, default_value_t = inputs::DEFAULT_TASK_TIMEOUT.as_secs())]
    pub input_task_timeout_secs: u64,
    /// Docker engine for the `docker` executor (`unix:///path/docker.sock`); Docker's default when absent.
    #[arg(long)]
    pub docker_host: Option<String>,
    /// Where tasks run and their state is kept across restarts.
    #[arg(long, default_value = ".dragon/worker")]
    pub work_dir: PathBuf,
    /// CPUs offered to the pool.
    #[arg(long, default_value_t = 1)]
    pub cpu: u32,
    /// Memory offered to the pool, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub memory_mib: u64,
    /// How often the worker asks for work when it has none, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub poll_ms: u64,
    /// How often the worker tells the pool it is alive, in milliseconds (iExec: every 10 s; the pool gives a
    /// silent worker's tasks to others after --worker-lost-after, 60 s by default).
    #[arg(long, default_value_t = 10_000)]
    pub heartbeat_ms: u64,
    /// An environment variable given to every app this worker runs, as NAME=VALUE (repeat for several): site
    /// settings such as a proxy. The app's result must not depend on them, or the worker is outvoted and
    /// slashed under replication.
    #[arg(long = "app-env", value_parser = parse_env)]
    pub app_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || k.starts_with("IEXEC_") {
        return Err(format!("{k:?} is not a usable variable name (letters, digits, _; not IEXEC_*)"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Pool(#[from] ClientError),
    #[error("executor: {0}")]
    Exec(#[from] crate::executor::ExecError),
    #[error("result: {0}")]
    Result(#[from] crate::executor::ResultError),
    #[error("the hub refused {what}: {revert}")]
    // Boxed: a decoded revert is large, and this error travels through every step of a task.
    Refused { what: &'static str, revert: Box<Revert> },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Task(String),
    #[error("{what} transaction {tx:#x} reverted")]
    Reverted { what: &'static str, tx: B256 },
    #[error(transparent)]
    Input(#[from] inputs::InputError),
}

/// Gas above the estimate for a worker's transactions. The estimate is made against the chain as it is when the
/// transaction is built; replicates of a task contribute side by side, and a contribution mined after another's
/// may be the one that reaches the consensus, which costs more than estimated (it records the winners). Unused
/// gas is not paid for.
async fn with_headroom<P: alloy::providers::Provider, D: alloy::contract::CallDecoder>(
    call: alloy::contract::CallBuilder<P, D>,
) -> Result<alloy::contract::CallBuilder<P, D>, alloy::contract::Error> {
    let estimate = call.estimate_gas().await?;
    Ok(call.gas(estimate.saturating_add(estimate / 2).saturating_add(100_000)))
}

impl From<alloy::contract::Error> for WorkerError {
    fn from(e: alloy::contract::Error) -> Self {
        WorkerError::Chain(e.into())
    }
}

impl From<alloy::providers::PendingTransactionError> for WorkerError {
    fn from(e: alloy::providers::PendingTransactionError) -> Self {
        WorkerError::Chain(e.into())
    }
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub key: PrivateKeySigner,
    pub pool_url: String,
    pub rpc_url: String,
    pub deployment: Deployment,
    pub executor: ExecutorConfig,
    pub work_dir: PathBuf,
    pub capacity: Capacity,
    pub poll: Duration,
    pub heartbeat: Duration,
    /// Extra environment of every app run (`--app-env`).
    pub app_env: Vec<(String, String)>,
    /// What the worker fetches for a task, from where, and how much.
    pub inputs: inputs::InputPolicy,
    /// Size of a container's `/tmp` (`--app-tmp-mib`).
    pub scratch_bytes: u64,
}

/// Least memory a slot may get: less and a container cannot even start its shell.
const MIN_SLOT_MEMORY: u64 = 16 << 20;

impl WorkerArgs {
    pub fn into_config(self) -> Result<WorkerConfig, WorkerError> {
        let key = crate::config::key_from_env("DRAGON_WORKER_KEY", "the worker's").map_err(WorkerError::Config)?;
        let executor = match self.executor {
            ExecutorKind::Process => {
                if self.allow_app.is_empty() {
                    return Err(WorkerError::Config("--executor process needs at least one --allow-app".into()));
                }
                ExecutorConfig::Process { allow: self.allow_app, user: self.app_user }
            }
            ExecutorKind::Docker if self.app_user.is_some() => {
                return Err(WorkerError::Config(
                    "--app-user is for the process executor (a container runs as its image's user)".into(),
                ));
            }
            // Labelled with the worker's address, so that workers sharing an engine keep off each other's
            // containers.
            ExecutorKind::Docker => ExecutorConfig::Docker {
                host: self.docker_host,
                network: None,
                owner: Some(format!("{:#x}", key.address())),
            },
        };
        let memory = self.memory_mib << 20;
        if memory / u64::from(self.cpu.max(1)) < MIN_SLOT_MEMORY {
            return Err(WorkerError::Config(format!(
                "--memory-mib {} over --cpu {} leaves less than {} MiB per slot",
                self.memory_mib,
                self.cpu,
                MIN_SLOT_MEMORY >> 20
            )));
        }
        let secs = Duration::from_secs;
        let inputs = inputs::InputPolicy {
            allow_hosts: self.allow_input_host,
            dataset_root: self.dataset_root,
            max_files: self.max_input_files,
            max_file_bytes: self.max_input_file_mib << 20,
            max_task_bytes: self.max_task_input_mib << 20,
            connect_timeout: secs(self.input_connect_timeout_secs.max(1)),
            fetch_timeout: secs(self.input_fetch_timeout_secs.max(1)),
            task_timeout: secs(self.input_task_timeout_secs.max(1)),
        };
        Ok(WorkerConfig {
            key,
            pool_url: self.pool,
            rpc_url: self.chain.rpc_url,
            deployment: Deployment::read(&self.chain.deployment)?,
            executor,
            work_dir: self.work_dir,
            capacity: Capacity { cpu: self.cpu, memory, gpu: false },
            poll: Duration::from_millis(self.poll_ms.max(50)),
            heartbeat: Duration::from_millis(self.heartbeat_ms.max(100)),
            app_env: self.app_env,
            inputs,
            scratch_bytes: (self.app_tmp_mib << 20).max(1 << 20),
        })
    }
}

/// What the worker keeps of a task in `<work-dir>/<taskid>/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LocalState {
    digest: Option<B256>,
    callback: Option<Bytes>,
    uploaded: bool,
}

/// Runs the worker until `shutdown` resolves. A task in progress is aborted at shutdown and resumed at the
/// next start.
pub async fn run(config: WorkerConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), WorkerError> {
    // First: the key is in this process's environment and memory. Non-dumpable, they are out of reach of every
    // process without CAP_SYS_PTRACE, an app running as the worker's own user included.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| WorkerError::Config(format!("cannot make the worker non-dumpable (prctl): {e}")))?;
    let executor = config.executor.build().await?;
    let account = Account::new(&config.rpc_url, &config.key)?;
    prepare_work_dir(&config)?;
    let inputs = inputs::Inputs::new(config.work_dir.join("cache"), config.inputs.clone())?;
    let worker = Arc::new(Worker { config, executor, account, inputs });
    let (abort, signal) = abort_pair();
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut shutdown => {
            abort.abort();
            Ok(())
        }
        res = worker.main_loop(signal) => res,
    }
}

struct Worker {
    config: WorkerConfig,
    executor: Arc<dyn Executor>,
    account: Account,
    inputs: inputs::Inputs,
}

/// Creates the work dir, private to the worker but searchable: an app running as another user reaches its own
/// workspace (`<taskid>/run`, whose path it is told) and lists nothing else; the cache is the worker's alone.
fn prepare_work_dir(config: &WorkerConfig) -> Result<(), WorkerError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &config.work_dir;
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(io_err("protecting", dir))?;
    if let ExecutorConfig::Process { user, .. } = &config.executor
        && let Some(u) = AppUser::for_worker(*user)?
    {
        u.can(dir, 0o1).map_err(|why| {
            WorkerError::Config(format!(
                "native apps run as user {u}, which must reach the work dir: {why} (chmod o+x on the folders above \
                 it, or choose another --work-dir)"
            ))
        })?;
    }
    Ok(())
}

impl Worker {
    fn hub(&self) -> DragonHub::DragonHubInstance<&DynProvider> {
        DragonHub::new(self.config.deployment.hub, &self.account.provider)
    }

    fn me(&self) -> Address {
        self.account.address
    }

    /// Asks for work while fewer replicates than its CPUs run, and runs each one as its own task.
    async fn main_loop(self: &Arc<Self>, abort: AbortSignal) -> Result<(), WorkerError> {
        let mut pool = PoolClient::new(&self.config.pool_url)?;
        let slots = self.config.capacity.cpu.max(1) as usize;
        // Heartbeats run beside the work, so that a long app run does not make the worker look lost.
        let mut heartbeat: Option<Heartbeat> = None;
        // Dropped (with the loop, at shutdown) it aborts the replicates still running.
        let mut tasks: JoinSet<Result<(), WorkerError>> = JoinSet::new();
        let mut running: HashMap<tokio::task::Id, B256> = HashMap::new();
        loop {
            if !pool.logged_in() {
                match self.join(&mut pool).await {
                    Ok(()) => {
                        tracing::info!(worker = %self.me(), pool = %self.config.pool_url, "joined the pool");
                        // The previous session's heartbeat (if any) stops as it is replaced.
                        heartbeat.replace(Heartbeat::start(pool.clone(), self.config.heartbeat));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot join the pool; retrying");
                        tokio::time::sleep(self.config.poll.max(Duration::from_secs(1))).await;
                        continue;
                    }
                }
            }
            while let Some(done) = tasks.try_join_next_with_id() {
                self.finished(&mut pool, &mut running, done).await;
            }
            if tasks.len() < slots {
                let ids: Vec<B256> = running.values().copied().collect();
                match pool.work(&ids).await {
                    Ok(Some(a)) => {
                        let (me, p, ab, taskid) = (Arc::clone(self), pool.clone(), abort.clone(), a.taskid);
                        let h = tasks.spawn(async move { me.run_replicate(&p, &a, ab).await });
                        running.insert(h.id(), taskid);
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => self.on_pool_error(&mut pool, e),
                }
            }
            if !pool.logged_in() {
                heartbeat.take();
            }
            tokio::select! {
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.finished(&mut pool, &mut running, done).await;
                }
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// One replicate, in its own task.
    async fn run_replicate(&self, pool: &PoolClient, a: &Assignment, abort: AbortSignal) -> Result<(), WorkerError> {
        let res = self.handle(pool, a, abort).await;
        if let Err(WorkerError::Pool(e)) = &res
            && e.is_transient()
        {
            // The pool is unreachable or failing: the replicate is not failed, it is handed back once the pool
            // answers, and resumes from the work dir and the chain. Its slot waits meanwhile.
            tracing::warn!(task = %a.taskid, error = %e, "pool unreachable; the task resumes later");
            tokio::time::sleep(self.config.poll.max(Duration::from_secs(1))).await;
        }
        res
    }

    /// What a finished replicate task leaves to do: report a failure, or join the pool again.
    async fn finished(
        &self,
        pool: &mut PoolClient,
        running: &mut HashMap<tokio::task::Id, B256>,
        done: Result<(tokio::task::Id, Result<(), WorkerError>), tokio::task::JoinError>,
    ) {
        let (id, res) = match done {
            Ok(d) => d,
            Err(e) => {
                let task = running.remove(&e.id());
                let why = "replicate task ended abnormally; it resumes when handed back";
                tracing::error!(task = ?task, error = %e, "{why}");
                return;
            }
        };
        let Some(task) = running.remove(&id) else { return };
        match res {
            Ok(()) => {}
            Err(WorkerError::Pool(e)) if e.is_transient() => {}
            // The session changed while it ran: not the task's fault; it is handed back after the new login.
            Err(WorkerError::Pool(e)) if e.is_session() => self.on_pool_error(pool, e),
            Err(e) => {
                tracing::warn!(task = %task, error = %e, "task failed");
                let mut u = StatusUpdate::new(task, ReplicateStatus::Failed);
                u.error = Some(e.to_string());
                if let Err(e) = pool.status(&u).await {
                    self.on_pool_error(pool, e);
                }
            }
        }
    }

    fn on_pool_error(&self, pool: &mut PoolClient, e: ClientError) {
        tracing::warn!(error = %e, "pool call failed");
        if e.is_session() {
            // The pool lost the session or the registration (a new database): join again.
            pool.logout();
        }
    }

    async fn join(&self, pool: &mut PoolClient) -> Result<(), ClientError> {
        pool.login(&self.config.key).await?;
        pool.register(&self.config.capacity).await
    }

    /// Takes one replicate as far as this worker can: computed, contributed, revealed, uploaded.
    async fn handle(&self, pool: &PoolClient, a: &Assignment, abort: AbortSignal) -> Result<(), WorkerError> {
        let taskid = a.taskid;
        if a.authorization.worker != self.me() || a.authorization.taskid != taskid {
            return Err(WorkerError::Task("the authorization is not for this worker and task".into()));
        }
        let dir = self.config.work_dir.join(format!("{taskid:#x}"));
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        // Searchable (the app's workspace is below), not listable; its state and archive are private.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .map_err(io_err("protecting", &dir))?;
        let mut state = read_state(&dir)?;
        let report = |status: ReplicateStatus| StatusUpdate::new(taskid, status);

        let task = self.hub().viewTask(taskid).call().await?;
        if task.status != 1 && task.status != 2 {
            // UNSET cannot be handed out; COMPLETED or FAILED: nothing left to do for it.
            pool.status(&report(ReplicateStatus::Aborted)).await?;
            return Ok(());
        }
        let contribution = self.hub().viewContribution(taskid, self.me()).call().await?;
        let deal = self.hub().viewDeal(a.dealid).call().await?;
        let has_callback = deal.callback != Address::ZERO;

        // 1. Compute, unless a digest from an earlier run is kept.
        let digest = match state.digest {
            Some(d) if dir.join("result.zip").exists() => d,
            _ if contribution.status != 0 => {
                return Err(WorkerError::Task(
                    "contributed on chain, but the result is lost from the work dir: cannot reveal".into(),
                ));
            }
            _ => {
                tell(pool, &report(ReplicateStatus::Computing)).await;
                let (digest, callback) = self.compute(a, &deal, &dir, has_callback, abort).await?;
                state.digest = Some(digest);
                state.callback = callback;
                write_state(&dir, &state)?;
                digest
            }
        };
        let hash = result_hash(taskid, digest);
        let seal = result_seal(self.me(), taskid, digest);
        // From here on every report carries the result, so that the pool has it whichever report gets through.
        let callback = state.callback.clone();
        let with_result = |status: ReplicateStatus| {
            let mut u = report(status);
            u.result_digest = Some(digest);
            u.result_hash = Some(hash);
            u.result_seal = Some(seal);
            u.callback_data = callback.clone();
            u
        };
        tell(pool, &with_result(ReplicateStatus::Computed)).await;

        // 2. Contribute.
        if contribution.status == 0 {
            tell(pool, &with_result(ReplicateStatus::Contributing)).await;
            for attempt in 1.. {
                // Replicates run side by side and send from the same key.
                let sent = self
                    .account
                    .one_at_a_time(async {
                        let sign = a.authorization.sign.clone();
                        let hub = self.hub();
                        let call = hub.contribute(taskid, hash, seal, Address::ZERO, Bytes::new(), sign);
                        with_headroom(call).await?.send().await
                    })
                    .await;
                match self.mined(sent, "contribute").await {
                    Ok(()) => break,
                    Err(WorkerError::Refused { revert, .. })
                        if matches!(*revert, Revert::Task(TaskError::AlreadyContributed(_))) =>
                    {
                        break;
                    }
                    // Mined, but the chain had moved since the estimate: sent again, on a new estimate (which
                    // refuses, and says why, if the task no longer takes contributions).
                    Err(WorkerError::Reverted { tx, .. }) if attempt < 3 => {
                        tracing::warn!(task = %taskid, tx = %tx, attempt, "contribution reverted; sending it again");
                    }
                    Err(e) => return Err(e),
                }
            }
            tracing::info!(task = %taskid, "contributed");
        }
        tell(pool, &with_result(ReplicateStatus::Contributed)).await;

        // 3. Reveal, once the task reached consensus.
        let task = self.wait_revealing(taskid).await?;
        if task.status == 2 {
            let c = self.hub().viewContribution(taskid, self.me()).call().await?;
            if c.status == 1 {
                tell(pool, &with_result(ReplicateStatus::Revealing)).await;
                let sent = self
                    .account
                    .one_at_a_time(async { with_headroom(self.hub().reveal(taskid, digest)).await?.send().await })
                    .await;
                self.mined(sent, "reveal").await?;
                tracing::info!(task = %taskid, "revealed");
            }
        } else if task.status != 3 {
            return Err(WorkerError::Task(format!(
                "the task is in status {} on chain after contributing",
                task.status
            )));
        }

        // Outvoted (another result won), or rejected at a reopen: the archive is not the task's result.
        let mine = self.hub().viewContribution(taskid, self.me()).call().await?;
        if mine.status != 2 {
            return Err(WorkerError::Task(format!(
                "this contribution is not a revealed winner (contribution status {}): the consensus is another \
                 result, or the reveal came too late",
                mine.status
            )));
        }

        // 4. Upload the archive. The pool checks it against the reported digest: this report must get through.
        pool.status(&with_result(ReplicateStatus::Revealed)).await?;
        if !state.uploaded {
            let zip = std::fs::read(dir.join("result.zip")).map_err(io_err("reading", &dir.join("result.zip")))?;
            pool.upload(taskid, zip).await?;
            state.uploaded = true;
            write_state(&dir, &state)?;
        }
        pool.status(&report(ReplicateStatus::ResultUploaded)).await?;
        // The run folders are not needed any more; state.json and the archive stay until the task is done.
        let _ = std::fs::remove_dir_all(run_dir(&self.config.work_dir, taskid));
        Ok(())
    }

    /// Runs the app and packages its output into `dir/result.zip`; returns the digest and callback data.
    async fn compute(
        &self,
        a: &Assignment,
        deal: &crate::chain::contracts::hub::IexecLibCore_v5::Deal,
        dir: &Path,
        has_callback: bool,
        abort: AbortSignal,
    ) -> Result<(B256, Option<Bytes>), WorkerError> {
        let app = self.hub().viewApp(deal.app.pointer).call().await?;
        let app =
            AppRef { address: deal.app.pointer, multiaddr: String::from_utf8_lossy(&app.m_appMultiaddr).into_owned() };
        // Before any download: a task whose app this worker will not run costs it nothing.
        self.executor.admits(&app).await?;
        let dataset = if deal.dataset.pointer == Address::ZERO {
            None
        } else {
            let d = self.hub().viewDataset(deal.dataset.pointer).call().await?;
            Some(inputs::DatasetRef {
                address: deal.dataset.pointer,
                multiaddr: String::from_utf8_lossy(&d.m_datasetMultiaddr).into_owned(),
                checksum: d.m_datasetChecksum,
            })
        };
        let urls = inputs::input_urls(&deal.params);
        let (dataset, input_files) = self.inputs.for_task(a.dealid, dataset.as_ref(), &urls).await?;
        let category = self.hub().viewCategory(deal.category).call().await?;
        let secs = u64::try_from(category.workClockTimeRef).unwrap_or(u64::MAX);
        let n = |v: U256| u64::try_from(v).unwrap_or(u64::MAX);
        // Each slot gets its share of what the worker registered with the pool: the pool hands it up to `cpu`
        // replicates at once, so that is what they must fit in together. One CPU per slot.
        let slots = u64::from(self.config.capacity.cpu.max(1));
        let spec = TaskSpec {
            task_id: a.taskid,
            deal_id: a.dealid,
            task_index: a.index,
            bot_first: n(deal.botFirst),
            bot_size: n(deal.botSize),
            app,
            args: args_from_params(&deal.params),
            input_files,
            dataset,
            env: self.config.app_env.clone(),
            limits: Limits {
                max_duration: Duration::from_secs(secs.max(1)),
                memory_bytes: Some(self.config.capacity.memory / slots),
                milli_cpus: Some(1000),
                scratch_bytes: self.config.scratch_bytes,
                ..Limits::default()
            },
        };
        // A run interrupted earlier left a partial output: start over from an empty folder.
        let root = run_dir(&self.config.work_dir, a.taskid);
        let _ = std::fs::remove_dir_all(&root);
        let ws = Workspace::prepare(&root, &spec)?;
        let outcome = self.executor.run(&spec, &ws, abort).await?;
        tracing::info!(task = %a.taskid, exit = outcome.exit_code, secs = outcome.duration.as_secs_f64(), "app ran");
        if outcome.exit_code != 0 {
            return Err(WorkerError::Task(format!(
                "the app exited with code {}: {}",
                outcome.exit_code,
                outcome.stderr.text().trim()
            )));
        }
        // As iExec's worker: what the app printed goes with its result (`dragon stdout` reads it). Written through
        // the opened folder: a link the app left as stdout.txt is replaced, never written through.
        let stdout_txt = outcome.out_dir.join("stdout.txt");
        crate::executor::outdir::OutDir::open(&outcome.out_dir)
            .and_then(|out| out.create("stdout.txt"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, &outcome.stdout.head))
            .map_err(io_err("writing", &stdout_txt))?;
        let packaged = package(&outcome.out_dir, outcome.computed.as_ref(), has_callback)?;
        let zip_path = dir.join("result.zip");
        let tmp = dir.join("result.zip.tmp");
        write_private(&tmp, &packaged.zip)?;
        std::fs::rename(&tmp, &zip_path).map_err(io_err("writing", &zip_path))?;
        let callback = if has_callback {
            let data = outcome.computed.as_ref().and_then(|c| c.callback_data.as_deref()).unwrap_or_default();
            Some(Bytes::from(
                alloy::hex::decode(data).map_err(|e| WorkerError::Task(format!("callback-data is not hex: {e}")))?,
            ))
        } else {
            None
        };
        Ok((packaged.digest, callback))
    }

    /// Polls the task until it leaves ACTIVE (consensus, or done, or failed), at most until its contribution
    /// deadline.
    async fn wait_revealing(
        &self,
        taskid: B256,
    ) -> Result<crate::chain::contracts::hub::IexecLibCore_v5::Task, WorkerError> {
        loop {
            let t = self.hub().viewTask(taskid).call().await?;
            if t.status != 1 {
                return Ok(t);
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            if U256::from(now) > t.contributionDeadline {
                return Err(WorkerError::Task("no consensus before the contribution deadline".into()));
            }
            tokio::time::sleep(self.config.poll.min(Duration::from_secs(2))).await;
        }
    }

    /// Waits for a transaction; a refusal by the hub is [`WorkerError::Refused`] with its decoded reason.
    async fn mined(
        &self,
        sent: Result<alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>, alloy::contract::Error>,
        what: &'static str,
    ) -> Result<(), WorkerError> {
        let pending = match sent {
            Ok(p) => p,
            Err(e) => {
                return Err(match e.as_revert_data() {
                    Some(data) => WorkerError::Refused { what, revert: Box::new(revert::decode(&data)) },
                    None => e.into(),
                });
            }
        };
        let receipt = pending.with_timeout(Some(Duration::from_secs(60))).get_receipt().await?;
        if !receipt.status() {
            return Err(WorkerError::Reverted { what, tx: receipt.transaction_hash });
        }
        Ok(())
    }
}

/// Where task `taskid` runs: the pool relies on this layout (`<taskid>/run/out` is the output folder) to read an
/// output path a native app declared by its absolute host path.
pub fn run_dir(work_dir: &Path, taskid: B256) -> PathBuf {
    work_dir.join(format!("{taskid:#x}")).join("run")
}

/// Reports a status change, best effort: the chain steps go on while the pool is unreachable, and the
/// replicate is handed back (and reported again) once it answers.
async fn tell(pool: &PoolClient, u: &StatusUpdate) {
    if let Err(e) = pool.status(u).await {
        tracing::warn!(task = %u.taskid, status = u.status.as_str(), error = %e, "status report lost");
    }
}

fn io_err(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> WorkerError {
    let context = format!("{what} {}", p.display());
    move |source| WorkerError::Io { context, source }
}

fn read_state(dir: &Path) -> Result<LocalState, WorkerError> {
    let path = dir.join("state.json");
    match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| WorkerError::Task(format!("{} is corrupt: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LocalState::default()),
        Err(e) => Err(io_err("reading", &path)(e)),
    }
}

/// Writes through a temporary file and a rename, so a crash leaves the old state or the new one.
fn write_state(dir: &Path, s: &LocalState) -> Result<(), WorkerError> {
    let path = dir.join("state.json");
    let tmp = dir.join("state.json.tmp");
    let bytes = serde_json::to_vec_pretty(s).map_err(|e| WorkerError::Task(e.to_string()))?;
    write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &path).map_err(io_err("writing", &path))
}

/// Writes a new file readable by the worker alone.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), WorkerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("writing", path))?;
    std::io::Write::write_all(&mut f, bytes).map_err(io_err("writing", path))
}
