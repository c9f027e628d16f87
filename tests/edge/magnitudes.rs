//! Input magnitudes from subnormal to overflow, extreme parameters and long key ranges: results within the reference tolerance.

use crate::common::{check, Case, SCORERS};
use crate::support::{assert_row, close, grid_case, kernels, scale_qk, scaled, subnormal_slack, INF};
use streamattn::{Mask, Scorer};

/// Queries and keys of magnitude 1e-41 (subnormal) to 1 with the default
/// parameters: below about 1e-10 the scores are nearly constant (products
/// underflow to exactly 0 below about 1e-23) and every kernel must give the
/// reference's near-uniform average, lse ≈ ln n (NegLogDist: −ln eps + ln n). `eps = 0` is left to
/// [`underflowing_distances_with_eps_zero_share_the_weight`].
#[test]
fn tiny_queries_and_keys_with_default_parameters() {
    let amps = [1e-41f32, 1e-39, 1e-38, 1e-30, 1e-20, 1e-10, 1.0];
    let mut seed = 100;
    for (n_q, n_kv) in [(3, 70), (20, 300)] {
        for scorer in
            SCORERS.into_iter().filter(|s| !matches!(s, Scorer::NegLogDist { eps, .. } if *eps == 0.0))
        {
            for a in amps {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, 13, 4, scorer)
                    .with_mask(Mask::causal_bottom_right(n_q, n_kv));
                scale_qk(&mut case, a);
                check(&case);
            }
        }
    }
}

/// Queries and keys of magnitude 1e-15 to 1e18 with the scorer's parameter
/// scaled to match (`scale / a²`, `eps · a^p`), so that scores stay of order 1
/// and the reference's tolerance stays tight: every kernel must match it.
#[test]
fn query_and_key_magnitudes_with_matching_parameters() {
    let amps = [1e-15f64, 1e-10, 1e-5, 1.0, 1e5, 1e10, 1e18];
    let mut seed = 200;
    let mut ran = 0;
    for (n_q, n_kv) in [(3, 70), (20, 300)] {
        for scorer in SCORERS {
            for a in amps {
                let Some(sc) = scaled(scorer, a) else { continue };
                seed += 1;
                ran += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, 13, 4, sc)
                    .with_mask(Mask::causal_bottom_right(n_q, n_kv));
                scale_qk(&mut case, a as f32);
                check(&case);
            }
        }
    }
    // Every scorer at every magnitude, except the general power p = 3.5, whose
    // a^3.5 leaves the f32 range first (it runs at 1e-5, 1 and 1e5).
    assert_eq!(ran, 2 * (8 * 7 + 3));
}

/// Values of magnitude 1e-41 (subnormal) to 1e30 with unit queries and keys.
/// Every kernel must match the reference within its tolerance with the
/// `1e-35` underflow term replaced by [`subnormal_slack`], far tighter for
/// subnormal outputs (a kernel flushing subnormals to 0 fails); the lse does
/// not depend on the values.
#[test]
fn value_magnitudes_from_subnormal_to_1e30() {
    let amps = [1e-41f32, 1e-39, 1e-38, 1e-30, 1.0, 1e10, 1e30];
    let mut seed = 300;
    for (n_q, n_kv) in [(3, 70), (20, 70)] {
        for scorer in SCORERS {
            for a in amps {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, 13, 4, scorer).with_mask(Mask::Window {
                    offset: n_kv - n_q,
                    left: 50,
                    right: 0,
                });
                // Positive values in [a/2, a]: the output is about 3a/4, not 0.
                case.v.iter_mut().for_each(|x| *x = a * (0.75 + 0.25 * *x));
                if a >= 1e-30 {
                    check(&case);
                }
                let r = case.reference();
                for kernel in kernels() {
                    let (out, lse) = case.run(kernel);
                    for (i, &lse_i) in lse.iter().enumerate() {
                        let n = case.mask.key_range(i, n_kv).len();
                        for c in 0..4 {
                            let idx = i * 4 + c;
                            let err = (out[idx] as f64 - r.out[idx]).abs();
                            let bound = (r.tol[idx] - 1e-35) + subnormal_slack(n);
                            assert!(
                                err <= bound,
                                "{scorer:?} {kernel:?} v×{a:e}: out[{idx}] = {:e}, reference {:e}, error {err:e} > {bound:e}",
                                out[idx],
                                r.out[idx]
                            );
                        }
                        assert!(
                            close(lse_i, r.lse[i], r.lse_tol[i]),
                            "{scorer:?} {kernel:?} v×{a:e}: lse[{i}]"
                        );
                    }
                }
            }
        }
    }
}

