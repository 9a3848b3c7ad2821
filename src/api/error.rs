//! Where errors meet HTTP: the one place that turns them into status codes and the stable JSON error body
//! `{"ok": false, "error": "<message>", "code": "<stable_code>"}` (the market API's envelope plus a code that
//! clients can match on). Internal causes are logged, never sent: a 5xx says only what is unavailable.
//!
//! Every answer, errors included, is JSON: iExec's SDK refuses any other content type, even on a 404.

use crate::market::{MarketError, PublishError};
use actix_web::{HttpResponse, ResponseError, http::StatusCode};

pub use crate::wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query, path or body that breaks a validation rule; the message is the peer's (yup's).
    #[error("{0}")]
    BadRequest(String),
    /// A refusal of the order itself (publication or unpublication rules).
    #[error("{0}")]
    Publish(PublishError),
    /// The market could not do it: store, chain or engine unavailable, or shutting down.
    #[error("{0}")]
    Market(#[from] MarketError),
    #[error("{0}")]
    Auth(#[from] crate::api::auth::AuthError),
    /// `<what> not found`, as the peer says it (`apporder not found`, `deal not found`, ...).
    #[error("{0} not found")]
    NotFound(String),
    /// No route at this path.
    #[error("Not Found")]
    NoRoute,
    /// A route exists at this path, but not for this method; the methods it has (for the `Allow` header).
    #[error("Method Not Allowed")]
    MethodNotAllowed(&'static str),
    #[error("Rate limit exceeded")]
    RateLimited(u32),
    #[error("request body too large (at most {0} bytes)")]
    TooLarge(usize),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Publish(e) => publish_answer(e).1,
            ApiError::Market(e) => market_answer(e).1,
            ApiError::Auth(e) => auth_answer(e).1,
            ApiError::NotFound(_) | ApiError::NoRoute => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::TooLarge(_) => "body_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Market(MarketError::Store(e))
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            // The market's own failure, met while publishing: answered as the market's.
            PublishError::Market(e) => ApiError::Market(e),
            e => ApiError::Publish(e),
        }
    }
}

/// Status and stable code of a refusal of an order, side by side: the one table of both.
/// Status and code of each authentication failure. Every refusal is the same 403 `auth_invalid` (the peer never
/// says why, which is also the safer rule); what is unavailable says so.
fn auth_answer(e: &crate::api::auth::AuthError) -> (StatusCode, &'static str) {
    use crate::api::auth::AuthError as A;
    match e {
        A::Missing | A::Malformed(_) | A::Invalid | A::Session | A::SessionFromSession => {
            (StatusCode::FORBIDDEN, "auth_invalid")
        }
        A::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        A::Chain => (StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable"),
        A::NoRandomness => (StatusCode::SERVICE_UNAVAILABLE, "no_randomness"),
    }
}

fn publish_answer(e: &PublishError) -> (StatusCode, &'static str) {
    use PublishError as P;
    // The peer answers every refusal of a publication or unpublication with 403 (Dragon's own refusals too: a
    // claimed hash that is not the order's is refused as a bad signature is), but for malformed values (400)
    // and oversized documents (413).
    const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;
    match e {
        P::InvalidOrder(_) => (StatusCode::BAD_REQUEST, "invalid_order"),
        P::ValueTooLarge(_) => (StatusCode::BAD_REQUEST, "value_too_large"),
        P::OrderTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "order_too_large"),
        P::ParamsTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "params_too_large"),
        P::InvalidTrackRecord(_) => (StatusCode::BAD_REQUEST, "invalid_track_record"),
        P::HashMismatch { .. } => (FORBIDDEN, "hash_mismatch"),
        P::UnknownAsset { .. } => (FORBIDDEN, "unknown_asset"),
        P::NotOwner { .. } => (FORBIDDEN, "not_owner"),
        P::MissingSignature { .. } => (FORBIDDEN, "missing_signature"),
        P::InvalidSignature(_) => (FORBIDDEN, "invalid_signature"),
        P::Duplicate(_) => (FORBIDDEN, "duplicate_order"),
        P::Closed { .. } => (FORBIDDEN, "order_closed"),
        P::FullyConsumed(_) => (FORBIDDEN, "fully_consumed"),
        P::InsufficientStake { .. } => (FORBIDDEN, "insufficient_stake"),
        P::TooManyOrders { .. } => (FORBIDDEN, "too_many_orders"),
        P::BookFull(_) => (FORBIDDEN, "book_full"),
        P::NoAppOrder { .. } | P::NoDatasetOrder { .. } => (FORBIDDEN, "no_compatible_offer"),
        P::AppPriceTooLow { .. } | P::DatasetPriceTooLow { .. } => (FORBIDDEN, "max_price_too_low"),
        P::UnsupportedRestriction { .. } => (FORBIDDEN, "unsupported_restriction"),
        P::NotPublished { .. } => (FORBIDDEN, "order_not_published"),
        P::NotSigner { .. } => (FORBIDDEN, "not_signer"),
        P::NothingToUnpublish { .. } => (FORBIDDEN, "nothing_to_unpublish"),
        P::Market(e) => market_answer(e),
    }
}

