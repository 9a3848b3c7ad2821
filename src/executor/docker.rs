//! The `docker` executor: the app's image, run through the Docker Engine API (bollard).
//!
//! Each task gets a fresh container: the task's `in/` bound read-only on `/iexec_in`, its `out/` on
//! `/iexec_out` (the only writable bind), a read-only root file system with a bounded tmpfs on `/tmp` as scratch
//! space, no network unless the pool names one, the task's memory (without swap) and CPU limits (the worker gives
//! each of its slots its share of what it registered with the pool), a bound on processes, `no-new-privileges`,
//! and the `IEXEC_*` environment with the container's paths. The container is
//! killed on timeout, abort or output flood, and it is removed afterwards in every case: explicitly at the end of
//! the run, or from `Drop` when the run's future is dropped half-way. Containers carry the label
//! [`TASK_LABEL`] and [`OWNER_LABEL`], so that [`DockerExecutor::remove_leftovers`] can clear those of a worker
//! that crashed without touching those of another worker on the same engine.
//!
//! Images are not pulled: the engine must hold the app's image (pulled or imported by the operator, see
//! [`DockerExecutor::import_rootfs`]); a missing one is [`ExecError::ImageMissing`].

use super::abort::AbortSignal;
use super::contract::{extra_env, iexec_env, split_args};
use super::error::ExecError;
use super::output::{OUT_CHECK_EVERY, check_out_size, read_computed};
use super::spec::{AppRef, BoxFuture, CapturedLog, Executor, Outcome, TaskSpec, Workspace};
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Docker's usual socket.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The label (value: the task id) on every container this executor creates.
pub const TASK_LABEL: &str = "dragon.task";

/// The label (value: the executor's owner, see [`DockerExecutor::with_owner`]) on every container it creates.
pub const OWNER_LABEL: &str = "dragon.owner";

/// Timeout of one Engine API request, in seconds (runs themselves are bounded by the task's limit).
const API_TIMEOUT_SECS: u64 = 120;

/// Bound on the processes of one container (fork bombs).
const PIDS_LIMIT: i64 = 1024;

/// How long logs are still read after the container stopped.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Runs apps as containers on one Docker engine.
#[derive(Debug, Clone)]
pub struct DockerExecutor {
    docker: Docker,
    network: Option<String>,
    owner: String,
}

fn docker_err(context: impl Into<String>) -> impl FnOnce(BollardError) -> ExecError {
    let context = context.into();
    move |source| ExecError::Docker { context, source }
}

impl DockerExecutor {
    /// Connects to the engine at `host` (`unix:///path/docker.sock`), agreeing on the API version with it (Debian's
    /// Docker 20.10 speaks 1.41, older than bollard's default).
    pub async fn connect(host: &str) -> Result<Self, ExecError> {
        let docker = Docker::connect_with_unix(host, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(docker_err(format!("connecting to {host}")))?
            .negotiate_version()
            .await
            .map_err(docker_err(format!("connecting to {host}")))?;
        docker.ping().await.map_err(docker_err(format!("pinging {host}")))?;
        Ok(DockerExecutor { docker, network: None, owner: "dragon".to_owned() })
    }

    /// Attaches containers to the Docker network `network` instead of none.
    #[must_use]
    pub fn with_network(mut self, network: &str) -> Self {
        self.network = Some(network.to_owned());
        self
    }

    /// Names the owner of the containers (a worker's address, say), so that workers sharing one engine only ever
    /// clear their own leftovers; `"dragon"` by default.
    #[must_use]
    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = owner.to_owned();
        self
    }

    /// Sets the timeout of one Engine API request (120 s by default). It bounds the wait for a response's
    /// headers only; the streams a run follows (wait, attach) last as long as the task.
    #[must_use]
    pub fn with_api_timeout(mut self, timeout: Duration) -> Self {
        self.docker = self.docker.with_timeout(timeout);
        self
    }

