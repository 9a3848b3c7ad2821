//! Which executor a worker uses ([`ExecutorConfig`]) and how it is built.

use super::app_user::AppUser;
use super::error::ExecError;
use super::spec::Executor;
use super::{docker, process};
use alloy::primitives::Address;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;

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
}
