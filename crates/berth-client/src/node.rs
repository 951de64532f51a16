//! `impl Node for RemoteNode`: one route of [`berth_api::agent::ROUTES`] per operation.

use crate::http::enc;
use crate::{ClientError, RemoteNode, REQUEST_TIMEOUT};
use berth_api::config::TemplateManifest;
use berth_api::inside::{
    validate_path, CtGroup, CtGroupAdd, CtPassword, CtUser, CtUserAdd, FileEntry, FilePush,
    FileSink, FILE_HEADER,
};
use berth_api::net::{Adapter, NetworkConfig, NetworkInfo, Traffic};
use berth_api::ops::{
    CloneOptions, ContainerInfo, ContainerStats, CreateOptions, NodeInfo, StopOptions,
    TemplateSource,
};
use berth_api::procs::{ProcInfo, WhichInfo};
use berth_api::services::{Action, AddService, HostService, InitMode, ServiceStatus, Startup};
use berth_api::{
    CtRef, ExecRequest, Node, NodeSettings, Progress, Result, ServiceList, SetRequest, SetResult,
    StartResult, Stdio,
};
use serde::{Deserialize, Serialize};
use std::io::Read as _;
use std::time::Duration;

fn ct_path(ct: &CtRef) -> String {
    format!("/containers/{}", enc(&ct.to_string()))
}

fn user_path(ct: &CtRef, name: &str) -> String {
    format!("{}/users/{}", ct_path(ct), enc(name))
}

fn files_path(ct: &CtRef, what: &str, path: &str) -> String {
    format!("{}/files{what}?path={}", ct_path(ct), enc(path))
}

fn svc_path(ct: &CtRef, name: &str) -> String {
    format!("{}/services/{}", ct_path(ct), enc(name))
}

/// Time for an operation that waits `extra` on the node.
fn longer(extra: Duration) -> Duration {
    REQUEST_TIMEOUT.saturating_add(extra)
}

#[derive(Serialize)]
struct TemplateCreate<'a> {
    name: &'a str,
    source: &'a TemplateSource,
}

#[derive(Deserialize)]
struct Reclaimed {
    reclaimed: u64,
}

#[derive(Serialize)]
struct Signal<'a> {
    signal: &'a str,
}

#[derive(Serialize, Deserialize)]
struct StartupBody {
    startup: Startup,
}

#[derive(Deserialize)]
struct InitBody {
    init: InitMode,
}

impl Node for RemoteNode {
    fn template_create(
        &self,
        name: &str,
        source: TemplateSource,
        progress: &dyn Progress,
    ) -> Result<TemplateManifest> {
        let body = Self::json_body(&TemplateCreate {
            name,
            source: &source,
        })?;
        self.operation("/templates", body, progress)
    }
    fn template_list(&self) -> Result<Vec<TemplateManifest>> {
        self.get("/templates")
    }
    fn template_info(&self, name: &str) -> Result<TemplateManifest> {
        self.get(&format!("/templates/{}", enc(name)))
    }
    fn receive_template(
        &self,
        name: &str,
        hash: &str,
        input: &mut dyn std::io::Read,
    ) -> Result<TemplateManifest> {
        self.stream_json(
            "POST",
            &format!("/migrations/templates/{}?hash={}", enc(name), enc(hash)),
            input,
        )
    }
    fn template_remove(&self, name: &str) -> Result<()> {
        self.call_unit(
            "DELETE",
            &format!("/templates/{}", enc(name)),
            None,
            REQUEST_TIMEOUT,
        )
    }

