//! The account files of a container (`/etc/passwd`, `/etc/shadow`, `/etc/group`,
//! `/etc/gshadow`) and its `/etc/login.defs`, read and changed as text: lines Berth does
//! not change (comments, NIS `+` lines, malformed ones) are kept byte for byte, as
//! shadow-utils keeps them. Pure logic: the files are read and written by the caller.

use berth_api::inside::{CtGroup, CtUser, PasswordState};
use berth_api::{Error, ErrorKind};

/// One account file: its lines, each split into fields when it is an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    lines: Vec<Line>,
    /// Whether the text ended with a newline (kept as it was).
    trailing_newline: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Line {
    Entry(Vec<String>),
    Other(String),
}

impl Table {
    /// `fields`: how many fields an entry has at least (7 passwd, 9 shadow, 4 group and
    /// gshadow); shorter lines and comments are kept as they are.
    pub fn parse(text: &str, fields: usize) -> Table {
        let lines = text
            .lines()
            .map(|l| {
                let f: Vec<String> = l.split(':').map(str::to_string).collect();
                let entry = !l.is_empty()
                    && !l.starts_with('#')
                    && !l.starts_with('+')
                    && !l.starts_with('-')
                    && f.len() >= fields;
                if entry {
                    Line::Entry(f)
                } else {
                    Line::Other(l.to_string())
                }
            })
            .collect();
        Table {
            lines,
            trailing_newline: text.is_empty() || text.ends_with('\n'),
        }
    }

