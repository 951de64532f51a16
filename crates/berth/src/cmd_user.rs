//! `berth user …` and `berth token …`: the API's users and tokens, kept in the node root
//! (`api/users.toml`, `api/tokens.toml`) through berth-auth, which berthd reads too.
//! Root only, like the files.

use crate::Format;
use anyhow::Result;
use berth_api::agent::Role;
use berth_auth::Store;
use clap::{Subcommand, ValueEnum};
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    Admin,
    Auditor,
    Owner,
    Backup,
}

#[derive(Subcommand)]
pub(crate) enum UserCmd {
    /// Add an API user
    Add {
        name: String,
        /// admin (everything), auditor (read-only), owner (his containers only) or backup
        /// (a client node's store on this backup node, nothing else)
        #[arg(long, value_enum)]
        role: RoleArg,
        /// An owner's containers (CTIDs)
        #[arg(long = "container", value_delimiter = ',')]
        containers: Vec<u32>,
        /// Read the password from the first line of stdin (without it: tokens only)
        #[arg(long)]
        password_stdin: bool,
        /// An owner's container quota: how many he may hold, his own clones included
        /// (without it: he makes none)
        #[arg(long)]
        max_containers: Option<u32>,
        /// A backup user's store keeps everything it gets: no deletes (locks aside), no
        /// overwrites (a client node taken over cannot destroy its backups)
        #[arg(long)]
        append_only: bool,
        /// A backup user's store quota (e.g. 500G; without it: the node's free space)
        #[arg(long, value_name = "SIZE")]
        store_quota: Option<String>,
    },
    /// List API users
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Remove an API user and his tokens
    Remove { name: String },
    /// `berth user CT list|add|del|passwd`: users inside container CT (see cmd_inside)
    #[command(external_subcommand)]
    Inside(Vec<String>),
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Create an API token (its secret is printed once)
    Create {
        #[arg(long)]
        user: String,
        /// A label for the token
        #[arg(long)]
        name: String,
        /// Lifetime, e.g. 30d, 12h (default: until revoked)
        #[arg(long)]
        expires: Option<String>,
    },
    /// List API tokens (never their secrets)
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Revoke an API token
    Revoke { id: String },
}

fn store(root: &Path) -> Result<Store> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("users and tokens of the API are managed by root");
    }
    if !root.join("node.toml").exists() {
        anyhow::bail!(
            "node root {} is not initialised (berth node init)",
            root.display()
        );
    }
    Ok(Store::open(root)?)
}

pub(crate) fn when(t: u64) -> String {
    if t == 0 {
        return "-".into();
    }
    let days = t / 86400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let s = t % 86400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        s / 3600,
        (s % 3600) / 60
    )
}

pub(crate) fn user(root: &Path, cmd: UserCmd) -> Result<()> {
    let s = store(root)?;
    match cmd {
        UserCmd::Add {
            name,
            role,
            containers,
            password_stdin,
            max_containers,
            append_only,
            store_quota,
        } => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Auditor => Role::Auditor,
                RoleArg::Owner => Role::Owner,
                RoleArg::Backup => Role::Backup,
            };
            let quota = store_quota
                .as_deref()
                .map(berth_api::validate::Size::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--store-quota: {e}"))?
                .map(|s| s.0);
            let store = (role == Role::Backup || append_only || quota.is_some())
                .then_some(berth_api::agent::StoreLimits { append_only, quota });
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\n', '\r']).to_string())
            } else {
                None
            };
            let u = s.add(&berth_api::agent::UserAdd {
                name,
                role,
                containers,
                password,
                max_containers,
                store,
            })?;
            outln!(
                "user {} added ({}{})",
                u.name,
                role_str(u.role),
                if u.password_hash.is_some() {
                    ", password set"
                } else {
                    ", tokens only"
                }
            );
            if let Some(l) = &u.store {
                outln!(
                    "its backup store: /api/v1/backup-store/{}/ ({}{}); client nodes: `berth backup repo add NAME --node REMOTE` with a token of this user",
                    u.name,
                    if l.append_only { "append-only" } else { "read-write" },
                    l.quota
                        .map(|q| format!(", quota {}", crate::output::human(q)))
                        .unwrap_or_default()
                );
            }
        }
        UserCmd::List { format } => {
            let users: Vec<_> = s.users()?.iter().map(|u| u.info()).collect();
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                outln!("{:<20} {:<8} {:<17} CONTAINERS", "NAME", "ROLE", "CREATED");
                for u in users {
                    let cts: Vec<String> = u.containers.iter().map(|c| c.to_string()).collect();
                    let what = match &u.store {
                        Some(l) => format!(
                            "store{}{}",
                            if l.append_only { " append-only" } else { "" },
                            l.quota
                                .map(|q| format!(" quota {}", crate::output::human(q)))
                                .unwrap_or_default()
                        ),
                        None if cts.is_empty() => "-".into(),
                        None => cts.join(","),
                    };
                    outln!(
                        "{:<20} {:<8} {:<17} {}",
                        u.name,
                        role_str(u.role),
                        when(u.created),
                        what
                    );
                }
            }
        }
        UserCmd::Remove { name } => {
            let was = s.user(&name)?;
            s.remove_user(&name)?;
            outln!("user {name} removed (and his tokens)");
            if was.role == Role::Backup {
                let nr = berth_core::NodeRoot::new(root);
                if let Some(a) = berth_node::backup_store::Store::retire(&nr, &name)? {
                    outln!(
                        "its backup store is now {} (delete it when its data is no longer needed)",
                        a.display()
                    );
                }
            }
        }
        UserCmd::Inside(_) => unreachable!("dispatched by main"),
    }
    Ok(())
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Auditor => "auditor",
        Role::Owner => "owner",
        Role::Backup => "backup",
    }
}

pub(crate) fn token(root: &Path, cmd: TokenCmd) -> Result<()> {
    let s = store(root)?;
    match cmd {
        TokenCmd::Create {
            user,
            name,
            expires,
        } => {
            let ttl = expires
                .as_deref()
                .map(berth_auth::parse_duration)
                .transpose()?;
            let t = s.create_token(&user, &name, ttl)?;
            eprintln!(
                "token {} for {} created{}; its secret is shown once:",
                t.info.id,
                t.info.user,
                t.info
                    .expires
                    .map(|e| format!(", expires {} UTC", when(e)))
                    .unwrap_or_default()
            );
            outln!("{}", t.secret);
        }
        TokenCmd::List { format } => {
            let tokens: Vec<_> = s.tokens()?.iter().map(|t| t.info()).collect();
            if format == Format::Json {
                outln!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                outln!(
                    "{:<16} {:<20} {:<20} {:<17} EXPIRES",
                    "ID",
                    "USER",
                    "NAME",
                    "CREATED"
                );
                for t in tokens {
                    outln!(
                        "{:<16} {:<20} {:<20} {:<17} {}",
                        t.id,
                        t.user,
                        t.name,
                        when(t.created),
                        t.expires.map(when).unwrap_or_else(|| "never".into())
                    );
                }
            }
        }
        TokenCmd::Revoke { id } => {
            s.revoke_token(&id)?;
            outln!("token {id} revoked");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::when(0), "-");
        assert_eq!(super::when(86400 * 365), "1971-01-01 00:00");
        assert_eq!(super::when(1_700_000_000), "2023-11-14 22:13");
    }
}
