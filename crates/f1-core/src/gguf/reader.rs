//! Opening a GGUF file: a bounds-checked cursor over the bytes, then the header, metadata and
//! tensor infos, each count and offset checked against the file's length before anything is
//! allocated or indexed.

use std::collections::BTreeMap;
use std::path::Path;

use super::{align_up, alignment_of, dequantize, GgmlType, GgufFile, GgufTensorInfo, GgufValue, Res, ALIGNMENT_KEY, MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS};
use crate::error::{Error, Result};

/// A bounds-checked little-endian cursor; every read past the end is an error, never a panic.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let (pos, len) = (self.pos, self.buf.len());
        let end = pos.checked_add(n).filter(|&e| e <= len).ok_or_else(|| format!("truncated: needed {n} bytes at offset {pos} but the file has {len}"))?;
        self.pos = end;
        Ok(&self.buf[pos..end])
    }

    fn array<const N: usize>(&mut self) -> Res<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Res<u32> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Res<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// A count of items of at least `min_size` bytes each, checked against what is left of the
    /// file before anything is allocated for them.
    fn count(&mut self, min_size: usize, what: &str) -> Res<usize> {
        let n = self.u64()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_size) <= self.buf.len() - self.pos => Ok(n),
            _ => Err(format!("{what} count {n} at offset {} exceeds the file size", self.pos - 8)),
        }
    }

    fn bytes_string(&mut self) -> Res<&'a [u8]> {
        let n = self.count(1, "string length")?;
        self.take(n)
    }

    /// Keys and tensor names must be valid UTF-8, as the specification requires.
    fn strict_string(&mut self) -> Res<String> {
        let at = self.pos;
        let b = self.bytes_string()?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("string at offset {at} is not valid UTF-8"))
    }

    fn value(&mut self, type_id: u32, depth: usize) -> Res<GgufValue> {
        Ok(match type_id {
            0 => GgufValue::U8(u8::from_le_bytes(self.array()?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array()?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array()?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array()?)),
            4 => GgufValue::U32(self.u32()?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array()?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array()?)),
            7 => GgufValue::Bool(self.array::<1>()?[0] != 0),
            // Some converters have stored tokenizer pieces that are not valid UTF-8; replacing the
            // bad bytes keeps such files loadable, and a tokenizer with one odd piece still works.
            8 => GgufValue::String(String::from_utf8_lossy(self.bytes_string()?).into_owned()),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(format!("arrays nested deeper than {MAX_ARRAY_DEPTH} levels"));
                }
                let elem = self.u32()?;
                let n = self.count(1, "array element")?;
                GgufValue::Array((0..n).map(|_| self.value(elem, depth + 1)).collect::<Res<_>>()?)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array()?)),
            t => return Err(format!("unknown metadata value type {t} at offset {}", self.pos)),
        })
    }
}

