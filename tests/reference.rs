//! Both kernels against the materialised f64 reference (tests/common), for
//! every scorer, mask, grouping and layout, with the tolerance derived in
//! tests/common/mod.rs.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

mod common;

use common::{check, Case, Layout, Rng};
use streamattn::{Mask, Scorer};

fn masks(n_q: usize, n_kv: usize) -> Vec<(Mask, Option<usize>)> {
    vec![
        (Mask::None, None),
        (Mask::Causal { offset: 0 }, None),
        (Mask::causal_bottom_right(n_q, n_kv), None),
        (Mask::Window { offset: n_kv.saturating_sub(n_q), left: 3, right: 2 }, None),
        (Mask::Window { offset: 0, left: 40, right: 0 }, None),
        (Mask::None, Some(n_kv - n_kv / 3)),
        (Mask::Causal { offset: n_kv / 2 }, Some(n_kv - n_kv / 4)),
    ]
}

/// (n_q, n_kv, d, d_v): d = 1, d not a multiple of 4, 8 or 16, n_kv = 1, n_kv
/// not a multiple of any tile.
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 1),
    (3, 5, 1, 2),
    (7, 33, 3, 5),
    (17, 65, 15, 17),
    (5, 100, 31, 33),
    (9, 70, 64, 64),
    (4, 129, 100, 40),
    (2, 40, 130, 7),
    (33, 47, 17, 16),
];

#[test]
fn every_scorer_mask_and_shape() {
    let mut seed = 1;
    for &(n_q, n_kv, d, dv) in SHAPES {
        for scorer in common::SCORERS {
            for (mask, key_len) in masks(n_q, n_kv) {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, d, dv, scorer).with_mask(mask);
                if let Some(n) = key_len {
                    case = case.with_key_len(n);
                }
                check(&case);
            }
        }
    }
}

#[test]
fn grouped_query_heads_in_every_layout() {
    let layouts = [Layout::HeadsMajor, Layout::SeqMajor, Layout::Padded(3)];
    let groupings = [(1, 1), (2, 2), (4, 2), (6, 2), (8, 1), (3, 3)];
    let mut seed = 1000;
    for layout in layouts {
        for (heads, kv_heads) in groupings {
            for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
                seed += 1;
                let case = Case::random(seed, heads, kv_heads, 5, 37, 19, 11, scorer)
                    .with_layout(layout)
                    .with_mask(Mask::causal_bottom_right(5, 37));
                check(&case);
            }
        }
    }
}

#[test]
fn bias_per_head_and_shared() {
    let mut seed = 2000;
    for scorer in common::SCORERS {
        for shared in [false, true] {
            seed += 1;
            let case = Case::random(seed, 4, 2, 6, 45, 12, 9, scorer)
                .with_random_bias(seed + 7, 3.0, shared)
                .with_mask(Mask::Window { offset: 10, left: 20, right: 5 });
            check(&case);
        }
    }
}

#[test]
fn bias_with_minus_infinity_masks_keys() {
    let mut case = Case::random(3, 1, 1, 4, 50, 8, 4, Scorer::dot()).with_random_bias(4, 1.0, false);
    let bias = case.bias.as_mut().unwrap();
    // Row 0 sees only the odd keys; row 3 sees nothing at all.
    for j in (0..50).step_by(2) {
        bias[j] = f32::NEG_INFINITY;
    }
    for j in 0..50 {
        bias[3 * 50 + j] = f32::NEG_INFINITY;
    }
    check(&case);
    for kernel in common::paths() {
        let (out, lse) = case.run(kernel);
        assert_eq!(&out[3 * 4..], &[0.0; 4], "{kernel:?}");
        assert_eq!(lse[3], f32::NEG_INFINITY, "{kernel:?}");
    }
}

#[test]
fn long_rows_see_every_key() {
    // One value column is one-hot at the very last key, another at a key in the
    // middle of a tile: a skipped or double-counted key changes the result by
    // 100% of its (tiny) expected value, far beyond the tolerance.
    for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
        let n_kv = 20_011;
        let mut case = Case::random(77, 1, 1, 3, n_kv, 8, 3, scorer);
        for j in 0..n_kv {
            case.v[j * 3] = (j == n_kv - 1) as u8 as f32;
            case.v[j * 3 + 1] = (j == 10_017) as u8 as f32;
        }
        check(&case);
        check(&case.clone().with_mask(Mask::Window { offset: 15_000, left: 9_000, right: 2_000 }));
    }
}

