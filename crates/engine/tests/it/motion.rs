//! The motion gate (`[model.motion_gate]`) on real decoded frames with the shipped model:
//! a held picture is inferred only at each refresh while the tracker keeps its objects, and
//! people walking are inferred on every frame.

use sightline_config::{InferenceSection, PipelineConfig};
use sightline_core::{Frame, Pts};
use sightline_engine::{FrameProcessor, ModelCache, StatusText};
use sightline_media::{Pacing, Source, SourceEvent, SourceOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The first `n` frames of the sample clip, decoded as the engine does (I420).
fn frames(n: usize) -> Vec<Frame> {
    sightline_media::init().unwrap();
    let path = repo().join("samples/vtest.avi").canonicalize().unwrap();
    let mut o = SourceOptions::new(format!("file://{}", path.display())).with_pacing(Pacing::Fast);
    o.yuv = true;
    let source = Source::open(o).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        match source.next(Duration::from_secs(10)) {
            SourceEvent::Frame(f) => out.push(f),
            other => panic!("unexpected source event {other:?}"),
        }
    }
    source.close();
    out
}

#[test]
fn a_held_picture_is_inferred_at_each_refresh_and_walking_people_on_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let models = ModelCache::open(&InferenceSection::default(), dir.path()).unwrap();
    let config = PipelineConfig::from_file(&repo().join("configs/still-camera.toml")).unwrap();
    assert!(config.model.motion_gate.enabled);
    assert_eq!(config.model.motion_gate.refresh_s, 1.0);
    let model = models.get(&config.model.name).unwrap();
    let mut proc = FrameProcessor::new(Arc::new(config), model).unwrap();
    let status = StatusText::default();
    let clip = frames(40);

    // Frame 0 held for 3 s at 10 fps: inferred at 0, 1 and 2 s only.
    let mut inferred = Vec::new();
    let mut gated = 0;
    for i in 0..30i64 {
        let mut f = clip[0].clone();
        f.pts = Pts::from_nanos(i * 100_000_000);
        let (_, t) = proc.process(&mut f, &status).unwrap();
        if t.inferred {
            inferred.push(i);
        }
        gated += usize::from(t.gated);
        assert!(!(t.inferred && t.gated));
    }
    assert_eq!(inferred, vec![0, 10, 20]);
    assert_eq!(gated, 27);

    // Then the clip goes on: people walk, every frame is inferred.
    let mut walking = 0;
    for (i, f) in clip[1..].iter().enumerate() {
        let mut f = f.clone();
        f.pts = Pts::from_nanos((30 + i as i64) * 100_000_000);
        let (_, t) = proc.process(&mut f, &status).unwrap();
        walking += usize::from(t.inferred);
    }
    assert_eq!(walking, clip.len() - 1, "people walking: no frame gated");
}

#[test]
fn the_gate_off_infers_every_frame_of_a_held_picture() {
    let dir = tempfile::tempdir().unwrap();
    let models = ModelCache::open(&InferenceSection::default(), dir.path()).unwrap();
    let config = PipelineConfig::from_file(&repo().join("configs/demo.toml")).unwrap();
    let model = models.get(&config.model.name).unwrap();
    let mut proc = FrameProcessor::new(Arc::new(config), model).unwrap();
    let clip = frames(1);
    for i in 0..5i64 {
        let mut f = clip[0].clone();
        f.pts = Pts::from_nanos(i * 100_000_000);
        let (_, t) = proc.process(&mut f, &StatusText::default()).unwrap();
        assert!(t.inferred && !t.gated);
    }
}
