//! What a task reads besides its arguments: the deal's dataset and the request's input files
//! (`iexec_input_files` in the params). Both are fetched from their multiaddr (an absolute local path, a
//! `file://` URL, or an `http(s)://` URL) into the worker's cache, which the executor's workspace hard-links from.
//!
//! - A **dataset** is checked against its on-chain checksum (`m_datasetChecksum`, the SHA-256 of the file, as
//!   iExec's tools compute it) before any app sees it; a mismatch fails the task and nothing is cached. The cache
//!   is keyed by that checksum, so a verified file is fetched once for every deal that uses it.
//! - An **input file** has no checksum on chain (as in iExec), so it is cached per URL *within one deal*: the
//!   tasks of a deal see the same bytes, and a later deal fetches again.
//!
//! Each fetch is bounded in size and time, and lands in a temporary file renamed into place, so a crash never
//! leaves a partial file where a complete one is expected.

use crate::executor::{DatasetFile, InputFile};
use alloy::primitives::{Address, B256};
use alloy::transports::http::reqwest;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{what} {url}: {reason}")]
    Fetch { what: &'static str, url: String, reason: String },
    #[error("dataset {dataset:#x}: its file {url} has SHA-256 {actual:#x}, but the chain says {expected:#x}")]
    Checksum { dataset: Address, url: String, expected: B256, actual: B256 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Fetches and caches inputs under one folder of the worker.
#[derive(Debug, Clone)]
pub struct Inputs {
    cache: PathBuf,
    http: reqwest::Client,
    max_bytes: u64,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> InputError {
    let context = context.into();
    move |source| InputError::Io { context, source }
}

/// Where a multiaddr points.
enum Source<'a> {
    File(&'a Path),
    Http(&'a str),
}

fn source<'a>(what: &'static str, url: &'a str) -> Result<Source<'a>, InputError> {
    let bad = |reason: &str| InputError::Fetch { what, url: url.to_owned(), reason: reason.to_owned() };
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(Source::Http(url));
    }
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    if url.starts_with("/ipfs/") || url.starts_with("ipfs://") {
        return Err(bad("IPFS is not reachable from this worker: give an http(s) URL or a local path"));
    }
    if !path.is_absolute() {
        return Err(bad("not an http(s) URL, a file:// URL or an absolute path"));
    }
    Ok(Source::File(path))
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

impl Inputs {
    pub fn new(cache: PathBuf, max_bytes: u64) -> Result<Self, InputError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| InputError::Fetch { what: "client", url: String::new(), reason: e.to_string() })?;
        Ok(Inputs { cache, http, max_bytes })
    }

    /// The dataset's file, fetched once per checksum and verified against it.
    pub async fn dataset(&self, address: Address, multiaddr: &str, checksum: B256) -> Result<DatasetFile, InputError> {
        let path = self.cache.join("datasets").join(format!("{checksum:x}"));
        if !path.is_file() {
            let (tmp, actual) = self.fetch("dataset", multiaddr).await?;
            if actual != checksum {
                let _ = std::fs::remove_file(&tmp);
                return Err(InputError::Checksum {
                    dataset: address,
                    url: multiaddr.to_owned(),
                    expected: checksum,
                    actual,
                });
            }
            std::fs::rename(&tmp, &path).map_err(io(format!("caching {}", path.display())))?;
        }
        // iExec names the dataset file after the dataset's address.
        Ok(DatasetFile { address, name: format!("{address:#x}"), path })
    }

    /// The deal's input files, each fetched once per deal.
    pub async fn files(&self, deal: B256, urls: &[String]) -> Result<Vec<InputFile>, InputError> {
        let mut out = Vec::with_capacity(urls.len());
        for url in urls {
            let name = input_name(url).ok_or_else(|| InputError::Fetch {
                what: "input file",
                url: url.clone(),
                reason: "its URL has no file name".into(),
            })?;
            let key = alloy::primitives::keccak256(url.as_bytes());
            let path = self.cache.join("inputs").join(format!("{deal:x}")).join(format!("{key:x}"));
            if !path.is_file() {
                let (tmp, _) = self.fetch("input file", url).await?;
                let dir = path.parent().unwrap_or(&self.cache);
                std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
                std::fs::rename(&tmp, &path).map_err(io(format!("caching {}", path.display())))?;
            }
            out.push(InputFile { name, path });
        }
        Ok(out)
    }

    /// Drops a finished deal's input files (datasets stay: they are shared by checksum).
    pub fn forget_deal(&self, deal: B256) {
        let _ = std::fs::remove_dir_all(self.cache.join("inputs").join(format!("{deal:x}")));
    }

    /// Copies `url` into a temporary file of the cache, bounded by `max_bytes`; returns it and its SHA-256.
    async fn fetch(&self, what: &'static str, url: &str) -> Result<(PathBuf, B256), InputError> {
        let fail = |reason: String| InputError::Fetch { what, url: url.to_owned(), reason };
        let dir = self.cache.join("datasets");
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let tmp = dir
            .join(format!(".fetch-{}", alloy::primitives::keccak256(format!("{url}{:?}", std::time::Instant::now()))));
        let mut file = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let mut hash = Sha256::new();
        let mut total = 0u64;
        let mut put = |chunk: &[u8], total: &mut u64| -> Result<(), InputError> {
            *total += chunk.len() as u64;
            if *total > self.max_bytes {
                return Err(fail(format!("larger than the worker's limit of {} bytes", self.max_bytes)));
            }
            hash.update(chunk);
            file.write_all(chunk).map_err(io(format!("writing {}", tmp.display())))
        };
        let res = async {
            match source(what, url)? {
                Source::File(p) => {
                    let mut f = std::fs::File::open(p).map_err(|e| fail(e.to_string()))?;
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| fail(e.to_string()))?;
                        if n == 0 {
                            break;
                        }
                        put(&buf[..n], &mut total)?;
                    }
                }
                Source::Http(u) => {
                    let mut resp = self.http.get(u).send().await.map_err(|e| fail(e.to_string()))?;
                    if !resp.status().is_success() {
                        return Err(fail(format!("HTTP {}", resp.status())));
                    }
                    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
                        put(&chunk, &mut total)?;
                    }
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
        Ok((tmp, B256::from_slice(&hash.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> B256 {
        B256::from_slice(&Sha256::digest(b))
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dragon-inputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    /// One-shot HTTP server answering every request with `body`, counting requests.
    fn serve(body: &'static [u8]) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(body);
            }
        });
        (format!("http://{addr}/data/file.csv?x=1"), hits)
    }

    #[tokio::test]
    async fn a_dataset_is_checked_and_cached_by_checksum() {
        let d = dir("dataset");
        let src = d.join("src.bin");
        std::fs::write(&src, b"secret data").expect("write");
        let inputs = Inputs::new(d.join("cache"), 1 << 20).expect("inputs");
        let a = Address::repeat_byte(7);
        let f = inputs.dataset(a, src.to_str().expect("utf-8"), sha(b"secret data")).await.expect("fetched");
        assert_eq!(std::fs::read(&f.path).expect("read"), b"secret data");
        assert_eq!(f.name, format!("{a:#x}"));
        // Cached: the source may go away.
        std::fs::remove_file(&src).expect("rm");
        let again = inputs.dataset(a, src.to_str().expect("utf-8"), sha(b"secret data")).await.expect("cached");
        assert_eq!(again.path, f.path);
    }

    #[tokio::test]
    async fn a_dataset_with_the_wrong_checksum_is_refused_and_not_cached() {
        let d = dir("mismatch");
        let src = d.join("src.bin");
        std::fs::write(&src, b"tampered").expect("write");
        let inputs = Inputs::new(d.join("cache"), 1 << 20).expect("inputs");
        let err = inputs.dataset(Address::ZERO, &format!("file://{}", src.display()), sha(b"original")).await;
        assert!(matches!(err, Err(InputError::Checksum { .. })), "{err:?}");
        let cached: Vec<_> = std::fs::read_dir(d.join("cache/datasets")).expect("dir").collect();
        assert!(cached.is_empty(), "nothing cached, not even a temporary file: {cached:?}");
    }

    #[tokio::test]
    async fn input_files_come_over_http_once_per_deal_and_are_bounded() {
        let (url, hits) = serve(b"a,b\n1,2\n");
        let d = dir("http");
        let inputs = Inputs::new(d.join("cache"), 1 << 20).expect("inputs");
        let deal = B256::repeat_byte(1);
        let files = inputs.files(deal, std::slice::from_ref(&url)).await.expect("fetched");
        assert_eq!(files[0].name, "file.csv");
        assert_eq!(std::fs::read(&files[0].path).expect("read"), b"a,b\n1,2\n");
        inputs.files(deal, std::slice::from_ref(&url)).await.expect("cached");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "one fetch per deal");
        inputs.forget_deal(deal);
        inputs.files(deal, std::slice::from_ref(&url)).await.expect("fetched again");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
        let small = Inputs::new(d.join("small"), 4).expect("inputs");
        let err = small.files(B256::ZERO, &[url]).await;
        assert!(matches!(&err, Err(InputError::Fetch { reason, .. }) if reason.contains("limit")), "{err:?}");
    }

    #[tokio::test]
    async fn unreachable_or_unsupported_sources_are_clear_errors() {
        let inputs = Inputs::new(dir("bad").join("cache"), 1 << 20).expect("inputs");
        for (url, says) in [
            ("/ipfs/QmSomething", "IPFS"),
            ("relative/path", "absolute path"),
            ("/no/such/file", "No such file"),
            ("http://127.0.0.1:1/x.bin", "x.bin"),
        ] {
            let err = inputs.dataset(Address::ZERO, url, B256::ZERO).await.expect_err(url).to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
        assert_eq!(input_name("https://h/a/b.txt?q#f").as_deref(), Some("b.txt"));
        assert_eq!(input_name("https://h/dir/"), None);
        assert_eq!(input_urls(r#"{"iexec_input_files":["http://a/x","http://b/y"]}"#), ["http://a/x", "http://b/y"]);
        assert!(input_urls("plain args").is_empty());
    }
}
