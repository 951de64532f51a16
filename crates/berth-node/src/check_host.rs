//! The host's side of `berth node check` ([`crate::check`]): the host's objects of this
//! node read once (mounts below the node root, loop devices, cgroups, links, nft tables and
//! rules), and the checks of storage and networks against them.

use crate::check::{quote, Action, Checker, ProblemKind};
use crate::recover::is_active;
use crate::Result;
use berth_core::CtId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The facts of the host read once per check.
pub(crate) struct Host {
    /// Mount points below the node root.
    pub(crate) mounts: Vec<PathBuf>,
    /// Loop devices and their backing files.
    pub(crate) loops: Vec<(PathBuf, String)>,
    /// This node's cgroup directories, by CTID.
    pub(crate) cgroups: BTreeMap<u32, Vec<PathBuf>>,
    /// This node's links: (name, alias).
    pub(crate) links: Vec<(String, String)>,
    /// This node's nft tables: (family, name).
    pub(crate) tables: Vec<(String, String)>,
    /// `nft list ruleset`.
    pub(crate) ruleset: String,
}

impl Host {
    pub(crate) fn read(root: &Path, node_id: &str) -> Result<Host> {
        let mut loops = vec![];
        if let Ok(rd) = std::fs::read_dir("/sys/block") {
            for e in rd.flatten() {
                if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
                    loops.push((PathBuf::from("/dev").join(e.file_name()), b.trim().into()));
                }
            }
        }
        let mut cgroups: BTreeMap<u32, Vec<PathBuf>> = BTreeMap::new();
        let prefix = format!("berth-{node_id}-");
        for d in crate::reclaim::cgroups()
            .remove(node_id)
            .unwrap_or_default()
        {
            let ct = d
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(ct) = ct {
                cgroups.entry(ct).or_default().push(d);
            }
        }
        let objs = berth_net::net_objects()?
            .remove(node_id)
            .unwrap_or_default();
        let (links, tables) = (objs.links, objs.tables);
        let ruleset = std::process::Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        Ok(Host {
            mounts: berth_storage::mounts::mounts_under(root),
            loops,
            cgroups,
            links,
            tables,
            ruleset,
        })
    }

    pub(crate) fn ct_links(&self, node_id: &str, ct: u32) -> Vec<&(String, String)> {
        let p = berth_net::names::alias_ct_prefix(node_id, ct);
        self.links
            .iter()
            .filter(|(_, a)| a.starts_with(&p))
            .collect()
    }
}

