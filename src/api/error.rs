//! Where errors meet HTTP: the one place that turns them into status codes and the stable JSON error body
//! `{"ok": false, "error": "<message>", "code": "<stable_code>"}` (the market API's envelope plus a code that
//! clients can match on). Internal causes are logged, never sent: a 5xx says only what is unavailable.
//!
//! Every answer, errors included, is JSON: iExec's SDK refuses any other content type, even on a 404.

use crate::market::PublishError;
use actix_web::{HttpResponse, ResponseError, http::StatusCode};

pub use crate::wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query, path or body that breaks a validation rule; the message is the peer's (yup's).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Publish(#[from] PublishError),
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
    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Publish(e) => e.code(),
            ApiError::Auth(e) => e.code(),
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
        ApiError::Publish(PublishError::Store(e))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        use PublishError as P;
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Auth(
                crate::api::auth::AuthError::Store(_)
                | crate::api::auth::AuthError::Chain
                | crate::api::auth::AuthError::NoRandomness,
            ) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Auth(_) => StatusCode::FORBIDDEN,
            ApiError::Publish(e) => match e {
                P::InvalidOrder(_) | P::ValueTooLarge(_) => StatusCode::BAD_REQUEST,
                P::OrderTooLarge { .. } | P::ParamsTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                P::Chain(_) | P::Store(_) | P::MatchingDown | P::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
                // The peer answers every refusal of a publication or unpublication with 403 (Dragon's own
                // refusals too: a claimed hash that is not the order's is refused as a bad signature is).
                P::HashMismatch { .. }
                | P::Duplicate(_)
                | P::Closed { .. }
                | P::UnknownAsset { .. }
                | P::NotOwner { .. }
                | P::MissingSignature { .. }
                | P::InvalidSignature(_)
                | P::FullyConsumed(_)
                | P::InsufficientStake { .. }
                | P::TooManyOrders { .. }
                | P::BookFull(_)
                | P::NoAppOrder { .. }
                | P::AppPriceTooLow { .. }
                | P::NoDatasetOrder { .. }
                | P::DatasetPriceTooLow { .. }
                | P::UnsupportedRestriction { .. }
                | P::NotPublished { .. }
                | P::NotSigner { .. }
                | P::NothingToUnpublish { .. } => StatusCode::FORBIDDEN,
            },
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
            ApiError::Publish(PublishError::Store(_)) => "the store is unavailable".to_owned(),
            ApiError::Publish(PublishError::Chain(_)) => "the chain is unavailable".to_owned(),
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
