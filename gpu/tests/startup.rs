//! A pool whose model cannot serve is a clear start-up error naming the pool.

use std::path::PathBuf;

use marie_gpu::{ModelConfig, ModelError, model_handlers};

const LABELS: [&str; 4] = ["letter", "form", "invoice", "receipt"];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/page_classifier.pt")
}

async fn start_error(config: ModelConfig) -> ModelError {
    match model_handlers("gpu-ocr", &config).await {
        Ok(_) => panic!("the pool started with a model that cannot serve"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_missing_model_file_is_a_start_up_error_naming_the_pool_and_the_path() {
    let err = start_error(ModelConfig::new(
        "models/none-such.pt",
        [1, 64, 64],
        &LABELS,
    ))
    .await;
    assert!(matches!(err, ModelError::NotFound { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("pool \"gpu-ocr\""), "{message}");
    assert!(
        message.contains("models/none-such.pt") && message.contains("not found"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_input_shape_is_refused_before_loading() {
    let err = start_error(ModelConfig::new(fixture(), [2, 64, 64], &LABELS)).await;
    assert!(matches!(err, ModelError::InvalidConfig { .. }), "{err:?}");
}

#[cfg(feature = "torch")]
#[tokio::test]
async fn a_file_that_is_not_torchscript_is_unreadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.pt");
    std::fs::write(&path, b"this is not a TorchScript archive").expect("write");
    let err = start_error(ModelConfig::new(&path, [1, 64, 64], &LABELS)).await;
    assert!(matches!(err, ModelError::Unreadable { .. }), "{err:?}");
    assert!(err.to_string().contains("TorchScript"), "{err}");
}

#[cfg(feature = "torch")]
#[tokio::test]
async fn a_model_whose_outputs_do_not_fit_the_labels_is_refused() {
    let err = start_error(ModelConfig::new(fixture(), [1, 64, 64], &LABELS[..3])).await;
    let message = err.to_string();
    assert!(matches!(err, ModelError::DoesNotFit { .. }), "{err:?}");
    assert!(
        message.contains("[1, 4]") && message.contains("3 labels"),
        "{message}"
    );
}

#[cfg(feature = "torch")]
#[tokio::test]
async fn a_model_that_cannot_take_the_input_shape_is_refused() {
    let err = start_error(ModelConfig::new(fixture(), [1, 8, 8], &LABELS)).await;
    assert!(matches!(err, ModelError::DoesNotFit { .. }), "{err:?}");
    assert!(err.to_string().contains("input_shape"), "{err}");
}

#[cfg(feature = "torch")]
#[tokio::test]
async fn a_missing_cuda_device_is_refused() {
    let mut config = ModelConfig::new(fixture(), [1, 64, 64], &LABELS);
    config.device = marie_gpu::DeviceChoice::Cuda(64);
    let err = start_error(config).await;
    assert!(
        matches!(err, ModelError::DeviceUnavailable { .. }),
        "{err:?}"
    );
}
