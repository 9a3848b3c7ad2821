//! The market explorer at `/`: one page written by hand (`web/`: HTML, CSS, JavaScript, no framework, no
//! CDN, system fonts), embedded in the binary so it works offline wherever `dragon serve` runs. It reads the
//! REST API and follows the public feed (`/feed`); see `docs/explorer.md`.
//!
//! Caching: every asset carries an ETag (a hash of its bytes, computed at compile time) and `no-cache`, so a
//! browser revalidates with a cheap 304 and never runs the assets of an older binary. The page itself names
//! the server's chain, which the script needs before its first request.

use crate::api::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, web};

struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: &'static str,
}

/// FNV-1a, 64 bits: enough to tell two builds' assets apart, and computable in a `const`.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// `"<16 hex digits>"`, quotes included, as an ETag is written.
const fn etag_of(bytes: &[u8]) -> [u8; 18] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let h = fnv1a(bytes);
    let mut out = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        out[1 + i] = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
        i += 1;
    }
    out
}

macro_rules! asset {
    ($file:literal, $ct:literal) => {{
        const BODY: &[u8] = include_bytes!(concat!("../../web/", $file));
        const TAG: [u8; 18] = etag_of(BODY);
        Asset {
            body: BODY,
            content_type: $ct,
            etag: match std::str::from_utf8(&TAG) {
                Ok(s) => s,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: Asset = asset!("app.js", "text/javascript; charset=utf-8");
const APP_CSS: Asset = asset!("app.css", "text/css; charset=utf-8");
const ICON: Asset = asset!("favicon.svg", "image/svg+xml");

fn serve(req: &HttpRequest, a: &Asset) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == a.etag));
    let mut r = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    r.insert_header((header::ETAG, a.etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"));
    if fresh { r.finish() } else { r.content_type(a.content_type).body(a.body) }
}

/// The page, naming this server's chain.
#[get("/")]
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(INDEX.replace("{{CHAIN_ID}}", &state.market.chain_id.to_string()))
}

#[get("/explorer/app.js")]
pub async fn script(req: HttpRequest) -> HttpResponse {
    serve(&req, &APP_JS)
}

#[get("/explorer/app.css")]
pub async fn style(req: HttpRequest) -> HttpResponse {
    serve(&req, &APP_CSS)
}

#[get("/favicon.svg")]
pub async fn icon(req: HttpRequest) -> HttpResponse {
    serve(&req, &ICON)
}

#[cfg(test)]
mod tests {
    #[test]
    fn etags_differ_with_content_and_are_quoted() {
        let (a, b) = (super::etag_of(b"a"), super::etag_of(b"b"));
        assert_ne!(a, b);
        assert_eq!((a[0], a[17]), (b'"', b'"'));
        assert!(a[1..17].iter().all(u8::is_ascii_hexdigit));
    }
}
