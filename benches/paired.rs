//! What softcap, ALiBi, sinks and a paged cache cost, as paired ratios
//! against the same call without them (`Dot`, causal or not as the shape
//! is, at the best level the CPU has or at most `STREAMATTN_BENCH_LEVEL`).
//!
//! Each comparison times the plain call and the variant in pairs, in
//! alternating order, and reports the median over the pairs of
//! `time(variant) / time(plain)` with an approximate 95% confidence
//! interval (order statistics). The two calls of a pair run a few
//! milliseconds apart and meet the same load, so a ratio holds to a percent
//! or two on a shared machine whose speed drifts by tens of percent from
//! one second to the next, which separate measurements (criterion's) cannot
//! resolve. Each round of pairs also times the FMA peak and the read
//! bandwidth, reported as medians over the rounds.
//!
//! Shapes (`benches/attention.rs`): `prefill-1k-d128`, `decode-32k-d128`
//! and `gqa-decode-32k`, K and V on 4 KiB pages. Variants: `softcap` (30),
//! `alibi` (the standard slopes `2^(−8(h+1)/heads)`), `sinks` (one logit per
//! head), the three together, and the same K and V in a paged pool of
//! blocks of 16 and of 128 rows in a shuffled order (`paged16`,
//! `paged128`). Then `read`: what the memory system gives those access
//! orders, reading K and V of 8 heads in 16- and 128-row blocks in a
//! shuffled order against reading them in order (`memory` below).
//!
//! Run: `cargo bench --bench paired` (about 2 minutes; `STREAMATTN_PAIRS`
//! rounds, default 31), or only the comparisons whose names contain a word:
//! `cargo bench --bench paired -- decode`. `STREAMATTN_BENCH_QUICK=1` for a
//! smoke run (small shapes, 3 rounds).

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use std::hint::black_box;
use std::time::Instant;
use streamattn::{Attention, Mask, Scorer};

// The criterion helpers of the other benches go unused here.
#[allow(dead_code)]
mod common;
use common::cache::{Buffers, PagedCache, Shape, QUICK, SHAPES};
use common::{fma_gflops, prefetch_l2, read_all, read_kv, shuffled, Floats, Pages};

/// A call timed in a pair: runs once on its context (a shape's buffers).
type Call<'a, C> = Box<dyn FnMut(&mut C) + 'a>;

/// Seconds per call of `f`, timed over `calls` calls.
fn time(f: &mut dyn FnMut(), calls: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..calls {
        f();
    }
    t.elapsed().as_secs_f64() / calls as f64
}

fn median(x: &mut [f64]) -> f64 {
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

/// The median of `x` and the order statistics around it that cover the
/// population median with about 95% probability (normal approximation of
/// the binomial; the extremes for fewer than 8 values).
fn median_interval(x: &mut [f64]) -> (f64, f64, f64) {
    x.sort_by(f64::total_cmp);
    let n = x.len();
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor().max(0.0)) as usize;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).min(n - 1);
    (x[n / 2], x[lo], x[hi])
}

fn main() {
    // `cargo bench` passes `--bench`; a word after it keeps the comparisons
    // (shapes, and `read`) whose names contain it.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-')).unwrap_or_default();
    let quick = std::env::var_os("STREAMATTN_BENCH_QUICK").is_some();
    let rounds: usize = match std::env::var("STREAMATTN_PAIRS") {
        Ok(n) => n.parse().expect("STREAMATTN_PAIRS: a number of rounds"),
        Err(_) if quick => 3,
        Err(_) => 31,
    };
    let level = common::level();
    let dot = Attention::new(Scorer::dot()).max_level(level);
    println!("kernels at {}, {rounds} rounds of pairs", dot.level());
    let probe = Floats::<f32>::new(if quick { 1 << 22 } else { 1 << 26 }, 9, Pages::Small);
    let names: &[&str] = if quick {
        &["quick-256-d64", "quick-decode-4k"]
    } else {
        &["prefill-1k-d128", "decode-32k-d128", "gqa-decode-32k"]
    };
    let shapes = names.iter().filter(|n| n.contains(&*filter));
    for s in shapes.map(|n| SHAPES.iter().chain(QUICK).find(|s| s.name == *n).unwrap()) {
        compare(s, &dot, &probe, rounds);
    }
    if "read".contains(&*filter) {
        memory(&probe, rounds);
    }
}

