//! Split-KV: the whole computed with `run_lse` equals the key range split at
//! 1–3 fuzz-chosen points, each part run with `run_lse` on sub-views of K, V
//! (and of the bias), and the parts combined with `streamattn::merge` in a
//! fuzz-chosen order and association; and `par_run_heads_split` with the
//! same points equals the parts merged in key order, except for rows with
//! `+∞` scores in two or more parts, which it computes over all their keys
//! (the whole reference).
//!
//! Input: a valid single-head problem from `valid::case` (mask `None`; any
//! of the four scorers, `Additive` with its weights included), a
//! number of keys `n ≤ n_kv` actually used (the whole runs with
//! `key_len(n)` over a K/V cache of `n_kv` rows; each part runs with
//! `key_len` = its length), the split points, the merge tree, a kernel for
//! the whole and one for the parts.
//!
//! # Tolerance, derived
//!
//! Notation and the f32 error bounds `U`, `γ(n)`, `E_EXP` as in
//! `tests/common/mod.rs`. Every quantity below is per query row; `t` are
//! per-column output bounds, `λ` lse bounds.
//!
//! - **Leaves.** Each part's result is checked against its own f64 reference
//!   (`Case::reference()` of the sub-problem) with that file's tolerance, so
//!   `|Õ − O| ≤ t` and `|L̃ − L| ≤ λ` (`L = −∞` exactly for a part with no
//!   key, with output exactly 0).
//! - **One merge** of partials `a`, `b` (exact `O_x`, `L_x`, bounds `t_x`,
//!   `λ_x`) against the exact union `O = c_a O_a + c_b O_b`,
//!   `c_a = 1/(1 + e^{L_b − L_a})`, `L = ln(e^{L_a} + e^{L_b})`:
//!   * perturbing `L_b − L_a` by at most `λ = λ_a + λ_b` moves `c_x` by a
//!     factor in `[e^{−λ}, e^{λ}]` (`d ln c_a / dΔ = −c_b ∈ [−1, 0]`);
//!   * the merge computes `w = e^{fl(L̃_x − max)}` (the larger weight is
//!     exactly 1) and `c_x = w_x / (w_a + w_b)`: the subtraction errs by
//!     `u·|L̃_a − L̃_b|` in the exponent, the exponential by `E_EXP`, the sum
//!     and the division by `u` each, so `ĉ_x = c̃_x(1 + θ)` with
//!     `|θ| ≤ ρ = e^{u|L̃_a − L̃_b| + E_EXP}(1 + u)² − 1`; together
//!     `|ĉ_x − c_x| ≤ κ c_x`, `κ = (1 + ρ)e^{λ} − 1`;
//!   * `fl(ĉ_a Õ_a + ĉ_b Õ_b)` adds `γ(2)(|ĉ_a Õ_a| + |ĉ_b Õ_b|)`, plus
//!     `2^-140` for products that underflow to subnormals;
//!
//!   * a weight `e^{−|ΔL|}` below `2^-126` is subnormal: its error is
//!     absolute, `2^-150` from the exponential and again from the division,
//!     so `2^-149 Σ_x (|O_x| + t_x)` more;
//!
//!   so `t = Σ_x [(1+κ)c_x t_x + κ c_x |O_x| + γ(2)(1+κ)c_x(|O_x| + t_x)
//!   + 2^-149(|O_x| + t_x)] + 2^-140`.
//!   The lse: `ln Σ e^{L_x}` is 1-Lipschitz in the max norm (inputs:
//!   `max(λ_a, λ_b)`), the sum `1 + w` has relative error at most ρ
//!   (`−ln(1 − ρ)` after the log), the log and the addition round by
//!   `u(|L| + 1)`: `λ = max(λ_a, λ_b) − ln(1 − ρ) + u(|L| + 1)`.
//!   A partial with `L = −∞` gets weight exactly 0 and the other weight
//!   exactly 1: the merge returns the other partial unchanged, bounds and
//!   all. A partial with `L = +∞` (an infinite logit: `NegLogDist`, `eps = 0`,
//!   exact match) against a finite one likewise wins unchanged. Two `+∞`
//!   partials are averaged with equal weights (documented: the partials do
//!   not record how many infinite logits each holds), so the exact value of
//!   that node is *defined* as `(O_a + O_b)/2` with bound
//!   `(t_a + t_b)/2 + u(|O_a| + |O_b| + t_a + t_b)/2 + 2^-140`, and rows
//!   where this happens are compared to that value instead of the whole.
//! - **Tree.** The bounds compose: each node's inputs are within their
//!   bounds of their exact values, which is all one merge assumes.
//! - **Whole.** `run_lse` on the whole is within the whole problem's
//!   reference tolerance of the exact result (also checked). So
//!   `|merged − whole| ≤ t_root + tol_whole` and likewise for the lse
//!   (`±∞` must match exactly). The exact union is computed twice in f64
//!   (from the whole reference and through the tree); those differ by f64
//!   rounding, ~2^29 times below any f32 term of the bounds, absorbed by a
//!   relative `1e-12`.
//! - **`par_run_heads_split`** merges its parts in key order with the same
//!   arithmetic as `merge`: its result is bounded by the left-to-right tree
//!   of the same leaves (`t_root`, `λ_root` against the exact union, no
//!   second kernel term), except rows with `+∞` scores in two or more parts,
//!   which it computes again over all their keys: those are compared to the
//!   whole problem's reference with its tolerance.
#![no_main]

