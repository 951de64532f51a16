//! Berth's typed API: every wire type, the complete operations trait ([`Node`]) and error
//! kinds, shared by the CLI, berthd (REST), its HTTP client and the web console. No kernel
//! or network code lives here: serde types, validators of input, and the trait.
//!
//! Wire types are versioned by addition only: a new field gets a serde default.

pub mod agent;
pub mod backup;
pub mod config;
pub mod error;
pub mod inside;
pub mod net;
pub mod node;
pub mod ops;
pub mod procs;
pub mod resources;
pub mod samples;
#[cfg(feature = "openapi")]
pub(crate) mod schema;
pub mod services;
pub mod validate;

pub use config::{DiskFs, DiskType, IdMap, TemplateKind, TemplateManifest};
pub use error::{Cause, Error, ErrorBody, ErrorKind, InputError, Result};
pub use node::{
    BootEntry, CloneResult, ConsoleEnd, ConsoleLog, EscapeFilter, ExecRequest, NoProgress, Node,
    NodeConfigInfo, NodeSettings, Progress, ServiceList, SetRequest, SetResult, StartResult, Stdio,
    TtySize,
};
pub use ops::{
    CloneOptions, ContainerInfo, ContainerStats, CreateOptions, CtStatus, ExecOptions,
    IncomingHeader, MigrateOptions, MigrateRequest, MigrateResult, MigrateTarget, MoveOptions,
    NodeInfo, SetOutcome, StopOptions, TemplateSource,
};
pub use resources::{Resources, SetOptions};
pub use validate::{CtId, CtRef, Size};
