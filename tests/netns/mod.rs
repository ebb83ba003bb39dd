//! Network faults for the chaos tests (Linux, root): a bridge, and per node a network
//! namespace joined to it by a veth pair, on addresses this harness assigns
//! (`10.222.S.N/24`, the bridge `.1`, reachable from this process). A node's link can be
//! cut both ways, dropped one way, made lossy and slow, and healed: `iptables` rules
//! inside its namespace drop packets (`-m statistic` for random loss), and an NFQUEUE
//! this process reads holds each outgoing packet for the delay (the kernel here has no
//! `tc netem`).
//!
//! Every name starts with [`PREFIX`] and carries this process's id, so that tests run
//! in parallel and a later run deletes what a crashed one left. Dropping a [`Host`]
//! deletes its namespace and veth pair, dropping the [`Net`] its bridge, also when a
//! test panics.

#![allow(dead_code)]

pub mod cluster;

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::cluster::Placement;

/// The start of every namespace, bridge and veth name this harness makes.
pub const PREFIX: &str = "mch";

/// The second byte of the subnets (`10.222.S.0/24`).
const SUBNET_BASE: &str = "10.222";

/// Runs a command; fails the test with its output when it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e} (scripts/test installs it)"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command of the teardown, whose failure (already gone) does not matter.
fn run_quietly(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// What a command printed.
fn output(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Deletes the namespaces (and kills the nodes in them) and the bridges left by runs
/// whose process is gone.
fn clean_leftovers() {
    for line in output(&["ip", "netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let pid = name
            .strip_prefix(&format!("{PREFIX}-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse().ok());
        if let Some(pid) = pid
            && !alive(pid)
        {
            // The nodes it started there outlived it.
            for node in output(&["ip", "netns", "pids", name]).split_whitespace() {
                run_quietly(&["kill", "-9", node]);
            }
            run_quietly(&["ip", "netns", "del", name]);
        }
    }
    // A bridge says whose it is in its alias: `mch-pid-<pid>`.
    let links = output(&["ip", "-o", "link", "show", "type", "bridge"]);
    for line in links.lines() {
        let Some(name) = line.split(": ").nth(1).map(|n| n.trim()) else {
            continue;
        };
        let pid = line
            .split(&format!("alias {PREFIX}-pid-"))
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|pid| pid.parse().ok());
        if name.starts_with(PREFIX)
            && let Some(pid) = pid
            && !alive(pid)
        {
            run_quietly(&["ip", "link", "del", name]);
        }
    }
}

/// Serialises the choice of subnets within this process.
static CHOOSING: Mutex<()> = Mutex::new(());
/// Nets made by this process so far.
static NETS: AtomicU32 = AtomicU32::new(0);

/// A bridge with an address, the nodes' namespaces hang off it.
pub struct Net {
    /// Unique within this machine: this process's id and a counter.
    id: String,
    bridge: String,
    subnet: u8,
    hosts: AtomicU32,
}

impl Net {
    /// Makes a bridge on a free `10.222.S.0/24`, first deleting what crashed runs left.
    pub fn new() -> Net {
        static CLEANED: Once = Once::new();
        CLEANED.call_once(clean_leftovers);
        let _choosing = CHOOSING.lock().unwrap_or_else(|e| e.into_inner());
        let n = NETS.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Interface names hold 15 bytes: 4 hex digits of the process id and counter.
        let id = format!("{:04x}", (pid.wrapping_mul(31).wrapping_add(n)) & 0xffff);
        let used = output(&["ip", "-o", "-4", "addr", "show"]);
        let subnet = (0..254u32)
            .map(|i| ((pid + n * 37 + i) % 254 + 1) as u8)
            .find(|s| !used.contains(&format!("{SUBNET_BASE}.{s}.")))
            .expect("a free 10.222.S.0/24");
        let bridge = format!("{PREFIX}{id}br");
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        let net = Net {
            id,
            bridge,
            subnet,
            hosts: AtomicU32::new(0),
        };
        let alias = format!("{PREFIX}-pid-{pid}");
        run(&["ip", "link", "set", &net.bridge, "alias", &alias]);
        let addr = format!("{}/24", net.bridge_ip());
        run(&["ip", "addr", "add", &addr, "dev", &net.bridge]);
        run(&["ip", "link", "set", &net.bridge, "up"]);
        net
    }

    /// The bridge's address, this process's way into the namespaces.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 222, self.subnet, 1)
    }

    /// A namespace `name` on the bridge, with the next address.
    pub fn host(&self, name: &str) -> Host {
        let n = self.hosts.fetch_add(1, Ordering::SeqCst) + 2;
        assert!(n < 250, "too many hosts on one net");
        let ns = format!("{PREFIX}-{}-{}-{name}", std::process::id(), self.id);
        let outside = format!("{PREFIX}{}h{n}", self.id);
        let inside = format!("{PREFIX}{}n{n}", self.id);
        let addr = Ipv4Addr::new(10, 222, self.subnet, n as u8);
        run(&["ip", "netns", "add", &ns]);
        let host = Host {
            ns,
            outside,
            inside,
            addr,
            bridge_ip: self.bridge_ip(),
            delay: Mutex::new(None),
        };
        run(&[
            "ip",
            "link",
            "add",
            &host.outside,
            "type",
            "veth",
            "peer",
            "name",
            &host.inside,
        ]);
        run(&["ip", "link", "set", &host.inside, "netns", &host.ns]);
        run(&["ip", "link", "set", &host.outside, "master", &self.bridge]);
        run(&["ip", "link", "set", &host.outside, "up"]);
        let cidr = format!("{addr}/24");
        host.exec(&["ip", "addr", "add", &cidr, "dev", &host.inside]);
        host.exec(&["ip", "link", "set", &host.inside, "up"]);
        host.exec(&["ip", "link", "set", "lo", "up"]);
        host
    }

    /// Forwards TCP connections made to the bridge's address (the port returned) to
    /// `target` in this namespace: how nodes reach a server listening on loopback here.
    pub fn relay(&self, target: SocketAddr) -> Relay {
        Relay::start(SocketAddr::from((self.bridge_ip(), 0)), target)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        run_quietly(&["ip", "link", "del", &self.bridge]);
    }
}

/// A node's network namespace and its link to the bridge.
pub struct Host {
    ns: String,
    /// The veth end on the bridge.
    outside: String,
    /// The veth end in the namespace.
    inside: String,
    addr: Ipv4Addr,
    bridge_ip: Ipv4Addr,
    delay: Mutex<Option<Delay>>,
}

impl Host {
    /// Its address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Where a node started here runs: this address, through `ip netns exec`.
    pub fn placement(&self) -> Placement {
        Placement {
            host: self.addr.to_string(),
            launcher: ["ip", "netns", "exec", &self.ns]
                .map(str::to_owned)
                .to_vec(),
        }
    }

    /// Runs a command inside the namespace.
    fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.ns];
        all.extend(args);
        run(&all);
    }

    fn iptables(&self, rule: &[&str]) {
        let mut args = vec!["iptables", "-w"];
        args.extend(rule);
        self.exec(&args);
    }

    /// Cuts its link both ways: nothing in or out (its own loopback still works).
    pub fn cut(&self) {
        self.iptables(&["-A", "INPUT", "-i", &self.inside, "-j", "DROP"]);
        self.iptables(&["-A", "OUTPUT", "-o", &self.inside, "-j", "DROP"]);
    }

    /// Drops what it sends; it still hears everything.
    pub fn drop_outgoing(&self) {
        self.iptables(&["-A", "OUTPUT", "-o", &self.inside, "-j", "DROP"]);
    }

    /// Cuts it off from `peer` (every port, or only `port` there) both ways; the rest
    /// of its link works.
    pub fn cut_from(&self, peer: Ipv4Addr, port: Option<u16>) {
        let peer = peer.to_string();
        let port = port.map(|p| p.to_string());
        let (mut out, mut inp) = (
            vec!["-A", "OUTPUT", "-d", &peer],
            vec!["-A", "INPUT", "-s", &peer],
        );
        if let Some(port) = &port {
            out.extend(["-p", "tcp", "--dport", port]);
            inp.extend(["-p", "tcp", "--sport", port]);
        }
        out.extend(["-j", "DROP"]);
        inp.extend(["-j", "DROP"]);
        self.iptables(&out);
        self.iptables(&inp);
    }

    /// Makes its outgoing traffic lossy and slow, as `tc netem loss L% delay D` on its
    /// interface would: each packet it sends is dropped with probability `loss`, the
    /// others leave `delay` late.
    pub fn degrade(&self, loss: f64, delay: Duration) {
        let probability = format!("{loss}");
        self.iptables(&[
            "-A",
            "OUTPUT",
            "-o",
            &self.inside,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            &probability,
            "-j",
            "DROP",
        ]);
        *self.delay.lock().unwrap_or_else(|e| e.into_inner()) = Some(Delay::start(&self.ns, delay));
        self.iptables(&[
            "-A",
            "OUTPUT",
            "-o",
            &self.inside,
            "-j",
            "NFQUEUE",
            "--queue-num",
            "0",
            "--queue-bypass",
        ]);
    }

    /// Removes every fault: the rules go, delayed packets leave.
    pub fn heal(&self) {
        self.iptables(&["-F", "INPUT"]);
        self.iptables(&["-F", "OUTPUT"]);
        if let Some(delay) = self.delay.lock().unwrap_or_else(|e| e.into_inner()).take() {
            delay.stop();
        }
    }

    /// The bridge's address, seen from here.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.bridge_ip
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(delay) = self.delay.lock().unwrap_or_else(|e| e.into_inner()).take() {
            delay.stop();
        }
        run_quietly(&["ip", "link", "del", &self.outside]);
        run_quietly(&["ip", "netns", "del", &self.ns]);
    }
}

