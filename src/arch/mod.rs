//! Instruction-set levels: which vector instructions the tiled kernel runs
//! on, chosen at run time.
//!
//! The kernel is written once, generic over [`Simd`]: a zero-sized token
//! whose existence proves that the CPU runs its level's instructions, and
//! which makes that level's vectors ([`Vector`]). A value of a vector type
//! can only come from its token, so kernel code that holds one is code that
//! detection let through. The levels:
//!
//! | level | vector | where |
//! |---|---|---|
//! | [`Level::Avx512`] | 16 lanes, `__m512` | x86-64 with AVX-512 F/CD/BW/DQ/VL and the AVX2 level's features, detected at run time |
//! | [`Level::Avx2`] | 8 lanes, `__m256` | x86-64 with AVX, AVX2, FMA and F16C, detected at run time |
//! | [`Level::Sse2`] | 4 lanes, `wide::f32x4` | every x86-64 CPU |
//! | [`Level::Neon`] | 4 lanes, `wide::f32x4` | every aarch64 CPU |
//! | [`Level::Simd128`] | 4 lanes, `wide::f32x4` | wasm32 built with `simd128` |
//! | [`Level::Generic`] | 1 lane, `f32` | every target |
//!
//! Detection (CPUID, and XGETBV for the operating system's saving of the
//! wide registers) runs once and is cached; where the build's own target
//! features already include a level's (`-C target-cpu=native`), that level
//! needs no detection. The `#[target_feature]` functions and every
//! `unsafe` block of the crate live in the `x86_64` submodule.

mod portable;
mod tuning;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use crate::element::sealed::Slice;
use crate::Element;
use core::fmt;
use core::ops::{Add, Div, Mul, Sub};
use core::str::FromStr;
use half::slice::HalfFloatSliceExt;

pub(crate) use tuning::{
    Prefetch, Tuning, BLOCK_ROWS, DECODE_COLS, DECODE_ROWS, KEYS_AHEAD, PACKED_MAX, SIMD_TARGET, TILE_KEYS,
};

/// An instruction-set level the tiled kernel can run on.
///
/// A call runs at the best level the CPU supports within the cap set by
/// [`Attention::max_level`](crate::Attention::max_level) (no cap by
/// default); [`Attention::level`](crate::Attention::level) says which. Levels
/// are ordered by vector width (`lanes`), and a cap admits every level of
/// its width or narrower, on any architecture: `Level::Avx2` as a cap on
/// aarch64 admits `Neon`.
///
/// Results are deterministic within a level. Between levels they differ in
/// the last bits (the lane count changes the order of sums, and the AVX
/// levels and NEON fuse multiply-adds), always within the documented error
/// bound. `Generic` uses no fused operations and no target-specific
/// instructions: capped at `Generic`, every CPU computes the same bits.
///
/// ```
/// use streamattn::{Attention, Level, Scorer};
/// let attn = Attention::new(Scorer::dot());
/// assert_eq!(attn.level(), Level::detected()); // the best this CPU has
/// let same_bits_everywhere = attn.max_level(Level::Generic);
/// assert_eq!(same_bits_everywhere.level(), Level::Generic);
/// assert_eq!("avx2".parse::<Level>(), Ok(Level::Avx2));
/// println!("attention kernels: {}", attn.level()); // for a runtime's log
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// No SIMD: the tiled kernel on single `f32` lanes, without fused
    /// multiply-adds. Every target.
    Generic,
    /// x86-64 SSE2: 4 lanes. Every x86-64 CPU.
    Sse2,
    /// aarch64 NEON: 4 lanes, fused multiply-adds. Every aarch64 CPU.
    Neon,
    /// wasm32 `simd128`: 4 lanes, when the build enables it.
    Simd128,
    /// x86-64 AVX2 with FMA and F16C (the `x86-64-v3` level): 8 lanes.
    Avx2,
    /// x86-64 AVX-512 F, CD, BW, DQ and VL with the AVX2 level's features
    /// (the `x86-64-v4` level): 16 lanes.
    Avx512,
}

