//! The vectorised hyperbolic tangent, for the Additive scorer's
//! `Σ_c w_c · tanh(a_ic + b_jc)` and the logit softcap `c·tanh(s/c)`.
//!
//! With `a = |x|` (the sign is put back at the end, so `tanh(−x) = −tanh(x)`
//! holds exactly, `−0` included), each lane takes one of three values, picked
//! by lane-wise selects; all three are computed, with one division in all:
//!
//! - `a ≤ T = 0.3125`: the odd polynomial `a + a³·S(a²)`, `S` of degree 2.
//! - `T < a < 8.664`: `u / (u + 2)` with `u = e^{2a} − 1`, formed without
//!   cancellation as `expm1` would be. `2a = n·ln 2 + 2r` with
//!   `n = round(a · 2log₂e)` and `|r| ≤ ln 2 / 4`, so
//!   `u = 2^{n+1} · expm1(2r)/2 + (2^n − 1)`, one FMA (`2^n − 1` is exact up
//!   to `n = 24`; `n ≤ 25` here, and that rounding is negligible). `ln 2 / 2`
//!   is split into a high part of 9 significant bits, so that
//!   `a − n · HALF_LN2_HI` is exact, and a low part; `expm1(2r)/2 = r + r²·E(r)`
//!   with `E` of degree 4; `2^{n+1}` is built in the exponent bits as in
//!   [`exp`](crate::exp).
//! - `a ≥ 8.664`: 1. From there on `u ≥ 2²⁵`, where `u + 2` is a tie that
//!   rounds to even, and the quotient would wobble between 1 and `1 − 2⁻²³`;
//!   the true value is within 1 ulp of 1, and rounds to 1 from
//!   `13 · ln 2 / 2 ≈ 9.011` on. (For larger `a` the quotient path overflows
//!   to infinities and NaN; the select drops them, so no clamp is needed.)
//!
//! `S` and `E` minimise the relative error; `tools/tanh_fit.py` fits them (a
//! Remez exchange in 60-digit arithmetic, mpmath only) and prints the
//! coefficients below. With the coefficients rounded to f32 the relative
//! error is `0.31·2⁻²⁴` for the polynomial and `0.30·2⁻²⁴` for `expm1`. The
//! rest is rounding. On the polynomial path it is the last FMA's half ulp and
//! little else (`a³·S` is under a thirtieth of `a`). On the quotient path a
//! relative error `δ` of `u` reaches the result as `2δ/(u + 2) < 0.7δ`; the
//! rounding of `u + 2` (up to `2⁻²⁴` relative, nearly an ulp of a result just
//! below 1) and of the quotient add to it. Below `T` the quotient path would
//! lose 2.4 ulp: there `u`'s own rounding can be worth a whole ulp of the
//! result.
//!
//! Cost: the division and about 25 other instructions per vector with AVX-512
//! (the selects become a masked division and the sign a `vpternlogd`); in a
//! tight loop about 1.5 times the time of [`exp`](crate::exp).
//!
//! Accuracy, over all 2³² inputs (the ignored `exhaustive` test, run at every
//! level: SSE2 without FMA, AVX2 and AVX-512 with FMA, `Generic`, which
//! never fuses; aarch64 NEON fuses as they do): at most 1.498 ulp in every case,
//! at `x = ±3.812386`; the tests assert 1.5 ulp. (The ulp is that of the exact
//! result's binade.) The polynomial path alone, `|x| ≤ T`, is within 0.786
//! ulp. `±0` returns `±0`; subnormal `x` returns `x` exactly (`a²`
//! underflows); `±∞` and `|x| ≥ 8.664` return `±1`; NaN returns NaN. The
//! result is monotone to within one ulp: as `|x|` rises it never falls by more
//! than 1 ulp. It is monotone on the polynomial path; on the quotient path it
//! falls by 1 ulp at about 0.015% of inputs (322 889 of the 2³¹ positive ones
//! with FMA, 318 540 without), where consecutive inputs are closer than the
//! error.

use crate::arch::{Simd, Vector};

