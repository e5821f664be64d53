//! Named float tensors read from safetensors or PyTorch `.pth` files, and written back as safetensors.
//!
//! Networks are built from a [`Weights`] map: every tensor is checked for presence and shape
//! before it reaches the backend, so a wrong or truncated file gives a clear error, not a panic.

pub mod formula;
pub mod tf_checkpoint;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// One tensor on the host: shape and row-major float32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Extents, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from its shape and values (lengths must agree).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// Copies a backend tensor to the host.
    pub fn from_tensor<const D: usize>(t: Tensor<D>) -> Result<Self> {
        let shape = t.dims().to_vec();
        let data = t
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| Error::Backend(format!("{e:?}")))?;
        Ok(Self { shape, data })
    }

    /// Uploads to `device` as a rank-`D` tensor.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            return Err(Error::Weights(format!(
                "expected rank {D}, found shape {:?}",
                self.shape
            )));
        }
        Ok(Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        ))
    }
}

/// A map from tensor name to tensor, plus the file's string metadata.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    /// Tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// String metadata (`__metadata__` of a safetensors file; an ONNX model's `metadata_props`).
    pub metadata: BTreeMap<String, String>,
    /// An ONNX model (its protobuf bytes) in place of tensors: read from an `.onnx` file, or
    /// from a library file that stores one as the uint8 tensor [`ONNX_TENSOR`].
    pub graph: Option<std::sync::Arc<[u8]>>,
}

/// The name of the uint8 tensor that holds an ONNX model inside a library (safetensors) file.
pub const ONNX_TENSOR: &str = "onnx.model";

