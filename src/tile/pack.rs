//! Packing a tile of keys transposed, so that the key index is the SIMD
//! dimension of the score microkernel.

use super::{CHUNK_MAX, TK};
use crate::arch::{Simd, Vector};
use crate::element::sealed::Slice;
use crate::scorer::{dot, sq_dist};
use crate::Element;

/// Writes `kt[c * tk + j] = key_j[c0 + c] − centre[c]` (no subtraction
/// without a centre) for the `nt` keys `keys(0..nt)` and `c < dc`, zero for
/// `nt <= j < tk`; with `norms`, also accumulates the squared norm of what is
/// packed, `Σ_c kt[c * tk + j]²`, over these columns into `kn[j]`
/// (overwriting it when `c0 == 0`). 16-bit keys are widened to `f32` here,
/// a row at a time with the level's vectors: once per tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack<'a, S: Simd, E: Element>(
    simd: S,
    key: impl Fn(usize) -> &'a [E],
    nt: usize,
    tk: usize,
    c0: usize,
    dc: usize,
    kt: &mut [f32],
    mut kn: Option<&mut [f32; TK]>,
    centre: Option<&[f32]>,
) {
    let kt = &mut kt[..dc * tk];
    if nt < tk {
        for row in kt.chunks_exact_mut(tk) {
            row[nt..].fill(0.0);
        }
    }
    if let Some(kn) = kn.as_deref_mut() {
        if c0 == 0 {
            kn.fill(0.0);
        }
    }
    let mut wide = [0.0f32; CHUNK_MAX];
    for j in 0..nt {
        let k = &key(j)[c0..c0 + dc];
        let k: &[f32] = if let Slice::F32(k) = E::slice(k) {
            k
        } else {
            widen(simd, k, &mut wide[..dc]);
            &wide[..dc]
        };
        match centre {
            Some(m) => {
                for ((row, &x), &mc) in kt.chunks_exact_mut(tk).zip(k).zip(m) {
                    row[j] = x - mc;
                }
            }
            None => {
                for (row, &x) in kt.chunks_exact_mut(tk).zip(k) {
                    row[j] = x;
                }
            }
        }
        if let Some(kn) = kn.as_deref_mut() {
            kn[j] += centre.map_or_else(|| dot(k, k), |m| sq_dist(k, &m[..dc]));
        }
    }
}

/// `out[c] = x[c]` as `f32`, `LANES` at a time.
#[inline(always)]
fn widen<S: Simd, E: Element>(simd: S, x: &[E], out: &mut [f32]) {
    let l = S::LANES;
    let mut c = 0;
    while c + l <= x.len() {
        simd.load_e(&x[c..]).store(&mut out[c..]);
        c += l;
    }
    if c < x.len() {
        simd.load_partial_e(&x[c..]).store_partial(&mut out[c..]);
    }
}
