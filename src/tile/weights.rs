//! From raw dot products to softmax weights, for one query row and one tile.
//!
//! The score microkernel leaves `x_j = q·k_j` in a row of the tile scratch.
//! [`weights`] turns it, in place, into the weights `p_j` that multiply
//! `v_j`, and folds the tile into the row's [`Running`] state. First the
//! scorer's value of each key:
//!
//! - `Dot`: the logit `scale · x_j`; `Additive`: `x_j` is the logit;
//! - `NegSqDist`: `x_j = a·b_j` with `a = q − c`, `b_j = k_j − c` for the
//!   block's centre `c` (centre.rs), and the logit is `−scale · d²` with
//!   `d² = ‖a‖² + ‖b_j‖² − 2 x_j`, clamped at 0. When `‖a‖² + ‖b_j‖² <
//!   f32::MAX / 2` for every key of the tile (checked once per row and
//!   tile), every `d²` is finite (`|2 x_j| ≤ ‖a‖² + ‖b_j‖²`). Otherwise a
//!   `d²` that is not finite (a row or key whose distance from the centre
//!   overflows, NaN input) becomes NaN, so that the row is computed again
//!   on the scalar path, which measures `‖q − k_j‖²` directly;
//! - `NegLogDist`: the squared distance `‖q‖² + ‖k_j‖² − 2 x_j`, clamped at 0,
//!   recomputed exactly as `Σ (q_c − k_c)²` wherever the norms are not finite
//!   or the cancellation error (at most `2γ_{d+2}(‖q‖² + ‖k_j‖²)`) could exceed
//!   `8γ_{d+2}` of what is used next: `eps + d²` for `p = 2`, `d²` for other
//!   powers. Then, with `1e-30 ≤ eps ≤ 1e30`, `p ≤ 2` and plain logits, the weight `1/(eps + d^p)`
//!   (`d^p` is `d²`, `√d²`, or `e^{(p/2) ln d²}`, which flushes below about
//!   `1e-38`, negligible next to `eps`): a reciprocal, no exponential. Otherwise
//!   the logit `−ln(eps + d^p) + b_j`, computed as
//!   `−logaddexp(ln eps, (p/2)·ln d²)` so that neither a tiny `eps` nor a
//!   tiny distance overflows or underflows;
//!
//! then for logits the softcap `c·tanh(s/c)` (computed as `c·tanh(s·(1/c))`),
//! the bias and the ALiBi term `−slope·|j − position|` (one fused
//! multiply-add). Then one of two normalisations:
//!
//! - log domain: `p_j = e^{s_j − m'}` ([`Running::advance`]);
//! - linear domain (`NegLogDist`, `1e-30 ≤ eps ≤ 1e30`, `p ≤ 2`, plain logits): `p_j = w_j / m'`
//!   where `m'` is the largest weight ([`Running::advance_linear`]). The
//!   weights are bounded by `1/eps ≤ 1e30`; with a bias or an `eps` outside
//!   that range they or their reciprocals may leave the f32 range, hence the
//!   log domain there.
//!
//! Keys outside `[lo, hi)` get weight exactly 0.

use super::TK;
use crate::arch::{Simd, Vector};
use crate::exp::exp;
use crate::ln::ln;
use crate::scorer::Kind;
use crate::softmax::Running;
use crate::tanh::tanh_mostly_small;

/// What [`weights`] needs to know about the row.
pub(crate) struct Row<'a> {
    /// Visible keys of the tile, in tile coordinates.
    pub lo: usize,
    pub hi: usize,
    /// `‖q‖²` (`NegLogDist`) or `‖q − c‖²` (`NegSqDist`).
    pub q_norm: f32,
    /// `NegSqDist`: `q_norm + ‖k_j − c‖² < f32::MAX / 2` for every key of
    /// the tile (false if any is NaN), so that every `d²` is finite.
    pub finite: bool,
    /// Bias entries of the tile's keys (at least `hi` of them).
    pub bias: Option<&'a [f32]>,
    /// Softcap `c` and `1/c`.
    pub softcap: Option<(f32, f32)>,
    /// ALiBi: `(−slope, position − t0)`: key `j` of the tile adds
    /// `−slope · |j − (position − t0)|`.
    pub alibi: Option<(f32, f32)>,
    /// Whether the row is normalised in the linear domain ([`linear`]).
    pub linear: bool,
}

