//! A bounded property test of the request layer (routing, authentication, roles, strict
//! parsing) against a fake `Node` that refuses everything: whatever a hostile client sends,
//! the answer is a JSON error of a 4xx kind (or the fake's own 404), never a panic, a 5xx or
//! a plain-text body. `BERTH_FUZZ_CASES` sets the number of cases (default 300).

use crate::authn::{Peer, RateLimiter};
use crate::state::AppState;
use berth_api::config::TemplateManifest;
use berth_api::net::{Adapter, NetworkConfig, NetworkInfo, Traffic};
use berth_api::ops::{
    CloneOptions, ContainerInfo, ContainerStats, CreateOptions, NodeInfo, StopOptions,
    TemplateSource,
};
use berth_api::procs::{ProcInfo, WhichInfo};
use berth_api::services::{Action, AddService, HostService, InitMode, ServiceStatus, Startup};
use berth_api::*;
use proptest::prelude::*;
use std::sync::Arc;
use tower::ServiceExt;

use berth_api::backup as bk;

struct Fake;

fn no<T>() -> Result<T> {
    Err(Error::not_found("fake node: nothing here"))
}

impl Node for Fake {
    fn template_create(
        &self,
        _: &str,
        _: TemplateSource,
        _: &dyn Progress,
    ) -> Result<TemplateManifest> {
        no()
    }
    fn template_list(&self) -> Result<Vec<TemplateManifest>> {
        Ok(vec![])
    }
    fn template_info(&self, _: &str) -> Result<TemplateManifest> {
        no()
    }
    fn receive_template(
        &self,
        _: &str,
        _: &str,
        _: &mut dyn std::io::Read,
    ) -> Result<TemplateManifest> {
        no()
    }
    fn template_remove(&self, _: &str) -> Result<()> {
        no()
    }
    fn create(&self, _: CreateOptions, _: &dyn Progress) -> Result<ContainerInfo> {
        no()
    }
    fn clone_ct(&self, _: &CtRef, _: CloneOptions, _: &dyn Progress) -> Result<CloneResult> {
        no()
    }
    fn migrate_ct(
        &self,
        _: &CtRef,
        _: berth_api::MigrateTarget,
        _: berth_api::MigrateOptions,
        _: &dyn Progress,
    ) -> Result<berth_api::MigrateResult> {
        no()
    }
    fn receive_ct(
        &self,
        _: IncomingHeader,
        _: &mut dyn std::io::Read,
        _: &dyn Progress,
    ) -> Result<Option<ContainerInfo>> {
        no()
    }
    fn move_ct(&self, _: &CtRef, _: MoveOptions) -> Result<ContainerInfo> {
        no()
    }
    fn start(&self, _: &CtRef) -> Result<StartResult> {
        no()
    }
    fn stop(&self, _: &CtRef, _: StopOptions) -> Result<()> {
        no()
    }
    fn restart(&self, _: &CtRef, _: StopOptions) -> Result<ContainerInfo> {
        no()
    }
    fn suspend(&self, _: &CtRef) -> Result<()> {
        no()
    }
    fn resume(&self, _: &CtRef) -> Result<()> {
        no()
    }
    fn destroy(&self, _: &CtRef, _: bool) -> Result<()> {
        no()
    }
    fn status(&self, _: &CtRef) -> Result<ContainerInfo> {
        no()
    }
    fn list(&self, _: bool) -> Result<Vec<ContainerInfo>> {
        Ok(vec![])
    }
    fn set(&self, _: &CtRef, _: SetRequest) -> Result<SetResult> {
        no()
    }
    fn stats(&self, _: &[CtRef], _: u64) -> Result<Vec<ContainerStats>> {
        Ok(vec![])
    }
    fn compact(&self, _: &CtRef) -> Result<u64> {
        no()
    }
    fn exec(&self, _: &CtRef, _: ExecRequest, _: Stdio) -> Result<i32> {
        no()
    }
    fn enter(&self, _: &CtRef, _: Stdio) -> Result<i32> {
        no()
    }
    fn console(
        &self,
        _: &CtRef,
        _: berth_api::ConsoleLog,
        _: &mut dyn std::io::Write,
    ) -> Result<()> {
        no()
    }
    fn console_attach(
        &self,
        _: &CtRef,
        _: Option<u8>,
        _: berth_api::Stdio,
    ) -> Result<berth_api::ConsoleEnd> {
        no()
    }
    fn traffic(&self, _: &CtRef) -> Result<Option<Traffic>> {
        no()
    }
    fn ps(&self, _: &CtRef) -> Result<Vec<ProcInfo>> {
        no()
    }
    fn top(&self, _: u64) -> Result<Vec<ProcInfo>> {
        Ok(vec![])
    }
    fn kill(&self, _: &CtRef, _: i32, _: &str) -> Result<ProcInfo> {
        no()
    }
    fn which(&self, _: i32) -> Result<WhichInfo> {
        no()
    }
    fn service_list(&self, _: &CtRef) -> Result<ServiceList> {
        no()
    }
    fn service_status(&self, _: &CtRef, _: &str) -> Result<ServiceStatus> {
        no()
    }
    fn service_action(&self, _: &CtRef, _: &str, _: Action) -> Result<()> {
        no()
    }
    fn service_logs(&self, _: &CtRef, _: &str) -> Result<Vec<u8>> {
        no()
    }
    fn service_add(&self, _: &CtRef, _: &str, _: AddService) -> Result<Startup> {
        no()
    }
    fn service_remove(&self, _: &CtRef, _: &str) -> Result<()> {
        no()
    }
    fn service_set_startup(&self, _: &CtRef, _: &str, _: Startup) -> Result<()> {
        no()
    }
    fn init_mode(&self, _: &CtRef) -> Result<InitMode> {
        no()
    }
    fn ct_user_list(&self, _: &CtRef) -> Result<Vec<inside::CtUser>> {
        no()
    }
    fn ct_user_add(&self, _: &CtRef, _: inside::CtUserAdd) -> Result<inside::CtUser> {
        no()
    }
    fn ct_user_del(&self, _: &CtRef, _: &str) -> Result<()> {
        no()
    }
    fn ct_user_passwd(&self, _: &CtRef, _: &str, _: inside::CtPassword) -> Result<inside::CtUser> {
        no()
    }
    fn ct_group_list(&self, _: &CtRef) -> Result<Vec<inside::CtGroup>> {
        no()
    }
    fn ct_group_add(&self, _: &CtRef, _: inside::CtGroupAdd) -> Result<inside::CtGroup> {
        no()
    }
    fn ct_group_del(&self, _: &CtRef, _: &str) -> Result<()> {
        no()
    }
    fn file_stat(&self, _: &CtRef, _: &str) -> Result<inside::FileEntry> {
        no()
    }
    fn file_list(&self, _: &CtRef, _: &str) -> Result<Vec<inside::FileEntry>> {
        no()
    }
    fn file_pull(
        &self,
        _: &CtRef,
        _: &str,
        _: &mut dyn inside::FileSink,
    ) -> Result<inside::FileEntry> {
        no()
    }
    fn file_push(
        &self,
        _: &CtRef,
        _: inside::FilePush,
        _: &mut dyn std::io::Read,
    ) -> Result<inside::FileEntry> {
        no()
    }
    fn file_remove(&self, _: &CtRef, _: &str) -> Result<()> {
        no()
    }
    fn network_create(&self, _: NetworkConfig) -> Result<()> {
        no()
    }
    fn network_list(&self) -> Result<Vec<NetworkInfo>> {
        Ok(vec![])
    }
    fn network_info(&self, _: &str) -> Result<NetworkInfo> {
        no()
    }
    fn network_delete(&self, _: &str) -> Result<()> {
        no()
    }
    fn node_info(&self) -> Result<NodeInfo> {
        no()
    }
    fn node_adapters(&self) -> Result<Vec<Adapter>> {
        Ok(vec![])
    }
    fn node_set(&self, _: NodeSettings) -> Result<()> {
        no()
    }
    fn node_config(&self) -> Result<berth_api::NodeConfigInfo> {
        no()
    }
    fn node_boot(&self) -> Result<Vec<berth_api::BootEntry>> {
        Ok(vec![])
    }
    fn host_services(&self) -> Result<Vec<HostService>> {
        Ok(vec![])
    }
    fn sample_list(&self) -> Result<Vec<berth_api::samples::ConfigSample>> {
        Ok(berth_api::samples::builtin())
    }
    fn sample_info(&self, name: &str) -> Result<berth_api::samples::ConfigSample> {
        berth_api::samples::builtin()
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::not_found("no such sample"))
    }
    fn sample_save(&self, _: berth_api::samples::ConfigSample) -> Result<()> {
        Ok(())
    }
    fn sample_remove(&self, _: &str) -> Result<()> {
        Ok(())
    }
    fn backup_repos(&self) -> Result<bk::Repos> {
        Ok(bk::Repos::default())
    }
    fn backup_repo_add(&self, _: bk::RepoAdd) -> Result<bk::RepoAdded> {
        no()
    }
    fn backup_repo_remove(&self, _: &str) -> Result<()> {
        no()
    }
    fn backup_repo_default(&self, _: &str) -> Result<()> {
        no()
    }
    fn backup_create(
        &self,
        _: &CtRef,
        _: bk::BackupCreate,
        _: &dyn Progress,
    ) -> Result<bk::BackupResult> {
        no()
    }
    fn backup_list(&self, _: bk::BackupFilter) -> Result<Vec<bk::BackupEntry>> {
        Ok(vec![])
    }
    fn backup_ls(
        &self,
        _: berth_api::CtId,
        _: Option<String>,
        _: Option<String>,
        _: &str,
        _: bool,
        _: bool,
    ) -> Result<bk::BackupListing> {
        no()
    }
    fn backup_restore(
        &self,
        _: berth_api::CtId,
        _: bk::BackupRestore,
        _: &dyn Progress,
    ) -> Result<bk::RestoreResult> {
        no()
    }
    fn backup_restore_files(
        &self,
        _: berth_api::CtId,
        _: bk::RestoreFiles,
    ) -> Result<bk::FilesRestored> {
        no()
    }
    fn backup_forget(&self, _: berth_api::CtId, _: bk::ForgetRequest) -> Result<bk::ForgetResult> {
        no()
    }
    fn backup_verify(&self, _: bk::VerifyRequest) -> Result<bk::VerifyResult> {
        no()
    }
    fn backup_schedules(&self) -> Result<Vec<bk::ScheduleInfo>> {
        no()
    }
    fn backup_schedule_add(&self, _: bk::Schedule) -> Result<bk::ScheduleInfo> {
        no()
    }
    fn backup_schedule_remove(&self, _: &str) -> Result<()> {
        no()
    }
    fn backup_schedule_run(&self, _: &str, _: &dyn Progress) -> Result<bk::ScheduleRun> {
        no()
    }
}

