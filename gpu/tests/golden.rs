//! The committed fixture through libtorch: Rust's outputs equal the ones Python torch
//! computed (golden.json), alone and in one batch; and the sample pages are classified
//! right through `classify`, batched.
#![cfg(feature = "torch")]

mod common;

use common::{LABELS, PromMetrics, fixture, sample_pages};
use marie_gpu::config::InputShape;
use marie_gpu::forward::Forward;
use marie_gpu::preprocess::gray_input;
use marie_gpu::torch::{TorchModel, resolve_device, torch_loader};
use marie_gpu::{Classification, DeviceChoice, ModelConfig, ModelHandlers, classify::softmax};
use marie_handlers::{Handler, JobInput};
use marie_protocol::JobMetadata;
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;
const SHAPE: InputShape = InputShape {
    channels: 1,
    height: 64,
    width: 64,
};

struct Case {
    input: Vec<f32>,
    logits: Vec<f32>,
    scores: Vec<f32>,
    label: String,
}

fn golden_cases() -> Vec<Case> {
    let golden: Value =
        serde_json::from_slice(&std::fs::read(fixture("golden.json")).expect("golden.json"))
            .expect("JSON");
    assert_eq!(golden["labels"], serde_json::json!(LABELS));
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    };
    golden["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let png =
                image::open(fixture(case["input"].as_str().expect("input"))).expect("golden PNG");
            Case {
                input: gray_input(&png.into_luma8(), SHAPE),
                logits: floats(&case["logits"]),
                scores: floats(&case["scores"]),
                label: case["label"].as_str().expect("label").to_owned(),
            }
        })
        .collect()
}

fn load() -> TorchModel {
    let device = resolve_device("golden", DeviceChoice::Auto).expect("device");
    TorchModel::load(
        "golden",
        &fixture("page_classifier.pt"),
        device,
        SHAPE,
        LABELS.len(),
    )
    .expect("fixture loads")
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= TOLERANCE,
            "{what}: got {got:?}, Python gave {want:?}"
        );
    }
}

#[test]
fn rust_outputs_equal_python_outputs_one_at_a_time() {
    let mut model = load();
    let cases = golden_cases();
    assert_eq!(cases.len(), 8);
    for (i, case) in cases.iter().enumerate() {
        let out = model.forward(&[&case.input]).expect("forward");
        assert_close(&out[0], &case.logits, &format!("logits of case {i}"));
        assert_close(
            &softmax(&out[0]),
            &case.scores,
            &format!("scores of case {i}"),
        );
        let classification =
            Classification::from_logits(&LABELS.map(String::from), &out[0]).expect("fits");
        assert_eq!(classification.label, case.label);
    }
}

#[test]
fn rust_outputs_equal_python_outputs_in_one_batch() {
    let mut model = load();
    let cases = golden_cases();
    let inputs: Vec<&[f32]> = cases.iter().map(|c| c.input.as_slice()).collect();
    let out = model.forward(&inputs).expect("forward");
    for (i, (row, case)) in out.iter().zip(&cases).enumerate() {
        assert_close(row, &case.logits, &format!("batched logits of case {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_pages_are_classified_right_in_shared_batches() {
    let config = ModelConfig {
        max_batch_size: 32,
        max_queue_delay_ms: 3_600_000,
        ..ModelConfig::new(fixture("page_classifier.pt"), [1, 64, 64], &LABELS)
    };
    let shape = config.validate("gpu-ocr").expect("valid");
    let loader = torch_loader(
        "gpu-ocr",
        config.path.clone(),
        config.device,
        shape,
        LABELS.len(),
    );
    let handlers = ModelHandlers::start(
        "gpu-ocr",
        &config,
        loader,
        PromMetrics::new().for_pool("gpu-ocr"),
    )
    .await
    .expect("the fixture loads");
    // 32 jobs (the 12 sample pages, cycled) and a delay of an hour: the batch runs
    // because it is full, so all 32 share one forward pass.
    let pages = sample_pages();
    let jobs: Vec<(Vec<u8>, String)> = pages.iter().cycle().take(32).cloned().collect();
    let tasks: Vec<_> = jobs
        .iter()
        .map(|(payload, _)| {
            let classify = handlers.classify.clone();
            let input = JobInput {
                payload: payload.clone(),
                metadata: JobMetadata::default(),
            };
            tokio::spawn(async move { classify.run(input).await })
        })
        .collect();
    for (task, (_, label)) in tasks.into_iter().zip(&jobs) {
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), task)
            .await
            .expect("in time")
            .expect("task")
            .expect("classified");
        let answer: Classification = serde_json::from_slice(&out).expect("JSON");
        assert_eq!(&answer.label, label, "{answer:?}");
    }
    assert_eq!(
        handlers.runner.stats().forward_passes(),
        1,
        "32 jobs, one forward pass"
    );
}