impl Level {
    /// Every level, widest first.
    pub const ALL: [Level; 6] =
        [Level::Avx512, Level::Avx2, Level::Sse2, Level::Neon, Level::Simd128, Level::Generic];

    /// `f32` lanes per vector: 16, 8, 4 or 1.
    #[must_use]
    pub const fn lanes(self) -> usize {
        match self {
            Level::Avx512 => 16,
            Level::Avx2 => 8,
            Level::Sse2 | Level::Neon | Level::Simd128 => 4,
            Level::Generic => 1,
        }
    }

    /// The lower-case name (`"avx512"`, `"avx2"`, `"sse2"`, `"neon"`,
    /// `"simd128"`, `"generic"`), which [`FromStr`] reads back.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2",
            Level::Sse2 => "sse2",
            Level::Neon => "neon",
            Level::Simd128 => "simd128",
            Level::Generic => "generic",
        }
    }

    /// Whether this CPU, with this build, runs the level. Detection runs at
    /// the first call and is cached.
    #[must_use]
    pub fn supported(self) -> bool {
        match self {
            Level::Generic => true,
            Level::Sse2 => cfg!(all(target_arch = "x86_64", target_feature = "sse2")),
            Level::Neon => cfg!(all(target_arch = "aarch64", target_feature = "neon")),
            Level::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => x86_64::Avx2::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => x86_64::Avx512::new().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            Level::Avx2 | Level::Avx512 => false,
        }
    }

    /// The best level this CPU supports: what a call runs at without a cap.
    #[must_use]
    pub fn detected() -> Level {
        Level::capped(Level::Avx512)
    }

    /// The best supported level of at most `cap.lanes()` lanes.
    pub(crate) fn capped(cap: Level) -> Level {
        Level::ALL.into_iter().find(|l| l.lanes() <= cap.lanes() && l.supported()).unwrap_or(Level::Generic)
    }
}

impl fmt::Display for Level {
    /// The name and the lane count, for logs: `avx512 (16 lanes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lanes = self.lanes();
        write!(f, "{} ({lanes} lane{})", self.name(), if lanes == 1 { "" } else { "s" })
    }
}

/// The error of [`Level`]'s [`FromStr`]: the string names no level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownLevel;

impl fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a level: expected avx512, avx2, sse2, neon, simd128 or generic")
    }
}

impl core::error::Error for UnknownLevel {}

impl FromStr for Level {
    type Err = UnknownLevel;

    /// A level from its [`name`](Level::name), ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(s)).ok_or(UnknownLevel)
    }
}

/// A vector of `f32` lanes. Values come only from a [`Simd`] token.
pub(crate) trait Vector:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    /// Writes the lanes to the start of `s` (panics if `s` is shorter).
    fn store(self, s: &mut [f32]);
    /// Writes the first `min(lanes, s.len())` lanes to `s`.
    fn store_partial(self, s: &mut [f32]);
    /// `self * a + b`, fused at the levels that fuse (module docs).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Lane-wise maximum; which operand a NaN yields is unspecified.
    fn max(self, other: Self) -> Self;
    /// Lane-wise minimum; which operand a NaN yields is unspecified.
    fn min(self, other: Self) -> Self;
    /// The largest lane; whether a NaN lane wins is unspecified.
    fn reduce_max(self) -> f32;
    /// The sum of the lanes, in an order fixed per level.
    fn reduce_add(self) -> f32;
    /// `if self < other { t } else { f }` per lane (false for NaN).
    fn lt_select(self, other: Self, t: Self, f: Self) -> Self;
    /// Whether `self < other` in any lane.
    fn any_lt(self, other: Self) -> bool;
    /// Whether any lane is infinite or NaN.
    fn any_nonfinite(self) -> bool;
    /// `if self is NaN { self } else { f }` per lane.
    fn nan_or(self, f: Self) -> Self;
    /// `if self == other { t } else { f }` per lane.
    fn eq_select(self, other: Self, t: Self, f: Self) -> Self;
    /// Reinterprets the bits shifted left by 23 (builds `2^n` in [`exp`](crate::exp)).
    fn shl23(self) -> Self;
    fn sqrt(self) -> Self;
    /// Lane-wise absolute value (clears the sign bit, NaN included).
    fn abs(self) -> Self;
    /// The magnitude of `self` with the sign bit of `sign`, as [`f32::copysign`].
    fn copysign(self, sign: Self) -> Self;
    /// For positive normal lanes `x = m · 2^e`: `(m, e)` with `1 ≤ m < 2`
    /// and `e` an integer (as `f32`); other lanes give unspecified values.
    fn frexp(self) -> (Self, Self);
}

