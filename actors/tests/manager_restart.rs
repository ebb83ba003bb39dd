//! The CapacityManager dies mid-work: the node's root starts it again from the store,
//! Gateways and executors find the new one in its process group, and every job ends
//! exactly once.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::{
    ask, restart_capacity_manager, scheduler, sleep_job, start_executor, start_node, submit,
    wait_for,
};
use marie_protocol::messages::{GatewayMsg, ListQuery};
use marie_protocol::{JobId, JobState};
use marie_store::GatewayStore;
use marie_store::memory::MemoryStore;

#[tokio::test(start_paused = true)]
async fn a_killed_capacity_manager_is_restarted_from_the_store_and_no_job_is_lost_or_doubled() {
    let store = Arc::new(MemoryStore::new());
    let node = start_node(store.clone(), scheduler()).await;
    for name in ["exec-1", "exec-2"] {
        start_executor(name, 2, Some(&node.root)).await;
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(submit(&node.gateway, sleep_job(300)).await);
    }
    wait_for(&*store, ids[3], "succeeded", |s| {
        s.state == JobState::Succeeded
    })
    .await;

    restart_capacity_manager().await;

    // Jobs accepted after the restart run too.
    for _ in 0..5 {
        ids.push(submit(&node.gateway, sleep_job(300)).await);
    }
    for id in &ids {
        let done = wait_for(&*store, *id, "ended", |s| s.state.is_terminal()).await;
        assert_eq!(done.state, JobState::Succeeded, "{done:?}");
        assert_eq!(store.output(*id).await.unwrap(), Some(b"300".to_vec()));
    }
    let query = ListQuery {
        limit: 1000,
        ..ListQuery::default()
    };
    let page = ask(&node.gateway, |reply| GatewayMsg::List(query, reply))
        .await
        .unwrap();
    let listed: BTreeSet<JobId> = page.jobs.iter().map(|j| j.id).collect();
    assert_eq!(page.jobs.len(), ids.len(), "no job is stored twice");
    assert_eq!(listed, ids.iter().copied().collect(), "no job is lost");
    assert!(!node.root_done.is_finished(), "the node keeps running");
}