    fn create(&self, opts: CreateOptions, progress: &dyn Progress) -> Result<ContainerInfo> {
        let body = Self::json_body(&opts)?;
        self.operation("/containers", body, progress)
    }
    fn clone_ct(
        &self,
        ct: &CtRef,
        opts: CloneOptions,
        progress: &dyn Progress,
    ) -> Result<berth_api::CloneResult> {
        let body = Self::json_body(&opts)?;
        self.operation(&format!("{}/clone", ct_path(ct)), body, progress)
    }
    fn receive_ct(
        &self,
        header: berth_api::IncomingHeader,
        input: &mut dyn std::io::Read,
        _progress: &dyn Progress,
    ) -> Result<Option<ContainerInfo>> {
        let first = header.frame();
        let mut body = std::io::Read::chain(&first[..], input);
        // No answer timeout while the disk streams (the node reads it as it comes).
        self.stream_json("POST", "/migrations/incoming", &mut body)
    }
    fn migrate_ct(
        &self,
        ct: &CtRef,
        target: berth_api::MigrateTarget,
        opts: berth_api::MigrateOptions,
        progress: &dyn Progress,
    ) -> Result<berth_api::MigrateResult> {
        let body = Self::json_body(&berth_api::MigrateRequest {
            target,
            options: opts,
        })?;
        self.operation(&format!("{}/migrate", ct_path(ct)), body, progress)
    }
    fn move_ct(&self, ct: &CtRef, opts: berth_api::MoveOptions) -> Result<ContainerInfo> {
        let body = Self::json_body(&opts)?;
        self.call(
            "POST",
            &format!("{}/move", ct_path(ct)),
            Some(body),
            REQUEST_TIMEOUT,
        )
    }
    fn start(&self, ct: &CtRef) -> Result<StartResult> {
        self.call(
            "POST",
            &format!("{}/start", ct_path(ct)),
            None,
            REQUEST_TIMEOUT,
        )
    }
    fn stop(&self, ct: &CtRef, opts: StopOptions) -> Result<()> {
        let body = Self::json_body(&opts)?;
        self.call_unit(
            "POST",
            &format!("{}/stop", ct_path(ct)),
            Some(body),
            longer(Duration::from_secs(opts.timeout)),
        )
    }
    fn restart(&self, ct: &CtRef, opts: StopOptions) -> Result<ContainerInfo> {
        let body = Self::json_body(&opts)?;
        self.call(
            "POST",
            &format!("{}/restart", ct_path(ct)),
            Some(body),
            longer(Duration::from_secs(opts.timeout)),
        )
    }
    fn suspend(&self, ct: &CtRef) -> Result<()> {
        let p = format!("{}/suspend", ct_path(ct));
        self.call_unit("POST", &p, None, REQUEST_TIMEOUT)
    }
    fn resume(&self, ct: &CtRef) -> Result<()> {
        let p = format!("{}/resume", ct_path(ct));
        self.call_unit("POST", &p, None, REQUEST_TIMEOUT)
    }
    fn destroy(&self, ct: &CtRef, force: bool) -> Result<()> {
        let p = format!("{}?force={force}", ct_path(ct));
        // A forced destroy stops first (60 s of clean shutdown at most).
        self.call_unit("DELETE", &p, None, longer(Duration::from_secs(60)))
    }
    fn status(&self, ct: &CtRef) -> Result<ContainerInfo> {
        self.get(&ct_path(ct))
    }
    fn list(&self, all: bool) -> Result<Vec<ContainerInfo>> {
        self.get(&format!("/containers?all={all}"))
    }
    fn set(&self, ct: &CtRef, req: SetRequest) -> Result<SetResult> {
        let body = Self::json_body(&req)?;
        // `--setmode restart` stops and starts.
        self.call(
            "PATCH",
            &ct_path(ct),
            Some(body),
            longer(Duration::from_secs(60)),
        )
    }
    fn stats(&self, cts: &[CtRef], sample_ms: u64) -> Result<Vec<ContainerStats>> {
        let mut q: Vec<String> = cts
            .iter()
            .map(|c| format!("ct={}", enc(&c.to_string())))
            .collect();
        q.push(format!("sample_ms={sample_ms}"));
        self.call(
            "GET",
            &format!("/stats?{}", q.join("&")),
            None,
            longer(Duration::from_millis(sample_ms)),
        )
    }
    fn compact(&self, ct: &CtRef) -> Result<u64> {
        let p = format!("{}/compact", ct_path(ct));
        let r: Reclaimed = self.call("POST", &p, None, longer(Duration::from_secs(600)))?;
        Ok(r.reclaimed)
    }
    fn exec(&self, ct: &CtRef, req: ExecRequest, stdio: Stdio) -> Result<i32> {
        req.opts.validate().map_err(berth_api::Error::from)?;
        if req.command.is_empty() {
            return Err(berth_api::Error::invalid("exec needs a command"));
        }
        crate::ws::run(self, &format!("{}/exec", ct_path(ct)), req, stdio)
    }
    fn enter(&self, ct: &CtRef, stdio: Stdio) -> Result<i32> {
        // An empty command is a login shell (see the exec route).
        crate::ws::run(
            self,
            &format!("{}/exec", ct_path(ct)),
            ExecRequest::default(),
            stdio,
        )
    }
    fn console(
        &self,
        ct: &CtRef,
        log: berth_api::ConsoleLog,
        out: &mut dyn std::io::Write,
    ) -> Result<()> {
        let p = format!(
            "{}/console?follow={}&timestamps={}",
            ct_path(ct),
            log.follow,
            log.timestamps
        );
        let timeout = (!log.follow).then_some(REQUEST_TIMEOUT);
        let url = self.url();
        let mut resp = self.send("GET", &p, None, timeout)?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match resp.body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ClientError::Connect { url, source }.into()),
            };
            out.write_all(&buf[..n])
                .and_then(|_| out.flush())
                .map_err(|e| ClientError::io("writing the console", e))?;
        }
        Ok(())
    }
    fn console_attach(
        &self,
        ct: &CtRef,
        escape: Option<u8>,
        stdio: Stdio,
    ) -> Result<berth_api::ConsoleEnd> {
        crate::ws::console(
            self,
            &format!("{}/console/attach", ct_path(ct)),
            escape,
            stdio,
        )
    }
    fn traffic(&self, ct: &CtRef) -> Result<Option<Traffic>> {
        self.get(&format!("{}/traffic", ct_path(ct)))
    }

    fn ps(&self, ct: &CtRef) -> Result<Vec<ProcInfo>> {
        self.get(&format!("{}/processes", ct_path(ct)))
    }
    fn top(&self, sample_ms: u64) -> Result<Vec<ProcInfo>> {
        self.call(
            "GET",
            &format!("/processes?sample_ms={sample_ms}"),
            None,
            longer(Duration::from_millis(sample_ms)),
        )
    }
    fn kill(&self, ct: &CtRef, pid: i32, signal: &str) -> Result<ProcInfo> {
        let body = Self::json_body(&Signal { signal })?;
        self.call(
            "POST",
            &format!("{}/processes/{pid}/signal", ct_path(ct)),
            Some(body),
            REQUEST_TIMEOUT,
        )
    }
    fn which(&self, host_pid: i32) -> Result<WhichInfo> {
        self.get(&format!("/processes/{host_pid}"))
    }

    fn service_list(&self, ct: &CtRef) -> Result<ServiceList> {
        self.get(&format!("{}/services", ct_path(ct)))
    }
    fn service_status(&self, ct: &CtRef, name: &str) -> Result<ServiceStatus> {
        self.get(&svc_path(ct, name))
    }
    fn service_action(&self, ct: &CtRef, name: &str, action: Action) -> Result<()> {
        let p = format!("{}/{}", svc_path(ct, name), action.as_str());
        self.call_unit("POST", &p, None, longer(Duration::from_secs(120)))
    }
    fn service_logs(&self, ct: &CtRef, name: &str) -> Result<Vec<u8>> {
        let url = self.url();
        let p = format!("{}/logs", svc_path(ct, name));
        let mut resp = self.send("GET", &p, None, Some(REQUEST_TIMEOUT))?;
        Ok(resp.read_body(crate::MAX_JSON, &url)?)
    }
    fn service_add(&self, ct: &CtRef, name: &str, add: AddService) -> Result<Startup> {
        let body = Self::json_body(&add)?;
        let r: StartupBody = self.call("PUT", &svc_path(ct, name), Some(body), REQUEST_TIMEOUT)?;
        Ok(r.startup)
    }
    fn service_remove(&self, ct: &CtRef, name: &str) -> Result<()> {
        self.call_unit("DELETE", &svc_path(ct, name), None, REQUEST_TIMEOUT)
    }
    fn service_set_startup(&self, ct: &CtRef, name: &str, startup: Startup) -> Result<()> {
        let body = Self::json_body(&StartupBody { startup })?;
        let p = format!("{}/startup", svc_path(ct, name));
        self.call_unit("PUT", &p, Some(body), REQUEST_TIMEOUT)
    }
    fn init_mode(&self, ct: &CtRef) -> Result<InitMode> {
        let r: InitBody = self.get(&format!("{}/init", ct_path(ct)))?;
        Ok(r.init)
    }

    fn ct_user_list(&self, ct: &CtRef) -> Result<Vec<CtUser>> {
        self.get(&format!("{}/users", ct_path(ct)))
    }
    fn ct_user_add(&self, ct: &CtRef, add: CtUserAdd) -> Result<CtUser> {
        add.validate().map_err(berth_api::Error::from)?;
        let body = Self::json_body(&add)?;
        let p = format!("{}/users", ct_path(ct));
        self.call("POST", &p, Some(body), REQUEST_TIMEOUT)
    }
    fn ct_user_del(&self, ct: &CtRef, name: &str) -> Result<()> {
        self.call_unit("DELETE", &user_path(ct, name), None, REQUEST_TIMEOUT)
    }
    fn ct_user_passwd(&self, ct: &CtRef, name: &str, req: CtPassword) -> Result<CtUser> {
        let body = Self::json_body(&req)?;
        let p = format!("{}/password", user_path(ct, name));
        self.call("PUT", &p, Some(body), REQUEST_TIMEOUT)
    }
    fn ct_group_list(&self, ct: &CtRef) -> Result<Vec<CtGroup>> {
        self.get(&format!("{}/groups", ct_path(ct)))
    }
    fn ct_group_add(&self, ct: &CtRef, add: CtGroupAdd) -> Result<CtGroup> {
        add.validate().map_err(berth_api::Error::from)?;
        let body = Self::json_body(&add)?;
        let p = format!("{}/groups", ct_path(ct));
        self.call("POST", &p, Some(body), REQUEST_TIMEOUT)
    }
    fn ct_group_del(&self, ct: &CtRef, name: &str) -> Result<()> {
        let p = format!("{}/groups/{}", ct_path(ct), enc(name));
        self.call_unit("DELETE", &p, None, REQUEST_TIMEOUT)
    }
    fn file_stat(&self, ct: &CtRef, path: &str) -> Result<FileEntry> {
        validate_path(path).map_err(berth_api::Error::from)?;
        self.get(&files_path(ct, "/stat", path))
    }
    fn file_list(&self, ct: &CtRef, path: &str) -> Result<Vec<FileEntry>> {
        validate_path(path).map_err(berth_api::Error::from)?;
        self.get(&files_path(ct, "", path))
    }
    fn file_pull(&self, ct: &CtRef, path: &str, sink: &mut dyn FileSink) -> Result<FileEntry> {
        validate_path(path).map_err(berth_api::Error::from)?;
        let url = self.url();
        let mut resp = self.send(
            "GET",
            &files_path(ct, "/content", path),
            None,
            Some(REQUEST_TIMEOUT),
        )?;
        let entry: FileEntry = resp
            .header(FILE_HEADER)
            .and_then(crate::http::dec)
            .and_then(|j| serde_json::from_str(&j).ok())
            .ok_or_else(|| ClientError::Protocol {
                url: url.clone(),
                why: format!("the answer has no valid {FILE_HEADER} header"),
            })?;
        sink.begin(&entry)
            .map_err(|e| ClientError::io("writing the file", e))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            let n = match resp.body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ClientError::Connect { url, source }.into()),
            };
            sink.write(&buf[..n])
                .map_err(|e| ClientError::io("writing the file", e))?;
            got += n as u64;
        }
        if got != entry.size {
            return Err(ClientError::Protocol {
                url,
                why: format!(
                    "{path}: the transfer ended after {got} of {} bytes",
                    entry.size
                ),
            }
            .into());
        }
        Ok(entry)
    }
    fn file_push(
        &self,
        ct: &CtRef,
        req: FilePush,
        input: &mut dyn std::io::Read,
    ) -> Result<FileEntry> {
        req.validate().map_err(berth_api::Error::from)?;
        let mut p = files_path(ct, "/content", &req.path);
        if let Some(m) = req.mode {
            p.push_str(&format!("&mode={m:04o}"));
        }
        if let Some(u) = req.uid {
            p.push_str(&format!("&uid={u}"));
        }
        if let Some(g) = req.gid {
            p.push_str(&format!("&gid={g}"));
        }
        // No answer timeout while the body streams (the node reads it as it comes).
        self.stream_json("PUT", &p, input)
    }
    fn file_remove(&self, ct: &CtRef, path: &str) -> Result<()> {
        validate_path(path).map_err(berth_api::Error::from)?;
        self.call_unit("DELETE", &files_path(ct, "", path), None, REQUEST_TIMEOUT)
    }

    fn network_create(&self, cfg: NetworkConfig) -> Result<()> {
        let body = Self::json_body(&cfg)?;
        self.call_unit("POST", "/networks", Some(body), REQUEST_TIMEOUT)
    }
    fn network_list(&self) -> Result<Vec<NetworkInfo>> {
        self.get("/networks")
    }
    fn network_info(&self, name: &str) -> Result<NetworkInfo> {
        self.get(&format!("/networks/{}", enc(name)))
    }
    fn network_delete(&self, name: &str) -> Result<()> {
        let p = format!("/networks/{}", enc(name));
        self.call_unit("DELETE", &p, None, REQUEST_TIMEOUT)
    }

    fn node_info(&self) -> Result<NodeInfo> {
        self.get("/node")
    }
    fn node_adapters(&self) -> Result<Vec<Adapter>> {
        self.get("/node/adapters")
    }
    fn node_config(&self) -> Result<berth_api::NodeConfigInfo> {
        self.get("/node/config")
    }
    fn node_boot(&self) -> Result<Vec<berth_api::BootEntry>> {
        self.call("POST", "/node/boot", None, REQUEST_TIMEOUT)
    }
    fn node_set(&self, settings: NodeSettings) -> Result<()> {
        let body = Self::json_body(&settings)?;
        self.call_unit("PATCH", "/node", Some(body), REQUEST_TIMEOUT)
    }
    fn host_services(&self) -> Result<Vec<HostService>> {
        self.get("/node/services")
    }
    fn sample_list(&self) -> Result<Vec<berth_api::samples::ConfigSample>> {
        self.get("/samples")
    }
    fn sample_info(&self, name: &str) -> Result<berth_api::samples::ConfigSample> {
        self.get(&format!("/samples/{}", enc(name)))
    }
    fn sample_save(&self, sample: berth_api::samples::ConfigSample) -> Result<()> {
        let path = format!("/samples/{}", enc(&sample.name));
        let body = Self::json_body(&sample)?;
        self.call_unit("PUT", &path, Some(body), REQUEST_TIMEOUT)
    }
    fn sample_remove(&self, name: &str) -> Result<()> {
        self.call_unit(
            "DELETE",
            &format!("/samples/{}", enc(name)),
            None,
            REQUEST_TIMEOUT,
        )
    }

    fn backup_repos(&self) -> Result<berth_api::backup::Repos> {
        self.get("/backups/repos")
    }
    fn backup_repo_add(
        &self,
        req: berth_api::backup::RepoAdd,
    ) -> Result<berth_api::backup::RepoAdded> {
        let body = Self::json_body(&req)?;
        self.call("POST", "/backups/repos", Some(body), REQUEST_TIMEOUT)
    }
    fn backup_repo_remove(&self, name: &str) -> Result<()> {
        let path = format!("/backups/repos/{}", enc(name));
        self.call_unit("DELETE", &path, None, REQUEST_TIMEOUT)
    }
    fn backup_repo_default(&self, name: &str) -> Result<()> {
        let path = format!("/backups/repos/{}/default", enc(name));
        self.call_unit("PUT", &path, None, REQUEST_TIMEOUT)
    }
    fn backup_create(
        &self,
        ct: &CtRef,
        req: berth_api::backup::BackupCreate,
        progress: &dyn Progress,
    ) -> Result<berth_api::backup::BackupResult> {
        let body = Self::json_body(&req)?;
        self.operation(&format!("{}/backups", ct_path(ct)), body, progress)
    }
    fn backup_list(
        &self,
        f: berth_api::backup::BackupFilter,
    ) -> Result<Vec<berth_api::backup::BackupEntry>> {
        let mut q = vec![];
        if let Some(c) = f.ctid {
            q.push(format!("ct={c}"));
        }
        for (k, v) in [
            ("repo", &f.repo),
            ("hostname", &f.hostname),
            ("tag", &f.tag),
        ] {
            if let Some(v) = v {
                q.push(format!("{k}={}", enc(v)));
            }
        }
        if let Some(t) = f.since {
            q.push(format!("since={t}"));
        }
        if f.current_only {
            q.push("current=true".into());
        }
        let qs = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        self.get(&format!("/backups{qs}"))
    }
    fn backup_ls(
        &self,
        ctid: berth_api::CtId,
        repo: Option<String>,
        snapshot: Option<String>,
        path: &str,
        recursive: bool,
        current_only: bool,
    ) -> Result<berth_api::backup::BackupListing> {
        let mut q = vec![
            format!("path={}", enc(path)),
            format!("recursive={recursive}"),
        ];
        if current_only {
            q.push("current=true".into());
        }
        if let Some(r) = repo {
            q.push(format!("repo={}", enc(&r)));
        }
        if let Some(s) = snapshot {
            q.push(format!("snapshot={}", enc(&s)));
        }
        self.get(&format!("/backups/{ctid}/files?{}", q.join("&")))
    }
    fn backup_restore(
        &self,
        ctid: berth_api::CtId,
        req: berth_api::backup::BackupRestore,
        progress: &dyn Progress,
    ) -> Result<berth_api::backup::RestoreResult> {
        let body = Self::json_body(&req)?;
        self.operation(&format!("/backups/{ctid}/restore"), body, progress)
    }
    fn backup_restore_files(
        &self,
        ctid: berth_api::CtId,
        req: berth_api::backup::RestoreFiles,
    ) -> Result<berth_api::backup::FilesRestored> {
        let body = Self::json_body(&req)?;
        self.operation(
            &format!("/backups/{ctid}/restore-files"),
            body,
            &berth_api::NoProgress,
        )
    }
    fn backup_forget(
        &self,
        ctid: berth_api::CtId,
        req: berth_api::backup::ForgetRequest,
    ) -> Result<berth_api::backup::ForgetResult> {
        let body = Self::json_body(&req)?;
        self.operation(
            &format!("/backups/{ctid}/forget"),
            body,
            &berth_api::NoProgress,
        )
    }
    fn backup_verify(
        &self,
        req: berth_api::backup::VerifyRequest,
    ) -> Result<berth_api::backup::VerifyResult> {
        let body = Self::json_body(&req)?;
        self.operation("/backups/verify", body, &berth_api::NoProgress)
    }
    fn backup_schedules(&self) -> Result<Vec<berth_api::backup::ScheduleInfo>> {
        self.get("/backups/schedules")
    }
    fn backup_schedule_add(
        &self,
        s: berth_api::backup::Schedule,
    ) -> Result<berth_api::backup::ScheduleInfo> {
        let body = Self::json_body(&s)?;
        self.call("POST", "/backups/schedules", Some(body), REQUEST_TIMEOUT)
    }
    fn backup_schedule_remove(&self, name: &str) -> Result<()> {
        let path = format!("/backups/schedules/{}", enc(name));
        self.call_unit("DELETE", &path, None, REQUEST_TIMEOUT)
    }
    fn backup_schedule_run(
        &self,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<berth_api::backup::ScheduleRun> {
        let path = format!("/backups/schedules/{}/run", enc(name));
        self.operation(&path, Self::json_body(&serde_json::json!({}))?, progress)
    }
}

impl RemoteNode {
    /// Sends a request whose body streams from `input`, without an answer timeout (the node
    /// reads the body as it comes); its JSON answer.
    fn stream_json<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        input: &mut dyn std::io::Read,
    ) -> Result<T> {
        let url = self.url();
        let mut resp = self.send_stream(method, path, input, None)?;
        let bytes = resp.read_body(crate::MAX_JSON, &url)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ClientError::Protocol {
                url,
                why: e.to_string(),
            }
            .into()
        })
    }
}
