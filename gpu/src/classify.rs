//! `classify`: a page image (PNG, JPEG or TIFF) in, `{"label", "score", "scores"}` out.
//! The page is pre-processed as for `image-normalize`, resized to the model's input and
//! sent to the pool's model runner, where it joins a batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use marie_handlers::{Handler, JobInput};
use marie_protocol::HandlerError;
use serde::{Deserialize, Serialize};

use crate::config::InputShape;
use crate::preprocess::page_input;
use crate::runner::ModelRunner;

/// What `classify` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The most likely class.
    pub label: String,
    /// Its probability.
    pub score: f32,
    /// The probability of every class (softmax of the model's logits).
    pub scores: BTreeMap<String, f32>,
}

impl Classification {
    /// The classification for `logits`, one per label in order. `None` when their
    /// counts differ.
    pub fn from_logits(labels: &[String], logits: &[f32]) -> Option<Self> {
        if labels.len() != logits.len() || labels.is_empty() {
            return None;
        }
        let probabilities = softmax(logits);
        let (best, score) =
            probabilities
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, p)| if p > best.1 { (i, p) } else { best },
                );
        Some(Classification {
            label: labels[best].clone(),
            score,
            scores: labels.iter().cloned().zip(probabilities).collect(),
        })
    }
}

/// Probabilities from logits, computed stably (the largest logit subtracted first).
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The `classify` handler of a pool with a model.
#[derive(Debug)]
pub struct Classify {
    runner: Arc<ModelRunner>,
    shape: InputShape,
    labels: Arc<[String]>,
}

impl Classify {
    /// Classifies with `runner`'s model, whose inputs are `shape` and outputs `labels`.
    pub fn new(runner: Arc<ModelRunner>, shape: InputShape, labels: Arc<[String]>) -> Self {
        Classify {
            runner,
            shape,
            labels,
        }
    }
}

#[async_trait]
impl Handler for Classify {
    async fn run(&self, input: JobInput) -> Result<Vec<u8>, HandlerError> {
        let shape = self.shape;
        let payload = input.payload;
        let tensor = tokio::task::spawn_blocking(move || page_input(&payload, shape))
            .await
            .map_err(|e| {
                HandlerError::transient(format!("the pre-processing thread did not finish: {e}"))
            })??;
        let logits = self.runner.infer(tensor).await?;
        let classification =
            Classification::from_logits(&self.labels, &logits).ok_or_else(|| {
                HandlerError::transient(format!(
                    "pool {:?}: the model gave {} outputs for {} labels",
                    self.runner.pool(),
                    logits.len(),
                    self.labels.len()
                ))
            })?;
        serde_json::to_vec(&classification)
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

    fn labels() -> Vec<String> {
        ["letter", "form", "invoice"].map(String::from).to_vec()
    }

    #[test]
    fn the_largest_logit_wins_and_scores_sum_to_one() {
        let c = Classification::from_logits(&labels(), &[0.5, 3.0, -1.0]).expect("fits");
        assert_eq!(c.label, "form");
        let total: f32 = c.scores.values().sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(c.score, c.scores["form"]);
    }

    #[test]
    fn softmax_survives_large_logits() {
        let p = softmax(&[1000.0, 0.0]);
        assert!((p[0] - 1.0).abs() < 1e-6 && p[1] >= 0.0);
    }

    #[test]
    fn a_count_mismatch_is_refused() {
        assert!(Classification::from_logits(&labels(), &[1.0, 2.0]).is_none());
    }
}