    /// The engine client (for inspection by tests and tools).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Creates image `name` (`repo:tag`) from a tar of a root file system, as `docker import` does (no registry
    /// needed), applying Dockerfile `changes` such as `ENTRYPOINT ["/app"]`.
    pub async fn import_rootfs(&self, rootfs_tar: Vec<u8>, name: &str, changes: &[&str]) -> Result<(), ExecError> {
        let (repo, tag) = match name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (name, "latest"),
        };
        let opts = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(repo)
            .tag(tag)
            .changes(changes.iter().map(|c| (*c).to_owned()).collect())
            .build();
        let mut progress = self.docker.create_image(Some(opts), Some(bollard::body_full(rootfs_tar.into())), None);
        while let Some(step) = progress.next().await {
            step.map_err(docker_err(format!("importing {name}")))?;
        }
        Ok(())
    }

    /// Removes the containers of this executor's owner (a worker killed mid-task left them); returns how many. To
    /// call when the worker starts, before it runs anything.
    pub async fn remove_leftovers(&self) -> Result<usize, ExecError> {
        let owner = format!("{OWNER_LABEL}={}", self.owner);
        let filters = HashMap::from([("label", vec![TASK_LABEL, owner.as_str()])]);
        let opts = ListContainersOptionsBuilder::new().all(true).filters(&filters).build();
        let list = self.docker.list_containers(Some(opts)).await.map_err(docker_err("listing containers"))?;
        let mut removed = 0;
        for c in list {
            if let Some(id) = c.id {
                self.docker.remove_container(&id, Some(force_remove())).await.map_err(docker_err("removing"))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn force_remove() -> bollard::query_parameters::RemoveContainerOptions {
    RemoveContainerOptionsBuilder::new().force(true).v(true).build()
}

impl Executor for DockerExecutor {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn admits<'a>(&'a self, app: &'a AppRef) -> BoxFuture<'a, Result<(), ExecError>> {
        Box::pin(async move { self.image_present(&app.multiaddr).await.map(|_| ()) })
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

/// The image named by an app's multiaddr (an optional `docker://` scheme dropped; Docker normalises the rest:
/// `name:tag`, `docker.io/name:tag`, `name@sha256:…`).
fn image_of(multiaddr: &str) -> Result<String, ExecError> {
    let image = multiaddr.trim().trim_start_matches("docker://");
    if image.is_empty() || image.contains(char::is_whitespace) || image.contains("://") {
        return Err(ExecError::BadApp {
            multiaddr: multiaddr.to_owned(),
            reason: "not a Docker image reference".to_owned(),
        });
    }
    Ok(image.to_owned())
}

fn abs_utf8(p: &Path) -> Result<String, ExecError> {
    let abs =
        p.canonicalize().map_err(|source| ExecError::Io { context: format!("resolving {}", p.display()), source })?;
    abs.into_os_string()
        .into_string()
        .map_err(|p| ExecError::BadInput(format!("workspace path {} is not UTF-8", p.display())))
}

/// Removes its container when dropped before [`ContainerGuard::remove`] ran.
struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    async fn remove(mut self) -> Result<(), ExecError> {
        match self.id.take() {
            Some(id) => self
                .docker
                .remove_container(&id, Some(force_remove()))
                .await
                .map_err(docker_err(format!("removing container {id}"))),
            None => Ok(()),
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let docker = self.docker.clone();
            rt.spawn(async move {
                if let Err(e) = docker.remove_container(&id, Some(force_remove())).await {
                    tracing::warn!(container = %id, error = %e, "could not remove an abandoned task container");
                }
            });
        }
    }
}

impl DockerExecutor {
    /// The image of an app's multiaddr, if the engine holds it.
    async fn image_present(&self, multiaddr: &str) -> Result<String, ExecError> {
        let image = image_of(multiaddr)?;
        match self.docker.inspect_image(&image).await {
            Ok(_) => Ok(image),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => {
                Err(ExecError::ImageMissing { image })
            }
            Err(e) => Err(docker_err(format!("inspecting image {image}"))(e)),
        }
    }

    async fn run_task(&self, task: &TaskSpec, ws: &Workspace, abort: AbortSignal) -> Result<Outcome, ExecError> {
        let image = self.image_present(&task.app.multiaddr).await?;
        let args = split_args(&task.args)?;
        let limits = &task.limits;
        let env = extra_env(task)
            .cloned()
            .chain(iexec_env(task, "/iexec_in", "/iexec_out"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let memory = limits.memory_bytes.map(|m| i64::try_from(m).unwrap_or(i64::MAX));
        let host_config = HostConfig {
            binds: Some(vec![
                format!("{}:/iexec_in:ro", abs_utf8(&ws.in_dir)?),
                format!("{}:/iexec_out:rw", abs_utf8(&ws.out_dir)?),
            ]),
            network_mode: Some(self.network.clone().unwrap_or_else(|| "none".to_owned())),
            memory,
            // Equal to the memory limit: no swap on top of it.
            memory_swap: memory,
            nano_cpus: limits.milli_cpus.map(|m| i64::from(m) * 1_000_000),
            pids_limit: Some(PIDS_LIMIT),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            // Nothing of the image can be changed, and no write escapes the bounds: the app writes its result to
            // /iexec_out (measured) and its scratch files to /tmp, a tmpfs of bounded size (charged to the
            // container's memory too).
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!("rw,nosuid,nodev,size={}", limits.scratch_bytes.max(4096)),
            )])),
            // The output is read from the attached streams; a log file on the engine's disk would only be a way
            // for an app to fill that disk.
            log_config: Some(HostConfigLogConfig { typ: Some("none".to_owned()), config: None }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            cmd: (!args.is_empty()).then_some(args),
            env: Some(env),
            labels: Some(HashMap::from([
                (TASK_LABEL.to_owned(), task.task_id.to_string()),
                (OWNER_LABEL.to_owned(), self.owner.clone()),
            ])),
            network_disabled: Some(self.network.is_none()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(host_config),
            ..Default::default()
        };
        if abort.is_aborted() {
            return Err(ExecError::Aborted);
        }
        let created = self
            .docker
            .create_container(None::<bollard::query_parameters::CreateContainerOptions>, body)
            .await
            .map_err(docker_err(format!("creating a container of {image}")))?;
        let guard = ContainerGuard { docker: self.docker.clone(), id: Some(created.id.clone()) };
        let res = self.drive(&created.id, task, ws, abort).await;
        let removed = guard.remove().await;
        let outcome = res?;
        removed?;
        Ok(outcome)
    }

    /// Starts the container and follows it to its end; the caller removes it.
    async fn drive(
        &self,
        id: &str,
        task: &TaskSpec,
        ws: &Workspace,
        mut abort: AbortSignal,
    ) -> Result<Outcome, ExecError> {
        let limits = &task.limits;
        let keep = limits.max_log_bytes;
        // Attached before the start, so nothing is missed; read live, so that a flood is caught as it happens.
        let attach = AttachContainerOptionsBuilder::new().stream(true).stdout(true).stderr(true).build();
        let mut logs = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(docker_err("attaching to the container"))?
            .output;
        self.docker.start_container(id, None).await.map_err(docker_err("starting the container"))?;
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + limits.max_duration);
        let mut wait = self.docker.wait_container(id, None);
        let (mut out, mut err) = (CapturedLog::default(), CapturedLog::default());
        let mut logs_open = true;
        let mut check = tokio::time::interval(OUT_CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let push = |item: Option<Result<LogOutput, BollardError>>, out: &mut CapturedLog, err: &mut CapturedLog| {
            match item {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => out.push(&message, keep),
                Some(Ok(LogOutput::StdErr { message })) => err.push(&message, keep),
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(_)) | None => return false,
            }
            true
        };

        let ended: Result<i64, ExecError> = loop {
            tokio::select! {
                w = wait.next() => break match w {
                    Some(Ok(r)) => Ok(r.status_code),
                    // bollard reports a non-zero exit as an error carrying the code.
                    Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
                    Some(Err(e)) => Err(docker_err("waiting for the container")(e)),
                    None => Err(ExecError::Io {
                        context: "the engine closed the wait stream".to_owned(),
                        source: std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    }),
                },
                item = logs.next(), if logs_open => logs_open = push(item, &mut out, &mut err),
                () = tokio::time::sleep_until(deadline) => break Err(ExecError::Timeout { limit: limits.max_duration }),
                () = abort.aborted() => break Err(ExecError::Aborted),
                _ = check.tick() => {
                    if let Err(e) = check_out_size(&ws.out_dir, limits.max_output_bytes) {
                        break Err(e);
                    }
                }
            }
            let logged = out.total_bytes + err.total_bytes;
            if logged > limits.max_output_bytes {
                break Err(ExecError::OutputTooLarge {
                    what: "stdout and stderr",
                    size: logged,
                    limit: limits.max_output_bytes,
                });
            }
        };
        let duration = started.elapsed();
        let code = match ended {
            Ok(code) => code,
            Err(e) => {
                // Hang up first: an app blocked writing to an attached stream nobody reads would hold the engine's
                // kill and removal until the API timeout.
                drop(logs);
                let kill = KillContainerOptionsBuilder::new().signal("KILL").build();
                // Removal (force) follows anyway; the kill makes the stop immediate.
                let _ = self.docker.kill_container(id, Some(kill)).await;
                return Err(e);
            }
        };
        let drain = async {
            while logs_open {
                logs_open = push(logs.next().await, &mut out, &mut err);
            }
        };
        let _ = tokio::time::timeout(DRAIN_GRACE, drain).await;
        check_out_size(&ws.out_dir, limits.max_output_bytes)?;
        let computed = read_computed(&ws.out_dir)?;
        Ok(Outcome {
            exit_code: i32::try_from(code).unwrap_or(-1),
            stdout: out,
            stderr: err,
            duration,
            out_dir: ws.out_dir.clone(),
            computed,
        })
    }
}
