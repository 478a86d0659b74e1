//! One ONNX Runtime session and the facts about it the rest of the crate relies on.
//!
//! Opening a model checks it against its manifest before anything runs: a single float
//! image input whose fixed dimensions agree with the manifest's size and layout, and outputs
//! the manifest's decoder can bind to. Running takes a contiguous `f32` buffer of `batch`
//! items and returns each item's selected outputs as owned tensors, so the batcher can hand
//! them to the callers' threads for decoding. Only the outputs the decoder reads are fetched
//! (CenterNet also exposes two large heat-map tensors that would otherwise be copied).

use crate::decode::{Decoder, DetectDecoder, OutputInfo};
use crate::error::InferError;
use crate::manifest::{Layout, ModelManifest};
use crate::runtime::{self, Provider, RuntimeOptions};
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};
use std::borrow::Cow;
use std::path::Path;

/// One output tensor of one batch item, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

/// A failed run, cheap to copy to every request of the batch.
#[derive(Debug, Clone)]
pub(crate) struct RunFailure {
    pub oom: bool,
    pub message: String,
}

impl RunFailure {
    fn from_message(message: String) -> Self {
        let oom = matches!(
            runtime::classify_run_error(&message),
            InferError::OutOfMemory(_)
        );
        RunFailure { oom, message }
    }

    pub(crate) fn to_error(&self) -> InferError {
        if self.oom {
            InferError::OutOfMemory(self.message.clone())
        } else {
            InferError::Runtime(self.message.clone())
        }
    }
}

/// What was found when the model was opened.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// The manifest's name.
    pub name: String,
    /// The provider the session really runs on (CPU after a fallback).
    pub provider: Provider,
    /// Whether the batch dimension is dynamic (requests from several clients run together).
    pub dynamic_batch: bool,
    pub input_name: String,
    /// Declared input shape (`-1` = dynamic).
    pub input_shape: Vec<i64>,
    /// All outputs as declared.
    pub outputs: Vec<OutputInfo>,
    /// Names of the outputs the decoder reads, in its order.
    pub decoder_outputs: Vec<String>,
}

pub(crate) struct ModelSession {
    session: Session,
    info: ModelInfo,
    /// Item shape without the batch dimension (e.g. `[3, 416, 416]`).
    item_shape: Vec<i64>,
    run_options: RunOptions<HasSelectedOutputs>,
}

fn tensor_shape(dtype: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.iter().copied().collect())),
        _ => None,
    }
}

impl ModelSession {
    /// Opens `onnx`, checks it against `manifest`, and binds the decoder.
    pub(crate) fn open(
        onnx: &Path,
        manifest: &ModelManifest,
        opts: &RuntimeOptions,
    ) -> Result<(ModelSession, DetectDecoder), InferError> {
        let model = manifest.name.as_str();
        manifest.validate()?;
        if !onnx.is_file() {
            return Err(InferError::invalid_model(
                model,
                format!("{} is not a file", onnx.display()),
            ));
        }
        let built = runtime::build_session(model, onnx, opts)?;
        let session = built.session;

        let inputs = session.inputs();
        let input = match &manifest.input.name {
            Some(n) => inputs.iter().find(|i| i.name() == n).ok_or_else(|| {
                InferError::invalid_model(model, format!("the model has no input named `{n}`"))
            })?,
            None if inputs.len() == 1 => &inputs[0],
            None => {
                return Err(InferError::invalid_model(
                    model,
                    format!(
                        "the model has {} inputs; only single-input image models are supported",
                        inputs.len()
                    ),
                ));
            }
        };
        let Some((TensorElementType::Float32, input_shape)) = tensor_shape(input.dtype()) else {
            return Err(InferError::invalid_model(
                model,
                format!(
                    "input `{}` is {:?}, not a float32 tensor",
                    input.name(),
                    input.dtype()
                ),
            ));
        };
        let (w, h) = (manifest.input.width as i64, manifest.input.height as i64);
        let want = match manifest.input.layout {
            Layout::Nchw => [3, h, w],
            Layout::Nhwc => [h, w, 3],
        };
        let fits = input_shape.len() == 4
            && input_shape[1..]
                .iter()
                .zip(want)
                .all(|(d, w)| *d < 0 || *d == w);
        if !fits {
            return Err(InferError::invalid_model(
                model,
                format!(
                    "input `{}` has shape {input_shape:?}; the manifest says {:?} {}x{} (expected [N, {}, {}, {}])",
                    input.name(),
                    manifest.input.layout,
                    w,
                    h,
                    want[0],
                    want[1],
                    want[2]
                ),
            ));
        }
        let dynamic_batch = input_shape[0] < 0;
        let input_name = input.name().to_string();

        let outputs: Vec<OutputInfo> = session
            .outputs()
            .iter()
            .map(|o| OutputInfo {
                name: o.name().to_string(),
                shape: tensor_shape(o.dtype()).map(|t| t.1).unwrap_or_default(),
            })
            .collect();
        let mismatch = |message: String| InferError::OutputMismatch {
            model: model.to_string(),
            family: manifest.family.as_str(),
            message,
        };
        let decoder = DetectDecoder::bind(
            manifest.family,
            manifest.num_classes(),
            (manifest.input.width, manifest.input.height),
            &outputs,
            manifest.outputs.as_deref(),
        )
        .map_err(mismatch)?;
        let mut selector = OutputSelector::no_default();
        let mut decoder_outputs = Vec::new();
        for &i in decoder.outputs() {
            let o = &session.outputs()[i];
            if !matches!(
                tensor_shape(o.dtype()),
                Some((TensorElementType::Float32, _))
            ) {
                return Err(mismatch(format!(
                    "output `{}` is not a float32 tensor",
                    o.name()
                )));
            }
            selector = selector.with(o.name());
            decoder_outputs.push(o.name().to_string());
        }
        let run_options = RunOptions::new()
            .map_err(|e| InferError::Runtime(e.to_string()))?
            .with_outputs(selector);
        let item_shape = match manifest.input.layout {
            Layout::Nchw => vec![3, h, w],
            Layout::Nhwc => vec![h, w, 3],
        };
        let info = ModelInfo {
            name: model.to_string(),
            provider: built.provider,
            dynamic_batch,
            input_name,
            input_shape,
            outputs,
            decoder_outputs,
        };
        tracing::info!(
            model,
            provider = info.provider.name(),
            dynamic_batch,
            input = ?info.input_shape,
            "model loaded"
        );
        Ok((
            ModelSession {
                session,
                info,
                item_shape,
                run_options,
            },
            decoder,
        ))
    }

