//! [`RemoteNode`]: the operations of a node ([`berth_api::Node`]) over berthd's REST API,
//! following [`berth_api::agent::ROUTES`]: HTTPS with the node's pinned certificate, or the
//! unix socket on the node itself. Errors come back as the API's `berth_api::Error` (the
//! server's `{"error": {kind, message, cause}}`, or the kind of the status), so a client
//! prints a remote failure exactly as a local one.

mod agent;
pub mod config;
pub mod error;
pub mod http;
mod node;
pub mod tls;
pub mod ws;

#[cfg(test)]
mod tests;

pub use config::{Remote, Remotes};
pub use error::ClientError;
pub use http::Endpoint;
pub use tls::Fingerprint;

use berth_api::agent::{Operation, OperationState, API_PREFIX};
use berth_api::{Error, ErrorKind, Progress};
use http::{Conn, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Largest JSON answer read (a list of 1000 containers is well under 2 MiB).
const MAX_JSON: u64 = 64 * 1024 * 1024;
/// How long an ordinary request may take; longer ones (stats sampling, stop) add theirs.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Interval of polling a long operation.
const POLL: Duration = Duration::from_millis(200);

/// The answer of [`RemoteNode::raw`].
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub reason: String,
    /// Names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The API error this answer carries (not a success).
    pub fn error(&self) -> Error {
        error_of(self.status, &self.reason, &self.body)
    }
}

/// A node reached over the network or its unix socket.
pub struct RemoteNode {
    endpoint: Endpoint,
    pin: Option<Fingerprint>,
    token: Option<String>,
}

impl RemoteNode {
    /// A node at `endpoint`; over HTTPS only the certificate `pin` is trusted.
    pub fn new(
        endpoint: Endpoint,
        pin: Option<Fingerprint>,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        if matches!(endpoint, Endpoint::Https { .. }) && pin.is_none() {
            return Err(ClientError::Invalid(format!(
                "{endpoint}: an https node needs its certificate's fingerprint"
            )));
        }
        if let Some(t) = &token {
            config::validate_token(t)?;
        }
        Ok(RemoteNode {
            endpoint,
            pin,
            token,
        })
    }

    /// The remote `name` of the remotes file; the token from `token` (e.g. `BERTH_TOKEN`)
    /// when given, else the stored one.
    pub fn from_remote(remote: &Remote, token: Option<String>) -> Result<Self, ClientError> {
        RemoteNode::new(
            remote.endpoint()?,
            remote.pin(),
            token.or_else(|| remote.token.clone()),
        )
    }

    /// The target of a migration, as its source's berthd reaches it: HTTPS only, its
    /// certificate pinned, the caller's token (the connector of `LocalNode`).
    pub fn for_migration(t: &berth_api::MigrateTarget) -> Result<Self, ClientError> {
        let r = Remote {
            url: t.url.clone(),
            fingerprint: Some(t.fingerprint.clone()),
            token: Some(t.token.clone()),
        };
        r.validate("target")?;
        if !matches!(r.endpoint()?, Endpoint::Https { .. }) {
            return Err(ClientError::Invalid(format!(
                "a migration target must be an https URL, not {}",
                t.url
            )));
        }
        RemoteNode::from_remote(&r, None)
    }

