//! Constant-velocity Kalman filter over a box, as in SORT and ByteTrack.
//!
//! It exists so a track's box keeps moving on frames that skipped inference and so lost tracks
//! are looked for where their object should now be. The state is `(cx, cy, a, h, vcx, vcy,
//! va, vh)` (centre, aspect ratio `w/h`, height and their per-frame velocities); only the first
//! four are measured. Noise is proportional to the box height, with ByteTrack's weights.
//!
//! The measurement matrix only selects the first four state components, so the products with
//! it are written out as slicing instead of general matrix products; the only inverse needed is
//! that of the 4×4 innovation covariance, done with a Cholesky factorisation. Arithmetic is in
//! `f64`: the covariance is updated hundreds of times per track.

#![allow(
    clippy::needless_range_loop,
    reason = "matrix algebra reads best with explicit row and column indices"
)]

use sightline_core::BBox;

const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;
/// Heights below this (pixels) are treated as this when scaling noise, so a degenerate box
/// never makes the innovation covariance singular.
const MIN_NOISE_HEIGHT: f64 = 1.0;

type Vec8 = [f64; 8];
type Mat8 = [[f64; 8]; 8];
type Mat4 = [[f64; 4]; 4];

/// Converts a box to the measurement `(cx, cy, w/h, h)`; `None` for a box without area.
pub(crate) fn measure(b: &BBox) -> Option<[f64; 4]> {
    let w = f64::from(b.x2) - f64::from(b.x1);
    let h = f64::from(b.y2) - f64::from(b.y1);
    if !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()) {
        return None;
    }
    Some([
        (f64::from(b.x1) + f64::from(b.x2)) / 2.0,
        (f64::from(b.y1) + f64::from(b.y2)) / 2.0,
        w / h,
        h,
    ])
}

/// One track's filter: mean and covariance of the state.
#[derive(Debug, Clone)]
pub(crate) struct BoxFilter {
    mean: Vec8,
    cov: Mat8,
}

impl BoxFilter {
    /// A filter at `z` (from [`measure`]) with zero velocity and ByteTrack's initial uncertainty.
    pub(crate) fn new(z: [f64; 4]) -> Self {
        let h = z[3].max(MIN_NOISE_HEIGHT);
        let p = 2.0 * STD_WEIGHT_POSITION * h;
        let v = 10.0 * STD_WEIGHT_VELOCITY * h;
        let std = [p, p, 1e-2, p, v, v, 1e-5, v];
        let mut cov = [[0.0; 8]; 8];
        for (i, s) in std.iter().enumerate() {
            cov[i][i] = s * s;
        }
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(&z);
        BoxFilter { mean, cov }
    }

    /// The current box estimate; empty (but finite, at the estimated centre) if the estimated
    /// size has collapsed.
    pub(crate) fn bbox(&self) -> BBox {
        let [cx, cy, a, h] = [self.mean[0], self.mean[1], self.mean[2], self.mean[3]];
        let h = h.max(0.0);
        let w = (a * h).max(0.0);
        BBox::new(
            (cx - w / 2.0) as f32,
            (cy - h / 2.0) as f32,
            (cx + w / 2.0) as f32,
            (cy + h / 2.0) as f32,
        )
    }

    /// Stops the height from changing further on its own (ByteTrack does this for lost tracks
    /// so their boxes do not shrink to nothing or grow without bound while unobserved).
    pub(crate) fn freeze_height(&mut self) {
        self.mean[7] = 0.0;
    }

    /// Advances the state by one frame: `x ← F x`, `P ← F P Fᵀ + Q`.
    pub(crate) fn predict(&mut self) {
        let h = self.mean[3].max(MIN_NOISE_HEIGHT);
        let p = STD_WEIGHT_POSITION * h;
        let v = STD_WEIGHT_VELOCITY * h;
        let q = [p, p, 1e-2, p, v, v, 1e-5, v];
        for i in 0..4 {
            self.mean[i] += self.mean[i + 4];
        }
        // F = [[I, I], [0, I]]: F P adds row i+4 to row i, (F P) Fᵀ adds column j+4 to column j.
        let c = &mut self.cov;
        for i in 0..4 {
            for j in 0..8 {
                c[i][j] += c[i + 4][j];
            }
        }
        for row in c.iter_mut() {
            for j in 0..4 {
                row[j] += row[j + 4];
            }
        }
        for (i, s) in q.iter().enumerate() {
            c[i][i] += s * s;
        }
    }

