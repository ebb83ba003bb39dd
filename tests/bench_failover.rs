//! Failover time: from the leader's SIGKILL to the first job leased by the new leader
//! (the store's start time of the run), with the default lease (renewed every second,
//! 3 s to live). Two server nodes and two executor nodes on a throwaway Postgres; the
//! leader is killed, jobs are submitted through the standby's gateway right after, and
//! the killed node comes back as the standby for the next round. Also the time to the
//! new leader's acquisition of the lease (the lease row). Min, median and max.
//!
//! `cargo bench -p marie-node --bench failover`

mod common;
mod leader;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use leader::{Setup, TTL, WAIT, wait_for_leader};

/// Failovers measured.
const ROUNDS: usize = 5;
/// Jobs submitted after each kill; each runs long enough to be seen running.
const JOBS: usize = 20;
const JOB_MS: u64 = 3000;

/// One failover, ms after the SIGKILL.
struct Sample {
    acquired_ms: f64,
    first_lease_ms: f64,
}

fn main() {
    let mut setup = Setup::start("");
    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let sample = failover(&mut setup);
        println!(
            "round {}: lease acquired {:.0} ms, first job leased {:.0} ms after the SIGKILL",
            round + 1,
            sample.acquired_ms,
            sample.first_lease_ms
        );
        samples.push(sample);
    }
    println!(
        "\nleader SIGKILL → …, {ROUNDS} rounds (lease TTL {:.1} s, renewed every 1 s), ms: min / median / max\n",
        TTL.as_secs_f64()
    );
    println!(
        "{:<28} {:>24}",
        "lease acquired by the standby",
        spread(samples.iter().map(|s| s.acquired_ms).collect())
    );
    println!(
        "{:<28} {:>24}",
        "first job leased by it",
        spread(samples.iter().map(|s| s.first_lease_ms).collect())
    );
}

/// Kills the leader, submits jobs through the standby, waits for the first run the new
/// leader leases; restarts the killed node as the standby.
fn failover(setup: &mut Setup) -> Sample {
    let before = current_epoch(setup);
    let (leading, standing) = if setup.servers[0].name == leader_name(setup) {
        (0, 1)
    } else {
        (1, 0)
    };
    // The standby sees the executors' slots: the cluster is whole before the kill.
    wait_for_slots(setup, standing);
    let killed_ms = now_ms();
    setup.servers[leading].kill();
    let killed = Instant::now();
    setup.submit(&setup.servers[standing], JOB_MS, JOBS);
    let epoch = before + 1;
    let first_lease_ms: u64 = loop {
        let first = setup.postgres.psql(&format!(
            "SELECT coalesce(min(updated_at_ms), 0) FROM jobs \
             WHERE leader_epoch = {epoch} AND state = 'running'"
        ));
        let first = first.expect("psql").parse().expect("a time");
        if first > 0 {
            break first;
        }
        assert!(
            killed.elapsed() < WAIT,
            "no job leased by the new leader after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let acquired_ms: u64 = setup
        .postgres
        .psql(&format!(
            "SELECT (extract(epoch FROM acquired_at) * 1000)::bigint FROM marie_leader \
             WHERE epoch = {epoch}"
        ))
        .expect("psql")
        .parse()
        .expect("the acquisition's time");
    let new_leader = setup.servers[standing].name.clone();
    setup.servers[leading].restart();
    wait_for_leader(&setup.servers[leading], &new_leader);
    Sample {
        acquired_ms: acquired_ms.saturating_sub(killed_ms) as f64,
        first_lease_ms: first_lease_ms.saturating_sub(killed_ms) as f64,
    }
}

fn current_epoch(setup: &Setup) -> u64 {
    setup
        .postgres
        .psql("SELECT epoch FROM marie_leader WHERE id = 1")
        .expect("psql")
        .parse()
        .expect("an epoch")
}

fn leader_name(setup: &Setup) -> String {
    setup
        .postgres
        .psql("SELECT holder FROM marie_leader WHERE id = 1")
        .expect("psql")
}

/// Waits until the server `index` sees both executors' 100 slots.
fn wait_for_slots(setup: &Setup, index: usize) {
    let port = setup.servers[index].port;
    setup
        .cluster
        .wait_for_capacity(port, "cpu-general", 100, WAIT);
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

/// `median [min–max]` of `values`.
fn spread(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    match (values.first(), values.last()) {
        (Some(min), Some(max)) => {
            format!("{:.0} / {:.0} / {:.0}", min, values[values.len() / 2], max)
        }
        _ => "-".into(),
    }
}