    pub(crate) fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Values in one batch item's input tensor.
    pub(crate) fn item_len(&self) -> usize {
        self.item_shape.iter().product::<i64>() as usize
    }

    /// Runs one session call and discards the outputs: the bare ONNX Runtime time the
    /// benchmark compares the full path against.
    pub(crate) fn run_discard(&mut self, input: &[f32], batch: usize) -> Result<(), RunFailure> {
        let fail = |m: String| RunFailure::from_message(m);
        let mut shape = Vec::with_capacity(4);
        shape.push(batch as i64);
        shape.extend_from_slice(&self.item_shape);
        let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| fail(e.to_string()))?;
        let inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            vec![(Cow::Borrowed(self.info.input_name.as_str()), tensor.into())];
        self.session
            .run_with_options(inputs, &self.run_options)
            .map(drop)
            .map_err(|e| fail(e.message().to_string()))
    }

    /// Runs `batch` items laid out back to back in `input`; returns each item's outputs.
    pub(crate) fn run(
        &mut self,
        input: &[f32],
        batch: usize,
    ) -> Result<Vec<Vec<RawTensor>>, RunFailure> {
        let fail = |m: String| RunFailure::from_message(m);
        if batch == 0 || input.len() != batch * self.item_len() {
            return Err(fail(format!(
                "input has {} values, expected {batch} x {}",
                input.len(),
                self.item_len()
            )));
        }
        let mut shape = Vec::with_capacity(4);
        shape.push(batch as i64);
        shape.extend_from_slice(&self.item_shape);
        let tensor = TensorRef::from_array_view((shape, input)).map_err(|e| fail(e.to_string()))?;
        let inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            vec![(Cow::Borrowed(self.info.input_name.as_str()), tensor.into())];
        let outputs = self
            .session
            .run_with_options(inputs, &self.run_options)
            .map_err(|e| fail(e.message().to_string()))?;
        let mut items: Vec<Vec<RawTensor>> = (0..batch)
            .map(|_| Vec::with_capacity(self.info.decoder_outputs.len()))
            .collect();
        for name in &self.info.decoder_outputs {
            let value = outputs
                .get(name.as_str())
                .ok_or_else(|| fail(format!("output `{name}` missing from the results")))?;
            let (shape, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| fail(format!("output `{name}`: {e}")))?;
            if shape.first().copied() != Some(batch as i64) {
                return Err(fail(format!(
                    "output `{name}` has shape {:?} for a batch of {batch}",
                    &shape[..]
                )));
            }
            let per = data.len() / batch;
            let mut item_shape = shape.to_vec();
            item_shape[0] = 1;
            for (item, chunk) in items.iter_mut().zip(data.chunks_exact(per.max(1))) {
                item.push(RawTensor {
                    shape: item_shape.clone(),
                    data: chunk.to_vec(),
                });
            }
        }
        Ok(items)
    }
}
