//! Numeric edge cases, each run with `Kernel::Scalar` and every tiled kernel
//! (`common::TILED`): input magnitudes from subnormal to overflow, all keys
//! equal, a query equal to a key, ±∞ and NaN inputs, extreme scales and
//! epsilons, and a million keys.
//!
//! Tolerances. Every comparison with the f64 reference uses the per-element
//! tolerance of `Case::reference()` (`tol`, `lse_tol`), derived at the top of
//! `tests/common/mod.rs`; `check` also bounds each tiled kernel against the
//! scalar path by twice that tolerance. The only bound added here is for
//! subnormal values ([`subnormal_slack`]), derived where it is used from the
//! same rounding model. Where an f32 intermediate overflows or underflows but
//! the f64 reference's does not, the results legitimately differ from the
//! reference; those tests instead compare with the reference of the case whose
//! overflowed quantities are replaced by the value f32 gives them (±∞ or 0),
//! which is the README's rule for `+∞` scores ("the keys with `+∞` score share
//! the weight equally"), with that reference's tolerance (for a row maximum of
//! `+∞` only the accumulation term remains).

mod common;

use common::{check, Case, Reference, Rng, SCORERS, TILED};
use streamattn::{Kernel, Mask, Scorer};

const INF: f32 = f32::INFINITY;

/// The scalar path and every tiled kernel.
fn kernels() -> impl Iterator<Item = Kernel> {
    std::iter::once(Kernel::Scalar).chain(TILED)
}

/// Whether the f32 result `x` agrees with the reference value `r`: NaN and ±∞
/// must be reproduced exactly, finite values within `tol`.
fn close(x: f32, r: f64, tol: f64) -> bool {
    if r.is_nan() {
        x.is_nan()
    } else if r.is_infinite() {
        x as f64 == r
    } else {
        (x as f64 - r).abs() <= tol
    }
}

/// Asserts that row `row` (`h * n_q + i`) of `(out, lse)` agrees with `r`.
fn assert_row(r: &Reference, dv: usize, out: &[f32], lse: &[f32], row: usize, what: &str) {
    for c in 0..dv {
        let idx = row * dv + c;
        assert!(
            close(out[idx], r.out[idx], r.tol[idx]),
            "{what}: row {row} col {c}: {:e}, reference {:e} ± {:e}",
            out[idx],
            r.out[idx],
            r.tol[idx]
        );
    }
    assert!(
        close(lse[row], r.lse[row], r.lse_tol[row]),
        "{what}: row {row} lse {:e}, reference {:e} ± {:e}",
        lse[row],
        r.lse[row],
        r.lse_tol[row]
    );
}

/// Asserts that every output element and the lse of row `row` are NaN.
fn assert_nan_row(dv: usize, out: &[f32], lse: &[f32], row: usize, what: &str) {
    let o = &out[row * dv..][..dv];
    assert!(o.iter().all(|x| x.is_nan()) && lse[row].is_nan(), "{what}: row {row} = {o:?}, lse {}", lse[row]);
}

/// The score `s(q, k)` as defined (f64, from the f32 inputs).
fn score(scorer: Scorer, q: &[f32], k: &[f32]) -> f64 {
    let d = q.len();
    let default_scale = 1.0 / (d as f64).sqrt();
    let qk: f64 = q.iter().zip(k).map(|(&a, &b)| a as f64 * b as f64).sum();
    let d2: f64 = q.iter().zip(k).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    match scorer {
        Scorer::Dot { scale } => scale.map_or(default_scale, |s| s as f64) * qk,
        Scorer::NegSqDist { scale } => -scale.map_or(default_scale, |s| s as f64) * d2,
        Scorer::NegLogDist { eps, p } => -(eps as f64 + d2.powf(p as f64 / 2.0)).ln(),
        Scorer::Additive { w } => {
            w.iter().zip(q.iter().zip(k)).map(|(&w, (&a, &b))| w as f64 * (a as f64 + b as f64).tanh()).sum()
        }
        _ => unreachable!("scorer not covered by these tests"),
    }
}

