//! Non-finite inputs and overflowing intermediates: ±∞ and NaN in queries, keys, values and bias, dot products and distances that overflow f32.

use crate::common::{Case, Path, Rng, SCORERS};
use crate::support::{assert_nan_row, assert_row, close, kernels, INF};
use streamattn::{Mask, Scorer};

/// One query row, one key (seen only by the later rows of a causal mask) or
/// one value entry set to ±∞, for every scorer. What the kernels do:
///
/// - **query** `q_ic = ±∞`: `Dot` scores are ±∞ by the sign of `q_ic k_jc`,
///   as in the f64 reference: the row is the mean of the values of the keys
///   with `+∞` score and its lse `+∞`. `NegSqDist` as the reference: every
///   score `−scale‖q−k‖² = −∞`, an empty row (0, `−∞`) in every kernel (the
///   tiled kernel's distance from the centre is not finite, and the scalar
///   path computes the row). `NegLogDist`: scalar path as the reference,
///   every distance `+∞`, so every
///   weight 0: output 0, lse `−∞` (the tiled kernels: see
///   [`infinite_distances_weigh_zero_in_every_kernel`]).
/// - **key** `k_jc = ±∞`: `Dot` as the reference (row = `v_j` with lse `+∞`
///   when `q_ic k_jc > 0`, key ignored when `< 0`). `NegSqDist` ignores the
///   key in every kernel, as the reference. `NegLogDist`: scalar path ignores
///   the key, as the reference.
/// - `Additive`, infinite query or key entry: `tanh(±∞ + x) = ±1` exactly, the
///   scores stay finite and every kernel matches the reference.
/// - **value** `v_jc = ±∞`: column `c` is ±∞ in the rows that see key `j`
///   (NaN where `+∞` and `−∞` values meet), other columns and the lse as the
///   reference: exactly IEEE arithmetic on the reference's sums.
///
/// Rows that do not see the infinite element match the reference of the case
/// without it, in every kernel.
#[test]
fn infinities_in_queries_keys_and_values() {
    let (d, dv) = (5, 3);
    let mut seed = 700;
    for (n_q, n_kv, offset) in [(6, 40, 30), (24, 300, 270)] {
        // Key `jk` is seen by rows i >= jk - offset = 3.
        let jk = offset + 3;
        for scorer in SCORERS {
            for sign in [1.0f32, -1.0] {
                seed += 1;
                let base =
                    Case::random(seed, 1, 1, n_q, n_kv, d, dv, scorer).with_mask(Mask::Causal { offset });
                let clean = base.reference();
                let name = format!("{scorer:?} n_q={n_q} sign={sign}");

                // ±∞ in query row 2.
                let mut case = base.clone();
                case.q[2 * d + 1] = sign * INF;
                let r = case.reference();
                for kernel in kernels() {
                    let (out, lse) = case.run(kernel);
                    let what = format!("{name} {kernel:?} q=±∞");
                    for i in (0..n_q).filter(|&i| i != 2) {
                        assert_row(&clean, dv, &out, &lse, i, &what);
                    }
                    match scorer {
                        Scorer::Dot { .. } => {
                            assert_eq!(lse[2], INF, "{what}");
                            assert_row(&r, dv, &out, &lse, 2, &what);
                        }
                        Scorer::NegSqDist { .. } => {
                            assert_eq!(&out[2 * dv..][..dv], &[0.0; 3], "{what}");
                            assert_eq!(lse[2], f32::NEG_INFINITY, "{what}");
                        }
                        // tanh(±∞ + k) = ±1 exactly: finite scores, as the reference.
                        Scorer::Additive { .. } => assert_row(&r, dv, &out, &lse, 2, &what),
                        _ if kernel == Path::Scalar => {
                            assert_eq!(&out[2 * dv..][..dv], &[0.0; 3], "{what}");
                            assert_eq!(lse[2], f32::NEG_INFINITY, "{what}");
                            assert_row(&r, dv, &out, &lse, 2, &what);
                        }
                        _ => {}
                    }
                }

                // ±∞ in key jk; row 3 has q·k = +∞ through that column, row 4 −∞.
                let mut case = base.clone();
                case.k[jk * d + 1] = sign * INF;
                case.q[3 * d + 1] = sign * 0.5;
                case.q[4 * d + 1] = -sign * 0.5;
                let r = case.reference();
                let clean_k = {
                    let mut c = base.clone();
                    c.q[3 * d + 1] = sign * 0.5;
                    c.q[4 * d + 1] = -sign * 0.5;
                    c.reference()
                };
                for kernel in kernels() {
                    let (out, lse) = case.run(kernel);
                    let what = format!("{name} {kernel:?} k=±∞");
                    for i in 0..3 {
                        assert_row(&clean_k, dv, &out, &lse, i, &what);
                    }
                    for i in 3..n_q {
                        match scorer {
                            Scorer::Dot { .. } => {
                                assert_row(&r, dv, &out, &lse, i, &what);
                                if case.q[i * d + 1] * sign > 0.0 {
                                    assert_eq!(
                                        &out[i * dv..][..dv],
                                        case.vrow(0, jk),
                                        "{what}: row {i} = v_j"
                                    );
                                }
                            }
                            Scorer::NegSqDist { .. } | Scorer::Additive { .. } => {
                                assert_row(&r, dv, &out, &lse, i, &what);
                            }
                            _ if kernel == Path::Scalar => assert_row(&r, dv, &out, &lse, i, &what),
                            _ => {}
                        }
                    }
                }

                // ±∞ in value (jk, 1); then also ∓∞ in value (jk + 2, 1).
                for both in [false, true] {
                    let mut case = base.clone();
                    case.v[jk * dv + 1] = sign * INF;
                    if both {
                        case.v[(jk + 2) * dv + 1] = -sign * INF;
                    }
                    let r = case.reference();
                    for kernel in kernels() {
                        let (out, lse) = case.run(kernel);
                        let what = format!("{name} {kernel:?} v=±∞ both={both}");
                        for i in 0..3 {
                            assert_row(&clean, dv, &out, &lse, i, &what);
                        }
                        for i in 3..n_q {
                            let want = if both && i >= 5 { f32::NAN } else { sign * INF };
                            let got = out[i * dv + 1];
                            assert!(got == want || (want.is_nan() && got.is_nan()), "{what}: row {i}: {got}");
                            assert_row(&r, dv, &out, &lse, i, &what);
                        }
                    }
                }
            }
        }
    }
}

