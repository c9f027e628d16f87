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
//!
//! A paged cache ([`HeadsRef::paged`]) keeps its rows in fixed-size blocks
//! of a shared pool, found through a block table: row `r` is row
//! `r % block_size` of block `table[r / block_size]`, whose element
//! `(h, row, c)` lives at `block * block_stride + h * head_stride +
//! row * row_stride + c` ([`PagedLayout`]).

use crate::{Element, Error};
use core::cell::Cell;

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

/// Where a paged cache's blocks keep their elements: element `(h, row, c)`
/// of block `b` is at
/// `b * block_stride + h * head_stride + row * row_stride + c` in the pool,
/// strides in elements.
///
/// ```
/// use streamattn::PagedLayout;
/// // vLLM's [n_blocks, block_size, heads, d], 16 rows per block, 8 heads of 128.
/// let l = PagedLayout::seq_major(16, 8, 128).unwrap();
/// assert_eq!((l.block_stride, l.head_stride, l.row_stride), (16 * 8 * 128, 128, 8 * 128));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagedLayout {
    /// Rows per block (at least 1).
    pub block_size: usize,
    /// Heads in each block.
    pub heads: usize,
    /// Columns (the head dimension).
    pub cols: usize,
    /// Elements from one block to the next.
    pub block_stride: usize,
    /// Elements from one head to the next in a block.
    pub head_stride: usize,
    /// Elements from one row to the next in a block.
    pub row_stride: usize,
}

impl PagedLayout {
    /// Dense `[n_blocks, heads, block_size, cols]` blocks.
    ///
    /// Errors: [`Error::Overflow`] (`what = "pool"`) if a stride (a head's
    /// `block_size · cols` elements, a block's `heads · block_size · cols`)
    /// does not fit in `usize`.
    pub fn heads_major(block_size: usize, heads: usize, cols: usize) -> Result<Self, Error> {
        let head_stride = block_size.checked_mul(cols).ok_or(Error::Overflow { what: "pool" })?;
        let block_stride = heads.checked_mul(head_stride).ok_or(Error::Overflow { what: "pool" })?;
        Ok(PagedLayout { block_size, heads, cols, block_stride, head_stride, row_stride: cols })
    }

    /// Dense `[n_blocks, block_size, heads, cols]` blocks (rows are sequence
    /// positions). Errors: [`Error::Overflow`] (`what = "pool"`) if a stride
    /// (a row's `heads · cols` elements, a block's `block_size · heads · cols`)
    /// does not fit in `usize`.
    pub fn seq_major(block_size: usize, heads: usize, cols: usize) -> Result<Self, Error> {
        let row_stride = heads.checked_mul(cols).ok_or(Error::Overflow { what: "pool" })?;
        let block_stride = block_size.checked_mul(row_stride).ok_or(Error::Overflow { what: "pool" })?;
        Ok(PagedLayout { block_size, heads, cols, block_stride, head_stride: cols, row_stride })
    }
}

/// Where the rows of a paged view are: row `r` is key `first + r`, row
/// `(first + r) % block_size` of block `table[(first + r) / block_size]`,
/// which starts `block_stride` elements per block into the pool. Every
/// entry a view can reach was checked against the pool when it was built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pages<'a> {
    pub table: &'a [u32],
    pub block_size: usize,
    /// `log2(block_size)` when the block size is a power of two.
    pub shift: Option<u32>,
    pub block_stride: usize,
    /// The key of row 0 (a sub-view's rows start inside the table).
    pub first: usize,
}

impl Pages<'_> {
    /// The offset of the block holding row `r`, and the row in the block.
    #[inline(always)]
    fn locate(&self, r: usize) -> (usize, usize) {
        let key = self.first + r;
        let (b, w) = match self.shift {
            Some(s) => (key >> s, key & (self.block_size - 1)),
            None => (key / self.block_size, key % self.block_size),
        };
        (self.table[b] as usize * self.block_stride, w)
    }
}

/// Rows stored at one stride from a first row: a contiguous view, or the
/// rest of one block of a paged view. What the kernels' inner loops read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strided<'a, T> {
    data: &'a [T],
    cols: usize,
    row_stride: usize,
}

impl<'a, T> Strided<'a, T> {
    /// Row `r` from the first row.
    #[inline(always)]
    pub fn row(&self, r: usize) -> &'a [T] {
        let o = r * self.row_stride;
        &self.data[o..o + self.cols]
    }
}

