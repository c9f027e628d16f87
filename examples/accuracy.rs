//! Measures the accuracy of `Kernel::Scalar` and `Kernel::Tiled` against a
//! materialised f64 reference, over a deterministic sweep of cases, and prints
//! a Markdown table of the worst errors per scorer and kernel.
//!
//! Sweep: every scorer (default and non-default parameters), head dimension
//! `d ∈ {1, 7, 64, 128, 300}` (`d_v = d`), `n_kv ∈ {1, 100, 5000}`,
//! `n_q ∈ {3, 12}`, masks none / bottom-right causal / sliding window of 41
//! keys, and two input distributions: `q`, `k`, `v` uniform in [-1, 1); and
//! keys in 8 tight clusters (centres uniform in [-1, 1), spread 0.01) with
//! every query a key plus noise of 1e-3 (values uniform in [-1, 1)).
//!
//! Per output element `(i, c)` of a row `i` that sees the keys `J_i`:
//!
//! - absolute error `|O − O_ref|`;
//! - relative error `|O − O_ref| / max_{j ∈ J_i} |v_jc|` (the largest
//!   magnitude of column `c` among the values row `i` sees);
//! - `|O − O_ref| / tol`, with the per-element tolerance derived in
//!   `tests/common/mod.rs` (re-implemented below, same formulas);
//!
//! and per row the absolute log-sum-exp error `|lse − lse_ref|` and its ratio
//! to the derived lse tolerance. A non-finite result where the reference is
//! finite (or the reverse) counts as an infinite error.
//!
//! Run: `cargo run --release --example accuracy`

use streamattn::{Attention, Kernel, Mask, MatMut, MatRef, Scorer};

/// Unit roundoff of f32.
const U: f64 = 1.0 / (1u64 << 24) as f64;
/// Bound on the relative error of the exponential (tests/common: `E_EXP`).
const E_EXP: f64 = 4.0 * U;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// 64-bit LCG, high bits (the generator of tests/common).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
    fn below(&mut self, n: usize) -> usize {
        self.next_u32() as usize % n
    }
}

struct Problem {
    n_q: usize,
    n_kv: usize,
    d: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    scorer: Scorer,
    mask: Mask,
}

fn problem(
    seed: u64,
    n_q: usize,
    n_kv: usize,
    d: usize,
    clustered: bool,
    scorer: Scorer,
    mask: Mask,
) -> Problem {
    let mut r = Rng::new(seed);
    let v: Vec<f32> = (0..n_kv * d).map(|_| r.sym()).collect();
    let (q, k) = if clustered {
        let centres: Vec<f32> = (0..8 * d).map(|_| r.sym()).collect();
        let mut k = Vec::with_capacity(n_kv * d);
        for _ in 0..n_kv {
            let c = r.below(8);
            k.extend((0..d).map(|t| centres[c * d + t] + 0.01 * r.sym()));
        }
        let mut q = Vec::with_capacity(n_q * d);
        for _ in 0..n_q {
            let j = r.below(n_kv);
            q.extend((0..d).map(|t| k[j * d + t] + 1e-3 * r.sym()));
        }
        (q, k)
    } else {
        ((0..n_q * d).map(|_| r.sym()).collect(), (0..n_kv * d).map(|_| r.sym()).collect())
    };
    Problem { n_q, n_kv, d, q, k, v, scorer, mask }
}

/// The reference output and lse of every row, with the tolerances of
/// tests/common/mod.rs (output: `(e^{2δ} − 1)(A_c + |O_c|) + 2γ(2n + 3) A_c
/// + 1e-35`; lse: `δ + E_exp + γ(2n + 3) + u|lse|`, plus the rounding of the
/// added-back `scale ‖q‖²` for `NegSqDist`), and the divisor of the relative
/// error, `max_{j ∈ J_i} |v_jc|`.
struct Reference {
    out: Vec<f64>,
    tol: Vec<f64>,
    vmax: Vec<f64>,
    lse: Vec<f64>,
    lse_tol: Vec<f64>,
}

