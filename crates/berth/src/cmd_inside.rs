//! The owner's everyday tools inside a container (ADR 0011): `berth user CT …`,
//! `berth group CT …`, `berth file …` and `set --userpasswd`. Everything goes through the
//! `Node` trait, so it works the same with `--remote`.

use crate::output::printable;
use crate::Format;
use anyhow::{bail, Result};
use berth_api::inside::{
    parse_mode, CtGroupAdd, CtPassword, CtUser, CtUserAdd, FileEntry, FileKind, FilePush, FileSink,
};
use berth_api::Node;
use berth_core::CtRef;
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// `berth user CT …` (parsed apart from `berth user add|list|remove`, the API's users).
#[derive(Parser)]
#[command(
    name = "berth user",
    about = "Users inside a container (its /etc/passwd, /etc/shadow, /etc/group), running or stopped",
    after_help = "The API's own users are `berth user add|list|remove` (without a container)."
)]
pub(crate) struct CtUserCli {
    /// The container: CTID or name
    pub ct: String,
    #[command(subcommand)]
    pub cmd: CtUserCmd,
}

#[derive(Subcommand)]
pub(crate) enum CtUserCmd {
    /// NAME UID GID HOME SHELL PASSWORD GROUPS of every user
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add a user (and a group of its own), like useradd
    Add {
        name: String,
        /// UID inside the container (default: the first free from UID_MIN, 1000)
        #[arg(long)]
        uid: Option<u32>,
        /// GID of an existing group as its primary group (default: a new group NAME)
        #[arg(long)]
        gid: Option<u32>,
        /// Supplementary groups (existing ones, comma-separated)
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Login shell (default /bin/bash when the container has it, else /bin/sh)
        #[arg(long)]
        shell: Option<String>,
        /// Home directory (default /home/NAME, created 0700 when missing)
        #[arg(long)]
        home: Option<String>,
        /// Full name / comment field
        #[arg(long)]
        gecos: Option<String>,
        /// Do not create the home directory
        #[arg(long)]
        no_create_home: bool,
        /// Set a password at once: from a prompt, or the first line of stdin
        #[arg(long)]
        password: bool,
    },
    /// Remove a user (refused while it has processes), its memberships and its own group
    #[command(alias = "remove")]
    Del { name: String },
    /// Set a user's password: from a prompt (twice), or the first line of stdin
    Passwd { name: String },
}

#[derive(Subcommand)]
pub(crate) enum GroupCmd {
    /// NAME GID MEMBERS of every group
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add a group, like groupadd
    Add {
        name: String,
        /// GID inside the container (default: the first free from GID_MIN, 1000)
        #[arg(long)]
        gid: Option<u32>,
    },
    /// Remove a group (refused while it is a user's primary group)
    #[command(alias = "remove")]
    Del { name: String },
}

