//! TEMPORARY placeholder (to be replaced by the vectorised tanh).
#![allow(dead_code)]
use crate::exp::exp;
use crate::simd::Vector;

#[inline(always)]
pub(crate) fn tanh<V: Vector>(x: V) -> V {
    let zero = V::splat(0.0);
    let ax = x.max(zero - x);
    let y = exp(V::splat(-2.0) * ax);
    let t = (V::splat(1.0) - y) / (V::splat(1.0) + y);
    let t = ax.lt_select(V::splat(1e-4), ax, t);
    x.nan_or(x.lt_select(zero, zero - t, t))
}
