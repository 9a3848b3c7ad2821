//! Fetching, under the address rules: every address checked after DNS resolution and the connection pinned to
//! it, redirects followed by hand and checked at every hop, local dataset files opened only inside the root.

use super::cache::{Budget, Inputs, Source};
use super::error::{InputError, io};
use crate::worker::address::is_public;
use alloy::primitives::B256;
use alloy::transports::http::reqwest::{self, Url, header::LOCATION, redirect};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// Redirects followed per fetch.
pub const MAX_REDIRECTS: usize = 5;

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

impl Inputs {
    /// Copies `source` into a temporary file of the cache, within the per-file bound and the task's budget;
    /// returns it, its SHA-256 and its size.
    pub(super) async fn fetch(
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
