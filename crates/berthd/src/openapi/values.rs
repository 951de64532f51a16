//! The schemas describe the real JSON: values of the wire types, serialised by serde, pass
//! the validator of `check` against the published document, and bodies a client sends are
//! both read by the server's types and valid; the validator itself finds what is wrong.

use super::check::validate;
use super::document;
use berth_api::agent::{
    Event, NewToken, Operation, OperationProgress, OperationState, Role, TokenInfo, UserAdd,
    UserInfo,
};
use berth_api::net::{
    Adapter, AddrSpec, MacAddr, NetChange, NetConfig, NetIf, NetworkConfig, NetworkInfo,
    NetworkType, Traffic,
};
use berth_api::procs::{ProcInfo, WhichInfo};
use berth_api::resources::{CpuMask, SetMode, SoftHardCount, SoftHardSize};
use berth_api::services::{
    AddService, HostService, InitMode, RestartPolicy, ServiceInfo, ServiceStatus, Startup,
};
use berth_api::{
    BootEntry, Cause, ContainerInfo, ContainerStats, CreateOptions, CtId, CtStatus, DiskFs,
    DiskType, Error, ErrorBody, ErrorKind, ExecOptions, ExecRequest, IdMap, NodeConfigInfo,
    NodeInfo, NodeSettings, Resources, ServiceList, SetOptions, SetOutcome, SetRequest, SetResult,
    Size, StartResult, StopOptions, TemplateKind, TemplateManifest, TemplateSource, TtySize,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use utoipa::ToSchema;

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(document)
}

/// The faults of `v` against the schema named `name`.
fn faults(name: &str, v: &Value) -> Vec<String> {
    validate(
        doc(),
        &json!({"$ref": format!("#/components/schemas/{name}")}),
        v,
    )
}

/// `v` as serde writes it is valid against `T`'s schema.
fn valid<T: ToSchema + Serialize>(v: &T) {
    let j = serde_json::to_value(v).unwrap();
    let f = faults(&T::name(), &j);
    assert!(f.is_empty(), "{}: {j}\n{f:#?}", T::name());
}

/// As [`valid`], and what serde wrote reads back.
fn round_trip<T: ToSchema + Serialize + DeserializeOwned>(v: &T) {
    valid(v);
    let j = serde_json::to_value(v).unwrap();
    if let Err(e) = serde_json::from_value::<T>(j.clone()) {
        panic!("{}: {j} does not read back: {e}", T::name());
    }
}

/// A body a client sends: the server's type reads it and the schema takes it.
fn accepted<T: ToSchema + DeserializeOwned>(j: Value) {
    if let Err(e) = serde_json::from_value::<T>(j.clone()) {
        panic!("{}: {j} refused by serde: {e}", T::name());
    }
    let f = faults(&T::name(), &j);
    assert!(f.is_empty(), "{}: {j}\n{f:#?}", T::name());
}

/// A value the schema refuses.
fn refused(name: &str, j: Value) {
    assert!(!faults(name, &j).is_empty(), "{name} took {j}");
}

