//! Split-KV decode: one query against a long KV cache, the key range split
//! across threads, the partial results merged by log-sum-exp.
//!
//! The recipe, for any scorer and mask-free decode:
//! 1. split the cache rows `0..n_kv` into contiguous parts;
//! 2. on each part, `run_lse` with K and V viewed as the part's rows
//!    (`MatRef::new` on a sub-slice: no copy);
//! 3. fold the parts together with `merge` (any order: it is commutative, and
//!    associative up to rounding).
//!
//! The crate owns no threads; here `std::thread::scope` runs the parts.
//! Run: `cargo run --release --example split_kv`

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use std::time::Instant;
use streamattn::{merge, Attention, MatMut, MatRef, Scorer};

fn main() -> Result<(), streamattn::Error> {
    let (n_kv, d, parts) = (1 << 18, 128, 4);
    let mut x = 12345u32;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    };
    let q: Vec<f32> = (0..d).map(|_| rnd()).collect();
    let k: Vec<f32> = (0..n_kv * d).map(|_| rnd()).collect();
    let v: Vec<f32> = (0..n_kv * d).map(|_| rnd()).collect();
    let attn = Attention::new(Scorer::neg_sq_dist());

    // The whole range in one call.
    let t = Instant::now();
    let mut whole = vec![0.0f32; d];
    let mut whole_lse = [0.0f32];
    attn.run_lse(
        MatRef::dense(&q, 1, d)?,
        MatRef::dense(&k, n_kv, d)?,
        MatRef::dense(&v, n_kv, d)?,
        MatMut::dense(&mut whole, 1, d)?,
        &mut whole_lse,
    )?;
    let one = t.elapsed();

    // The same range in `parts` pieces on as many threads, then merged.
    let t = Instant::now();
    let len = n_kv / parts;
    let mut partials: Vec<(Vec<f32>, [f32; 1])> = vec![(vec![0.0; d], [0.0]); parts];
    std::thread::scope(|s| {
        for (p, (out, lse)) in partials.iter_mut().enumerate() {
            let (k, v, q) = (&k[p * len * d..(p + 1) * len * d], &v[p * len * d..(p + 1) * len * d], &q);
            s.spawn(move || {
                attn.run_lse(
                    MatRef::dense(q, 1, d).unwrap(),
                    MatRef::dense(k, len, d).unwrap(),
                    MatRef::dense(v, len, d).unwrap(),
                    MatMut::dense(out, 1, d).unwrap(),
                    lse,
                )
                .unwrap();
            });
        }
    });
    let (mut acc, mut acc_lse) = partials[0].clone();
    for (out, lse) in &partials[1..] {
        merge(MatMut::dense(&mut acc, 1, d)?, &mut acc_lse, MatRef::dense(out, 1, d)?, lse)?;
    }
    let split = t.elapsed();

    let diff = acc.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    let scale = whole.iter().map(|x| x.abs()).fold(0.0, f32::max);
    println!("n_kv = {n_kv}, d = {d}, {parts} parts on {parts} threads");
    println!("one call : {:8.2} ms, lse {:.6}", one.as_secs_f64() * 1e3, whole_lse[0]);
    println!("split    : {:8.2} ms, lse {:.6}", split.as_secs_f64() * 1e3, acc_lse[0]);
    println!("largest output difference {diff:.2e} (largest |output| {scale:.3e})");
    Ok(())
}
