//! One vector abstraction over the lane widths the kernels run on.
//!
//! The tiled kernel is written once, generic over [`Vector`]. The build's
//! target features pick the width it runs at ([`Native`]): `f32x16` under
//! AVX-512, `f32x8` under AVX, `f32x4` on SSE2, NEON and wasm `simd128`, and
//! plain `f32` (one lane) elsewhere. Every width can be instantiated on every
//! build (`wide` emulates a wide vector with narrower ones), which is how the
//! tests run each path on one machine.

use core::ops::{Add, Div, Mul, Sub};
use wide::{f32x16, f32x4, f32x8};

/// The operations the kernels need from a vector of `LANES` f32.
pub(crate) trait Vector:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    const LANES: usize;
    fn splat(x: f32) -> Self;
    /// The first `LANES` elements of `s` (panics if `s` is shorter).
    fn load(s: &[f32]) -> Self;
    /// The first `min(LANES, s.len())` elements of `s`, zeros after.
    fn load_partial(s: &[f32]) -> Self;
    /// Writes `LANES` elements to the start of `s`.
    fn store(self, s: &mut [f32]);
    /// Writes the first `min(LANES, s.len())` lanes to `s`.
    fn store_partial(self, s: &mut [f32]);
    /// `self * a + b`, fused where the target has FMA.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Lane-wise maximum; which operand a NaN yields is unspecified.
    fn max(self, other: Self) -> Self;
    /// Lane-wise minimum; which operand a NaN yields is unspecified.
    fn min(self, other: Self) -> Self;
    fn reduce_max(self) -> f32;
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
    /// Natural logarithm (for powers `d^p` with `p` other than 1, 2, 4).
    fn ln(self) -> Self;
}

macro_rules! wide_vector {
    ($t:ty, $lanes:expr) => {
        impl Vector for $t {
            const LANES: usize = $lanes;
            #[inline(always)]
            fn splat(x: f32) -> Self {
                <$t>::splat(x)
            }
            #[inline(always)]
            fn load(s: &[f32]) -> Self {
                let a: [f32; $lanes] = s[..$lanes].try_into().unwrap();
                <$t>::new(a)
            }
            #[inline(always)]
            fn load_partial(s: &[f32]) -> Self {
                let mut a = [0.0f32; $lanes];
                let n = s.len().min($lanes);
                a[..n].copy_from_slice(&s[..n]);
                <$t>::new(a)
            }
            #[inline(always)]
            fn store(self, s: &mut [f32]) {
                s[..$lanes].copy_from_slice(self.as_array());
            }
            #[inline(always)]
            fn store_partial(self, s: &mut [f32]) {
                let n = s.len().min($lanes);
                s[..n].copy_from_slice(&self.as_array()[..n]);
            }
            #[inline(always)]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
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
                // Pairwise tree (NaN lanes may or may not win; callers carry
                // NaN through the weights, not through the maximum).
                let mut a = self.to_array();
                let mut w = $lanes;
                while w > 1 {
                    w /= 2;
                    for i in 0..w {
                        a[i] = if a[i + w] > a[i] { a[i + w] } else { a[i] };
                    }
                }
                a[0]
            }
            #[inline(always)]
            fn reduce_add(self) -> f32 {
                <$t>::reduce_add(self)
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
                <$t>::from_bits(self.to_bits() << 23)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn copysign(self, sign: Self) -> Self {
                let s = <$t>::splat(-0.0);
                <$t>::abs(self) | (sign & s)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
        }
    };
}

wide_vector!(f32x16, 16);
wide_vector!(f32x8, 8);
wide_vector!(f32x4, 4);

/// One lane: the "vector" of targets without SIMD.
impl Vector for f32 {
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        s[0]
    }
    #[inline(always)]
    fn load_partial(s: &[f32]) -> Self {
        s.first().copied().unwrap_or(0.0)
    }
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
        // Unfused, like the f32x4 fallback: libm's fmaf would be exact but slow.
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
    fn ln(self) -> Self {
        libm::logf(self)
    }
}

/// The width this build runs at.
#[cfg(target_feature = "avx512f")]
pub(crate) type Native = f32x16;
/// The width this build runs at.
#[cfg(all(target_feature = "avx", not(target_feature = "avx512f")))]
pub(crate) type Native = f32x8;
/// The width this build runs at.
#[cfg(all(
    not(target_feature = "avx"),
    any(target_feature = "sse2", target_feature = "neon", target_feature = "simd128")
))]
pub(crate) type Native = f32x4;
/// The width this build runs at.
#[cfg(not(any(
    target_feature = "avx",
    target_feature = "sse2",
    target_feature = "neon",
    target_feature = "simd128"
)))]
pub(crate) type Native = f32;
