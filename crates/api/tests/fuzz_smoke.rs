//! Smoke test of the fuzz entry points (`sightline_api::fuzzing`, used by the cargo-fuzz
//! targets in `fuzz/`, which need a nightly toolchain): every file of the seed corpora, with
//! the expected outcome of the named seeds, then a few thousand deterministic mutations
//! (fixed-seed xorshift: bit flips, interesting bytes, truncations, splices, insertions,
//! deletions, duplications; for images also re-wrapped as JSON, multipart and raw bodies; for
//! manifests also line-level edits). Nothing may panic, and no input may end in an outcome
//! that means a server-side fault (`internal`, a body future that did not complete, a
//! validated manifest that cannot be serialised).

#![allow(clippy::print_stderr)]

use base64::Engine as _;
use sightline_api::fuzzing::{self, Outcome};
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

const INFER_MUTATIONS: usize = 20_000;
const MANIFEST_MUTATIONS: usize = 10_000;

/// Outcomes that are bugs even without a panic.
const FORBIDDEN: &[&str] = &[
    "internal",
    "pending",
    "labels_mismatch",
    "json_serialize",
    "toml_serialize",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 5, "corpus {target} has {} files", out.len());
    out
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7F, 0x80, 0xFF, 0xFE, b'\n', b'\r', b'{', b'}', b'"', b'=', b'[', b'-', 0xD8, 0xC0,
];

