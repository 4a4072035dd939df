//! ggml's block formats: dequantization of F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K,
//! Q5_K and Q6_K, and the reference quantizers the writer uses (Q8_0, Q4_0, Q4_1).

use half::{bf16, f16};
use rayon::prelude::*;

use super::GgmlType;

/// Dequantize `n_elements` values of type `dtype` from `bytes`, in parallel over blocks. Fails
/// if `n_elements` is not a whole number of blocks, if `bytes` has the wrong length, or if the
/// type is not supported.
pub fn dequantize(dtype: GgmlType, bytes: &[u8], n_elements: usize) -> std::result::Result<Vec<f32>, String> {
    let decode: fn(&[u8], &mut [f32]) = match dtype {
        GgmlType::F32 => |b, y| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        GgmlType::F16 => |b, y| y[0] = f16_at(b, 0),
        GgmlType::BF16 => |b, y| y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        // Each block starts with its f16 scale d (and, for the _1 types, the f16 offset m).
        GgmlType::Q8_0 => |b, y| {
            let d = f16_at(b, 0);
            y.iter_mut().zip(&b[2..34]).for_each(|(y, &q)| *y = d * f32::from(q as i8));
        },
        GgmlType::Q4_0 => |b, y| {
            let d = f16_at(b, 0);
            unpack_nibbles(&b[2..18], 0, y, |q| d * (f32::from(q) - 8.0));
        },
        GgmlType::Q4_1 => |b, y| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            unpack_nibbles(&b[4..20], 0, y, |q| d * f32::from(q) + m);
        },
        GgmlType::Q5_0 => |b, y| {
            let d = f16_at(b, 0);
            unpack_nibbles(&b[6..22], u32_at(b, 2), y, |q| d * (f32::from(q) - 16.0));
        },
        GgmlType::Q5_1 => |b, y| {
            let (d, m) = (f16_at(b, 0), f16_at(b, 2));
            unpack_nibbles(&b[8..24], u32_at(b, 4), y, |q| d * f32::from(q) + m);
        },
        GgmlType::Q4_K => |b, y| dequant_k_4_5(&b[..16], None, &b[16..144], y),
        GgmlType::Q5_K => |b, y| dequant_k_4_5(&b[..16], Some(&b[16..48]), &b[48..176], y),
        GgmlType::Q6_K => dequant_q6_k,
        other => return Err(format!("unsupported tensor type {other}")),
    };
    let (bs, ts) = (dtype.block_size(), dtype.type_size());
    if !n_elements.is_multiple_of(bs) {
        return Err(format!("{n_elements} elements is not a whole number of {dtype} blocks of {bs}"));
    }
    let expected = n_elements / bs * ts;
    if bytes.len() != expected {
        return Err(format!("{n_elements} {dtype} elements need {expected} bytes, got {}", bytes.len()));
    }
    let mut out = vec![0f32; n_elements];
    // Handing rayon one tiny block at a time would cost more than the work, so each task
    // decodes a run of blocks covering a few thousand values.
    let per_task = (4096 / bs).max(1);
    out.par_chunks_mut(bs * per_task).zip(bytes.par_chunks(ts * per_task)).for_each(|(y, b)| {
        for (yb, bb) in y.chunks_exact_mut(bs).zip(b.chunks_exact(ts)) {
            decode(bb, yb);
        }
    });
    Ok(out)
}

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Writes the 32 values of a 4- or 5-bit block: value j takes the low nibble of byte j and value
/// j+16 its high nibble, and bit j of `qh` (zero for 4-bit types) is the fifth bit of value j.
/// `f` maps the assembled integer to the value.
fn unpack_nibbles(qs: &[u8], qh: u32, y: &mut [f32], f: impl Fn(u8) -> f32) {
    let high = |j: usize| (((qh >> j) & 1) as u8) << 4;
    for j in 0..16 {
        y[j] = f((qs[j] & 0x0F) | high(j));
        y[j + 16] = f((qs[j] >> 4) | high(j + 16));
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K/Q5_K: the
/// first four sub-blocks keep theirs in the low six bits of bytes 0..8, the last four split
/// theirs between the nibbles of bytes 8..12 and the top two bits of bytes 0..8.
fn k_scale_min(scales: &[u8], j: usize) -> (f32, f32) {
    let (sc, m) = if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        ((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4), (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))
    };
    (f32::from(sc), f32::from(m))
}

/// Q4_K and Q5_K share everything but the fifth bit, which `qh` supplies when present. `head`
/// is the f16 super-block scale, the f16 scale of the mins and the 12 packed scale bytes.
fn dequant_k_4_5(head: &[u8], qh: Option<&[u8]>, qs: &[u8], y: &mut [f32]) {
    let (d, dmin, scales) = (f16_at(head, 0), f16_at(head, 2), &head[4..16]);
    for c in 0..4 {
        let q = &qs[32 * c..32 * c + 32];
        for half in 0..2 {
            let sub = 2 * c + half;
            let (sc, m) = k_scale_min(scales, sub);
            let (dl, ml) = (d * sc, dmin * m);
            for l in 0..32 {
                let nibble = if half == 0 { q[l] & 0x0F } else { q[l] >> 4 };
                let hi = qh.map_or(0, |h| ((h[l] >> sub) & 1) << 4);
                y[64 * c + 32 * half + l] = dl * f32::from(nibble | hi) - ml;
            }
        }
    }
}

fn dequant_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for h in 0..2 {
        let ql = &b[64 * h..64 * h + 64];
        let qh = &b[128 + 32 * h..128 + 32 * h + 32];
        let sc = |i: usize| d * f32::from(b[192 + 8 * h + i] as i8);
        let y = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q = |low: u8, shift: u32| f32::from(((low & 0x0F) | (((qh[l] >> shift) & 3) << 4)) as i8 - 32);
            y[l] = sc(is) * q(ql[l], 0);
            y[l + 32] = sc(is + 2) * q(ql[l + 32], 2);
            y[l + 64] = sc(is + 4) * q(ql[l] >> 4, 4);
            y[l + 96] = sc(is + 6) * q(ql[l + 32] >> 4, 6);
        }
    }
}

