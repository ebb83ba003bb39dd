//! Several `server` nodes on one Postgres store, one leader: every server node runs a
//! Gateway and keeps trying to take the leader's lease ([`keeper`]); the holder alone
//! runs the CapacityManager and the Supervisor (its *term*), over a store handle fenced
//! by the lease's epoch, so that a deposed leader changes nothing.
//!
//! A node that loses the lease (its renewals failed up to the deadline, or another node
//! took it: seen by a renewal or by a fenced write) stops its term at once and **exits
//! with an error**, for its orchestrator (Kubernetes, systemd) to start it again as a
//! standby. Exiting rather than standing by in-process is what guarantees that nothing
//! of the old term lingers: not a CapacityManager timer or mailbox, not a store writer
//! retrying, not a Supervisor backend's processes, and not the queue gauges a stopped
//! CapacityManager has registered (OpenTelemetry keeps their callbacks for the life of
//! the process, and a second exporter of `marie_jobs_pending` would be summed by KEDA).
//! The term's CapacityManager ending on its own (failing past its restarts) or its
//! Supervisor failing also ends the node, after releasing the lease.
//!
//! Executors and Gateways find the new CapacityManager through its process group, as
//! after an in-process restart; it recovers the live jobs from the store. Executors that
//! still run jobs report them when they register with it, and those runs keep their
//! leases; runs nobody reports within the executor timeout re-queue with the next
//! attempt, and a late answer from such a run is ignored by its attempt number. On SIGTERM the leader stops its Supervisor first,
//! drains its CapacityManager with the rest of the node, then releases the lease so that
//! a standby takes over without waiting for it to expire.

mod keeper;
mod metrics;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marie_store::JobStore;
use marie_store::postgres::PostgresStore;
use marie_store::postgres::fence::Fence;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use self::keeper::Lease;
use crate::cluster::{self, NodeContext, Running};
use crate::config::Config;

/// The leader this node knows of, for `/api/nodes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownLeader {
    /// Its node name.
    pub node: String,
    /// Its lease's epoch.
    pub epoch: u64,
}

/// Where this node's view of the lease can be read.
#[derive(Clone)]
pub struct LeaderView {
    node: String,
    lease: watch::Receiver<Lease>,
}

impl LeaderView {
    /// The leader as this node last saw it: itself while it leads, the holder a standby
    /// last found; none when nobody holds the lease or this node just lost it.
    pub fn leader(&self) -> Option<KnownLeader> {
        match &*self.lease.borrow() {
            Lease::Leading { epoch, .. } => Some(KnownLeader {
                node: self.node.clone(),
                epoch: *epoch,
            }),
            Lease::Standby {
                holder: Some(node),
                epoch,
            } => Some(KnownLeader {
                node: node.clone(),
                epoch: *epoch,
            }),
            Lease::Standby { holder: None, .. } | Lease::Lost(_) => None,
        }
    }
}

/// What the node asks of its leadership while it shuts down.
enum Order {
    /// Stop the Supervisor (before the executors drain).
    StopSupervisor(oneshot::Sender<()>),
    /// Drain the CapacityManager, then release the lease.
    Finish(oneshot::Sender<()>),
}

