//! Errors of the API: a kind (one HTTP status each, mapped here and nowhere else), a message
//! that describes the fault (not how a particular client is driven), and an optional
//! machine-readable cause from which a client adds its own advice (the CLI names its flags
//! and commands; the web console its buttons).

use serde::{Deserialize, Serialize};

/// The class of an error. Serialised snake_case: a stable interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Malformed or refused input: a bad value, name, size, body or request.
    Invalid,
    /// The object (container, template, network, process, service, operation, user) does not
    /// exist, or the caller may not know that it does (an owner asking for another's container).
    NotFound,
    /// The request clashes with what exists: an ID, name, address or range already in use.
    Conflict,
    /// The object is not in a state that allows the request (running, stopped, suspended,
    /// in use, not initialised).
    Precondition,
    /// No valid credentials.
    Unauthorized,
    /// Valid credentials without the right to do this.
    Forbidden,
    /// Too many requests from this source (failed logins): try later.
    TooManyRequests,
    /// A request body over the size limit.
    PayloadTooLarge,
    /// The node cannot do it here and now (a kernel feature, a missing program).
    Unavailable,
    /// A fault of the node itself (I/O error, a kernel call failed).
    Internal,
}

impl ErrorKind {
    /// The HTTP status of this kind: the only place where kinds meet statuses.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Invalid => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Precondition => 412,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    /// The kind of an HTTP status (for clients reading an answer that carries no JSON error).
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            400 | 405 | 415 | 422 => ErrorKind::Invalid,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            412 => ErrorKind::Precondition,
            413 => ErrorKind::PayloadTooLarge,
            429 => ErrorKind::TooManyRequests,
            503 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Precondition => "precondition",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::TooManyRequests => "too_many_requests",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client needs to give advice of its own. Each names the object concerned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Cause {
    /// A value of a request field (named as vzctl names the option: `ram`, `ipadd`…).
    InvalidField {
        field: String,
        value: String,
        why: String,
    },
    /// The node root has no `node.toml`.
    NodeNotInitialised { root: String },
    /// The container runs (and the request needs it stopped, or a force flag).
    ContainerRunning { ctid: u32 },
    /// The container is frozen (and the request needs it thawed).
    ContainerSuspended { ctid: u32 },
    /// A running container cannot take these changes live.
    NeedsRestart { ctid: u32, reasons: Vec<String> },
    /// No template of that name.
    TemplateNotFound { name: String },
    /// No virtual network of that name.
    NetworkNotFound { name: String },
    /// No host adapter of that name.
    AdapterNotFound { name: String },
    /// A name used by several containers (hand-edited files).
    AmbiguousName { name: String, ctids: Vec<u32> },
    /// The container runs its template's init, which manages its own services.
    TemplateInit { ctid: u32 },
    /// Two containers' configs clash (hand-edited or copied files): `field` is `name`,
    /// `ip`, `mac` (of `adapter`, on `network`) or `idmap`; `value` the shared one.
    Conflict {
        ctid: u32,
        other: u32,
        field: String,
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adapter: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        network: Option<String>,
    },
    /// The container's host ID range is taken or invalid (the registry of ADR 0009).
    IdRangeTaken { ctid: u32 },
    /// The disks promised on the node would pass its disk overcommit ratio.
    DiskOvercommit { ratio: f64 },
    /// The node filesystem lacks the free space asked for (beyond its reserve).
    NodeSpace,
    /// A port forward of a container that has no address.
    NoAddress { ctid: u32 },
    /// A file of the node root refused on load: `object` is `container`, `network`,
    /// `template`, `sample` or `node`, `name` its CTID or name.
    InvalidFile { object: String, name: String },
}

/// An error as every implementation of [`crate::Node`] reports it, and as it travels in the
/// REST API: `{"error": {"kind": "...", "message": "...", "cause": {...}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{message}")]
#[serde(deny_unknown_fields)]
pub struct Error {
    pub kind: ErrorKind,
    /// One line that describes the fault.
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed: errors travel in every `Result` of the API, and most have none.
    pub cause: Option<Box<Cause>>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            cause: None,
        }
    }
    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Invalid, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }
    pub fn http_status(&self) -> u16 {
        self.kind.http_status()
    }
}

/// The body of an error answer of the REST API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: Error,
}

/// A value refused by one of the validators of this crate (always [`ErrorKind::Invalid`]).
/// Field names are the option names (`--ram`); the wire message names the field without the
/// dashes, and [`Cause::InvalidField`] carries it for a client to name its own way.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("invalid container ID or name {0:?}: {1}")]
    InvalidCtRef(String, &'static str),
    #[error("invalid name {0:?}: {1}")]
    InvalidName(String, &'static str),
    #[error("invalid size {0:?}: use a number with a unit suffix K, M, G or T (e.g. 512M, 10G)")]
    InvalidSize(String),
    #[error("invalid value {0:?} for {1}: {2}")]
    InvalidValue(String, &'static str, String),
    /// A value refused by a validator that has no field of its own to name.
    #[error("{0}")]
    Invalid(String),
    /// A bad service definition, name, startup type or init mode.
    #[error("{0}")]
    BadService(String),
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        match &e {
            InputError::InvalidValue(value, field, why) => {
                let field = field.trim_start_matches('-');
                Error::invalid(format!("invalid value {value:?} for {field}: {why}")).with_cause(
                    Cause::InvalidField {
                        field: field.to_string(),
                        value: value.clone(),
                        why: why.clone(),
                    },
                )
            }
            _ => Error::invalid(e.to_string()),
        }
    }
}

/// Result alias of the API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status_and_back() {
        use ErrorKind::*;
        for k in [
            Invalid,
            NotFound,
            Conflict,
            Precondition,
            Unauthorized,
            Forbidden,
            TooManyRequests,
            PayloadTooLarge,
            Unavailable,
            Internal,
        ] {
            assert_eq!(ErrorKind::from_http_status(k.http_status()), k);
            let j = serde_json::to_string(&k).unwrap();
            assert_eq!(j, format!("\"{}\"", k.as_str()));
        }
    }

    #[test]
    fn wire_form() {
        let e: Error =
            InputError::InvalidValue("1M".into(), "--ram", "the minimum is 16M".into()).into();
        let j = serde_json::to_value(ErrorBody { error: e.clone() }).unwrap();
        assert_eq!(j["error"]["kind"], "invalid");
        assert_eq!(
            j["error"]["message"],
            "invalid value \"1M\" for ram: the minimum is 16M"
        );
        assert_eq!(j["error"]["cause"]["type"], "invalid_field");
        assert_eq!(j["error"]["cause"]["field"], "ram");
        let back: ErrorBody = serde_json::from_value(j).unwrap();
        assert_eq!(back.error, e);
        assert!(serde_json::from_str::<ErrorBody>(
            r#"{"error":{"kind":"invalid","message":"x","extra":1}}"#
        )
        .is_err());
    }
}
