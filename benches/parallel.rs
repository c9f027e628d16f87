//! The parallel entries (feature `rayon`) next to the single-thread entry,
//! on the shapes of `benches/attention.rs`: prefill-1k (8 heads, 1024 × 1024, d = 64 and
//! 128) and decode-32k (8 heads, 1 query, 32768 keys, d = 128), every
//! scorer.
//!
//! Per shape and scorer: `single` is `run_heads` on the calling thread,
//! `par2` is `par_run_heads` on a pool of 2 threads (bit-identical to
//! `single`); decode also has `par2-split`, `par_run_heads_split` with each
//! head's keys split in two (16 tasks), which is what a decode with fewer
//! key/value heads than threads relies on.
//!
//! Throughput as in `benches/attention.rs`: elements = floating-point
//! operations, `4 · n_q · n_kv · d` per head, so `Gelem/s` reads as GFLOP/s;
//! decode counts the bytes of K and V read, so `GiB/s` is read bandwidth, on
//! 4 KiB pages and again on 2 MiB pages (`-huge-pages`, Linux).
//!
//! `serving-step`: one step of a server batching 32 sequences continuously,
//! a 512-row prefill chunk over a cache of 4096 rows and 31 decoding
//! sequences over caches of 1024 to 32768 rows (evenly spaced), 32 query
//! heads over 8 key/value heads, d = 128, `Dot`, causal, every cache paged
//! in blocks of 16 rows of one shared `bf16` pool (blocks shuffled).
//! `batch-1t` is `run_batch`, `batch-2t` is `par_run_batch` (`KvSplit::Auto`)
//! on the pool of 2; `per-sequence-1t` and `per-sequence-2t` call
//! `run_heads` and `par_run_heads_split` (`Auto`) once per sequence on the
//! same views. Throughput: the bytes of K and V read, once per key/value head.
//!
//! Run: `cargo bench --features rayon --bench parallel` (about 2 minutes),
//! `STREAMATTN_BENCH_QUICK=1` for a smoke run (small shapes, short
//! measurements).

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use streamattn::{bf16, Attention, HeadsMut, HeadsRef, KvSplit, Mask, PagedLayout, Scorer};

mod common;
use common::{data, fma_peak, group, read_all, read_kv, scorers, shuffled, Floats, Pages};

struct Shape {
    name: &'static str,
    heads: usize,
    n_q: usize,
    n_kv: usize,
    d: usize,
}

const SHAPES: &[Shape] = &[
    Shape { name: "prefill-1k-d64", heads: 8, n_q: 1024, n_kv: 1024, d: 64 },
    Shape { name: "prefill-1k-d128", heads: 8, n_q: 1024, n_kv: 1024, d: 128 },
    Shape { name: "decode-32k-d128", heads: 8, n_q: 1, n_kv: 32768, d: 128 },
];

const QUICK: &[Shape] = &[
    Shape { name: "quick-256-d64", heads: 4, n_q: 256, n_kv: 256, d: 64 },
    Shape { name: "quick-decode-4k", heads: 4, n_q: 1, n_kv: 4096, d: 64 },
];

struct Buffers {
    q: Vec<f32>,
    k: Floats,
    v: Floats,
    out: Vec<f32>,
}

/// Which entry a benchmark calls.
#[derive(Clone, Copy)]
enum Entry {
    /// `run_heads`.
    Single,
    /// `par_run_heads`.
    Parallel,
    /// `par_run_heads_split` with one split point.
    SplitAt(usize),
}

impl Buffers {
    fn new(s: &Shape, pages: Pages) -> Self {
        Buffers {
            q: data(s.heads * s.n_q * s.d, 1),
            k: Floats::new(s.heads * s.n_kv * s.d, 2, pages),
            v: Floats::new(s.heads * s.n_kv * s.d, 3, pages),
            out: vec![0.0; s.heads * s.n_q * s.d],
        }
    }

    fn run(&mut self, s: &Shape, attn: &Attention<'_>, entry: Entry) {
        let q = HeadsRef::heads_major(&self.q, s.heads, s.n_q, s.d).unwrap();
        let k = HeadsRef::heads_major(&self.k, s.heads, s.n_kv, s.d).unwrap();
        let v = HeadsRef::heads_major(&self.v, s.heads, s.n_kv, s.d).unwrap();
        let out = HeadsMut::heads_major(&mut self.out, s.heads, s.n_q, s.d).unwrap();
        match entry {
            Entry::Single => attn.run_heads(q, k, v, out, None),
            Entry::Parallel => attn.par_run_heads(q, k, v, out, None),
            Entry::SplitAt(t) => attn.par_run_heads_split(q, k, v, out, None, KvSplit::At(&[t])),
        }
        .unwrap();
        black_box(&self.out);
    }
}

