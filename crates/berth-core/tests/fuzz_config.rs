//! Fuzzing of the config parsers (see docs/fuzzing.md): `fsutil::read_toml` of
//! `config.toml`, `node.toml`, `template.toml` and `networks/*.toml`, and the parsers of the
//! values users type (sizes, IDs, names, CIDRs, MACs, forwards, rates, CPU masks, counts).
//!
//! Properties: arbitrary bytes and mutated valid configs (fields replaced by random values,
//! wrong types, huge numbers, control characters, path traversal; fields removed; text
//! edited) never panic; what `read_toml` accepts either passes the validators or is refused
//! by them, and every error is one line; a generated valid config round-trips (serialise,
//! parse) to itself, and so does every accepted config; every value a parser accepts
//! prints back to a string that parses to the same value, fits a TOML integer, and costs
//! memory bounded by its input; names accepted never leave their directory.
//!
//! Bounded by default; `BERTH_FUZZ_CASES=N` runs N cases per property, `BERTH_FUZZ_SEED=S`
//! changes the (otherwise fixed) seed.

use berth_core::config::{DiskConfig, IdMap, NodeConfig, TemplateKind, TemplateManifest};
use berth_core::net::{
    AddrRange, AddrSpec, Ipv4Cidr, MacAddr, NetConfig, NetIf, NetworkConfig, NetworkType,
    PortForward, Proto, Rate,
};
use berth_core::resources::{CpuMask, NodeCapacity, Resources};
use berth_core::services::{InitMode, RestartPolicy, ServiceDef, ServiceSettings, Startup};
use berth_core::validate::{validate_hostname, validate_name};
use berth_core::{fsutil, ContainerConfig, CtId, CtRef, DiskFs, NodeRoot, Size};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde::{de::DeserializeOwned, Serialize};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Debug;
use std::net::Ipv4Addr;
use std::path::Path;

const DEFAULT_CASES: u32 = 128;

fn config() -> Config {
    let cases = std::env::var("BERTH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed = std::env::var("BERTH_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6265_7274_6821);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 1024,
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Peak heap use of the current thread, to bound what a parser allocates for its input.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + delta;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        account(l.size() as isize);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        account(-(l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        account(n as isize - l.size() as isize);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Runs `f` and returns its result with the peak of extra heap it used on this thread.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(|p| p.get()) - base;
    (r, peak.max(0) as usize)
}

// ---------------------------------------------------------------------------------------
// Checks shared by the properties

fn one_line(e: &impl std::fmt::Display) -> String {
    let s = e.to_string();
    assert!(!s.is_empty(), "empty error");
    assert!(
        !s.contains(['\n', '\r']),
        "error of more than one line: {s:?}"
    );
    s
}

/// What Berth checks in a loaded container config before using it (the validators of
/// each field: names, hostname, limits, services, adapters, DNS). Must never panic.
fn validate_container(c: &ContainerConfig) -> Result<(), berth_core::CoreError> {
    CtId::parse(&c.ctid.to_string())?;
    if let Some(n) = &c.name {
        validate_name(n)?;
    }
    if let Some(h) = &c.hostname {
        validate_hostname(h)?;
    }
    validate_name(&c.ostemplate)?;
    for t in &c.app_templates {
        validate_name(t)?;
    }
    c.resources.validate(&NodeCapacity {
        cpus: 4,
        memory: 8 << 30,
    })?;
    c.procs.validate()?;
    for n in &c.net.netifs {
        berth_core::net::validate_ifname(&n.name)?;
        validate_name(&n.network)?;
        for a in &n.addrs {
            berth_core::net::check_unicast(a.addr, &a.to_string())?;
        }
    }
    for d in &c.net.searchdomains {
        validate_hostname(d)?;
    }
    let _ = c.effective_hostname();
    let _ = c.layers();
    let _ = c.resources.effective_cpus(4, c.ctid.0);
    let _ = c.net.all_addrs();
    let _ = c.net.forward_target();
    Ok(())
}

fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
    let text = toml::to_string_pretty(v).expect("a parsed or valid config serialises");
    let back: T = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, v, "round trip changed the config:\n{text}");
}

