//! The FMA peak of one core: independent fused multiply-adds on the widest
//! vectors the CPU runs (zmm with AVX-512, ymm with AVX2 + FMA), measured in
//! the same run as the kernels so that their GFLOP/s read as a fraction of
//! what the core can do at that moment.

use criterion::Criterion;
use std::hint::black_box;

/// Chains of multiply-adds in flight: latency 4 × 2 pipes needs 8; 12 keeps
/// both pipes busy on every core seen.
const CHAINS: usize = 12;
/// Loop trips per measured call.
const TRIPS: usize = 1 << 16;

/// Benchmarks `fma-peak/zmm` and `fma-peak/ymm` where the CPU has them;
/// throughput in elements = floating-point operations (2 per lane per FMA).
pub fn fma_peak(c: &mut Criterion, quick: bool) {
    let mut g = super::group(c, "fma-peak", quick);
    #[cfg(target_arch = "x86_64")]
    {
        use criterion::Throughput;
        if std::arch::is_x86_feature_detected!("avx512f") {
            g.throughput(Throughput::Elements((TRIPS * CHAINS * 16 * 2) as u64));
            // SAFETY: AVX-512F was detected just above.
            g.bench_function("zmm", |b| b.iter(|| black_box(unsafe { x86::zmm(black_box(0.999)) })));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            g.throughput(Throughput::Elements((TRIPS * CHAINS * 8 * 2) as u64));
            // SAFETY: AVX2 and FMA were detected just above.
            g.bench_function("ymm", |b| b.iter(|| black_box(unsafe { x86::ymm(black_box(0.999)) })));
        }
    }
    g.finish();
}

/// One timed call on the widest vectors the CPU has: their name and the
/// GFLOP/s it ran at; `None` without FMA vectors (benches that time calls
/// themselves, with no criterion group).
#[allow(dead_code)] // used by the paired bench
pub fn fma_gflops() -> Option<(&'static str, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        let time = |f: &dyn Fn() -> f32, lanes: usize| {
            let t = std::time::Instant::now();
            black_box(f());
            (TRIPS * CHAINS * lanes * 2) as f64 / t.elapsed().as_secs_f64() / 1e9
        };
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above.
            return Some(("zmm", time(&|| unsafe { x86::zmm(black_box(0.999)) }, 16)));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were detected just above.
            return Some(("ymm", time(&|| unsafe { x86::ymm(black_box(0.999)) }, 8)));
        }
    }
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CHAINS, TRIPS};
    use std::arch::x86_64::*;

    /// `CHAINS` independent chains `a ← a·m + m` of zmm FMAs; the sum of the
    /// lanes keeps the work observable.
    #[target_feature(enable = "avx512f")]
    pub fn zmm(m: f32) -> f32 {
        let (m, c) = (_mm512_set1_ps(m), _mm512_set1_ps(1e-3));
        let mut a = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..TRIPS {
            for x in &mut a {
                *x = _mm512_fmadd_ps(*x, m, c);
            }
        }
        a.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
    }

    /// As [`zmm`] on ymm registers.
    #[target_feature(enable = "avx2,fma")]
    pub fn ymm(m: f32) -> f32 {
        let (m, c) = (_mm256_set1_ps(m), _mm256_set1_ps(1e-3));
        let mut a = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..TRIPS {
            for x in &mut a {
                *x = _mm256_fmadd_ps(*x, m, c);
            }
        }
        let mut lanes = [0.0f32; 8];
        let sum = a.iter().fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
        // SAFETY: `lanes` holds the 8 floats the store writes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }
}
