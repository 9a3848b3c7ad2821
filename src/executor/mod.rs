//! Executors: how a worker runs one task's app and gets its output folder back.
//!
//! ```text
//!  worker ──TaskSpec + Workspace──▶ dyn Executor ──▶ Outcome { exit code, logs, out/, computed.json }
//!                                   │                    │
//!                   process (native, allow-listed)       └─▶ result::package ─▶ zip + resultDigest
//!                   docker  (Engine API, isolated)
//! ```
//!
//! One trait, [`Executor`], chosen at run time from [`ExecutorConfig`] (`Arc<dyn Executor>`):
//! - [`process::ProcessExecutor`] runs a trusted native command in its own process group;
//! - [`docker::DockerExecutor`] runs the app's image through the Docker Engine API, without network.
//!
//! Both give the app iExec's contract ([`iexec_env`]): inputs in `IEXEC_IN`, outputs in `IEXEC_OUT`, the
//! arguments of the request's `iexec_args` split as iExec splits them ([`split_args`]), and `computed.json`
//! read back. Both enforce the category's time limit and a bound on output, and both can be aborted.
//! `docs/executors.md` says what each one isolates, and how a third executor (a cluster scheduler) plugs in.

pub mod docker;
pub mod outdir;
pub mod process;
pub mod result;

pub use result::{ComputedJson, ResultError};

use alloy::primitives::{Address, B256};
use serde::Deserialize;
use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The future an executor returns: boxed so that `dyn Executor` works.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs one task's app. Implementations must leave nothing running behind them when the future completes, and
/// must clean up as well as they can when it is dropped before completing.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics (`"process"`, `"docker"`).
    fn kind(&self) -> &'static str;

    /// Whether this executor would run `app` (on the allow-list, the program or image present): the worker asks
    /// before it fetches anything for a task, so that a task it will refuse costs it no download.
    fn admits<'a>(&'a self, app: &'a AppRef) -> BoxFuture<'a, Result<(), ExecError>>;

    /// Runs `task` in `ws` until it exits, its time limit passes, its output grows past its bound, or `abort`
    /// fires. A non-zero exit code is an [`Outcome`], not an error: PoCo lets the pool decide what it means.
    fn run<'a>(
        &'a self,
        task: &'a TaskSpec,
        ws: &'a Workspace,
        abort: AbortSignal,
    ) -> BoxFuture<'a, Result<Outcome, ExecError>>;
}

/// What a worker knows about a task when it runs it.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub task_id: B256,
    pub deal_id: B256,
    /// The task's index in the deal's bag of tasks (`IEXEC_BOT_TASK_INDEX`).
    pub task_index: u64,
    pub bot_first: u64,
    pub bot_size: u64,
    pub app: AppRef,
    /// The command-line arguments as one string, from the request's params (see [`args_from_params`]).
    pub args: String,
    /// Input files, already fetched; they are placed in `IEXEC_IN` under their `name`.
    pub input_files: Vec<InputFile>,
    pub dataset: Option<DatasetFile>,
    /// Extra environment for the app (after the `IEXEC_*` variables, which it cannot override).
    pub env: Vec<(String, String)>,
    pub limits: Limits,
}

/// The app as registered on chain.
#[derive(Debug, Clone)]
pub struct AppRef {
    pub address: Address,
    /// For `docker`, the image (`name:tag`, `docker.io/name:tag`, `name@sha256:…`); for `process`, the absolute
    /// path of the program (optionally as a `file://` URL).
    pub multiaddr: String,
}

/// An input file fetched by the worker.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The name the app sees (`IEXEC_INPUT_FILE_NAME_i`): iExec uses the last segment of the file's URL.
    pub name: String,
    pub path: PathBuf,
}

/// The dataset, fetched and checked against its on-chain checksum by the worker.
#[derive(Debug, Clone)]
pub struct DatasetFile {
    pub address: Address,
    /// The name the app sees (`IEXEC_DATASET_FILENAME`): iExec uses the dataset's address.
    pub name: String,
    pub path: PathBuf,
}

