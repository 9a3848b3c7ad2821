//! The `slurm` executor: each task is one batch job on a Slurm cluster, and the job outlives the worker.
//!
//! ```text
//!  run(task) ─▶ record? ──no──▶ live job named dragon-<taskid>-<worker>? ──no──▶ intent record ─▶ sbatch ─▶ record(job id)
//!                 │ job id                      │ yes: adopt it                                         │
//!                 ▼                             ▼                                                       ▼
//!              follow(job): scontrol show job every poll ─▶ COMPLETED/FAILED ─▶ logs, out/, computed.json
//!                           (sacct, then the job's exit file, once the controller forgot it)
//!                           time limit / output bound / abort ─▶ scancel ─▶ error
//! ```
//!
//! What runs in the job is what the `process` executor runs: an allow-listed native program (its multiaddr, an
//! absolute path that must exist at the same place on the nodes), in the task's workspace (which must be on a file
//! system the nodes share with the worker), with iExec's environment and arguments, as the app user (`sbatch
//! --uid/--gid`, root only). Nothing untrusted is written into the batch script: the script is a constant wrapper,
//! the program and its arguments are its command-line arguments (`sbatch script prog args…`, an argv, no shell),
//! and the environment is the one `sbatch` itself is started with (`--export=ALL` of a cleared environment), so a
//! requester's argument or file name cannot become shell text or a Slurm option. The job name is built from the
//! task id and the worker's tag alone.
//!
//! Restarts: the job id is recorded with the task (`<jobs dir>/<taskid>.json`, written through a temporary file,
//! fsync and rename) before the run is followed, and an *intent* record is written before `sbatch`. So a worker
//! that comes back finds either the job id (it re-attaches, or collects a job that ended while it was down), or
//! the intent of a submission whose answer it never recorded: it then adopts the job of that name the cluster
//! knows, and submits only when there is none. The name holds the task id and a tag of the worker (a hash of its
//! records' folder), so two workers replicating one task on one cluster never adopt each other's job. Unlike the other executors, dropping a run's future leaves the job
//! running: that is the point, the next start re-attaches to it. An abort (the worker's shutdown, or the run's
//! end on a bound) cancels it with `scancel`.

use super::abort::AbortSignal;
use super::app_user::AppUser;
use super::contract::{extra_env, iexec_env, split_args};
use super::error::ExecError;
use super::outdir::OutDir;
use super::output::{check_out_size, read_computed};
use super::spec::{AppRef, BoxFuture, CapturedLog, Executor, Outcome, TaskSpec, Workspace};
use alloy::primitives::{Address, B256};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `PATH` of the app, as for `process`.
const APP_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The batch script: constant, so that nothing a stranger wrote can become shell text. It runs its arguments (the
/// program and the app's arguments) and leaves the exit code beside the logs, for a worker that comes back after
/// the controller forgot the job (`MinJobAge`) on a cluster without accounting.
const WRAPPER: &str = "#!/bin/sh\n\
# Written by Dragon's slurm executor: runs the app given as arguments, then keeps its exit code.\n\
\"$@\"\n\
code=$?\n\
printf '%s\\n' \"$code\" > slurm-exit\n\
exit \"$code\"\n";

/// Files of a job in its workspace's root (the app's working directory).
const SCRIPT_FILE: &str = "slurm-job.sh";
const STDOUT_FILE: &str = "slurm-stdout.log";
const STDERR_FILE: &str = "slurm-stderr.log";
const EXIT_FILE: &str = "slurm-exit";

/// Bound on one Slurm command (the controller answers in milliseconds; a hung one must not hang the worker).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the controller may fail to answer in a row before the run fails (it restarts, or fails over).
const CONTROLLER_GRACE: Duration = Duration::from_secs(120);

/// How long a cancelled job may take to leave the node.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// The bytes of a command's output that are read (`scontrol show job` is one line of about 1 KiB).
const COMMAND_OUTPUT_BYTES: usize = 64 << 10;

/// The name of task `task_id`'s job for the worker whose records are tagged `tag`: derived from the task id and
/// the worker alone, so that a worker that lost the answer of `sbatch` finds its job again, two workers of a pool
/// that replicate one task on one cluster each find their own, and no stranger's text reaches Slurm.
pub fn job_name(task_id: B256, tag: &str) -> String {
    format!("dragon-{task_id:#x}-{tag}")
}

/// The tag of a worker's jobs: its records' folder, hashed (stable across its restarts, distinct between workers).
fn worker_tag(jobs_dir: &Path) -> String {
    let abs = std::path::absolute(jobs_dir).unwrap_or_else(|_| jobs_dir.to_path_buf());
    let h = alloy::primitives::keccak256(abs.as_os_str().as_encoded_bytes());
    alloy::hex::encode(&h[..4])
}

/// How the executor reaches the cluster.
#[derive(Debug, Clone)]
pub struct SlurmSettings {
    /// The partition jobs go to; the cluster's default when absent.
    pub partition: Option<String>,
    /// `slurm.conf` of the cluster (given to every Slurm command as `SLURM_CONF`); Slurm's default when absent.
    pub slurm_conf: Option<PathBuf>,
    /// How often a job's state is asked for.
    pub poll: Duration,
    /// Where the job records are kept (private to the worker).
    pub jobs_dir: PathBuf,
    /// The folder the cluster's nodes share with the worker; a workspace outside it is refused. Unchecked when
    /// absent (a one-node cluster on the worker's host).
    pub shared_dir: Option<PathBuf>,
    /// How long a job may wait in the queue before it is cancelled.
    pub max_pending: Duration,
}

impl SlurmSettings {
    pub fn new(jobs_dir: PathBuf) -> Self {
        SlurmSettings {
            partition: None,
            slurm_conf: None,
            poll: Duration::from_secs(1),
            jobs_dir,
            shared_dir: None,
            max_pending: Duration::from_secs(600),
        }
    }
}

/// Runs allow-listed native apps as Slurm jobs.
#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    allow: HashSet<Address>,
    user: Option<AppUser>,
    settings: SlurmSettings,
    tag: String,
}

