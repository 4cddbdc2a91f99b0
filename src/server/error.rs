//! The one place where domain errors become HTTP answers: RFC 9457 problem JSON with the
//! status codes of SPEC §10.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ledger::{LedgerError, SubmitError};
use crate::reject::{RejectClass, Rejection};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<Value>,
    pub expected_seq: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            expected_seq: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    /// A query parameter that is unknown or has a bad value; the problem names it.
    pub fn bad_parameter(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "bad-parameter",
            "Bad query parameter",
            format!("query parameter {name}: {message}"),
        );
        e.errors =
            vec![json!({"path": format!("/query/{name}"), "parameter": name, "message": message})];
        e
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// A refused entry or batch; `prefix` locates it in a batch (`/3`).
    pub fn rejection(r: Rejection, prefix: &str) -> Self {
        let (status, slug, title) = match r.class {
            RejectClass::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Entry too large",
            ),
            RejectClass::Invalid => (StatusCode::BAD_REQUEST, "invalid", "Invalid entry"),
            RejectClass::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Not allowed to sign this",
            ),
            RejectClass::Conflict => (
                StatusCode::CONFLICT,
                "conflict",
                "Conflicts with the ledger",
            ),
            RejectClass::UnknownReference => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-reference",
                "Refers to something unknown",
            ),
        };
        let r = r.prefixed(prefix);
        let mut e = ApiError::new(status, slug, title, r.to_string());
        e.errors = r
            .errors
            .iter()
            .map(|f| json!({"path": f.path, "message": f.message}))
            .collect();
        e.expected_seq = r.expected_seq;
        e
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound(d) => ApiError::not_found(d),
            LedgerError::BadRequest(d) => ApiError::bad_request(d),
            LedgerError::Rejected(b) => ApiError::rejection(b.rejection, ""),
            LedgerError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopped",
                "Ledger stopped",
                "the ledger stopped accepting entries after a storage failure",
            ),
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    other.to_string(),
                )
            }
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Rejected(b) => ApiError::rejection(b.rejection, ""),
            SubmitError::Stopped(d) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopped",
                "Not accepting entries",
                d,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://dcledger.example/problems/{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors);
        }
        if let Some(seq) = self.expected_seq {
            body["expected_seq"] = json!(seq);
        }
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}