/// A `+∞` value on a key whose weight underflows to 0 (its bias is −200, so
/// `e^{s − m}` is below the f32 range; in f64 it is about 1e-87) gives
/// `0 · ∞ = NaN` in that column in every kernel, where the f64 reference has
/// `+∞`; the other columns and rows are unaffected.
#[test]
fn infinite_value_with_underflowing_weight_is_nan() {
    for scorer in SCORERS {
        let mut case = Case::random(800, 1, 1, 3, 40, 6, 3, scorer).with_random_bias(801, 1.0, false);
        case.bias.as_mut().unwrap()[17] = -200.0; // row 0, key 17
        let clean = case.reference();
        case.v[17 * 3 + 1] = INF;
        let r = case.reference();
        assert_eq!(r.out[1], f64::INFINITY);
        for kernel in kernels() {
            let (out, lse) = case.run(kernel);
            let what = format!("{scorer:?} {kernel:?}");
            assert!(out[1].is_nan(), "{what}: {}", out[1]);
            assert!(
                close(out[0], clean.out[0], clean.tol[0]) && close(out[2], clean.out[2], clean.tol[2]),
                "{what}"
            );
            assert!(close(lse[0], clean.lse[0], clean.lse_tol[0]), "{what}");
            for i in 1..3 {
                assert_eq!(out[i * 3 + 1], INF, "{what}: row {i} sees the key with a finite weight");
            }
        }
    }
}