#[test]
fn logdist_query_equal_to_a_key_returns_that_value() {
    for (eps, p) in [(1e-3, 2.0), (0.0, 2.0), (1e-4, 1.0)] {
        let scorer = Scorer::NegLogDist { eps, p };
        let mut case = Case::random(11, 1, 1, 4, 64, 16, 5, scorer);
        // Spread the keys out so that only the matching key is near.
        case.k.iter_mut().for_each(|x| *x *= 4.0);
        for i in 0..4 {
            let j = 5 + 13 * i;
            let key = case.krow(0, j).to_vec();
            case.q[i * 16..(i + 1) * 16].copy_from_slice(&key);
        }
        check(&case);
        for kernel in common::paths() {
            let (out, lse) = case.run(kernel);
            for i in 0..4 {
                let j = 5 + 13 * i;
                for c in 0..5 {
                    let (got, want) = (out[i * 5 + c], case.vrow(0, j)[c]);
                    // Weight 1/eps on the match against at most 63 weights of
                    // at most 1/(min distance)^p elsewhere.
                    assert!((got - want).abs() < 0.05, "{kernel:?} eps={eps} p={p}: {got} vs {want}");
                    if eps == 0.0 {
                        assert_eq!(got, want, "{kernel:?}: eps = 0 returns the value exactly");
                    }
                }
                assert!(lse[i] > 0.0 && (eps > 0.0 || lse[i] == f32::INFINITY));
            }
        }
    }
}

#[test]
fn duplicate_matching_keys_share_an_infinite_weight() {
    // eps = 0 and two keys equal to the query: both weights are infinite, the
    // softmax limit gives each half.
    let scorer = Scorer::NegLogDist { eps: 0.0, p: 2.0 };
    let mut case = Case::random(5, 1, 1, 1, 9, 4, 1, scorer);
    let key = case.krow(0, 2).to_vec();
    case.k[6 * 4..7 * 4].copy_from_slice(&key);
    case.q.copy_from_slice(&key);
    case.v[2] = 1.0;
    case.v[6] = 3.0;
    for kernel in common::paths() {
        let (out, _) = case.run(kernel);
        assert_eq!(out[0], 2.0, "{kernel:?}");
    }
    check(&case);
}

#[test]
fn fully_masked_rows_and_empty_key_sets() {
    // Window with key_len: rows past the keys see nothing.
    let case = Case::random(9, 2, 1, 12, 8, 5, 3, Scorer::dot())
        .with_mask(Mask::Window { offset: 0, left: 1, right: 0 })
        .with_key_len(6);
    check(&case);
    for kernel in common::paths() {
        let (out, lse) = case.run(kernel);
        for h in 0..2 {
            for i in 7..12 {
                assert_eq!(&out[(h * 12 + i) * 3..][..3], &[0.0; 3]);
                assert_eq!(lse[h * 12 + i], f32::NEG_INFINITY);
            }
        }
    }
    // n_kv = 0: every row is empty.
    for scorer in common::SCORERS {
        let case = Case::random(10, 1, 1, 3, 0, 4, 2, scorer);
        for kernel in common::paths() {
            let (out, lse) = case.run(kernel);
            assert!(out.iter().all(|&x| x == 0.0) && lse.iter().all(|&x| x == f32::NEG_INFINITY));
        }
    }
}

#[test]
fn nan_inputs_reach_exactly_the_rows_they_touch() {
    for scorer in common::SCORERS {
        for kernel in common::paths() {
            // NaN in query row 2: only row 2 is NaN.
            let mut case = Case::random(21, 1, 1, 5, 40, 9, 3, scorer).with_mask(Mask::Causal { offset: 10 });
            case.q[2 * 9 + 4] = f32::NAN;
            let (out, _) = case.run(kernel);
            for i in 0..5 {
                let nan = out[i * 3..][..3].iter().all(|x| x.is_nan());
                let finite = out[i * 3..][..3].iter().all(|x| x.is_finite());
                assert!(if i == 2 { nan } else { finite }, "{scorer:?} {kernel:?} q row {i}");
            }
            // NaN in key 12 (seen by causal rows i >= 2) and value 30 (rows >= 20, none).
            let mut case = Case::random(22, 1, 1, 5, 40, 9, 3, scorer).with_mask(Mask::Causal { offset: 10 });
            case.k[12 * 9] = f32::NAN;
            case.v[30 * 3 + 1] = f32::NAN;
            let (out, lse) = case.run(kernel);
            for i in 0..5 {
                let nan = out[i * 3..][..3].iter().all(|x| x.is_nan()) && lse[i].is_nan();
                let finite = out[i * 3..][..3].iter().all(|x| x.is_finite());
                assert!(if i >= 2 { nan } else { finite }, "{scorer:?} {kernel:?} k row {i}");
            }
            // NaN in a value only taints that column.
            let mut case = Case::random(23, 1, 1, 2, 40, 9, 3, scorer);
            case.v[7 * 3 + 1] = f32::NAN;
            let (out, _) = case.run(kernel);
            for i in 0..2 {
                assert!(out[i * 3].is_finite() && out[i * 3 + 1].is_nan() && out[i * 3 + 2].is_finite());
            }
        }
    }
}

