//! Integration tests as root: `ps`, `top`, `kill`, `which` and `node services` on real
//! containers, read from the kernel.

mod common;
use common::*;
use serde_json::Value;

fn procs(n: &Node, ct: &str) -> Vec<Value> {
    n.json(&["ps", ct, "--format", "json"])
        .as_array()
        .cloned()
        .unwrap()
}

fn find<'a>(ps: &'a [Value], needle: &str) -> Option<&'a Value> {
    ps.iter()
        .find(|p| p["command"].as_str().unwrap_or("").contains(needle))
}

/// NSpid of a host process: (host PID, PID in its innermost namespace).
fn nspid(host_pid: i64) -> Vec<i64> {
    let s = std::fs::read_to_string(format!("/proc/{host_pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

#[test]
fn ps_which_kill_across_containers() {
    let n = Node::new("procs");
    for ct in ["151", "152"] {
        n.ok(&[
            "create",
            ct,
            "--ostemplate",
            "busybox",
            "--diskspace",
            "512M",
        ]);
        n.ok(&["start", ct]);
    }
    // A background process in each, one of them as a non-root user of the container.
    n.exec(
        "151",
        &["sh", "-c", "sleep 1001 </dev/null >/dev/null 2>&1 &"],
    );
    n.exec(
        "152",
        &["sh", "-c", "sleep 1002 </dev/null >/dev/null 2>&1 &"],
    );
    n.ok(&[
        "service", "151", "add", "lowly", "--user", "daemon", "--", "sleep", "1003",
    ]);
    n.ok(&["service", "151", "start", "lowly"]);
    // No `ps` inside: Berth reads the kernel, not the container's tools.
    n.exec("151", &["rm", "-f", "/bin/ps"]);

    let init151 = n.status("151")["init_pid"].as_i64().unwrap();
    let init152 = n.status("152")["init_pid"].as_i64().unwrap();
    let ps = procs(&n, "151");
    let init = ps.iter().find(|p| p["pid"] == 1).expect("PID 1 listed");
    assert_eq!(init["host_pid"].as_i64(), Some(init151));
    assert_eq!(init["user"], "root");
    let s1 = find(&ps, "sleep 1001").expect("sleep 1001 in ps 151");
    let host = s1["host_pid"].as_i64().unwrap();
    let inside = s1["pid"].as_i64().unwrap();
    assert_ne!(host, inside);
    assert_eq!(*nspid(host).last().unwrap(), inside);
    assert_eq!(s1["ppid"], 1, "orphan reparented to the container's init");
    let lowly = find(&ps, "sleep 1003").expect("service process in ps");
    assert_eq!(
        (lowly["user"].as_str(), lowly["uid"].as_i64()),
        (Some("daemon"), Some(1))
    );
    // Nothing of the other container, nor of the host.
    assert!(find(&ps, "sleep 1002").is_none());
    assert!(ps.iter().all(|p| p["host_pid"].as_i64() != Some(init152)));
    assert!(ps.iter().all(|p| p["ctid"] == 151));
    for p in &ps {
        let h = p["host_pid"].as_i64().unwrap();
        if let Ok(st) = std::fs::read_to_string(format!("/proc/{h}/status")) {
            assert!(st.contains("NSpid:"), "{st}");
            assert_eq!(*nspid(h).last().unwrap(), p["pid"].as_i64().unwrap());
        }
    }
    // Tables: plain and as a tree.
    let t = n.ok(&["ps", "151", "--tree"]);
    assert!(
        t.contains("HOST-PID") && t.contains("\\_ sleep 1001"),
        "{t}"
    );

    // which: a container's process, and a host process (CT 0).
    let w = n.json(&["which", &host.to_string(), "--format", "json"]);
    assert_eq!(
        (w["ctid"].as_i64(), w["pid"].as_i64()),
        (Some(151), Some(inside))
    );
    let me = std::process::id().to_string();
    let w = n.json(&["which", &me, "--format", "json"]);
    assert_eq!(w["ctid"], 0);
    assert!(n.ok(&["which", &init152.to_string()]).contains("152"));
    n.fails(&["which", "2147483000"], "no process with PID 2147483000");

    // kill refuses PIDs that are not in that container, and reaches only its own.
    let ps152 = procs(&n, "152");
    let s2 = find(&ps152, "sleep 1002").unwrap();
    let host2 = s2["host_pid"].as_i64().unwrap();
    let taken: Vec<i64> = ps.iter().map(|p| p["pid"].as_i64().unwrap()).collect();
    let foreign = (2..500).find(|p| !taken.contains(p)).unwrap();
    n.fails(
        &["kill", "151", &foreign.to_string()],
        &format!("no process with PID {foreign} in container 151"),
    );
    n.fails(
        &["kill", "151", &inside.to_string(), "--signal", "NOPE"],
        "unknown signal",
    );
    n.ok(&["kill", "151", &inside.to_string(), "--signal", "KILL"]);
    // The orphan was reaped by the container's init (Berth's supervisor): no zombie left.
    assert!(wait_until(5, || procs(&n, "151").iter().all(|p| p
        ["host_pid"]
        .as_i64()
        != Some(host)
        && p["state"] != "Z")));
    n.exec(
        "151",
        &["sh", "-c", "sleep 0.2 </dev/null >/dev/null 2>&1 &"],
    );
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(wait_until(5, || procs(&n, "151")
        .iter()
        .all(|p| p["state"] != "Z")));
    assert!(
        std::path::Path::new(&format!("/proc/{host2}")).exists(),
        "152's process untouched"
    );
    // A default TERM by inside PID, in the other container.
    n.ok(&["kill", "152", &s2["pid"].as_i64().unwrap().to_string()]);
    assert!(wait_until(5, || find(&procs(&n, "152"), "sleep 1002").is_none()));

    // top: the node-wide view has containers' processes and the host's (CT 0).
    let top = n.json(&["top", "--once", "--format", "json"]);
    let top = top.as_array().unwrap();
    assert!(top.iter().any(|p| p["ctid"] == 151 && p["pid"] == 1));
    assert!(top.iter().any(|p| p["ctid"] == 0));
    let t = n.ok(&["top", "--once", "--sort", "mem"]);
    assert!(t.contains("CTID") && t.contains("sorted by memory"), "{t}");

    // Stopped containers: clear errors.
    n.ok(&["stop", "152", "--timeout", "20"]);
    n.fails(&["ps", "152"], "container 152 is not running");
    n.fails(&["kill", "152", "1"], "container 152 is not running");
    n.fails(&["ps", "999"], "not found");
}

#[test]
fn node_services_flags_what_is_not_berth() {
    let n = Node::new("hostsvc");
    n.ok(&[
        "create",
        "155",
        "--ostemplate",
        "busybox",
        "--diskspace",
        "512M",
    ]);
    n.ok(&["start", "155"]);
    // A host daemon listening on a socket, not part of Berth.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let list = n.json(&["node", "services", "--format", "json"]);
    let list = list.as_array().unwrap();
    let me = std::process::id() as i64;
    let mine = list
        .iter()
        .find(|s| s["pid"].as_i64() == Some(me))
        .expect("listener listed");
    assert_eq!(mine["kind"], "other");
    assert!(mine["listens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str() == Some(&format!("tcp 127.0.0.1:{port}"))));
    assert!(mine["note"]
        .as_str()
        .unwrap()
        .contains("safer inside a container"));
    // The container's processes are not the host's.
    let init = n.status("155")["init_pid"].as_i64().unwrap();
    assert!(list.iter().all(|s| s["pid"].as_i64() != Some(init)));
    // Berth's monitors, when listed, are marked as Berth's.
    for s in list {
        if s["command"].as_str().unwrap().contains("__monitor") {
            assert_eq!(s["kind"], "berth", "{s}");
        }
    }
    // --strict fails while anything else runs.
    let o = n.run(&["node", "services", "--strict"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("would be safer inside a container"));
    drop(l);
}
