//! Strided views of row-major matrices and of stacks of them (one per head):
//! read-only views of `f32`, or of the 16-bit [`Element`]s a key/value cache
//! may be stored in ([`f16`](crate::f16), [`bf16`](crate::bf16)), and
//! mutable `f32` views for outputs.
//!
//! A view is a slice plus a shape and strides, checked once when the view is
//! built. Element `(head h, row r, column c)` lives at
//! `data[h * head_stride + r * row_stride + c]`, so both common KV-cache layouts
//! are read in place:
//!
//! - `[heads, seq, d]`: `head_stride = seq * d`, `row_stride = d`
//!   ([`HeadsRef::heads_major`]);
//! - `[seq, heads, d]`: `head_stride = d`, `row_stride = heads * d`
//!   ([`HeadsRef::seq_major`]).
//!
//! Strides are in elements (of the view's element type). Rows never overlap (`row_stride >= cols`)
//! and heads never overlap, so writing through a mutable view cannot clobber
//! another row.

use crate::{Element, Error};

/// Checked shape and strides of a stack of `heads` matrices of `rows × cols`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub heads: usize,
    pub rows: usize,
    pub cols: usize,
    pub head_stride: usize,
    pub row_stride: usize,
}

impl Layout {
    /// Validates the layout against a slice of `len` floats.
    pub(crate) fn check(self, what: &'static str, len: usize) -> Result<Self, Error> {
        let Layout { heads, rows, cols, head_stride, row_stride } = self;
        if cols == 0 {
            return Err(Error::ZeroDim { what });
        }
        if heads == 0 || rows == 0 {
            return Ok(self);
        }
        if rows > 1 && row_stride < cols {
            return Err(Error::StrideTooSmall { what, stride: row_stride, min: cols });
        }
        let overflow = Error::Overflow { what };
        // Extent of one head: from its first element to one past its last.
        let head_extent =
            (rows - 1).checked_mul(row_stride).and_then(|x| x.checked_add(cols)).ok_or(overflow)?;
        if heads > 1 {
            // Heads must not overlap: either each head is a contiguous block of
            // rows (heads-major), or heads interleave inside a row (seq-major).
            let heads_major = head_stride >= head_extent;
            let seq_major = head_stride >= cols
                && (heads - 1)
                    .checked_mul(head_stride)
                    .and_then(|x| x.checked_add(cols))
                    .is_some_and(|x| x <= row_stride);
            if !heads_major && !seq_major {
                let min = if rows == 1 { cols } else { head_extent };
                return Err(Error::StrideTooSmall { what, stride: head_stride, min });
            }
        }
        let needed =
            (heads - 1).checked_mul(head_stride).and_then(|x| x.checked_add(head_extent)).ok_or(overflow)?;
        if len < needed {
            return Err(Error::BufferTooShort { what, needed, len });
        }
        Ok(self)
    }

    /// Offset of row `r` of head `h`.
    #[inline]
    pub(crate) fn offset(&self, h: usize, r: usize) -> usize {
        h * self.head_stride + r * self.row_stride
    }
}

/// A read-only `rows × cols` row-major matrix view with a row stride.
///
/// ```
/// use streamattn::MatRef;
/// // Two rows of 3 columns, padded to a stride of 4.
/// let data = [1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0];
/// let m = MatRef::new(&data, 2, 3, 4).unwrap();
/// assert_eq!(m.row(1), &[4.0, 5.0, 6.0]);
/// ```
///
/// The element type `T` is `f32` unless the data are 16-bit floats (keys
/// and values only):
///
/// ```
/// use streamattn::{f16, MatRef};
/// let data: Vec<f16> = [1.0f32, 2.0, 3.0].iter().map(|&x| f16::from_f32(x)).collect();
/// let m = MatRef::dense(&data, 1, 3).unwrap();
/// assert_eq!(m.row(0)[2].to_f32(), 3.0);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T: Element = f32> {
    pub(crate) data: &'a [T],
    pub(crate) layout: Layout,
}