/// `read_toml` of `bytes` as a `T`: no panic, one-line errors naming the file, and what it
/// accepts round-trips.
fn read_as<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    dir: &Path,
    bytes: &[u8],
) -> Option<T> {
    let p = dir.join("config.toml");
    std::fs::write(&p, bytes).unwrap();
    match fsutil::read_toml::<T>(&p) {
        Ok(v) => {
            roundtrip(&v);
            Some(v)
        }
        Err(e) => {
            let s = one_line(&e);
            assert!(s.contains("config.toml"), "{s}");
            None
        }
    }
}

fn read_all_kinds(bytes: &[u8]) {
    let d = tempfile::tempdir().unwrap();
    if let Some(c) = read_as::<ContainerConfig>(d.path(), bytes) {
        if let Err(e) = validate_container(&c) {
            one_line(&e);
        }
    }
    if let Some(n) = read_as::<NetworkConfig>(d.path(), bytes) {
        if let Err(e) = n.validate() {
            one_line(&e);
        }
        let _ = n.pool();
    }
    let _ = read_as::<NodeConfig>(d.path(), bytes);
    let _ = read_as::<TemplateManifest>(d.path(), bytes);
}

// ---------------------------------------------------------------------------------------
// Valid configs

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,20}(\\.[a-z0-9]{1,5})?"
}

fn hostname() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,10}(-[a-z0-9]{1,5})?(\\.[a-z0-9]{1,10}){0,3}"
}

/// Any text, control characters, quotes and non-ASCII included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        any::<String>(),
        prop::sample::select(HOSTILE).prop_map(String::from),
    ]
}

const HOSTILE: &[&str] = &[
    "",
    "../../etc/passwd",
    "/etc/shadow",
    "..",
    ".",
    "a/../../b",
    "a\0b",
    "line\nbreak",
    "tab\tcr\r",
    "\u{1b}[31mred",
    "\u{202e}rtl",
    "é",
    "ǵ",
    "\"quoted\"",
    "'single'",
    "\\backslash",
    "[table]",
    "key = 1",
    "''' triple",
    "\"\"\" triple",
    "0",
    "-1",
    "9223372036854775808",
    "18446744073709551616",
    "1e309",
    "nan",
    "inf",
];

fn small_u64() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..100_000, 0..=i64::MAX as u64]
}

fn size() -> impl Strategy<Value = Size> {
    (1..Size::MAX_BYTES).prop_map(Size)
}

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn cidr() -> impl Strategy<Value = Ipv4Cidr> {
    (ip(), 0u8..=32).prop_map(|(a, p)| Ipv4Cidr::new(a, p))
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>()
        .prop_filter("unicast, non-zero", |b| b[0] & 1 == 0 && *b != [0; 6])
        .prop_map(MacAddr)
}

fn forward() -> impl Strategy<Value = PortForward> {
    (any::<bool>(), 1u16.., 1u16..).prop_map(|(t, h, c)| PortForward {
        proto: if t { Proto::Tcp } else { Proto::Udp },
        host_port: h,
        ct_port: c,
    })
}

fn rate() -> impl Strategy<Value = Rate> {
    (8u64..=100_000_000, 8u64..=100_000_000).prop_map(|(i, o)| Rate {
        in_kbit: i,
        out_kbit: o,
    })
}

fn cpumask() -> impl Strategy<Value = CpuMask> {
    prop::collection::vec(0u32..9999, 1..20).prop_map(CpuMask::from_cpus)
}

fn resources() -> impl Strategy<Value = Resources> {
    (
        (
            prop::option::of(size()),
            prop::option::of(size()),
            any::<u32>(),
            prop::option::of(any::<u32>()),
            prop::option::of(any::<u32>()),
        ),
        (
            prop::option::of(cpumask()),
            small_u64(),
            any::<u8>(),
            prop::option::of(size()),
            prop::option::of(small_u64()),
        ),
    )
        .prop_map(
            |((ram, swap, cpuunits, cpulimit, cpus), (cpumask, numproc, ioprio, iolimit, iops))| {
                Resources {
                    ram,
                    swap,
                    cpuunits,
                    cpulimit,
                    cpus,
                    cpumask,
                    numproc,
                    ioprio,
                    iolimit,
                    iopslimit: iops,
                }
            },
        )
}

