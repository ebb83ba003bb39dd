//! The job store as seen from a Gateway on another node: every call goes to the store
//! service on the server node, found by its process group.

use std::time::Duration;

use async_trait::async_trait;
use marie_protocol::messages::{JobPage, ListQuery};
use marie_protocol::names::STORE_GROUP;
use marie_protocol::store::{NewJobs, StoreMsg, StoreReply};
use marie_protocol::{JobId, JobStatus};
use marie_store::{GatewayStore, Inserted, NewJob, StoreError};
use ractor::rpc::CallResult;
use ractor::{ActorRef, RpcReplyPort, pg};

/// How long a store call may take before the Gateway gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`GatewayStore`] reached through the store service.
#[derive(Clone, Copy, Debug, Default)]
pub struct RemoteStore;

impl RemoteStore {
    async fn call<T>(
        &self,
        msg: impl FnOnce(RpcReplyPort<StoreReply<T>>) -> StoreMsg,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        StoreReply<T>: ractor::Message,
    {
        let service: ActorRef<StoreMsg> = pg::get_members(&STORE_GROUP.to_string())
            .into_iter()
            .next()
            .map(ActorRef::from)
            .ok_or_else(|| {
                StoreError::Backend("the server node (job store) is not connected".into())
            })?;
        match service.call(msg, Some(CALL_TIMEOUT)).await {
            Ok(CallResult::Success(StoreReply(result))) => result.map_err(StoreError::Backend),
            Ok(CallResult::Timeout) => Err(StoreError::Backend(format!(
                "the job store did not answer within {CALL_TIMEOUT:?}"
            ))),
            Ok(CallResult::SenderError) | Err(_) => Err(StoreError::Backend(
                "lost the connection to the job store".into(),
            )),
        }
    }
}

#[async_trait]
impl GatewayStore for RemoteStore {
    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<Inserted>, StoreError> {
        self.call(|reply| StoreMsg::Insert(NewJobs(jobs), reply))
            .await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobStatus>, StoreError> {
        self.call(|reply| StoreMsg::Get(id, reply)).await
    }

    async fn output(&self, id: JobId) -> Result<Option<Vec<u8>>, StoreError> {
        let output = self.call(|reply| StoreMsg::Output(id, reply)).await?;
        Ok(output.map(|o| o.0))
    }

    async fn list(&self, query: ListQuery) -> Result<JobPage, StoreError> {
        self.call(|reply| StoreMsg::List(query, reply)).await
    }
}
