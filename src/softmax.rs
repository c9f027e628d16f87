//! The streaming (online) softmax shared by every scorer and kernel, and the
//! merge of two partial results.
//!
//! Per query row the kernels keep a running maximum logit `m`, a running sum
//! `l` of `e^{s_j − m}` and an unnormalised output `o = Σ e^{s_j − m} v_j`.
//! A tile of logits with maximum `t` updates them as (FlashAttention-2 form)
//!
//! ```text
//! m' = max(m, t)        α = e^{m − m'}        p_j = e^{s_j − m'}
//! l  = α·l + Σ_j p_j    o = α·o + Σ_j p_j v_j
//! ```
//!
//! and at the end `O = o / l` (0 when `l = 0`) and `lse = m + ln l`.
//!
//! Two infinities need care. When `m' = −∞` every logit so far is `−∞`: the
//! shift is 0 instead of `m'`, so `p_j = e^{−∞} = 0` rather than
//! `e^{(−∞)−(−∞)} = NaN`. When `m' = +∞` a logit equal to `+∞` gets weight 1
//! (the limit of the softmax), every finite one weight 0. A NaN logit makes
//! `p_j`, hence `l` and the row's output, NaN.

/// Running maximum and sum of one query row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Running {
    /// Largest logit seen so far (`−∞` before the first).
    pub m: f32,
    /// `Σ e^{s_j − m}` over the logits seen so far.
    pub l: f32,
}

impl Running {
    pub(crate) const EMPTY: Running = Running { m: f32::NEG_INFINITY, l: 0.0 };

    /// Folds in a tile whose largest logit is `tile_max`. Rescales `l` and
    /// returns `(α, shift)`: the caller multiplies its accumulator by `α`, and
    /// adds `weight(s_j, shift)` to `l` and `weight(s_j, shift)·v_j` to it.
    #[inline]
    pub(crate) fn advance(&mut self, tile_max: f32) -> (f32, f32) {
        let m = self.m.max(tile_max);
        let shift = if m == f32::NEG_INFINITY { 0.0 } else { m };
        let alpha = weight(self.m, shift);
        self.m = m;
        self.l *= alpha;
        (alpha, shift)
    }

    /// Folds in a sink: a logit `s` with no value (it joins `l` only).
    /// Returns the factor `α` by which the accumulator must be rescaled.
    #[inline]
    pub(crate) fn sink(&mut self, s: f32) -> f32 {
        let (alpha, shift) = self.advance(s);
        self.l += weight(s, shift);
        alpha
    }

    /// `(1/l, lse)`: the factor that normalises the accumulator (0 when no key
    /// had weight) and the log-sum-exp of the logits seen.
    #[inline]
    pub(crate) fn finish(self) -> (f32, f32) {
        let inv = if self.l == 0.0 { 0.0 } else { 1.0 / self.l };
        (inv, self.m + libm::logf(self.l))
    }

    /// The same state in the linear domain, for scorers that produce the
    /// weights `w_j = e^{s_j}` directly (`NegLogDist`): `m` holds the largest
    /// weight `e^{max s}` seen (0 before the first) instead of its logarithm,
    /// and `l = Σ_j w_j / m`. No exponential or logarithm is needed per tile.
    pub(crate) const EMPTY_LINEAR: Running = Running { m: 0.0, l: 0.0 };

    /// Linear-domain [`advance`](Self::advance) for a tile whose largest
    /// weight is `tile_max`: rescales `l` and returns `(α, 1/m')`; the caller
    /// adds `w_j / m'` to `l`. When `m' = +∞` it returns `1/m' = 0` and the
    /// caller gives weight 1 to the infinite weights and 0 to the others.
    #[inline]
    pub(crate) fn advance_linear(&mut self, tile_max: f32) -> (f32, f32) {
        let m = self.m.max(tile_max);
        let (alpha, inv) = if m == f32::INFINITY {
            (f32::from(u8::from(self.m == f32::INFINITY)), 0.0)
        } else if m == 0.0 {
            (1.0, 0.0)
        } else {
            (self.m / m, 1.0 / m)
        };
        self.m = m;
        self.l *= alpha;
        (alpha, inv)
    }