impl<'a, T: Element> MatRef<'a, T> {
    /// A view of `rows × cols` with rows `row_stride` elements apart.
    ///
    /// Errors: `cols == 0` ([`Error::ZeroDim`]), `row_stride < cols` with more
    /// than one row ([`Error::StrideTooSmall`]), an extent that overflows
    /// ([`Error::Overflow`]), or `data` shorter than
    /// `(rows - 1) * row_stride + cols` ([`Error::BufferTooShort`]).
    pub fn new(data: &'a [T], rows: usize, cols: usize, row_stride: usize) -> Result<Self, Error> {
        let layout =
            Layout { heads: 1, rows, cols, head_stride: 0, row_stride }.check("matrix", data.len())?;
        Ok(MatRef { data, layout })
    }

    /// A densely packed view: `row_stride == cols`.
    pub fn dense(data: &'a [T], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, cols)
    }

    /// Number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.layout.rows
    }

    /// Number of columns.
    #[must_use]
    pub fn cols(&self) -> usize {
        self.layout.cols
    }

    /// Row `r` as a slice of `cols` floats.
    ///
    /// # Panics
    /// If `r >= rows`.
    #[must_use]
    pub fn row(&self, r: usize) -> &'a [T] {
        assert!(r < self.layout.rows, "row index out of range");
        let o = self.layout.offset(0, r);
        &self.data[o..o + self.layout.cols]
    }
}

/// A mutable `rows × cols` row-major matrix view with a row stride.
///
/// ```
/// use streamattn::MatMut;
/// let mut data = [0.0f32; 6];
/// let mut m = MatMut::dense(&mut data, 2, 3).unwrap();
/// m.row_mut(1)[0] = 7.0;
/// assert_eq!(data[3], 7.0);
/// ```
#[derive(Debug)]
pub struct MatMut<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) layout: Layout,
}

impl<'a> MatMut<'a> {
    /// A mutable view of `rows × cols`; the same checks as [`MatRef::new`].
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Result<Self, Error> {
        let layout =
            Layout { heads: 1, rows, cols, head_stride: 0, row_stride }.check("matrix", data.len())?;
        Ok(MatMut { data, layout })
    }

    /// A densely packed mutable view: `row_stride == cols`.
    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, cols)
    }

    /// Number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.layout.rows
    }

    /// Number of columns.
    #[must_use]
    pub fn cols(&self) -> usize {
        self.layout.cols
    }

    /// Row `r` as a mutable slice of `cols` floats.
    ///
    /// # Panics
    /// If `r >= rows`.
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        assert!(r < self.layout.rows, "row index out of range");
        let o = self.layout.offset(0, r);
        &mut self.data[o..o + self.layout.cols]
    }

    /// A read-only view of the same matrix.
    #[must_use]
    pub fn as_ref(&self) -> MatRef<'_> {
        MatRef { data: self.data, layout: self.layout }
    }
}

/// A read-only stack of `heads` matrices of `rows × cols` (one per head) with a
/// head stride and a row stride: [`heads_major`](Self::heads_major) for
/// `[heads, seq, d]` buffers, [`seq_major`](Self::seq_major) for `[seq, heads, d]`,
/// [`new`](Self::new) for any other strides.
///
/// ```
/// use streamattn::HeadsRef;
/// // A [seq = 2, heads = 3, d = 4] KV cache, read per head without copying.
/// let cache: Vec<f32> = (0..24).map(|x| x as f32).collect();
/// let k = HeadsRef::seq_major(&cache, 3, 2, 4).unwrap();
/// assert_eq!(k.head(1).row(1), &[16.0, 17.0, 18.0, 19.0]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct HeadsRef<'a, T: Element = f32> {
    pub(crate) data: &'a [T],
    pub(crate) layout: Layout,
}

impl<'a, T: Element> HeadsRef<'a, T> {
    /// A view with explicit strides (in elements).
    ///
    /// Errors as [`MatRef::new`], plus [`Error::StrideTooSmall`] when heads
    /// would overlap: accepted are `head_stride >= (rows - 1) * row_stride + cols`
    /// (each head a block of rows) or `head_stride >= cols` with
    /// `row_stride >= (heads - 1) * head_stride + cols` (heads side by side in a row).
    pub fn new(
        data: &'a [T],
        heads: usize,
        rows: usize,
        cols: usize,
        head_stride: usize,
        row_stride: usize,
    ) -> Result<Self, Error> {
        let layout = Layout { heads, rows, cols, head_stride, row_stride }.check("heads", data.len())?;
        Ok(HeadsRef { data, layout })
    }

