//! Hostile input on the cluster port of a running node: garbage before the handshake,
//! huge length prefixes, truncated frames, mutated handshake frames, idle connections
//! held open, and — over a session that passed the cookie handshake — mutated actor
//! messages. The node must stay up, log the refused connections, and go on running the
//! jobs of an honest client submitting throughout.
//!
//! Short profile: 2,500 malformed connections and 7,500 mutated messages. With
//! `MARIE_CHAOS_LONG=1`: 25,000 and 75,000.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Marie;
use marie_client::Client;
use marie_protocol::codec::encode;
use marie_protocol::messages::{CapacityQuery, ListQuery, WaitFor};
use marie_protocol::names::{GATEWAY_GROUP, MEMBERSHIP_GROUP};
use marie_protocol::{JobId, JobSpec, JobState};
use ractor::RpcReplyPort;
use ractor::message::SerializedMessage;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Counts of the run: malformed connections, mutated messages.
fn load() -> (u64, u64) {
    if std::env::var_os("MARIE_CHAOS_LONG").is_some_and(|v| v == "1") {
        (25_000, 75_000)
    } else {
        (2_500, 7_500)
    }
}

/// A small deterministic generator (splitmix64), so a failing run can be replayed.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n.max(1)) as usize
    }

    /// `min` to `max` (exclusive) random bytes.
    fn fill(&mut self, min: usize, max: usize) -> Vec<u8> {
        let len = min + self.below((max - min) as u64);
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Flips, overwrites, cuts or inserts a huge length into `bytes`.
    fn mutate(&mut self, mut bytes: Vec<u8>) -> Vec<u8> {
        for _ in 0..=self.below(3) {
            let at = self.below(bytes.len() as u64);
            match self.below(5) {
                0 if !bytes.is_empty() => bytes[at] ^= 1 << self.below(8),
                1 if !bytes.is_empty() => bytes[at] = self.next() as u8,
                2 => bytes.truncate(at),
                3 => {
                    let mut huge = vec![253];
                    huge.extend_from_slice(&(self.next() | 1 << 40).to_le_bytes());
                    bytes.splice(at..at, huge);
                }
                _ => {
                    let more = self.fill(1, 9);
                    bytes.splice(at..at, more);
                }
            }
        }
        bytes
    }
}

/// A protobuf length-delimited field.
fn field(number: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2];
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// ractor_cluster's first handshake frame: a `NetworkMessage` carrying an
/// authentication `NameMessage`, behind its u64 big-endian length.
fn name_frame(name: &str) -> Vec<u8> {
    let message = [field(1, name.as_bytes()), field(3, b"127.0.0.1:1")].concat();
    let frame = field(1, &field(1, &message));
    [(frame.len() as u64).to_be_bytes().to_vec(), frame].concat()
}

/// One malformed connection of kind `i % 5`; errors from the node closing it are the
/// point, so they are ignored.
async fn malformed_connection(addr: &str, i: u64) {
    let mut bytes = Bytes(i);
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        return;
    };
    let payload = match i % 5 {
        // Garbage before the handshake.
        0 => bytes.fill(1, 513),
        // A huge length prefix, then a little of what it announces.
        1 => [
            (1u64 << 40 | bytes.next()).to_be_bytes().to_vec(),
            bytes.fill(64, 65),
        ]
        .concat(),
        // A frame cut short.
        2 => [200u64.to_be_bytes().to_vec(), bytes.fill(20, 21)].concat(),
        // A frame of the right length that is no protobuf message.
        3 => {
            let body = bytes.fill(1, 201);
            [(body.len() as u64).to_be_bytes().to_vec(), body].concat()
        }
        // A mutated handshake frame.
        _ => bytes.mutate(name_frame(&format!("fuzz-{i}"))),
    };
    let _ = tcp.write_all(&payload).await;
    let _ = tcp.shutdown().await;
}

