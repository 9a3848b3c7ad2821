//! What a task reads besides its arguments: the deal's dataset and the request's input files
//! (`iexec_input_files` in the params), fetched into the worker's cache, which the executor's workspace
//! hard-links from.
//!
//! Both are named by strangers (a requester writes the params, a dataset owner its multiaddr), and the worker
//! fetches them from inside the pool operator's network, with the worker's rights. So the rules are strict:
//!
//! - **Input files** come over `http(s)` only. Local paths and `file://` URLs are refused: a requester could
//!   otherwise name `/proc/self/environ` (the worker's key) and have the app copy it into a public result.
//! - **Every address** a fetch connects to is checked *after* DNS resolution and the connection is pinned to the
//!   checked addresses (no second lookup that a rebinding DNS server could answer differently); redirects are
//!   followed by hand, at most [`MAX_REDIRECTS`], each hop checked the same way. Only public unicast addresses
//!   pass ([`super::address::is_public`]), unless the URL's `host:port` is one the operator trusts
//!   (`--allow-input-host`). A trusted host's redirect to an untrusted private address is refused all the same.
//! - **A dataset** comes over `http(s)` under the same rules, or from a local path *inside the dataset root the
//!   operator configured* (`--dataset-root`; symbolic links resolved before the check); without a root, local
//!   paths are refused. It is checked against its on-chain checksum (`m_datasetChecksum`, the SHA-256 of the
//!   file, as iExec's tools compute it) before any app sees it; a mismatch fails the task, names the expected
//!   checksum only (the actual digest of a file is not published), and nothing is cached. The cache is keyed by
//!   that checksum, so a verified file is fetched once for every deal that uses it.
//! - **Bounds** ([`InputPolicy`]): the number of input files, the bytes of each file and of all the inputs of a
//!   task, the time of each fetch (connect, and the whole transfer) and of all the fetches of a task. Everything
//!   is checked before the first byte is fetched where it can be (count, schemes, paths, a declared length).
//!
//! An input file has no checksum on chain (as in iExec), so it is cached per URL *within one deal*: the tasks of
//! a deal see the same bytes, and a later deal fetches again. Each fetch lands in a temporary file renamed into
//! place, so a crash never leaves a partial file where a complete one is expected. The cache folder is the
//! worker's alone (mode 0700): an app reaches only the links of its own task.

use super::address::is_public;
use crate::executor::{DatasetFile, InputFile};
use alloy::primitives::{Address, B256};
use alloy::transports::http::reqwest::{self, Url, header::LOCATION, redirect};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// Redirects followed per fetch.
pub const MAX_REDIRECTS: usize = 5;

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
    fn trusts(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else { return false };
        self.allow_hosts.iter().any(|a| a.host == host && a.port == port)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not fetched: the worker's rules refuse it.
    #[error("{what} {url}: {reason}")]
    Refused { what: &'static str, url: String, reason: String },
    /// The fetch was tried and failed.
    #[error("{what} {url}: {reason}")]
    Fetch { what: &'static str, url: String, reason: String },
    #[error("dataset {dataset:#x}: its file {url} does not match the checksum registered on chain ({expected:#x})")]
    Checksum { dataset: Address, url: String, expected: B256 },
    #[error("the request names {count} input files; this worker takes at most {max}")]
    TooManyFiles { count: usize, max: usize },
    #[error("the task's inputs are larger than this worker's limit of {max} bytes per task")]
    TaskTooLarge { max: u64 },
    #[error("fetching the task's inputs took longer than this worker's limit of {0:?} per task")]
    TaskTimeout(Duration),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The deal's dataset, as registered on chain.
#[derive(Debug, Clone)]
pub struct DatasetRef {
    pub address: Address,
    pub multiaddr: String,
    pub checksum: B256,
}

/// Fetches and caches inputs under one folder of the worker.
#[derive(Debug, Clone)]
pub struct Inputs {
    cache: PathBuf,
    policy: InputPolicy,
    /// The dataset root, symbolic links resolved.
    dataset_root: Option<PathBuf>,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InputError {
    let context = context.into();
    move |source| InputError::Io { context, source }
}

/// A URL's host: an address written as such, or a name to resolve. (The URL parser has already turned every
/// IPv4 spelling, `2130706433` or `0x7f.1`, into its dotted form.)
enum UrlHost<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

fn url_host(url: &Url) -> Option<UrlHost<'_>> {
    let host = url.host_str().filter(|h| !h.is_empty())?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse().ok().map(UrlHost::Ip);
    }
    Some(match host.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => UrlHost::Ip(v4.into()),
        Err(_) => UrlHost::Name(host),
    })
}

/// Where a multiaddr points.
enum Source {
    Local(PathBuf),
    Http(Url),
}

/// The name an app sees for an input file: the last segment of its URL's path (iExec's rule).
pub fn input_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_owned())
}

