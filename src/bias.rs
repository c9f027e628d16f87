//! An additive bias on the scores, strided like the views.

use crate::Error;

/// An additive bias on the scores: `s(i, j) + bias[h][i][j]`, of shape
/// `[heads, n_q, n_kv]` with strides.
///
/// A head stride of 0 shares one `n_q × n_kv` matrix across heads; a row
/// stride of 0 shares one row across queries (a per-key bias). Entries may be
/// `−∞` (the key is masked for that query); the log-sum-exp reported includes
/// the bias.
///
/// ```
/// use streamattn::Bias;
/// // One 2 × 3 bias shared by every head.
/// let b = [0.0, -1.0, f32::NEG_INFINITY, 0.5, 0.0, 0.0];
/// let bias = Bias::new(&b, 2, 3, 0, 3).unwrap();
/// # let _ = bias;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Bias<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) head_stride: usize,
}

impl<'a> Bias<'a> {
    /// A bias of `rows × cols` per head (`rows = n_q`, `cols = n_kv`), element
    /// `[h][i][j]` at `data[h * head_stride + i * row_stride + j]`. The
    /// strides come in the order of [`HeadsRef::new`](crate::HeadsRef::new):
    /// head, then row.
    ///
    /// Errors: [`Error::StrideTooSmall`] if `row_stride` is neither 0 nor at
    /// least `cols`. The length of `data` is checked at the call, against the
    /// number of heads.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        head_stride: usize,
        row_stride: usize,
    ) -> Result<Self, Error> {
        if row_stride != 0 && row_stride < cols {
            return Err(Error::StrideTooSmall { what: "bias", stride: row_stride, min: cols });
        }
        Ok(Bias { data, rows, cols, row_stride, head_stride })
    }

    /// One dense `rows × cols` matrix shared by every head.
    pub fn shared(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, 0, cols)
    }

    pub(crate) fn check(&self, heads: usize, n_q: usize, n_kv: usize) -> Result<(), Error> {
        let what = "bias";
        if self.rows != n_q {
            return Err(Error::ShapeMismatch { what, expected: n_q, found: self.rows });
        }
        if self.cols != n_kv {
            return Err(Error::ShapeMismatch { what, expected: n_kv, found: self.cols });
        }
        if heads == 0 || n_q == 0 || n_kv == 0 {
            return Ok(());
        }
        let needed = (heads - 1)
            .checked_mul(self.head_stride)
            .and_then(|x| x.checked_add((n_q - 1).checked_mul(self.row_stride)?))
            .and_then(|x| x.checked_add(n_kv))
            .ok_or(Error::Overflow { what })?;
        if self.data.len() < needed {
            return Err(Error::BufferTooShort { what, needed, len: self.data.len() });
        }
        Ok(())
    }

    /// The `n_kv` bias entries of query row `i` of head `h`.
    #[inline]
    pub(crate) fn row(&self, h: usize, i: usize) -> &'a [f32] {
        if self.cols == 0 {
            return &[]; // n_kv = 0: the length was not checked, nothing is read
        }
        let o = h * self.head_stride + i * self.row_stride;
        &self.data[o..o + self.cols]
    }

    /// Heads from `h0`, rows `rows` and columns `cols` of a checked bias: the
    /// bias of a sub-problem.
    #[cfg(feature = "rayon")]
    pub(crate) fn sub(
        &self,
        h0: usize,
        rows: core::ops::Range<usize>,
        cols: core::ops::Range<usize>,
    ) -> Bias<'a> {
        let data = if rows.is_empty() || cols.is_empty() {
            &self.data[..0]
        } else {
            // In bounds: the bias was checked for at least these heads, rows and columns.
            &self.data[h0 * self.head_stride + rows.start * self.row_stride + cols.start..]
        };
        Bias { data, rows: rows.len(), cols: cols.len(), ..*self }
    }
}
