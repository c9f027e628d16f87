//! The f64 reference the firmware checks every result against, and the
//! error bound of each comparison: the crate's test-suite derivation
//! (`tests/common/mod.rs` in the repository), specialised to unmasked and
//! causal rows of finite data.
//!
//! With `u = 2⁻²⁴` and `γ(n) = n·u / (1 − n·u)`:
//! 1. the f32 logit of a pair errs by at most `e`: `Dot` `γ(d+2)·scale·Σ|q_c k_c|`;
//!    `NegSqDist` `γ(d+5)·scale·(‖a‖ + ‖b‖)²`, with `a`, `b` bounded through
//!    the box of the query rows (the kernel's centre lies in it);
//!    `NegLogDist` `ρ + u(|s| + 1)` with
//!    `ρ = max(1, p/2)·8γ(d+4) + 5u·|(p/2) ln d²| + E_exp + 2u`;
//!    `Additive` `Σ_c |w_c|(0.449u + E_tanh|t_c|) + γ(h+1)(1 + E_tanh)Σ_c|w_c t_c|`;
//! 2. weights then err by `δ = max e + 2u·max|s| + E_exp` relative, which
//!    moves column `c` of the output by `(e^{2δ} − 1)(A_c + |O_c|)`, where
//!    `A_c = Σ_j p_j |v_jc|`;
//! 3. the sums add `2γ(2n + 3)·A_c`, flushed weights `n·2⁻¹²⁵(V_c + |O_c|)`.
//!
//! `E_exp = 4u` and `E_tanh = 3u` are the crate's tested bounds.

use libm::{exp, log, pow, sqrt, tanh};

const U: f64 = 1.0 / (1u64 << 24) as f64;
const E_EXP: f64 = 4.0 * U;
const E_TANH: f64 = 3.0 * U;

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// The scorers, as the reference computes them. (A build constructs those it
/// calls the crate with; every variant is compiled, as the firmware hides
/// which one it checks from the optimiser.)
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub enum Scorer<'w> {
    Dot,
    NegSqDist,
    NegLogDist { eps: f64, p: f64 },
    Additive { w: &'w [f32] },
}

/// Score in f64 and the bound on the f32 logit's error (step 1).
fn pair(scorer: Scorer, q: &[f32], k: &[f32], qbox: (&[f64], &[f64])) -> (f64, f64) {
    let d = q.len();
    let scale = 1.0 / sqrt(d as f64);
    let (mut qk, mut qk_abs, mut d2) = (0.0, 0.0, 0.0);
    for (&a, &b) in q.iter().zip(k) {
        let (a, b) = (f64::from(a), f64::from(b));
        qk += a * b;
        qk_abs += (a * b).abs();
        d2 += (a - b) * (a - b);
    }
    match scorer {
        Scorer::Dot => (scale * qk, gamma(d + 2) * scale * qk_abs),
        Scorer::NegSqDist => {
            let (mut a2, mut b2) = (0.0, 0.0);
            for c in 0..d {
                let (lo, hi, x, y) = (qbox.0[c], qbox.1[c], f64::from(q[c]), f64::from(k[c]));
                let a = (x - lo).max(hi - x);
                let b = (y - lo).abs().max((y - hi).abs());
                a2 += a * a;
                b2 += b * b;
            }
            let r = sqrt(a2) + sqrt(b2);
            (-scale * d2, gamma(d + 5) * scale * r * r)
        }
        Scorer::NegLogDist { eps, p } => {
            let s = -log(eps + pow(d2, p / 2.0));
            let y = if d2 > 0.0 { (p / 2.0 * log(d2)).abs() } else { 0.0 };
            let rho = (p / 2.0).max(1.0) * 8.0 * gamma(d + 4) + 5.0 * U * y + E_EXP + 2.0 * U;
            (s, rho + U * (s.abs() + 1.0))
        }
        Scorer::Additive { w } => {
            let (mut s, mut e, mut abs) = (0.0, 0.0, 0.0);
            for ((&w, &a), &b) in w.iter().zip(q).zip(k) {
                let t = tanh(f64::from(a) + f64::from(b));
                let w = f64::from(w);
                s += w * t;
                e += w.abs() * (0.449 * U + E_TANH * t.abs());
                abs += (w * t).abs();
            }
            (s, e + gamma(w.len() + 1) * (1.0 + E_TANH) * abs)
        }
    }
}

/// The most keys a row of [`check_row`] sees.
pub const MAX_KEYS: usize = 256;

/// Checks a row of output `out` (`d_v` columns) against the f64 reference
/// of query `q` over keys `k` and values `v` (`n ≤ MAX_KEYS` rows each, all
/// seen), and against `other`, the same row from another kernel: returns
/// the largest `|out − reference| / bound` and `|out − other| / (2·bound)`
/// of the row's columns (both kernels lie within the bound of the
/// reference, so within twice it of each other). A result passes when both
/// are at most 1.
#[allow(clippy::too_many_arguments)]
pub fn check_row(
    scorer: Scorer,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n: usize,
    qbox: (&[f64], &[f64]),
    out: &[f32],
    other: &[f32],
) -> (f64, f64) {
    let (d, d_v) = (q.len(), out.len());
    let mut scores = [0.0f64; MAX_KEYS];
    let scores = &mut scores[..n];
    let mut m = f64::NEG_INFINITY;
    let (mut e_max, mut s_max) = (0.0f64, 0.0f64);
    for (j, sj) in scores.iter_mut().enumerate() {
        let (s, e) = pair(scorer, q, &k[j * d..][..d], qbox);
        *sj = s;
        m = m.max(s);
        e_max = e_max.max(e);
        s_max = s_max.max(s.abs());
    }
    let delta = e_max + 2.0 * U * s_max + E_EXP;
    let (mut worst, mut apart) = (0.0f64, 0.0f64);
    for c in 0..d_v {
        let (mut l, mut o, mut a, mut vmax) = (0.0, 0.0, 0.0, 0.0f64);
        for (j, &s) in scores.iter().enumerate() {
            let p = exp(s - m);
            let x = f64::from(v[j * d_v + c]);
            l += p;
            o += p * x;
            a += p * x.abs();
            vmax = vmax.max(x.abs());
        }
        let (o, a) = (o / l, a / l);
        let tol = (exp(2.0 * delta) - 1.0) * (a + o.abs())
            + 2.0 * gamma(2 * n + 3) * a
            + n as f64 * exp(-125.0 * core::f64::consts::LN_2) * (vmax + o.abs())
            + 1e-35;
        let err = (f64::from(out[c]) - o).abs();
        let diff = (f64::from(out[c]) - f64::from(other[c])).abs();
        if err.is_nan() || diff.is_nan() {
            return (f64::INFINITY, f64::INFINITY);
        }
        worst = worst.max(err / tol);
        apart = apart.max(diff / (2.0 * tol));
    }
    (worst, apart)
}
