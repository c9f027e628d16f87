//! The parallel execution of a call's tasks on the rayon pool: unsplit
//! (each task written in place or through scratch) or split-KV (every task
//! and key range, then merged in key order); and a batch's, the tasks of
//! all its sequences in one loop.

use super::plan::{parts, work, Unit, MIN_WORK};
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
    if units.len() <= 1 || work(p) < MIN_WORK {
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
/// task's parts merged in key order ([`merge_parts`]) and copied in.
pub(super) fn run_split<E: Element>(
    kernel: Kernel,
    p: &Problem<'_, E>,
    units: &[Unit],
    points: &[usize],
    out: HeadsMut<'_>,
    mut lse: Option<&mut [f32]>,
) {
    let (ol, d_v) = (out.layout, p.v.cols());
    let parts = parts(p, points);
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
        let mut mine = Vec::new();
        while let Some(x) = partials.next_if(|x| x.unit == t) {
            mine.push(x);
        }
        let (acc, acc_lse) = merge_parts(kernel, p, u, mine.iter().map(|x| (&x.out[..], &x.lse[..])));
        copy_in(out.data, &ol, u, &acc);
        if let Some(lse) = lse.as_deref_mut() {
            copy_lse(lse, p.lse_stride, u, &acc_lse);
        }
    }
}

/// Task `u`'s parts, in key order (each a `[heads][rows][d_v]` output and
/// its `[heads][rows]` log-sum-exps), merged by log-sum-exp, with the sinks
/// as one more part; rows with `+∞` scores in two or more parts are
/// computed again over all their keys (`KvSplit`'s docs).
fn merge_parts<'x, E: Element>(
    kernel: Kernel,
    p: &Problem<'_, E>,
    u: &Unit,
    parts: impl Iterator<Item = (&'x [f32], &'x [f32])>,
) -> (Vec<f32>, Vec<f32>) {
    let (n, d_v) = (u.heads.len() * u.rows.len(), p.v.cols());
    let (mut acc, mut acc_lse) = (vec![0.0f32; n * d_v], vec![f32::NEG_INFINITY; n]);
    let mut infinite = vec![0usize; n];
    for (o, l) in parts {
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
    (acc, acc_lse)
}

/// One problem of a batch on the pool: its tasks and, if its keys are
/// split, the key range of each part (else empty).
pub(super) struct Plan<'a, 'p, E: Element> {
    pub problem: &'a Problem<'p, E>,
    pub units: Vec<Unit>,
    pub parts: Vec<Range<usize>>,
}

/// A task's dense `[heads][rows][d_v]` output and `[heads][rows]` log-sum-exps.
type Scratch = (Vec<f32>, Vec<f32>);

/// One task of a batch: task `unit` of problem `plan`, over the keys of
/// one part or (`None`) all of them; its work (multiply-adds) orders it.
struct Job {
    plan: usize,
    unit: usize,
    keys: Option<Range<usize>>,
    work: usize,
}

/// The tasks of every problem in one parallel loop, largest first (a long
/// task started last would leave the other threads idle), each computed
/// into dense scratch; then, problem by problem and task by task, the
/// parts merged in key order ([`merge_parts`]) and `finish(plan, unit,
/// out, lse)` given the task's `[heads][rows][d_v]` output and
/// `[heads][rows]` log-sum-exps. An unsplit task is computed as inside its
/// whole problem, so its result is the single-thread kernel's bit for bit.
pub(super) fn run_batch<E: Element>(
    kernel: Kernel,
    plans: &[Plan<'_, '_, E>],
    mut finish: impl FnMut(usize, &Unit, &[f32], &[f32]),
) {
    let mut jobs = Vec::new();
    for (i, pl) in plans.iter().enumerate() {
        let p = pl.problem;
        let per_row = p.q.cols() + p.v.cols();
        for (unit, u) in pl.units.iter().enumerate() {
            let rows = u.heads.len() * u.rows.len();
            if pl.parts.is_empty() {
                let work = rows.saturating_mul(p.key_len).saturating_mul(per_row);
                jobs.push(Job { plan: i, unit, keys: None, work });
            }
            for keys in &pl.parts {
                let work = rows.saturating_mul(keys.len()).saturating_mul(per_row);
                jobs.push(Job { plan: i, unit, keys: Some(keys.clone()), work });
            }
        }
    }
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&j| core::cmp::Reverse(jobs[j].work));
    let mut done: Vec<(usize, Scratch)> = order
        .par_iter()
        .with_max_len(1)
        .map(|&j| {
            let Job { plan, unit, ref keys, .. } = jobs[j];
            let (p, u) = (plans[plan].problem, &plans[plan].units[unit]);
            let (nh, nr, d_v) = (u.heads.len(), u.rows.len(), p.v.cols());
            let (mut out, mut lse) = (vec![0.0; nh * nr * d_v], vec![f32::NEG_INFINITY; nh * nr]);
            if let Some(keys) = keys {
                compute_part(kernel, p, u, keys.clone(), &mut out, &mut lse);
            } else {
                let sub =
                    p.sub(u.heads.clone(), u.rows.clone(), 0..p.k.rows(), p.mask.rows_from(u.rows.start));
                kernel.compute(&sub, &mut out, &dense(nh, nr, d_v), Some(&mut lse));
            }
            (j, (out, lse))
        })
        .collect();
    // Back in job order: (plan, unit, part).
    done.sort_unstable_by_key(|&(j, _)| j);
    let results: Vec<Scratch> = done.into_iter().map(|(_, r)| r).collect();
    let mut j = 0;
    for (i, pl) in plans.iter().enumerate() {
        for u in &pl.units {
            let n = if pl.parts.is_empty() { 1 } else { pl.parts.len() };
            let mine = &results[j..j + n];
            j += n;
            if pl.parts.is_empty() {
                finish(i, u, &mine[0].0, &mine[0].1);
            } else {
                let each = mine.iter().map(|(o, l)| (&o[..], &l[..]));
                let (o, l) = merge_parts(kernel, pl.problem, u, each);
                finish(i, u, &o, &l);
            }
        }
    }
}
