//! Several `server` nodes on one Postgres store, one leader: every server node runs a
//! Gateway and keeps trying to take the leader's lease ([`keeper`]); the holder alone
//! runs the CapacityManager and the Supervisor (its *term*), over a store handle fenced
//! by the lease's epoch, so that a deposed leader changes nothing.
//!
//! A node that loses the lease (its renewals failed up to the deadline, Postgres being
//! out of reach for instance, or another node took it: seen by a renewal or by a fenced
//! write) **steps down in-process**: its fence is revoked first (nothing the old term
//! still sends reaches the store), then the term's actors stop (bounded by
//! [`STOP_LIMIT`]; killed past it, when a call on a store out of reach holds them), while the Gateway and the HTTP API keep serving (submits answer 503
//! `store_unavailable` while Postgres is out of reach) and the keeper campaigns again.
//! Acquiring the lease again starts a fresh term under a fresh fence; its
//! CapacityManager recovers the live jobs from the store as at any start. The gauges of
//! a stopped term export nothing (OpenTelemetry keeps their callbacks for the life of
//! the process, and a second exporter of `marie_jobs_pending` would be summed by KEDA).
//! The term's CapacityManager ending on its own (failing past its restarts), its
//! Supervisor failing, a term that does not start, or a term that does not stop even
//! killed ends the node, after releasing the lease.
//!
//! Executors and Gateways find the new CapacityManager through its process group, as
//! after an in-process restart; it recovers the live jobs from the store. Executors that
//! still run jobs report them when they register with it, and those runs keep their
//! leases; runs nobody reports within the executor timeout re-queue with the next
//! attempt, and a late answer from such a run is ignored by its attempt number. On
//! SIGTERM the leader stops its Supervisor first, drains its CapacityManager with the
//! rest of the node, then releases the lease so that a standby takes over without
//! waiting for it to expire.

mod keeper;
mod metrics;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marie_store::JobStore;
use marie_store::postgres::PostgresStore;
use marie_store::postgres::fence::Fence;
use ractor::ActorCell;
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
            Lease::Standby { holder: None, .. } | Lease::Lost => None,
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
    /// Ends with an error when the node must exit (the term failed, or did not stop);
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

    /// Resolves when the node must exit: the term failed, did not start, or did not stop
    /// after the lease was lost (the reason is logged).
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

/// How many times a term that did not start (the store out of reach just after the
/// lease was taken) is tried while the lease is held.
const START_TRIES: u32 = 10;
/// How long apart those tries are.
const START_RETRY: Duration = Duration::from_millis(500);

/// The actors of a leader: the CapacityManager under a root of its own, and the
/// Supervisor linked under that root.
struct Term {
    /// The epoch of the lease it leads under.
    epoch: u64,
    root: Running,
    supervisor: Option<Running>,
}

impl TermSetup {
    /// Starts the CapacityManager over the store fenced by `fence`, the lease of `epoch`
    /// (it recovers the live jobs), then the Supervisor.
    async fn start(&self, epoch: u64, fence: Arc<Fence>) -> anyhow::Result<Term> {
        let store: Arc<dyn JobStore> = Arc::new(self.store.fenced(fence));
        let name = format!("{}-leader", self.config.node.name);
        let root = cluster::start_root(&self.config, name, Some(store)).await?;
        let supervisor = match cluster::start_supervisor(&self.config, &self.context, &root.0).await
        {
            Ok(supervisor) => supervisor,
            Err(e) => {
                let (cell, done) = root;
                cell.stop(Some("the Supervisor did not start".into()));
                let _ = done.await;
                return Err(e);
            }
        };
        Ok(Term {
            epoch,
            root,
            supervisor,
        })
    }
}

