//! Decoders: a model's raw output tensors → task results.
//!
//! Each detector family lays its outputs out differently (per-stride distributions, decoded
//! rows, channels-first anchors...). A decoder is *bound* once to a model's declared outputs
//! (which tensors it reads, in which order, and whether their shapes fit), so a mismatch is
//! a load-time error rather than a surprise on the first frame; decoding itself is a pure
//! function of the tensors, tested on synthetic data. Detection decoders return boxes in
//! model-input pixels; [`crate::nms::finish`] does the rest.
//!
//! The [`Decoder`] trait is generic in its output so that later tasks (segmentation masks,
//! super-resolved images) add decoders without touching the batcher.

mod end_to_end;
mod nanodet;
mod yolo;

use crate::manifest::Family;
use sightline_core::Detection;

/// One output tensor of one batch item (leading batch dimension 1).
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub shape: &'a [i64],
    pub data: &'a [f32],
}

impl TensorView<'_> {
    /// Checks that the data length matches the shape.
    pub(crate) fn checked(&self, what: &str) -> Result<(), String> {
        let n: i64 = self.shape.iter().product();
        if self.shape.iter().any(|d| *d < 0) || n as usize != self.data.len() {
            return Err(format!(
                "{what}: shape {:?} does not match {} values",
                self.shape,
                self.data.len()
            ));
        }
        Ok(())
    }
}

/// An output as the model declares it (`-1` for a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputInfo {
    pub name: String,
    pub shape: Vec<i64>,
}

/// Per-request decoding parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeParams {
    /// Candidates below this score may be skipped early (the exact filter is applied later).
    pub score_threshold: f32,
}

