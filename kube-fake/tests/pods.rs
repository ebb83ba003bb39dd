//! The ReplicaSet and kubelet simulators with real processes: watch events, scale-down
//! victims, restarts under the same name, replacements under a new name, SIGKILL after the
//! grace period, and every process gone after stop.

mod support;

use std::time::Duration;

use marie_kube_fake::{DELETION_COST, FakeApiServer, JournalEvent, TerminationCause};
use serde_json::Value;
use support::{NS, annotate, probe_pods, ready_pods, wait_for, web};

fn victims(server: &FakeApiServer) -> Vec<String> {
    server
        .journal()
        .into_iter()
        .filter_map(|e| match e.event {
            JournalEvent::ScaleDownVictim { pod, .. } => Some(pod),
            _ => None,
        })
        .collect()
}

/// Scales `web` to `n` and waits until the surplus pods are gone; returns the victims of
/// this scale-down.
async fn scale_down(server: &FakeApiServer, n: i32) -> Vec<String> {
    let before = victims(server).len();
    server.scale_by_admin("web", n).unwrap();
    wait_for(server, &format!("{n} pods left"), || {
        (server.pods("web").len() == n as usize).then_some(())
    })
    .await;
    victims(server)[before..].to_vec()
}

#[tokio::test]
async fn scale_down_removes_not_ready_then_cheapest_then_newest() {
    let state = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start(probe_pods(state.path(), false))
        .await
        .unwrap();
    server.apply_yaml(&web(2, 5)).unwrap();
    let first = ready_pods(&server, 2).await;
    server.scale_by_admin("web", 3).unwrap();
    let third = wait_for(&server, "a third ready pod", || {
        let pods = server.pods("web");
        (pods.len() == 3 && pods.iter().all(|p| p.ready)).then(|| pods[2].name.clone())
    })
    .await;

    // All ready, same cost: the newest goes.
    assert_eq!(scale_down(&server, 2).await, [third]);

    // A not-ready pod goes before a ready one with a lower deletion cost.
    let (a, b) = (first[0].name.clone(), first[1].name.clone());
    annotate(&server, &a, DELETION_COST, "-100").await;
    std::fs::write(state.path().join(format!("{b}.notready")), "").unwrap();
    wait_for(&server, "b not ready", || {
        server
            .pods("web")
            .iter()
            .any(|p| p.name == b && !p.ready)
            .then_some(())
    })
    .await;
    assert_eq!(scale_down(&server, 1).await, [b]);

    // A lower deletion cost goes before a newer pod.
    server.scale_by_admin("web", 2).unwrap();
    let pods = ready_pods(&server, 2).await;
    assert!(pods.iter().any(|p| p.name == a && p.deletion_cost == -100));
    assert_eq!(scale_down(&server, 1).await, [a]);
    server.stop().await;
}

