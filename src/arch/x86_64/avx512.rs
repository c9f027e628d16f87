//! The AVX-512 level: 16 lanes of `__m512`.

use super::{found, AVX512};
use crate::arch::{tuning, Level, Simd, Tuning, Vector};
use core::arch::x86_64::{
    __m512, __m512i, __mmask16, _mm256_loadu_si256, _mm512_abs_ps, _mm512_add_ps, _mm512_and_si512,
    _mm512_andnot_si512, _mm512_castps_si512, _mm512_castsi512_ps, _mm512_cmp_ps_mask, _mm512_cvtepu16_epi32,
    _mm512_cvtph_ps, _mm512_div_ps, _mm512_fmadd_ps, _mm512_getexp_ps, _mm512_getmant_ps, _mm512_loadu_ps,
    _mm512_mask_blend_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps,
    _mm512_mul_ps, _mm512_or_si512, _mm512_reduce_add_ps, _mm512_reduce_max_ps, _mm512_set1_epi32,
    _mm512_set1_ps, _mm512_slli_epi32, _mm512_sqrt_ps, _mm512_storeu_ps, _mm512_sub_ps, _CMP_EQ_OQ,
    _CMP_LT_OQ, _CMP_UNORD_Q, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC,
};
use core::ops::{Add, Div, Mul, Sub};

/// Proof that the CPU runs AVX-512 F, CD, BW, DQ, VL with AVX2, FMA and F16C.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// `Some` if the build's target features or the CPU have the level.
    #[inline]
    pub(crate) fn new() -> Option<Self> {
        let built = cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512cd",
            target_feature = "avx512bw",
            target_feature = "avx512dq",
            target_feature = "avx512vl",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ));
        (built || found() & AVX512 != 0).then_some(Avx512(()))
    }
}

/// 16 lanes of `f32`. Made only from an [`Avx512`] token.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct F32x16(__m512);

/// Evaluates AVX-512 intrinsics on register operands.
macro_rules! avx512 {
    ($e:expr) => {
        // SAFETY: the caller holds an `Avx512` token or an `F32x16`, which
        // exist only once `Avx512::new` found the level (module docs of
        // `arch::x86_64`), so the CPU executes these instructions; they read
        // and write registers only.
        unsafe { $e }
    };
}

impl Simd for Avx512 {
    type V = F32x16;
    const LEVEL: Level = Level::Avx512;
    const LANES: usize = 16;
    const TUNING: Tuning = tuning::AVX512;
    #[inline(always)]
    fn splat(self, x: f32) -> F32x16 {
        F32x16(avx512!(_mm512_set1_ps(x)))
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> F32x16 {
        let s = &s[..16];
        // SAFETY: `self` proves AVX-512F (as in `avx512!`); `s` holds the 16
        // floats read (unaligned load).
        F32x16(unsafe { _mm512_loadu_ps(s.as_ptr()) })
    }
    #[inline(always)]
    fn load_partial(self, s: &[f32]) -> F32x16 {
        let n = s.len().min(16);
        // SAFETY: `self` proves AVX-512F; the mask selects the first `n`
        // lanes, which `s` holds; masked-off lanes are not read and cannot
        // fault (they are zeroed).
        F32x16(unsafe { _mm512_maskz_loadu_ps(mask(n), s.as_ptr()) })
    }
    #[inline(always)]
    fn load_f16(self, s: &[u16]) -> F32x16 {
        let s = &s[..16];
        // SAFETY: `self` proves AVX-512F (as in `avx512!`); `s` holds the 32
        // bytes read (unaligned load).
        F32x16(unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().cast())) })
    }
    #[inline(always)]
    fn load_bf16(self, s: &[u16]) -> F32x16 {
        let s = &s[..16];
        // SAFETY: `self` proves AVX-512F (as in `avx512!`); `s` holds the 32
        // bytes read (unaligned load). A bfloat16 is the high half of the f32
        // of the same value: zero-extend each to 32 bits and shift it up.
        F32x16(unsafe {
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                s.as_ptr().cast(),
            ))))
        })
    }
    #[inline(always)]
    fn vectorize<R>(self, f: impl FnOnce() -> R) -> R {
        #[target_feature(enable = "avx512f,avx512cd,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")]
        #[inline]
        fn with<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: `self` proves every feature `with` is compiled for.
        unsafe { with(f) }
    }
}

/// The first `n ≤ 16` lanes.
#[inline(always)]
fn mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

