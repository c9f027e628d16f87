//! Packing a tile of keys transposed, so that the key index is the SIMD
//! dimension of the score microkernel.

use super::TK;
use crate::scorer::{dot, sq_dist};

/// Writes `kt[c * tk + j] = key_j[c0 + c] − centre[c]` (no subtraction
/// without a centre) for the `nt` keys `keys(0..nt)` and `c < dc`, zero for
/// `nt <= j < tk`; with `norms`, also accumulates the squared norm of what is
/// packed, `Σ_c kt[c * tk + j]²`, over these columns into `kn[j]`
/// (overwriting it when `c0 == 0`).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn pack<'a>(
    key: impl Fn(usize) -> &'a [f32],
    nt: usize,
    tk: usize,
    c0: usize,
    dc: usize,
    kt: &mut [f32],
    kn: Option<&mut [f32; TK]>,
    centre: Option<&[f32]>,
) {
    let kt = &mut kt[..dc * tk];
    if nt < tk {
        for row in kt.chunks_exact_mut(tk) {
            row[nt..].fill(0.0);
        }
    }
    for j in 0..nt {
        let k = &key(j)[c0..c0 + dc];
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
    }
    if let Some(kn) = kn {
        if c0 == 0 {
            kn.fill(0.0);
        }
        for (j, x) in kn[..nt].iter_mut().enumerate() {
            let k = &key(j)[c0..c0 + dc];
            // `sq_dist` rounds each `k_c − centre_c` as the packing above does.
            *x += centre.map_or_else(|| dot(k, k), |m| sq_dist(k, &m[..dc]));
        }
    }
}
