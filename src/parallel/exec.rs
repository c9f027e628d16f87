//! The parallel execution of a call's tasks on the rayon pool: unsplit
//! (each task written in place or through scratch) or split-KV (every task
//! and key range, then merged in key order).

use super::plan::{Unit, MIN_WORK};
use super::scratch::{carve, copy_in, copy_lse, dense, disjoint_spans};
use crate::problem::Problem;
use crate::softmax::merge_row;
use crate::view::Layout;
use crate::Element;
use crate::{HeadsMut, Kernel};
use core::ops::Range;
use rayon::prelude::*;
use std::vec;
use std::vec::Vec;

/// Computes every task of an unsplit call. Each task is computed by the
/// single-thread kernel exactly as inside the whole call ([`units`](super::plan::units)), so the
/// result is bit-identical. Outputs whose tasks span disjoint memory are
/// written in place, others through scratch.
pub(super) fn run_units<E: Element>(
    kernel: Kernel,
    p: &Problem<'_, E>,
    units: &[Unit],
    out: HeadsMut<'_>,
    lse: Option<&mut [f32]>,
) {
    let work = (p.q.heads() * p.q.rows()).saturating_mul(p.key_len).saturating_mul(p.q.cols() + p.v.cols());
    if units.len() <= 1 || work < MIN_WORK {
        return kernel.compute(p, out.data, &out.layout, lse);
    }
    let (ol, d_v) = (out.layout, p.v.cols());
    let want_lse = lse.is_some();
    let mut lses: Vec<Vec<f32>> =
        units.iter().map(|u| vec![0.0; if want_lse { u.heads.len() * u.rows.len() } else { 0 }]).collect();
    let task = |u: &Unit, o: &mut [f32], layout: &Layout, l: &mut Vec<f32>| {
        let sub = p.sub(u.heads.clone(), u.rows.clone(), 0..p.k.rows(), p.mask.rows_from(u.rows.start));
        kernel.compute(&sub, o, layout, want_lse.then_some(&mut l[..]));
    };
    if let Some(spans) = disjoint_spans(&ol, units) {
        let slices = carve(out.data, &spans);
        units.par_iter().zip(slices).zip(&mut lses).with_max_len(1).for_each(|((u, o), l)| {
            task(u, o, &Layout { heads: u.heads.len(), rows: u.rows.len(), ..ol }, l);
        });
    } else {
        let mut scratch: Vec<Vec<f32>> =
            units.iter().map(|u| vec![0.0; u.heads.len() * u.rows.len() * d_v]).collect();
        units.par_iter().zip(&mut scratch).zip(&mut lses).with_max_len(1).for_each(|((u, o), l)| {
            task(u, o, &dense(u.heads.len(), u.rows.len(), d_v), l);
        });
        for (u, o) in units.iter().zip(&scratch) {
            copy_in(out.data, &ol, u, o);
        }
    }
    if let Some(lse) = lse {
        for (u, l) in units.iter().zip(&lses) {
            copy_lse(lse, p.lse_stride, u, l);
        }
    }
}

/// One part of one task of a split call, computed into dense
/// `[heads][rows][d_v]` scratch with its `[heads][rows]` log-sum-exps
/// (rows that see no key of the part keep 0 and `−∞`).
fn compute_part<E: Element>(
    kernel: Kernel,
    p: &Problem<'_, E>,
    u: &Unit,
    keys: Range<usize>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let (nh, nr, d_v) = (u.heads.len(), u.rows.len(), p.v.cols());
    for (rows, mask) in p.mask.keys_from(u.rows.clone(), keys.start) {
        if rows.is_empty() {
            continue;
        }
        // The sinks join the merged result once (run_split), not each part.
        let sp = Problem { sinks: None, ..p.sub(u.heads.clone(), rows.clone(), keys.clone(), mask) };
        let (r0, ng) = (rows.start - u.rows.start, rows.len());
        let layout = Layout { heads: nh, rows: ng, cols: d_v, head_stride: nr * d_v, row_stride: d_v };
        let mut group_lse = vec![0.0; nh * ng];
        kernel.compute(&sp, &mut out[r0 * d_v..], &layout, Some(&mut group_lse));
        for (h, l) in group_lse.chunks_exact(ng).enumerate() {
            lse[h * nr + r0..][..ng].copy_from_slice(l);
        }
    }
}

