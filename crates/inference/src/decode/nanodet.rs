//! NanoDet (the shipped default): per stride, class scores `[1,N,C]` (sigmoid applied) and
//! box-side distributions `[1,N,4·B]` (softmax over `B` bins; distance = Σ p_i·i·stride).
//! Cell centres are `((gx+0.5)·stride, (gy+0.5)·stride)`; a box is
//! `(cx−l, cy−t, cx+r, cy+b)`. Mirrors the reference decoder in the model's provenance notes.

use super::{OutputInfo, TensorView, argmax};
use sightline_core::{BBox, ClassId, Detection};

#[derive(Debug, Clone, PartialEq)]
struct Level {
    cls: usize,
    reg: usize,
    cells: usize,
    grid_w: usize,
    stride: f32,
    bins: usize,
}

/// Which tensors form which stride level, worked out once from the declared shapes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NanodetPlan {
    levels: Vec<Level>,
}

impl NanodetPlan {
    pub(crate) fn bind(
        outputs: &[&OutputInfo],
        num_classes: usize,
        (w, h): (u32, u32),
    ) -> Result<Self, String> {
        // (cells, class tensor, (distribution tensor, bins))
        type Group = (usize, Option<usize>, Option<(usize, usize)>);
        let mut groups: Vec<Group> = Vec::new();
        for (i, o) in outputs.iter().enumerate() {
            let [b, n, c] = o.shape[..] else {
                return Err(format!(
                    "output `{}` has shape {:?}; nanodet outputs are [1, cells, C]",
                    o.name, o.shape
                ));
            };
            if !(b == 1 || b < 0) || n <= 0 || c <= 0 {
                return Err(format!(
                    "output `{}` has shape {:?}; nanodet outputs are [1, cells, C] with fixed cells and C",
                    o.name, o.shape
                ));
            }
            let (n, c) = (n as usize, c as usize);
            let slot = match groups.iter().position(|g| g.0 == n) {
                Some(p) => p,
                None => {
                    groups.push((n, None, None));
                    groups.len() - 1
                }
            };
            let g = &mut groups[slot];
            if c == num_classes && g.1.is_none() {
                g.1 = Some(i);
            } else if c % 4 == 0 && c / 4 >= 2 && g.2.is_none() {
                g.2 = Some((i, c / 4));
            } else {
                return Err(format!(
                    "output `{}` with {c} values per cell is neither {num_classes} class scores nor a 4-side distribution",
                    o.name
                ));
            }
        }
        let mut levels = Vec::new();
        for (cells, cls, reg) in groups {
            let (Some(cls), Some((reg, bins))) = (cls, reg) else {
                return Err(format!(
                    "the level with {cells} cells needs a [1,{cells},{num_classes}] class tensor and a [1,{cells},4·bins] distribution tensor"
                ));
            };
            let stride = ((w as f64 * h as f64) / cells as f64).sqrt().round() as u32;
            if stride == 0 || w % stride != 0 || h % stride != 0 {
                return Err(format!("{cells} cells do not tile a {w}x{h} input"));
            }
            let (gw, gh) = ((w / stride) as usize, (h / stride) as usize);
            if gw * gh != cells {
                return Err(format!("{cells} cells do not tile a {w}x{h} input"));
            }
            levels.push(Level {
                cls,
                reg,
                cells,
                grid_w: gw,
                stride: stride as f32,
                bins,
            });
        }
        levels.sort_by(|a, b| a.stride.total_cmp(&b.stride));
        Ok(NanodetPlan { levels })
    }

