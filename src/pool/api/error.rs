//! Where the pool's errors meet HTTP: [`PoolApiError`] gives every failure a status and the stable JSON body
//! `{"ok": false, "error": "...", "code": "..."}`; internal causes are logged, never sent.

use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use alloy::primitives::B256;

#[derive(Debug, thiserror::Error)]
pub enum PoolApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("not a member of this pool: {0}")]
    NotMember(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the worker is not registered: POST /workers/register first")]
    NotRegistered,
    #[error("a worker may not report {0}: the pool sets it")]
    StatusNotAllowed(&'static str),
    #[error("the chain does not show it: {0}")]
    NotOnChain(String),
    #[error("no archive of this task is stored: POST /results/<taskid> first")]
    NotUploaded,
    #[error("the archive of task {0:#x} is stored already; the first accepted archive is final")]
    ResultExists(B256),
    #[error("request body too large (at most {0} bytes)")]
    TooLarge(usize),
    #[error("{0}")]
    Timeout(&'static str),
    #[error("too many requests: at most {0} per second from one address")]
    RateLimited(u32),
    #[error("the result archive is not usable: {0}")]
    BadArchive(String),
    #[error("the archive's digest {found:#x} is not the result digest {revealed:#x} revealed on chain")]
    ResultMismatch { found: B256, revealed: B256 },
    /// The chain did not answer (in time): nothing was decided, the call may be made again.
    #[error("the chain is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PoolApiError {
    fn code(&self) -> &'static str {
        match self {
            PoolApiError::BadRequest(_) => "bad_request",
            PoolApiError::Unauthorized(_) => "unauthorized",
            PoolApiError::Forbidden(_) => "forbidden",
            PoolApiError::NotMember(_) => "not_member",
            PoolApiError::NotFound(_) => "not_found",
            PoolApiError::NotRegistered => "not_registered",
            PoolApiError::StatusNotAllowed(_) => "status_not_allowed",
            PoolApiError::NotOnChain(_) => "not_on_chain",
            PoolApiError::NotUploaded => "not_uploaded",
            PoolApiError::ResultExists(_) => "result_exists",
            PoolApiError::TooLarge(_) => "body_too_large",
            PoolApiError::Timeout(_) => "timeout",
            PoolApiError::RateLimited(_) => "rate_limited",
            PoolApiError::BadArchive(_) => "bad_archive",
            PoolApiError::ResultMismatch { .. } => "result_mismatch",
            PoolApiError::Unavailable(_) => "unavailable",
            PoolApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for PoolApiError {
    fn from(e: StoreError) -> Self {
        PoolApiError::Internal(e.into())
    }
}

impl From<tokio_postgres::Error> for PoolApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        PoolApiError::Internal(e.into())
    }
}

impl ResponseError for PoolApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            PoolApiError::BadRequest(_) | PoolApiError::StatusNotAllowed(_) => StatusCode::BAD_REQUEST,
            PoolApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            PoolApiError::Forbidden(_) | PoolApiError::NotMember(_) => StatusCode::FORBIDDEN,
            PoolApiError::NotFound(_) => StatusCode::NOT_FOUND,
            PoolApiError::NotRegistered
            | PoolApiError::NotOnChain(_)
            | PoolApiError::NotUploaded
            | PoolApiError::ResultExists(_) => StatusCode::CONFLICT,
            PoolApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            PoolApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            PoolApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            PoolApiError::BadArchive(_) | PoolApiError::ResultMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            PoolApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PoolApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            PoolApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "pool API internal error");
            }
            PoolApiError::Unavailable(why) => tracing::warn!(reason = %why, "pool API: chain unavailable"),
            _ => {}
        }
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, PoolApiError::RateLimited(_)) {
            resp.insert_header(("retry-after", "1"));
        }
        resp.json(serde_json::json!({"ok": false, "error": self.to_string(), "code": self.code()}))
    }
}

pub(super) type Res<T> = Result<T, PoolApiError>;
