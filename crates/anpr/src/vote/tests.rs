use proptest::prelude::*;

use super::*;
use crate::settings::PlateSettings;

fn settings() -> CompiledPlateSettings {
    PlateSettings::default().validate().unwrap()
}

/// A reading whose characters all have confidence `c`.
fn reading(text: &str, c: f32) -> Reading {
    Reading {
        text: text.into(),
        confidence: c,
        chars: vec![c; text.len()],
        plate_bbox: None,
    }
}

/// A reading with per-character confidences; the reading's confidence is their mean.
fn reading_chars(text: &str, chars: &[f32]) -> Reading {
    Reading {
        text: text.into(),
        confidence: chars.iter().sum::<f32>() / chars.len() as f32,
        chars: chars.to_vec(),
        plate_bbox: None,
    }
}

fn vote_of(readings: &[Reading]) -> TrackVote {
    let mut v = TrackVote::new();
    for r in readings {
        v.add(r);
    }
    v
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() < 1e-5
}

#[test]
fn three_noisy_readings_vote_the_plate() {
    let mut misread_i = [0.9; 10];
    misread_i[3] = 0.5;
    let mut misread_z = [0.9; 10];
    misread_z[7] = 0.5;
    let v = vote_of(&[
        reading("KA01AB1234", 0.9),
        reading_chars("KA0IAB1234", &misread_i),
        reading_chars("KA01AB1Z34", &misread_z),
    ]);
    let r = v.result(&settings()).unwrap();
    assert_eq!(r.text, "KA01AB1234");
    assert_eq!(r.key, "KA01A81234");
    assert_eq!(r.readings, 3);
    // Two positions agree 1.8 / 2.3, eight fully; mean reading confidence (0.9 + 0.86 × 2) / 3.
    let agreement = (8.0 + 2.0 * 1.8 / 2.3) / 10.0;
    let mean = (0.9 + 0.86 + 0.86) / 3.0;
    assert!(close(r.confidence, agreement * mean), "{}", r.confidence);
    assert_eq!(r.candidates.len(), 3);
    assert_eq!(r.candidates[0].text, "KA01AB1234");
    assert!(close(r.candidates[0].votes, 0.9));
    assert_eq!(r.candidates[0].readings, 1);
}

#[test]
fn the_vote_can_recover_a_plate_no_frame_read_right() {
    let v = vote_of(&[
        reading("KA0IAB1234", 0.8),
        reading("KA01AB1Z34", 0.8),
        reading("KA01A81234", 0.8),
    ]);
    let r = v.result(&settings()).unwrap();
    assert_eq!(r.text, "KA01AB1234");
    assert!(!r.candidates.iter().any(|c| c.text == r.text));
    assert!(!v.is_final(&settings()), "no reading agrees in full");
}

#[test]
fn many_weak_right_readings_beat_one_strong_wrong_one() {
    let mut readings = vec![reading("KA01AB1284", 0.99)];
    readings.extend(std::iter::repeat_n(reading("KA01AB1234", 0.6), 4));
    let r = vote_of(&readings).result(&settings()).unwrap();
    assert_eq!(r.text, "KA01AB1234");
    // The candidates are still ranked by summed confidence: 2.4 before 0.99.
    assert_eq!(r.candidates[0].text, "KA01AB1234");
    assert_eq!(r.candidates[0].readings, 4);
    assert_eq!(r.candidates[1].text, "KA01AB1284");
}

#[test]
fn one_strong_reading_beats_one_weak_one() {
    let r = vote_of(&[reading("KA01AB1284", 0.99), reading("KA01AB1234", 0.6)])
        .result(&settings())
        .unwrap();
    assert_eq!(r.text, "KA01AB1284");
}

#[test]
fn the_length_with_the_most_confidence_wins() {
    // Length 10: 1.6 in two readings; length 9: 0.9 + 0.6 = 1.5 in two.
    let v = vote_of(&[
        reading("KA01AB123", 0.9),
        reading("KA01AB1234", 0.8),
        reading("A01AB1234", 0.6),
        reading("KA01AB1234", 0.8),
    ]);
    let r = v.result(&settings()).unwrap();
    assert_eq!(r.text, "KA01AB1234");
    // Only the readings of the winning length count: full agreement at 0.8.
    assert!(close(r.confidence, 0.8));
    assert_eq!(r.readings, 4);

    // One confident reading beats one weak one of another length.
    let r = vote_of(&[reading("KA01AB123", 0.6), reading("KA01AB1234", 0.95)])
        .result(&settings())
        .unwrap();
    assert_eq!(r.text, "KA01AB1234");
}

#[test]
fn no_result_without_readings_or_below_the_vote_confidence() {
    let s = settings();
    assert!(TrackVote::new().result(&s).is_none());
    let mut v = TrackVote::new();
    v.add(&reading("", 1.0));
    assert_eq!(v.readings(), 0, "empty texts are ignored");
    assert!(v.result(&s).is_none());
    v.add(&reading("KA01AB1234", 0.55));
    assert!(v.result(&s).is_none());
    v.add(&reading("KA01AB1234", 0.75));
    assert!(close(v.result(&s).unwrap().confidence, 0.65));
}