    pub(crate) fn decode(
        &self,
        outputs: &[TensorView<'_>],
        num_classes: usize,
        threshold: f32,
    ) -> Result<Vec<Detection>, String> {
        let mut dets = Vec::new();
        let mut probs = Vec::new();
        for l in &self.levels {
            let cls = outputs[l.cls].data;
            let reg = outputs[l.reg].data;
            if cls.len() != l.cells * num_classes || reg.len() != l.cells * 4 * l.bins {
                return Err(format!(
                    "stride {} tensors have {} and {} values, expected {} and {}",
                    l.stride,
                    cls.len(),
                    reg.len(),
                    l.cells * num_classes,
                    l.cells * 4 * l.bins
                ));
            }
            for (cell, scores) in cls.chunks_exact(num_classes).enumerate() {
                let (best, score) = argmax(scores);
                if score.is_nan() || score < threshold {
                    continue;
                }
                let cx = ((cell % l.grid_w) as f32 + 0.5) * l.stride;
                let cy = ((cell / l.grid_w) as f32 + 0.5) * l.stride;
                let dist = &reg[cell * 4 * l.bins..(cell + 1) * 4 * l.bins];
                let mut side = [0f32; 4];
                for (s, bins) in side.iter_mut().zip(dist.chunks_exact(l.bins)) {
                    *s = expected_bin(bins, &mut probs) * l.stride;
                }
                dets.push(Detection {
                    bbox: BBox::new(cx - side[0], cy - side[1], cx + side[2], cy + side[3]),
                    score,
                    class_id: ClassId(best as u32),
                });
            }
        }
        Ok(dets)
    }
}

/// Σ softmax(x)_i · i.
fn expected_bin(x: &[f32], scratch: &mut Vec<f32>) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    scratch.clear();
    scratch.extend(x.iter().map(|v| (v - m).exp()));
    let sum: f32 = scratch.iter().sum();
    let weighted: f32 = scratch.iter().enumerate().map(|(i, e)| e * i as f32).sum();
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DecodeParams, Decoder, DetectDecoder};
    use crate::manifest::Family;

    fn info(name: &str, shape: &[i64]) -> OutputInfo {
        OutputInfo {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    /// The shipped model's outputs, in its (shuffled) order.
    fn shipped() -> Vec<OutputInfo> {
        vec![
            info("Identity_2:0", &[1, 169, 80]),
            info("Identity_5:0", &[1, 169, 44]),
            info("Identity_1:0", &[1, 676, 80]),
            info("Identity:0", &[1, 2704, 80]),
            info("Identity_4:0", &[1, 676, 44]),
            info("Identity_3:0", &[1, 2704, 44]),
        ]
    }

    #[test]
    fn binds_the_shipped_layout() {
        let outs = shipped();
        let refs: Vec<&OutputInfo> = outs.iter().collect();
        let plan = NanodetPlan::bind(&refs, 80, (416, 416)).unwrap();
        let strides: Vec<_> = plan
            .levels
            .iter()
            .map(|l| (l.stride, l.cls, l.reg, l.grid_w))
            .collect();
        assert_eq!(
            strides,
            vec![(8.0, 3, 5, 52), (16.0, 2, 4, 26), (32.0, 0, 1, 13)]
        );
        assert!(plan.levels.iter().all(|l| l.bins == 11));
    }

    #[test]
    fn rejects_unpaired_or_untileable_outputs() {
        let outs = [info("a", &[1, 169, 80])];
        let r: Vec<&OutputInfo> = outs.iter().collect();
        assert!(NanodetPlan::bind(&r, 80, (416, 416)).is_err());
        let outs = [info("a", &[1, 170, 80]), info("b", &[1, 170, 44])];
        let r: Vec<&OutputInfo> = outs.iter().collect();
        assert!(NanodetPlan::bind(&r, 80, (416, 416)).is_err());
        let outs = [info("a", &[1, 169, 7]), info("b", &[1, 169, 44])];
        let r: Vec<&OutputInfo> = outs.iter().collect();
        assert!(NanodetPlan::bind(&r, 80, (416, 416)).is_err());
        let outs = [info("a", &[1, 169]), info("b", &[1, 169, 44])];
        let r: Vec<&OutputInfo> = outs.iter().collect();
        assert!(NanodetPlan::bind(&r, 80, (416, 416)).is_err());
    }

    #[test]
    fn decodes_a_synthetic_cell() {
        // One level: 2x2 cells of stride 8 on a 16x16 input, 3 classes, 4 bins.
        let outs = [info("cls", &[1, 4, 3]), info("reg", &[1, 4, 16])];
        let d = DetectDecoder::bind(Family::Nanodet, 3, (16, 16), &outs, None).unwrap();
        let mut cls = vec![0.0f32; 12];
        cls[3 * 3 + 2] = 0.9; // cell 3 (gx=1, gy=1), class 2
        cls[0] = 0.2; // cell 0, class 0, below threshold
        // Distributions: one-hot-ish logits, so the expected bin is ~the hot one.
        let mut reg = vec![-30.0f32; 64];
        for (side, bin) in [(0usize, 1usize), (1, 2), (2, 3), (3, 0)] {
            reg[3 * 16 + side * 4 + bin] = 30.0;
        }
        let t = [
            TensorView {
                shape: &[1, 4, 3],
                data: &cls,
            },
            TensorView {
                shape: &[1, 4, 16],
                data: &reg,
            },
        ];
        let got = d
            .decode(
                &t,
                &DecodeParams {
                    score_threshold: 0.5,
                },
            )
            .unwrap();
        assert_eq!(got.len(), 1);
        let g = got[0];
        assert_eq!(g.class_id, ClassId(2));
        assert_eq!(g.score, 0.9);
        // centre (12, 12); l=1*8, t=2*8, r=3*8, b=0
        let want = BBox::new(4.0, -4.0, 36.0, 12.0);
        for (a, b) in [
            (g.bbox.x1, want.x1),
            (g.bbox.y1, want.y1),
            (g.bbox.x2, want.x2),
            (g.bbox.y2, want.y2),
        ] {
            assert!((a - b).abs() < 1e-3, "{:?} vs {want:?}", g.bbox);
        }
    }

    #[test]
    fn expected_bin_of_uniform_logits_is_the_middle() {
        let mut s = Vec::new();
        assert!((expected_bin(&[0.0; 11], &mut s) - 5.0).abs() < 1e-5);
    }
}