#[derive(Subcommand)]
pub(crate) enum FileCmd {
    /// Copy a file of this machine into the container (`-`: stdin)
    Push {
        ct: String,
        /// Local file, or `-` for stdin
        src: String,
        /// Path inside; ending in `/` (or an existing directory): the file keeps its name
        dest: String,
        /// Mode inside, octal (default: the local file's; else the replaced file's, or 0644)
        #[arg(long)]
        mode: Option<String>,
        /// Owner inside the container (default: the replaced file's, else 0)
        #[arg(long)]
        uid: Option<u32>,
        #[arg(long)]
        gid: Option<u32>,
    },
    /// Copy a file of the container to this machine (`-`: stdout)
    Pull {
        ct: String,
        /// Path inside the container
        src: String,
        /// Local file or directory, or `-` for stdout (default: the current directory)
        #[arg(default_value = ".")]
        dest: String,
    },
    /// List a directory inside the container (or show one file)
    Ls {
        ct: String,
        #[arg(default_value = "/")]
        path: String,
        /// The directory itself, not its entries (as `ls -d`)
        #[arg(short = 'd', long)]
        directory: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove a file, symlink or empty directory inside the container
    Rm { ct: String, path: String },
    /// Edit a file of the container with $EDITOR (on a copy, written back when changed)
    Edit { ct: String, path: String },
}

fn ct(s: &str) -> Result<CtRef> {
    Ok(CtRef::parse(s)?)
}

/// A password from a prompt without echo (asked twice), or the first line of stdin.
pub(crate) fn read_password(what: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let fd = stdin.lock();
        let old = tcgetattr(&fd)?;
        let mut quiet = old.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let ask = |prompt: &str| -> Result<String> {
            eprint!("{prompt}");
            std::io::stderr().flush()?;
            tcsetattr(&fd, SetArg::TCSANOW, &quiet)?;
            let mut line = String::new();
            let r = std::io::stdin().read_line(&mut line);
            tcsetattr(&fd, SetArg::TCSANOW, &old)?;
            eprintln!();
            r?;
            Ok(line.trim_end_matches(['\n', '\r']).to_string())
        };
        let a = ask(&format!("New password for {what}: "))?;
        let b = ask("Retype it: ")?;
        if a != b {
            bail!("the passwords do not match");
        }
        Ok(a)
    } else {
        let mut line = String::new();
        stdin.read_line(&mut line)?;
        Ok(line.trim_end_matches(['\n', '\r']).to_string())
    }
}

fn users_table(list: &[CtUser]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:>6} {:>6} {:<20} {:<18} {:<8} GROUPS",
        "NAME", "UID", "GID", "HOME", "SHELL", "PASSWORD"
    )?;
    for u in list {
        let pw = serde_json::to_value(u.password)?;
        writeln!(
            out,
            "{:<20} {:>6} {:>6} {:<20} {:<18} {:<8} {}",
            printable(&u.name),
            u.uid,
            u.gid,
            printable(&u.home),
            printable(&u.shell),
            pw.as_str().unwrap_or("-"),
            if u.groups.is_empty() {
                "-".into()
            } else {
                printable(&u.groups.join(",")).into_owned()
            }
        )?;
    }
    Ok(())
}

pub(crate) fn user(node: &dyn Node, cli: CtUserCli) -> Result<()> {
    let r = ct(&cli.ct)?;
    match cli.cmd {
        CtUserCmd::List { format } => {
            let list = node.ct_user_list(&r)?;
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                users_table(&list)?;
            }
        }
        CtUserCmd::Add {
            name,
            uid,
            gid,
            groups,
            shell,
            home,
            gecos,
            no_create_home,
            password,
        } => {
            let mut add = CtUserAdd {
                name,
                uid,
                gid,
                groups,
                shell,
                home,
                gecos,
                no_create_home,
                password: None,
            };
            add.validate()?;
            if password {
                let p = read_password(&add.name)?;
                berth_api::inside::validate_password(&p)?;
                add.password = Some(p);
            }
            let u = node.ct_user_add(&r, add)?;
            outln!(
                "container {r}: user {} added (UID {}, GID {}, home {}){}",
                u.name,
                u.uid,
                u.gid,
                u.home,
                if password { ", password set" } else { "" }
            );
        }
        CtUserCmd::Del { name } => {
            node.ct_user_del(&r, &name)?;
            outln!("container {r}: user {name} removed");
        }
        CtUserCmd::Passwd { name } => {
            berth_api::inside::validate_account_name(&name)?;
            let password = read_password(&name)?;
            berth_api::inside::validate_password(&password)?;
            node.ct_user_passwd(
                &r,
                &name,
                CtPassword {
                    password,
                    create: false,
                },
            )?;
            outln!("container {r}: password of {name} changed");
        }
    }
    Ok(())
}

/// `set CT --userpasswd NAME[:PASSWORD]` (vzctl's): creates the user if missing.
pub(crate) fn userpasswd(node: &dyn Node, r: &CtRef, spec: &str) -> Result<()> {
    let (name, password) = match spec.split_once(':') {
        Some((n, p)) => (n.to_string(), p.to_string()),
        None => (spec.to_string(), read_password(spec)?),
    };
    berth_api::inside::validate_account_name(&name)?;
    berth_api::inside::validate_password(&password)?;
    let u = node.ct_user_passwd(
        r,
        &name,
        CtPassword {
            password,
            create: true,
        },
    )?;
    outln!("container {r}: password of {} set (UID {})", u.name, u.uid);
    Ok(())
}

