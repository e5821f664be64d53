//! TensorFlow checkpoints (the "tensor bundle" that `tf.train.Checkpoint` and Keras
//! `save_weights` write): `<prefix>.index`, an SSTable (LevelDB's table format) mapping each
//! variable name to a `BundleEntryProto` (dtype, shape, shard, offset, size, CRC-32C), and
//! `<prefix>.data-NNNNN-of-MMMMM`, the raw little-endian tensor bytes. Format as written by
//! TensorFlow's `tensorflow/core/util/tensor_bundle/tensor_bundle.cc` and
//! `tensorflow/core/lib/io/table_builder.cc` (uncompressed blocks).
//!
//! Float tensors (float32, float16, bfloat16, float64) are read as float32 and checked against
//! their CRC-32C; string and integer entries (object graphs, optimiser step counters) are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::weights::{HostTensor, Weights};

/// The SSTable footer's magic number.
const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// The footer: two block handles (up to 20 bytes each, padded) and the magic.
const FOOTER: usize = 48;

/// The checkpoint prefix for `path`: a directory holding a `checkpoint` state file (its
/// `model_checkpoint_path`), a `.index` file, or the prefix itself.
pub fn prefix_of(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        let state = path.join("checkpoint");
        let text = std::fs::read_to_string(&state).map_err(|e| Error::io(&state, e))?;
        let name = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("model_checkpoint_path:"))
            .map(|v| v.trim().trim_matches('"').to_string())
            .ok_or_else(|| Error::Weights(format!("{}: no model_checkpoint_path", state.display())))?;
        return Ok(path.join(name));
    }
    let s = path.to_string_lossy();
    Ok(PathBuf::from(s.strip_suffix(".index").unwrap_or(&s).to_string()))
}

/// Whether `path` is (or holds) a TensorFlow checkpoint.
pub fn is_checkpoint(path: &Path) -> bool {
    prefix_of(path).is_ok_and(|p| index_path(&p).is_file())
}

/// The files of the checkpoint at `path`: its `.index` and its data shards, in name order.
pub fn files(path: &Path) -> Result<Vec<PathBuf>> {
    let prefix = prefix_of(path)?;
    let dir = prefix.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = format!("{}.data-", prefix.file_name().unwrap_or_default().to_string_lossy());
    let mut out = vec![index_path(&prefix)];
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&stem)))
        .collect();
    shards.sort();
    out.extend(shards);
    Ok(out)
}

fn index_path(prefix: &Path) -> PathBuf {
    PathBuf::from(format!("{}.index", prefix.display()))
}

/// Reads every float variable of the checkpoint at `path` (see [`prefix_of`]), named as stored.
/// Errors: unreadable or truncated files, a table or entry that does not parse, a CRC mismatch.
pub fn load(path: &Path) -> Result<Weights> {
    let prefix = prefix_of(path)?;
    let index = index_path(&prefix);
    let bytes = std::fs::read(&index).map_err(|e| Error::io(&index, e))?;
    parse(&bytes, &mut |shard, shards| {
        let file = PathBuf::from(format!("{}.data-{:05}-of-{:05}", prefix.display(), shard, shards));
        std::fs::read(&file).map_err(|err| Error::io(&file, err))
    })
    .map_err(|e| match e {
        Error::Weights(m) => Error::Weights(format!("{}: {m}", index.display())),
        other => other,
    })
}

/// Reads a single-shard checkpoint held in memory: the `.index` bytes and the
/// `.data-00000-of-00001` bytes.
pub fn from_bytes(index: &[u8], data: &[u8]) -> Result<Weights> {
    parse(index, &mut |shard, _| match shard {
        0 => Ok(data.to_vec()),
        s => Err(Error::Weights(format!("entry in shard {s}, only one shard given"))),
    })
}

