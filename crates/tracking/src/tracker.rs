//! The ByteTrack association loop, fed one frame at a time.
//!
//! A run's tracking task calls [`Tracker::update`] for each frame that went through inference
//! and [`Tracker::predict`] for each frame that did not, in stream order. Each call is one
//! Kalman step for every track, so boxes keep moving between inference frames.
//!
//! On an inference frame, detections are split by score and matched in stages, as ByteTrack
//! does:
//! 1. high-score detections against every confirmed track, tracked or lost;
//! 2. low-score detections against the confirmed tracks that were matched on the previous
//!    inference frame and are still unmatched (this keeps occluded, low-confidence objects);
//! 3. the remaining high-score detections against tentative tracks;
//! 4. remaining high-score detections scoring at least `new_track_score` start tentative
//!    tracks.
//!
//! Tentative tracks that miss a frame are dropped; confirmed ones are kept, with predicted
//! boxes, until `max_age_frames` frames without a match. Tracks live in a `Vec` in id order and
//! detections are taken in input order, so the same input always gives the same output.

use crate::assign::assign;
use crate::kalman::{BoxFilter, measure};
use crate::settings::TrackerSettings;
use sightline_core::{BBox, ClassId, Detection, Pts, Track, TrackId};

/// Multi-object tracker for one stream. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct Tracker {
    settings: TrackerSettings,
    /// Every live track, tentative or confirmed, in increasing id order.
    tracks: Vec<TrackState>,
    /// The id the next born track gets.
    next_id: u64,
    /// Inference frames processed since creation or the last [`Tracker::clear`].
    updates: u64,
    last_pts: Option<Pts>,
    /// The confirmed tracks of the last frame, returned by reference.
    output: Vec<Track>,
}

/// What the tracker keeps per track beyond what it reports.
#[derive(Debug, Clone)]
struct TrackState {
    id: TrackId,
    class_id: ClassId,
    filter: BoxFilter,
    score: f32,
    hits: u32,
    misses: u32,
    /// Frames (inferred or predicted) since the last matched detection.
    frames_since_match: u32,
    confirmed: bool,
    matched: bool,
}

impl TrackState {
    fn report(&self) -> Track {
        Track {
            id: self.id,
            class_id: self.class_id,
            bbox: self.filter.bbox(),
            score: self.score,
            hits: self.hits,
            misses: self.misses,
            matched: self.matched,
        }
    }
}

/// A usable detection with its measurement, kept with its index in the caller's slice.
struct Candidate {
    bbox: BBox,
    z: [f64; 4],
    score: f32,
    class_id: ClassId,
}

impl Tracker {
    /// A tracker with no tracks; the first track gets id 1.
    ///
    /// `settings` should have passed [`TrackerSettings::validate`]; out-of-range values are
    /// not rejected here but behave as their nearest sensible value (`min_hits` 0 as 1).
    pub fn new(settings: TrackerSettings) -> Tracker {
        Tracker {
            settings,
            tracks: Vec::new(),
            next_id: 1,
            updates: 0,
            last_pts: None,
            output: Vec::new(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &TrackerSettings {
        &self.settings
    }

    /// Replaces the settings between two frames (a new config version applied to a live run).
    /// Existing tracks keep their ids and state; the new thresholds apply from the next frame.
    pub fn set_settings(&mut self, settings: TrackerSettings) {
        self.settings = settings;
    }

    /// Forgets every track, for example after the source reconnected and the scene may have
    /// changed. Ids keep counting, so an id is never reused by this tracker, and tracks born
    /// in the next `min_hits` inference frames are confirmed at once, as at stream start.
    pub fn clear(&mut self) {
        self.tracks.clear();
        self.output.clear();
        self.updates = 0;
    }

    /// Advances one frame that went through inference, matching `detections` (in source-frame
    /// pixels) to tracks. Detections without area, with a non-finite box or score, or scoring
    /// below `low_score` are ignored.
    ///
    /// Returns the confirmed tracks, in increasing id order: those matched on this frame
    /// (`matched`, `misses == 0`) and those currently unmatched but not yet removed (`misses`
    /// counts their consecutive unmatched inference frames; their box is the prediction).
    pub fn update(&mut self, pts: Pts, detections: &[Detection]) -> &[Track] {
        self.note_pts(pts);
        self.updates += 1;
        self.step();
        let s = &self.settings;
        let mut high = Vec::new();
        let mut low = Vec::new();
        for d in detections {
            let Some(z) = measure(&d.bbox) else { continue };
            if !d.score.is_finite() || d.score < s.low_score {
                continue;
            }
            let c = Candidate {
                bbox: d.bbox,
                z,
                score: d.score,
                class_id: d.class_id,
            };
            if d.score >= s.high_score {
                high.push(c);
            } else {
                low.push(c);
            }
        }
        let ignored = detections.len() - high.len() - low.len();
        tracing::trace!(
            pts = pts.nanos(),
            high = high.len(),
            low = low.len(),
            ignored,
            tracks = self.tracks.len(),
            "tracker update"
        );

        // Track boxes are fixed for the association: every match compares predicted boxes.
        let boxes: Vec<BBox> = self.tracks.iter().map(|t| t.filter.bbox()).collect();
        let confirmed: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].confirmed)
            .collect();
        let tentative: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| !self.tracks[i].confirmed)
            .collect();

        // Stage 1: high-score detections vs every confirmed track.
        let mut high_used = vec![false; high.len()];
        let mut matched_track = vec![false; self.tracks.len()];
        let first = self.match_stage(&confirmed, &boxes, &high, s.match_iou);
        for &(ti, di) in &first {
            high_used[di] = true;
            matched_track[ti] = true;
        }

        // Stage 2: low-score detections vs confirmed tracks matched on the previous inference
        // frame (misses == 0) that stage 1 left unmatched.
        let tracked_left: Vec<usize> = confirmed
            .iter()
            .copied()
            .filter(|&i| !matched_track[i] && self.tracks[i].misses == 0)
            .collect();
        let second = self.match_stage(&tracked_left, &boxes, &low, s.low_match_iou);
        for &(ti, _) in &second {
            matched_track[ti] = true;
        }

        // Stage 3: remaining high-score detections vs tentative tracks.
        let high_left: Vec<usize> = (0..high.len()).filter(|&i| !high_used[i]).collect();
        let high_rest: Vec<&Candidate> = high_left.iter().map(|&i| &high[i]).collect();
        let third = self.match_refs(&tentative, &boxes, &high_rest, s.unconfirmed_match_iou);
        for &(ti, ri) in &third {
            high_used[high_left[ri]] = true;
            matched_track[ti] = true;
        }

        let min_hits = s.min_hits.max(1);
        let max_age = s.max_age_frames;
        for &(ti, di) in &first {
            self.tracks[ti].absorb(&high[di], min_hits);
        }
        for &(ti, di) in &second {
            self.tracks[ti].absorb(&low[di], min_hits);
        }
        for &(ti, ri) in &third {
            self.tracks[ti].absorb(high_rest[ri], min_hits);
        }

        // Misses: tentative tracks die at once; confirmed ones after `max_age_frames` frames.
        for (t, &m) in self.tracks.iter_mut().zip(&matched_track) {
            if !m {
                t.misses = t.misses.saturating_add(1);
            }
        }
        let before = self.tracks.len();
        let mut keep = matched_track.iter();
        self.tracks.retain(|t| {
            let matched = keep.next().copied().unwrap_or(false);
            matched || (t.confirmed && t.frames_since_match <= max_age)
        });
        let removed = before - self.tracks.len();

        // Stage 4: births, in detection order, so ids follow the detector's order.
        let warm_up = self.updates <= u64::from(min_hits);
        let mut born = 0;
        for (i, c) in high.iter().enumerate() {
            if high_used[i] || c.score < self.settings.new_track_score {
                continue;
            }
            self.tracks.push(TrackState {
                id: TrackId(self.next_id),
                class_id: c.class_id,
                filter: BoxFilter::new(c.z),
                score: c.score,
                hits: 1,
                misses: 0,
                frames_since_match: 0,
                confirmed: warm_up || min_hits <= 1,
                matched: true,
            });
            self.next_id += 1;
            born += 1;
        }
        if removed > 0 || born > 0 {
            tracing::debug!(pts = pts.nanos(), born, removed, "tracks changed");
        }
        self.publish()
    }

