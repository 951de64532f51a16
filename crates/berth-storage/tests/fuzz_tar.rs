//! Fuzzing of the template tarball importer (`template::import_tarball`), the parser of the
//! most untrusted input Berth takes: a rootfs tarball from anywhere (see docs/fuzzing.md).
//!
//! A structure-aware generator writes hostile archives by hand (ustar, GNU and PAX headers,
//! so that malformed ones can be made too): absolute and `..` paths, symlinks out of the tree
//! and files written through them, hard links to host files, device nodes in and outside
//! `dev/`, FIFOs, setuid modes, duplicate entries of different types, long names, lying
//! sizes, bogus PAX records, bad checksums, truncation, flipped bytes, and gzip/xz/zstd
//! wrappers. Each case runs in a sandbox of its own:
//!
//! ```text
//! <tmp>/node/        the node root (templates/ is where the importer may write)
//! <tmp>/sentinel/    a tree the archives aim at (files, a directory, a device node, a symlink)
//! <tmp>/sentinel.txt a file next to it
//! <tmp>/in/          the archive
//! ```
//!
//! and checks that the importer: never panics; changes nothing outside `templates/` (the
//! sentinels and the host's /etc/passwd are snapshotted, metadata and content, before and
//! after); on failure leaves no template listed and no staging directory, with a one-line
//! error; on success leaves a real directory tree without device nodes; finishes within a
//! time bound; and keeps its memory bounded whatever sizes the headers claim.
//!
//! The default run is short; `BERTH_FUZZ_CASES=N` runs N cases per property and
//! `BERTH_FUZZ_SEED=S` changes the (otherwise fixed) seed. The importer runs GNU tar as root
//! (ownership, device nodes), so these tests need root and skip otherwise.

use berth_core::NodeRoot;
use berth_storage::progress::NoProgress;
use berth_storage::template;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Cases per property in the default run.
const DEFAULT_CASES: u32 = 48;
/// Cases of the multi-entry attacks (small archives, quick to import).
const SEQUENCE_CASES: u32 = 128;
/// Longest an import may take (a healthy one here takes milliseconds).
const IMPORT_TIMEOUT: Duration = Duration::from_secs(60);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn skip() -> bool {
    if !is_root() {
        eprintln!("skipped: the tarball importer needs root (GNU tar restores owners and devices)");
        return true;
    }
    false
}