/// Parses an index, reading shard `i` of `n` with `shard(i, n)`.
fn parse(bytes: &[u8], shard: &mut dyn FnMut(u64, u64) -> Result<Vec<u8>>) -> Result<Weights> {
    let bad = |m: String| Error::Weights(m);
    let entries = read_table(bytes).map_err(bad)?;
    let header = entries.iter().find(|(k, _)| k.is_empty()).map(|(_, v)| v.as_slice());
    let shards = match header {
        Some(h) => fields(h).map_err(bad)?.iter().find(|f| f.0 == 1).map(|f| f.1.varint()).unwrap_or(1).max(1),
        None => 1,
    };
    let mut data: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (key, value) in entries.iter().filter(|(k, _)| !k.is_empty()) {
        let name = String::from_utf8_lossy(key).into_owned();
        let e = Entry::parse(value).map_err(|m| bad(format!("entry `{name}`: {m}")))?;
        let Some(width) = dtype_width(e.dtype) else { continue };
        let file = match data.entry(e.shard) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(shard(e.shard, shards)?),
        };
        // Every size comes from the file: checked, so a lying entry is an error, not an overflow.
        let bytes = e.shape.iter().try_fold(width, |acc, &d| acc.checked_mul(d));
        let range = e.offset.checked_add(e.size).and_then(|end| Some((usize::try_from(e.offset).ok()?, usize::try_from(end).ok()?)));
        let Some((start, end)) = range.filter(|&(_, end)| bytes == Some(e.size) && end <= file.len()) else {
            return Err(bad(format!("entry `{name}`: {} bytes at {} for shape {:?} do not fit the data file", e.size, e.offset, e.shape)));
        };
        let raw = &file[start..end];
        if let Some(want) = e.crc32c
            && unmask(want) != crc32c::crc32c(raw)
        {
            return Err(bad(format!("entry `{name}`: CRC-32C mismatch (the data file is damaged or from another checkpoint)")));
        }
        tensors.insert(name, HostTensor::new(e.shape.iter().map(|&d| d as usize).collect(), decode(e.dtype, raw)));
    }
    if tensors.is_empty() {
        return Err(bad("the checkpoint holds no float tensors".into()));
    }
    Ok(Weights { tensors, metadata: BTreeMap::new(), graph: None })
}

/// TensorFlow's masked CRC (`crc32c::Mask`) back to the plain CRC-32C.
fn unmask(masked: u32) -> u32 {
    let rot = masked.wrapping_sub(0xa282_ead8);
    rot.rotate_left(15)
}

/// Bytes per element of the float dtypes (`DataType` enum values); `None` for the others.
fn dtype_width(dtype: u64) -> Option<u64> {
    match dtype {
        1 => Some(4),        // DT_FLOAT
        2 => Some(8),        // DT_DOUBLE
        14 | 19 => Some(2),  // DT_BFLOAT16, DT_HALF
        _ => None,
    }
}

fn decode(dtype: u64, raw: &[u8]) -> Vec<f32> {
    match dtype {
        1 => raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        2 => raw.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32).collect(),
        14 => raw.chunks_exact(2).map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        _ => raw.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
    }
}

/// A `BundleEntryProto`.
#[derive(Debug, Default)]
struct Entry {
    dtype: u64,
    shape: Vec<u64>,
    shard: u64,
    offset: u64,
    size: u64,
    crc32c: Option<u32>,
}

impl Entry {
    fn parse(b: &[u8]) -> std::result::Result<Self, String> {
        let mut e = Entry::default();
        for (field, v) in fields(b)? {
            match field {
                1 => e.dtype = v.varint(),
                2 => {
                    for (f, dim) in fields(v.bytes()?)? {
                        if f == 2 {
                            let size = fields(dim.bytes()?)?.iter().find(|d| d.0 == 1).map(|d| d.1.varint()).unwrap_or(0);
                            e.shape.push(size);
                        }
                    }
                }
                3 => e.shard = v.varint(),
                4 => e.offset = v.varint(),
                5 => e.size = v.varint(),
                6 => e.crc32c = Some(v.varint() as u32),
                7 => return Err("partitioned (sliced) variables are not supported".into()),
                _ => {}
            }
        }
        Ok(e)
    }
}

/// A protobuf field value.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    fn varint(self) -> u64 {
        match self {
            Value::Int(v) => v,
            Value::Bytes(_) => 0,
        }
    }

    fn bytes(self) -> std::result::Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Int(_) => Err("expected a length-delimited field".into()),
        }
    }
}