/// The input file URLs of a request's params (`{"iexec_input_files": [...]}`); none when params are not JSON.
pub fn input_urls(params: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(params)
        .ok()
        .and_then(|v| v.get("iexec_input_files").and_then(|f| f.as_array()).cloned())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect()
}

/// A transfer error with its causes ("error sending request: … connection refused"), without the URL (the
/// caller says it), and a timeout said as the worker's limit.
fn describe(e: reqwest::Error, limit: Duration) -> String {
    if e.is_timeout() {
        return format!("took longer than this worker's limit of {limit:?} per fetch");
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// How many bytes a task's inputs may still take.
#[derive(Debug)]
struct Budget {
    left: u64,
    max: u64,
}

impl Budget {
    fn take(&mut self, n: u64) -> Result<(), InputError> {
        self.left = self.left.checked_sub(n).ok_or(InputError::TaskTooLarge { max: self.max })?;
        Ok(())
    }
}

/// Creates `dir` (and its parents) readable by the worker alone.
fn private_dir(dir: &Path) -> Result<(), InputError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("protecting {}", dir.display())))
}

impl Inputs {
    pub fn new(cache: PathBuf, policy: InputPolicy) -> Result<Self, InputError> {
        private_dir(&cache)?;
        let dataset_root = match &policy.dataset_root {
            Some(r) => Some(r.canonicalize().map_err(io(format!("the dataset root {}", r.display())))?),
            None => None,
        };
        Ok(Inputs { cache, policy, dataset_root })
    }

    pub fn policy(&self) -> &InputPolicy {
        &self.policy
    }

