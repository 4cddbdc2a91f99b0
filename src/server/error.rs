//! The one place where domain errors become HTTP answers: RFC 9457 problem JSON with the
//! status codes of PROTOCOL §10.

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ledger::{LedgerError, SubmitError};
use crate::limits::{MAX_BODY_BYTES, RETRY_AFTER_SATURATED_S, RETRY_AFTER_STOPPED_S};
use crate::reject::{RejectClass, Rejection};
use crate::submission::BodyError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<Value>,
    pub expected_seq: Option<u64>,
    /// Sent as `Retry-After` (seconds) with a 503.
    pub retry_after_s: Option<u64>,
    /// The connection is closed after this answer (`Connection: close`): what is left of
    /// the request cannot be trusted to be read in step (a body that timed out).
    pub close: bool,
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
            retry_after_s: None,
            close: false,
        }
    }

    /// 503: more requests at once than the server takes, or no room left to buffer
    /// answers for clients that do not read them; worth retrying soon.
    pub fn saturated(detail: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "saturated",
            "Server saturated",
            detail,
        );
        e.retry_after_s = Some(RETRY_AFTER_SATURATED_S);
        e
    }

    /// 503: the writer stopped after a storage failure; `reason` says what it met.
    /// 503 while the server opens the ledger: only the log's reads answer yet.
    pub fn opening() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "opening",
            "Opening the ledger",
            "the server is opening the ledger; until it is open only entries, the \
             checkpoint, proofs and tiles are answered",
        );
        e.retry_after_s = Some(RETRY_AFTER_SATURATED_S);
        e
    }

    pub fn stopped(reason: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "stopped",
            "Not accepting entries",
            reason,
        );
        e.retry_after_s = Some(RETRY_AFTER_STOPPED_S);
        e
    }

    /// 408: the handler took longer than the request timeout.
    pub fn request_timeout(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "Request timeout",
            detail,
        )
    }

    /// 414: the request target is longer than the server reads.
    pub fn uri_too_long(max_bytes: usize) -> Self {
        Self::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "URI too long",
            format!("the request target is over {max_bytes} bytes"),
        )
    }

    /// 431: the request's header fields are more than the server reads.
    pub fn headers_too_large(max_bytes: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request header fields too large",
            format!("the request's header fields are over {max_bytes} bytes"),
        )
    }

    /// 415: a submission must say it is JSON.
    pub fn unsupported_media_type(got: Option<&str>) -> Self {
        let got = got.map_or("no Content-Type".to_string(), |t| {
            format!("Content-Type {t:?}")
        });
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!("entries are sent as application/json, not with {got}"),
        )
    }

    /// A request body that could not be read: too large (413), too slow (408, and the
    /// connection is closed), or broken (400).
    pub fn body(rejection: &BytesRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Body too large",
                format!("the request body is over {MAX_BODY_BYTES} bytes"),
            );
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
        while let Some(e) = source {
            if e.is::<tower_http::timeout::TimeoutError>() {
                let mut e = Self::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body-timeout",
                    "Request body too slow",
                    "the request body did not arrive within the body timeout",
                );
                e.close = true;
                return e;
            }
            source = e.source();
        }
        Self::bad_request(rejection.body_text())
    }

    /// An answer hyper would have sent with an empty body before any handler ran (a
    /// request head it cannot parse, or one too large to read), as a problem.
    pub fn before_handler(status: StatusCode, max_uri_bytes: usize, max_head_bytes: usize) -> Self {
        let mut e = match status {
            StatusCode::URI_TOO_LONG => Self::uri_too_long(max_uri_bytes),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::new(
                status,
                "headers-too-large",
                "Request header fields too large",
                format!(
                    "the request line and header fields are over {max_head_bytes} bytes, or too many"
                ),
            ),
            _ => Self::new(
                status,
                "bad-request",
                "Bad request",
                "the request line or a header field is not valid HTTP/1.1 (a bad URI, method, \
                 header name or value)",
            ),
        };
        e.close = true;
        e
    }

    /// The problem document (RFC 9457).
    pub fn problem_json(&self) -> String {
        let mut body = json!({
            "type": format!("https://dcledger.example/problems/{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors.clone());
        }
        if let Some(seq) = self.expected_seq {
            body["expected_seq"] = json!(seq);
        }
        body.to_string()
    }

    /// The whole HTTP/1.1 answer as bytes, for the one place that writes below hyper
    /// (answers to requests hyper refused to parse); the connection closes after it.
    pub fn http1_bytes(&self) -> Vec<u8> {
        let body = self.problem_json();
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("Error"),
            body.len()
        );
        if let Some(s) = self.retry_after_s {
            out.push_str(&format!("retry-after: {s}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        out.into_bytes()
    }

    /// The problem for an error of the tower layers: the request timeout or load shedding.
    pub fn from_layer(err: &tower::BoxError) -> Self {
        if err.is::<tower::timeout::error::Elapsed>() {
            Self::request_timeout("the request took longer than the server's request timeout")
        } else {
            Self::saturated(format!(
                "more requests at once than the server takes ({err}); retry shortly"
            ))
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

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
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
            LedgerError::Stopped => {
                ApiError::stopped("the ledger stopped accepting entries after a storage failure")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl ApiError {
    /// The problem for a submission the writer did not take, with the class it is
    /// counted under among the rejections (none for a stopped writer). `batch`: the body
    /// was an array, so a refusal's path starts with the envelope's position (PROTOCOL §10).
    pub fn submission(e: SubmitError, batch: bool) -> (Option<&'static str>, ApiError) {
        match e {
            SubmitError::Rejected(b) => {
                let prefix = if batch {
                    format!("/{}", b.position)
                } else {
                    String::new()
                };
                let class = b.rejection.class.as_str();
                (Some(class), ApiError::rejection(b.rejection, &prefix))
            }
            SubmitError::Body(BodyError::NotJson(e)) => match e.duplicate_key() {
                Some(refusal) => (
                    Some(refusal.class.as_str()),
                    ApiError::rejection(refusal, ""),
                ),
                None => (
                    Some("malformed"),
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "malformed",
                        "Malformed JSON",
                        format!("the body is {e}"),
                    ),
                ),
            },
            SubmitError::Body(e @ BodyError::BatchSize(_)) => {
                (Some("batch_size"), ApiError::bad_request(e.to_string()))
            }
            SubmitError::Stopped(d) => (None, ApiError::stopped(d)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.problem_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.close {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
