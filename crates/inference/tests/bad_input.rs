//! Bad input of every kind gives a typed error (with the right classification), never a panic.

mod common;

use common::{shipped, tiny};
use sightline_core::error::{Classify, ErrorKind};
use sightline_core::{Frame, Pts};
use sightline_inference::{
    DEFAULT_MAX_PIXELS, DetectOptions, Family, InferError, Layout, ModelManifest, RuntimeOptions,
    SharedModel, decode_image,
};

fn load_err(onnx: &std::path::Path, manifest: ModelManifest) -> InferError {
    SharedModel::load(onnx, manifest, &RuntimeOptions::default()).unwrap_err()
}

#[test]
fn not_an_onnx_file() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("model.onnx");
    std::fs::write(&junk, [0u8, 1, 2, 3, 0xff, 0xfe]).unwrap();
    let (_, manifest) = shipped("nanodet-m-416");
    let e = load_err(&junk, manifest.clone());
    assert!(matches!(e, InferError::InvalidModel { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = load_err(&tmp.path().join("missing.onnx"), manifest);
    assert!(matches!(e, InferError::InvalidModel { .. }), "{e}");
}

#[test]
fn outputs_that_do_not_fit_the_decoder() {
    let (nanodet, mut m) = shipped("nanodet-m-416");
    m.family = Family::Yolov8;
    let e = load_err(&nanodet, m);
    assert!(
        matches!(
            e,
            InferError::OutputMismatch {
                family: "yolov8",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let (centernet, mut m) = shipped("centernet-mbv3-512");
    m.family = Family::Nanodet;
    m.outputs = None;
    assert!(matches!(
        load_err(&centernet, m),
        InferError::OutputMismatch { .. }
    ));

    let (centernet, mut m) = shipped("centernet-mbv3-512");
    m.outputs = Some(vec!["tower_0/wh:0".into()]);
    assert!(matches!(
        load_err(&centernet, m),
        InferError::OutputMismatch { .. }
    ));

    let (v8, m) = tiny(Family::Yolov8);
    let mut v10 = m.clone();
    v10.family = Family::Yolov10;
    assert!(matches!(
        load_err(&v8, v10),
        InferError::OutputMismatch { .. }
    ));
}

#[test]
fn input_that_does_not_fit_the_manifest() {
    let (nanodet, mut m) = shipped("nanodet-m-416");
    m.input.layout = Layout::Nhwc;
    let e = load_err(&nanodet, m);
    assert!(matches!(e, InferError::InvalidModel { .. }), "{e}");
    let (nanodet, mut m) = shipped("nanodet-m-416");
    m.input.name = Some("images".into());
    assert!(matches!(
        load_err(&nanodet, m),
        InferError::InvalidModel { .. }
    ));
}

#[test]
fn manifest_with_unknown_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(common::model_dir("nanodet-m-416").join("manifest.toml")).unwrap();
    let path = tmp.path().join("manifest.toml");
    std::fs::write(
        &path,
        text.replace("[input]", "confidence = 0.4\n\n[input]"),
    )
    .unwrap();
    let e = ModelManifest::from_path(&path).unwrap_err();
    assert!(matches!(e, InferError::ManifestParse(_)), "{e}");
    assert!(e.to_string().contains("confidence"), "{e}");
    let json = tmp.path().join("m.json");
    std::fs::write(&json, r#"{"name":"x","task":"detect","family":"yolov8","classes":"coco","score_threshold":0.3,"iou_threshold":0.5,"input":{"width":640,"height":640,"mean_rgb":[0,0,0]}}"#).unwrap();
    assert!(matches!(
        ModelManifest::from_path(&json),
        Err(InferError::ManifestParse(_))
    ));
    let e = ModelManifest::from_toml_str("not toml at all [").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn frames_that_lie_about_their_size() {
    let (onnx, m) = tiny(Family::Yolov8);
    let model = SharedModel::load(&onnx, m, &RuntimeOptions::default()).unwrap();
    let c = model.client(1);
    let mut f = Frame::filled(10, 10, [1, 2, 3], Pts::ZERO);
    f.width = 11;
    let e = c.submit(&f, &DetectOptions::default()).unwrap_err();
    assert!(matches!(e, InferError::InvalidFrame(_)), "{e}");
    let empty = Frame::from_rgb(0, 5, Pts::ZERO, Vec::new()).unwrap();
    assert!(matches!(
        c.infer(&empty, &DetectOptions::default()),
        Err(InferError::InvalidFrame(_))
    ));
    // The model is unharmed.
    assert!(
        c.infer(
            &Frame::filled(10, 10, [1, 2, 3], Pts::ZERO),
            &DetectOptions::default()
        )
        .is_ok()
    );
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for b in data {
        c ^= *b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A 57-byte PNG: signature, an IHDR claiming `w`×`h` RGB, an empty IDAT, IEND.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[]);
    chunk(b"IEND", &[]);
    out
}

#[test]
fn images_undecodable_or_too_large() {
    let e = decode_image(&png_bomb(100_000, 100_000), DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(
        matches!(
            e,
            InferError::TooManyPixels {
                width: 100_000,
                height: 100_000,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted);
    // Within the limit the same file is simply broken.
    let e = decode_image(&png_bomb(64, 64), DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(matches!(e, InferError::InvalidImage(_)), "{e}");
    for junk in [
        &b"GIF89a...."[..],
        b"",
        &[0xff, 0xd8, 0xff, 0xe0, 0, 16][..],
    ] {
        let e = decode_image(junk, DEFAULT_MAX_PIXELS).unwrap_err();
        assert!(matches!(e, InferError::InvalidImage(_)), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
    // The committed fixture decodes, and is refused under a tight limit.
    let png = std::fs::read(common::fixture("vtest_frame100.png")).unwrap();
    assert_eq!(decode_image(&png, DEFAULT_MAX_PIXELS).unwrap().width, 768);
    assert!(matches!(
        decode_image(&png, 768 * 576 - 1),
        Err(InferError::TooManyPixels { .. })
    ));
}