/// `NegLogDist` with `eps = 0` and inputs below about 1e-23: every `(q_c −
/// k_c)²` underflows to exactly 0 in f32 (not in f64), so every visible key
/// has distance 0, weight `1/0 = +∞` and score `+∞`. The README's rule for
/// `+∞` scores then gives each key an equal share: the output is the mean of
/// the visible values and the lse is `+∞`. The expectation is the reference of
/// the same case with queries and keys set to 0, so that every distance is 0
/// there too. With `eps = 0` the kernels compute the score as
/// `−(p/2)·ln d²`, so a `d^p` below the f32 range (inputs ~1e-15 with
/// `p = 3.5`: `d^p` ≈ 1e-52) does not underflow: that case goes through the
/// f64 reference.
#[test]
fn underflowing_distances_with_eps_zero_share_the_weight() {
    let mut seed = 400;
    for (p, amps) in [(2.0f32, &[1e-41f32, 1e-39, 1e-38, 1e-30, 1e-25][..]), (3.5, &[1e-41, 1e-30][..])] {
        for (n_q, n_kv) in [(3, 50), (12, 200)] {
            for &a in amps {
                seed += 1;
                let scorer = Scorer::NegLogDist { eps: 0.0, p };
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, 6, 3, scorer)
                    .with_mask(Mask::causal_bottom_right(n_q, n_kv));
                scale_qk(&mut case, a);
                let mut limit = case.clone();
                limit.q.fill(0.0);
                limit.k.fill(0.0);
                let r = limit.reference();
                if p == 3.5 && a == 1e-30 {
                    let mut finite = case.clone();
                    finite.q.iter_mut().chain(finite.k.iter_mut()).for_each(|x| *x *= 1e15);
                    check(&finite); // d² ~ 1e-30: finite scores ≈ 120, as the reference says
                }
                for kernel in kernels() {
                    let (out, lse) = case.run(kernel);
                    for i in 0..n_q {
                        assert_eq!(lse[i], INF, "p={p} a={a:e} {kernel:?} row {i}");
                        assert_row(&r, 3, &out, &lse, i, &format!("p={p} a={a:e} {kernel:?}"));
                    }
                }
            }
        }
    }
}

/// Scales near `f32::MAX` on tiny (grid) inputs, where the scores are at most
/// about 1400 in magnitude, and tiny scales (1e-30) on unit inputs (scores ≈ 0, a
/// near-uniform average) and on inputs of 1e15 (scores of order 1). `eps`
/// near `f32::MAX` (the tiled weights `1/(eps + d^p)` ≈ 5.9e-39 are subnormal
/// and all equal) and `eps = 1e-30`
/// with a query on a key (weight 1e30). Every kernel must match the reference.
#[test]
fn extreme_scales_and_epsilons() {
    let mut seed = 1000;
    for (n_q, n_kv) in [(3, 60), (17, 200)] {
        for scale in [f32::MAX / 2.0, f32::MAX / 4.0] {
            for scorer in [Scorer::Dot { scale: Some(scale) }, Scorer::NegSqDist { scale: Some(scale) }] {
                seed += 1;
                check(
                    &grid_case(seed, n_q, n_kv, 11, scorer).with_mask(Mask::causal_bottom_right(n_q, n_kv)),
                );
            }
        }
        for scorer in [Scorer::Dot { scale: Some(1e-30) }, Scorer::NegSqDist { scale: Some(1e-30) }] {
            for a in [1.0f32, 1e15] {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, 11, 4, scorer);
                scale_qk(&mut case, a);
                check(&case);
            }
        }
        for eps in [f32::MAX / 2.0, 1e30, 1e-30] {
            for p in [2.0, 1.0, 3.5] {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, 11, 4, Scorer::NegLogDist { eps, p });
                let key = case.krow(0, 7).to_vec();
                case.q[..11].copy_from_slice(&key);
                check(&case);
            }
        }
    }
}

