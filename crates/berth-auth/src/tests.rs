use super::*;
use std::os::unix::fs::PermissionsExt;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

#[test]
fn users_and_passwords() {
    let (_d, s) = store();
    s.add_user("alice", Role::Admin, vec![], Some("correct horse"), None)
        .unwrap();
    s.add_user("bob", Role::Owner, vec![102, 101, 101], None, None)
        .unwrap();
    assert_eq!(s.user("bob").unwrap().containers, vec![101, 102]);
    assert!(matches!(
        s.add_user("alice", Role::Auditor, vec![], None, None),
        Err(AuthError::UserExists(_))
    ));
    assert!(s.add_user("root", Role::Admin, vec![], None, None).is_err());
    assert!(s.add_user("../x", Role::Admin, vec![], None, None).is_err());
    assert!(s
        .add_user("carol", Role::Admin, vec![101], None, None)
        .is_err());
    assert!(s
        .add_user("dave", Role::Admin, vec![], Some("short"), None)
        .is_err());
    assert!(s
        .verify_password("alice", "correct horse")
        .unwrap()
        .is_some());
    assert!(s.verify_password("alice", "wrong horse").unwrap().is_none());
    assert!(s
        .verify_password("bob", "anything at all")
        .unwrap()
        .is_none());
    assert!(s
        .verify_password("nobody", "correct horse")
        .unwrap()
        .is_none());
    let text = fs::read_to_string(s.dir().join("users.toml")).unwrap();
    assert!(!text.contains("correct horse"));
    let mode = fs::metadata(s.dir().join("users.toml")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    s.remove_user("alice").unwrap();
    assert!(matches!(
        s.remove_user("alice"),
        Err(AuthError::UserNotFound(_))
    ));
}

#[test]
fn tokens_hashed_expiring_revocable() {
    let (_d, s) = store();
    s.add_user("bob", Role::Owner, vec![101], None, None)
        .unwrap();
    let t = s.create_token("bob", "ci", None).unwrap();
    let text = fs::read_to_string(s.dir().join("tokens.toml")).unwrap();
    assert!(!text.contains(&t.secret));
    let (tok, user) = s.verify_token(&t.secret).unwrap().unwrap();
    assert_eq!(tok.id, t.info.id);
    assert_eq!(user.name, "bob");
    assert!(s.verify_token("berth_nope").unwrap().is_none());
    assert!(s.create_token("nobody", "ci", None).is_err());
    assert!(s.create_token("bob", "bad\nlabel", None).is_err());
    // Expired.
    let e = s.create_token("bob", "short", Some(1)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(s.verify_token(&e.secret).unwrap().is_none());
    s.revoke_token(&t.info.id).unwrap();
    assert!(s.verify_token(&t.secret).unwrap().is_none());
    // Removing a user drops his tokens.
    let t2 = s.create_token("bob", "again", None).unwrap();
    s.remove_user("bob").unwrap();
    assert!(s.verify_token(&t2.secret).unwrap().is_none());
}

#[test]
fn hostile_files_refused() {
    let (_d, s) = store();
    let p = s.dir().join("users.toml");
    let write = |text: &str, mode: u32| {
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    write(
        "[[user]]\nname = \"a\"\nrole = \"admin\"\ncreated = 1\n",
        0o644,
    );
    assert!(matches!(s.users(), Err(AuthError::Corrupt { .. })));
    write(
        "[[user]]\nname = \"a\"\nrole = \"admin\"\ncreated = 1\nextra = 2\n",
        0o600,
    );
    assert!(s.users().is_err());
    write(
        "[[user]]\nname = \"../a\"\nrole = \"admin\"\ncreated = 1\n",
        0o600,
    );
    assert!(s.users().is_err());
    write(
        "[[user]]\nname = \"a\"\nrole = \"admin\"\ncreated = 1\npassword_hash = \"plain\"\n",
        0o600,
    );
    assert!(s.users().is_err());
    write(
        "[[user]]\nname = \"a\"\nrole = \"god\"\ncreated = 1\n",
        0o600,
    );
    assert!(s.users().is_err());
    write(
        "[[user]]\nname = \"a\"\nrole = \"admin\"\ncreated = 1\n",
        0o600,
    );
    assert_eq!(s.users().unwrap().len(), 1);
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30d").unwrap(), 30 * 86400);
    assert_eq!(parse_duration("90m").unwrap(), 5400);
    assert_eq!(parse_duration("45").unwrap(), 45);
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("x").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("99999999999999999999w").is_err());
}