pub(crate) fn group(node: &dyn Node, c: &str, cmd: GroupCmd) -> Result<()> {
    let r = ct(c)?;
    match cmd {
        GroupCmd::List { format } => {
            let list = node.ct_group_list(&r)?;
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                outln!("{:<24} {:>6} MEMBERS", "NAME", "GID");
                for g in list {
                    outln!(
                        "{:<24} {:>6} {}",
                        printable(&g.name),
                        g.gid,
                        if g.members.is_empty() {
                            "-".into()
                        } else {
                            printable(&g.members.join(",")).into_owned()
                        }
                    );
                }
            }
        }
        GroupCmd::Add { name, gid } => {
            let add = CtGroupAdd { name, gid };
            add.validate()?;
            let g = node.ct_group_add(&r, add)?;
            outln!("container {r}: group {} added (GID {})", g.name, g.gid);
        }
        GroupCmd::Del { name } => {
            node.ct_group_del(&r, &name)?;
            outln!("container {r}: group {name} removed");
        }
    }
    Ok(())
}

/// Counts bytes into a progress bar (drawn only on a terminal, for files over 4 MiB).
struct Counting<'a> {
    bar: Option<indicatif::ProgressBar>,
    done: u64,
    inner: &'a mut dyn Read,
}

fn bar(total: Option<u64>, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total.is_some_and(|t| t < 4 << 20) {
        return None;
    }
    let b = match total {
        Some(t) => indicatif::ProgressBar::new(t),
        None => indicatif::ProgressBar::new_spinner(),
    };
    b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let style = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
    } else {
        "{spinner} {msg} {bytes} {bytes_per_sec}"
    };
    if let Ok(s) = indicatif::ProgressStyle::with_template(style) {
        b.set_style(s.progress_chars("=> "));
    }
    b.set_message(what.to_string());
    Some(b)
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
        Ok(n)
    }
}

/// Writes a pulled file into a temporary file beside `dest`, renamed over it at the end
/// (or to stdout).
struct LocalSink {
    dest: Option<PathBuf>,
    tmp: Option<(PathBuf, std::fs::File)>,
    bar: Option<indicatif::ProgressBar>,
    done: u64,
    keep_mode: bool,
}