fn throughput(s: &Shape) -> Throughput {
    if s.n_q == 1 {
        Throughput::Bytes((2 * s.heads * s.n_kv * s.d * 4) as u64)
    } else {
        Throughput::Elements((4 * s.heads * s.n_q * s.n_kv * s.d) as u64)
    }
}

/// DRAM read bandwidth of one thread and of two, on buffers far larger than
/// the caches: the ceiling for decode on 1 and 2 threads, measured in the
/// same run. `single` and `par2` sum one buffer (`par2`: each thread one
/// half); `k-v-single` and `k-v-par2` read two buffers, K and V, as decode
/// does: tiles of 128 rows of 128 floats of each alternately, each thread of
/// `k-v-par2` its own half of both (half of the heads). On 4 KiB pages and,
/// where the system has them, on 2 MiB pages (`-huge-pages`).
fn bandwidth(c: &mut Criterion, pool: &rayon::ThreadPool, quick: bool) {
    let n = if quick { 1 << 22 } else { 1 << 26 };
    let mut g = group(c, "read-bandwidth", quick);
    g.throughput(Throughput::Bytes((n * 4) as u64));
    for pages in Pages::available() {
        let sfx = pages.suffix();
        let data = Floats::<f32>::new(n, 9, pages);
        g.bench_function(format!("single{sfx}"), |b| b.iter(|| black_box(read_all(&data))));
        let (lo, hi) = data.split_at(n / 2);
        g.bench_function(format!("par2{sfx}"), |b| {
            b.iter(|| pool.install(|| black_box(rayon::join(|| read_all(lo), || read_all(hi)))))
        });
        let (k, v) = (lo, hi);
        g.bench_function(format!("k-v-single{sfx}"), |b| b.iter(|| black_box(read_kv(k, v, 128))));
        let ((k0, k1), (v0, v1)) = (k.split_at(n / 4), v.split_at(n / 4));
        g.bench_function(format!("k-v-par2{sfx}"), |b| {
            b.iter(|| {
                pool.install(|| black_box(rayon::join(|| read_kv(k0, v0, 128), || read_kv(k1, v1, 128))))
            })
        });
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let quick = std::env::var_os("STREAMATTN_BENCH_QUICK").is_some();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let level = common::level();
    fma_peak(c, quick);
    bandwidth(c, &pool, quick);
    serving_step(c, &pool, quick);
    let shapes = if quick { QUICK } else { SHAPES };
    for s in shapes {
        let mut g = group(c, s.name, quick);
        g.throughput(throughput(s));
        let mut entries = vec![("single", Entry::Single), ("par2", Entry::Parallel)];
        if s.n_q == 1 {
            entries.push(("par2-split", Entry::SplitAt(s.n_kv / 2)));
        }
        // Decode reads K and V from DRAM: also on 2 MiB pages.
        let pages = if s.n_q == 1 { Pages::available() } else { vec![Pages::Small] };
        for pages in pages {
            let mut b = Buffers::new(s, pages);
            for (name, scorer) in scorers(s.d) {
                let attn = Attention::new(scorer).max_level(level);
                for &(label, entry) in &entries {
                    // The single-thread entry runs on the calling thread, the
                    // parallel ones on the pool of 2.
                    let id = BenchmarkId::new(name, format!("{label}{}", pages.suffix()));
                    g.bench_function(id, |bench| match entry {
                        Entry::Single => bench.iter(|| b.run(s, &attn, entry)),
                        _ => bench.iter(|| pool.install(|| b.run(s, &attn, entry))),
                    });
                }
            }
        }
        g.finish();
    }
}

/// A serving step ([module docs](self)): query rows packed by `cu`, each
/// sequence's cache a block table into one shared pool of K and one of V.
struct Step {
    heads: usize,
    d: usize,
    cu: Vec<usize>,
    lens: Vec<usize>,
    tables: Vec<Vec<u32>>,
    layout: PagedLayout,
    k: Floats<bf16>,
    v: Floats<bf16>,
    q: Vec<f32>,
    out: Vec<f32>,
}

impl Step {
    /// `prefill` new rows over a cache of `prefill_cache`, then one decoding
    /// row over each of `decode_lens`.
    fn new(heads: usize, kv_heads: usize, d: usize, prefill: (usize, usize), decode_lens: &[usize]) -> Step {
        let bs = 16;
        let mut lens = vec![prefill.1];
        lens.extend_from_slice(decode_lens);
        let mut cu = vec![0, prefill.0];
        for _ in decode_lens {
            cu.push(cu.last().unwrap() + 1);
        }
        let blocks: usize = lens.iter().map(|n| n.div_ceil(bs)).sum();
        let order = shuffled(blocks);
        let mut next = 0;
        let tables = lens
            .iter()
            .map(|n| {
                let t = order[next..next + n.div_ceil(bs)].to_vec();
                next += t.len();
                t
            })
            .collect();
        let layout = PagedLayout::seq_major(bs, kv_heads, d).unwrap();
        let total = *cu.last().unwrap();
        Step {
            heads,
            d,
            cu,
            lens,
            tables,
            layout,
            k: Floats::new(blocks * layout.block_stride, 21, Pages::Small),
            v: Floats::new(blocks * layout.block_stride, 22, Pages::Small),
            q: data(total * heads * d, 23),
            out: vec![0.0; total * heads * d],
        }
    }

    fn bytes(&self) -> u64 {
        self.lens.iter().map(|n| (2 * n * self.layout.heads * self.d * 2) as u64).sum()
    }

    /// Each sequence's view of `pool`.
    fn caches<'a>(&'a self, pool: &'a [bf16]) -> Vec<HeadsRef<'a, bf16>> {
        let tables = self.tables.iter().zip(&self.lens);
        tables.map(|(t, &n)| HeadsRef::paged(pool, self.layout, t, n).unwrap()).collect()
    }

    /// The whole step in one call (`par` on the current pool).
    fn batch(&mut self, attn: &Attention<'_>, par: bool) {
        let mut out = std::mem::take(&mut self.out);
        let (k, v) = (self.caches(&self.k), self.caches(&self.v));
        let total = *self.cu.last().unwrap();
        let q = HeadsRef::seq_major(&self.q, self.heads, total, self.d).unwrap();
        let o = HeadsMut::seq_major(&mut out, self.heads, total, self.d).unwrap();
        if par {
            attn.par_run_batch(q, &self.cu, &k, &v, o, None, KvSplit::Auto).unwrap();
        } else {
            attn.run_batch(q, &self.cu, &k, &v, o, None).unwrap();
        }
        black_box(&out);
        drop((k, v));
        self.out = out;
    }

    /// One call per sequence, with the mask at each cache's last rows.
    fn per_sequence(&mut self, attn: &Attention<'_>, par: bool) {
        let mut out = std::mem::take(&mut self.out);
        let (k, v) = (self.caches(&self.k), self.caches(&self.v));
        for s in 0..k.len() {
            let (r0, n) = (self.cu[s], self.cu[s + 1] - self.cu[s]);
            let w = self.heads * self.d;
            let q = HeadsRef::seq_major(&self.q[r0 * w..(r0 + n) * w], self.heads, n, self.d).unwrap();
            let o = HeadsMut::seq_major(&mut out[r0 * w..(r0 + n) * w], self.heads, n, self.d).unwrap();
            let a = attn.mask(Mask::causal_bottom_right(n, self.lens[s]));
            if par {
                a.par_run_heads_split(q, k[s], v[s], o, None, KvSplit::Auto).unwrap();
            } else {
                a.run_heads(q, k[s], v[s], o, None).unwrap();
            }
        }
        black_box(&out);
        drop((k, v));
        self.out = out;
    }
}

fn serving_step(c: &mut Criterion, pool: &rayon::ThreadPool, quick: bool) {
    let mut step = if quick {
        Step::new(4, 2, 64, (64, 512), &[256, 1024, 2048])
    } else {
        let lens: Vec<usize> = (0..31).map(|s| 1024 + s * (32768 - 1024) / 30).collect();
        Step::new(32, 8, 128, (512, 4096), &lens)
    };
    let mut g = group(c, "serving-step", quick);
    g.throughput(Throughput::Bytes(step.bytes()));
    let attn = Attention::new(Scorer::dot()).mask(Mask::Causal { offset: 0 }).max_level(common::level());
    g.bench_function("batch-1t", |b| b.iter(|| step.batch(&attn, false)));
    g.bench_function("batch-2t", |b| b.iter(|| pool.install(|| step.batch(&attn, true))));
    g.bench_function("per-sequence-1t", |b| b.iter(|| step.per_sequence(&attn, false)));
    g.bench_function("per-sequence-2t", |b| b.iter(|| pool.install(|| step.per_sequence(&attn, true))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