/// A server node's part in the election: the lease keeper and the term it leads.
pub struct Leadership {
    view: LeaderView,
    orders: mpsc::UnboundedSender<Order>,
    /// Ends with an error when the node must exit (the lease lost, the term failed);
    /// `None` once it ended.
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Leadership {
    /// Starts keeping the lease on `store`; the term starts once the lease is acquired.
    pub fn start(
        config: &Config,
        context: &NodeContext,
        store: Arc<PostgresStore>,
    ) -> anyhow::Result<Leadership> {
        let settings = config.leader;
        let lease = store
            .leader_lease(&config.node.name, Duration::from_millis(settings.renew_ms))
            .context("cannot set up the leader's lease")?;
        let (status, watching) = watch::channel(Lease::Standby {
            holder: None,
            epoch: 0,
        });
        let (release, released) = oneshot::channel();
        let keeper = tokio::spawn(keeper::keep(lease, settings, status, released));
        let view = LeaderView {
            node: config.node.name.clone(),
            lease: watching.clone(),
        };
        metrics::register(view.clone());
        let (orders, taken) = mpsc::unbounded_channel();
        let term = TermSetup {
            config: config.clone(),
            context: context.clone(),
            store,
        };
        let task = tokio::spawn(lead(term, watching, taken, (release, keeper)));
        Ok(Leadership {
            view,
            orders,
            task: Some(task),
        })
    }

    /// Where this node's view of the lease can be read.
    pub fn view(&self) -> LeaderView {
        self.view.clone()
    }

    /// Resolves when the node must exit: the lease was lost, or the term failed (the
    /// reason is logged).
    pub async fn failed(&mut self) {
        if let Some(task) = &mut self.task {
            let _ = task.await;
            self.task = None;
        }
    }

    /// Stops the Supervisor of the term, if this node leads.
    pub async fn stop_supervisor(&self) {
        self.order(Order::StopSupervisor).await;
    }

    /// Drains the CapacityManager, if this node leads, then releases the lease.
    pub async fn finish(self) {
        self.order(Order::Finish).await;
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }

    async fn order(&self, order: impl FnOnce(oneshot::Sender<()>) -> Order) {
        let (done, wait) = oneshot::channel();
        if self.orders.send(order(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

/// What a term is started with.
struct TermSetup {
    config: Config,
    context: NodeContext,
    store: Arc<PostgresStore>,
}

/// The actors of a leader: the CapacityManager under a root of its own, and the
/// Supervisor linked under that root.
struct Term {
    root: Running,
    supervisor: Option<Running>,
}

impl TermSetup {
    /// Starts the CapacityManager over the store fenced by `fence` (it recovers the live
    /// jobs), then the Supervisor.
    async fn start(&self, fence: Arc<Fence>) -> anyhow::Result<Term> {
        let store: Arc<dyn JobStore> = Arc::new(self.store.fenced(fence));
        let name = format!("{}-leader", self.config.node.name);
        let root = cluster::start_root(&self.config, name, Some(store)).await?;
        let supervisor = cluster::start_supervisor(&self.config, &self.context, &root.0).await?;
        Ok(Term { root, supervisor })
    }
}

/// Runs the term while the node leads; answers the node's orders. Ends with an error
/// when the node must exit.
async fn lead(
    setup: TermSetup,
    mut lease: watch::Receiver<Lease>,
    mut orders: mpsc::UnboundedReceiver<Order>,
    (release, keeper): (oneshot::Sender<()>, JoinHandle<()>),
) -> anyhow::Result<()> {
    let mut term: Option<Term> = None;
    loop {
        tokio::select! {
            changed = lease.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the leader's lease keeper stopped");
                }
                let now = lease.borrow_and_update().clone();
                match now {
                    Lease::Leading { fence, .. } if term.is_none() => {
                        match setup.start(fence).await {
                            Ok(started) => term = Some(started),
                            Err(e) => {
                                tracing::error!(error = %format!("{e:#}"), "leader: the CapacityManager or the Supervisor did not start; releasing the lease and exiting");
                                let _ = release.send(());
                                let _ = keeper.await;
                                return Err(e);
                            }
                        }
                    }
                    Lease::Lost(loss) => {
                        if let Some(term) = term.take() {
                            term.stop().await;
                        }
                        anyhow::bail!("this node lost the leader's lease ({loss:?})");
                    }
                    _ => {}
                }
            }
            () = ended(term.as_mut()) => {
                tracing::error!("leader: the CapacityManager or the Supervisor ended on its own; releasing the lease and exiting so that the node is restarted");
                let _ = release.send(());
                let _ = keeper.await;
                anyhow::bail!("the leader's CapacityManager or Supervisor ended");
            }
            order = orders.recv() => match order {
                Some(Order::StopSupervisor(done)) => {
                    if let Some((cell, done)) = term.as_mut().and_then(|t| t.supervisor.take()) {
                        cell.stop(Some("shutdown".into()));
                        let _ = done.await;
                    }
                    let _ = done.send(());
                }
                Some(Order::Finish(done)) => {
                    if let Some(term) = term.take() {
                        term.drain().await;
                    }
                    let _ = release.send(());
                    let _ = keeper.await;
                    let _ = done.send(());
                    return Ok(());
                }
                None => return Ok(()),
            },
        }
    }
}

/// Resolves when the term's root ended; never without a term.
async fn ended(term: Option<&mut Term>) {
    match term {
        Some(term) => {
            let _ = (&mut term.root.1).await;
        }
        None => std::future::pending().await,
    }
}

/// How long a lost term's actors get to stop before the node exits anyway.
const STOP_LIMIT: Duration = Duration::from_secs(5);

impl Term {
    /// Stops the Supervisor and the CapacityManager at once (their writes are refused by
    /// now); gives up waiting after [`STOP_LIMIT`].
    async fn stop(self) {
        let stopping = async {
            for (cell, done) in [self.supervisor, Some(self.root)].into_iter().flatten() {
                cell.stop(Some("the leader's lease was lost".into()));
                let _ = done.await;
            }
        };
        let _ = tokio::time::timeout(STOP_LIMIT, stopping).await;
    }

    /// Stops the Supervisor, then drains the CapacityManager: what is in its mailbox
    /// reaches the store.
    async fn drain(self) {
        if let Some((cell, done)) = self.supervisor {
            cell.stop(Some("shutdown".into()));
            let _ = done.await;
        }
        let (cell, done) = self.root;
        cell.stop(Some("shutdown".into()));
        let _ = done.await;
    }
}