/// Status and stable code of the market's failures: all 503, each with its code.
fn market_answer(e: &MarketError) -> (StatusCode, &'static str) {
    let code = match e {
        MarketError::Chain(_) => "chain_unavailable",
        MarketError::Store(_) => "store_unavailable",
        MarketError::MatchingDown => "matching_unavailable",
        MarketError::ShuttingDown => "shutting_down",
        MarketError::NoOwner { .. } => "no_category_owner",
        MarketError::Cluster(_) => "cluster_unavailable",
    };
    (StatusCode::SERVICE_UNAVAILABLE, code)
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Auth(e) => auth_answer(e).0,
            ApiError::Publish(e) => publish_answer(e).0,
            ApiError::Market(e) => market_answer(e).0,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(self).map(ToString::to_string), "request failed");
        }
        match self {
            // Why authentication failed is logged, never answered (the peer's rule, and the safer one).
            ApiError::Auth(e) if !status.is_server_error() => tracing::debug!(reason = ?e, "authentication failed"),
            ApiError::Publish(e @ (PublishError::InvalidSignature(_) | PublishError::MissingSignature { .. })) => {
                tracing::debug!(reason = ?e, "signature refused")
            }
            _ => {}
        }
        // 5xx: say what is unavailable, never the internal detail (database messages, RPC URLs).
        let error = match self {
            ApiError::Market(MarketError::Store(_))
            | ApiError::Publish(PublishError::Market(MarketError::Store(_))) => "the store is unavailable".to_owned(),
            ApiError::Market(MarketError::Chain(_))
            | ApiError::Publish(PublishError::Market(MarketError::Chain(_))) => "the chain is unavailable".to_owned(),
            _ => self.to_string(),
        };
        let mut answer = HttpResponse::build(status);
        match self {
            ApiError::RateLimited(_) => {
                answer.insert_header(("retry-after", "1"));
            }
            ApiError::MethodNotAllowed(allow) => {
                answer.insert_header(("allow", *allow));
            }
            _ => {}
        }
        answer.json(ErrorBody { ok: false, error, code: self.code() })
    }
}

/// actix's own extractor failures (bad JSON, bad query string, bad path) answered in the same shape.
pub fn json_config(limit: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default().limit(limit).error_handler(|err, _| {
        use actix_web::error::JsonPayloadError as J;
        match err {
            J::Overflow { limit } | J::OverflowKnownLength { limit, .. } => ApiError::TooLarge(limit).into(),
            other => ApiError::BadRequest(format!("invalid JSON body: {other}")).into(),
        }
    })
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid query: {err}")).into())
}

pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid path: {err}")).into())
}

/// The plain feed's refusal of a connection, in the error body of the API.
impl ResponseError for crate::feed::AtCapacity {
    fn status_code(&self) -> StatusCode {
        match self {
            crate::feed::AtCapacity::Full => StatusCode::SERVICE_UNAVAILABLE,
            crate::feed::AtCapacity::PerIp => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            crate::feed::AtCapacity::Full => "feed_full",
            crate::feed::AtCapacity::PerIp => "feed_ip_limit",
        };
        HttpResponse::build(self.status_code()).json(ErrorBody { ok: false, error: self.to_string(), code })
    }
}

/// engine.io's errors, in its own body (`{"code": N, "message": "…"}`): its clients read nothing else.
impl ResponseError for crate::feed::EioError {
    fn status_code(&self) -> StatusCode {
        use crate::feed::EioError as E;
        match self {
            E::Full => StatusCode::SERVICE_UNAVAILABLE,
            E::PerIp => StatusCode::TOO_MANY_REQUESTS,
            E::UnknownTransport | E::UnknownSid | E::BadHandshakeMethod | E::BadRequest | E::UnsupportedVersion => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        use crate::feed::EioError as E;
        // engine.io's numbering: the capacity refusals share "forbidden" (4).
        let code = match self {
            E::UnknownTransport => 0,
            E::UnknownSid => 1,
            E::BadHandshakeMethod => 2,
            E::BadRequest => 3,
            E::Full | E::PerIp => 4,
            E::UnsupportedVersion => 5,
        };
        HttpResponse::build(self.status_code())
            .insert_header(("Access-Control-Allow-Origin", "*"))
            .json(serde_json::json!({ "code": code, "message": self.to_string() }))
    }
}
