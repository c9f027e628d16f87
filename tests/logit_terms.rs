//! Logit softcapping, ALiBi and attention sinks: every scorer, mask and
//! kernel (scalar path and every dispatch level, prefill blocks and decode
//! passes, grouped heads, 16-bit caches) against the f64 reference of
//! `tests/common`, whose tolerance derivation covers each term (step 1 for
//! the softcap and ALiBi, the sink as one more exact logit of value 0); the
//! parallel entries, the errors and the edge cases here too.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

mod common;

use common::{check, Case, Elem, Path};
use streamattn::{Attention, Error, Mask, MatMut, MatRef, Scorer};

/// (heads, kv_heads, n_q, n_kv, d, d_v): decode passes (one row, grouped
/// heads), prefill blocks, lane remainders, a head wider than a packed tile.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (2, 2, 1, 300, 64, 64),
    (8, 2, 1, 150, 17, 9),
    (2, 1, 3, 129, 17, 33),
    (1, 1, 40, 150, 64, 64),
    (2, 2, 17, 65, 15, 17),
    (1, 1, 9, 70, 300, 40),
];

fn masks(n_q: usize, n_kv: usize) -> [(Mask, Option<usize>); 3] {
    [
        (Mask::None, None),
        (Mask::causal_bottom_right(n_q, n_kv), None),
        (Mask::Window { offset: n_kv.saturating_sub(n_q), left: 20, right: 2 }, Some(n_kv - n_kv / 5)),
    ]
}

/// The terms a case gets, by `t`: softcap, ALiBi, sinks, and all three with
/// a bias.
fn with_terms(case: Case, t: usize, seed: u64) -> Case {
    match t {
        0 => case.with_softcap(2.5),
        1 => case.with_alibi(1.0),
        2 => case.with_sinks(seed, 3.0),
        _ => case.with_softcap(30.0).with_alibi(0.5).with_sinks(seed, 1.0).with_random_bias(seed, 1.0, false),
    }
}

#[test]
fn every_scorer_mask_shape_and_term() {
    let mut seed = 9100;
    for &(heads, kv_heads, n_q, n_kv, d, dv) in SHAPES {
        for scorer in common::SCORERS {
            for (mask, key_len) in masks(n_q, n_kv) {
                for t in 0..4 {
                    seed += 1;
                    let elem = Elem::ALL[seed as usize % 3];
                    let mut case = Case::random(seed, heads, kv_heads, n_q, n_kv, d, dv, scorer)
                        .with_mask(mask)
                        .with_elem(elem);
                    if let Some(n) = key_len {
                        case = case.with_key_len(n);
                    }
                    check(&with_terms(case, t, seed));
                }
            }
        }
    }
}

/// Large logits: the softcap bounds them (scores of ±1e4 capped to ±5), and
/// steep ALiBi slopes leave only the nearest keys with weight.
#[test]
fn large_scores_and_steep_slopes() {
    for (seed, scorer) in common::SCORERS.into_iter().enumerate() {
        let mut case = Case::random(seed as u64, 2, 1, 5, 90, 16, 8, scorer);
        case.q.iter_mut().for_each(|x| *x *= 30.0);
        case.k.iter_mut().for_each(|x| *x *= 30.0);
        check(&case.clone().with_softcap(5.0));
        check(&case.clone().with_alibi(40.0).with_mask(Mask::causal_bottom_right(5, 90)));
        check(&case.with_sinks(3, 50.0));
    }
}

/// A row with no visible key has output 0 and log-sum-exp equal to its
/// sink; without keys at all, every row.
#[test]
fn a_row_with_no_key_gives_its_sink() {
    let sinks = [0.5f32, -2.0];
    for kernel in common::paths() {
        let attn = kernel.set(Attention::new(Scorer::dot()).sinks(&sinks));
        let q = [1.0f32; 2 * 3 * 4];
        let k = [1.0f32; 2 * 4];
        let mut out = [7.0f32; 2 * 3 * 4];
        let mut lse = [0.0f32; 2 * 3];
        attn.key_len(0)
            .run_heads(
                streamattn::HeadsRef::heads_major(&q, 2, 3, 4).unwrap(),
                streamattn::HeadsRef::heads_major(&k, 1, 2, 4).unwrap(),
                streamattn::HeadsRef::heads_major(&k, 1, 2, 4).unwrap(),
                streamattn::HeadsMut::heads_major(&mut out, 2, 3, 4).unwrap(),
                Some(&mut lse),
            )
            .unwrap();
        assert!(out.iter().all(|&x| x == 0.0), "{kernel:?}: {out:?}");
        assert_eq!(lse, [0.5, 0.5, 0.5, -2.0, -2.0, -2.0], "{kernel:?}");
    }
}

