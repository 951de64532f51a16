use std::path::PathBuf;

/// Errors of the model layer. Each message is one line meant for a user.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A value refused by a validator (berth-api's).
    #[error(transparent)]
    Input(#[from] berth_api::InputError),
    /// A value of a file refused by a check that has no field of its own to name.
    #[error("{0}")]
    Invalid(String),
    #[error("node root {0} is not initialised")]
    NodeNotInitialised(PathBuf),
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("container ID {0} is already in use")]
    CtIdInUse(u32),
    #[error("container name {0:?} is already used by container {1}")]
    NameInUse(String, u32),
    #[error("template {0:?} not found")]
    TemplateNotFound(String),
    #[error("template {0:?} already exists")]
    TemplateExists(String),
    #[error("no free user-ID range left on this host")]
    IdRangeExhausted,
    /// A collision or a bad state of the host-wide ID registry (ADR 0009).
    #[error("{0}")]
    IdRegistry(String),
    /// A container's host ID range that is invalid or overlaps another's.
    #[error("{1}")]
    IdRangeTaken(u32, String),
    #[error("no free container ID left")]
    CtIdExhausted,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: malformed file: {msg}")]
    Parse { path: PathBuf, msg: String },
    /// A file of the node root that parses but does not pass the validation that CLI input
    /// gets (a hand-edited or copied file): what is wrong with it and what to do.
    #[error("{}: {reason}; {}", path.display(), of.fix())]
    InvalidFile {
        path: PathBuf,
        reason: String,
        of: FileOf,
    },
}

impl CoreError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            source,
        }
    }
}

impl CoreError {
    /// The class of this error (one HTTP status each, see `berth_api::ErrorKind`).
    pub fn kind(&self) -> berth_api::ErrorKind {
        use berth_api::ErrorKind as K;
        match self {
            CoreError::Input(_) | CoreError::Invalid(_) => K::Invalid,
            CoreError::NodeNotInitialised(_) => K::Precondition,
            CoreError::ContainerNotFound(_) | CoreError::TemplateNotFound(_) => K::NotFound,
            CoreError::CtIdInUse(_) | CoreError::NameInUse(..) | CoreError::TemplateExists(_) => {
                K::Conflict
            }
            CoreError::IdRangeExhausted | CoreError::CtIdExhausted => K::Unavailable,
            CoreError::IdRegistry(_) | CoreError::IdRangeTaken(..) => K::Conflict,
            CoreError::Io { .. } | CoreError::Parse { .. } => K::Internal,
            // A file of the node root that fails its checks: the object cannot be used
            // until an operator corrects or removes it.
            CoreError::InvalidFile { .. } => K::Precondition,
        }
    }

    /// What a client needs to add advice of its own.
    pub fn cause(&self) -> Option<berth_api::Cause> {
        use berth_api::Cause;
        match self {
            CoreError::Input(e) => berth_api::Error::from(e.clone()).cause.map(|c| *c),
            CoreError::NodeNotInitialised(root) => Some(Cause::NodeNotInitialised {
                root: root.display().to_string(),
            }),
            CoreError::TemplateNotFound(name) => {
                Some(Cause::TemplateNotFound { name: name.clone() })
            }
            CoreError::IdRangeTaken(ctid, _) => Some(Cause::IdRangeTaken { ctid: *ctid }),
            CoreError::InvalidFile { of, .. } => Some(of.cause()),
            _ => None,
        }
    }

    /// This error as the API reports it.
    pub fn to_api(&self) -> berth_api::Error {
        let message = match self {
            CoreError::Input(e) => berth_api::Error::from(e.clone()).message,
            e => e.to_string(),
        };
        berth_api::Error {
            kind: self.kind(),
            message,
            cause: self.cause().map(Box::new),
        }
    }
}

/// Whose file a refused file of the node root is: what to do about it, in the API's words
/// (the CLI names its command from the cause, `Cause::InvalidFile`).
#[derive(Debug, Clone, PartialEq)]
pub enum FileOf {
    Container(u32),
    Network(String),
    Template(String),
    Sample(String),
    /// node.toml
    Node,
}

impl FileOf {
    pub fn fix(&self) -> &'static str {
        match self {
            FileOf::Container(_) => "correct the file, or remove the container",
            FileOf::Network(_) => "correct the file, or remove the network",
            FileOf::Template(_) => "correct the file, or remove the template",
            FileOf::Sample(_) => "correct the file, or remove the sample",
            FileOf::Node => "correct the file",
        }
    }
    pub fn cause(&self) -> berth_api::Cause {
        let (object, name) = match self {
            FileOf::Container(id) => ("container", id.to_string()),
            FileOf::Network(n) => ("network", n.clone()),
            FileOf::Template(n) => ("template", n.clone()),
            FileOf::Sample(n) => ("sample", n.clone()),
            FileOf::Node => ("node", String::new()),
        };
        berth_api::Cause::InvalidFile {
            object: object.into(),
            name,
        }
    }
}