    /// Corrects the state with the measurement `z`. Returns false (and leaves the filter
    /// unchanged) if the innovation covariance is not positive definite, which only happens
    /// after numerical breakdown; the caller then restarts the filter at `z`.
    pub(crate) fn update(&mut self, z: [f64; 4]) -> bool {
        let h = self.mean[3].max(MIN_NOISE_HEIGHT);
        let p = STD_WEIGHT_POSITION * h;
        let r = [p, p, 1e-1, p];
        // S = H P Hᵀ + R: the top-left block of P plus measurement noise.
        let mut s: Mat4 = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.cov[i][j];
            }
            s[i][i] += r[i] * r[i];
        }
        let Some(l) = cholesky(&s) else {
            return false;
        };
        // Kᵀ = S⁻¹ H P (S and P are symmetric): solve S X = P[0..4, :] column by column.
        let mut kt = [[0.0; 8]; 4];
        for j in 0..8 {
            let x = cholesky_solve(
                &l,
                [
                    self.cov[0][j],
                    self.cov[1][j],
                    self.cov[2][j],
                    self.cov[3][j],
                ],
            );
            for i in 0..4 {
                kt[i][j] = x[i];
            }
        }
        let innovation: [f64; 4] = std::array::from_fn(|i| z[i] - self.mean[i]);
        let mut mean = self.mean;
        for (j, m) in mean.iter_mut().enumerate() {
            *m += (0..4).map(|i| kt[i][j] * innovation[i]).sum::<f64>();
        }
        // P ← P − K S Kᵀ, and K S = P Hᵀ, so K S Kᵀ = P[:, 0..4] Kᵀ.
        let mut next = self.cov;
        for (i, row) in next.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell -= (0..4).map(|k| self.cov[i][k] * kt[k][j]).sum::<f64>();
            }
        }
        // Keep P exactly symmetric so rounding cannot accumulate into an asymmetric matrix.
        for i in 0..8 {
            for j in (i + 1)..8 {
                let avg = (next[i][j] + next[j][i]) / 2.0;
                next[i][j] = avg;
                next[j][i] = avg;
            }
        }
        if next.iter().flatten().chain(&mean).any(|v| !v.is_finite()) {
            return false;
        }
        self.mean = mean;
        self.cov = next;
        true
    }

    #[cfg(test)]
    pub(crate) fn velocity(&self) -> [f64; 4] {
        [self.mean[4], self.mean[5], self.mean[6], self.mean[7]]
    }
}

/// Lower-triangular `L` with `L Lᵀ = s`, or `None` if `s` is not positive definite.
fn cholesky(s: &Mat4) -> Option<Mat4> {
    let mut l = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = s[i][i] - sum;
                if !(d > 0.0 && d.is_finite()) {
                    return None;
                }
                l[i][j] = d.sqrt();
            } else {
                l[i][j] = (s[i][j] - sum) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves `L Lᵀ x = b` by forward then backward substitution.
fn cholesky_solve(l: &Mat4, b: [f64; 4]) -> [f64; 4] {
    let mut y = [0.0; 4];
    for i in 0..4 {
        let sum: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (b[i] - sum) / l[i][i];
    }
    let mut x = [0.0; 4];
    for i in (0..4).rev() {
        let sum: f64 = ((i + 1)..4).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - sum) / l[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(cx: f32, cy: f32) -> [f64; 4] {
        measure(&BBox::from_cxcywh(cx, cy, 40.0, 80.0)).unwrap()
    }

    #[test]
    fn measure_refuses_boxes_without_area() {
        assert!(measure(&BBox::new(0.0, 0.0, 0.0, 10.0)).is_none());
        assert!(measure(&BBox::new(0.0, 0.0, 10.0, -1.0)).is_none());
        assert!(measure(&BBox::new(0.0, 0.0, f32::NAN, 10.0)).is_none());
        assert_eq!(
            measure(&BBox::new(10.0, 20.0, 30.0, 60.0)),
            Some([20.0, 40.0, 0.5, 40.0])
        );
    }

    #[test]
    fn new_filter_reproduces_the_box_and_stays_put_without_velocity() {
        let b = BBox::new(10.0, 20.0, 30.0, 60.0);
        let mut f = BoxFilter::new(measure(&b).unwrap());
        assert_eq!(f.bbox(), b);
        f.predict();
        f.predict();
        let p = f.bbox();
        assert!(
            (p.x1 - b.x1).abs() < 1e-4 && (p.y2 - b.y2).abs() < 1e-4,
            "{p:?}"
        );
    }

    #[test]
    fn learns_a_constant_velocity_and_extrapolates_it() {
        let mut f = BoxFilter::new(boxed(100.0, 200.0));
        for t in 1..40 {
            f.predict();
            assert!(f.update(boxed(100.0 + 3.0 * t as f32, 200.0 - 2.0 * t as f32)));
        }
        let v = f.velocity();
        assert!(
            (v[0] - 3.0).abs() < 0.05 && (v[1] + 2.0).abs() < 0.05,
            "{v:?}"
        );
        for _ in 0..10 {
            f.predict();
        }
        let c = f.bbox().center();
        // Truth at t = 49.
        assert!(
            (c.x - 247.0).abs() < 1.0 && (c.y - 102.0).abs() < 1.0,
            "{c:?}"
        );
    }

    #[test]
    fn update_pulls_the_estimate_toward_the_measurement() {
        let mut f = BoxFilter::new(boxed(100.0, 100.0));
        f.predict();
        assert!(f.update(boxed(110.0, 100.0)));
        let x = f.bbox().center().x;
        assert!(x > 100.0 && x < 110.0, "{x}");
    }

    #[test]
    fn frozen_height_stops_the_box_from_shrinking() {
        let mut f = BoxFilter::new(measure(&BBox::from_cxcywh(50.0, 50.0, 40.0, 80.0)).unwrap());
        for t in 1..20 {
            f.predict();
            let h = 80.0 - t as f32;
            f.update(measure(&BBox::from_cxcywh(50.0, 50.0, h / 2.0, h)).unwrap());
        }
        assert!(f.velocity()[3] < -0.5);
        f.freeze_height();
        let h0 = f.bbox().height();
        for _ in 0..100 {
            f.predict();
        }
        assert!((f.bbox().height() - h0).abs() < 1e-3);
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        let s = [
            [4.0, 2.0, 0.0, 0.0],
            [2.0, 3.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 2.0],
        ];
        let l = cholesky(&s).unwrap();
        let x = cholesky_solve(&l, [8.0, 7.0, 1.0, 4.0]);
        let expected = [1.25, 1.5, 1.0, 2.0];
        for (a, b) in x.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{x:?}");
        }
        let mut singular = s;
        singular[3][3] = 0.0;
        assert!(cholesky(&singular).is_none());
    }
}
