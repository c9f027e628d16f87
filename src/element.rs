//! The element types a key/value cache may be stored in: `f32`, and the
//! 16-bit [`half::f16`] (IEEE binary16) and [`half::bf16`]
//! (bfloat16) of the `half` crate.
//!
//! Only keys and values take these types, the same for both in one call. Queries, outputs, log-sum-exps,
//! bias and cached norms are `f32`, and so is all arithmetic: the kernels
//! widen each 16-bit element to the `f32` of the same value (every `f16` and
//! `bf16` is exactly an `f32`), in prefill once per packed key tile, in the
//! decode pass as the cache streams through the registers.

use half::{bf16, f16};

/// An element type of a key or value cache: `f32`, [`f16`](struct@f16) or [`bf16`].
///
/// Sealed: the kernels convert these three and no others. Every value of
/// each converts to `f32` exactly ([`to_f32`](Element::to_f32)); a NaN
/// converts to a NaN of the same sign and payload, with the quiet bit set
/// where the hardware sets it (`f16`).
///
/// ```
/// use streamattn::{bf16, f16, Element};
/// assert_eq!(f16::from_f32(0.1).to_f32(), 0.0999755859375);
/// assert_eq!(bf16::from_f32(0.1).to_f32(), 0.10009765625);
/// assert_eq!(Element::to_f32(2.5f32), 2.5);
/// ```
pub trait Element: Copy + Send + Sync + core::fmt::Debug + sealed::Sealed + 'static {
    /// The value as an `f32` (exact).
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl Element for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        // The bits of a bf16 are the high half of those of the same f32.
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

pub(crate) mod sealed {
    use half::{bf16, f16};

    /// A slice of one of the element types, by its concrete type.
    #[derive(Clone, Copy, Debug)]
    pub enum Slice<'a> {
        F32(&'a [f32]),
        F16(&'a [f16]),
        Bf16(&'a [bf16]),
    }

    /// The crate's view of an element type (not implementable outside it).
    pub trait Sealed: Sized {
        /// `x` as the kernels load it (the same memory).
        #[doc(hidden)]
        fn slice(x: &[Self]) -> Slice<'_>;
        /// Whether the type is `bf16` (the decode pass may read it in
        /// pairs of vectors).
        #[doc(hidden)]
        const BF16: bool = false;
    }

    impl Sealed for f32 {
        #[inline(always)]
        fn slice(x: &[f32]) -> Slice<'_> {
            Slice::F32(x)
        }
    }

    impl Sealed for f16 {
        #[inline(always)]
        fn slice(x: &[f16]) -> Slice<'_> {
            Slice::F16(x)
        }
    }

    impl Sealed for bf16 {
        const BF16: bool = true;
        #[inline(always)]
        fn slice(x: &[bf16]) -> Slice<'_> {
            Slice::Bf16(x)
        }
    }
}
