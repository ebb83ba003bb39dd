//! Network faults (Linux, root): every node a real `marie node` process in its own
//! network namespace ([`netns`]), its link cut for a while, dropped one way, made lossy
//! and slow, or cut from Postgres, then healed. Every accepted job ends once, nothing
//! accepted is lost, refusals say why; each test prints its figures. The short profile
//! runs in scripts/test; `MARIE_CHAOS_LONG=1` (scripts/chaos --long) partitions longer
//! under more load.

mod common;
mod leader;
mod netns;

use std::time::{Duration, Instant};

use common::{stderr, stdout};
use marie_test_postgres::TestPostgres;
use netns::Net;
use netns::cluster::{Chaos, POOL, WAIT, accepted, assert_each_succeeded_once};
use serde_json::Value;

const POOLS: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 4
handlers = ["echo", "sleep"]
"#;

/// `cluster.down_after_ms` (the default).
const DOWN_AFTER: Duration = Duration::from_millis(3000);

/// How hard the faults are.
struct Profile {
    /// How long a node stays cut off.
    partition: Duration,
    /// How long a link stays lossy and slow.
    degraded: Duration,
    /// Jobs submitted per batch of the load, one batch every half second while the
    /// link is degraded.
    batch: usize,
    /// Jobs in flight when the leader is cut off from Postgres (2 s each, on 100
    /// slots), and jobs through the other gateway while one is cut off.
    jobs: usize,
}

fn profile() -> Profile {
    match std::env::var("MARIE_CHAOS_LONG").as_deref() {
        Ok("1") => Profile {
            partition: Duration::from_secs(30),
            degraded: Duration::from_secs(90),
            batch: 40,
            jobs: 1600,
        },
        _ => Profile {
            partition: Duration::from_secs(10),
            degraded: Duration::from_secs(30),
            batch: 20,
            jobs: 400,
        },
    }
}

/// A server and two executor nodes of 4 slots, each in its namespace.
fn server_and_two_executors() -> Chaos {
    let mut chaos = Chaos::new(POOLS);
    let server = chaos.host("server");
    let seed = [server.addr()];
    chaos.start(server, "server", &["node", "--role", "server"], &[]);
    for name in ["ex1", "ex2"] {
        let host = chaos.host(name);
        let args = ["node", "--role", "executor", "--pool", POOL];
        chaos.start(host, name, &args, &seed);
    }
    chaos.wait_for_capacity("server", 8);
    chaos
}

/// How an executor node is cut off.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Nothing in or out.
    Both,
    /// It hears the others; they do not hear it.
    Outgoing,
}

/// ex1 cut off (`cut`) for the profile's partition while it runs 4 jobs that outlast
/// it, then healed: the server declares it unreachable from its silence and re-queues
/// its 4 jobs, which run again once; ex1 comes back still running its first runs,
/// which the server does not adopt (they were re-queued: ex1 abandons them, and nothing
/// they would say counts); it rejoins and takes work again.
fn executor_partition(cut: Cut) {
    let profile = profile();
    let chaos = server_and_two_executors();
    let run = profile.partition + Duration::from_secs(15);
    let ids = chaos.submit_all("server", run.as_millis() as u64, 8);
    chaos.wait_until_all_ran("server", &ids);
    let ex1 = &chaos.member("ex1").host;
    match cut {
        Cut::Both => ex1.cut(),
        Cut::Outgoing => ex1.drop_outgoing(),
    }
    let cut_at = Instant::now();
    // Declared unreachable for its silence (membership, down_after_ms), not lost to the
    // CapacityManager's executor timeout (10 s): the log says which.
    chaos.wait_for_line(
        "server",
        &["node unreachable: connected but silent", "node=ex1"],
    );
    let detected = cut_at.elapsed();
    chaos.wait_for_line(
        "server",
        &[
            "executor lost: its node left the cluster",
            "executor=ex1-cpu-general-1",
        ],
    );
    let requeued = cut_at.elapsed();
    chaos.wait_for_capacity("server", 4);
    std::thread::sleep(profile.partition.saturating_sub(cut_at.elapsed()));
    ex1.heal();
    let rejoined = chaos.wait_for_capacity("server", 8);
    // Back with its first runs in hand: none is adopted.
    chaos.wait_for_line(
        "server",
        &[
            "executor reported runs",
            "executor=ex1-cpu-general-1",
            "reported=4",
            "adopted=0",
        ],
    );

    let statuses = chaos.wait_all("server", &ids);
    assert_each_succeeded_once(&statuses, &ids, &chaos.node("server").logs());
    let rerun: Vec<&Value> = statuses.iter().filter(|s| s["attempt"] == 2).collect();
    assert_eq!(
        rerun.len(),
        4,
        "the 4 jobs of the cut-off node ran again, once: {statuses:?}"
    );
    let store = chaos.sqlite(
        "server",
        "SELECT count(*) || ',' || count(*) FILTER (WHERE state = 'succeeded') || ',' || max(attempt) FROM jobs",
    );
    assert_eq!(
        store, "8,8,2",
        "the store's jobs: rows, succeeded, most runs"
    );
    // It takes work again.
    let more = chaos.submit_all("server", 500, 16);
    let statuses = chaos.wait_all("server", &more);
    assert_each_succeeded_once(&statuses, &more, &chaos.node("server").logs());
    assert!(
        statuses
            .iter()
            .any(|s| s["executor"] == "ex1-cpu-general-1"),
        "ex1 took no work after it rejoined: {statuses:?}"
    );
    println!(
        "figure: executor cut off ({cut:?}) for {:.0} s with 8 jobs of {:.0} s running: declared unreachable after {:.2} s (down_after_ms {}), its jobs re-queued after {:.2} s, rejoined {:.2} s after the heal with its 4 first runs (none adopted); 8 accepted, 8 ended once, 4 ran twice, 0 lost",
        profile.partition.as_secs_f64(),
        run.as_secs_f64(),
        detected.as_secs_f64(),
        DOWN_AFTER.as_millis(),
        requeued.as_secs_f64(),
        rejoined.as_secs_f64(),
    );
}