impl GgufFile {
    /// Read and validate a GGUF file: magic, version 2 or 3, metadata, tensor infos with known
    /// types, and every tensor's data lying inside the file.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let gguf_err = |reason: String| Error::Gguf { path: path.to_path_buf(), reason };
        let mut r = Reader { buf: &bytes, pos: 0 };
        let magic = r.take(4).map_err(|_| gguf_err("file is shorter than the 4-byte magic".into()))?;
        if magic != MAGIC {
            return Err(gguf_err(format!("bad magic {magic:02x?}, expected \"GGUF\"")));
        }
        let version = r.u32().map_err(gguf_err)?;
        if version != 2 && version != 3 {
            return Err(gguf_err(format!("version {version} is not supported (only 2 and 3)")));
        }
        // A tensor info takes at least 24 bytes and a key/value pair at least 13.
        let n_tensors = r.count(24, "tensor").map_err(gguf_err)?;
        let n_kv = r.count(13, "metadata key").map_err(gguf_err)?;

        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.strict_string().map_err(gguf_err)?;
            let value = r.u32().and_then(|t| r.value(t, 0)).map_err(|e| gguf_err(format!("metadata `{key}`: {e}")))?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(gguf_err(format!("duplicate metadata key `{key}`")));
            }
        }
        let alignment = alignment_of(metadata.get(ALIGNMENT_KEY)).map_err(gguf_err)?;

        let mut tensors: Vec<GgufTensorInfo> = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = r.strict_string().map_err(|e| gguf_err(format!("tensor info {i}: {e}")))?;
            let tensor_err = |reason: String| Error::Tensor { path: path.to_path_buf(), name: name.clone(), reason };
            let n_dims = r.u32().map_err(tensor_err)?;
            if n_dims > MAX_DIMS {
                return Err(tensor_err(format!("{n_dims} dimensions (at most {MAX_DIMS} are supported)")));
            }
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Res<Vec<_>>>().map_err(tensor_err)?;
            let type_id = r.u32().map_err(tensor_err)?;
            let dtype = GgmlType::from_u32(type_id).ok_or_else(|| tensor_err(format!("unknown ggml type id {type_id}")))?;
            let offset = r.u64().map_err(tensor_err)?;
            if tensors.iter().any(|t| t.name == name) {
                return Err(tensor_err("the name appears twice".into()));
            }
            tensors.push(GgufTensorInfo { name, dims, dtype, offset });
        }

        let header_end = r.pos as u64;
        let data_offset = align_up(header_end, alignment).ok_or_else(|| gguf_err("header size overflows".into()))?;
        let file_len = bytes.len() as u64;
        for t in &tensors {
            let tensor_err = |reason: String| Error::Tensor { path: path.to_path_buf(), name: t.name.clone(), reason };
            let (row, bs) = (t.dims.first().copied().unwrap_or(1), t.dtype.block_size() as u64);
            let end = t.n_bytes().and_then(|n| data_offset.checked_add(t.offset)?.checked_add(n));
            let problem = if t.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).is_none() {
                format!("dimensions {:?} overflow", t.dims)
            } else if !row.is_multiple_of(bs) {
                format!("row length {row} is not a multiple of the {} block size {bs}", t.dtype)
            } else if !t.offset.is_multiple_of(alignment) {
                format!("data offset {} is not a multiple of the alignment {alignment}", t.offset)
            } else if end.is_none_or(|e| e > file_len) {
                format!("data at offset {} (+{} for the header) of {:?} bytes lies outside the file of {file_len} bytes", t.offset, data_offset, t.n_bytes())
            } else {
                continue;
            };
            return Err(tensor_err(problem));
        }
        Ok(GgufFile { path: path.to_path_buf(), version, metadata, tensors, bytes, data_offset, alignment })
    }

    /// The metadata value for `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// The info of the tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor's data. `open` has checked every tensor of this file, so the
    /// range is valid; an info from elsewhere that does not fit yields an empty slice.
    pub fn tensor_bytes(&self, info: &GgufTensorInfo) -> &[u8] {
        let range = info.n_bytes().and_then(|n| {
            let start = usize::try_from(self.data_offset.checked_add(info.offset)?).ok()?;
            Some(start..start.checked_add(usize::try_from(n).ok()?)?)
        });
        range.and_then(|r| self.bytes.get(r)).unwrap_or(&[])
    }

    /// Dequantize the tensor `name` to f32 values in row-major PyTorch order, with its PyTorch
    /// shape. GGUF's `dims[0]` is the contiguous axis, so reversing the dims is all it takes.
    pub fn dequantize(&self, name: &str) -> Result<(Vec<f32>, Vec<i64>)> {
        let tensor_err = |reason: String| Error::Tensor { path: self.path.clone(), name: name.to_string(), reason };
        let info = self.tensor(name).ok_or_else(|| tensor_err("not present in the GGUF file".into()))?;
        let n = usize::try_from(info.n_elements()).map_err(|_| tensor_err("too many elements".into()))?;
        let values = dequantize(info.dtype, self.tensor_bytes(info), n).map_err(tensor_err)?;
        Ok((values, info.shape()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A hand-built version-3 file with no metadata and one tensor `w` of GGUF dims [4, 3].
    fn raw_file(type_id: u32, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        [3u32.to_le_bytes().as_slice(), &1u64.to_le_bytes(), &0u64.to_le_bytes(), &1u64.to_le_bytes(), b"w"].iter().for_each(|s| b.extend(*s));
        [2u32.to_le_bytes().as_slice(), &4u64.to_le_bytes(), &3u64.to_le_bytes(), &type_id.to_le_bytes(), &offset.to_le_bytes()].iter().for_each(|s| b.extend(*s));
        b.resize(96, 0);
        b.extend_from_slice(data);
        b
    }

    fn f32_bytes(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    #[test]
    fn gguf_dims_reverse_into_pytorch_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dims.gguf");
        std::fs::write(&path, raw_file(0, 0, &f32_bytes(12))).unwrap();
        let g = GgufFile::open(&path).unwrap();
        let t = g.tensor("w").unwrap();
        assert_eq!((t.dims.clone(), t.shape(), t.n_elements()), (vec![4, 3], vec![3, 4], 12));
        let (values, shape) = g.dequantize("w").unwrap();
        assert_eq!(shape, [3, 4]);
        assert_eq!(values, (0..12).map(|i| i as f32).collect::<Vec<_>>());
        let missing = g.dequantize("nope").unwrap_err().to_string();
        assert!(missing.contains(&path.display().to_string()) && missing.contains("nope"), "{missing}");
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = raw_file(0, 0, &f32_bytes(12));
        let mut bad_magic = good.clone();
        bad_magic[3] = b'X';
        let cases: [(&str, Vec<u8>, bool); 6] = [
            ("magic", bad_magic, false),
            ("empty", Vec::new(), false),
            ("truncated", good[..20].to_vec(), false),
            ("short_data", good[..good.len() - 4].to_vec(), true),
            ("out_of_range", raw_file(0, 64, &f32_bytes(12)), true),
            ("unknown_type", raw_file(99, 0, &f32_bytes(12)), true),
        ];
        for (name, bytes, names_tensor) in cases {
            let path = dir.path().join(format!("{name}.gguf"));
            std::fs::write(&path, bytes).unwrap();
            let err = GgufFile::open(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
            match err {
                Error::Tensor { name: t, .. } => assert!(names_tensor && t == "w", "{name}: {msg}"),
                Error::Gguf { .. } => assert!(!names_tensor, "{name}: {msg}"),
                other => panic!("{name}: unexpected error {other}"),
            }
        }
    }
}
