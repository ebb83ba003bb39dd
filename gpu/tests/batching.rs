//! Dynamic batching through the real model thread, with a fake model: concurrent jobs
//! share forward passes, each gets its own answer, a corrupt page fails alone, and a
//! batch that runs out of memory is split before any job fails.

mod common;

use std::time::Duration;

use common::{LABELS, fake_loader, fake_loader_fitting, gray_of_class, uniform_png};
use marie_gpu::forward::Loader;
use marie_gpu::{Classification, ModelConfig, ModelHandlers};
use marie_handlers::{Handler, JobInput};
use marie_protocol::{HandlerError, HandlerErrorKind, JobMetadata};

fn config(max_batch_size: usize, max_queue_delay_ms: u64) -> ModelConfig {
    ModelConfig {
        max_batch_size,
        max_queue_delay_ms,
        ..ModelConfig::new("unused.pt", [1, 16, 16], &LABELS)
    }
}

async fn start(config: &ModelConfig, loader: Loader) -> ModelHandlers {
    let metrics = common::PromMetrics::new().for_pool("gpu-ocr");
    ModelHandlers::start("gpu-ocr", config, loader, metrics)
        .await
        .expect("the fake model loads")
}

fn job(payload: Vec<u8>) -> JobInput {
    JobInput {
        payload,
        metadata: JobMetadata::default(),
    }
}

/// Runs every payload through `classify` at once; a test that hangs fails in 30 s.
async fn classify_all(
    handlers: &ModelHandlers,
    payloads: Vec<Vec<u8>>,
) -> Vec<Result<Classification, HandlerError>> {
    let tasks: Vec<_> = payloads
        .into_iter()
        .map(|payload| {
            let classify = handlers.classify.clone();
            tokio::spawn(async move {
                let out = classify.run(job(payload)).await?;
                Ok(serde_json::from_slice::<Classification>(&out).expect("classify answers JSON"))
            })
        })
        .collect();
    let all = async {
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("the job task ends"));
        }
        results
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("the jobs finished in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_share_one_forward_pass_and_each_gets_its_own_answer() {
    let (loader, seen) = fake_loader();
    // A delay far longer than the test: the batch runs because it is full, not by time.
    let handlers = start(&config(16, 3_600_000), loader).await;
    let classes: Vec<usize> = (0..16).map(|i| (i * 7) % 4).collect();
    let payloads = classes
        .iter()
        .map(|&c| uniform_png(40, 50, gray_of_class(c)))
        .collect();

    let results = classify_all(&handlers, payloads).await;

    for (result, class) in results.into_iter().zip(&classes) {
        assert_eq!(result.expect("classified").label, LABELS[*class]);
    }
    assert_eq!(seen.passes(), [16], "16 jobs, one forward pass");
    assert_eq!(handlers.runner.stats().inferences(), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_jobs_runs_in_fewer_passes_than_jobs_within_the_batch_limit() {
    let (loader, seen) = fake_loader();
    // A lone job waits up to 1 s for company: long enough that jobs arriving on a busy
    // machine still share passes; full batches do not wait at all.
    let handlers = start(&config(8, 1_000), loader).await;
    let classes: Vec<usize> = (0..40).map(|i| i % 4).collect();
    let payloads = classes
        .iter()
        .map(|&c| uniform_png(20, 20, gray_of_class(c)))
        .collect();

    let results = classify_all(&handlers, payloads).await;

    for (result, class) in results.into_iter().zip(&classes) {
        assert_eq!(result.expect("classified").label, LABELS[*class]);
    }
    let passes = seen.passes();
    assert!(
        passes.len() < 40,
        "40 jobs took {} passes: {passes:?}",
        passes.len()
    );
    assert!(
        passes.iter().all(|&n| n <= 8),
        "a pass over the limit: {passes:?}"
    );
    assert_eq!(passes.iter().sum::<usize>(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_image_among_good_ones_fails_alone() {
    let (loader, seen) = fake_loader();
    let handlers = start(&config(8, 3_600_000), loader).await;
    let mut payloads: Vec<Vec<u8>> = (0..8)
        .map(|i| uniform_png(30, 30, gray_of_class(i % 4)))
        .collect();
    let mut corrupt = uniform_png(30, 30, 0);
    corrupt.truncate(corrupt.len() / 2);
    payloads.insert(3, corrupt);

    let results = classify_all(&handlers, payloads).await;

    let err = results[3].as_ref().expect_err("the corrupt page fails");
    assert_eq!(err.kind, HandlerErrorKind::InvalidInput, "{}", err.message);
    let good: Vec<&str> = results
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, r)| r.as_ref().expect("a good page succeeds").label.as_str())
        .collect();
    assert_eq!(
        good,
        [
            "letter", "form", "invoice", "receipt", "letter", "form", "invoice", "receipt"
        ]
    );
    assert_eq!(seen.passes(), [8], "the good pages still ran as one batch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_out_of_device_memory_is_split_and_every_job_succeeds() {
    let (loader, seen) = fake_loader_fitting(3);
    let handlers = start(&config(8, 3_600_000), loader).await;
    let payloads = (0..8)
        .map(|i| uniform_png(10, 10, gray_of_class(i % 4)))
        .collect();

    let results = classify_all(&handlers, payloads).await;

    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(
            result.expect("succeeds after the split").label,
            LABELS[i % 4]
        );
    }
    assert_eq!(seen.passes(), [8, 4, 2, 2, 4, 2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_does_not_fit_alone_fails_with_a_retryable_error() {
    let (loader, _seen) = fake_loader_fitting(0);
    let handlers = start(&config(4, 0), loader).await;
    let results = classify_all(&handlers, vec![uniform_png(10, 10, 10)]).await;
    let err = results[0].as_ref().expect_err("no room even for one");
    assert_eq!(err.kind, HandlerErrorKind::Transient);
    assert!(err.message.contains("max_batch_size"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_takes_a_raw_tensor_and_answers_the_raw_output() {
    let (loader, _seen) = fake_loader();
    let handlers = start(&config(4, 0), loader).await;
    let payload: Vec<u8> = std::iter::repeat_n(0.9f32, 16 * 16)
        .flat_map(f32::to_le_bytes)
        .collect();
    let out = handlers.infer.run(job(payload)).await.expect("infers");
    let answer: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(answer["output"], serde_json::json!([0.0, 0.0, 0.0, 5.0]));
    let err = handlers
        .infer
        .run(job(vec![0; 5]))
        .await
        .expect_err("wrong size");
    assert_eq!(err.kind, HandlerErrorKind::InvalidInput);
}
