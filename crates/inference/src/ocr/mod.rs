//! Text detection and recognition (PaddleOCR PP-OCRv4, issue 13): the models that read
//! licence plates once a vehicle is cropped.
//!
//! [`TextReader`] holds one ONNX Runtime session per network (detector, recogniser), shared by
//! every caller. The post-processing is pure and lives beside the detectors' decoders:
//! [`db`] turns the detector's text-probability map into oriented boxes (Differentiable
//! Binarization: threshold, connected regions, minimum-area rectangles, "unclip"), [`ctc`]
//! turns the recogniser's per-column class probabilities into text with a confidence per
//! character (greedy CTC). Which boxes are plates and how readings are voted is not here:
//! that is `sightline-anpr`.

pub mod ctc;
pub mod db;
mod reader;

pub use ctc::{TextLine, ctc_greedy};
pub use db::{DbParams, TextQuad, boxes_from_map};
pub use reader::{OcrOptions, TextReader, warp_quad};
