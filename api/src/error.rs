//! The API's one error type: every failure becomes a small JSON body with a stable `code` and a
//! human `message`. A 5xx logs its cause and tells the client nothing internal.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the X-Hub-Signature-256 header is missing")]
    MissingSignature,
    #[error("the X-Hub-Signature-256 header does not match the body for any configured secret")]
    InvalidSignature,
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("the {header} header {reason}")]
    InvalidHeader {
        header: &'static str,
        reason: String,
    },
    #[error(
        "content type {0:?} is not supported; GitHub sends application/json or application/x-www-form-urlencoded"
    )]
    UnsupportedContentType(String),
    #[error("the body is not a JSON object: {0}")]
    InvalidJson(String),
    #[error("the form body has no `payload` field")]
    MissingFormPayload,
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("could not read the request body")]
    BodyRead,
    #[error("the body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    #[error("no route for this method and path")]
    NotFound,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    /// The delivery could not be stored; GitHub records a failure and can redeliver it.
    #[error("the delivery could not be stored right now; redeliver it later")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
    /// No credentials, or credentials that do not hold (401).
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Missing(String),
    /// The request clashes with stored state; `details` carries that state when it helps.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        details: Option<serde_json::Value>,
    },
    /// Well-formed but not acceptable (422).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// Not readable as the endpoint's input (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<serde_json::Value>,
}

/// Every error's body, as the OpenAPI document describes it.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Only its schema is used: errors are written as `ErrorBody`.
pub struct ErrorResponse {
    /// Stable, for programs (`invalid_range`, `unauthorized`, …).
    code: String,
    /// For people.
    message: String,
    /// The stored state a conflict is about, when it helps.
    #[schema(value_type = Option<Object>)]
    details: Option<serde_json::Value>,
}

/// The answers every `/api/v1` read may give besides its own, as the OpenAPI document lists
/// them (`responses((status = 200, body = …), ReadErrors)`).
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)] // Only its responses are used, by the OpenAPI document.
pub enum ReadErrors {
    /// Not modified: the `If-None-Match` tag names the current version (no body).
    #[response(status = 304)]
    NotModified,
    /// The path or query cannot be read (`invalid_query`, `invalid_path`, `invalid_cursor`).
    #[response(status = 400)]
    BadRequest(ErrorResponse),
    /// No valid access token (`unauthorized`, `token_expired`, `invalid_token`).
    #[response(status = 401)]
    Unauthorized(ErrorResponse),
    /// The caller's role or place in the organization does not reach this (`forbidden`).
    #[response(status = 403)]
    Forbidden(ErrorResponse),
    /// Nothing of that id in the caller's organization (`not_found`).
    #[response(status = 404)]
    NotFound(ErrorResponse),
    /// Well-formed but not acceptable (`invalid_range`, `invalid_limit`, `invalid_window`).
    #[response(status = 422)]
    Unprocessable(ErrorResponse),
}

impl ApiError {
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(format!("database: {e}"))
    }
}

impl From<deadpool_postgres::tokio_postgres::Error> for ApiError {
    fn from(e: deadpool_postgres::tokio_postgres::Error) -> Self {
        Self::Internal(format!("postgres: {e}"))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Internal(format!("read pool: {e}"))
    }
}

impl From<jobs::people::PeopleError> for ApiError {
    fn from(e: jobs::people::PeopleError) -> Self {
        use jobs::people::PeopleError as E;
        match e {
            E::NotFound(what) => Self::Missing(what.to_owned()),
            E::Conflict { code, message } => Self::Conflict {
                code,
                message,
                details: None,
            },
            E::Invalid { code, message } => Self::Unprocessable { code, message },
            E::Forbidden(message) => Self::Forbidden(message),
            E::Db(e) => e.into(),
        }
    }
}

impl From<jobs::attendance::sessions::SessionError> for ApiError {
    fn from(e: jobs::attendance::sessions::SessionError) -> Self {
        use jobs::attendance::sessions::SessionError as E;
        let message = e.to_string();
        match e {
            E::AlreadyOpen(open) => Self::Conflict {
                code: "session_open",
                message,
                details: serde_json::to_value(&*open)
                    .ok()
                    .map(|s| serde_json::json!({ "session": s })),
            },
            E::Overlap(other) => Self::Conflict {
                code: "session_overlap",
                message,
                details: serde_json::to_value(&*other)
                    .ok()
                    .map(|s| serde_json::json!({ "session": s })),
            },
            E::IdTaken => Self::Conflict {
                code: "session_id_taken",
                message,
                details: None,
            },
            E::NotFound => Self::Missing(message),
            E::Invalid { code, message } => Self::Unprocessable { code, message },
            E::Db(e) => e.into(),
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match e {
            R::JsonDataError(e) => Self::unprocessable("invalid_body", e.body_text()),
            R::MissingJsonContentType(_) => Self::BadRequest {
                code: "unsupported_content_type",
                message: "send the body as JSON with `Content-Type: application/json`".to_owned(),
            },
            other => Self::BadRequest {
                code: "invalid_json",
                message: other.body_text(),
            },
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::BadRequest {
            code: "invalid_query",
            message: e.body_text(),
        }
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(e: axum::extract::rejection::PathRejection) -> Self {
        Self::BadRequest {
            code: "invalid_path",
            message: e.body_text(),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingSignature | Self::InvalidSignature => StatusCode::UNAUTHORIZED,
            Self::MissingHeader(_)
            | Self::InvalidHeader { .. }
            | Self::UnsupportedContentType(_)
            | Self::InvalidJson(_)
            | Self::MissingFormPayload
            | Self::BodyRead => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Missing(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Stable, machine-readable: clients and dashboards key on it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::InvalidSignature => "invalid_signature",
            Self::MissingHeader(_) => "missing_header",
            Self::InvalidHeader { .. } => "invalid_header",
            Self::UnsupportedContentType(_) => "unsupported_content_type",
            Self::InvalidJson(_) => "invalid_json",
            Self::MissingFormPayload => "missing_form_payload",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyRead => "body_read_error",
            Self::BodyTimeout(_) => "body_timeout",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable(_) => "storage_unavailable",
            Self::Internal(_) => "internal_error",
            Self::Unauthorized { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::BadRequest { code, .. } => code,
            Self::Forbidden(_) => "forbidden",
            Self::Missing(_) => "not_found",
            Self::TooManyRequests { .. } => "too_many_requests",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Unavailable(cause) => tracing::error!(cause = %cause, "delivery not stored"),
            Self::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            _ => {}
        }
        let status = self.status();
        let code = self.code();
        let message = self.to_string();
        let (details, retry_after, challenge) = match self {
            Self::Conflict { details, .. } => (details, None, false),
            Self::TooManyRequests { retry_after, .. } => (None, Some(retry_after), false),
            Self::Unauthorized { .. } => (None, None, true),
            _ => (None, None, false),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                code,
                message,
                details,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(after) = retry_after
            && let Ok(value) = after.as_secs().max(1).to_string().parse()
        {
            headers.insert(axum::http::header::RETRY_AFTER, value);
        }
        if challenge {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
