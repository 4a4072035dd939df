//! 4-bit NormalFloat (NF4) weight quantization with double quantization, as introduced by the
//! QLoRA paper (Dettmers et al., 2023, arXiv:2305.14314, section 3) and implemented by
//! bitsandbytes: weights are split into blocks of 64, each block is scaled by its absolute
//! maximum into [-1, 1], and every value is replaced by the nearest of 16 code values that are
//! quantiles of a standard normal (so each code is equally likely for normally distributed
//! weights). Double quantization stores the per-block absmax constants themselves in 8 bits,
//! in blocks of 256 after subtracting their mean, with one fp32 scale per block.
//!
//! Deviation: bitsandbytes stores the second-level constants with its dynamic 8-bit float map;
//! we store them as symmetric linear int8 (round to nearest of 255 levels per 256-block). The
//! memory is identical (8 bits per absmax) and the added error on a block scale is at most
//! 1/254 of that 256-block's spread, far below the 4-bit error of the weights themselves.

use tch::{Device, Kind, Tensor};

/// The 16 NF4 code values from the QLoRA paper's appendix (as in bitsandbytes `NF4` table).
pub const NF4_CODES: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// Weights per quantization block (QLoRA's choice).
pub const BLOCK: i64 = 64;
/// First-level constants per second-level block.
pub const BLOCK2: i64 = 256;

/// A weight matrix stored in NF4 with double-quantized block scales.
#[derive(Debug)]
pub struct Nf4Tensor {
    /// Two 4-bit codes per byte, first value in the high nibble (bitsandbytes' order).
    packed: Tensor,
    /// int8 codes of the centred absmax constants, one per 64-block.
    absmax_q: Tensor,
    /// fp32 scale per 256-block of absmax constants.
    absmax_scale: Tensor,
    /// Mean of the absmax constants, subtracted before their quantization.
    absmax_offset: f64,
    shape: Vec<i64>,
    numel: i64,
    /// A dequantized copy kept by [`Nf4Tensor::cache_dequantized`] (inference only).
    cache: Option<Tensor>,
}

impl Nf4Tensor {
    /// Quantize `w` (any shape, any float dtype) to NF4 on its device.
    pub fn quantize(w: &Tensor) -> Self {
        let shape = w.size();
        let numel = w.numel() as i64;
        let device = w.device();
        let flat = w.detach().to_kind(Kind::Float).flatten(0, -1);
        let n_blocks = (numel + BLOCK - 1) / BLOCK;
        // Zero-pad to whole blocks; padding quantizes to the 0.0 code and is dropped on the way back.
        let flat = flat.constant_pad_nd([0, n_blocks * BLOCK - numel]);
        let blocks = flat.view([n_blocks, BLOCK]);
        let absmax = blocks.abs().amax(1, false); // (n_blocks,)
        let safe = absmax.clamp_min(f32::MIN_POSITIVE as f64).unsqueeze(1);
        let normed = &blocks / &safe;
        // Nearest code = bucket among the midpoints between consecutive codes.
        let codes = Tensor::from_slice(&NF4_CODES).to_device(device);
        let mids = (codes.narrow(0, 0, 15) + codes.narrow(0, 1, 15)) / 2.0;
        let idx = normed.flatten(0, -1).bucketize(&mids, false, false).to_kind(Kind::Uint8);
        let pairs = idx.view([-1, 2]);
        let packed = pairs.select(1, 0).bitwise_left_shift_tensor_scalar(4).bitwise_or_tensor(&pairs.select(1, 1));
        // Double quantization of the absmax constants.
        let offset = absmax.mean(Kind::Float).double_value(&[]);
        let n2 = (n_blocks + BLOCK2 - 1) / BLOCK2;
        let centred = (&absmax - offset).constant_pad_nd([0, n2 * BLOCK2 - n_blocks]).view([n2, BLOCK2]);
        let scale = centred.abs().amax(1, false).clamp_min(f32::MIN_POSITIVE as f64) / 127.0;
        let absmax_q = (&centred / scale.unsqueeze(1)).round().clamp(-127.0, 127.0).to_kind(Kind::Int8).flatten(0, -1).narrow(0, 0, n_blocks);
        Nf4Tensor { packed, absmax_q, absmax_scale: scale, absmax_offset: offset, shape, numel, cache: None }
    }

    /// The block scales after double-dequantization (n_blocks,), fp32.
    fn absmax(&self) -> Tensor {
        let n_blocks = self.absmax_q.size()[0];
        let scale = self.absmax_scale.repeat_interleave_self_int(BLOCK2, 0, None).narrow(0, 0, n_blocks);
        self.absmax_q.to_kind(Kind::Float) * scale + self.absmax_offset
    }

    /// Dequantize to the original shape in `kind` (done on the fly in every forward pass,
    /// unless [`Nf4Tensor::cache_dequantized`] kept a copy in `kind`).
    pub fn dequantize(&self, kind: Kind) -> Tensor {
        match &self.cache {
            Some(c) if c.kind() == kind => c.shallow_clone(),
            _ => self.dequantize_codes(kind),
        }
    }

    /// Keep the dequantized matrix in `kind` so forward passes stop rebuilding it. For
    /// inference on CPU, where rebuilding every projection for each decoded token costs
    /// several times the matmul itself; outputs are bit-identical (the cache is exactly what
    /// [`Nf4Tensor::dequantize`] computes), at the price of the full-precision memory.
    pub fn cache_dequantized(&mut self, kind: Kind) {
        self.cache = Some(tch::no_grad(|| self.dequantize_codes(kind)));
    }

