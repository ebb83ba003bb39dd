//! How fast a burst reaches Kubernetes: from the first job of a burst accepted (its
//! submit's 202) to the Supervisor's scale PATCH of the pool's Deployment (the fake API
//! server's journal), and to the first job running on a pod that scale-up created (the
//! store's start time of the run). Pods start at once and after 2 s (scheduling and
//! image pull); a few bursts each; median and spread.
//!
//! `cargo bench -p marie-node --bench kube_scale`

mod common;
mod kube;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use kube::{KubeCluster, Pool, SERVER_USER};
use marie_kube_fake::JournalEvent;

/// Bursts per pod start delay.
const REPETITIONS: usize = 5;
/// Jobs per burst, posted from [`POSTERS`] threads.
const BURST: usize = 40;
const POSTERS: usize = 4;
/// Each job's sleep: the burst keeps the pool busy long enough for new pods to start.
const JOB_MS: &str = "1000";

/// One burst's measures, ms after its first job was accepted.
struct Sample {
    patch_ms: f64,
    /// The server's read of `/scale` that the PATCH followed, ms before it.
    read_before_patch_ms: Option<f64>,
    first_work_ms: f64,
}

fn main() {
    let pool = Pool {
        min: 1,
        max: 4,
        slots: 2,
        scale_to_zero: false,
    };
    let mut rows = Vec::new();
    for delay in [Duration::ZERO, Duration::from_secs(2)] {
        let cluster = KubeCluster::start(pool, delay);
        cluster.wait_for_pods(1);
        let samples: Vec<Sample> = (0..REPETITIONS).map(|_| burst(&cluster)).collect();
        rows.push((delay, samples));
    }
    println!(
        "\nburst of {BURST} jobs ({JOB_MS} ms each) on 1 pod of 2 slots, max 4 pods; {REPETITIONS} bursts per row; ms after the first 202, median [min–max]\n"
    );
    println!(
        "{:<16} {:<24} {:<24} {:<24}",
        "pod start delay", "scale PATCH", "read → PATCH", "first job on a new pod"
    );
    for (delay, samples) in &rows {
        let reads: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.read_before_patch_ms)
            .collect();
        println!(
            "{:<16} {:<24} {:<24} {:<24}",
            format!("{delay:?}"),
            spread(samples.iter().map(|s| s.patch_ms).collect()),
            spread(reads),
            spread(samples.iter().map(|s| s.first_work_ms).collect()),
        );
    }
}

/// One burst against a pool at one pod; waits until it is back at one pod.
fn burst(cluster: &KubeCluster) -> Sample {
    let old_pods: BTreeSet<String> = cluster.live_pods().into_iter().map(|p| p.name).collect();
    let journal_before = cluster.journal().len();
    let accepted: Vec<(String, SystemTime)> = std::thread::scope(|scope| {
        let posters: Vec<_> = (0..POSTERS)
            .map(|_| {
                scope.spawn(|| {
                    (0..BURST / POSTERS)
                        .map(|_| match cluster.post_job("sleep", JOB_MS) {
                            (202, Some(id), at) => (id, at),
                            (status, ..) => panic!("a burst job was answered {status}"),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        posters
            .into_iter()
            .flat_map(|p| p.join().expect("a poster thread"))
            .collect()
    });
    let first_queued = accepted
        .iter()
        .map(|(_, at)| *at)
        .min()
        .expect("a burst has jobs");
    let first_work_unix_ms = cluster.wait_for("a job running on a new pod", || {
        cluster
            .running_jobs()
            .iter()
            .filter(|job| {
                job["executor"]
                    .as_str()
                    .and_then(|e| e.strip_suffix(&format!("-{}-1", kube::POOL)))
                    .is_some_and(|pod| !old_pods.contains(pod))
            })
            .filter_map(|job| job["updated_at_ms"].as_u64())
            .min()
    });
    let journal = cluster.journal();
    let scaled_at = journal[journal_before..]
        .iter()
        .position(|e| {
            matches!(&e.event, JournalEvent::Scaled { from, to, by, .. }
                if by == SERVER_USER && to > from)
        })
        .map(|i| journal_before + i)
        .expect("the new pod came from a scale-up by the server");
    let read_before_patch_ms = journal[journal_before..scaled_at]
        .iter()
        .rev()
        .find(|e| {
            matches!(&e.event, JournalEvent::Request { method, path, user, .. }
                if method == "GET" && path.contains("/scale") && user.as_deref() == Some(SERVER_USER))
        })
        .map(|read| ms_between(read.at, journal[scaled_at].at));
    let ids: Vec<String> = accepted.into_iter().map(|(id, _)| id).collect();
    cluster.wait_jobs(&ids);
    cluster.wait_for_pods(1);
    Sample {
        patch_ms: ms_between(first_queued, journal[scaled_at].at),
        read_before_patch_ms,
        first_work_ms: ms_between(
            first_queued,
            SystemTime::UNIX_EPOCH + Duration::from_millis(first_work_unix_ms),
        ),
    }
}

/// `to − from` in ms (negative when `to` came first).
fn ms_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// "median [min–max]" of `values`, or "–" when there are none.
fn spread(mut values: Vec<f64>) -> String {
    if values.is_empty() {
        return "–".into();
    }
    values.sort_by(f64::total_cmp);
    format!(
        "{:.0} [{:.0}–{:.0}]",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}