/// Mutated messages to the node's Gateway and membership actors, through a session that
/// passed the cookie handshake.
fn mutated_messages(count: u64) -> u64 {
    let gateways = ractor::pg::get_members(&GATEWAY_GROUP.to_string());
    let members = ractor::pg::get_members(&MEMBERSHIP_GROUP.to_string());
    let targets: Vec<_> = gateways.into_iter().chain(members).collect();
    assert!(!targets.is_empty(), "the client sees the node's actors");
    let seeds = [
        encode(&JobSpec::new("cpu-general", "echo", b"x".to_vec())),
        encode(&JobId::generate()),
        encode(&WaitFor {
            id: JobId::generate(),
            timeout_ms: 10,
        }),
        encode(&ListQuery::default()),
        encode(&CapacityQuery),
    ];
    let variants = [
        "Submit",
        "Status",
        "Wait",
        "Output",
        "Cancel",
        "List",
        "Capacity",
        "Ping",
        "Load",
        "JobsFinished",
        "Hello",
        "DialFailed",
        "Members",
        "NoSuchVariant",
    ];
    let mut bytes = Bytes(0xfeed);
    let mut sent = 0;
    for i in 0..count {
        let seed = seeds[bytes.below(seeds.len() as u64)].clone();
        let field = bytes.mutate(seed);
        let args = if i % 10 == 0 {
            bytes.fill(0, 64)
        } else {
            [(field.len() as u64).to_be_bytes().to_vec(), field].concat()
        };
        let variant = variants[bytes.below(variants.len() as u64)].to_owned();
        let message = if i % 4 == 0 {
            let (tx, _rx) = ractor::concurrency::oneshot();
            SerializedMessage::Call {
                variant,
                args,
                reply: RpcReplyPort::from((tx, Duration::from_millis(200))),
                metadata: None,
            }
        } else {
            SerializedMessage::Cast {
                variant,
                args,
                metadata: None,
            }
        };
        let target = &targets[bytes.below(targets.len() as u64)];
        if target.send_serialized(message).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Submits echo jobs one after another until `stop`; returns their ids.
async fn honest_client(client: Client, stop: Arc<AtomicBool>) -> Vec<JobId> {
    let mut ids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && ids.len() < 10_000 {
        let spec = JobSpec::new("cpu-general", "echo", format!("job {}", ids.len()).into());
        match client.submit(spec).await {
            Ok(submitted) => ids.push(submitted.id),
            Err(e) => panic!("an honest submit failed during the attack: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ids
}

#[test]
fn malformed_connections_and_messages_leave_the_node_serving() {
    let marie = Marie::start();
    let addr = format!("127.0.0.1:{}", marie.port());
    let cookie = std::fs::read_to_string(marie.dir().join("data/cookie")).expect("the cookie");
    let (connections, messages) = load();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let started = Instant::now();
    let (ids, sent) = runtime.block_on(async {
        let honest = Client::connect(&addr, cookie.trim())
            .await
            .expect("connects");
        let stop = Arc::new(AtomicBool::new(false));
        let submitting = tokio::spawn(honest_client(honest, stop.clone()));

        // Idle connections held open for the whole attack: they must not stall the port.
        let mut idle = Vec::new();
        for _ in 0..64 {
            idle.push(TcpStream::connect(&addr).await.expect("an idle connection"));
        }

        let limit = Arc::new(Semaphore::new(64));
        let mut tasks = Vec::new();
        for i in 0..connections {
            let permit = limit.clone().acquire_owned().await.expect("the semaphore");
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_secs(10), malformed_connection(&addr, i))
                    .await
                    .ok();
                drop(permit);
            }));
        }
        for task in tasks {
            task.await.expect("a connection task");
        }

        // A session that passed the handshake, then mutated messages through it.
        let _attacker = Client::connect(&addr, cookie.trim())
            .await
            .expect("a new session opens while the port is under attack");
        let sent = mutated_messages(messages);
        // A later client still joins and is served.
        let late = Client::connect(&addr, cookie.trim())
            .await
            .expect("joins after the attack");
        let id = late
            .submit(JobSpec::new("cpu-general", "echo", b"after".to_vec()))
            .await
            .expect("submits after the attack")
            .id;
        let status = late.wait(id, Duration::from_secs(60)).await.expect("waits");
        assert_eq!(status.state, JobState::Succeeded, "{status:?}");

        stop.store(true, Ordering::Relaxed);
        let ids = submitting.await.expect("the honest client");
        for id in &ids {
            let status = late
                .wait(*id, Duration::from_secs(60))
                .await
                .expect("waits");
            assert_eq!(status.state, JobState::Succeeded, "{status:?}");
            assert_eq!(status.attempt, 1, "ran once: {status:?}");
        }
        drop(idle);
        (ids, sent)
    });
    let took = started.elapsed();

    let capacity = marie.cli(&["capacity"]);
    assert!(
        capacity.status.success(),
        "the node still serves:\n{}",
        marie.log(1)
    );
    let log = marie.log(1);
    assert!(
        log.contains("a connection closed before it authenticated"),
        "refused connections are logged:\n{}",
        &log[..log.len().min(4000)]
    );
    assert!(!ids.is_empty(), "the honest client submitted");
    println!(
        "cluster port: {connections} malformed connections + {sent} mutated messages in {took:.1?}; \
         honest jobs accepted {}, succeeded once {}, lost 0",
        ids.len(),
        ids.len()
    );
}
