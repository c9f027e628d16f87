//! x86-64: detection of the AVX2 and AVX-512 levels, their tokens and
//! vectors, and the prefetch hint. Every `unsafe` block of the crate is in
//! this module; each says why it is sound.
//!
//! The soundness argument is the same for every vector operation: a value of
//! [`Avx2`] or [`Avx512`] is made only by its `new`, which returns `Some`
//! only when the build's target features or the CPU (CPUID, with the
//! operating system's consent through XGETBV) have the level's features; a
//! vector of the level (`F32x8`, `F32x16`) is made only by that token.
//! So code that holds a token or a vector runs on a CPU that executes the
//! level's instructions.

#![allow(unsafe_code)]

mod avx2;
mod avx512;

pub(crate) use avx2::Avx2;
pub(crate) use avx512::Avx512;

use core::arch::x86_64::{__cpuid_count, _mm_prefetch, _xgetbv, CpuidResult, _MM_HINT_T1};
use core::sync::atomic::{AtomicU8, Ordering};

/// Detection has run.
const DONE: u8 = 1;
/// The CPU and the operating system run the AVX2 level.
const AVX2: u8 = 2;
/// The CPU and the operating system run the AVX-512 level.
const AVX512: u8 = 4;

/// What detection found (`DONE` and the level bits), 0 before it ran.
static FOUND: AtomicU8 = AtomicU8::new(0);

/// The level bits, detecting them at the first call. Two threads that both
/// see 0 both detect, and store the same value.
#[inline]
fn found() -> u8 {
    let f = FOUND.load(Ordering::Relaxed);
    if f != 0 {
        return f;
    }
    let f = DONE | detect();
    FOUND.store(f, Ordering::Relaxed);
    f
}

/// `CPUID` leaf `leaf`, sub-leaf `sub`.
fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    // SAFETY: every x86-64 CPU has the CPUID instruction; it only reads
    // identification registers. (`__cpuid_count` is a safe function in newer
    // Rust, an `unsafe` one in older.)
    #[allow(unused_unsafe)]
    unsafe {
        __cpuid_count(leaf, sub)
    }
}

/// Reads CPUID and XCR0 (Intel SDM vol. 1, 13.3 and 15.2: a program may
/// use AVX only if CPUID says the CPU has it and XCR0 says the operating
/// system saves the YMM state, AVX-512 only if it also saves the opmask and
/// ZMM state).
#[cold]
fn detect() -> u8 {
    if cpuid(0, 0).eax < 7 {
        return 0;
    }
    let (l1, l7) = (cpuid(1, 0), cpuid(7, 0));
    let bit = |reg: u32, b: u32| reg >> b & 1 == 1;
    // OSXSAVE: the operating system has enabled XGETBV and XSAVE.
    if !bit(l1.ecx, 27) {
        return 0;
    }
    // SAFETY: CPUID.1:ECX.OSXSAVE is set, so XGETBV is enabled; register 0
    // (XCR0) always exists. It only reads that register.
    let xcr0 = unsafe { _xgetbv(0) };
    let ymm_state = xcr0 & 0b110 == 0b110; // SSE and AVX state
    let zmm_state = xcr0 & 0b1110_0110 == 0b1110_0110; // and opmask, ZMM_Hi256, Hi16_ZMM
                                                       // AVX (ECX 28), FMA (ECX 12), F16C (ECX 29); AVX2 (leaf 7 EBX 5).
    let avx2 = ymm_state && bit(l1.ecx, 28) && bit(l1.ecx, 12) && bit(l1.ecx, 29) && bit(l7.ebx, 5);
    // AVX-512 F (16), DQ (17), CD (28), BW (30), VL (31).
    let avx512 = avx2 && zmm_state && [16, 17, 28, 30, 31].iter().all(|&b| bit(l7.ebx, b));
    (if avx2 { AVX2 } else { 0 }) | (if avx512 { AVX512 } else { 0 })
}

/// Asks for the cache lines of `x` in the second-level cache (`prefetcht1`).
#[inline(always)]
pub(crate) fn prefetch_l2<T>(x: &[T]) {
    let first = x.as_ptr().cast::<i8>();
    let skew = first as usize % LINE;
    for n in 0..lines(skew, core::mem::size_of_val(x)) {
        // Pointer arithmetic only (wrapping: no dereference).
        let p = first.wrapping_sub(skew).wrapping_add(n * LINE);
        // SAFETY: `_mm_prefetch` needs SSE, part of every x86-64 target. It
        // is a hint: it has no effect the program can observe but timing, and
        // never faults, whatever the address (here, the start of a line that
        // holds part of `x`).
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p) }
    }
}

/// Bytes per cache line.
const LINE: usize = 64;

/// Lines touched by `bytes` bytes that start `skew` bytes into a line: from
/// the line of the first byte to that of the last. A count, so that the
/// prefetch loop is a few instructions a line.
const fn lines(skew: usize, bytes: usize) -> usize {
    match bytes {
        0 => 0,
        _ => (skew + bytes - 1) / LINE + 1,
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
                assert_eq!(lines(skew, 4 * len), touched, "skew {skew}, len {len}");
            }
        }
    }

    #[test]
    fn a_prefetched_slice_is_left_as_it_was() {
        let data: [f32; 100] = core::array::from_fn(|i| i as f32);
        for start in 0..20 {
            for end in start..data.len() {
                prefetch_l2(&data[start..end]);
            }
        }
        assert!(data.iter().enumerate().all(|(i, &x)| x == i as f32));
    }

    /// Detection agrees with the standard library's, level by level.
    #[test]
    fn detection_agrees_with_std() {
        extern crate std;
        let f = found();
        let avx2 = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512cd")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl");
        assert_eq!(f & AVX2 != 0, avx2);
        assert_eq!(f & AVX512 != 0, avx512);
        assert_eq!(Avx2::new().is_some(), avx2);
        assert_eq!(Avx512::new().is_some(), avx512);
    }
}
