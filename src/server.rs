//! Composition of the server: store, chain and API, started by [`run`] on a listener with one shutdown
//! future, so tests start the whole service in-process exactly as `dragon serve` does.

use crate::chain::Chain;
use crate::config::Config;
use crate::store::Store;
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub chain: Chain,
}

impl AppState {
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let store = Store::connect(&config.database_url).await.context("opening the store")?;
        let chain = Chain::connect(&config.rpc_url, config.hub)?;
        Ok(AppState { store: Arc::new(store), chain })
    }
}

/// Serves the API on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn run(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(crate::api::configure))
        .disable_signals()
        .listen(listener)?
        .run();
    let handle = server.handle();
    tokio::select! {
        res = server => res.context("HTTP server failed"),
        () = shutdown => {
            handle.stop(true).await;
            Ok(())
        }
    }
}

/// `dragon serve`: connect, listen, serve until Ctrl-C.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let state = AppState::connect(&config).await?;
    let listener = TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, "dragon serving");
    run(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}
