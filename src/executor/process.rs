//! The `process` executor: a native program per task, for apps the pool owner trusts.
//!
//! The app runs in the task's workspace with a clean environment (`PATH`, `HOME` = the workspace, the task's
//! extra variables, then the `IEXEC_*` ones with host paths), in a process group of its own. The group is what
//! gets killed, with SIGKILL, on timeout, abort, output flood, drop of the future, and also after a normal exit,
//! so that no background child of the app outlives its task. A child that leaves the group (`setsid`) escapes
//! this; containing that needs cgroups, which is what the `docker` executor is for.
//!
//! Native code is not isolated: only apps on the allow-list run, and the program run is the app's on-chain
//! multiaddr (an absolute path on the worker), which an app's owner cannot change after registration.
//!
//! The app runs as its own user when one is set ([`ProcessExecutor::with_user`]; the worker sets `nobody` when it
//! runs as root): the workspace's root and `out/` are given to that user, `in/` and its files stay the worker's,
//! read-only. As that user, the app cannot read the worker's environment or memory (`/proc/<worker>/environ`,
//! where its key is) nor the worker's private files.

use super::abort::AbortSignal;
use super::app_user::AppUser;
use super::contract::{extra_env, iexec_env, split_args};
use super::error::ExecError;
use super::output::{OUT_CHECK_EVERY, check_out_size, read_computed};
use super::spec::{AppRef, BoxFuture, CapturedLog, Executor, Outcome, TaskSpec, Workspace};
use alloy::primitives::Address;
use rustix::process::{Pid, Signal, kill_process_group};
use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The `PATH` a native app gets.
const APP_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long the app's pipes are drained after its group is killed (a child outside the group may hold them).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Runs allow-listed native apps.
#[derive(Debug, Clone)]
pub struct ProcessExecutor {
    allow: HashSet<Address>,
    user: Option<AppUser>,
}

impl ProcessExecutor {
    /// An executor that runs only the apps of `allow`, as the worker's own user.
    pub fn new(allow: impl IntoIterator<Item = Address>) -> Self {
        ProcessExecutor { allow: allow.into_iter().collect(), user: None }
    }

    /// Runs the apps as `user` (the worker must be root to switch to it).
    #[must_use]
    pub fn with_user(mut self, user: AppUser) -> Self {
        self.user = Some(user);
        self
    }

    /// The allow-list, for the pool's orders (their app restriction) and its status page.
    pub fn allow_list(&self) -> impl Iterator<Item = Address> + '_ {
        self.allow.iter().copied()
    }

    /// Whether `app` is on the allow-list (a pool's workerpool orders restrict themselves to these apps).
    pub fn allows(&self, app: Address) -> bool {
        self.allow.contains(&app)
    }
}

impl Executor for ProcessExecutor {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn admits<'a>(&'a self, app: &'a AppRef) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move { self.admit(app).map(|_| ()) })
    }

    fn run<'a>(
        &'a self,
        task: &'a TaskSpec,
        ws: &'a Workspace,
        abort: AbortSignal,
    ) -> BoxFuture<'a, Result<Outcome, ExecError>> {
        Box::pin(self.run_task(task, ws, abort))
    }
}

/// The program of a native app: its multiaddr as an absolute path, or a `file://` URL of one.
pub(super) fn program(app: &AppRef) -> Result<PathBuf, ExecError> {
    let bad = |reason: &str| ExecError::BadApp { multiaddr: app.multiaddr.clone(), reason: reason.to_owned() };
    let path = Path::new(app.multiaddr.strip_prefix("file://").unwrap_or(&app.multiaddr));
    if !path.is_absolute() {
        return Err(bad("a native app's multiaddr must be an absolute path"));
    }
    if !path.is_file() {
        return Err(bad("no such program on this worker"));
    }
    Ok(path.to_path_buf())
}

fn utf8(p: &Path) -> Result<&str, ExecError> {
    p.to_str().ok_or_else(|| ExecError::BadInput(format!("workspace path {} is not UTF-8", p.display())))
}

/// Kills the process group when dropped, whatever way the run ends.
struct GroupKill(Option<Pid>);

impl GroupKill {
    /// Kills once: once the group is empty its id may be reused, and a second kill could reach a stranger.
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            // ESRCH (the group is already gone) is the expected case after a clean exit.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One output pipe of the app, read into a bounded log.
struct Pipe<R> {
    reader: Option<R>,
    log: CapturedLog,
    buf: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: Option<R>) -> Self {
        Pipe { reader, log: CapturedLog::default(), buf: vec![0; 16 << 10].into_boxed_slice() }
    }