fn config(default_cases: u32) -> Config {
    let cases = std::env::var("BERTH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let seed = std::env::var("BERTH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6265_7274_6821);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// The sandbox and its snapshots

struct Sandbox {
    _tmp: tempfile::TempDir,
    top: PathBuf,
    root: NodeRoot,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().to_path_buf();
        let root = NodeRoot::new(top.join("node"));
        root.create_layout().unwrap();
        let s = top.join("sentinel");
        fs::create_dir_all(s.join("etc")).unwrap();
        fs::create_dir_all(s.join("dir/sub")).unwrap();
        fs::create_dir_all(s.join("dev")).unwrap();
        fs::create_dir_all(s.join("sbin")).unwrap();
        fs::write(s.join("etc/passwd"), "root:x:0:0:sentinel:/root:/bin/sh\n").unwrap();
        fs::write(s.join("etc/os-release"), "PRETTY_NAME=\"host secret\"\n").unwrap();
        fs::write(s.join("file"), "sentinel file\n").unwrap();
        fs::write(s.join("sbin/init"), "#!/bin/sh\n").unwrap();
        fs::write(s.join("dir/sub/deep"), "deep\n").unwrap();
        std::os::unix::fs::symlink("file", s.join("lnk")).unwrap();
        nix::sys::stat::mknod(
            &s.join("dev/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        fs::write(top.join("sentinel.txt"), "next to the sentinel\n").unwrap();
        fs::create_dir_all(top.join("in")).unwrap();
        Sandbox {
            _tmp: tmp,
            top,
            root,
        }
    }

    fn sentinel(&self) -> PathBuf {
        self.top.join("sentinel")
    }

    /// Everything outside `node/templates/` and `in/` that an escape could touch.
    fn snapshot(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        snap(&self.top, "", &mut m, &|rel| {
            rel == "in" || rel.starts_with("in/") || rel.starts_with("node/templates")
        });
        for host in ["/etc/passwd", "/etc/shadow", "/etc/hostname"] {
            if let Ok(md) = fs::symlink_metadata(host) {
                let content = fs::read(host).unwrap_or_default();
                m.insert(format!("host:{host}"), describe(&md, Some(&content), None));
            }
        }
        m
    }
}

fn describe(md: &fs::Metadata, content: Option<&[u8]>, link: Option<PathBuf>) -> String {
    format!(
        "type={:?} mode={:o} uid={} gid={} nlink={} size={} rdev={} mtime={}.{} ctime={}.{} content={:x} link={:?}",
        md.file_type(),
        md.mode(),
        md.uid(),
        md.gid(),
        md.nlink(),
        md.size(),
        md.rdev(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
        content.map(berth_core::net::fnv64).unwrap_or(0),
        link
    )
}

fn snap(dir: &Path, rel: &str, m: &mut BTreeMap<String, String>, skip: &dyn Fn(&str) -> bool) {
    let md = fs::symlink_metadata(dir).unwrap();
    m.insert(format!("/{rel}"), describe(&md, None, None));
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let r = if rel.is_empty() {
            n.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", n.to_string_lossy())
        };
        if skip(&r) {
            continue;
        }
        let p = dir.join(&n);
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            snap(&p, &r, m, skip);
        } else if md.is_file() {
            let content = fs::read(&p).unwrap();
            m.insert(r, describe(&md, Some(&content), None));
        } else if md.file_type().is_symlink() {
            m.insert(r, describe(&md, None, fs::read_link(&p).ok()));
        } else {
            m.insert(r, describe(&md, None, None));
        }
    }
}

/// Device nodes and the first non-directory "rootfs" found in an imported tree.
fn devices_in(tree: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![tree.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let t = fs::symlink_metadata(&p).unwrap().file_type();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_char_device() || t.is_block_device() {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Running one import and checking the properties

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Builds an archive against a fresh sandbox (archives aim at its sentinels by absolute
/// path), imports it, and checks every property; returns the outcome.
fn check_import(
    build: impl FnOnce(&Path) -> Vec<u8>,
) -> Result<berth_core::TemplateManifest, String> {
    let sb = Sandbox::new();
    let archive = build(&sb.top);
    let name = format!(
        "fz{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let file = sb.top.join("in/t.tar");
    fs::write(&file, &archive).unwrap();
    let before = sb.snapshot();

    let (tx, rx) = mpsc::channel();
    let (root, n, f) = (sb.root.clone(), name.clone(), file.clone());
    let started = Instant::now();
    std::thread::spawn(move || {
        let r = template::import_tarball(&root, &n, &f, &NoProgress);
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    let res = match rx.recv_timeout(IMPORT_TIMEOUT) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("import did not finish within {IMPORT_TIMEOUT:?}")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("import panicked"),
    };
    let took = started.elapsed();

    let after = sb.snapshot();
    for (k, v) in &before {
        assert_eq!(after.get(k), Some(v), "{k} changed by the import ({res:?})");
    }
    for k in after.keys() {
        assert!(
            before.contains_key(k),
            "{k} created by the import ({res:?})"
        );
    }
    let sentinel_dev = sb.sentinel().join("dev/null");
    assert!(fs::symlink_metadata(&sentinel_dev).is_ok());

    let listed: Vec<String> = template::list(&sb.root)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    let leftovers: Vec<String> = fs::read_dir(sb.root.templates_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    match &res {
        Err(e) => {
            assert!(!e.is_empty() && !e.contains('\n'), "not one line: {e:?}");
            assert!(listed.is_empty(), "failed import listed: {listed:?}");
            assert!(!sb.root.templates_dir().join(&name).exists());
        }
        Ok(m) => {
            assert_eq!(listed, vec![name.clone()]);
            assert_eq!(m.name, name);
            let rootfs = sb.root.templates_dir().join(&name).join("rootfs");
            let md = fs::symlink_metadata(&rootfs).unwrap();
            assert!(md.is_dir(), "rootfs is not a real directory");
            let devs = devices_in(&rootfs);
            assert!(
                devs.is_empty(),
                "device nodes left in the template: {devs:?}"
            );
            assert_ne!(m.os.as_deref(), Some("host secret"));
            template::remove(&sb.root, &name).unwrap();
        }
    }
    assert!(took < IMPORT_TIMEOUT);
    res
}

// ---------------------------------------------------------------------------------------
// Hand-made tar archives

#[derive(Debug, Clone, Copy)]
enum Format {
    Ustar,
    Gnu,
    Pax,
}

#[derive(Debug, Clone, Default)]
struct Header {
    name: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    typeflag: u8,
    link: Vec<u8>,
    major: u32,
    minor: u32,
}

fn octal(field: &mut [u8], v: u64) {
    let w = field.len() - 1;
    let s = format!("{v:0w$o}");
    if s.len() <= w {
        field[..w].copy_from_slice(s.as_bytes());
        field[w] = 0;
    } else {
        // GNU base-256 for values that do not fit.
        field.fill(0);
        field[0] = 0x80;
        let b = v.to_be_bytes();
        let n = field.len().min(8);
        let l = field.len();
        field[l - n..].copy_from_slice(&b[8 - n..]);
    }
}

fn raw_header(h: &Header, fmt: Format, bad_checksum: bool) -> [u8; 512] {
    let mut b = [0u8; 512];
    let name = &h.name[..h.name.len().min(100)];
    b[..name.len()].copy_from_slice(name);
    octal(&mut b[100..108], h.mode as u64);
    octal(&mut b[108..116], h.uid);
    octal(&mut b[116..124], h.gid);
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], 1_700_000_000);
    b[156] = h.typeflag;
    let link = &h.link[..h.link.len().min(100)];
    b[157..157 + link.len()].copy_from_slice(link);
    match fmt {
        Format::Gnu => b[257..265].copy_from_slice(b"ustar  \0"),
        _ => {
            b[257..263].copy_from_slice(b"ustar\0");
            b[263..265].copy_from_slice(b"00");
        }
    }
    b[265..269].copy_from_slice(b"root");
    b[297..301].copy_from_slice(b"root");
    octal(&mut b[329..337], h.major as u64);
    octal(&mut b[337..345], h.minor as u64);
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|x| *x as u32).sum();
    let sum = if bad_checksum { sum + 1 } else { sum };
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    b
}

fn pad(out: &mut Vec<u8>) {
    let r = out.len() % 512;
    if r != 0 {
        out.resize(out.len() + 512 - r, 0);
    }
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "LEN key=value\n", LEN counting itself.
    let body = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// How an entry lies about itself.
#[derive(Debug, Clone)]
enum Lie {
    None,
    /// The header's size field claims this many bytes (the data is the real one).
    Size(u64),
    /// A PAX record with this raw content precedes the entry.
    Pax(Vec<u8>),
    BadChecksum,
}

fn write_entry(out: &mut Vec<u8>, h: &Header, data: &[u8], fmt: Format, lie: &Lie) {
    let long_name = h.name.len() > 100;
    let long_link = h.link.len() > 100;
    let mut pax = vec![];
    if let Lie::Pax(raw) = lie {
        pax.extend_from_slice(raw);
    }
    match fmt {
        Format::Pax => {
            if long_name {
                pax.extend(pax_record("path", &h.name));
            }
            if long_link {
                pax.extend(pax_record("linkpath", &h.link));
            }
            if h.uid > 0o7777777 {
                pax.extend(pax_record("uid", h.uid.to_string().as_bytes()));
            }
        }
        Format::Gnu => {
            for (flag, v, yes) in [(b'L', &h.name, long_name), (b'K', &h.link, long_link)] {
                if yes {
                    let mut d = v.clone();
                    d.push(0);
                    let lh = Header {
                        name: b"././@LongLink".to_vec(),
                        mode: 0o644,
                        size: d.len() as u64,
                        typeflag: flag,
                        ..Default::default()
                    };
                    out.extend_from_slice(&raw_header(&lh, fmt, false));
                    out.extend_from_slice(&d);
                    pad(out);
                }
            }
        }
        Format::Ustar => {}
    }
    if !pax.is_empty() {
        let ph = Header {
            name: b"PaxHeaders/x".to_vec(),
            mode: 0o644,
            size: pax.len() as u64,
            typeflag: b'x',
            ..Default::default()
        };
        out.extend_from_slice(&raw_header(&ph, Format::Ustar, false));
        out.extend_from_slice(&pax);
        pad(out);
    }
    let mut real = h.clone();
    if let Lie::Size(s) = lie {
        real.size = *s;
    }
    out.extend_from_slice(&raw_header(&real, fmt, matches!(lie, Lie::BadChecksum)));
    out.extend_from_slice(data);
    pad(out);
}

// ---------------------------------------------------------------------------------------
// The model of a hostile archive, resolved against a sandbox when written

/// Names the generator builds paths from: the template's own (etc, sbin/init…), the
/// importer's (`rootfs`, which it unwraps), and ones the symlinks and devices use.
const NAMES: &[&str] = &[
    "etc",
    "dev",
    "usr",
    "sbin",
    "init",
    "rootfs",
    "x",
    "passwd",
    "os-release",
    "null",
    "lib",
];

#[derive(Debug, Clone)]
enum Comp {
    Name(&'static str),
    Long(usize),
    DotDot,
    Dot,
    Empty,
    Bytes(Vec<u8>),
}

/// What a path or a link target points at.
#[derive(Debug, Clone)]
enum Loc {
    /// A path made of components, optionally absolute.
    Rel { abs: bool, comps: Vec<Comp> },
    /// An absolute path into the sentinel tree.
    SentinelAbs(&'static str),
    /// `../` repeated, then `sentinel/...`: reaches the sentinel from some depth.
    Up(u8, &'static str),
    /// A host path.
    Host(&'static str),
}

const SENTINEL_RELS: &[&str] = &[
    "",
    "etc",
    "etc/passwd",
    "etc/os-release",
    "file",
    "dir",
    "dir/sub",
    "dev",
    "dev/null",
    "new",
    "lnk",
];
const HOST_PATHS: &[&str] = &[
    "/",
    "/etc",
    "/etc/passwd",
    "/etc/shadow",
    "/dev/zero",
    "/dev/null",
    "/proc/self/root",
    "/proc/self/mem",
];

impl Loc {
    fn resolve(&self, sb: &Path) -> Vec<u8> {
        match self {
            Loc::Rel { abs, comps } => {
                let mut v = if *abs { b"/".to_vec() } else { vec![] };
                for (i, c) in comps.iter().enumerate() {
                    if i > 0 {
                        v.push(b'/');
                    }
                    match c {
                        Comp::Name(n) => v.extend_from_slice(n.as_bytes()),
                        Comp::Long(n) => v.extend(std::iter::repeat_n(b'a', *n)),
                        Comp::DotDot => v.extend_from_slice(b".."),
                        Comp::Dot => v.push(b'.'),
                        Comp::Empty => {}
                        Comp::Bytes(b) => v.extend_from_slice(b),
                    }
                }
                v
            }
            Loc::SentinelAbs(r) => format!("{}/sentinel/{r}", sb.display()).into_bytes(),
            Loc::Up(n, r) => {
                let mut s = "../".repeat(*n as usize);
                s.push_str("sentinel/");
                s.push_str(r);
                s.into_bytes()
            }
            Loc::Host(h) => h.as_bytes().to_vec(),
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Loc),
    Hardlink(Loc),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// Any other type byte (contiguous, GNU volume/sparse headers, garbage).
    Other(u8),
}

#[derive(Debug, Clone)]
struct Entry {
    path: Loc,
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    lie: Lie,
}

#[derive(Debug, Clone, Copy)]
enum Comp2 {
    None,
    Gzip,
    Xz,
    Zstd,
}

#[derive(Debug, Clone)]
struct Archive {
    /// Starts with a minimal valid rootfs (sbin/init, etc/os-release), so that some
    /// cases get through to the checks after extraction and to the commit.
    base: bool,
    entries: Vec<Entry>,
    format: Format,
    trailer: bool,
    /// Cut the (uncompressed or compressed) archive to this fraction of its length.
    truncate: Option<f64>,
    /// Byte positions (modulo the length) xored with a value, before compression.
    flips: Vec<(usize, u8)>,
    compression: Comp2,
}

impl Archive {
    fn build(&self, sb: &Path) -> Vec<u8> {
        let mut out = vec![];
        if self.base {
            for (name, kind) in [
                ("sbin", Kind::Dir),
                ("sbin/init", Kind::File(b"#!/bin/sh\n".to_vec())),
                ("etc", Kind::Dir),
                (
                    "etc/os-release",
                    Kind::File(b"PRETTY_NAME=\"Fuzz OS\"\n".to_vec()),
                ),
            ] {
                let comps = name.split('/').map(|n| Comp::Bytes(n.into())).collect();
                self.write(
                    &mut out,
                    sb,
                    &Entry {
                        path: Loc::Rel { abs: false, comps },
                        kind,
                        mode: 0o755,
                        uid: 0,
                        gid: 0,
                        lie: Lie::None,
                    },
                );
            }
        }
        for e in &self.entries {
            self.write(&mut out, sb, e);
        }
        if self.trailer {
            out.extend_from_slice(&[0u8; 1024]);
        }
        if !out.is_empty() {
            for (pos, x) in &self.flips {
                let l = out.len();
                out[pos % l] ^= x;
            }
        }
        let mut bytes = match self.compression {
            Comp2::None => out,
            Comp2::Gzip => {
                let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
                e.write_all(&out).unwrap();
                e.finish().unwrap()
            }
            Comp2::Xz => {
                let mut e = xz2::write::XzEncoder::new(vec![], 0);
                e.write_all(&out).unwrap();
                e.finish().unwrap()
            }
            Comp2::Zstd => zstd::encode_all(&out[..], 1).unwrap(),
        };
        if let Some(f) = self.truncate {
            let n = (bytes.len() as f64 * f) as usize;
            bytes.truncate(n);
        }
        bytes
    }

    fn write(&self, out: &mut Vec<u8>, sb: &Path, e: &Entry) {
        let mut h = Header {
            name: e.path.resolve(sb),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            ..Default::default()
        };
        let mut data: &[u8] = &[];
        match &e.kind {
            Kind::File(d) => {
                h.typeflag = b'0';
                h.size = d.len() as u64;
                data = d;
            }
            Kind::Dir => h.typeflag = b'5',
            Kind::Symlink(t) => {
                h.typeflag = b'2';
                h.link = t.resolve(sb);
            }
            Kind::Hardlink(t) => {
                h.typeflag = b'1';
                h.link = t.resolve(sb);
            }
            Kind::Char(a, b) => (h.typeflag, h.major, h.minor) = (b'3', *a, *b),
            Kind::Block(a, b) => (h.typeflag, h.major, h.minor) = (b'4', *a, *b),
            Kind::Fifo => h.typeflag = b'6',
            Kind::Other(t) => h.typeflag = *t,
        }
        write_entry(out, &h, data, self.format, &e.lie);
    }
}

// ---------------------------------------------------------------------------------------
// Strategies

fn comp() -> impl Strategy<Value = Comp> {
    prop_oneof![
        8 => prop::sample::select(NAMES).prop_map(Comp::Name),
        1 => (90usize..300).prop_map(Comp::Long),
        2 => Just(Comp::DotDot),
        1 => Just(Comp::Dot),
        1 => Just(Comp::Empty),
        1 => prop::collection::vec(any::<u8>(), 1..8).prop_map(Comp::Bytes),
    ]
}

fn loc() -> impl Strategy<Value = Loc> {
    prop_oneof![
        6 => (prop::bool::weighted(0.2), prop::collection::vec(comp(), 1..4))
            .prop_map(|(abs, comps)| Loc::Rel { abs, comps }),
        2 => prop::sample::select(SENTINEL_RELS).prop_map(Loc::SentinelAbs),
        2 => (1u8..9, prop::sample::select(SENTINEL_RELS)).prop_map(|(n, r)| Loc::Up(n, r)),
        1 => prop::sample::select(HOST_PATHS).prop_map(Loc::Host),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Kind::File),
        2 => Just(Kind::Dir),
        3 => loc().prop_map(Kind::Symlink),
        2 => loc().prop_map(Kind::Hardlink),
        1 => (0u32..300, 0u32..300).prop_map(|(a, b)| Kind::Char(a, b)),
        1 => (0u32..300, 0u32..300).prop_map(|(a, b)| Kind::Block(a, b)),
        1 => Just(Kind::Fifo),
        1 => any::<u8>().prop_map(Kind::Other),
    ]
}

fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        12 => Just(Lie::None),
        1 => prop_oneof![
            Just(u64::MAX >> 1),
            Just(0o77777777777u64),
            Just(1u64 << 40),
            0u64..5000,
        ]
        .prop_map(Lie::Size),
        1 => prop_oneof![
            Just(pax_record("size", b"99999999999999999999")),
            Just(pax_record("size", b"-1")),
            Just(pax_record("size", b"1099511627776")),
            Just(pax_record("path", b"../../../../sentinel/new")),
            Just(pax_record("path", b"/etc/passwd")),
            Just(pax_record("linkpath", b"/etc/passwd")),
            Just(pax_record("path", b"a\0b")),
            Just(b"999999999999 path=x\n".to_vec()),
            Just(b"12 path=\n".to_vec()),
            Just(b"not a record".to_vec()),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
        .prop_map(Lie::Pax),
        1 => Just(Lie::BadChecksum),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        loc(),
        kind(),
        prop_oneof![
            Just(0o644u32),
            Just(0o755),
            Just(0o4755),
            Just(0o6777),
            Just(0o1777),
            Just(0),
            0u32..0o10000,
            any::<u32>(),
        ],
        prop_oneof![
            Just(0u64),
            Just(1000),
            Just(65534),
            any::<u32>().prop_map(u64::from)
        ],
        prop_oneof![Just(0u64), Just(1000), any::<u32>().prop_map(u64::from)],
        lie(),
    )
        .prop_map(|(path, kind, mode, uid, gid, lie)| Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            lie,
        })
}

fn archive() -> impl Strategy<Value = Archive> {
    (
        prop::bool::weighted(0.6),
        prop::collection::vec(entry(), 0..12),
        prop_oneof![Just(Format::Ustar), Just(Format::Gnu), Just(Format::Pax)],
        prop::bool::weighted(0.9),
        prop_oneof![8 => Just(None), 1 => (0.0f64..1.0).prop_map(Some)],
        prop_oneof![
            8 => Just(vec![]),
            1 => prop::collection::vec((any::<usize>(), 1u8..=255), 1..5),
        ],
        prop_oneof![
            4 => Just(Comp2::None),
            1 => Just(Comp2::Gzip),
            1 => Just(Comp2::Xz),
            1 => Just(Comp2::Zstd),
        ],
    )
        .prop_map(
            |(base, entries, format, trailer, truncate, flips, compression)| Archive {
                base,
                entries,
                format,
                trailer,
                truncate,
                flips,
                compression,
            },
        )
}

/// Attacks made of several entries that random combination finds only rarely: a symlink
/// (or a `rootfs` symlink, which the importer unwraps) followed by entries written through
/// it; a name given as file, directory and symlink in turn; a hard link to a sentinel.
fn sequence() -> impl Strategy<Value = Vec<Entry>> {
    let plain = |path: &str, kind: Kind| Entry {
        path: Loc::Rel {
            abs: false,
            comps: path.split('/').map(|c| Comp::Bytes(c.into())).collect(),
        },
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        lie: Lie::None,
    };
    (
        prop::sample::select(
            &[
                "x",
                "rootfs",
                "etc",
                "sbin",
                "dev",
                "etc/os-release",
                "sbin/init",
            ][..],
        ),
        prop_oneof![
            // the sentinel's top looks like a rootfs (sbin/init, dev/null): the most
            // tempting target, by absolute path and by `..` from the staging rootfs
            2 => Just(Loc::SentinelAbs("")),
            1 => Just(Loc::Up(4, "")),
            2 => prop::sample::select(SENTINEL_RELS).prop_map(Loc::SentinelAbs),
            1 => (1u8..9, prop::sample::select(SENTINEL_RELS)).prop_map(|(n, r)| Loc::Up(n, r)),
            1 => prop::sample::select(HOST_PATHS).prop_map(Loc::Host),
        ],
        prop::sample::select(&["f", "passwd", "etc/passwd", "new", "sbin/init", "dev/null"][..]),
        0usize..6,
    )
        .prop_map(move |(link, target, through, variant)| {
            let inner = format!("{link}/{through}");
            match variant {
                // the symlink alone (a `rootfs` one is what the importer unwraps, an
                // `etc/os-release` one is what it reads)
                4 | 5 => vec![plain(link, Kind::Symlink(target))],
                // the symlink, then a file written through it
                0 => vec![
                    plain(link, Kind::Symlink(target)),
                    plain(&inner, Kind::File(b"written through\n".to_vec())),
                ],
                // the symlink, then a directory, a device and a hard link through it
                1 => vec![
                    plain(link, Kind::Symlink(target)),
                    plain(&format!("{link}/d"), Kind::Dir),
                    plain(&format!("{link}/null"), Kind::Char(1, 3)),
                    plain(
                        &format!("{link}/h"),
                        Kind::Hardlink(Loc::Host("/etc/passwd")),
                    ),
                ],
                // one name as file, directory, then symlink, then written through
                2 => vec![
                    plain(link, Kind::File(b"first\n".to_vec())),
                    plain(link, Kind::Dir),
                    plain(link, Kind::Symlink(target)),
                    plain(&inner, Kind::File(b"through\n".to_vec())),
                ],
                // a hard link to the target, then a write into the link
                _ => vec![
                    plain(link, Kind::Hardlink(target)),
                    plain(link, Kind::File(b"overwrite\n".to_vec())),
                ],
            }
        })
}

proptest! {
    #![proptest_config(config(SEQUENCE_CASES))]

    /// Multi-entry attacks (symlink then write through it, type changes, hard links).
    #[test]
    fn fuzz_tar_attack_sequences(seq in sequence(), base in any::<bool>(), gnu in any::<bool>()) {
        if skip() {
            return Ok(());
        }
        let a = Archive {
            base,
            entries: seq,
            format: if gnu { Format::Gnu } else { Format::Pax },
            trailer: true,
            truncate: None,
            flips: vec![],
            compression: Comp2::None,
        };
        let _ = check_import(|top| a.build(top));
    }
}

proptest! {
    #![proptest_config(config(DEFAULT_CASES))]

    /// Structure-aware: hostile but mostly well-formed archives, plain or compressed.
    #[test]
    fn fuzz_tar_hostile_archives(a in archive()) {
        if skip() {
            return Ok(());
        }
        let _ = check_import(|top| a.build(top));
    }

    /// Unstructured: random bytes behind each magic the importer recognises.
    #[test]
    fn fuzz_tar_random_bytes(
        magic in 0usize..5,
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        if skip() {
            return Ok(());
        }
        let mut data = match magic {
            0 => vec![],
            1 => vec![0x1f, 0x8b],
            2 => vec![0xfd, b'7', b'z', b'X', b'Z', 0],
            3 => vec![0x28, 0xb5, 0x2f, 0xfd],
            _ => {
                let mut h = vec![0u8; 512];
                h[257..262].copy_from_slice(b"ustar");
                h
            }
        };
        if magic == 4 && bytes.len() >= 257 {
            // keep the magic: random fields around it
            data[..257].copy_from_slice(&bytes[..257]);
            data.extend_from_slice(&bytes[257..]);
        } else {
            data.extend_from_slice(&bytes);
        }
        let _ = check_import(|_| data);
    }
}

// ---------------------------------------------------------------------------------------
// Regression tests of what the fuzzing found, and refusals that must name their entry

fn rel(path: &str) -> Loc {
    Loc::Rel {
        abs: false,
        comps: path.split('/').map(|c| Comp::Bytes(c.into())).collect(),
    }
}

fn plain_entry(path: &str, kind: Kind) -> Entry {
    Entry {
        path: rel(path),
        kind,
        mode: 0o755,
        uid: 0,
        gid: 0,
        lie: Lie::None,
    }
}

fn simple(base: bool, entries: Vec<Entry>) -> Archive {
    Archive {
        base,
        entries,
        format: Format::Gnu,
        trailer: true,
        truncate: None,
        flips: vec![],
        compression: Comp2::None,
    }
}

/// A `rootfs` symlink to a host directory was "unwrapped" as if it were an LXC-style
/// `rootfs/` directory: the template's tree became that host directory, whose device nodes
/// under `dev/` were then deleted (with `rootfs -> /`, the host's own /dev).
#[test]
fn regression_rootfs_symlink_is_not_unwrapped() {
    if skip() {
        return;
    }
    for target in [Loc::SentinelAbs(""), Loc::Up(4, "")] {
        let a = simple(false, vec![plain_entry("rootfs", Kind::Symlink(target))]);
        let r = check_import(|top| a.build(top));
        let e = r.expect_err("a tree without /sbin/init");
        assert!(e.contains("/sbin/init"), "{e}");
    }
}

/// tar's stderr was read only after the whole archive had been fed to it: an archive with
/// a refused entry every 512 bytes filled the pipe (64 KiB), tar blocked on it, and the
/// import hung for ever. The error names the first refused entry.
#[test]
fn regression_tar_message_flood_does_not_hang() {
    if skip() {
        return;
    }
    let entries = (0..3000)
        .map(|i| plain_entry(&format!("../escape{i}"), Kind::Dir))
        .collect();
    let a = simple(true, entries);
    let t = Instant::now();
    let e = check_import(|top| a.build(top)).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(e.contains("../escape0") && e.contains("more"), "{e}");
}

/// The manifest's `os` came from `etc/os-release` read through whatever it pointed to: a
/// symlink to /dev/zero read without end (memory), a FIFO blocked the import for ever, and
/// a symlink to a host file leaked its PRETTY_NAME into the manifest.
#[test]
fn regression_os_release_is_read_inside_the_tree() {
    if skip() {
        return;
    }
    for kind in [
        Kind::Symlink(Loc::Host("/dev/zero")),
        Kind::Symlink(Loc::SentinelAbs("etc/os-release")),
        Kind::Symlink(Loc::Up(4, "sentinel/etc/os-release")),
        Kind::Fifo,
    ] {
        let a = simple(true, vec![plain_entry("etc/os-release", kind.clone())]);
        let m = check_import(|top| a.build(top)).unwrap();
        assert_eq!(m.os, None, "{kind:?}");
    }
    // a relative symlink inside the tree (Debian's own layout) still works, and an
    // absolute one resolves against the tree, not the host
    for link in ["../usr/lib/os-release", "/usr/lib/os-release"] {
        let a = simple(
            false,
            vec![
                plain_entry("sbin/init", Kind::File(b"x".to_vec())),
                plain_entry(
                    "usr/lib/os-release",
                    Kind::File(b"PRETTY_NAME=\"In Tree\"\n".to_vec()),
                ),
                plain_entry("etc/os-release", Kind::Symlink(rel(link))),
            ],
        );
        let m = check_import(|top| a.build(top)).unwrap();
        assert_eq!(m.os.as_deref(), Some("In Tree"), "{link}");
    }
}

/// Refusals are one line naming the entry.
#[test]
fn refusals_name_the_entry() {
    if skip() {
        return;
    }
    let cases: Vec<(Entry, &str)> = vec![
        (
            plain_entry("usr/share/mem", Kind::Char(1, 1)),
            "/usr/share/mem",
        ),
        (plain_entry("var/sda", Kind::Block(8, 0)), "/var/sda"),
        (plain_entry("../x", Kind::File(b"x".to_vec())), "../x"),
        (
            plain_entry("h", Kind::Hardlink(Loc::Host("/etc/passwd"))),
            "h",
        ),
    ];
    for (entry, needle) in cases {
        let a = simple(true, vec![entry]);
        let e = check_import(|top| a.build(top)).unwrap_err();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // device nodes under dev/ are dropped, a FIFO and a setuid file are kept
    let a = simple(
        true,
        vec![
            plain_entry("dev/null", Kind::Char(1, 3)),
            plain_entry("run/fifo", Kind::Fifo),
            Entry {
                mode: 0o4755,
                ..plain_entry("usr/bin/su", Kind::File(b"x".to_vec()))
            },
        ],
    );
    check_import(|top| a.build(top)).unwrap();
}

/// A header claiming a huge size (octal, base-256 or PAX) is an error, not an allocation.
#[test]
fn lying_sizes_are_refused_without_allocating() {
    if skip() {
        return;
    }
    for lie in [
        Lie::Size(u64::MAX >> 1),
        Lie::Size(0o77777777777),
        Lie::Pax(pax_record("size", b"99999999999999999999")),
        Lie::Pax(pax_record("size", b"1099511627776")),
    ] {
        let a = simple(
            true,
            vec![Entry {
                lie: lie.clone(),
                ..plain_entry("big", Kind::File(b"small".to_vec()))
            }],
        );
        assert!(check_import(|top| a.build(top)).is_err(), "{lie:?}");
    }
    assert!(max_rss_mib() < 1024, "{} MiB", max_rss_mib());
}

fn max_rss_mib() -> i64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss / 1024
}

/// The same valid rootfs imports plain and in each compression.
#[test]
fn compressed_archives_import() {
    if skip() {
        return;
    }
    for c in [Comp2::None, Comp2::Gzip, Comp2::Xz, Comp2::Zstd] {
        let a = Archive {
            compression: c,
            ..simple(
                true,
                vec![plain_entry("usr/bin/x", Kind::File(b"x".to_vec()))],
            )
        };
        let m = check_import(|top| a.build(top)).unwrap();
        assert_eq!(m.os.as_deref(), Some("Fuzz OS"), "{c:?}");
    }
}
