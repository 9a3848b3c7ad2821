//! `dragon worker`'s flags ([`WorkerArgs`]) and the typed configuration they make ([`WorkerConfig`]).

use super::error::WorkerError;
use super::inputs;
use crate::chain::deploy::Deployment;
use crate::executor::{AppUser, ExecutorConfig};
use crate::pool::protocol::Capacity;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    Process,
    Docker,
    /// Each task a Slurm batch job of an allow-listed native program.
    Slurm,
}

/// The flags of `dragon worker`. The key comes from the environment only (`DRAGON_WORKER_KEY`).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Base URL of the pool's worker API.
    #[arg(long)]
    pub pool: String,
    #[command(flatten)]
    pub chain: crate::config::ChainArgs,
    /// How apps run: native programs (allow-listed), Docker images, or Slurm jobs of allow-listed native programs.
    #[arg(long, value_enum, default_value = "docker")]
    pub executor: ExecutorKind,
    /// An app the `process` or `slurm` executor may run (repeat for several).
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
    /// The Slurm partition jobs go to (`slurm` executor); the cluster's default when absent.
    #[arg(long)]
    pub slurm_partition: Option<String>,
    /// The cluster's slurm.conf, given to Slurm's commands as SLURM_CONF (`slurm` executor).
    #[arg(long)]
    pub slurm_conf: Option<PathBuf>,
    /// How often a Slurm job's state is asked for, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub slurm_poll_ms: u64,
    /// The folder the cluster's nodes share with this worker; --work-dir must be inside it (`slurm` executor).
    #[arg(long)]
    pub slurm_shared_dir: Option<PathBuf>,
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
            ExecutorKind::Slurm => {
                if self.allow_app.is_empty() {
                    return Err(WorkerError::Config("--executor slurm needs at least one --allow-app".into()));
                }
                ExecutorConfig::Slurm {
                    allow: self.allow_app,
                    user: self.app_user,
                    partition: self.slurm_partition,
                    slurm_conf: self.slurm_conf,
                    poll_ms: self.slurm_poll_ms,
                    shared_dir: self.slurm_shared_dir,
                }
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
