//! Differential fuzzing: the tiled kernel at every dispatch level this CPU
//! supports against `Kernel::Scalar`, and both against the f64 reference of
//! `tests/common/mod.rs`, with that file's derived per-element tolerance.
//!
//! Input: a valid problem decoded by `valid::case` (1–6 heads with
//! grouped-query sharing, `n_q ≤ 64`, `n_kv ≤ 300`, `d ≤ 300`, `d_v ≤ 64`,
//! any of the four scorers — `Additive` with weights of `‖w‖₁` from ~2^-60
//! to ~2·10³ —, any mask, key length, optional bias with `−∞` entries, any
//! of the three memory layouts, finite grid data with special structure;
//! a softcap, ALiBi and sinks in a quarter of the cases each).
//!
//! Asserted (`common::check`): each kernel within the reference tolerance
//! (NaN only where the reference is NaN; rows that see no key exactly 0 with
//! lse exactly `−∞`, since their tolerance is 0 and the reference lse is
//! `−∞`); each tiled kernel within twice the tolerance of the scalar path;
//! output padding never written.
//!
//! The fuzzer found one gap in that tolerance, since closed in
//! `tests/common/mod.rs` (term 4, flushed weights): the tiled exponential
//! flushes weights below `e^{−87.33}` to 0, an absolute error the `1e-35`
//! floor covered only for values up to about 1 in magnitude (values ~10^3,
//! keys 88 logits below the row's maximum: tiled 0 vs reference 1.7e-35
//! against a tolerance of 1.0e-35; `corpus/differential/regress-exp-flush`).
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
#[path = "../support/valid.rs"]
mod valid;

use arbitrary::Unstructured;
use common::{Case, Path, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let opts = valid::Opts { multi_head: true, masks: true, budget: 1 << 21 };
    let Ok(Some(mut case)) = valid::case(&mut u, opts) else { return };
    if extras(&mut u, &mut case).is_err() {
        return;
    }
    let nan_rows = valid::nan_rows(&case);
    if nan_rows.is_empty() {
        common::check(&case);
    } else {
        check_with_nan_rows(&case, &nan_rows);
    }
});

/// A softcap, ALiBi slopes and sinks, each in one case of four, of
/// moderate size: logits stay far below the reference's limits (ALiBi terms
/// up to `4 · 300`, sinks up to 30 in magnitude).
fn extras(u: &mut Unstructured, case: &mut Case) -> arbitrary::Result<()> {
    if u.ratio(1u8, 4u8)? {
        case.softcap = Some(*u.choose(&[0.5f32, 3.0, 30.0, 1e3])?);
    }
    if u.ratio(1u8, 4u8)? {
        let amp = *u.choose(&[0.01f32, 0.5, 4.0])?;
        case.slopes = Some((0..case.heads).map(|h| amp * (-(h as f32 + 1.0)).exp2()).collect());
    }
    if u.ratio(1u8, 4u8)? {
        let amp = *u.choose(&[1.0f32, 30.0])?;
        case.sinks = Some((0..case.heads).map(|h| amp * ((h * 7 % 5) as f32 - 2.0) / 2.0).collect());
    }
    Ok(())
}

/// `common::check` with the NaN rows set aside (module docs).
fn check_with_nan_rows(case: &Case, nan_rows: &[usize]) {
    let mut r: Reference = case.reference();
    let dv = case.dv;
    let neutralise =
        |out: &mut [f32], lse: &mut [f32], what: &str| valid::neutralise(out, lse, nan_rows, dv, what);
    valid::neutralise_reference(&mut r, nan_rows, dv);
    // From here on, the same comparisons as `common::check`.
    let (mut so, mut sl) = case.run(Path::Scalar);
    neutralise(&mut so, &mut sl, "Scalar");
    r.assert_close(&so, &sl, 1.0, "scalar vs f64");
    for kernel in common::tiled() {
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
