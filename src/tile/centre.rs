//! The centre `NegSqDist` measures distances from.
//!
//! The tiled kernel scores `NegSqDist` as a matrix product, by the expansion
//! `‖q − k‖² = ‖a‖² + ‖b‖² − 2 a·b` with `a = q − c`, `b = k − c`. Each of the
//! three terms is rounded relative to its own size, so the error of the
//! distance is at most about `γ_{d+5}·(‖a‖ + ‖b‖)²`: with `c = 0` that is
//! `(‖q‖ + ‖k‖)²`, which swamps the distances of data far from the origin;
//! with `c` among the data it is of the size of the data's spread.
//!
//! `c` is, per coordinate, the median of three of the query rows computed
//! together (a block of the prefill loop, the rows of a decode pass): the
//! first, the middle and the last row (with two rows the second, with one
//! the row itself), or 0 where those three entries do not all have the same
//! sign, so that data around the origin is computed as without a centre.
//! It costs a few operations per column, lies inside the bounding box of
//! the block's rows, is not moved by one outlying row among the three, and
//! does not depend on the keys (so a key range split into parts is centred
//! alike). A coordinate that is not finite is taken as 0. A decode pass of
//! one row measures from the row itself (the same centre, but also where
//! the row is not finite; a distance that is not finite sends the row to
//! the scalar path in any case). Keys are packed as `k − c` with
//! `‖k − c‖²`, query rows offset by `c` as a micro-block is scored.

pub(crate) use crate::arch::DECODE_COLS;
use crate::scorer::Kind;

/// Whether `kind` scores from a centre (`NegSqDist`).
#[inline]
pub(crate) fn centred(kind: Kind<'_>) -> bool {
    matches!(kind, Kind::SqDist { .. })
}

/// `c[t]` = the median of column `c0 + t` over the rows `row(0)`,
/// `row(n / 2)` and `row(n − 1)` (`n ≥ 1`), or 0 where those entries
/// straddle 0 or the median is not finite (module docs).
#[inline(always)]
pub(crate) fn centre<'q>(row: impl Fn(usize) -> &'q [f32], n: usize, c0: usize, c: &mut [f32]) {
    let dc = c.len();
    let (a, b, e) = (&row(0)[c0..c0 + dc], &row(n / 2)[c0..c0 + dc], &row(n - 1)[c0..c0 + dc]);
    for (t, x) in c.iter_mut().enumerate() {
        // med(a, b, e); with n ≤ 2, `e` repeats `b`, which is then the result.
        let (lo, hi) = (a[t].min(b[t]), a[t].max(b[t]));
        let m = lo.max(hi.min(e[t]));
        let straddles = lo.min(e[t]) <= 0.0 && hi.max(e[t]) >= 0.0;
        *x = if m.is_finite() && !straddles { m } else { 0.0 };
    }
}

/// `out[t] = q[t] − c[t]` for `t < c.len()`.
#[inline(always)]
pub(crate) fn offset(q: &[f32], c: &[f32], out: &mut [f32]) {
    for ((o, &x), &m) in out.iter_mut().zip(q).zip(c) {
        *o = x - m;
    }
}
