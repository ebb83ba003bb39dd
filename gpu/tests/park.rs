//! Parking drops the model (and with it its device memory); unparking loads it again and
//! records the cold start; the inference metrics reach Prometheus under their names.

mod common;

use common::{LABELS, PromMetrics, fake_loader, gray_of_class, uniform_png};
use marie_gpu::{ModelConfig, ModelHandlers};
use marie_handlers::{Handler, HandlerRegistry, JobInput};
use marie_protocol::{HandlerErrorKind, JobMetadata};

fn job(class: usize) -> JobInput {
    JobInput {
        payload: uniform_png(20, 20, gray_of_class(class)),
        metadata: JobMetadata::default(),
    }
}

fn config() -> ModelConfig {
    ModelConfig {
        max_batch_size: 4,
        max_queue_delay_ms: 1,
        ..ModelConfig::new("unused.pt", [1, 8, 8], &LABELS)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parking_drops_the_model_and_unparking_loads_it_again() {
    let (loader, seen) = fake_loader();
    let prometheus = PromMetrics::new();
    let handlers =
        ModelHandlers::start("gpu-ocr", &config(), loader, prometheus.for_pool("gpu-ocr"))
            .await
            .expect("loads");
    assert_eq!((seen.loads(), seen.alive()), (1, 1));
    handlers
        .classify
        .run(job(2))
        .await
        .expect("runs while loaded");

    handlers.classify.park().await;
    assert_eq!(seen.alive(), 0, "parking dropped the model");
    assert!(!handlers.runner.is_loaded());
    let err = handlers.classify.run(job(2)).await.expect_err("parked");
    assert_eq!(err.kind, HandlerErrorKind::Transient);
    assert!(err.message.contains("parked"), "{}", err.message);

    handlers.classify.unpark().await.expect("unparks");
    assert_eq!(
        (seen.loads(), seen.alive()),
        (2, 1),
        "unparking loaded it again"
    );
    let out = handlers
        .classify
        .run(job(3))
        .await
        .expect("runs after unparking");
    assert!(String::from_utf8_lossy(&out).contains("\"receipt\""));

    let cold_starts =
        prometheus.value("marie_executor_cold_start_seconds_count{executor=\"gpu-ocr\"}");
    assert_eq!(cold_starts, Some(2.0), "{}", prometheus.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_registry_parks_and_unparks_its_shared_model_once() {
    let (loader, seen) = fake_loader();
    let handlers = ModelHandlers::start(
        "gpu-ocr",
        &config(),
        loader,
        PromMetrics::new().for_pool("gpu-ocr"),
    )
    .await
    .expect("loads");
    let mut registry = HandlerRegistry::new();
    for (name, handler) in handlers.named() {
        registry.register(name, handler);
    }
    assert_eq!(registry.names(), ["classify", "infer"]);

    registry.park().await;
    assert_eq!(seen.alive(), 0);
    registry.unpark().await.expect("unparks");
    assert_eq!(
        (seen.loads(), seen.alive()),
        (2, 1),
        "classify and infer share one model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_metrics_are_exported_per_pool_under_their_names() {
    let (loader, _seen) = fake_loader();
    let prometheus = PromMetrics::new();
    let handlers =
        ModelHandlers::start("gpu-ocr", &config(), loader, prometheus.for_pool("gpu-ocr"))
            .await
            .expect("loads");
    for class in 0..4 {
        handlers.classify.run(job(class)).await.expect("classifies");
    }
    let text = prometheus.text();
    let count = prometheus.value("marie_inference_count_total{executor=\"gpu-ocr\"}");
    assert_eq!(count, Some(4.0), "{text}");
    let passes = prometheus
        .value("marie_inference_exec_count_total{executor=\"gpu-ocr\"}")
        .expect("exec count");
    assert!((1.0..=4.0).contains(&passes), "{text}");
    for histogram in [
        "marie_inference_batch_size",
        "marie_inference_queue_seconds",
        "marie_inference_compute_seconds",
    ] {
        let batches = prometheus.value(&format!("{histogram}_count{{executor=\"gpu-ocr\"}}"));
        assert_eq!(batches, Some(passes), "{histogram}: {text}");
        assert!(
            text.contains(&format!("{histogram}_bucket{{executor=\"gpu-ocr\",le=")),
            "{text}"
        );
    }
    let images = prometheus.value("marie_inference_batch_size_sum{executor=\"gpu-ocr\"}");
    assert_eq!(images, Some(4.0), "{text}");
}
