//! From raw dot products to softmax weights, for one query row and one tile.
//!
//! The score microkernel leaves `x_j = q·k_j` in a row of the tile scratch.
//! [`weights`] turns it, in place, into the weights `p_j` that multiply
//! `v_j`, and folds the tile into the row's [`Running`] state:
//!
//! - `Dot`: logit `scale · x_j`; `NegSqDist`: `2·scale · x_j − scale·‖k_j‖²`
//!   (the norm trick; `−scale ‖q‖²` is left out, it cancels). Both add the bias
//!   and go through the exponential: `p_j = e^{s_j − m'}`.
//! - `NegLogDist`: the squared distance `‖q‖² + ‖k_j‖² − 2 x_j`, clamped at 0,
//!   is recomputed exactly as `Σ (q_c − k_c)²` wherever
//!   `eps + d² < (‖q‖² + ‖k_j‖²) / 4` (there the cancellation error, at most
//!   `2γ_{d+2}(‖q‖² + ‖k‖²)`, could exceed `8γ_{d+2}` of `eps + d²`). The
//!   weight `w_j = e^{b_j} / (eps + d^p)` is formed directly (a reciprocal
//!   for `p = 2`, no exponential without a bias) and the running state is kept
//!   in the linear domain ([`Running::advance_linear`]).
//!
//! Keys outside `[lo, hi)` get weight exactly 0.

use super::TK;
use crate::exp::exp;
use crate::scorer::Kind;
use crate::simd::Vector;
use crate::softmax::Running;

/// What [`weights`] needs to know about the row.
pub(crate) struct Row<'a> {
    /// Visible keys of the tile, in tile coordinates.
    pub lo: usize,
    pub hi: usize,
    /// `‖q‖²` (used by `NegLogDist`).
    pub q_norm: f32,
    /// Bias entries of the tile's keys (at least `hi` of them).
    pub bias: Option<&'a [f32]>,
}

/// Rewrites `s[lo..hi]` from dot products to weights, folds the tile into
/// `run` and returns the factor `α` by which the row's accumulator must be
/// rescaled. `kn` holds the tile's key terms: `−scale·‖k_j‖²` for `NegSqDist`,
/// `‖k_j‖²` for `NegLogDist`. `exact_sq_dist(j)` computes `‖q − k_j‖²` directly.
#[inline(always)]
pub(crate) fn weights<V: Vector>(
    kind: Kind,
    s: &mut [f32; TK],
    kn: &[f32; TK],
    row: &Row<'_>,
    run: &mut Running,
    exact_sq_dist: impl Fn(usize) -> f32,
) -> f32 {
    let l = V::LANES;
    let (v0, v1) = (row.lo / l * l, row.hi.div_ceil(l) * l);
    let bias = |j: usize| row.bias.map(|b| V::load_partial(&b[j..row.hi]));
    match kind {
        Kind::Dot { .. } | Kind::SqDist { .. } => {
            let mut max = V::splat(f32::NEG_INFINITY);
            for j in (v0..v1).step_by(l) {
                let x = V::load(&s[j..]);
                let mut logit = match kind {
                    Kind::Dot { scale } => x * V::splat(scale),
                    _ => x.mul_add(V::splat(2.0 * scale_of(kind)), V::load(&kn[j..])),
                };
                if let Some(b) = bias(j) {
                    logit = logit + b;
                }
                logit.store(&mut s[j..]);
            }
            s[v0..row.lo].fill(f32::NEG_INFINITY);
            s[row.hi..v1].fill(f32::NEG_INFINITY);
            for j in (v0..v1).step_by(l) {
                max = max.max(V::load(&s[j..]));
            }
            let (alpha, shift) = run.advance(max.reduce_max());
            let sh = V::splat(shift);
            let mut sum = V::splat(0.0);
            for j in (v0..v1).step_by(l) {
                let x = V::load(&s[j..]);
                let mut p = exp(x - sh);
                if shift == f32::INFINITY {
                    p = x.nan_or(x.eq_select(sh, V::splat(1.0), p));
                }
                sum = sum + p;
                p.store(&mut s[j..]);
            }
            run.l += sum.reduce_add();
            alpha
        }
        Kind::LogDist { eps, p } => {
            let qn = V::splat(row.q_norm);
            let zero = V::splat(0.0);
            let mut max = zero;
            for j in (v0..v1).step_by(l) {
                let norms = qn + V::load(&kn[j..]);
                let mut d2 = V::load(&s[j..]).mul_add(V::splat(-2.0), norms);
                d2 = d2.lt_select(zero, zero, d2);
                if (d2 + V::splat(eps)).any_lt(norms * V::splat(0.25)) {
                    let mut exact = [0.0f32; 16];
                    for (t, e) in exact.iter_mut().enumerate().take(l) {
                        let jj = j + t;
                        *e = if (row.lo..row.hi).contains(&jj) { exact_sq_dist(jj) } else { 0.0 };
                    }
                    d2 = V::load(&exact);
                }
                let pw = if p == 2.0 {
                    d2
                } else if p == 1.0 {
                    d2.sqrt()
                } else {
                    exp(d2.ln() * V::splat(0.5 * p))
                };
                let mut w = V::splat(1.0) / (V::splat(eps) + pw);
                if let Some(b) = bias(j) {
                    w = w * exp(b);
                }
                w.store(&mut s[j..]);
            }
            s[v0..row.lo].fill(0.0);
            s[row.hi..v1].fill(0.0);
            for j in (v0..v1).step_by(l) {
                max = max.max(V::load(&s[j..]));
            }
            let (alpha, inv) = run.advance_linear(max.reduce_max());
            let inv = V::splat(inv);
            let inf = V::splat(f32::INFINITY);
            let mut sum = zero;
            for j in (v0..v1).step_by(l) {
                let w = V::load(&s[j..]);
                let mut p = w * inv;
                if run.m == f32::INFINITY {
                    p = w.nan_or(w.eq_select(inf, V::splat(1.0), zero));
                }
                sum = sum + p;
                p.store(&mut s[j..]);
            }
            run.l += sum.reduce_add();
            alpha
        }
    }
}

fn scale_of(kind: Kind) -> f32 {
    match kind {
        Kind::Dot { scale } | Kind::SqDist { scale } => scale,
        Kind::LogDist { .. } => 1.0,
    }
}