/// What is kept of a task's job, in `<jobs dir>/<taskid>.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub task_id: B256,
    /// Absent while `sbatch` runs: an intent, whose job (if any) is found by name.
    pub job_id: Option<u64>,
    /// When the job was submitted (seconds since the epoch): bounds its time in the queue across restarts.
    pub submitted_at: u64,
}

/// A job's state as the controller (or accounting) tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobState {
    state: String,
    /// `ExitCode=code:signal`, as the shell would say it (`128 + signal`).
    exit_code: Option<i32>,
    run_time: Duration,
}

impl JobState {
    fn is_terminal(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING"
                | "CONFIGURING"
                | "RUNNING"
                | "COMPLETING"
                | "SUSPENDED"
                | "REQUEUED"
                | "REQUEUE_FED"
                | "REQUEUE_HOLD"
                | "RESIZING"
                | "RESV_DEL_HOLD"
                | "SIGNALING"
                | "STAGE_OUT"
                | "STOPPED"
        )
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn slurm_err(context: impl Into<String>, detail: impl Into<String>) -> ExecError {
    ExecError::Slurm { context: context.into(), detail: detail.into() }
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> ExecError {
    move |source| ExecError::Io { context, source }
}

/// A path Slurm is given as `--chdir`, `--output` or `--error`: Slurm expands `%` patterns and `\` escapes in
/// file names, so a path holding them would name another file.
fn slurm_path(p: &Path) -> Result<&str, ExecError> {
    let s = p.to_str().ok_or_else(|| ExecError::BadInput(format!("path {} is not UTF-8", p.display())))?;
    if s.contains(['%', '\\', '\n', '\r']) {
        return Err(ExecError::Config(format!("path {s:?} holds a character Slurm would expand (% or \\)")));
    }
    Ok(s)
}

/// Parses Slurm's durations (`MM:SS`, `HH:MM:SS`, `D-HH:MM:SS`).
fn parse_duration(s: &str) -> Option<Duration> {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<u64> = rest.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let secs = match parts.as_slice() {
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86_400 + secs))
}

/// `code:signal` as a shell exit code.
fn parse_exit(s: &str) -> Option<i32> {
    let (code, signal) = s.split_once(':')?;
    let (code, signal) = (code.parse::<i32>().ok()?, signal.parse::<i32>().ok()?);
    Some(if signal != 0 { 128 + signal } else { code })
}

/// The state of the one-line `scontrol -o show job` answer. The first occurrence of each key is taken: they all
/// come before `Command=`, the only field that holds a stranger's text (the app's arguments).
fn parse_scontrol(line: &str) -> Option<JobState> {
    let field = |key: &str| line.split(' ').find_map(|t| t.strip_prefix(key));
    Some(JobState {
        state: field("JobState=")?.to_owned(),
        exit_code: field("ExitCode=").and_then(parse_exit),
        run_time: field("RunTime=").and_then(parse_duration).unwrap_or_default(),
    })
}

/// The state in `sacct -n -P -X -o JobIDRaw,State,ExitCode,ElapsedRaw` output, for job `job`. `sacct` answers 0
/// with a notice when accounting is off, so only a line of that job counts.
fn parse_sacct(out: &str, job: u64) -> Option<JobState> {
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        if f.len() < 4 || f[0] != job.to_string() {
            return None;
        }
        Some(JobState {
            // `CANCELLED by 0`: the state is the first word.
            state: f[1].split(' ').next().unwrap_or_default().to_owned(),
            exit_code: parse_exit(f[2]),
            run_time: Duration::from_secs(f[3].parse().unwrap_or_default()),
        })
    })
}

