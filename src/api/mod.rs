//! The REST API: iExec's market API dialect at the host root, one file per resource, errors mapped to HTTP only
//! in [`error`], and the OpenAPI document derived by utoipa (committed as `openapi/openapi.json`, checked by a
//! test) with a Swagger UI at `/docs`.

pub mod auth;
pub mod categories;
pub mod deals;
pub mod document;
pub mod error;
pub mod explain;
pub mod explorer;
pub mod limits;
pub mod market;
pub mod orders;
pub mod pools;
pub mod proposals;
pub mod search;
pub mod state;
pub mod swagger;
pub mod system;
pub mod tasks;
pub mod validate;

use crate::api::state::AppState;
use crate::order::OrderKind;
use actix_web::web;
use error::ApiError;
use utoipa::OpenApi;

/// The OpenAPI document's frame: its title, and the schemas derived from the answers' types. Paths and the
/// order schemas are written by [`document`].
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Dragon",
        description = "Order-book exchange for decentralized computing, compatible with iExec PoCo and with iExec's market API (iexec-market-api 7.1.2): the peer's routes answer in its dialect at the host root; the routes it lacks are Dragon's own."
    ),
    components(schemas(
        error::ErrorBody,
        crate::order::record::OrderStatus,
        system::Version,
        system::Health,
        auth::ChallengeAnswer,
        auth::SessionAnswer,
        categories::CategoryList,
        categories::OneCategory,
        market::Depth,
        explain::ExplainAnswer,
        explain::ExplainCombination,
        explain::ExplainMember,
        explain::ExplainBlocker,
        crate::store::proposals::ProposalView
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON: without a chain and with the default limits (the committed
/// `openapi/openapi.json`), or as a server serves it at `/openapi.json`: its chain as `chainId`'s only value,
/// its own limits.
pub fn openapi_json_for(chain_id: Option<u64>, market: &crate::market::MarketConfig, batch_orders: usize) -> String {
    let doc = document::document(chain_id, market, batch_orders);
    serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| serde_json::json!({"ok": false, "error": e.to_string(), "code": "internal"}).to_string())
}

/// The committed document (`dragon openapi`).
pub fn openapi_json() -> String {
    openapi_json_for(None, &crate::market::MarketConfig::default(), crate::config::Limits::default().batch_orders)
}

/// The query's `chainId`, as the peer checks it: required, and the chain this server serves (compared as text).
pub fn check_chain(state: &AppState, q: &validate::Query) -> Result<String, ApiError> {
    validate::chain_id(q, state.market.chain_id).map_err(ApiError::BadRequest)
}

/// Reads a request body of at most `limit` bytes as a JSON object, once the request is authenticated. An empty
/// body is an empty object (as the peer's body parser makes it); anything else that is not a JSON object is a
/// 400 (the peer answers 500 to a body that is not JSON).
pub async fn read_json_object(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>, ApiError> {
    use futures_util::StreamExt;
    // Sized once from the announced length, so that a batch's body is not copied at every doubling. The
    // announcement is the caller's word: it sizes at most `PRESIZE` bytes, and the limit holds whatever it says.
    const PRESIZE: usize = 256 * 1024;
    let announced = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = web::BytesMut::with_capacity(announced.min(limit).min(PRESIZE));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    // The usual case, an object, in one pass without copying the whole body first; anything else is parsed
    // again below for the precise error.
    if let Ok(object) = serde_json::from_slice(&body) {
        return Ok(object);
    }
    let value: Box<serde_json::value::RawValue> =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    serde_json::from_str(value.get()).map_err(|_| {
        ApiError::BadRequest(format!("this must be a `object` type, but the final value was: `{}`.", value.get()))
    })
}

/// Kept here for the API's callers; the function lives with the other wire forms.
pub use crate::wire::iso_time;

/// Every path the server answers, with its methods: a request with another method gets 405 and an `Allow`
/// header, an unknown path 404.
fn route_table() -> &'static [(actix_web::dev::ResourceDef, &'static str)] {
    static TABLE: std::sync::OnceLock<Vec<(actix_web::dev::ResourceDef, &'static str)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut routes: Vec<(String, &'static str)> = [
            "/version",
            "/health",
            "/challenge",
            "/categories",
            "/categories/{catid}",
            "/deals",
            "/deals/{dealid}",
            "/ohlc",
            "/proposals",
            "/proposals/{id}",
            "/metrics",
            "/depth",
            "/tasks",
            "/tasks/{taskid}",
            "/pools/{address}",
            "/workerpools/{address}",
            "/search",
            "/openapi.json",
            "/docs",
            "/docs/swagger-ui-bundle.js",
            "/docs/swagger-ui.css",
            "/",
            "/explorer/app.js",
            "/explorer/app.css",
            "/favicon.svg",
        ]
        .iter()
        .map(|p| ((*p).to_owned(), "GET"))
        .collect();
        routes.push(("/sessions".into(), "POST"));
        routes.push(("/explain".into(), "POST"));
        for kind in OrderKind::ALL {
            routes.push((format!("/{kind}orders"), "GET, POST, PUT"));
            routes.push((format!("/{kind}orders/batch"), "POST"));
            routes.push((format!("/{kind}orders/{{orderHash}}"), "GET"));
            routes.push((format!("/{kind}orders/{{orderHash}}/explain"), "GET"));
        }
        routes.into_iter().map(|(p, allow)| (actix_web::dev::ResourceDef::new(p), allow)).collect()
    })
}

/// What no route took: 405 on a known path, 404 elsewhere (both with the JSON error body).
pub async fn fallback(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    match route_table().iter().find(|(def, _)| def.is_match(req.path())) {
        Some((_, allow)) => Err(ApiError::MethodNotAllowed(allow)),
        None => Err(ApiError::NoRoute),
    }
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(error::json_config(body_limit))
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(error::query_config())
        .app_data(error::path_config())
        .service(system::version)
        .service(system::health)
        .service(system::docs)
        .service(swagger::bundle)
        .service(swagger::css)
        .service(auth::challenge)
        .service(auth::open_session)
        .service(categories::categories)
        .service(categories::category)
        .service(deals::deals)
        .service(deals::deal)
        .service(deals::ohlc)
        .service(proposals::proposals)
        .service(proposals::proposal)
        .service(market::metrics)
        .service(market::depth)
        .service(tasks::tasks)
        .service(tasks::task)
        .service(pools::pool)
        .service(pools::workerpool)
        .service(search::search)
        .service(
            web::resource("/explain").route(web::post().to(explain::explain_draft)).default_service(web::to(fallback)),
        )
        .service(explorer::index)
        .service(explorer::script)
        .service(explorer::style)
        .service(explorer::icon)
        .service(system::openapi);
    for kind in OrderKind::ALL {
        orders::routes(cfg, kind);
    }
    cfg.default_service(web::to(fallback));
}
