//! [`LocalNode`] as an implementation of the API's [`Node`] trait: the operations of this
//! machine, with errors turned into the API's (kind, message, cause) in one place
//! ([`NodeError::to_api`]).

use crate::{LocalNode, NodeError};
use berth_api::backup as bk;
use berth_api::inside::{
    CtGroup, CtGroupAdd, CtPassword, CtUser, CtUserAdd, FileEntry, FilePush, FileSink,
};
use berth_api::{
    ConsoleEnd, ConsoleLog, ExecRequest, Node, NodeSettings, Progress, Result, ServiceList,
    SetRequest, SetResult, StartResult, Stdio,
};
use berth_core::config::TemplateManifest;
use berth_core::net::{Adapter, NetChange, NetConfig, NetworkConfig, NetworkInfo, Traffic};
use berth_core::ops::{
    CloneOptions, ContainerInfo, ContainerStats, CreateOptions, NodeInfo, StopOptions,
    TemplateSource,
};
use berth_core::procs::{ProcInfo, WhichInfo};
use berth_core::services::{
    Action, AddService, HostService, InitMode, ServiceInfo, ServiceStatus, Startup,
};
use berth_core::CtRef;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

fn api<T>(r: crate::Result<T>) -> Result<T> {
    r.map_err(|e: NodeError| e.to_api())
}

