//! What libtorch can do on this machine: version, CUDA devices, threads, and the device and
//! dtype the engine picks by default (printed by `cargo xtask doctor`), and the peak memory a
//! phase used: resident (`VmHWM`) and, on a GPU, what the NVIDIA driver reports for this process.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::Nvml;

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

/// How often [`CudaMemoryProbe`] asks the driver. libtorch's caching allocator keeps freed blocks
/// reserved, so the memory the driver sees rarely drops between samples and a peak is not missed.
const CUDA_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// Peak GPU memory of this process while a phase runs, in MiB.
///
/// libtorch keeps the caching allocator's statistics (`torch.cuda.max_memory_allocated`) behind
/// virtual C++ methods: `libc10_cuda.so` exports only the allocator pointer, not a function that
/// could be called without the C++ headers. So this reads what the NVIDIA driver reports instead
/// (NVML, `nvmlDeviceGetComputeRunningProcesses`, the figure `nvidia-smi` shows): a thread
/// samples this process's memory every 100 ms, summed over all GPUs (so the CUDA ordinal and
/// NVML's device order need not agree). It counts the CUDA context and the allocator's cached
/// blocks, so it is larger than PyTorch's `max_memory_allocated`. On a CPU device, or where the
/// driver's library is missing, the probe measures nothing and says why; it never fails.
pub struct CudaMemoryProbe {
    state: ProbeState,
}

enum ProbeState {
    Off(String),
    On(Sampler),
}

struct Sampler {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the sampler thread and the probe both see.
struct Shared {
    nvml: Nvml,
    pid: u32,
    peak_bytes: AtomicU64,
    seen: AtomicBool,
    error: Mutex<Option<String>>,
}

impl CudaMemoryProbe {
    /// Start sampling if `device` is a CUDA device and the NVIDIA driver's library loads.
    pub fn start(device: tch::Device) -> Self {
        if !device.is_cuda() {
            return CudaMemoryProbe { state: ProbeState::Off(format!("the device is {device:?}, not CUDA")) };
        }
        let nvml = match Nvml::init() {
            Ok(nvml) => nvml,
            Err(e) => {
                let reason = format!("NVML (libnvidia-ml.so.1, installed with the NVIDIA driver) is not usable: {e}");
                tracing::debug!("no CUDA memory probe: {reason}");
                return CudaMemoryProbe { state: ProbeState::Off(reason) };
            }
        };
        let shared = Arc::new(Shared { nvml, pid: std::process::id(), peak_bytes: AtomicU64::new(0), seen: AtomicBool::new(false), error: Mutex::new(None) });
        let (stop, stopped) = mpsc::channel::<()>();
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new().name("cuda-memory-probe".into()).spawn(move || loop {
            // A driver error does not go away by asking again: keep the reason and stop.
            if !worker.sample() {
                break;
            }
            if !matches!(stopped.recv_timeout(CUDA_SAMPLE_INTERVAL), Err(RecvTimeoutError::Timeout)) {
                break;
            }
        });
        match thread {
            Ok(thread) => CudaMemoryProbe { state: ProbeState::On(Sampler { shared, stop: Some(stop), thread: Some(thread) }) },
            Err(e) => CudaMemoryProbe { state: ProbeState::Off(format!("could not start the sampling thread: {e}")) },
        }
    }

    /// The highest GPU memory this process held since [`CudaMemoryProbe::start`] (one more
    /// sample is taken now), or `None` when nothing was measured: see [`CudaMemoryProbe::reason`].
    pub fn peak_mib(&self) -> Option<f64> {
        let ProbeState::On(sampler) = &self.state else { return None };
        sampler.shared.sample();
        sampler.shared.seen.load(Ordering::Relaxed).then(|| sampler.shared.peak_bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0))
    }

    /// Why [`CudaMemoryProbe::peak_mib`] is `None` (so far); `None` once a peak was measured.
    pub fn reason(&self) -> Option<String> {
        match &self.state {
            ProbeState::Off(reason) => Some(reason.clone()),
            ProbeState::On(sampler) if sampler.shared.seen.load(Ordering::Relaxed) => None,
            ProbeState::On(sampler) => Some(sampler.shared.error.lock().ok().and_then(|e| e.clone()).unwrap_or_else(|| {
                format!(
                    "NVML never listed this process (pid {}) among any GPU's compute processes: it has no CUDA context yet, \
                     or it runs in a container whose PID namespace hides the host pid NVML reports",
                    sampler.shared.pid
                )
            })),
        }
    }
}

