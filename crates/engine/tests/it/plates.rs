//! The plate stage on real clips (`samples/plates/`, made by `scripts/plates/make_clip.py`:
//! a real van from the sample clip carrying a rendered plate, NanoDet finds it as a truck or
//! a bus): the shipped detector, the tracker and the PP-OCRv4 models read each vehicle's plate,
//! and each vehicle gives exactly one `plate` event with the right text and its crop. Then the
//! circuit breaker: a failing or hung plate model never holds a live run's frames longer than
//! the stage's budget, opens after the error budget (the status says so), and closes again
//! once the model answers.

use sightline_config::{InferenceSection, PipelineConfig};
use sightline_core::{EventKind, PictureKind, RuleEvent};
use sightline_engine::secondary::build_stages;
use sightline_engine::{CutPicture, FrameProcessor, ModelCache, StatusText};
use sightline_media::{Pacing, Source, SourceEvent, SourceOptions};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

struct Setup {
    proc: FrameProcessor,
    _dir: tempfile::TempDir,
}

fn setup(secondary: bool, edit: impl FnOnce(&mut PipelineConfig)) -> Setup {
    sightline_media::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = ModelCache::open(&InferenceSection::default(), dir.path()).unwrap();
    let mut config = PipelineConfig::from_file(&repo().join("configs/plates.toml")).unwrap();
    edit(&mut config);
    if !secondary {
        config.secondary.clear();
        config.rules.retain(|r| r.attribute().0.is_none());
    }
    let model = models.get(&config.model.name).unwrap();
    config.validate(Some(model.labels())).unwrap();
    let labels = model.labels().clone();
    let stages = build_stages(&config.secondary, &models, &labels, "test").unwrap();
    let mut proc = FrameProcessor::new(Arc::new(config), model).unwrap();
    proc.set_secondary(stages);
    proc.set_cut_pictures(true);
    Setup { proc, _dir: dir }
}

struct Played {
    events: Vec<RuleEvent>,
    pictures: Vec<(usize, CutPicture)>,
    frames: u64,
    /// Longest time one frame spent in the secondary stages.
    max_secondary: Duration,
    elapsed: Duration,
}

/// Plays `clip` through `proc` (every frame), calling `each(frame_no, proc)` before each.
fn play(
    proc: &mut FrameProcessor,
    clip: &str,
    mut each: impl FnMut(u64, &mut FrameProcessor),
) -> Played {
    let uri = format!(
        "file://{}",
        repo().join(clip).canonicalize().unwrap().display()
    );
    let source = Source::open(SourceOptions::new(uri).with_pacing(Pacing::Fast)).unwrap();
    let status = StatusText::default();
    let mut out = Played {
        events: Vec::new(),
        pictures: Vec::new(),
        frames: 0,
        max_secondary: Duration::ZERO,
        elapsed: Duration::ZERO,
    };
    let t0 = Instant::now();
    let mut last_pts = sightline_core::Pts::ZERO;
    loop {
        match source.next(Duration::from_secs(10)) {
            SourceEvent::Frame(mut f) => {
                each(out.frames, proc);
                out.frames += 1;
                last_pts = f.pts;
                let (evs, t) = proc.process(&mut f, &status).unwrap();
                out.max_secondary = out.max_secondary.max(t.secondary);
                let base = out.events.len();
                for p in proc.take_pictures() {
                    for i in &p.events {
                        out.pictures.push((base + i, clone_pic(&p)));
                    }
                }
                out.events.extend(evs);
            }
            SourceEvent::Eos => break,
            other => panic!("unexpected source event {other:?}"),
        }
    }
    let base = out.events.len();
    let evs = proc.finish(last_pts);
    for p in proc.take_pictures() {
        for i in &p.events {
            out.pictures.push((base + i, clone_pic(&p)));
        }
    }
    out.events.extend(evs);
    out.elapsed = t0.elapsed();
    out
}

fn clone_pic(p: &CutPicture) -> CutPicture {
    CutPicture {
        events: p.events.clone(),
        kind: p.kind,
        width: p.width,
        height: p.height,
        rgb: p.rgb.clone(),
    }
}

fn plates(events: &[RuleEvent], kind: EventKind) -> Vec<(usize, &RuleEvent)> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == kind)
        .collect()
}

