//! Batches of sequences in one call: the step of an inference server that
//! decodes some sequences and prefills chunks of others (continuous
//! batching), each over its own (possibly paged) cache.
//!
//! The new query rows of all sequences are packed one sequence after another
//! (`cu_seqlens`, the cumulative row counts of FlashAttention's varlen API);
//! each sequence is a validated [`Problem`] of its own, with the mask aligned
//! to its cache's last rows, and is computed by the same kernels as
//! [`Attention::run_heads`] on the same views.

use crate::problem::Problem;
use crate::view::Layout;
use crate::{Attention, Element, Error, HeadsMut, HeadsRef, Mask};
use core::ops::Range;

/// The checks every batch entry makes before it computes anything.
pub(crate) struct Batch<'q, 's, 'k, E: Element> {
    pub q: HeadsRef<'q>,
    pub cu_seqlens: &'s [usize],
    pub k: &'s [HeadsRef<'k, E>],
    pub v: &'s [HeadsRef<'k, E>],
    pub out: Layout,
}

impl<'b> Attention<'b> {
    /// A batch of sequences in one call (continuous batching): sequence `s`
    /// has the query rows `cu_seqlens[s]..cu_seqlens[s + 1]` of `q` and of
    /// `out` (`n_q_s` rows) and its own cache `k[s]`, `v[s]` (`n_kv_s` rows,
    /// contiguous or [paged](HeadsRef::paged)), whose last `n_q_s` rows are
    /// those new rows' own keys. Each sequence computes what
    /// [`run_heads`](Self::run_heads) computes on its rows and cache, bit for
    /// bit, with the mask aligned bottom-right:
    ///
    /// ```text
    /// position of row i of sequence s = i + n_kv_s − n_q_s + offset
    /// Causal { offset }:              keys j ≤ position
    /// Window { offset, left, right }: position − left ≤ j ≤ position + right
    /// ```
    ///
    /// so `Mask::Causal { offset: 0 }` is the causal mask of a serving step
    /// (a decoding row sees its whole cache) and `Mask::Window { offset: 0,
    /// left: w − 1, right: 0 }` a sliding window of `w` keys. ALiBi uses the
    /// same positions; softcap and sinks apply as in `run_heads`.
    ///
    /// `q` is `n_heads × total × d` and `out` `n_heads × total × d_v`, with
    /// `total = cu_seqlens[batch]`; `lse`, if given, receives
    /// `lse[h * total + r]` for packed row `r` (FlashAttention's
    /// `[heads, total]`). Sequences may have no new rows (they are skipped)
    /// and different cache lengths; all share the heads, `d` and `d_v`.
    ///
    /// Errors, all checked before anything is written, in this order:
    /// - [`Error::Unsupported`] (`"key_len"`, `"bias"`, `"key_norms"`): a
    ///   key length, bias or cached key norms were set (one per call, while
    ///   each sequence has its own cache; a cache's length is its view's rows);
    /// - [`Error::ShapeMismatch`]: `v.len() != k.len()` (`"v"`);
    ///   `cu_seqlens` not of `k.len() + 1` entries, not starting at 0, or not
    ///   ending at `q.rows()` (`"cu_seqlens"`); `out` not of `q.rows()` rows;
    /// - [`Error::Decreasing`] (`"cu_seqlens"`): an entry below the one before;
    /// - [`Error::BufferTooShort`], [`Error::Overflow`] (`"lse"`);
    /// - then sequence by sequence: [`Error::OutOfRange`] with
    ///   `what = "cu_seqlens"` for more new rows than cache rows, with
    ///   `what = "offset"` for a mask offset above `n_q_s` (in a sequence
    ///   with new rows); the errors of
    ///   `run_heads` for the sequence's views.
    ///
    /// ```
    /// use streamattn::{Attention, HeadsMut, HeadsRef, Mask, PagedLayout, Scorer};
    /// # fn main() -> Result<(), streamattn::Error> {
    /// // One step: sequence 0 prefills 3 rows (cache of 5), sequence 1 decodes (cache of 20).
    /// let (h, h_kv, d, block) = (4, 2, 8, 16);
    /// let layout = PagedLayout::seq_major(block, h_kv, d)?;
    /// let k_pool = vec![0.5f32; 4 * layout.block_stride];
    /// let v_pool = vec![1.0f32; 4 * layout.block_stride];
    /// let (table_0, table_1) = ([2u32], [0u32, 3]);
    /// let k = [HeadsRef::paged(&k_pool, layout, &table_0, 5)?, HeadsRef::paged(&k_pool, layout, &table_1, 20)?];
    /// let v = [HeadsRef::paged(&v_pool, layout, &table_0, 5)?, HeadsRef::paged(&v_pool, layout, &table_1, 20)?];
    /// let cu_seqlens = [0, 3, 4];
    /// let q = vec![0.1f32; 4 * h * d]; // [total rows, heads, d]
    /// let mut out = vec![0.0f32; 4 * h * d];
    /// Attention::new(Scorer::dot()).mask(Mask::Causal { offset: 0 }).run_batch(
    ///     HeadsRef::seq_major(&q, h, 4, d)?,
    ///     &cu_seqlens,
    ///     &k,
    ///     &v,
    ///     HeadsMut::seq_major(&mut out, h, 4, d)?,
    ///     None,
    /// )?;
    /// assert!(out.iter().all(|&x| (x - 1.0).abs() < 1e-6));
    /// # Ok(())
    /// # }
    /// ```
    pub fn run_batch<E: Element>(
        &self,
        q: HeadsRef<'_>,
        cu_seqlens: &[usize],
        k: &[HeadsRef<'_, E>],
        v: &[HeadsRef<'_, E>],
        mut out: HeadsMut<'_>,
        mut lse: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        let batch = Batch { q, cu_seqlens, k, v, out: out.layout };
        self.check_batch(&batch, lse.as_deref())?;
        for s in 0..k.len() {
            let (problem, rows) = self.sequence(&batch, s)?;
            if let Some((out_s, lse_s)) = batch.outputs(&mut out, lse.as_deref_mut(), rows) {
                self.kernel.compute(&problem, out_s.data, &out_s.layout, lse_s);
            }
        }
        Ok(())
    }

    /// Every check of a batch entry ([`run_batch`](Self::run_batch)'s list).
    pub(crate) fn check_batch<E: Element>(
        &self,
        b: &Batch<'_, '_, '_, E>,
        lse: Option<&[f32]>,
    ) -> Result<(), Error> {
        for (what, set) in [
            ("key_len", self.key_len.is_some()),
            ("bias", self.bias.is_some()),
            ("key_norms", self.norms.is_some()),
        ] {
            if set {
                return Err(Error::Unsupported { what });
            }
        }
        let mismatch = |what, expected: usize, found: usize| {
            if expected == found {
                Ok(())
            } else {
                Err(Error::ShapeMismatch { what, expected, found })
            }
        };
        mismatch("v", b.k.len(), b.v.len())?;
        let cu = b.cu_seqlens;
        mismatch("cu_seqlens", b.k.len() + 1, cu.len())?;
        mismatch("cu_seqlens", 0, cu[0])?;
        if let Some(index) = (1..cu.len()).find(|&s| cu[s] < cu[s - 1]) {
            return Err(Error::Decreasing { what: "cu_seqlens", index });
        }
        let total = b.q.rows();
        mismatch("cu_seqlens", total, cu[cu.len() - 1])?;
        mismatch("out", total, b.out.rows)?;
        if let Some(l) = lse {
            let needed = b.q.heads().checked_mul(total).ok_or(Error::Overflow { what: "lse" })?;
            if l.len() < needed {
                return Err(Error::BufferTooShort { what: "lse", needed, len: l.len() });
            }
        }
        for s in 0..b.k.len() {
            self.sequence(b, s)?;
        }
        Ok(())
    }

    /// Sequence `s` of a batch that passed the global checks: its validated
    /// problem (log-sum-exps strided by the batch's rows) and its packed rows.
    pub(crate) fn sequence<'a, E: Element>(
        &self,
        b: &Batch<'a, '_, 'a, E>,
        s: usize,
    ) -> Result<(Problem<'a, E>, Range<usize>), Error>
    where
        'b: 'a,
    {
        let rows = b.cu_seqlens[s]..b.cu_seqlens[s + 1];
        let (n_q, n_kv) = (rows.len(), b.k[s].rows());
        if n_q > n_kv {
            return Err(Error::OutOfRange { what: "cu_seqlens", value: n_q, max: n_kv });
        }
        let mask = bottom_right(self.mask, n_q, n_kv)?;
        let out = Layout { rows: n_q, ..b.out };
        let q = b.q.sub(0..b.q.heads(), rows.clone());
        let mut problem = Attention { mask, ..*self }.problem(q, b.k[s], b.v[s], &out, None)?;
        problem.lse_stride = b.q.rows();
        Ok((problem, rows))
    }
}

impl<E: Element> Batch<'_, '_, '_, E> {
    /// The output rows `rows` (of every head) and their log-sum-exps, from
    /// `lse[rows.start]` on; `None` if `rows` is empty.
    pub(crate) fn outputs<'o>(
        &self,
        out: &'o mut HeadsMut<'_>,
        lse: Option<&'o mut [f32]>,
        rows: Range<usize>,
    ) -> Option<(HeadsMut<'o>, Option<&'o mut [f32]>)> {
        if rows.is_empty() {
            return None;
        }
        // In bounds: the sequence's problem has at least one head and one
        // column, and row `rows.start` of head 0 starts at this offset.
        let data = &mut out.data[self.out.offset(0, rows.start)..];
        let layout = Layout { rows: rows.len(), ..self.out };
        Some((HeadsMut { data, layout }, lse.map(|l| &mut l[rows.start..])))
    }
}

/// `mask` for a sequence of `n_q` new rows over `n_kv ≥ n_q` cached keys,
/// its offset counted from the cache's last `n_q` rows (a sequence without
/// new rows has nothing to mask).
fn bottom_right(mask: Mask, n_q: usize, n_kv: usize) -> Result<Mask, Error> {
    if n_q == 0 {
        return Ok(Mask::None);
    }
    let shift = |offset: usize| {
        if offset > n_q {
            Err(Error::OutOfRange { what: "offset", value: offset, max: n_q })
        } else {
            Ok(n_kv - n_q + offset)
        }
    };
    Ok(match mask {
        Mask::None => Mask::None,
        Mask::Causal { offset } => Mask::Causal { offset: shift(offset)? },
        Mask::Window { offset, left, right } => Mask::Window { offset: shift(offset)?, left, right },
    })
}
