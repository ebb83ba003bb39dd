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
use ractor::{ActorRef, MessagingErr, RpcReplyPort, pg};

/// How long a store call may take before the Gateway gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the store service got no answer; the cause of
/// [`StoreError::Unreachable`].
#[derive(Debug, thiserror::Error)]
enum ServiceCall {
    /// No store service is in the cluster: the server node is not connected.
    #[error("no store service is in the cluster")]
    NotConnected,
    /// The service did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The service dropped the call (it stopped, or its node left).
    #[error("the store service dropped the call")]
    Dropped,
    /// The call could not be sent.
    #[error(transparent)]
    Send(#[from] MessagingErr<StoreMsg>),
}

impl From<ServiceCall> for StoreError {
    fn from(call: ServiceCall) -> Self {
        StoreError::Unreachable(Box::new(call))
    }
}

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
            .ok_or(ServiceCall::NotConnected)?;
        match service.call(msg, Some(CALL_TIMEOUT)).await {
            Ok(CallResult::Success(StoreReply(result))) => result.map_err(StoreError::Remote),
            Ok(CallResult::Timeout) => Err(ServiceCall::Timeout(CALL_TIMEOUT).into()),
            Ok(CallResult::SenderError) => Err(ServiceCall::Dropped.into()),
            Err(e) => Err(ServiceCall::from(e).into()),
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