    /// What a multiaddr names, if the rules let it be fetched at all (before any lookup or read).
    fn source(&self, what: &'static str, url: &str, local_ok: bool) -> Result<Source, InputError> {
        let refuse = |reason: &str| InputError::Refused { what, url: url.to_owned(), reason: reason.to_owned() };
        if url.starts_with("/ipfs/") || url.starts_with("ipfs://") {
            return Err(refuse("IPFS is not reachable from this worker: give an http(s) URL"));
        }
        let path = match Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(refuse("the URL has no host"));
                }
                return Ok(Source::Http(u));
            }
            Ok(u) if u.scheme() == "file" && local_ok => {
                u.to_file_path().map_err(|()| refuse("a file:// URL must name a local absolute path"))?
            }
            Ok(_) if local_ok => return Err(refuse("not an http(s) URL or a local path")),
            Ok(_) => return Err(refuse("only http(s) URLs are fetched for input files")),
            Err(_) if !local_ok => return Err(refuse("only http(s) URLs are fetched for input files")),
            Err(_) => PathBuf::from(url),
        };
        if !path.is_absolute() {
            return Err(refuse("not an http(s) URL or an absolute path"));
        }
        let Some(root) = &self.dataset_root else {
            return Err(refuse("local paths are refused: this worker has no dataset root (--dataset-root)"));
        };
        // Judged on the path as written first, so that a refusal says nothing about what exists outside the root
        // (the error is public); symbolic links are resolved and judged again when the file is read.
        let given = self.policy.dataset_root.as_deref().unwrap_or(root);
        let inside =
            path.components().all(|c| c != Component::ParentDir) && (path.starts_with(root) || path.starts_with(given));
        if !inside {
            return Err(refuse("outside this worker's dataset root"));
        }
        Ok(Source::Local(path))
    }

    /// Checks what a task names before anything is fetched: the number of input files, their names, and each
    /// source against the rules that need no lookup.
    pub fn check(&self, dataset: Option<&DatasetRef>, urls: &[String]) -> Result<(), InputError> {
        if urls.len() > self.policy.max_files {
            return Err(InputError::TooManyFiles { count: urls.len(), max: self.policy.max_files });
        }
        for url in urls {
            self.source("input file", url, false)?;
            if input_name(url).is_none() {
                return Err(InputError::Refused {
                    what: "input file",
                    url: url.clone(),
                    reason: "its URL has no file name".into(),
                });
            }
        }
        if let Some(d) = dataset {
            self.source("dataset", &d.multiaddr, true)?;
        }
        Ok(())
    }

    /// A task's dataset and input files, all checked first ([`Inputs::check`]), then fetched (or found in the
    /// cache) within the task's bounds of bytes and time.
    pub async fn for_task(
        &self,
        deal: B256,
        dataset: Option<&DatasetRef>,
        urls: &[String],
    ) -> Result<(Option<DatasetFile>, Vec<InputFile>), InputError> {
        self.check(dataset, urls)?;
        let mut budget = Budget { left: self.policy.max_task_bytes, max: self.policy.max_task_bytes };
        let all = async {
            let d = match dataset {
                Some(d) => Some(self.dataset(d, &mut budget).await?),
                None => None,
            };
            let files = self.files(deal, urls, &mut budget).await?;
            Ok((d, files))
        };
        tokio::time::timeout(self.policy.task_timeout, all)
            .await
            .map_err(|_| InputError::TaskTimeout(self.policy.task_timeout))?
    }

    /// The dataset's file, fetched once per checksum and verified against it.
    async fn dataset(&self, d: &DatasetRef, budget: &mut Budget) -> Result<DatasetFile, InputError> {
        let dir = self.cache.join("datasets");
        let path = dir.join(format!("{:x}", d.checksum));
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => budget.take(m.len())?,
            _ => {
                let source = self.source("dataset", &d.multiaddr, true)?;
                let (tmp, actual, _) = self.fetch("dataset", &d.multiaddr, source, budget).await?;
                if actual != d.checksum {
                    let _ = std::fs::remove_file(&tmp);
                    // The actual digest is not said: for a local path it would publish the hash of a file.
                    return Err(InputError::Checksum {
                        dataset: d.address,
                        url: d.multiaddr.clone(),
                        expected: d.checksum,
                    });
                }
                std::fs::rename(&tmp, &path).map_err(io(format!("caching {}", path.display())))?;
            }
        }
        // iExec names the dataset file after the dataset's address.
        Ok(DatasetFile { address: d.address, name: format!("{:#x}", d.address), path })
    }

    /// The deal's input files, each fetched once per deal.
    async fn files(&self, deal: B256, urls: &[String], budget: &mut Budget) -> Result<Vec<InputFile>, InputError> {
        let mut out = Vec::with_capacity(urls.len());
        for url in urls {
            let name = input_name(url).ok_or_else(|| InputError::Refused {
                what: "input file",
                url: url.clone(),
                reason: "its URL has no file name".into(),
            })?;
            let key = alloy::primitives::keccak256(url.as_bytes());
            let dir = self.cache.join("inputs").join(format!("{deal:x}"));
            let path = dir.join(format!("{key:x}"));
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => budget.take(m.len())?,
                _ => {
                    let source = self.source("input file", url, false)?;
                    let (tmp, _, _) = self.fetch("input file", url, source, budget).await?;
                    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
                    std::fs::rename(&tmp, &path).map_err(io(format!("caching {}", path.display())))?;
                }
            }
            out.push(InputFile { name, path });
        }
        Ok(out)
    }

    /// Drops a finished deal's input files (datasets stay: they are shared by checksum).
    pub fn forget_deal(&self, deal: B256) {
        let _ = std::fs::remove_dir_all(self.cache.join("inputs").join(format!("{deal:x}")));
    }

    /// Copies `source` into a temporary file of the cache, within the per-file bound and the task's budget;
    /// returns it, its SHA-256 and its size.
    async fn fetch(
        &self,
        what: &'static str,
        url: &str,
        source: Source,
        budget: &mut Budget,
    ) -> Result<(PathBuf, B256, u64), InputError> {
        let fail = |reason: String| InputError::Fetch { what, url: url.to_owned(), reason };
        let dir = self.cache.join("datasets");
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let tmp = dir
            .join(format!(".fetch-{}", alloy::primitives::keccak256(format!("{url}{:?}", std::time::Instant::now()))));
        let mut file = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let mut hash = Sha256::new();
        let mut total = 0u64;
        let max_file = self.policy.max_file_bytes;
        let too_large = || fail(format!("larger than this worker's limit of {max_file} bytes per file"));
        let mut put = |chunk: &[u8], total: &mut u64, budget: &mut Budget| -> Result<(), InputError> {
            *total += chunk.len() as u64;
            if *total > max_file {
                return Err(too_large());
            }
            budget.take(chunk.len() as u64)?;
            hash.update(chunk);
            file.write_all(chunk).map_err(io(format!("writing {}", tmp.display())))
        };
        let res = async {
            match source {
                Source::Local(p) => {
                    let mut f = self.open_local(what, url, &p)?;
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| fail(e.to_string()))?;
                        if n == 0 {
                            break;
                        }
                        put(&buf[..n], &mut total, budget)?;
                    }
                }
                Source::Http(u) => {
                    let deadline = Instant::now() + self.policy.fetch_timeout;
                    let body = async {
                        let mut resp = self.get(what, url, u, deadline).await?;
                        if resp.content_length().is_some_and(|n| n > max_file) {
                            return Err(too_large());
                        }
                        if resp.content_length().is_some_and(|n| n > budget.left) {
                            return Err(InputError::TaskTooLarge { max: budget.max });
                        }
                        let limit = self.policy.fetch_timeout;
                        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(describe(e, limit)))? {
                            put(&chunk, &mut total, budget)?;
                        }
                        Ok(())
                    };
                    let limit = self.policy.fetch_timeout;
                    tokio::time::timeout_at(deadline, body)
                        .await
                        .map_err(|_| fail(format!("took longer than this worker's limit of {limit:?} per fetch")))??;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        file.sync_all().map_err(io(format!("writing {}", tmp.display())))?;
        Ok((tmp, B256::from_slice(&hash.finalize()), total))
    }

    /// Opens a local dataset file once its real path (symbolic links resolved) is known to be in the root.
    fn open_local(&self, what: &'static str, url: &str, p: &Path) -> Result<std::fs::File, InputError> {
        let refuse = |reason: &str| InputError::Refused { what, url: url.to_owned(), reason: reason.to_owned() };
        let root = self.dataset_root.as_deref().ok_or_else(|| refuse("this worker has no dataset root"))?;
        let real = p.canonicalize().map_err(|_| refuse("no readable file there in this worker's dataset root"))?;
        if !real.starts_with(root) {
            return Err(refuse("outside this worker's dataset root"));
        }
        let f =
            std::fs::File::open(&real).map_err(|_| refuse("no readable file there in this worker's dataset root"))?;
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            return Err(refuse("not a regular file"));
        }
        Ok(f)
    }

    /// The addresses `url` may be fetched from: its literal address, or what its name resolves to; all of them
    /// public, unless the operator trusts its `host:port`.
    async fn vet(&self, what: &'static str, original: &str, url: &Url) -> Result<Vec<SocketAddr>, InputError> {
        let hop = if url.as_str() == original { String::new() } else { format!("redirected to {url}: ") };
        let refuse =
            |reason: String| InputError::Refused { what, url: original.to_owned(), reason: hop.clone() + &reason };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("only http(s) URLs are fetched".into()));
        }
        let port = url.port_or_known_default().ok_or_else(|| refuse("no port".into()))?;
        let trusted = self.policy.trusts(url);
        let (addrs, name) = match url_host(url) {
            Some(UrlHost::Ip(ip)) => (vec![SocketAddr::new(ip, port)], None),
            Some(UrlHost::Name(name)) => {
                let found =
                    tokio::time::timeout(self.policy.connect_timeout, tokio::net::lookup_host((name, port))).await;
                // One answer for "no such name" and "a private name": a public error must not map the operator's
                // internal DNS.
                let addrs: Vec<SocketAddr> = match found {
                    Ok(Ok(a)) => a.collect(),
                    _ => Vec::new(),
                };
                (addrs, Some(name))
            }
            None => return Err(refuse("the URL has no host".into())),
        };
        if trusted && !addrs.is_empty() {
            return Ok(addrs);
        }
        match name {
            Some(name) if addrs.is_empty() || addrs.iter().any(|a| !is_public(a.ip())) => {
                Err(refuse(format!("{name} does not resolve to public addresses only: not fetched")))
            }
            None if !is_public(addrs[0].ip()) => Err(refuse(format!(
                "{} is not a public address (loopback, private, link-local or reserved): not fetched",
                addrs[0].ip()
            ))),
            _ => Ok(addrs),
        }
    }

    /// GETs `url`, following redirects by hand: each hop is vetted and its connection pinned to the vetted
    /// addresses.
    async fn get(
        &self,
        what: &'static str,
        original: &str,
        mut url: Url,
        deadline: Instant,
    ) -> Result<reqwest::Response, InputError> {
        let fail = |reason: String| InputError::Fetch { what, url: original.to_owned(), reason };
        for _ in 0..=MAX_REDIRECTS {
            let addrs = self.vet(what, original, &url).await?;
            let left = deadline.saturating_duration_since(Instant::now());
            let mut builder = reqwest::Client::builder()
                .no_proxy()
                .redirect(redirect::Policy::none())
                .connect_timeout(self.policy.connect_timeout)
                .timeout(left);
            if let Some(UrlHost::Name(name)) = url_host(&url) {
                builder = builder.resolve_to_addrs(name, &addrs);
            }
            let limit = self.policy.fetch_timeout;
            let client = builder.build().map_err(|e| fail(describe(e, limit)))?;
            let resp = client.get(url.clone()).send().await.map_err(|e| fail(describe(e, limit)))?;
            let status = resp.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                let next = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| fail(format!("HTTP {status} without a usable Location")))?;
                url = next;
                continue;
            }
            if !status.is_success() {
                return Err(fail(format!("HTTP {status}")));
            }
            return Ok(resp);
        }
        Err(fail(format!("more than {MAX_REDIRECTS} redirects")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sha(b: &[u8]) -> B256 {
        B256::from_slice(&Sha256::digest(b))
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dragon-inputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    /// An HTTP server on loopback answering every request with `head` + `body`, counting requests; returns its
    /// `host:port`.
    fn serve_raw(head: String, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
        serve_with(move |_| (head.clone(), body.clone()))
    }

    /// The same, the answer made from the server's own `host:port`.
    fn serve_with(answer: impl Fn(&str) -> (String, Vec<u8>) + Send + 'static) -> (String, Arc<AtomicUsize>) {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let (head, body) = answer(&addr.to_string());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                h.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        (addr.to_string(), hits)
    }

    fn serve(body: &'static [u8]) -> (String, Arc<AtomicUsize>) {
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
        serve_raw(head, body.to_vec())
    }

    fn redirect_to(location: &str) -> (String, Arc<AtomicUsize>) {
        let head =
            format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        serve_raw(head, Vec::new())
    }

    fn policy(allow: &[&str]) -> InputPolicy {
        InputPolicy {
            allow_hosts: allow.iter().map(|a| a.parse().expect("host:port")).collect(),
            ..InputPolicy::default()
        }
    }

    fn ds(multiaddr: &str, checksum: B256) -> DatasetRef {
        DatasetRef { address: Address::repeat_byte(7), multiaddr: multiaddr.to_owned(), checksum }
    }

    #[tokio::test]
    async fn a_local_dataset_is_read_only_inside_the_root_checked_and_cached_by_checksum() {
        let d = dir("dataset");
        let root = d.join("root");
        std::fs::create_dir_all(&root).expect("mkdir");
        let src = root.join("src.bin");
        std::fs::write(&src, b"secret data").expect("write");
        let inputs =
            Inputs::new(d.join("cache"), InputPolicy { dataset_root: Some(root.clone()), ..InputPolicy::default() })
                .expect("inputs");
        let r = ds(src.to_str().expect("utf-8"), sha(b"secret data"));
        let (f, _) = inputs.for_task(B256::ZERO, Some(&r), &[]).await.expect("fetched");
        let f = f.expect("dataset");
        assert_eq!(std::fs::read(&f.path).expect("read"), b"secret data");
        assert_eq!(f.name, format!("{:#x}", r.address));
        // Cached: the source may go away.
        std::fs::remove_file(&src).expect("rm");
        let (again, _) = inputs.for_task(B256::ZERO, Some(&r), &[]).await.expect("cached");
        assert_eq!(again.expect("dataset").path, f.path);
        // The cache is the worker's alone.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(d.join("cache")).expect("cache").permissions().mode() & 0o777, 0o700);
    }

    #[tokio::test]
    async fn local_datasets_outside_the_root_or_without_a_root_are_refused_and_say_nothing_of_the_file() {
        let d = dir("outside");
        let root = d.join("root");
        std::fs::create_dir_all(&root).expect("mkdir");
        let secret = d.join("secret.txt");
        std::fs::write(&secret, b"not for apps").expect("write");
        std::os::unix::fs::symlink(&secret, root.join("link.txt")).expect("symlink");
        let with_root =
            Inputs::new(d.join("cache"), InputPolicy { dataset_root: Some(root.clone()), ..InputPolicy::default() })
                .expect("inputs");
        let without = Inputs::new(d.join("cache2"), InputPolicy::default()).expect("inputs");
        let cases = [
            (&with_root, secret.display().to_string(), "outside"),
            (&with_root, format!("file://{}", secret.display()), "outside"),
            (&with_root, format!("{}/../secret.txt", root.display()), "outside"),
            (&with_root, root.join("link.txt").display().to_string(), "outside"),
            (&with_root, "/proc/self/environ".to_owned(), "outside"),
            (&with_root, "/no/such/file".to_owned(), "outside"),
            (&with_root, root.join("absent").display().to_string(), "no readable file"),
            (&without, secret.display().to_string(), "no dataset root"),
            (&without, "file:///proc/self/environ".to_owned(), "no dataset root"),
            (&with_root, "relative/path".to_owned(), "absolute path"),
            (&with_root, "/ipfs/QmSomething".to_owned(), "IPFS"),
            (&with_root, "ftp://example.com/x".to_owned(), "not an http(s) URL"),
        ];
        for (inputs, url, says) in cases {
            let err = inputs.for_task(B256::ZERO, Some(&ds(&url, sha(b"x"))), &[]).await.expect_err(&url);
            assert!(matches!(err, InputError::Refused { .. }), "{url}: {err:?}");
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
        // A file in the root whose bytes do not match: the error gives the expected checksum, never the file's.
        std::fs::write(root.join("tampered"), b"tampered").expect("write");
        let r = ds(root.join("tampered").to_str().expect("utf-8"), sha(b"original"));
        let err = with_root.for_task(B256::ZERO, Some(&r), &[]).await.expect_err("mismatch");
        assert!(matches!(err, InputError::Checksum { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("does not match") && text.contains(&format!("{:x}", sha(b"original"))), "{text}");
        assert!(!text.contains(&format!("{:x}", sha(b"tampered"))), "the actual digest is not published: {text}");
        let cached: Vec<_> = std::fs::read_dir(d.join("cache/datasets")).expect("dir").collect();
        assert!(cached.is_empty(), "nothing cached, not even a temporary file: {cached:?}");
    }

    #[tokio::test]
    async fn input_files_come_over_http_once_per_deal_and_are_bounded() {
        let (host, hits) = serve(b"a,b\n1,2\n");
        let url = format!("http://{host}/data/file.csv?x=1");
        let d = dir("http");
        let inputs = Inputs::new(d.join("cache"), policy(&[&host])).expect("inputs");
        let deal = B256::repeat_byte(1);
        let (_, files) = inputs.for_task(deal, None, std::slice::from_ref(&url)).await.expect("fetched");
        assert_eq!(files[0].name, "file.csv");
        assert_eq!(std::fs::read(&files[0].path).expect("read"), b"a,b\n1,2\n");
        inputs.for_task(deal, None, std::slice::from_ref(&url)).await.expect("cached");
        assert_eq!(hits.load(Ordering::SeqCst), 1, "one fetch per deal");
        inputs.forget_deal(deal);
        inputs.for_task(deal, None, std::slice::from_ref(&url)).await.expect("fetched again");
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        // Per file: refused from the declared length, before the body.
        let small =
            Inputs::new(d.join("small"), InputPolicy { max_file_bytes: 4, ..policy(&[&host]) }).expect("inputs");
        let err = small.for_task(B256::ZERO, None, std::slice::from_ref(&url)).await.expect_err("too large");
        assert!(err.to_string().contains("limit of 4 bytes per file"), "{err}");
        // Per task: two files of 8 bytes over a budget of 12.
        let two = [url.clone(), format!("http://{host}/other.csv")];
        let budget =
            Inputs::new(d.join("budget"), InputPolicy { max_task_bytes: 12, ..policy(&[&host]) }).expect("inputs");
        let err = budget.for_task(B256::ZERO, None, &two).await.expect_err("over the task's budget");
        assert!(matches!(err, InputError::TaskTooLarge { max: 12 }), "{err:?}");
        // Count: refused before any fetch.
        let before = hits.load(Ordering::SeqCst);
        let few = Inputs::new(d.join("few"), InputPolicy { max_files: 1, ..policy(&[&host]) }).expect("inputs");
        let err = few.for_task(B256::repeat_byte(9), None, &two).await.expect_err("too many");
        assert!(matches!(err, InputError::TooManyFiles { count: 2, max: 1 }), "{err:?}");
        assert_eq!(hits.load(Ordering::SeqCst), before, "nothing fetched");
    }

    #[tokio::test]
    async fn a_body_without_length_is_cut_at_the_limit_and_a_slow_one_at_the_fetch_timeout() {
        // No content-length: the bound applies while reading.
        let (host, _) = serve_raw("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".into(), vec![b'x'; 100_000]);
        let d = dir("stream");
        let inputs =
            Inputs::new(d.join("cache"), InputPolicy { max_file_bytes: 1000, ..policy(&[&host]) }).expect("inputs");
        let err = inputs.for_task(B256::ZERO, None, &[format!("http://{host}/big")]).await.expect_err("too large");
        assert!(err.to_string().contains("limit of 1000 bytes per file"), "{err}");
        // A server that never answers: the fetch gives up at its limit, the task at its own.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let silent = l.local_addr().expect("addr").to_string();
        let slow = Inputs::new(
            d.join("slow"),
            InputPolicy { fetch_timeout: Duration::from_millis(300), ..policy(&[&silent]) },
        )
        .expect("inputs");
        let err = slow.for_task(B256::ZERO, None, &[format!("http://{silent}/x")]).await.expect_err("timeout");
        assert!(err.to_string().contains("per fetch"), "{err}");
        let task =
            Inputs::new(d.join("task"), InputPolicy { task_timeout: Duration::from_millis(300), ..policy(&[&silent]) })
                .expect("inputs");
        let err = task.for_task(B256::ZERO, None, &[format!("http://{silent}/x")]).await.expect_err("timeout");
        assert!(matches!(err, InputError::TaskTimeout(_)), "{err:?}");
        drop(l);
    }

    #[tokio::test]
    async fn local_paths_and_non_public_addresses_are_refused_without_a_connection() {
        let (host, hits) = serve(b"inside");
        let port = host.rsplit_once(':').expect("port").1;
        let inputs = Inputs::new(dir("refused").join("cache"), InputPolicy::default()).expect("inputs");
        for (url, says) in [
            ("/proc/self/environ".to_owned(), "only http(s)"),
            ("file:///proc/self/environ".to_owned(), "only http(s)"),
            ("relative/x.txt".to_owned(), "only http(s)"),
            ("ftp://example.com/x.txt".to_owned(), "only http(s)"),
            (format!("http://{host}/x.txt"), "not a public address"),
            (format!("http://localhost:{port}/x.txt"), "localhost does not resolve to public addresses"),
            (format!("http://[::ffff:127.0.0.1]:{port}/x.txt"), "not a public address"),
            (format!("http://2130706433:{port}/x.txt"), "127.0.0.1 is not a public address"),
            (format!("http://0x7f.1:{port}/x.txt"), "127.0.0.1 is not a public address"),
            ("http://169.254.169.254/latest/meta-data/x".to_owned(), "not a public address"),
            ("http://10.0.0.1/x".to_owned(), "not a public address"),
            ("http://[fd00::1]/x".to_owned(), "not a public address"),
            ("http://0.0.0.0/x".to_owned(), "not a public address"),
        ] {
            let err = inputs.for_task(B256::ZERO, None, std::slice::from_ref(&url)).await.expect_err(&url);
            assert!(matches!(err, InputError::Refused { .. }), "{url}: {err:?}");
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the loopback server was never reached");
    }

    #[tokio::test]
    async fn redirects_are_checked_at_every_hop_even_from_a_trusted_host() {
        let (inner, inner_hits) = serve(b"the pool's API");
        let (trusted, trusted_hits) = redirect_to(&format!("http://{inner}/status"));
        let d = dir("redirect");
        let inputs = Inputs::new(d.join("cache"), policy(&[&trusted])).expect("inputs");
        let err = inputs.for_task(B256::ZERO, None, &[format!("http://{trusted}/x.txt")]).await.expect_err("refused");
        assert!(matches!(err, InputError::Refused { .. }), "{err:?}");
        assert!(err.to_string().contains("redirected to") && err.to_string().contains("not a public"), "{err}");
        assert_eq!((trusted_hits.load(Ordering::SeqCst), inner_hits.load(Ordering::SeqCst)), (1, 0));
        // To another trusted host, it is followed; to a file:// URL, never.
        let both = Inputs::new(d.join("both"), policy(&[&trusted, &inner])).expect("inputs");
        let (_, files) = both.for_task(B256::ZERO, None, &[format!("http://{trusted}/x.txt")]).await.expect("ok");
        assert_eq!(std::fs::read(&files[0].path).expect("read"), b"the pool's API");
        let (to_file, _) = redirect_to("file:///proc/self/environ");
        let inputs = Inputs::new(d.join("file"), policy(&[&to_file])).expect("inputs");
        let err = inputs.for_task(B256::ZERO, None, &[format!("http://{to_file}/x.txt")]).await.expect_err("file");
        assert!(err.to_string().contains("only http(s)"), "{err}");
        // A loop (a server redirecting to itself): bounded.
        let (looping, hits) = serve_with(|me| {
            let head = format!("HTTP/1.1 302 Found\r\nlocation: http://{me}/again\r\ncontent-length: 0\r\n\r\n");
            (head, Vec::new())
        });
        let inputs = Inputs::new(d.join("loop"), policy(&[&looping])).expect("inputs");
        let err = inputs.for_task(B256::ZERO, None, &[format!("http://{looping}/x.txt")]).await.expect_err("loop");
        assert!(err.to_string().contains("more than 5 redirects"), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
    }

    #[test]
    fn allowed_hosts_parse_and_match_as_urls_write_them() {
        let a: AllowedHost = "Data.Example:8080".parse().expect("name");
        assert_eq!(a.to_string(), "data.example:8080");
        let v6: AllowedHost = "[::1]:80".parse().expect("v6");
        assert_eq!(v6.to_string(), "[::1]:80");
        for bad in ["data.example", "::1:80", "host:port", "user@host:80", ":80", "host:70000"] {
            assert!(bad.parse::<AllowedHost>().is_err(), "{bad}");
        }
        let p = policy(&["data.example:8080", "[::1]:80", "10.0.0.5:80"]);
        let url = |u: &str| Url::parse(u).expect("url");
        assert!(p.trusts(&url("http://DATA.example:8080/x")));
        assert!(!p.trusts(&url("http://data.example/x")));
        assert!(p.trusts(&url("http://[::1]/x")));
        assert!(p.trusts(&url("http://10.0.0.5/x")));
        assert!(!p.trusts(&url("https://10.0.0.5/x")), "https is port 443");
    }

    #[test]
    fn names_and_urls_of_params() {
        assert_eq!(input_name("https://h/a/b.txt?q#f").as_deref(), Some("b.txt"));
        assert_eq!(input_name("https://h/dir/"), None);
        assert_eq!(input_urls(r#"{"iexec_input_files":["http://a/x","http://b/y"]}"#), ["http://a/x", "http://b/y"]);
        assert!(input_urls("plain args").is_empty());
    }
}