#[path = "../../tests/common/mod.rs"]
#[macro_use]
mod common;
#[path = "../support/valid.rs"]
mod valid;

use arbitrary::{Result, Unstructured};
use common::{gamma, Case, Path, Reference, Strided, E_EXP, U};
use libfuzzer_sys::fuzz_target;
use streamattn::{merge, Attention, Bias, KvSplit, MatMut, MatRef};

const TINY: f64 = 7.2e-43; // 2^-140
const SUB: f64 = 1.401298464324817e-45; // 2^-149

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});

/// A partial result (computed f32) and its exact value with bounds, per row.
#[derive(Clone)]
struct Part {
    out: Vec<f32>,
    lse: Vec<f32>,
    exact: Vec<f64>,
    exact_lse: Vec<f64>,
    tol: Vec<f64>,
    lse_tol: Vec<f64>,
    /// Row took part in a merge of two `+∞` partials: its exact value is the
    /// documented average, not the union.
    averaged: Vec<bool>,
    /// Row has a NaN score: NaN output and lse (documented for the
    /// kernels and for `merge`); no exact value is tracked.
    nan: Vec<bool>,
    what: String,
}

fn run(u: &mut Unstructured) -> Result<()> {
    // The split first (the case's data may use up the rest of the input):
    // keys used as a fraction of the cache, cut points as fractions of that
    // (0 and n often), kernels, and the merge order.
    let used = if valid::one_in(u, 3)? { Some(u.int_in_range(0u16..=256)?) } else { None };
    let key_len_given = valid::one_in(u, 2)?;
    let cuts: Vec<(u8, u16)> = (0..u.int_in_range(1u8..=3)?)
        .map(|_| Ok((u.int_in_range(0u8..=3)?, u.arbitrary()?)))
        .collect::<Result<_>>()?;
    let paths = common::paths();
    let whole_kernel = *u.choose(&paths)?;
    let part_kernel = *u.choose(&paths)?;
    let order: Vec<(u8, u8)> = (0..3).map(|_| Ok((u.arbitrary()?, u.arbitrary()?))).collect::<Result<_>>()?;

    let opts = valid::Opts { multi_head: false, masks: false, budget: 1 << 21 };
    let Some(mut case) = valid::case(u, opts)? else { return Ok(()) };
    let (n_q, n_kv, d, dv) = (case.n_q, case.n_kv, case.d, case.dv);
    // Keys used: all, or a prefix of the cache (the rest is padding).
    let n = used.map_or(n_kv, |f| n_kv * f as usize / 256);
    case.key_len = if n < n_kv || key_len_given { Some(n) } else { None };
    let mut cuts: Vec<usize> = cuts
        .into_iter()
        .map(|(kind, f)| match kind {
            0 => 0,
            1 => n,
            _ => n * f as usize / 65535,
        })
        .collect();
    cuts.sort_unstable();
    let mut bounds = vec![0];
    bounds.extend(cuts);
    bounds.push(n);

    let qp = Strided::pack(&case.q, 1, n_q, d, case.layout);
    let kp = Strided::pack(&case.k, 1, n_kv, d, case.layout);
    let vp = Strided::pack(&case.v, 1, n_kv, dv, case.layout);
    let q = qp.view().head(0);

    // The whole, with run_lse over the cache and key_len(n). Rows with a NaN
    // score (`eps = 0` exact match under a `−∞` bias, see `differential`)
    // must be NaN; they are set aside for the reference comparison.
    let mut rw = case.reference();
    let nan_whole = valid::nan_rows(&case);
    valid::neutralise_reference(&mut rw, &nan_whole, dv);
    let (wo, wl) = run_range(&case, &kp, &vp, 0, n_kv, Some(n), whole_kernel, q);
    let (mut wo_n, mut wl_n) = (wo.clone(), wl.clone());
    valid::neutralise(&mut wo_n, &mut wl_n, &nan_whole, dv, "whole");
    rw.assert_close(&wo_n, &wl_n, 1.0, &format!("whole ({whole_kernel:?}) vs f64"));

    // The parts, each checked against its own reference.
    let mut parts: Vec<Part> = bounds
        .windows(2)
        .map(|w| {
            let (lo, hi) = (w[0], w[1]);
            let sub = sub_case(&case, lo, hi);
            let mut r: Reference = sub.reference();
            let nan_rows = valid::nan_rows(&sub);
            valid::neutralise_reference(&mut r, &nan_rows, dv);
            let (out, lse) = run_range(&case, &kp, &vp, lo, hi, Some(hi - lo), part_kernel, q);
            let what = format!("keys {lo}..{hi}");
            let (mut out_n, mut lse_n) = (out.clone(), lse.clone());
            valid::neutralise(&mut out_n, &mut lse_n, &nan_rows, dv, &what);
            r.assert_close(
                &out_n,
                &lse_n,
                1.0,
                &format!("part {what} ({part_kernel:?}) vs its f64 reference"),
            );
            let mut nan = vec![false; n_q];
            nan_rows.iter().for_each(|&i| nan[i] = true);
            Part {
                out,
                lse,
                exact: r.out,
                exact_lse: r.lse,
                tol: r.tol,
                lse_tol: r.lse_tol,
                averaged: vec![false; n_q],
                nan,
                what,
            }
        })
        .collect();

    // The parallel split entry with the same points (module docs).
    let mut in_order = parts[0].clone();
    for p in &parts[1..] {
        merge_into(&mut in_order, p, n_q, dv);
    }
    let points = &bounds[1..bounds.len() - 1];
    let (po, pl) = case.run_with(part_kernel, ParSplit(points.to_vec()));
    let par_ctx = format!(
        "{n_q} x {n} keys (cache {n_kv}), d = {d}, dv = {dv}, {:?}, bias = {}, par_run_heads_split at \
         {points:?} ({part_kernel:?})",
        case.scorer,
        case.bias.is_some()
    );
    for i in 0..n_q {
        let (row, lse) = (&po[i * dv..(i + 1) * dv], pl[i]);
        if in_order.nan[i] || nan_whole.contains(&i) {
            assert!(
                row.iter().all(|x| x.is_nan()) && lse.is_nan(),
                "{par_ctx}: row {i} has a NaN score but got {row:?}, lse {lse}"
            );
        } else if in_order.averaged[i] {
            let tol = |c: usize| rw.tol[i * dv + c];
            assert_row(&par_ctx, "whole reference", i, (row, lse), (&rw.out, rw.lse[i]), tol, rw.lse_tol[i]);
        } else {
            let m = &in_order;
            let tol = |c: usize| m.tol[i * dv + c];
            assert_row(&par_ctx, "parts merged in order", i, (row, lse), (&m.exact, m.exact_lse[i]), tol, m.lse_tol[i]);
        }
    }

    // Merge in a fuzz-chosen order: pick two, merge one into the other.
    for &(x, y) in &order {
        if parts.len() < 2 {
            break;
        }
        let a = x as usize % parts.len();
        let b = {
            let b = y as usize % (parts.len() - 1);
            if b >= a {
                b + 1
            } else {
                b
            }
        };
        let pb = parts[b].clone();
        let pa = &mut parts[a];
        merge_into(pa, &pb, n_q, dv);
        parts.remove(b);
    }
    let m = &parts[0];

    // Merged vs whole.
    let ctx = format!(
        "{n_q} x {n} keys (cache {n_kv}), d = {d}, dv = {dv}, {:?}, bias = {}, splits {bounds:?}, \
         whole {whole_kernel:?}, parts {part_kernel:?}, merged as {}",
        case.scorer,
        case.bias.is_some(),
        m.what
    );
    let wo64: Vec<f64> = wo.iter().map(|&x| x as f64).collect();
    let zeros = vec![0.0; n_q * dv];
    for i in 0..n_q {
        if m.nan[i] || nan_whole.contains(&i) {
            let row = &m.out[i * dv..(i + 1) * dv];
            assert!(
                m.nan[i] && nan_whole.contains(&i) && row.iter().all(|x| x.is_nan()) && m.lse[i].is_nan(),
                "{ctx}: row {i} has a NaN score (whole: {}, parts: {}) but merged {row:?}, lse {}",
                nan_whole.contains(&i),
                m.nan[i],
                m.lse[i]
            );
            continue;
        }
        let (target, target_tol, target_lse, target_lse_tol, vs) = if m.averaged[i] {
            // Two +inf partials met: compare to the documented average.
            (&m.exact, &zeros, m.exact_lse[i], 0.0, "documented +inf average")
        } else {
            (&wo64, &rw.tol, wl[i] as f64, rw.lse_tol[i], "whole")
        };
        let row = (&m.out[i * dv..(i + 1) * dv], m.lse[i]);
        let tol = |c: usize| m.tol[i * dv + c] + target_tol[i * dv + c];
        assert_row(&ctx, vs, i, row, (target, target_lse), tol, m.lse_tol[i] + target_lse_tol);
    }
    Ok(())
}

