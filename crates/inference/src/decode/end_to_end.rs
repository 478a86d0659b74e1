//! End-to-end detectors whose graph already decodes and suppresses: the shipped CenterNet
//! (`[1,100,6]`) and YOLOv10-style exports (`[1,300,6]`). Each row is x1,y1,x2,y2 (input
//! pixels), score, class (as a float). Rows with an out-of-range class are ignored.

use super::{OutputInfo, TensorView, dim_is};
use sightline_core::{BBox, ClassId, Detection};

pub(super) fn pick(outputs: &[&OutputInfo]) -> Result<usize, String> {
    outputs
        .iter()
        .position(|o| matches!(o.shape[..], [b, k, 6] if dim_is(b, 1) && k != 0))
        .ok_or_else(|| {
            let have: Vec<_> = outputs
                .iter()
                .map(|o| format!("`{}` {:?}", o.name, o.shape))
                .collect();
            format!(
                "expected an output [1, K, 6] (x1,y1,x2,y2,score,class); have {}",
                have.join(", ")
            )
        })
}

pub(super) fn decode(t: &TensorView<'_>, nc: usize, thr: f32) -> Result<Vec<Detection>, String> {
    if t.shape.len() != 3 || t.shape[2] != 6 {
        return Err(format!(
            "output has shape {:?}, expected [1, K, 6]",
            t.shape
        ));
    }
    let mut out = Vec::new();
    for r in t.data.chunks_exact(6) {
        let (score, class) = (r[4], r[5]);
        if score.is_nan() || score < thr || !(0.0..nc as f32).contains(&class.round()) {
            continue;
        }
        out.push(Detection {
            bbox: BBox::new(r[0], r[1], r[2], r[3]),
            score,
            class_id: ClassId(class.round() as u32),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_rows_above_threshold_with_valid_class() {
        let data = [
            1.0, 2.0, 3.0, 4.0, 0.9, 7.0, // truck
            1.0, 2.0, 3.0, 4.0, 0.1, 0.0, // low score
            1.0, 2.0, 3.0, 4.0, 0.8, 80.0, // class out of range
            1.0, 2.0, 3.0, 4.0, 0.7, -1.0, // padding row
            5.0, 6.0, 7.0, 8.0, 0.6, 0.0, // person
        ];
        let t = TensorView {
            shape: &[1, 5, 6],
            data: &data,
        };
        let d = decode(&t, 80, 0.3).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].class_id, ClassId(7));
        assert_eq!(d[0].bbox, BBox::new(1.0, 2.0, 3.0, 4.0));
        assert_eq!(d[1].class_id, ClassId(0));
        assert!(
            decode(
                &TensorView {
                    shape: &[1, 6, 5],
                    data: &data[..30]
                },
                80,
                0.3
            )
            .is_err()
        );
    }

    #[test]
    fn picks_the_k_by_6_output() {
        let o = |n: &str, s: &[i64]| OutputInfo {
            name: n.into(),
            shape: s.to_vec(),
        };
        let (a, b, c) = (
            o("wh", &[1, 128, 128, 4]),
            o("kp", &[1, 128, 128, 80]),
            o("det", &[1, 100, 6]),
        );
        assert_eq!(pick(&[&a, &b, &c]), Ok(2));
        assert!(pick(&[&a, &b]).is_err());
        assert_eq!(pick(&[&o("y10", &[-1, 300, 6])]), Ok(0));
    }
}