/// Whether rows are normalised in the linear domain: `NegLogDist` with
/// `1e-30 ≤ eps ≤ 1e30`, `p ≤ 2` and `plain` logits (no bias, softcap, ALiBi
/// or sinks: [`Problem::plain`](crate::problem::Problem::plain); weights between `1e-30` and
/// `1e30` when they matter, and their reciprocals too: far from overflow).
/// With `p > 2`, `d^p` overflows f32 for moderate distances (`d > 4` at
/// `p = 64`) although the weights relative to each other are fine: the log
/// domain computes `(p/2)·ln d²` instead and never forms `d^p`.
pub(crate) fn linear(kind: Kind<'_>, plain: bool) -> bool {
    matches!(kind, Kind::LogDist { eps, p, .. } if (1e-30..=1e30).contains(&eps) && p <= 2.0) && plain
}

/// Rewrites `s[lo..hi]` from dot products to weights, folds the tile into
/// `run` and returns the factor `α` by which the row's accumulator must be
/// rescaled. `kn` holds the tile's squared key norms: `‖k_j − c‖²` for
/// `NegSqDist`, `‖k_j‖²` for `NegLogDist`. `exact_sq_dist(j)` computes `‖q − k_j‖²` directly.
#[inline(always)]
pub(crate) fn weights<S: Simd>(
    simd: S,
    kind: Kind<'_>,
    s: &mut [f32; TK],
    kn: &[f32; TK],
    row: &Row<'_>,
    run: &mut Running,
    exact_sq_dist: impl Fn(usize) -> f32,
) -> f32 {
    let l = S::LANES;
    let (v0, v1) = (row.lo / l * l, row.hi.div_ceil(l) * l);
    let linear = row.linear;
    let masked = if linear { 0.0 } else { f32::NEG_INFINITY };

    let mut max = simd.splat(masked);
    // ALiBi's `j − (position − t0)` for the lanes of the current vector:
    // integers, exact in f32, stepped by `LANES` a vector.
    let mut alibi = row
        .alibi
        .map(|(neg_slope, at)| (simd.splat(neg_slope), simd.load(&IOTA[..]) + simd.splat(v0 as f32 - at)));
    for j in (v0..v1).step_by(l) {
        let x = simd.load(&s[j..]);
        let mut value = match kind {
            Kind::Dot { scale, .. } => x * simd.splat(scale),
            Kind::Additive { .. } => x,
            Kind::SqDist { scale, .. } => {
                let d2 = x.mul_add(simd.splat(-2.0), simd.splat(row.q_norm) + simd.load(&kn[j..]));
                let zero = simd.splat(0.0);
                let d2 = if row.finite {
                    d2.max(zero)
                } else {
                    // `d2 · 0 + d2` is d2 where d2 is finite, NaN where it is ±∞ or NaN.
                    let d2 = d2.mul_add(zero, d2);
                    d2.lt_select(zero, zero, d2)
                };
                d2 * simd.splat(-scale)
            }
            Kind::LogDist { eps, p, .. } => {
                let d2 = sq_dist(simd, x, simd.load(&kn[j..]), row, j, eps, p, &exact_sq_dist);
                if linear {
                    simd.splat(1.0) / (simd.splat(eps) + pow_dist(simd, d2, p))
                } else {
                    simd.splat(0.0) - log_add_exp(simd, simd.splat(libm::logf(eps)), half_p_ln(simd, d2, p))
                }
            }
        };
        if let Some((c, inv_c)) = row.softcap {
            value = tanh_mostly_small(simd, value * simd.splat(inv_c)) * simd.splat(c);
        }
        if let Some(b) = bias(simd, row, j) {
            value = value + b;
        }
        if let Some((neg_slope, offset)) = &mut alibi {
            value = offset.abs().mul_add(*neg_slope, value);
            *offset = *offset + simd.splat(l as f32);
        }
        max = max.max(value);
        value.store(&mut s[j..]);
    }
    // Lanes outside [lo, hi) exist only in the first and last vector of
    // edge tiles; elsewhere the maximum above is already right.
    if v0 != row.lo || v1 != row.hi {
        s[v0..row.lo].fill(masked);
        s[row.hi..v1].fill(masked);
        max = simd.splat(masked);
        for j in (v0..v1).step_by(l) {
            max = max.max(simd.load(&s[j..]));
        }
    }

    let mut sum = simd.splat(0.0);
    let alpha;
    if linear {
        let (a, inv) = run.advance_linear(max.reduce_max());
        alpha = a;
        let (inv, inf) = (simd.splat(inv), simd.splat(f32::INFINITY));
        for j in (v0..v1).step_by(l) {
            let w = simd.load(&s[j..]);
            let mut p = w * inv;
            if run.m == f32::INFINITY {
                p = w.nan_or(w.eq_select(inf, simd.splat(1.0), simd.splat(0.0)));
            }
            sum = sum + p;
            p.store(&mut s[j..]);
        }
    } else {
        let (a, shift) = run.advance(max.reduce_max());
        alpha = a;
        let sh = simd.splat(shift);
        for j in (v0..v1).step_by(l) {
            let x = simd.load(&s[j..]);
            let mut p = exp(simd, x - sh);
            if shift == f32::INFINITY {
                p = x.nan_or(x.eq_select(sh, simd.splat(1.0), p));
            }
            sum = sum + p;
            p.store(&mut s[j..]);
        }
    }
    run.l += sum.reduce_add();
    alpha
}

