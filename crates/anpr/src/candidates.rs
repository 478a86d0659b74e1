//! Which text boxes the detector found in a vehicle crop may be a plate, best first.
//!
//! The text detector finds every text in the crop: plates, but also stickers, brand names,
//! phone numbers on vans. Reading each costs a recogniser call, so the boxes that cannot be a
//! plate by shape or position are dropped here and the rest ranked, so the stage can read the
//! best few.

use sightline_core::BBox;

use crate::settings::CompiledPlateSettings;

/// Boxes narrower than this fraction of the crop width are dropped: a plate that small cannot
/// be read even when the characters are tall enough.
pub const MIN_WIDTH_FRACTION: f32 = 0.05;
/// On a vehicle, a plate's centre lies below this fraction of the crop height (plates are not
/// on roofs): boxes centred in the top 15 % are dropped.
pub const TOP_EXCLUDED_FRACTION: f32 = 0.15;
/// On a vehicle, boxes centred within this fraction of either side of the crop are dropped
/// (mirrors, pillars, the edge of a neighbouring vehicle).
pub const SIDE_EXCLUDED_FRACTION: f32 = 0.03;

/// A text box found by the detector, in crop pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextBox {
    /// Corners: top-left, top-right, bottom-right, bottom-left.
    pub quad: [[f32; 2]; 4],
    /// Detector score, 0..1.
    pub score: f32,
}

fn edge(a: [f32; 2], b: [f32; 2]) -> f32 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

impl TextBox {
    /// An axis-aligned box.
    pub fn from_bbox(b: BBox, score: f32) -> Self {
        TextBox {
            quad: [[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2]],
            score,
        }
    }

    /// Mean length of the top and bottom edges (the text's width along a tilted plate).
    pub fn width(&self) -> f32 {
        let [tl, tr, br, bl] = self.quad;
        (edge(tl, tr) + edge(bl, br)) / 2.0
    }

    /// Mean length of the left and right edges (the character height along a tilted plate).
    pub fn height(&self) -> f32 {
        let [tl, tr, br, bl] = self.quad;
        (edge(tl, bl) + edge(tr, br)) / 2.0
    }

    /// The axis-aligned box around the four corners.
    pub fn bbox(&self) -> BBox {
        let xs = self.quad.map(|p| p[0]);
        let ys = self.quad.map(|p| p[1]);
        let min = |v: [f32; 4]| v.into_iter().fold(f32::INFINITY, f32::min);
        let max = |v: [f32; 4]| v.into_iter().fold(f32::NEG_INFINITY, f32::max);
        BBox::new(min(xs), min(ys), max(xs), max(ys))
    }

    fn centre(&self) -> (f32, f32) {
        let x = self.quad.iter().map(|p| p[0]).sum::<f32>() / 4.0;
        let y = self.quad.iter().map(|p| p[1]).sum::<f32>() / 4.0;
        (x, y)
    }

    fn is_finite(&self) -> bool {
        self.score.is_finite() && self.quad.iter().flatten().all(|v| v.is_finite())
    }
}

/// The crop the text boxes were found in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub width: f32,
    pub height: f32,
    /// The crop is a tracked vehicle. False for a close-up or a whole image, where the
    /// position rules do not apply.
    pub vehicle: bool,
}

/// Keeps the boxes that may be a plate, best first.
///
/// A box is kept when all of these hold:
/// - its coordinates and score are finite numbers;
/// - its height ([`TextBox::height`]) is at least `min_char_height`: smaller text is not read
///   reliably;
/// - its aspect ratio width/height is within `min_aspect..=max_aspect`: plates are wide, single
///   characters and paragraphs are not;
/// - its width is at least [`MIN_WIDTH_FRACTION`] (5 %) of the crop width;
/// - on a vehicle (`region.vehicle`), its centre lies in the lower 85 % of the crop height
///   ([`TOP_EXCLUDED_FRACTION`]) and not within the outer 3 % of the crop width on either side
///   ([`SIDE_EXCLUDED_FRACTION`]).
///
/// Ranking: by `score × prior`, highest first, ties in input order. The prior is 1 outside a
/// vehicle. On a vehicle it prefers the lower centre, where plates are mounted:
/// `prior = (0.5 + 0.5·v) · (1 − 0.5·|2·u − 1|)` with `u = cx / width` and `v = cy / height`
/// the box centre relative to the crop, so it is 1 at the bottom centre, 0.75 at mid-height in
/// the centre and 0.5 at the bottom corners.
pub fn filter_candidates(
    boxes: &[TextBox],
    region: &Region,
    s: &CompiledPlateSettings,
) -> Vec<TextBox> {
    let cfg = s.settings();
    let boxes = join_words(boxes);
    let mut kept: Vec<(f32, TextBox)> = boxes
        .iter()
        .filter(|b| b.is_finite())
        .filter(|b| {
            let (w, h) = (b.width(), b.height());
            h > 0.0
                && h >= cfg.min_char_height
                && (cfg.min_aspect..=cfg.max_aspect).contains(&(w / h))
                && w >= MIN_WIDTH_FRACTION * region.width
        })
        .filter(|b| !region.vehicle || in_plate_area(b, region))
        .map(|b| (b.score * prior(b, region), *b))
        .collect();
    // Stable: equal ranks keep the detector's order.
    kept.sort_by(|a, b| b.0.total_cmp(&a.0));
    kept.into_iter().map(|(_, b)| b).collect()
}

