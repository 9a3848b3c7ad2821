//! One typed configuration for the server, from flags or the environment. Secrets (database password inside
//! the URL, keys) come from the environment only; nothing here is logged in full.

use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct Config {
    /// Address the REST API listens on.
    pub listen: SocketAddr,
    /// PostgreSQL connection URL.
    pub database_url: String,
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// Dragon's hub on that chain, when deployed.
    pub hub: Option<alloy::primitives::Address>,
}

/// Arguments of `dragon serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address the REST API listens on.
    #[arg(long, env = "DRAGON_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// PostgreSQL connection URL. Prefer the environment: a flag is visible to other users in `ps`, and the URL
    /// may hold a password (never printed in --help).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "DRAGON_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Deployment file written by `dragon chain deploy` (the hub's address).
    #[arg(long, env = "DRAGON_DEPLOYMENT", value_name = "PATH")]
    pub deployment: Option<std::path::PathBuf>,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<Config, crate::cli::CliError> {
        let database_url = self.database_url.ok_or_else(|| {
            crate::cli::CliError::Input("DATABASE_URL is not set: point it at a PostgreSQL database".into())
        })?;
        let hub = match &self.deployment {
            Some(path) => Some(
                crate::chain::deploy::Deployment::read(path)
                    .map_err(|e| crate::cli::CliError::Input(e.to_string()))?
                    .hub,
            ),
            None => None,
        };
        Ok(Config { listen: self.listen, database_url, rpc_url: self.rpc_url, hub })
    }
}