/// A NaN in one query row, in one key seen only by the later rows of a causal
/// mask, in one value entry, or in one bias entry: the rows that see it are NaN
/// (every column and the lse; a value taints only its own column, the lse
/// stays right), every other row matches the reference of the clean case.
#[test]
fn nan_reaches_only_the_rows_that_see_it() {
    let (d, dv) = (9, 3);
    let mut seed = 900;
    for (n_q, n_kv, offset) in [(5, 40, 10), (20, 300, 270)] {
        let jk = offset + 2; // seen by rows >= 2
        for scorer in SCORERS {
            seed += 1;
            let base = Case::random(seed, 1, 1, n_q, n_kv, d, dv, scorer).with_mask(Mask::Causal { offset });
            let clean = base.reference();
            let biased = base.clone().with_random_bias(seed, 1.0, false);
            let clean_biased = biased.reference();
            let name = format!("{scorer:?} n_q={n_q}");
            for kernel in kernels() {
                // Query row 1.
                let mut case = base.clone();
                case.q[d + 4] = f32::NAN;
                let (out, lse) = case.run(kernel);
                for i in 0..n_q {
                    let what = format!("{name} {kernel:?} q NaN");
                    if i == 1 {
                        assert_nan_row(dv, &out, &lse, i, &what);
                    } else {
                        assert_row(&clean, dv, &out, &lse, i, &what);
                    }
                }
                // Key jk.
                let mut case = base.clone();
                case.k[jk * d + 3] = f32::NAN;
                let (out, lse) = case.run(kernel);
                for i in 0..n_q {
                    let what = format!("{name} {kernel:?} k NaN");
                    if i >= 2 {
                        assert_nan_row(dv, &out, &lse, i, &what);
                    } else {
                        assert_row(&clean, dv, &out, &lse, i, &what);
                    }
                }
                // Value (jk, 2).
                let mut case = base.clone();
                case.v[jk * dv + 2] = f32::NAN;
                let (out, lse) = case.run(kernel);
                for i in 0..n_q {
                    let what = format!("{name} {kernel:?} v NaN");
                    if i >= 2 {
                        assert!(out[i * dv + 2].is_nan(), "{what}: row {i}");
                        for c in 0..2 {
                            let idx = i * dv + c;
                            assert!(
                                close(out[idx], clean.out[idx], clean.tol[idx]),
                                "{what}: row {i} col {c}"
                            );
                        }
                        assert!(close(lse[i], clean.lse[i], clean.lse_tol[i]), "{what}: row {i} lse");
                    } else {
                        assert_row(&clean, dv, &out, &lse, i, &what);
                    }
                }
                // Bias entry (row 3, key 1).
                let mut case = biased.clone();
                case.bias.as_mut().unwrap()[3 * n_kv + 1] = f32::NAN;
                let (out, lse) = case.run(kernel);
                for i in 0..n_q {
                    let what = format!("{name} {kernel:?} bias NaN");
                    if i == 3 {
                        assert_nan_row(dv, &out, &lse, i, &what);
                    } else {
                        assert_row(&clean_biased, dv, &out, &lse, i, &what);
                    }
                }
            }
        }
    }
}