impl FileSink for LocalSink {
    fn begin(&mut self, e: &FileEntry) -> std::io::Result<()> {
        self.bar = bar(Some(e.size), e.name());
        if let Some(d) = &self.dest {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let dir = d
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = dir.join(format!(".{name}.berth-{}", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            if self.keep_mode {
                f.set_permissions(std::fs::Permissions::from_mode(e.mode & 0o777))?;
            }
            self.tmp = Some((tmp, f));
        }
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.tmp {
            Some((_, f)) => f.write_all(data)?,
            None => std::io::stdout().lock().write_all(data)?,
        }
        self.done += data.len() as u64;
        if let Some(b) = &self.bar {
            b.set_position(self.done);
        }
        Ok(())
    }
}

impl LocalSink {
    fn finish(&mut self) -> Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if let (Some((tmp, f)), Some(d)) = (self.tmp.take(), &self.dest) {
            f.sync_all()?;
            std::fs::rename(&tmp, d)?;
        } else {
            std::io::stdout().lock().flush()?;
        }
        Ok(())
    }
}

impl Drop for LocalSink {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// The last component of a path inside (for `pull` into a directory).
fn base_name(p: &str) -> String {
    p.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

fn mode_str(e: &FileEntry) -> String {
    let mut s = String::new();
    s.push(e.kind.letter());
    let m = e.mode;
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        let bit = 1 << (8 - i);
        let mut ch = if m & bit != 0 { c } else { '-' };
        let exec = m & bit != 0;
        match i {
            2 if m & 0o4000 != 0 => ch = if exec { 's' } else { 'S' },
            5 if m & 0o2000 != 0 => ch = if exec { 's' } else { 'S' },
            8 if m & 0o1000 != 0 => ch = if exec { 't' } else { 'T' },
            _ => {}
        }
        s.push(ch);
    }
    s
}

/// `file push` and `file edit`: writes `input` to `dest` inside, naming the file after
/// `src` when `dest` is a directory.
pub(crate) fn file(node: &dyn Node, cmd: FileCmd) -> Result<i32> {
    match cmd {
        FileCmd::Push {
            ct: c,
            src,
            dest,
            mode,
            uid,
            gid,
        } => {
            let r = ct(&c)?;
            let mode = mode.as_deref().map(parse_mode).transpose()?;
            let from_stdin = src == "-";
            let mut path = dest.clone();
            if path.ends_with('/') {
                if from_stdin {
                    bail!("give the file's name inside the container when pushing stdin");
                }
                path.push_str(&local_name(&src)?);
            }
            berth_api::inside::validate_path(&path)?;
            // An existing directory inside takes the file under its own name.
            if !from_stdin {
                if let Ok(e) = node.file_stat(&r, &path) {
                    if e.kind == FileKind::Dir {
                        path = format!("{}/{}", path.trim_end_matches('/'), local_name(&src)?);
                    }
                }
            }
            let (mut input, size, local_mode): (Box<dyn Read>, Option<u64>, Option<u32>) =
                if from_stdin {
                    (Box::new(std::io::stdin().lock()), None, None)
                } else {
                    use std::os::unix::fs::PermissionsExt;
                    let f = std::fs::File::open(&src).map_err(|e| anyhow::anyhow!("{src}: {e}"))?;
                    let m = f.metadata()?;
                    if !m.is_file() {
                        bail!("{src} is not a regular file");
                    }
                    (
                        Box::new(f),
                        Some(m.len()),
                        Some(m.permissions().mode() & 0o7777),
                    )
                };
            let req = FilePush {
                path: berth_api::inside::clean_path(&path),
                mode: mode.or(local_mode),
                uid,
                gid,
            };
            req.validate()?;
            let mut counting = Counting {
                bar: bar(size, &base_name(&req.path)),
                done: 0,
                inner: &mut *input,
            };
            let e = node.file_push(&r, req, &mut counting);
            if let Some(b) = counting.bar.take() {
                b.finish_and_clear();
            }
            let e = e?;
            outln!(
                "container {r}: {} written ({} bytes, mode {:04o}, owner {}:{})",
                e.path,
                e.size,
                e.mode,
                e.uid,
                e.gid
            );
        }
        FileCmd::Pull { ct: c, src, dest } => {
            let r = ct(&c)?;
            berth_api::inside::validate_path(&src)?;
            let to_stdout = dest == "-";
            let target = if to_stdout {
                None
            } else {
                let d = PathBuf::from(&dest);
                if d.is_dir() || dest.ends_with('/') {
                    Some(d.join(base_name(&src)))
                } else {
                    Some(d)
                }
            };
            let mut sink = LocalSink {
                dest: target.clone(),
                tmp: None,
                bar: None,
                done: 0,
                keep_mode: true,
            };
            let e = node.file_pull(&r, &src, &mut sink)?;
            sink.finish()?;
            if let Some(t) = target {
                // A message on stderr: stdout may be the file's own place in a pipe.
                eprintln!("{} -> {} ({} bytes)", e.path, t.display(), e.size);
            }
        }
        FileCmd::Ls {
            ct: c,
            path,
            directory,
            format,
        } => {
            let r = ct(&c)?;
            berth_api::inside::validate_path(&path)?;
            let list = if directory {
                vec![node.file_stat(&r, &path)?]
            } else {
                node.file_list(&r, &path)?
            };
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for e in &list {
                    let name = if list.len() == 1 && e.path == berth_api::inside::clean_path(&path)
                    {
                        e.path.clone()
                    } else {
                        e.name().to_string()
                    };
                    let link = e
                        .target
                        .as_deref()
                        .map(|t| format!(" -> {}", printable(t)))
                        .unwrap_or_default();
                    // Names come from the container: control characters escaped, so that
                    // they cannot drive the terminal or forge rows.
                    let name = printable(&name);
                    outln!(
                        "{} {:>6} {:>6} {:>12} {} {name}{link}",
                        mode_str(e),
                        e.uid,
                        e.gid,
                        e.size,
                        crate::cmd_user::when(e.mtime.max(0) as u64),
                    );
                }
            }
        }
        FileCmd::Rm { ct: c, path } => {
            let r = ct(&c)?;
            node.file_remove(&r, &path)?;
            outln!("container {r}: {path} removed");
        }
        FileCmd::Edit { ct: c, path } => return edit(node, &c, &path),
    }
    Ok(0)
}

fn local_name(src: &str) -> Result<String> {
    Path::new(src)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("{src}: no file name to use inside the container"))
}