impl LocalNode {
    /// Runs `berth ARGS` (this node root) with the given descriptors as its stdio: `exec` and
    /// `enter` for a caller that is not a terminal of its own (berthd relays a websocket to
    /// them). The helper process forks and joins the container; the caller's threads and
    /// signal handling take no part in it.
    fn run_helper(&self, args: &[String], fds: (OwnedFd, OwnedFd, OwnedFd)) -> crate::Result<i32> {
        let mut cmd = Command::new(self.monitor_exe());
        cmd.arg("--root")
            .arg(self.root().path())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(fds.0)
            .stdout(fds.1)
            .stderr(fds.2);
        if let Ok(t) = std::env::var("TERM") {
            cmd.env("TERM", t);
        }
        let status = cmd
            .status()
            .map_err(|e| berth_core::CoreError::io(self.monitor_exe(), e))?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

impl Node for LocalNode {
    fn template_create(
        &self,
        name: &str,
        source: TemplateSource,
        progress: &dyn Progress,
    ) -> Result<TemplateManifest> {
        api(LocalNode::template_create(self, name, source, progress))
    }
    fn template_list(&self) -> Result<Vec<TemplateManifest>> {
        api(LocalNode::template_list(self))
    }
    fn template_info(&self, name: &str) -> Result<TemplateManifest> {
        api(LocalNode::template_info(self, name))
    }
    fn receive_template(
        &self,
        name: &str,
        hash: &str,
        input: &mut dyn std::io::Read,
    ) -> Result<TemplateManifest> {
        api(LocalNode::receive_template(self, name, hash, input))
    }
    fn template_remove(&self, name: &str) -> Result<()> {
        api(LocalNode::template_remove(self, name))
    }

    fn create(&self, opts: CreateOptions, progress: &dyn Progress) -> Result<ContainerInfo> {
        let id = api(self.create_with(opts, progress))?;
        api(LocalNode::status(self, &CtRef::Id(id)))
    }
    fn clone_ct(
        &self,
        ct: &CtRef,
        opts: CloneOptions,
        progress: &dyn Progress,
    ) -> Result<berth_api::CloneResult> {
        let (id, frozen_ms, warnings) = api(LocalNode::clone_ct(self, ct, opts, progress))?;
        Ok(berth_api::CloneResult {
            info: api(LocalNode::status(self, &CtRef::Id(id)))?,
            frozen_ms,
            warnings,
        })
    }
    fn receive_ct(
        &self,
        header: berth_api::IncomingHeader,
        input: &mut dyn std::io::Read,
        progress: &dyn Progress,
    ) -> Result<Option<ContainerInfo>> {
        match api(LocalNode::receive_ct(self, header, input, progress))? {
            Some(id) => Ok(Some(api(LocalNode::status(self, &CtRef::Id(id)))?)),
            None => Ok(None),
        }
    }
    fn migrate_ct(
        &self,
        ct: &CtRef,
        target: berth_api::MigrateTarget,
        opts: berth_api::MigrateOptions,
        progress: &dyn Progress,
    ) -> Result<berth_api::MigrateResult> {
        api(self.migrate_to(ct, &target, opts, progress))
    }
    fn move_ct(&self, ct: &CtRef, opts: berth_api::MoveOptions) -> Result<ContainerInfo> {
        let id = api(self.renumber(ct, opts.ctid))?;
        api(LocalNode::status(self, &CtRef::Id(id)))
    }
    fn start(&self, ct: &CtRef) -> Result<StartResult> {
        let info = api(LocalNode::start(self, ct))?;
        let mut res = StartResult {
            info,
            service_defaults_applied: vec![],
            warnings: vec![],
        };
        match self.apply_pending_service_defaults(&CtRef::Id(res.info.ctid)) {
            Ok(applied) => res.service_defaults_applied = applied,
            Err(e) => res.warnings.push(format!(
                "node service defaults not applied yet (the next start retries): {e}"
            )),
        }
        Ok(res)
    }
    fn stop(&self, ct: &CtRef, opts: StopOptions) -> Result<()> {
        api(LocalNode::stop(self, ct, opts))
    }
    fn restart(&self, ct: &CtRef, opts: StopOptions) -> Result<ContainerInfo> {
        api(LocalNode::restart(self, ct, opts))
    }
    fn suspend(&self, ct: &CtRef) -> Result<()> {
        api(LocalNode::suspend(self, ct))
    }
    fn resume(&self, ct: &CtRef) -> Result<()> {
        api(LocalNode::resume(self, ct))
    }
    fn destroy(&self, ct: &CtRef, force: bool) -> Result<()> {
        api(LocalNode::destroy(self, ct, force))
    }
    fn status(&self, ct: &CtRef) -> Result<ContainerInfo> {
        api(LocalNode::status(self, ct))
    }
    fn list(&self, all: bool) -> Result<Vec<ContainerInfo>> {
        api(LocalNode::list(self, all))
    }
    fn set(&self, ct: &CtRef, req: SetRequest) -> Result<SetResult> {
        if req.is_empty() {
            return Err(berth_api::Error::invalid(
                "nothing to set: the request changes nothing",
            ));
        }
        api(self.set_request(ct, req))
    }
    fn stats(&self, cts: &[CtRef], sample_ms: u64) -> Result<Vec<ContainerStats>> {
        api(LocalNode::stats(
            self,
            cts,
            Duration::from_millis(sample_ms),
        ))
    }
    fn compact(&self, ct: &CtRef) -> Result<u64> {
        api(LocalNode::compact(self, ct))
    }
    fn exec(&self, ct: &CtRef, req: ExecRequest, stdio: Stdio) -> Result<i32> {
        req.opts.validate().map_err(berth_api::Error::from)?;
        if req.command.is_empty() {
            return Err(berth_api::Error::invalid("exec needs a command"));
        }
        match stdio {
            Stdio::Inherit => api(LocalNode::exec(self, ct, &req.command, &req.opts)),
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                // What the helper would refuse, refused here with its kind.
                let id = api(self.resolve(ct))?;
                {
                    let _g = api(self.lock_ct(id))?;
                    api(self.require_running(id))?;
                }
                let mut args = vec!["exec".to_string()];
                match req.opts.tty {
                    Some(true) => args.push("-t".into()),
                    Some(false) => args.push("-T".into()),
                    None => {}
                }
                for e in &req.opts.env {
                    args.push(format!("--env={e}"));
                }
                if let Some(d) = &req.opts.cwd {
                    args.push(format!("--cwd={d}"));
                }
                args.push(id.to_string());
                args.push("--".into());
                args.extend(req.command);
                api(self.run_helper(&args, (stdin, stdout, stderr)))
            }
        }
    }
    fn enter(&self, ct: &CtRef, stdio: Stdio) -> Result<i32> {
        match stdio {
            Stdio::Inherit => api(LocalNode::enter(self, ct)),
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                let id = api(self.resolve(ct))?;
                {
                    let _g = api(self.lock_ct(id))?;
                    api(self.require_running(id))?;
                }
                api(self.run_helper(&["enter".into(), id.to_string()], (stdin, stdout, stderr)))
            }
        }
    }
    fn console(&self, ct: &CtRef, log: ConsoleLog, out: &mut dyn std::io::Write) -> Result<()> {
        api(LocalNode::console(self, ct, log, out))
    }
    fn console_attach(&self, ct: &CtRef, escape: Option<u8>, stdio: Stdio) -> Result<ConsoleEnd> {
        use berth_runtime::console::attach::AttachIo;
        match stdio {
            Stdio::Inherit => api(LocalNode::console_attach(self, ct, AttachIo::stdio(escape))),
            // berthd's relay: no signals of its own (a terminal's size is watched instead).
            Stdio::Fds { stdin, stdout, .. } => api(LocalNode::console_attach(
                self,
                ct,
                AttachIo {
                    input: stdin.as_raw_fd(),
                    output: stdout.as_raw_fd(),
                    escape,
                    signals: false,
                },
            )),
        }
    }
    fn traffic(&self, ct: &CtRef) -> Result<Option<Traffic>> {
        api(LocalNode::traffic(self, ct))
    }