/// Bounds on one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The category's maximum run time.
    pub max_duration: Duration,
    /// Memory, in bytes (docker: enforced by the kernel; process: not enforced, see `docs/executors.md`).
    pub memory_bytes: Option<u64>,
    /// CPU share in thousandths of a CPU (docker: `NanoCpus`; process: not enforced).
    pub milli_cpus: Option<u32>,
    /// Size of the scratch space `/tmp` (docker: a tmpfs, the root file system being read-only; process: not
    /// enforced).
    pub scratch_bytes: u64,
    /// Bound on the output folder's size (each entry counting at least 4 KiB) and, separately, on the bytes the
    /// app writes to stdout + stderr.
    pub max_output_bytes: u64,
    /// How much of stdout and of stderr is kept in the [`Outcome`] (the rest is counted and dropped).
    pub max_log_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_duration: Duration::from_secs(300),
            memory_bytes: None,
            milli_cpus: None,
            scratch_bytes: DEFAULT_SCRATCH_BYTES,
            max_output_bytes: 64 << 20,
            max_log_bytes: 64 << 10,
        }
    }
}

/// Default of [`Limits::scratch_bytes`]: 64 MiB.
pub const DEFAULT_SCRATCH_BYTES: u64 = 64 << 20;

/// A task's folders: `in/` (mounted as `/iexec_in`) and `out/` (`/iexec_out`) under one root, which is also the
/// working directory of a `process` app.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    pub in_dir: PathBuf,
    pub out_dir: PathBuf,
}

impl Workspace {
    /// Creates `root/in` and `root/out` and places the task's input files and dataset in `in/` (hard links when
    /// possible, else copies; made read-only). `out/` must be empty: a leftover output would end up in the result.
    pub fn prepare(root: &Path, task: &TaskSpec) -> Result<Workspace, ExecError> {
        let io = |what: &str, p: &Path| {
            let context = format!("{what} {}", p.display());
            move |source| ExecError::Io { context, source }
        };
        std::fs::create_dir_all(root).map_err(io("creating", root))?;
        // Absolute, because the app runs in `root` and is told these paths.
        let root = root.canonicalize().map_err(io("resolving", root))?;
        let in_dir = root.join("in");
        let out_dir = root.join("out");
        std::fs::create_dir_all(&in_dir).map_err(io("creating", &in_dir))?;
        std::fs::create_dir_all(&out_dir).map_err(io("creating", &out_dir))?;
        // Whatever the worker's umask: an app that runs as another user must reach its folders.
        for d in [&root, &in_dir, &out_dir] {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(io("setting the mode of", d))?;
        }
        if std::fs::read_dir(&out_dir).map_err(io("reading", &out_dir))?.next().is_some() {
            return Err(ExecError::Io {
                context: format!("{} is not empty", out_dir.display()),
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        let files = task
            .input_files
            .iter()
            .map(|f| (&f.name, &f.path))
            .chain(task.dataset.as_ref().map(|d| (&d.name, &d.path)));
        for (name, src) in files {
            if !is_plain_name(name) {
                return Err(ExecError::BadInput(format!("input name {name:?} is not a plain file name")));
            }
            let dst = in_dir.join(name);
            let _ = std::fs::remove_file(&dst);
            if std::fs::hard_link(src, &dst).is_err() {
                std::fs::copy(src, &dst).map_err(io("copying", src))?;
            }
            // A hard link shares its file with the worker's cache: read-only, so that an app (a native one, which
            // runs without a read-only mount) does not change the cached copy by accident. Best effort: the
            // worker may not own the cached file.
            let _ = std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o444));
        }
        Ok(Workspace { root, in_dir, out_dir })
    }
}

/// A name that stays inside the folder it is joined to.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The app's exit code; a death by signal `n` is reported as `128 + n`, as shells and Docker do.
    pub exit_code: i32,
    pub stdout: CapturedLog,
    pub stderr: CapturedLog,
    /// From the start of the app to its exit.
    pub duration: Duration,
    pub out_dir: PathBuf,
    /// `computed.json` from the output folder, when the app wrote one.
    pub computed: Option<ComputedJson>,
}

/// The head of a stream, bounded, and how long the whole stream was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedLog {
    pub head: Vec<u8>,
    pub total_bytes: u64,
}

impl CapturedLog {
    fn push(&mut self, chunk: &[u8], keep: usize) {
        let room = keep.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        self.total_bytes += chunk.len() as u64;
    }