#[test]
fn an_executor_cut_off_is_declared_unreachable_its_jobs_run_again_once_and_it_rejoins() {
    executor_partition(Cut::Both);
}

#[test]
fn an_executor_the_server_cannot_hear_is_declared_unreachable_the_same_way() {
    executor_partition(Cut::Outgoing);
}

#[test]
fn a_lossy_slow_executor_link_under_load_loses_no_job_and_ends_none_twice() {
    let profile = profile();
    let chaos = server_and_two_executors();
    let ex1 = &chaos.member("ex1").host;
    let delay = Duration::from_millis(100);
    ex1.degrade(0.3, delay);
    // The fault is real: a TCP handshake with ex1 waits for its SYN-ACK, which leaves
    // at least the delay late (or is lost and sent again).
    let probes = chaos.node("ex1");
    let handshake = (0..5)
        .map(|_| {
            let start = Instant::now();
            let addr = (probes.place.host.as_str(), probes.http_port);
            drop(std::net::TcpStream::connect(addr).expect("connect to ex1's probes"));
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    assert!(
        handshake >= delay,
        "a handshake with ex1 took {handshake:?}"
    );
    let start = Instant::now();
    let mut ids = Vec::new();
    let mut refused = 0;
    // One batch of 100 ms jobs every half second: half the pool's 80 jobs/s.
    let batches = (profile.degraded.as_millis() / 500) as usize;
    for _ in 0..batches {
        if start.elapsed() >= profile.degraded {
            break;
        }
        let out = chaos.submit("server", 100, profile.batch);
        let got = accepted(&out);
        refused += profile.batch - got.len();
        ids.extend(got);
        std::thread::sleep(Duration::from_millis(500));
    }
    let loaded_for = start.elapsed();
    ex1.heal();
    let statuses = chaos.wait_all("server", &ids);
    assert_each_succeeded_once(&statuses, &ids, &chaos.node("server").logs());
    assert_eq!(
        refused, 0,
        "submits through the healthy server were refused"
    );
    let on_ex1 = statuses
        .iter()
        .filter(|s| s["executor"] == "ex1-cpu-general-1")
        .count();
    assert!(on_ex1 > 0, "the degraded executor ran nothing");
    let reruns = statuses.iter().filter(|s| s["attempt"] != 1).count();
    let histogram = || hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
    let (mut latencies, mut on_faulty, mut on_healthy) = (histogram(), histogram(), histogram());
    for s in &statuses {
        let created = s["created_at_ms"].as_u64().unwrap_or(0);
        let took = s["updated_at_ms"]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(created);
        latencies.saturating_record(took);
        match s["executor"] == "ex1-cpu-general-1" {
            true => on_faulty.saturating_record(took),
            false => on_healthy.saturating_record(took),
        }
    }
    let first = statuses
        .iter()
        .filter_map(|s| s["created_at_ms"].as_u64())
        .min();
    let last = statuses
        .iter()
        .filter_map(|s| s["updated_at_ms"].as_u64())
        .max();
    let span_s = match (first, last) {
        (Some(first), Some(last)) => (last - first) as f64 / 1000.0,
        _ => 0.0,
    };
    let p50 = latencies.value_at_quantile(0.5);
    let p99 = latencies.value_at_quantile(0.99);
    println!(
        "figure: 30% loss + 100 ms delay on ex1's outgoing link for {:.0} s, {} jobs of 100 ms offered at {:.0}/s: {} accepted, {} ended once, 0 lost, {} on ex1, {} ran again; throughput {:.1} jobs/s, latency p50 {} ms p99 {} ms (submit to end; p99 {} ms on ex1, {} ms on ex2); TCP handshake with ex1 {} ms",
        loaded_for.as_secs_f64(),
        ids.len(),
        ids.len() as f64 / loaded_for.as_secs_f64(),
        ids.len(),
        ids.len(),
        on_ex1,
        reruns,
        ids.len() as f64 / span_s.max(0.001),
        p50,
        p99,
        on_faulty.value_at_quantile(0.99),
        on_healthy.value_at_quantile(0.99),
        handshake.as_millis(),
    );
}

#[test]
fn a_gateway_cut_off_from_the_server_refuses_submits_the_other_goes_on_and_healed_it_serves_again()
{
    let profile = profile();
    let mut chaos = Chaos::new(POOLS);
    let server = chaos.host("server");
    let seed = [server.addr()];
    chaos.start(server, "server", &["node", "--role", "server"], &[]);
    for name in ["gw1", "gw2"] {
        let host = chaos.host(name);
        chaos.start(host, name, &["node", "--role", "gateway"], &seed);
    }
    let host = chaos.host("ex1");
    chaos.start(
        host,
        "ex1",
        &["node", "--role", "executor", "--pool", POOL],
        &seed,
    );
    for node in ["server", "gw1", "gw2"] {
        chaos.wait_for_capacity(node, 4);
    }
    let mut ids = chaos.submit_all("gw1", 10, 4);

    chaos.member("gw1").host.cut_from(seed[0], None);
    let cut_at = Instant::now();
    // Submits through gw1, one at a time, until one is refused. Any id it still gives
    // is of a committed job (checked at the end).
    let mut refusal = None;
    let mut given = 0;
    while refusal.is_none() {
        assert!(cut_at.elapsed() < WAIT, "gw1 never refused a submit");
        let out = chaos.submit("gw1", 10, 1);
        let got = accepted(&out);
        if got.is_empty() {
            let errors: Vec<String> = stdout(&out)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter_map(|v| v["error"].as_str().map(str::to_owned))
                .collect();
            refusal = Some(format!("{}{}", errors.join("; "), stderr(&out)));
        }
        given += got.len();
        ids.extend(got);
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused_after = cut_at.elapsed();
    let refusal = refusal.unwrap_or_default();
    assert!(
        refusal.contains("job store") && refusal.contains("did not answer"),
        "the refusal does not say what is wrong: {refusal}"
    );
    // Its HTTP API refuses too, with 503 and the error's code.
    let response = reqwest::blocking::Client::new()
        .post(
            chaos
                .node("gw1")
                .http_url("/api/jobs?pool=cpu-general&handler=sleep"),
        )
        .body("10")
        .timeout(WAIT)
        .send()
        .expect("POST /api/jobs to gw1");
    let status = response.status().as_u16();
    let body = response.text().unwrap_or_default();
    assert!(
        status == 503 && body.contains("store_unavailable"),
        "gw1's HTTP submit answered {status}: {body}"
    );
    // The other gateway goes on.
    let through_gw2 = profile.jobs / 20;
    let during = chaos.submit_all("gw2", 10, through_gw2);
    let statuses = chaos.wait_all("gw2", &during);
    assert!(
        statuses.iter().all(|s| s["state"] == "succeeded"),
        "{statuses:?}"
    );
    ids.extend(during);
    std::thread::sleep(profile.partition.saturating_sub(cut_at.elapsed()));

    chaos.member("gw1").host.heal();
    let healed_at = Instant::now();
    loop {
        let got = accepted(&chaos.submit("gw1", 10, 1));
        if !got.is_empty() {
            ids.extend(got);
            break;
        }
        assert!(
            healed_at.elapsed() < WAIT,
            "gw1 does not serve again after the heal:\n{}",
            chaos.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let recovered = healed_at.elapsed();
    let statuses = chaos.wait_all("server", &ids);
    assert_each_succeeded_once(&statuses, &ids, &chaos.node("server").logs());
    println!(
        "figure: gateway gw1 cut off from the server for {:.0} s: submits there refused after {:.2} s ({given} accepted before), \"{}\", HTTP 503 store_unavailable; gw2 went on ({through_gw2} of {through_gw2}); gw1 served again {:.2} s after the heal; {} accepted, {} ended once, 0 lost",
        profile.partition.as_secs_f64(),
        refused_after.as_secs_f64(),
        refusal.lines().next().unwrap_or_default(),
        recovered.as_secs_f64(),
        ids.len(),
        ids.len(),
    );
}

#[test]
fn a_leader_cut_off_from_postgres_is_replaced_by_a_standby_and_its_writes_are_fenced() {
    let profile = profile();
    let postgres = TestPostgres::start().expect("a throwaway Postgres server");
    let net = Net::new();
    let relay = net.relay(([127, 0, 0, 1], postgres.port()).into());
    let url = format!(
        "postgres://{}:{}@{}/{}",
        marie_test_postgres::USER,
        marie_test_postgres::PASSWORD,
        relay.addr(),
        marie_test_postgres::DATABASE
    );
    let pg_port = relay.addr().port();
    let mut chaos = Chaos::on(net, Some(relay), &leader::config(&url));
    let (s1, s2) = (chaos.host("s1"), chaos.host("s2"));
    let seeds = [s1.addr(), s2.addr()];
    chaos.start(s1, "s1", &["node", "--role", "server"], &seeds);
    leader::wait_for_leader(chaos.node("s1"), "s1");
    chaos.start(s2, "s2", &["node", "--role", "server"], &seeds);
    leader::wait_for_leader(chaos.node("s2"), "s1");
    for name in ["e1", "e2"] {
        let host = chaos.host(name);
        let args = ["node", "--role", "executor", "--pool", POOL];
        chaos.start(host, name, &args, &seeds);
    }
    for server in ["s1", "s2"] {
        chaos.wait_for_capacity(server, 100);
    }
    let psql = |sql: &str| postgres.psql(sql).expect("psql");
    let succeeded = || -> usize {
        psql("SELECT count(*) FROM jobs WHERE state = 'succeeded'")
            .parse()
            .expect("a count")
    };
    // 2 s jobs through the standby's gateway, several rounds of the 100 slots: runs are
    // in flight when the leader is cut off.
    let ids = chaos.submit_all("s2", 2000, profile.jobs);
    let deadline = Instant::now() + WAIT;
    while succeeded() < 50 {
        assert!(Instant::now() < deadline, "jobs did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    let bridge = chaos.member("s1").host.bridge_ip();
    chaos.member("s1").host.cut_from(bridge, Some(pg_port));
    let cut_at = Instant::now();
    let epoch = leader::wait_for_leader(chaos.node("s2"), "s2");
    let took_over = cut_at.elapsed();
    let takeover_ms: u64 = psql(&format!(
        "SELECT (extract(epoch FROM acquired_at) * 1000)::bigint FROM marie_leader WHERE epoch = {epoch}"
    ))
    .parse()
    .expect("the takeover's time");
    // It steps down and stays up, though its term's actors wait on Postgres.
    chaos.wait_for_line("s1", &["leader: stepped down, standing by"]);
    let stepped_down = cut_at.elapsed();
    assert!(chaos.node("s1").logs().contains("leader: lost the lease"));
    std::thread::sleep(profile.partition.saturating_sub(cut_at.elapsed()));
    chaos.member("s1").host.heal();
    let healed_at = Instant::now();
    // Healed, it stands by: it sees s2 lead.
    assert_eq!(leader::wait_for_leader(chaos.node("s1"), "s2"), epoch);
    let standing_by = healed_at.elapsed();

    let statuses = chaos.wait_all("s2", &ids);
    let logs = format!("{}{}", chaos.node("s1").logs(), chaos.node("s2").logs());
    assert_each_succeeded_once(&statuses, &ids, &logs);
    assert_eq!(
        psql("SELECT count(*) || ',' || count(*) FILTER (WHERE state = 'succeeded') FROM jobs"),
        format!("{0},{0}", ids.len())
    );
    // Nothing the old leader sent after the takeover landed: no row carries its epoch
    // with a change made after the new leader took the lease.
    let late = psql(&format!(
        "SELECT count(*) FROM jobs WHERE leader_epoch < {epoch} AND updated_at_ms > {takeover_ms}"
    ));
    assert_eq!(
        late, "0",
        "the deposed leader's writes landed after the takeover"
    );
    let by_new: u64 = psql(&format!(
        "SELECT count(*) FROM jobs WHERE leader_epoch = {epoch}"
    ))
    .parse()
    .expect("a count");
    assert!(by_new > 0, "the new leader ended no job");
    let reruns = statuses.iter().filter(|s| s["attempt"] != 1).count();
    println!(
        "figure: leader s1 cut off from Postgres for {:.0} s under {} jobs of 2 s: s2 led (epoch {epoch}) after {:.2} s (lease TTL {:.0} s), s1 stepped down after {:.2} s, stood by {:.2} s after the heal; writes of the old epoch after the takeover: {late}; {} accepted, {} ended once, {reruns} ran again (their ends went to the deposed leader), 0 lost",
        profile.partition.as_secs_f64(),
        ids.len(),
        took_over.as_secs_f64(),
        leader::TTL.as_secs_f64(),
        stepped_down.as_secs_f64(),
        standing_by.as_secs_f64(),
        ids.len(),
        ids.len(),
    );
}
