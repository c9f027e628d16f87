//! Key norms a runtime can cache next to its KV cache.

use crate::{Element, Error, HeadsMut, HeadsRef};

/// Writes the squared norm of every key: `norms[h][j] = ‖k[h][j]‖² = Σ_c k[h][j][c]²`
/// (units: squared units of the keys).
///
/// `k` is `heads × n × d`; `norms` is a `heads × n × 1` view (one float per
/// key, any head and row strides). `NegLogDist` needs `‖k_j‖²` for every
/// key it scores (`NegSqDist` measures keys from a centre among the queries
/// instead, and does not read them); a runtime that keeps
/// a KV cache can compute the norms of each new cache row once, when it is
/// appended (call this on the views of the new rows only), keep them in a
/// `heads × capacity` buffer, and hand them to every later call with
/// [`Attention::cached_key_norms`](crate::Attention::cached_key_norms), so a
/// decode step does not recompute the norms of the whole cache.
///
/// Each norm is summed left to right, as the prefill kernel sums the norms it
/// computes itself (heads of up to 256 columns; 64 at
/// [`Level::Generic`](crate::Level::Generic)), so results with cached norms
/// are the same as without there, and elsewhere differ only by the rounding
/// of the norms. Norms that do not belong to the keys (stale or garbage) give
/// wrong results: the kernels trust them, as they trust the keys.
///
/// Errors: [`Error::ShapeMismatch`] if `norms` is not `k.heads() × k.rows() × 1`.
///
/// ```
/// use streamattn::{key_norms, HeadsMut, HeadsRef};
/// let k = [3.0f32, 4.0, 1.0, 0.0]; // one head, two keys of d = 2
/// let mut norms = [0.0f32; 2];
/// key_norms(HeadsRef::heads_major(&k, 1, 2, 2)?, HeadsMut::heads_major(&mut norms, 1, 2, 1)?)?;
/// assert_eq!(norms, [25.0, 1.0]);
/// # Ok::<(), streamattn::Error>(())
/// ```
pub fn key_norms<E: Element>(k: HeadsRef<'_, E>, norms: HeadsMut<'_>) -> Result<(), Error> {
    check(&k, norms.heads(), norms.rows(), norms.cols())?;
    let layout = norms.layout;
    for h in 0..k.heads() {
        let kh = k.head(h);
        for j in 0..kh.rows() {
            let row = kh.row(j);
            norms.data[layout.offset(h, j)] = crate::scorer::dot(row, row);
        }
    }
    Ok(())
}

/// Checks that a norms view of `heads × rows × cols` fits the keys `k`.
pub(crate) fn check<E: Element>(
    k: &HeadsRef<'_, E>,
    heads: usize,
    rows: usize,
    cols: usize,
) -> Result<(), Error> {
    let what = "key_norms";
    for (expected, found) in [(k.heads(), heads), (k.rows(), rows), (1, cols)] {
        if expected != found {
            return Err(Error::ShapeMismatch { what, expected, found });
        }
    }
    Ok(())
}
