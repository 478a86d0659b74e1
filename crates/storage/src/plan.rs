//! What the janitor deletes, decided by pure functions (tested without a disk or database):
//!
//! - **Retention**: the cutoff time of each kind, from its age in days (0 keeps forever).
//! - **Disk survival mode** (seed 003): a hysteresis on the media volume's usage. It starts
//!   when the volume is fuller than the high-water mark (or the media exceed the byte
//!   budget) and deletes the oldest media, whatever its age, until usage is under the
//!   low-water mark; only then does it stop. The current recording segment is never a
//!   candidate (the store never lists open segments), so the current moment is always kept.

use sightline_store::MediaItem;

/// Milliseconds before `now_ms` that items of an age of `days` were created; `None` keeps
/// them forever.
pub fn cutoff_ms(now_ms: i64, days: f64) -> Option<i64> {
    (days > 0.0 && days.is_finite()).then(|| now_ms - (days * 86_400_000.0) as i64)
}

/// How full the media volume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Filesystem size and used bytes (local volumes), if known.
    pub disk_total: Option<u64>,
    pub disk_used: Option<u64>,
    /// Bytes of media indexed on this volume.
    pub media_bytes: u64,
}

impl Usage {
    /// Percent of the filesystem in use (as `df` shows it), if known.
    pub fn disk_pct(&self) -> Option<f64> {
        match (self.disk_total, self.disk_used) {
            (Some(t), Some(u)) if t > 0 => Some(u as f64 * 100.0 / t as f64),
            _ => None,
        }
    }
}

/// The limits of disk survival mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermarks {
    pub high_pct: f64,
    pub low_pct: f64,
    pub budget_bytes: Option<u64>,
}

/// Which limits survival mode is currently enforcing (each has its own hysteresis, so the
/// disk being between its marks never keeps a budget-triggered pass going, or the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SurvivalState {
    pub disk: bool,
    pub budget: bool,
}

impl SurvivalState {
    pub fn active(&self) -> bool {
        self.disk || self.budget
    }
}

impl Watermarks {
    /// Bytes to delete to get back under the low-water mark (0 if none). A limit starts
    /// being enforced above its high mark and stays enforced until below its low mark;
    /// `state` carries that between calls.
    pub fn bytes_to_free(&self, u: &Usage, state: &mut SurvivalState) -> u64 {
        let mut need = 0u64;
        state.disk = match (u.disk_total, u.disk_used) {
            (Some(total), Some(used)) if total > 0 => {
                let pct = used as f64 * 100.0 / total as f64;
                let on = pct > self.high_pct || (state.disk && pct > self.low_pct);
                if on {
                    let target = (total as f64 * self.low_pct / 100.0) as u64;
                    need = need.max(used.saturating_sub(target));
                }
                on
            }
            _ => false,
        };
        state.budget = match self.budget_bytes {
            Some(budget) => {
                let low = (budget as f64 * self.low_pct / self.high_pct).round() as u64;
                let on = u.media_bytes > budget || (state.budget && u.media_bytes > low);
                if on {
                    need = need.max(u.media_bytes.saturating_sub(low));
                }
                on
            }
            None => false,
        };
        if need == 0 {
            *state = SurvivalState::default();
        }
        need
    }
}

/// The oldest items to delete to free `bytes` (at least one item when `bytes > 0`):
/// `candidates` merged by age (oldest first), taken until their sizes add up.
pub fn oldest_first(mut candidates: Vec<MediaItem>, bytes: u64) -> Vec<MediaItem> {
    if bytes == 0 {
        return Vec::new();
    }
    candidates.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.key.cmp(&b.key)));
    let mut freed = 0u64;
    let mut out = Vec::new();
    for c in candidates {
        if freed >= bytes {
            break;
        }
        freed += c.bytes;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_store::MediaClass;

    fn item(class: MediaClass, key: &str, bytes: u64, at_ms: i64) -> MediaItem {
        MediaItem {
            class,
            key: key.into(),
            bytes,
            at_ms,
        }
    }

    #[test]
    fn cutoffs() {
        assert_eq!(cutoff_ms(100_000_000, 0.0), None);
        assert_eq!(cutoff_ms(100_000_000, 1.0), Some(100_000_000 - 86_400_000));
        assert_eq!(cutoff_ms(100_000_000, f64::NAN), None);
    }

    #[test]
    fn survival_has_hysteresis_on_disk_and_budget() {
        let w = Watermarks {
            high_pct: 90.0,
            low_pct: 80.0,
            budget_bytes: None,
        };
        let at = |used| Usage {
            disk_total: Some(1000),
            disk_used: Some(used),
            media_bytes: 0,
        };
        let mut s = SurvivalState::default();
        assert_eq!(w.bytes_to_free(&at(850), &mut s), 0, "below high: off");
        assert_eq!(
            w.bytes_to_free(&at(950), &mut s),
            150,
            "above high: down to low"
        );
        assert!(s.disk);
        assert_eq!(
            w.bytes_to_free(&at(850), &mut s),
            50,
            "on: keeps going to low"
        );
        assert_eq!(w.bytes_to_free(&at(790), &mut s), 0, "below low: done");
        assert!(!s.active());

        let b = Watermarks {
            high_pct: 90.0,
            low_pct: 45.0,
            budget_bytes: Some(1000),
        };
        let media = |m| Usage {
            media_bytes: m,
            ..Default::default()
        };
        let mut s = SurvivalState::default();
        assert_eq!(b.bytes_to_free(&media(900), &mut s), 0);
        assert_eq!(
            b.bytes_to_free(&media(1100), &mut s),
            600,
            "over budget: to half of it"
        );
        assert_eq!(b.bytes_to_free(&media(700), &mut s), 200);
        assert_eq!(media(5).disk_pct(), None);

        // A budget pass is not kept going by a disk between its marks, and the reverse.
        let both = Watermarks {
            high_pct: 90.0,
            low_pct: 60.0,
            budget_bytes: Some(1000),
        };
        let mut s = SurvivalState::default();
        let u = |disk, m| Usage {
            disk_total: Some(1000),
            disk_used: Some(disk),
            media_bytes: m,
        };
        assert_eq!(both.bytes_to_free(&u(700, 1200), &mut s), 533);
        assert!(s.budget && !s.disk);
        assert_eq!(
            both.bytes_to_free(&u(700, 600), &mut s),
            0,
            "disk at 70 % never started"
        );
    }

    #[test]
    fn oldest_items_first_across_kinds_until_enough() {
        let c = vec![
            item(MediaClass::Segment, "s2", 500, 30),
            item(MediaClass::Picture, "p1", 10, 10),
            item(MediaClass::Segment, "s1", 500, 20),
            item(MediaClass::Picture, "p3", 10, 40),
        ];
        let keys = |v: Vec<MediaItem>| v.into_iter().map(|i| i.key).collect::<Vec<_>>();
        assert_eq!(keys(oldest_first(c.clone(), 400)), ["p1", "s1"]);
        assert_eq!(keys(oldest_first(c.clone(), 1)), ["p1"]);
        assert_eq!(keys(oldest_first(c.clone(), 0)), Vec::<String>::new());
        assert_eq!(keys(oldest_first(c, 10_000)), ["p1", "s1", "s2", "p3"]);
    }
}
