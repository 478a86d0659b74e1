//! Ultralytics-style heads, the formats users bring: YOLOv5 (`[1,A,5+C]`: cx,cy,w,h,
//! objectness, class scores; score = objectness × class) and YOLOv8/YOLO11 (`[1,4+C,A]`:
//! cx,cy,w,h, class scores, no objectness; the transposed `[1,A,4+C]` is accepted too).
//! Boxes are in input pixels; one class per anchor (the best), as Ultralytics does by
//! default.

use super::{OutputInfo, TensorView, argmax, dim_is};
use sightline_core::{BBox, ClassId, Detection};

fn describe(outputs: &[&OutputInfo]) -> String {
    outputs
        .iter()
        .map(|o| format!("`{}` {:?}", o.name, o.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The YOLOv5 output among `outputs`.
pub(super) fn pick_v5(outputs: &[&OutputInfo], nc: usize) -> Result<usize, String> {
    outputs
        .iter()
        .position(
            |o| matches!(o.shape[..], [b, a, c] if dim_is(b, 1) && a != 0 && c == 5 + nc as i64),
        )
        .ok_or_else(|| {
            format!(
                "expected an output [1, anchors, {}] (cx,cy,w,h,obj + {nc} classes); have {}",
                5 + nc,
                describe(outputs)
            )
        })
}

/// The YOLOv8 output among `outputs`, and whether it is channels-first (`[1,4+C,A]`).
pub(super) fn pick_v8(outputs: &[&OutputInfo], nc: usize) -> Result<(usize, bool), String> {
    let want = 4 + nc as i64;
    for (i, o) in outputs.iter().enumerate() {
        if let [b, x, y] = o.shape[..]
            && dim_is(b, 1)
        {
            if x == want && y != 0 {
                return Ok((i, true));
            }
            if y == want && x != 0 {
                return Ok((i, false));
            }
        }
    }
    Err(format!(
        "expected an output [1, {want}, anchors] (cx,cy,w,h + {nc} classes); have {}",
        describe(outputs)
    ))
}

pub(super) fn decode_v5(t: &TensorView<'_>, nc: usize, thr: f32) -> Result<Vec<Detection>, String> {
    let row = 5 + nc;
    if t.shape.len() != 3 || t.shape[2] as usize != row {
        return Err(format!(
            "yolov5 output has shape {:?}, expected [1, A, {row}]",
            t.shape
        ));
    }
    let mut out = Vec::new();
    for r in t.data.chunks_exact(row) {
        let obj = r[4];
        // Class scores are at most 1, so a low objectness cannot reach the threshold.
        if obj.is_nan() || obj < thr {
            continue;
        }
        let (c, s) = argmax(&r[5..]);
        let score = obj * s;
        if score >= thr {
            out.push(Detection {
                bbox: BBox::from_cxcywh(r[0], r[1], r[2], r[3]),
                score,
                class_id: ClassId(c as u32),
            });
        }
    }
    Ok(out)
}

pub(super) fn decode_v8(
    t: &TensorView<'_>,
    nc: usize,
    channels_first: bool,
    thr: f32,
) -> Result<Vec<Detection>, String> {
    let ch = 4 + nc;
    let (dims_ok, anchors) = match t.shape {
        [_, c, a] if channels_first => (*c as usize == ch, *a as usize),
        [_, a, c] => (*c as usize == ch, *a as usize),
        _ => (false, 0),
    };
    if !dims_ok {
        return Err(format!(
            "yolov8 output has shape {:?}, expected {ch} channels",
            t.shape
        ));
    }
    let mut out = Vec::new();
    if channels_first {
        // Scan class planes row by row (contiguous), keeping the best class per anchor.
        let mut best = vec![(0u32, f32::NEG_INFINITY); anchors];
        for c in 0..nc {
            let plane = &t.data[(4 + c) * anchors..(5 + c) * anchors];
            for (b, s) in best.iter_mut().zip(plane) {
                if *s > b.1 {
                    *b = (c as u32, *s);
                }
            }
        }
        let d = t.data;
        for (a, (c, s)) in best.into_iter().enumerate() {
            if s >= thr {
                out.push(Detection {
                    bbox: BBox::from_cxcywh(
                        d[a],
                        d[anchors + a],
                        d[2 * anchors + a],
                        d[3 * anchors + a],
                    ),
                    score: s,
                    class_id: ClassId(c),
                });
            }
        }
    } else {
        for r in t.data.chunks_exact(ch) {
            let (c, s) = argmax(&r[4..]);
            if s >= thr {
                out.push(Detection {
                    bbox: BBox::from_cxcywh(r[0], r[1], r[2], r[3]),
                    score: s,
                    class_id: ClassId(c as u32),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_multiplies_objectness_and_class() {
        // 3 anchors, 2 classes.
        let data = [
            10.0, 20.0, 4.0, 6.0, 0.9, 0.1, 0.8, // score 0.72, class 1
            50.0, 50.0, 10.0, 10.0, 0.3, 1.0, 0.0, // obj too low
            30.0, 30.0, 2.0, 2.0, 0.9, 0.4, 0.2, // score 0.36 < 0.5
        ];
        let t = TensorView {
            shape: &[1, 3, 7],
            data: &data,
        };
        let d = decode_v5(&t, 2, 0.5).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].class_id, ClassId(1));
        assert!((d[0].score - 0.72).abs() < 1e-6);
        assert_eq!(d[0].bbox, BBox::new(8.0, 17.0, 12.0, 23.0));
        assert!(
            decode_v5(
                &TensorView {
                    shape: &[1, 3, 6],
                    data: &data[..18]
                },
                2,
                0.5
            )
            .is_err()
        );
    }

    #[test]
    fn v8_channels_first_and_transposed_agree() {
        // 3 anchors, 2 classes; channels-first [1, 6, 3].
        let cf = [
            10.0, 40.0, 70.0, // cx
            10.0, 40.0, 70.0, // cy
            4.0, 8.0, 2.0, // w
            4.0, 8.0, 2.0, // h
            0.9, 0.1, 0.2, // class 0
            0.1, 0.7, 0.3, // class 1
        ];
        let a = decode_v8(
            &TensorView {
                shape: &[1, 6, 3],
                data: &cf,
            },
            2,
            true,
            0.5,
        )
        .unwrap();
        let mut tr = [0.0f32; 18];
        for c in 0..6 {
            for an in 0..3 {
                tr[an * 6 + c] = cf[c * 3 + an];
            }
        }
        let b = decode_v8(
            &TensorView {
                shape: &[1, 3, 6],
                data: &tr,
            },
            2,
            false,
            0.5,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].class_id, a[0].score), (ClassId(0), 0.9));
        assert_eq!(a[0].bbox, BBox::new(8.0, 8.0, 12.0, 12.0));
        assert_eq!((a[1].class_id, a[1].score), (ClassId(1), 0.7));
    }

    #[test]
    fn picks_by_shape() {
        let o = |s: &[i64]| OutputInfo {
            name: "o".into(),
            shape: s.to_vec(),
        };
        let (v5, v8, v8t, dyn8) = (
            o(&[1, 25200, 85]),
            o(&[1, 84, 8400]),
            o(&[1, 8400, 84]),
            o(&[-1, 84, -1]),
        );
        assert_eq!(pick_v5(&[&v8, &v5], 80), Ok(1));
        assert_eq!(pick_v8(&[&v8], 80), Ok((0, true)));
        assert_eq!(pick_v8(&[&v8t], 80), Ok((0, false)));
        assert_eq!(pick_v8(&[&dyn8], 80), Ok((0, true)));
        assert!(pick_v5(&[&v8], 80).is_err());
    }
}