    pub fn truncated(&self) -> bool {
        self.total_bytes > self.head.len() as u64
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

/// Why a run produced no [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("app {app} is not on this pool's allow-list of native apps")]
    NotAllowed { app: Address },
    #[error("app multiaddr {multiaddr:?} cannot be run here: {reason}")]
    BadApp { multiaddr: String, reason: String },
    #[error("image {image} is not present on the Docker engine")]
    ImageMissing { image: String },
    #[error("bad task input: {0}")]
    BadInput(String),
    #[error("{0}")]
    Config(String),
    #[error("the app ran longer than its limit of {limit:?} and was killed")]
    Timeout { limit: Duration },
    #[error("the app's {what} reached {size} bytes, over the limit of {limit}; it was killed")]
    OutputTooLarge { what: &'static str, size: u64, limit: u64 },
    #[error("the run was aborted")]
    Aborted,
    #[error("computed.json is not valid: {0}")]
    ComputedJson(String),
    #[error("could not start the app")]
    Spawn(#[source] std::io::Error),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Docker engine: {context}")]
    Docker {
        context: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// The user a native app runs as (`--app-user`), other than the worker's: then the app can read neither the
/// worker's key (its environment and memory are another user's, and the worker is not dumpable) nor the worker's
/// files (its cache and state are private to it). Written `UID[:GID]` or `NAME[:GROUP]` (looked up in
/// `/etc/passwd` and `/etc/group`); without a group, the user's own (or a group of the same number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AppUser {
    pub uid: u32,
    pub gid: u32,
}

/// The id of `name` in `/etc/passwd` or `/etc/group` syntax (`name:x:id:…`), with the next field as a number (a
/// user's group) when it is one.
fn lookup(file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    let text = std::fs::read_to_string(file).ok()?;
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 2 && f[0] == name {
            return Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())));
        }
    }
    None
}

impl std::str::FromStr for AppUser {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        let (uid, own_gid) = match user.parse::<u32>() {
            Ok(uid) => (uid, None),
            Err(_) => lookup("/etc/passwd", user).ok_or_else(|| format!("no user {user:?} in /etc/passwd"))?,
        };
        let gid = match group {
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => lookup("/etc/group", g)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| format!("no group {g:?} in /etc/group"))?,
            },
            None => own_gid.unwrap_or(uid),
        };
        Ok(AppUser { uid, gid })
    }
}

impl TryFrom<String> for AppUser {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl std::fmt::Display for AppUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

impl AppUser {
    /// `nobody:nogroup` on Debian and most distributions.
    pub const NOBODY: AppUser = AppUser { uid: 65534, gid: 65534 };

    /// The user the apps of a worker run as: `chosen`, or `nobody` when the worker runs as root (root's apps could
    /// read any process's memory), or none (the worker's own user) otherwise. Switching user needs root, and root
    /// itself is refused.
    pub fn for_worker(chosen: Option<AppUser>) -> Result<Option<AppUser>, ExecError> {
        let root = rustix::process::geteuid().is_root();
        match chosen {
            Some(u) if u.uid == 0 => {
                Err(ExecError::Config("the app user must not be root: an app could read the worker's key".into()))
            }
            Some(_) if !root => Err(ExecError::Config(
                "--app-user needs a worker that runs as root (it switches to that user to start each app)".into(),
            )),
            Some(u) => Ok(Some(u)),
            None if root => Ok(Some(AppUser::NOBODY)),
            None => Ok(None),
        }
    }

    /// Checks that this user can search every folder above `path` and has the `need` rights (`0o4` read, `0o2`
    /// write, `0o1` execute or search) on `path` itself, by the mode bits (supplementary groups and ACLs aside).
    pub fn can(&self, path: &Path, need: u32) -> Result<(), String> {
        use std::os::unix::fs::MetadataExt;
        let real = path.canonicalize().map_err(|e| format!("{}: {e}", path.display()))?;
        let has = |p: &Path, bits: u32| -> Result<bool, String> {
            let m = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let shift = if m.uid() == self.uid {
                6
            } else if m.gid() == self.gid {
                3
            } else {
                0
            };
            Ok((m.mode() >> shift) & bits == bits)
        };
        for dir in real.ancestors().skip(1) {
            if !has(dir, 0o1)? {
                return Err(format!(
                    "user {self} cannot reach {}: {} is not searchable by it",
                    path.display(),
                    dir.display()
                ));
            }
        }
        if !has(&real, need)? {
            return Err(format!("user {self} lacks the rights {need:o} on {}", path.display()));
        }
        Ok(())
    }
}

/// Fires an abort for the [`AbortSignal`]s made with it.
#[derive(Debug, Clone)]
pub struct AbortHandle(Arc<watch::Sender<bool>>);

/// Resolves once its [`AbortHandle`] aborts; never resolves when there is none left.
#[derive(Debug, Clone)]
pub struct AbortSignal(watch::Receiver<bool>);

/// A new abort pair.
pub fn abort_pair() -> (AbortHandle, AbortSignal) {
    let (tx, rx) = watch::channel(false);
    (AbortHandle(Arc::new(tx)), AbortSignal(rx))
}

impl AbortHandle {
    pub fn abort(&self) {
        self.0.send_replace(true);
    }
}

impl AbortSignal {
    /// A signal that never fires.
    pub fn never() -> AbortSignal {
        let (_tx, rx) = watch::channel(false);
        AbortSignal(rx)
    }

