//! Motion gating (`[model.motion_gate]`, off by default): skip inference on frames where
//! nothing moved since the last inferred frame.
//!
//! Each frame due for inference is reduced to a grid of mean luma values (cells of about
//! 1/96 of the frame's width, at least 4 pixels; for I420 frames straight from the luma
//! plane, for RGB frames from `(R + 2G + B) / 4`). The frame is inferred when the share of
//! cells whose mean moved by more than `cell_delta` reaches `min_area`, when `refresh_s` of
//! stream time passed since the last inference, or when there is nothing to compare with
//! (first frame, new size, time going backwards). Otherwise the caller skips inference and
//! the tracker predicts, as between `model.interval` frames. The comparison is against the
//! last *inferred* frame, so slow movement adds up until it counts.
//!
//! Pure: decisions depend only on the frames and their timestamps, so replays are
//! deterministic.

use sightline_config::MotionGate as Settings;
use sightline_core::{Frame, PixelFormat, Pts};

/// Mean luma of each cell of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    /// The frame's size (thumbnails of different sizes are not compared).
    frame: (u32, u32),
    cols: usize,
    cells: Vec<u8>,
}

impl Thumbnail {
    /// The side of a cell for a frame `width` pixels wide.
    pub fn cell_side(width: u32) -> usize {
        (width as usize / 96).max(4)
    }

    /// Reduces `frame` to its grid of mean luma values (partial cells at the right and
    /// bottom edges average what they cover).
    pub fn of(frame: &Frame) -> Thumbnail {
        let (w, h) = (frame.width as usize, frame.height as usize);
        let side = Self::cell_side(frame.width);
        let (cols, rows) = (w.div_ceil(side), h.div_ceil(side));
        let mut sums = vec![0u32; cols * rows];
        if frame.is_well_formed() && w > 0 {
            match frame.format {
                PixelFormat::I420(_) => {
                    for (y, row) in frame.data[..w * h].chunks_exact(w).enumerate() {
                        let line = &mut sums[(y / side) * cols..][..cols];
                        for (c, px) in row.chunks(side).enumerate() {
                            line[c] += px.iter().map(|&v| u32::from(v)).sum::<u32>();
                        }
                    }
                }
                PixelFormat::Rgb24 => {
                    for (y, row) in frame.data.chunks_exact(w * 3).enumerate() {
                        let line = &mut sums[(y / side) * cols..][..cols];
                        for (c, px) in row.chunks(side * 3).enumerate() {
                            line[c] += px
                                .chunks_exact(3)
                                .map(|p| {
                                    (u32::from(p[0]) + 2 * u32::from(p[1]) + u32::from(p[2])) / 4
                                })
                                .sum::<u32>();
                        }
                    }
                }
            }
        }
        let cells = sums
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let (cx, cy) = (i % cols, i / cols);
                let cw = side.min(w - cx * side);
                let ch = side.min(h - cy * side);
                (s / (cw * ch) as u32) as u8
            })
            .collect();
        Thumbnail {
            frame: (frame.width, frame.height),
            cols,
            cells,
        }
    }

    /// The share of cells (0–1) whose mean differs from `other`'s by more than `delta`;
    /// `None` when the two come from frames of different sizes.
    pub fn changed(&self, other: &Thumbnail, delta: u8) -> Option<f64> {
        if self.frame != other.frame || self.cells.is_empty() {
            return None;
        }
        let n = self
            .cells
            .iter()
            .zip(&other.cells)
            .filter(|(a, b)| a.abs_diff(**b) > delta)
            .count();
        Some(n as f64 / self.cells.len() as f64)
    }

    /// Columns of the grid.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Why a frame due for inference goes through it (or not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// The gate is off.
    Off,
    /// Nothing to compare with: first frame, another size, time went backwards.
    First,
    /// This share of the picture changed (at least `min_area`).
    Motion(f64),
    /// `refresh_s` passed since the last inference.
    Refresh,
    /// Too little changed: skip inference.
    Still(f64),
}

impl Decision {
    pub fn infer(self) -> bool {
        !matches!(self, Decision::Still(_))
    }
}

/// The gate of one run.
#[derive(Debug, Clone)]
pub struct MotionGateState {
    settings: Settings,
    /// The last inferred frame's thumbnail and timestamp.
    reference: Option<(Thumbnail, Pts)>,
}

