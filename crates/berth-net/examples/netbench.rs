//! TCP throughput and round-trip latency between two network namespaces (used by
//! `bench/network`). Usage: `netbench SERVER_NS CLIENT_NS ADDR [SECONDS]`, where a namespace
//! is a path such as `/proc/<pid>/ns/net` or `/run/netns/<name>`, or `host` for the caller's.
//! The server listens on ADDR (an address of the server namespace); nothing else is contacted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn enter(ns: &str) {
    if ns == "host" {
        return;
    }
    let f = std::fs::File::open(ns).expect("open namespace");
    // SAFETY: setns on the calling thread with a descriptor we hold.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        eprintln!("usage: netbench SERVER_NS CLIENT_NS ADDR [SECONDS]");
        std::process::exit(2);
    }
    let (server_ns, client_ns, addr) = (a[1].clone(), a[2].clone(), a[3].clone());
    let secs: u64 = a.get(4).and_then(|s| s.parse().ok()).unwrap_or(3);
    let listener = {
        let (ns, addr) = (server_ns.clone(), addr.clone());
        std::thread::spawn(move || {
            enter(&ns);
            TcpListener::bind(format!("{addr}:0")).expect("bind")
        })
        .join()
        .unwrap()
    };
    let target = listener.local_addr().unwrap();
    // Server: first connection is drained (throughput), second echoes (latency).
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        let start = Instant::now();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => total += k as u64,
            }
        }
        let el = start.elapsed().as_secs_f64();
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 1];
        while s.read_exact(&mut b).is_ok() {
            if s.write_all(&b).is_err() {
                break;
            }
        }
        (total, el)
    });
    let client = std::thread::spawn(move || {
        enter(&client_ns);
        let mut s = TcpStream::connect(target).expect("connect");
        let chunk = vec![0u8; 1 << 16];
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            s.write_all(&chunk).unwrap();
        }
        drop(s);
        let mut s = TcpStream::connect(target).expect("connect");
        s.set_nodelay(true).unwrap();
        let mut rtts = vec![];
        let mut b = [7u8; 1];
        for _ in 0..5000 {
            let t = Instant::now();
            s.write_all(&b).unwrap();
            s.read_exact(&mut b).unwrap();
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
        rtts
    });
    let mut rtts = client.join().unwrap();
    let (total, el) = server.join().unwrap();
    rtts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p = |q: f64| rtts[((rtts.len() as f64 - 1.0) * q) as usize];
    println!(
        "{:.2} Gbit/s  rtt p50 {:.1} us  p99 {:.1} us",
        total as f64 * 8.0 / el / 1e9,
        p(0.5),
        p(0.99)
    );
}
