//! Per-track voting: the plate of a tracked vehicle from its readings over many frames.
//!
//! A single frame is often misread (`1`/`I`, `2`/`Z`, a character lost to glare); across the
//! frames of one track the misreads disagree and the right characters agree. The vote is per
//! character position, so it can recover a plate no single frame read correctly.

use std::collections::BTreeMap;

use sightline_core::{BBox, PlateCandidate, PlateRead};

use crate::reading::{Reading, unit};
use crate::settings::CompiledPlateSettings;
use crate::text::fold;

/// At most this many whole-text candidates are reported with a vote.
pub const MAX_CANDIDATES: usize = 5;

/// The readings of one length: their summed confidence and the weight of every character at
/// every position.
#[derive(Debug, Clone, Default)]
struct LengthTally {
    votes: f32,
    readings: u32,
    /// Per position: character → summed per-character confidence.
    positions: Vec<BTreeMap<char, f32>>,
}

/// The readings of one whole text.
#[derive(Debug, Clone)]
struct TextTally {
    text: String,
    votes: f32,
    readings: u32,
    /// Confidence and box of the most confident reading of this text that had a box.
    best_box: Option<(f32, BBox)>,
}

/// The voted text and its confidence.
struct Vote {
    text: String,
    confidence: f32,
}

/// The vote over one track's readings. Memory grows with the distinct texts and lengths read,
/// not with the number of frames.
#[derive(Debug, Clone, Default)]
pub struct TrackVote {
    readings: u32,
    lengths: BTreeMap<usize, LengthTally>,
    /// In order of first reading.
    texts: Vec<TextTally>,
}

impl TrackVote {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one frame's reading. An empty text is ignored. Confidences are taken as 0..=1
    /// (clamped, NaN as 0); when `chars` is not aligned with `text`, every character weighs
    /// the reading's confidence.
    pub fn add(&mut self, r: &Reading) {
        let n = r.text.chars().count();
        if n == 0 {
            return;
        }
        let confidence = unit(r.confidence);
        let aligned = r.chars.len() == n;
        self.readings += 1;

        let tally = self.lengths.entry(n).or_default();
        tally.votes += confidence;
        tally.readings += 1;
        tally.positions.resize_with(n, BTreeMap::new);
        for (i, c) in r.text.chars().enumerate() {
            let weight = if aligned {
                unit(r.chars[i])
            } else {
                confidence
            };
            *tally.positions[i].entry(c).or_insert(0.0) += weight;
        }

        let i = match self.texts.iter().position(|t| t.text == r.text) {
            Some(i) => i,
            None => {
                self.texts.push(TextTally {
                    text: r.text.clone(),
                    votes: 0.0,
                    readings: 0,
                    best_box: None,
                });
                self.texts.len() - 1
            }
        };
        let t = &mut self.texts[i];
        t.votes += confidence;
        t.readings += 1;
        if let Some(b) = r.plate_bbox
            && t.best_box.is_none_or(|(c, _)| confidence > c)
        {
            t.best_box = Some((confidence, b));
        }
    }

    /// Readings added (empty texts not counted).
    pub fn readings(&self) -> u32 {
        self.readings
    }

    /// The vote.
    ///
    /// 1. Length: the text length whose readings have the largest summed confidence (ties: more
    ///    readings, then the longer).
    /// 2. Text: at each position of that length, the character with the largest summed
    ///    per-character confidence over the readings of that length (ties: the smaller
    ///    character), concatenated.
    /// 3. Confidence, with `w_i` the winner's weight and `W_i` the total weight at position
    ///    `i` (a position with `W_i = 0` counts 0), `L` the length and `R_L` its readings:
    ///    `confidence = (Σ_i w_i / W_i) / L × (Σ_{r ∈ R_L} confidence_r) / |R_L|`,
    ///    the agreement at each position times the mean confidence of the readings of that
    ///    length; it is within 0..=1.
    fn vote(&self) -> Option<Vote> {
        let mut best: Option<&LengthTally> = None;
        for tally in self.lengths.values() {
            // Ascending length: `>=` on equal votes and readings prefers the longer.
            if best.is_none_or(|b| {
                tally.votes > b.votes || (tally.votes == b.votes && tally.readings >= b.readings)
            }) {
                best = Some(tally);
            }
        }
        let tally = best?;
        let mut text = String::with_capacity(tally.positions.len());
        let mut agreement = 0.0;
        for position in &tally.positions {
            let mut winner: Option<(char, f32)> = None;
            for (&c, &w) in position {
                if winner.is_none_or(|(_, best)| w > best) {
                    winner = Some((c, w));
                }
            }
            let (c, w) = winner?;
            text.push(c);
            let total: f32 = position.values().sum();
            if total > 0.0 {
                agreement += w / total;
            }
        }
        let agreement = agreement / tally.positions.len() as f32;
        let mean = tally.votes / tally.readings as f32;
        Some(Vote {
            text,
            confidence: unit(agreement * mean),
        })
    }

    fn tally(&self, text: &str) -> Option<&TextTally> {
        self.texts.iter().find(|t| t.text == text)
    }

    /// The plate read, or None without readings or when the vote's confidence is below
    /// `vote_confidence`.
    ///
    /// `candidates`: the distinct whole texts read, with their summed confidence (`votes`)
    /// and count, best first (votes, then count, then first read), at most
    /// [`MAX_CANDIDATES`]. `plate_bbox`: the box of the most confident reading of the voted
    /// text that had one, else of the most confident reading with a box.
    pub fn result(&self, s: &CompiledPlateSettings) -> Option<PlateRead> {
        let vote = self.vote()?;
        if vote.confidence < s.settings().vote_confidence {
            return None;
        }
        let mut ranked: Vec<&TextTally> = self.texts.iter().collect();
        ranked.sort_by(|a, b| {
            b.votes
                .total_cmp(&a.votes)
                .then(b.readings.cmp(&a.readings))
        });
        let candidates = ranked
            .iter()
            .take(MAX_CANDIDATES)
            .map(|t| PlateCandidate {
                text: t.text.clone(),
                votes: t.votes,
                readings: t.readings,
            })
            .collect();
        let plate_bbox = self
            .tally(&vote.text)
            .and_then(|t| t.best_box)
            .or_else(|| {
                self.texts
                    .iter()
                    .filter_map(|t| t.best_box)
                    .reduce(|a, b| if b.0 > a.0 { b } else { a })
            })
            .map(|(_, b)| b);
        Some(PlateRead {
            key: fold(&vote.text),
            text: vote.text,
            confidence: vote.confidence,
            readings: self.readings,
            candidates,
            plate_bbox,
            label: None,
            distance: None,
        })
    }

    /// The vote is final: at least `min_readings` readings of exactly the voted text, and its
    /// confidence is at least `vote_confidence`. The plate event is sent then, not at track end.
    pub fn is_final(&self, s: &CompiledPlateSettings) -> bool {
        let cfg = s.settings();
        self.vote().is_some_and(|v| {
            v.confidence >= cfg.vote_confidence
                && self
                    .tally(&v.text)
                    .is_some_and(|t| t.readings >= cfg.min_readings)
        })
    }
}

#[cfg(test)]
mod tests;
