//! Berth's supervisor, shared parts: the service definition file the host writes into the
//! container (`/.berth/services`) and the control protocol between `berth-init ctl` and the
//! supervisor (PID 1). Plain text, no dependencies but libc, so that the binary stays small
//! and links statically.

pub mod proto;