    pub fn is_aborted(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for the abort. A dropped handle means nobody can abort any more, so this then waits forever.
    pub async fn aborted(&mut self) {
        if self.0.wait_for(|a| *a).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The command-line string of a request's params, as iExec reads it: the `iexec_args` field when the params are
/// a JSON object, else the whole params string.
pub fn args_from_params(params: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(params) {
        Ok(serde_json::Value::Object(map)) => {
            map.get("iexec_args").and_then(|a| a.as_str()).unwrap_or_default().to_owned()
        }
        _ => params.to_owned(),
    }
}

/// Splits a command-line string as iExec's worker does (Maven's `CommandLineUtils.translateCommandline`):
/// tokens separated by spaces (only spaces), single or double quotes group (and may join, `a"b c"` is `ab c`),
/// no escapes, an empty quoted string is an empty argument; unbalanced quotes are an error.
pub fn split_args(line: &str) -> Result<Vec<String>, ExecError> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut quoted = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                quoted = true;
            }
            (None, ' ') => {
                if quoted || !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                    quoted = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(ExecError::BadInput(format!("unbalanced quotes in arguments {line:?}")));
    }
    if quoted || !cur.is_empty() {
        args.push(cur);
    }
    Ok(args)
}

/// The `IEXEC_*` environment of a task, with `in_dir` and `out_dir` as the app sees them (host paths for
/// `process`, `/iexec_in` and `/iexec_out` in a container). The names are those of iExec's worker, including
/// the older `IEXEC_NB_INPUT_FILES` which some apps still read.
pub fn iexec_env(task: &TaskSpec, in_dir: &str, out_dir: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("IEXEC_TASK_ID".to_owned(), task.task_id.to_string()),
        ("IEXEC_DEAL_ID".to_owned(), task.deal_id.to_string()),
        ("IEXEC_TASK_INDEX".to_owned(), task.task_index.to_string()),
        ("IEXEC_IN".to_owned(), in_dir.to_owned()),
        ("IEXEC_OUT".to_owned(), out_dir.to_owned()),
        ("IEXEC_BOT_SIZE".to_owned(), task.bot_size.to_string()),
        ("IEXEC_BOT_FIRST_INDEX".to_owned(), task.bot_first.to_string()),
        ("IEXEC_BOT_TASK_INDEX".to_owned(), task.task_index.to_string()),
        ("IEXEC_INPUT_FILES_FOLDER".to_owned(), in_dir.to_owned()),
        ("IEXEC_INPUT_FILES_NUMBER".to_owned(), task.input_files.len().to_string()),
        ("IEXEC_NB_INPUT_FILES".to_owned(), task.input_files.len().to_string()),
    ];
    for (i, f) in task.input_files.iter().enumerate() {
        env.push((format!("IEXEC_INPUT_FILE_NAME_{}", i + 1), f.name.clone()));
    }
    match &task.dataset {
        Some(d) => {
            env.push(("IEXEC_DATASET_ADDRESS".to_owned(), d.address.to_string()));
            env.push(("IEXEC_DATASET_FILENAME".to_owned(), d.name.clone()));
        }
        // iExec documents the zero address when there is no dataset, and no file name.
        None => env.push(("IEXEC_DATASET_ADDRESS".to_owned(), Address::ZERO.to_string())),
    }
    env
}

/// The task's extra environment without the names the executor sets itself.
fn extra_env(task: &TaskSpec) -> impl Iterator<Item = &(String, String)> {
    task.env.iter().filter(|(k, _)| !k.starts_with("IEXEC_"))
}

/// What one file or folder counts at least, as it costs at least one block on disk: an app cannot get around the
/// output bound with a flood of empty files, and the walk that measures it stays short.
const ENTRY_COST: u64 = 4096;

/// The size of the tree under `dir` (symbolic links not followed), each entry counting at least one 4 KiB block;
/// the walk stops as soon as it passes `stop_above`. Entries that vanish while it walks (a running app deleting
/// its temporary files) are skipped.
pub fn dir_size(dir: &Path, stop_above: u64) -> std::io::Result<u64> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if gone(&e) && d != dir => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let (path, meta) = match entry.and_then(|e| e.metadata().map(|m| (e.path(), m))) {
                Ok(found) => found,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e),
            };
            total += meta.len().max(ENTRY_COST);
            if total > stop_above {
                return Ok(total);
            }
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(total)
}

