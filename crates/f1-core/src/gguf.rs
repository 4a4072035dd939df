//! A pure-Rust reader, dequantizer and writer for GGUF model files. The container layout follows
//! the GGUF specification in ggml's `docs/gguf.md` (versions 2 and 3: little-endian header,
//! typed key/value metadata, tensor infos, then an aligned data section), and the quantized block
//! layouts follow ggml's `ggml-quants` (Q4_0 ... Q8_0 with 32-value blocks, K-quants with
//! 256-value super-blocks). The whole file is read into memory rather than memory-mapped because
//! the workspace forbids `unsafe` code; dequantized tensors come back as `Vec<f32>` in PyTorch
//! (row-major, last axis contiguous) order. Converter-specific permutations (such as the
//! rotary-embedding reordering of Llama's Q/K weights) are the loader's business, not this module's.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use rayon::prelude::*;

use crate::error::{Error, Result};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const ALIGNMENT_KEY: &str = "general.alignment";
/// Nested arrays are legal, but a hostile file could nest them deep enough to exhaust the stack.
const MAX_ARRAY_DEPTH: usize = 16;
/// The specification allows at most four dimensions; a little slack costs nothing.
const MAX_DIMS: u32 = 8;

/// Results whose error is a bare reason, turned into an [`Error`] where the path is known.
type Res<T> = std::result::Result<T, String>;

/// A typed metadata value, one variant per GGUF value type.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// `UINT8` (type id 0).
    U8(u8),
    /// `INT8` (type id 1).
    I8(i8),
    /// `UINT16` (type id 2).
    U16(u16),
    /// `INT16` (type id 3).
    I16(i16),
    /// `UINT32` (type id 4).
    U32(u32),
    /// `INT32` (type id 5).
    I32(i32),
    /// `FLOAT32` (type id 6).
    F32(f32),
    /// `BOOL` (type id 7), one byte.
    Bool(bool),
    /// `STRING` (type id 8): u64 length, then UTF-8 bytes.
    String(String),
    /// `ARRAY` (type id 9): u32 element type, u64 count, then the elements.
    Array(Vec<GgufValue>),
    /// `UINT64` (type id 10).
    U64(u64),
    /// `INT64` (type id 11).
    I64(i64),
    /// `FLOAT64` (type id 12).
    F64(f64),
}

impl GgufValue {
    /// Any integer value, widened to a type that holds every GGUF integer exactly.
    fn as_i128(&self) -> Option<i128> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v.into()),
            _ => None,
        }
    }

    /// The value as a `u64`, for any integer type holding a non-negative value.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i128().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as an `f64`, for any numeric type (64-bit integers may lose precision).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_i128().map(|v| v as f64),
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        if let GgufValue::String(s) = self { Some(s) } else { None }
    }

    /// The value as a `bool`, if it is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        if let GgufValue::Bool(b) = self { Some(*b) } else { None }
    }

    /// The elements, if the value is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        if let GgufValue::Array(a) = self { Some(a) } else { None }
    }

    /// The GGUF value type id of this value.
    fn type_id(&self) -> u32 {
        use GgufValue::*;
        match self {
            U8(_) => 0, I8(_) => 1, U16(_) => 2, I16(_) => 3, U32(_) => 4, I32(_) => 5, F32(_) => 6,
            Bool(_) => 7, String(_) => 8, Array(_) => 9, U64(_) => 10, I64(_) => 11, F64(_) => 12,
        }
    }
}

/// Declares [`GgmlType`] from one table of `variant = id, elements per block, bytes per block`,
/// so that the id, name and sizes of a type cannot drift apart.
macro_rules! ggml_types {
    ($($v:ident = $id:literal, $bs:literal, $ts:literal;)*) => {
        /// A ggml tensor element type. Every type ggml defines is listed so that files holding
        /// unusual tensors still open; [`dequantize`] supports F32, F16, BF16, Q4_0, Q4_1, Q5_0,
        /// Q5_1, Q8_0, Q4_K, Q5_K and Q6_K.
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GgmlType {
            $(#[doc = concat!("ggml type ", $id, ": blocks of ", $bs, " values in ", $ts, " bytes.")] $v,)*
        }

        impl GgmlType {
            /// The type for a ggml type id, or `None` for an unknown id.
            pub fn from_u32(v: u32) -> Option<Self> {
                match v { $($id => Some(GgmlType::$v),)* _ => None }
            }
            /// The ggml type id.
            pub fn to_u32(self) -> u32 {
                match self { $(GgmlType::$v => $id,)* }
            }
            /// Number of elements in one block.
            pub fn block_size(self) -> usize {
                match self { $(GgmlType::$v => $bs,)* }
            }
            /// Number of bytes in one block.
            pub fn type_size(self) -> usize {
                match self { $(GgmlType::$v => $ts,)* }
            }
            /// The type's name as ggml spells it ("Q4_K", "BF16", ...).
            pub fn name(self) -> &'static str {
                match self { $(GgmlType::$v => stringify!($v),)* }
            }
        }
    };
}