/// The boxes plus, first, one box per run of boxes that continue each other on one line: a
/// text detector often splits a plate at its space (`KA01` `AB1234`). Two boxes continue each
/// other when their heights differ by less than a factor 1.6, their centres are within half
/// a height vertically, and the gap from the first's right edge to the second's left edge is
/// between −0.3 and 1.5 heights. A joined box runs from the first's left edge to the last's
/// right edge (keeping their tilt) and scores as its best part.
pub fn join_words(boxes: &[TextBox]) -> Vec<TextBox> {
    let mut order: Vec<&TextBox> = boxes.iter().filter(|b| b.is_finite()).collect();
    order.sort_by(|a, b| a.centre().0.total_cmp(&b.centre().0));
    let left = |b: &TextBox| b.quad[0][0].min(b.quad[3][0]);
    let right = |b: &TextBox| b.quad[1][0].max(b.quad[2][0]);
    let continues = |a: &TextBox, b: &TextBox| {
        let (ha, hb) = (a.height(), b.height());
        if ha <= 0.0 || hb <= 0.0 {
            return false;
        }
        let h = (ha + hb) / 2.0;
        let ratio = ha.max(hb) / ha.min(hb);
        let gap = left(b) - right(a);
        ratio < 1.6
            && (a.centre().1 - b.centre().1).abs() < 0.5 * h
            && (-0.3 * h..=1.5 * h).contains(&gap)
    };
    let mut joined = Vec::new();
    let mut used = vec![false; order.len()];
    for i in 0..order.len() {
        if used[i] {
            continue;
        }
        let mut chain = vec![i];
        let mut last = i;
        for j in i + 1..order.len() {
            if !used[j] && continues(order[last], order[j]) {
                chain.push(j);
                last = j;
            }
        }
        if chain.len() > 1 {
            for &k in &chain {
                used[k] = true;
            }
            let (a, b) = (order[chain[0]], order[last]);
            joined.push(TextBox {
                quad: [a.quad[0], b.quad[1], b.quad[2], a.quad[3]],
                score: chain.iter().map(|&k| order[k].score).fold(0.0, f32::max),
            });
        }
    }
    joined.extend(boxes.iter().copied());
    joined
}

fn in_plate_area(b: &TextBox, region: &Region) -> bool {
    let (cx, cy) = b.centre();
    let side = SIDE_EXCLUDED_FRACTION * region.width;
    cy >= TOP_EXCLUDED_FRACTION * region.height && cx >= side && cx <= region.width - side
}

