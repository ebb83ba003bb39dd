//! libtorch through tch (the `torch` feature): the device choice and a TorchScript model
//! as a [`Forward`].
//!
//! rustc links with `--as-needed`, which drops `libtorch_cuda.so` because no symbol of it
//! is used directly; libtorch would then silently run on the CPU of a GPU machine.
//! [`load_cuda_libraries`] opens it by hand before the first tch call: where the CUDA
//! libraries are missing (the lean install, a CPU machine) that fails cleanly and the
//! CPU is used.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tch::{CModule, Device, Kind, Tensor};

use crate::config::{DeviceChoice, InputShape};
use crate::error::ModelError;
use crate::forward::{Forward, ForwardError, Loader};

/// Opens `libtorch_cuda.so` (once per process) so that libtorch registers its CUDA
/// backend. Returns whether it could.
pub fn load_cuda_libraries() -> bool {
    static LOADED: OnceLock<bool> = OnceLock::new();
    *LOADED.get_or_init(|| {
        let name = c"libtorch_cuda.so";
        // SAFETY: dlopen with a valid NUL-terminated name; the handle is kept open for
        // the life of the process on purpose (never dlclose'd).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        let loaded = !handle.is_null();
        tracing::debug!(loaded, "dlopen libtorch_cuda.so");
        loaded
    })
}

/// The tch device for `choice`: `auto` is CUDA device 0 when available, else the CPU.
pub fn resolve_device(pool: &str, choice: DeviceChoice) -> Result<Device, ModelError> {
    let cuda = load_cuda_libraries();
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda(n) => {
            let count = if cuda { tch::Cuda::device_count() } else { 0 };
            if i64::try_from(n).is_ok_and(|n| n < count) {
                Ok(Device::Cuda(n))
            } else {
                Err(ModelError::DeviceUnavailable {
                    pool: pool.to_owned(),
                    device: choice.to_string(),
                    reason: format!(
                        "{count} CUDA device(s) found (libtorch_cuda {}); use device = \"auto\" or \"cpu\"",
                        if cuda { "loaded" } else { "not loadable" }
                    ),
                })
            }
        }
    }
}

/// A TorchScript model on one device.
#[derive(Debug)]
pub struct TorchModel {
    module: CModule,
    device: Device,
    shape: InputShape,
}

impl TorchModel {
    /// Loads `path` onto `device` and checks with a zero input that it takes `shape`
    /// and gives `outputs` values per input.
    pub fn load(
        pool: &str,
        path: &Path,
        device: Device,
        shape: InputShape,
        outputs: usize,
    ) -> Result<Self, ModelError> {
        let mut module =
            CModule::load_on_device(path, device).map_err(|e| ModelError::Unreadable {
                pool: pool.to_owned(),
                path: path.to_path_buf(),
                reason: first_line(&e.to_string()),
            })?;
        module.set_eval();
        let model = TorchModel {
            module,
            device,
            shape,
        };
        let does_not_fit = |reason: String| ModelError::DoesNotFit {
            pool: pool.to_owned(),
            reason,
        };
        let trial = Tensor::zeros(model.dims(1), (Kind::Float, device));
        let out = model.forward_tensor(&trial).map_err(|e| {
            does_not_fit(format!(
                "a zero input of shape {:?} fails: {}; check input_shape",
                model.dims(1),
                first_line(&e.to_string())
            ))
        })?;
        let want = [1, i64::try_from(outputs).unwrap_or(i64::MAX)];
        if out.size() != want {
            return Err(does_not_fit(format!(
                "it gives outputs of shape {:?} for one input, but {outputs} labels are configured \
                 (want {want:?}); list one label per model output",
                out.size()
            )));
        }
        Ok(model)
    }

    /// The device it runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The input dimensions of a batch of `n`.
    pub fn dims(&self, n: usize) -> [i64; 4] {
        let dim = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        [
            dim(n),
            dim(self.shape.channels),
            dim(self.shape.height),
            dim(self.shape.width),
        ]
    }

    /// One forward pass on a tensor already on the device, without autograd.
    pub fn forward_tensor(&self, input: &Tensor) -> Result<Tensor, tch::TchError> {
        tch::no_grad(|| self.module.forward_ts(&[input]))
    }
}

impl Forward for TorchModel {
    fn forward(&mut self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>, ForwardError> {
        let flat: Vec<f32> = inputs.concat();
        let run = || -> Result<Vec<Vec<f32>>, tch::TchError> {
            let batch = Tensor::from_slice(&flat)
                .reshape(self.dims(inputs.len()))
                .to_device(self.device);
            let out = self
                .forward_tensor(&batch)?
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous();
            let width = out.size().iter().skip(1).product::<i64>().max(1);
            let values = Vec::<f32>::try_from(out.flatten(0, -1))?;
            Ok(values
                .chunks(usize::try_from(width).unwrap_or(usize::MAX))
                .map(<[f32]>::to_vec)
                .collect())
        };
        run().map_err(|e| ForwardError::from_message(e.to_string()))
    }
}

/// A loader that loads the TorchScript file at `path` for `pool` onto `device`.
pub fn torch_loader(
    pool: &str,
    path: PathBuf,
    device: DeviceChoice,
    shape: InputShape,
    outputs: usize,
) -> Loader {
    let pool = pool.to_owned();
    Arc::new(move || {
        let device = resolve_device(&pool, device)?;
        let model = TorchModel::load(&pool, &path, device, shape, outputs)?;
        tracing::info!(pool = %pool, path = %path.display(), ?device, "TorchScript model ready");
        Ok(Box::new(model) as Box<dyn Forward>)
    })
}

/// libtorch's messages carry a C++ backtrace after the first line.
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}
