//! Ties: every key equal, and a query equal to a key.

use crate::common::{check, Case, Rng, SCORERS};
use crate::support::{kernels, score, INF};
use streamattn::{Mask, Scorer};

/// All keys equal (and, in one variant, all values equal): every key gets the
/// same weight, so the output is the common value row (or the mean of the
/// visible values) and `lse_i = s(q_i, k) + ln n_i`, computed here directly in
/// f64 and compared with the tolerance of `Case::reference()`.
#[test]
fn all_keys_equal() {
    let mut seed = 500;
    for scorer in SCORERS {
        for (n_q, n_kv, d) in [(3, 1, 1), (3, 7, 5), (4, 129, 64), (12, 300, 130), (20, 70, 3), (9, 40, 300)]
        {
            for same_values in [true, false] {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, d, 5, scorer)
                    .with_mask(Mask::Causal { offset: n_kv.saturating_sub(n_q) });
                let k0 = case.krow(0, 0).to_vec();
                let v0 = case.vrow(0, 0).to_vec();
                for j in 0..n_kv {
                    case.k[j * d..(j + 1) * d].copy_from_slice(&k0);
                    if same_values {
                        case.v[j * 5..(j + 1) * 5].copy_from_slice(&v0);
                    }
                }
                check(&case);
                let r = case.reference();
                for kernel in kernels() {
                    let (out, lse) = case.run(kernel);
                    for i in 0..n_q {
                        let keys = case.mask.key_range(i, n_kv);
                        let n = keys.len();
                        if n == 0 {
                            continue;
                        }
                        for c in 0..5 {
                            let want =
                                keys.clone().map(|j| case.vrow(0, j)[c] as f64).sum::<f64>() / n as f64;
                            if same_values {
                                assert_eq!(want, v0[c] as f64);
                            }
                            let (got, tol) = (out[i * 5 + c] as f64, r.tol[i * 5 + c]);
                            assert!(
                                (got - want).abs() <= tol,
                                "{scorer:?} {kernel:?} n_kv={n_kv} row {i} col {c}: {got:e} vs {want:e} ± {tol:e}"
                            );
                        }
                        let want = score(case.scorer, case.qrow(0, i), &k0) + (n as f64).ln();
                        assert!(
                            (lse[i] as f64 - want).abs() <= r.lse_tol[i],
                            "{scorer:?} {kernel:?} n_kv={n_kv} row {i}: lse {} vs {want} ± {}",
                            lse[i],
                            r.lse_tol[i]
                        );
                    }
                }
            }
        }
    }
}

/// Each query row equal to a key, for every scorer. All kernels must match the
/// reference; in addition:
///
/// - `NegLogDist` with `eps > 0`: the output is finite and near that key's
///   value: exactly, `O − v_j = Σ_{i≠j} w_i (v_i − v_j) / Σ_i w_i` with
///   `w_i = e^{s_i + b_i}` (so `w_j = e^{b_j}/eps`, the largest without a bias),
///   hence `|O − v_j| ≤ Σ_{i≠j} w_i |v_i − v_j| / Σ_i w_i` (computed here in
///   f64) plus the reference tolerance;
/// - `eps = 0`: the matching key has weight `+∞`, the output is exactly its
///   value and the lse `+∞`; with two copies of the key, exactly
///   `(v_a + v_b)·0.5` rounded once (each infinite weight is 1, the others 0);
///   with three, their mean within the reference's tolerance. No NaN anywhere.
///
/// The other keys are either spread out or clustered around the matching key
/// (at distances ~1e-3), where the tiled kernel's norm-trick distance cancels
/// and must be recomputed.
#[test]
fn query_equal_to_a_key() {
    let (n_q, n_kv, d, dv) = (4, 150, 16, 5);
    let mut seed = 600;
    for clustered in [false, true] {
        for scorer in SCORERS {
            for with_bias in [false, true] {
                seed += 1;
                let mut case = Case::random(seed, 1, 1, n_q, n_kv, d, dv, scorer);
                case.k.iter_mut().for_each(|x| *x *= 4.0);
                if with_bias {
                    case = case.with_random_bias(seed, 1.0, false);
                }
                let matches: Vec<usize> = (0..n_q).map(|i| 5 + 37 * i).collect();
                let mut rng = Rng::new(seed + 1);
                for (i, &j) in matches.iter().enumerate() {
                    let key = case.krow(0, j).to_vec();
                    case.q[i * d..(i + 1) * d].copy_from_slice(&key);
                    if clustered {
                        for t in j + 1..j + 8 {
                            for (x, &kc) in case.k[t * d..(t + 1) * d].iter_mut().zip(&key) {
                                *x = kc + 1e-3 * rng.sym();
                            }
                        }
                    }
                }
                check(&case);
                let r = case.reference();
                let Scorer::NegLogDist { eps, .. } = scorer else { continue };
                for kernel in kernels() {
                    let (out, lse) = case.run(kernel);
                    assert!(out.iter().chain(&lse).all(|x| !x.is_nan()), "{scorer:?} {kernel:?}: NaN");
                    for (i, &j) in matches.iter().enumerate() {
                        let vj = case.vrow(0, j);
                        if eps == 0.0 {
                            assert_eq!(
                                &out[i * dv..][..dv],
                                vj,
                                "{scorer:?} {kernel:?} row {i}: exact value"
                            );
                            assert_eq!(lse[i], INF, "{scorer:?} {kernel:?} row {i}");
                            continue;
                        }
                        let w: Vec<f64> = (0..n_kv)
                            .map(|t| {
                                let s = score(scorer, case.qrow(0, i), case.krow(0, t))
                                    + case.bias_at(0, i, t) as f64;
                                s.exp()
                            })
                            .collect();
                        let total: f64 = w.iter().sum();
                        for c in 0..dv {
                            let dev: f64 = (0..n_kv)
                                .filter(|&t| t != j)
                                .map(|t| w[t] * (case.vrow(0, t)[c] as f64 - vj[c] as f64).abs())
                                .sum::<f64>()
                                / total;
                            let got = out[i * dv + c];
                            let err = (got as f64 - vj[c] as f64).abs();
                            assert!(
                                got.is_finite() && err <= dev + r.tol[i * dv + c],
                                "{scorer:?} {kernel:?} row {i} col {c}: {got} vs value {} (bound {dev:e})",
                                vj[c]
                            );
                        }
                    }
                }
            }
        }
    }
    // Two and three copies of the matching key with eps = 0.
    for p in [2.0f32, 1.0, 3.5] {
        for copies in [2, 3] {
            let scorer = Scorer::NegLogDist { eps: 0.0, p };
            let mut case = Case::random(650, 1, 1, 2, 300, 7, 3, scorer);
            let key = case.krow(0, 20).to_vec();
            let at = [20, 150, 299];
            for &j in &at[1..copies] {
                case.k[j * 7..(j + 1) * 7].copy_from_slice(&key);
            }
            case.q[..7].copy_from_slice(&key);
            check(&case);
            for kernel in kernels() {
                let (out, lse) = case.run(kernel);
                assert_eq!(lse[0], INF, "p={p} {kernel:?}");
                if copies == 2 {
                    let (va, vb) = (case.vrow(0, at[0]), case.vrow(0, at[1]));
                    let want: Vec<f32> = va.iter().zip(vb).map(|(a, b)| (a + b) * 0.5).collect();
                    assert_eq!(out[..3], want[..], "p={p} {kernel:?}");
                }
            }
        }
    }
}