/// A token proving that the CPU runs a level's instructions (module docs):
/// it makes the level's vectors and runs code compiled for the level.
pub(crate) trait Simd: Copy {
    /// The vector of this level.
    type V: Vector;
    /// The level.
    const LEVEL: Level;
    /// Lanes of [`Self::V`].
    const LANES: usize;
    /// The tiled kernel's blocking at this level.
    const TUNING: Tuning;
    /// `x` in every lane.
    fn splat(self, x: f32) -> Self::V;
    /// The first `LANES` elements of `s` (panics if `s` is shorter).
    fn load(self, s: &[f32]) -> Self::V;
    /// The first `min(LANES, s.len())` elements of `s`, zeros after.
    fn load_partial(self, s: &[f32]) -> Self::V;
    /// The first `LANES` IEEE binary16 values (their bits) of `s`, widened
    /// to `f32` (panics if `s` is shorter).
    fn load_f16(self, s: &[u16]) -> Self::V;
    /// The first `LANES` bfloat16 values (their bits) of `s`, widened to
    /// `f32` (panics if `s` is shorter).
    fn load_bf16(self, s: &[u16]) -> Self::V;
    /// Whether [`load_bf16_pair`](Simd::load_bf16_pair) is cheaper than two
    /// [`load_bf16`](Simd::load_bf16) (one load and two integer operations
    /// for `2 · LANES` values instead of two widening loads and two shifts):
    /// the decode pass then reads `bf16` caches in pairs of vectors.
    const PAIRED_BF16: bool = false;
    /// The first `2 · LANES` bfloat16 values (their bits) of `s`, widened to
    /// `f32` and split by parity: `(s[0], s[2], …)` and `(s[1], s[3], …)`
    /// (panics if `s` is shorter). A bfloat16 is the high half of the `f32`
    /// of the same value, so one 32-bit lane holding `s[2i]` (low half) and
    /// `s[2i + 1]` (high half) gives `s[2i + 1]` by masking the low half
    /// and `s[2i]` by shifting it up. [`paired_order`] is the matching order
    /// of `f32` columns.
    #[inline(always)]
    fn load_bf16_pair(self, s: &[u16]) -> (Self::V, Self::V) {
        let l = Self::LANES;
        let (mut even, mut odd) = ([0u16; 16], [0u16; 16]);
        for i in 0..l {
            (even[i], odd[i]) = (s[2 * i], s[2 * i + 1]);
        }
        (self.load_bf16(&even), self.load_bf16(&odd))
    }
    /// Runs `f` in a function compiled with the level's target features, so
    /// that the `#[inline(always)]` kernel code it calls is compiled for them.
    /// The function is never inlined into the caller, at any level: one
    /// kernel body per call site keeps the functions LLVM optimises small
    /// enough to compile quickly.
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R;

    /// The first `LANES` elements of `s` as `f32` (widened if 16-bit; panics
    /// if `s` is shorter).
    #[inline(always)]
    fn load_e<E: Element>(self, s: &[E]) -> Self::V {
        match E::slice(s) {
            Slice::F32(x) => self.load(x),
            Slice::F16(x) => self.load_f16(x.reinterpret_cast()),
            Slice::Bf16(x) => self.load_bf16(x.reinterpret_cast()),
        }
    }