#[test]
fn each_vehicle_gives_one_plate_event_with_its_text_and_crop() {
    let mut s = setup(true, |_| {});
    let played = play(&mut s.proc, "samples/plates/plate_car2.mp4", |_, _| {});
    assert_eq!(played.frames, 90);
    let reads = plates(&played.events, EventKind::Plate);
    let texts: Vec<&str> = reads
        .iter()
        .map(|(_, e)| e.plate.as_ref().unwrap().text.as_str())
        .collect();
    assert_eq!(texts, ["KA01AB1234", "MH12DE1433"], "{:#?}", played.events);
    for (i, e) in &reads {
        let p = e.plate.as_ref().unwrap();
        assert!(p.readings >= 3, "voted over several frames: {p:?}");
        assert!(p.confidence >= 0.6 && p.confidence <= 1.0, "{p:?}");
        assert_eq!(p.key, sightline_anpr::fold(&p.text));
        assert!(matches!(e.class.as_deref(), Some("truck" | "bus" | "car")));
        assert!(e.track_id.is_some() && e.bbox.is_some() && p.plate_bbox.is_some());
        // The plate inside the vehicle's box.
        let (v, b) = (e.bbox.unwrap(), p.plate_bbox.unwrap());
        assert!(b.x1 >= v.x1 - 20.0 && b.x2 <= v.x2 + 20.0 && b.y1 >= v.y1 - 20.0);
        // Its crop is the plate: wider than tall.
        let crop = played
            .pictures
            .iter()
            .find(|(j, p)| j == i && p.kind == PictureKind::Crop)
            .map(|(_, p)| p)
            .expect("the plate event has its crop");
        assert!(
            crop.width > 2 * crop.height,
            "{}x{}",
            crop.width,
            crop.height
        );
    }
    // The watch list (configs/plates.toml) knows the first plate only.
    let matches = plates(&played.events, EventKind::PlateMatch);
    assert_eq!(matches.len(), 1);
    let m = matches[0].1.plate.as_ref().unwrap();
    assert_eq!(m.text, "KA01AB1234");
    assert_eq!(m.label.as_deref(), Some("stolen: KA01AB1234"));
    assert_eq!(m.distance, Some(0));
    // The rule on the plate attribute (configs/plates.toml: plates starting with KA) fires
    // for the first vehicle only, and its event carries the plate.
    let ruled = plates(&played.events, EventKind::Detected);
    assert_eq!(ruled.len(), 1, "{ruled:#?}");
    let e = ruled[0].1;
    assert_eq!(e.rule, "karnataka-vehicle");
    assert!(e.attributes["plate"].starts_with("KA"), "{e:?}");
}

#[test]
#[allow(clippy::print_stderr)] // prints its figure (`--nocapture` shows it)
fn a_failing_or_hung_plate_model_never_holds_the_detector() {
    // Baseline: the detector alone, on the same clip.
    let mut base = setup(false, |_| {});
    let alone = play(&mut base.proc, "samples/plates/plate_car.mp4", |_, _| {});

    let budget_ms = 40;
    let mut s = setup(true, |c| {
        let d = &mut c.secondary[0];
        d.budget_ms = budget_ms;
        d.timeout_ms = 300;
        d.error_budget = 3;
        d.open_s = 1;
        d.every = 1;
    });
    s.proc.set_live(true);
    let fault = s.proc.secondary()[0].fault_injection();
    // A dead model: every call fails.
    fault.fail.store(true, Ordering::SeqCst);
    let mut opened_at = None;
    let dead = play(&mut s.proc, "samples/plates/plate_car.mp4", |n, p| {
        if opened_at.is_none() && p.degraded() == ["plates open"] {
            opened_at = Some(n);
        }
    });
    assert!(
        opened_at.is_some(),
        "the breaker opens after 3 failures and the status says so"
    );
    assert!(plates(&dead.events, EventKind::Plate).is_empty());
    let c = s.proc.secondary()[0].counts();
    assert!(c.errors >= 3 && c.skipped_open > 0, "{c:?}");
    assert_eq!(dead.frames, alone.frames);

    // A hung model: calls never come back in time; frames wait at most the budget. Halfway
    // through the model recovers: after the open time one trial call closes the breaker and
    // the plate is read again.
    // The waits below are sleeps at chosen frames, not frame timing, so the test holds on a
    // loaded machine: a call counts as hung after 2 s, the hung model takes 2.5 s.
    let mut s = setup(true, |c| {
        let d = &mut c.secondary[0];
        d.budget_ms = budget_ms;
        d.timeout_ms = 2_000;
        d.error_budget = 1;
        d.open_s = 1;
        d.every = 1;
    });
    s.proc.set_live(true);
    let fault = s.proc.secondary()[0].fault_injection();
    fault.delay_ms.store(2_500, Ordering::SeqCst);
    let mut degraded_while_hung = false;
    let hung = play(&mut s.proc, "samples/plates/plate_car.mp4", |n, p| {
        if n < 25 {
            degraded_while_hung |= !p.degraded().is_empty();
        }
        match n {
            // The first call, in flight by now, passes its timeout.
            5 => std::thread::sleep(Duration::from_millis(2_100)),
            // The model recovers; whatever hung call is in flight ends (as a failure, late).
            25 => {
                fault.delay_ms.store(0, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2_700));
            }
            // The breaker reopened on that late failure at frame 26: its open time passes,
            // then one trial call goes through and closes it.
            27 => std::thread::sleep(Duration::from_millis(1_100)),
            _ => {}
        }
    });
    assert!(
        hung.max_secondary < Duration::from_millis(budget_ms + 150),
        "a frame waited {:?} for a hung model (budget {budget_ms} ms)",
        hung.max_secondary
    );
    assert!(
        degraded_while_hung,
        "the status said `plates open` while hung"
    );
    assert!(
        s.proc.degraded().is_empty(),
        "closed again after the recovery"
    );
    let read: Vec<&str> = plates(&hung.events, EventKind::Plate)
        .iter()
        .map(|(_, e)| e.plate.as_ref().unwrap().text.as_str())
        .collect();
    assert_eq!(read, ["KA01AB1234"], "read again once the model answers");

    let fps = |p: &Played| p.frames as f64 / p.elapsed.as_secs_f64();
    eprintln!(
        "FIGURE: plate_car.mp4 ({} frames, fast, this build): detector alone {:.1} fps; with a dead plate model {:.1} fps; hung then recovering (5.9 s of pauses included) {:.1} fps, longest frame wait {:?}",
        alone.frames,
        fps(&alone),
        fps(&dead),
        fps(&hung),
        hung.max_secondary,
    );
}

