//! The security suite: every escape class known from runc, crun, youki, LXC and Incus
//! history, tried as container root (or as another host user) against a real container on
//! the real kernel, as root. Each test is named after its class and asserts the specific
//! errno or observation. The threat model and the defence behind each test are in
//! docs/security.md.
//!
//! One module per area, so that each can grow on its own.

#[path = "../common.rs"]
mod common;

mod classes;
mod exec;
mod files;
mod idmap;
mod net;
mod review;
mod runtime;
mod support;
