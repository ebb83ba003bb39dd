//! Failures the node's root does not repair: it stops, and the node exits so that its
//! orchestrator restarts it. (Only the first test starts a CapacityManager: the two
//! share a binary and so a process-group registry.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{scheduler, start_node, wait_until};
use marie_actors::lookup;
use marie_actors::root::{MAX_RESTARTS, NodeRoot, NodeRootArgs};
use marie_store::memory::MemoryStore;
use ractor::{Actor, ActorProcessingErr, ActorRef};

#[tokio::test(start_paused = true)]
async fn a_capacity_manager_that_keeps_failing_ends_the_node() {
    let node = start_node(Arc::new(MemoryStore::new()), scheduler()).await;
    for restart in 0..MAX_RESTARTS {
        let manager = lookup::capacity_manager().expect("the CapacityManager runs");
        manager.kill();
        wait_until("a new CapacityManager joins its group", || {
            lookup::capacity_manager().is_some_and(|m| m.get_id() != manager.get_id())
        })
        .await;
        assert!(
            !node.root_done.is_finished(),
            "restart {} of {MAX_RESTARTS} is allowed",
            restart + 1
        );
    }
    lookup::capacity_manager().unwrap().kill();
    tokio::time::timeout(Duration::from_secs(10), node.root_done)
        .await
        .expect("one failure too many stops the root")
        .unwrap();
}

/// Fails on its first message, as a Gateway or an executor with a bug would.
struct Faulty;

impl Actor for Faulty {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<()>,
        _msg: (),
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        panic!("a bug");
    }
}

#[tokio::test(start_paused = true)]
async fn any_other_failed_actor_ends_the_node() {
    let args = NodeRootArgs { manager: None };
    let (root, root_done) = Actor::spawn(Some("executor-node-root".into()), NodeRoot, args)
        .await
        .unwrap();
    let (drained, _) = Actor::spawn_linked(None, Faulty, (), root.get_cell())
        .await
        .unwrap();
    drained.stop(Some("drained".into()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !root_done.is_finished(),
        "a child that stops normally is no failure"
    );

    let (faulty, _) = Actor::spawn_linked(None, Faulty, (), root.get_cell())
        .await
        .unwrap();
    faulty.cast(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), root_done)
        .await
        .expect("a failed child stops the root")
        .unwrap();
}
