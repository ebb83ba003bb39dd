//! Several `server` nodes on one throwaway Postgres, one leader fenced by its epoch:
//! real `marie node` processes. The leader SIGKILLed in the middle of 2,000 jobs: the
//! standby leads, runs in flight on the surviving executors keep their leases, and every
//! job succeeds once. The leader SIGSTOPped past its lease: it finds itself deposed,
//! nothing it writes after the takeover lands, and it steps down in-process and stands
//! by; when the other then dies, it leads again and runs new jobs once. Two servers started together on an empty database: one migration, one leader;
//! SIGTERM hands the lease over without waiting for it to expire.

mod common;
mod leader;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::free_port;
use leader::{
    Setup, TTL, WAIT, config, exports, leader_gauge, leader_seen_by, node_env, start_server,
    wait_for_leader,
};
use marie_store::postgres::SCHEMA_VERSION;
use marie_test_postgres::TestPostgres;
use nix::sys::signal::Signal;
use serde_json::Value;

#[test]
fn sigkill_of_the_leader_mid_run_hands_over_to_the_standby_and_every_job_succeeds_once() {
    let mut setup = Setup::start("");
    assert_eq!(leader_gauge(&setup.servers[0]), Some(1));
    assert_eq!(leader_gauge(&setup.servers[1]), Some(0));
    // Submitted through the standby's gateway: any node accepts work. Long jobs first,
    // whose runs outlast the failover, then 10 s of short work on the remaining slots,
    // so that the kill lands while jobs run.
    let long = setup.submit(&setup.servers[1], 25_000, 20);
    assert_eq!(long.len(), 20);
    let short = setup.submit(&setup.servers[1], 500, 2000);
    assert_eq!(short.len(), 2000);
    let ids: Vec<String> = long.iter().chain(&short).cloned().collect();
    let deadline = Instant::now() + WAIT;
    while setup.succeeded() < 100 {
        assert!(Instant::now() < deadline, "jobs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    setup.servers[0].kill();
    let killed = Instant::now();
    let epoch = wait_for_leader(&setup.servers[1], "s2");
    let took = killed.elapsed();
    println!(
        "failover: s2 leads (epoch {epoch}) {:.2} s after the leader's SIGKILL (lease TTL {:.1} s)",
        took.as_secs_f64(),
        TTL.as_secs_f64()
    );
    assert_eq!(epoch, 2);
    assert!(
        setup.servers[1]
            .logs()
            .contains("reason=the lease of s1 expired"),
        "{}",
        setup.servers[1].logs()
    );

    let statuses = setup.wait_all(&setup.servers[1], &ids);
    setup.assert_each_succeeded_once(&statuses, &ids);
    // The executors survived: the long runs, in flight through the failover, were
    // reported to the new leader and kept their leases. Only short runs that ended in
    // the gap (their completion went to the dead leader) ran again.
    let attempt = |id: &String| {
        statuses
            .iter()
            .find(|s| s["id"] == id.as_str())
            .map(|s| s["attempt"].clone())
    };
    for id in &long {
        assert_eq!(
            attempt(id),
            Some(Value::from(1)),
            "a run in flight on a surviving executor ran again"
        );
    }
    assert!(
        short.iter().any(|id| attempt(id) == Some(Value::from(2))),
        "no run ended during the failover, so the test proved nothing"
    );
    // The new leader ended jobs, under its own epoch.
    let by_new: u64 = setup
        .psql("SELECT count(*) FROM jobs WHERE leader_epoch = 2")
        .parse()
        .expect("a count");
    assert!(by_new > 0);
    assert_eq!(leader_gauge(&setup.servers[1]), Some(1));
}

#[test]
fn a_leader_stopped_past_its_lease_is_deposed_writes_nothing_after_the_takeover_stands_by_and_leads_again()
 {
    // Leases of 2 s: when the stopped leader wakes up, every lease it granted has
    // expired on its clock, and it would re-queue each of those jobs (which the new
    // leader runs) were its writes not fenced.
    let mut setup = Setup::start(
        "[scheduler]\nheartbeat_ms = 500\nlease_ttl_ms = 2000\nexecutor_timeout_ms = 2000\n",
    );
    // 4 s jobs: runs are in flight through the stop.
    let ids = setup.submit(&setup.servers[1], 4000, 400);
    let deadline = Instant::now() + WAIT;
    while setup.succeeded() < 100 {
        assert!(Instant::now() < deadline, "jobs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    setup.servers[0].signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    // Jobs in flight at the stop: waking with their leases expired on its clock, the
    // deposed leader would re-queue them were its writes not fenced. Their executors
    // report them to the new leader, which keeps them (or re-queues those that ended
    // in the gap).
    let in_flight = setup.psql("SELECT id FROM jobs WHERE state = 'running'");
    let in_flight: Vec<&str> = in_flight.lines().collect();
    assert!(
        !in_flight.is_empty(),
        "no job was in flight at the stop, so the test proved nothing"
    );
    let epoch = wait_for_leader(&setup.servers[1], "s2");
    println!(
        "failover: s2 leads (epoch {epoch}) {:.2} s after the leader's SIGSTOP",
        stopped.elapsed().as_secs_f64()
    );
    let takeover_ms = setup.psql(
        "SELECT (extract(epoch FROM acquired_at) * 1000)::bigint FROM marie_leader WHERE epoch = 2",
    );
    let takeover_ms: u64 = takeover_ms.parse().expect("the takeover's time");
    let stop_for = (2 * TTL).saturating_sub(stopped.elapsed());
    std::thread::sleep(stop_for);
    setup.servers[0].signal(Signal::SIGCONT);

    // It finds itself deposed and steps down in-process: it stays up and stands by.
    let deadline = Instant::now() + WAIT;
    while !setup.servers[0]
        .logs()
        .contains("leader: stepped down, standing by")
    {
        assert!(
            setup.servers[0].is_running(),
            "the deposed leader exited instead of standing by:\n{}",
            setup.servers[0].logs()
        );
        assert!(
            Instant::now() < deadline,
            "the deposed leader did not step down:\n{}",
            setup.servers[0].logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(setup.servers[0].logs().contains("leader: lost the lease"));
    // Its stopped CapacityManager and Supervisor export nothing: only the leader's do.
    assert!(exports(&setup.servers[1], "marie_jobs_pending"));
    assert!(!exports(&setup.servers[0], "marie_jobs_pending"));
    assert!(!exports(
        &setup.servers[0],
        "marie_supervisor_desired_executors"
    ));

    // Nothing the old leader wrote after the takeover is in the store: no row carries
    // its epoch with a change made after the new leader acquired the lease (both
    // stamped by this machine's clock).
    let late = setup.psql(&format!(
        "SELECT count(*) FROM jobs WHERE leader_epoch = 1 AND updated_at_ms > {takeover_ms}"
    ));
    assert_eq!(
        late, "0",
        "the deposed leader's writes landed after the takeover"
    );
    let statuses = setup.wait_all(&setup.servers[1], &ids);
    setup.assert_each_succeeded_once(&statuses, &ids);
    let kept = statuses
        .iter()
        .filter(|s| in_flight.iter().any(|id| s["id"] == *id) && s["attempt"] == 1)
        .count();
    println!(
        "{kept} of the {} jobs in flight at the stop kept their first run",
        in_flight.len()
    );

    // Standing by, it sees s2 lead and exports 0 on `marie_leader`; the lease stays
    // with s2.
    assert_eq!(wait_for_leader(&setup.servers[0], "s2"), epoch);
    assert_eq!(leader_gauge(&setup.servers[0]), Some(0));
    assert_eq!(leader_gauge(&setup.servers[1]), Some(1));
    assert!(setup.servers[0].is_running());

    // s2 dies: the deposed node, standing by in the same process, takes the lease back
    // under a fresh epoch and runs new work, each job once.
    setup.servers[1].kill();
    assert_eq!(wait_for_leader(&setup.servers[0], "s1"), epoch + 1);
    assert!(
        setup.servers[0]
            .logs()
            .contains("reason=the lease of s2 expired"),
        "{}",
        setup.servers[0].logs()
    );
    let again = setup.submit(&setup.servers[0], 200, 200);
    assert_eq!(again.len(), 200);
    let all: Vec<String> = ids.iter().chain(&again).cloned().collect();
    let statuses = setup.wait_all(&setup.servers[0], &all);
    setup.assert_each_succeeded_once(&statuses, &all);
    let by_third: u64 = setup
        .psql(&format!(
            "SELECT count(*) FROM jobs WHERE leader_epoch = {}",
            epoch + 1
        ))
        .parse()
        .expect("a count");
    assert!(
        by_third >= again.len() as u64,
        "the node that leads again ended {by_third} jobs under its new epoch"
    );
    assert_eq!(leader_gauge(&setup.servers[0]), Some(1));
    assert!(exports(&setup.servers[0], "marie_jobs_pending"));
}

#[test]
fn two_servers_started_together_on_an_empty_database_migrate_once_and_elect_one_leader() {
    let postgres = TestPostgres::start().expect("a throwaway Postgres server");
    let cluster = Cluster::new(&config(&postgres.url()));
    let ports = [cluster.server_port, free_port()];
    let env = node_env(ports);
    // Each node opens its store as soon as its cluster port listens: together.
    let mut servers = [
        start_server(&cluster, "s1", ports[0], &env),
        start_server(&cluster, "s2", ports[1], &env),
    ];
    let deadline = Instant::now() + WAIT;
    let leader = loop {
        let seen: Vec<_> = servers.iter().map(leader_seen_by).collect();
        if let [Some(a), Some(b)] = &seen[..]
            && a == b
        {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "no leader agreed on: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(leader.1, 1, "more than one acquisition: {leader:?}");
    let versions = postgres
        .psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM marie_schema")
        .expect("psql");
    let known: Vec<String> = (1..=SCHEMA_VERSION).map(|v| v.to_string()).collect();
    assert_eq!(versions, known.join(","));
    let migrations: usize = servers
        .iter()
        .map(|s| s.logs().matches("applying schema migration").count())
        .sum();
    assert_eq!(
        migrations,
        known.len(),
        "each version applied once, by one node"
    );
    let gauges: Vec<_> = servers.iter().map(leader_gauge).collect();
    assert!(
        gauges == [Some(1), Some(0)] || gauges == [Some(0), Some(1)],
        "{gauges:?}"
    );

    // SIGTERM: the leader releases the lease; the other takes it without waiting for it
    // to expire (it says why).
    let (leading, standing) = if leader.0 == "s1" { (0, 1) } else { (1, 0) };
    servers[leading].signal(Signal::SIGTERM);
    assert!(
        servers[leading].wait_exit(WAIT),
        "the leader did not stop cleanly"
    );
    let successor = servers[standing].name.clone();
    assert_eq!(wait_for_leader(&servers[standing], &successor), 2);
    let logs = servers[standing].logs();
    assert!(
        logs.contains(&format!("reason={} released the lease", leader.0)),
        "{logs}"
    );
}