/// Task `unit` on keys `keys`: `[heads][rows][d_v]` output, `[heads][rows]` lse.
struct Partial {
    unit: usize,
    keys: Range<usize>,
    out: Vec<f32>,
    lse: Vec<f32>,
}

/// A split call: every (task, part) pair computed in parallel, then each
/// task's parts merged in key order ([`merge_row`]) and copied in.
pub(super) fn run_split<E: Element>(
    kernel: Kernel,
    p: &Problem<'_, E>,
    units: &[Unit],
    points: &[usize],
    out: HeadsMut<'_>,
    mut lse: Option<&mut [f32]>,
) {
    let (ol, d_v) = (out.layout, p.v.cols());
    let bounds: Vec<usize> = core::iter::once(0).chain(points.iter().copied()).chain([p.k.rows()]).collect();
    // Each part clipped to the key length; parts past it are empty.
    let parts: Vec<Range<usize>> =
        bounds.windows(2).map(|w| w[0]..w[1].min(p.key_len)).filter(|r| !r.is_empty()).collect();
    let mut partials: Vec<Partial> = Vec::new();
    for (unit, u) in units.iter().enumerate() {
        let n = u.heads.len() * u.rows.len();
        for keys in &parts {
            let (out, lse) = (vec![0.0; n * d_v], vec![f32::NEG_INFINITY; n]);
            partials.push(Partial { unit, keys: keys.clone(), out, lse });
        }
    }
    partials.par_iter_mut().with_max_len(1).for_each(|x| {
        compute_part(kernel, p, &units[x.unit], x.keys.clone(), &mut x.out, &mut x.lse);
    });
    let mut partials = partials.into_iter().peekable();
    for (t, u) in units.iter().enumerate() {
        let n = u.heads.len() * u.rows.len();
        let (mut acc, mut acc_lse) = (vec![0.0f32; n * d_v], vec![f32::NEG_INFINITY; n]);
        let mut infinite = vec![0usize; n];
        while let Some(Partial { out: o, lse: l, .. }) = partials.next_if(|x| x.unit == t) {
            for (r, &lr) in l.iter().enumerate() {
                // Merging a part the row does not see (−∞) changes nothing.
                if lr != f32::NEG_INFINITY {
                    merge_row(&mut acc[r * d_v..][..d_v], &mut acc_lse[r], &o[r * d_v..][..d_v], lr);
                }
                infinite[r] += usize::from(lr == f32::INFINITY);
            }
        }
        // The sinks: one more part, of output 0 and log-sum-exp `sinks[h]`.
        if let Some(sinks) = p.sinks {
            let zero = vec![0.0f32; d_v];
            for r in 0..n {
                let h = u.heads.start + r / u.rows.len();
                merge_row(&mut acc[r * d_v..][..d_v], &mut acc_lse[r], &zero, sinks[h]);
            }
        }
        // A row with `+∞` scores in two or more parts: the merge can only
        // average the parts' means, while the row's result is the mean over
        // all its `+∞` keys. Such a row is computed again over all its keys.
        for (r, _) in infinite.iter().enumerate().filter(|(_, &c)| c >= 2) {
            let (h, i) = (u.heads.start + r / u.rows.len(), u.rows.start + r % u.rows.len());
            let row = p.sub(h..h + 1, i..i + 1, 0..p.k.rows(), p.mask.rows_from(i));
            let layout = Layout { heads: 1, rows: 1, cols: d_v, head_stride: d_v, row_stride: d_v };
            let mut row_lse = [0.0f32];
            kernel.compute(&row, &mut acc[r * d_v..][..d_v], &layout, Some(&mut row_lse));
            acc_lse[r] = row_lse[0];
        }
        copy_in(out.data, &ol, u, &acc);
        if let Some(lse) = lse.as_deref_mut() {
            copy_lse(lse, p.lse_stride, u, &acc_lse);
        }
    }
}