/// The fields of a protobuf message, in order.
fn fields(mut b: &[u8]) -> std::result::Result<Vec<(u64, Value<'_>)>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let v = match key & 7 {
            0 => Value::Int(varint(&mut b)?),
            1 => Value::Int(u64::from_le_bytes(take(&mut b, 8)?.try_into().expect("8 bytes"))),
            2 => {
                let n = usize::try_from(varint(&mut b)?).map_err(|_| "truncated")?;
                Value::Bytes(take(&mut b, n)?)
            }
            5 => Value::Int(u32::from_le_bytes(take(&mut b, 4)?.try_into().expect("4 bytes")) as u64),
            t => return Err(format!("unsupported protobuf wire type {t}")),
        };
        out.push((key >> 3, v));
    }
    Ok(out)
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
    if b.len() < n {
        return Err("truncated".into());
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn varint(b: &mut &[u8]) -> std::result::Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *take(b, 1)?.first().expect("one byte");
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// Every key and value of an SSTable, in order.
fn read_table(file: &[u8]) -> std::result::Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    if file.len() < FOOTER {
        return Err("too short for a TensorFlow checkpoint index".into());
    }
    let footer = &file[file.len() - FOOTER..];
    let magic = u64::from_le_bytes(footer[FOOTER - 8..].try_into().expect("8 bytes"));
    if magic != TABLE_MAGIC {
        return Err("not a TensorFlow checkpoint index (no table magic number)".into());
    }
    let mut f = footer;
    let _metaindex = (varint(&mut f)?, varint(&mut f)?);
    let index = (varint(&mut f)?, varint(&mut f)?);
    let mut out = Vec::new();
    for (_, handle) in block(file, index)? {
        let mut h = handle.as_slice();
        let data = (varint(&mut h)?, varint(&mut h)?);
        out.extend(block(file, data)?);
    }
    Ok(out)
}

/// The entries of the block at `(offset, size)` (prefix-compressed keys, restart array at the end).
fn block(file: &[u8], (offset, size): (u64, u64)) -> std::result::Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    let range = offset.checked_add(size).and_then(|end| Some((usize::try_from(offset).ok()?, usize::try_from(end).ok()?)));
    let Some((start, end)) = range.filter(|&(_, end)| end < file.len().saturating_sub(4) && size >= 4) else {
        return Err("a block lies outside the file".into());
    };
    if file[end] != 0 {
        return Err(format!("compressed blocks (type {}) are not supported", file[end]));
    }
    let b = &file[start..end];
    let restarts = u32::from_le_bytes(b[b.len() - 4..].try_into().expect("4 bytes")) as usize;
    let limit = restarts.checked_mul(4).and_then(|r| b.len().checked_sub(4 + r)).ok_or("bad restart count")?;
    let mut rest = &b[..limit];
    let mut key: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let shared = usize::try_from(varint(&mut rest)?).map_err(|_| "bad key prefix")?;
        let unshared = usize::try_from(varint(&mut rest)?).map_err(|_| "truncated")?;
        let len = usize::try_from(varint(&mut rest)?).map_err(|_| "truncated")?;
        if shared > key.len() {
            return Err("bad key prefix".into());
        }
        key.truncate(shared);
        key.extend_from_slice(take(&mut rest, unshared)?);
        out.push((key.clone(), take(&mut rest, len)?.to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_and_mask() {
        // field 1 varint 1, field 2 bytes [field 2 bytes [field 1 varint 3]]
        let msg = [0x08, 0x01, 0x12, 0x04, 0x12, 0x02, 0x08, 0x03];
        let e = Entry::parse(&msg).unwrap();
        assert_eq!((e.dtype, e.shape.clone()), (1, vec![3]));
        // crc32c::Mask(x) = ((x >> 15) | (x << 17)) + 0xa282ead8
        let x = 0x1234_5678u32;
        let masked = x.rotate_right(15).wrapping_add(0xa282_ead8);
        assert_eq!(unmask(masked), x);
        assert!(read_table(&[0u8; 10]).is_err());
        assert!(read_table(&[0u8; 60]).unwrap_err().contains("magic"));
    }

    /// The inputs `cargo fuzz` found crashing the `tf_checkpoint` target (`fuzz/`), split like
    /// the target (index, then the data after a `FF 00 FF 00` marker): each is an error now.
    #[test]
    fn fuzz_regressions_are_errors() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/fuzz/tf_checkpoint");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let mark = [0xFF, 0x00, 0xFF, 0x00];
            let (index, data) = match bytes.windows(4).position(|w| w == mark) {
                Some(i) => (&bytes[..i], &bytes[i + 4..]),
                None => (&bytes[..], &[][..]),
            };
            let e = from_bytes(index, data).expect_err(&path.display().to_string());
            assert!(!e.to_string().is_empty());
            seen += 1;
        }
        assert!(seen >= 1, "regression inputs in {}", dir.display());
        // The overflow the first one found: a block whose offset plus size passes u64::MAX.
        let mut footer = vec![0u8; FOOTER];
        footer[..2].copy_from_slice(&[0, 0]);
        footer[2..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        footer[12] = 0x10;
        footer[FOOTER - 8..].copy_from_slice(&TABLE_MAGIC.to_le_bytes());
        assert!(read_table(&footer).unwrap_err().contains("outside the file"));
    }
}
