//! Building a GGUF (version 3) file from metadata and f32 tensors, quantized as asked.

use std::io::Write;
use std::path::Path;

use half::{bf16, f16};

use super::quant::{quant_q4_0, quant_q4_1, quant_q8_0};
use super::{align_up, alignment_of, GgmlType, GgufValue, Res, ALIGNMENT_KEY, MAGIC};
use crate::error::{Error, Result};

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    dtype: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF (version 3) file from metadata and f32 tensors, quantizing as asked.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set a metadata key; setting a key again replaces its value but keeps its position.
    pub fn add_metadata(&mut self, key: &str, value: GgufValue) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    /// Add a tensor given in PyTorch order (row-major, `shape` outermost first), stored as
    /// `dtype`: F32, F16, BF16, Q8_0, Q4_0 or Q4_1. Quantized types need the last dimension to be
    /// a multiple of 32, since ggml blocks never straddle rows.
    pub fn add_tensor(&mut self, name: &str, shape: &[i64], data: &[f32], dtype: GgmlType) -> std::result::Result<(), String> {
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(format!("tensor `{name}` was already added"));
        }
        if shape.is_empty() || shape.len() > 4 || shape.iter().any(|&d| d <= 0) {
            return Err(format!("tensor `{name}`: shape {shape:?} must have 1 to 4 positive dimensions"));
        }
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if n != Some(data.len() as u64) {
            return Err(format!("tensor `{name}`: shape {shape:?} does not match {} values", data.len()));
        }
        let bs = dtype.block_size();
        if !dims[0].is_multiple_of(bs as u64) {
            return Err(format!("tensor `{name}`: last dimension {} is not a multiple of the {dtype} block size {bs}", dims[0]));
        }
        let mut bytes = Vec::with_capacity(data.len() / bs * dtype.type_size());
        match dtype {
            GgmlType::F32 => data.iter().for_each(|v| bytes.extend(v.to_le_bytes())),
            GgmlType::F16 => data.iter().for_each(|&v| bytes.extend(f16::from_f32(v).to_le_bytes())),
            GgmlType::BF16 => data.iter().for_each(|&v| bytes.extend(bf16::from_f32(v).to_le_bytes())),
            GgmlType::Q8_0 => data.chunks_exact(32).for_each(|x| quant_q8_0(x, &mut bytes)),
            GgmlType::Q4_0 => data.chunks_exact(32).for_each(|x| quant_q4_0(x, &mut bytes)),
            GgmlType::Q4_1 => data.chunks_exact(32).for_each(|x| quant_q4_1(x, &mut bytes)),
            other => return Err(format!("tensor `{name}`: writing {other} is not supported")),
        }
        self.tensors.push(PendingTensor { name: name.to_string(), dims, dtype, data: bytes });
        Ok(())
    }

    /// Write the file: version 3, `general.alignment` (32 unless set), tensor data aligned to
    /// it, in the order the tensors were added.
    pub fn write(&self, path: &Path) -> Result<()> {
        let gguf_err = |reason: String| Error::Gguf { path: path.to_path_buf(), reason };
        let explicit = self.metadata.iter().find(|(k, _)| k == ALIGNMENT_KEY).map(|(_, v)| v);
        let alignment = alignment_of(explicit).map_err(gguf_err)?;
        // The key is always written, and as the UINT32 the specification prescribes, because
        // other readers may insist on that type.
        let align32 = u32::try_from(alignment).map_err(|_| gguf_err(format!("{ALIGNMENT_KEY} {alignment} does not fit in a u32")))?;
        let align_kv = (ALIGNMENT_KEY.to_string(), GgufValue::U32(align32));
        let kvs: Vec<&(String, GgufValue)> = self.metadata.iter().filter(|(k, _)| k != ALIGNMENT_KEY).chain([&align_kv]).collect();

        let mut head = MAGIC.to_vec();
        head.extend(3u32.to_le_bytes());
        head.extend((self.tensors.len() as u64).to_le_bytes());
        head.extend((kvs.len() as u64).to_le_bytes());
        for (key, value) in kvs {
            put_str(&mut head, key);
            head.extend(value.type_id().to_le_bytes());
            put_value(&mut head, value).map_err(|e| gguf_err(format!("metadata `{key}`: {e}")))?;
        }
        let mut offset = 0u64;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            offset = align_up(offset, alignment).ok_or_else(|| gguf_err("data too large".into()))?;
            offsets.push(offset);
            put_str(&mut head, &t.name);
            head.extend((t.dims.len() as u32).to_le_bytes());
            t.dims.iter().for_each(|d| head.extend(d.to_le_bytes()));
            head.extend(t.dtype.to_u32().to_le_bytes());
            head.extend(offset.to_le_bytes());
            offset += t.data.len() as u64;
        }

        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = std::io::BufWriter::new(file);
        let pad = |len: u64| vec![0u8; (align_up(len, alignment).unwrap_or(len) - len) as usize];
        let mut io = || -> std::io::Result<()> {
            w.write_all(&head)?;
            w.write_all(&pad(head.len() as u64))?;
            let mut pos = 0u64;
            for (t, &off) in self.tensors.iter().zip(&offsets) {
                w.write_all(&vec![0u8; (off - pos) as usize])?;
                w.write_all(&t.data)?;
                pos = off + t.data.len() as u64;
            }
            w.flush()
        };
        io().map_err(|e| Error::io(path, e))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Encode a value's payload (its type id is written by the caller). Arrays must be homogeneous;
