//! `echo`: returns the payload unchanged.

use async_trait::async_trait;
use marie_protocol::HandlerError;

use crate::handler::{Handler, JobInput};

/// The `echo` handler: its output is its payload, byte for byte.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

#[async_trait]
impl Handler for Echo {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, HandlerError> {
        Ok(input.payload)
    }
}