#[test]
fn a_plate_detector_model_replaces_the_text_detector_localisation() {
    // The tiny YOLOv8-layout plate locator trained by scripts/plates/train_locator.py stands in
    // for the plate detector a user owns (samples/plates/locator/README.md).
    let locator = repo().join("samples/plates/locator/plate-locator.onnx");
    let mut s = setup(true, |c| {
        let d = &mut c.secondary[0];
        d.plate_detector = Some(locator.display().to_string());
        d.plate_detector_classes = vec!["plate".into()];
    });
    // plate_car.mp4: one van with KA01AB1234. (On plate_car2.mp4's second van this small
    // model boxes only the plate's right-hand word and the stage reads H12DE1433.)
    let played = play(&mut s.proc, "samples/plates/plate_car.mp4", |_, _| {});
    let reads = plates(&played.events, EventKind::Plate);
    let texts: Vec<&str> = reads
        .iter()
        .map(|(_, e)| e.plate.as_ref().unwrap().text.as_str())
        .collect();
    assert_eq!(texts, ["KA01AB1234"], "{:#?}", played.events);
    let p = reads[0].1.plate.as_ref().unwrap();
    assert!(p.readings >= 3, "{p:?}");
    // The plate box is the detector's (with its margin), on the vehicle.
    let (v, b) = (reads[0].1.bbox.unwrap(), p.plate_bbox.unwrap());
    assert!(
        b.x1 >= v.x1 - 20.0 && b.x2 <= v.x2 + 20.0 && b.y1 >= v.y1,
        "{b:?} on {v:?}"
    );
    let c = s.proc.secondary()[0].counts();
    assert!(c.ok > 0 && c.errors == 0, "{c:?}");

    // A plate detector that does not load, or without the named class, is refused when the
    // stages are built, naming the option.
    let dir = tempfile::tempdir().unwrap();
    let models = ModelCache::open(&InferenceSection::default(), dir.path()).unwrap();
    let labels = sightline_core::Labels::new(["car"]);
    for (path, class, want) in [
        (
            "/nonexistent/plates.onnx".to_owned(),
            "plate",
            "plate_detector",
        ),
        (
            locator.display().to_string(),
            "licence",
            "has no class \"licence\"",
        ),
    ] {
        let def = sightline_config::SecondaryDef {
            plate_detector: Some(path),
            plate_detector_classes: vec![class.into()],
            ..Default::default()
        };
        let err = build_stages(&[def], &models, &labels, "t").unwrap_err();
        assert!(
            err.contains("secondary[0] (plates): plate_detector:"),
            "{err}"
        );
        assert!(err.contains(want), "{err}");
    }
}
