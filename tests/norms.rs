//! Cached key norms (`key_norms`, `Attention::cached_key_norms`): the norms
//! themselves, appending to a cache, every kernel path with cached norms
//! against the f64 reference and against the same call without them, and the
//! shape checks.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

mod common;

use common::Path;
use common::{check, gamma, Case, Layout, Rng, SCORERS};
use streamattn::{key_norms, Attention, Error, HeadsMut, HeadsRef, Level, Mask, Scorer};

/// Each norm against f64: a sum of `d` non-negative squares has relative
/// error at most `γ(d)`.
#[test]
fn norms_match_f64() {
    let mut r = Rng::new(1);
    for (heads, n, d) in [(1, 1, 1), (2, 5, 3), (3, 70, 64), (1, 9, 300)] {
        let k = r.vec(heads * n * d, 3.0);
        let mut norms = vec![f32::NAN; heads * n];
        key_norms(
            HeadsRef::heads_major(&k, heads, n, d).unwrap(),
            HeadsMut::heads_major(&mut norms, heads, n, 1).unwrap(),
        )
        .unwrap();
        for (j, &x) in norms.iter().enumerate() {
            let want: f64 = k[j * d..(j + 1) * d].iter().map(|&a| (a as f64).powi(2)).sum();
            assert!((x as f64 - want).abs() <= gamma(d) * want, "norm {j}: {x} vs {want}");
        }
    }
}

/// A `[seq, heads, d]` cache grown in appends of 1, 7 and 40 rows, with the
/// norms of each append written into a `[seq, heads]` norms buffer of the same
/// capacity: the same norms as computing them all at once, and nothing
/// outside the appended rows written.
#[test]
fn appending_equals_computing_at_once() {
    let (heads, cap, d) = (3, 64, 20);
    let k = Rng::new(2).vec(cap * heads * d, 1.0);
    let mut all = vec![0.0f32; cap * heads];
    key_norms(
        HeadsRef::seq_major(&k, heads, cap, d).unwrap(),
        HeadsMut::seq_major(&mut all, heads, cap, 1).unwrap(),
    )
    .unwrap();
    let mut grown = vec![f32::NAN; cap * heads];
    let mut n = 0;
    for add in [1, 7, 40] {
        let new_k = HeadsRef::seq_major(&k[n * heads * d..], heads, add, d).unwrap();
        let new_norms = HeadsMut::seq_major(&mut grown[n * heads..], heads, add, 1).unwrap();
        key_norms(new_k, new_norms).unwrap();
        n += add;
        assert_eq!(grown[..n * heads], all[..n * heads]);
        assert!(grown[n * heads..].iter().all(|x| x.is_nan()), "wrote past the appended rows");
    }
}

/// Every scorer (Dot and Additive ignore the norms), decode and prefill
/// paths, column-chunked heads (d = 300), grouped-query heads, masks and
/// layouts: each kernel with cached norms against the f64 reference and the
/// scalar path (`check`).
#[test]
fn every_path_with_cached_norms() {
    let mut seed = 10;
    let shapes = [
        (1, 1, 1, 1000, 64),
        (4, 2, 1, 300, 128),
        (8, 1, 1, 200, 17),
        (2, 2, 40, 150, 64),
        (1, 1, 9, 140, 300),
    ];
    for (heads, kv_heads, n_q, n_kv, d) in shapes {
        for scorer in SCORERS {
            for layout in [Layout::HeadsMajor, Layout::SeqMajor, Layout::Padded(2)] {
                seed += 1;
                let mask = if seed % 2 == 0 { Mask::None } else { Mask::causal_bottom_right(n_q, n_kv) };
                let case = Case::random(seed, heads, kv_heads, n_q, n_kv, d, 6, scorer)
                    .with_mask(mask)
                    .with_layout(layout)
                    .with_cached_norms();
                check(&case);
            }
        }
    }
}

/// In the prefill loop with heads it packs whole (up to 256 columns with
/// SIMD, 64 at `Level::Generic`) the kernel sums the norms it computes itself
/// as `key_norms` does: cached norms give bit-identical results there.
#[test]
fn prefill_with_cached_norms_is_bit_identical() {
    for (seed, d) in [(20, 3), (21, 64), (22, 128), (23, 256)] {
        for scorer in [Scorer::neg_sq_dist(), Scorer::neg_log_dist(), Scorer::NegLogDist { eps: 0.0, p: 3.0 }]
        {
            let case = Case::random(seed, 2, 1, 30, 300, d, 8, scorer);
            for kernel in common::tiled() {
                // The widest head packed whole (wider ones are packed in
                // column chunks, which compute the norms from the chunks): the
                // tuning table's `packed / (TK / 2)`, smaller on targets without
                // SIMD.
                let generic =
                    if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) { 64 } else { 16 };
                let whole = if kernel == Path::Tiled(Level::Generic) { generic } else { 256 };
                if d > whole {
                    continue;
                }
                let plain = case.run(kernel);
                let cached = case.clone().with_cached_norms().run(kernel);
                let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same(&plain.0, &cached.0) && same(&plain.1, &cached.1),
                    "{scorer:?} {kernel:?} d={d}"
                );
            }
        }
    }
}

#[test]
fn norms_of_the_wrong_shape_are_rejected() {
    let (n_kv, d) = (5, 4);
    let (q, k, v) = (vec![0.5f32; 2 * d], vec![0.25f32; 2 * n_kv * d], vec![1.0f32; 2 * n_kv * 3]);
    let mut out = vec![0.0f32; 2 * 3];
    let mut buf = vec![0.0f32; 3 * (n_kv + 1) * 2];
    // (heads, rows, cols) of the norms view, and the error's (expected, found).
    let bad = [
        ((1, n_kv, 1), (2, 1)),
        ((2, n_kv - 1, 1), (n_kv, n_kv - 1)),
        ((2, n_kv + 1, 1), (n_kv, n_kv + 1)),
        ((2, n_kv, 2), (1, 2)),
    ];
    for ((h, r, c), (expected, found)) in bad {
        let want = Error::ShapeMismatch { what: "key_norms", expected, found };
        let kv = HeadsRef::heads_major(&k, 2, n_kv, d).unwrap();
        assert_eq!(key_norms(kv, HeadsMut::heads_major(&mut buf, h, r, c).unwrap()), Err(want));
        for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
            let norms = HeadsRef::heads_major(&buf, h, r, c).unwrap();
            let res = Attention::new(scorer).cached_key_norms(norms).run_heads(
                HeadsRef::heads_major(&q, 2, 1, d).unwrap(),
                kv,
                HeadsRef::heads_major(&v, 2, n_kv, 3).unwrap(),
                HeadsMut::heads_major(&mut out, 2, 1, 3).unwrap(),
                None,
            );
            assert_eq!(res, Err(want), "{scorer:?}");
            assert!(out.iter().all(|&x| x == 0.0), "output written on error");
        }
    }
}
