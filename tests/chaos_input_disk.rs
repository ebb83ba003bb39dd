//! A full disk under the SQLite store: the node's data dir on a small tmpfs the test
//! mounts (Linux, root), filled up while jobs run. Submits are refused with 507 and a
//! message saying the store is full; the node stays up; the ends of the jobs that were
//! running are kept and written once space is freed; nothing accepted is lost, across a
//! restart too.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Marie;
use serde_json::Value;

const SLEEPY_POOL: &str = r#"
[[executor.pools]]
name = "cpu-general"
replicas = 1
slots = 4
handlers = ["sleep", "echo"]
"#;

/// A tmpfs mounted over a directory, unmounted (lazily, even if busy) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes a filler file until the filesystem has no room left; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("the filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    path
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("a client")
}

fn submit(marie: &Marie, handler: &str, body: Vec<u8>) -> reqwest::blocking::Response {
    http()
        .post(marie.http_url(&format!("/api/jobs?pool=cpu-general&handler={handler}")))
        .body(body)
        .send()
        .expect("POST")
}

fn state_of(marie: &Marie, id: &str) -> Value {
    let body: Value = http()
        .get(marie.http_url(&format!("/api/jobs/{id}?wait=60")))
        .send()
        .expect("GET")
        .json()
        .expect("JSON");
    body["result"].clone()
}

#[test]
fn a_full_disk_refuses_submits_and_keeps_every_accepted_job() {
    let mut marie = Marie::start_with(Some(SLEEPY_POOL), &[]);
    // Move the data dir onto a 32 MiB tmpfs.
    marie.kill();
    let data = marie.dir().join("data");
    let saved = marie.dir().join("data-saved");
    std::fs::rename(&data, &saved).expect("move the data dir aside");
    std::fs::create_dir(&data).expect("a mount point");
    let _tmpfs = Tmpfs::mount(&data, "32m");
    for entry in std::fs::read_dir(&saved).expect("the saved data dir") {
        let entry = entry.expect("an entry");
        std::fs::copy(entry.path(), data.join(entry.file_name())).expect("copy back");
    }
    marie.restart();

    // Jobs running when the disk fills up.
    let running: Vec<String> = (0..4)
        .map(|_| {
            let response = submit(&marie, "sleep", b"3000".to_vec());
            assert_eq!(response.status(), 202);
            let body: Value = response.json().expect("JSON");
            body["result"]["id"].as_str().expect("an id").to_owned()
        })
        .collect();
    let filler = fill(&data);

    // Submits are refused with a message naming the full store; some may still fit
    // (SQLite reuses its write-ahead log's space: up to 16 MiB of them is tried).
    let mut accepted = running.clone();
    let mut refusal = None;
    for _ in 0..1000 {
        let response = submit(&marie, "echo", vec![7; 16 * 1024]);
        match response.status().as_u16() {
            202 => {
                let body: Value = response.json().expect("JSON");
                accepted.push(body["result"]["id"].as_str().expect("an id").to_owned());
            }
            507 => {
                refusal = Some(response.json::<Value>().expect("JSON"));
                break;
            }
            other => panic!("a submit on a full disk got {other}: {:?}", response.text()),
        }
    }
    let refusal = refusal.expect("a submit refused while the disk is full");
    assert_eq!(refusal["error"]["code"], "store_full", "{refusal}");
    let message = refusal["error"]["message"].as_str().expect("a message");
    assert!(message.contains("the job store is full"), "{message}");

    // The node stays up while the running jobs end with nowhere to write.
    std::thread::sleep(Duration::from_secs(4));
    let health = http()
        .get(marie.http_url("/healthz"))
        .send()
        .expect("healthz");
    assert_eq!(health.status(), 200);

    // Room again: every accepted job ends, written once.
    std::fs::remove_file(&filler).expect("free the space");
    for id in &accepted {
        let status = state_of(&marie, id);
        assert_eq!(status["state"], "succeeded", "{status}");
        assert_eq!(status["attempt"], 1, "{status}");
    }
    // And the ends are in the store: a restarted node reads them back.
    marie.kill();
    marie.restart();
    for id in &accepted {
        let status = state_of(&marie, id);
        assert_eq!(status["state"], "succeeded", "after a restart: {status}");
    }
    let log = marie.log(2);
    assert!(
        log.contains("its disk is full"),
        "the full disk is logged:\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
    println!(
        "full disk: {} jobs accepted ({} running when the disk filled), submit refused 507 store_full, \
         all succeeded once after space was freed and after a restart, lost 0",
        accepted.len(),
        running.len()
    );
}