/// an empty array is written with element type UINT8, since nothing says otherwise.
fn put_value(out: &mut Vec<u8>, v: &GgufValue) -> Res<()> {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.extend(x.to_le_bytes()),
        GgufValue::U16(x) => out.extend(x.to_le_bytes()),
        GgufValue::I16(x) => out.extend(x.to_le_bytes()),
        GgufValue::U32(x) => out.extend(x.to_le_bytes()),
        GgufValue::I32(x) => out.extend(x.to_le_bytes()),
        GgufValue::F32(x) => out.extend(x.to_le_bytes()),
        GgufValue::Bool(x) => out.push(u8::from(*x)),
        GgufValue::String(s) => put_str(out, s),
        GgufValue::U64(x) => out.extend(x.to_le_bytes()),
        GgufValue::I64(x) => out.extend(x.to_le_bytes()),
        GgufValue::F64(x) => out.extend(x.to_le_bytes()),
        GgufValue::Array(items) => {
            let elem = items.first().map_or(0, GgufValue::type_id);
            if items.iter().any(|i| i.type_id() != elem) {
                return Err("array elements must all have the same type".into());
            }
            out.extend(elem.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            items.iter().try_for_each(|item| put_value(out, item))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;

    #[test]
    fn metadata_of_every_type_round_trips() {
        let strings = GgufValue::Array(vec![GgufValue::String("a".into()), GgufValue::String("ünï".into()), GgufValue::String(String::new())]);
        let nested = GgufValue::Array(vec![GgufValue::Array(vec![GgufValue::I32(-1), GgufValue::I32(2)]), GgufValue::Array(vec![])]);
        let kvs = [
            ("u8", GgufValue::U8(200)), ("i8", GgufValue::I8(-7)), ("u16", GgufValue::U16(60000)), ("i16", GgufValue::I16(-30000)),
            ("u32", GgufValue::U32(4_000_000_000)), ("i32", GgufValue::I32(-2_000_000_000)), ("f32", GgufValue::F32(1.5)),
            ("bool", GgufValue::Bool(true)), ("str", GgufValue::String("héllo".into())), ("strings", strings), ("nested", nested),
            ("u64", GgufValue::U64(u64::MAX)), ("i64", GgufValue::I64(i64::MIN)), ("f64", GgufValue::F64(std::f64::consts::PI)),
        ];
        let mut w = GgufWriter::new();
        kvs.iter().for_each(|(k, v)| w.add_metadata(k, v.clone()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.gguf");
        w.write(&path).unwrap();
        let g = GgufFile::open(&path).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.metadata.len(), kvs.len() + 1);
        assert_eq!(g.get(ALIGNMENT_KEY), Some(&GgufValue::U32(32)));
        for (k, v) in &kvs {
            assert_eq!(g.get(k), Some(v), "key {k}");
        }
        assert_eq!(g.get("strings").and_then(GgufValue::as_array).map(|a| a[1].as_str()), Some(Some("ünï")));
        assert_eq!((g.get("u16").unwrap().as_u64(), g.get("i8").unwrap().as_u64()), (Some(60000), None));
        assert_eq!(g.get("i16").unwrap().as_f64(), Some(-30000.0));
        assert_eq!((g.get("bool").unwrap().as_bool(), g.get("str").unwrap().as_bool()), (Some(true), None));
    }

    fn write_one(dir: &Path, data: &[f32], shape: &[i64], dtype: GgmlType) -> GgufFile {
        let mut w = GgufWriter::new();
        w.add_metadata(ALIGNMENT_KEY, GgufValue::U64(64));
        w.add_tensor("pad", &[3], &[1.0, 2.0, 3.0], GgmlType::F32).unwrap();
        w.add_tensor("t", shape, data, dtype).unwrap();
        let path = dir.join(format!("{}.gguf", dtype.name()));
        w.write(&path).unwrap();
        let g = GgufFile::open(&path).unwrap();
        assert!(g.tensors.iter().all(|t| t.offset.is_multiple_of(64)) && g.data_offset.is_multiple_of(64));
        assert_eq!(g.get(ALIGNMENT_KEY), Some(&GgufValue::U32(64)));
        assert_eq!(g.dequantize("pad").unwrap().0, [1.0, 2.0, 3.0]);
        g
    }

    #[test]
    fn float_tensors_round_trip_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let exact = [0.0, -1.5, 2.25, 1024.0, -0.0078125, 3.0, 96.0, -0.5];
        for dtype in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            let g = write_one(dir.path(), &exact, &[2, 4], dtype);
            assert_eq!(g.tensor("t").unwrap().dtype, dtype);
            assert_eq!(g.dequantize("t").unwrap(), (exact.to_vec(), vec![2, 4]));
        }
        let odd = [0.1f32, -1e-30, 3.4e38, 7.0 / 3.0];
        let g = write_one(dir.path(), &odd, &[4], GgmlType::F32);
        assert_eq!(g.dequantize("t").unwrap().0, odd);
    }

    #[test]
    fn quantized_tensors_round_trip_within_half_a_step() {
        // Each 32-value block spans [-127/128, 113/128] with both ends present, so the scales
        // (1/128 for Q8_0, 127/1024 for Q4_0, 1/8 for Q4_1) are exact in f16.
        let mut seed = 12345u32;
        let data: Vec<f32> = (0..128)
            .map(|i| match i % 32 {
                0 => -127.0 / 128.0,
                1 => 113.0 / 128.0,
                _ => {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    -127.0 / 128.0 + 1.875 * (seed >> 8) as f32 / (1u32 << 24) as f32
                }
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        for (dtype, step) in [(GgmlType::Q8_0, 1.0 / 128.0), (GgmlType::Q4_0, 127.0 / 1024.0), (GgmlType::Q4_1, 0.125)] {
            let g = write_one(dir.path(), &data, &[2, 64], dtype);
            let (got, shape) = g.dequantize("t").unwrap();
            assert_eq!(shape, [2, 64]);
            for (i, (x, y)) in data.iter().zip(&got).enumerate() {
                assert!((x - y).abs() <= 0.5 * step + 1e-6, "{dtype} value {i}: {x} came back as {y}");
            }
        }
    }

    #[test]
    fn writer_rejects_bad_tensors() {
        let mut w = GgufWriter::new();
        assert!(w.add_tensor("a", &[2, 48], &[0.0; 96], GgmlType::Q8_0).unwrap_err().contains("not a multiple"));
        assert!(w.add_tensor("a", &[2, 3], &[0.0; 5], GgmlType::F32).is_err());
        assert!(w.add_tensor("a", &[256], &[0.0; 256], GgmlType::Q4_K).unwrap_err().contains("not supported"));
        w.add_tensor("a", &[32], &[0.0; 32], GgmlType::Q4_1).unwrap();
        assert!(w.add_tensor("a", &[32], &[0.0; 32], GgmlType::Q4_1).is_err());
    }

}