/// Reads `computed.json` from an output folder, if the app wrote one (as a regular file: a link is not followed,
/// see [`outdir`]).
fn read_computed(out_dir: &Path) -> Result<Option<ComputedJson>, ExecError> {
    let path = out_dir.join("computed.json");
    let io = |source| ExecError::Io { context: format!("reading {}", path.display()), source };
    let out = outdir::OutDir::open(out_dir).map_err(io)?;
    match out.kind_of(Path::new("computed.json")).map_err(io)? {
        None => return Ok(None),
        Some(outdir::Kind::File) => {}
        Some(_) => return Err(ExecError::ComputedJson("it is not a regular file".into())),
    }
    let Some(mut f) = out.open_file(Path::new("computed.json")).map_err(io)? else {
        return Err(ExecError::ComputedJson("it is not a regular file".into()));
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut bytes).map_err(io)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| ExecError::ComputedJson(e.to_string()))
}

/// Fails with [`ExecError::OutputTooLarge`] when the output folder is over its bound.
fn check_out_size(out_dir: &Path, limit: u64) -> Result<(), ExecError> {
    let size = dir_size(out_dir, limit)
        .map_err(|source| ExecError::Io { context: format!("measuring {}", out_dir.display()), source })?;
    if size > limit { Err(ExecError::OutputTooLarge { what: "output folder", size, limit }) } else { Ok(()) }
}

