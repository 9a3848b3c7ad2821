//! The cache the executor's workspace hard-links from, and the rules a task's inputs pass before anything is
//! fetched: datasets by checksum (shared by every deal that uses one), input files per deal.

use super::error::{InputError, io};
use super::policy::InputPolicy;
use crate::executor::{DatasetFile, InputFile};
use alloy::primitives::{Address, B256};
use alloy::transports::http::reqwest::Url;
use std::path::{Component, Path, PathBuf};

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
    pub(super) cache: PathBuf,
    pub(super) policy: InputPolicy,
    /// The dataset root, symbolic links resolved.
    pub(super) dataset_root: Option<PathBuf>,
}

/// Where a multiaddr points.
pub(super) enum Source {
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

/// How many bytes a task's inputs may still take.
#[derive(Debug)]
pub(super) struct Budget {
    pub(super) left: u64,
    pub(super) max: u64,
}

impl Budget {
    pub(super) fn take(&mut self, n: u64) -> Result<(), InputError> {
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
}