/// `Attention::par_run_heads_split` at these points.
struct ParSplit(Vec<usize>);

entry!(ParSplit, |self, a, q, k, v, out, lse| {
    a.par_run_heads_split(q, k, v, out, lse, KvSplit::At(&self.0))
});

/// Row `i` of a result (`got`: its columns and lse) against a target
/// (`want`: the whole `[row][col]` f64 output and row `i`'s lse) within
/// `tol(c)` per column and `lse_tol`, plus `1e-12` relative for the
/// target's own f64 rounding; infinite lse must match exactly.
fn assert_row(
    ctx: &str,
    vs: &str,
    i: usize,
    (got, got_lse): (&[f32], f32),
    (want, want_lse): (&[f64], f64),
    tol: impl Fn(usize) -> f64,
    lse_tol: f64,
) {
    let dv = got.len();
    for (c, &x) in got.iter().enumerate() {
        let (x, y) = (x as f64, want[i * dv + c]);
        let bound = tol(c) + 1e-12 * y.abs();
        assert!(
            (x - y).abs() <= bound || (x.is_nan() && y.is_nan()),
            "{ctx}: row {i} col {c}: {x:e} vs {vs} {y:e}, error {:e} > {bound:e}",
            (x - y).abs()
        );
    }
    let (x, y) = (got_lse as f64, want_lse);
    let ok = if y.is_infinite() || x.is_infinite() {
        x == y
    } else {
        (x - y).abs() <= lse_tol + 1e-12 * y.abs()
    };
    assert!(ok, "{ctx}: row {i}: lse {x:e} vs {vs} {y:e}, bound {lse_tol:e}");
}