    /// Bytes held by the dequantized cache (0 without one).
    pub fn cache_nbytes(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.numel() * c.kind().elt_size_in_bytes())
    }

    fn dequantize_codes(&self, kind: Kind) -> Tensor {
        let device = self.packed.device();
        let hi = self.packed.bitwise_right_shift_tensor_scalar(4);
        let lo = self.packed.bitwise_and(15);
        let idx = Tensor::stack(&[hi, lo], 1).flatten(0, -1).to_kind(Kind::Int64);
        let codes = Tensor::from_slice(&NF4_CODES).to_device(device);
        let values = codes.index_select(0, &idx).view([-1, BLOCK]) * self.absmax().unsqueeze(1);
        values.flatten(0, -1).narrow(0, 0, self.numel).view(self.shape.as_slice()).to_kind(kind)
    }

    /// Bytes this representation occupies (codes, int8 constants, fp32 scales and offset).
    pub fn nbytes(&self) -> usize {
        self.packed.numel() + self.absmax_q.numel() + 4 * self.absmax_scale.numel() + 8
    }

    /// Shape of the original matrix.
    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// Device the codes live on.
    pub fn device(&self) -> Device {
        self.packed.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_values_are_the_papers_and_round_trip_exactly() {
        // The table is symmetric at the ends, has an exact zero, 7 negative and 8 positive values.
        assert_eq!((NF4_CODES[0], NF4_CODES[7], NF4_CODES[15]), (-1.0, 0.0, 1.0));
        assert_eq!(NF4_CODES.iter().filter(|c| **c < 0.0).count(), 7);
        // A block whose absmax is 1 and whose values are exactly the codes comes back unchanged
        // (the absmax survives double quantization exactly when every block has the same one).
        let vals: Vec<f32> = (0..BLOCK as usize).map(|i| NF4_CODES[i % 16]).collect();
        let w = Tensor::from_slice(&vals).view([1, BLOCK]).repeat([4, 1]);
        let q = Nf4Tensor::quantize(&w);
        let back = q.dequantize(Kind::Float);
        assert_eq!(Vec::<f32>::try_from(back.flatten(0, -1)).expect("vec"), Vec::<f32>::try_from(w.flatten(0, -1)).expect("vec"));
    }

    #[test]
    fn values_snap_to_the_nearest_code_times_the_block_absmax() {
        // absmax 2: 0.5 -> normalised 0.25 -> nearest code 0.2461 -> 0.4922; -1.0 -> -0.5 ->
        // nearest -0.5251 -> -1.0501; 0.03 -> 0.015 -> nearest 0.0 -> 0.0.
        let mut vals = vec![0.0f32; BLOCK as usize];
        vals[0] = 2.0;
        vals[1] = 0.5;
        vals[2] = -1.0;
        vals[3] = 0.03;
        let q = Nf4Tensor::quantize(&Tensor::from_slice(&vals));
        let back = Vec::<f32>::try_from(q.dequantize(Kind::Float)).expect("vec");
        let want = [2.0, 2.0 * NF4_CODES[10], 2.0 * NF4_CODES[2], 0.0];
        for (i, w) in want.iter().enumerate() {
            assert!((back[i] - w).abs() < 1e-5, "value {i}: {} vs {w}", back[i]);
        }
    }

    #[test]
    fn random_weights_have_small_error_and_take_about_a_quarter_byte_per_weight() {
        tch::manual_seed(0);
        let w = Tensor::randn([96, 200], (Kind::Float, Device::Cpu)) * 0.02; // 19,200 = 300 blocks
        let q = Nf4Tensor::quantize(&w);
        let back = q.dequantize(Kind::Float);
        assert_eq!(back.size(), vec![96, 200]);
        // Mean absolute error of NF4 on normal weights is about 0.1 of the std.
        let mae = (&back - &w).abs().mean(Kind::Float).double_value(&[]);
        assert!(mae < 0.15 * 0.02, "mae {mae}");
        let rel = mae / w.abs().mean(Kind::Float).double_value(&[]);
        assert!(rel > 0.01, "suspiciously exact: {rel}");
        // 0.5 byte per weight + 1 byte per 64 weights + 4 bytes per 16,384 weights.
        let bytes = q.nbytes() as f64 / 19_200.0;
        assert!((0.5..0.53).contains(&bytes), "{bytes} bytes per weight");
        // Odd sizes pad internally and still round-trip their shape.
        let odd = Tensor::randn([3, 7], (Kind::Float, Device::Cpu));
        assert_eq!(Nf4Tensor::quantize(&odd).dequantize(Kind::Float).size(), vec![3, 7]);
    }

    #[test]
    fn the_inference_cache_returns_exactly_the_dequantized_weights() {
        tch::manual_seed(1);
        let w = Tensor::randn([64, 96], (Kind::Float, Device::Cpu));
        let mut q = Nf4Tensor::quantize(&w);
        let fresh = q.dequantize(Kind::Float);
        assert_eq!(q.cache_nbytes(), 0);
        q.cache_dequantized(Kind::Float);
        assert_eq!(q.cache_nbytes(), 64 * 96 * 4);
        assert!(q.dequantize(Kind::Float).equal(&fresh), "cached weights differ from dequantized ones");
        // Another dtype than the cached one is still computed from the codes.
        assert!(q.dequantize(Kind::Double).equal(&fresh.to_kind(Kind::Double)));
    }
}