fn startup() -> impl Strategy<Value = Startup> {
    prop_oneof![
        Just(Startup::Auto),
        Just(Startup::Manual),
        Just(Startup::Disabled)
    ]
}

fn services() -> impl Strategy<Value = ServiceSettings> {
    let def = (
        prop::collection::vec(text(), 0..4),
        prop::option::of(text()),
        startup(),
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::No)
        ],
        prop::collection::vec(name(), 0..3),
    )
        .prop_map(|(command, user, startup, restart, after)| ServiceDef {
            command,
            user,
            startup,
            restart,
            after,
        });
    (
        prop_oneof![
            Just(InitMode::Auto),
            Just(InitMode::Berth),
            Just(InitMode::Template)
        ],
        prop::collection::btree_map(text(), def, 0..4),
        prop::collection::btree_map(text(), startup(), 0..3),
    )
        .prop_map(|(init, services, pending)| ServiceSettings {
            init,
            services,
            pending_service_defaults: pending,
        })
}

fn net() -> impl Strategy<Value = NetConfig> {
    let netif = (
        text(),
        text(),
        mac(),
        prop::collection::vec(cidr(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, network, mac, addrs, ipfilter)| NetIf {
            name,
            network,
            mac,
            addrs,
            ipfilter,
        });
    (
        prop::collection::vec(netif, 0..3),
        prop::collection::vec(ip(), 0..3),
        any::<bool>(),
        prop::collection::vec(ip(), 0..3),
        prop::collection::vec(text(), 0..3),
        prop::option::of(ip()),
        prop::collection::vec(forward(), 0..3),
        prop::option::of(rate()),
    )
        .prop_map(
            |(
                netifs,
                ipaddrs,
                routed_ipfilter,
                nameservers,
                searchdomains,
                gateway,
                forwards,
                rate,
            )| {
                NetConfig {
                    netifs,
                    ipaddrs,
                    routed_ipfilter,
                    nameservers,
                    searchdomains,
                    gateway,
                    forwards,
                    rate,
                }
            },
        )
}

fn container() -> impl Strategy<Value = ContainerConfig> {
    let disk = (
        size(),
        any::<(bool, bool)>(),
        prop::option::of(size()),
        prop::option::of(small_u64()),
        prop::option::of(small_u64()),
    )
        .prop_map(
            |(size, (xfs, fixed), soft, inodes, inodes_soft)| DiskConfig {
                size,
                fstype: if xfs { DiskFs::Xfs } else { DiskFs::Ext4 },
                disktype: if fixed {
                    berth_core::DiskType::Fixed
                } else {
                    berth_core::DiskType::Expanding
                },
                soft,
                inodes,
                inodes_soft,
            },
        );
    (
        (
            1u32..=i32::MAX as u32,
            prop::option::of(prop_oneof![name(), text()]),
            prop::option::of(prop_oneof![hostname(), text()]),
            prop::option::of(text()),
            prop_oneof![name(), text()],
            prop::collection::vec(prop_oneof![name(), text()], 0..3),
            any::<bool>(),
        ),
        (
            prop::option::of((any::<u32>(), any::<u32>()).prop_map(|(b, s)| IdMap {
                host_base: b,
                size: s,
            })),
            disk,
            resources(),
            any::<bool>(),
            prop::option::of(any::<u32>()),
            small_u64(),
            net(),
            services(),
        ),
    )
        .prop_map(
            |(
                (ctid, name, hostname, description, ostemplate, app_templates, privileged),
                (idmap, disk, resources, onboot, bootorder, created, net, procs),
            )| ContainerConfig {
                ctid: CtId(ctid),
                name,
                hostname,
                description,
                ostemplate,
                app_templates,
                privileged,
                idmap,
                disk,
                resources,
                onboot,
                bootorder,
                created,
                net,
                procs,
                scripts: Default::default(),
                devices: vec![],
                capabilities: Default::default(),
            },
        )
}

fn node() -> impl Strategy<Value = NodeConfig> {
    (
        text(),
        any::<u32>(),
        small_u64(),
        any::<u32>(),
        size(),
        any::<bool>(),
        prop::collection::btree_map(text(), startup(), 0..3),
    )
        .prop_map(|(node_id, version, created, idmap_start, d, xfs, sd)| {
            let mut n = NodeConfig::new(node_id, created);
            n.version = version;
            n.idmap_start = idmap_start;
            n.default_diskspace = d;
            n.default_fstype = if xfs { DiskFs::Xfs } else { DiskFs::Ext4 };
            n.service_defaults = sd;
            n
        })
}

fn manifest() -> impl Strategy<Value = TemplateManifest> {
    (
        text(),
        any::<bool>(),
        text(),
        small_u64(),
        prop::collection::vec(text(), 0..3),
        text(),
        prop::option::of(text()),
        small_u64(),
    )
        .prop_map(
            |(name, app, source, created, init, stop_signal, os, size)| TemplateManifest {
                name,
                kind: if app {
                    TemplateKind::App
                } else {
                    TemplateKind::Os
                },
                source,
                created,
                init,
                stop_signal,
                os,
                hash: None,
                size,
            },
        )
}

fn network() -> impl Strategy<Value = NetworkConfig> {
    (
        text(),
        any::<bool>(),
        prop::option::of(cidr()),
        prop::option::of(ip()),
        any::<bool>(),
        prop::option::of((ip(), ip()).prop_map(|(a, b)| AddrRange {
            start: a.min(b),
            end: a.max(b),
        })),
        prop::option::of(text()),
        prop::collection::vec(ip(), 0..3),
        prop::collection::vec(text(), 0..3),
        small_u64(),
    )
        .prop_map(
            |(name, bridged, subnet, gateway, nat, range, adapter, ns, sd, created)| {
                NetworkConfig {
                    name,
                    kind: if bridged {
                        NetworkType::Bridged
                    } else {
                        NetworkType::HostOnly
                    },
                    subnet,
                    gateway,
                    nat,
                    range,
                    adapter,
                    nameservers: ns,
                    searchdomains: sd,
                    created,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------
// Mutations of valid configs

fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        text().prop_map(toml::Value::String),
        prop_oneof![
            Just(i64::MAX),
            Just(i64::MIN),
            Just(-1i64),
            Just(0),
            Just(1 << 32),
            Just(1 << 31),
            Just((1 << 31) - 1),
            Just(65536),
            any::<i64>(),
        ]
        .prop_map(toml::Value::Integer),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(1e308),
            any::<f64>()
        ]
        .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, toml::Value),
    Remove(usize),
    Insert(usize, String, toml::Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), toml_value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => (any::<usize>(), text(), toml_value()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
    ]
}

/// Every path (keys and array indices) in a value.
fn paths(v: &toml::Value, here: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        toml::Value::Table(t) => {
            for (k, c) in t {
                here.push(k.clone());
                out.push(here.clone());
                paths(c, here, out);
                here.pop();
            }
        }
        toml::Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(format!("#{i}"));
                out.push(here.clone());
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut toml::Value, path: &[String]) -> Option<&'a mut toml::Value> {
    let mut cur = v;
    for p in path {
        cur = match cur {
            toml::Value::Table(t) => t.get_mut(p)?,
            toml::Value::Array(a) => a.get_mut(p.strip_prefix('#')?.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn mutate(mut v: toml::Value, muts: &[Mutation]) -> toml::Value {
    for m in muts {
        let mut all = vec![];
        paths(&v, &mut vec![], &mut all);
        if all.is_empty() {
            continue;
        }
        let pick = |i: &usize| all[i % all.len()].clone();
        match m {
            Mutation::Replace(i, new) => {
                if let Some(slot) = at(&mut v, &pick(i)) {
                    *slot = new.clone();
                }
            }
            Mutation::Remove(i) => {
                let p = pick(i);
                let (last, parent) = p.split_last().unwrap();
                match at(&mut v, parent) {
                    Some(toml::Value::Table(t)) => {
                        t.remove(last);
                    }
                    Some(toml::Value::Array(a)) => {
                        if let Some(n) = last.strip_prefix('#').and_then(|n| n.parse().ok()) {
                            if n < a.len() {
                                a.remove(n);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Mutation::Insert(i, k, new) => {
                let p = pick(i);
                let parent = &p[..p.len() - 1];
                if let Some(toml::Value::Table(t)) = at(&mut v, parent) {
                    t.insert(k.clone(), new.clone());
                }
            }
        }
    }
    v
}

#[derive(Debug, Clone)]
enum TextEdit {
    Insert(usize, String),
    Delete(usize, usize),
    Flip(usize, u8),
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        (
            any::<usize>(),
            prop_oneof![
                text(),
                prop::sample::select(&["[", "]", "=", "\"", "'", "\n", "[[", "{", ",", "#"][..])
                    .prop_map(String::from)
            ]
        )
            .prop_map(|(i, s)| TextEdit::Insert(i, s)),
        (any::<usize>(), 1usize..20).prop_map(|(i, n)| TextEdit::Delete(i, n)),
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| TextEdit::Flip(i, x)),
    ]
}

fn edit(mut b: Vec<u8>, edits: &[TextEdit]) -> Vec<u8> {
    for e in edits {
        let l = b.len().max(1);
        match e {
            TextEdit::Insert(i, s) => {
                let at = i % (b.len() + 1);
                b.splice(at..at, s.bytes());
            }
            TextEdit::Delete(i, n) => {
                let at = i % l;
                let end = (at + n).min(b.len());
                if at < end {
                    b.drain(at..end);
                }
            }
            TextEdit::Flip(i, x) => {
                if !b.is_empty() {
                    let at = i % b.len();
                    b[at] ^= x;
                }
            }
        }
    }
    b
}

// ---------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// Generated valid configs of every kind round-trip through TOML to themselves.
    #[test]
    fn fuzz_config_roundtrip(c in container(), n in node(), m in manifest(), w in network()) {
        roundtrip(&c);
        roundtrip(&n);
        roundtrip(&m);
        roundtrip(&w);
        // and through the files Berth writes and reads
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        fsutil::write_toml(&p, &c).unwrap();
        prop_assert_eq!(fsutil::read_toml::<ContainerConfig>(&p).unwrap(), c.clone());
        if let Err(e) = validate_container(&c) {
            one_line(&e);
        }
        if let Err(e) = w.validate() {
            one_line(&e);
        }
    }

    /// Valid configs with fields replaced (random values, wrong types, huge numbers,
    /// control characters, traversal), removed or added: no panic, one-line errors, and
    /// what is accepted validates or is refused, and round-trips.
    #[test]
    fn fuzz_config_mutated_fields(
        c in container(),
        w in network(),
        muts in prop::collection::vec(mutation(), 1..5),
    ) {
        for v in [toml::Value::try_from(&c).unwrap(), toml::Value::try_from(&w).unwrap()] {
            let v = mutate(v, &muts);
            if let Ok(text) = toml::to_string(&v) {
                read_all_kinds(text.as_bytes());
            }
        }
    }

    /// Valid config text edited byte-wise (brackets, quotes, newlines, flipped bytes).
    #[test]
    fn fuzz_config_edited_text(
        c in container(),
        edits in prop::collection::vec(text_edit(), 1..6),
    ) {
        let text = toml::to_string_pretty(&c).unwrap();
        read_all_kinds(&edit(text.into_bytes(), &edits));
    }

    /// Arbitrary bytes and arbitrary text.
    #[test]
    fn fuzz_config_random_input(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        s in any::<String>(),
    ) {
        read_all_kinds(&bytes);
        read_all_kinds(s.as_bytes());
    }

    /// The parsers of typed values: no panic; what they accept prints back to a string
    /// that parses to the same value, and fits a TOML integer; the memory they use is
    /// bounded by their input.
    #[test]
    fn fuzz_config_value_parsers(s in prop_oneof![
        any::<String>(),
        ".{0,12}",
        "[0-9.]{1,25}[kKmMgGtTbBiIé]{0,3}",
        "[0-9a-fA-F:+-]{0,20}",
        "(tcp|udp|x):[0-9+-]{0,7}(:[0-9+-]{0,7})?",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9+]{1,3})?",
        prop::collection::vec("[0-9]{1,4}(-[0-9]{1,4})?", 1..400).prop_map(|v| v.join(",")),
        // CPU masks of many valid ranges
        prop::collection::vec(
            (0u32..10_000, 0u32..10_000).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            1..400,
        )
        .prop_map(|v| v.join(",")),
        // MAC-shaped: six parts of near-hex
        prop::collection::vec(
            prop::sample::select(&["02", "0a", "Fe", "+2", "+a", "-1", "zz", "0", "000", ""][..]),
            6,
        )
        .prop_map(|v| v.join(":")),
        // counts and sizes near the integer limits
        "[0-9]{10,15}[kKmM]?",
        "[0-9]{5,9}(\\.[0-9]{1,3})?[tTgG]",
        prop::sample::select(HOSTILE).prop_map(String::from),
    ]) {
        check_value_parsers(&s);
    }
}

fn check_value_parsers(s: &str) {
    fn canon<T: Debug + PartialEq + std::fmt::Display, E: std::fmt::Display>(
        s: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Option<T> {
        let (r, peak) = peak_of(|| parse(s));
        assert!(
            peak <= 64 * s.len() + (1 << 20),
            "parsing {} bytes took {peak} bytes of memory",
            s.len()
        );
        match r {
            Ok(v) => {
                let printed = v.to_string();
                let again = parse(&printed)
                    .unwrap_or_else(|e| panic!("{s:?} -> {printed:?} does not parse back: {e}"));
                assert_eq!(again, v, "{s:?} -> {printed:?}");
                Some(v)
            }
            Err(e) => {
                one_line(&e);
                None
            }
        }
    }
    // Sizes print rounded (`10.2G` for 0.01T): they parse back to within 1%. Configs store
    // them as integers, so this is display only.
    let (r, peak) = peak_of(|| Size::parse(s));
    assert!(peak <= 64 * s.len() + (1 << 20));
    match r {
        Ok(v) => {
            assert!(v.0 <= i64::MAX as u64, "{s:?} -> {} bytes", v.0);
            toml::Value::try_from(v).unwrap();
            let back = Size::parse(&v.to_string()).unwrap();
            let diff = back.0.abs_diff(v.0) as f64;
            assert!(diff <= v.0 as f64 / 100.0, "{s:?} -> {v} -> {back:?}");
        }
        Err(e) => {
            one_line(&e);
        }
    }
    canon(s, CtId::parse);
    canon(s, CtRef::parse);
    canon(s, |x| x.parse::<Ipv4Cidr>());
    canon(s, berth_core::net::parse_subnet);
    canon(s, |x| x.parse::<MacAddr>());
    canon(s, |x| x.parse::<PortForward>());
    canon(s, |x| x.parse::<Rate>());
    canon(s, |x| x.parse::<AddrRange>());
    canon(s, CpuMask::parse);
    canon(s, DiskFs::parse);
    canon(s, Startup::parse);
    let _ = s.parse::<AddrSpec>().map_err(|e| one_line(&e));
    let _ = InitMode::parse(s).map_err(|e| one_line(&e));
    let _ = RestartPolicy::parse(s).map_err(|e| one_line(&e));
    let _ = berth_core::net::validate_ifname(s).map_err(|e| one_line(&e));
    let _ = validate_hostname(s).map_err(|e| one_line(&e));
    for what in ["--diskinodes", "--numproc"] {
        if let Ok(n) = berth_core::resources::parse_count(s, what) {
            assert!(n <= i64::MAX as u64, "{s:?} -> {n}");
        }
    }
    if let Ok(Some(v)) = berth_core::resources::parse_size_limit(s) {
        assert!(v.0 <= i64::MAX as u64);
    }
    let _ = berth_core::resources::SoftHard::parse(s, "--diskspace", Size::parse);
    // A name that validates is a plain file name: it never leaves its directory.
    if validate_name(s).is_ok() {
        let root = NodeRoot::new("/node");
        let p = root.template_dir(s).unwrap();
        assert_eq!(p.parent(), Some(root.templates_dir().as_path()));
        assert!(!s.contains('/') && s != "." && s != ".." && !s.starts_with('.'));
    }
}

/// Deeply nested TOML must be an error, not a stack overflow (which would abort).
#[test]
fn deep_nesting_is_an_error() {
    for open in ["[", "{a=", "[{a="] {
        let text = format!("ctid = {}", open.repeat(100_000));
        read_all_kinds(text.as_bytes());
    }
}
