//! The vectorised exponential used by the softmax.
//!
//! `e^x = 2^n · e^r` with `n = round(x · log₂e)` and `r = x − n·ln 2`, so
//! `|r| ≤ ln2 / 2 ≈ 0.347`. `ln 2` is split into a high part with 9
//! significant bits (so `n · LN2_HI` is exact for `|n| ≤ 2^15`) and a low part,
//! which keeps `r` accurate to a few ulp. `e^r` is its Taylor series to degree
//! 7, evaluated by Horner's rule; the truncation error is below
//! `r⁸/8! · e^{0.35} < 8·10⁻⁹`, under a tenth of an ulp. `2^n` is built
//! directly in the exponent bits: `n` is rounded by adding `1.5 · 2²³` (the
//! integer then sits in the low mantissa bits) and the bits are shifted into
//! the exponent field; `2^{n−1} · 2` keeps `n = 128` representable.
//!
//! Accuracy, checked by this module's tests against f64 on dense sweeps: at
//! most 2 ulp for `−86.9 ≤ x ≤ 88.7` at every level, with or without FMA (the
//! worst seen is 1.6 ulp, on `[−86.9, 0]` with FMA; 1.5 without). Outside that range:
//! `x ≤ −87` returns 0 (the true value is below `1.9·10⁻³⁸`, so the absolute
//! error is under `2⁻¹²⁵`; subnormal results are flushed), `x > 88.73` and
//! `+∞` return `+∞`, `−∞` returns 0, NaN returns NaN.

use crate::arch::{Simd, Vector};

const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// `ln 2` rounded to 9 significant bits: 355 / 512.
const LN2_HI: f32 = 0.693_359_4;
/// `ln 2 − LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 · 2²³`: adding it rounds to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// Below this `n = −126` and the result flushes to 0.
const X_MIN: f32 = -87.33;
/// Slightly above `ln(f32::MAX)`, so that larger inputs overflow to `+∞`.
const X_MAX: f32 = 88.73;

/// `e^x` per lane; see the module docs for the error bound.
#[inline(always)]
pub(crate) fn exp<S: Simd>(s: S, x: S::V) -> S::V {
    let c = s.splat(X_MIN).max(x);
    let c = s.splat(X_MAX).min(c);
    let t = c.mul_add(s.splat(LOG2_E), s.splat(ROUND));
    let n = t - s.splat(ROUND);
    let r = n.mul_add(s.splat(-LN2_HI), c);
    let r = n.mul_add(s.splat(-LN2_LO), r);
    // Taylor series of e^r to degree 7, Horner's rule.
    let mut p = s.splat(1.0 / 5040.0);
    p = p.mul_add(r, s.splat(1.0 / 720.0));
    p = p.mul_add(r, s.splat(1.0 / 120.0));
    p = p.mul_add(r, s.splat(1.0 / 24.0));
    p = p.mul_add(r, s.splat(1.0 / 6.0));
    p = p.mul_add(r, s.splat(0.5));
    p = p.mul_add(r, s.splat(1.0));
    p = p.mul_add(r, s.splat(1.0));
    // 2^(n-1): exponent field n - 1 + 127, from the low bits of t + 126.
    let scale = (t + s.splat(126.0)).shl23();
    x.nan_or(p * scale * s.splat(2.0))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::exp;
    use crate::arch::{each_level, Job, Simd, Vector};

    #[test]
    fn ln2_splits_into_an_exact_high_part_and_a_close_low_part() {
        use super::{LN2_HI, LN2_LO, X_MAX, X_MIN};
        assert_eq!(LN2_HI as f64, 355.0 / 512.0);
        // n · LN2_HI is exact for every n the clamped input gives.
        let n_max = (X_MAX.abs().max(X_MIN.abs()) as f64 * core::f64::consts::LOG2_E).ceil() as i32;
        for n in -n_max..=n_max {
            assert_eq!((n as f32 * LN2_HI) as f64, n as f64 * 355.0 / 512.0, "n = {n}");
        }
        // The pair carries ln 2 to about 2·10⁻¹² (f32 alone: 3·10⁻⁸).
        assert!((LN2_HI as f64 + LN2_LO as f64 - core::f64::consts::LN_2).abs() < 4e-12);
    }

    /// Distance in ulp between `got` and the correctly rounded `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        let w = want as f32;
        let ulp = (f32::from_bits(w.to_bits() + 1) - w) as f64;
        (got as f64 - want).abs() / ulp
    }

    fn max_ulps<S: Simd>(s: S, lo: f32, hi: f32, steps: usize) -> f64 {
        let mut worst = 0.0f64;
        let mut xs = [0.0f32; 16];
        let mut out = [0.0f32; 16];
        let mut i = 0;
        while i < steps {
            for (k, x) in xs.iter_mut().take(S::LANES).enumerate() {
                *x = lo + (hi - lo) * ((i + k) as f32 / steps as f32);
            }
            exp(s, s.load(&xs)).store(&mut out);
            for k in 0..S::LANES {
                worst = worst.max(ulps(out[k], (xs[k] as f64).exp()));
            }
            i += S::LANES;
        }
        worst
    }

    fn bound() -> f64 {
        2.0
    }

    #[derive(Clone, Copy)]
    struct Check;

    impl Job for Check {
        type Output = ();
        fn run<S: Simd>(self, s: S) {
            let level = S::LEVEL;
            // Dense sweeps: softmax feeds [-87, 0]; the rest is for powers.
            for (lo, hi) in [(-86.9f32, 0.0f32), (-1.0, 1.0), (0.0, 88.7), (-1e-3, 1e-3)] {
                let worst = max_ulps(s, lo, hi, 1 << 18);
                std::println!("exp, {level}, [{lo}, {hi}]: max {worst:.2} ulp");
                assert!(worst <= bound(), "{level}: {worst} ulp on [{lo}, {hi}]");
            }
            // Flush, overflow and the special values.
            let mut out = [0.0f32; 16];
            let specials = [f32::NEG_INFINITY, -1e30, -200.0, -87.5, 0.0, -0.0, 88.8, 1e30];
            let want = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, f32::INFINITY, f32::INFINITY];
            for (x, w) in specials.iter().zip(want) {
                exp(s, s.splat(*x)).store(&mut out);
                assert_eq!(out[0], w, "{level}: exp({x})");
            }
            exp(s, s.splat(f32::INFINITY)).store(&mut out);
            assert_eq!(out[0], f32::INFINITY);
            exp(s, s.splat(f32::NAN)).store(&mut out);
            assert!(out[0].is_nan());
            // Near the flush threshold the error is absolute and tiny.
            for x in [-87.0f32, -86.99, -86.95] {
                exp(s, s.splat(x)).store(&mut out);
                assert!((out[0] as f64 - (x as f64).exp()).abs() < 2f64.powi(-125), "{level}: exp({x})");
            }
            // e^88.72 is finite and right.
            exp(s, s.splat(88.72)).store(&mut out);
            assert!(ulps(out[0], (88.72f32 as f64).exp()) <= bound());
        }
    }

    #[test]
    fn every_level_is_within_its_bound() {
        each_level(Check);
    }
}
