//! Optimal one-to-one matching of tracks to detections by box overlap.
//!
//! ByteTrack solves each association stage with LAPJV on the cost `1 − IoU`, with a cost limit:
//! a pair costing more than the limit is never matched, and leaving a track or a detection
//! unmatched costs half the limit. Minimising that total is the same as maximising
//! `Σ (IoU − min_iou)` over the matched pairs whose IoU is above `min_iou`, which is what this
//! module does, with a maximum-weight matching over those gains (pairs below the threshold get
//! gain 0 and are dropped from the result).
//!
//! The solver is `pathfinding::kuhn_munkres` (Hungarian algorithm, O(n³)). Why that crate:
//! `pathfinding` is actively maintained, widely used, dependency-light and pure Rust, and its
//! solver is exact and deterministic. The `lapjv` crate is faster on large dense problems but
//! pulls in `ndarray` and has seen few releases; at the sizes a frame produces (tens to a few
//! hundred boxes) the Hungarian algorithm costs microseconds to a few milliseconds, and the
//! matrix is first split into independent groups (tracks and detections that overlap nobody
//! else's are matched trivially), which keeps the cubic term small. `kuhn_munkres` needs a
//! totally ordered weight, so gains are scaled to integers (1e-6 IoU resolution).

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Gains are `(IoU − min_iou) · SCALE`, rounded; 1e-6 IoU resolution, far finer than boxes in
/// pixels can resolve.
const SCALE: f64 = 1e6;

/// Returns the pairs `(row, col)` of a maximum-gain matching, sorted by row, where the gain of a
/// pair is `overlap(row, col) − min_iou` and only pairs with `overlap > min_iou` may be matched.
/// `overlap` returns `None` for a pair that must never be matched (another class).
pub(crate) fn assign(
    rows: usize,
    cols: usize,
    min_iou: f32,
    mut overlap: impl FnMut(usize, usize) -> Option<f32>,
) -> Vec<(usize, usize)> {
    let mut gains = vec![0_i64; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            if let Some(iou) = overlap(r, c)
                && iou > min_iou
            {
                let g = (f64::from(iou - min_iou) * SCALE).round().max(1.0);
                gains[r * cols + c] = g as i64;
            }
        }
    }
    let mut pairs = Vec::new();
    for (group_rows, group_cols) in groups(rows, cols, &gains) {
        solve_group(&group_rows, &group_cols, cols, &gains, &mut pairs);
    }
    pairs.sort_unstable();
    pairs
}

/// Splits the bipartite graph of positive gains into connected components, each as (rows,
/// cols) in increasing order. Rows and columns with no positive gain belong to no group.
fn groups(rows: usize, cols: usize, gains: &[i64]) -> Vec<(Vec<usize>, Vec<usize>)> {
    // Union-find over rows 0..rows and columns rows..rows+cols.
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut linked = vec![false; rows + cols];
    for r in 0..rows {
        for c in 0..cols {
            if gains[r * cols + c] > 0 {
                let (a, b) = (find(&mut parent, r), find(&mut parent, rows + c));
                // Smaller root wins so the result does not depend on visiting order.
                let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                parent[hi] = lo;
                linked[r] = true;
                linked[rows + c] = true;
            }
        }
    }
    let mut by_root: Vec<Option<usize>> = vec![None; rows + cols];
    let mut out: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for (node, _) in linked.iter().enumerate().filter(|(_, l)| **l) {
        let root = find(&mut parent, node);
        let idx = *by_root[root].get_or_insert_with(|| {
            out.push((Vec::new(), Vec::new()));
            out.len() - 1
        });
        if node < rows {
            out[idx].0.push(node);
        } else {
            out[idx].1.push(node - rows);
        }
    }
    out
}