/// Quantize one 32-value block to Q8_0 (round to nearest, scale from the largest magnitude).
pub(super) fn quant_q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

/// Quantize one block to Q4_0. As in ggml's reference quantizer, the value of largest magnitude
/// (with its sign) maps to -8 so that its side of zero gets the extra level.
pub(super) fn quant_q4_0(x: &[f32], out: &mut Vec<u8>) {
    let max = x.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

/// Quantize one block to Q4_1: 16 levels spanning exactly [min, max].
pub(super) fn quant_q4_1(x: &[f32], out: &mut Vec<u8>) {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
    let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Test quants in 0..n; the quadratic term keeps sub-blocks from repeating each other's
    /// pattern, so a bit taken from the wrong sub-block shows.
    fn pattern(len: usize, n: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 7 + i * i / 13 + 3) % n) as u8).collect()
    }

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "value {i}: got {g}, want {w}");
        }
    }

    /// Packs 32 4-bit values as the 32-value blocks do: value j in the low nibble of byte j,
    /// value j+16 in its high nibble.
    fn nibbles(q: &[u8]) -> Vec<u8> {
        (0..16).map(|j| (q[j] & 15) | ((q[j + 16] & 15) << 4)).collect()
    }

    /// The fifth bits of 32 values as Q5_0/Q5_1 store them: bit i of a little-endian u32.
    fn fifth_bits(q: &[u8]) -> [u8; 4] {
        (0..32).fold(0u32, |acc, i| acc | (u32::from(q[i] >> 4) << i)).to_le_bytes()
    }


    #[test]
    fn q8_0_block() {
        let q: Vec<i8> = (0..32).map(|i| (i * 8 - 127) as i8).collect();
        let mut b = h(0.5).to_vec();
        b.extend(q.iter().map(|&v| v as u8));
        let want: Vec<f32> = q.iter().map(|&v| 0.5 * f32::from(v)).collect();
        assert_close(&dequantize(GgmlType::Q8_0, &b, 32).unwrap(), &want);
    }

    #[test]
    fn q4_0_and_q4_1_blocks() {
        let q = pattern(32, 16);
        let mut b = h(0.25).to_vec();
        b.extend(nibbles(&q));
        let want: Vec<f32> = q.iter().map(|&v| 0.25 * (f32::from(v) - 8.0)).collect();
        assert_close(&dequantize(GgmlType::Q4_0, &b, 32).unwrap(), &want);

        let mut b = [h(0.5), h(-1.5)].concat();
        b.extend(nibbles(&q));
        let want: Vec<f32> = q.iter().map(|&v| 0.5 * f32::from(v) - 1.5).collect();
        assert_close(&dequantize(GgmlType::Q4_1, &b, 32).unwrap(), &want);
    }

    #[test]
    fn q5_0_and_q5_1_blocks() {
        let q = pattern(32, 32);
        let mut b = h(0.125).to_vec();
        b.extend(fifth_bits(&q));
        b.extend(nibbles(&q));
        let want: Vec<f32> = q.iter().map(|&v| 0.125 * (f32::from(v) - 16.0)).collect();
        assert_close(&dequantize(GgmlType::Q5_0, &b, 32).unwrap(), &want);

        let mut b = [h(0.25), h(0.75)].concat();
        b.extend(fifth_bits(&q));
        b.extend(nibbles(&q));
        let want: Vec<f32> = q.iter().map(|&v| 0.25 * f32::from(v) + 0.75).collect();
        assert_close(&dequantize(GgmlType::Q5_1, &b, 32).unwrap(), &want);
    }

    const SC: [u8; 8] = [1, 5, 17, 33, 63, 40, 2, 50];
    const MN: [u8; 8] = [0, 7, 20, 63, 31, 45, 3, 16];

    /// Packs eight 6-bit scales and mins into the 12 bytes Q4_K and Q5_K use.
    fn k_scales() -> [u8; 12] {
        let mut s = [0u8; 12];
        for j in 0..4 {
            s[j] = SC[j] | ((SC[j + 4] >> 4) << 6);
            s[j + 4] = MN[j] | ((MN[j + 4] >> 4) << 6);
            s[j + 8] = (SC[j + 4] & 15) | ((MN[j + 4] & 15) << 4);
        }
        s
    }

    /// Packs 256 values' low nibbles as Q4_K/Q5_K do: in each 64-value chunk c, value c*64+l
    /// (l < 32) is the low nibble of byte 32c+l and value c*64+32+l its high nibble.
    fn k_nibbles(q: &[u8]) -> Vec<u8> {
        let mut qs = vec![0u8; 128];
        for (i, &v) in q.iter().enumerate() {
            let (c, r) = (i / 64, i % 64);
            qs[32 * c + r % 32] |= (v & 15) << if r < 32 { 0 } else { 4 };
        }
        qs
    }

    /// Values of sub-block i/32 are d*sc*q - dmin*m with d = 0.5 and dmin = 0.25.
    fn k_expected(q: &[u8]) -> Vec<f32> {
        q.iter().enumerate().map(|(i, &v)| 0.5 * f32::from(SC[i / 32]) * f32::from(v) - 0.25 * f32::from(MN[i / 32])).collect()
    }

    #[test]
    fn q4_k_block() {
        let q = pattern(256, 16);
        let mut b = [h(0.5), h(0.25)].concat();
        b.extend(k_scales());
        b.extend(k_nibbles(&q));
        assert_eq!(b.len(), 144);
        assert_close(&dequantize(GgmlType::Q4_K, &b, 256).unwrap(), &k_expected(&q));
    }

    #[test]
    fn q5_k_block() {
        let q = pattern(256, 32);
        let mut qh = [0u8; 32];
        for (i, &v) in q.iter().enumerate() {
            qh[i % 32] |= (v >> 4) << (i / 32);
        }
        let mut b = [h(0.5), h(0.25)].concat();
        b.extend(k_scales());
        b.extend(qh);
        b.extend(k_nibbles(&q));
        assert_eq!(b.len(), 176);
        assert_close(&dequantize(GgmlType::Q5_K, &b, 256).unwrap(), &k_expected(&q));
    }

    #[test]
    fn q6_k_block() {
        let q = pattern(256, 64);
        let scales: [i8; 16] = [-32, -5, 1, 7, 12, -20, 30, 127, -128, 3, 9, -1, 64, 2, -7, 15];
        let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
        // Value 128h + 32g + l: groups 0/1 use the low nibbles of ql[64h+l] / ql[64h+32+l],
        // groups 2/3 their high nibbles, and bits 2g..2g+2 of qh[32h+l] hold the top two bits.
        for (i, &v) in q.iter().enumerate() {
            let (hf, g, l) = (i / 128, (i % 128) / 32, i % 32);
            ql[64 * hf + l + 32 * (g % 2)] |= (v & 15) << (4 * (g / 2));
            qh[32 * hf + l] |= (v >> 4) << (2 * g);
        }
        let mut b = [ql.to_vec(), qh.to_vec()].concat();
        b.extend(scales.iter().map(|&s| s as u8));
        b.extend(h(0.0625));
        assert_eq!(b.len(), 210);
        let want: Vec<f32> = q.iter().enumerate().map(|(i, &v)| 0.0625 * f32::from(scales[i / 16]) * (f32::from(v) - 32.0)).collect();
        assert_close(&dequantize(GgmlType::Q6_K, &b, 256).unwrap(), &want);
    }

    #[test]
    fn dequantize_rejects_bad_lengths_and_types() {
        assert!(dequantize(GgmlType::Q8_0, &[0u8; 33], 32).unwrap_err().contains("34 bytes"));
        assert!(dequantize(GgmlType::Q4_0, &[0u8; 18], 16).is_err());
        assert_eq!(dequantize(GgmlType::Q2_K, &[0u8; 84], 256).unwrap_err(), "unsupported tensor type Q2_K");
        for id in [0, 1, 2, 3, 6, 7, 8, 10, 12, 14, 30, 35] {
            assert_eq!(GgmlType::from_u32(id).unwrap().to_u32(), id);
        }
        assert_eq!(GgmlType::from_u32(4), None);
    }

}
