//! A task's folder, `<work-dir>/<taskid>/`: `state.json` (the digest and how far the task went), `result.zip`,
//! and `run/` where the app runs. Each file is written before the step it enables, so that after a restart the
//! worker goes on from what the chain and this folder say, never computing or contributing twice.

use super::config::WorkerConfig;
use super::error::{WorkerError, io_err};
use crate::executor::{AppUser, ExecutorConfig};
use alloy::primitives::{B256, Bytes};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the worker keeps of a task in `<work-dir>/<taskid>/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LocalState {
    pub(super) digest: Option<B256>,
    pub(super) callback: Option<Bytes>,
    pub(super) uploaded: bool,
}

/// Creates the work dir, private to the worker but searchable: an app running as another user reaches its own
/// workspace (`<taskid>/run`, whose path it is told) and lists nothing else; the cache is the worker's alone.
pub(super) fn prepare_work_dir(config: &WorkerConfig) -> Result<(), WorkerError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &config.work_dir;
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).map_err(io_err("protecting", dir))?;
    if let ExecutorConfig::Process { user, .. } | ExecutorConfig::Slurm { user, .. } = &config.executor
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

/// Where task `taskid` runs: the pool relies on this layout (`<taskid>/run/out` is the output folder) to read an
/// output path a native app declared by its absolute host path.
pub fn run_dir(work_dir: &Path, taskid: B256) -> PathBuf {
    work_dir.join(format!("{taskid:#x}")).join("run")
}

pub(super) fn read_state(dir: &Path) -> Result<LocalState, WorkerError> {
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
pub(super) fn write_state(dir: &Path, s: &LocalState) -> Result<(), WorkerError> {
    let path = dir.join("state.json");
    let tmp = dir.join("state.json.tmp");
    let bytes = serde_json::to_vec_pretty(s).map_err(|e| WorkerError::Task(e.to_string()))?;
    write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &path).map_err(io_err("writing", &path))
}

/// Writes a new file readable by the worker alone.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), WorkerError> {
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