macro_rules! operator {
    ($trait:ident, $method:ident, $intrinsic:ident) => {
        impl $trait for F32x16 {
            type Output = F32x16;
            #[inline(always)]
            fn $method(self, other: F32x16) -> F32x16 {
                F32x16(avx512!($intrinsic(self.0, other.0)))
            }
        }
    };
}

operator!(Add, add, _mm512_add_ps);
operator!(Sub, sub, _mm512_sub_ps);
operator!(Mul, mul, _mm512_mul_ps);
operator!(Div, div, _mm512_div_ps);

impl F32x16 {
    #[inline(always)]
    fn cmp<const P: i32>(self, other: F32x16) -> __mmask16 {
        avx512!(_mm512_cmp_ps_mask::<P>(self.0, other.0))
    }
    /// `t` in the lanes of `k`, `f` elsewhere.
    #[inline(always)]
    fn blend(k: __mmask16, t: F32x16, f: F32x16) -> F32x16 {
        F32x16(avx512!(_mm512_mask_blend_ps(k, f.0, t.0)))
    }
    #[inline(always)]
    fn bits(self) -> __m512i {
        avx512!(_mm512_castps_si512(self.0))
    }
    #[inline(always)]
    fn from_bits(x: __m512i) -> F32x16 {
        F32x16(avx512!(_mm512_castsi512_ps(x)))
    }
    #[inline(always)]
    fn splat_bits(x: i32) -> __m512i {
        avx512!(_mm512_set1_epi32(x))
    }
}

impl Vector for F32x16 {
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        let s = &mut s[..16];
        // SAFETY: a value of `F32x16` proves AVX-512F (as in `avx512!`); `s`
        // holds the 16 floats written (unaligned store).
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    fn store_partial(self, s: &mut [f32]) {
        let n = s.len().min(16);
        // SAFETY: as `store`; the mask selects the first `n` lanes, which `s`
        // holds; masked-off lanes are not written and cannot fault.
        unsafe { _mm512_mask_storeu_ps(s.as_mut_ptr(), mask(n), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        F32x16(avx512!(_mm512_fmadd_ps(self.0, a.0, b.0)))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        F32x16(avx512!(_mm512_max_ps(self.0, other.0)))
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        F32x16(avx512!(_mm512_min_ps(self.0, other.0)))
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        avx512!(_mm512_reduce_max_ps(self.0))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        avx512!(_mm512_reduce_add_ps(self.0))
    }
    #[inline(always)]
    fn lt_select(self, other: Self, t: Self, f: Self) -> Self {
        F32x16::blend(self.cmp::<_CMP_LT_OQ>(other), t, f)
    }
    #[inline(always)]
    fn any_lt(self, other: Self) -> bool {
        self.cmp::<_CMP_LT_OQ>(other) != 0
    }
    #[inline(always)]
    fn any_nonfinite(self) -> bool {
        let inf = F32x16(avx512!(_mm512_set1_ps(f32::INFINITY)));
        self.abs().cmp::<_CMP_LT_OQ>(inf) != 0xffff
    }
    #[inline(always)]
    fn nan_or(self, f: Self) -> Self {
        F32x16::blend(self.cmp::<_CMP_UNORD_Q>(self), self, f)
    }
    #[inline(always)]
    fn eq_select(self, other: Self, t: Self, f: Self) -> Self {
        F32x16::blend(self.cmp::<_CMP_EQ_OQ>(other), t, f)
    }
    #[inline(always)]
    fn shl23(self) -> Self {
        F32x16::from_bits(avx512!(_mm512_slli_epi32::<23>(self.bits())))
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        F32x16(avx512!(_mm512_sqrt_ps(self.0)))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        F32x16(avx512!(_mm512_abs_ps(self.0)))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        let magnitude = F32x16::splat_bits(0x7fff_ffff);
        // Bitwise select: `self`'s bits where the mask is set, `sign`'s elsewhere.
        let bits = avx512!(_mm512_or_si512(
            _mm512_and_si512(self.bits(), magnitude),
            _mm512_andnot_si512(magnitude, sign.bits())
        ));
        F32x16::from_bits(bits)
    }
    #[inline(always)]
    fn frexp(self) -> (Self, Self) {
        let m = avx512!(_mm512_getmant_ps::<_MM_MANT_NORM_1_2, _MM_MANT_SIGN_SRC>(self.0));
        let e = avx512!(_mm512_getexp_ps(self.0));
        (F32x16(m), F32x16(e))
    }
}
