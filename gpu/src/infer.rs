//! `infer`: a raw input tensor in, the model's raw output row out. The payload is the
//! input's values as little-endian `f32`, channel-major, exactly the configured
//! `input_shape`; the answer is `{"output": [..]}`.

use std::sync::Arc;

use async_trait::async_trait;
use marie_handlers::{Handler, JobInput};
use marie_protocol::HandlerError;
use serde::{Deserialize, Serialize};

use crate::config::InputShape;
use crate::runner::ModelRunner;

/// What `infer` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferOutput {
    /// The model's output row for the input.
    pub output: Vec<f32>,
}

/// The `infer` handler of a pool with a model.
#[derive(Debug)]
pub struct Infer {
    runner: Arc<ModelRunner>,
    shape: InputShape,
}

impl Infer {
    /// Runs inputs of `shape` through `runner`'s model.
    pub fn new(runner: Arc<ModelRunner>, shape: InputShape) -> Self {
        Infer { runner, shape }
    }
}

/// Reads a payload of little-endian `f32` values, exactly `shape.len()` of them.
pub fn tensor_from_bytes(payload: &[u8], shape: InputShape) -> Result<Vec<f32>, HandlerError> {
    let want = shape.len() * 4;
    if payload.len() != want {
        return Err(HandlerError::invalid_input(format!(
            "infer takes {} little-endian f32 values ({want} bytes) for input shape [{}, {}, {}]; got {} bytes",
            shape.len(),
            shape.channels,
            shape.height,
            shape.width,
            payload.len()
        )));
    }
    let values: Vec<f32> = payload
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(HandlerError::invalid_input(
            "the input holds NaN or infinite values; send finite f32 values",
        ));
    }
    Ok(values)
}

#[async_trait]
impl Handler for Infer {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, HandlerError> {
        let tensor = tensor_from_bytes(&input.payload, self.shape)?;
        let output = self.runner.infer(tensor).await?;
        serde_json::to_vec(&InferOutput { output })
            .map_err(|e| HandlerError::transient(format!("cannot encode the answer: {e}")))
    }

    async fn park(&self) {
        self.runner.park().await;
    }

    async fn unpark(&self) -> Result<(), HandlerError> {
        self.runner.unpark().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: InputShape = InputShape {
        channels: 1,
        height: 1,
        width: 2,
    };

    #[test]
    fn little_endian_floats_are_read() {
        let bytes: Vec<u8> = [0.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(tensor_from_bytes(&bytes, SHAPE).expect("fits"), [0.5, -2.0]);
    }

    #[test]
    fn a_wrong_length_says_what_is_expected() {
        let err = tensor_from_bytes(&[0; 7], SHAPE).unwrap_err();
        assert!(
            err.message.contains("8 bytes") && err.message.contains("got 7"),
            "{}",
            err.message
        );
    }
}
