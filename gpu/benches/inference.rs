//! Throughput and latency of the page classifier by batch size, through the batcher
//! (the model thread, as jobs use it) and by direct tch forward calls on the same
//! tensors, measured in the same run.
//!
//! ```text
//! cargo bench -p marie-gpu --features torch --bench inference [-- --requests N --clients C --rounds R]
//! ```
//!
//! Every batcher run has the same offered load: `clients` closed-loop callers (64 by
//! default), each sending one input and waiting for its answer before the next. The
//! last three columns compare with the mean direct pass of the same size: "direct pass
//! with copies" is `Forward::forward` alone (the inputs copied into a tensor, the outputs
//! out of it); "pass in model thread" is the same call inside the batcher, while the
//! callers run; "wall time per pass" adds everything else (channels, gathering,
//! answering).

use std::sync::Arc;
use std::time::{Duration, Instant};

use marie_gpu::config::InputShape;
use marie_gpu::forward::Forward;
use marie_gpu::metrics::InferenceMetrics;
use marie_gpu::preprocess::gray_input;
use marie_gpu::runner::ModelRunner;
use marie_gpu::torch::{TorchModel, resolve_device, torch_loader};
use marie_gpu::{DeviceChoice, ModelConfig};
use tch::{Device, Kind, Tensor};

const LABELS: [&str; 4] = ["letter", "form", "invoice", "receipt"];
const SHAPE: InputShape = InputShape {
    channels: 1,
    height: 64,
    width: 64,
};
const BATCH_SIZES: [usize; 3] = [1, 8, 32];

struct Args {
    requests: usize,
    clients: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut args = Args {
        requests: 6000,
        clients: 64,
        rounds: 3,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.windows(2) {
        let value = pair[1].parse().ok();
        match pair[0].as_str() {
            "--requests" => args.requests = value.unwrap_or(args.requests),
            "--clients" => args.clients = value.unwrap_or(args.clients),
            "--rounds" => args.rounds = value.unwrap_or(args.rounds).max(1),
            _ => {}
        }
    }
    args
}

/// A fixture file: from `MARIE_GPU_FIXTURES` when set (a copy of gpu/fixtures on
/// another machine), else from this crate's gpu/fixtures.
fn fixture(path: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("MARIE_GPU_FIXTURES").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures"),
        std::path::PathBuf::from,
    );
    dir.join(path)
}