impl Drop for CudaMemoryProbe {
    fn drop(&mut self) {
        if let ProbeState::On(sampler) = &mut self.state {
            drop(sampler.stop.take());
            if let Some(thread) = sampler.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Shared {
    /// Record one sample; false (with the reason kept) if the driver cannot answer.
    fn sample(&self) -> bool {
        match self.own_bytes() {
            Ok(Some(bytes)) => {
                self.peak_bytes.fetch_max(bytes, Ordering::Relaxed);
                self.seen.store(true, Ordering::Relaxed);
                true
            }
            Ok(None) => true,
            Err(reason) => {
                if let Ok(mut e) = self.error.lock() {
                    e.get_or_insert(reason);
                }
                false
            }
        }
    }

    /// This process's GPU memory summed over all devices, `None` if no device lists it.
    fn own_bytes(&self) -> Result<Option<u64>, String> {
        let count = self.nvml.device_count().map_err(|e| format!("NVML device count: {e}"))?;
        let mut processes = vec![];
        for index in 0..count {
            let device = self.nvml.device_by_index(index).map_err(|e| format!("NVML device {index}: {e}"))?;
            // `nvmlDeviceGetComputeRunningProcesses_v3`: drivers R510 (2022) and later.
            let listed = device.running_compute_processes().map_err(|e| match e {
                NvmlError::FailedToLoadSymbol(_) => format!("the NVIDIA driver is older than R510 (no per-process query): {e}"),
                e => format!("NVML compute processes of device {index}: {e}"),
            })?;
            processes.extend(listed);
        }
        own_usage(self.pid, &processes)
    }
}

/// Bytes `pid` holds across `processes` (entries of every GPU), `None` if it is not listed.
fn own_usage(pid: u32, processes: &[ProcessInfo]) -> Result<Option<u64>, String> {
    let mut total = None;
    for p in processes.iter().filter(|p| p.pid == pid) {
        match p.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => *total.get_or_insert(0) += bytes,
            UsedGpuMemory::Unavailable => return Err("NVML lists this process but not its memory (MIG mode, or a driver that withholds it)".into()),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, used: UsedGpuMemory) -> ProcessInfo {
        ProcessInfo { pid, used_gpu_memory: used, gpu_instance_id: None, compute_instance_id: None }
    }

    #[test]
    fn own_usage_sums_this_pid_over_devices() {
        let mib = 1024 * 1024;
        let listed = [process(7, UsedGpuMemory::Used(300 * mib)), process(9, UsedGpuMemory::Used(5000 * mib)), process(7, UsedGpuMemory::Used(200 * mib))];
        assert_eq!(own_usage(7, &listed), Ok(Some(500 * mib)));
        assert_eq!(own_usage(8, &listed), Ok(None));
        let hidden = [process(7, UsedGpuMemory::Unavailable)];
        assert!(own_usage(7, &hidden).is_err_and(|e| e.contains("MIG")));
    }

    #[test]
    fn cpu_device_measures_nothing_and_says_why() {
        let probe = CudaMemoryProbe::start(tch::Device::Cpu);
        assert_eq!(probe.peak_mib(), None);
        assert!(probe.reason().is_some_and(|r| r.contains("not CUDA")), "{:?}", probe.reason());
    }

    /// Without a GPU (this machine, CI) asking for CUDA degrades to `None` with a reason; with
    /// one, a 256 MiB tensor shows up in the peak.
    #[test]
    fn cuda_probe_reports_a_peak_or_a_reason() {
        let probe = CudaMemoryProbe::start(tch::Device::Cuda(0));
        if tch::Cuda::is_available() {
            let _t = tch::Tensor::zeros([64, 1024, 1024], (tch::Kind::Float, tch::Device::Cuda(0)));
            tch::Cuda::synchronize(0);
            let peak = probe.peak_mib();
            assert!(peak.is_some_and(|p| p >= 256.0), "peak {peak:?}, reason {:?}", probe.reason());
            assert_eq!(probe.reason(), None);
        } else {
            assert_eq!(probe.peak_mib(), None);
            let reason = probe.reason();
            assert!(reason.as_ref().is_some_and(|r| r.contains("NVML")), "{reason:?}");
        }
    }
}
