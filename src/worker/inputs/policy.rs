//! What the worker fetches for a task, from where, and how much ([`InputPolicy`]), as the operator sets it.

use alloy::transports::http::reqwest::Url;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`InputPolicy::max_files`].
pub const DEFAULT_MAX_FILES: usize = 20;
/// Default of [`InputPolicy::max_file_bytes`]: 1 GiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;
/// Default of [`InputPolicy::max_task_bytes`]: 2 GiB.
pub const DEFAULT_MAX_TASK_BYTES: u64 = 2 << 30;
/// Default of [`InputPolicy::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`InputPolicy::fetch_timeout`].
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of [`InputPolicy::task_timeout`].
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(600);

/// What the worker fetches for a task, from where, and how much.
#[derive(Debug, Clone)]
pub struct InputPolicy {
    /// Hosts (as written in URLs, with their port) that may be at non-public addresses: the operator's own data
    /// servers (`--allow-input-host`).
    pub allow_hosts: Vec<AllowedHost>,
    /// The folder local dataset paths must be in (`--dataset-root`); none: local datasets are refused.
    pub dataset_root: Option<PathBuf>,
    /// Input files per task (`--max-input-files`).
    pub max_files: usize,
    /// Bytes of one input file or dataset (`--max-input-file-mib`).
    pub max_file_bytes: u64,
    /// Bytes of all the inputs of a task, dataset included (`--max-task-input-mib`).
    pub max_task_bytes: u64,
    /// Time to connect to a host, and to resolve its name (`--input-connect-timeout-secs`).
    pub connect_timeout: Duration,
    /// Time for one fetch, redirects and body included (`--input-fetch-timeout-secs`).
    pub fetch_timeout: Duration,
    /// Time for all the fetches of a task (`--input-task-timeout-secs`).
    pub task_timeout: Duration,
}

impl Default for InputPolicy {
    fn default() -> Self {
        InputPolicy {
            allow_hosts: Vec::new(),
            dataset_root: None,
            max_files: DEFAULT_MAX_FILES,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_task_bytes: DEFAULT_MAX_TASK_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            task_timeout: DEFAULT_TASK_TIMEOUT,
        }
    }
}

/// A `HOST:PORT` the operator trusts: matched against a URL's host as written (name or address) and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: String,
    port: u16,
}

impl std::str::FromStr for AllowedHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not HOST:PORT (a name or address, [..] around IPv6, and a port)");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        // Normalised as URLs are (lower case, IPv6 compressed), so that it compares with a URL's host.
        let url = Url::parse(&format!("http://{host}/")).map_err(|_| bad())?;
        let host = url.host_str().filter(|h| !h.is_empty() && url.username().is_empty()).ok_or_else(bad)?;
        Ok(AllowedHost { host: host.to_owned(), port })
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl InputPolicy {
    pub(super) fn trusts(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return false };
        self.allow_hosts.iter().any(|a| a.host == host && a.port == port)
    }
}