/// How often a running app's output folder is measured.
const OUT_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Which executor a worker uses, as written in its configuration (`kind = "process"` or `kind = "docker"`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExecutorConfig {
    Process {
        /// Addresses of the native apps this pool runs (its owner's allow-list).
        allow: Vec<Address>,
        /// The user apps run as (`UID[:GID]` or a name); when absent, `nobody` if the worker runs as root, else
        /// the worker's own user. See [`AppUser`].
        #[serde(default)]
        user: Option<AppUser>,
    },
    Docker {
        /// `unix:///path/to/docker.sock`; Docker's default socket when absent.
        #[serde(default)]
        host: Option<String>,
        /// A Docker network for apps that need one; none (no network at all) when absent.
        #[serde(default)]
        network: Option<String>,
        /// Owner label of this worker's containers (see `DockerExecutor::with_owner`).
        #[serde(default)]
        owner: Option<String>,
    },
}

impl ExecutorConfig {
    /// Builds the executor (connecting to the Docker engine for `docker`).
    pub async fn build(&self) -> Result<Arc<dyn Executor>, ExecError> {
        Ok(match self {
            ExecutorConfig::Process { allow, user } => {
                let exec = process::ProcessExecutor::new(allow.iter().copied().collect::<HashSet<_>>());
                match AppUser::for_worker(*user)? {
                    Some(u) => Arc::new(exec.with_user(u)),
                    None => Arc::new(exec),
                }
            }
            ExecutorConfig::Docker { host, network, owner } => {
                let host = host.clone().unwrap_or_else(|| docker::DEFAULT_HOST.to_owned());
                let mut d = docker::DockerExecutor::connect(&host).await?;
                if let Some(n) = network {
                    d = d.with_network(n);
                }
                if let Some(o) = owner {
                    d = d.with_owner(o);
                }
                Arc::new(d)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_iexec() {
        let s = |l: &str| split_args(l).expect("balanced");
        assert_eq!(
            s("1st_param 2nd_param '3rd param' \"4th param\""),
            ["1st_param", "2nd_param", "3rd param", "4th param"]
        );
        assert_eq!(s("  a   b "), ["a", "b"]);
        assert_eq!(s("a\"b c\"d"), ["ab cd"]);
        assert_eq!(s("'' x"), ["", "x"]);
        assert_eq!(s("\"it's\" 'say \"hi\"'"), ["it's", "say \"hi\""]);
        assert_eq!(s("a\tb"), ["a\tb"]);
        assert!(s("").is_empty());
        assert!(split_args("'open").is_err());
    }

    #[test]
    fn args_come_from_iexec_args_or_the_whole_params() {
        assert_eq!(args_from_params(r#"{"iexec_args":"x y","iexec_input_files":[]}"#), "x y");
        assert_eq!(args_from_params(r#"{"iexec_input_files":[]}"#), "");
        assert_eq!(args_from_params("plain words"), "plain words");
        assert_eq!(args_from_params(""), "");
    }

    #[test]
    fn executor_config_reads_from_toml() {
        let c: ExecutorConfig = toml::from_str("kind = \"docker\"\nhost = \"unix:///run/d.sock\"").expect("docker");
        assert_eq!(c, ExecutorConfig::Docker { host: Some("unix:///run/d.sock".into()), network: None, owner: None });
        let c: ExecutorConfig =
            toml::from_str("kind = \"process\"\nallow = [\"0x00000000000000000000000000000000000000a1\"]")
                .expect("process");
        assert_eq!(c, ExecutorConfig::Process { allow: vec![Address::with_last_byte(0xa1)], user: None });
        let c: ExecutorConfig = toml::from_str("kind = \"process\"\nallow = []\nuser = \"1000:100\"").expect("user");
        assert_eq!(c, ExecutorConfig::Process { allow: vec![], user: Some(AppUser { uid: 1000, gid: 100 }) });
        assert!(toml::from_str::<ExecutorConfig>("kind = \"process\"\nallow = []\nextra = 1").is_err());
    }

    #[test]
    fn app_users_come_from_numbers_or_names_and_are_never_root() {
        let u = |s: &str| s.parse::<AppUser>();
        assert_eq!(u("1000"), Ok(AppUser { uid: 1000, gid: 1000 }));
        assert_eq!(u("1000:100"), Ok(AppUser { uid: 1000, gid: 100 }));
        assert_eq!(u("root:root"), Ok(AppUser { uid: 0, gid: 0 }), "names from /etc/passwd and /etc/group");
        assert!(u("no-such-user-here").is_err());
        assert!(u("1000:no-such-group-here").is_err());
        assert!(matches!(AppUser::for_worker(Some(AppUser { uid: 0, gid: 0 })), Err(ExecError::Config(_))));
    }

    #[test]
    fn an_app_user_must_reach_a_path_through_every_folder_above_it() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("dragon-appuser-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("private")).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(d.join("private"), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let app = d.join("private/app.sh");
        std::fs::write(&app, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let nobody = AppUser::NOBODY;
        let err = nobody.can(&app, 0o5).expect_err("a private folder above");
        assert!(err.contains("private") && err.contains("not searchable"), "{err}");
        std::fs::set_permissions(d.join("private"), std::fs::Permissions::from_mode(0o711)).expect("chmod");
        nobody.can(&app, 0o5).expect("reachable, readable and executable");
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assert!(nobody.can(&app, 0o5).is_err(), "not readable by others");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn dir_size_counts_blocks_and_stops_early() {
        let d = std::env::temp_dir().join(format!("dragon-dirsize-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("big"), vec![0u8; 10_000]).expect("write");
        std::fs::write(d.join("sub/empty"), b"").expect("write");
        // big (10 000) + sub (a folder: one block) + empty (one block).
        assert_eq!(dir_size(&d, u64::MAX).expect("size"), 10_000 + 2 * ENTRY_COST);
        assert!(dir_size(&d, 100).expect("size") > 100);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn captured_log_keeps_the_head_and_counts_all() {
        let mut l = CapturedLog::default();
        l.push(b"hello ", 8);
        l.push(b"world", 8);
        assert_eq!(l.head, b"hello wo");
        assert_eq!(l.total_bytes, 11);
        assert!(l.truncated());
    }

    #[tokio::test]
    async fn abort_signal_fires_and_a_dropped_handle_never_does() {
        let (h, mut s) = abort_pair();
        h.abort();
        s.aborted().await;
        assert!(s.is_aborted());
        let (h, mut s) = abort_pair();
        drop(h);
        let r = tokio::time::timeout(Duration::from_millis(20), s.aborted()).await;
        assert!(r.is_err());
    }
}
