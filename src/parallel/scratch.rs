//! Output scratch of a parallel call: outputs whose tasks span disjoint
//! memory are cut into one slice per task; others are computed into dense
//! per-task buffers and copied in.

use super::plan::Unit;
use crate::view::Layout;
use core::ops::Range;
use std::vec::Vec;

/// Dense `[heads][rows][d_v]` scratch layout.
pub(super) fn dense(heads: usize, rows: usize, d_v: usize) -> Layout {
    Layout { heads, rows, cols: d_v, head_stride: rows * d_v, row_stride: d_v }
}

/// The memory each task's output rows span, if these spans are pairwise
/// disjoint (heads-major outputs), so that each task can get its own slice.
pub(super) fn disjoint_spans(ol: &Layout, units: &[Unit]) -> Option<Vec<Range<usize>>> {
    let spans: Vec<Range<usize>> = units
        .iter()
        .map(|u| ol.offset(u.heads.start, u.rows.start)..ol.offset(u.heads.end - 1, u.rows.end - 1) + ol.cols)
        .collect();
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&t| spans[t].start);
    order.windows(2).all(|w| spans[w[0]].end <= spans[w[1]].start).then_some(spans)
}

/// Cuts `data` into the given pairwise disjoint spans, returned in the order given.
pub(super) fn carve<'o>(data: &'o mut [f32], spans: &[Range<usize>]) -> Vec<&'o mut [f32]> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&t| spans[t].start);
    let mut slices: Vec<&'o mut [f32]> = (0..spans.len()).map(|_| Default::default()).collect();
    let (mut rest, mut at) = (data, 0);
    for t in order {
        let (_, tail) = rest.split_at_mut(spans[t].start - at);
        let (mine, tail) = tail.split_at_mut(spans[t].len());
        slices[t] = mine;
        (rest, at) = (tail, spans[t].end);
    }
    slices
}

/// Copies a task's dense `[heads][rows][d_v]` result into the output.
pub(super) fn copy_in(data: &mut [f32], ol: &Layout, u: &Unit, src: &[f32]) {
    let d_v = ol.cols;
    let mut rows = src.chunks_exact(d_v);
    for h in u.heads.clone() {
        for (i, row) in u.rows.clone().zip(&mut rows) {
            let o = ol.offset(h, i);
            data[o..o + d_v].copy_from_slice(row);
        }
    }
}

/// Copies a task's `[heads][rows]` log-sum-exps to `lse[h * stride + i]`.
pub(super) fn copy_lse(lse: &mut [f32], stride: usize, u: &Unit, src: &[f32]) {
    let nr = u.rows.len();
    for (h, l) in u.heads.clone().zip(src.chunks_exact(nr)) {
        lse[h * stride + u.rows.start..][..nr].copy_from_slice(l);
    }
}