    fn ps(&self, ct: &CtRef) -> Result<Vec<ProcInfo>> {
        api(LocalNode::ps(self, ct))
    }
    fn top(&self, sample_ms: u64) -> Result<Vec<ProcInfo>> {
        api(LocalNode::top(self, Duration::from_millis(sample_ms)))
    }
    fn kill(&self, ct: &CtRef, pid: i32, signal: &str) -> Result<ProcInfo> {
        api(LocalNode::kill(self, ct, pid, signal))
    }
    fn which(&self, host_pid: i32) -> Result<WhichInfo> {
        api(LocalNode::which(self, host_pid))
    }

    fn service_list(&self, ct: &CtRef) -> Result<ServiceList> {
        let (driver, services): (String, Vec<ServiceInfo>) =
            api(LocalNode::service_list(self, ct))?;
        Ok(ServiceList { driver, services })
    }
    fn service_status(&self, ct: &CtRef, name: &str) -> Result<ServiceStatus> {
        api(LocalNode::service_status(self, ct, name))
    }
    fn service_action(&self, ct: &CtRef, name: &str, action: Action) -> Result<()> {
        api(LocalNode::service_action(self, ct, name, action))
    }
    fn service_logs(&self, ct: &CtRef, name: &str) -> Result<Vec<u8>> {
        api(LocalNode::service_logs(self, ct, name))
    }
    fn service_add(&self, ct: &CtRef, name: &str, add: AddService) -> Result<Startup> {
        api(LocalNode::service_add(self, ct, name, add))
    }
    fn service_remove(&self, ct: &CtRef, name: &str) -> Result<()> {
        api(LocalNode::service_remove(self, ct, name))
    }
    fn service_set_startup(&self, ct: &CtRef, name: &str, startup: Startup) -> Result<()> {
        api(LocalNode::service_set_startup(self, ct, name, startup))
    }
    fn init_mode(&self, ct: &CtRef) -> Result<InitMode> {
        api(LocalNode::init_mode(self, ct))
    }

