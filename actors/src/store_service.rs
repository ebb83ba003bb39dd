//! The store service: an actor beside the one job store that serves Gateways running on
//! other nodes (see [`crate::remote_store::RemoteStore`]). Each request runs in its own task,
//! so concurrent inserts share the store's group commits.

use std::sync::Arc;

use marie_protocol::messages::JobOutput;
use marie_protocol::names::STORE_GROUP;
use marie_protocol::store::{StoreMsg, StoreReply};
use marie_store::JobStore;
use ractor::{Actor, ActorProcessingErr, ActorRef, pg};

/// The store service actor.
pub struct StoreService;

impl Actor for StoreService {
    type Msg = StoreMsg;
    type State = Arc<dyn JobStore>;
    type Arguments = Arc<dyn JobStore>;

    async fn pre_start(
        &self,
        myself: ActorRef<StoreMsg>,
        store: Arc<dyn JobStore>,
    ) -> Result<Self::State, ActorProcessingErr> {
        pg::join(STORE_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(store)
    }

    async fn handle(
        &self,
        _myself: ActorRef<StoreMsg>,
        msg: StoreMsg,
        store: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let store = store.clone();
        tokio::spawn(async move {
            match msg {
                StoreMsg::Insert(jobs, reply) => {
                    let result = store.insert(jobs.0).await;
                    let _ = reply.send(StoreReply(result.map_err(|e| e.failure())));
                }
                StoreMsg::Get(id, reply) => {
                    let result = store.get(id).await;
                    let _ = reply.send(StoreReply(result.map_err(|e| e.failure())));
                }
                StoreMsg::Output(id, reply) => {
                    let result = store.output(id).await.map(|o| o.map(JobOutput));
                    let _ = reply.send(StoreReply(result.map_err(|e| e.failure())));
                }
                StoreMsg::List(query, reply) => {
                    let result = store.list(query).await;
                    let _ = reply.send(StoreReply(result.map_err(|e| e.failure())));
                }
            }
        });
        Ok(())
    }
}
