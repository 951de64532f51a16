//! restic (Debian's 0.14, scripts/install-deps.sh) is the oracle: it must check, list and
//! restore what berth-backup wrote.

use std::process::Command;

fn restic(repo: &std::path::Path, pwfile: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--password-file")
        .arg(pwfile)
        .arg("--no-cache")
        .args(args)
        .output()
        .expect("restic runs (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "restic {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn restic_checks_lists_and_restores_a_berth_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), "ct101\n").unwrap();
    std::fs::write(src.join("big"), vec![7u8; 3 << 20]).unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();

    berth_backup::init_repo(&repo.as_path().into(), "secret").unwrap();
    let id = berth_backup::backup_dir(&repo.as_path().into(), "secret", &src, &["ct:101".into()])
        .unwrap();

    restic(&repo, &pw, &["check"]);
    // repository format v2 (zstd compression), which restic reads from 0.14 on
    let config = restic(&repo, &pw, &["cat", "config"]);
    assert!(config.contains("\"version\": 2"), "{config}");
    let snaps = restic(&repo, &pw, &["snapshots", "--json"]);
    assert!(snaps.contains(&id), "{snaps}");
    assert!(snaps.contains("ct:101"), "{snaps}");
    let out = tmp.path().join("out");
    restic(
        &repo,
        &pw,
        &["restore", &id, "--target", out.to_str().unwrap()],
    );
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("etc/hostname")).unwrap(),
        b"ct101\n"
    );
    assert_eq!(std::fs::read(restored.join("big")).unwrap().len(), 3 << 20);

    // a second backup of the same tree deduplicates: the repository grows by metadata only
    let before = tree_bytes(&repo);
    let id2 = berth_backup::backup_dir(&repo.as_path().into(), "secret", &src, &["ct:101".into()])
        .unwrap();
    assert_ne!(id, id2);
    let grown = tree_bytes(&repo) - before;
    assert!(
        grown < 64 << 10,
        "second backup grew the repository by {grown} bytes"
    );

    // a wrong password is an error, not a panic
    assert!(berth_backup::backup_dir(&repo.as_path().into(), "wrong", &src, &[]).is_err());
}

fn tree_bytes(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            tree_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}
