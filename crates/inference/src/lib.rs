//! Sightline inference: the only crate that links ONNX Runtime.
//!
//! A model is an ONNX file plus a [`ModelManifest`]. [`SharedModel::load`] opens one ONNX
//! Runtime session per (model, provider) and starts a batcher thread that owns it; every run
//! gets an [`InferClient`] with its own bounded queue. Runs pre-process their frames on their
//! own threads ([`preprocess`]), the batcher gathers requests from all clients into batches
//! (when the model's batch dimension is dynamic) and routes the raw tensors back, and each
//! caller decodes ([`decode`]) and suppresses ([`nms`]) its own results. Inference never runs
//! on an async runtime thread; [`Pending::wait_async`] lets async code await a result.
//!
//! Around that: [`init_runtime`] finds the ONNX Runtime library, the [`Registry`] stores
//! models content-addressed and accepts one only after a dry run, [`decode_image`] guards
//! image uploads against pixel bombs, and [`bench`] measures the whole path against raw
//! ONNX Runtime and a Python baseline.

pub mod bench;
mod client;
pub mod coco;
pub mod decode;
mod error;
mod image_io;
pub mod manifest;
mod model;
pub mod nms;
pub mod ocr;
pub mod preprocess;
mod registry;
mod runtime;
mod session;
mod stats;
pub mod upscale;

pub use client::{DEFAULT_INFER_TIMEOUT, InferClient, Pending};
pub use decode::{DecodeParams, Decoder, DetectDecoder, OutputInfo, TensorView};
pub use error::InferError;
pub use image_io::{DEFAULT_MAX_PIXELS, decode_image, decode_image_file};
pub use manifest::{
    ClassNames, ColorOrder, Family, ImageToImageManifest, ImageToImageSpec, InputSpec, Layout,
    Manifest, ModelManifest, ResizeMode, Task,
};
pub use model::{DetectOptions, SharedModel};
pub use ocr::{OcrOptions, TextLine, TextQuad, TextReader};
pub use registry::{DEFAULT_MODEL, ModelRecord, Registry, builtin_models_dir, validate_model};
pub use runtime::{
    BatchOptions, Provider, RuntimeOptions, init_runtime, library_file_name, runtime_search_paths,
};
pub use session::{ModelInfo, RawTensor};
pub use stats::{LatencyHistogram, ModelStats};
pub use upscale::{Cancel, RgbPicture, TileOptions, Upscaler};