    fn ct_user_list(&self, ct: &CtRef) -> Result<Vec<CtUser>> {
        LocalNode::ct_user_list(self, ct)
    }
    fn ct_user_add(&self, ct: &CtRef, add: CtUserAdd) -> Result<CtUser> {
        LocalNode::ct_user_add(self, ct, add)
    }
    fn ct_user_del(&self, ct: &CtRef, name: &str) -> Result<()> {
        LocalNode::ct_user_del(self, ct, name)
    }
    fn ct_user_passwd(&self, ct: &CtRef, name: &str, req: CtPassword) -> Result<CtUser> {
        LocalNode::ct_user_passwd(self, ct, name, req)
    }
    fn ct_group_list(&self, ct: &CtRef) -> Result<Vec<CtGroup>> {
        LocalNode::ct_group_list(self, ct)
    }
    fn ct_group_add(&self, ct: &CtRef, add: CtGroupAdd) -> Result<CtGroup> {
        LocalNode::ct_group_add(self, ct, add)
    }
    fn ct_group_del(&self, ct: &CtRef, name: &str) -> Result<()> {
        LocalNode::ct_group_del(self, ct, name)
    }
    fn file_stat(&self, ct: &CtRef, path: &str) -> Result<FileEntry> {
        LocalNode::file_stat(self, ct, path)
    }
    fn file_list(&self, ct: &CtRef, path: &str) -> Result<Vec<FileEntry>> {
        LocalNode::file_list(self, ct, path)
    }
    fn file_pull(&self, ct: &CtRef, path: &str, sink: &mut dyn FileSink) -> Result<FileEntry> {
        LocalNode::file_pull(self, ct, path, sink)
    }
    fn file_push(
        &self,
        ct: &CtRef,
        req: FilePush,
        input: &mut dyn std::io::Read,
    ) -> Result<FileEntry> {
        LocalNode::file_push(self, ct, req, input)
    }
    fn file_remove(&self, ct: &CtRef, path: &str) -> Result<()> {
        LocalNode::file_remove(self, ct, path)
    }

    fn network_create(&self, cfg: NetworkConfig) -> Result<()> {
        api(LocalNode::network_create(self, cfg))
    }
    fn network_list(&self) -> Result<Vec<NetworkInfo>> {
        api(LocalNode::network_list(self))
    }
    fn network_info(&self, name: &str) -> Result<NetworkInfo> {
        api(LocalNode::network_info(self, name))
    }
    fn network_delete(&self, name: &str) -> Result<()> {
        api(LocalNode::network_delete(self, name))
    }

