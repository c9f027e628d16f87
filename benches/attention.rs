//! Throughput of every scorer on the shapes below (prefill, a long context, decode), next to the
//! scalar path and an unfused baseline (matrix product, softmax, matrix
//! product, with `matrixmultiply`'s sgemm).
//!
//! Throughput is reported as elements = floating-point operations, counted as
//! `4 · n_q · n_kv · d` per head (halved for causal), so criterion's
//! `Gelem/s` reads as GFLOP/s. Decode shapes count bytes of K and V read, so
//! `GiB/s` is read bandwidth; they run with K and V on 4 KiB pages and again
//! on 2 MiB pages (`-huge-pages`, Linux), next to read probes on the same
//! pages. K and V are in buffers aligned to 2 MiB (`benches/common`), as a
//! runtime's cache is aligned. `Additive` (with `h = d`) is counted the same
//! way, so its figures compare directly with the others as throughput; its
//! real work per pair is `h` tangents, not `2d` multiply-adds.
//!
//! The kernels run at the best level the CPU has, or at most at
//! `STREAMATTN_BENCH_LEVEL` (`avx2`, `sse2`, `generic`, ...); the FMA peak
//! (`fma-peak`) and read bandwidth (`read-bandwidth`) are measured in the
//! same run.
//!
//! Run: `cargo bench --bench attention` (about 6 minutes), or a subset:
//! `cargo bench --bench attention -- prefill-1k-d64`. Set `STREAMATTN_BENCH_QUICK=1`
//! for a smoke run (small shapes, short measurements).

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use streamattn::{key_norms, Attention, HeadsMut, HeadsRef, Kernel, Mask};

mod common;
use common::cache::{Buffers, PagedCache, Shape, QUICK, SHAPES};
use common::{fma_peak, group, read_all, read_kv, read_kv_blocks, scorers, shuffled, Elem, Floats, Pages};
use streamattn::{bf16, f16};

/// Decode: bytes of K and V read (`bytes` per element); otherwise the
/// multiply-adds as elements (module docs).
fn throughput(s: &Shape, heads: usize, bytes: usize) -> Throughput {
    if s.n_q == 1 {
        let kv_heads = if heads == s.heads { s.kv_heads } else { heads };
        Throughput::Bytes((2 * kv_heads * s.n_kv * s.d * bytes) as u64)
    } else {
        let flops = 4 * heads * s.n_q * s.n_kv * s.d / if s.causal { 2 } else { 1 };
        Throughput::Elements(flops as u64)
    }
}

/// Unfused attention for one head: S = scale·QKᵀ (or the distance scores) by
/// sgemm, a row softmax over the materialised S, then O = P V by sgemm.
#[allow(clippy::too_many_arguments)]
fn unfused(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    s: &mut [f32],
    n: usize,
    m: usize,
    d: usize,
    scorer: &str,
) {
    let scale = 1.0 / (d as f32).sqrt();
    let alpha = if scorer == "dot" { scale } else { 2.0 };
    // SAFETY: the pointers and strides describe the row-major n×d, m×d and
    // n×m buffers, which the asserts show are long enough.
    assert!(q.len() >= n * d && k.len() >= m * d && s.len() >= n * m);
    unsafe {
        matrixmultiply::sgemm(
            n,
            d,
            m,
            alpha,
            q.as_ptr(),
            d as isize,
            1,
            k.as_ptr(),
            1,
            d as isize,
            0.0,
            s.as_mut_ptr(),
            m as isize,
            1,
        );
    }
    let knorm: Vec<f32> = k.chunks(d).map(|r| r.iter().map(|x| x * x).sum()).collect();
    for i in 0..n {
        let row = &mut s[i * m..(i + 1) * m];
        if scorer != "dot" {
            let qn: f32 = q[i * d..(i + 1) * d].iter().map(|x| x * x).sum();
            for (x, kn) in row.iter_mut().zip(&knorm) {
                let d2 = (qn + kn - *x).max(0.0);
                *x = if scorer == "sqdist" { -scale * d2 } else { -(1e-3 + d2).ln() };
            }
        }
        let mx = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for x in row.iter_mut() {
            *x = (*x - mx).exp();
            sum += *x;
        }
        row.iter_mut().for_each(|x| *x /= sum);
    }
    assert!(v.len() >= m * d && out.len() >= n * d);
    // SAFETY: as above, for the n×m, m×d and n×d buffers.
    unsafe {
        matrixmultiply::sgemm(
            n,
            m,
            d,
            1.0,
            s.as_ptr(),
            m as isize,
            1,
            v.as_ptr(),
            d as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            d as isize,
            1,
        );
    }
}

