//! Software prefetch: asks the caches for the lines of a slice ahead of its
//! use. A hint only: it reads nothing the program sees and cannot fault.
//!
//! The decode passes issue it (tile/decode.rs, with the measurements). On
//! x86-64 it is `prefetcht1` (into L2), one per 64-byte line; elsewhere it
//! does nothing. (Into L1, `prefetcht0`, measured slower from DRAM: module
//! docs of tile/decode.rs.)

/// Bytes per cache line.
const LINE: usize = 64;

/// Asks for the lines of `x` in the second-level cache.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn l2(x: &[f32]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        let first = x.as_ptr().cast::<i8>();
        let skew = first as usize % LINE;
        for n in 0..lines(skew, x.len()) {
            // Pointer arithmetic only (wrapping: no dereference).
            let p = first.wrapping_sub(skew).wrapping_add(n * LINE);
            // SAFETY: `_mm_prefetch` needs SSE, which this block is compiled
            // only with (`cfg` above). It is a hint: it has no effect the
            // program can observe but timing, and never faults, whatever the
            // address (here, the start of a line that holds part of `x`).
            unsafe { _mm_prefetch::<_MM_HINT_T1>(p) }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = x;
}

/// Lines touched by `len` floats that start `skew` bytes into a line: from
/// the line of the first byte to that of the last. A count, so that the
/// prefetch loop is a few instructions a line: an iterator of indices chained
/// with the last one did not inline into the decode pass, and on cached data
/// four rows a pass ran 1.25× faster without it (tile/decode.rs).
#[cfg_attr(not(all(target_arch = "x86_64", target_feature = "sse")), allow(dead_code))]
const fn lines(skew: usize, len: usize) -> usize {
    match len {
        0 => 0,
        _ => (skew + 4 * len - 1) / LINE + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_the_slice_is_counted_once() {
        for skew in (0..LINE).step_by(4) {
            for len in 0..100 {
                // The lines of bytes skew..skew + 4 len, one byte at a time
                // (in order: a new line is a change of line index).
                let mut touched = 0;
                let mut line = usize::MAX;
                for b in skew..skew + 4 * len {
                    if b / LINE != line {
                        (touched, line) = (touched + 1, b / LINE);
                    }
                }
                assert_eq!(lines(skew, len), touched, "skew {skew}, len {len}");
            }
        }
    }

    #[test]
    fn any_slice_is_left_as_it_was() {
        let data: [f32; 100] = core::array::from_fn(|i| i as f32);
        for start in 0..20 {
            for end in start..data.len() {
                l2(&data[start..end]);
            }
        }
        assert!(data.iter().enumerate().all(|(i, &x)| x == i as f32));
    }
}