/// Reads the head of a job's log (kept up to `keep` bytes) and its length, without following a link the app may
/// have put in its place.
fn read_log(root: &OutDir, name: &str, keep: usize) -> Result<CapturedLog, ExecError> {
    let mut log = CapturedLog::default();
    let Some(f) = root.open_file(Path::new(name)).map_err(io(format!("opening the job's {name}")))? else {
        return Ok(log);
    };
    let total = f.metadata().map_err(io(format!("measuring the job's {name}")))?.len();
    let mut head = Vec::new();
    f.take(keep as u64).read_to_end(&mut head).map_err(io(format!("reading the job's {name}")))?;
    log.head = head;
    log.total_bytes = total.max(log.head.len() as u64);
    Ok(log)
}

/// The size of a job's log so far (0 while absent or when it is not a regular file).
fn log_size(root: &Path, name: &str) -> u64 {
    std::fs::symlink_metadata(root.join(name)).map(|m| if m.is_file() { m.len() } else { 0 }).unwrap_or(0)
}

impl SlurmExecutor {
    /// An executor that runs only the apps of `allow`, as the worker's own user.
    pub fn new(allow: impl IntoIterator<Item = Address>, settings: SlurmSettings) -> Self {
        let tag = worker_tag(&settings.jobs_dir);
        SlurmExecutor { allow: allow.into_iter().collect(), user: None, settings, tag }
    }

    /// Runs the jobs as `user` (`sbatch --uid/--gid`: the worker must be root).
    #[must_use]
    pub fn with_user(mut self, user: AppUser) -> Self {
        self.user = Some(user);
        self
    }

    pub fn settings(&self) -> &SlurmSettings {
        &self.settings
    }

    /// The name of the job of `task_id` on the cluster.
    pub fn job_name(&self, task_id: B256) -> String {
        job_name(task_id, &self.tag)
    }

    /// Where the job of `task_id` is recorded.
    pub fn record_path(&self, task_id: B256) -> PathBuf {
        self.settings.jobs_dir.join(format!("{task_id:#x}.json"))
    }

