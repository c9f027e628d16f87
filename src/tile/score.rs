//! The score microkernels: `R` query rows against a packed tile of keys.
//!
//! Both scorers that need one share a register block ([`block`]): `R` rows ×
//! `NR` vectors of keys, the key index as the SIMD dimension. Only the term
//! each column adds differs: `q_c · k_c` ([`scores`]) or `w_c · tanh(a_c + b_c)`
//! ([`additive`]).

// Register blocks are indexed arrays: index loops are the clearest form.
#![allow(clippy::needless_range_loop)]

use super::TK;
use crate::arch::{Simd, Vector};
use crate::tanh::tanh;

/// `s[r][j] (+)= Σ_{c < dc} q[r][c] · kt[c * tk + j]` for every `j < tk`
/// (`tk` a multiple of `NR · LANES`).
///
/// Per column `c`, `NR` loads of the packed keys and `R` broadcasts of query
/// elements feed `R · NR` fused multiply-adds. With `accumulate`, adds to `s`
/// (later column chunks of a wide head); otherwise overwrites it.
#[inline(always)]
pub(crate) fn scores<S: Simd, const R: usize, const NR: usize>(
    simd: S,
    q: [&[f32]; R],
    kt: &[f32],
    tk: usize,
    dc: usize,
    s: &mut [[f32; TK]; R],
    accumulate: bool,
) {
    block::<S, R, NR>(
        simd,
        q,
        kt,
        tk,
        dc,
        s,
        accumulate,
        #[inline(always)]
        |_, qc, kc, acc| qc.mul_add(kc, acc),
    );
}

/// The `Additive` scores `s[r][j] (+)= Σ_{c < dc} w[c] · tanh(a[r][c] + bt[c * tk + j])`
/// for every `j < tk`: `a` are projected queries, `bt` a packed tile of
/// projected keys (transposed, so the key index is the SIMD dimension).
///
/// Per column, `R · NR` independent tangents then multiply-adds by `w_c`
/// keep the vector units busy. `h` tangents per pair are the cost of this
/// scorer; nothing here can be shared between pairs.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn additive<S: Simd, const R: usize, const NR: usize>(
    simd: S,
    a: [&[f32]; R],
    bt: &[f32],
    w: &[f32],
    tk: usize,
    dc: usize,
    s: &mut [[f32; TK]; R],
    accumulate: bool,
) {
    let w = &w[..dc];
    block::<S, R, NR>(
        simd,
        a,
        bt,
        tk,
        dc,
        s,
        accumulate,
        #[inline(always)]
        |c, ac, bc, acc| tanh(simd, ac + bc).mul_add(simd.splat(w[c]), acc),
    );
}

/// The register block: `s[r][j] (+)= Σ_{c < dc} term(c, x[r][c], kt[c][j..], ·)`,
/// `R` rows × `NR` vectors of keys at a time, `term(c, row, keys, acc)`
/// returning `acc` plus column `c`'s contribution (`row` is `x[r][c]`
/// broadcast, `keys` a vector of the packed tile's column `c`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<S: Simd, const R: usize, const NR: usize>(
    simd: S,
    x: [&[f32]; R],
    kt: &[f32],
    tk: usize,
    dc: usize,
    s: &mut [[f32; TK]; R],
    accumulate: bool,
    term: impl Fn(usize, S::V, S::V, S::V) -> S::V,
) {
    let x = x.map(|row| &row[..dc]);
    let kt = &kt[..dc * tk];
    let width = NR * S::LANES;
    for kb in (0..tk).step_by(width) {
        let mut acc = [[simd.splat(0.0); NR]; R];
        if accumulate {
            for r in 0..R {
                for n in 0..NR {
                    acc[r][n] = simd.load(&s[r][kb + n * S::LANES..]);
                }
            }
        }
        for (c, ktrow) in kt.chunks_exact(tk).enumerate() {
            let ktb = &ktrow[kb..kb + width];
            let mut kv = [simd.splat(0.0); NR];
            for n in 0..NR {
                kv[n] = simd.load(&ktb[n * S::LANES..]);
            }
            for r in 0..R {
                let xb = simd.splat(x[r][c]);
                for n in 0..NR {
                    acc[r][n] = term(c, xb, kv[n], acc[r][n]);
                }
            }
        }
        for r in 0..R {
            for n in 0..NR {
                acc[r][n].store(&mut s[r][kb + n * S::LANES..]);
            }
        }
    }
}
