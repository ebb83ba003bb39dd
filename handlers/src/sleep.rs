//! `sleep`: waits for the number of milliseconds in its payload.

use std::time::Duration;

use async_trait::async_trait;
use marie_protocol::HandlerError;

use crate::handler::{Handler, JobInput};

/// The `sleep` handler: the payload is a number of milliseconds as decimal ASCII text
/// (surrounding whitespace ignored); it sleeps that long and returns the payload
/// unchanged. Useful to test scheduling, timeouts and cancellation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sleep;

#[async_trait]
impl Handler for Sleep {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, HandlerError> {
        let millis = std::str::from_utf8(&input.payload)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                HandlerError::invalid_input(format!(
                    "sleep expects the payload to be a number of milliseconds, e.g. 250; got {}",
                    super::excerpt(&input.payload)
                ))
            })?;
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(input.payload)
    }
}
