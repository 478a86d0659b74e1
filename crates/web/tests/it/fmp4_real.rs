//! The live view's fragmented MP4 built from real encoder output: the sample clip through
//! the run's encoder (x264), every access unit through the same muxing as a viewer's
//! WebSocket, written to a file that ffprobe must decode frame for frame.

use sightline_media::{
    EncoderChoice, Output, OutputOptions, Pacing, Source, SourceEvent, SourceOptions,
};
use sightline_web::fmp4;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn fragments_of_real_h264_play_in_ffprobe() {
    sightline_media::init().unwrap();
    let clip = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/vtest.avi");
    // (Annex B data, pts ns, duration ns, keyframe) of each access unit.
    type Unit = (Vec<u8>, u64, u64, bool);
    let units: Arc<Mutex<Vec<Unit>>> = Arc::default();
    let sink = units.clone();
    let mut out = OutputOptions::new(768, 576, 10.0);
    out.encoder = EncoderChoice::X264;
    out.on_au = Some(Arc::new(move |au: sightline_media::EncodedAu<'_>| {
        sink.lock()
            .unwrap()
            .push((au.data.to_vec(), au.pts_ns, au.duration_ns, au.keyframe));
    }));
    let output = Output::start(out).unwrap();
    let source = Source::open(SourceOptions::new(clip).with_pacing(Pacing::Fast)).unwrap();
    let mut n = 0;
    while n < 40 {
        match source.next(Duration::from_secs(10)) {
            SourceEvent::Frame(f) => {
                output.push(f).unwrap();
                n += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    source.close();
    output.finish().unwrap();
    let units = units.lock().unwrap().clone();
    assert_eq!(units.len(), 40, "one access unit per frame");
    assert!(
        units[0].3 && fmp4::is_keyframe(&units[0].0),
        "the stream starts at a keyframe"
    );
    let (sps, pps) = fmp4::parameter_sets(&units[0].0).expect("SPS/PPS before the keyframe");
    assert!(fmp4::codec_string(&sps).starts_with("avc1."));
    let mut file = fmp4::init_segment(&sps, &pps, 768, 576);
    let mut fr = fmp4::Fragmenter::new();
    for (data, pts, dur, key) in &units {
        file.extend(fr.push(data, *pts, *dur, *key));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.mp4");
    std::fs::write(&path, &file).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && probe.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(
        text.contains("codec_name=h264") && text.contains("width=768"),
        "{text}"
    );
    assert!(text.contains("nb_read_frames=40"), "{text}");
    // Decodes without a single error.
    let dec = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        dec.status.success() && dec.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
}