/// `file edit`: a copy in a private temporary directory, `$VISUAL`/`$EDITOR` (else `vi`),
/// written back with the file's mode and owner when it changed.
/// Largest file `file edit` copies out (a sparse file of the container may claim terabytes).
const MAX_EDIT: u64 = 16 << 20;

fn edit(node: &dyn Node, c: &str, path: &str) -> Result<i32> {
    let r = ct(c)?;
    berth_api::inside::validate_path(path)?;
    if let Ok(e) = node.file_stat(&r, path) {
        if e.size > MAX_EDIT {
            anyhow::bail!(
                "{path} is {} bytes: file edit takes files up to 16M (use file pull and push)",
                e.size
            );
        }
    }
    let dir = tempfile::Builder::new().prefix("berth-edit-").tempdir()?;
    let local = dir.path().join(base_name(path));
    let mut sink = LocalSink {
        dest: Some(local.clone()),
        tmp: None,
        bar: None,
        done: 0,
        keep_mode: false,
    };
    let (entry, existed) = match node.file_pull(&r, path, &mut sink) {
        Ok(e) => {
            sink.finish()?;
            (Some(e), true)
        }
        Err(e) if e.kind == berth_api::ErrorKind::NotFound => {
            drop(sink);
            std::fs::write(&local, b"")?;
            (None, false)
        }
        Err(e) => return Err(e.into()),
    };
    let before = std::fs::read(&local)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // `$EDITOR` may carry arguments (`code --wait`): run it through the shell.
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&local)
        .status()
        .map_err(|e| anyhow::anyhow!("{editor}: {e}"))?;
    if !status.success() {
        bail!("{editor} failed ({status}): {path} is unchanged");
    }
    let after = std::fs::read(&local)?;
    if after == before && existed {
        eprintln!("{path}: unchanged");
        return Ok(0);
    }
    let req = FilePush {
        path: berth_api::inside::clean_path(path),
        mode: entry.as_ref().map(|e| e.mode),
        uid: entry.as_ref().map(|e| e.uid),
        gid: entry.as_ref().map(|e| e.gid),
    };
    let e = node.file_push(&r, req, &mut &after[..])?;
    outln!("container {r}: {} written ({} bytes)", e.path, e.size);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_ls_shows_them() {
        let e = |kind, mode| FileEntry {
            path: "/x".into(),
            kind,
            size: 0,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            target: None,
        };
        assert_eq!(mode_str(&e(FileKind::File, 0o644)), "-rw-r--r--");
        assert_eq!(mode_str(&e(FileKind::Dir, 0o1777)), "drwxrwxrwt");
        assert_eq!(mode_str(&e(FileKind::File, 0o4755)), "-rwsr-xr-x");
        assert_eq!(mode_str(&e(FileKind::Symlink, 0o2644)), "lrw-r-Sr--");
        assert_eq!(base_name("/etc/nginx/nginx.conf"), "nginx.conf");
    }
}