/// A thread in a namespace that holds each packet of its NFQUEUE 0 for a while.
struct Delay {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Delay {
    fn start(ns: &str, delay: Duration) -> Delay {
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{ns}");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let queue = open_queue_in(&path);
            let _ = ready_tx.send(queue.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            if let Ok(queue) = queue {
                hold(queue, delay, &flag);
            }
        });
        let ready = ready_rx.recv().expect("the delay thread answers");
        if let Err(e) = ready {
            panic!("cannot read the NFQUEUE of {ns}: {e}");
        }
        Delay { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Enters the namespace at `path` (this thread only) and binds its NFQUEUE 0.
fn open_queue_in(path: &str) -> std::io::Result<nfq::Queue> {
    let ns = std::fs::File::open(path)?;
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    let mut queue = nfq::Queue::open()?;
    queue.bind(0)?;
    queue.set_queue_max_len(0, 65_535)?;
    queue.set_nonblocking(true);
    Ok(queue)
}

/// Lets each queued packet go once it has waited `delay`, until `stop`; then lets the
/// rest go at once.
fn hold(mut queue: nfq::Queue, delay: Duration, stop: &AtomicBool) {
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    while !stop.load(Ordering::SeqCst) {
        let mut idle = true;
        loop {
            match queue.recv() {
                Ok(msg) => {
                    held.push_back((Instant::now() + delay, msg));
                    idle = false;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            if let Some((_, mut msg)) = held.pop_front() {
                msg.set_verdict(nfq::Verdict::Accept);
                let _ = queue.verdict(msg);
                idle = false;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for (_, mut msg) in held {
        msg.set_verdict(nfq::Verdict::Accept);
        let _ = queue.verdict(msg);
    }
}

/// A TCP relay from an address on the bridge to a server on this namespace's loopback.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(listen: SocketAddr, target: SocketAddr) -> Relay {
        let listener = TcpListener::bind(listen).expect("bind the relay");
        let addr = listener.local_addr().expect("the relay's address");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(target) {
                            pipe(client, server);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Relay {
            addr,
            stop,
            accept: Some(accept),
        }
    }

    /// Where nodes connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Copies both ways between two connections until either closes.
fn pipe(a: TcpStream, b: TcpStream) {
    for (mut from, mut to) in [
        (a.try_clone(), b.try_clone()),
        (b.try_clone(), a.try_clone()),
    ]
    .into_iter()
    .filter_map(|(f, t)| Some((f.ok()?, t.ok()?)))
    {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}