/// Runs keys `lo..hi` of the packed cache with `run_lse`, reading K, V and the
/// bias in place through sub-views.
#[allow(clippy::too_many_arguments)]
fn run_range<'a>(
    case: &Case,
    kp: &'a Strided,
    vp: &'a Strided,
    lo: usize,
    hi: usize,
    key_len: Option<usize>,
    kernel: Path,
    q: MatRef<'_>,
) -> (Vec<f32>, Vec<f32>) {
    let rows = hi - lo;
    // Sub-views at an offset of `lo` rows (an empty part may start past the end).
    let sub = |s: &'a Strided| -> &'a [f32] { s.data.get(lo * s.row_stride..).unwrap_or(&[]) };
    let k = MatRef::new(sub(kp), rows, case.d, kp.row_stride).expect("K sub-view");
    let v = MatRef::new(sub(vp), rows, case.dv, vp.row_stride).expect("V sub-view");
    let mut att = kernel.set(Attention::new(case.scorer));
    if let Some(n) = key_len {
        att = att.key_len(n);
    }
    if let Some(b) = &case.bias {
        att =
            att.bias(Bias::new(&b[lo.min(b.len())..], case.n_q, rows, 0, case.n_kv).expect("bias sub-view"));
    }
    let mut out = vec![f32::NAN; case.n_q * case.dv];
    let mut lse = vec![f32::NAN; case.n_q];
    att.run_lse(q, k, v, MatMut::dense(&mut out, case.n_q, case.dv).unwrap(), &mut lse)
        .unwrap_or_else(|e| panic!("valid part {lo}..{hi} rejected: {e:?}"));
    (out, lse)
}

