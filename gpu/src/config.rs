//! A pool's model, as configured in `[executor.pools.model]`: which TorchScript file,
//! what it takes and gives, where it runs and how requests are batched.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::gather::BatchPolicy;

/// The model of a pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The TorchScript file. A relative path is looked for from the working directory,
    /// then from each folder above the `marie` executable (see [`ModelConfig::locate`]).
    pub path: PathBuf,
    /// One input without the batch dimension: `[channels, height, width]`, channels 1
    /// (grayscale) or 3 (the gray page in each channel).
    pub input_shape: Vec<usize>,
    /// The class of each model output, in order; the model must give one logit each.
    pub labels: Vec<String>,
    /// Where the model runs.
    #[serde(default)]
    pub device: DeviceChoice,
    /// Most inputs in one forward pass.
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: usize,
    /// Longest the oldest waiting input waits for others to join its batch, in ms.
    #[serde(default = "default_max_queue_delay_ms")]
    pub max_queue_delay_ms: u64,
}

fn default_max_batch_size() -> usize {
    32
}

fn default_max_queue_delay_ms() -> u64 {
    5
}

impl ModelConfig {
    /// A model at `path` for `labels`, with the default device (`auto`) and batching.
    pub fn new(path: impl Into<PathBuf>, input_shape: [usize; 3], labels: &[&str]) -> Self {
        ModelConfig {
            path: path.into(),
            input_shape: input_shape.to_vec(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            device: DeviceChoice::Auto,
            max_batch_size: default_max_batch_size(),
            max_queue_delay_ms: default_max_queue_delay_ms(),
        }
    }

    /// The batching rules.
    pub fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_batch_size: self.max_batch_size.max(1),
            max_queue_delay: Duration::from_millis(self.max_queue_delay_ms),
        }
    }

    /// Checks the values that need no file: the input shape, the labels and the batch
    /// size.
    pub fn validate(&self, pool: &str) -> Result<InputShape, ModelError> {
        let invalid = |reason: String| ModelError::InvalidConfig {
            pool: pool.to_owned(),
            reason,
        };
        let shape = match self.input_shape[..] {
            [channels, height, width] if matches!(channels, 1 | 3) && height > 0 && width > 0 => {
                InputShape {
                    channels,
                    height,
                    width,
                }
            }
            _ => {
                return Err(invalid(format!(
                    "input_shape = {:?}: give [channels, height, width] with channels 1 or 3, e.g. [1, 64, 64]",
                    self.input_shape
                )));
            }
        };
        if self.labels.is_empty() {
            return Err(invalid(
                "labels is empty: list the class of each model output, in order".into(),
            ));
        }
        if self.max_batch_size == 0 {
            return Err(invalid("max_batch_size must be at least 1".into()));
        }
        Ok(shape)
    }

    /// Finds the model file: an absolute path as is; a relative one from the working
    /// directory, then from each folder above the running executable (so
    /// `target/release/marie` finds `gpu/fixtures/…` of its checkout, and an install
    /// `/opt/marie/bin/marie` finds `/opt/marie/models/…`).
    pub fn locate(&self, pool: &str) -> Result<PathBuf, ModelError> {
        let exe_dirs: Vec<PathBuf> = std::env::current_exe()
            .ok()
            .map(|exe| exe.ancestors().skip(1).map(Path::to_path_buf).collect())
            .unwrap_or_default();
        locate_in(pool, &self.path, std::env::current_dir().ok(), &exe_dirs)
    }
}

/// Looks for `path` as [`ModelConfig::locate`] does, with the folders passed in.
pub fn locate_in(
    pool: &str,
    path: &Path,
    working_dir: Option<PathBuf>,
    exe_dirs: &[PathBuf],
) -> Result<PathBuf, ModelError> {
    let candidates: Vec<PathBuf> = if path.is_absolute() {
        vec![path.to_path_buf()]
    } else {
        working_dir
            .iter()
            .chain(exe_dirs)
            .map(|dir| dir.join(path))
            .collect()
    };
    candidates
        .iter()
        .find(|candidate| candidate.is_file())
        .cloned()
        .ok_or_else(|| ModelError::NotFound {
            pool: pool.to_owned(),
            path: path.to_path_buf(),
            searched: candidates,
        })
}

/// One model input's dimensions, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    /// 1 (grayscale) or 3.
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

impl InputShape {
    /// Values in one input.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether an input holds no value (never, once validated).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where a model runs: `"auto"` (CUDA when libtorch_cuda and a device are present, else
/// the CPU), `"cpu"`, or `"cuda:N"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceChoice {
    /// CUDA device 0 when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N; a start-up error where it is missing.
    Cuda(usize),
}

impl TryFrom<String> for DeviceChoice {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let bad =
            || format!("device {text:?}: use \"auto\", \"cpu\" or \"cuda:N\" (e.g. \"cuda:0\")");
        match text.as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(bad),
        }
    }
}

impl From<DeviceChoice> for String {
    fn from(device: DeviceChoice) -> String {
        device.to_string()
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for text in ["auto", "cpu", "cuda:0", "cuda:3"] {
            let device = DeviceChoice::try_from(text.to_owned()).expect("parses");
            assert_eq!(device.to_string(), text);
        }
        assert_eq!(
            DeviceChoice::try_from("cuda".to_owned()),
            Ok(DeviceChoice::Cuda(0))
        );
        let err = DeviceChoice::try_from("gpu".to_owned()).unwrap_err();
        assert!(err.contains("cuda:N"), "{err}");
    }

    #[test]
    fn shapes_and_labels_are_checked() {
        let mut config = ModelConfig::new("m.pt", [1, 64, 64], &["a", "b"]);
        assert_eq!(config.validate("p").expect("valid").len(), 64 * 64);
        config.input_shape = vec![2, 64, 64];
        let err = config.validate("p").unwrap_err().to_string();
        assert!(
            err.contains("pool \"p\"") && err.contains("[1, 64, 64]"),
            "{err}"
        );
        config.input_shape = vec![3, 8, 8];
        config.labels.clear();
        assert!(
            config
                .validate("p")
                .unwrap_err()
                .to_string()
                .contains("labels")
        );
    }

    #[test]
    fn a_relative_path_is_found_above_the_executable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = dir.path().join("models/m.pt");
        std::fs::create_dir_all(model.parent().expect("parent")).expect("mkdir");
        std::fs::write(&model, b"x").expect("write");
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let exe_dirs = vec![dir.path().join("target/release"), dir.path().to_path_buf()];
        let found = locate_in(
            "p",
            Path::new("models/m.pt"),
            Some(elsewhere.path().into()),
            &exe_dirs,
        )
        .expect("found");
        assert_eq!(found, model);
    }

    #[test]
    fn a_missing_file_names_the_pool_and_where_it_looked() {
        let err = locate_in(
            "gpu-ocr",
            Path::new("nope.pt"),
            Some(PathBuf::from("/tmp")),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("gpu-ocr") && err.contains("/tmp/nope.pt"),
            "{err}"
        );
    }
}
