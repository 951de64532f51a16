//! Errors of the client itself (reaching the node, TLS, a malformed answer, the remotes
//! file), each with the API kind it becomes: a [`RemoteNode`](crate::RemoteNode) returns
//! `berth_api::Error` like every implementation of the trait, so the CLI prints remote
//! failures as it prints local ones.

use berth_api::{Error, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node cannot be reached (connect, resolve, the connection broke).
    #[error("cannot reach {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed for another reason than the pin.
    #[error("TLS with {url} failed: {source}")]
    Tls {
        url: String,
        #[source]
        source: rustls::Error,
    },
    /// The node showed another certificate than the pinned one.
    #[error(
        "the certificate of {url} has SHA-256 fingerprint {seen}, not the pinned {pinned}: \
         the node's certificate changed, or this is not the node (check the fingerprint on \
         the node, then pin the new one)"
    )]
    PinMismatch {
        url: String,
        seen: String,
        pinned: String,
    },
    /// The answer is not HTTP, or not the JSON of the expected type.
    #[error("malformed answer from {url}: {why}")]
    Protocol { url: String, why: String },
    /// An I/O error on a local file or stream (the remotes file, stdin, stdout).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A refused value (a remote's name, URL, fingerprint, or the remotes file).
    #[error("{0}")]
    Invalid(String),
    /// No remote of that name.
    #[error("no remote named {0:?}")]
    NoSuchRemote(String),
    /// A remote of that name exists already.
    #[error("a remote named {0:?} exists already")]
    RemoteExists(String),
}

impl ClientError {
    /// The API kind of this error: the one place where client errors meet kinds.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Connect { .. } => ErrorKind::Unavailable,
            ClientError::Tls { .. } => ErrorKind::Unavailable,
            ClientError::PinMismatch { .. } => ErrorKind::Unauthorized,
            ClientError::Protocol { .. } => ErrorKind::Internal,
            ClientError::Io { .. } => ErrorKind::Internal,
            ClientError::Invalid(_) => ErrorKind::Invalid,
            ClientError::NoSuchRemote(_) => ErrorKind::NotFound,
            ClientError::RemoteExists(_) => ErrorKind::Conflict,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        Error::new(e.kind(), e.to_string())
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
