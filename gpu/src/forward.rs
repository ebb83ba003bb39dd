//! One forward pass over a batch, behind a trait so that the batcher is tested with
//! fakes and runs libtorch (`crate::torch`) in production; and the rule that a batch
//! which runs out of device memory is split in halves and retried before any job fails.

use std::sync::Arc;

/// A model that runs a batch of inputs at once. Lives on the model thread.
pub trait Forward: Send + 'static {
    /// Runs `inputs` (each one input's values, all of the configured shape) as one
    /// pass and returns one output row per input, in order.
    fn forward(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>, ForwardError>;
}

/// Why a forward pass failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The device ran out of memory: a smaller batch may pass.
    #[error("out of device memory: {0}")]
    OutOfMemory(String),
    /// Anything else.
    #[error("the forward pass failed: {0}")]
    Failed(String),
}

impl ForwardError {
    /// Sorts a libtorch error message: CUDA's "out of memory" is [`Self::OutOfMemory`].
    pub fn from_message(message: String) -> Self {
        if message.contains("out of memory") {
            ForwardError::OutOfMemory(message)
        } else {
            ForwardError::Failed(message)
        }
    }
}

/// Builds the model, on the model thread: called at start-up and at every unpark.
pub type Loader = Arc<dyn Fn() -> Result<Box<dyn Forward>, crate::error::ModelError> + Send + Sync>;

/// Runs `inputs` through `model`; on [`ForwardError::OutOfMemory`] splits the batch in
/// halves and retries each, down to single inputs, so that only an input that does not
/// fit alone fails. `passes` records the size of every pass tried.
pub fn forward_splitting(
    model: &mut dyn Forward,
    inputs: &[&[f32]],
    passes: &mut Vec<usize>,
) -> Vec<Result<Vec<f32>, ForwardError>> {
    if inputs.is_empty() {
        return Vec::new();
    }
    passes.push(inputs.len());
    match model.forward(inputs) {
        Ok(rows) if rows.len() == inputs.len() => rows.into_iter().map(Ok).collect(),
        Ok(rows) => {
            let error = ForwardError::Failed(format!(
                "the model gave {} output rows for {} inputs",
                rows.len(),
                inputs.len()
            ));
            vec![Err(error); inputs.len()]
        }
        Err(ForwardError::OutOfMemory(reason)) if inputs.len() > 1 => {
            tracing::warn!(
                batch = inputs.len(),
                %reason,
                "out of device memory; splitting the batch and retrying"
            );
            let (left, right) = inputs.split_at(inputs.len() / 2);
            let mut results = forward_splitting(model, left, passes);
            results.extend(forward_splitting(model, right, passes));
            results
        }
        Err(error) => vec![Err(error); inputs.len()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums each input; runs out of memory above `fits` inputs.
    struct Limited {
        fits: usize,
    }

    impl Forward for Limited {
        fn forward(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>, ForwardError> {
            if inputs.len() > self.fits {
                return Err(ForwardError::from_message(
                    "CUDA out of memory. Tried to allocate 2.00 GiB".into(),
                ));
            }
            Ok(inputs.iter().map(|x| vec![x.iter().sum()]).collect())
        }
    }

    fn inputs(n: usize) -> Vec<Vec<f32>> {
        (0..n).map(|i| vec![i as f32, 1.0]).collect()
    }

    #[test]
    fn out_of_memory_splits_the_batch_until_it_fits() {
        let data = inputs(8);
        let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let mut passes = Vec::new();
        let results = forward_splitting(&mut Limited { fits: 3 }, &refs, &mut passes);
        let sums: Vec<f32> = results
            .into_iter()
            .map(|r| r.expect("fits once split")[0])
            .collect();
        assert_eq!(
            sums,
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "each input its own answer"
        );
        assert_eq!(passes, [8, 4, 2, 2, 4, 2, 2]);
    }

    #[test]
    fn an_input_that_never_fits_fails_as_out_of_memory() {
        let data = inputs(2);
        let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let mut passes = Vec::new();
        let results = forward_splitting(&mut Limited { fits: 0 }, &refs, &mut passes);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(ForwardError::OutOfMemory(_))))
        );
        assert_eq!(passes, [2, 1, 1]);
    }

    #[test]
    fn other_failures_are_not_retried() {
        struct Broken;
        impl Forward for Broken {
            fn forward(&mut self, _: &[&[f32]]) -> Result<Vec<Vec<f32>>, ForwardError> {
                Err(ForwardError::from_message("shape mismatch".into()))
            }
        }
        let data = inputs(4);
        let refs: Vec<&[f32]> = data.iter().map(Vec::as_slice).collect();
        let mut passes = Vec::new();
        let results = forward_splitting(&mut Broken, &refs, &mut passes);
        assert_eq!(passes, [4]);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(ForwardError::Failed(_))))
        );
    }
}
