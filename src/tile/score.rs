//! The score microkernels: `R` query rows against a packed tile of keys.

// Register blocks are indexed arrays: index loops are the clearest form.
#![allow(clippy::needless_range_loop)]

use super::TK;
use crate::simd::Vector;
use crate::tanh::tanh;

/// `s[r][j] (+)= Σ_{c < dc} q[r][c] · kt[c * tk + j]` for every `j < tk`
/// (`tk` a multiple of `NR · LANES`).
///
/// The register block is `R` rows × `NR` vectors of keys: per column `c`, `NR`
/// loads of the packed keys and `R` broadcasts of query elements feed
/// `R · NR` fused multiply-adds. With `accumulate`, adds to `s` (later column
/// chunks of a wide head); otherwise overwrites it.
#[inline(always)]
pub(crate) fn scores<V: Vector, const R: usize, const NR: usize>(
    q: [&[f32]; R],
    kt: &[f32],
    tk: usize,
    dc: usize,
    s: &mut [[f32; TK]; R],
    accumulate: bool,
) {
    let q = q.map(|row| &row[..dc]);
    let kt = &kt[..dc * tk];
    let width = NR * V::LANES;
    for kb in (0..tk).step_by(width) {
        let mut acc = [[V::splat(0.0); NR]; R];
        if accumulate {
            for r in 0..R {
                for n in 0..NR {
                    acc[r][n] = V::load(&s[r][kb + n * V::LANES..]);
                }
            }
        }
        for (c, ktrow) in kt.chunks_exact(tk).enumerate() {
            let ktb = &ktrow[kb..kb + width];
            let mut kv = [V::splat(0.0); NR];
            for n in 0..NR {
                kv[n] = V::load(&ktb[n * V::LANES..]);
            }
            for r in 0..R {
                let qb = V::splat(q[r][c]);
                for n in 0..NR {
                    acc[r][n] = qb.mul_add(kv[n], acc[r][n]);
                }
            }
        }
        for r in 0..R {
            for n in 0..NR {
                acc[r][n].store(&mut s[r][kb + n * V::LANES..]);
            }
        }
    }
}

/// The `Additive` scores `s[r][j] (+)= Σ_{c < dc} w[c] · tanh(a[r][c] + bt[c * tk + j])`
/// for every `j < tk`: `a` are projected queries, `bt` a packed tile of
/// projected keys (transposed, so the key index is the SIMD dimension).
///
/// The same register block as [`scores`], with `tanh(a + b)` then a multiply-add
/// by `w_c` in place of the multiply-add `q·k`: `R · NR` independent tangents
/// per column keep the vector units busy. `h` tangents per pair are the cost of
/// this scorer; nothing here can be shared between pairs.
#[inline(always)]
pub(crate) fn additive<V: Vector, const R: usize, const NR: usize>(
    a: [&[f32]; R],
    bt: &[f32],
    w: &[f32],
    tk: usize,
    dc: usize,
    s: &mut [[f32; TK]; R],
    accumulate: bool,
) {
    let a = a.map(|row| &row[..dc]);
    let (bt, w) = (&bt[..dc * tk], &w[..dc]);
    let width = NR * V::LANES;
    for kb in (0..tk).step_by(width) {
        let mut acc = [[V::splat(0.0); NR]; R];
        if accumulate {
            for r in 0..R {
                for n in 0..NR {
                    acc[r][n] = V::load(&s[r][kb + n * V::LANES..]);
                }
            }
        }
        for (c, btrow) in bt.chunks_exact(tk).enumerate() {
            let btb = &btrow[kb..kb + width];
            let mut bv = [V::splat(0.0); NR];
            for n in 0..NR {
                bv[n] = V::load(&btb[n * V::LANES..]);
            }
            let wc = V::splat(w[c]);
            for r in 0..R {
                let ar = V::splat(a[r][c]);
                for n in 0..NR {
                    acc[r][n] = tanh(ar + bv[n]).mul_add(wc, acc[r][n]);
                }
            }
        }
        for r in 0..R {
            for n in 0..NR {
                acc[r][n].store(&mut s[r][kb + n * V::LANES..]);
            }
        }
    }
}