#[test]
fn final_after_min_readings_agreeing_readings() {
    let s = settings();
    let mut v = TrackVote::new();
    v.add(&reading("KA01AB1234", 0.9));
    v.add(&reading("KA0IAB1234", 0.7));
    v.add(&reading("KA01AB1234", 0.9));
    assert!(!v.is_final(&s), "two agree, three needed");
    v.add(&reading("KA01AB1234", 0.9));
    assert!(v.is_final(&s));

    let mut weak = TrackVote::new();
    for _ in 0..5 {
        weak.add(&reading("KA01AB1234", 0.55));
    }
    assert!(!weak.is_final(&s), "agreeing but below vote_confidence");
}

#[test]
fn candidates_are_capped_and_ranked() {
    let texts = ["AAAA", "BBBB", "CCCC", "DDDD", "EEEE", "FFFF", "GGGG"];
    let mut v = TrackVote::new();
    for (i, t) in texts.iter().enumerate() {
        v.add(&reading(t, 0.3 + 0.1 * i as f32));
    }
    v.add(&reading("AAAA", 1.0));
    v.add(&reading("AAAA", 1.0));
    let lenient = PlateSettings {
        vote_confidence: 0.0,
        ..PlateSettings::default()
    }
    .validate()
    .unwrap();
    let r = v.result(&lenient).unwrap();
    let got: Vec<&str> = r.candidates.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(got, ["AAAA", "GGGG", "FFFF", "EEEE", "DDDD"]);
    assert_eq!(r.candidates[0].readings, 3);
}

#[test]
fn plate_box_comes_from_the_best_reading_of_the_voted_text() {
    let b = |x: f32| Some(BBox::new(x, 0.0, x + 10.0, 5.0));
    let with_box = |text: &str, c: f32, bbox| Reading {
        plate_bbox: bbox,
        ..reading(text, c)
    };
    let v = vote_of(&[
        with_box("KA01AB1234", 0.7, b(1.0)),
        with_box("KA01AB1234", 0.8, b(2.0)),
        with_box("KA01AB1234", 0.9, None),
        with_box("KA01AB1284", 0.95, b(3.0)),
    ]);
    assert_eq!(v.result(&settings()).unwrap().plate_bbox, b(2.0));
    // Nothing read the voted text in full: the best reading with a box.
    let v = vote_of(&[
        with_box("KA0IAB1234", 0.8, b(1.0)),
        with_box("KA01AB1Z34", 0.85, b(2.0)),
        with_box("KA01A81234", 0.8, None),
    ]);
    assert_eq!(v.result(&settings()).unwrap().plate_bbox, b(2.0));
}

#[test]
fn misaligned_or_out_of_range_confidences_are_tamed() {
    let r = Reading {
        text: "KA01".into(),
        confidence: 0.8,
        chars: vec![5.0],
        plate_bbox: None,
    };
    let v = vote_of(&[r]);
    let got = v.result(&settings()).unwrap();
    assert_eq!(got.text, "KA01");
    assert!(close(got.confidence, 0.8));
}

/// Texts over a small alphabet so that readings collide, and confidences in sixteenths, which
/// add up exactly in f32: the properties are about the vote, not rounding.
fn arb_reading() -> impl Strategy<Value = Reading> {
    (3usize..=5)
        .prop_flat_map(|n| {
            (
                proptest::collection::vec(prop::sample::select(vec!['A', 'B', '0', '8']), n),
                proptest::collection::vec(0u8..=16, n),
                0u8..=16,
            )
        })
        .prop_map(|(text, chars, c)| Reading {
            text: text.into_iter().collect(),
            confidence: f32::from(c) / 16.0,
            chars: chars.into_iter().map(|k| f32::from(k) / 16.0).collect(),
            plate_bbox: None,
        })
}

fn voted(v: &TrackVote) -> Option<(String, f32)> {
    v.vote().map(|v| (v.text, v.confidence))
}

proptest! {
    #[test]
    fn repeating_the_readings_keeps_the_winner(readings in proptest::collection::vec(arb_reading(), 1..12)) {
        let once = vote_of(&readings);
        let mut twice = once.clone();
        for r in &readings {
            twice.add(r);
        }
        let (a, ca) = voted(&once).unwrap();
        let (b, cb) = voted(&twice).unwrap();
        prop_assert_eq!(a, b);
        prop_assert!((ca - cb).abs() < 1e-4);
    }

    #[test]
    fn readings_of_the_winner_keep_the_winner(
        readings in proptest::collection::vec(arb_reading(), 1..12),
        extra in 1usize..4,
        k in 0u8..=16,
    ) {
        let mut v = vote_of(&readings);
        let (winner, _) = voted(&v).unwrap();
        let c = f32::from(k) / 16.0;
        for _ in 0..extra {
            v.add(&reading(&winner, c));
            prop_assert_eq!(&voted(&v).unwrap().0, &winner);
        }
    }

    #[test]
    fn confidence_is_within_unit_range(
        texts in proptest::collection::vec("[AB08]{1,6}", 1..10),
        confs in proptest::collection::vec(-2.0f32..2.0, 10),
    ) {
        let mut v = TrackVote::new();
        for (i, t) in texts.iter().enumerate() {
            v.add(&Reading {
                text: t.clone(),
                confidence: confs[i],
                chars: confs.iter().copied().cycle().skip(i).take(t.len()).collect(),
                plate_bbox: None,
            });
        }
        let (_, c) = voted(&v).unwrap();
        prop_assert!((0.0..=1.0).contains(&c), "{}", c);
    }
}