    /// Reads one chunk into the log; `false` at end of stream.
    async fn read_chunk(&mut self, keep: usize) -> bool {
        let Some(r) = self.reader.as_mut() else { return false };
        match r.read(&mut self.buf).await {
            Ok(n) if n > 0 => {
                self.log.push(&self.buf[..n], keep);
                true
            }
            _ => {
                self.reader = None;
                false
            }
        }
    }

    fn open(&self) -> bool {
        self.reader.is_some()
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(-1)
}

/// The program of a trusted native app, if the executor's allow-list has it (`allowed`), readable and executable
/// by the user it runs as: shared by the executors that run native programs (this one, Slurm's).
pub(super) fn admit_native(allowed: bool, user: Option<AppUser>, app: &AppRef) -> Result<PathBuf, ExecError> {
    if !allowed {
        return Err(ExecError::NotAllowed { app: app.address });
    }
    let program = program(app)?;
    if let Some(u) = user {
        // Said here rather than as a bare "permission denied" from the start of the app.
        u.can(&program, 0o5).map_err(|reason| ExecError::BadApp { multiaddr: app.multiaddr.clone(), reason })?;
    }
    Ok(program)
}

impl ProcessExecutor {
    /// The program of `app`, if this executor runs it.
    fn admit(&self, app: &AppRef) -> Result<PathBuf, ExecError> {
        admit_native(self.allows(app.address), self.user, app)
    }

    async fn run_task(&self, task: &TaskSpec, ws: &Workspace, mut abort: AbortSignal) -> Result<Outcome, ExecError> {
        let program = self.admit(&task.app)?;
        let args = split_args(&task.args)?;
        let limits = &task.limits;
        let mut cmd = tokio::process::Command::new(&program);
        if let Some(u) = self.user {
            // The app may write its root (its working directory and HOME) and out/; in/ stays the worker's.
            for d in [&ws.root, &ws.out_dir] {
                std::os::unix::fs::lchown(d, Some(u.uid), Some(u.gid)).map_err(|source| ExecError::Io {
                    context: format!("giving {} to user {u}", d.display()),
                    source,
                })?;
            }
            cmd.uid(u.uid).gid(u.gid);
        }
        cmd.args(&args)
            .current_dir(&ws.root)
            .env_clear()
            .env("PATH", APP_PATH)
            .env("HOME", &ws.root)
            .envs(extra_env(task).map(|(k, v)| (k, v)))
            .envs(iexec_env(task, utf8(&ws.in_dir)?, utf8(&ws.out_dir)?))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group (pgid = its pid), so that one kill reaches every process it starts.
            .process_group(0)
            .kill_on_drop(true);
        if abort.is_aborted() {
            return Err(ExecError::Aborted);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(ExecError::Spawn)?;
        let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()).and_then(Pid::from_raw));
        let mut out = Pipe::new(child.stdout.take());
        let mut err = Pipe::new(child.stderr.take());
        let deadline = tokio::time::Instant::from_std(started + limits.max_duration);
        let mut check = tokio::time::interval(OUT_CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let keep = limits.max_log_bytes;

        let ended: Result<ExitStatus, ExecError> = loop {
            tokio::select! {
                status = child.wait() => {
                    break status.map_err(|source| ExecError::Io { context: "waiting for the app".into(), source });
                }
                _ = out.read_chunk(keep), if out.open() => {}
                _ = err.read_chunk(keep), if err.open() => {}
                () = tokio::time::sleep_until(deadline) => break Err(ExecError::Timeout { limit: limits.max_duration }),
                () = abort.aborted() => break Err(ExecError::Aborted),
                _ = check.tick() => {
                    if let Err(e) = check_out_size(&ws.out_dir, limits.max_output_bytes) {
                        break Err(e);
                    }
                }
            }
            let logged = out.log.total_bytes + err.log.total_bytes;
            if logged > limits.max_output_bytes {
                break Err(ExecError::OutputTooLarge {
                    what: "stdout and stderr",
                    size: logged,
                    limit: limits.max_output_bytes,
                });
            }
        };
        let duration = started.elapsed();
        // Whether the app exited or not, nothing it started may outlive the task.
        group.kill();
        let status = match ended {
            Ok(status) => status,
            Err(e) => {
                let _ = child.wait().await;
                return Err(e);
            }
        };
        let drain = async {
            while out.read_chunk(keep).await {}
            while err.read_chunk(keep).await {}
        };
        let _ = tokio::time::timeout(DRAIN_GRACE, drain).await;
        check_out_size(&ws.out_dir, limits.max_output_bytes)?;
        let computed = read_computed(&ws.out_dir)?;
        Ok(Outcome {
            exit_code: exit_code(status),
            stdout: out.log,
            stderr: err.log,
            duration,
            out_dir: ws.out_dir.clone(),
            computed,
        })
    }
}