/// The golden inputs (8 generated pages at 64x64).
fn inputs() -> Vec<Vec<f32>> {
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("golden.json")).expect("golden.json"))
            .expect("JSON");
    golden["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let png = image::open(fixture(case["input"].as_str().expect("input"))).expect("PNG");
            gray_input(&png.into_luma8(), SHAPE)
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

struct Direct {
    images_per_s: f64,
    pass_p50: Duration,
    pass_p99: Duration,
    mean_pass: Duration,
    /// Mean pass through `Forward::forward` (with the copies), without the batcher.
    with_copies: Duration,
}

/// Direct tch forward passes of `batch` inputs on tensors built beforehand.
fn direct(model: &mut TorchModel, inputs: &[Vec<f32>], batch: usize, images: usize) -> Direct {
    let flat: Vec<f32> = inputs
        .iter()
        .cycle()
        .take(batch)
        .flatten()
        .copied()
        .collect();
    let tensor = Tensor::from_slice(&flat)
        .reshape(model.dims(batch))
        .to_device(model.device());
    for _ in 0..5 {
        let _ = model.forward_tensor(&tensor).expect("warm-up");
    }
    let passes = (images / batch).max(20);
    let mut times = Vec::with_capacity(passes);
    let started = Instant::now();
    for _ in 0..passes {
        let t = Instant::now();
        let out = model.forward_tensor(&tensor).expect("forward");
        // Bring the result to the host, as the batcher does, so CUDA work is waited for.
        let _ = out.to_device(Device::Cpu).to_kind(Kind::Float);
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort();
    // The same passes through `Forward::forward`, as the model thread calls it: the
    // inputs copied into a tensor and the outputs out of it, but no batcher around.
    let rows: Vec<&[f32]> = inputs
        .iter()
        .cycle()
        .take(batch)
        .map(Vec::as_slice)
        .collect();
    let started = Instant::now();
    for _ in 0..passes {
        model.forward(&rows).expect("forward");
    }
    let with_copies = started.elapsed() / passes as u32;
    Direct {
        images_per_s: (passes * batch) as f64 / total.as_secs_f64(),
        pass_p50: percentile(&times, 0.5),
        pass_p99: percentile(&times, 0.99),
        mean_pass: total / passes as u32,
        with_copies,
    }
}

struct Batched {
    images_per_s: f64,
    p50: Duration,
    p99: Duration,
    passes: u64,
    mean_pass: Duration,
    /// Mean time of a pass inside the model thread: the forward pass with the copies
    /// of inputs into a tensor and of outputs out of it.
    mean_compute: Duration,
}

/// `requests` inputs through a model runner with `max_batch_size`, from `clients`
/// closed-loop callers.
async fn batched(
    inputs: &[Vec<f32>],
    max_batch_size: usize,
    requests: usize,
    clients: usize,
) -> Batched {
    let config = ModelConfig {
        max_batch_size,
        max_queue_delay_ms: 2,
        device: DeviceChoice::Auto,
        ..ModelConfig::new(fixture("page_classifier.pt"), [1, 64, 64], &LABELS)
    };
    let loader = torch_loader(
        "bench",
        config.path.clone(),
        config.device,
        SHAPE,
        LABELS.len(),
    );
    let runner = Arc::new(ModelRunner::new(
        "bench",
        loader,
        config.policy(),
        InferenceMetrics::register("bench"),
    ));
    runner.load().await.expect("the fixture loads");
    // Warm-up.
    for input in inputs.iter().take(4) {
        runner.infer(input.clone()).await.expect("warm-up");
    }
    let passes_before = runner.stats().forward_passes();
    let compute_before = runner.stats().compute();
    let inputs: Arc<Vec<Vec<f32>>> = Arc::new(inputs.to_vec());
    let per_client = requests.div_ceil(clients);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (runner, inputs) = (runner.clone(), inputs.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let input = inputs[(c + i) % inputs.len()].clone();
                    let t = Instant::now();
                    runner.infer(input).await.expect("infer");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(per_client * clients);
    for task in tasks {
        latencies.extend(task.await.expect("client"));
    }
    let total = started.elapsed();
    let passes = runner.stats().forward_passes() - passes_before;
    let compute = runner.stats().compute() - compute_before;
    runner.park().await;
    latencies.sort();
    Batched {
        images_per_s: latencies.len() as f64 / total.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        passes,
        mean_pass: total / passes.max(1) as u32,
        mean_compute: compute / passes.max(1) as u32,
    }
}

fn main() {
    let args = args();
    let device = resolve_device("bench", DeviceChoice::Auto).expect("device");
    println!(
        "device: {device:?}  (CUDA available: {}, CUDA devices: {}, libtorch threads: {})",
        tch::Cuda::is_available(),
        tch::Cuda::device_count(),
        tch::get_num_threads()
    );
    println!(
        "offered load: {} closed-loop clients, {} requests per batcher run; max_queue_delay 2 ms; median of {} rounds",
        args.clients, args.requests, args.rounds
    );
    let mut model = TorchModel::load(
        "bench",
        &fixture("page_classifier.pt"),
        device,
        SHAPE,
        LABELS.len(),
    )
    .expect("the fixture loads");
    let inputs = inputs();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    println!();
    println!(
        "| max batch | direct tch img/s | direct pass p50 / p99 | batcher img/s | job p50 / p99 | mean batch | direct pass with copies | pass in model thread | wall time per pass |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut bs1 = None;
    let mut results = Vec::new();
    for batch in BATCH_SIZES {
        // Direct and batched runs alternate, `rounds` times; the median round is shown,
        // so that a burst of other work on the machine does not decide the result.
        let mut rounds: Vec<(Direct, Batched)> = (0..args.rounds)
            .map(|_| {
                let d = direct(&mut model, &inputs, batch, args.requests);
                let b = runtime.block_on(batched(&inputs, batch, args.requests, args.clients));
                (d, b)
            })
            .collect();
        rounds.sort_by(|x, y| x.1.images_per_s.total_cmp(&y.1.images_per_s));
        let (d, b) = &rounds[rounds.len() / 2];
        let vs_direct = |t: Duration| {
            let percent = (t.as_secs_f64() / d.mean_pass.as_secs_f64() - 1.0) * 100.0;
            format!("{} ({percent:+.0} %)", ms(t))
        };
        let mean_batch =
            (args.requests.div_ceil(args.clients) * args.clients) as f64 / b.passes.max(1) as f64;
        println!(
            "| {batch} | {:.0} | {} / {} | {:.0} | {} / {} | {mean_batch:.1} | {} | {} | {} |",
            d.images_per_s,
            ms(d.pass_p50),
            ms(d.pass_p99),
            b.images_per_s,
            ms(b.p50),
            ms(b.p99),
            vs_direct(d.with_copies),
            vs_direct(b.mean_compute),
            vs_direct(b.mean_pass),
        );
        if batch == 1 {
            bs1 = Some(b.images_per_s);
        }
        results.push((batch, b.images_per_s));
    }
    if let Some(base) = bs1 {
        println!();
        for (batch, images_per_s) in results.into_iter().skip(1) {
            println!(
                "batching up to {batch}: {:.2}x the throughput of batch-size-1 serving at the same offered load",
                images_per_s / base
            );
        }
    }
}
