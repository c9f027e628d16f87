//! Differential fuzzing: every tiled kernel (`Tiled`, `TiledX1/X4/X8/X16`)
//! against `Kernel::Scalar`, and both against the f64 reference of
//! `tests/common/mod.rs`, with that file's derived per-element tolerance.
//!
//! Input: a valid problem decoded by `valid::case` (1–6 heads with
//! grouped-query sharing, `n_q ≤ 64`, `n_kv ≤ 300`, `d ≤ 300`, `d_v ≤ 64`,
//! any mask, key length, optional bias with `−∞` entries, any of the three
//! memory layouts, finite grid data with special structure).
//!
//! Asserted (`common::check`): each kernel within the reference tolerance
//! (NaN only where the reference is NaN; rows that see no key exactly 0 with
//! lse exactly `−∞`, since their tolerance is 0 and the reference lse is
//! `−∞`); each tiled kernel within twice the tolerance of the scalar path;
//! output padding never written.
//!
//! One case the reference cannot express is handled here: `NegLogDist` with
//! `eps = 0` gives an exact match the logit `+∞`, and a `−∞` bias on that key
//! makes the score NaN. The crate documents that a NaN logit makes the row
//! NaN (output and lse); the reference either skips the NaN (a row whose
//! other scores are all `−∞` counts as "no key") or has a NaN lse, which
//! `Reference::assert_close` cannot compare. Such rows are checked to be NaN
//! in every kernel, then neutralised before the remaining rows go through
//! the same comparisons as `common::check`.
#![no_main]

#[path = "../../tests/common/mod.rs"]
mod common;
mod valid;

use arbitrary::Unstructured;
use common::{Case, Reference, TILED};
use libfuzzer_sys::fuzz_target;
use streamattn::{Kernel, Scorer};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let opts = valid::Opts { multi_head: true, masks: true, budget: 1 << 21 };
    let Ok(Some(case)) = valid::case(&mut u, opts) else { return };
    let nan_rows = nan_rows(&case);
    if nan_rows.is_empty() {
        common::check(&case);
    } else {
        check_with_nan_rows(&case, &nan_rows);
    }
});

/// Rows `h * n_q + i` with a visible key whose score is NaN: `NegLogDist`
/// with `eps = 0`, the query equal to the key (logit `+∞`), bias `−∞`.
fn nan_rows(case: &Case) -> Vec<usize> {
    let Scorer::NegLogDist { eps, .. } = case.scorer else { return vec![] };
    if eps != 0.0 || case.bias.is_none() {
        return vec![];
    }
    let mut rows = vec![];
    for h in 0..case.heads {
        for i in 0..case.n_q {
            let q = case.qrow(h, i);
            let nan = case.mask.key_range(i, case.key_len()).any(|j| {
                case.bias_at(h, i, j) == f32::NEG_INFINITY && case.krow(h / case.group(), j) == q
            });
            if nan {
                rows.push(h * case.n_q + i);
            }
        }
    }
    rows
}

fn check_with_nan_rows(case: &Case, nan_rows: &[usize]) {
    let mut r: Reference = case.reference();
    let dv = case.dv;
    let neutralise = |out: &mut [f32], lse: &mut [f32], what: &str| {
        for &row in nan_rows {
            let o = &mut out[row * dv..(row + 1) * dv];
            assert!(
                o.iter().all(|x| x.is_nan()) && lse[row].is_nan(),
                "{what}: row {row} has a NaN score (+inf logit, -inf bias) but out = {o:?}, lse = {}",
                lse[row]
            );
            o.fill(0.0);
            lse[row] = f32::NEG_INFINITY;
        }
    };
    for &row in nan_rows {
        r.out[row * dv..(row + 1) * dv].fill(0.0);
        r.tol[row * dv..(row + 1) * dv].fill(0.0);
        r.lse[row] = f64::NEG_INFINITY;
    }
    // From here on, the same comparisons as `common::check`.
    let (mut so, mut sl) = case.run(Kernel::Scalar);
    neutralise(&mut so, &mut sl, "Scalar");
    r.assert_close(&so, &sl, 1.0, "scalar vs f64");
    for kernel in TILED {
        let (mut to, mut tl) = case.run(kernel);
        neutralise(&mut to, &mut tl, &format!("{kernel:?}"));
        r.assert_close(&to, &tl, 1.0, &format!("{kernel:?} vs f64"));
        for (idx, ((&a, &b), &t)) in to.iter().zip(&so).zip(&r.tol).enumerate() {
            let err = (a as f64 - b as f64).abs();
            assert!(
                err <= 2.0 * t || (a.is_nan() && b.is_nan()),
                "{kernel:?} vs scalar: out[{idx}] {a:e} vs {b:e}, error {err:e} > {:e}",
                2.0 * t
            );
        }
    }
}
