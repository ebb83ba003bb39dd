//! The Supervisor's `kubernetes` backend end to end: a real `marie up` scales the
//! Deployment `marie k8s render` wrote, on the fake API server, whose pods are real
//! executor processes; RBAC is the rendered Role.

mod common;
mod kube;

use std::collections::BTreeSet;
use std::time::Duration;

use kube::{DEPLOYMENT, KubeCluster, POOL, Pool, field};

/// A burst of short jobs against one pod: the pool goes to max and back to min; every
/// job succeeds once; only pods whose executors the Supervisor drained are removed; every
/// rule of the rendered Role is needed and none falls short.
#[test]
fn a_burst_scales_the_deployment_to_max_and_back_removing_only_drained_pods() {
    let pool = Pool {
        min: 1,
        max: 4,
        slots: 4,
        scale_to_zero: false,
    };
    let cluster = KubeCluster::start(pool, Duration::ZERO);
    cluster.wait_for_pods(1);
    let ids = cluster.submit(2000, 30);
    let statuses = cluster.wait_jobs(&ids);
    cluster.assert_each_succeeded_once(&statuses);
    let executors: BTreeSet<&str> = statuses
        .iter()
        .filter_map(|s| s["executor"].as_str())
        .collect();
    assert!(executors.len() >= 2, "the burst ran on {executors:?} only");
    let peak = cluster.server_scales().iter().map(|(_, to, _)| *to).max();
    assert_eq!(
        peak,
        Some(4),
        "the Supervisor never set the Deployment to max\n{}",
        cluster.explain()
    );

    // Idle: back to one pod, the others removed on scale-down.
    cluster.wait_for_pods(1);
    let (chosen, terminated) = cluster.scale_down_victims();
    let drained = cluster.drained_pods();
    assert_eq!(chosen, terminated, "{}", cluster.explain());
    assert_eq!(
        chosen,
        drained,
        "the pods removed are not those whose executors were drained\n{}",
        cluster.explain()
    );
    assert_eq!(chosen.len(), 3, "{}", cluster.explain());
    assert_eq!(cluster.requests_answered(403), Vec::<String>::new());
    let usage = cluster.fake().rbac_usage();
    assert!(
        usage.unused.is_empty(),
        "rules of the rendered Role no request needed: {:?}",
        usage.unused
    );
}

/// A pool at zero takes a job: queued at once, the Deployment goes 0 → 1, the job
/// succeeds, and the pool goes back to zero pods.
#[test]
fn a_pool_at_zero_queues_a_job_starts_a_pod_and_returns_to_zero() {
    let pool = Pool {
        min: 0,
        max: 2,
        slots: 2,
        scale_to_zero: true,
    };
    let cluster = KubeCluster::start(pool, Duration::ZERO);
    cluster.wait_for_pods(0);
    let (status, id, _) = cluster.post_job("echo", "wake up");
    assert_eq!(status, 202, "queued, not refused");
    let id = id.expect("an id");
    let status = cluster.wait_jobs(std::slice::from_ref(&id));
    cluster.assert_each_succeeded_once(&status);
    let up: Vec<(i32, i32)> = cluster
        .server_scales()
        .iter()
        .map(|(from, to, _)| (*from, *to))
        .collect();
    assert!(
        up.contains(&(0, 1)),
        "the Deployment never went 0 → 1: {up:?}\n{}",
        cluster.explain()
    );
    cluster.wait_for_pods(0);
}

/// A pod's container killed mid-run (restarted under the same name) and a pod deleted
/// (replaced under a new name): the Deployment is never set above what the Supervisor
/// wants, and the jobs they held run again and succeed once.
#[test]
fn a_crashed_or_deleted_pod_is_counted_once_and_its_jobs_succeed_once() {
    let pool = Pool {
        min: 2,
        max: 2,
        slots: 2,
        scale_to_zero: false,
    };
    let cluster = KubeCluster::start(pool, Duration::ZERO);
    let pods = cluster.wait_for_pods(2);
    let ids = cluster.submit(24, 3000);

    let crashed = &pods[0].name;
    let killed_jobs = jobs_running_on(&cluster, crashed);
    cluster
        .fake()
        .kill_container(crashed)
        .expect("kill the container");
    cluster.wait_for(&format!("{crashed} restarted and registered again"), || {
        let restarted = cluster
            .live_pods()
            .iter()
            .any(|p| p.name == *crashed && p.restart_count >= 1);
        (restarted && cluster.registered_executors() == 2).then_some(())
    });

    let deleted = &pods[1].name;
    jobs_running_on(&cluster, deleted);
    cluster.fake().delete_pod(deleted).expect("delete the pod");
    cluster.wait_for("the deleted pod gone and replaced", || {
        let pods = cluster.fake().pods(DEPLOYMENT);
        let replaced = pods.len() == 2 && pods.iter().all(|p| p.name != *deleted);
        (replaced && cluster.registered_executors() == 2).then_some(())
    });

    let statuses = cluster.wait_jobs(&ids);
    cluster.assert_each_succeeded_once(&statuses);
    for status in statuses
        .iter()
        .filter(|s| killed_jobs.iter().any(|id| s["id"] == id.as_str()))
    {
        assert!(
            status["attempt"].as_u64() >= Some(2),
            "a job of the killed container did not run again: {status}"
        );
    }
    let above: Vec<(i32, i32)> = cluster
        .server_scales()
        .iter()
        .map(|(from, to, _)| (*from, *to))
        .filter(|(_, to)| *to > 2)
        .collect();
    assert!(
        above.is_empty(),
        "the Supervisor wants 2 pods but set more: {above:?}\n{}",
        cluster.explain()
    );
    assert_eq!(cluster.replicas(), 2);
}

