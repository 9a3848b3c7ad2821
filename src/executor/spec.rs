//! What an executor is given and must do: the [`Executor`] trait, the task it runs ([`TaskSpec`]) in its
//! folders ([`Workspace`]), and what a run gives back ([`Outcome`]).

use super::abort::AbortSignal;
use super::error::ExecError;
use super::result::ComputedJson;
use alloy::primitives::{Address, B256};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

/// The future an executor returns: boxed so that `dyn Executor` works.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs one task's app. Implementations must leave nothing running behind them when the future completes, and
/// must clean up as well as they can when it is dropped before completing, except where the run is meant to
/// outlive the worker and be re-attached to (`slurm`: see [`Executor::resumes`]).
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics (`"process"`, `"docker"`).
    fn kind(&self) -> &'static str;

    /// Whether this executor would run `app` (on the allow-list, the program or image present): the worker asks
    /// before it fetches anything for a task, so that a task it will refuse costs it no download.
    fn admits<'a>(&'a self, app: &'a AppRef) -> BoxFuture<'a, Result<(), ExecError>>;

    /// Whether a run of `task_id` begun before the worker restarted may still be going on or waiting to be
    /// collected (a cluster job outlives the worker). The worker then keeps the task's workspace as it is
    /// ([`Workspace::resume`]) instead of starting from an empty one, and `run` re-attaches.
    fn resumes(&self, task_id: B256) -> bool {
        let _ = task_id;
        false
    }

    /// The worker is done with `task_id` (its result is uploaded, or the task is over on chain): what the
    /// executor kept of its run to resume it may go.
    fn release(&self, task_id: B256) {
        let _ = task_id;
    }

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
    /// The workspace of a run that [`Executor::resumes`]: as it was left, its output included, when its folders
    /// are there; else a new one, as [`Workspace::prepare`] makes.
    pub fn resume(root: &Path, task: &TaskSpec) -> Result<Workspace, ExecError> {
        if let Ok(root) = root.canonicalize() {
            let (in_dir, out_dir) = (root.join("in"), root.join("out"));
            if in_dir.is_dir() && out_dir.is_dir() {
                return Ok(Workspace { root, in_dir, out_dir });
            }
        }
        Workspace::prepare(root, task)
    }

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
    pub(super) fn push(&mut self, chunk: &[u8], keep: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_log_keeps_the_head_and_counts_all() {
        let mut l = CapturedLog::default();
        l.push(b"hello ", 8);
        l.push(b"world", 8);
        assert_eq!(l.head, b"hello wo");
        assert_eq!(l.total_bytes, 11);
        assert!(l.truncated());
    }
}
