//! Which segments, and which part of them, make up a clip from wall time `start` to `end`.
//! Each segment maps its wall-clock span linearly onto its own recording time (the two
//! advance together for a live source; for a replay run faster than real time the map
//! follows the replay), so a wall time inside a segment has an exact offset in the file.
//! The media crate then cuts on keyframes and concatenates without re-encoding.

use crate::error::MediaError;
use sightline_store::Recording;
use std::time::Duration;

/// One segment's share of a clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPart {
    pub key: String,
    /// Length of the whole segment (its recording time).
    pub duration: Duration,
}

/// The segments of a clip in order, and where to start and stop on their concatenated
/// timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPlan {
    pub parts: Vec<ClipPart>,
    pub start: Duration,
    pub stop: Duration,
}

fn offset_in(r: &Recording, wall_ms: i64) -> Duration {
    let (Some(end_wall), Some(end_pts)) = (r.end_wall_ms, r.end_pts_ns) else {
        return Duration::ZERO;
    };
    let span_wall = (end_wall - r.start_wall_ms).max(1) as f64;
    let span_pts = (end_pts - r.start_pts_ns).max(0) as f64;
    let f = ((wall_ms - r.start_wall_ms) as f64 / span_wall).clamp(0.0, 1.0);
    Duration::from_nanos((f * span_pts) as u64)
}

fn duration(r: &Recording) -> Duration {
    Duration::from_nanos(r.end_pts_ns.map_or(0, |e| (e - r.start_pts_ns).max(0)) as u64)
}

/// Plans a clip from the closed segments overlapping `[start_ms, end_ms)`, in start order.
pub fn plan_clip(
    segments: &[Recording],
    start_ms: i64,
    end_ms: i64,
) -> Result<ClipPlan, MediaError> {
    if start_ms >= end_ms {
        return Err(MediaError::Invalid("start must be before end".into()));
    }
    let parts: Vec<&Recording> = segments
        .iter()
        .filter(|r| {
            r.state == "closed"
                && r.end_wall_ms.is_some_and(|e| e > start_ms)
                && r.start_wall_ms < end_ms
        })
        .collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return Err(MediaError::NotFound { key: "clip".into() });
    };
    let start = offset_in(first, start_ms);
    let before_last: Duration = parts[..parts.len() - 1].iter().map(|r| duration(r)).sum();
    let stop = before_last + offset_in(last, end_ms);
    Ok(ClipPlan {
        parts: parts
            .iter()
            .map(|r| ClipPart {
                key: r.key.clone(),
                duration: duration(r),
            })
            .collect(),
        start,
        stop: stop.max(start),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::RunId;

    fn seg(key: &str, start: i64, end: i64, pts0: i64) -> Recording {
        Recording {
            id: uuid::Uuid::now_v7(),
            run_id: RunId::parse("r").unwrap(),
            volume: "v".into(),
            key: key.into(),
            worker: "w".into(),
            state: "closed".into(),
            start_wall_ms: start,
            end_wall_ms: Some(end),
            start_pts_ns: pts0,
            end_pts_ns: Some(pts0 + (end - start) * 1_000_000),
            bytes: 1,
        }
    }

    #[test]
    fn clip_across_two_segments() {
        let s = vec![
            seg("a", 1000, 11_000, 0),
            seg("b", 11_000, 21_000, 10_000_000_000),
        ];
        let p = plan_clip(&s, 8000, 13_000).unwrap();
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.start, Duration::from_secs(7));
        assert_eq!(p.stop, Duration::from_secs(12));
        let p = plan_clip(&s, 12_000, 30_000).unwrap();
        assert_eq!(
            p.parts.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(
            (p.start, p.stop),
            (Duration::from_secs(1), Duration::from_secs(10))
        );
    }

    #[test]
    fn outside_any_recording_and_bad_ranges() {
        let s = vec![seg("a", 1000, 11_000, 0)];
        assert!(matches!(
            plan_clip(&s, 20_000, 30_000),
            Err(MediaError::NotFound { .. })
        ));
        assert!(matches!(
            plan_clip(&s, 5000, 5000),
            Err(MediaError::Invalid(_))
        ));
        let mut open = seg("o", 1000, 11_000, 0);
        open.state = "open".into();
        assert!(
            plan_clip(&[open], 2000, 3000).is_err(),
            "open segments are not clipped"
        );
    }
}