/// The rows of a view asked for in increasing order, as a prefetch walks
/// them: the stretch holding the last row asked for is kept, so that a paged
/// view's block table is read once per block rather than once per row.
pub(crate) struct Cursor<'a, T: Element> {
    view: MatRef<'a, T>,
    /// The stretch's first row, its number of rows, its rows.
    at: Cell<(usize, usize, Strided<'a, T>)>,
}

impl<'a, T: Element> Cursor<'a, T> {
    #[inline(always)]
    pub fn new(view: MatRef<'a, T>) -> Self {
        let empty = Strided { data: &[], cols: 0, row_stride: 0 };
        Cursor { view, at: Cell::new((0, 0, empty)) }
    }

    /// Row `r` of the view; requires `r < rows`.
    #[inline(always)]
    pub fn row(&self, r: usize) -> &'a [T] {
        let (first, n, rows) = self.at.get();
        if r.wrapping_sub(first) < n {
            return rows.row(r - first);
        }
        let (n, rows) = self.view.stretch(r);
        self.at.set((r, n, rows));
        rows.row(0)
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
    pub(crate) pages: Option<Pages<'a>>,
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
        Ok(MatRef { data, layout, pages: None })
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
        let o = match &self.pages {
            None => self.layout.offset(0, r),
            Some(p) => {
                let (block, w) = p.locate(r);
                block + w * self.layout.row_stride
            }
        };
        &self.data[o..o + self.layout.cols]
    }

    /// The rows from `r` on that are stored at one stride: how many there
    /// are (to the end of the view, or of `r`'s block in a paged view), and
    /// a view of them whose row 0 is row `r`. Requires `r < rows`.
    #[inline(always)]
    pub(crate) fn stretch(&self, r: usize) -> (usize, Strided<'a, T>) {
        let (cols, row_stride) = (self.layout.cols, self.layout.row_stride);
        match &self.pages {
            None => (self.layout.rows - r, Strided { data: &self.data[r * row_stride..], cols, row_stride }),
            Some(p) => {
                let (block, w) = p.locate(r);
                (p.block_size - w, Strided { data: &self.data[block + w * row_stride..], cols, row_stride })
            }
        }
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
        MatRef { data: self.data, layout: self.layout, pages: None }
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
    pub(crate) pages: Option<Pages<'a>>,
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
        Ok(HeadsRef { data, layout, pages: None })
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
        HeadsRef { data: m.data, layout: m.layout, pages: m.pages }
    }

    /// A paged cache: `rows` rows per head (the cache length), kept in
    /// blocks of `layout.block_size` rows in `pool`, row `r` in block
    /// `table[r / block_size]` (see [`PagedLayout`] for where a block's
    /// elements are). Only the first `⌈rows / block_size⌉` entries of
    /// `table` are read; they may repeat and come in any order. The
    /// kernels read the blocks in place.
    ///
    /// ```
    /// use streamattn::{HeadsRef, PagedLayout};
    /// // A pool of 3 blocks of 2 rows, 1 head, d = 2: [n_blocks, heads, block_size, d].
    /// let pool: Vec<f32> = (0..12).map(|x| x as f32).collect();
    /// let layout = PagedLayout::heads_major(2, 1, 2).unwrap();
    /// // 3 rows: rows 0 and 1 in block 2, row 2 in block 0.
    /// let k = HeadsRef::paged(&pool, layout, &[2, 0], 3).unwrap();
    /// assert_eq!(k.head(0).row(1), &[10.0, 11.0]);
    /// assert_eq!(k.head(0).row(2), &[0.0, 1.0]);
    /// ```
    ///
    /// Errors, in this order: `block_size == 0` ([`Error::ZeroDim`] with
    /// `what = "block_size"`); one block's shape and strides as
    /// [`HeadsRef::new`] checks them, against the pool (`what = "pool"`);
    /// a `block_stride` smaller than one block's extent, so blocks would
    /// overlap ([`Error::StrideTooSmall`], `what = "block_stride"`); a
    /// table shorter than `⌈rows / block_size⌉` ([`Error::BufferTooShort`],
    /// `what = "block_table"`); an entry naming a block that does not fit
    /// in the pool ([`Error::BlockOutOfPool`]). With no heads or no rows
    /// the table is not read.
    pub fn paged(pool: &'a [T], layout: PagedLayout, table: &'a [u32], rows: usize) -> Result<Self, Error> {
        let PagedLayout { block_size, heads, cols, block_stride, head_stride, row_stride } = layout;
        if block_size == 0 {
            return Err(Error::ZeroDim { what: "block_size" });
        }
        let block =
            Layout { heads, rows: block_size, cols, head_stride, row_stride }.check("pool", pool.len())?;
        let view = Layout { rows, ..block };
        let pages = Pages {
            table,
            block_size,
            shift: block_size.is_power_of_two().then(|| block_size.trailing_zeros()),
            block_stride,
            first: 0,
        };
        let view = HeadsRef { data: pool, layout: view, pages: Some(pages) };
        if heads == 0 || rows == 0 {
            return Ok(view);
        }
        // The extent of one block: no overflow, the check above computed it.
        let extent = (heads - 1) * head_stride + (block_size - 1) * row_stride + cols;
        if block_stride < extent {
            return Err(Error::StrideTooSmall { what: "block_stride", stride: block_stride, min: extent });
        }
        let needed = rows.div_ceil(block_size);
        if table.len() < needed {
            return Err(Error::BufferTooShort { what: "block_table", needed, len: table.len() });
        }
        let blocks = (pool.len() - extent) / block_stride + 1;
        if let Some((entry, &block)) = table[..needed].iter().enumerate().find(|(_, &b)| b as usize >= blocks)
        {
            return Err(Error::BlockOutOfPool { entry, block, blocks });
        }
        Ok(view)
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
        MatRef { data, layout: Layout { heads: 1, head_stride: 0, ..l }, pages: self.pages }
    }

    /// Heads `heads` and rows `rows` of the view (same strides, data from
    /// the first element selected). Panics if either range is out of bounds.
    pub(crate) fn sub(
        &self,
        heads: core::ops::Range<usize>,
        rows: core::ops::Range<usize>,
    ) -> HeadsRef<'a, T> {
        let l = self.layout;
        assert!(heads.end <= l.heads && rows.end <= l.rows, "sub-view out of range");
        let (data, pages) = if heads.is_empty() || rows.is_empty() {
            (&self.data[..0], None)
        } else if let Some(p) = self.pages {
            // The blocks stay where they are; the rows start further into the table.
            (&self.data[heads.start * l.head_stride..], Some(Pages { first: p.first + rows.start, ..p }))
        } else {
            // In bounds: the view was checked with at least these heads and rows.
            (&self.data[l.offset(heads.start, rows.start)..], None)
        };
        HeadsRef { data, layout: Layout { heads: heads.len(), rows: rows.len(), ..l }, pages }
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