/// Somebody else scaling the Deployment stops the Supervisor's writes to it (log, gauge)
/// until `POST /api/pools/{pool}/scaling/resume`; then it adopts the count and scales.
#[test]
fn a_second_writer_pauses_the_pool_until_resumed() {
    let pool = Pool {
        min: 1,
        max: 4,
        slots: 2,
        scale_to_zero: false,
    };
    let cluster = KubeCluster::start(pool, Duration::ZERO);
    cluster.wait_for_pods(1);
    cluster
        .fake()
        .scale_by_admin(DEPLOYMENT, 3)
        .expect("scale as admin");
    let object = format!("deployment/{DEPLOYMENT}");
    cluster.wait_for("the Supervisor to notice the other writer", || {
        let logs = cluster.marie().all_logs();
        logs.lines()
            .any(|l| l.contains("being scaled by someone else") && l.contains(&object))
            .then_some(())
    });
    cluster.wait_for("the paused gauge", || {
        (cluster.metric("marie_supervisor_scaling_paused") == Some(1.0)).then_some(())
    });
    // Paused: it keeps reading the count but writes nothing, though it wants one pod.
    let paused_at = cluster
        .journal()
        .last()
        .map(|e| e.since_start)
        .unwrap_or_default();
    let scales = cluster.server_scales().len();
    cluster.wait_for("the Supervisor to read the count three more times", || {
        (cluster.server_scale_reads_since(paused_at) >= 3).then_some(())
    });
    cluster.wait_for_pods(3);
    assert_eq!(
        cluster.metric("marie_supervisor_desired_executors"),
        Some(1.0)
    );
    assert_eq!(
        cluster.server_scales().len(),
        scales,
        "the Supervisor wrote while paused\n{}",
        cluster.explain()
    );
    assert_eq!(cluster.replicas(), 3);

    let response = reqwest::blocking::Client::new()
        .post(
            cluster
                .marie()
                .http_url(&format!("/api/pools/{POOL}/scaling/resume")),
        )
        .send()
        .expect("POST resume");
    assert_eq!(response.status().as_u16(), 202);
    cluster.wait_for_pods(1);
    assert!(
        cluster
            .server_scales()
            .iter()
            .skip(scales)
            .any(|(from, _, _)| *from == 3),
        "the Supervisor did not adopt 3 and scale from there\n{}",
        cluster.explain()
    );
    assert_eq!(cluster.metric("marie_supervisor_scaling_paused"), Some(0.0));
}

/// A restarted server adopts the Deployment's replicas as they are: no write until the
/// load changes.
#[test]
fn a_restarted_server_adopts_the_replicas_without_writing() {
    let pool = Pool {
        min: 1,
        max: 3,
        slots: 2,
        scale_to_zero: false,
    };
    let mut cluster = KubeCluster::start(pool, Duration::ZERO);
    cluster.wait_for_pods(1);
    let ids = cluster.submit(60, 2000);
    cluster.wait_for_pods(3);

    cluster.marie().signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        cluster.marie_mut().wait_exit(Duration::from_secs(120)),
        "marie up exited with an error"
    );
    let scales = cluster.server_scales().len();
    let restarted_at = cluster
        .journal()
        .last()
        .map(|e| e.since_start)
        .unwrap_or_default();
    cluster.marie_mut().restart();
    cluster.wait_for("the restarted server to adopt 3 replicas", || {
        let log = cluster.marie().log(2);
        log.lines()
            .any(|l| {
                l.contains("adopted the pool's replica count") && field(l, "replicas") == Some("3")
            })
            .then_some(())
    });
    cluster.wait_for("three reads of the count after the restart", || {
        (cluster.server_scale_reads_since(restarted_at) >= 3).then_some(())
    });
    let unfinished = cluster.running_jobs().len();
    assert!(
        unfinished > 0,
        "the load ended before the check; submit longer jobs"
    );
    assert_eq!(
        cluster.server_scales().len(),
        scales,
        "the restarted server wrote the replicas under the same load\n{}",
        cluster.explain()
    );
    assert_eq!(cluster.replicas(), 3);

    let statuses = cluster.wait_jobs(&ids);
    assert!(statuses.iter().all(|s| s["state"] == "succeeded"));
    cluster.wait_for_pods(1);
}

/// Waits until a job runs on `pod`'s executor; returns the ids of those running there.
fn jobs_running_on(cluster: &KubeCluster, pod: &str) -> Vec<String> {
    let executor = format!("{pod}-{POOL}-1");
    cluster.wait_for(&format!("a job running on {executor}"), || {
        let ids: Vec<String> = cluster
            .running_jobs()
            .iter()
            .filter(|j| j["executor"] == executor.as_str())
            .filter_map(|j| j["id"].as_str().map(str::to_owned))
            .collect();
        (!ids.is_empty()).then_some(ids)
    })
}
