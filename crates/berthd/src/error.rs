//! Errors of berthd, and the one place where an API error becomes an HTTP answer:
//! `{"error": {"kind", "message", "cause"}}` with the kind's status. Also the extractors
//! that turn malformed input into such errors instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_api::{Error, ErrorBody, ErrorKind};
use serde::de::DeserializeOwned;

/// Errors of starting and running berthd (not of requests: those are [`ApiError`]s).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {err}")]
    Io {
        path: std::path::PathBuf,
        err: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Api(#[from] Error),
}

impl DaemonError {
    pub fn io(path: impl Into<std::path::PathBuf>, err: std::io::Error) -> Self {
        DaemonError::Io {
            path: path.into(),
            err,
        }
    }
    /// The API kind of this error (for logs and exit codes).
    pub fn kind(&self) -> ErrorKind {
        match self {
            DaemonError::Config(_) => ErrorKind::Invalid,
            DaemonError::Io { .. } | DaemonError::Tls(_) => ErrorKind::Internal,
            DaemonError::Api(e) => e.kind,
        }
    }
}

/// An API error as an answer.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<berth_auth::AuthError> for ApiError {
    fn from(e: berth_auth::AuthError) -> Self {
        ApiError(e.into())
    }
}

impl From<berth_api::InputError> for ApiError {
    fn from(e: berth_api::InputError) -> Self {
        ApiError(e.into())
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

pub fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError(Error::invalid(msg))
}

pub fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError(Error::new(ErrorKind::Forbidden, msg))
}

/// The answer of an error: the only place where kinds become statuses.
pub fn error_response(e: &Error) -> Response {
    let status =
        StatusCode::from_u16(e.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if e.kind == ErrorKind::Internal {
        tracing::warn!(message = %e.message, "internal error");
    }
    let mut r = (status, axum::Json(ErrorBody { error: e.clone() })).into_response();
    if e.kind == ErrorKind::TooManyRequests {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    if e.kind == ErrorKind::Unauthorized {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"berthd\""),
        );
    }
    r
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self.0)
    }
}

/// A JSON body, parsed strictly: malformed JSON, wrong types and unknown fields (at any
/// depth, also in types that tolerate them elsewhere) are `invalid`; a body over the limit
/// is `payload_too_large`. An empty body is `null` (for optional bodies).
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<std::sync::Arc<crate::state::AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(
        req: Request,
        st: &std::sync::Arc<crate::state::AppState>,
    ) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body(), st.cfg.body_limit).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// At most this much of a body over the limit is read and dropped, for at most
/// [`DRAIN_TIME`], before the 413 answer: a client still sending then reads the answer
/// instead of a reset connection (over TLS, a close with unread data is a reset).
const DRAIN_MAX: usize = 16 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// A request body of at most `limit` bytes.
pub async fn read_body(mut body: axum::body::Body, limit: usize) -> ApiResult<Bytes> {
    use http_body_util::BodyExt;
    let mut buf = Vec::new();
    loop {
        let Some(frame) = body.frame().await else {
            return Ok(Bytes::from(buf));
        };
        let frame = frame.map_err(|e| invalid(format!("unreadable request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            break;
        }
        buf.extend_from_slice(&data);
    }
    drop(buf);
    let mut drained = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(d) = frame.into_data() {
                drained += d.len();
                if drained > DRAIN_MAX {
                    break;
                }
            }
        }
    })
    .await;
    Err(ApiError(Error::new(
        ErrorKind::PayloadTooLarge,
        "request body over the size limit",
    )))
}

/// Parses a request body strictly (see [`JsonBody`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let text: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"null"
    } else {
        bytes
    };
    let mut de = serde_json::Deserializer::from_slice(text);
    let mut unknown = Vec::new();
    let v: T = serde_ignored::deserialize(&mut de, |path| {
        if unknown.len() < 8 {
            unknown.push(path.to_string())
        }
    })
    .map_err(|e| invalid(format!("invalid request body: {e}")))?;
    de.end()
        .map_err(|e| invalid(format!("invalid request body: {e}")))?;
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "invalid request body: unknown field(s) {}",
            unknown.join(", ")
        )));
    }
    Ok(v)
}

/// Turns every error answer that is not JSON yet (axum's rejections: 405, bad paths or
/// queries) into an [`ErrorBody`] of the status's kind, with that kind's status.
pub async fn json_errors(req: Request, next: axum::middleware::Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let mut res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    // A refused request's body may be left unread: the connection cannot carry another.
    if has_body {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let body = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .unwrap_or_default();
    let mut msg: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    if msg.is_empty() {
        msg = status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase();
    }
    let mut r = error_response(&Error::new(
        ErrorKind::from_http_status(status.as_u16()),
        msg,
    ));
    // The kind's status, as everywhere (a 405 becomes 400 `invalid`): one kind, one status.
    if has_body {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    let path: String = uri.path().chars().take(200).collect();
    ApiError(Error::not_found(format!("no route {path}")))
}