/// Score as defined (f64), the bound on the f32 logit's error, and the
/// magnitude of the logit the kernel computes (tests/common: `pair`).
fn pair(scorer: Scorer, q: &[f32], k: &[f32]) -> (f64, f64, f64) {
    let d = q.len();
    let (mut qk, mut qk_abs, mut kk, mut d2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in q.iter().zip(k) {
        let (a, b) = (a as f64, b as f64);
        qk += a * b;
        qk_abs += (a * b).abs();
        kk += b * b;
        d2 += (a - b) * (a - b);
    }
    let default_scale = 1.0 / (d as f64).sqrt();
    match scorer {
        Scorer::Dot { scale } => {
            let sc = scale.map_or(default_scale, |x| x as f64);
            (sc * qk, gamma(d + 2) * sc * qk_abs, sc * qk.abs())
        }
        Scorer::NegSqDist { scale } => {
            let sc = scale.map_or(default_scale, |x| x as f64);
            let bound = sc * (2.0 * qk_abs + kk);
            (-sc * d2, gamma(d + 3) * bound, bound)
        }
        Scorer::NegLogDist { eps, p } => {
            let (eps, p) = (eps as f64, p as f64);
            let s = -(eps + d2.powf(p / 2.0)).ln();
            let y = if d2 > 0.0 { (p / 2.0 * d2.ln()).abs() } else { 0.0 };
            let rho = (p / 2.0).max(1.0) * 8.0 * gamma(d + 4) + 5.0 * U * y + E_EXP + 2.0 * U;
            (s, rho + U * (s.abs() + 1.0), s.abs())
        }
        _ => unreachable!("scorer not in the sweep"),
    }
}

fn reference(p: &Problem) -> Reference {
    let (d, n_q) = (p.d, p.n_q);
    let mut r = Reference {
        out: vec![0.0; n_q * d],
        tol: vec![0.0; n_q * d],
        vmax: vec![0.0; n_q * d],
        lse: vec![f64::NEG_INFINITY; n_q],
        lse_tol: vec![0.0; n_q],
    };
    for i in 0..n_q {
        let q = &p.q[i * d..][..d];
        let keys = p.mask.key_range(i, p.n_kv);
        let n = keys.len();
        if n == 0 {
            continue;
        }
        let (mut s, mut e, mut kl) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for j in keys.clone() {
            let (sj, ej, kj) = pair(p.scorer, q, &p.k[j * d..][..d]);
            s.push(sj);
            e.push(ej);
            kl.push(kj);
        }
        let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = if m == f64::INFINITY {
            s.iter().map(|&x| if x == f64::INFINITY { 1.0 } else { 0.0 }).collect()
        } else {
            s.iter().map(|&x| (x - m).exp()).collect()
        };
        let l: f64 = w.iter().sum();
        let delta = if m == f64::INFINITY {
            0.0
        } else {
            let big_delta = e.iter().zip(&w).filter(|t| *t.1 > 0.0).map(|t| *t.0).fold(0.0, f64::max);
            let big_s = kl.iter().cloned().filter(|x| x.is_finite()).fold(0.0, f64::max);
            big_delta + 2.0 * U * big_s + E_EXP
        };
        let wf = (2.0 * delta).exp_m1();
        let acc = 2.0 * gamma(2 * n + 3);
        for c in 0..d {
            let (mut o, mut a, mut vmax) = (0.0, 0.0, 0.0f64);
            for (t, j) in keys.clone().enumerate() {
                let x = p.v[j * d + c] as f64;
                vmax = vmax.max(x.abs());
                if w[t] != 0.0 {
                    o += w[t] * x;
                    a += w[t] * x.abs();
                }
            }
            let (o, a) = (o / l, a / l);
            r.out[i * d + c] = o;
            r.tol[i * d + c] = wf * (a + o.abs()) + acc * a + 1e-35;
            r.vmax[i * d + c] = vmax;
        }
        let sq_shift = match p.scorer {
            Scorer::NegSqDist { scale } => {
                let sc = scale.map_or(1.0 / (d as f64).sqrt(), |x| x as f64);
                gamma(d + 2) * sc * q.iter().map(|&x| (x as f64).powi(2)).sum::<f64>()
            }
            _ => 0.0,
        };
        let lse = m + l.ln();
        r.lse[i] = lse;
        r.lse_tol[i] = delta + E_EXP + gamma(2 * n + 3) + U * lse.abs() + sq_shift;
    }
    r
}

/// `|x − r|`, 0 when both are the same infinity, `+∞` when one is finite and
/// the other is not (or `x` is NaN).
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

fn measure(p: &Problem, r: &Reference, kernel: Kernel, worst: &mut Worst, label: &str) {
    let (n_q, n_kv, d) = (p.n_q, p.n_kv, p.d);
    let mut out = vec![0.0f32; n_q * d];
    let mut lse = vec![0.0f32; n_q];
    Attention::new(p.scorer)
        .mask(p.mask)
        .kernel(kernel)
        .run_lse(
            MatRef::dense(&p.q, n_q, d).unwrap(),
            MatRef::dense(&p.k, n_kv, d).unwrap(),
            MatRef::dense(&p.v, n_kv, d).unwrap(),
            MatMut::dense(&mut out, n_q, d).unwrap(),
            &mut lse,
        )
        .unwrap();
    for (idx, &x) in out.iter().enumerate() {
        let err = error(x, r.out[idx]);
        worst.out_abs = worst.out_abs.max(err);
        if err > 0.0 {
            worst.out_ratio = worst.out_ratio.max(err / r.tol[idx]);
        }
        if r.vmax[idx] > 0.0 {
            let rel = err / r.vmax[idx];
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
        ("Dot", Scorer::dot()),
        ("Dot scale=0.3", Scorer::Dot { scale: Some(0.3) }),
        ("NegSqDist", Scorer::neg_sq_dist()),
        ("NegSqDist scale=2", Scorer::NegSqDist { scale: Some(2.0) }),
        ("NegLogDist", Scorer::neg_log_dist()),
        ("NegLogDist eps=0", Scorer::NegLogDist { eps: 0.0, p: 2.0 }),
        ("NegLogDist eps=1e-2 p=1", Scorer::NegLogDist { eps: 1e-2, p: 1.0 }),
        ("NegLogDist p=3.5", Scorer::NegLogDist { eps: 1e-3, p: 3.5 }),
    ];
    let kernels = [("Scalar", Kernel::Scalar), ("Tiled", Kernel::Tiled)];
    let mut rows = Vec::new();
    let mut cases = 0;
    let mut seed = 0;
    for (name, scorer) in scorers {
        let mut worst = [Worst::default(), Worst::default()];
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
                            let p = problem(seed, n_q, n_kv, d, clustered, scorer, mask);
                            let r = reference(&p);
                            let label = format!(
                                "d={d} n_kv={n_kv} n_q={n_q} {mask_name} {}",
                                if clustered { "clustered" } else { "uniform" }
                            );
                            for (w, (_, kernel)) in worst.iter_mut().zip(kernels) {
                                measure(&p, &r, kernel, w, &label);
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        for (w, (kname, _)) in worst.into_iter().zip(kernels) {
            rows.push((name, kname, w));
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