/// Byte-level mutation of `input` (1 to 4 operations), splicing with `others`.
fn mutate(rng: &mut XorShift, input: &[u8], others: &[&[u8]]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = *rng.pick(INTERESTING);
            }
            2 => v.truncate(rng.below(len + 1)),
            3 => {
                let other = *rng.pick(others);
                let a = rng.below(len + 1);
                let b = rng.below(other.len() + 1);
                v.truncate(a);
                v.extend_from_slice(&other[b..]);
            }
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(32)).min(len);
                v.drain(a..b);
            }
            6 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(v.len() + 1);
                v.splice(at..at, chunk);
            }
            // 16-bit big-endian field set to an extreme (image dimensions, lengths).
            _ if len >= 2 => {
                let i = rng.below(len - 1);
                let val: u16 = *rng.pick(&[0, 1, 0x7FFF, 0x8000, 0xFFFF, 8192, 4097]);
                v[i..i + 2].copy_from_slice(&val.to_be_bytes());
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

const BOUNDARY: &str = "XfuzzB";

/// An image wrapped as one of the three `/v1/infer` body forms.
fn wrap_image(rng: &mut XorShift, image: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(image);
    match rng.below(4) {
        0 => [b"image/jpeg\n".as_slice(), image].concat(),
        1 => format!("application/json\n{{\"image\":\"{b64}\"}}").into_bytes(),
        2 => format!(
            "application/json\n{{\"image\":\"data:image/png;base64,{b64}\",\"annotate\":true}}"
        )
        .into_bytes(),
        _ => {
            let mut body = format!(
                "multipart/form-data; boundary={BOUNDARY}\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"f\"\r\n\r\n"
            )
            .into_bytes();
            body.extend_from_slice(image);
            body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
            body
        }
    }
}

const VALUES: &[&str] = &[
    "0",
    "-1",
    "1e40",
    "-1e-40",
    "nan",
    "inf",
    "-inf",
    "\"\"",
    "\"coco\"",
    "\"detect\"",
    "[]",
    "[1, 2]",
    "[\"a\", \"a\"]",
    "true",
    "{}",
    "18446744073709551616",
    "4294967296",
    "8193",
    "\"\u{202E}x\"",
    "\"a\\u0000b\"",
    "\"yolo11\"",
    "\"end2end\"",
];

/// Line-level edit of a manifest: delete, duplicate, swap, replace a value, borrow a line.
fn mutate_lines(rng: &mut XorShift, text: &[u8], others: &[&[u8]]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        let i = rng.below(n);
        match rng.below(5) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(rng.below(n + 1), l);
            }
            2 => lines.swap(i, rng.below(n)),
            3 => {
                let l = &lines[i];
                if let Some(at) = l.find(['=', ':']) {
                    let tail = if l.trim_end().ends_with(',') { "," } else { "" };
                    lines[i] = format!("{} {}{tail}", &l[..=at], rng.pick(VALUES));
                }
            }
            _ => {
                let other = String::from_utf8_lossy(rng_pick(rng, others)).into_owned();
                let ol: Vec<&str> = other.lines().collect();
                if !ol.is_empty() {
                    let l = rng.pick(&ol).to_string();
                    lines.insert(rng.below(n + 1), l);
                }
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}

/// Runs `f` on `input`, turning a panic into a saved reproducer and a failure message.
fn run<T: std::fmt::Debug>(
    target: &str,
    label: &str,
    input: &[u8],
    f: fn(&[u8]) -> Outcome<T>,
    stats: &mut BTreeMap<String, usize>,
    failures: &mut Vec<String>,
) -> Option<Outcome<T>> {
    match catch_unwind(AssertUnwindSafe(|| f(input))) {
        Ok(outcome) => {
            let key = match &outcome {
                Ok(_) => "ok".to_owned(),
                Err(code) => (*code).to_owned(),
            };
            if FORBIDDEN.contains(&key.as_str()) {
                let path = save(target, label, input);
                failures.push(format!("{target} {label}: outcome {key} ({path})"));
            }
            *stats.entry(key).or_default() += 1;
            Some(outcome)
        }
        Err(_) => {
            let path = save(target, label, input);
            failures.push(format!("{target} {label}: panicked ({path})"));
            None
        }
    }
}

fn save(target: &str, label: &str, input: &[u8]) -> String {
    let path = std::env::temp_dir().join(format!("fuzz_smoke-{target}-{label}.bin"));
    let _ = std::fs::write(&path, input);
    path.display().to_string()
}

#[test]
fn infer_body_corpus_and_mutations_never_panic() {
    let t0 = Instant::now();
    let seeds = corpus("infer_body");
    let ok = |w, h| vec![Ok((w, h))];
    let err = |c: &'static str| vec![Err(c)];
    let expected: BTreeMap<&str, Vec<Outcome<(u32, u32)>>> = BTreeMap::from([
        ("json_png", ok(16, 12)),
        ("json_data_url_jpeg", ok(16, 12)),
        ("json_bad_base64", err("invalid_image")),
        ("json_unknown_field", err("invalid_request")),
        ("json_png_bomb", err("too_many_pixels")),
        ("raw_png", ok(16, 12)),
        ("raw_jpeg", ok(16, 12)),
        ("raw_png_palette", ok(8, 6)),
        ("raw_png_rgba16", ok(8, 6)),
        // A decoder may fill in the missing scans; either way no panic.
        (
            "raw_jpeg_truncated",
            vec![Ok((16, 12)), Err("invalid_image")],
        ),
        ("raw_png_truncated", err("invalid_image")),
        ("raw_png_bomb", err("too_many_pixels")),
        ("raw_jpeg_bomb", err("too_many_pixels")),
        ("raw_garbage", err("invalid_image")),
        ("text_plain", err("unsupported_media_type")),
        ("multipart_png", ok(16, 12)),
        ("multipart_jpeg_file_field", ok(16, 12)),
        ("multipart_bad_threshold", err("invalid_request")),
        ("multipart_unknown_field", err("invalid_request")),
        ("multipart_no_image", err("invalid_request")),
        ("multipart_unterminated", err("invalid_request")),
    ]);
    let mut stats = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, bytes) in &seeds {
        let got = run(
            "infer_body",
            name,
            bytes,
            fuzzing::infer_body,
            &mut stats,
            &mut failures,
        );
        if let (Some(want), Some(got)) = (expected.get(name.as_str()), got)
            && !want.contains(&got)
        {
            failures.push(format!(
                "seed {name}: got {got:?}, expected one of {want:?}"
            ));
        }
    }
    for name in expected.keys() {
        assert!(
            seeds.iter().any(|(n, _)| n == name),
            "seed {name} missing from fuzz/corpus/infer_body"
        );
    }
    // Raw image bodies, for structure-aware mutation.
    let images: Vec<&[u8]> = seeds
        .iter()
        .filter(|(n, _)| n.starts_with("raw_"))
        .map(|(_, b)| {
            let i = b.iter().position(|&c| c == b'\n').unwrap();
            &b[i + 1..]
        })
        .collect();
    let whole: Vec<&[u8]> = seeds.iter().map(|(_, b)| b.as_slice()).collect();
    let mut rng = XorShift(0x5EED_1234_ABCD_0001);
    for i in 0..INFER_MUTATIONS {
        let input = if i % 2 == 0 {
            let seed = rng_pick(&mut rng, &images);
            let img = mutate(&mut rng, seed, &images);
            wrap_image(&mut rng, &img)
        } else {
            let seed = rng_pick(&mut rng, &whole);
            mutate(&mut rng, seed, &whole)
        };
        run(
            "infer_body",
            &format!("mutation-{i}"),
            &input,
            fuzzing::infer_body,
            &mut stats,
            &mut failures,
        );
    }
    eprintln!(
        "infer_body: {} seeds + {INFER_MUTATIONS} mutations in {:.2} s; outcomes {stats:?}",
        seeds.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    // The mutations reached the decoder, not only the envelope parsers.
    assert!(stats.get("ok").copied().unwrap_or(0) > 10, "{stats:?}");
    assert!(stats.contains_key("invalid_image"), "{stats:?}");
}

fn rng_pick<'a>(rng: &mut XorShift, v: &[&'a [u8]]) -> &'a [u8] {
    v[rng.below(v.len())]
}

