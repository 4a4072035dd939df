//! Timing helpers shared by the `train_step` and `peer` benches.

use std::time::Instant;

use tch::{Device, Kind, Tensor};

/// Median (mean of the middle two for an even count; NaN when empty).
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// fp32 matmul GFLOP/s (1024^3, 4 per timing, median of 5 after a warm-up): the MFU yardstick,
/// measured in the same run (shared with the `train_step` bench).
pub fn matmul_peak_gflops() -> f64 {
    let n = 1024i64;
    let a = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([n, n], (Kind::Float, Device::Cpu));
    let _ = a.matmul(&b);
    let times: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..4 {
                let _ = a.matmul(&b);
            }
            t.elapsed().as_secs_f64() / 4.0
        })
        .collect();
    2.0 * (n as f64).powi(3) / median(&times) / 1e9
}
