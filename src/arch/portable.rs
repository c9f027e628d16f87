//! The portable levels: `Generic` (one `f32` lane) on every target, and the
//! 4-lane baseline of x86-64 (SSE2), aarch64 (NEON) and wasm32 (`simd128`)
//! on `wide::f32x4`, whose layout the build's target features pick.

use super::{tuning, Level, Simd, Tuning, Vector};
use crate::Element;
use half::{bf16, f16};
use wide::f32x4;

/// The `Generic` level: needs nothing, so anyone may make it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Generic;

impl Simd for Generic {
    type V = f32;
    const LEVEL: Level = Level::Generic;
    const LANES: usize = 1;
    const TUNING: Tuning = tuning::GENERIC;
    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> f32 {
        s[0]
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> f32 {
        s.first().copied().unwrap_or(0.0)
    }
    #[inline(always)]
    fn load_f16(self, s: &[u16]) -> f32 {
        Element::to_f32(f16::from_bits(s[0]))
    }
    #[inline(always)]
    fn load_bf16(self, s: &[u16]) -> f32 {
        Element::to_f32(bf16::from_bits(s[0]))
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        outlined(f)
    }
}

/// Calls `f` in a function of its own, as the levels with target features
/// do (`Simd::vectorize`): the kernel code of each call site is compiled
/// once, as one function, and not inlined into its caller. Inlined, the
/// eight decode passes of `decode::rows` made one function of 380 KB per
/// element type, which took LLVM 2.4 times as long to compile as the eight
/// apart (the per-function passes grow faster than the function).
#[inline(never)]
fn outlined<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// One lane: the "vector" of the `Generic` level.
impl Vector for f32 {
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        s[0] = self;
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        if let Some(x) = s.first_mut() {
            *x = self;
        }
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        // Unfused: the same bits on every target (libm's fmaf would be exact but slow).
        self * a + b
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        if self > other {
            self
        } else {
            other
        }
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        if self < other {
            self
        } else {
            other
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        self
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        self
    }
    #[inline(always)]
    fn lt_select(self, other: Self, t: Self, f: Self) -> Self {
        if self < other {
            t
        } else {
            f
        }
    }
    #[inline(always)]
    fn any_lt(self, other: Self) -> bool {
        self < other
    }
    #[inline(always)]
    fn any_nonfinite(self) -> bool {
        !self.is_finite()
    }
    #[inline(always)]
    fn nan_or(self, f: Self) -> Self {
        if self.is_nan() {
            self
        } else {
            f
        }
    }
    #[inline(always)]
    fn eq_select(self, other: Self, t: Self, f: Self) -> Self {
        if self == other {
            t
        } else {
            f
        }
    }
    #[inline(always)]
    fn shl23(self) -> Self {
        f32::from_bits(self.to_bits() << 23)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        f32::copysign(self, sign)
    }
    #[inline(always)]
    fn frexp(self) -> (Self, Self) {
        let b = self.to_bits();
        (f32::from_bits((b & 0x007f_ffff) | 0x3f80_0000), ((b >> 23) & 0xff) as f32 - 127.0)
    }
}

/// The 4-lane baseline level of the target, if it has one (SSE2, NEON,
/// `simd128`: part of the target, so no detection is needed).
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    not(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        all(target_arch = "aarch64", target_feature = "neon"),
        all(target_arch = "wasm32", target_feature = "simd128"),
    )),
    allow(dead_code)
)]
pub(crate) struct Wide4(());

#[cfg_attr(
    not(any(
        all(target_arch = "x86_64", target_feature = "sse2"),
        all(target_arch = "aarch64", target_feature = "neon"),
        all(target_arch = "wasm32", target_feature = "simd128"),
    )),
    allow(dead_code)
)]
impl Wide4 {
    /// `Some` where `wide::f32x4` is a real vector of the target.
    #[inline]
    pub(crate) fn new() -> Option<Self> {
        BASELINE.map(|_| Wide4(()))
    }
}

/// The target's 4-lane level.
const BASELINE: Option<Level> = if cfg!(all(target_arch = "x86_64", target_feature = "sse2")) {
    Some(Level::Sse2)
} else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
    Some(Level::Neon)
} else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
    Some(Level::Simd128)
} else {
    None
};

impl Simd for Wide4 {
    type V = f32x4;
    const LEVEL: Level = match BASELINE {
        Some(l) => l,
        None => Level::Generic, // never made (`new`)
    };
    const LANES: usize = 4;
    const TUNING: Tuning = tuning::WIDE4;
    #[inline(always)]
    fn splat(self, x: f32) -> f32x4 {
        f32x4::splat(x)
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> f32x4 {
        let a: [f32; 4] = s[..4].try_into().unwrap();
        f32x4::new(a)
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> f32x4 {
        let mut a = [0.0f32; 4];
        let n = s.len().min(4);
        a[..n].copy_from_slice(&s[..n]);
        f32x4::new(a)
    }
    #[inline(always)]
    fn load_f16(self, s: &[u16]) -> f32x4 {
        f32x4::new(core::array::from_fn(|t| Element::to_f32(f16::from_bits(s[t]))))
    }
    #[inline(always)]
    fn load_bf16(self, s: &[u16]) -> f32x4 {
        f32x4::new(core::array::from_fn(|t| Element::to_f32(bf16::from_bits(s[t]))))
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        outlined(f) // the baseline: the whole build is compiled for it
    }
}

impl Vector for f32x4 {
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        s[..4].copy_from_slice(self.as_array());
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        let n = s.len().min(4);
        s[..n].copy_from_slice(&self.as_array()[..n]);
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        f32x4::mul_add(self, a, b)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.fast_max(other)
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        self.fast_min(other)
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let a = self.to_array();
        let m = |x: f32, y: f32| if y > x { y } else { x };
        m(m(a[0], a[2]), m(a[1], a[3]))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        f32x4::reduce_add(self)
    }
    #[inline(always)]
    fn lt_select(self, other: Self, t: Self, f: Self) -> Self {
        self.simd_lt(other).select(t, f)
    }
    #[inline(always)]
    fn any_lt(self, other: Self) -> bool {
        self.simd_lt(other).any()
    }
    #[inline(always)]
    fn any_nonfinite(self) -> bool {
        !self.is_finite().all()
    }
    #[inline(always)]
    fn nan_or(self, f: Self) -> Self {
        self.simd_ne(self).select(self, f)
    }
    #[inline(always)]
    fn eq_select(self, other: Self, t: Self, f: Self) -> Self {
        self.simd_eq(other).select(t, f)
    }
    #[inline(always)]
    fn shl23(self) -> Self {
        f32x4::from_bits(self.to_bits() << 23)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32x4::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32x4::abs(self)
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        f32x4::abs(self) | (sign & f32x4::splat(-0.0))
    }
    #[inline(always)]
    fn frexp(self) -> (Self, Self) {
        let b = self.to_bits();
        let m = f32x4::from_bits((b & wide::u32x4::splat(0x007f_ffff)) | wide::u32x4::splat(0x3f80_0000));
        // The biased exponent in the mantissa of 2²³: 2²³ + (e + 127), exactly.
        let e = f32x4::from_bits(((b >> 23) & wide::u32x4::splat(0xff)) | wide::u32x4::splat(0x4b00_0000));
        (m, e - f32x4::splat(8_388_608.0 + 127.0))
    }
}