/// The success answer of a route, against its schema in the document.
fn answer_faults(method: &str, path: &str, v: &Value) -> Vec<String> {
    let op = &doc()["paths"][path][method];
    let (_, ok) = op["responses"]
        .as_object()
        .and_then(|r| r.iter().find(|(k, _)| k.starts_with('2')))
        .unwrap_or_else(|| panic!("{method} {path}: no success answer"));
    validate(doc(), &ok["content"]["application/json"]["schema"], v)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn info() -> ContainerInfo {
    ContainerInfo {
        ctid: CtId(101),
        name: None,
        status: CtStatus::Running,
        ostemplate: "busybox".into(),
        hostname: "web1".into(),
        privileged: false,
        uptime: Some(30),
        init_pid: Some(4242),
        uid_base: Some(100_000),
        diskspace: Size(10 << 30),
        fstype: DiskFs::Xfs,
        disktype: DiskType::Fixed,
        description: Some("front".into()),
        onboot: true,
        resources: Resources::default(),
        ip: vec!["10.77.0.5".into()],
        networks: vec!["lan0".into()],
        bootorder: Some(3),
        pending: vec!["ram".into()],
        reason: None,
    }
}

fn network() -> NetworkConfig {
    NetworkConfig {
        name: "lan0".into(),
        kind: NetworkType::HostOnly,
        subnet: Some("10.77.0.0/24".parse().unwrap()),
        gateway: Some(ip("10.77.0.1")),
        nat: true,
        range: Some("10.77.0.100-10.77.0.200".parse().unwrap()),
        adapter: None,
        nameservers: vec![ip("1.1.1.1")],
        searchdomains: vec!["example.org".into()],
        created: 1_700_000_000,
    }
}

fn error() -> Error {
    Error::new(ErrorKind::Precondition, "container 101 is running")
        .with_cause(Cause::ContainerRunning { ctid: 101 })
}

#[test]
fn openapi_containers_and_their_settings() {
    round_trip(&info());
    let broken = ContainerInfo {
        status: CtStatus::Broken,
        uptime: None,
        init_pid: None,
        uid_base: None,
        description: None,
        bootorder: None,
        pending: vec![],
        reason: Some("config.toml: bad".into()),
        ..info()
    };
    round_trip(&broken);
    valid(&CreateOptions::default());
    valid(&CreateOptions {
        ctid: Some(CtId(102)),
        ostemplate: "debian12".into(),
        name: Some("db".into()),
        diskspace: Some(SoftHardSize {
            soft: Some(Size(9 << 30)),
            hard: Size(10 << 30),
        }),
        diskinodes: Some(SoftHardCount {
            soft: None,
            hard: 200_000,
        }),
        fstype: Some(DiskFs::Ext4),
        disktype: Some(DiskType::Expanding),
        init: InitMode::Template,
        ..Default::default()
    });
    let limits = Resources {
        ram: Some(Size(512 << 20)),
        swap: Some(Size(0)),
        cpuunits: 2000,
        cpulimit: Some(150),
        cpus: Some(2),
        cpumask: Some(CpuMask::parse("0-3,6").unwrap()),
        numproc: 0,
        ioprio: 7,
        iolimit: Some(Size(10 << 20)),
        iopslimit: Some(500),
    };
    round_trip(&limits);
    round_trip(&Resources::default());
    round_trip(&StartResult {
        info: info(),
        service_defaults_applied: vec!["sshd".into()],
        warnings: vec!["cron: not found".into()],
    });
    round_trip(&StopOptions::default());
    round_trip(&Traffic::default());
    valid(&ContainerStats::default());
    valid(&ContainerStats {
        ctid: CtId(101),
        status: Some(CtStatus::Suspended),
        cpu_percent: Some(12.5),
        cpuset: Some("0-1".into()),
        memory_limit: Some(1 << 30),
        warnings: vec!["near the process limit".into()],
        ..Default::default()
    });
    round_trip(&ProcInfo {
        ctid: 101,
        pid: 1,
        host_pid: 4242,
        ppid: 0,
        uid: 0,
        user: "root".into(),
        state: "S".into(),
        cpu: 0.5,
        rss: 1 << 20,
        start: 1_700_000_000,
        command: "init".into(),
    });
    round_trip(&WhichInfo {
        host_pid: 4242,
        ctid: 0,
        name: None,
        pid: 4242,
        command: "sshd".into(),
    });
    // Answers as the routes send them: arrays, and null.
    let list = serde_json::to_value(vec![info()]).unwrap();
    assert_eq!(
        answer_faults("get", "/containers", &list),
        Vec::<String>::new()
    );
    let t = "/containers/{ct}/traffic";
    assert_eq!(answer_faults("get", t, &Value::Null), Vec::<String>::new());
    let tr = serde_json::to_value(Traffic::default()).unwrap();
    assert_eq!(answer_faults("get", t, &tr), Vec::<String>::new());
    assert!(!answer_faults("get", t, &json!([])).is_empty());
}

#[test]
fn openapi_set_and_networks() {
    let change = NetChange {
        netif_add: Some("eth1".into()),
        network: Some("lan0".into()),
        mac: Some(MacAddr::derived("x")),
        ipadd: vec![AddrSpec::Auto, "10.77.0.9/24".parse().unwrap()],
        ipdel: vec!["all".into()],
        nameservers: Some(vec![ip("9.9.9.9")]),
        // Present as null: remove the gateway; the rate is absent: left alone.
        gateway: Some(None),
        forward_add: vec!["tcp:8080:80".parse().unwrap()],
        ..Default::default()
    };
    let req = SetRequest {
        options: SetOptions {
            name: Some("web".into()),
            ram: Some(Some(Size(1 << 30))),
            cpumask: Some(Some(CpuMask::parse("1").unwrap())),
            setmode: SetMode::Restart,
            ..Default::default()
        },
        net: change,
        renew_idmap: true,
    };
    round_trip(&req);
    round_trip(&SetRequest::default());
    let netconf = NetConfig {
        netifs: vec![NetIf {
            name: "eth0".into(),
            network: "lan0".into(),
            mac: MacAddr::derived("a"),
            addrs: vec!["10.77.0.5/24".parse().unwrap()],
            ipfilter: false,
        }],
        ipaddrs: vec![ip("10.9.0.1")],
        routed_ipfilter: false,
        gateway: Some(ip("10.77.0.1")),
        forwards: vec!["udp:53".parse().unwrap()],
        rate: Some("10M:5M".parse().unwrap()),
        ..Default::default()
    };
    round_trip(&SetResult {
        idmap: Some(IdMap {
            host_base: 200_000,
            size: 65536,
        }),
        net: Some(netconf),
        outcome: Some(SetOutcome {
            applied_live: true,
            notes: vec!["overcommitted".into()],
            ..Default::default()
        }),
    });
    round_trip(&SetResult::default());
    round_trip(&network());
    let bridged = NetworkConfig {
        kind: NetworkType::Bridged,
        subnet: None,
        gateway: None,
        nat: false,
        range: None,
        adapter: Some("eno1".into()),
        nameservers: vec![],
        searchdomains: vec![],
        ..network()
    };
    // Flattened: the network's own members beside the bridge and the containers.
    round_trip(&NetworkInfo {
        cfg: bridged,
        bridge: "brlan0".into(),
        containers: vec![101, 102],
    });
    round_trip(&Adapter {
        name: "eno1".into(),
        mac: Some("52:54:00:12:34:56".into()),
        up: true,
        kind: None,
        addrs: vec!["192.0.2.10/24".into()],
        network: None,
    });
}

#[test]
fn openapi_templates_services_and_the_node() {
    round_trip(&TemplateManifest {
        name: "busybox".into(),
        kind: TemplateKind::Os,
        source: "busybox".into(),
        created: 1_700_000_000,
        init: vec!["/sbin/init".into()],
        stop_signal: "SIGUSR2".into(),
        os: None,
        size: 1 << 20,
        hash: Some(format!("blake3:{}", "a".repeat(64))),
    });
    // Externally tagged: a unit variant is a string, the others an object of one member.
    for s in [
        TemplateSource::Busybox,
        TemplateSource::Tarball("/srv/rootfs.tar.gz".into()),
        TemplateSource::Debootstrap {
            suite: "bookworm".into(),
            mirror: None,
        },
    ] {
        round_trip(&s);
    }
    let svc = ServiceInfo {
        name: "sshd".into(),
        state: "running".into(),
        startup: "auto".into(),
        pid: Some(40),
    };
    round_trip(&ServiceList {
        driver: "berth".into(),
        services: vec![
            svc.clone(),
            ServiceInfo {
                pid: None,
                ..svc.clone()
            },
        ],
    });
    round_trip(&ServiceStatus {
        driver: "systemd".into(),
        info: svc,
        details: vec![("ActiveState".into(), "active".into())],
    });
    round_trip(&AddService::default());
    round_trip(&AddService {
        command: vec!["httpd".into(), "-f".into()],
        user: Some("www".into()),
        startup: Some(Startup::Manual),
        restart: Some(RestartPolicy::OnFailure),
        after: vec!["db".into()],
    });
    round_trip(&HostService {
        pid: 1,
        user: "root".into(),
        command: "sshd".into(),
        listens: vec!["tcp 0.0.0.0:22".into()],
        kind: "other".into(),
        note: "-".into(),
    });
    valid(&NodeInfo::default());
    valid(&NodeInfo {
        api_fingerprint: Some("ab".repeat(32)),
        disk_frozen: vec![CtId(101)],
        disk_overcommit: 1.5,
        ..Default::default()
    });
    round_trip(&NodeSettings {
        service_defaults: vec![
            ("sshd".into(), None),
            ("cron".into(), Some(Startup::Manual)),
        ],
        default_fstype: Some(DiskFs::Xfs),
        disk_overcommit: Some(2.0),
        disk_reserve: Some(None),
        backup_max_per_container: Some(None),
        backup_default_repo: Some("offsite".into()),
    });
    round_trip(&NodeSettings {
        backup_max_per_container: Some(Some(10)),
        ..Default::default()
    });
    round_trip(&NodeSettings::default());
    let schedule = berth_api::backup::Schedule {
        name: "nightly".into(),
        all: true,
        containers: vec![],
        at: vec!["02:00".into()],
        days: vec!["mon".into()],
        repo: None,
        mode: Default::default(),
        keep: berth_api::backup::Keep {
            daily: Some(7),
            ..Default::default()
        },
        prune: true,
        tags: vec![],
        parallel: 2,
        with_templates: true,
    };
    round_trip(&berth_api::backup::ScheduleInfo {
        schedule,
        next_run: Some(1_800_000_000),
        last_run: Some(berth_api::backup::ScheduleRun {
            schedule: "nightly".into(),
            started: 1,
            finished: 2,
            backed_up: vec![berth_api::backup::ScheduleItem {
                ctid: 101,
                repo: "local".into(),
                snapshot: "ab".repeat(32),
                forgotten: 1,
                warnings: vec![],
            }],
            failed: vec![berth_api::backup::ScheduleFailure {
                ctid: 102,
                error: "gone".into(),
            }],
        }),
    });
    for sample in berth_api::samples::builtin() {
        round_trip(&sample);
    }
    round_trip(&NodeConfigInfo {
        node_id: "n1".into(),
        version: 1,
        created: 1_700_000_000,
        idmap_start: 100_000,
        default_diskspace: Size(10 << 30),
        default_fstype: DiskFs::Ext4,
        service_defaults: [("sshd".to_string(), Startup::Disabled)].into(),
        disk_overcommit: 1.0,
        disk_reserve: None,
        backup_max_per_container: Some(10),
        backup_default_repo: Some("local".into()),
    });
    round_trip(&BootEntry {
        ctid: 101,
        bootorder: None,
        outcome: "failed".into(),
        error: Some(error()),
    });
    round_trip(&BootEntry {
        ctid: 102,
        bootorder: Some(1),
        outcome: "started".into(),
        error: None,
    });
}

#[test]
fn openapi_operations_events_users_and_errors() {
    let done = Operation {
        id: "0123456789abcdef01234567".into(),
        kind: "container.create".into(),
        object: "container/101".into(),
        user: "alice".into(),
        state: OperationState::Succeeded,
        progress: OperationProgress {
            phase: "unpacking".into(),
            done: 10,
            total: Some(10),
            files: Some(3),
        },
        created: 1_700_000_000,
        finished: Some(1_700_000_005),
        result: Some(serde_json::to_value(info()).unwrap()),
        error: None,
        cancellable: false,
    };
    round_trip(&done);
    round_trip(&Operation {
        state: OperationState::Failed,
        progress: OperationProgress::default(),
        finished: None,
        result: None,
        error: Some(error()),
        cancellable: true,
        ..done.clone()
    });
    let ev = Event {
        seq: 1,
        time_ms: 1_700_000_000_000,
        kind: "container".into(),
        action: "started".into(),
        object: "container/101".into(),
        user: "root".into(),
        details: json!({"reason": "boot"}),
    };
    round_trip(&ev);
    round_trip(&Event {
        details: Value::Null,
        ..ev
    });
    let owner = UserInfo {
        name: "bob".into(),
        role: Role::Owner,
        containers: vec![101],
        created: 1,
        max_containers: Some(3),
        store: None,
    };
    round_trip(&owner);
    round_trip(&UserInfo {
        name: "node1".into(),
        role: Role::Backup,
        containers: vec![],
        created: 1,
        max_containers: None,
        store: Some(berth_api::agent::StoreLimits {
            append_only: true,
            quota: Some(1 << 30),
        }),
    });
    round_trip(&berth_api::agent::StoreInfo {
        store: "node1".into(),
        limits: Default::default(),
        used: 12,
        initialised: true,
    });
    round_trip(&UserInfo {
        role: Role::Admin,
        containers: vec![],
        ..owner
    });
    round_trip(&UserAdd {
        name: "bob".into(),
        role: Role::Auditor,
        containers: vec![],
        password: None,
        max_containers: None,
        store: None,
    });
    let token = TokenInfo {
        id: "t1".into(),
        user: "bob".into(),
        name: "ci".into(),
        created: 1,
        expires: None,
    };
    round_trip(&token);
    round_trip(&NewToken {
        info: TokenInfo {
            expires: Some(2),
            ..token
        },
        secret: "s3cret".into(),
    });
    // Internally tagged: every cause with its `type`.
    let causes = [
        Cause::InvalidField {
            field: "ram".into(),
            value: "1M".into(),
            why: "the minimum is 16M".into(),
        },
        Cause::NodeNotInitialised {
            root: "/var/lib/berth".into(),
        },
        Cause::ContainerRunning { ctid: 101 },
        Cause::ContainerSuspended { ctid: 101 },
        Cause::NeedsRestart {
            ctid: 101,
            reasons: vec!["cpus".into()],
        },
        Cause::TemplateNotFound { name: "x".into() },
        Cause::NetworkNotFound { name: "x".into() },
        Cause::AdapterNotFound { name: "x".into() },
        Cause::AmbiguousName {
            name: "web".into(),
            ctids: vec![101, 102],
        },
        Cause::TemplateInit { ctid: 101 },
        Cause::Conflict {
            ctid: 101,
            other: 102,
            field: "mac".into(),
            value: "02:00:00:00:00:01".into(),
            adapter: Some("eth0".into()),
            network: Some("lan".into()),
        },
        Cause::Conflict {
            ctid: 101,
            other: 102,
            field: "name".into(),
            value: "web".into(),
            adapter: None,
            network: None,
        },
        Cause::IdRangeTaken { ctid: 101 },
        Cause::DiskOvercommit { ratio: 1.5 },
        Cause::NodeSpace,
        Cause::NoAddress { ctid: 101 },
        Cause::InvalidFile {
            object: "container".into(),
            name: "101".into(),
        },
    ];
    for c in causes {
        round_trip(&ErrorBody {
            error: Error::invalid("x").with_cause(c),
        });
    }
    round_trip(&ErrorBody {
        error: Error::internal("I/O error"),
    });
    round_trip(&ExecRequest {
        command: vec!["ls".into(), "-l".into()],
        opts: ExecOptions {
            env: vec!["A=1".into()],
            tty: Some(true),
            cwd: None,
        },
    });
    round_trip(&TtySize { rows: 24, cols: 80 });
    round_trip(&berth_api::ConsoleEnd::Detached);
    round_trip(&berth_api::ConsoleLog {
        follow: true,
        timestamps: false,
    });
}

#[test]
fn openapi_berthd_bodies_and_answers() {
    use crate::authn::{Login, LoginAnswer};
    use crate::routes::admin::TokenCreate;
    use crate::routes::containers::{InitAnswer, Reclaimed, Signal};
    use crate::routes::node::TemplateCreate;
    use crate::routes::services::{SetStartup, StartupAnswer};
    valid(&Reclaimed { reclaimed: 4096 });
    valid(&InitAnswer {
        init: InitMode::Berth,
    });
    valid(&StartupAnswer {
        startup: Startup::Auto,
    });
    valid(&LoginAnswer { csrf: "c".into() });
    accepted::<TemplateCreate>(json!({"name": "busybox", "source": "Busybox"}));
    accepted::<TemplateCreate>(json!({"name": "t", "source": {"Tarball": "/srv/t.tar"}}));
    accepted::<TemplateCreate>(json!({
        "name": "deb", "source": {"Debootstrap": {"suite": "bookworm", "mirror": null}}
    }));
    accepted::<TokenCreate>(json!({"name": "ci"}));
    accepted::<TokenCreate>(json!({"name": "ci", "user": "bob", "expires_s": 3600}));
    accepted::<Login>(json!({"user": "alice", "password": "pw"}));
    accepted::<Signal>(json!({"signal": "TERM"}));
    accepted::<SetStartup>(json!({"startup": "disabled"}));
    // berth-api's bodies as a client writes them by hand.
    accepted::<CreateOptions>(
        json!({"ostemplate": "busybox", "privileged": false, "resources": {}}),
    );
    accepted::<SetRequest>(json!({}));
    accepted::<SetRequest>(json!({"net": {"gateway": null, "ipadd": ["auto"]}}));
    accepted::<SetRequest>(json!({"options": {"ram": 1073741824, "setmode": "live"}}));
    accepted::<NodeSettings>(json!({"service_defaults": [["sshd", null]], "disk_reserve": null}));
    accepted::<StopOptions>(json!({"timeout": 10, "kill": true}));
    accepted::<UserAdd>(json!({"name": "bob", "role": "owner", "containers": [101]}));
    accepted::<NetworkConfig>(json!({
        "name": "lan0", "type": "host-only", "subnet": "10.77.0.0/24", "created": 0
    }));
    accepted::<AddService>(json!({"command": ["httpd"], "after": []}));
    accepted::<ExecRequest>(json!({"command": ["ls"], "tty": false, "env": ["A=1"]}));
}

#[test]
fn openapi_users_groups_and_files_inside() {
    use berth_api::inside::{
        CtGroup, CtGroupAdd, CtPassword, CtUser, CtUserAdd, FileEntry, FileKind, PasswordState,
    };
    round_trip(&CtUser {
        name: "web".into(),
        uid: 1000,
        gid: 1000,
        group: Some("web".into()),
        groups: vec!["sudo".into()],
        gecos: String::new(),
        home: "/home/web".into(),
        shell: "/bin/sh".into(),
        password: PasswordState::Set,
    });
    round_trip(&CtUser {
        name: "x".into(),
        uid: 5,
        gid: 5,
        group: None,
        groups: vec![],
        gecos: "X".into(),
        home: "/".into(),
        shell: "/bin/false".into(),
        password: PasswordState::Locked,
    });
    round_trip(&CtGroup {
        name: "sudo".into(),
        gid: 27,
        members: vec!["web".into()],
    });
    round_trip(&FileEntry {
        path: "/etc/localtime".into(),
        kind: FileKind::Symlink,
        size: 33,
        mode: 0o777,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        target: Some("/usr/share/zoneinfo/UTC".into()),
    });
    accepted::<CtUserAdd>(json!({"name": "web"}));
    accepted::<CtUserAdd>(json!({
        "name": "web", "uid": 1001, "gid": 27, "groups": ["sudo"], "shell": "/bin/bash",
        "home": "/srv/web", "gecos": "Web", "no_create_home": true, "password": "pw"
    }));
    accepted::<CtPassword>(json!({"password": "pw"}));
    accepted::<CtPassword>(json!({"password": "pw", "create": true}));
    accepted::<CtGroupAdd>(json!({"name": "www", "gid": 33}));
    refused("CtPassword", json!({"password": "pw", "hash": "x"}));
    refused(
        "FileEntry",
        json!({"path": "/x", "kind": "door", "size": 0, "mode": 0, "uid": 0, "gid": 0, "mtime": 0}),
    );
    let op = &doc()["paths"]["/containers/{ct}/files/content"]["put"];
    assert!(
        op["requestBody"]["content"]["application/octet-stream"].is_object(),
        "{op}"
    );
}

/// The validator finds what is wrong, against the document's own schemas.
#[test]
fn openapi_validator_refuses_what_serde_would_not_write() {
    let good = serde_json::to_value(info()).unwrap();
    let mut extra = good.clone();
    extra["colour"] = json!("blue");
    refused("ContainerInfo", extra);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("hostname");
    refused("ContainerInfo", missing);
    let mut status = good;
    status["status"] = json!("zombie");
    refused("ContainerInfo", status);
    // A tagged enum: a variant without its members, an unknown tag.
    refused("Cause", json!({"type": "container_running"}));
    refused("Cause", json!({"type": "bogus", "ctid": 1}));
    // Flattened: the inner struct's members are known, others are not.
    let mut ni = serde_json::to_value(NetworkInfo {
        cfg: network(),
        bridge: "br0".into(),
        containers: vec![],
    })
    .unwrap();
    assert!(faults("NetworkInfo", &ni).is_empty());
    ni["colour"] = json!(1);
    refused("NetworkInfo", ni);
    refused("ExecRequest", json!({"command": [], "bogus": 1}));
    // Patterns, formats, tuples, integers, nullability.
    refused("MacAddr", json!("zz:00:00:00:00:01"));
    refused("PortForward", json!("sctp:1:2"));
    refused("Ipv4Addr", json!("300.1.1.1"));
    refused("NodeSettings", json!({"service_defaults": [["sshd"]]}));
    refused(
        "NodeSettings",
        json!({"service_defaults": [["sshd", "often"]]}),
    );
    refused("Traffic", Value::Null);
    refused("TtySize", json!({"rows": -1, "cols": 80}));
    refused("TtySize", json!({"rows": 1.5, "cols": 80}));
    refused(
        "Error",
        json!({"kind": "invalid", "message": "x", "hint": "y"}),
    );
    // A keyword the validator does not know is a fault, not a pass.
    assert!(!validate(doc(), &json!({"minLength": 1}), &json!("x")).is_empty());
}

#[test]
fn openapi_exec_websocket_frames() {
    let ws = &doc()["paths"]["/containers/{ct}/exec"]["get"]["x-websocket"];
    let faults = |frame: &str, v: Value| validate(doc(), &ws[frame], &v);
    let first = ExecRequest {
        command: vec![],
        opts: ExecOptions::default(),
    };
    let first = serde_json::to_value(first).unwrap();
    assert_eq!(faults("client_first", first), Vec::<String>::new());
    let resize = json!({"resize": TtySize { rows: 24, cols: 80 }});
    assert_eq!(faults("client_resize", resize), Vec::<String>::new());
    // The last frame as the exec route writes it.
    assert_eq!(
        faults("server_last", json!({ "exit": 137 })),
        Vec::<String>::new()
    );
    let err = json!({ "error": error() });
    assert_eq!(faults("server_last", err), Vec::<String>::new());
    assert!(!faults("server_last", json!({"exit": 0, "error": error()})).is_empty());
    assert!(!faults("client_resize", json!({"resize": {"rows": 24}})).is_empty());
}
