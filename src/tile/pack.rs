//! Packing a tile of keys transposed, so that the key index is the SIMD
//! dimension of the score microkernel.

use super::TK;

/// Writes `kt[c * tk + j] = key_j[c0 + c]` for the `nt` keys `keys(0..nt)` and
/// `c < dc`, zero for `nt <= j < tk`; with `norms`, also accumulates `‖key_j‖²` over
/// these columns into `kn[j]` (overwriting it when `c0 == 0`).
#[inline]
pub(crate) fn pack<'a>(
    key: impl Fn(usize) -> &'a [f32],
    nt: usize,
    tk: usize,
    c0: usize,
    dc: usize,
    kt: &mut [f32],
    kn: Option<&mut [f32; TK]>,
) {
    let kt = &mut kt[..dc * tk];
    if nt < tk {
        for row in kt.chunks_exact_mut(tk) {
            row[nt..].fill(0.0);
        }
    }
    for j in 0..nt {
        let k = &key(j)[c0..c0 + dc];
        for (row, &x) in kt.chunks_exact_mut(tk).zip(k) {
            row[j] = x;
        }
    }
    if let Some(kn) = kn {
        if c0 == 0 {
            kn.fill(0.0);
        }
        for (j, x) in kn[..nt].iter_mut().enumerate() {
            let k = &key(j)[c0..c0 + dc];
            *x += crate::scorer::dot(k, k);
        }
    }
}