impl Checker<'_> {
    /// Mounts and loop devices of the node root that no running container owns.
    pub(crate) fn storage(&mut self) {
        let canon = self.canon.clone();
        let owner_of = |p: &Path| -> Option<CtId> {
            let rel = p.strip_prefix(canon.join("run")).ok()?;
            let mut it = rel.components();
            let first = it.next()?.as_os_str().to_str()?;
            let ct = if first == ".raw" {
                it.next()?.as_os_str().to_str()?
            } else {
                first
            };
            CtId::parse(ct).ok()
        };
        for m in self.host.mounts.clone() {
            match owner_of(&m) {
                Some(id) if is_active(self.root, id) => {}
                Some(id) => self.push(
                    ProblemKind::OrphanMount,
                    quote(&m),
                    format!("mount of container {id}, which is not running"),
                    self.repair_cmd(),
                    Action::Unmount(m),
                ),
                None => self.push(
                    ProblemKind::OrphanMount,
                    quote(&m),
                    "a mount below the node root that is not Berth's".into(),
                    format!("umount {}", quote(&m)),
                    Action::None,
                ),
            }
        }
        for (dev, backing) in self.host.loops.clone() {
            let file = backing.trim_end_matches(" (deleted)");
            let Ok(rel) = Path::new(file).strip_prefix(&self.canon) else {
                continue;
            };
            let ct = rel
                .strip_prefix("containers")
                .ok()
                .and_then(|r| r.components().next())
                .and_then(|c| c.as_os_str().to_str())
                .and_then(|c| CtId::parse(c).ok());
            let used = ct.is_some_and(|id| {
                is_active(self.root, id)
                    && Path::new(&backing) == self.canon.join(format!("containers/{id}/disk.img"))
            });
            if !used {
                self.push(
                    ProblemKind::OrphanLoop,
                    quote(&dev),
                    format!("loop device backed by {backing}, which no running container uses"),
                    self.repair_cmd(),
                    Action::DetachLoop(dev),
                );
            }
        }
        let ids: Vec<u32> = self.host.cgroups.keys().copied().collect();
        for ct in ids {
            let known = CtId::parse(&ct.to_string()).is_ok_and(|id| self.root.ct_dir(id).exists());
            if !known {
                for d in self.host.cgroups.get(&ct).cloned().unwrap_or_default() {
                    self.push(
                        ProblemKind::OrphanCgroup,
                        quote(&d),
                        format!("cgroup of container {ct}, which does not exist"),
                        self.repair_cmd(),
                        Action::RemoveCgroup(d),
                    );
                }
            }
        }
    }

    /// Networks against their bridges and rules; links of this node no one owns.
    pub(crate) fn networks(&mut self) {
        let nn = berth_net::NetNode::new(self.root, &self.node_id);
        let mut names = vec![];
        if let Ok(rd) = std::fs::read_dir(self.root.networks_dir()) {
            for e in rd.flatten() {
                let p = e.path();
                let n = e.file_name().to_string_lossy().into_owned();
                let Some(stem) = n.strip_suffix(".toml").filter(|s| !s.starts_with('.')) else {
                    continue;
                };
                names.push(stem.to_string());
                let cfg = match berth_core::checked::load_network(&p, stem) {
                    Ok(c) => c,
                    Err(e) => {
                        self.push(
                            ProblemKind::InvalidNetworkConfig,
                            format!("network {stem}"),
                            e.to_string(),
                            format!(
                                "correct {} or delete the network with `{}`",
                                quote(&p),
                                self.berth(&format!("network delete {stem}"))
                            ),
                            Action::None,
                        );
                        continue;
                    }
                };
                let br = nn.bridge_name(stem);
                if !Path::new("/sys/class/net").join(&br).exists() {
                    self.push(
                        ProblemKind::BridgeMissing,
                        format!("network {stem}"),
                        format!("its bridge {br} is missing"),
                        self.repair_cmd(),
                        Action::EnsureNetwork(cfg.name.clone()),
                    );
                } else if !self.host.ruleset.contains(&br) {
                    self.push(
                        ProblemKind::FirewallMissing,
                        format!("network {stem}"),
                        format!(
                            "no nftables rule of table berth_{} names its bridge {br}",
                            self.node_id
                        ),
                        self.repair_cmd(),
                        Action::ApplyFirewall,
                    );
                }
            }
        }
        let recorded = std::fs::read_dir(self.root.run_dir())
            .is_ok_and(|rd| rd.flatten().any(|e| e.path().join("net.json").exists()));
        if names.is_empty() && !recorded && !self.host.tables.is_empty() {
            let t: Vec<String> = self
                .host
                .tables
                .iter()
                .map(|(f, n)| format!("{f} {n}"))
                .collect();
            self.push(
                ProblemKind::FirewallExtra,
                format!("nft table(s) {}", t.join(", ")),
                "tables of this node, which has no network and no running container with one"
                    .into(),
                self.repair_cmd(),
                Action::ApplyFirewall,
            );
        }
        let prefix = berth_net::names::alias_node_prefix(&self.node_id);
        for (name, alias) in self.host.links.clone() {
            let Some(rest) = alias.strip_prefix(&prefix) else {
                continue;
            };
            match rest.split_once(':') {
                Some(("net", n)) if !names.iter().any(|x| x == n) => self.push(
                    ProblemKind::OrphanLink,
                    format!("link {name}"),
                    format!("bridge of network {n}, which does not exist"),
                    self.repair_cmd(),
                    Action::RemoveOrphanBridges,
                ),
                Some((ct, _)) => {
                    // Links of existing containers are checked with them.
                    if let Ok(id) = CtId::parse(ct) {
                        if !self.root.ct_dir(id).exists() && !self.root.ct_run_dir(id).exists() {
                            self.push(
                                ProblemKind::OrphanLink,
                                format!("link {name}"),
                                format!("link of container {id}, which does not exist"),
                                self.repair_cmd(),
                                Action::DeleteCtLinks(id.0),
                            );
                        }
                    }
                }
                None => {}
            }
        }
    }
}