    /// The target of a migration to `name`, from the caller's `berth remote` list (its
    /// stored token: `BERTH_TOKEN` is the selected remote's).
    pub fn migration_target(
        remotes: &Remotes,
        name: &str,
    ) -> Result<berth_api::MigrateTarget, ClientError> {
        let r = remotes.get(name)?;
        let (Some(fp), Some(token)) = (&r.fingerprint, &r.token) else {
            return Err(ClientError::Invalid(format!(
                "remote {name:?} needs an https URL with its fingerprint and a stored token to be a migration target: `berth remote remove {name}`, then `berth remote add {name} URL --token …`"
            )));
        };
        Ok(berth_api::MigrateTarget {
            url: r.url.clone(),
            fingerprint: fp.clone(),
            token: token.clone(),
            name: name.to_string(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn url(&self) -> String {
        self.endpoint.to_string()
    }

    fn connect(&self) -> Result<Conn, ClientError> {
        http::connect(&self.endpoint, self.pin).map(|(c, _)| c)
    }

    /// A connection with its read timeout set, the URL (for errors) and the full path.
    fn open(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> berth_api::Result<(Conn, String, String)> {
        let url = self.url();
        let conn = self.connect()?;
        conn.set_read_timeout(timeout)
            .map_err(|source| ClientError::Connect {
                url: url.clone(),
                source,
            })?;
        Ok((conn, url, format!("{API_PREFIX}{path}")))
    }

    /// The API error of an answer that is not a success.
    fn refused(mut resp: Response, url: &str) -> Error {
        let body = resp.read_body(1024 * 1024, url).unwrap_or_default();
        error_of(resp.status, &resp.reason, &body)
    }

    /// Sends one request; any answer that is not a success becomes the API error it carries.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> berth_api::Result<Response> {
        let (mut conn, url, full) = self.open(path, timeout)?;
        tracing::debug!(method, path = %full, "request");
        http::write_request(
            &mut conn,
            &self.endpoint,
            method,
            &full,
            self.token.as_deref(),
            body.as_deref(),
        )
        .map_err(|source| ClientError::Connect {
            url: url.clone(),
            source,
        })?;
        let resp = http::read_response(conn, &url)?;
        tracing::debug!(status = resp.status, "answer");
        if (200..300).contains(&resp.status) {
            return Ok(resp);
        }
        Err(Self::refused(resp, &url))
    }

    /// One request outside the JSON API (the backup store's restic REST protocol, under
    /// `/api/v1`): extra `headers`, a raw body of `parts`; the answer whatever its status,
    /// its body read up to `limit` bytes (an error's up to 1 MiB). A HEAD's body is empty.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        parts: &[&[u8]],
        limit: u64,
    ) -> berth_api::Result<RawAnswer> {
        let (mut conn, url, full) = self.open(path, Some(REQUEST_TIMEOUT))?;
        tracing::debug!(method, path = %full, "raw request");
        let sent = http::write_request_raw(
            &mut conn,
            &self.endpoint,
            &http::RawRequest {
                method,
                path: &full,
                token: self.token.as_deref(),
                headers,
                parts,
            },
            Duration::from_secs(2),
        );
        if let Err(source) = conn.set_read_timeout(Some(REQUEST_TIMEOUT)) {
            return Err(ClientError::Connect { url, source }.into());
        }
        let mut resp = match sent {
            // Answered at its head: the answer, the body not sent.
            Ok(Some(head)) => http::read_response_from(
                std::io::Read::chain(std::io::Cursor::new(head), conn),
                &url,
            )?,
            Ok(None) => http::read_response(conn, &url)?,
            // A server that refused may have closed before the whole body: its answer
            // says why, when it can still be read.
            Err(source) => http::read_response(conn, &url).map_err(|_| ClientError::Connect {
                url: url.clone(),
                source,
            })?,
        };
        let ok = (200..300).contains(&resp.status);
        let body = if method == "HEAD" {
            vec![]
        } else {
            resp.read_body(if ok { limit } else { 1024 * 1024 }, &url)?
        };
        Ok(RawAnswer {
            status: resp.status,
            reason: resp.reason.clone(),
            headers: std::mem::take(&mut resp.headers),
            body,
        })
    }

    /// Sends a request whose body streams from `body` (chunked); the answer as [`Self::send`].
    fn send_stream(
        &self,
        method: &str,
        path: &str,
        body: &mut dyn std::io::Read,
        timeout: Option<Duration>,
    ) -> berth_api::Result<Response> {
        let (mut conn, url, full) = self.open(path, timeout)?;
        tracing::debug!(method, path = %full, "streamed request");
        let sent = http::write_request_stream(
            &mut conn,
            &self.endpoint,
            method,
            &full,
            self.token.as_deref(),
            body,
            Duration::from_secs(2),
        );
        if let Err(source) = conn.set_read_timeout(timeout) {
            return Err(ClientError::Connect { url, source }.into());
        }
        if let Ok(http::Streamed::Answered(head)) = sent {
            // Refused before the body: the answer, its head already read.
            let resp = http::read_response_from(
                std::io::Read::chain(std::io::Cursor::new(head), conn),
                &url,
            )?;
            if (200..300).contains(&resp.status) {
                return Err(ClientError::Protocol {
                    url,
                    why: "the node answered before it took the body".into(),
                }
                .into());
            }
            return Err(Self::refused(resp, &url));
        }
        if let Err(e) = &sent {
            if let Some(l) = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<http::LocalRead>())
            {
                return Err(Error::invalid(format!("reading the data to send: {}", l.0)));
            }
        }
        // A server that refused the request may have closed before taking the body: its
        // answer says why.
        let resp = match http::read_response(conn, &url) {
            Ok(r) => r,
            Err(e) => {
                return Err(match sent {
                    Err(source) => ClientError::Connect { url, source }.into(),
                    Ok(_) => e.into(),
                })
            }
        };
        if (200..300).contains(&resp.status) {
            if let Err(source) = sent {
                return Err(ClientError::Connect { url, source }.into());
            }
            return Ok(resp);
        }
        Err(Self::refused(resp, &url))
    }

    fn json_body<B: Serialize + ?Sized>(body: &B) -> berth_api::Result<Vec<u8>> {
        serde_json::to_vec(body)
            .map_err(|e| Error::internal(format!("cannot encode the request: {e}")))
    }

    /// A request whose answer is the JSON of `T`.
    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> berth_api::Result<T> {
        let url = self.url();
        let mut resp = self.send(method, path, body, Some(timeout))?;
        let bytes = resp.read_body(MAX_JSON, &url)?;
        decode(&bytes, &url)
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> berth_api::Result<T> {
        self.call("GET", path, None, REQUEST_TIMEOUT)
    }

    /// A request whose answer carries nothing (`204`, or a body that is not read).
    fn call_unit(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> berth_api::Result<()> {
        let url = self.url();
        let mut resp = self.send(method, path, body, Some(timeout))?;
        resp.read_body(MAX_JSON, &url)?;
        Ok(())
    }

    /// A long operation: `202` + [`Operation`], polled at `GET /operations/ID` until it
    /// ends, its progress fed to `progress`. A server that answers at once (`200`/`201`
    /// with the result) is taken as it is.
    fn operation<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        progress: &dyn Progress,
    ) -> berth_api::Result<T> {
        let url = self.url();
        let mut resp = self.send("POST", path, Some(body), Some(REQUEST_TIMEOUT))?;
        let status = resp.status;
        let bytes = resp.read_body(MAX_JSON, &url)?;
        if status != 202 {
            return decode(&bytes, &url);
        }
        let mut op: Operation = decode(&bytes, &url)?;
        let mut phase = String::new();
        let mut shown = (0, None);
        let mut files = None;
        loop {
            if op.progress.phase != phase {
                phase = op.progress.phase.clone();
                if !phase.is_empty() {
                    progress.message(&phase);
                }
            }
            let now = (op.progress.done, op.progress.total);
            if now != shown {
                shown = now;
                progress.update(now.0, now.1);
            }
            if op.progress.files.is_some() && op.progress.files != files {
                files = op.progress.files;
                progress.files(files.unwrap_or(0));
            }
            match op.state {
                OperationState::Running => {}
                OperationState::Succeeded => {
                    let v = op.result.unwrap_or(serde_json::Value::Null);
                    return serde_json::from_value(v).map_err(|e| {
                        ClientError::Protocol {
                            url,
                            why: format!("operation {} result: {e}", op.id),
                        }
                        .into()
                    });
                }
                OperationState::Failed | OperationState::Cancelled => {
                    return Err(op.error.unwrap_or_else(|| {
                        let what = if op.state == OperationState::Failed {
                            "failed"
                        } else {
                            "was cancelled"
                        };
                        Error::internal(format!("operation {} ({}) {what}", op.id, op.kind))
                    }));
                }
            }
            std::thread::sleep(POLL);
            op = self.get(&format!("/operations/{}", http::enc(&op.id)))?;
        }
    }
}

/// The JSON of `T`; unknown fields of an answer are ignored where the type allows (wire
/// types grow by addition).
fn decode<T: DeserializeOwned>(bytes: &[u8], url: &str) -> berth_api::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        ClientError::Protocol {
            url: url.to_string(),
            why: e.to_string(),
        }
        .into()
    })
}

