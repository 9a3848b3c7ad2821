//! What every long-running command (`dragon serve`, `local`, `pool`, `worker`, `bot`) shares with the process
//! it runs in: the one shutdown signal and the log output. Kept below the server, so that the pool, the worker
//! and the local market do not reach into the exchange's composition for them.

/// Resolves at Ctrl-C or SIGTERM: the one shutdown signal of every long-running command.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down");
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