fn state(dir: &std::path::Path) -> Arc<AppState> {
    let auth = berth_auth::Store::open(dir).unwrap();
    let events = Arc::new(crate::events::EventLog::open(auth.dir(), 1 << 20));
    let ops = Arc::new(crate::ops::Ops::open(auth.dir(), events.clone()));
    let cfg = crate::config::Config {
        body_limit: 4096,
        ..Default::default()
    };
    Arc::new(AppState {
        node: Arc::new(Fake),
        root: dir.to_path_buf(),
        limiter: RateLimiter::new(1000),
        cfg,
        auth,
        sessions: Default::default(),
        ops,
        events,
        stop_requests: Default::default(),
        clone_slots: Default::default(),
        list_cache: Default::default(),
        sessions_exec: Arc::new(tokio::sync::Semaphore::new(2)),
        sessions_console: Arc::new(tokio::sync::Semaphore::new(2)),
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("containers".to_string()),
        Just("101".to_string()),
        Just("web1".to_string()),
        Just("services".to_string()),
        Just("processes".to_string()),
        Just("templates".to_string()),
        Just("networks".to_string()),
        Just("operations".to_string()),
        Just("start".to_string()),
        Just("..%2F".to_string()),
        Just("%2e%2e".to_string()),
        Just("%00".to_string()),
        Just("%ff%fe".to_string()),
        "[a-z0-9%._-]{0,20}",
        "[0-9]{1,12}",
    ]
}

fn request() -> impl Strategy<Value = (String, String, String, Vec<u8>)> {
    let method = prop_oneof![
        Just("GET"),
        Just("POST"),
        Just("PUT"),
        Just("PATCH"),
        Just("DELETE")
    ];
    let query = prop_oneof![
        Just(String::new()),
        Just("?all=true".to_string()),
        Just("?all=maybe".to_string()),
        Just("?ct=101&ct=..&sample_ms=99999999999".to_string()),
        Just("?since=10m&type=container".to_string()),
        "\\?[a-z=&%0-9]{0,30}",
    ];
    let body = prop_oneof![
        Just(Vec::new()),
        Just(b"{}".to_vec()),
        Just(b"{\"name\":\"../x\",\"source\":\"Busybox\"}".to_vec()),
        Just(b"{\"options\":{\"setmode\":\"live\",\"ram\":\"1X\"}}".to_vec()),
        Just(b"{\"timeout\":1e99}".to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
        "\\{\"[a-z_]{1,10}\":(1|\"x\"|null|\\[\\]|\\{\\})\\}".prop_map(String::into_bytes),
    ];
    (
        method.prop_map(String::from),
        prop::collection::vec(segment(), 1..6).prop_map(|s| format!("/api/v1/{}", s.join("/"))),
        query,
        body,
    )
}

#[test]
fn hostile_requests_get_json_4xx() {
    let dir = std::env::temp_dir().join(format!("berthd-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let st = state(&dir);
    let app = crate::routes::router(st);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("BERTH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    let result = runner.run(&request(), |(method, path, query, body)| {
        let uri = format!("{path}{query}");
        let Ok(req) = axum::http::Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .header("content-length", body.len())
            .body(axum::body::Body::from(body))
        else {
            // Not even a URI: hyper refuses it before berthd sees it.
            return Ok(());
        };
        let mut req = req;
        req.extensions_mut().insert(Peer::Unix { uid: 0 });
        let res = rt.block_on(app.clone().oneshot(req)).unwrap();
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = rt
            .block_on(axum::body::to_bytes(res.into_body(), 1 << 20))
            .unwrap();
        prop_assert!(
            status < 500,
            "{method} {uri}: {status} {:?}",
            String::from_utf8_lossy(&bytes)
        );
        if status >= 400 {
            prop_assert!(
                ctype.starts_with("application/json"),
                "{method} {uri}: {ctype}"
            );
            let e: std::result::Result<ErrorBody, _> = serde_json::from_slice(&bytes);
            prop_assert!(
                e.is_ok(),
                "{method} {uri}: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            let e = e.unwrap();
            prop_assert_eq!(e.error.kind.http_status(), status);
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}");
    }
}
