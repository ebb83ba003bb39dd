//! marie-gpu: libtorch models for Marie executors.
//!
//! A pool with an `[executor.pools.model]` table gets the handlers `classify` (a page
//! image in, a label out) and `infer` (a raw tensor in, the raw output out). Both send
//! their input to the executor's [`runner::ModelRunner`], whose model thread
//! ([`batcher`]) gathers inputs into batches ([`gather`], pure policy with time passed
//! in), runs each batch as one forward pass ([`forward`]; out of device memory → split
//! and retry) and answers each job with its own row. Parking drops the model and its
//! device memory; unparking loads it again and records the cold start ([`metrics`]).
//!
//! libtorch comes in with the `torch` feature ([`torch`] through tch =0.24.0, matching
//! torch 2.11.0; `scripts/setup-libtorch` installs it). Without it everything but the
//! TorchScript loader builds and is tested with fake models, and a pool with a model
//! starts but fails its jobs with a message saying how to build with libtorch.
//!
//! May depend on: `marie-protocol` and `marie-handlers` (the `Handler` trait it
//! implements, and the image normalisation `classify` shares with `image-normalize`).
//! Never on the actors or the store: an executor runs these handlers like any other.

#![warn(missing_docs)]

pub mod batcher;
pub mod classify;
pub mod config;
pub mod error;
pub mod forward;
pub mod gather;
pub mod infer;
pub mod metrics;
pub mod pool;
pub mod preprocess;
pub mod runner;
#[cfg(feature = "torch")]
pub mod torch;

pub use classify::{Classification, Classify};
pub use config::{DeviceChoice, ModelConfig};
pub use error::ModelError;
pub use pool::{MODEL_HANDLERS, ModelHandlers, model_handlers};
pub use runner::ModelRunner;
