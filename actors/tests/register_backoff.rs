//! An executor whose CapacityManager does not answer registers again and again, waiting
//! twice as long each time up to a ceiling; it serves as soon as a CapacityManager
//! answers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    registered_slots, scheduler, sleep_job, start_executor, start_node, submit, wait_for,
};
use marie_protocol::JobState;
use marie_protocol::messages::CapacityMsg;
use marie_protocol::names::CAPACITY_GROUP;
use marie_store::memory::MemoryStore;
use ractor::{Actor, ActorProcessingErr, ActorRef, pg};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Sits in the CapacityManager's group, notes when each registration arrives and never
/// answers it.
struct SilentManager;

impl Actor for SilentManager {
    type Msg = CapacityMsg;
    type State = mpsc::UnboundedSender<Instant>;
    type Arguments = mpsc::UnboundedSender<Instant>;

    async fn pre_start(
        &self,
        myself: ActorRef<CapacityMsg>,
        registrations: mpsc::UnboundedSender<Instant>,
    ) -> Result<Self::State, ActorProcessingErr> {
        pg::join(CAPACITY_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(registrations)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CapacityMsg>,
        msg: CapacityMsg,
        registrations: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Dropping the reply port leaves the caller without an answer.
        if let CapacityMsg::Register(..) = msg {
            registrations.send(Instant::now())?;
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn an_executor_registers_with_doubling_backoff_until_a_manager_answers() {
    let (tx, mut registrations) = mpsc::unbounded_channel();
    let (silent, silent_done) = Actor::spawn(None, SilentManager, tx).await.unwrap();
    let _executor = start_executor("exec-1", 2, None).await;

    let mut at = Vec::new();
    for _ in 0..11 {
        at.push(registrations.recv().await.expect("the executor registers"));
    }
    let gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    assert_eq!(
        gaps,
        [20, 40, 80, 160, 320, 640, 1280, 2000, 2000, 2000],
        "waits between registrations double from 20 ms up to 2 s"
    );

    silent.stop(None);
    silent_done.await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let started = Instant::now();
    let node = start_node(store.clone(), scheduler()).await;
    while registered_slots().await != 2 {
        assert!(
            started.elapsed() <= Duration::from_secs(2),
            "the executor must register within its longest wait of the manager starting"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let id = submit(&node.gateway, sleep_job(100)).await;
    wait_for(&*store, id, "succeeded", |s| s.state == JobState::Succeeded).await;
}
