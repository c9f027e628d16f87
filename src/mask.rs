//! Masks: which keys each query row may attend to.
//!
//! Every mask the crate knows keeps, for query row `i`, one contiguous range of
//! keys `[lo_i, hi_i)`. The kernels visit only that range, so masked keys cost
//! nothing. Arbitrary patterns go through an additive [`Bias`](crate::Bias)
//! with `-∞` entries.

use crate::Error;
use core::ops::Range;

/// Which keys query row `i` sees (rows and keys numbered from 0).
///
/// The position of query row `i` in key coordinates is `i + offset`. A KV
/// cache holding `n_kv` keys of which the last `n_q` belong to the current
/// queries is aligned bottom-right with `offset = n_kv − n_q`
/// ([`Mask::causal_bottom_right`]). `offset` must be at most `n_kv`.
///
/// | mask | keys `j` seen by row `i` |
/// |---|---|
/// | `None` | all |
/// | `Causal { offset }` | `j <= i + offset` |
/// | `Window { offset, left, right }` | `i + offset − left <= j <= i + offset + right` |
///
/// On top of the mask, keys at or past the call's key length are never seen
/// ([`Attention::key_len`](crate::Attention::key_len)). A row that sees no key
/// gets an output of 0 and a log-sum-exp of `−∞`.
///
/// ```
/// use streamattn::Mask;
/// // Sliding-window causal attention over the last 128 positions.
/// let m = Mask::Window { offset: 0, left: 127, right: 0 };
/// assert_eq!(m.key_range(200, 1000), 73..201);
/// assert_eq!(Mask::causal_bottom_right(4, 10), Mask::Causal { offset: 6 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mask {
    /// Every key is seen.
    #[default]
    None,
    /// Key `j` is seen by row `i` when `j <= i + offset`.
    Causal {
        /// Position of query row 0 among the keys.
        offset: usize,
    },
    /// Key `j` is seen by row `i` when `i + offset − left <= j <= i + offset + right`.
    Window {
        /// Position of query row 0 among the keys.
        offset: usize,
        /// How many keys before the row's position are seen.
        left: usize,
        /// How many keys after the row's position are seen.
        right: usize,
    },
}

impl Mask {
    /// `Causal` with `offset = n_kv − n_q` (0 when `n_q > n_kv`): the last query
    /// row sees every key.
    #[must_use]
    pub const fn causal_bottom_right(n_q: usize, n_kv: usize) -> Self {
        Mask::Causal { offset: n_kv.saturating_sub(n_q) }
    }

    /// The keys `lo..hi` that row `i` sees among the first `key_len` keys
    /// (empty when the row sees none).
    #[must_use]
    pub fn key_range(&self, i: usize, key_len: usize) -> Range<usize> {
        // In u128 the position `i + offset` and the window's ends never overflow.
        let (i, n) = (i as u128, key_len as u128);
        let (lo, hi) = match *self {
            Mask::None => (0, n),
            Mask::Causal { offset } => (0, i + offset as u128 + 1),
            Mask::Window { offset, left, right } => {
                let pos = i + offset as u128;
                (pos.saturating_sub(left as u128), pos + right as u128 + 1)
            }
        };
        let hi = hi.min(n);
        // Both ends are at most key_len, so they fit in usize.
        lo.min(hi) as usize..hi as usize
    }

    pub(crate) fn check(&self, n_kv: usize) -> Result<(), Error> {
        match *self {
            Mask::None => Ok(()),
            Mask::Causal { offset } | Mask::Window { offset, .. } => {
                if offset > n_kv {
                    Err(Error::OutOfRange { what: "offset", value: offset, max: n_kv })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The mask seen from query row `r0` on: row `i` of the result is row
    /// `r0 + i`, at the same position among the keys.
    #[cfg(feature = "rayon")]
    pub(crate) fn rows_from(self, r0: usize) -> Mask {
        // No saturation in practice: offset ≤ n_kv and r0 < n_q, both below
        // isize::MAX / 4 (lengths of f32 slices).
        match self {
            Mask::None => Mask::None,
            Mask::Causal { offset } => Mask::Causal { offset: offset.saturating_add(r0) },
            Mask::Window { offset, left, right } => {
                Mask::Window { offset: offset.saturating_add(r0), left, right }
            }
        }
    }

    /// The query rows of `rows` that see keys at or after key `a`, in at most
    /// two groups, each with the mask that gives its rows' keys in the
    /// coordinates of a key range starting at `a` (row 0 of the mask = the
    /// group's first row). Rows in neither group see no key from `a` on.
    ///
    /// Row `i` is at position `pos = i + offset` among the keys.
    /// - `None`: every row, no mask.
    /// - `Causal`: rows with `pos ≥ a`, `Causal { offset: pos_first − a }`;
    ///   the others see only keys `≤ pos < a`.
    /// - `Window`: rows with `pos ≥ a` as `Window { offset: pos_first − a, .. }`;
    ///   rows with `pos < a ≤ pos + right` see keys `a..=pos + right` (their
    ///   window starts before `a`): `Causal { offset: pos_first + right − a }`;
    ///   rows with `pos + right < a` see none.
    #[cfg(feature = "rayon")]
    pub(crate) fn keys_from(self, rows: Range<usize>, a: usize) -> [(Range<usize>, Mask); 2] {
        let at = |i: usize| i.clamp(rows.start, rows.end);
        let none = (rows.end..rows.end, Mask::None);
        match self {
            Mask::None => [(rows, Mask::None), none],
            Mask::Causal { offset } => {
                let i0 = at(a.saturating_sub(offset));
                [(i0..rows.end, Mask::Causal { offset: (i0 + offset).saturating_sub(a) }), none]
            }
            Mask::Window { offset, left, right } => {
                let i0 = at(a.saturating_sub(offset));
                let i1 = at(a.saturating_sub(offset.saturating_add(right)));
                [
                    (i0..rows.end, Mask::Window { offset: (i0 + offset).saturating_sub(a), left, right }),
                    (i1..i0, Mask::Causal { offset: (i1 + offset).saturating_add(right).saturating_sub(a) }),
                ]
            }
        }
    }
}
