//! Measures the accuracy of the scalar path and the tiled kernel at every
//! level this CPU supports against a
//! materialised f64 reference, over a deterministic sweep of cases, and prints
//! a Markdown table of the worst errors per scorer and kernel.
//!
//! Sweep: every scorer (default and non-default parameters; `Additive` with
//! random `w ∈ [−1, 1)^d` and `q`, `k` taken as the projections), head dimension
//! `d ∈ {1, 7, 64, 128, 300}` (`d_v = d`), `n_kv ∈ {1, 100, 5000}`,
//! `n_q ∈ {3, 12}`, masks none / bottom-right causal / sliding window of 41
//! keys, and two input distributions: `q`, `k`, `v` uniform in [-1, 1); and
//! keys in 8 tight clusters (centres uniform in [-1, 1), spread 0.01) with
//! every query a key plus noise of 1e-3 (values uniform in [-1, 1)). The
//! rows marked "offset 1000" run the same sweep for the distance scorers with
//! `±1000` (signs per coordinate) added to every query and key coordinate: a
//! cluster at about 1000 times its spread from the origin.
//!
//! Per output element `(i, c)` of a row `i` that sees the keys `J_i`:
//!
//! - absolute error `|O − O_ref|`;
//! - relative error `|O − O_ref| / max_{j ∈ J_i} |v_jc|` (the largest
//!   magnitude of column `c` among the values row `i` sees);
//! - `|O − O_ref| / tol`, with the per-element tolerance derived in
//!   `tests/common/mod.rs`, whose f64 reference this example uses;
//!
//! and per row the absolute log-sum-exp error `|lse − lse_ref|` and its ratio
//! to the derived lse tolerance. A non-finite result where the reference is
//! finite (or the reverse) counts as an infinite error.
//!
//! Run: `cargo run --release --example accuracy`

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Case, Path, Reference, Rng};
use streamattn::{Mask, Scorer};

/// A case of the sweep: uniform inputs, or keys in 8 tight clusters with
/// every query a key plus noise of 1e-3.
fn problem(
    seed: u64,
    n_q: usize,
    n_kv: usize,
    d: usize,
    clustered: bool,
    scorer: Scorer<'static>,
    mask: Mask,
) -> Case {
    let mut case = Case::random(seed, 1, 1, n_q, n_kv, d, d, scorer).with_mask(mask);
    if clustered {
        let mut r = Rng::new(seed ^ 0x5eed);
        let centres = r.vec(8 * d, 1.0);
        for j in 0..n_kv {
            let c = r.below(8);
            for t in 0..d {
                case.k[j * d + t] = centres[c * d + t] + 0.01 * r.sym();
            }
        }
        for i in 0..n_q {
            let j = r.below(n_kv);
            for t in 0..d {
                case.q[i * d + t] = case.k[j * d + t] + 1e-3 * r.sym();
            }
        }
    }
    case
}

/// `max_{j ∈ J_i} |v_jc|` for every output element: the divisor of the
/// relative error.
fn vmax(case: &Case) -> Vec<f64> {
    let mut m = vec![0.0f64; case.n_q * case.dv];
    for i in 0..case.n_q {
        for j in case.mask.key_range(i, case.key_len()) {
            for c in 0..case.dv {
                let x = (case.vrow(0, j)[c] as f64).abs();
                m[i * case.dv + c] = m[i * case.dv + c].max(x);
            }
        }
    }
    m
}

fn error(x: f32, r: f64) -> f64 {
    let x = x as f64;
    if x == r {
        0.0
    } else if x.is_finite() && r.is_finite() {
        (x - r).abs()
    } else {
        f64::INFINITY
    }
}

/// Worst errors of one scorer and kernel over the sweep.
#[derive(Default)]
struct Worst {
    out_abs: f64,
    out_rel: f64,
    out_ratio: f64,
    lse_abs: f64,
    lse_ratio: f64,
    rel_at: String,
}

fn measure(p: &Case, r: &Reference, vmax: &[f64], kernel: Path, worst: &mut Worst, label: &str) {
    let (out, lse) = p.run(kernel);
    for (idx, &x) in out.iter().enumerate() {
        let err = error(x, r.out[idx]);
        worst.out_abs = worst.out_abs.max(err);
        if err > 0.0 {
            worst.out_ratio = worst.out_ratio.max(err / r.tol[idx]);
        }
        if vmax[idx] > 0.0 {
            let rel = err / vmax[idx];
            if rel > worst.out_rel || worst.rel_at.is_empty() {
                worst.out_rel = rel;
                worst.rel_at = label.to_string();
            }
        }
    }
    for ((&x, &want), &tol) in lse.iter().zip(&r.lse).zip(&r.lse_tol) {
        let err = error(x, want);
        worst.lse_abs = worst.lse_abs.max(err);
        if err > 0.0 {
            worst.lse_ratio = worst.lse_ratio.max(err / tol);
        }
    }
}

