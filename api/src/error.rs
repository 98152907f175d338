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
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
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
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}