    /// The first `2 · LANES` elements of `bf16` slice `s` as by
    /// [`load_bf16_pair`](Simd::load_bf16_pair) (panics if `s` is shorter;
    /// other types load as two vectors in order).
    #[inline(always)]
    fn load_pair_e<E: Element>(self, s: &[E]) -> (Self::V, Self::V) {
        match E::slice(s) {
            Slice::Bf16(x) => self.load_bf16_pair(x.reinterpret_cast()),
            _ => (self.load_e(s), self.load_e(&s[Self::LANES..])),
        }
    }

    /// The first `min(LANES, s.len())` elements of `s` as `f32`, zeros after.
    #[inline(always)]
    fn load_partial_e<E: Element>(self, s: &[E]) -> Self::V {
        let mut buf = [0u16; 16];
        match E::slice(s) {
            Slice::F32(x) => self.load_partial(x),
            Slice::F16(x) => {
                let n = x.len().min(Self::LANES);
                buf[..n].copy_from_slice(&x.reinterpret_cast()[..n]);
                self.load_f16(&buf)
            }
            Slice::Bf16(x) => {
                let n = x.len().min(Self::LANES);
                buf[..n].copy_from_slice(&x.reinterpret_cast()[..n]);
                self.load_bf16(&buf)
            }
        }
    }
}

/// Puts each full chunk of `2 · lanes` columns of `x` in the order
/// [`Simd::load_bf16_pair`] gives them: the even columns of the chunk, then
/// the odd ones. Columns after the last full chunk keep their places.
/// [`natural_order`] undoes it.
#[inline(always)]
pub(crate) fn paired_order(x: &mut [f32], lanes: usize) {
    let n = x.len() / (2 * lanes) * (2 * lanes);
    reorder(x, n, lanes, true);
}

/// Puts the first `n` columns of `x` (a multiple of `2 · lanes`), in the
/// order of [`paired_order`], back in their natural order.
#[inline(always)]
pub(crate) fn natural_order(x: &mut [f32], n: usize, lanes: usize) {
    reorder(x, n, lanes, false);
}

/// Column `2i` of each chunk of `2 · lanes` in `x[..n]` is at position `i`
/// in paired order, column `2i + 1` at `lanes + i`: moves each chunk into
/// paired order (`to_paired`) or back.
#[inline(always)]
fn reorder(x: &mut [f32], n: usize, lanes: usize, to_paired: bool) {
    let mut buf = [0.0f32; 32];
    for c in x[..n].chunks_exact_mut(2 * lanes) {
        buf[..2 * lanes].copy_from_slice(c);
        for i in 0..lanes {
            let (natural, paired) = ([2 * i, 2 * i + 1], [i, lanes + i]);
            let (to, from) = if to_paired { (paired, natural) } else { (natural, paired) };
            (c[to[0]], c[to[1]]) = (buf[from[0]], buf[from[1]]);
        }
    }
}

/// Work generic over the level: [`dispatch`] runs it with the token of the
/// level chosen.
pub(crate) trait Job {
    type Output;
    fn run<S: Simd>(self, s: S) -> Self::Output;
}

/// Runs `job` at the best supported level within `cap`.
pub(crate) fn dispatch<J: Job>(cap: Level, job: J) -> J::Output {
    let _ = cap; // targets with no vector level run `Generic` whatever the cap
    #[cfg(target_arch = "x86_64")]
    {
        if cap.lanes() >= 16 {
            if let Some(s) = x86_64::Avx512::new() {
                return job.run(s);
            }
        }
        if cap.lanes() >= 8 {
            if let Some(s) = x86_64::Avx2::new() {
                return job.run(s);
            }
        }
    }
    // Only where the target has a 4-lane level: elsewhere `wide`'s 4-lane
    // type is emulated, and its kernels would only take up space.
    #[cfg(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        all(target_arch = "aarch64", target_feature = "neon"),
        all(target_arch = "wasm32", target_feature = "simd128"),
    ))]
    if cap.lanes() >= 4 {
        if let Some(s) = portable::Wide4::new() {
            return job.run(s);
        }
    }
    job.run(portable::Generic)
}

