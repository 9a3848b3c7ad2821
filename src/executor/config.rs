//! Which executor a worker uses ([`ExecutorConfig`]) and how it is built.

use super::app_user::AppUser;
use super::error::ExecError;
use super::spec::Executor;
use super::{docker, process, slurm};
use alloy::primitives::Address;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Which executor a worker uses, as written in its configuration (`kind = "process"`, `"docker"` or `"slurm"`).
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
    /// Each task as a Slurm batch job running an allow-listed native program (see [`slurm::SlurmExecutor`]).
    Slurm {
        /// Addresses of the native apps this pool runs (its owner's allow-list).
        allow: Vec<Address>,
        /// The user jobs run as, as for `process` (`sbatch --uid/--gid`).
        #[serde(default)]
        user: Option<AppUser>,
        /// The partition jobs go to; the cluster's default when absent.
        #[serde(default)]
        partition: Option<String>,
        /// The cluster's `slurm.conf` (`SLURM_CONF` of every Slurm command); Slurm's default when absent.
        #[serde(default)]
        slurm_conf: Option<PathBuf>,
        /// How often a job's state is asked for, in milliseconds.
        #[serde(default = "default_slurm_poll_ms")]
        poll_ms: u64,
        /// The folder the nodes share with the worker: its work dir must be inside (unchecked when absent).
        #[serde(default)]
        shared_dir: Option<PathBuf>,
    },
}

fn default_slurm_poll_ms() -> u64 {
    1000
}

impl ExecutorConfig {
    /// Builds the executor (connecting to the Docker engine for `docker`). `work_dir` is the worker's: `slurm`
    /// keeps its job records in `<work_dir>/slurm-jobs`, so that they survive a restart with the tasks' state.
    pub async fn build(&self, work_dir: &Path) -> Result<Arc<dyn Executor>, ExecError> {
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
            ExecutorConfig::Slurm { allow, user, partition, slurm_conf, poll_ms, shared_dir } => {
                let mut settings = slurm::SlurmSettings::new(work_dir.join("slurm-jobs"));
                settings.partition.clone_from(partition);
                settings.slurm_conf.clone_from(slurm_conf);
                settings.poll = Duration::from_millis((*poll_ms).max(50));
                settings.shared_dir.clone_from(shared_dir);
                let exec = slurm::SlurmExecutor::new(allow.iter().copied(), settings);
                match AppUser::for_worker(*user)? {
                    Some(u) => Arc::new(exec.with_user(u)),
                    None => Arc::new(exec),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let c: ExecutorConfig = toml::from_str(
            "kind = \"slurm\"\nallow = []\npartition = \"batch\"\nslurm_conf = \"/etc/slurm/slurm.conf\"",
        )
        .expect("slurm");
        assert_eq!(
            c,
            ExecutorConfig::Slurm {
                allow: vec![],
                user: None,
                partition: Some("batch".into()),
                slurm_conf: Some("/etc/slurm/slurm.conf".into()),
                poll_ms: 1000,
                shared_dir: None,
            }
        );
    }
}