    /// A dense `[heads, rows, cols]` view.
    pub fn heads_major(data: &'a [T], heads: usize, rows: usize, cols: usize) -> Result<Self, Error> {
        let hs = rows.checked_mul(cols).ok_or(Error::Overflow { what: "heads" })?;
        Self::new(data, heads, rows, cols, hs, cols)
    }

    /// A dense `[rows, heads, cols]` view (rows are sequence positions).
    pub fn seq_major(data: &'a [T], heads: usize, rows: usize, cols: usize) -> Result<Self, Error> {
        let rs = heads.checked_mul(cols).ok_or(Error::Overflow { what: "heads" })?;
        Self::new(data, heads, rows, cols, cols, rs)
    }

    /// A single matrix seen as one head.
    #[must_use]
    pub fn from_mat(m: MatRef<'a, T>) -> Self {
        HeadsRef { data: m.data, layout: m.layout }
    }

    /// Number of heads.
    #[must_use]
    pub fn heads(&self) -> usize {
        self.layout.heads
    }

    /// Rows per head.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.layout.rows
    }

    /// Columns (the head dimension).
    #[must_use]
    pub fn cols(&self) -> usize {
        self.layout.cols
    }

    /// Head `h` as a matrix view.
    ///
    /// # Panics
    /// If `h >= heads`.
    #[must_use]
    pub fn head(&self, h: usize) -> MatRef<'a, T> {
        assert!(h < self.layout.heads, "head index out of range");
        let l = self.layout;
        let data = if l.rows == 0 { &self.data[..0] } else { &self.data[h * l.head_stride..] };
        MatRef { data, layout: Layout { heads: 1, head_stride: 0, ..l } }
    }

    /// Heads `heads` and rows `rows` of the view (same strides, data from
    /// the first element selected). Panics if either range is out of bounds.
    #[cfg(feature = "rayon")]
    pub(crate) fn sub(
        &self,
        heads: core::ops::Range<usize>,
        rows: core::ops::Range<usize>,
    ) -> HeadsRef<'a, T> {
        let l = self.layout;
        assert!(heads.end <= l.heads && rows.end <= l.rows, "sub-view out of range");
        let data = if heads.is_empty() || rows.is_empty() {
            &self.data[..0]
        } else {
            // In bounds: the view was checked with at least these heads and rows.
            &self.data[l.offset(heads.start, rows.start)..]
        };
        HeadsRef { data, layout: Layout { heads: heads.len(), rows: rows.len(), ..l } }
    }
}

/// A mutable stack of `heads` matrices; see [`HeadsRef`].
#[derive(Debug)]
pub struct HeadsMut<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) layout: Layout,
}

impl<'a> HeadsMut<'a> {
    /// A mutable view with explicit strides; the checks of [`HeadsRef::new`].
    pub fn new(
        data: &'a mut [f32],
        heads: usize,
        rows: usize,
        cols: usize,
        head_stride: usize,
        row_stride: usize,
    ) -> Result<Self, Error> {
        let layout = Layout { heads, rows, cols, head_stride, row_stride }.check("heads", data.len())?;
        Ok(HeadsMut { data, layout })
    }

    /// A dense `[heads, rows, cols]` mutable view.
    pub fn heads_major(data: &'a mut [f32], heads: usize, rows: usize, cols: usize) -> Result<Self, Error> {
        let hs = rows.checked_mul(cols).ok_or(Error::Overflow { what: "heads" })?;
        Self::new(data, heads, rows, cols, hs, cols)
    }

    /// A dense `[rows, heads, cols]` mutable view.
    pub fn seq_major(data: &'a mut [f32], heads: usize, rows: usize, cols: usize) -> Result<Self, Error> {
        let rs = heads.checked_mul(cols).ok_or(Error::Overflow { what: "heads" })?;
        Self::new(data, heads, rows, cols, cols, rs)
    }

    /// A single mutable matrix seen as one head.
    #[must_use]
    pub fn from_mat(m: MatMut<'a>) -> Self {
        HeadsMut { data: m.data, layout: m.layout }
    }

    /// Number of heads.
    #[must_use]
    pub fn heads(&self) -> usize {
        self.layout.heads
    }

    /// Rows per head.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.layout.rows
    }

    /// Columns.
    #[must_use]
    pub fn cols(&self) -> usize {
        self.layout.cols
    }
}
