//! The kubelet of every simulated pod: starts the pod's process after the start delay,
//! reports Running and the Ready condition from `/readyz`, restarts a process that exits on
//! its own under the same pod name, and on deletion sends SIGTERM, then SIGKILL once the
//! grace period is over, and removes the pod when the process is gone.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ContainerStateTerminated;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::journal::{JournalEvent, TerminationCause};
use crate::options::PodStart;
use crate::pod;
use crate::store::{Key, Store};

/// The grace period of a pod whose template sets none.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// What the kubelet of a pod is told to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    /// SIGKILL the container; it is restarted (a crash, as the kubelet sees it).
    Kill,
    /// The pod was deleted: SIGTERM, SIGKILL after `grace`, then remove the pod.
    Terminate { grace: Duration },
    /// The server stops: SIGKILL and remove the pod.
    Stop,
}

/// Marks the pod deleted (deletionTimestamp) and tells its kubelet to stop it; returns the
/// pod as it now reads, or None when there is no such pod. A pod already terminating is
/// left as it is.
pub(crate) fn terminate(
    cluster: &Cluster,
    store: &mut Store,
    key: &Key,
    cause: TerminationCause,
    grace_seconds: Option<i64>,
) -> Option<k8s_openapi::api::core::v1::Pod> {
    let record = store.pods.get(key)?;
    if pod::is_terminating(&record.pod) {
        return Some(record.pod.clone());
    }
    let template_grace = record
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds);
    let grace = grace_seconds
        .or(template_grace)
        .unwrap_or(DEFAULT_GRACE_SECONDS)
        .max(0);
    let control = record.control.clone();
    store.update_pod(key, |r| {
        r.pod.metadata.deletion_timestamp = Some(pod::now());
        r.pod.metadata.deletion_grace_period_seconds = Some(grace);
    });
    let grace = Duration::from_secs(grace.unsigned_abs());
    cluster.journal.record(JournalEvent::PodTerminating {
        pod: key.1.clone(),
        cause,
        grace,
    });
    // A closed channel means the kubelet is already gone.
    let _ = control.send(Control::Terminate { grace });
    store.pods.get(key).map(|r| r.pod.clone())
}

/// Starts the kubelet task of a new pod.
pub(crate) fn spawn(
    cluster: Arc<Cluster>,
    key: Key,
    deployment: Deployment,
    http_port: u16,
    control: mpsc::UnboundedReceiver<Control>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut kubelet = Kubelet {
            cluster,
            key,
            deployment,
            http_port,
            control,
            stopping: false,
        };
        let status = kubelet.run().await;
        kubelet.remove(status);
    })
}

struct Kubelet {
    cluster: Arc<Cluster>,
    key: Key,
    deployment: Deployment,
    http_port: u16,
    control: mpsc::UnboundedReceiver<Control>,
    /// Deleted or stopped: the next exit removes the pod.
    stopping: bool,
}

impl Kubelet {
    fn pod(&self) -> &str {
        &self.key.1
    }

    /// Runs the pod until it is deleted; returns how its last process ended.
    async fn run(&mut self) -> Option<String> {
        if self
            .wait_unless_stopped(self.cluster.options.pod_start_delay)
            .await
        {
            return None;
        }
        let mut restarts = 0;
        let mut last_exit: Option<ContainerStateTerminated> = None;
        let mut last_status: Option<String> = None;
        loop {
            let Some(child) = self.start(restarts, last_exit.clone()) else {
                if self
                    .wait_unless_stopped(self.cluster.options.restart_backoff)
                    .await
                {
                    return last_status;
                }
                continue;
            };
            let started = self
                .cluster
                .store()
                .pods
                .get(&self.key)
                .and_then(|r| pod::started_at(&r.pod));
            let status = self.supervise(child).await;
            let text = status
                .as_ref()
                .map_or_else(|e| format!("not waited for: {e}"), ExitStatus::to_string);
            if self.stopping {
                return Some(text);
            }
            restarts += 1;
            last_exit = status.ok().map(|s| pod::terminated(&s, started));
            self.cluster.journal.record(JournalEvent::ContainerExited {
                pod: self.pod().into(),
                status: text.clone(),
            });
            last_status = Some(text);
            let exit = last_exit.clone();
            self.cluster.store().update_pod(&self.key, |r| {
                r.pid = None;
                pod::set_waiting(&mut r.pod, "CrashLoopBackOff", exit);
            });
            if self
                .wait_unless_stopped(self.cluster.options.restart_backoff)
                .await
            {
                return last_status;
            }
        }
    }