    /// Linear-domain [`finish`](Self::finish).
    #[inline]
    pub(crate) fn finish_linear(self) -> (f32, f32) {
        let inv = if self.l == 0.0 { 0.0 } else { 1.0 / self.l };
        (inv, libm::logf(self.m) + libm::logf(self.l))
    }
}

/// `e^{s − shift}`, with `e^{(+∞)−(+∞)}` taken as 1.
#[inline]
pub(crate) fn weight(s: f32, shift: f32) -> f32 {
    if s == shift {
        1.0
    } else {
        libm::expf(s - shift)
    }
}

/// Merges two partial attention results over disjoint key ranges into the
/// result over their union, in place in `(out_a, lse_a)`.
///
/// Each partial is a normalised output row `O` with its log-sum-exp `lse`, as
/// returned by [`Attention::run_lse`](crate::Attention::run_lse) on a key range.
/// The union has
///
/// ```text
/// lse = ln(e^{lse_a} + e^{lse_b})
/// O   = (e^{lse_a − lse} O_a + e^{lse_b − lse} O_b)
/// ```
///
/// computed with the larger `lse` factored out, so nothing overflows. Merging
/// with an empty partial (`lse = −∞`, output 0) leaves the other unchanged;
/// two empty partials give 0 and `−∞`; a NaN in either makes the row NaN.
/// Two partials with `lse = +∞` (each holding keys of infinite score) are
/// averaged with equal weights: the exact union weighs them by how many
/// infinite scores each holds, which the partials do not record.
/// The merge is exact up to rounding, commutative, and associative within
/// rounding, which is what lets a caller split a long key range across threads.
///
/// Errors: [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) if the two
/// matrices differ in shape, [`Error::BufferTooShort`](crate::Error::BufferTooShort)
/// if an `lse` slice is shorter than the row count.
///
/// ```
/// use streamattn::{merge, MatMut, MatRef};
/// // Row output 1.0 with total weight e^0 merged with output 3.0 of weight e^0:
/// let mut a = [1.0f32];
/// let mut lse_a = [0.0f32];
/// merge(MatMut::dense(&mut a, 1, 1)?, &mut lse_a, MatRef::dense(&[3.0], 1, 1)?, &[0.0])?;
/// assert!((a[0] - 2.0).abs() < 1e-6);
/// assert!((lse_a[0] - 2f32.ln()).abs() < 1e-6);
/// # Ok::<(), streamattn::Error>(())
/// ```
pub fn merge(
    mut out_a: crate::MatMut<'_>,
    lse_a: &mut [f32],
    out_b: crate::MatRef<'_>,
    lse_b: &[f32],
) -> Result<(), crate::Error> {
    use crate::Error;
    let (rows, cols) = (out_a.rows(), out_a.cols());
    if out_b.rows() != rows {
        return Err(Error::ShapeMismatch { what: "out_b", expected: rows, found: out_b.rows() });
    }
    if out_b.cols() != cols {
        return Err(Error::ShapeMismatch { what: "out_b", expected: cols, found: out_b.cols() });
    }
    for (what, len) in [("lse_a", lse_a.len()), ("lse_b", lse_b.len())] {
        if len < rows {
            return Err(Error::BufferTooShort { what, needed: rows, len });
        }
    }
    for r in 0..rows {
        merge_row(out_a.row_mut(r), &mut lse_a[r], out_b.row(r), lse_b[r]);
    }
    Ok(())
}

/// [`merge`] for one row.
pub(crate) fn merge_row(a: &mut [f32], lse_a: &mut f32, b: &[f32], lse_b: f32) {
    let mut run = Running { m: *lse_a, l: 1.0 };
    // A NaN lse is passed over by the max but gives a NaN weight below.
    let (wa, shift) = run.advance(lse_b);
    let wb = weight(lse_b, shift);
    let total = wa + wb;
    if total == 0.0 {
        a.fill(0.0);
        *lse_a = f32::NEG_INFINITY;
        return;
    }
    let (ca, cb) = (wa / total, wb / total);
    for (x, y) in a.iter_mut().zip(b) {
        *x = ca * *x + cb * y;
    }
    *lse_a = shift + libm::logf(total);
}