    pub fn render(&self) -> String {
        let mut s = self
            .lines
            .iter()
            .map(|l| match l {
                Line::Entry(f) => f.join(":"),
                Line::Other(o) => o.clone(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        if self.trailing_newline && !self.lines.is_empty() {
            s.push('\n');
        }
        s
    }

    pub fn entries(&self) -> impl Iterator<Item = &Vec<String>> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(f) => Some(f),
            Line::Other(_) => None,
        })
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut Vec<String>> {
        self.lines.iter_mut().filter_map(|l| match l {
            Line::Entry(f) => Some(f),
            Line::Other(_) => None,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Vec<String>> {
        self.entries().find(|f| f[0] == name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Vec<String>> {
        self.entries_mut().find(|f| f[0] == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn push(&mut self, fields: Vec<String>) {
        self.lines.push(Line::Entry(fields));
        self.trailing_newline = true;
    }

    /// Removes the entry `name`; whether there was one.
    fn remove(&mut self, name: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, Line::Entry(f) if f[0] == name));
        self.lines.len() != before
    }

    /// The numeric field `i` of every entry (UIDs of passwd, GIDs of group).
    fn ids(&self, i: usize) -> Vec<u32> {
        self.entries().filter_map(|f| f[i].parse().ok()).collect()
    }
}

/// The settings of `/etc/login.defs` that account changes follow.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginDefs {
    /// `ENCRYPT_METHOD` as written (upper case), if set.
    pub encrypt_method: Option<String>,
    pub uid_min: u32,
    pub uid_max: u32,
    pub gid_min: u32,
    pub gid_max: u32,
    pub sha_crypt_min_rounds: Option<u32>,
    pub sha_crypt_max_rounds: Option<u32>,
    pub yescrypt_cost_factor: Option<u32>,
}

impl Default for LoginDefs {
    fn default() -> Self {
        LoginDefs {
            encrypt_method: None,
            uid_min: 1000,
            uid_max: 60000,
            gid_min: 1000,
            gid_max: 60000,
            sha_crypt_min_rounds: None,
            sha_crypt_max_rounds: None,
            yescrypt_cost_factor: None,
        }
    }
}

impl LoginDefs {
    pub fn parse(text: &str) -> LoginDefs {
        let mut d = LoginDefs::default();
        for l in text.lines() {
            let l = l.trim();
            if l.starts_with('#') {
                continue;
            }
            let mut it = l.split_whitespace();
            let (Some(k), Some(v)) = (it.next(), it.next()) else {
                continue;
            };
            let num = v.parse::<u32>().ok();
            match k {
                "ENCRYPT_METHOD" => d.encrypt_method = Some(v.to_ascii_uppercase()),
                "UID_MIN" => d.uid_min = num.unwrap_or(d.uid_min),
                "UID_MAX" => d.uid_max = num.unwrap_or(d.uid_max),
                "GID_MIN" => d.gid_min = num.unwrap_or(d.gid_min),
                "GID_MAX" => d.gid_max = num.unwrap_or(d.gid_max),
                "SHA_CRYPT_MIN_ROUNDS" => d.sha_crypt_min_rounds = num,
                "SHA_CRYPT_MAX_ROUNDS" => d.sha_crypt_max_rounds = num,
                "YESCRYPT_COST_FACTOR" => d.yescrypt_cost_factor = num,
                _ => {}
            }
        }
        d
    }
}

/// The four account files of a container (shadow and gshadow when it has them).
#[derive(Debug, Clone, PartialEq)]
pub struct Accounts {
    pub passwd: Table,
    pub shadow: Option<Table>,
    pub group: Table,
    pub gshadow: Option<Table>,
}

fn conflict(msg: String) -> Error {
    Error::new(ErrorKind::Conflict, msg)
}

fn precondition(msg: String) -> Error {
    Error::new(ErrorKind::Precondition, msg)
}

/// Days since 1970-01-01 (the shadow files' dates).
pub fn today() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (s / 86400).to_string()
}

/// A user to add, with everything decided (IDs, paths, hash).
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub name: String,
    pub uid: Option<u32>,
    /// An existing group's GID; `None`: a new group named like the user.
    pub gid: Option<u32>,
    pub groups: Vec<String>,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// The password hash, or `None` for a locked account.
    pub hash: Option<String>,
}

impl Accounts {
    pub fn parse(passwd: &str, shadow: Option<&str>, group: &str, gshadow: Option<&str>) -> Self {
        Accounts {
            passwd: Table::parse(passwd, 7),
            shadow: shadow.map(|s| Table::parse(s, 9)),
            group: Table::parse(group, 4),
            gshadow: gshadow.map(|s| Table::parse(s, 4)),
        }
    }

    fn group_name(&self, gid: u32) -> Option<String> {
        self.group
            .entries()
            .find(|f| f[2].parse::<u32>().ok() == Some(gid))
            .map(|f| f[0].clone())
    }

    fn members(f: &[String]) -> Vec<String> {
        f[3].split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect()
    }

    fn password_state_of(pw_field: &str, shadow: Option<&str>) -> PasswordState {
        let field = if pw_field == "x" {
            shadow.unwrap_or("!")
        } else {
            pw_field
        };
        if field.is_empty() {
            PasswordState::Empty
        } else if field.starts_with('!') || field.starts_with('*') {
            PasswordState::Locked
        } else if field.starts_with('$') || field.len() == 13 {
            // A crypt hash (`$id$…`, or an old 13-character DES one).
            PasswordState::Set
        } else {
            // Nothing a password can match.
            PasswordState::Locked
        }
    }

    pub fn users(&self) -> Vec<CtUser> {
        self.users_named(None)
    }

    pub fn user(&self, name: &str) -> Option<CtUser> {
        self.users_named(Some(name)).into_iter().next()
    }

    /// Every user (or the one named), with one pass over each file: the files come from
    /// the container and may hold many thousand lines, so nothing here is quadratic.
    fn users_named(&self, only: Option<&str>) -> Vec<CtUser> {
        use std::collections::HashMap;
        let wanted = |n: &str| only.is_none_or(|o| o == n);
        let mut gname: HashMap<u32, &str> = HashMap::new();
        let mut member_of: HashMap<&str, Vec<String>> = HashMap::new();
        for g in self.group.entries() {
            if let Ok(gid) = g[2].parse::<u32>() {
                gname.entry(gid).or_insert(g[0].as_str());
            }
            for m in g[3].split(',').filter(|m| !m.is_empty() && wanted(m)) {
                member_of.entry(m).or_default().push(g[0].clone());
            }
        }
        let mut shadow: HashMap<&str, &str> = HashMap::new();
        if let Some(s) = &self.shadow {
            for f in s.entries().filter(|f| wanted(&f[0])) {
                shadow.entry(f[0].as_str()).or_insert(f[1].as_str());
            }
        }
        self.passwd
            .entries()
            .filter(|f| wanted(&f[0]))
            .filter_map(|f| {
                let uid = f[2].parse().ok()?;
                let gid = f[3].parse().ok()?;
                Some(CtUser {
                    name: f[0].clone(),
                    uid,
                    gid,
                    group: gname.get(&gid).map(|g| g.to_string()),
                    groups: member_of.get(f[0].as_str()).cloned().unwrap_or_default(),
                    gecos: f[4].clone(),
                    home: f[5].clone(),
                    shell: f[6].clone(),
                    password: Self::password_state_of(&f[1], shadow.get(f[0].as_str()).copied()),
                })
            })
            .take(if only.is_some() { 1 } else { usize::MAX })
            .collect()
    }

    pub fn groups(&self) -> Vec<CtGroup> {
        self.group
            .entries()
            .filter_map(|f| {
                Some(CtGroup {
                    name: f[0].clone(),
                    gid: f[2].parse().ok()?,
                    members: Self::members(f),
                })
            })
            .collect()
    }

    pub fn group_entry(&self, name: &str) -> Option<CtGroup> {
        self.groups().into_iter().find(|g| g.name == name)
    }

    /// The first ID from `min` to `max` (and below `limit`) not in `used`.
    fn free_id(used: &[u32], min: u32, max: u32, limit: u32) -> Option<u32> {
        let used: std::collections::HashSet<u32> = used.iter().copied().collect();
        (min..=max.min(limit.saturating_sub(1))).find(|i| !used.contains(i))
    }

    /// Adds a group; its GID.
    pub fn add_group(
        &mut self,
        name: &str,
        gid: Option<u32>,
        defs: &LoginDefs,
        limit: u32,
    ) -> Result<u32, Error> {
        if self.group.has(name) {
            return Err(conflict(format!("group {name:?} exists already")));
        }
        let used = self.group.ids(2);
        let gid = match gid {
            Some(g) if used.contains(&g) => {
                return Err(conflict(format!(
                    "GID {g} is group {:?}'s already",
                    self.group_name(g).unwrap_or_default()
                )))
            }
            Some(g) if g >= limit => {
                return Err(Error::invalid(format!(
                    "GID {g} is outside the container's IDs (0 to {})",
                    limit - 1
                )))
            }
            Some(g) => g,
            None => Self::free_id(&used, defs.gid_min, defs.gid_max, limit).ok_or_else(|| {
                precondition(format!(
                    "no free GID from {} to {}",
                    defs.gid_min, defs.gid_max
                ))
            })?,
        };
        self.group.push(vec![
            name.into(),
            "x".into(),
            gid.to_string(),
            String::new(),
        ]);
        if let Some(gs) = &mut self.gshadow {
            gs.remove(name);
            gs.push(vec![name.into(), "!".into(), String::new(), String::new()]);
        }
        Ok(gid)
    }

    /// Removes a group that is no user's primary group.
    pub fn del_group(&mut self, name: &str) -> Result<(), Error> {
        let g = self
            .group_entry(name)
            .ok_or_else(|| Error::not_found(format!("no group {name:?} in the container")))?;
        if let Some(u) = self
            .passwd
            .entries()
            .find(|f| f[3].parse::<u32>().ok() == Some(g.gid))
        {
            return Err(precondition(format!(
                "group {name:?} is the primary group of user {:?}: remove the user first",
                u[0]
            )));
        }
        self.group.remove(name);
        if let Some(gs) = &mut self.gshadow {
            gs.remove(name);
        }
        Ok(())
    }

    /// Adds `user` to the member lists of `group` (group and gshadow).
    fn add_member(&mut self, group: &str, user: &str) {
        for (t, i) in [(Some(&mut self.group), 3), (self.gshadow.as_mut(), 3)] {
            if let Some(f) = t.and_then(|t| t.get_mut(group)) {
                let mut m: Vec<String> = f[i]
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect();
                if !m.iter().any(|x| x == user) {
                    m.push(user.into());
                }
                f[i] = m.join(",");
            }
        }
    }

    /// Removes `user` from every member (and gshadow administrator) list.
    fn drop_member(&mut self, user: &str) {
        let strip = |s: &str| -> String {
            s.split(',')
                .filter(|x| !x.is_empty() && *x != user)
                .collect::<Vec<_>>()
                .join(",")
        };
        for f in self.group.entries_mut() {
            f[3] = strip(&f[3]);
        }
        if let Some(gs) = &mut self.gshadow {
            for f in gs.entries_mut() {
                f[2] = strip(&f[2]);
                f[3] = strip(&f[3]);
            }
        }
    }

    /// Adds a user (and its user group when `gid` is `None`); the user as listed.
    pub fn add_user(
        &mut self,
        u: &NewUser,
        defs: &LoginDefs,
        limit: u32,
        today: &str,
    ) -> Result<CtUser, Error> {
        if self.passwd.has(&u.name) {
            return Err(conflict(format!("user {:?} exists already", u.name)));
        }
        for g in &u.groups {
            if !self.group.has(g) {
                return Err(Error::not_found(format!(
                    "no group {g:?} in the container (add it first)"
                )));
            }
        }
        let used = self.passwd.ids(2);
        let uid = match u.uid {
            Some(x) if used.contains(&x) => {
                let other = self
                    .passwd
                    .entries()
                    .find(|f| f[2].parse::<u32>().ok() == Some(x))
                    .map(|f| f[0].clone())
                    .unwrap_or_default();
                return Err(conflict(format!("UID {x} is user {other:?}'s already")));
            }
            Some(x) if x >= limit => {
                return Err(Error::invalid(format!(
                    "UID {x} is outside the container's IDs (0 to {})",
                    limit - 1
                )))
            }
            Some(x) => x,
            None => Self::free_id(&used, defs.uid_min, defs.uid_max, limit).ok_or_else(|| {
                precondition(format!(
                    "no free UID from {} to {}",
                    defs.uid_min, defs.uid_max
                ))
            })?,
        };
        let gid = match u.gid {
            Some(g) => {
                if self.group_name(g).is_none() {
                    return Err(Error::not_found(format!(
                        "no group with GID {g} in the container (add it first, or leave out the GID for a group of the user's own)"
                    )));
                }
                g
            }
            None => {
                if self.group.has(&u.name) {
                    return Err(conflict(format!(
                        "group {0:?} exists already: give its GID to make it user {0:?}'s primary group",
                        u.name
                    )));
                }
                let want = (!self.group.ids(2).contains(&uid)).then_some(uid);
                self.add_group(&u.name, want, defs, limit)?
            }
        };
        let (pw_field, shadow_hash) = match (&self.shadow, &u.hash) {
            (Some(_), h) => ("x".to_string(), h.clone().unwrap_or_else(|| "!".into())),
            (None, Some(h)) => (h.clone(), String::new()),
            (None, None) => ("!".to_string(), String::new()),
        };
        self.passwd.push(vec![
            u.name.clone(),
            pw_field,
            uid.to_string(),
            gid.to_string(),
            u.gecos.clone(),
            u.home.clone(),
            u.shell.clone(),
        ]);
        if let Some(s) = &mut self.shadow {
            s.remove(&u.name);
            s.push(vec![
                u.name.clone(),
                shadow_hash,
                today.into(),
                "0".into(),
                "99999".into(),
                "7".into(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for g in &u.groups {
            self.add_member(g, &u.name);
        }
        self.user(&u.name)
            .ok_or_else(|| Error::internal("the new user is not in the new files"))
    }

    /// Removes a user, its memberships, and its user group (named like it, primary group
    /// of no other user, without members); the removed user.
    pub fn del_user(&mut self, name: &str) -> Result<CtUser, Error> {
        let u = self
            .user(name)
            .ok_or_else(|| Error::not_found(format!("no user {name:?} in the container")))?;
        self.passwd.remove(name);
        if let Some(s) = &mut self.shadow {
            s.remove(name);
        }
        self.drop_member(name);
        if let Some(g) = self.group_entry(name) {
            let primary_of_other = self
                .passwd
                .entries()
                .any(|f| f[3].parse::<u32>().ok() == Some(g.gid));
            if g.gid == u.gid && !primary_of_other && g.members.is_empty() {
                self.group.remove(name);
                if let Some(gs) = &mut self.gshadow {
                    gs.remove(name);
                }
            }
        }
        Ok(u)
    }

    /// Sets a user's password hash (in shadow, else in passwd) and the date of the change.
    pub fn set_hash(&mut self, name: &str, hash: &str, today: &str) -> Result<CtUser, Error> {
        let shadowed = self
            .passwd
            .get(name)
            .ok_or_else(|| Error::not_found(format!("no user {name:?} in the container")))?[1]
            == "x";
        match (&mut self.shadow, shadowed) {
            (Some(s), _) => {
                match s.get_mut(name) {
                    Some(f) => {
                        f[1] = hash.into();
                        f[2] = today.into();
                    }
                    None => s.push(vec![
                        name.into(),
                        hash.into(),
                        today.into(),
                        "0".into(),
                        "99999".into(),
                        "7".into(),
                        String::new(),
                        String::new(),
                        String::new(),
                    ]),
                }
                if let Some(f) = self.passwd.get_mut(name) {
                    f[1] = "x".into();
                }
            }
            (None, true) => {
                return Err(precondition(format!(
                "user {name:?} has its password in /etc/shadow, which the container does not have"
            )))
            }
            (None, false) => {
                if let Some(f) = self.passwd.get_mut(name) {
                    f[1] = hash.into();
                }
            }
        }
        self.user(name)
            .ok_or_else(|| Error::internal("the user is not in the new files"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n# a comment\n+nis\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbob:x:1000:1000:Bob,,,:/home/bob:/bin/bash\n";
    const SHADOW: &str = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nbob:$6$abc$def:19000:0:99999:7:::\n";
    const GROUP: &str = "root:x:0:\nshadow:x:42:\nsudo:x:27:bob\nbob:x:1000:\n";
    const GSHADOW: &str = "root:*::\nshadow:*::\nsudo:*::bob\nbob:!::\n";

    fn db() -> Accounts {
        Accounts::parse(PASSWD, Some(SHADOW), GROUP, Some(GSHADOW))
    }

    fn new(name: &str) -> NewUser {
        NewUser {
            name: name.into(),
            uid: None,
            gid: None,
            groups: vec![],
            gecos: String::new(),
            home: format!("/home/{name}"),
            shell: "/bin/sh".into(),
            hash: None,
        }
    }

    #[test]
    fn round_trip_keeps_every_line() {
        let d = db();
        assert_eq!(d.passwd.render(), PASSWD);
        assert_eq!(d.shadow.as_ref().unwrap().render(), SHADOW);
        let t = Table::parse("a:b:c:d\nno newline", 4);
        assert_eq!(t.render(), "a:b:c:d\nno newline");
        assert_eq!(Table::parse("", 4).render(), "");
    }

    #[test]
    fn lists_users_and_groups() {
        let d = db();
        let u = d.users();
        assert_eq!(u.len(), 3);
        let bob = d.user("bob").unwrap();
        assert_eq!((bob.uid, bob.gid), (1000, 1000));
        assert_eq!(bob.group.as_deref(), Some("bob"));
        assert_eq!(bob.groups, vec!["sudo"]);
        assert_eq!(bob.password, PasswordState::Set);
        assert_eq!(d.user("root").unwrap().password, PasswordState::Locked);
        assert_eq!(d.group_entry("sudo").unwrap().members, vec!["bob"]);
    }

    #[test]
    fn adds_a_user_with_its_group() {
        let mut d = db();
        let mut n = new("web");
        n.groups = vec!["sudo".into()];
        let u = d
            .add_user(&n, &LoginDefs::default(), 65536, "20000")
            .unwrap();
        assert_eq!((u.uid, u.gid), (1001, 1001));
        assert_eq!(u.password, PasswordState::Locked);
        assert!(d
            .passwd
            .render()
            .ends_with("web:x:1001:1001::/home/web:/bin/sh\n"));
        assert!(d
            .shadow
            .as_ref()
            .unwrap()
            .render()
            .ends_with("web:!:20000:0:99999:7:::\n"));
        assert!(d.group.render().contains("sudo:x:27:bob,web\n"));
        assert!(d.group.render().ends_with("web:x:1001:\n"));
        assert!(d
            .gshadow
            .as_ref()
            .unwrap()
            .render()
            .contains("sudo:*::bob,web\n"));
        assert!(d.gshadow.as_ref().unwrap().render().ends_with("web:!::\n"));
        // comments and NIS lines are kept
        assert!(d.passwd.render().contains("# a comment\n+nis\n"));
        // duplicates
        assert_eq!(
            d.add_user(&new("web"), &LoginDefs::default(), 65536, "1")
                .unwrap_err()
                .kind,
            ErrorKind::Conflict
        );
        let mut n = new("x");
        n.uid = Some(1000);
        assert_eq!(
            d.add_user(&n, &LoginDefs::default(), 65536, "1")
                .unwrap_err()
                .kind,
            ErrorKind::Conflict
        );
        n.uid = Some(70000);
        assert_eq!(
            d.add_user(&n, &LoginDefs::default(), 65536, "1")
                .unwrap_err()
                .kind,
            ErrorKind::Invalid
        );
        let mut n = new("y");
        n.groups = vec!["nosuch".into()];
        assert_eq!(
            d.add_user(&n, &LoginDefs::default(), 65536, "1")
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        // a user whose name is an existing group's, without --gid
        assert_eq!(
            d.add_user(&new("sudo"), &LoginDefs::default(), 65536, "1")
                .unwrap_err()
                .kind,
            ErrorKind::Conflict
        );
        let mut n = new("sudo");
        n.gid = Some(27);
        assert_eq!(
            d.add_user(&n, &LoginDefs::default(), 65536, "1")
                .unwrap()
                .gid,
            27
        );
    }

    #[test]
    fn passwords_and_removal() {
        let mut d = db();
        d.add_user(&new("web"), &LoginDefs::default(), 65536, "1")
            .unwrap();
        let u = d.set_hash("web", "$6$s$h", "20001").unwrap();
        assert_eq!(u.password, PasswordState::Set);
        assert!(d
            .shadow
            .as_ref()
            .unwrap()
            .render()
            .contains("web:$6$s$h:20001:0:99999:7:::\n"));
        assert_eq!(
            d.set_hash("nosuch", "x", "1").unwrap_err().kind,
            ErrorKind::NotFound
        );
        d.del_user("web").unwrap();
        assert!(!d.passwd.render().contains("web:"));
        assert!(!d.group.render().contains("web:"));
        assert!(!d.gshadow.as_ref().unwrap().render().contains("web:"));
        d.del_user("bob").unwrap();
        assert!(d.group.render().contains("sudo:x:27:\n"));
        assert_eq!(d.del_user("bob").unwrap_err().kind, ErrorKind::NotFound);
        // no shadow file: the hash goes into passwd
        let mut d = Accounts::parse("a:!:5:5::/:/bin/sh\n", None, "a:x:5:\n", None);
        d.set_hash("a", "$6$x$y", "1").unwrap();
        assert_eq!(d.passwd.render(), "a:$6$x$y:5:5::/:/bin/sh\n");
    }

    #[test]
    fn groups() {
        let mut d = db();
        assert_eq!(
            d.add_group("www", None, &LoginDefs::default(), 65536)
                .unwrap(),
            1001
        );
        assert_eq!(
            d.add_group("www", None, &LoginDefs::default(), 65536)
                .unwrap_err()
                .kind,
            ErrorKind::Conflict
        );
        assert_eq!(
            d.add_group("w2", Some(42), &LoginDefs::default(), 65536)
                .unwrap_err()
                .kind,
            ErrorKind::Conflict
        );
        assert_eq!(
            d.del_group("bob").unwrap_err().kind,
            ErrorKind::Precondition
        );
        d.del_group("www").unwrap();
        assert!(!d.group.render().contains("www"));
        assert_eq!(d.del_group("www").unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn login_defs() {
        let d = LoginDefs::parse(
            "# x\nENCRYPT_METHOD yescrypt\nUID_MIN\t\t 2000\nGID_MIN 3000\nSHA_CRYPT_MIN_ROUNDS 6000\n#YESCRYPT_COST_FACTOR 5\n",
        );
        assert_eq!(d.encrypt_method.as_deref(), Some("YESCRYPT"));
        assert_eq!((d.uid_min, d.gid_min, d.uid_max), (2000, 3000, 60000));
        assert_eq!(d.sha_crypt_min_rounds, Some(6000));
        assert_eq!(d.yescrypt_cost_factor, None);
    }
}