    fn node_info(&self) -> Result<NodeInfo> {
        api(LocalNode::node_info(self))
    }
    fn node_adapters(&self) -> Result<Vec<Adapter>> {
        api(LocalNode::node_adapters(self))
    }
    fn node_set(&self, settings: NodeSettings) -> Result<()> {
        if settings.is_empty() {
            return Err(berth_api::Error::invalid(
                "nothing to set: the request changes nothing",
            ));
        }
        for (name, st) in settings.service_defaults {
            api(self.set_service_default(&name, st))?;
        }
        if let Some(f) = settings.default_fstype {
            api(self.set_default_fstype(f))?;
        }
        if let Some(r) = settings.disk_overcommit {
            api(self.set_disk_overcommit(r))?;
        }
        match settings.disk_reserve {
            Some(Some(r)) => api(self.set_disk_reserve(r))?,
            Some(None) => api(self.set_default_disk_reserve())?,
            None => {}
        }
        if let Some(m) = settings.backup_max_per_container {
            api(self.set_backup_max_per_container(m))?;
        }
        if let Some(r) = settings.backup_default_repo {
            api(LocalNode::backup_repo_default(self, &r))?;
        }
        Ok(())
    }
    fn node_config(&self) -> Result<berth_api::NodeConfigInfo> {
        // Read afresh: a long-lived node (berthd) sees `node set` changes made since it
        // opened the root.
        let fresh = self.root().load_node_config().ok();
        let c = fresh.as_ref().unwrap_or(LocalNode::node_config(self));
        Ok(berth_api::NodeConfigInfo {
            node_id: c.node_id.clone(),
            version: c.version,
            created: c.created,
            idmap_start: c.idmap_start,
            default_diskspace: c.default_diskspace,
            default_fstype: c.default_fstype,
            service_defaults: c.service_defaults.clone(),
            disk_overcommit: c.disk_overcommit,
            disk_reserve: c.disk_reserve,
            backup_max_per_container: c.backup_max_per_container,
            backup_default_repo: crate::backup::load_repos(self.root()).ok().and_then(|r| {
                r.default
                    .or_else(|| r.repos.first().map(|e| e.name.clone()))
            }),
        })
    }
    fn node_boot(&self) -> Result<Vec<berth_api::BootEntry>> {
        let cfgs = api(self.configs())?;
        let mut boot: Vec<(Option<u32>, u32)> = cfgs
            .iter()
            .filter(|c| c.onboot)
            .map(|c| (c.bootorder, c.ctid.0))
            .collect();
        boot.sort_by(|a, b| boot_order(*a, *b));
        let mut out = vec![];
        for (bootorder, ctid) in boot {
            let r = CtRef::Id(berth_core::CtId(ctid));
            let (outcome, error) = match api(LocalNode::status(self, &r)) {
                Ok(i) if i.status != berth_core::ops::CtStatus::Stopped => ("running", None),
                _ => match Node::start(self, &r) {
                    Ok(_) => ("started", None),
                    Err(e) => ("failed", Some(e)),
                },
            };
            out.push(berth_api::BootEntry {
                ctid,
                bootorder,
                outcome: outcome.into(),
                error,
            });
        }
        Ok(out)
    }
    fn host_services(&self) -> Result<Vec<HostService>> {
        api(LocalNode::host_services(self))
    }
    fn sample_list(&self) -> Result<Vec<berth_api::samples::ConfigSample>> {
        api(LocalNode::sample_list(self))
    }
    fn sample_info(&self, name: &str) -> Result<berth_api::samples::ConfigSample> {
        api(LocalNode::sample_info(self, name))
    }
    fn sample_save(&self, sample: berth_api::samples::ConfigSample) -> Result<()> {
        api(LocalNode::sample_save(self, sample))
    }
    fn sample_remove(&self, name: &str) -> Result<()> {
        api(LocalNode::sample_remove(self, name))
    }
    fn set_network(&self, ct: &CtRef, change: NetChange) -> Result<NetConfig> {
        api(LocalNode::set_network(self, ct, &change))
    }

