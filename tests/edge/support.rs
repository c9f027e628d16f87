//! Helpers of the edge-case tests: the kernels run, comparisons with the
//! reference that reproduce NaN and ±∞ exactly, scorers rescaled with the
//! data, and the grid cases.

use crate::common::{paths, Case, Path, Reference, Rng};
use streamattn::Scorer;

pub(crate) const INF: f32 = f32::INFINITY;

/// The scalar path and every tiled kernel.
pub(crate) fn kernels() -> impl Iterator<Item = Path> {
    paths().into_iter()
}

/// Whether the f32 result `x` agrees with the reference value `r`: NaN and ±∞
/// must be reproduced exactly, finite values within `tol`.
pub(crate) fn close(x: f32, r: f64, tol: f64) -> bool {
    if r.is_nan() {
        x.is_nan()
    } else if r.is_infinite() {
        x as f64 == r
    } else {
        (x as f64 - r).abs() <= tol
    }
}

/// Asserts that row `row` (`h * n_q + i`) of `(out, lse)` agrees with `r`.
pub(crate) fn assert_row(r: &Reference, dv: usize, out: &[f32], lse: &[f32], row: usize, what: &str) {
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
pub(crate) fn assert_nan_row(dv: usize, out: &[f32], lse: &[f32], row: usize, what: &str) {
    let o = &out[row * dv..][..dv];
    assert!(o.iter().all(|x| x.is_nan()) && lse[row].is_nan(), "{what}: row {row} = {o:?}, lse {}", lse[row]);
}

/// The score `s(q, k)` as defined (f64, from the f32 inputs).
pub(crate) fn score(scorer: Scorer, q: &[f32], k: &[f32]) -> f64 {
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
pub(crate) fn scaled(scorer: Scorer<'static>, a: f64) -> Option<Scorer<'static>> {
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

pub(crate) fn scale_qk(case: &mut Case, a: f32) {
    case.q.iter_mut().chain(case.k.iter_mut()).for_each(|x| *x *= a);
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
pub(crate) fn subnormal_slack(n: usize) -> f64 {
    (3 * n + 1) as f64 * 2f64.powi(-150)
}

/// Inputs on the grid `{−4, …, 4}/4 · 2⁻⁶¹`: every product `q_c k_c` (and
/// `k_c²`) is an integer multiple of `2⁻¹²⁶`, the smallest normal f32, so the
/// dot products are exact and nothing underflows.
pub(crate) fn grid_case(seed: u64, n_q: usize, n_kv: usize, d: usize, scorer: Scorer<'static>) -> Case {
    let mut case = Case::random(seed, 1, 1, n_q, n_kv, d, 4, scorer);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let unit = 2f32.powi(-61) / 4.0;
    case.q.iter_mut().chain(case.k.iter_mut()).for_each(|x| *x = (rng.below(9) as f32 - 4.0) * unit);
    case
}
