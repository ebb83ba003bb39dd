//! The Supervisor's `process` backend: each executor is a `marie node --role executor`
//! process on this machine, joined to the cluster through this node. Released
//! executors get SIGTERM (they have drained already) and are reaped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use async_trait::async_trait;
use marie_actors::supervisor::{BackendError, ScaleBackend};
use tokio::process::{Child, Command};

/// Starts executor node processes.
pub struct ProcessBackend {
    exe: PathBuf,
    config: Option<PathBuf>,
    node: String,
    seed: String,
    cookie: String,
    data_dir: PathBuf,
    children: Mutex<BTreeMap<String, (String, Child)>>,
    next: Mutex<u64>,
}

impl ProcessBackend {
    /// A backend whose processes join through `seed` with `cookie`, keep their data
    /// under `data_dir/executors/`, and read the same configuration file.
    pub fn new(
        node: &str,
        seed: String,
        cookie: String,
        data_dir: PathBuf,
        config: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        Ok(ProcessBackend {
            exe: std::env::current_exe()?,
            config,
            node: node.to_owned(),
            seed,
            cookie,
            data_dir,
            children: Mutex::default(),
            next: Mutex::default(),
        })
    }

    fn lock_children(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, Child)>> {
        self.children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ScaleBackend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    async fn start(&self, pool: &str) -> Result<Option<String>, BackendError> {
        let n = {
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *next += 1;
            *next
        };
        let node = format!("{}-p{n}", self.node);
        let executor = format!("{node}-{pool}-1");
        let dir = self.data_dir.join("executors").join(&node);
        let failed = |step: String| {
            let executor = executor.as_str();
            move |e: std::io::Error| BackendError::start(executor, step, e)
        };
        std::fs::create_dir_all(&dir).map_err(failed(format!("creating {}", dir.display())))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(failed("finding a free port".into()))?
            .port();
        let log = std::fs::File::create(dir.join("node.log"))
            .map_err(failed(format!("creating {}/node.log", dir.display())))?;
        let mut command = Command::new(&self.exe);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        command
            .args([
                "node",
                "--role",
                "executor",
                "--pool",
                pool,
                "--executors",
                "1",
                "--data-dir",
            ])
            .arg(&dir)
            .env("MARIE_NODE__NAME", &node)
            .env("MARIE_CLUSTER__HOST", "127.0.0.1")
            .env("MARIE_CLUSTER__PORT", port.to_string())
            .env("MARIE_CLUSTER__ADVERTISE", format!("127.0.0.1:{port}"))
            // Probes and metrics on a port of its own.
            .env("MARIE_HTTP__HOST", "127.0.0.1")
            .env("MARIE_HTTP__PORT", "0")
            .env("MARIE_CLUSTER__SEEDS", format!("[\"{}\"]", self.seed))
            .env("MARIE_CLUSTER__COOKIE", &self.cookie)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // An executor process must not outlive the node that started it, even when
        // that node is killed outright: it gets SIGTERM (and drains) when its parent dies.
        // SAFETY: prctl is async-signal-safe and runs in the child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                    .map_err(std::io::Error::from)
            });
        }
        let child = command
            .spawn()
            .map_err(failed(format!("running {}", self.exe.display())))?;
        tracing::info!(pool, %node, pid = child.id(), "started an executor process");
        self.lock_children()
            .insert(executor.clone(), (pool.to_owned(), child));
        Ok(Some(executor))
    }

    async fn release(&self, pool: &str, executor: &str) {
        let Some((_, child)) = self.lock_children().remove(executor) else {
            return;
        };
        stop(pool, executor, child).await;
    }

    async fn shutdown(&self) {
        let children = std::mem::take(&mut *self.lock_children());
        let stops = children
            .into_iter()
            .map(|(executor, (pool, child))| async move { stop(&pool, &executor, child).await });
        futures::future::join_all(stops).await;
    }
}

/// SIGTERM (the executor node drains: its running jobs finish), then waits for it; a
/// process still there after 30 s is killed, and its jobs re-queue.
async fn stop(pool: &str, executor: &str, mut child: Child) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    match tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await {
        Ok(_) => tracing::info!(pool, executor, "executor process stopped"),
        Err(_) => {
            let _ = child.kill().await;
            tracing::warn!(
                pool,
                executor,
                "executor process did not stop in 30 s; killed"
            );
        }
    }
}
