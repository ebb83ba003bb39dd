//! A cancel that races its own submit: the job is durable, but the CapacityManager has
//! not queued it yet. The Gateway answers `BeingQueued` (retry in a moment), neither
//! "already ended" nor "the cluster is not ready".
//!
//! Its own test binary: the Gateway finds the CapacityManager through ractor's
//! process-global groups.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use marie_actors::gateway::{Gateway, GatewayArgs};
use marie_decide::admission::{Limits, PoolRules};
use marie_protocol::messages::{CancelAnswer, CapacityMsg, GatewayMsg, Reply};
use marie_protocol::names::CAPACITY_GROUP;
use marie_protocol::{DedupPolicy, GatewayError, JobMetadata, JobSpec, TraceContext};
use marie_store::memory::MemoryStore;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, pg};

/// A CapacityManager that never gets to queue anything: every job is "not live" to it,
/// as a job is between its store write and its `Enqueue`.
struct NotQueuedYet;

impl Actor for NotQueuedYet {
    type Msg = CapacityMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<CapacityMsg>,
        (): (),
    ) -> Result<(), ActorProcessingErr> {
        pg::join(CAPACITY_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<CapacityMsg>,
        msg: CapacityMsg,
        (): &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let CapacityMsg::Cancel(_, reply) = msg {
            let _ = reply.send(CancelAnswer::NotLive);
        }
        Ok(())
    }
}

fn limits() -> Limits {
    let rules = PoolRules {
        handlers: vec!["echo".into()],
        max_queued: 100,
    };
    Limits {
        pools: BTreeMap::from([("extract".to_owned(), rules)]),
        max_payload_bytes: 1024,
        default_max_attempts: 3,
        max_attempts_cap: 10,
        default_timeout_ms: 60_000,
    }
}

fn spec() -> JobSpec {
    JobSpec {
        pool: "extract".into(),
        handler: "echo".into(),
        payload: b"page".to_vec(),
        metadata: JobMetadata::default(),
        priority: 0,
        max_attempts: None,
        timeout_ms: None,
        expire_after_ms: None,
        dedup: DedupPolicy::Off,
        trace: TraceContext::default(),
    }
}

async fn ask<T: Send + 'static>(
    gateway: &ActorRef<GatewayMsg>,
    msg: impl FnOnce(RpcReplyPort<Reply<T>>) -> GatewayMsg,
) -> Result<T, GatewayError>
where
    Reply<T>: ractor::Message,
{
    match gateway.call(msg, Some(Duration::from_secs(30))).await {
        Ok(CallResult::Success(Reply(answer))) => answer,
        _ => panic!("the Gateway did not answer"),
    }
}

#[tokio::test]
async fn a_cancel_before_the_job_is_queued_is_answered_being_queued() {
    let (manager, _) = Actor::spawn(None, NotQueuedYet, ())
        .await
        .expect("the manager starts");
    let args = GatewayArgs {
        store: Arc::new(MemoryStore::new()),
        limits: limits(),
    };
    let (gateway, _) = Actor::spawn(None, Gateway, args)
        .await
        .expect("the Gateway starts");

    let submitted = ask(&gateway, |reply| GatewayMsg::Submit(spec(), reply))
        .await
        .expect("the job is accepted");
    let answer = ask(&gateway, |reply| GatewayMsg::Cancel(submitted.id, reply)).await;

    assert_eq!(answer, Err(GatewayError::BeingQueued(submitted.id)));
    gateway.stop(None);
    manager.stop(None);
}