impl TermSetup {
    /// Starts the term of `epoch`, trying again while it fails and the lease is still
    /// held (up to [`START_TRIES`] times); none when the lease was lost meanwhile.
    async fn start_while_held(
        &self,
        epoch: u64,
        fence: Arc<Fence>,
        lease: &watch::Receiver<Lease>,
    ) -> anyhow::Result<Option<Term>> {
        let held = || matches!(&*lease.borrow(), Lease::Leading { epoch: e, .. } if *e == epoch);
        let mut tries = 1;
        loop {
            match self.start(epoch, fence.clone()).await {
                Ok(term) => return Ok(Some(term)),
                Err(e) if tries < START_TRIES && held() => {
                    tracing::warn!(epoch, tries, error = %format!("{e:#}"), "leader: the CapacityManager or the Supervisor did not start; trying again");
                    tries += 1;
                    tokio::time::sleep(START_RETRY).await;
                }
                Err(_) if !held() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Runs a term while the node leads, steps down when it loses the lease, and answers
/// the node's orders. Ends with an error when the node must exit.
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
                let leading = match now {
                    Lease::Leading { epoch, fence } => Some((epoch, fence)),
                    Lease::Standby { .. } | Lease::Lost => None,
                };
                // A term of another epoch than the one held (none, or a newer one when
                // the loss and the next acquisition came together) steps down first.
                let held = leading.as_ref().map(|(epoch, _)| *epoch);
                if let Some(old) = term.take_if(|t| Some(t.epoch) != held) {
                    step_down(old).await?;
                }
                if let (Some((epoch, fence)), None) = (leading, &term) {
                    match setup.start_while_held(epoch, fence, &lease).await {
                        Ok(started) => term = started,
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "leader: the CapacityManager or the Supervisor did not start; releasing the lease and exiting");
                            let _ = release.send(());
                            let _ = keeper.await;
                            return Err(e);
                        }
                    }
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

/// Stops the term of a lease this node lost (its fence is revoked already); fails when
/// its actors did not stop, even killed, since a fresh term could not take their names.
async fn step_down(term: Term) -> anyhow::Result<()> {
    let epoch = term.epoch;
    if !term.stop().await {
        tracing::error!(
            epoch,
            limit = ?STOP_LIMIT,
            "leader: the CapacityManager or the Supervisor of the lost term did not stop, even killed; exiting so that the node is restarted"
        );
        anyhow::bail!("the actors of a lost leader's term did not stop, even killed");
    }
    tracing::warn!(
        epoch,
        "leader: stepped down, standing by; the Gateway keeps serving and the node campaigns for the lease again"
    );
    Ok(())
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

/// How long a lost term's actors get to stop by themselves, then again once killed,
/// before the node exits.
const STOP_LIMIT: Duration = Duration::from_secs(5);

impl Term {
    /// Stops the Supervisor and the CapacityManager at once (their writes are refused by
    /// now); answers whether they stopped. An actor waiting on a store out of reach
    /// (Postgres cut off: a call on a connection that no longer answers) cannot take the
    /// stop before [`STOP_LIMIT`]: it is killed, which ends the call (its fence is
    /// revoked, so nothing of it can commit), and gets [`STOP_LIMIT`] again.
    async fn stop(self) -> bool {
        let running: Vec<Running> = [self.supervisor, Some(self.root)]
            .into_iter()
            .flatten()
            .collect();
        let cells: Vec<ActorCell> = running.iter().map(|(cell, _)| cell.clone()).collect();
        for cell in &cells {
            cell.stop(Some("the leader's lease was lost".into()));
        }
        let mut stopped = futures::future::join_all(running.into_iter().map(|(_, done)| done));
        if tokio::time::timeout(STOP_LIMIT, &mut stopped).await.is_ok() {
            return true;
        }
        tracing::warn!(
            epoch = self.epoch,
            limit = ?STOP_LIMIT,
            "leader: the CapacityManager or the Supervisor of the lost term did not stop in time (waiting on the store out of reach?); killing them"
        );
        for cell in &cells {
            cell.kill();
        }
        tokio::time::timeout(STOP_LIMIT, stopped).await.is_ok()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use tokio::sync::Notify;

    use super::*;

    /// An actor whose every message waits for good, as a call on a store out of reach;
    /// it says when it started waiting.
    struct Stuck;

    impl Actor for Stuck {
        type Msg = ();
        type State = Arc<Notify>;
        type Arguments = Arc<Notify>;

        async fn pre_start(
            &self,
            _: ActorRef<()>,
            waiting: Arc<Notify>,
        ) -> Result<Arc<Notify>, ActorProcessingErr> {
            Ok(waiting)
        }

        async fn handle(
            &self,
            _: ActorRef<()>,
            _: (),
            waiting: &mut Arc<Notify>,
        ) -> Result<(), ActorProcessingErr> {
            waiting.notify_one();
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn a_lost_term_whose_actor_waits_on_the_store_is_killed_and_stops() {
        let waiting = Arc::new(Notify::new());
        let (actor, done) = Actor::spawn(None, Stuck, waiting.clone())
            .await
            .expect("spawn");
        actor.cast(()).expect("cast");
        waiting.notified().await;
        let term = Term {
            epoch: 1,
            root: (actor.get_cell(), done),
            supervisor: None,
        };
        assert!(term.stop().await, "the stuck term did not stop");
        assert_eq!(actor.get_status(), ractor::ActorStatus::Stopped);
    }
}
