//! The AVX2 level: 8 lanes of `__m256`, with FMA.

use super::{found, AVX2};
use crate::arch::{tuning, Level, Simd, Tuning, Vector};
use core::arch::x86_64::{
    __m128, __m256, __m256i, _mm256_add_ps, _mm256_and_ps, _mm256_and_si256, _mm256_andnot_ps,
    _mm256_blendv_ps, _mm256_castps256_ps128, _mm256_castps_si256, _mm256_castsi256_ps, _mm256_cmp_ps,
    _mm256_cmpgt_epi32, _mm256_cvtepi32_ps, _mm256_cvtepu16_epi32, _mm256_cvtph_ps, _mm256_div_ps,
    _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_loadu_si256, _mm256_maskload_ps,
    _mm256_maskstore_ps, _mm256_max_ps, _mm256_min_ps, _mm256_movemask_ps, _mm256_mul_ps, _mm256_or_ps,
    _mm256_or_si256, _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_slli_epi32, _mm256_sqrt_ps,
    _mm256_srli_epi32, _mm256_storeu_ps, _mm256_sub_epi32, _mm256_sub_ps, _mm_add_ps, _mm_cvtss_f32,
    _mm_loadu_si128, _mm_max_ps, _mm_movehl_ps, _mm_shuffle_ps, _CMP_EQ_OQ, _CMP_LT_OQ, _CMP_UNORD_Q,
};
use core::ops::{Add, Div, Mul, Sub};

/// Proof that the CPU runs AVX, AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` if the build's target features or the CPU have the level.
    #[inline]
    pub(crate) fn new() -> Option<Self> {
        let built = cfg!(all(
            target_feature = "avx",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ));
        (built || found() & AVX2 != 0).then_some(Avx2(()))
    }
}

/// 8 lanes of `f32`. Made only from an [`Avx2`] token.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct F32x8(__m256);

/// Evaluates AVX and AVX2 intrinsics on register operands.
macro_rules! avx2 {
    ($e:expr) => {
        // SAFETY: the caller holds an `Avx2` token or an `F32x8`, which exist
        // only once `Avx2::new` found the level (module docs of
        // `arch::x86_64`), so the CPU executes these instructions; they read
        // and write registers only.
        unsafe { $e }
    };
}