    /// The recorded job of `task_id`, if any.
    pub fn record(&self, task_id: B256) -> Result<Option<JobRecord>, ExecError> {
        let path = self.record_path(task_id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ExecError::Config(format!("{} is corrupt: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("reading {}", path.display()))(e)),
        }
    }

    /// Writes the record durably (temporary file, fsync, rename, fsync of the folder): once this returns, a crash
    /// cannot make the worker forget the job.
    fn write_record(&self, r: &JobRecord) -> Result<(), ExecError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = &self.settings.jobs_dir;
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io(format!("protecting {}", dir.display())))?;
        let path = self.record_path(r.task_id);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(r).map_err(|e| ExecError::Config(e.to_string()))?;
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(format!("writing {}", tmp.display())))?;
        f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("writing {}", path.display())))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(format!("syncing {}", dir.display())))
    }

    /// Forgets the job of `task_id`: the next run of the task submits a new one.
    fn forget(&self, task_id: B256) {
        let _ = std::fs::remove_file(self.record_path(task_id));
    }

    /// A Slurm command with the cluster's configuration and nothing else of the worker's environment (its key is
    /// there).
    fn command(&self, program: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(program);
        c.env_clear().env("PATH", APP_PATH).stdin(std::process::Stdio::null()).kill_on_drop(true);
        if let Some(conf) = &self.settings.slurm_conf {
            c.env("SLURM_CONF", conf);
        }
        c
    }

    /// Runs a Slurm command to its end, bounded in time and output; its stdout, or its stderr as the error.
    async fn call(&self, mut cmd: tokio::process::Command, what: &str) -> Result<String, ExecError> {
        let out = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
            .await
            .map_err(|_| slurm_err(what, format!("no answer within {COMMAND_TIMEOUT:?}")))?
            .map_err(|e| slurm_err(what, format!("cannot run it: {e}")))?;
        let text = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(COMMAND_OUTPUT_BYTES)]).trim().to_owned();
        if !out.status.success() {
            return Err(slurm_err(what, format!("{}: {}", out.status, text(&out.stderr))));
        }
        Ok(text(&out.stdout))
    }

    /// Job ids named after `task_id` that the controller knows: live ones only, or in any state it still keeps.
    async fn jobs_named(&self, task_id: B256, any_state: bool) -> Result<Vec<u64>, ExecError> {
        let mut cmd = self.command("squeue");
        cmd.args(["--noheader", "--format=%i"]).arg(format!("--name={}", self.job_name(task_id)));
        if any_state {
            cmd.arg("--states=all");
        }
        let out = self.call(cmd, "squeue").await?;
        let mut ids: Vec<u64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if any_state {
            // Where accounting is on, it remembers jobs the controller has forgotten.
            let mut cmd = self.command("sacct");
            cmd.args(["--noheader", "--parsable2", "--allocations", "--format=JobIDRaw", "--starttime=now-7days"])
                .arg(format!("--name={}", self.job_name(task_id)));
            if let Ok(out) = self.call(cmd, "sacct").await {
                ids.extend(out.lines().filter_map(|l| l.trim().parse::<u64>().ok()));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The job's state: from the controller, else from accounting, else from the exit code the job left in its
    /// workspace; `None` when nothing knows the job.
    async fn state(&self, job: u64, ws: &Workspace) -> Result<Option<JobState>, ExecError> {
        let mut cmd = self.command("scontrol");
        cmd.args(["--oneliner", "show", "job", &job.to_string()]);
        match self.call(cmd, "scontrol show job").await {
            Ok(out) => {
                if let Some(s) = out.lines().find(|l| l.starts_with(&format!("JobId={job} "))).and_then(parse_scontrol)
                {
                    return Ok(Some(s));
                }
            }
            // The controller no longer holds the job (or never did); anything else is the controller failing.
            Err(ExecError::Slurm { detail, .. }) if detail.contains("Invalid job id") => {}
            Err(e) => return Err(e),
        }
        let mut cmd = self.command("sacct");
        cmd.args(["--noheader", "--parsable2", "--allocations", "--format=JobIDRaw,State,ExitCode,ElapsedRaw"])
            .arg(format!("--jobs={job}"));
        if let Ok(out) = self.call(cmd, "sacct").await
            && let Some(s) = parse_sacct(&out, job)
        {
            return Ok(Some(s));
        }
        let root = OutDir::open(&ws.root).map_err(io(format!("opening {}", ws.root.display())))?;
        let code = read_log(&root, EXIT_FILE, 32)?;
        Ok(code.text().trim().parse::<i32>().ok().map(|c| JobState {
            state: if c == 0 { "COMPLETED" } else { "FAILED" }.to_owned(),
            exit_code: Some(c),
            run_time: Duration::ZERO,
        }))
    }

    /// Cancels the job and waits (bounded) until it has left the node.
    async fn cancel(&self, job: u64) -> Result<(), ExecError> {
        let mut cmd = self.command("scancel");
        cmd.arg(job.to_string());
        self.call(cmd, "scancel").await?;
        let until = tokio::time::Instant::now() + CANCEL_WAIT;
        loop {
            let mut cmd = self.command("squeue");
            cmd.args(["--noheader", "--format=%T"]).arg(format!("--jobs={job}"));
            match self.call(cmd, "squeue").await {
                // Gone from the live states: the job is no longer pending, running or completing.
                Ok(out) if out.is_empty() => return Ok(()),
                Err(ExecError::Slurm { detail, .. }) if detail.contains("Invalid job id") => return Ok(()),
                _ if tokio::time::Instant::now() >= until => {
                    return Err(slurm_err("scancel", format!("job {job} still there {CANCEL_WAIT:?} after scancel")));
                }
                _ => tokio::time::sleep(self.settings.poll.min(Duration::from_millis(200))).await,
            }
        }
    }

    /// Submits the task's job; returns its id.
    async fn submit(&self, task: &TaskSpec, ws: &Workspace, program: &Path) -> Result<u64, ExecError> {
        use std::os::unix::fs::PermissionsExt;
        let args = split_args(&task.args)?;
        let limits = &task.limits;
        let root = slurm_path(&ws.root)?;
        let script = ws.root.join(SCRIPT_FILE);
        let _ = std::fs::remove_file(&script);
        std::fs::write(&script, WRAPPER).map_err(io(format!("writing {}", script.display())))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o555))
            .map_err(io(format!("writing {}", script.display())))?;
        // Leftovers of an earlier job of the task (one that was cancelled) must not be read as this one's.
        for f in [STDOUT_FILE, STDERR_FILE, EXIT_FILE] {
            let _ = std::fs::remove_file(ws.root.join(f));
        }
        if let Some(u) = self.user {
            // The job writes its root (its logs, its working directory) and out/; in/ stays the worker's.
            for d in [&ws.root, &ws.out_dir] {
                std::os::unix::fs::lchown(d, Some(u.uid), Some(u.gid))
                    .map_err(io(format!("giving {} to user {u}", d.display())))?;
            }
        }
        // Slurm's own limit is a second guard, a little above ours (Slurm counts in minutes).
        let minutes = limits.max_duration.as_secs().div_ceil(60) + 1;
        let mut cmd = self.command("sbatch");
        cmd.args(["--parsable", "--no-requeue", "--nodes=1", "--ntasks=1", "--export=ALL"])
            .arg(format!("--job-name={}", self.job_name(task.task_id)))
            .arg(format!("--time={minutes}"))
            .arg(format!("--chdir={root}"))
            .arg(format!("--output={}", slurm_path(&ws.root.join(STDOUT_FILE))?))
            .arg(format!("--error={}", slurm_path(&ws.root.join(STDERR_FILE))?))
            .arg(format!("--cpus-per-task={}", limits.milli_cpus.unwrap_or(1000).div_ceil(1000).max(1)));
        if let Some(p) = &self.settings.partition {
            cmd.arg(format!("--partition={p}"));
        }
        if let Some(m) = limits.memory_bytes {
            cmd.arg(format!("--mem={}M", m.div_ceil(1 << 20).max(1)));
        }
        if let Some(u) = self.user {
            cmd.arg(format!("--uid={}", u.uid)).arg(format!("--gid={}", u.gid));
        }
        // The job's environment is this command's (`--export=ALL`): set through execve, never parsed by Slurm.
        // Variables sbatch would read as options of its own are left out.
        cmd.env("HOME", &ws.root)
            .envs(
                extra_env(task)
                    .filter(|(k, _)| !k.starts_with("SBATCH_") && !k.starts_with("SLURM_"))
                    .map(|(k, v)| (k, v)),
            )
            .envs(iexec_env(task, utf8(&ws.in_dir)?, utf8(&ws.out_dir)?));
        cmd.arg(&script).arg(program).args(&args);
        let out = self.call(cmd, "sbatch").await?;
        // `--parsable`: `jobid` or `jobid;cluster`.
        out.split(';')
            .next()
            .and_then(|id| id.trim().parse().ok())
            .ok_or_else(|| slurm_err("sbatch", format!("unexpected answer {out:?}")))
    }

    /// The job of the task: the recorded one, or the one of a submission whose answer was lost, or a new one.
    async fn job_of(&self, task: &TaskSpec, ws: &Workspace, program: &Path) -> Result<(u64, u64), ExecError> {
        let id = task.task_id;
        let record = self.record(id)?;
        if let Some(JobRecord { job_id: Some(job), submitted_at, .. }) = record {
            tracing::info!(task = %id, job, "re-attaching to the task's Slurm job");
            return Ok((job, submitted_at));
        }
        // An intent without a job id: sbatch may have run. A lost record: a live job may still run. Either way the
        // cluster is asked first, so that a task never gets a second job.
        let known = self.jobs_named(id, record.is_some()).await?;
        if let Some(&job) = known.last() {
            for &other in &known[..known.len() - 1] {
                tracing::warn!(task = %id, job = other, "a second job of the task; cancelling it");
                let _ = self.cancel(other).await;
            }
            let submitted_at = record.map_or_else(now_secs, |r| r.submitted_at);
            self.write_record(&JobRecord { task_id: id, job_id: Some(job), submitted_at })?;
            tracing::info!(task = %id, job, "adopted the task's Slurm job found by name");
            return Ok((job, submitted_at));
        }
        let submitted_at = now_secs();
        self.write_record(&JobRecord { task_id: id, job_id: None, submitted_at })?;
        let job = self.submit(task, ws, program).await?;
        self.write_record(&JobRecord { task_id: id, job_id: Some(job), submitted_at })?;
        tracing::info!(task = %id, job, "submitted the task's Slurm job");
        Ok((job, submitted_at))
    }

    fn admit(&self, app: &AppRef) -> Result<PathBuf, ExecError> {
        super::process::admit_native(self.allow.contains(&app.address), self.user, app)
    }

    async fn run_task(&self, task: &TaskSpec, ws: &Workspace, mut abort: AbortSignal) -> Result<Outcome, ExecError> {
        let program = self.admit(&task.app)?;
        if let Some(shared) = &self.settings.shared_dir
            && !ws.root.starts_with(shared)
        {
            return Err(ExecError::Config(format!(
                "the workspace {} is not under the cluster's shared folder {}",
                ws.root.display(),
                shared.display()
            )));
        }
        // Refused before any record is written: a path Slurm would expand never becomes an intent.
        for p in [ws.root.clone(), ws.root.join(STDOUT_FILE), ws.root.join(STDERR_FILE)] {
            slurm_path(&p)?;
        }
        if abort.is_aborted() {
            return Err(ExecError::Aborted);
        }
        let (job, submitted_at) = self.job_of(task, ws, &program).await?;
        let limits = &task.limits;
        let mut failing_since: Option<tokio::time::Instant> = None;
        let ended = loop {
            let stop = match self.state(job, ws).await {
                Ok(Some(s)) if s.is_terminal() => break s,
                Ok(Some(s)) => {
                    failing_since = None;
                    self.bound(&s, submitted_at, limits, ws)
                }
                Ok(None) => {
                    self.forget(task.task_id);
                    return Err(ExecError::SlurmJob {
                        job,
                        state: "unknown to the cluster, with no exit code left".into(),
                    });
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    tracing::warn!(task = %task.task_id, job, error = %e, "cannot read the job's state");
                    if since.elapsed() > CONTROLLER_GRACE {
                        return Err(e);
                    }
                    None
                }
            };
            if let Some(e) = stop {
                return Err(self.stop(task.task_id, job, e).await);
            }
            tokio::select! {
                () = abort.aborted() => return Err(self.stop(task.task_id, job, ExecError::Aborted).await),
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        };
        let exit_code = match ended.state.as_str() {
            "COMPLETED" | "FAILED" => ended.exit_code.unwrap_or(-1),
            "TIMEOUT" => {
                self.forget(task.task_id);
                return Err(ExecError::Timeout { limit: limits.max_duration });
            }
            "OUT_OF_MEMORY" => 137,
            _ => {
                self.forget(task.task_id);
                return Err(ExecError::SlurmJob { job, state: ended.state });
            }
        };
        // The record stays: a worker that crashes before it keeps the result collects this job again, and never
        // runs the task twice.
        let root = OutDir::open(&ws.root).map_err(io(format!("opening {}", ws.root.display())))?;
        let stdout = read_log(&root, STDOUT_FILE, limits.max_log_bytes)?;
        let stderr = read_log(&root, STDERR_FILE, limits.max_log_bytes)?;
        let logged = stdout.total_bytes + stderr.total_bytes;
        if logged > limits.max_output_bytes {
            return Err(ExecError::OutputTooLarge {
                what: "stdout and stderr",
                size: logged,
                limit: limits.max_output_bytes,
            });
        }
        check_out_size(&ws.out_dir, limits.max_output_bytes)?;
        let computed = read_computed(&ws.out_dir)?;
        Ok(Outcome { exit_code, stdout, stderr, duration: ended.run_time, out_dir: ws.out_dir.clone(), computed })
    }

    /// Whether a live job passed one of its bounds: its time limit (by the cluster's `RunTime`, which survives
    /// a restart of the worker), its time in the queue, its output folder or its logs.
    fn bound(
        &self,
        s: &JobState,
        submitted_at: u64,
        limits: &super::spec::Limits,
        ws: &Workspace,
    ) -> Option<ExecError> {
        if s.run_time >= limits.max_duration {
            return Some(ExecError::Timeout { limit: limits.max_duration });
        }
        if s.state == "PENDING" && now_secs().saturating_sub(submitted_at) > self.settings.max_pending.as_secs() {
            return Some(slurm_err(
                "queue",
                format!("the job waited longer than {:?} to start", self.settings.max_pending),
            ));
        }
        if let Err(e) = check_out_size(&ws.out_dir, limits.max_output_bytes) {
            return Some(e);
        }
        let logged = log_size(&ws.root, STDOUT_FILE) + log_size(&ws.root, STDERR_FILE);
        (logged > limits.max_output_bytes).then_some(ExecError::OutputTooLarge {
            what: "stdout and stderr",
            size: logged,
            limit: limits.max_output_bytes,
        })
    }

    /// Cancels the job for `why`, and forgets it: the task's next run starts afresh.
    async fn stop(&self, task_id: B256, job: u64, why: ExecError) -> ExecError {
        if let Err(e) = self.cancel(job).await {
            // Kept: the next run of the task finds the job rather than submitting a second one.
            tracing::error!(task = %task_id, job, error = %e, "could not cancel the job");
            return e;
        }
        self.forget(task_id);
        why
    }
}

fn utf8(p: &Path) -> Result<&str, ExecError> {
    p.to_str().ok_or_else(|| ExecError::BadInput(format!("workspace path {} is not UTF-8", p.display())))
}

impl Executor for SlurmExecutor {
    fn kind(&self) -> &'static str {
        "slurm"
    }

    fn admits<'a>(&'a self, app: &'a AppRef) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move { self.admit(app).map(|_| ()) })
    }

    fn resumes(&self, task_id: B256) -> bool {
        matches!(self.record(task_id), Ok(Some(_)))
    }

    fn release(&self, task_id: B256) {
        self.forget(task_id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_lines_are_read_by_their_first_fields() {
        let line = "JobId=7 JobName=dragon-0x01 UserId=nobody(65534) JobState=FAILED Reason=NonZeroExitCode \
                    ExitCode=4:0 RunTime=00:01:05 TimeLimit=00:02:00 Command=/w/slurm-job.sh /app JobState=COMPLETED \
                    ExitCode=0:0";
        let s = parse_scontrol(line).expect("parsed");
        assert_eq!(s, JobState { state: "FAILED".into(), exit_code: Some(4), run_time: Duration::from_secs(65) });
        assert!(s.is_terminal());
        let killed = parse_scontrol("JobId=8 JobState=CANCELLED ExitCode=0:15 RunTime=1-00:00:01").expect("parsed");
        assert_eq!(killed.exit_code, Some(143));
        assert_eq!(killed.run_time, Duration::from_secs(86_401));
        assert!(!parse_scontrol("JobId=9 JobState=RUNNING RunTime=00:05").expect("parsed").is_terminal());
    }

    #[test]
    fn sacct_lines_count_only_for_their_job() {
        assert_eq!(parse_sacct("Slurm accounting storage is disabled", 3), None);
        let s = parse_sacct("31|FAILED|1:0|4\n3|CANCELLED by 0|0:15|12\n", 3).expect("job 3");
        assert_eq!(s.state, "CANCELLED");
        assert_eq!(s.exit_code, Some(143));
        assert_eq!(s.run_time, Duration::from_secs(12));
    }

    #[test]
    fn paths_slurm_would_expand_are_refused() {
        assert!(slurm_path(Path::new("/work/0xab/run")).is_ok());
        assert!(slurm_path(Path::new("/work/%j/run")).is_err());
        assert!(slurm_path(Path::new("/work/a\\b")).is_err());
    }

    #[test]
    fn job_names_come_from_task_ids_and_the_worker_alone() {
        assert_eq!(job_name(B256::repeat_byte(0xab), "0a0b0c0d"), format!("dragon-0x{}-0a0b0c0d", "ab".repeat(32)));
        let tag = worker_tag(Path::new("/var/lib/dragon-worker/slurm-jobs"));
        assert_eq!(tag.len(), 8);
        assert_eq!(tag, worker_tag(Path::new("/var/lib/dragon-worker/slurm-jobs")));
        assert_ne!(tag, worker_tag(Path::new("/var/lib/other-worker/slurm-jobs")));
    }
}