#[test]
fn scores_overflowing_to_infinity_select_the_top_keys() {
    // q·k overflows f32 for keys aligned with q: those get all the weight.
    let (n_kv, d) = (20, 4);
    let mut rng = Rng::new(3);
    let q = vec![1e20f32; d];
    let mut k: Vec<f32> = rng.vec(n_kv * d, 1.0);
    k[7 * d..8 * d].iter_mut().for_each(|x| *x = 1e20);
    let v: Vec<f32> = (0..n_kv).map(|j| j as f32).collect();
    for kernel in common::paths() {
        let mut out = [0.0f32];
        let mut lse = [0.0f32];
        kernel
            .set(streamattn::Attention::new(Scorer::Dot { scale: Some(1.0) }))
            .run_lse(
                streamattn::MatRef::dense(&q, 1, d).unwrap(),
                streamattn::MatRef::dense(&k, n_kv, d).unwrap(),
                streamattn::MatRef::dense(&v, n_kv, 1).unwrap(),
                streamattn::MatMut::dense(&mut out, 1, 1).unwrap(),
                &mut lse,
            )
            .unwrap();
        assert_eq!(out[0], 7.0, "{kernel:?}");
        assert_eq!(lse[0], f32::INFINITY, "{kernel:?}");
    }
}

#[test]
fn large_magnitudes_and_tiny_ones() {
    for (amp, scorer) in [
        (1e-19f32, Scorer::neg_sq_dist()),
        (1e-19, Scorer::neg_log_dist()),
        (30.0, Scorer::dot()),
        (30.0, Scorer::neg_sq_dist()),
        (1e15, Scorer::NegLogDist { eps: 1.0, p: 2.0 }),
    ] {
        let mut case = Case::random(31, 1, 1, 6, 70, 13, 4, scorer);
        case.q.iter_mut().chain(case.k.iter_mut()).for_each(|x| *x *= amp);
        check(&case);
    }
}

#[test]
fn grouped_decode_passes_in_every_layout() {
    // Query heads sharing a KV head run as rows of one decode pass when
    // group × n_q <= 8; 9 rows and more take the prefill loop. Both sides of
    // that line, every scorer, every layout, with masks and a bias.
    let layouts = [Layout::HeadsMajor, Layout::SeqMajor, Layout::Padded(2)];
    let shapes = [(4, 1, 1), (8, 2, 1), (8, 1, 1), (4, 2, 2), (6, 2, 2), (3, 1, 3), (9, 1, 1), (4, 1, 3)];
    let mut seed = 3000;
    for layout in layouts {
        for (heads, kv_heads, n_q) in shapes {
            for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
                seed += 1;
                let n_kv = 300;
                let base = Case::random(seed, heads, kv_heads, n_q, n_kv, 40, 24, scorer).with_layout(layout);
                check(&base);
                check(&base.clone().with_mask(Mask::causal_bottom_right(n_q, n_kv)).with_key_len(290));
                check(
                    &base
                        .with_mask(Mask::Window { offset: 200, left: 70, right: 3 })
                        .with_random_bias(seed, 2.0, false),
                );
            }
        }
    }
}

/// The scalar path's `libm::tanhf` against f64: within `E_TANH` (relative),
/// the bound the tolerance of `Additive` uses for either kernel (the
/// vectorised `tanh` is checked against it over all 2³² inputs in
/// `src/tanh.rs`: 1.5 ulp, `3u`). Here every 61st bit pattern; the ignored
/// `libm_tanhf_exhaustive` runs all 2³² (about a minute): worst 2.83u.
#[test]
fn libm_tanhf_is_within_the_tangent_bound() {
    libm_tanhf_sweep(61);
}

#[test]
#[ignore]
fn libm_tanhf_exhaustive() {
    libm_tanhf_sweep(1);
}

fn libm_tanhf_sweep(step: usize) {
    let mut worst = 0.0f64;
    for bits in (0..=u32::MAX).step_by(step) {
        let x = f32::from_bits(bits);
        if !x.is_finite() {
            continue;
        }
        let exact = (x as f64).tanh();
        let got = libm::tanhf(x) as f64;
        if exact != 0.0 {
            worst = worst.max((got - exact).abs() / exact.abs());
        } else {
            assert_eq!(got, 0.0);
        }
    }
    assert!(worst <= common::E_TANH, "libm tanhf relative error {worst:e} > {:e}", common::E_TANH);
    eprintln!("libm tanhf: worst relative error {:.3} u", worst / common::U);
}
