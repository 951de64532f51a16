//! Builds Berth's supervisor (`crates/berth-init`) as a **static** binary and leaves it in
//! `OUT_DIR/berth-init`, from where `supervisor.rs` embeds it. Containers from templates
//! without a libc (busybox) run it as PID 1, so it must not need a dynamic loader
//! (docs/adr/0007-static-supervisor.md).
//!
//! A nested `cargo build` with its own target directory, so the outer build's lock is not
//! contended and the workspace's own flags do not leak in. `BERTH_INIT_BIN` may name a
//! prebuilt static binary instead (packaging, cross builds).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let dest = out.join("berth-init");
    println!("cargo:rerun-if-env-changed=BERTH_INIT_BIN");
    if let Ok(pre) = std::env::var("BERTH_INIT_BIN") {
        std::fs::copy(&pre, &dest).unwrap_or_else(|e| panic!("BERTH_INIT_BIN={pre}: {e}"));
        write_hash(&out, &dest);
        return;
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let ws = manifest.join("../..");
    let init_dir = ws.join("crates/berth-init");
    println!("cargo:rerun-if-changed={}", init_dir.display());
    let target = std::env::var("TARGET").expect("TARGET");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = out.join("init-target");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&ws)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "berth-init",
            "--bin",
            "berth-init",
        ])
        .arg("--target")
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir);
    // Only our flags: static C runtime, small and without unwinding.
    for v in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running cargo for berth-init: {e}"));
    assert!(status.success(), "building the static berth-init failed");
    let built = target_dir.join(&target).join("release/berth-init");
    std::fs::copy(&built, &dest).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    write_hash(&out, &dest);
}

/// `OUT_DIR/berth-init.hash`: FNV-1a 64 of the binary as a Rust literal, so that a start
/// names the node's copy of this version without hashing 1 MB first.
fn write_hash(out: &std::path::Path, bin: &std::path::Path) {
    let data = std::fs::read(bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    std::fs::write(out.join("berth-init.hash"), format!("0x{h:016x}"))
        .expect("writing berth-init.hash");
}