/// Single-core read bandwidth from DRAM (buffers far larger than the caches),
/// the ceiling for decode: it reads K and V once. Besides one buffer read
/// through, two buffers of half the size read alternately by tiles of 128
/// rows of 128 floats, as the decode pass reads K and V, and by 16 and 4
/// rows; and read alternately by blocks of 128 and 16 rows in a shuffled
/// order, as a decode pass reads a paged cache. On 4 KiB pages and, where
/// the system has them, on 2 MiB pages.
fn bandwidth(c: &mut Criterion, quick: bool) {
    let n = if quick { 1 << 22 } else { 1 << 26 }; // 16 MiB or 256 MiB
    let mut g = group(c, "read-bandwidth", quick);
    g.throughput(Throughput::Bytes((n * 4) as u64));
    for pages in Pages::available() {
        let data = Floats::<f32>::new(n, 9, pages);
        let size = if quick { "16MiB" } else { "256MiB" };
        g.bench_function(format!("{size}{}", pages.suffix()), |b| b.iter(|| black_box(read_all(&data))));
        let (k, v) = data.split_at(n / 2);
        for rows in [128, 16, 4] {
            g.bench_function(format!("k-v-alternating-{rows}-rows{}", pages.suffix()), |b| {
                b.iter(|| black_box(read_kv(k, v, rows)))
            });
        }
        // As a paged cache is read: blocks of 16 or 128 rows in shuffled order.
        for rows in [128, 16] {
            let order = shuffled(k.len() / (rows * 128));
            g.bench_function(format!("k-v-shuffled-blocks-{rows}-rows{}", pages.suffix()), |b| {
                b.iter(|| black_box(read_kv_blocks(k, v, rows, &order)))
            });
        }
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let quick = std::env::var_os("STREAMATTN_BENCH_QUICK").is_some();
    let level = common::level();
    eprintln!("kernels at {}", Attention::new(streamattn::Scorer::dot()).max_level(level).level());
    fma_peak(c, quick);
    bandwidth(c, quick);
    let shapes = if quick { QUICK } else { SHAPES };
    let wanted = common::wanted(shapes.iter().map(|s| s.name));
    for s in shapes.iter().filter(|s| wanted(s.name)) {
        let mut g = group(c, s.name, quick);
        let mask = if s.causal { Mask::causal_bottom_right(s.n_q, s.n_kv) } else { Mask::None };
        g.throughput(throughput(s, s.heads, 4));
        // Decode reads K and V from DRAM: on 4 KiB pages and on 2 MiB pages
        // (`-huge-pages`), next to the probes of the same names.
        let pages = if s.n_q == 1 { Pages::available() } else { vec![Pages::Small] };
        for pages in pages {
            let sfx = pages.suffix();
            let mut b = Buffers::<f32>::new(s, s.heads, pages);
            for (name, scorer) in scorers(s.d) {
                let attn = Attention::new(scorer).max_level(level).mask(mask);
                g.bench_function(BenchmarkId::new(name, format!("tiled{sfx}")), |bench| {
                    bench.iter(|| b.run(s, s.heads, &attn))
                });
            }
            // Decode with the key norms cached next to the cache (`key_norms`
            // once, as a runtime would when appending), for the scorers that
            // use them.
            if s.n_q == 1 {
                let mut norms = vec![0.0f32; s.kv_heads * s.n_kv];
                key_norms(
                    HeadsRef::heads_major(&b.k, s.kv_heads, s.n_kv, s.d).unwrap(),
                    HeadsMut::heads_major(&mut norms, s.kv_heads, s.n_kv, 1).unwrap(),
                )
                .unwrap();
                let cached = HeadsRef::heads_major(&norms, s.kv_heads, s.n_kv, 1).unwrap();
                for (name, scorer) in
                    scorers(s.d).into_iter().filter(|(n, _)| matches!(*n, "sqdist" | "logdist"))
                {
                    let attn = Attention::new(scorer).max_level(level).mask(mask).cached_key_norms(cached);
                    g.bench_function(BenchmarkId::new(name, format!("tiled-cached-norms{sfx}")), |bench| {
                        bench.iter(|| b.run(s, s.heads, &attn))
                    });
                }
            }
            // Softcap, ALiBi and sinks on `Dot` (prefill-1k-d128 and decode-32k-d128):
            // their cost against `dot/tiled` of the same run.
            if matches!(s.name, "prefill-1k-d128" | "decode-32k-d128") || quick {
                let slopes: Vec<f32> =
                    (0..s.heads).map(|h| (-8.0 * (h as f32 + 1.0) / s.heads as f32).exp2()).collect();
                let sinks: Vec<f32> = (0..s.heads).map(|h| h as f32 * 0.25 - 1.0).collect();
                let dot = Attention::new(streamattn::Scorer::dot()).max_level(level).mask(mask);
                let extras = [
                    ("tiled-softcap", dot.softcap(30.0)),
                    ("tiled-alibi", dot.alibi(&slopes)),
                    ("tiled-sinks", dot.sinks(&sinks)),
                    ("tiled-softcap-alibi-sinks", dot.softcap(30.0).alibi(&slopes).sinks(&sinks)),
                ];
                for (name, attn) in extras {
                    g.bench_function(BenchmarkId::new("dot", format!("{name}{sfx}")), |bench| {
                        bench.iter(|| b.run(s, s.heads, &attn))
                    });
                }
            }
            // A paged cache: the same K and V in blocks of 16 and of 128 rows,
            // `[n_blocks, kv_heads, block_size, d]`, in shuffled order
            // (`dot/tiled-paged<block size>`), against `dot/tiled` of the same run.
            if matches!(s.name, "prefill-1k-d128" | "decode-32k-d128" | "gqa-decode-32k") || quick {
                let dot = Attention::new(streamattn::Scorer::dot()).max_level(level).mask(mask);
                for bs in [16, 128] {
                    let mut paged = PagedCache::new(s, &b, bs, pages);
                    g.bench_function(BenchmarkId::new("dot", format!("tiled-paged{bs}{sfx}")), |bench| {
                        bench.iter(|| paged.run(s, &mut b, &dot))
                    });
                }
            }
            // K and V stored as 16-bit floats (decode and the 1k prefill
            // shapes); decode throughput counts the bytes they occupy.
            if s.n_q == 1 || s.name.starts_with("prefill-1k") {
                g.throughput(throughput(s, s.heads, 2));
                half_caches::<f16>(&mut g, s, mask, level, pages, "f16");
                half_caches::<bf16>(&mut g, s, mask, level, pages, "bf16");
                g.throughput(throughput(s, s.heads, 4));
            }
        }
        // Baselines on one head (their throughput is per head): the scalar path
        // where it takes under a second, the unfused path for the 1k shapes.
        if s.n_q * s.n_kv <= 1 << 20 {
            g.throughput(throughput(s, 1, 4));
            let mut b1 = Buffers::<f32>::new(s, 1, Pages::Small);
            for (name, scorer) in scorers(s.d) {
                let attn = Attention::new(scorer).max_level(level).mask(mask).kernel(Kernel::Scalar);
                g.bench_function(BenchmarkId::new(name, "scalar"), |bench| {
                    bench.iter(|| b1.run(s, 1, &attn))
                });
            }
            if s.n_q > 1 && !s.causal {
                let mut scores = vec![0.0f32; s.n_q * s.n_kv];
                // Additive has no matrix-product form: no unfused baseline.
                for (name, _) in scorers(s.d).into_iter().filter(|(n, _)| *n != "additive") {
                    g.bench_function(BenchmarkId::new(name, "unfused"), |bench| {
                        bench.iter(|| {
                            unfused(&b1.q, &b1.k, &b1.v, &mut b1.out, &mut scores, s.n_q, s.n_kv, s.d, name);
                            black_box(&b1.out);
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

/// Every scorer of `s` with K and V stored as `T` (benchmark
/// `<scorer>/tiled-<elem><pages>`).
fn half_caches<T: Elem>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    s: &Shape,
    mask: Mask,
    level: streamattn::Level,
    pages: Pages,
    elem: &str,
) {
    let mut b = Buffers::<T>::new(s, s.heads, pages);
    for (name, scorer) in scorers(s.d) {
        let attn = Attention::new(scorer).max_level(level).mask(mask);
        g.bench_function(BenchmarkId::new(name, format!("tiled-{elem}{}", pages.suffix())), |bench| {
            bench.iter(|| b.run(s, s.heads, &attn))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