impl MotionGateState {
    pub fn new(settings: Settings) -> Self {
        MotionGateState {
            settings,
            reference: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Decides for a frame due for inference; when it is to be inferred, it becomes the
    /// reference the next frames are compared with.
    pub fn decide(&mut self, frame: &Frame) -> Decision {
        if !self.settings.enabled {
            return Decision::Off;
        }
        let thumb = Thumbnail::of(frame);
        let decision = match &self.reference {
            None => Decision::First,
            Some((_, at)) if frame.pts < *at => Decision::First,
            Some((reference, at)) => match thumb.changed(reference, self.settings.cell_delta) {
                None => Decision::First,
                Some(share) if share >= self.settings.min_area => Decision::Motion(share),
                Some(_) if (frame.pts.secs_f64() - at.secs_f64()) >= self.settings.refresh_s => {
                    Decision::Refresh
                }
                Some(share) => Decision::Still(share),
            },
        };
        if decision.infer() {
            self.reference = Some((thumb, frame.pts));
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::YuvColor;

    fn on() -> Settings {
        Settings {
            enabled: true,
            ..Settings::default()
        }
    }

    fn i420(w: u32, h: u32, ms: i64, luma: impl Fn(u32, u32) -> u8) -> Frame {
        let n = Frame::byte_len(PixelFormat::I420(YuvColor::default()), w, h);
        let mut data = vec![128u8; n];
        for y in 0..h {
            for x in 0..w {
                data[(y * w + x) as usize] = luma(x, y);
            }
        }
        Frame::from_i420(
            w,
            h,
            Pts::from_nanos(ms * 1_000_000),
            YuvColor::default(),
            data,
        )
        .unwrap()
    }

    /// A grey picture (level 120) with a dark `s`×`s` square at `(x, y)`.
    fn square(ms: i64, x: u32, y: u32, s: u32) -> Frame {
        square_of(30, ms, x, y, s)
    }

    fn square_of(level: u8, ms: i64, x: u32, y: u32, s: u32) -> Frame {
        i420(768, 576, ms, |px, py| {
            if (x..x + s).contains(&px) && (y..y + s).contains(&py) {
                level
            } else {
                120
            }
        })
    }

    #[test]
    fn thumbnails_average_cells_in_both_formats() {
        let f = i420(20, 10, 0, |x, _| if x < 10 { 0 } else { 200 });
        let t = Thumbnail::of(&f);
        // 20 px wide → 4 px cells: 5 × 3 cells, the last row 2 px high.
        assert_eq!((t.cols(), t.cells.len()), (5, 15));
        assert_eq!(&t.cells[..5], &[0, 0, 100, 200, 200]);
        let rgb = Frame::filled(20, 10, [40, 80, 120], Pts::ZERO);
        let t = Thumbnail::of(&rgb);
        assert!(
            t.cells
                .iter()
                .all(|&c| u32::from(c) == (40 + 160 + 120) / 4)
        );
        let other = Thumbnail::of(&Frame::filled(24, 10, [40, 80, 120], Pts::ZERO));
        assert_eq!(t.changed(&other, 10), None, "different sizes");
    }

    #[test]
    fn a_still_picture_skips_until_the_refresh_and_motion_infers() {
        let mut g = MotionGateState::new(on());
        assert_eq!(g.decide(&square(0, 100, 100, 40)), Decision::First);
        // The same picture 100 ms later: nothing changed.
        assert_eq!(g.decide(&square(100, 100, 100, 40)), Decision::Still(0.0));
        assert!(!g.decide(&square(900, 100, 100, 40)).infer());
        // 1 s after the last inference: refreshed, and the reference moves on.
        assert_eq!(g.decide(&square(1000, 100, 100, 40)), Decision::Refresh);
        assert!(!g.decide(&square(1100, 100, 100, 40)).infer());
        // The square moved 16 px: cells at both edges change.
        match g.decide(&square(1200, 116, 100, 40)) {
            Decision::Motion(share) => assert!(share > 0.001, "{share}"),
            other => panic!("expected motion, got {other:?}"),
        }
        // Time going backwards (a looped file) starts over.
        assert_eq!(g.decide(&square(0, 116, 100, 40)), Decision::First);
    }

    #[test]
    fn slow_movement_adds_up_against_the_last_inferred_frame() {
        let settings = Settings {
            refresh_s: 100.0,
            ..on()
        };
        let mut g = MotionGateState::new(settings);
        // A faint square (40 levels darker) moving one pixel per frame: each pixel of
        // shift moves the mean of the 8-px cells at its edges by 40/8 = 5 levels, under
        // `cell_delta` (10) from one frame to the next…
        assert!(g.decide(&square_of(80, 0, 100, 100, 40)).infer());
        let mut inferred_at = None;
        for i in 1..20u32 {
            if g.decide(&square_of(80, i64::from(i) * 100, 100 + i, 100, 40))
                .infer()
            {
                inferred_at = Some(i);
                break;
            }
        }
        // …but against the last inferred frame the shift adds up: 3 px = 15 levels.
        assert_eq!(inferred_at, Some(3));
    }

    #[test]
    fn small_noise_and_the_gate_off() {
        let mut g = MotionGateState::new(on());
        g.decide(&square(0, 100, 100, 40));
        // ±6 levels of noise everywhere is under `cell_delta`.
        let noisy = i420(768, 576, 100, |x, y| {
            let base = if (100..140).contains(&x) && (100..140).contains(&y) {
                30
            } else {
                120
            };
            if (x + y) % 2 == 0 { base + 6 } else { base - 6 }
        });
        assert!(!g.decide(&noisy).infer());
        let mut off = MotionGateState::new(Settings::default());
        assert_eq!(off.decide(&square(0, 0, 0, 8)), Decision::Off);
        assert_eq!(off.decide(&square(1, 0, 0, 8)), Decision::Off);
    }
}