/// `NegSqDist` with a scale above `f32::MAX / 2` on grid inputs: the scores
/// (at most about 2800 in magnitude) and the reference are finite and the
/// scalar path matches it.
#[test]
fn neg_sq_dist_scale_above_half_max() {
    for (n_q, n_kv) in [(3, 60), (17, 200)] {
        for scale in [f32::MAX, 0.75 * f32::MAX] {
            let case = grid_case(1100, n_q, n_kv, 11, Scorer::NegSqDist { scale: Some(scale) });
            check(&case);
        }
    }
}

/// `NegLogDist` where `eps + d^p` is positive but below `1/f32::MAX` ≈
/// 2.9e-39, or where `d^p` is subnormal: the score `−ln(eps + d^p)` is finite
/// (at most −ln(2⁻¹⁴⁹) ≈ 103.3) and the f64 reference and the scalar path
/// weigh such keys by `1/(eps + d^p)`, within the reference's tolerance. Cases: `eps = 0, p = 3.5` with the query at distances 1.4e-11 and
/// 2.8e-11 from two keys (`d^p` ≈ 9.6e-39, just subnormal, and 1.1e-37;
/// scores ≈ 87.5 and 85.1, weights 4^1.75 ≈ 11.3 : 1); `eps = 0, p = 2` at
/// distances 1e-20 and 2e-20 (`d²` = 1e-40 and 4e-40, scores ≈ 92.1 and
/// 90.7), without and with a (zero) bias; `eps = 1e-41` (subnormal) with the
/// query on a key (score ≈ 94.4).
#[test]
fn neg_log_dist_tiny_but_nonzero_distances() {
    let d = 4;
    let mut cases = Vec::new();
    for (eps, p, delta) in [(0.0f32, 3.5f32, 1.4e-11f32), (0.0, 2.0, 1e-20)] {
        let mut case = Case::random(1500, 1, 1, 2, 50, d, 2, Scorer::NegLogDist { eps, p });
        case.q[..d].fill(0.0);
        case.k[10 * d..11 * d].fill(0.0);
        case.k[10 * d] = delta;
        case.k[30 * d..31 * d].fill(0.0);
        case.k[30 * d] = 2.0 * delta;
        cases.push(case);
    }
    // With a bias the tiled kernel works in the log domain, −ln(eps + d^p).
    let mut biased = cases[1].clone();
    biased.bias = Some(vec![0.0; 2 * 50]);
    cases.push(biased);
    let mut case = Case::random(1501, 1, 1, 2, 50, d, 2, Scorer::NegLogDist { eps: 1e-41, p: 2.0 });
    let key = case.krow(0, 10).to_vec();
    case.q[..d].copy_from_slice(&key);
    cases.push(case);
    for case in &cases {
        let r = case.reference();
        assert!(r.lse[0].is_finite() && r.lse[0] < 110.0);
        check(case);
    }
}

