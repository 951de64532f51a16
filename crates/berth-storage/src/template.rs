//! OS templates: read-only root filesystems stored once per node under
//! `templates/<name>/{template.toml,rootfs/}`. Built into a hidden staging directory and
//! renamed into place, so a template is either complete or absent.

use crate::disk::run;
use crate::progress::Progress;
use crate::{Result, StorageError};
use berth_core::checked::CheckedManifest;
use berth_core::config::{TemplateKind, TemplateManifest};
use berth_core::crash::crash_point;
use berth_core::{fsutil, CoreError, NodeRoot};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// GNU tar's flags that keep what a template's files are (owners by number, every xattr),
/// for archiving one and for extracting one alike.
pub const TAR_KEEP: [&str; 3] = ["--numeric-owner", "--xattrs", "--xattrs-include=*"];

/// Host path of the static busybox used for the embedded default template.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A staging directory under `templates/` removed on drop unless committed.
struct Staging {
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    fn new(root: &NodeRoot, name: &str) -> Result<Self> {
        let dir = root
            .templates_dir()
            .join(format!(".staging-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("rootfs")).map_err(|e| StorageError::io(&dir, e))?;
        // Root-only, like templates/ itself: a tree being unpacked may hold anything.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| StorageError::io(&dir, e))?;
        crash_point("template:after-staging");
        Ok(Staging {
            dir,
            committed: false,
        })
    }
    fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// Writes the manifest and renames the staging directory to `templates/<name>`.
    fn commit(mut self, root: &NodeRoot, manifest: &TemplateManifest) -> Result<()> {
        fsutil::write_toml(&self.dir.join("template.toml"), manifest)?;
        crash_point("template:after-manifest");
        let dst = root.template_dir(&manifest.name)?;
        if dst.exists() {
            return Err(CoreError::TemplateExists(manifest.name.clone()).into());
        }
        fs::rename(&self.dir, &dst).map_err(|e| StorageError::io(&dst, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes staging directories left by an interrupted template creation.
pub fn clean_stale_staging(root: &NodeRoot) {
    if let Ok(rd) = fs::read_dir(root.templates_dir()) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = n.strip_prefix(".staging-") {
                let pid = rest.rsplit('-').next().and_then(|p| p.parse::<i32>().ok());
                let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

fn check_new(root: &NodeRoot, name: &str) -> Result<()> {
    if root.template_dir(name)?.exists() {
        return Err(CoreError::TemplateExists(name.into()).into());
    }
    Ok(())
}

fn write(path: &Path, content: &str, mode: u32) -> Result<()> {
    fs::write(path, content).map_err(|e| StorageError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| StorageError::io(path, e))
}

/// Builds the embedded default OS template from the host's static busybox.
pub fn create_busybox(
    root: &NodeRoot,
    name: &str,
    progress: &dyn Progress,
) -> Result<TemplateManifest> {
    check_new(root, name)?;
    let bb = Path::new(HOST_BUSYBOX);
    if !bb.exists() {
        return Err(StorageError::BadTemplate(
            name.into(),
            format!("{HOST_BUSYBOX} not found: install Debian's busybox-static"),
        ));
    }
    let out = Command::new(bb)
        .arg("--list-full")
        .output()
        .map_err(|e| StorageError::io(bb, e))?;
    let applets = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = Command::new(bb)
        .output()
        .ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.lines().next().and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .map(|v| v.trim_start_matches('v').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let st = Staging::new(root, name)?;
    let r = st.rootfs();
    progress.message("building busybox rootfs");
    for (d, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc/init.d", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("mnt", 0o755),
        ("var/log", 0o755),
        ("var/tmp", 0o1777),
    ] {
        let p = r.join(d);
        fs::create_dir_all(&p).map_err(|e| StorageError::io(&p, e))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .map_err(|e| StorageError::io(&p, e))?;
    }
    fs::copy(bb, r.join("bin/busybox")).map_err(|e| StorageError::io(r.join("bin/busybox"), e))?;
    let list: Vec<&str> = applets.lines().filter(|l| !l.is_empty()).collect();
    for (i, a) in list.iter().enumerate() {
        let a = a.trim_start_matches('/');
        if a == "bin/busybox" || a.contains("..") {
            continue;
        }
        let p = r.join(a);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(|e| StorageError::io(parent, e))?;
        }
        if !p.exists() {
            symlink("/bin/busybox", &p).map_err(|e| StorageError::io(&p, e))?;
        }
        progress.update(i as u64 + 1, Some(list.len() as u64));
    }
    let e = r.join("etc");
    write(&e.join("passwd"), "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644)?;
    write(
        &e.join("group"),
        "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n",
        0o644,
    )?;
    write(
        &e.join("shadow"),
        "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
        0o600,
    )?;
    write(
        &e.join("hosts"),
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        0o644,
    )?;
    write(&e.join("hostname"), "localhost\n", 0o644)?;
    write(
        &e.join("os-release"),
        &format!("NAME=\"BusyBox\"\nID=busybox\nVERSION_ID=\"{version}\"\nPRETTY_NAME=\"BusyBox {version} (Berth template)\"\n"),
        0o644,
    )?;
    write(
        &e.join("profile"),
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexport PS1='[\\u@\\h \\W]\\$ '\n",
        0o644,
    )?;
    write(
        &e.join("inittab"),
        "# Berth busybox template: no console shells; stop with SIGUSR2 (poweroff)\n\
         ::sysinit:/etc/init.d/rcS\n\
         ::ctrlaltdel:/sbin/reboot\n\
         ::shutdown:/etc/init.d/rcK\n\
         ::restart:/sbin/init\n",
        0o644,
    )?;
    write(
        &e.join("init.d/rcS"),
        "#!/bin/sh\n# Boot: mount the usual pseudo-filesystems, then run /etc/init.d/S??* start.\n\
         export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
         # Half of the memory this container sees (/proc/meminfo, LXCFS's view), as a tmpfs\n\
         # gets by default on a server of that size (the kernel's default is half the host's).\n\
         half=$(awk '/^MemTotal:/ {print int($2 / 2)}' /proc/meminfo 2>/dev/null)\n\
         size=${half:+,size=${half}k}\n\
         grep -q ' /run ' /proc/mounts || mount -t tmpfs -o mode=0755,nosuid,nodev$size tmpfs /run\n\
         grep -q ' /tmp ' /proc/mounts || mount -t tmpfs -o mode=1777,nosuid,nodev$size tmpfs /tmp\n\
         for s in /etc/init.d/S??*; do [ -x \"$s\" ] && \"$s\" start; done\n\
         echo \"berth: $(hostname) booted\"\n",
        0o755,
    )?;
    write(
        &e.join("init.d/rcK"),
        "#!/bin/sh\n# Shutdown: run /etc/init.d/S??* stop in reverse order.\n\
         export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
         for s in $(ls -r /etc/init.d/S??* 2>/dev/null); do [ -x \"$s\" ] && \"$s\" stop; done\n\
         echo \"berth: $(hostname) shutting down\"\n",
        0o755,
    )?;
    let manifest = TemplateManifest {
        name: name.into(),
        kind: TemplateKind::Os,
        source: "busybox".into(),
        created: now(),
        init: vec!["/sbin/init".into()],
        stop_signal: "SIGUSR2".into(),
        os: Some(format!("BusyBox {version}")),
        size: tree_size(&r),
        hash: Some(crate::template_hash::content_hash(&r)?),
    };
    crash_point("template:after-populate");
    st.commit(root, &manifest)?;
    Ok(manifest)
}

/// Compression of a rootfs tarball, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

/// Detects the compression from magic bytes; `None` if it does not look like a tarball.
pub fn detect_compression(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Compression::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Compression::None)
    } else {
        None
    }
}

/// Counts bytes read, reporting them as progress.
struct Counting<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.update(self.done, Some(self.total));
        Ok(n)
    }
}

/// Imports a rootfs tarball (plain, gzip, xz or zstd; flat or with a top-level `rootfs/`).
/// Decompression runs here (progress on compressed bytes); GNU tar extracts, so device
/// nodes, hard links, xattrs and numeric ownership come out exactly as archived.
pub fn import_tarball(
    root: &NodeRoot,
    name: &str,
    tarball: &Path,
    progress: &dyn Progress,
) -> Result<TemplateManifest> {
    check_new(root, name)?;
    let mut f = fs::File::open(tarball).map_err(|e| StorageError::io(tarball, e))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = vec![0u8; 512];
    let n = read_up_to(&mut f, &mut head).map_err(|e| StorageError::io(tarball, e))?;
    head.truncate(n);
    let comp =
        detect_compression(&head).ok_or_else(|| StorageError::UnknownArchive(tarball.into()))?;
    let f = fs::File::open(tarball).map_err(|e| StorageError::io(tarball, e))?;
    let counting = Counting {
        inner: std::io::BufReader::new(f),
        done: 0,
        total,
        progress,
    };
    let mut reader: Box<dyn Read> = match comp {
        Compression::None => Box::new(counting),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counting)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(counting)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(counting).map_err(|e| StorageError::io(tarball, e))?,
        ),
    };
    let st = Staging::new(root, name)?;
    progress.message(&format!("extracting {}", tarball.display()));
    let mut child = Command::new("tar")
        .args(["-x", "-p"])
        .args(TAR_KEEP)
        .args(["-f", "-", "-C"])
        .arg(st.rootfs())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StorageError::io("tar", e))?;
    let mut stdin = child.stdin.take().expect("piped");
    // tar's messages are read while the archive is fed to it: a hostile archive can make it
    // print one line per entry, and a full stderr pipe would block tar, and so this copy,
    // for ever.
    let stderr = child.stderr.take().expect("piped");
    let messages = std::thread::spawn(move || tar_messages(stderr));
    let copy = std::io::copy(&mut reader, &mut stdin);
    drop(stdin);
    let status = child.wait().map_err(|e| StorageError::io("tar", e))?;
    let messages = messages.join().unwrap_or_default();
    if !status.success() {
        // tar's own refusal (it names the entry) rather than the broken pipe it left us.
        return Err(StorageError::Command {
            cmd: "tar -x".into(),
            msg: tar_error(&messages),
        });
    }
    copy.map_err(|e| StorageError::io(tarball, e))?;
    crash_point("template:after-extract");
    let rootfs_meta =
        fs::symlink_metadata(st.rootfs()).map_err(|e| StorageError::io(st.rootfs(), e))?;
    if !rootfs_meta.is_dir() {
        return Err(StorageError::BadTemplate(
            name.into(),
            "tarball entry . is not a directory".into(),
        ));
    }
    // Some tarballs (LXC image exports) wrap the tree in rootfs/. Nothing here follows a
    // symlink: a tarball whose `rootfs` is a symlink to a host directory must not make that
    // directory the template (nor have its device nodes "dropped").
    let inner = st.rootfs().join("rootfs");
    let inner_is_dir = fs::symlink_metadata(&inner).is_ok_and(|m| m.is_dir());
    if inner_is_dir && fs::symlink_metadata(st.rootfs().join("etc")).is_err() {
        let tmp = st.dir.join("rootfs.inner");
        fs::rename(&inner, &tmp).map_err(|e| StorageError::io(&inner, e))?;
        fs::remove_dir_all(st.rootfs()).map_err(|e| StorageError::io(st.rootfs(), e))?;
        fs::rename(&tmp, st.rootfs()).map_err(|e| StorageError::io(&tmp, e))?;
    }
    neutralise_devices(name, &st.rootfs(), "tarball entry")?;
    let source = format!("tarball:{}", tarball.display());
    let manifest = inspect(name, &st.rootfs(), source)?;
    st.commit(root, &manifest)?;
    Ok(manifest)
}

/// Most of tar's messages kept (the first ones: they name the first refused entries).
const TAR_MESSAGES_MAX: usize = 64 << 10;

/// Reads all of tar's stderr, keeping its first [`TAR_MESSAGES_MAX`] bytes.
fn tar_messages(mut r: impl Read) -> String {
    let mut kept = vec![];
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = TAR_MESSAGES_MAX.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// One line for a failed extraction: tar's first error (it names the entry), with the
/// number of further ones; not its closing "Exiting with failure status".
fn tar_error(messages: &str) -> String {
    let errors: Vec<&str> = messages
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("Exiting with failure status"))
        .filter(|l| !l.starts_with("tar: Removing leading"))
        .collect();
    match errors.as_slice() {
        [] => messages
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("failed")
            .to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

fn read_up_to(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let r = f.read(&mut buf[n..])?;
        if r == 0 {
            break;
        }
        n += r;
    }
    Ok(n)
}

/// The Debian mirror apt on this node uses, for debootstrap's default.
pub fn host_debian_mirror() -> Option<String> {
    let text = fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .ok()
        .or_else(|| fs::read_to_string("/etc/apt/sources.list").ok())?;
    for l in text.lines() {
        let l = l.trim();
        if let Some(u) = l.strip_prefix("URIs:") {
            if let Some(u) = u.split_whitespace().find(|u| !u.contains("security")) {
                return Some(u.to_string());
            }
        }
        if let Some(rest) = l.strip_prefix("deb ") {
            if let Some(u) = rest.split_whitespace().find(|w| w.starts_with("http")) {
                if !u.contains("security") {
                    return Some(u.to_string());
                }
            }
        }
    }
    None
}

/// Builds a Debian OS template with debootstrap (`suite` e.g. `bookworm`).
pub fn debootstrap(
    root: &NodeRoot,
    name: &str,
    suite: &str,
    mirror: Option<&str>,
    progress: &dyn Progress,
) -> Result<TemplateManifest> {
    check_new(root, name)?;
    if !suite
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        || suite.is_empty()
    {
        return Err(StorageError::BadTemplate(
            name.into(),
            format!("invalid suite {suite:?}"),
        ));
    }
    let mirror = mirror
        .map(String::from)
        .or_else(host_debian_mirror)
        .unwrap_or_else(|| "http://deb.debian.org/debian".into());
    let st = Staging::new(root, name)?;
    progress.message(&format!("debootstrap {suite} from {mirror}"));
    let mut child = Command::new("debootstrap")
        .args(["--include=systemd-sysv,ifupdown,iproute2", suite])
        .arg(st.rootfs())
        .arg(&mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StorageError::io("debootstrap (install Debian's debootstrap package)", e))?;
    let stdout = child.stdout.take().expect("piped");
    let mut count = 0u64;
    for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
        count += 1;
        progress.update(count, None);
        if let Some(msg) = line.strip_prefix("I: ") {
            progress.message(msg);
        }
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let status = child
        .wait()
        .map_err(|e| StorageError::io("debootstrap", e))?;
    if !status.success() {
        return Err(StorageError::Command {
            cmd: format!("debootstrap {suite}"),
            msg: err.lines().last().unwrap_or("failed").to_string(),
        });
    }
    // Clean apt caches: they are per-container business, not template content.
    let _ = run(Command::new("sh").arg("-c").arg(format!(
        "rm -rf {0}/var/cache/apt/archives/*.deb {0}/var/lib/apt/lists/*",
        st.rootfs().display()
    )));
    neutralise_devices(name, &st.rootfs(), "debootstrap left")?;
    let manifest = inspect(name, &st.rootfs(), format!("debootstrap:{suite}"))?;
    st.commit(root, &manifest)?;
    Ok(manifest)
}

/// Device nodes in a new template's tree (`what` names the source in the error): those under
/// `dev/` are removed, since a container's `/dev` is always its own tmpfs and they would never
/// be seen there (as LXC and Incus unpack images); any other block or character device refuses
/// the template with an error naming the entry. A template tree is only ever reachable by
/// root on the host (templates/ is 0700, the layer mounts are nodev), and inside an
/// unprivileged container device nodes on the overlay cannot be opened; this keeps a device
/// node planted in an image (a `/dev/mem`-like 1:1 under `/usr`) out of the node altogether.
/// Setuid files are kept: they must keep working inside containers (`/usr/bin/passwd`).
pub fn neutralise_devices(name: &str, rootfs: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn walk(dir: &Path, rel: &str, found: &mut Vec<(String, bool, u64)>) -> std::io::Result<()> {
        for e in fs::read_dir(dir)? {
            let e = e?;
            let m = fs::symlink_metadata(e.path())?;
            let r = format!("{rel}{}", e.file_name().to_string_lossy());
            let t = m.file_type();
            if t.is_dir() {
                walk(&e.path(), &format!("{r}/"), found)?;
            } else if t.is_char_device() || t.is_block_device() {
                found.push((r, t.is_char_device(), m.rdev()));
            }
        }
        Ok(())
    }
    let mut found = vec![];
    walk(rootfs, "", &mut found).map_err(|e| StorageError::io(rootfs, e))?;
    if let Some((r, chr, rdev)) = found.iter().find(|(r, _, _)| !r.starts_with("dev/")) {
        return Err(StorageError::BadTemplate(
            name.into(),
            format!(
                "{what} /{r} is a {} device ({}:{}): device nodes are refused outside /dev",
                if *chr { "character" } else { "block" },
                libc::major(*rdev),
                libc::minor(*rdev)
            ),
        ));
    }
    for (r, _, _) in &found {
        let p = rootfs.join(r);
        fs::remove_file(&p).map_err(|e| StorageError::io(&p, e))?;
    }
    if !found.is_empty() {
        tracing::info!(
            template = name,
            count = found.len(),
            "dropped device nodes under /dev (a container's /dev is its own)"
        );
    }
    Ok(())
}

/// Reads what a rootfs needs to be run: its init, how to stop it, its OS name.
pub fn inspect(name: &str, rootfs: &Path, source: String) -> Result<TemplateManifest> {
    // The tree is untrusted: every path is resolved inside it, files are read without
    // blocking and within a bound (a symlink to a host FIFO or /dev/zero).
    if !fs::symlink_metadata(rootfs).is_ok_and(|m| m.is_dir()) {
        return Err(StorageError::BadTemplate(
            name.into(),
            "the rootfs is not a directory".into(),
        ));
    }
    let target = crate::safefs::open_in_tree(rootfs, "sbin/init", libc::O_PATH | libc::O_NOFOLLOW)
        .ok()
        .and_then(|fd| nix::fcntl::readlinkat(Some(std::os::fd::AsRawFd::as_raw_fd(&fd)), "").ok())
        .map(|t| t.to_string_lossy().into_owned());
    if target.is_none() && crate::safefs::open_in_tree(rootfs, "sbin/init", libc::O_PATH).is_err() {
        return Err(StorageError::BadTemplate(
            name.into(),
            "rootfs has no /sbin/init (a system container needs an init)".into(),
        ));
    }
    let t = target.unwrap_or_default();
    let stop_signal = if t.contains("systemd") {
        "SIGRTMIN+4" // systemd: poweroff
    } else if t.contains("busybox") {
        "SIGUSR2" // busybox init: poweroff
    } else {
        "SIGPWR" // sysvinit and others (LXC's default halt signal)
    };
    let os = read_in_tree(rootfs, "etc/os-release")
        .or_else(|_| read_in_tree(rootfs, "usr/lib/os-release"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        });
    Ok(TemplateManifest {
        name: name.into(),
        kind: TemplateKind::Os,
        source,
        created: now(),
        init: vec!["/sbin/init".into()],
        stop_signal: stop_signal.into(),
        os,
        size: tree_size(rootfs),
        hash: Some(crate::template_hash::content_hash(rootfs)?),
    })
}

/// Largest os-release read from a template (real ones are a few hundred bytes).
const OS_RELEASE_MAX: u64 = 64 << 10;

/// Reads a regular file of an unpacked tree, at most [`OS_RELEASE_MAX`] bytes, as text.
/// Symlinks are resolved inside the tree ([`crate::safefs::read_in_tree`]: `etc/os-release
/// -> ../usr/lib/os-release` works, `-> /dev/zero` or `-> /root/.ssh/id_rsa` of the host is
/// never read), and a FIFO or device is refused without blocking on it.
fn read_in_tree(tree: &Path, rel: &str) -> std::io::Result<String> {
    crate::safefs::read_in_tree(tree, rel, OS_RELEASE_MAX)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Apparent size of the regular files in a tree (hard links counted once).
pub fn tree_size(p: &Path) -> u64 {
    use std::collections::HashSet;
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let mut total = 0;
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                if m.is_dir() {
                    total += walk(&e.path(), seen);
                } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                    total += m.len();
                }
            }
        }
        total
    }
    walk(p, &mut HashSet::new())
}

/// Loads a template's manifest.
pub fn load(root: &NodeRoot, name: &str) -> Result<TemplateManifest> {
    let dir = root.template_dir(name)?;
    let p = dir.join("template.toml");
    if !p.exists() {
        return Err(CoreError::TemplateNotFound(name.into()).into());
    }
    Ok(TemplateManifest::load(&p, name)?)
}

/// Template `name`'s content hash: its manifest's, or (a manifest older than hashes)
/// computed now and written into the manifest.
pub fn ensure_hash(root: &NodeRoot, name: &str) -> Result<String> {
    let m = load(root, name)?;
    if let Some(h) = m.hash {
        return Ok(h);
    }
    let dir = root.template_dir(name)?;
    let h = crate::template_hash::content_hash(&dir.join("rootfs"))?;
    let m = TemplateManifest {
        hash: Some(h.clone()),
        ..m
    };
    fsutil::write_toml(&dir.join("template.toml"), &m)?;
    Ok(h)
}

/// All templates of the node, by name.
pub fn list(root: &NodeRoot) -> Result<Vec<TemplateManifest>> {
    let dir = root.templates_dir();
    let mut out = vec![];
    let rd = fs::read_dir(&dir).map_err(|e| StorageError::io(&dir, e))?;
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with('.') {
            continue;
        }
        match load(root, &n) {
            Ok(m) => out.push(m),
            Err(e) => tracing::warn!(template = %n, "not listed: {e}"),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Deletes a template (the caller checks that no container uses it). The directory is first
/// renamed aside so that a crash half-way never leaves a half-deleted template in the list.
pub fn remove(root: &NodeRoot, name: &str) -> Result<()> {
    let dir = root.template_dir(name)?;
    if !dir.join("template.toml").exists() {
        return Err(CoreError::TemplateNotFound(name.into()).into());
    }
    let aside = root
        .templates_dir()
        .join(format!(".staging-removed-{name}-{}", std::process::id()));
    fs::rename(&dir, &aside).map_err(|e| StorageError::io(&dir, e))?;
    fs::remove_dir_all(&aside).map_err(|e| StorageError::io(&aside, e))?;
    Ok(())
}

/// Writes a template's description, one field a line (`berth template info`).
pub fn describe(m: &TemplateManifest, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "name:        {}", m.name)?;
    writeln!(out, "kind:        {:?}", m.kind)?;
    writeln!(out, "os:          {}", m.os.as_deref().unwrap_or("-"))?;
    writeln!(out, "source:      {}", m.source)?;
    writeln!(out, "init:        {}", m.init.join(" "))?;
    writeln!(out, "stop signal: {}", m.stop_signal)?;
    writeln!(out, "size:        {}", berth_core::Size(m.size.max(1)))?;
    if let Some(h) = &m.hash {
        writeln!(out, "hash:        {h}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_magic() {
        assert_eq!(
            detect_compression(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(
            detect_compression(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Some(Compression::Xz)
        );
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]),
            Some(Compression::Zstd)
        );
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect_compression(&tar), Some(Compression::None));
        assert_eq!(detect_compression(b"hello"), None);
    }

    #[test]
    fn inspect_requires_init_and_detects_signal() {
        let d = tempfile::tempdir().unwrap();
        assert!(inspect("t", d.path(), "x".into()).is_err());
        fs::create_dir_all(d.path().join("sbin")).unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        symlink("/lib/systemd/systemd", d.path().join("sbin/init")).unwrap();
        fs::write(
            d.path().join("etc/os-release"),
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )
        .unwrap();
        let m = inspect("t", d.path(), "x".into()).unwrap();
        assert_eq!(m.stop_signal, "SIGRTMIN+4");
        assert_eq!(m.os.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    }

    #[test]
    fn tar_error_is_the_first_refusal() {
        let msgs = "tar: Removing leading `../' from member names\n\
                    tar: ../a: Member name contains '..'\n\
                    tar: ../b: Member name contains '..'\n\
                    tar: Exiting with failure status due to previous errors\n";
        assert_eq!(
            tar_error(msgs),
            "tar: ../a: Member name contains '..' (and 1 more)"
        );
        assert_eq!(tar_error("tar: x: Cannot open\n"), "tar: x: Cannot open");
        assert_eq!(tar_error(""), "failed");
        // a flood is read to its end but only its start is kept
        let flood = "tar: e: bad\n".repeat(100_000);
        assert!(tar_messages(flood.as_bytes()).len() <= TAR_MESSAGES_MAX);
    }

    #[test]
    fn os_release_is_read_inside_the_tree_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        fs::write(r.join("usr/lib/os-release"), "PRETTY_NAME=in\n").unwrap();
        let host = tempfile::NamedTempFile::new().unwrap();
        fs::write(host.path(), "PRETTY_NAME=host\n").unwrap();
        // in-tree links, relative or absolute, resolve inside the tree
        for l in ["../usr/lib/os-release", "/usr/lib/os-release"] {
            let _ = fs::remove_file(r.join("etc/os-release"));
            symlink(l, r.join("etc/os-release")).unwrap();
            assert_eq!(
                read_in_tree(r, "etc/os-release").unwrap(),
                "PRETTY_NAME=in\n"
            );
        }
        // a host file, /dev/zero (endless) and a FIFO (blocks) are never read
        for l in [host.path(), Path::new("/dev/zero")] {
            fs::remove_file(r.join("etc/os-release")).unwrap();
            symlink(l, r.join("etc/os-release")).unwrap();
            assert!(read_in_tree(r, "etc/os-release").is_err(), "{l:?}");
        }
        fs::remove_file(r.join("etc/os-release")).unwrap();
        nix::unistd::mkfifo(
            &r.join("etc/os-release"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        assert!(read_in_tree(r, "etc/os-release").is_err());
        // nor is a tree that is itself a symlink followed
        let link = d.path().join("link");
        symlink(r.join("usr"), &link).unwrap();
        assert!(read_in_tree(&link, "lib/os-release").is_err());
    }

    #[test]
    fn device_nodes_dropped_under_dev_refused_elsewhere() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("dev")).unwrap();
        fs::create_dir_all(r.join("usr/share")).unwrap();
        let mknod = |p: &Path| {
            nix::sys::stat::mknod(
                p,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(1, 1),
            )
        };
        if mknod(&r.join("dev/mem")).is_err() {
            return; // needs CAP_MKNOD: covered by the root integration suite
        }
        fs::write(r.join("usr/share/plain"), "x").unwrap();
        neutralise_devices("t", r, "tarball entry").unwrap();
        assert!(!r.join("dev/mem").exists());
        assert!(r.join("usr/share/plain").exists());
        mknod(&r.join("usr/share/mem")).unwrap();
        let e = neutralise_devices("t", r, "tarball entry")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/usr/share/mem") && e.contains("(1:1)"), "{e}");
    }
}