/// `2 · log₂e`: `n = round(|x| · 2log₂e)`.
const TWO_LOG2_E: f32 = 2.885_39;
/// `ln 2 / 2` rounded to 9 significant bits (`355 / 1024`).
const HALF_LN2_HI: f32 = 0.346_679_7;
/// `ln 2 / 2 − HALF_LN2_HI`.
const HALF_LN2_LO: f32 = -1.060_972_2e-4;
/// `1.5 · 2²³`: adding it rounds to an integer held in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
/// Up to here, the polynomial.
const T: f32 = 0.3125;
/// From here on, 1: below, `e^{2|x|} − 1 < 2²⁵`.
const X_SAT: f32 = 8.664;
// tanh a ≈ a + a³·(S0 + S1 a² + S2 a⁴) on [0, T].
const S0: f32 = -3.333_299e-1;
const S1: f32 = 1.331_166_6e-1;
const S2: f32 = -5.007_558_3e-2;
// expm1(2r)/2 ≈ r + r²·(E0 + E1 r + E2 r² + E3 r³ + E4 r⁴) on |r| ≤ ln 2 / 4 + 2.5·10⁻⁴.
const E0: f32 = 9.999_999_4e-1;
const E1: f32 = 6.666_617_4e-1;
const E2: f32 = 3.333_376_3e-1;
const E3: f32 = 1.338_657_6e-1;
const E4: f32 = 4.442_401_2e-2;

/// `tanh x` per lane; see the module docs for the error bound.
#[inline(always)]
pub(crate) fn tanh<S: Simd>(simd: S, x: S::V) -> S::V {
    let a = x.abs();
    // The quotient: u = e^{2a} − 1 = 2^{n+1}·h + 2^n − 1, h = expm1(2r)/2.
    let t = a.mul_add(simd.splat(TWO_LOG2_E), simd.splat(ROUND));
    let n = t - simd.splat(ROUND);
    let r = n.mul_add(simd.splat(-HALF_LN2_HI), a);
    let r = n.mul_add(simd.splat(-HALF_LN2_LO), r);
    let mut p = simd.splat(E4);
    p = p.mul_add(r, simd.splat(E3));
    p = p.mul_add(r, simd.splat(E2));
    p = p.mul_add(r, simd.splat(E1));
    p = p.mul_add(r, simd.splat(E0));
    let h = (r * r).mul_add(p, r);
    // 2^{n+1}: exponent field n + 128, from the low bits of t + 128.
    let s = (t + simd.splat(128.0)).shl23();
    let u = s.mul_add(h, s.mul_add(simd.splat(0.5), simd.splat(-1.0)));
    let large = a.lt_select(simd.splat(X_SAT), u / (u + simd.splat(2.0)), simd.splat(1.0));
    // A NaN fails the comparison and goes through the polynomial, which keeps it.
    simd.splat(T).lt_select(a, large, polynomial(simd, a)).copysign(x)
}

/// [`tanh`], the same bits, for arguments that are mostly small (softcapped
/// logits `s/c`, where `|s|` is usually well below the cap `c`): when no
/// lane exceeds `T` (NaN lanes do not), only the polynomial runs, a third
/// of the instructions and no division.
#[inline(always)]
pub(crate) fn tanh_mostly_small<S: Simd>(simd: S, x: S::V) -> S::V {
    let a = x.abs();
    if simd.splat(T).any_lt(a) {
        tanh(simd, x)
    } else {
        polynomial(simd, a).copysign(x)
    }
}