ggml_types! {
    F32 = 0, 1, 4; F16 = 1, 1, 2; BF16 = 30, 1, 2;
    Q4_0 = 2, 32, 18; Q4_1 = 3, 32, 20; Q5_0 = 6, 32, 22; Q5_1 = 7, 32, 24; Q8_0 = 8, 32, 34; Q8_1 = 9, 32, 36;
    Q2_K = 10, 256, 84; Q3_K = 11, 256, 110; Q4_K = 12, 256, 144; Q5_K = 13, 256, 176; Q6_K = 14, 256, 210; Q8_K = 15, 256, 292;
    IQ2_XXS = 16, 256, 66; IQ2_XS = 17, 256, 74; IQ3_XXS = 18, 256, 98; IQ1_S = 19, 256, 50; IQ4_NL = 20, 32, 18;
    IQ3_S = 21, 256, 110; IQ2_S = 22, 256, 82; IQ4_XS = 23, 256, 136; IQ1_M = 29, 256, 56;
    I8 = 24, 1, 1; I16 = 25, 1, 2; I32 = 26, 1, 4; I64 = 27, 1, 8; F64 = 28, 1, 8;
    TQ1_0 = 34, 256, 54; TQ2_0 = 35, 256, 66; MXFP4 = 39, 32, 17;
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and how one tensor is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensorInfo {
    /// The tensor's GGUF name (e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in GGUF order: `dims[0]` is the contiguous (fastest-varying) axis.
    pub dims: Vec<u64>,
    /// Element type.
    pub dtype: GgmlType,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// Number of elements (product of the dimensions; saturates rather than overflowing).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).unwrap_or(u64::MAX)
    }

    /// The shape in PyTorch order (GGUF dimensions reversed).
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect()
    }

    /// Size of the tensor's data in bytes, or `None` if it overflows.
    pub fn n_bytes(&self) -> Option<u64> {
        let blocks = self.n_elements() / self.dtype.block_size() as u64;
        blocks.checked_mul(self.dtype.type_size() as u64)
    }
}

/// A parsed GGUF file held in memory.
pub struct GgufFile {
    /// The file this was read from.
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// All metadata key/value pairs.
    pub metadata: BTreeMap<String, GgufValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<GgufTensorInfo>,
    bytes: Vec<u8>,
    data_offset: u64,
    alignment: u64,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, t) = (self.metadata.len(), self.tensors.len());
        write!(f, "GgufFile({}, v{}, {k} metadata keys, {t} tensors, alignment {})", self.path.display(), self.version, self.alignment)
    }
}

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

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    x.checked_add(alignment - 1).map(|v| v / alignment * alignment)
}

/// The alignment named by `general.alignment`, or the default; it must be a non-zero power of two.
fn alignment_of(value: Option<&GgufValue>) -> Res<u64> {
    match value {
        None => Ok(DEFAULT_ALIGNMENT),
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => Ok(a),
            _ => Err(format!("{ALIGNMENT_KEY} is {v:?}, not a non-zero power of two")),
        },
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
fn quant_q8_0(x: &[f32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}

/// Quantize one block to Q4_0. As in ggml's reference quantizer, the value of largest magnitude
/// (with its sign) maps to -8 so that its side of zero gets the extra level.
fn quant_q4_0(x: &[f32], out: &mut Vec<u8>) {
    let max = x.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

/// Quantize one block to Q4_1: 16 levels spanning exactly [min, max].
fn quant_q4_1(x: &[f32], out: &mut Vec<u8>) {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
    out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
    let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | (q(x[j + 16]) << 4)));
}

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