/// Products of inputs of 1e30 overflow f32 (not f64). `Dot` with scale 1 and
/// `q = 1e30·(1, …, 1)`: keys whose entries are all positive get score `+∞`
/// in f32 and share the weight equally (README); keys all negative get `−∞`.
/// The expectation is the reference of the case with `q = (+∞, …)`, whose
/// scores are exactly these. A key with entries of both signs has a dot
/// product `∞ − ∞ = NaN`: the rows that see it are NaN in every kernel (the
/// f64 reference of the limit case drops it instead, so it is not used
/// there). Row 2, with queries of 1e-30, has finite products and matches the
/// reference of the actual case.
#[test]
fn overflowing_dot_products() {
    let (n_kv, d, dv) = (40, 4, 2);
    let mut rng = Rng::new(1200);
    let mut case = Case::random(1200, 1, 1, 3, n_kv, d, dv, Scorer::Dot { scale: Some(1.0) })
        .with_mask(Mask::Causal { offset: n_kv - 3 }); // row 0 sees keys 0..=37, row 1 also 38, row 2 all
    for j in 0..n_kv {
        let sign = if j % 3 == 0 { 1.0 } else { -1.0 };
        for c in 0..d {
            let x = 1e30 * (0.5 + 0.25 * rng.sym());
            case.k[j * d + c] = if j == 38 && c == 1 { -sign * x } else { sign * x };
        }
    }
    case.q[..2 * d].fill(1e30);
    case.q[2 * d..].iter_mut().for_each(|x| *x = 1e-30 * rng.sym());
    let mut limit = case.clone();
    limit.q[..2 * d].fill(INF);
    let r_limit = limit.reference();
    let r = case.reference();
    for kernel in kernels() {
        let (out, lse) = case.run(kernel);
        let what = format!("{kernel:?}");
        assert_eq!(lse[0], INF, "{what}");
        assert_row(&r_limit, dv, &out, &lse, 0, &what);
        assert_nan_row(dv, &out, &lse, 1, &what);
        assert_row(&r, dv, &out, &lse, 2, &what);
    }
}

/// Inputs of 2e19 with `NegSqDist` and `NegLogDist`: `‖q − k‖²` (over 1e38 per term) overflows
/// f32, so every weight `1/(eps + ∞)` is 0, every score `−∞`: every kernel
/// returns what a row that sees no key returns, output 0 and lse `−∞`, the
/// reference of the case with the distances at their f32 value `+∞` (the
/// f64 reference of the actual case is finite). The products `q_c k_c` are
/// finite here; for larger inputs see
/// [`infinite_distances_weigh_zero_in_every_kernel`].
#[test]
fn overflowing_distances_weigh_zero() {
    for scorer in [
        Scorer::neg_sq_dist(),
        Scorer::neg_log_dist(),
        Scorer::NegLogDist { eps: 0.0, p: 2.0 },
        Scorer::NegLogDist { eps: 1.0, p: 1.0 },
    ] {
        for (n_q, n_kv) in [(3, 50), (20, 200)] {
            let mut case = Case::random(1300, 1, 1, n_q, n_kv, 13, 2, scorer);
            // q_c in [0.5e19, 1.5e19], k_c in [-1.5e19, -0.5e19]: every
            // product is finite (at most 2.25e38), every (q_c − k_c)² at least 1e38.
            case.q.iter_mut().for_each(|x| *x = 2e19 * (0.5 + 0.25 * *x));
            case.k.iter_mut().for_each(|x| *x = -2e19 * (0.5 + 0.25 * *x));
            for kernel in kernels() {
                let (out, lse) = case.run(kernel);
                assert!(out.iter().all(|&x| x == 0.0), "{scorer:?} {kernel:?}: {out:?}");
                assert!(lse.iter().all(|&x| x == f32::NEG_INFINITY), "{scorer:?} {kernel:?}: {lse:?}");
            }
        }
    }
}

/// `NegLogDist` and `NegSqDist` with `±∞` in a query or a key: the distance
/// is `+∞` (in the f64 reference and in every kernel: the tiled kernel
/// computes the distance directly wherever its expansion would meet
/// `∞ − ∞`), so the weight is 0: a key at infinite distance is ignored, a
/// row whose every distance is infinite is empty. (Finite inputs whose
/// squared distances overflow f32 are `overflowing_distances_weigh_zero`.)
#[test]
fn infinite_distances_weigh_zero_in_every_kernel() {
    for scorer in [
        Scorer::neg_sq_dist(),
        Scorer::NegSqDist { scale: Some(4.0) },
        Scorer::neg_log_dist(),
        Scorer::NegLogDist { eps: 0.0, p: 2.0 },
        Scorer::NegLogDist { eps: 1e-3, p: 3.5 },
    ] {
        for (n_q, n_kv) in [(6, 40), (24, 300)] {
            let base = Case::random(1400, 1, 1, n_q, n_kv, 5, 3, scorer);
            let mut cases = Vec::new();
            let mut c = base.clone();
            c.q[2 * 5 + 1] = INF;
            cases.push(c);
            let mut c = base.clone();
            c.k[9 * 5 + 1] = -INF;
            cases.push(c);
            for case in &cases {
                let r = case.reference();
                for kernel in kernels() {
                    let (out, lse) = case.run(kernel);
                    for i in 0..n_q {
                        assert_row(&r, 3, &out, &lse, i, &format!("{scorer:?} n_q={n_q} {kernel:?}"));
                    }
                }
            }
        }
    }
}