/// ALiBi is the bias matrix `−slope·|i + key_len − n_q − j|` computed on
/// the fly: the same result as that bias given explicitly, within the
/// tolerance (the explicit bias is rounded to f32 once).
#[test]
fn alibi_matches_its_explicit_bias() {
    for (seed, scorer) in common::SCORERS.into_iter().enumerate() {
        let (heads, n_q, n_kv) = (4, 6, 77);
        let case = Case::random(40 + seed as u64, heads, 2, n_q, n_kv, 8, 8, scorer).with_alibi(2.0);
        let mut bias = Vec::new();
        for h in 0..heads {
            for i in 0..n_q {
                for j in 0..n_kv {
                    bias.push(case.alibi_at(h, i, j) as f32);
                }
            }
        }
        let explicit = Case { slopes: None, bias: Some(bias), ..case.clone() };
        let r = explicit.reference();
        for kernel in common::paths() {
            let (o, l) = case.run(kernel);
            r.assert_close(&o, &l, 2.0, &format!("{scorer:?} {kernel:?}: ALiBi vs explicit bias"));
        }
    }
}

#[test]
fn bad_softcap_slopes_and_sinks_are_rejected_before_any_write() {
    let q = [0.5f32; 2 * 4];
    let mut out = [9.0f32; 2 * 4];
    let run = |a: Attention<'_>, out: &mut [f32]| {
        a.run(
            MatRef::dense(&q, 2, 4).unwrap(),
            MatRef::dense(&q, 2, 4).unwrap(),
            MatRef::dense(&q, 2, 4).unwrap(),
            MatMut::dense(out, 2, 4).unwrap(),
        )
    };
    let dot = Attention::new(Scorer::dot());
    for cap in [0.0, -1.0, f32::INFINITY, f32::NAN] {
        let e = run(dot.softcap(cap), &mut out).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { what: "softcap", .. }), "{cap}: {e:?}");
    }
    for (what, bad) in [("alibi_slopes", f32::NAN), ("sinks", f32::NEG_INFINITY)] {
        let with = |x: &'static [f32]| if what == "sinks" { dot.sinks(x) } else { dot.alibi(x) };
        let e = run(with(&[1.0, 2.0]), &mut out).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { what, expected: 1, found: 2 });
        let e = run(with(&[]), &mut out).unwrap_err();
        assert_eq!(e, Error::ShapeMismatch { what, expected: 1, found: 0 });
        let e = run(with(Box::leak(Box::new([bad]))), &mut out).unwrap_err();
        assert!(matches!(e, Error::InvalidParameter { what: w, .. } if w == what), "{e:?}");
    }
    assert!(out.iter().all(|&x| x == 9.0), "an error wrote the output");
    // Valid values pass.
    run(dot.softcap(1e-30).alibi(&[-3.0]).sinks(&[1e30]), &mut out).unwrap();
}

/// Softcap on `Path::Scalar` and the tiled kernel: a softcapped score never
/// exceeds the cap, so a cap of 1 makes every weight lie within `e^{±2}` of
/// the others whatever the scores.
#[test]
fn softcap_bounds_the_weights() {
    let k: Vec<f32> = (0..64).map(|j| (j as f32 - 32.0) * 1e3).collect();
    let v: Vec<f32> = (0..64).map(|j| if j == 0 { 1.0 } else { 0.0 }).collect();
    for kernel in common::paths() {
        let mut out = [0.0f32];
        kernel
            .set(Attention::new(Scorer::Dot { scale: Some(1.0) }).softcap(1.0))
            .run(
                MatRef::dense(&[1.0], 1, 1).unwrap(),
                MatRef::dense(&k, 64, 1).unwrap(),
                MatRef::dense(&v, 64, 1).unwrap(),
                MatMut::dense(&mut out, 1, 1).unwrap(),
            )
            .unwrap();
        // Key 0 scores −32000 → −1; half the keys score ≥ 1000 → 1.
        let e2 = (2.0f32).exp();
        assert!(out[0] > 1.0 / (64.0 * e2) && out[0] < e2 / 64.0, "{kernel:?}: {}", out[0]);
    }
    let _ = Path::best();
}