/// `NegLogDist` with a large power: `d^p` leaves the f32 range for moderate
/// distances (`d > 4` at `p = 64`) while the weights relative to each other
/// are ordinary. Found by `examples/compare_scorers.rs`: keys at distances
/// 3.9 and 4.01 got weights 1 and 0 (exact: 0.856 and 0.144), keys at 8 and
/// 8.1 an empty row (exact lse −132.7). Every kernel now matches the f64
/// reference (the tiled kernel leaves the linear domain for `p > 2`; the
/// scalar path takes `ln d^p = (p/2)·ln d²` when `d^p` overflows).
#[test]
fn large_powers_do_not_overflow() {
    for (p, eps) in [(64.0f32, 1e-6f32), (64.0, 1.0), (12.0, 1e-3), (200.0, 1e-6)] {
        for dists in [[3.9f32, 4.01, 5.0], [8.0, 8.1, 9.0], [0.5, 4.0, 100.0]] {
            let mut case = Case::random(1600, 1, 1, 2, 3, 2, 2, Scorer::NegLogDist { eps, p });
            // Query 0 at the origin, query 1 near it; key j at distance dists[j] along the first axis.
            case.q = vec![0.0, 0.0, 0.01, -0.02];
            case.k = dists.iter().flat_map(|&x| [x, 0.0]).collect();
            check(&case);
            let r = case.reference();
            assert!(r.lse[0].is_finite(), "p={p}: exact lse {}", r.lse[0]);
        }
    }
}

/// A million keys with d = 1 and three query rows, in one call, for each
/// scorer with its default parameters under a different mask: one value
/// column is one-hot at the last key the last row sees, so a skipped or
/// repeated key changes that row's output by 100% of its (tiny) expected value; `check` bounds every kernel by the
/// reference's tolerance (whose accumulation term `2γ(2n + 3)` is about 0.24
/// of `Σ p_j |v_j| / l` here). About a second per scorer in `--release`; a
/// build without optimisations (debug assertions on) runs 100 000 keys
/// instead, which takes seconds rather than a minute there.
#[test]
fn a_million_keys_with_d_1() {
    let n_kv = if cfg!(debug_assertions) { 100_000 } else { 1_000_000 };
    let cases = [
        (Scorer::dot(), Mask::None),
        (Scorer::neg_sq_dist(), Mask::causal_bottom_right(3, n_kv)),
        (
            Scorer::neg_log_dist(),
            Mask::Window { offset: n_kv / 5 * 3, left: n_kv / 5 * 2, right: n_kv / 8 + 456 },
        ),
    ];
    for (t, (scorer, mask)) in cases.into_iter().enumerate() {
        let mut case = Case::random(1700 + t as u64, 1, 1, 3, n_kv, 1, 2, scorer).with_mask(mask);
        let last = mask.key_range(2, n_kv).end - 1;
        for j in 0..n_kv {
            case.v[j * 2] = (j == last) as u8 as f32;
        }
        check(&case);
    }
}

/// `NegLogDist` with `eps = 0` forms `d² = Σ (q_c − k_c)²` in f32, as the
/// README documents: distances from about `1.1e-19` (where `d²` becomes
/// subnormal) on are resolved, so keys at `2e-19` and `4e-19` from the query
/// weigh `1/d²` (4 : 1); a distance below `2^-75 ≈ 2.6e-23` squares to 0
/// and counts as an exact match (`+∞` score), so keys at `1e-23` and `3e-23`
/// give the first key's value alone (the exact weights, 9 : 1, would give
/// 1.1). In every kernel.
#[test]
fn neg_log_dist_eps_zero_distances_at_the_bottom_of_the_f32_range() {
    let scorer = Scorer::NegLogDist { eps: 0.0, p: 2.0 };
    for (keys, want, tol) in [([2e-19f32, 4e-19], 1.2f32, 1e-5f32), ([1e-23, 3e-23], 1.0, 0.0)] {
        let mut case = Case::random(1, 1, 1, 1, 2, 1, 1, scorer);
        (case.q, case.k, case.v) = (vec![0.0], keys.to_vec(), vec![1.0, 2.0]);
        for kernel in kernels() {
            let (out, _) = case.run(kernel);
            assert!((out[0] - want).abs() <= tol, "keys {keys:?} {kernel:?}: {} vs {want}", out[0]);
        }
    }
}
