//! Swagger UI at `/docs`, over `/openapi.json`. The two assets are copied from npm `swagger-ui-dist` 5.32.0
//! (Apache-2.0, its LICENSE beside them) and embedded in the binary: the page works offline, with no CDN.

use actix_web::{HttpResponse, get};

pub const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dragon API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="ui"></div><script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"##;

const BUNDLE: &str = include_str!("swagger/swagger-ui-bundle.js");
const CSS: &str = include_str!("swagger/swagger-ui.css");

#[get("/docs/swagger-ui-bundle.js")]
pub async fn bundle() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "max-age=86400"))
        .body(BUNDLE)
}

#[get("/docs/swagger-ui.css")]
pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "max-age=86400"))
        .body(CSS)
}