impl Weights {
    /// Reads a `.safetensors` or PyTorch `.pth`/`.pt` file, chosen by content, not by name, a
    /// TensorFlow checkpoint (its folder, its `.index` file or its prefix; [`tf_checkpoint`]), or
    /// an ONNX model (an `.onnx` file, or any file that is not one of the others but parses as
    /// ONNX) as [`Weights::graph`].
    pub fn load(path: &Path) -> Result<Self> {
        if path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            return Self::from_onnx_bytes(bytes).map_err(|e| Error::Weights(format!("{}: {}", path.display(), strip(e))));
        }
        let by_name = path.is_dir() || path.extension().is_some_and(|e| e == "index") || !path.exists();
        if by_name && tf_checkpoint::is_checkpoint(path) {
            return tf_checkpoint::load(path);
        }
        let mut head = [0u8; 9];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                return Err(Error::Weights(format!(
                    "{}: the file is empty",
                    path.display()
                )));
            }
        }
        // A safetensors file is a little-endian header length and a JSON header (`{`); a
        // PyTorch file is a zip archive (PK..) or a legacy pickle (0x80 protocol byte). The
        // safetensors test comes first: a header length may begin with 0x80.
        let safetensors = head[8] == b'{';
        if !safetensors && (head.starts_with(b"PK") || head[0] == 0x80) {
            Self::load_pth(path)
        } else {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            match Self::from_safetensors_bytes(&bytes) {
                Ok(w) => Ok(w),
                Err(e) => match crate::onnx::runtime::decode(&bytes) {
                    Ok(_) => Self::from_onnx_bytes(bytes),
                    Err(_) => Err(Error::Weights(format!("{}: {}", path.display(), strip(e)))),
                },
            }
        }
    }

    /// An ONNX model as weights: no tensors, the model's `metadata_props` as metadata.
    /// Errors: [`Error::Weights`] for bytes that are not an ONNX model.
    pub fn from_onnx_bytes(bytes: Vec<u8>) -> Result<Self> {
        let model = crate::onnx::runtime::decode(&bytes)?;
        Ok(Self { tensors: BTreeMap::new(), metadata: crate::onnx::runtime::metadata(&model), graph: Some(bytes.into()) })
    }

    /// Parses safetensors bytes (float32, float16 or bfloat16 tensors).
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Weights(format!("not a valid safetensors file ({e})")))?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Weights(format!("not a valid safetensors file ({e})")))?;
        let mut tensors = BTreeMap::new();
        let mut graph = None;
        for (name, view) in st.tensors() {
            if name == ONNX_TENSOR && view.dtype() == Dtype::U8 {
                graph = Some(view.data().to_vec().into());
                continue;
            }
            let data = decode_floats(view.dtype(), view.data()).ok_or_else(|| {
                Error::Weights(format!(
                    "tensor {name} has unsupported dtype {:?}",
                    view.dtype()
                ))
            })?;
            tensors.insert(name, HostTensor::new(view.shape().to_vec(), data));
        }
        let metadata = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Self { tensors, metadata, graph })
    }

    /// Reads a PyTorch state dict (`torch.save(model.state_dict())`, or a dict holding one
    /// under `state_dict`/`model`). Integer tensors (BatchNorm's `num_batches_tracked`) are kept as floats.
    pub fn load_pth(path: &Path) -> Result<Self> {
        let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| {
            Error::Weights(format!(
                "{}: not a readable PyTorch file ({e})",
                path.display()
            ))
        })?;
        let mut tensors = BTreeMap::new();
        for (name, t) in reader.into_tensors() {
            let bytes = t
                .read()
                .map_err(|e| Error::Weights(format!("{}: {e}", path.display())))?;
            let data = decode_pth(t.dtype(), &bytes).ok_or_else(|| {
                Error::Weights(format!(
                    "{}: tensor {name} has unsupported dtype {:?}",
                    path.display(),
                    t.dtype()
                ))
            })?;
            let name = name
                .strip_prefix("state_dict.")
                .or_else(|| name.strip_prefix("model_state_dict."))
                .unwrap_or(&name)
                .to_string();
            tensors.insert(name, HostTensor::new(t.shape().to_vec(), data));
        }
        if tensors.is_empty() {
            return Err(Error::Weights(format!(
                "{}: the file holds no tensors",
                path.display()
            )));
        }
        Ok(Self {
            tensors,
            metadata: BTreeMap::new(),
            graph: None,
        })
    }

    /// Serialises as safetensors (float32) with the string metadata.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                (
                    k.clone(),
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    t.shape.clone(),
                )
            })
            .collect();
        let mut views: Vec<(String, TensorView<'_>)> = bytes
            .iter()
            .map(|(k, b, s)| {
                Ok((
                    k.clone(),
                    TensorView::new(Dtype::F32, s.clone(), b)
                        .map_err(|e| Error::Weights(e.to_string()))?,
                ))
            })
            .collect::<Result<_>>()?;
        if let Some(g) = &self.graph {
            views.push((
                ONNX_TENSOR.into(),
                TensorView::new(Dtype::U8, vec![g.len()], g).map_err(|e| Error::Weights(e.to_string()))?,
            ));
        }
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::Weights(e.to_string()))
    }

    /// sha256 over the tensors alone (names in order, shapes, float32 values), independent of the
    /// file format and metadata: two files holding the same network hash the same.
    pub fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (name, t) in &self.tensors {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((t.shape.len() as u64).to_le_bytes());
            for d in &t.shape {
                h.update((*d as u64).to_le_bytes());
            }
            for v in &t.data {
                h.update(v.to_le_bytes());
            }
        }
        hex::encode(h.finalize())
    }

    /// The tensors whose names start with `prefix`, with the prefix removed.
    pub fn with_prefix(&self, prefix: &str) -> Weights {
        let tensors = self
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|k| (k.to_string(), t.clone())))
            .collect();
        Weights { tensors, metadata: BTreeMap::new(), graph: None }
    }

    /// Whether a tensor of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The shape of a tensor, or an error naming the missing key.
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        self.get(name).map(|t| t.shape.as_slice())
    }

    /// A tensor by name, or an error naming the missing key.
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::Weights(format!("missing tensor `{name}`")))
    }

    /// A tensor checked against an expected shape, uploaded as a parameter.
    pub fn param<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Param<Tensor<D>>> {
        let t = self.get(name)?;
        if t.shape != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` has shape {:?}, expected {:?}",
                t.shape, shape
            )));
        }
        Ok(Param::from_tensor(t.to_tensor::<D>(device)?))
    }

    /// Fails if the map holds tensors that `allowed` rejects (a sign of the wrong file).
    pub fn reject_unexpected(&self, allowed: impl Fn(&str) -> bool) -> Result<()> {
        let extra: Vec<&String> = self.tensors.keys().filter(|k| !allowed(k)).collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(Error::Weights(format!(
                "unexpected tensors: {}",
                join_some(&extra)
            )))
        }
    }
}

fn join_some(keys: &[&String]) -> String {
    let mut s: Vec<String> = keys.iter().take(5).map(|k| format!("`{k}`")).collect();
    if keys.len() > 5 {
        s.push(format!("and {} more", keys.len() - 5));
    }
    s.join(", ")
}

fn strip(e: Error) -> String {
    match e {
        Error::Weights(m) => m,
        other => other.to_string(),
    }
}

fn decode_floats(dtype: Dtype, b: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        _ => return None,
    })
}

fn decode_pth(dtype: pytorch_reader::DType, b: &[u8]) -> Option<Vec<f32>> {
    use pytorch_reader::DType as P;
    // The reader returns native-endian bytes.
    Some(match dtype {
        P::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        P::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32())
            .collect(),
        P::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_ne_bytes([c[0], c[1]]).to_f32())
            .collect(),
        P::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_ne_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        P::I64 => b
            .chunks_exact(8)
            .map(|c| i64::from_ne_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors header whose length begins with the byte 0x80 (a pickle's protocol byte)
    /// is still read as safetensors, and an ONNX model stored inside comes back.
    #[test]
    fn safetensors_is_told_from_pickles_by_its_header() {
        let dir = tempfile::tempdir().unwrap();
        for pad in 0..300 {
            let mut w = Weights::default();
            w.tensors.insert("a".into(), HostTensor::new(vec![2], vec![1.0, 2.0]));
            w.metadata.insert("pad".into(), "x".repeat(pad));
            w.graph = Some(vec![8u8, 7, 1, 2, 3].into());
            let bytes = w.to_safetensors_bytes().unwrap();
            if bytes[0] != 0x80 {
                continue;
            }
            let path = dir.path().join("w.safetensors");
            std::fs::write(&path, &bytes).unwrap();
            let back = Weights::load(&path).unwrap();
            assert_eq!(back.tensors["a"].data, vec![1.0, 2.0]);
            assert_eq!(back.graph.as_deref(), Some(&[8u8, 7, 1, 2, 3][..]));
            return;
        }
        panic!("no padding gave a header length starting with 0x80");
    }
}
