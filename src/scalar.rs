//! The scalar path: the streaming algorithm in plain scalar arithmetic, one
//! query row at a time and one tile of keys at a time.
//!
//! It is the crate's meaning written as simply as the algorithm allows, and
//! every vectorised kernel is tested against it. Per row: compute the logits
//! of a tile of at most [`TILE`] keys into a stack array, fold the tile into
//! the running maximum and sum ([`Running`]), accumulate `p_j v_j` straight
//! into the output row, and divide by the sum at the end.

use crate::problem::Problem;
use crate::softmax::{weight, Running};
use crate::view::Layout;

/// Keys per tile: the only scratch is `[f32; TILE]` on the stack.
pub(crate) const TILE: usize = 32;

/// Computes every head of `problem` into `out` (laid out by `out_layout`)
/// and, if given, the log-sum-exps `lse[h * n_q + i]`.
pub(crate) fn run(problem: &Problem<'_>, out: &mut [f32], out_layout: &Layout, mut lse: Option<&mut [f32]>) {
    let n_q = problem.q.rows();
    for h in 0..problem.q.heads() {
        let lse_h = lse.as_deref_mut().map(|l| &mut l[h * n_q..(h + 1) * n_q]);
        head(problem, h, out, out_layout, lse_h);
    }
}

/// Head `h` of [`run`], with its `n_q` log-sum-exps in `lse`.
fn head(problem: &Problem<'_>, h: usize, out: &mut [f32], out_layout: &Layout, mut lse: Option<&mut [f32]>) {
    let kind = problem.kind;
    let q = problem.q.head(h);
    let k = problem.k.head(h / problem.group);
    let v = problem.v.head(h / problem.group);
    let d_v = v.cols();
    let mut s = [0.0f32; TILE];
    for i in 0..q.rows() {
        let qi = q.row(i);
        let bias = problem.bias.map(|b| b.row(h, i));
        let o_start = out_layout.offset(h, i);
        let o = &mut out[o_start..o_start + d_v];
        o.fill(0.0);
        let mut run = Running::EMPTY;
        let keys = problem.mask.key_range(i, problem.key_len);
        for start in keys.clone().step_by(TILE) {
            let n = TILE.min(keys.end - start);
            let tile = &mut s[..n];
            for (t, st) in tile.iter_mut().enumerate() {
                *st = kind.logit(qi, k.row(start + t)) + bias.map_or(0.0, |b| b[start + t]);
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
                for (x, &vj) in o.iter_mut().zip(v.row(start + t)) {
                    *x += p * vj;
                }
            }
        }
        let (inv, row_lse) = run.finish();
        if inv == 0.0 {
            o.fill(0.0); // no key had weight: exactly 0, even if a weight-0 value was NaN
        } else {
            for x in o.iter_mut() {
                *x *= inv;
            }
        }
        if let Some(l) = lse.as_deref_mut() {
            l[i] = row_lse + kind.lse_shift(qi);
        }
    }
}