    /// Waits `duration`; true when the pod was deleted (or the server stopped) meanwhile.
    async fn wait_unless_stopped(&mut self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return false,
                control = self.control.recv() => match control {
                    Some(Control::Kill) => {}
                    Some(Control::Terminate { .. } | Control::Stop) | None => {
                        self.stopping = true;
                        return true;
                    }
                },
            }
        }
    }

    /// Starts the container; None (journaled, pod waiting) when it could not be spawned.
    fn start(
        &mut self,
        restart_count: i32,
        last_exit: Option<ContainerStateTerminated>,
    ) -> Option<Child> {
        let options = &self.cluster.options;
        let start = PodStart {
            namespace: &self.key.0,
            deployment: &self.deployment,
            pod: &self.key.1,
            http_port: self.http_port,
            restart_count,
        };
        let mut command = options.runner.command(&start);
        let spawned = self.configure(&mut command).and_then(|()| command.spawn());
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                let error = e.to_string();
                self.cluster
                    .journal
                    .record(JournalEvent::ContainerFailedToStart {
                        pod: self.pod().into(),
                        error,
                    });
                self.cluster.store().update_pod(&self.key, |r| {
                    pod::set_waiting(&mut r.pod, "RunContainerError", None)
                });
                return None;
            }
        };
        let pid = child.id().unwrap_or_default();
        self.cluster.store().update_pod(&self.key, |r| {
            r.pid = Some(pid);
            pod::set_running(&mut r.pod, restart_count, last_exit);
        });
        self.cluster.journal.record(JournalEvent::ContainerStarted {
            pod: self.pod().into(),
            pid,
            http_port: self.http_port,
            restart_count,
        });
        Some(child)
    }

    /// The kubelet's part of every container: killed with the test, logs to the pod's file.
    fn configure(&self, command: &mut Command) -> std::io::Result<()> {
        command.stdin(Stdio::null()).kill_on_drop(true);
        if let Some(dir) = &self.cluster.options.log_dir {
            std::fs::create_dir_all(dir)?;
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{}.log", self.pod())))?;
            command.stdout(log.try_clone()?).stderr(log);
        }
        // A pod's process must not outlive the test that started it, even when the test
        // process is killed outright.
        // SAFETY: prctl is async-signal-safe and runs in the child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        Ok(())
    }

    /// Probes readiness and obeys control messages until the process exits.
    async fn supervise(&mut self, mut child: Child) -> std::io::Result<ExitStatus> {
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .map(Pid::from_raw);
        let signal = |s: Signal| {
            if let Some(pid) = pid {
                // The process may have exited already; wait() reports it.
                let _ = kill(pid, s);
            }
        };
        let (ready_tx, mut ready_rx) = mpsc::channel(1);
        let probe = tokio::spawn(probe(
            self.http_port,
            self.cluster.options.probe_interval,
            ready_tx,
        ));
        let mut sigkill_at: Option<Instant> = None;
        let mut control_open = true;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(ready) = ready_rx.recv() => self.set_ready(ready),
                control = self.control.recv(), if control_open => match control {
                    Some(Control::Kill) => signal(Signal::SIGKILL),
                    Some(Control::Terminate { grace }) => {
                        if !self.stopping {
                            self.stopping = true;
                            sigkill_at = Some(Instant::now() + grace);
                            signal(Signal::SIGTERM);
                        }
                    }
                    Some(Control::Stop) | None => {
                        control_open = false;
                        self.stopping = true;
                        signal(Signal::SIGKILL);
                    }
                },
                _ = sleep_until_some(sigkill_at) => {
                    sigkill_at = None;
                    self.cluster.journal.record(JournalEvent::GracePeriodExpired { pod: self.pod().into() });
                    signal(Signal::SIGKILL);
                }
            }
        };
        probe.abort();
        status
    }

    fn set_ready(&self, ready: bool) {
        let mut store = self.cluster.store();
        let Some(record) = store.pods.get(&self.key) else {
            return;
        };
        if pod::is_ready(&record.pod) == ready {
            return;
        }
        store.update_pod(&self.key, |r| pod::set_ready(&mut r.pod, ready));
        drop(store);
        self.cluster.journal.record(JournalEvent::ReadinessChanged {
            pod: self.pod().into(),
            ready,
        });
    }

    /// The pod leaves the API; the ReplicaSet notices.
    fn remove(&self, status: Option<String>) {
        self.cluster.store().remove_pod(&self.key);
        self.cluster.journal.record(JournalEvent::PodRemoved {
            pod: self.pod().into(),
            status,
        });
        self.cluster.changed.notify_one();
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Reads `GET http://127.0.0.1:<port>/readyz` every `interval` and sends whether it
/// answered 200.
async fn probe(port: u16, interval: Duration, ready: mpsc::Sender<bool>) {
    let Ok(client) = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}/readyz");
    loop {
        tokio::time::sleep(interval).await;
        let ok = client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == reqwest::StatusCode::OK);
        if ready.send(ok).await.is_err() {
            return;
        }
    }
}