/// The API error of an answer that is not a success: its `{"error": {...}}` when it has
/// one (read leniently: a field this client does not know is dropped, not fatal), else
/// the kind of the status.
pub fn error_of(status: u16, reason: &str, body: &[u8]) -> Error {
    let status_kind = ErrorKind::from_http_status(status);
    if let Ok(b) = serde_json::from_slice::<berth_api::ErrorBody>(body) {
        return b.error;
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let e = &v["error"];
        if let Some(message) = e["message"].as_str() {
            let kind = serde_json::from_value(e["kind"].clone()).unwrap_or(status_kind);
            let cause = serde_json::from_value(e["cause"].clone()).ok();
            return Error {
                kind,
                message: message.to_string(),
                cause,
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let first = text.lines().next().unwrap_or("").trim();
    let mut msg = format!("the node answered {status} {reason}")
        .trim()
        .to_string();
    if !first.is_empty() && first.len() < 200 {
        msg.push_str(": ");
        msg.push_str(first);
    }
    Error::new(status_kind, msg)
}

/// The fingerprint of the certificate the node at `endpoint` shows (trust on first use:
/// nothing is verified but the handshake).
pub fn probe_fingerprint(endpoint: &Endpoint) -> Result<Fingerprint, ClientError> {
    let (_conn, seen) = http::connect(endpoint, None)?;
    seen.ok_or_else(|| ClientError::Invalid(format!("{endpoint} has no certificate to pin")))
}
