//! Per-track state of one rule, kept in track-id order. Each frame, the current tracks (also
//! in id order) are merged against the stored states in one pass: continuing tracks get
//! their previous state, new ones none, and tracks that vanished are handed back once. The
//! walk is in increasing id order, which is what makes a rule's events come out sorted by
//! track id with no hash-map order leaking into them, and it allocates nothing once warm.

use sightline_core::{Track, TrackId};

/// One step of [`TrackTable::update`].
#[derive(Debug)]
pub(crate) enum Visit<'t, S> {
    /// A track present on this frame, with its previous state (`None` when new).
    Seen(&'t Track, Option<S>),
    /// A stored track that is no longer present, with its last state.
    Gone(S),
}

/// States of type `S` keyed by track id, sorted.
#[derive(Debug, Clone)]
pub(crate) struct TrackTable<S> {
    entries: Vec<(TrackId, S)>,
    spare: Vec<(TrackId, S)>,
}

impl<S> Default for TrackTable<S> {
    fn default() -> Self {
        TrackTable {
            entries: Vec::new(),
            spare: Vec::new(),
        }
    }
}

impl<S> TrackTable<S> {
    /// Merges this frame's `tracks` (strictly increasing ids) against the stored states,
    /// calling `visit` in increasing id order. For [`Visit::Seen`] it returns the track's new
    /// state (`None` forgets it); for [`Visit::Gone`] its return value is ignored.
    pub(crate) fn update<'t>(
        &mut self,
        tracks: impl IntoIterator<Item = &'t Track>,
        mut visit: impl FnMut(Visit<'t, S>) -> Option<S>,
    ) {
        let mut old = std::mem::take(&mut self.entries);
        let mut new = std::mem::take(&mut self.spare);
        new.clear();
        {
            let mut old = old.drain(..).peekable();
            for t in tracks {
                while let Some((id, _)) = old.peek()
                    && *id < t.id
                {
                    if let Some((_, s)) = old.next() {
                        visit(Visit::Gone(s));
                    }
                }
                let prev = match old.peek() {
                    Some((id, _)) if *id == t.id => old.next().map(|(_, s)| s),
                    _ => None,
                };
                if let Some(s) = visit(Visit::Seen(t, prev)) {
                    new.push((t.id, s));
                }
            }
            for (_, s) in old {
                visit(Visit::Gone(s));
            }
        }
        self.entries = new;
        self.spare = old;
    }

    /// The stored states, in id order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(TrackId, S)> {
        self.entries.iter()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{BBox, ClassId};

    fn track(id: u64) -> Track {
        Track {
            id: TrackId(id),
            class_id: ClassId(0),
            bbox: BBox::new(0.0, 0.0, 1.0, 1.0),
            score: 1.0,
            hits: 1,
            misses: 0,
            matched: true,
        }
    }

    #[test]
    fn merge_reports_new_continuing_and_gone_in_id_order() {
        let mut t: TrackTable<u32> = TrackTable::default();
        let mut log = Vec::new();
        let mut visit = |v: Visit<'_, u32>| match v {
            Visit::Seen(tr, prev) => {
                log.push(format!("seen {} {prev:?}", tr.id));
                (tr.id.0 != 6).then(|| prev.unwrap_or(0) + 1)
            }
            Visit::Gone(s) => {
                log.push(format!("gone {s}"));
                None
            }
        };
        let (f1, f2) = (
            [track(1), track(3), track(5)],
            [track(2), track(3), track(6)],
        );
        t.update(&f1, &mut visit);
        t.update(&f2, &mut visit);
        assert_eq!(
            log,
            [
                "seen 1 None",
                "seen 3 None",
                "seen 5 None",
                "gone 1",
                "seen 2 None",
                "seen 3 Some(1)",
                "gone 1",
                "seen 6 None",
            ]
        );
        let ids: Vec<(u64, u32)> = t.iter().map(|(id, s)| (id.0, *s)).collect();
        assert_eq!(ids, [(2, 1), (3, 2)]);
        assert_eq!(t.len(), 2);
        t.update(&[], |_| None);
        assert_eq!(t.len(), 0);
    }
}