#[test]
fn model_manifest_corpus_and_mutations_never_panic() {
    let t0 = Instant::now();
    let seeds = corpus("model_manifest");
    let expected: BTreeMap<&str, Outcome<String>> = BTreeMap::from([
        ("nanodet_m_416.toml", Ok("nanodet-m-416".to_owned())),
        (
            "centernet_mbv3_512.toml",
            Ok("centernet-mbv3-512".to_owned()),
        ),
        ("tiny_yolov8.toml", Ok("tiny-yolov8".to_owned())),
        ("nanodet.json", Ok("nanodet-json".to_owned())),
        ("yolo_classes_list.json", Ok("yolo-list".to_owned())),
        ("broken.toml", Err("invalid_manifest")),
        ("broken.json", Err("invalid_manifest")),
        ("not_a_table.toml", Err("invalid_manifest")),
        ("unknown_field.toml", Err("invalid_manifest")),
        ("invalid_values.toml", Err("invalid_manifest")),
        ("rdn_medium_x2.toml", Ok("rdn-medium-x2".to_owned())),
        ("image_to_image_invalid.toml", Err("invalid_manifest")),
    ]);
    let mut stats = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, bytes) in &seeds {
        let got = run(
            "model_manifest",
            name,
            bytes,
            fuzzing::model_manifest,
            &mut stats,
            &mut failures,
        );
        if let (Some(want), Some(got)) = (expected.get(name.as_str()), got)
            && *want != got
        {
            failures.push(format!("seed {name}: got {got:?}, expected {want:?}"));
        }
    }
    for name in expected.keys() {
        assert!(
            seeds.iter().any(|(n, _)| n == name),
            "seed {name} missing from fuzz/corpus/model_manifest"
        );
    }
    let whole: Vec<&[u8]> = seeds.iter().map(|(_, b)| b.as_slice()).collect();
    let mut rng = XorShift(0x5EED_1234_ABCD_0002);
    for i in 0..MANIFEST_MUTATIONS {
        let seed = rng_pick(&mut rng, &whole);
        let input = if i % 2 == 0 {
            mutate_lines(&mut rng, seed, &whole)
        } else {
            mutate(&mut rng, seed, &whole)
        };
        run(
            "model_manifest",
            &format!("mutation-{i}"),
            &input,
            fuzzing::model_manifest,
            &mut stats,
            &mut failures,
        );
    }
    eprintln!(
        "model_manifest: {} seeds + {MANIFEST_MUTATIONS} mutations in {:.2} s; outcomes {stats:?}",
        seeds.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(stats.get("ok").copied().unwrap_or(0) > 10, "{stats:?}");
}