/// `0, 1, 2, …`: lane indices.
const IOTA: [f32; 16] =
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0];

/// The bias entries of keys `j..j + LANES` (those before `row.hi`), if the
/// row has a bias. A function, not a closure: a closure may be compiled out
/// of line, without the level's target features.
#[inline(always)]
fn bias<S: Simd>(simd: S, row: &Row<'_>, j: usize) -> Option<S::V> {
    let l = S::LANES;
    let b = row.bias?;
    Some(if j + l <= row.hi { simd.load(&b[j..]) } else { simd.load_partial(&b[j..row.hi]) })
}

/// `‖q − k_j‖²` for the lanes of keys `j..j + LANES` from `x = q·k` and
/// `kn = ‖k‖²` by the norm trick, clamped at 0, recomputed exactly where it
/// has cancelled (see the module docs).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sq_dist<S: Simd>(
    simd: S,
    x: S::V,
    kn: S::V,
    row: &Row<'_>,
    j: usize,
    eps: f32,
    p: f32,
    exact_sq_dist: &impl Fn(usize) -> f32,
) -> S::V {
    let zero = simd.splat(0.0);
    let norms = simd.splat(row.q_norm) + kn;
    let d2 = x.mul_add(simd.splat(-2.0), norms);
    let d2 = d2.lt_select(zero, zero, d2);
    let used = if p == 2.0 { d2 + simd.splat(eps) } else { d2 };
    if !used.any_lt(norms * simd.splat(0.25)) && !norms.any_nonfinite() {
        return d2;
    }
    let mut exact = [0.0f32; 16];
    for (t, e) in exact.iter_mut().enumerate().take(S::LANES) {
        if (row.lo..row.hi).contains(&(j + t)) {
            *e = exact_sq_dist(j + t);
        }
    }
    simd.load(&exact)
}

/// `d^p` from `d2 = d²`.
#[inline(always)]
fn pow_dist<S: Simd>(simd: S, d2: S::V, p: f32) -> S::V {
    if p == 2.0 {
        d2
    } else if p == 1.0 {
        d2.sqrt()
    } else {
        exp(simd, half_p_ln(simd, d2, p))
    }
}

/// `ln d^p = (p/2)·ln d²`, with `ln 0^p = −∞` and `ln ∞^p = +∞` also when
/// `p/2` underflows to 0 (where the product would be `±∞ · 0 = NaN`).
#[inline(always)]
fn half_p_ln<S: Simd>(simd: S, d2: S::V, p: f32) -> S::V {
    let (zero, inf) = (simd.splat(0.0), simd.splat(f32::INFINITY));
    let y = ln(simd, d2) * simd.splat(0.5 * p);
    let y = d2.eq_select(zero, simd.splat(f32::NEG_INFINITY), y);
    d2.eq_select(inf, inf, y)
}

/// `ln(e^a + e^b)` for `a` not NaN, without overflow: `hi + ln(1 + e^{lo − hi})`.
/// Equal arguments (both `−∞` included) give `a + ln 2`; a NaN `b` gives NaN.
#[inline(always)]
fn log_add_exp<S: Simd>(simd: S, a: S::V, b: S::V) -> S::V {
    let (hi, lo) = (a.max(b), a.min(b));
    let gap = exp(simd, hi.eq_select(lo, simd.splat(0.0), lo - hi));
    b.nan_or(hi + ln(simd, simd.splat(1.0) + gap))
}
