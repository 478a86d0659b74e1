//! The on-disk registry: content addressing, validation by a dry run, built-ins.

mod common;

use common::{model_dir, tiny, tiny_manifest};
use sightline_inference::{DEFAULT_MODEL, Family, InferError, Registry};
use std::path::Path;

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn registry(dir: &Path) -> Registry {
    Registry::with_builtin(dir, Some(common::repo().join("models"))).unwrap()
}

#[test]
fn builtin_models_are_always_there() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::open(tmp.path()).unwrap();
    let all = reg.list().unwrap();
    let names: Vec<_> = all.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "centernet-mbv3-512",
            DEFAULT_MODEL,
            "nanodet-m-416-int8",
            "rdn-medium-x2",
            "rdn-medium-x4"
        ]
    );
    let nano = reg.get(DEFAULT_MODEL).unwrap();
    assert!(nano.builtin);
    assert_eq!(
        nano.sha256,
        "0dd51c5e9467f88b14fd81ba0700b1082c8210003c561b378dfd8767c3f09dfe"
    );
    assert!(matches!(
        reg.remove(DEFAULT_MODEL),
        Err(InferError::ModelConflict { .. })
    ));
    assert!(matches!(reg.get("nope"), Err(InferError::ModelNotFound(_))));
}

#[test]
fn add_list_get_resolve_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path());
    let (onnx, manifest) = tiny(Family::Yolov8);
    let rec = reg.add(&onnx, manifest.clone()).unwrap();
    assert!(!rec.builtin);
    assert_eq!(rec.sha256.len(), 64);
    assert_eq!(
        rec.onnx_path,
        tmp.path().join(&rec.sha256).join("model.onnx")
    );
    assert_eq!(entries(tmp.path()), vec![rec.sha256.clone()]);
    assert_eq!(
        entries(&tmp.path().join(&rec.sha256)),
        ["manifest.toml", "model.onnx"]
    );
    assert_eq!(
        std::fs::read(&rec.onnx_path).unwrap(),
        std::fs::read(&onnx).unwrap()
    );

    // Idempotent for the same file and name; conflicts otherwise.
    assert_eq!(reg.add(&onnx, manifest.clone()).unwrap(), rec);
    let mut renamed = manifest.clone();
    renamed.name = "other".into();
    assert!(matches!(
        reg.add(&onnx, renamed),
        Err(InferError::ModelConflict { .. })
    ));
    let (v5, mut v5m) = tiny(Family::Yolov5);
    v5m.name = manifest.name.clone();
    assert!(matches!(
        reg.add(&v5, v5m),
        Err(InferError::ModelConflict { .. })
    ));
    let mut builtin_name = tiny_manifest(Family::Yolov5);
    builtin_name.name = DEFAULT_MODEL.into();
    assert!(matches!(
        reg.add(&v5, builtin_name),
        Err(InferError::ModelConflict { .. })
    ));

    // A second registry over the same folder sees it; so do name and path resolution.
    let again = registry(tmp.path());
    assert_eq!(again.get(&manifest.name).unwrap(), rec);
    assert_eq!(again.list().unwrap().len(), 6);
    assert_eq!(again.resolve("tiny-yolov8").unwrap(), rec);
    let by_dir = again
        .resolve(model_dir("centernet-mbv3-512").to_str().unwrap())
        .unwrap();
    assert_eq!(by_dir.name, "centernet-mbv3-512");
    assert!(matches!(
        again.resolve("/no/such/model.onnx"),
        Err(InferError::ModelNotFound(_))
    ));

    // Added bytes are addressed by their SHA-256 like added files.
    use sha2::Digest;
    let bytes = std::fs::read(&v5).unwrap();
    let v5rec = again
        .add_bytes(&bytes, tiny_manifest(Family::Yolov5))
        .unwrap();
    assert_eq!(v5rec.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(v5rec.size_bytes, bytes.len() as u64);

    // An .onnx path with `<stem>.toml` beside it resolves without being registered.
    let loose = tempfile::tempdir().unwrap();
    std::fs::copy(&v5, loose.path().join("mine.onnx")).unwrap();
    let mut m = tiny_manifest(Family::Yolov5);
    m.name = "loose".into();
    std::fs::write(loose.path().join("mine.toml"), m.to_toml_string().unwrap()).unwrap();
    let r = again
        .resolve(loose.path().join("mine.onnx").to_str().unwrap())
        .unwrap();
    assert_eq!(
        (r.name.as_str(), r.sha256.as_str(), r.builtin),
        ("loose", v5rec.sha256.as_str(), false)
    );

    let removed = again.remove("tiny-yolov8").unwrap();
    assert_eq!(removed.sha256, rec.sha256);
    assert_eq!(entries(tmp.path()), vec![v5rec.sha256.clone()]);
    assert!(matches!(
        again.remove("tiny-yolov8"),
        Err(InferError::ModelNotFound(_))
    ));
}

#[test]
fn rejected_models_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path());

    // Not an ONNX file at all.
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a protobuf").unwrap();
    let e = reg.add(&junk, tiny_manifest(Family::Yolov8)).unwrap_err();
    assert!(matches!(e, InferError::InvalidModel { .. }), "{e}");
    std::fs::remove_file(&junk).unwrap();
    assert!(entries(tmp.path()).is_empty());

    // A real ONNX whose output does not fit the manifest's decoder.
    let (v8, _) = tiny(Family::Yolov8);
    let e = reg.add(&v8, tiny_manifest(Family::Yolov5)).unwrap_err();
    assert!(
        matches!(
            e,
            InferError::OutputMismatch {
                family: "yolov5",
                ..
            }
        ),
        "{e}"
    );
    let mut three_classes = tiny_manifest(Family::Yolov8);
    three_classes.classes =
        sightline_inference::ClassNames::List(vec!["a".into(), "b".into(), "c".into()]);
    assert!(matches!(
        reg.add(&v8, three_classes),
        Err(InferError::OutputMismatch { .. })
    ));

    // Input size that disagrees with the graph.
    let mut wrong_size = tiny_manifest(Family::Yolov8);
    wrong_size.input.width = 64;
    let e = reg.add(&v8, wrong_size).unwrap_err();
    assert!(matches!(e, InferError::InvalidModel { .. }), "{e}");

    // An invalid manifest is refused before anything is copied.
    let mut bad = tiny_manifest(Family::Yolov8);
    bad.score_threshold = 2.0;
    assert!(matches!(
        reg.add(&v8, bad),
        Err(InferError::ManifestInvalid(_))
    ));

    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    assert_eq!(reg.list().unwrap().len(), 5);
}
