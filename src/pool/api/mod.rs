//! The pool's HTTP API: the workers' protocol (pull-based: every call comes from the worker, so a worker behind
//! NAT works), the result archives, and the pool's status and metrics. One file per group of endpoints
//! (`workers`, `reports`, `results`, `observe`); `error` is where the pool's errors meet HTTP.
//!
//! Every caller is a stranger until proven otherwise, in this order: the per-IP limit comes before anything
//! else; a token (or, for a login, a single-use challenge and its signature, then membership) before any body
//! is read; the chain before any claim of progress or right to upload ([`super::rules`],
//! [`super::membership`]). Each body is read with a bound on its size and its time. `docs/pool.md`, "Limits and
//! what the pool trusts", lists the bounds.

mod body;
mod error;
mod observe;
mod reports;
mod results;
mod state;
mod workers;

pub use error::PoolApiError;
pub use state::PoolState;

use crate::pool::config::PoolError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use std::net::TcpListener;
use std::time::Duration;

/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Middleware: the per-IP limit on every request, before anything else is done for it.
async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let (Some(state), Some(peer)) = (req.app_data::<web::Data<PoolState>>(), req.peer_addr())
        && state.rates.check_key(&peer.ip()).is_err()
    {
        return Err(PoolApiError::RateLimited(state.limits.per_ip_per_second).into());
    }
    next.call(req).await
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: PoolState,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), PoolError> {
    let data = web::Data::new(state);
    // The per-IP buckets of addresses gone quiet are forgotten now and then, so the map does not grow without
    // bound.
    let sweeper = {
        let data = data.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                data.rates.retain_recent();
                data.rates.shrink_to_fit();
            }
        })
    };
    let server =
        HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    actix_web::Error::from(PoolApiError::BadRequest(format!("invalid query: {e}")))
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    actix_web::Error::from(PoolApiError::BadRequest(format!("invalid path: {e}")))
                }))
                .wrap(actix_web::middleware::from_fn(per_ip))
                .route("/challenge", web::get().to(workers::challenge))
                .route("/workers/login", web::post().to(workers::login))
                .route("/workers/register", web::post().to(workers::register))
                .route("/workers/ping", web::post().to(workers::ping))
                .route("/workers/work", web::post().to(workers::work))
                .route("/workers/status", web::post().to(reports::status_update))
                .route("/results/{taskid}", web::post().to(results::upload))
                .route("/results/{taskid}", web::get().to(results::download))
                .route("/status", web::get().to(observe::status))
                .route("/status/tasks/{taskid}", web::get().to(observe::task_timeline))
                .route("/metrics", web::get().to(observe::metrics))
                .route("/capacity", web::get().to(observe::capacity))
                .default_service(web::to(no_route))
        })
        .disable_signals()
        .client_request_timeout(HEAD_TIMEOUT)
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(PoolError::Http)?
        .run();
    let handle = server.handle();
    let res = tokio::select! {
        res = server => res.map_err(PoolError::Http),
        () = shutdown => {
            handle.stop(true).await;
            Ok(())
        }
    };
    sweeper.abort();
    res
}

/// Every path the routes do not name.
async fn no_route() -> HttpResponse {
    PoolApiError::NotFound("route".into()).error_response()
}