#[cfg(test)]
mod tests {
    use super::{Cursor, HeadsRef, PagedLayout};

    /// The cursor finds the rows the view does, whichever order they are
    /// asked in: ahead within a stretch, across blocks, back, and at the
    /// start of a sub-view whose rows start inside a block.
    #[test]
    fn cursor_rows_are_the_views_rows() {
        let (rows, cols, heads) = (37usize, 3, 2);
        for block_size in [1, 3, 16, 64] {
            let blocks = rows.div_ceil(block_size);
            // Blocks in reverse order; every row of the pool holds its own
            // key and head.
            let table: [u32; 37] = core::array::from_fn(|b| (blocks - 1 - b.min(blocks - 1)) as u32);
            let layout = PagedLayout::heads_major(block_size, heads, cols).unwrap();
            let mut pool = [0.0f32; 64 * 3 * 2];
            for key in 0..rows {
                for h in 0..heads {
                    let at = table[key / block_size] as usize * layout.block_stride
                        + h * layout.head_stride
                        + (key % block_size) * cols;
                    pool[at..at + cols].fill((key * heads + h) as f32);
                }
            }
            let paged = HeadsRef::paged(&pool[..blocks * layout.block_stride], layout, &table, rows).unwrap();
            let dense = HeadsRef::heads_major(&pool[..rows * cols * heads], heads, rows, cols).unwrap();
            for view in [paged, dense] {
                for h in 0..heads {
                    let m = view.sub(h..h + 1, 5..rows).head(0);
                    let cursor = Cursor::new(m);
                    let order = (0..m.rows()).chain([7, 2, 31, 0, 31]);
                    for r in order {
                        assert_eq!(cursor.row(r), m.row(r), "block size {block_size}, head {h}, row {r}");
                    }
                }
            }
        }
    }
}
