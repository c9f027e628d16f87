//! Software prefetch: asks the caches for the lines of a slice ahead of its
//! use. A hint only: it reads nothing the program sees and cannot fault.
//!
//! The decode passes with blocked dot products issue it (tile/decode.rs,
//! with the measurements). On x86-64 it is `prefetcht0` (into L1) or
//! `prefetcht1` (into L2), one per 64-byte line; elsewhere it does nothing.

/// Asks for the lines of `x` in the first-level cache.
#[inline(always)]
pub(crate) fn l1(x: &[f32]) {
    lines::<true>(x)
}

/// Asks for the lines of `x` in the second-level cache.
#[inline(always)]
pub(crate) fn l2(x: &[f32]) {
    lines::<false>(x)
}

#[inline(always)]
#[allow(unsafe_code)]
fn lines<const L1: bool>(x: &[f32]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        /// Floats per 64-byte cache line.
        const LINE: usize = 16;
        // Every line the slice touches: its first float, then every 16th,
        // then its last (the slice need not start on a line).
        let last = x.len().checked_sub(1);
        let at = (0..x.len()).step_by(LINE).chain(last);
        for i in at {
            let p = x[i..].as_ptr().cast::<i8>();
            // SAFETY: `_mm_prefetch` needs SSE, which this block is compiled
            // only with (`cfg` above). It is a hint: it has no effect the
            // program can observe but timing, and never faults, whatever the
            // address; here the address is in bounds of `x` anyway.
            unsafe {
                if L1 {
                    _mm_prefetch::<_MM_HINT_T0>(p)
                } else {
                    _mm_prefetch::<_MM_HINT_T1>(p)
                }
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = x;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_slice_is_left_as_it_was() {
        let data: [f32; 100] = core::array::from_fn(|i| i as f32);
        for start in 0..20 {
            for end in start..data.len() {
                l1(&data[start..end]);
                l2(&data[start..end]);
            }
        }
        assert!(data.iter().enumerate().all(|(i, &x)| x == i as f32));
    }
}
