//! A pure-Rust reader, dequantizer and writer for GGUF model files. The container layout follows
//! the GGUF specification in ggml's `docs/gguf.md` (versions 2 and 3: little-endian header,
//! typed key/value metadata, tensor infos, then an aligned data section), and the quantized block
//! layouts follow ggml's `ggml-quants` (Q4_0 ... Q8_0 with 32-value blocks, K-quants with
//! 256-value super-blocks). The whole file is read into memory rather than memory-mapped because
//! the workspace forbids `unsafe` code; dequantized tensors come back as `Vec<f32>` in PyTorch
//! (row-major, last axis contiguous) order. Converter-specific permutations (such as the
//! rotary-embedding reordering of Llama's Q/K weights) are the loader's business, not this module's.
//!
//! The container's types live here; `reader.rs` opens and validates a file, `quant.rs` holds
//! the block (de)quantizers, and `writer.rs` builds files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

mod quant;
mod reader;
mod writer;

pub use quant::dequantize;
pub use writer::GgufWriter;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
const ALIGNMENT_KEY: &str = "general.alignment";
/// Nested arrays are legal, but a hostile file could nest them deep enough to exhaust the stack.
const MAX_ARRAY_DEPTH: usize = 16;
/// The specification allows at most four dimensions; a little slack costs nothing.
const MAX_DIMS: u32 = 8;

/// Results whose error is a bare reason, turned into a [`crate::error::Error`] where the path is known.
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