#[tokio::test]
async fn a_killed_container_restarts_under_the_same_name() {
    let state = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start(probe_pods(state.path(), false))
        .await
        .unwrap();
    server.apply_yaml(&web(1, 5)).unwrap();
    let before = ready_pods(&server, 1).await.remove(0);
    server.kill_container(&before.name).unwrap();
    let after = wait_for(&server, "the restarted container ready", || {
        let pods = server.pods("web");
        (pods.len() == 1 && pods[0].restart_count == 1 && pods[0].ready).then(|| pods[0].clone())
    })
    .await;
    assert_eq!(after.name, before.name);
    assert_eq!(after.http_port, before.http_port);
    assert_ne!(after.pid, before.pid);
    let pod = server.pod(&after.name).unwrap();
    let last = pod.status.unwrap().container_statuses.unwrap()[0]
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(last.signal, Some(9));
    assert!(server.journal().iter().any(
        |e| matches!(&e.event, JournalEvent::ContainerExited { pod, .. } if *pod == before.name)
    ));
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_pod_is_replaced_under_a_new_name() {
    let state = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start(probe_pods(state.path(), false))
        .await
        .unwrap();
    server.apply_yaml(&web(1, 5)).unwrap();
    let old = ready_pods(&server, 1).await.remove(0);
    assert!(old.name.starts_with("web-"), "{}", old.name);
    server.delete_pod(&old.name).unwrap();
    let new = ready_pods(&server, 1).await.remove(0);
    assert_ne!(new.name, old.name);
    assert_eq!(new.restart_count, 0);
    let journal = server.journal();
    assert!(journal.iter().any(|e| e.event
        == JournalEvent::PodTerminating {
            pod: old.name.clone(),
            cause: TerminationCause::Deleted,
            grace: Duration::from_secs(5)
        }));
    assert!(journal.iter().any(|e| matches!(&e.event, JournalEvent::PodRemoved { pod, status: Some(s) } if *pod == old.name && s.contains("SIGTERM"))));
    assert!(
        !journal
            .iter()
            .any(|e| matches!(e.event, JournalEvent::GracePeriodExpired { .. })),
        "python exits on SIGTERM"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let state = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start(probe_pods(state.path(), true))
        .await
        .unwrap();
    server.apply_yaml(&web(1, 1)).unwrap();
    let pod = ready_pods(&server, 1).await.remove(0);
    let url = format!("{}/api/v1/namespaces/{NS}/pods/{}", server.url(), pod.name);
    let (status, deleted) =
        support::call("DELETE", &url, Some(server.admin_token()), None, None).await;
    assert_eq!(status, 200, "{deleted}");
    assert!(
        deleted["metadata"]["deletionTimestamp"].is_string(),
        "{deleted}"
    );
    let removed = wait_for(&server, "the pod removed", || {
        server.journal().into_iter().find_map(|e| match e.event {
            JournalEvent::PodRemoved { pod: p, status } if p == pod.name => Some(status),
            _ => None,
        })
    })
    .await;
    assert!(removed.is_some_and(|s| s.contains("SIGKILL")));
    assert!(server.journal().iter().any(|e| e.event
        == JournalEvent::GracePeriodExpired {
            pod: pod.name.clone()
        }));
    server.stop().await;
}

/// Reads newline-delimited watch events until `until` holds for one; returns them all.
async fn read_events(
    mut response: reqwest::Response,
    until: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let (mut buffer, mut events) = (Vec::new(), Vec::new());
    while let Some(chunk) = response.chunk().await.expect("watch chunk") {
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let event: Value = serde_json::from_slice(&line).expect("a JSON event per line");
            let done = until(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }
    events
}

#[tokio::test]
async fn watch_streams_pod_events_from_a_resource_version() {
    let state = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start(probe_pods(state.path(), false))
        .await
        .unwrap();
    server.apply_yaml(&web(0, 5)).unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let pods = format!("{}/api/v1/namespaces/{NS}/pods", server.url());
    let list: Value = client
        .get(format!("{pods}?labelSelector=app%3Dweb"))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    server.scale_by_admin("web", 1).unwrap();
    let pod = ready_pods(&server, 1).await.remove(0);

    // From the listed version: ADDED, then the changes up to Ready, in order.
    let watch = client
        .get(format!(
            "{pods}?watch=true&labelSelector=app%3Dweb&resourceVersion={rv}&timeoutSeconds=30"
        ))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let is_ready = |e: &Value| {
        e["object"]["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    };
    let events = read_events(watch, is_ready).await;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["kind"], "Pod");
    assert_eq!(events[0]["object"]["metadata"]["name"], pod.name.as_str());
    assert!(
        events[1..].iter().all(|e| e["type"] == "MODIFIED"),
        "{events:?}"
    );
    assert!(is_ready(events.last().unwrap()));
    let versions: Vec<u64> = events
        .iter()
        .map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");

    // By name, from now: the deletion-cost patch arrives as MODIFIED; the timeout ends it.
    let now = versions.last().unwrap();
    let watch = client
        .get(format!("{pods}?watch=true&fieldSelector=metadata.name%3D{}&resourceVersion={now}&timeoutSeconds=5", pod.name))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    annotate(&server, &pod.name, DELETION_COST, "-2147483648").await;
    let events = read_events(watch, |_| false).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(
        events[0]["object"]["metadata"]["annotations"][DELETION_COST],
        "-2147483648"
    );

    // Removing the pod is DELETED.
    let watch = client
        .get(format!(
            "{pods}?watch=true&fieldSelector=metadata.name%3D{}&timeoutSeconds=30",
            pod.name
        ))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    server.scale_by_admin("web", 0).unwrap();
    let events = read_events(watch, |e| e["type"] == "DELETED").await;
    assert_eq!(
        events[0]["type"], "ADDED",
        "without a resourceVersion the pod comes first as ADDED"
    );
    assert_eq!(events.last().unwrap()["type"], "DELETED");
    server.stop().await;
}

#[tokio::test]
async fn stop_ends_every_process() {
    let state = tempfile::tempdir().unwrap();
    let server = FakeApiServer::start(
        probe_pods(state.path(), true).pod_start_delay(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    server.apply_yaml(&web(3, 30)).unwrap();
    let pids: Vec<u32> = ready_pods(&server, 3)
        .await
        .iter()
        .filter_map(|p| p.pid)
        .collect();
    assert_eq!(pids.len(), 3);
    server.stop().await;
    for pid in pids {
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err();
        assert!(gone, "process {pid} outlived stop()");
    }
}