/// A `−∞` bias gives a key weight exactly 0, but its value is still
/// multiplied by that 0 (as in a masked matrix product, and in PyTorch): a NaN
/// or `±∞` value behind a `−∞` bias makes its column NaN (`0 · NaN`,
/// `0 · ∞`) in the rows that "see" the key through the mask, in every kernel.
/// The README documents this; keys whose values may not be finite are to be
/// excluded by `Mask` or `key_len`, which never read them. The other columns
/// and the log-sum-exp stay as the reference says.
#[test]
fn nonfinite_value_behind_minus_infinity_bias_is_multiplied_by_zero() {
    for scorer in SCORERS {
        for bad in [f32::NAN, INF] {
            let mut case = Case::random(1600, 1, 1, 3, 40, 6, 3, scorer).with_random_bias(1601, 1.0, false);
            for i in 0..3 {
                case.bias.as_mut().unwrap()[i * 40 + 17] = f32::NEG_INFINITY;
            }
            let clean = case.reference();
            case.v[17 * 3 + 1] = bad;
            for kernel in kernels() {
                let (out, lse) = case.run(kernel);
                for i in 0..3 {
                    assert!(out[i * 3 + 1].is_nan(), "{scorer:?} {kernel:?} row {i}: {}", out[i * 3 + 1]);
                    for c in [0, 2] {
                        let (x, r, t) = (out[i * 3 + c] as f64, clean.out[i * 3 + c], clean.tol[i * 3 + c]);
                        assert!((x - r).abs() <= t, "{scorer:?} {kernel:?} row {i} col {c}: {x} vs {r}");
                    }
                    assert!((lse[i] as f64 - clean.lse[i]).abs() <= clean.lse_tol[i]);
                }
            }
            // With the key excluded by key_len instead, its value is never read.
            let mut cut = case.clone();
            cut.key_len = Some(17);
            for kernel in kernels() {
                let (out, _) = cut.run(kernel);
                assert!(out.iter().all(|x| x.is_finite()), "{scorer:?} {kernel:?}");
            }
        }
    }
}

/// `NegLogDist` with the smallest valid `p` (`p/2` rounds to 0) and a key
/// whose squared distance overflows to `+∞`: the key's `d^p` is `+∞`, its
/// weight 0 (`∞^p = ∞` for every `p > 0`, although `(p/2)·ln ∞` is
/// `0 · ∞`), so the row is the other key's value exactly, with `eps = 0` and
/// `eps > 0`, in every kernel. The other key, at distance 1, has
/// `d^p = 1`: weight `1/(eps + 1)`, lse `−ln(1 + eps)`.
#[test]
fn neg_log_dist_tiny_p_and_overflowing_distance() {
    let p = f32::from_bits(1);
    for eps in [0.0f32, 1e-3, 0.5] {
        let scorer = Scorer::NegLogDist { eps, p };
        let mut case = Case::random(1, 1, 1, 1, 2, 1, 1, scorer);
        (case.q, case.k, case.v) = (vec![0.0], vec![1.0, 3e19], vec![1.0, 2.0]);
        for kernel in kernels() {
            let (out, lse) = case.run(kernel);
            assert_eq!(out[0], 1.0, "eps={eps} {kernel:?}");
            let want = -(1.0f64 + eps as f64).ln();
            assert!((lse[0] as f64 - want).abs() <= 1e-6, "eps={eps} {kernel:?}: lse {} vs {want}", lse[0]);
        }
    }
}

