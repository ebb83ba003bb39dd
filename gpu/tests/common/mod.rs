//! What marie-gpu's tests share: a fake model whose answer each test can predict, page
//! images, the committed fixture, and a Prometheus registry to read metrics from.

#![allow(dead_code)]

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use image::{GrayImage, ImageFormat, Luma};
use marie_gpu::forward::{Forward, ForwardError, Loader};
use marie_gpu::metrics::InferenceMetrics;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, Registry, TextEncoder};

/// The classes of the fixture and of the fake model.
pub const LABELS: [&str; 4] = ["letter", "form", "invoice", "receipt"];

/// What the fake model saw, shared with the test.
#[derive(Debug, Default)]
pub struct Seen {
    /// Size of every forward pass.
    pub passes: Mutex<Vec<usize>>,
    /// Models built.
    pub loads: AtomicUsize,
    /// Models alive now (built and not dropped).
    pub alive: AtomicUsize,
}

impl Seen {
    pub fn passes(&self) -> Vec<usize> {
        self.passes.lock().expect("lock").clone()
    }

    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }
}

/// Answers class `floor(mean * 4)` with logit 5 and 0 elsewhere: a uniform page of gray
/// level [`gray_of_class`] gets its class back.
pub struct FakeModel {
    seen: Arc<Seen>,
    /// Inputs above this many per pass run "out of memory".
    fits: usize,
}

impl Forward for FakeModel {
    fn forward(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>, ForwardError> {
        self.seen.passes.lock().expect("lock").push(inputs.len());
        if inputs.len() > self.fits {
            return Err(ForwardError::from_message(
                "CUDA out of memory (fake)".into(),
            ));
        }
        Ok(inputs
            .iter()
            .map(|x| {
                let mean = x.iter().sum::<f32>() / x.len() as f32;
                let class = ((mean * 4.0) as usize).min(3);
                (0..4).map(|j| if j == class { 5.0 } else { 0.0 }).collect()
            })
            .collect())
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        self.seen.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A loader of fake models that never run out of memory.
pub fn fake_loader() -> (Loader, Arc<Seen>) {
    fake_loader_fitting(usize::MAX)
}

/// A loader of fake models that run out of memory above `fits` inputs per pass.
pub fn fake_loader_fitting(fits: usize) -> (Loader, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    let loader: Loader = Arc::new(move || {
        shared.loads.fetch_add(1, Ordering::SeqCst);
        shared.alive.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeModel {
            seen: shared.clone(),
            fits,
        }) as Box<dyn Forward>)
    });
    (loader, seen)
}

/// The gray level of a uniform page that the fake model puts in `class`.
pub fn gray_of_class(class: usize) -> u8 {
    (((class as f32 + 0.5) / 4.0) * 255.0).round() as u8
}

/// A `width` x `height` PNG of one gray level.
pub fn uniform_png(width: u32, height: u32, level: u8) -> Vec<u8> {
    let image = GrayImage::from_pixel(width, height, Luma([level]));
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .expect("encode PNG");
    out.into_inner()
}

/// A file of the committed fixture (gpu/fixtures/…).
pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

/// The committed sample pages and their true labels.
pub fn sample_pages() -> Vec<(Vec<u8>, String)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("pages.json")).expect("pages.json"))
            .expect("JSON");
    index["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| {
            let bytes =
                std::fs::read(fixture(p["page"].as_str().expect("page"))).expect("page file");
            (bytes, p["label"].as_str().expect("label").to_owned())
        })
        .collect()
}

/// A meter provider exporting to a Prometheus registry, as the node sets it up.
pub struct PromMetrics {
    registry: Registry,
    provider: SdkMeterProvider,
}

impl PromMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .expect("exporter");
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        PromMetrics { registry, provider }
    }

    pub fn for_pool(&self, pool: &str) -> InferenceMetrics {
        InferenceMetrics::with_meter(&self.provider.meter("marie"), pool)
    }

    /// The Prometheus text.
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encode");
        String::from_utf8(out).expect("UTF-8")
    }

    /// The value of the sample line that starts with `prefix` (name and labels).
    pub fn value(&self, prefix: &str) -> Option<f64> {
        self.text()
            .lines()
            .find(|line| line.starts_with(prefix))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}