/// `case` restricted to keys `lo..hi` (one head, no key length).
fn sub_case(case: &Case, lo: usize, hi: usize) -> Case {
    let mut s = case.clone();
    s.n_kv = hi - lo;
    s.key_len = None;
    s.k = case.k[lo * case.d..hi * case.d].to_vec();
    s.v = case.v[lo * case.dv..hi * case.dv].to_vec();
    s.bias = case.bias.as_ref().map(|b| {
        if case.n_kv == 0 {
            vec![]
        } else {
            b.chunks(case.n_kv).flat_map(|row| row[lo..hi].to_vec()).collect()
        }
    });
    s
}

/// `merge(a, b)` into `a`, with the exact value and bounds of the union
/// (module docs).
fn merge_into(a: &mut Part, b: &Part, n_q: usize, dv: usize) {
    let before = a.clone();
    merge(
        MatMut::dense(&mut a.out, n_q, dv).unwrap(),
        &mut a.lse,
        MatRef::dense(&b.out, n_q, dv).unwrap(),
        &b.lse,
    )
    .expect("merge of valid partials rejected");
    a.what = format!("({} <- {})", before.what, b.what);
    for i in 0..n_q {
        let cols = i * dv..(i + 1) * dv;
        if before.nan[i] || b.nan[i] {
            a.nan[i] = true;
            continue;
        }
        let (la, lb) = (before.exact_lse[i], b.exact_lse[i]);
        let (inf, ninf) = (f64::INFINITY, f64::NEG_INFINITY);
        let take = |a: &mut Part, src: &Part| {
            a.exact[cols.clone()].copy_from_slice(&src.exact[cols.clone()]);
            a.tol[cols.clone()].copy_from_slice(&src.tol[cols.clone()]);
            a.exact_lse[i] = src.exact_lse[i];
            a.lse_tol[i] = src.lse_tol[i];
        };
        if la == inf && lb == inf {
            a.averaged[i] = true;
            for c in cols.clone() {
                let (oa, ob, ta, tb) = (before.exact[c], b.exact[c], before.tol[c], b.tol[c]);
                a.exact[c] = 0.5 * (oa + ob);
                a.tol[c] = 0.5 * (ta + tb) + 0.5 * U * (oa.abs() + ob.abs() + ta + tb) + TINY;
            }
            a.exact_lse[i] = inf;
            a.lse_tol[i] = 0.0;
        } else if la == ninf || lb == inf {
            take(a, b);
        } else if lb == ninf || la == inf {
            // `a` unchanged.
        } else {
            let lam = before.lse_tol[i] + b.lse_tol[i];
            let dl = (before.lse[i] as f64 - b.lse[i] as f64).abs();
            let rho = (U * dl + E_EXP).exp() * (1.0 + U).powi(2) - 1.0;
            let kappa = (1.0 + rho) * lam.exp() - 1.0;
            let ca = 1.0 / (1.0 + (lb - la).exp());
            let cb = 1.0 / (1.0 + (la - lb).exp());
            for c in cols.clone() {
                let term = |c: f64, o: f64, t: f64| {
                    (1.0 + kappa) * c * t + kappa * c * o.abs() + gamma(2) * (1.0 + kappa) * c * (o.abs() + t)
                };
                let (oa, ob) = (before.exact[c], b.exact[c]);
                a.exact[c] = ca * oa + cb * ob;
                let sub = SUB * (oa.abs() + before.tol[c] + ob.abs() + b.tol[c]);
                a.tol[c] = term(ca, oa, before.tol[c]) + term(cb, ob, b.tol[c]) + sub + TINY;
            }
            let big_l = la.max(lb) + (-(la - lb).abs()).exp().ln_1p();
            a.exact_lse[i] = big_l;
            a.lse_tol[i] = before.lse_tol[i].max(b.lse_tol[i]) - (1.0 - rho).ln() + U * (big_l.abs() + 1.0);
        }
        a.averaged[i] |= b.averaged[i];
    }
}