/// Values near `f32::MAX`: the output is a convex combination of the values,
/// so it stays finite although `Σ p_j v_j` overflows (four keys of equal
/// weight with `v = 1e38`; forty keys with values about `3e37`). Columns
/// with small values in the same rows keep their accuracy, and the output
/// is within the reference tolerance, for every scorer and kernel.
#[test]
fn values_near_the_top_of_the_f32_range_do_not_overflow() {
    // Four equal keys, v = 1e38: exactly 1e38 up to rounding.
    let mut case = Case::random(3, 1, 1, 1, 4, 1, 1, Scorer::dot());
    (case.q, case.k, case.v) = (vec![0.0], vec![0.0; 4], vec![1e38; 4]);
    for kernel in kernels() {
        let (out, lse) = case.run(kernel);
        assert!((out[0] / 1e38 - 1.0).abs() <= 4.0 * f32::EPSILON, "{kernel:?}: {}", out[0]);
        assert!((lse[0] - 4f32.ln()).abs() <= 1e-6, "{kernel:?}");
    }
    // Forty keys, two columns: values about ±3e37 and about 1e-3; random
    // queries and keys, every scorer, against the f64 reference.
    for (s, scorer) in SCORERS.into_iter().enumerate() {
        let mut case = Case::random(40 + s as u64, 2, 1, 3, 40, 4, 2, scorer);
        for (j, v) in case.v.chunks_mut(2).enumerate() {
            v[0] = (2.9e37 + 1e35 * j as f32) * if j % 7 == 3 { -1.0 } else { 1.0 };
            v[1] *= 1e-3;
        }
        let r = case.reference();
        for kernel in kernels() {
            let (out, lse) = case.run(kernel);
            assert!(out.iter().all(|x| x.is_finite()), "{scorer:?} {kernel:?}: {out:?}");
            r.assert_close(&out, &lse, 1.0, &format!("{scorer:?} {kernel:?}"));
        }
    }
}

/// `NegSqDist` with finite inputs far from the origin: every kernel gives
/// the reference's result, never NaN. A key whose squared distance from the
/// query overflows f32 gets weight 0 (its score is `−∞` in f32; the exact
/// weight `e^{−scale·4.5e38}` is 0 too), so the row is the value of the
/// key the query equals, with lse 0:
///
/// - `q = (1.5e19, 1.5e19)`, keys `q` and `(0, 0)` (`d² = 4.5e38`);
/// - the same with `d = 128` at `2e18` (`d² = 5.1e38`);
/// - `scale = 1e33`, `|q| ≈ 1e3`, twenty keys within `1e-3` of `q`: finite
///   scores down to about `−1e27`, against the f64 reference.
#[test]
fn neg_sq_dist_far_from_the_origin_is_never_nan() {
    for (d, x) in [(2, 1.5e19f32), (128, 2e18)] {
        let mut case = Case::random(5, 1, 1, 1, 2, d, 1, Scorer::NegSqDist { scale: Some(1.0) });
        case.q = vec![x; d];
        case.k = [vec![x; d], vec![0.0; d]].concat();
        case.v = vec![1.0, 2.0];
        for kernel in kernels() {
            assert_eq!(case.run(kernel), (vec![1.0], vec![0.0]), "d={d} {kernel:?}");
        }
    }
    let (d, n_kv) = (4, 20);
    for n_q in [1, 3, 12] {
        let mut case = Case::random(6, 1, 1, n_q, n_kv, d, 2, Scorer::NegSqDist { scale: Some(1e33) });
        let mut rng = Rng::new(7);
        case.q = (0..n_q * d).map(|_| 1e3 + 1e-3 * rng.sym()).collect();
        case.k = (0..n_kv * d).map(|_| 1e3 + 1e-3 * rng.sym()).collect();
        let r = case.reference();
        for kernel in kernels() {
            let (out, lse) = case.run(kernel);
            assert!(lse.iter().all(|l| l.is_finite() && *l < -1e20), "n_q={n_q} {kernel:?}: {lse:?}");
            r.assert_close(&out, &lse, 1.0, &format!("n_q={n_q} {kernel:?}"));
        }
    }
}
