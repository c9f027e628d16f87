//! `NegSqDist` on data far from the origin: clustered queries and keys whose
//! cluster sits at 1, 10, 100 and 1000 times its spread from the origin.
//!
//! Every kernel measures distances from a centre among the queries, so its
//! rounding scales with the spread, not with the offset. The criterion is
//! fixed, not derived: output error at most `1e-5 · max|v|` and lse error at
//! most `1e-5 · (1 + |lse|)` against the f64 reference, for `scale` from
//! 0.01 (nearly uniform weights) to 4 (nearly one-hot), in decode (1 and 8
//! rows on one key/value head), prefill (more rows than a micro-block, with
//! a causal mask) and heads wider than the packed tile (300 columns). The
//! derived tolerance of `common::Reference` must hold as well.

#![allow(clippy::pedantic)]

mod common;

use common::{paths, Case, Rng};
use streamattn::{Mask, Scorer};

/// A case whose queries and keys are uniform in a cube of half-width
/// `spread` around a point at `offset · spread` from the origin in every
/// coordinate (signs random): distances within the cluster are about
/// `spread · √(2d/3)`, the cluster's distance from the origin
/// `offset · spread · √d`.
fn clustered(seed: u64, heads: usize, n_q: usize, n_kv: usize, d: usize, offset: f32, scale: f32) -> Case {
    let mut rng = Rng::new(seed);
    // Squared distances of about 2 within the cluster.
    let spread = (3.0 / d as f32).sqrt();
    let centre: Vec<f32> =
        (0..d).map(|_| offset * spread * if rng.below(2) == 0 { 1.0 } else { -1.0 }).collect();
    let mut case = Case::random(seed, heads, 1, n_q, n_kv, d, 8, Scorer::NegSqDist { scale: Some(scale) });
    for (t, x) in case.q.iter_mut().chain(case.k.iter_mut()).enumerate() {
        *x = centre[t % d] + spread * rng.sym();
    }
    case
}

#[test]
fn neg_sq_dist_is_accurate_far_from_the_origin() {
    let mut worst = (0.0f64, 0.0f64);
    let mut seed = 0;
    for offset in [1.0f32, 10.0, 100.0, 1000.0] {
        for scale in [0.01f32, 0.1, 1.0, 4.0] {
            for (heads, n_q, n_kv, d, mask) in [
                (1, 1, 700, 64, Mask::None),
                (8, 1, 300, 128, Mask::None),
                (2, 40, 300, 64, Mask::Causal { offset: 260 }),
                (1, 9, 200, 300, Mask::None),
            ] {
                seed += 1;
                let case = clustered(seed, heads, n_q, n_kv, d, offset, scale).with_mask(mask);
                let r = case.reference();
                let vmax = case.v.iter().fold(0.0f64, |a, &x| a.max((x as f64).abs()));
                for kernel in paths() {
                    let what =
                        format!("offset {offset}, scale {scale}, {heads}×{n_q}×{n_kv}×{d}, {kernel:?}");
                    let (out, lse) = case.run(kernel);
                    r.assert_close(&out, &lse, 1.0, &what);
                    for (idx, (&x, &want)) in out.iter().zip(&r.out).enumerate() {
                        let err = (x as f64 - want).abs() / vmax;
                        worst.0 = worst.0.max(err);
                        assert!(err <= 1e-5, "{what}: out[{idx}] {x} vs {want}: {err:e} · max|v|");
                    }
                    for (idx, (&x, &want)) in lse.iter().zip(&r.lse).enumerate() {
                        let err = (x as f64 - want).abs() / (1.0 + want.abs());
                        worst.1 = worst.1.max(err);
                        assert!(err <= 1e-5, "{what}: lse[{idx}] {x} vs {want}: {err:e} · (1 + |lse|)");
                    }
                }
            }
        }
    }
    println!("largest errors: output {:.2e} · max|v|, lse {:.2e} · (1 + |lse|)", worst.0, worst.1);
}