    fn backup_repos(&self) -> Result<bk::Repos> {
        api(LocalNode::backup_repos(self))
    }
    fn backup_repo_add(&self, req: bk::RepoAdd) -> Result<bk::RepoAdded> {
        let (repo, notes) = api(LocalNode::backup_repo_add(
            self,
            &req.name,
            &req.path,
            req.password_file.as_deref(),
            req.node.as_ref(),
        ))?;
        Ok(bk::RepoAdded { repo, notes })
    }
    fn backup_repo_remove(&self, name: &str) -> Result<()> {
        api(LocalNode::backup_repo_remove(self, name))
    }
    fn backup_repo_default(&self, name: &str) -> Result<()> {
        api(LocalNode::backup_repo_default(self, name))
    }
    fn backup_create(
        &self,
        ct: &CtRef,
        req: bk::BackupCreate,
        progress: &dyn Progress,
    ) -> Result<bk::BackupResult> {
        api(LocalNode::backup_create(self, ct, &req, progress))
    }
    fn backup_list(&self, filter: bk::BackupFilter) -> Result<Vec<bk::BackupEntry>> {
        api(LocalNode::backup_list(self, &filter))
    }
    fn backup_ls(
        &self,
        ctid: berth_core::CtId,
        repo: Option<String>,
        snapshot: Option<String>,
        path: &str,
        recursive: bool,
        current_only: bool,
    ) -> Result<bk::BackupListing> {
        let (snapshot, list) = api(LocalNode::backup_ls_of(
            self,
            repo.as_deref(),
            ctid,
            snapshot.as_deref(),
            path,
            recursive,
            current_only,
        ))?;
        let entries = list
            .into_iter()
            .map(|e| bk::BackupFile {
                path: e.path,
                kind: e.kind,
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                size: e.size,
                mtime: e.mtime,
                target: e.target,
            })
            .collect();
        Ok(bk::BackupListing { snapshot, entries })
    }
    fn backup_restore(
        &self,
        ctid: berth_core::CtId,
        req: bk::BackupRestore,
        progress: &dyn Progress,
    ) -> Result<bk::RestoreResult> {
        let (to, snapshot, notes) = api(LocalNode::backup_restore(self, ctid, &req, progress))?;
        Ok(bk::RestoreResult {
            ctid: to.0,
            snapshot,
            notes,
        })
    }
    fn backup_restore_files(
        &self,
        ctid: berth_core::CtId,
        req: bk::RestoreFiles,
    ) -> Result<bk::FilesRestored> {
        match (&req.to, req.to_container) {
            (Some(to), None) => {
                let (snapshot, files, bytes) = api(LocalNode::backup_restore_files(
                    self,
                    req.repo.as_deref(),
                    ctid,
                    req.snapshot.as_deref(),
                    &req.paths,
                    to,
                    req.current_only,
                ))?;
                Ok(bk::FilesRestored {
                    snapshot,
                    files,
                    bytes,
                    skipped: 0,
                })
            }
            (None, Some(target)) => LocalNode::backup_restore_files_into(
                self,
                req.repo.as_deref(),
                ctid,
                req.snapshot.as_deref(),
                &req.paths,
                berth_core::CtId::parse(&target.to_string()).map_err(berth_api::Error::from)?,
                req.current_only,
            ),
            _ => Err(berth_api::Error::invalid(
                "restore files to a directory of the node (to) or into a container (to_container): one of the two",
            )),
        }
    }
    fn backup_forget(
        &self,
        ctid: berth_core::CtId,
        req: bk::ForgetRequest,
    ) -> Result<bk::ForgetResult> {
        let (kept, removed, freed) = api(LocalNode::backup_forget(self, ctid, &req))?;
        Ok(bk::ForgetResult {
            kept,
            removed,
            freed,
        })
    }
    fn backup_schedules(&self) -> Result<Vec<bk::ScheduleInfo>> {
        api(LocalNode::backup_schedules(self))
    }
    fn backup_schedule_add(&self, s: bk::Schedule) -> Result<bk::ScheduleInfo> {
        api(LocalNode::backup_schedule_add(self, s))
    }
    fn backup_schedule_remove(&self, name: &str) -> Result<()> {
        api(LocalNode::backup_schedule_remove(self, name))
    }
    fn backup_schedule_run(&self, name: &str, p: &dyn Progress) -> Result<bk::ScheduleRun> {
        api(LocalNode::backup_schedule_run(self, name, p))
    }
    fn backup_verify(&self, req: bk::VerifyRequest) -> Result<bk::VerifyResult> {
        let repo = api(LocalNode::backup_verify(
            self,
            req.repo.as_deref(),
            req.read_data,
        ))?;
        Ok(bk::VerifyResult {
            repo,
            read_data: req.read_data,
        })
    }
}

/// vzctl's boot order: higher `bootorder` first, containers without one last, ties by CTID.
fn boot_order(a: (Option<u32>, u32), b: (Option<u32>, u32)) -> std::cmp::Ordering {
    match (a.0, b.0) {
        (Some(x), Some(y)) => y.cmp(&x).then(a.1.cmp(&b.1)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.1.cmp(&b.1),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn boot_order_is_vzctls() {
        let mut v = vec![
            (None, 105),
            (Some(1), 103),
            (Some(10), 104),
            (None, 101),
            (Some(10), 102),
        ];
        v.sort_by(|a, b| super::boot_order(*a, *b));
        assert_eq!(
            v,
            vec![
                (Some(10), 102),
                (Some(10), 104),
                (Some(1), 103),
                (None, 101),
                (None, 105)
            ]
        );
    }
}
