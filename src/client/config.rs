//! Where the client finds the exchange, the chain, the contracts and the results: command-line flags (or
//! their environment variables) first, then the configuration file, then `.dragon/local.json`, which
//! `dragon local` writes while the local market runs.

use super::error::{CliError, chain_failure, input};
use super::exchange::Exchange;
use crate::chain::deploy::Deployment;
use crate::chain::setup::Account;
use crate::order::Domain;
use alloy::primitives::U256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The connection flags every client command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Conn {
    /// The exchange's REST API, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "DRAGON_API", value_name = "URL")]
    pub api: Option<String>,
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "DRAGON_RPC_URL", value_name = "URL")]
    pub rpc_url: Option<String>,
    /// The deployment file (contract addresses) that `dragon chain deploy` wrote.
    #[arg(long, env = "DRAGON_DEPLOYMENT", value_name = "PATH")]
    pub deployment: Option<PathBuf>,
    /// Where results are downloaded from: the public URL of the pool that computed them.
    #[arg(long, env = "DRAGON_GATEWAY", value_name = "URL")]
    pub gateway: Option<String>,
    /// Configuration file (TOML: api, rpc_url, deployment, gateway); ~/.config/dragon/config.toml by default.
    #[arg(long, env = "DRAGON_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// File holding the hex private key; DRAGON_PRIVATE_KEY is used when absent.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    api: Option<String>,
    rpc_url: Option<String>,
    /// Relative to the configuration file's folder.
    deployment: Option<PathBuf>,
    gateway: Option<String>,
}

/// What `dragon local` writes while it runs.
#[derive(Debug, Default, Deserialize)]
struct LocalJson {
    api: Option<String>,
    rpc: Option<String>,
    deployment: Option<PathBuf>,
    /// The local pool's public URL, when the local market runs one.
    pool: Option<String>,
}

/// The resolved endpoints and key source of one command.
#[derive(Debug)]
pub struct Ctx {
    api: Option<String>,
    rpc: Option<String>,
    deployment: Option<PathBuf>,
    gateway: Option<String>,
    key_file: Option<PathBuf>,
}

const LOCAL_JSON: &str = ".dragon/local.json";

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("dragon/config.toml")).filter(|p| p.is_file())
}

fn read_config(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| input(format!("cannot read the configuration file `{}`: {e}", path.display())))?;
    let mut c: FileConfig = toml::from_str(&text)
        .map_err(|e| input(format!("configuration file `{}`: {}", path.display(), e.message())))?;
    if let Some(d) = c.deployment.take() {
        c.deployment = Some(path.parent().map(|dir| dir.join(&d)).unwrap_or(d));
    }
    Ok(c)
}

fn read_local() -> LocalJson {
    // A missing or half-written file means no local market: the other sources decide.
    std::fs::read_to_string(LOCAL_JSON).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn trim_slash(s: String) -> String {
    s.trim_end_matches('/').to_owned()
}

impl Ctx {
    pub fn resolve(conn: &Conn) -> Result<Ctx, CliError> {
        let file = match conn.config.as_deref() {
            Some(p) => read_config(p)?,
            None => default_config_path().map(|p| read_config(&p)).transpose()?.unwrap_or_default(),
        };
        let local = read_local();
        Ok(Ctx {
            api: conn.api.clone().or(file.api).or(local.api).map(trim_slash),
            rpc: conn.rpc_url.clone().or(file.rpc_url).or(local.rpc),
            deployment: conn.deployment.clone().or(file.deployment).or(local.deployment),
            gateway: conn.gateway.clone().or(file.gateway).or(local.pool).map(trim_slash),
            key_file: conn.key_file.clone(),
        })
    }

    pub fn key(&self) -> Result<PrivateKeySigner, CliError> {
        super::io::signing_key(self.key_file.clone())
    }

    pub fn api(&self) -> Result<&str, CliError> {
        self.api.as_deref().ok_or_else(|| {
            input("no exchange: pass --api URL, set `api` in the configuration file, or start the local market (dragon local)")
        })
    }

    pub fn rpc(&self) -> Result<&str, CliError> {
        self.rpc.as_deref().ok_or_else(|| {
            input("no chain: pass --rpc-url URL, set `rpc_url` in the configuration file, or start the local market (dragon local)")
        })
    }

    pub fn gateway(&self) -> Result<&str, CliError> {
        self.gateway.as_deref().ok_or_else(|| {
            input("no result gateway: pass --gateway URL (the public URL of the pool that ran the task) or set `gateway` in the configuration file")
        })
    }

    pub fn deployment(&self) -> Result<Deployment, CliError> {
        let path = self.deployment.as_deref().ok_or_else(|| {
            input("no deployment: pass --deployment PATH, set `deployment` in the configuration file, or start the local market (dragon local)")
        })?;
        Deployment::read(path).map_err(|e| input(e.to_string()))
    }

    pub fn domain(d: &Deployment) -> Domain {
        Domain::new(U256::from(d.chain_id), d.hub)
    }

    pub fn exchange(&self, d: &Deployment) -> Result<Exchange, CliError> {
        Ok(Exchange::new(self.api()?, d.chain_id))
    }

    /// A provider that only reads.
    pub fn reader(&self) -> Result<DynProvider, CliError> {
        let rpc = self.rpc()?;
        let url = rpc.parse().map_err(|_| input(format!("--rpc-url: `{rpc}` is not a URL")))?;
        Ok(ProviderBuilder::new().connect_http(url).erased())
    }

    /// An account that sends transactions with `key`.
    pub fn account(&self, key: &PrivateKeySigner) -> Result<Account, CliError> {
        let rpc = self.rpc()?;
        Account::new(rpc, key).map_err(|_| input(format!("--rpc-url: `{rpc}` is not a URL")))
    }

    /// Checks that the chain answers and is the deployment's chain, so later errors are about the command.
    pub async fn check_chain(&self, d: &Deployment) -> Result<(), CliError> {
        let rpc = self.rpc()?;
        let id = self.reader()?.get_chain_id().await.map_err(|e| chain_failure(rpc, &e))?;
        if id != d.chain_id {
            return Err(input(format!(
                "the chain at {rpc} has chain id {id}, but the deployment is for chain {}",
                d.chain_id
            )));
        }
        Ok(())
    }
}
