//! The scalar path: the streaming algorithm in plain scalar arithmetic, one
//! query row at a time and one tile of keys at a time.
//!
//! It is the crate's meaning written as simply as the algorithm allows, and
//! every vectorised kernel is tested against it. Per row: compute the logits
//! of a tile of at most [`TILE`] keys into a stack array (the scorer's value,
//! softcapped, plus the bias and the ALiBi term), fold the tile into
//! the running maximum and sum ([`Running`]), accumulate `p_j v_j` straight
//! into the output row, fold in the sink if any, and divide by the sum at
//! the end. Columns whose
//! sum overflowed are computed again with scaled values
//! ([`rescue_overflow`], which the tiled kernel uses too).

use crate::problem::Problem;
use crate::softmax::{weight, Running};
use crate::view::Layout;
use crate::Element;

/// Keys per tile: the only scratch is `[f32; TILE]` on the stack.
pub(crate) const TILE: usize = 32;

/// Computes every head of `problem` into `out` (laid out by `out_layout`)
/// and, if given, the log-sum-exps `lse[h * lse_stride + i]`.
pub(crate) fn run<E: Element>(
    problem: &Problem<'_, E>,
    out: &mut [f32],
    out_layout: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let n_q = problem.q.rows();
    for h in 0..problem.q.heads() {
        let lse_h = lse.as_deref_mut().map(|l| &mut l[h * problem.lse_stride..][..n_q]);
        head(problem, h, out, out_layout, lse_h);
    }
}

/// Head `h` of [`run`], with its `n_q` log-sum-exps in `lse`.
fn head<E: Element>(
    problem: &Problem<'_, E>,
    h: usize,
    out: &mut [f32],
    out_layout: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let d_v = problem.v.cols();
    for i in 0..problem.q.rows() {
        let o_start = out_layout.offset(h, i);
        let o = &mut out[o_start..o_start + d_v];
        let row_lse = row(problem, h, i, o);
        if let Some(l) = lse.as_deref_mut() {
            l[i] = row_lse;
        }
    }
}

/// Row `i` of head `h` into `o` (its `d_v` outputs); returns its
/// log-sum-exp. The tiled kernel computes a row here when its own arithmetic
/// cannot (a `NegSqDist` distance from the centre that is not finite).
pub(crate) fn row<E: Element>(problem: &Problem<'_, E>, h: usize, i: usize, o: &mut [f32]) -> f32 {
    let row_lse = row_cols(problem, h, i, 0, o, None);
    rescue_overflow(problem, h, i, o);
    row_lse
}

/// Row `i` of head `h` into `o`: the row's output columns `c0..c0 +
/// o.len()`, with every value of column `c0 + t` multiplied by `scale[t]`
/// while it is accumulated and the result divided by it again (exact for
/// powers of two); returns the row's log-sum-exp. `c0 = 0`, `o` the whole
/// row and no `scale` is the plain algorithm.
fn row_cols<E: Element>(
    problem: &Problem<'_, E>,
    h: usize,
    i: usize,
    c0: usize,
    o: &mut [f32],
    scale: Option<&[f32]>,
) -> f32 {
    let kind = problem.kind;
    let qi = problem.q.head(h).row(i);
    let k = problem.k.head(h / problem.group);
    let v = problem.v.head(h / problem.group);
    let bias = problem.bias.map(|b| b.row(h, i));
    let alibi = problem.alibi.map(|a| a.row(h, i));
    let mut s = [0.0f32; TILE];
    o.fill(0.0);
    let mut run = Running::EMPTY;
    let keys = problem.mask.key_range(i, problem.key_len);
    for start in keys.clone().step_by(TILE) {
        let n = TILE.min(keys.end - start);
        let tile = &mut s[..n];
        for (t, st) in tile.iter_mut().enumerate() {
            let j = start + t;
            let mut x = kind.logit(qi, k.row(j));
            if let Some(c) = problem.softcap {
                x = c * libm::tanhf(x / c);
            }
            x += bias.map_or(0.0, |b| b[j]);
            if let Some((neg_slope, at)) = alibi {
                x += neg_slope * (j as f32 - at).abs();
            }
            *st = x;
        }
        let tile_max = tile.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let (alpha, shift) = run.advance(tile_max);
        if alpha != 1.0 {
            for x in o.iter_mut() {
                *x *= alpha;
            }
        }
        for (t, &st) in tile.iter().enumerate() {
            let p = weight(st, shift);
            run.l += p;
            let vj = &v.row(start + t)[c0..];
            match scale {
                None => o.iter_mut().zip(vj).for_each(|(x, &y)| *x += p * y.to_f32()),
                Some(sc) => o.iter_mut().zip(vj).zip(sc).for_each(|((x, &y), &s)| *x += p * (y.to_f32() * s)),
            }
        }
    }
    let alpha = problem.sinks.map_or(1.0, |s| run.sink(s[h]));
    let (inv, row_lse) = run.finish();
    let inv = inv * alpha;
    if inv == 0.0 {
        o.fill(0.0); // no key had weight: exactly 0, even if a weight-0 value was NaN
    } else {
        match scale {
            None => o.iter_mut().for_each(|x| *x *= inv),
            Some(sc) => o.iter_mut().zip(sc).for_each(|(x, &s)| *x = *x * inv / s),
        }
    }
    row_lse
}

/// Values are accumulated as `Σ_j p_j v_j` with weights `p_j ≤ 1` before
/// the division by `Σ_j p_j`; that sum can overflow although the output, a
/// convex combination of the values, cannot (four keys of equal weight with
/// values `1e38`). If a column of row `i`'s output `o` is not finite, it is
/// computed again with its values scaled by `2^-64` (exact, and then no sum
/// of up to `2^64` values overflows); columns whose values are infinite or
/// NaN come out as before. The finite columns are kept. Used by every
/// kernel on its finished rows.
pub(crate) fn rescue_overflow<E: Element>(problem: &Problem<'_, E>, h: usize, i: usize, o: &mut [f32]) {
    const CHUNK: usize = 32;
    const DOWN: f32 = 1.0 / 18_446_744_073_709_551_616.0; // 2^-64
    if o.iter().all(|x| x.is_finite()) {
        return;
    }
    // Column chunks on the stack: no allocation for any d_v. A column is
    // computed again where its scale is `DOWN`.
    for (chunk, o) in o.chunks_mut(CHUNK).enumerate() {
        if o.iter().all(|x| x.is_finite()) {
            continue;
        }
        let keep: [f32; CHUNK] = core::array::from_fn(|t| o.get(t).copied().unwrap_or(0.0));
        let scale: [f32; CHUNK] = core::array::from_fn(|t| if keep[t].is_finite() { 1.0 } else { DOWN });
        row_cols(problem, h, i, chunk * CHUNK, o, Some(&scale[..o.len()]));
        for (x, (&k, &s)) in o.iter_mut().zip(keep.iter().zip(&scale)) {
            if s == 1.0 {
                *x = k;
            }
        }
    }
}
