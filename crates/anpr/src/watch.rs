//! Watch lists: which `known` entry, if any, a voted plate matches.
//!
//! Exact entries tolerate a few edits, on the text or on the folded key, because a plate read
//! once with `0` for `O` is still the plate being watched for.

use crate::settings::{CompiledKnown, CompiledPlateSettings, KnownMatcher};
use crate::text::{distance, fold, normalize};

/// A watch-list hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchMatch {
    /// The entry's `label`.
    pub label: String,
    /// Edit distance between the read text and the entry; 0 for a regex entry.
    pub distance: u32,
}

#[derive(Debug, Clone)]
enum Entry {
    Exact {
        text: String,
        key: String,
        distance: u32,
    },
    Regex(regex::Regex),
}

/// The compiled `known` entries of a plate stage.
#[derive(Debug, Clone)]
pub struct WatchList {
    entries: Vec<(String, Entry)>,
}

impl WatchList {
    pub fn new(s: &CompiledPlateSettings) -> Self {
        let entries = s
            .known()
            .iter()
            .map(|CompiledKnown { label, matcher }| {
                let entry = match matcher {
                    KnownMatcher::Exact { text, distance } => Entry::Exact {
                        key: fold(text),
                        text: text.clone(),
                        distance: *distance,
                    },
                    KnownMatcher::Regex(re) => Entry::Regex(re.clone()),
                };
                (label.clone(), entry)
            })
            .collect();
        WatchList { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The best entry `text` matches (normalised first), or None.
    ///
    /// - A `plate` entry matches when the Levenshtein distance between the entry and the text,
    ///   or between their folded keys, is at most the entry's `distance`; the smaller of the
    ///   two is reported.
    /// - A `regex` entry matches when its regex matches the normalised text (anywhere, unless
    ///   anchored), at distance 0.
    ///
    /// Best: the smallest distance, then the first in list order. An empty text matches
    /// nothing.
    pub fn check(&self, text: &str) -> Option<WatchMatch> {
        let text = normalize(text);
        if text.is_empty() {
            return None;
        }
        let key = fold(&text);
        let mut best: Option<WatchMatch> = None;
        for (label, entry) in &self.entries {
            let d = match entry {
                Entry::Exact {
                    text: plate,
                    key: plate_key,
                    distance: max,
                } => {
                    let d = distance(plate, &text).min(distance(plate_key, &key));
                    let d = u32::try_from(d).unwrap_or(u32::MAX);
                    if d > *max {
                        continue;
                    }
                    d
                }
                Entry::Regex(re) => {
                    if !re.is_match(&text) {
                        continue;
                    }
                    0
                }
            };
            if best.as_ref().is_none_or(|b| d < b.distance) {
                best = Some(WatchMatch {
                    label: label.clone(),
                    distance: d,
                });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{KnownPlate, PlateSettings};

    fn plate(label: &str, plate: &str, distance: u32) -> KnownPlate {
        KnownPlate {
            label: label.into(),
            plate: Some(plate.into()),
            regex: None,
            distance,
        }
    }

    fn regex(label: &str, re: &str) -> KnownPlate {
        KnownPlate {
            label: label.into(),
            plate: None,
            regex: Some(re.into()),
            distance: 1,
        }
    }

    fn list(known: Vec<KnownPlate>) -> WatchList {
        let s = PlateSettings {
            known,
            ..PlateSettings::default()
        };
        WatchList::new(&s.validate().unwrap())
    }

    fn hit(label: &str, distance: u32) -> Option<WatchMatch> {
        Some(WatchMatch {
            label: label.into(),
            distance,
        })
    }

    #[test]
    fn exact_entries_are_normalised_and_match_within_their_distance() {
        let w = list(vec![plate("boss", "ka-01 ab 1234", 1)]);
        assert_eq!(w.check("KA01AB1234"), hit("boss", 0));
        assert_eq!(w.check("ka01ab 1234"), hit("boss", 0));
        assert_eq!(w.check("KA01AB123"), hit("boss", 1));
        assert_eq!(w.check("KA01AB12"), None);
        assert_eq!(w.check("KA01XY1234"), None);
    }

    #[test]
    fn confusable_reads_match_through_the_folded_key() {
        // Three confusions: distance 3 on the text, 0 on the key.
        let w = list(vec![plate("boss", "KA01AB1234", 0)]);
        assert_eq!(w.check("KAOIA81234"), hit("boss", 0));
        // One real error on top of a confusion: distance 1 on the key.
        let w = list(vec![plate("boss", "KA01AB1234", 1)]);
        assert_eq!(w.check("KAO1AB1235"), hit("boss", 1));
        let strict = list(vec![plate("boss", "KA01AB1234", 0)]);
        assert_eq!(strict.check("KAO1AB1235"), None);
    }

    #[test]
    fn regex_entries_match_the_normalised_text_at_distance_zero() {
        let w = list(vec![regex("fleet", "^KA01[A-Z]{2}")]);
        assert_eq!(w.check("ka 01 xy 9999"), hit("fleet", 0));
        assert_eq!(w.check("KA02XY9999"), None);
    }

    #[test]
    fn the_closest_entry_wins_then_list_order() {
        let w = list(vec![
            plate("near", "KA01AB1235", 1),
            regex("fleet", "^KA01"),
            plate("exact", "KA01AB1234", 1),
        ]);
        assert_eq!(w.check("KA01AB1234"), hit("fleet", 0));
        let w = list(vec![
            plate("near", "KA01AB1235", 1),
            plate("exact", "KA01AB1234", 1),
        ]);
        assert_eq!(w.check("KA01AB1234"), hit("exact", 0));
        assert_eq!(w.check("KA01AB1236"), hit("near", 1));
    }

    #[test]
    fn empty_lists_and_texts_match_nothing() {
        assert!(list(vec![]).is_empty());
        assert_eq!(list(vec![]).check("KA01AB1234"), None);
        assert_eq!(list(vec![regex("any", ".*")]).check("--"), None);
    }
}