/// The polynomial path of [`tanh`] for `a = |x| ≤ T`: `a + a³·S(a²)`.
#[inline(always)]
fn polynomial<S: Simd>(simd: S, a: S::V) -> S::V {
    let z = a * a;
    let mut q = simd.splat(S2);
    q = q.mul_add(z, simd.splat(S1));
    q = q.mul_add(z, simd.splat(S0));
    (a * z).mul_add(q, a)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{tanh, tanh_mostly_small, T, X_SAT};
    use crate::arch::{each_level, Job, Level, Simd, Vector};

    /// The error bound asserted at every level, with or without FMA.
    const BOUND: f64 = 1.5;

    /// `|got − want|` in ulp of `want`'s binade (`2^-149` below `2^-126`).
    fn ulps(got: f32, want: f64) -> f64 {
        let e = ((want.to_bits() >> 52) & 0x7ff) as i32 - 1023;
        (got as f64 - want).abs() / 2f64.powi(e.max(-126) - 23)
    }

    /// `tanh` of 16 inputs at level `S`.
    fn eval<S: Simd>(s: S, xs: &[f32; 16]) -> [f32; 16] {
        let mut out = [0.0f32; 16];
        for k in (0..16).step_by(S::LANES) {
            tanh(s, s.load(&xs[k..])).store(&mut out[k..]);
        }
        out
    }

    /// The worst error over a sweep and where it is reached; how many times
    /// the result fell while `|x|` rose, the largest fall (in ulp of the
    /// result) and where.
    #[derive(Clone, Copy, Default)]
    struct Worst {
        ulps: f64,
        at: f32,
        falls: u64,
        fall: f64,
        fall_at: f32,
    }

    /// Checks the bit patterns `lo, lo + step, …` below `hi`, and their
    /// negations: the error against `libm::tanh` in f64, NaN in NaN out,
    /// exact symmetry, and falls of the result as `|x|` rises along the
    /// sweep. [`report`] checks the bounds.
    fn sweep<S: Simd>(s: S, lo: u64, hi: u64, step: u64) -> Worst {
        let level = S::LEVEL;
        let mut worst = Worst::default();
        let mut xs = [0.0f32; 16];
        let mut want = [0.0f64; 16];
        let mut prev = (0.0f32, 0.0f32);
        let mut bits = lo;
        while bits < hi {
            for k in 0..16 {
                xs[k] = f32::from_bits((bits + k as u64 * step).min(hi - 1) as u32);
                want[k] = libm::tanh(xs[k] as f64);
            }
            let out = eval(s, &xs);
            let neg = eval(s, &xs.map(|x| -x));
            for k in 0..16 {
                let (x, y) = (xs[k], out[k]);
                if x.is_nan() {
                    assert!(y.is_nan() && neg[k].is_nan(), "{level}: tanh({x}) = {y}");
                    continue;
                }
                assert_eq!((-y).to_bits(), neg[k].to_bits(), "{level}: tanh(-{x:e})");
                let e = ulps(y, want[k]);
                if e > worst.ulps {
                    worst.ulps = e;
                    worst.at = x;
                }
                let (px, py) = prev;
                if x.abs() > px.abs() && y.abs() < py.abs() {
                    worst.falls += 1;
                    let fall = ulps(y.abs(), py.abs() as f64);
                    if fall > worst.fall {
                        worst.fall = fall;
                        worst.fall_at = x;
                    }
                }
                prev = (x, y);
            }
            bits += 16 * step;
        }
        worst
    }

    /// Prints a sweep's results and checks them: within [`BOUND`], and
    /// monotone to within one ulp.
    fn report(level: Level, what: &str, worst: Worst) {
        let Worst { ulps, at, falls, fall, fall_at } = worst;
        std::println!(
            "tanh, {level}, {what}: max {ulps:.3} ulp at {at:e}; {falls} falls, at most {fall} ulp (at {fall_at:e})"
        );
        assert!(ulps <= BOUND, "{level}, {what}: {ulps} ulp at {at:e}");
        assert!(fall <= 1.0, "{level}, {what}: falls by {fall} ulp at {fall_at:e}");
    }

    #[derive(Clone, Copy)]
    struct Sweeps;

    impl Job for Sweeps {
        type Output = ();
        fn run<S: Simd>(self, s: S) {
            let level = S::LEVEL;
            // Every 1021st bit pattern: 4.2 million points over the whole range.
            report(level, "every 1021st f32", sweep(s, 0, 1 << 32, 1021));
            // Denser where both paths meet and where the error is largest.
            let (lo, hi) = ((T / 2.0).to_bits() as u64, 9.1f32.to_bits() as u64);
            report(level, "every 97th f32 in [T/2, 9.1]", sweep(s, lo, hi, 97));
            // Consecutive inputs across the switch between the paths.
            let t = T.to_bits() as u64;
            report(level, "50000 f32 either side of T", sweep(s, t - 50_000, t + 50_000, 1));
        }
    }

    #[test]
    fn every_level_is_within_its_bound() {
        each_level(Sweeps);
    }

    #[derive(Clone, Copy)]
    struct Specials;

    impl Job for Specials {
        type Output = ();
        fn run<S: Simd>(self, s: S) {
            let level = S::LEVEL;
            let sub = f32::MIN_POSITIVE / 3.0;
            let cases: [(f32, f32); 16] = [
                (0.0, 0.0),
                (-0.0, -0.0),
                (f32::INFINITY, 1.0),
                (f32::NEG_INFINITY, -1.0),
                (9.02, 1.0),
                (-X_SAT, -1.0),
                (10.0, 1.0),
                (-1e30, -1.0),
                (f32::MAX, 1.0),
                (f32::MIN, -1.0),
                (sub, sub),
                (-sub, -sub),
                (f32::from_bits(1), f32::from_bits(1)),
                (f32::MIN_POSITIVE, f32::MIN_POSITIVE),
                (1e-20, 1e-20),
                (-3e-5, -3e-5),
            ];
            // All in one vector (at 16 lanes), so that lanes with different paths meet.
            let out = eval(s, &cases.map(|c| c.0));
            for (k, (x, want)) in cases.iter().enumerate() {
                assert_eq!(out[k].to_bits(), want.to_bits(), "{level}: tanh({x:e})");
            }
            // NaN of either sign, quiet or signalling, next to ordinary lanes.
            let mut xs = [0.5f32; 16];
            for (k, b) in [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xff80_0001].iter().enumerate() {
                xs[4 * k] = f32::from_bits(*b);
            }
            for (k, y) in eval(s, &xs).iter().enumerate() {
                assert_eq!(y.is_nan(), k % 4 == 0, "{level}: tanh({:e}) = {y}", xs[k]);
            }
            // Around the switch to 1 the result is right.
            for x in [8.0f32, 8.5, 8.66, 8.663_999, 9.0] {
                let y = eval(s, &[x; 16])[0];
                assert!(ulps(y, libm::tanh(x as f64)) <= BOUND, "{level}: tanh({x})");
            }
        }
    }

    #[test]
    fn special_values() {
        each_level(Specials);
    }

    #[derive(Clone, Copy)]
    struct Exhaustive;

    impl Job for Exhaustive {
        type Output = ();
        fn run<S: Simd>(self, s: S) {
            // The positive patterns (finite, infinite and NaN); `sweep`
            // checks the negative ones by symmetry.
            let t = T.to_bits() as u64 + 1;
            report(S::LEVEL, "polynomial, |x| <= T", sweep(s, 0, t, 1));
            report(S::LEVEL, "quotient and 1, |x| > T", sweep(s, t, 1 << 31, 1));
        }
    }

    #[test]
    #[ignore = "all 2^32 inputs at every level, minutes: run in release with --ignored --nocapture"]
    fn exhaustive() {
        each_level(Exhaustive);
    }

    /// `tanh_mostly_small` gives `tanh`'s bits for vectors of only small
    /// lanes (its fast path), of only large ones, and mixed, with ±0, NaN,
    /// ±∞ and the lanes around `T`, at every level.
    #[test]
    fn mostly_small_gives_the_same_bits() {
        #[derive(Clone, Copy)]
        struct Same;
        impl Job for Same {
            type Output = ();
            fn run<S: Simd>(self, s: S) {
                let below = f32::from_bits(T.to_bits() - 1);
                let above = f32::from_bits(T.to_bits() + 1);
                let (inf, nan) = (f32::INFINITY, f32::NAN);
                let pool = [
                    0.0, -0.0, 1e-30, -1e-3, 0.01, -0.2, below, T, -T, above, 0.5, -3.8, 9.5, inf, -inf, nan,
                ];
                let mut seed = 7u32;
                for round in 0..4000 {
                    let mut xs = [0.0f32; 16];
                    for x in xs.iter_mut() {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        // Rounds 0, 3, 6, ...: small lanes only (the fast path).
                        let n = if round % 3 == 0 { 9 } else { pool.len() };
                        *x = pool[(seed >> 8) as usize % n] * if seed & 1 == 0 { 1.0 } else { 0.9 };
                    }
                    for k in (0..16).step_by(S::LANES) {
                        let (mut a, mut b) = ([0.0f32; 16], [0.0f32; 16]);
                        tanh(s, s.load(&xs[k..])).store(&mut a);
                        tanh_mostly_small(s, s.load(&xs[k..])).store(&mut b);
                        for t in 0..S::LANES {
                            assert!(
                                a[t].to_bits() == b[t].to_bits() || a[t].is_nan() && b[t].is_nan(),
                                "{:?}: tanh({}) = {} and {}",
                                S::LEVEL,
                                xs[k + t],
                                a[t],
                                b[t]
                            );
                        }
                    }
                }
            }
        }
        each_level(Same);
    }
}