/// Turns the tensors of one batch item into a task result.
pub trait Decoder: Send + Sync + std::fmt::Debug {
    type Output: Send;
    /// Indices (into the model's outputs) of the tensors [`decode`](Self::decode) reads, in
    /// the order it expects them.
    fn outputs(&self) -> &[usize];
    fn decode(
        &self,
        outputs: &[TensorView<'_>],
        params: &DecodeParams,
    ) -> Result<Self::Output, String>;
}

#[derive(Debug, Clone)]
enum Plan {
    Nanodet(nanodet::NanodetPlan),
    Yolov5,
    Yolov8 { channels_first: bool },
    EndToEnd,
}

/// The decoder for every detection family.
#[derive(Debug, Clone)]
pub struct DetectDecoder {
    family: Family,
    num_classes: usize,
    outputs: Vec<usize>,
    plan: Plan,
}

impl DetectDecoder {
    /// Binds a decoder to a model's outputs. `names`, when given, picks the outputs to read
    /// (in order); otherwise the decoder chooses. Errors say what did not fit.
    pub fn bind(
        family: Family,
        num_classes: usize,
        input_size: (u32, u32),
        outputs: &[OutputInfo],
        names: Option<&[String]>,
    ) -> Result<Self, String> {
        let candidates: Vec<usize> = match names {
            Some(names) => names
                .iter()
                .map(|n| {
                    outputs.iter().position(|o| &o.name == n).ok_or_else(|| {
                        let have: Vec<_> = outputs.iter().map(|o| o.name.as_str()).collect();
                        format!("no output named `{n}` (outputs: {have:?})")
                    })
                })
                .collect::<Result<_, _>>()?,
            None => (0..outputs.len()).collect(),
        };
        if candidates.is_empty() {
            return Err("the model has no outputs".into());
        }
        let infos: Vec<&OutputInfo> = candidates.iter().map(|i| &outputs[*i]).collect();
        let (picked, plan) = match family {
            Family::Nanodet => {
                let plan = nanodet::NanodetPlan::bind(&infos, num_classes, input_size)?;
                ((0..infos.len()).collect(), Plan::Nanodet(plan))
            }
            Family::Yolov5 => {
                let i = yolo::pick_v5(&infos, num_classes)?;
                (vec![i], Plan::Yolov5)
            }
            Family::Yolov8 => {
                let (i, channels_first) = yolo::pick_v8(&infos, num_classes)?;
                (vec![i], Plan::Yolov8 { channels_first })
            }
            Family::Centernet | Family::Yolov10 => {
                let i = end_to_end::pick(&infos)?;
                (vec![i], Plan::EndToEnd)
            }
        };
        Ok(DetectDecoder {
            family,
            num_classes,
            outputs: picked.into_iter().map(|i| candidates[i]).collect(),
            plan,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }
}

impl Decoder for DetectDecoder {
    type Output = Vec<Detection>;

    fn outputs(&self) -> &[usize] {
        &self.outputs
    }

    fn decode(
        &self,
        outputs: &[TensorView<'_>],
        params: &DecodeParams,
    ) -> Result<Vec<Detection>, String> {
        if outputs.len() != self.outputs.len() {
            return Err(format!(
                "{} decoder expects {} tensors, got {}",
                self.family.as_str(),
                self.outputs.len(),
                outputs.len()
            ));
        }
        for (i, t) in outputs.iter().enumerate() {
            t.checked(&format!("output {i}"))?;
        }
        let thr = params.score_threshold;
        match &self.plan {
            Plan::Nanodet(plan) => plan.decode(outputs, self.num_classes, thr),
            Plan::Yolov5 => yolo::decode_v5(&outputs[0], self.num_classes, thr),
            Plan::Yolov8 { channels_first } => {
                yolo::decode_v8(&outputs[0], self.num_classes, *channels_first, thr)
            }
            Plan::EndToEnd => end_to_end::decode(&outputs[0], self.num_classes, thr),
        }
    }
}

/// Dimension check allowing `-1` (dynamic) in the declared shape.
pub(crate) fn dim_is(d: i64, want: usize) -> bool {
    d < 0 || d as usize == want
}

/// Index of the best-scoring class among `scores` (first on ties).
#[inline]
pub(crate) fn argmax(scores: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, s) in scores.iter().enumerate() {
        if *s > best.1 {
            best = (i, *s);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, shape: &[i64]) -> OutputInfo {
        OutputInfo {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn named_outputs_are_looked_up() {
        let outs = [info("wh", &[1, 128, 128, 4]), info("det", &[1, 100, 6])];
        let d = DetectDecoder::bind(Family::Centernet, 80, (512, 512), &outs, None).unwrap();
        assert_eq!(d.outputs(), &[1]);
        let names = vec!["det".to_string()];
        let d =
            DetectDecoder::bind(Family::Centernet, 80, (512, 512), &outs, Some(&names)).unwrap();
        assert_eq!(d.outputs(), &[1]);
        let names = vec!["nope".to_string()];
        let e = DetectDecoder::bind(Family::Centernet, 80, (512, 512), &outs, Some(&names))
            .unwrap_err();
        assert!(e.contains("no output named `nope`"), "{e}");
        let names = vec!["wh".to_string()];
        assert!(
            DetectDecoder::bind(Family::Centernet, 80, (512, 512), &outs, Some(&names)).is_err()
        );
    }

    #[test]
    fn wrong_family_for_the_outputs_is_an_error() {
        let outs = [info("out", &[1, 84, 8400])];
        assert!(DetectDecoder::bind(Family::Yolov8, 80, (640, 640), &outs, None).is_ok());
        assert!(DetectDecoder::bind(Family::Yolov5, 80, (640, 640), &outs, None).is_err());
        assert!(DetectDecoder::bind(Family::Yolov10, 80, (640, 640), &outs, None).is_err());
        assert!(DetectDecoder::bind(Family::Nanodet, 80, (640, 640), &outs, None).is_err());
        // Right family, wrong class count.
        assert!(DetectDecoder::bind(Family::Yolov8, 3, (640, 640), &outs, None).is_err());
    }

    #[test]
    fn decode_checks_tensor_lengths() {
        let outs = [info("out", &[1, 300, 6])];
        let d = DetectDecoder::bind(Family::Yolov10, 80, (640, 640), &outs, None).unwrap();
        let data = vec![0.0; 10];
        let t = TensorView {
            shape: &[1, 300, 6],
            data: &data,
        };
        let p = DecodeParams {
            score_threshold: 0.1,
        };
        assert!(d.decode(&[t], &p).is_err());
        assert!(d.decode(&[], &p).is_err());
    }
}
