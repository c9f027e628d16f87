//! The vectorised natural logarithm, for `NegLogDist`'s `ln d²` and
//! `ln(eps + d^p)` in the log domain.
//!
//! `x = 2^e · m` with `√2/2 ≤ m < √2` (subnormal `x` are scaled by `2⁶⁴`
//! first, and `e` lowered by 64). With `f = m − 1` (exact) and
//! `s = f / (2 + f)`, `ln m = 2 atanh s`, and since `2s = f − s·f`,
//!
//! ```text
//! ln m = f − f²/2 + s·(f²/2 + R(s²)),   R(z) = 2z/3 + 2z²/5 + 2z³/7 + 2z⁴/9
//! ```
//!
//! (the series of `2 atanh s − 2s`, truncated; `|s| ≤ 0.1716`, so the first
//! term left out, `2s¹¹/11`, is below `10⁻⁹ · |ln m|`). The leading `f` is
//! exact and every correction is at most a third of it, so the rounding of
//! `s` and of the corrections reaches the result damped. Then
//! `ln x = e·ln2_hi + (ln m + e·ln2_lo)`, with `ln 2` split as in
//! [`exp`](crate::exp) so that `e·ln2_hi` is exact.
//!
//! Accuracy, checked by this module's tests against f64 at every level: at
//! most 1.5 ulp of the result over positive normal and subnormal `x` (the
//! tests assert 2, the bound the tolerance derivation uses). `ln 0 = −∞`
//! (either sign of zero), `ln x = NaN` for `x < 0`, `ln +∞ = +∞`, NaN gives
//! NaN.

use crate::arch::{Simd, Vector};

/// `ln 2` rounded to 9 significant bits (355 / 512): `e · LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 − LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// `2⁶⁴`: scales a subnormal to a normal number.
const SCALE: f32 = 18_446_744_073_709_551_616.0;

/// `ln x` per lane; see the module docs for the error bound.
#[inline(always)]
pub(crate) fn ln<S: Simd>(s: S, x: S::V) -> S::V {
    let tiny = s.splat(f32::MIN_POSITIVE);
    let xs = x.lt_select(tiny, x * s.splat(SCALE), x);
    let (m, e) = xs.frexp();
    let e = x.lt_select(tiny, e - s.splat(64.0), e);
    // m in [1, 2): above √2 halve it (exactly), so that |f| ≤ √2 − 1.
    let sqrt2 = s.splat(core::f32::consts::SQRT_2);
    let (m, e) = (sqrt2.lt_select(m, m * s.splat(0.5), m), sqrt2.lt_select(m, e + s.splat(1.0), e));
    let f = m - s.splat(1.0);
    let sf = f / (s.splat(2.0) + f);
    let z = sf * sf;
    let mut r = s.splat(2.0 / 9.0);
    r = r.mul_add(z, s.splat(2.0 / 7.0));
    r = r.mul_add(z, s.splat(2.0 / 5.0));
    r = r.mul_add(z, s.splat(2.0 / 3.0));
    r = r * z;
    let half_f2 = s.splat(0.5) * f * f;
    let y = sf.mul_add(half_f2 + r, e * s.splat(LN2_LO)) - half_f2 + f;
    let y = e.mul_add(s.splat(LN2_HI), y);
    // The edges: 0 (either sign), negative numbers, +∞, NaN.
    let zero = s.splat(0.0);
    let inf = s.splat(f32::INFINITY);
    let y = x.eq_select(inf, inf, y);
    let y = x.lt_select(zero, s.splat(f32::NAN), y);
    let y = x.eq_select(zero, s.splat(f32::NEG_INFINITY), y);
    x.nan_or(y)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::ln;
    use crate::arch::{each_level, Job, Simd, Vector};

    /// The error bound asserted, in ulp of the exact result.
    const BOUND: f64 = 2.0;

    /// `|got − want|` in ulp of `want`'s binade.
    fn ulps(got: f32, want: f64) -> f64 {
        let e = ((want.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        (got as f64 - want).abs() / 2f64.powi(e.max(-126) - 23)
    }

    /// `ln` of 16 inputs at level `S`.
    fn eval<S: Simd>(s: S, xs: &[f32; 16]) -> [f32; 16] {
        let mut out = [0.0f32; 16];
        for k in (0..16).step_by(S::LANES) {
            ln(s, s.load(&xs[k..])).store(&mut out[k..]);
        }
        out
    }

    #[derive(Clone, Copy)]
    struct Check;

    impl Job for Check {
        type Output = ();
        fn run<S: Simd>(self, s: S) {
            let level = S::LEVEL;
            // Every 61st positive bit pattern from the smallest subnormal to
            // the largest finite number, and every one near 1 (where ln is
            // smallest and the relative error largest).
            let one = 1.0f32.to_bits();
            let sweeps = [(1, 0x7f80_0000, 61), (one - 200_000, one + 200_000, 1)];
            for (lo, hi, step) in sweeps {
                let (mut worst, mut at) = (0.0f64, 0.0f32);
                let mut bits: u32 = lo;
                while bits < hi {
                    let xs: [f32; 16] =
                        core::array::from_fn(|k| f32::from_bits((bits + k as u32 * step).min(hi - 1)));
                    for (x, y) in xs.iter().zip(eval(s, &xs)) {
                        let e = ulps(y, (*x as f64).ln());
                        if e > worst {
                            (worst, at) = (e, *x);
                        }
                    }
                    bits = bits.saturating_add(16 * step);
                }
                std::println!(
                    "ln, {level}, [{:e}, {:e}): max {worst:.3} ulp at {at:e}",
                    f32::from_bits(lo),
                    f32::from_bits(hi)
                );
                assert!(worst <= BOUND, "{level}: {worst} ulp at {at:e}");
            }
            // The edges, all in one vector (at 16 lanes).
            let cases: [(f32, f32); 16] = [
                (0.0, f32::NEG_INFINITY),
                (-0.0, f32::NEG_INFINITY),
                (f32::INFINITY, f32::INFINITY),
                (1.0, 0.0),
                (-1.0, f32::NAN),
                (f32::NEG_INFINITY, f32::NAN),
                (-1e-40, f32::NAN),
                (f32::NAN, f32::NAN),
                (f32::from_bits(1), -103.278_93),
                (f32::MIN_POSITIVE, -87.336_55),
                (f32::MAX, 88.722_84),
                (2.0, core::f32::consts::LN_2),
                (core::f32::consts::E, 1.0),
                (0.5, -core::f32::consts::LN_2),
                (1e-30, -69.077_55),
                (1e30, 69.077_55),
            ];
            let out = eval(s, &cases.map(|c| c.0));
            for (k, (x, want)) in cases.iter().enumerate() {
                let y = out[k];
                let ok = if want.is_nan() {
                    y.is_nan()
                } else if want.is_infinite() {
                    y == *want
                } else {
                    ulps(y, (*x as f64).ln()) <= BOUND
                };
                assert!(ok, "{level}: ln({x:e}) = {y:e}, want {want:e}");
            }
        }
    }

    #[test]
    fn every_level_is_within_its_bound() {
        each_level(Check);
    }
}
