//! An embedded cluster: the store, a CapacityManager, a Gateway and the executors of
//! every pool, in this process. `marie up` serves it on the cluster port; `marie bench`
//! drives it directly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use marie_actors::capacity_manager::{CapacityManager, CapacityManagerArgs};
use marie_actors::executor::{Executor, ExecutorArgs};
use marie_actors::gateway::{Gateway, GatewayArgs};
use marie_actors::handlers;
use marie_actors::lookup;
use marie_actors::store::JobStore;
use marie_actors::store::memory::MemoryStore;
use marie_actors::store::sqlite::{SqliteOptions, SqliteStore};
use marie_protocol::messages::{CapacityMsg, ExecutorName};
use ractor::{Actor, ActorCell};
use tokio::task::JoinHandle;

use crate::config::{Config, StoreBackend};

/// The running actors of an embedded cluster.
pub struct EmbeddedCluster {
    manager: ActorCell,
    manager_done: JoinHandle<()>,
    gateway: ActorCell,
    executors: Vec<(String, ActorCell, JoinHandle<()>)>,
}

/// Opens the configured store.
pub fn open_store(config: &Config) -> anyhow::Result<Arc<dyn JobStore>> {
    Ok(match config.store.backend {
        StoreBackend::Memory => Arc::new(MemoryStore::new()),
        StoreBackend::Sqlite => {
            let path = config.node.data_dir.join("marie.db");
            let options = SqliteOptions {
                synchronous_full: config.store.sync_full,
                max_batch: config.store.max_batch,
            };
            Arc::new(SqliteStore::open(&path, options)?)
        }
    })
}

impl EmbeddedCluster {
    /// Starts every actor over `store`: the CapacityManager first (it recovers the
    /// queues), then the Gateway, then the executors of each pool.
    pub async fn start(config: &Config, store: Arc<dyn JobStore>) -> anyhow::Result<Self> {
        let tick = Duration::from_millis(config.scheduler.tick_ms.max(1));
        let manager_args = CapacityManagerArgs {
            store: store.clone(),
            scheduler: config.scheduler_config(),
            pools: config.pool_setups(),
            tick,
            heartbeat: Duration::from_millis(config.scheduler.heartbeat_ms.max(1)),
        };
        let (manager, manager_done) =
            Actor::spawn(Some("marie-capacity".into()), CapacityManager, manager_args)
                .await
                .context("the CapacityManager did not start")?;
        let gateway_args = GatewayArgs {
            store,
            limits: config.limits(),
        };
        let gateway_name = format!("{}-gateway", config.node.name);
        let (gateway, _) = Actor::spawn(Some(gateway_name), Gateway, gateway_args)
            .await
            .context("the Gateway did not start")?;
        let mut executors = Vec::new();
        for pool in &config.executor.pools {
            let registry = handlers::registry(&pool.handlers)
                .with_context(|| format!("pool {:?}", pool.name))?;
            for i in 1..=pool.replicas {
                let name = format!("{}-{}-{i}", config.node.name, pool.name);
                let args = ExecutorArgs {
                    name: name.clone(),
                    pool: pool.name.clone(),
                    slots: pool.slots,
                    handlers: registry.clone(),
                };
                let (executor, done) = Actor::spawn(Some(name.clone()), Executor, args)
                    .await
                    .with_context(|| format!("executor {name} did not start"))?;
                executors.push((name, executor.get_cell(), done));
            }
        }
        Ok(EmbeddedCluster {
            manager: manager.get_cell(),
            manager_done,
            gateway: gateway.get_cell(),
            executors,
        })
    }

    /// Drains every executor (running jobs finish, no new ones start) for at most
    /// `drain_timeout`, then stops the Gateway and the CapacityManager, which writes
    /// out every pending state change. Jobs still running at the deadline stay
    /// `running` in the store and re-queue at the next start: nothing is lost.
    pub async fn shutdown(self, drain_timeout: Duration) {
        if let Some(manager) = lookup::capacity_manager() {
            for (name, _, _) in &self.executors {
                let _ = manager.cast(CapacityMsg::Drain(ExecutorName(name.clone())));
            }
        }
        let mut cells = Vec::new();
        let mut done = Vec::new();
        for (_, cell, handle) in self.executors {
            cells.push(cell);
            done.push(handle);
        }
        let drained = async {
            for handle in done {
                let _ = handle.await;
            }
        };
        if tokio::time::timeout(drain_timeout, drained).await.is_err() {
            tracing::warn!(
                ?drain_timeout,
                "executors still busy at the drain deadline; their jobs re-queue at the next start"
            );
            for cell in cells {
                cell.stop(Some("drain deadline".into()));
            }
        }
        // Drain, not stop: completions the executors sent before leaving are still in
        // the CapacityManager's mailbox and must reach the store.
        let _ = self.gateway.drain();
        let _ = self.manager.drain();
        let _ = self.manager_done.await;
    }
}