/// Solves one connected group and appends its positive-gain pairs.
fn solve_group(
    rows: &[usize],
    cols: &[usize],
    stride: usize,
    gains: &[i64],
    pairs: &mut Vec<(usize, usize)>,
) {
    if let ([r], [c]) = (rows, cols) {
        pairs.push((*r, *c));
        return;
    }
    let gain = |r: usize, c: usize| gains[r * stride + c];
    // `kuhn_munkres` assigns every row, so the smaller side goes on the rows.
    if rows.len() <= cols.len() {
        let m = Matrix::from_fn(rows.len(), cols.len(), |(i, j)| gain(rows[i], cols[j]));
        let (_, assignment) = kuhn_munkres(&m);
        for (i, j) in assignment.into_iter().enumerate() {
            if m[(i, j)] > 0 {
                pairs.push((rows[i], cols[j]));
            }
        }
    } else {
        let m = Matrix::from_fn(cols.len(), rows.len(), |(j, i)| gain(rows[i], cols[j]));
        let (_, assignment) = kuhn_munkres(&m);
        for (j, i) in assignment.into_iter().enumerate() {
            if m[(j, i)] > 0 {
                pairs.push((rows[i], cols[j]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &[&[f32]], min_iou: f32) -> Vec<(usize, usize)> {
        let cols = m.first().map_or(0, |r| r.len());
        assign(m.len(), cols, min_iou, |r, c| Some(m[r][c]))
    }

    #[test]
    fn empty_sides_match_nothing() {
        assert!(assign(0, 3, 0.2, |_, _| Some(1.0)).is_empty());
        assert!(assign(3, 0, 0.2, |_, _| Some(1.0)).is_empty());
    }

    #[test]
    fn prefers_the_best_total_over_the_greedy_choice() {
        // Greedy would take (0,0) = 0.9 and leave row 1 with 0.1 or nothing.
        let m: &[&[f32]] = &[&[0.9, 0.8], &[0.85, 0.1]];
        assert_eq!(run(m, 0.2), vec![(0, 1), (1, 0)]);
    }

    #[test]
    fn pairs_at_or_below_the_threshold_are_never_matched() {
        let m: &[&[f32]] = &[&[0.2, 0.0], &[0.0, 0.21]];
        assert_eq!(run(m, 0.2), vec![(1, 1)]);
    }

    #[test]
    fn forbidden_pairs_are_never_matched() {
        let pairs = assign(2, 2, 0.1, |r, c| if r == c { None } else { Some(0.5) });
        assert_eq!(pairs, vec![(0, 1), (1, 0)]);
        assert!(assign(2, 2, 0.1, |_, _| None).is_empty());
    }

    #[test]
    fn more_rows_than_columns_leaves_the_worst_rows_unmatched() {
        let m: &[&[f32]] = &[&[0.3], &[0.9], &[0.5]];
        assert_eq!(run(m, 0.2), vec![(1, 0)]);
        let m: &[&[f32]] = &[&[0.3, 0.0], &[0.9, 0.7], &[0.5, 0.0]];
        assert_eq!(run(m, 0.2), vec![(1, 1), (2, 0)]);
    }

    #[test]
    fn threshold_changes_the_optimum_like_bytetrack_cost_limit() {
        // Total IoU favours the two pairs (0.45 + 0.45 > 0.8), but with min_iou 0.4 their gains
        // are 0.05 + 0.05 < 0.4 for the single strong pair.
        let m: &[&[f32]] = &[&[0.8, 0.45], &[0.45, 0.0]];
        assert_eq!(run(m, 0.0), vec![(0, 1), (1, 0)]);
        assert_eq!(run(m, 0.4), vec![(0, 0)]);
    }

    #[test]
    fn independent_groups_are_solved_separately() {
        // Rows 0,1 compete for cols 0,1; row 2 alone overlaps col 3; col 2 overlaps nobody.
        let m: &[&[f32]] = &[
            &[0.9, 0.8, 0.0, 0.0],
            &[0.85, 0.0, 0.0, 0.0],
            &[0.0, 0.0, 0.0, 0.7],
        ];
        assert_eq!(run(m, 0.2), vec![(0, 1), (1, 0), (2, 3)]);
        let g = groups(3, 4, &{
            let mut v = vec![0; 12];
            for (r, row) in m.iter().enumerate() {
                for (c, x) in row.iter().enumerate() {
                    v[r * 4 + c] = i64::from(*x > 0.2);
                }
            }
            v
        });
        assert_eq!(g, vec![(vec![0, 1], vec![0, 1]), (vec![2], vec![3])]);
    }
}