fn main() {
    let scorers = [
        ("Dot", Scorer::dot(), 0.0),
        ("Dot scale=0.3", Scorer::Dot { scale: Some(0.3) }, 0.0),
        ("NegSqDist", Scorer::neg_sq_dist(), 0.0),
        ("NegSqDist scale=2", Scorer::NegSqDist { scale: Some(2.0) }, 0.0),
        ("NegSqDist, offset 1000", Scorer::neg_sq_dist(), 1000.0),
        ("NegSqDist scale=2, offset 1000", Scorer::NegSqDist { scale: Some(2.0) }, 1000.0),
        ("NegLogDist", Scorer::neg_log_dist(), 0.0),
        ("NegLogDist eps=0", Scorer::NegLogDist { eps: 0.0, p: 2.0 }, 0.0),
        ("NegLogDist eps=1e-2 p=1", Scorer::NegLogDist { eps: 1e-2, p: 1.0 }, 0.0),
        ("NegLogDist p=3.5", Scorer::NegLogDist { eps: 1e-3, p: 3.5 }, 0.0),
        ("NegLogDist, offset 1000", Scorer::neg_log_dist(), 1000.0),
        ("Additive (w random)", common::ADDITIVE, 0.0),
    ];
    let kernels: Vec<(String, Path)> = common::paths()
        .into_iter()
        .map(|k| match k {
            Path::Scalar => ("Scalar".to_string(), k),
            Path::Tiled(level) => (format!("Tiled, {}", level.name()), k),
        })
        .collect();
    let mut rows = Vec::new();
    let mut cases = 0;
    let mut seed = 0;
    for (name, scorer, offset) in scorers {
        let mut worst: Vec<Worst> = kernels.iter().map(|_| Worst::default()).collect();
        for d in [1, 7, 64, 128, 300] {
            for n_kv in [1, 100, 5000] {
                for n_q in [3, 12] {
                    let masks = [
                        ("none", Mask::None),
                        ("causal", Mask::causal_bottom_right(n_q, n_kv)),
                        ("window", Mask::Window { offset: n_kv.saturating_sub(n_q), left: 40, right: 0 }),
                    ];
                    for (mask_name, mask) in masks {
                        for clustered in [false, true] {
                            seed += 1;
                            let mut p = problem(seed, n_q, n_kv, d, clustered, scorer, mask);
                            if offset != 0.0 {
                                let mut r = Rng::new(seed ^ 0x0ff5e7);
                                let o: Vec<f32> =
                                    (0..d).map(|_| if r.below(2) == 0 { offset } else { -offset }).collect();
                                for (t, x) in p.q.iter_mut().chain(p.k.iter_mut()).enumerate() {
                                    *x += o[t % d];
                                }
                            }
                            let r = p.reference();
                            let vmax = vmax(&p);
                            let label = format!(
                                "d={d} n_kv={n_kv} n_q={n_q} {mask_name} {}",
                                if clustered { "clustered" } else { "uniform" }
                            );
                            for (w, (_, kernel)) in worst.iter_mut().zip(&kernels) {
                                measure(&p, &r, &vmax, *kernel, w, &label);
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        for (w, (kname, _)) in worst.into_iter().zip(&kernels) {
            rows.push((name, kname.clone(), w));
        }
    }

    println!("{cases} cases per scorer and kernel\n", cases = cases / scorers.len());
    println!(
        "| scorer | kernel | max \\|ΔO\\| | max \\|ΔO\\| / max\\|v\\| | max \\|ΔO\\| / tol | max \\|Δlse\\| | max \\|Δlse\\| / tol | worst relative error at |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---|");
    for (name, kname, w) in rows {
        println!(
            "| {name} | {kname} | {:.2e} | {:.2e} | {:.3} | {:.2e} | {:.3} | {} |",
            w.out_abs, w.out_rel, w.out_ratio, w.lse_abs, w.lse_ratio, w.rel_at
        );
    }
}