/// `attn` on the contiguous buffers of `s`.
fn plain_call<'a>(s: &'a Shape, attn: Attention<'a>) -> Call<'a, Buffers> {
    Box::new(move |b: &mut Buffers| b.run(s, s.heads, &attn))
}

/// The comparisons of shape `s`, `rounds` rounds of one pair each.
fn compare(s: &Shape, dot: &Attention<'_>, probe: &[f32], rounds: usize) {
    let mask = if s.causal { Mask::causal_bottom_right(s.n_q, s.n_kv) } else { Mask::None };
    let plain = dot.mask(mask);
    let slopes: Vec<f32> = (0..s.heads).map(|h| (-8.0 * (h as f32 + 1.0) / s.heads as f32).exp2()).collect();
    let sinks: Vec<f32> = (0..s.heads).map(|h| h as f32 * 0.25 - 1.0).collect();
    let mut b = Buffers::<f32>::new(s, s.heads, Pages::Small);
    let mut calls: Vec<(&str, Call<'_, Buffers>)> = Vec::new();
    let with = |attn| plain_call(s, attn);
    // Softcap, ALiBi and sinks on the shapes with one query head per
    // key/value head.
    if s.heads == s.kv_heads {
        calls.push(("softcap", with(plain.softcap(30.0))));
        calls.push(("alibi", with(plain.alibi(&slopes))));
        calls.push(("sinks", with(plain.sinks(&sinks))));
        calls.push(("softcap-alibi-sinks", with(plain.softcap(30.0).alibi(&slopes).sinks(&sinks))));
    }
    for bs in [16, 128] {
        let mut paged = PagedCache::new(s, &b, bs, Pages::Small);
        let name = if bs == 16 { "paged16" } else { "paged128" };
        calls.push((name, Box::new(move |b: &mut Buffers| paged.run(s, b, &plain))));
    }
    let (amount, unit) = if s.n_q == 1 {
        ((2 * s.kv_heads * s.n_kv * s.d * 4) as f64 / (1u64 << 30) as f64, "GiB/s of K and V")
    } else {
        ((4 * s.heads * s.n_q * s.n_kv * s.d / if s.causal { 2 } else { 1 }) as f64 / 1e9, "GFLOP/s")
    };
    let title = format!("{}: dot/tiled", s.name);
    pairs(&title, (amount, unit), &mut b, |b| b.run(s, s.heads, &plain), &mut calls, probe, rounds);
}

/// What the memory system gives the access orders of a decode pass: K and V
/// of 8 heads (`[n_blocks, heads, rows, 128]` pools, half of `probe` each),
/// read alternately 128 rows of one head at a time in order (the plain
/// call), or in blocks of 16 or 128 rows in a shuffled order, one head after
/// the other (as a decode pass reads a paged cache), the same asking L2 for
/// each block two blocks ahead (as the decode pass's prefetch does), or the
/// heads of 8 blocks in turn, or of each block (alternating K and V per
/// head, or all of the block's K and then all of its V), as a pass over
/// several heads at once could.
fn memory(probe: &[f32], rounds: usize) {
    let (k, v) = probe.split_at(probe.len() / 2);
    let heads = 8;
    let mut calls: Vec<(&str, Call<'_, ()>)> = Vec::new();
    // (name, rows per block, blocks whose heads are read in turn (0: all),
    // blocks prefetched ahead, heads read at once: their K, then their V)
    let orders = [
        ("blocks16", 16, 0, 0, 1),
        ("blocks16-prefetched", 16, 0, 2, 1),
        ("blocks16-heads-in-turn", 16, 8, 0, 1),
        ("blocks16-block-by-block", 16, 1, 0, 1),
        ("blocks16-k-then-v-of-each-block", 16, 1, 0, heads),
        ("blocks128", 128, 0, 0, 1),
    ];
    for (name, rows, group, ahead, span) in orders {
        let chunk = rows * 128;
        let table = shuffled(k.len() / (heads * chunk));
        let at = move |b: u32, h: usize| (b as usize * heads + h) * chunk;
        let group = if group == 0 { table.len() } else { group };
        calls.push((
            name,
            Box::new(move |_: &mut ()| {
                let mut sum = 0.0;
                for g in table.chunks(group) {
                    for h in (0..heads).step_by(span) {
                        for (i, &b) in g.iter().enumerate() {
                            if let Some(&next) = g.get(i + ahead).filter(|_| ahead > 0) {
                                prefetch_l2(&k[at(next, h)..][..chunk]);
                                prefetch_l2(&v[at(next, h)..][..chunk]);
                            }
                            let n = span * chunk;
                            sum += read_all(&k[at(b, h)..][..n]) + read_all(&v[at(b, h)..][..n]);
                        }
                    }
                }
                black_box(sum);
            }),
        ));
    }
    let amount = (probe.len() * 4) as f64 / (1u64 << 30) as f64;
    let plain = |_: &mut ()| {
        black_box(read_kv(k, v, 128));
    };
    pairs("read: 128-row tiles in order", (amount, "GiB/s"), &mut (), plain, &mut calls, probe, rounds);
}

/// Times `base` and each of `calls` in `rounds` rounds of pairs and prints
/// the base's throughput (`amount` per call, in `unit`) and each call's time
/// ratio to it; each round also times the FMA peak and a read of `probe`.
fn pairs<C>(
    title: &str,
    (amount, unit): (f64, &str),
    ctx: &mut C,
    base: impl Fn(&mut C),
    calls: &mut [(&str, Call<'_, C>)],
    probe: &[f32],
    rounds: usize,
) {
    // Calls per timing: enough for 10 ms (after a warm-up call).
    base(ctx);
    let once = time(&mut || base(ctx), 1);
    let reps = ((0.01 / once).ceil() as usize).max(1);
    let mut plain_t = vec![];
    let mut ratios = vec![vec![]; calls.len()];
    let (mut peak, mut bandwidth) = (vec![], vec![]);
    let mut peak_name = "";
    for round in 0..rounds {
        for (i, (_, call)) in calls.iter_mut().enumerate() {
            call(ctx);
            let (tb, tv) = if (round + i) % 2 == 0 {
                let tb = time(&mut || base(ctx), reps);
                (tb, time(&mut || call(ctx), reps))
            } else {
                let tv = time(&mut || call(ctx), reps);
                (time(&mut || base(ctx), reps), tv)
            };
            plain_t.push(tb);
            ratios[i].push(tv / tb);
        }
        if let Some((name, gflops)) = fma_gflops() {
            peak_name = name;
            peak.push(gflops);
        }
        let t = Instant::now();
        black_box(read_all(black_box(probe)));
        bandwidth.push((probe.len() * 4) as f64 / t.elapsed().as_secs_f64() / (1u64 << 30) as f64);
    }
    let t = median(&mut plain_t);
    let calls_word = if reps == 1 { "call" } else { "calls" };
    println!(
        "\n{title} {:.2} {unit} ({:.2} ms per call, {reps} {calls_word} per timing)",
        amount / t,
        t * 1e3
    );
    if !peak.is_empty() {
        println!("  fma-peak/{peak_name} {:.1} GFLOP/s (median of the rounds)", median(&mut peak));
    }
    println!(
        "  read bandwidth {:.2} GiB/s ({} MiB read through, median of the rounds)",
        median(&mut bandwidth),
        probe.len() >> 18
    );
    println!("  {:<32} {:>12} {:>22} {:>12}", "variant", "time ratio", "95% interval", "throughput");
    for ((name, _), r) in calls.iter().zip(&mut ratios) {
        let (m, lo, hi) = median_interval(r);
        println!("  {name:<32} {m:>12.4} {:>22} {:>11.3}×", format!("[{lo:.4}, {hi:.4}]"), 1.0 / m);
    }
}
