//! What libtorch can do on this machine: version, CUDA devices, threads, and the device and
//! dtype the engine picks by default. Printed by `cargo xtask doctor`.

use crate::config::{dtype_name, ModelOptions};

/// A snapshot of the runtime environment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeInfo {
    /// PyTorch version of the libtorch this crate was built against (and loads via rpath).
    pub libtorch_version: String,
    /// Whether this process loaded `libtorch_cuda` (so CUDA works where a GPU is present).
    pub cuda_linked: bool,
    /// Whether a CUDA device is usable now.
    pub cuda_available: bool,
    /// Number of visible CUDA devices.
    pub cuda_devices: usize,
    /// cuDNN version when CUDA is available.
    pub cudnn_version: Option<i64>,
    /// Intra-op threads libtorch uses.
    pub threads: i32,
    /// Device chosen by `auto`.
    pub default_device: String,
    /// Dtype chosen by `auto`.
    pub default_dtype: String,
}

impl RuntimeInfo {
    /// Query libtorch.
    pub fn collect() -> Self {
        let cuda_available = tch::Cuda::is_available();
        let auto = ModelOptions::auto();
        RuntimeInfo {
            libtorch_version: option_env!("F1_LIBTORCH_VERSION").unwrap_or("unknown").to_string(),
            cuda_linked: cuda_library_loaded(),
            cuda_available,
            cuda_devices: if cuda_available { tch::Cuda::device_count() as usize } else { 0 },
            cudnn_version: cuda_available.then(tch::utils::version_cudnn),
            threads: tch::get_num_threads(),
            default_device: format!("{:?}", auto.device),
            default_dtype: dtype_name(auto.dtype).to_string(),
        }
    }
}

impl std::fmt::Display for RuntimeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "libtorch:       {}", self.libtorch_version)?;
        writeln!(f, "libtorch_cuda:  {}", if self.cuda_linked { "loaded" } else { "not loaded (CPU-only libtorch, or dropped at link time)" })?;
        writeln!(f, "CUDA available: {} ({} device(s))", if self.cuda_available { "yes" } else { "no" }, self.cuda_devices)?;
        if let Some(v) = self.cudnn_version {
            writeln!(f, "cuDNN:          {v}")?;
        }
        writeln!(f, "threads:        {}", self.threads)?;
        write!(f, "default:        {} / {}", self.default_device, self.default_dtype)
    }
}

/// Whether `libtorch_cuda.so` is mapped into this process. `tch::utils::has_cuda()` is false on
/// any machine without a GPU, so it cannot tell whether the binary would use one.
fn cuda_library_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains("libtorch_cuda.so"))
}

/// Peak resident set size of this process in MiB, from `/proc/self/status` (`VmHWM`, Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kb / 1024.0)
}
