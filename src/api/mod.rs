//! The REST API: one file per group of endpoints, errors mapped to HTTP only in [`error`], and the OpenAPI
//! document derived from the handlers by utoipa (committed as `openapi/openapi.json`, checked by a test).

pub mod error;
pub mod system;

use actix_web::web;
use utoipa::OpenApi;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Dragon",
        description = "Order-book exchange for decentralized computing, compatible with iExec PoCo."
    ),
    paths(system::version, system::health),
    components(schemas(error::ErrorBody))
)]
pub struct ApiDoc;

/// The OpenAPI document as pretty JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(error::json_config())
        .app_data(error::query_config())
        .app_data(error::path_config())
        .service(system::version)
        .service(system::health)
        .route(
            "/openapi.json",
            web::get()
                .to(|| async { actix_web::HttpResponse::Ok().content_type("application/json").body(openapi_json()) }),
        )
        .default_service(web::to(error::not_found));
}