/// The scorer with its parameters adapted to inputs of magnitude `a`, so that
/// scores stay of order 1, or `None` where that needs a parameter outside the
/// normal f32 range or an f32 intermediate would overflow or underflow.
fn scaled(scorer: Scorer<'static>, a: f64) -> Option<Scorer<'static>> {
    let normal = |x: f64| (f32::MIN_POSITIVE as f64..=1e36).contains(&x);
    match scorer {
        Scorer::Dot { scale } => {
            let s = scale.map_or(1.0, |s| s as f64) / (a * a);
            normal(s).then_some(Scorer::Dot { scale: Some(s as f32) })
        }
        Scorer::NegSqDist { scale } => {
            let s = scale.map_or(1.0, |s| s as f64) / (a * a);
            normal(s).then_some(Scorer::NegSqDist { scale: Some(s as f32) })
        }
        Scorer::NegLogDist { eps, p } => {
            // `eps` and `d^p` scale as a^p. With d = 13 and entries in
            // [-a, a], d² is below 52 a² and (for these seeds) above 1e-4 a²:
            // keep `d^p` and `1/(eps + d^p)` normal and finite.
            let e = eps as f64 * a.powf(p as f64);
            let lo = (1e-4 * a * a).powf(p as f64 / 2.0);
            let hi = (52.0 * a * a).powf(p as f64 / 2.0);
            let ok = (eps == 0.0 || normal(e)) && lo >= 1e-37 && hi <= 8e37;
            ok.then_some(Scorer::NegLogDist { eps: e as f32, p })
        }
        // Below 1, tanh(a·x) ≈ a·x: `w / a` keeps scores of order 1 (while
        // `w / a` is finite with a finite ‖w‖₁). Above, tanh saturates and
        // scores stay within ‖w‖₁ as they are.
        Scorer::Additive { w } if a < 1.0 => {
            let w: Vec<f32> = w.iter().map(|&x| (x as f64 / a) as f32).collect();
            let ok = w.iter().map(|&x| x.abs() as f64).sum::<f64>() <= 1e36;
            ok.then(|| Scorer::Additive { w: w.leak() })
        }
        Scorer::Additive { .. } => Some(scorer),
        _ => unreachable!(),
    }
}

fn scale_qk(case: &mut Case, a: f32) {
    case.q.iter_mut().chain(case.k.iter_mut()).for_each(|x| *x *= a);
}

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

/// The extra absolute error of an output element when values are subnormal.
///
/// The derivation in tests/common bounds relative rounding errors (`u`) and
/// absorbs underflow in a fixed `1e-35`. Below the normal range an f32
/// rounding has absolute error at most half the subnormal spacing, `2^-150`,
/// instead. Per output element and visible key there are at most two roundings
/// (the product `p_j v_j` and the sum, or one fused), at most one rescaling by
/// `α ≤ 1` per key, and one final multiplication by `1/l ≤ 1` (`l ≥ 1`, since
/// the largest weight is 1): at most `3n + 1` roundings, each error then
/// multiplied only by factors ≤ 1.
fn subnormal_slack(n: usize) -> f64 {
    (3 * n + 1) as f64 * 2f64.powi(-150)
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

/// One query row, one key (seen only by the later rows of a causal mask) or
/// one value entry set to ±∞, for every scorer. What the kernels do:
///
/// - **query** `q_ic = ±∞`: `Dot` scores are ±∞ by the sign of `q_ic k_jc`,
///   as in the f64 reference: the row is the mean of the values of the keys
///   with `+∞` score and its lse `+∞`. `NegSqDist` (norm trick
///   `scale·(2q·k − ‖k‖²)`) gives the same output as `Dot` and a NaN lse
///   (`+∞` plus the shift `−scale‖q‖² = −∞`), whereas its definition
///   `−scale‖q−k‖² = −∞` for every key would give an empty row (0, `−∞`).
///   `NegLogDist`: scalar path as the reference, every distance `+∞`, so every
///   weight 0: output 0, lse `−∞` (the tiled kernels: see
///   [`neg_log_dist_infinite_distances_weigh_zero_in_every_kernel`]).
/// - **key** `k_jc = ±∞`: `Dot` as the reference (row = `v_j` with lse `+∞`
///   when `q_ic k_jc > 0`, key ignored when `< 0`). `NegSqDist`: NaN row
///   (`2·scale·∞ − scale·∞`) when `q_ic k_jc ≥ 0`, key ignored (as the
///   reference) when `< 0`. `NegLogDist`: scalar path ignores the key, as the
///   reference.
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
                let mut as_dot = case.clone();
                as_dot.scorer = match scorer {
                    Scorer::NegSqDist { scale } => Scorer::Dot { scale },
                    s => s,
                };
                let r_dot = as_dot.reference();
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
                            for c in 0..dv {
                                let idx = 2 * dv + c;
                                assert!(close(out[idx], r_dot.out[idx], r_dot.tol[idx]), "{what}: col {c}");
                            }
                            assert!(lse[2].is_nan(), "{what}: lse {}", lse[2]);
                        }
                        // tanh(±∞ + k) = ±1 exactly: finite scores, as the reference.
                        Scorer::Additive { .. } => assert_row(&r, dv, &out, &lse, 2, &what),
                        _ if kernel == Kernel::Scalar => {
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
                        let aligned = case.q[i * d + 1] * sign >= 0.0;
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
                            Scorer::NegSqDist { .. } if aligned => assert_nan_row(dv, &out, &lse, i, &what),
                            Scorer::NegSqDist { .. } => assert_row(&r, dv, &out, &lse, i, &what),
                            Scorer::Additive { .. } => assert_row(&r, dv, &out, &lse, i, &what),
                            _ if kernel == Kernel::Scalar => assert_row(&r, dv, &out, &lse, i, &what),
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

/// Inputs on the grid `{−4, …, 4}/4 · 2⁻⁶¹`: every product `q_c k_c` (and
/// `k_c²`) is an integer multiple of `2⁻¹²⁶`, the smallest normal f32, so the
/// dot products are exact and nothing underflows.
fn grid_case(seed: u64, n_q: usize, n_kv: usize, d: usize, scorer: Scorer<'static>) -> Case {
    let mut case = Case::random(seed, 1, 1, n_q, n_kv, d, 4, scorer);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let unit = 2f32.powi(-61) / 4.0;
    case.q.iter_mut().chain(case.k.iter_mut()).for_each(|x| *x = (rng.below(9) as f32 - 4.0) * unit);
    case
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

/// Inputs of 2e19 with `NegLogDist`: `‖q − k‖²` (over 1e38 per term) overflows
/// f32, so every weight `1/(eps + ∞)` is 0, every score `−∞`: every kernel
/// returns what a row that sees no key returns, output 0 and lse `−∞`, the
/// reference of the case with the distances at their f32 value `+∞` (the
/// f64 reference of the actual case is finite). The products `q_c k_c` are
/// finite here; for larger inputs see
/// [`neg_log_dist_infinite_distances_weigh_zero_in_every_kernel`].
#[test]
fn overflowing_distances_weigh_zero() {
    for scorer in [
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

/// `NegLogDist` with `±∞` in a query or a key: the distance is `+∞` (in the
/// f64 reference and in every kernel: the tiled kernel recomputes distances
/// directly wherever the norm trick would meet `∞ − ∞`), so the weight is 0:
/// a key at infinite distance is ignored, a row whose every distance is
/// infinite is empty. (Finite inputs whose squared distances overflow f32 are
/// `overflowing_distances_weigh_zero`.)
#[test]
fn neg_log_dist_infinite_distances_weigh_zero_in_every_kernel() {
    for scorer in [
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

/// Inputs the `api` fuzz target found (fuzz/README.md, "Known bugs"), now
/// fixed: each case failed before its fix.
#[test]
fn fuzz_regressions() {
    // key-range-overflow: i + offset beyond usize::MAX must not saturate early.
    let m = Mask::Window { offset: 10, left: 20, right: 0 };
    assert_eq!(m.key_range(usize::MAX, usize::MAX), usize::MAX - 10..usize::MAX);
    assert_eq!(Mask::Causal { offset: usize::MAX }.key_range(usize::MAX, 7), 0..7);
    // logdist-tiny-p: p/2 underflows to 0; 0^p is still 0, d^p is 1 elsewhere.
    // logdist-huge-eps: 1/(eps + d^p) near 2^-128 must not overflow on inversion.
    for scorer in [
        Scorer::NegLogDist { eps: 1e-3, p: f32::from_bits(1) },
        Scorer::NegLogDist { eps: f32::MAX / 2.0, p: 2.0 },
        Scorer::NegLogDist { eps: 1e30, p: 1.0 },
    ] {
        for n_q in [3, 12] {
            let mut case = Case::random(1700, 1, 1, n_q, 50, 4, 3, scorer);
            let key = case.krow(0, 7).to_vec();
            case.q[..4].copy_from_slice(&key); // an exact match in row 0
            check(&case);
        }
    }
    // heads-loop: n_q = 0 returns at once, however many (empty) heads.
    let v = streamattn::HeadsRef::new(&[], usize::MAX, 0, 1, 1, 1).unwrap();
    for kernel in kernels() {
        let attn = streamattn::Attention::new(Scorer::dot()).kernel(kernel);
        let o = streamattn::HeadsMut::new(&mut [], usize::MAX, 0, 1, 1, 1).unwrap();
        assert_eq!(attn.run_heads(v, v, v, o, None), Ok(()));
    }
    // logdist-tiny-p-eps0: with eps = 0 the scalar path scored −(p/2)·ln d²,
    // and p/2 = 0 on an exact match gave 0·(−∞) = NaN instead of +∞.
    let mut case =
        Case::random(1701, 1, 1, 1, 1, 1, 1, Scorer::NegLogDist { eps: 0.0, p: f32::from_bits(1) });
    (case.q, case.k, case.v) = (vec![1.0], vec![1.0], vec![5.0]);
    for kernel in kernels() {
        assert_eq!(case.run(kernel), (vec![5.0], vec![f32::INFINITY]), "{kernel:?}");
    }
    // additive-l1-overflow: ‖w‖₁ ≤ f32::MAX in f64 was accepted, but the f32
    // sum of the scores rounds up at each step and reached +∞. Such a `w` is
    // now rejected (‖w‖₁ · e^{(h+1)·2⁻²⁴} > f32::MAX); the largest accepted
    // ones, with every tangent 1 or −1, give finite scores in every kernel.
    let w = [
        2f32.powi(127),
        2f32.powi(103) + 2f32.powi(80),
        2f32.powi(103) + 2f32.powi(80),
        2f32.powi(127) - 2f32.powi(105) - 2f32.powi(103),
    ];
    let c = Case::random(1702, 1, 1, 1, 2, 4, 1, Scorer::additive(Vec::from(w).leak()));
    let res = c.attention().run(
        streamattn::MatRef::dense(&c.q, 1, 4).unwrap(),
        streamattn::MatRef::dense(&c.k, 2, 4).unwrap(),
        streamattn::MatRef::dense(&c.v, 2, 1).unwrap(),
        streamattn::MatMut::dense(&mut [0.0], 1, 1).unwrap(),
    );
    assert_eq!(res, Err(streamattn::Error::InvalidParameter { what: "w_l1_norm", value: f32::INFINITY }));
    for sign in [1.0f32, -1.0] {
        // Four equal entries at the largest f32 the check accepts.
        let limit = f32::MAX as f64 / 4.0 / (5.0 * 2f64.powi(-24)).exp();
        let mut x = limit as f32;
        if x as f64 > limit {
            x = f32::from_bits(x.to_bits() - 1);
        }
        let w: &'static [f32] = vec![sign * x; 4].leak();
        let mut case = Case::random(1703, 1, 1, 1, 2, 4, 2, Scorer::additive(w));
        case.q = vec![10.0; 4]; // every tangent ±1: the score is ±4x
        case.k = vec![10.0, 10.0, 10.0, 10.0, -10.0, -10.0, -10.0, -10.0];
        for kernel in kernels() {
            let (out, lse) = case.run(kernel);
            assert!(
                lse[0].is_finite() && out.iter().all(|o| o.is_finite()),
                "{kernel:?} sign {sign}: {out:?} {lse:?}"
            );
        }
        let up = vec![f32::from_bits(x.to_bits() + 1) * sign; 4];
        let c = Case::random(1704, 1, 1, 1, 2, 4, 2, Scorer::additive(up.leak()));
        let err = c.attention().run(
            streamattn::MatRef::dense(&c.q, 1, 4).unwrap(),
            streamattn::MatRef::dense(&c.k, 2, 4).unwrap(),
            streamattn::MatRef::dense(&c.v, 2, 2).unwrap(),
            streamattn::MatMut::dense(&mut [0.0; 2], 1, 2).unwrap(),
        );
        assert!(err.is_err(), "one ulp above the limit must be rejected");
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