/// Asks for the cache lines of `x` in the second-level cache: a hint, which
/// reads nothing the program sees and cannot fault. `prefetcht1` on x86-64;
/// nothing elsewhere.
#[inline(always)]
pub(crate) fn prefetch_l2<T>(x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    x86_64::prefetch_l2(x);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Runs `job` at every level this CPU supports, each in code compiled for
/// the level.
#[cfg(test)]
pub(crate) fn each_level<J: Job<Output = ()> + Copy>(job: J) {
    struct Vectorized<J>(J);
    impl<J: Job> Job for Vectorized<J> {
        type Output = J::Output;
        fn run<S: Simd>(self, s: S) -> J::Output {
            s.vectorize(
                #[inline(always)]
                || self.0.run(s),
            )
        }
    }
    for l in Level::ALL.into_iter().filter(|l| l.supported()) {
        dispatch(l, Vectorized(job));
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn names_round_trip_and_caps_order_by_width() {
        for l in Level::ALL {
            assert_eq!(l.name().parse::<Level>(), Ok(l));
            assert_eq!(l.name().to_uppercase().parse::<Level>(), Ok(l));
            assert!(l.to_string().starts_with(l.name()));
            let c = Level::capped(l);
            assert!(c.supported() && c.lanes() <= l.lanes(), "{l:?} caps to {c:?}");
        }
        assert_eq!("avx-512".parse::<Level>(), Err(UnknownLevel));
        assert_eq!(Level::capped(Level::Generic), Level::Generic);
        assert!(Level::detected().supported());
        assert_eq!(Level::Avx512.to_string(), "avx512 (16 lanes)");
        assert_eq!(Level::Generic.to_string(), "generic (1 lane)");
    }

    /// Each supported level's token runs a job and reports its level.
    /// `x` as widened to f32: the same value (exactly); a NaN a NaN of the
    /// same sign and payload (the quiet bit may be set).
    fn same(got: f32, want: f32) -> bool {
        if want.is_nan() {
            got.is_nan() && (got.to_bits() ^ want.to_bits()) & !0x0040_0000 == 0
        } else {
            got.to_bits() == want.to_bits()
        }
    }

    /// IEEE binary16 decoded from its fields, in f64 (independent of `half`).
    fn f16_value(b: u16) -> f64 {
        let (sign, e, m) =
            (if b >> 15 == 1 { -1.0 } else { 1.0 }, i32::from(b >> 10 & 0x1f), f64::from(b & 0x3ff));
        match e {
            0 => sign * m * 2f64.powi(-24),
            31 if m == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            _ => sign * (1024.0 + m) * 2f64.powi(e - 25),
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn every_16_bit_pattern_widens_exactly_at_every_level() {
        use half::{bf16, f16};
        for b in 0..=u16::MAX {
            let (x, want) = (f16::from_bits(b).to_f32(), f16_value(b));
            assert!(x.is_nan() && want.is_nan() || f64::from(x) == want, "f16 {b:#06x}: {x} vs {want}");
            assert!(same(Element::to_f32(f16::from_bits(b)), x), "f16 {b:#06x}");
        }
        #[derive(Clone, Copy)]
        struct Widen;
        impl Job for Widen {
            type Output = ();
            fn run<S: Simd>(self, s: S) {
                let l = S::LANES;
                let mut out = [0.0f32; 16];
                for base in (0..=u16::MAX as usize).step_by(l) {
                    let h: [f16; 16] = core::array::from_fn(|t| f16::from_bits((base + t) as u16));
                    let b: [bf16; 16] = core::array::from_fn(|t| bf16::from_bits((base + t) as u16));
                    let n = base / l % (l + 1); // 0..=l lanes for the partial loads
                    s.load_e(&h[..]).store(&mut out);
                    for t in 0..l {
                        assert!(
                            same(out[t], Element::to_f32(h[t])),
                            "{:?} f16 {:#06x}: {}",
                            S::LEVEL,
                            base + t,
                            out[t]
                        );
                    }
                    s.load_e(&b[..]).store(&mut out);
                    for t in 0..l {
                        let want = f32::from_bits(((base + t) as u32) << 16);
                        assert!(same(out[t], want), "{:?} bf16 {:#06x}: {}", S::LEVEL, base + t, out[t]);
                    }
                    s.load_partial_e(&h[..n]).store(&mut out);
                    assert!(out[..l].iter().enumerate().all(|(t, &x)| if t < n {
                        same(x, h[t].to_f32())
                    } else {
                        x == 0.0
                    }));
                    s.load_partial_e(&b[..n]).store(&mut out);
                    assert!(out[..l].iter().enumerate().all(|(t, &x)| if t < n {
                        same(x, Element::to_f32(b[t]))
                    } else {
                        x == 0.0
                    }));
                }
                // Pairs: 2 · LANES patterns per load, split by parity.
                let mut odd = [0.0f32; 16];
                for base in (0..=u16::MAX as usize).step_by(2 * l) {
                    let b: [bf16; 32] = core::array::from_fn(|t| bf16::from_bits((base + t) as u16));
                    let (e, o) = s.load_pair_e(&b[..]);
                    e.store(&mut out);
                    o.store(&mut odd);
                    for t in 0..l {
                        let want = |u: usize| f32::from_bits(((base + u) as u32) << 16);
                        assert!(same(out[t], want(2 * t)), "{:?} bf16 pair {:#06x}", S::LEVEL, base + 2 * t);
                        assert!(
                            same(odd[t], want(2 * t + 1)),
                            "{:?} bf16 pair {:#06x}",
                            S::LEVEL,
                            base + 2 * t + 1
                        );
                    }
                }
            }
        }
        each_level(Widen);
    }

    #[test]
    fn paired_order_is_the_order_of_paired_loads_and_natural_order_undoes_it() {
        for lanes in [1, 4, 8, 16] {
            for len in [0, 1, 2 * lanes - 1, 2 * lanes, 2 * lanes + 3, 6 * lanes + 1] {
                let x: Vec<f32> = (0..len).map(|c| c as f32).collect();
                let mut y = x.clone();
                paired_order(&mut y, lanes);
                let full = len / (2 * lanes) * (2 * lanes);
                for (p, &v) in y.iter().enumerate() {
                    // Position `p` of a chunk holds column `2p` (first half)
                    // or `2(p − lanes) + 1` (second half).
                    let (chunk, p_in) = (p / (2 * lanes) * (2 * lanes), p % (2 * lanes));
                    let want = if p >= full {
                        p
                    } else if p_in < lanes {
                        chunk + 2 * p_in
                    } else {
                        chunk + 2 * (p_in - lanes) + 1
                    };
                    assert_eq!(v, want as f32, "lanes {lanes}, len {len}, position {p}");
                }
                natural_order(&mut y, full, lanes);
                assert_eq!(y, x);
            }
        }
    }

    #[test]
    fn dispatch_runs_the_level_capped_to() {
        struct Which;
        impl Job for Which {
            type Output = (Level, usize);
            fn run<S: Simd>(self, s: S) -> (Level, usize) {
                let mut out = [0.0f32; 16];
                s.vectorize(
                    #[inline(always)]
                    || s.splat(2.0).mul_add(s.splat(3.0), s.splat(1.0)).store(&mut out),
                );
                assert!(out[..S::LANES].iter().all(|&x| x == 7.0));
                (S::LEVEL, S::LANES)
            }
        }
        for l in Level::ALL.into_iter().filter(|l| l.supported()) {
            assert_eq!(dispatch(l, Which), (l, l.lanes()));
        }
    }
}