    /// Advances one frame that skipped inference: every box moves by its estimated velocity.
    /// Returns the confirmed tracks as [`Tracker::update`] does, all with `matched == false`;
    /// `misses` is unchanged (it counts inference frames) and no track is born or removed.
    pub fn predict(&mut self, pts: Pts) -> &[Track] {
        self.note_pts(pts);
        self.step();
        self.publish()
    }

    /// One Kalman step for every track.
    fn step(&mut self) {
        for t in &mut self.tracks {
            if t.misses > 0 {
                t.filter.freeze_height();
            }
            t.filter.predict();
            t.frames_since_match = t.frames_since_match.saturating_add(1);
            t.matched = false;
        }
    }

    /// Matches `detections` to the tracks at `track_idx`; returns (track index, detection
    /// index) pairs.
    fn match_stage(
        &self,
        track_idx: &[usize],
        boxes: &[BBox],
        detections: &[Candidate],
        min_iou: f32,
    ) -> Vec<(usize, usize)> {
        let refs: Vec<&Candidate> = detections.iter().collect();
        self.match_refs(track_idx, boxes, &refs, min_iou)
    }

    fn match_refs(
        &self,
        track_idx: &[usize],
        boxes: &[BBox],
        detections: &[&Candidate],
        min_iou: f32,
    ) -> Vec<(usize, usize)> {
        let per_class = self.settings.per_class;
        assign(track_idx.len(), detections.len(), min_iou, |r, c| {
            let t = track_idx[r];
            let d = detections[c];
            if per_class && self.tracks[t].class_id != d.class_id {
                return None;
            }
            Some(boxes[t].iou(&d.bbox))
        })
        .into_iter()
        .map(|(r, c)| (track_idx[r], c))
        .collect()
    }

    fn note_pts(&mut self, pts: Pts) {
        if let Some(last) = self.last_pts
            && pts <= last
        {
            tracing::debug!(
                pts = pts.nanos(),
                last = last.nanos(),
                "frame pts did not increase"
            );
        }
        self.last_pts = Some(pts);
    }

    fn publish(&mut self) -> &[Track] {
        self.output.clear();
        self.output.extend(
            self.tracks
                .iter()
                .filter(|t| t.confirmed)
                .map(TrackState::report),
        );
        &self.output
    }
}

impl TrackState {
    /// Takes a matched detection: Kalman correction, counters, confirmation.
    fn absorb(&mut self, c: &Candidate, min_hits: u32) {
        if !self.filter.update(c.z) {
            tracing::debug!(track = self.id.0, "kalman update failed; filter restarted");
            self.filter = BoxFilter::new(c.z);
        }
        self.score = c.score;
        self.hits = self.hits.saturating_add(1);
        self.misses = 0;
        self.frames_since_match = 0;
        self.matched = true;
        if self.hits >= min_hits {
            self.confirmed = true;
        }
    }
}

#[cfg(test)]
mod tests;