impl Simd for Avx2 {
    type V = F32x8;
    const LEVEL: Level = Level::Avx2;
    const LANES: usize = 8;
    const TUNING: Tuning = tuning::AVX2;
    #[inline(always)]
    fn splat(self, x: f32) -> F32x8 {
        F32x8(avx2!(_mm256_set1_ps(x)))
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> F32x8 {
        let s = &s[..8];
        // SAFETY: `self` proves AVX (as in `avx2!`); `s` holds the 8 floats
        // read (unaligned load).
        F32x8(unsafe { _mm256_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> F32x8 {
        let n = s.len().min(8);
        // SAFETY: `self` proves AVX; the mask selects the first `n` lanes,
        // which `s` holds; masked-off lanes are not read and cannot fault
        // (they are zeroed).
        F32x8(unsafe { _mm256_maskload_ps(s.as_ptr(), mask(n)) })
    }
    #[inline(always)]
    fn load_f16(self, s: &[u16]) -> F32x8 {
        let s = &s[..8];
        // SAFETY: `self` proves AVX and F16C (as in `avx2!`); `s` holds the
        // 16 bytes read (unaligned load).
        F32x8(unsafe { _mm256_cvtph_ps(_mm_loadu_si128(s.as_ptr().cast())) })
    }
    #[inline(always)]
    fn load_bf16(self, s: &[u16]) -> F32x8 {
        let s = &s[..8];
        // SAFETY: `self` proves AVX2 (as in `avx2!`); `s` holds the 16 bytes
        // read (unaligned load). A bfloat16 is the high half of the f32 of
        // the same value: zero-extend each to 32 bits and shift it up.
        F32x8(unsafe {
            _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(_mm_loadu_si128(
                s.as_ptr().cast(),
            ))))
        })
    }
    const PAIRED_BF16: bool = true;
    #[inline(always)]
    fn load_bf16_pair(self, s: &[u16]) -> (F32x8, F32x8) {
        let s = &s[..16];
        // SAFETY: `self` proves AVX (as in `avx2!`); `s` holds the 32 bytes
        // read (unaligned load).
        let x = unsafe { _mm256_loadu_si256(s.as_ptr().cast()) };
        let even = avx2!(_mm256_slli_epi32::<16>(x));
        let odd = avx2!(_mm256_and_si256(x, _mm256_set1_epi32(0xffff_0000_u32 as i32)));
        (F32x8(avx2!(_mm256_castsi256_ps(even))), F32x8(avx2!(_mm256_castsi256_ps(odd))))
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        #[target_feature(enable = "avx,avx2,fma,f16c")]
        #[inline]
        fn with<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: `self` proves every feature `with` is compiled for.
        unsafe { with(f) }
    }
}

/// The first `n ≤ 8` lanes: all ones where the lane index is below `n`.
#[inline(always)]
fn mask(n: usize) -> __m256i {
    avx2!(_mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))
}

macro_rules! operator {
    ($trait:ident, $method:ident, $intrinsic:ident) => {
        impl $trait for F32x8 {
            type Output = F32x8;
            #[inline(always)]
            fn $method(self, other: F32x8) -> F32x8 {
                F32x8(avx2!($intrinsic(self.0, other.0)))
            }
        }
    };
}

operator!(Add, add, _mm256_add_ps);
operator!(Sub, sub, _mm256_sub_ps);
operator!(Mul, mul, _mm256_mul_ps);
operator!(Div, div, _mm256_div_ps);

impl F32x8 {
    /// All ones in the lanes where the comparison `P` holds.
    #[inline(always)]
    fn cmp<const P: i32>(self, other: F32x8) -> __m256 {
        avx2!(_mm256_cmp_ps::<P>(self.0, other.0))
    }
    /// `t` in the lanes of `k`, `f` elsewhere.
    #[inline(always)]
    fn blend(k: __m256, t: F32x8, f: F32x8) -> F32x8 {
        F32x8(avx2!(_mm256_blendv_ps(f.0, t.0, k)))
    }
    #[inline(always)]
    fn signs(k: __m256) -> i32 {
        avx2!(_mm256_movemask_ps(k))
    }
    /// Lane-wise from the 128-bit halves: `f(low half, high half)`.
    #[inline(always)]
    fn fold(self, f: impl Fn(__m128, __m128) -> __m128) -> f32 {
        let (lo, hi) = avx2!((_mm256_castps256_ps128(self.0), _mm256_extractf128_ps::<1>(self.0)));
        let x = f(lo, hi); // lanes 0..4 with 4..8
        let x = f(x, avx2!(_mm_movehl_ps(x, x))); // 0, 1 with 2, 3
        let x = f(x, avx2!(_mm_shuffle_ps::<1>(x, x))); // 0 with 1
        avx2!(_mm_cvtss_f32(x))
    }
}

impl Vector for F32x8 {
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        let s = &mut s[..8];
        // SAFETY: a value of `F32x8` proves AVX (as in `avx2!`); `s` holds
        // the 8 floats written (unaligned store).
        unsafe { _mm256_storeu_ps(s.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        let n = s.len().min(8);
        // SAFETY: as `store`; the mask selects the first `n` lanes, which `s`
        // holds; masked-off lanes are not written and cannot fault.
        unsafe { _mm256_maskstore_ps(s.as_mut_ptr(), mask(n), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        F32x8(avx2!(_mm256_fmadd_ps(self.0, a.0, b.0)))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        F32x8(avx2!(_mm256_max_ps(self.0, other.0)))
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        F32x8(avx2!(_mm256_min_ps(self.0, other.0)))
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        self.fold(|a, b| avx2!(_mm_max_ps(a, b)))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        self.fold(|a, b| avx2!(_mm_add_ps(a, b)))
    }
    #[inline(always)]
    fn lt_select(self, other: Self, t: Self, f: Self) -> Self {
        F32x8::blend(self.cmp::<_CMP_LT_OQ>(other), t, f)
    }
    #[inline(always)]
    fn any_lt(self, other: Self) -> bool {
        F32x8::signs(self.cmp::<_CMP_LT_OQ>(other)) != 0
    }
    #[inline(always)]
    fn any_nonfinite(self) -> bool {
        let inf = F32x8(avx2!(_mm256_set1_ps(f32::INFINITY)));
        F32x8::signs(self.abs().cmp::<_CMP_LT_OQ>(inf)) != 0xff
    }
    #[inline(always)]
    fn nan_or(self, f: Self) -> Self {
        F32x8::blend(self.cmp::<_CMP_UNORD_Q>(self), self, f)
    }
    #[inline(always)]
    fn eq_select(self, other: Self, t: Self, f: Self) -> Self {
        F32x8::blend(self.cmp::<_CMP_EQ_OQ>(other), t, f)
    }
    #[inline(always)]
    fn shl23(self) -> Self {
        F32x8(avx2!(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(self.0)))))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        F32x8(avx2!(_mm256_sqrt_ps(self.0)))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F32x8(avx2!(_mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0)))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        let s = avx2!(_mm256_set1_ps(-0.0));
        F32x8(avx2!(_mm256_or_ps(_mm256_andnot_ps(s, self.0), _mm256_and_ps(s, sign.0))))
    }
    #[inline(always)]
    fn frexp(self) -> (Self, Self) {
        let (m, e) = avx2!({
            let b = _mm256_castps_si256(self.0);
            let m = _mm256_or_si256(
                _mm256_and_si256(b, _mm256_set1_epi32(0x007f_ffff)),
                _mm256_set1_epi32(0x3f80_0000),
            );
            let e = _mm256_sub_epi32(
                _mm256_and_si256(_mm256_srli_epi32::<23>(b), _mm256_set1_epi32(0xff)),
                _mm256_set1_epi32(127),
            );
            (_mm256_castsi256_ps(m), _mm256_cvtepi32_ps(e))
        });
        (F32x8(m), F32x8(e))
    }
}