fn prior(b: &TextBox, region: &Region) -> f32 {
    if !region.vehicle || region.width <= 0.0 || region.height <= 0.0 {
        return 1.0;
    }
    let (cx, cy) = b.centre();
    let u = (cx / region.width).clamp(0.0, 1.0);
    let v = (cy / region.height).clamp(0.0, 1.0);
    (0.5 + 0.5 * v) * (1.0 - 0.5 * (2.0 * u - 1.0).abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_one_line_are_joined_and_kept() {
        let a = TextBox::from_bbox(BBox::new(10.0, 50.0, 60.0, 70.0), 0.9);
        let b = TextBox::from_bbox(BBox::new(72.0, 51.0, 140.0, 71.0), 0.8);
        // Another line below, and a far box on the same line: not joined.
        let c = TextBox::from_bbox(BBox::new(10.0, 100.0, 60.0, 120.0), 0.9);
        let d = TextBox::from_bbox(BBox::new(300.0, 50.0, 340.0, 70.0), 0.9);
        let out = join_words(&[b, a, c, d]);
        assert_eq!(out.len(), 5, "{out:?}");
        let j = out[0];
        assert_eq!(j.bbox(), BBox::new(10.0, 50.0, 140.0, 71.0));
        assert_eq!(j.score, 0.9);
        assert_eq!(&out[1..], &[b, a, c, d]);
        assert_eq!(join_words(&[a]), vec![a]);
    }
    use crate::settings::PlateSettings;

    const CAR: Region = Region {
        width: 400.0,
        height: 300.0,
        vehicle: true,
    };
    const CLOSE_UP: Region = Region {
        vehicle: false,
        ..CAR
    };

    fn settings() -> CompiledPlateSettings {
        PlateSettings::default().validate().unwrap()
    }

    /// A 100×20 box (aspect 5) centred at (cx, cy).
    fn plate_at(cx: f32, cy: f32, score: f32) -> TextBox {
        TextBox::from_bbox(BBox::from_cxcywh(cx, cy, 100.0, 20.0), score)
    }

    fn keeps(b: TextBox, region: &Region) -> bool {
        !filter_candidates(&[b], region, &settings()).is_empty()
    }

    #[test]
    fn measures_tilted_quads_along_their_edges() {
        // A 50×10 box rotated so its top edge rises 30 px over 40.
        let b = TextBox {
            quad: [[0.0, 30.0], [40.0, 0.0], [46.0, 8.0], [6.0, 38.0]],
            score: 1.0,
        };
        assert!((b.width() - 50.0).abs() < 1e-4);
        assert!((b.height() - 10.0).abs() < 1e-4);
        assert_eq!(b.bbox(), BBox::new(0.0, 0.0, 46.0, 38.0));
    }

    #[test]
    fn a_plate_shaped_box_low_in_the_middle_is_kept() {
        assert!(keeps(plate_at(200.0, 250.0, 0.9), &CAR));
    }

    #[test]
    fn drops_boxes_with_short_characters() {
        let short = TextBox::from_bbox(BBox::from_cxcywh(200.0, 250.0, 35.0, 7.0), 0.9);
        assert!(!keeps(short, &CAR));
        let tall_enough = TextBox::from_bbox(BBox::from_cxcywh(200.0, 250.0, 40.0, 8.0), 0.9);
        assert!(keeps(tall_enough, &CAR));
    }

    #[test]
    fn drops_boxes_outside_the_aspect_range() {
        let square = TextBox::from_bbox(BBox::from_cxcywh(200.0, 250.0, 40.0, 40.0), 0.9);
        let strip = TextBox::from_bbox(BBox::from_cxcywh(200.0, 250.0, 390.0, 10.0), 0.9);
        assert!(!keeps(square, &CLOSE_UP));
        assert!(!keeps(strip, &CLOSE_UP));
    }

    #[test]
    fn drops_boxes_narrower_than_five_percent_of_the_crop() {
        let narrow = TextBox::from_bbox(BBox::from_cxcywh(200.0, 250.0, 19.0, 8.0), 0.9);
        assert!(!keeps(narrow, &CLOSE_UP));
        let narrower_crop = Region {
            width: 300.0,
            ..CLOSE_UP
        };
        assert!(keeps(narrow, &narrower_crop));
    }

    #[test]
    fn drops_boxes_on_the_roof_or_at_the_sides_of_a_vehicle_only() {
        let roof = plate_at(200.0, 30.0, 0.9);
        let left_edge = plate_at(10.0, 250.0, 0.9);
        let right_edge = plate_at(390.0, 250.0, 0.9);
        for b in [roof, left_edge, right_edge] {
            assert!(!keeps(b, &CAR), "{b:?}");
            assert!(keeps(b, &CLOSE_UP), "{b:?}");
        }
        assert!(keeps(plate_at(200.0, 46.0, 0.9), &CAR));
    }

    #[test]
    fn ranks_by_score_then_prefers_the_lower_centre_on_vehicles() {
        let s = settings();
        let high = plate_at(200.0, 100.0, 0.9);
        let low = plate_at(200.0, 280.0, 0.9);
        let side = plate_at(60.0, 280.0, 0.9);
        let out = filter_candidates(&[side, high, low], &CAR, &s);
        assert_eq!(out, [low, high, side]);
        // Without the vehicle prior only the score counts, ties in input order.
        let out = filter_candidates(&[side, high, low], &CLOSE_UP, &s);
        assert_eq!(out, [side, high, low]);
        // A much better score beats position.
        let sure = plate_at(200.0, 100.0, 1.0);
        let weak = plate_at(200.0, 280.0, 0.3);
        assert_eq!(filter_candidates(&[weak, sure], &CAR, &s), [sure, weak]);
    }

    #[test]
    fn drops_non_finite_boxes() {
        let mut b = plate_at(200.0, 250.0, 0.9);
        b.score = f32::NAN;
        assert!(!keeps(b, &CAR));
        let mut b = plate_at(200.0, 250.0, 0.9);
        b.quad[2][0] = f32::INFINITY;
        assert!(!keeps(b, &CAR));
    }
}
