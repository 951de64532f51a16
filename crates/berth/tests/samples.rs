//! Configuration samples: the shipped ones, `create --config` (flags over the sample), one
//! saved from a container, a sample file, and refusals that change nothing.

mod common;
use common::*;

#[test]
fn create_from_samples_and_files() {
    let n = Node::new("samples");
    let list = n.ok(&["config-sample", "list"]);
    for s in ["basic", "light", "unlimited"] {
        assert!(list.contains(s), "{list}");
    }
    // the sample's limits, the flag over one of them
    n.ok(&[
        "create",
        "3101",
        "--ostemplate",
        "busybox",
        "--config",
        "light",
        "--ram",
        "300M",
    ]);
    let st = n.status("3101");
    assert_eq!(st["resources"]["ram"], 300 << 20, "{st}");
    assert_eq!(st["resources"]["cpuunits"], 500, "{st}");
    assert_eq!(st["resources"]["numproc"], 128, "{st}");
    assert_eq!(st["diskspace"], 2u64 << 30, "{st}");
    // saved from a container, then used
    n.ok(&[
        "config-sample",
        "create",
        "mine",
        "--from",
        "3101",
        "--description",
        "web",
    ]);
    let shown = n.json(&["config-sample", "show", "mine", "--format", "json"]);
    assert_eq!(shown["limits"]["ram"], 300 << 20, "{shown}");
    assert_eq!(shown["builtin"], false);
    n.ok(&[
        "create",
        "3102",
        "--ostemplate",
        "busybox",
        "--config",
        "mine",
    ]);
    assert_eq!(n.status("3102")["resources"]["ram"], 300 << 20);
    // a file written by hand
    let f = n.root.join("sample.toml");
    std::fs::write(&f, "ram = \"1G\"\nnumproc = 50\ndiskspace = \"3G\"\n").unwrap();
    n.ok(&[
        "create",
        "3103",
        "--ostemplate",
        "busybox",
        "--config",
        f.to_str().unwrap(),
    ]);
    let st = n.status("3103");
    assert_eq!(st["resources"]["ram"], 1u64 << 30, "{st}");
    assert_eq!(st["diskspace"], 3u64 << 30, "{st}");
    // refusals: one line, nothing made
    std::fs::write(&f, "ram = \"1G\"\nrma = 50\n").unwrap();
    let e = n.fails(
        &[
            "create",
            "3104",
            "--ostemplate",
            "busybox",
            "--config",
            f.to_str().unwrap(),
        ],
        "rma",
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    n.fails(
        &[
            "create",
            "3104",
            "--ostemplate",
            "busybox",
            "--config",
            "nosuch",
        ],
        "not found",
    );
    assert!(!n.root.join("containers/3104").exists());
    n.fails(&["config-sample", "remove", "basic"], "shipped with Berth");
    n.fails(
        &["config-sample", "create", "basic", "--from", "3101"],
        "shipped with Berth",
    );
    n.fails(
        &["config-sample", "create", "../x", "--from", "3101"],
        "invalid name",
    );
    // a hand-broken saved sample is reported, not believed, and others still list
    std::fs::write(n.root.join("samples/broken.toml"), "name = \"other\"\n").unwrap();
    n.fails(&["config-sample", "show", "broken"], "it says name");
    assert!(n.ok(&["config-sample", "list"]).contains("mine"));
    n.ok(&["config-sample", "remove", "mine"]);
    n.fails(&["config-sample", "show", "mine"], "not found");
    for c in ["3101", "3102", "3103"] {
        n.ok(&["destroy", c]);
    }
}
