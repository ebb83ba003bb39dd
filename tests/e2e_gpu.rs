//! End-to-end: `marie up` with the default configuration runs the `gpu-ocr` pool's
//! TorchScript page classifier (on the CPU where there is no GPU), and the CLI gets each
//! generated page's class back; a corrupt page fails alone (needs the `torch` feature,
//! which scripts/test turns on). A pool whose model file is missing stops `marie up` at
//! start with a message naming the pool.

mod common;

#[test]
fn a_missing_model_file_stops_marie_up_with_a_message_naming_the_pool() {
    let toml = r#"
[[executor.pools]]
name = "gpu-ocr"
handlers = ["classify"]
[executor.pools.model]
path = "models/missing.pt"
input_shape = [1, 64, 64]
labels = ["letter", "form", "invoice", "receipt"]
"#;
    let (code, stderr) = common::run_with_config(toml, &["up"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("pool \"gpu-ocr\": model file models/missing.pt not found"),
        "{stderr}"
    );
}

/// Classification through the real model: only with libtorch.
#[cfg(feature = "torch")]
mod with_libtorch {
    use std::collections::HashMap;
    use std::io::Cursor;
    use std::path::PathBuf;

    use image::ImageFormat;
    use image::imageops::FilterType;
    use serde_json::Value;

    use super::common::{Marie, write_files};

    /// The generated sample pages of the fixture (gpu/fixtures/make_fixture.py) with their
    /// true labels, each also at twice its size: 24 pages.
    fn pages() -> Vec<(Vec<u8>, String)> {
        let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../gpu/fixtures");
        let index: Value = serde_json::from_slice(
            &std::fs::read(fixtures.join("pages.json")).expect("pages.json"),
        )
        .expect("pages.json is JSON");
        let mut pages = Vec::new();
        for page in index["pages"].as_array().expect("pages") {
            let bytes =
                std::fs::read(fixtures.join(page["page"].as_str().expect("page"))).expect("a page");
            let label = page["label"].as_str().expect("label").to_owned();
            let image = image::load_from_memory(&bytes).expect("a PNG");
            let larger =
                image.resize_exact(image.width() * 2, image.height() * 2, FilterType::Triangle);
            let mut png = Cursor::new(Vec::new());
            larger.write_to(&mut png, ImageFormat::Png).expect("encode");
            pages.push((bytes, label.clone()));
            pages.push((png.into_inner(), label));
        }
        pages
    }

    #[test]
    fn the_gpu_pool_classifies_generated_pages_through_the_cli() {
        let marie = Marie::start();
        let mut pages = pages();
        let corrupt_at = 5;
        pages.insert(
            corrupt_at,
            (b"\x89PNG\r\n\x1a\n truncated".to_vec(), "none".into()),
        );
        let files = write_files(
            &marie.dir().join("pages"),
            pages.iter().map(|(bytes, _)| bytes.clone()),
        );
        let out_dir = marie.dir().join("out");
        let out = out_dir.display().to_string();
        let mut args = vec![
            "submit",
            "--pool",
            "gpu-ocr",
            "--handler",
            "classify",
            "--wait",
            "--json",
        ];
        args.extend(["--output-dir", &out]);
        args.extend(files.iter().map(String::as_str));

        let lines = marie.cli_json_lines(&args);

        let by_file: HashMap<&str, &Value> = lines
            .iter()
            .map(|l| (l["file"].as_str().expect("file"), l))
            .collect();
        assert_eq!(by_file.len(), pages.len(), "{lines:?}");
        for (i, (file, (_, label))) in files.iter().zip(&pages).enumerate() {
            let line = by_file[file.as_str()];
            if i == corrupt_at {
                assert_eq!(line["state"], "failed", "the corrupt page fails: {line}");
                continue;
            }
            assert_eq!(line["state"], "succeeded", "{line}\n{}", marie.log(1));
            let id = line["id"].as_str().expect("id");
            let answer: Value =
                serde_json::from_slice(&std::fs::read(out_dir.join(id)).expect("output written"))
                    .expect("classify answers JSON");
            assert_eq!(answer["label"], label.as_str(), "{file}: {answer}");
            let total: f64 = answer["scores"]
                .as_object()
                .expect("scores")
                .values()
                .filter_map(Value::as_f64)
                .sum();
            assert!((total - 1.0).abs() < 1e-3, "{answer}");
        }
        let corrupt = marie.cli(&[
            "status",
            by_file[files[corrupt_at].as_str()]["id"]
                .as_str()
                .expect("id"),
            "--json",
        ]);
        let status = String::from_utf8_lossy(&corrupt.stdout);
        assert!(status.contains("not a PNG, JPEG or TIFF image"), "{status}");

        // The model's load and its batches are on /metrics, under the pool's name.
        let metrics = reqwest::blocking::get(marie.http_url("/metrics"))
            .and_then(|r| r.text())
            .expect("GET /metrics");
        let value = |prefix: &str| -> f64 {
            metrics
                .lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
        };
        assert_eq!(
            value("marie_inference_count_total{executor=\"gpu-ocr\"}"),
            24.0
        );
        assert_eq!(
            value("marie_executor_cold_start_seconds_count{executor=\"gpu-ocr\"}"),
            1.0
        );
        let passes = value("marie_inference_batch_size_count{executor=\"gpu-ocr\"}");
        assert!(passes < 24.0, "24 pages took {passes} forward passes");
        assert!(marie.log(1).contains("model loaded"), "{}", marie.log(1));
    }

    /// The gpu-ocr pool scaled by the Supervisor, down to zero when idle.
    const PARKING: &str = r#"
[supervisor]
tick_ms = 100

[[executor.pools]]
name = "gpu-ocr"
slots = 4
gpu = true
handlers = ["classify"]
[executor.pools.model]
path = "gpu/fixtures/page_classifier.pt"
input_shape = [1, 64, 64]
labels = ["letter", "form", "invoice", "receipt"]
[executor.pools.autoscale]
min = 0
max = 1
scale_down_window_secs = 1
[executor.pools.autoscale.scale_to_zero]
enabled = true
idle_delay_secs = 1
last_executor_delay_secs = 1
"#;

    fn classify_one(marie: &Marie, page: &[u8]) -> Value {
        let out = marie.cli_with_stdin(
            &[
                "submit",
                "--pool",
                "gpu-ocr",
                "--handler",
                "classify",
                "--wait",
                "--json",
            ],
            page,
        );
        let line: Value = serde_json::from_slice(&out.stdout).expect("submit JSON");
        assert_eq!(line["state"], "succeeded", "{line}\n{}", marie.log(1));
        let id = line["id"].as_str().expect("id");
        serde_json::from_slice(&marie.cli(&["result", id]).stdout).expect("classify JSON")
    }

    fn pool_capacity(marie: &Marie) -> u64 {
        let report: Value =
            serde_json::from_slice(&marie.cli(&["capacity"]).stdout).expect("capacity");
        report["result"]["slots"][0]["capacity"]
            .as_u64()
            .unwrap_or(0)
    }

    #[test]
    fn parking_the_idle_pool_frees_the_model_and_the_next_job_loads_it_again() {
        let marie = Marie::start_with(Some(PARKING), &[]);
        let (page, label) = pages().swap_remove(0);
        let loads = |marie: &Marie| marie.log(1).matches("model loaded").count();
        let parks = |marie: &Marie| marie.log(1).matches("model parked").count();
        // Loaded once to check it at start, then parked: the pool is at zero.
        assert_eq!(pool_capacity(&marie), 0);
        assert_eq!((loads(&marie), parks(&marie)), (1, 1), "{}", marie.log(1));

        for round in 1..=2 {
            assert_eq!(classify_one(&marie, &page)["label"], label.as_str());
            assert_eq!(loads(&marie), 1 + round, "unparking loads the model again");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while pool_capacity(&marie) > 0 || parks(&marie) < 1 + round {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the idle pool did not park:\n{}",
                    marie.log(1)
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}
