//! The public entry: an [`Attention`] configuration, validated into a
//! [`Problem`] and handed to a kernel one head at a time.

use crate::scorer::Kind;
use crate::view::Layout;
use crate::{scalar, tile, Error, HeadsMut, HeadsRef, Mask, MatMut, MatRef, Scorer};

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
/// let bias = Bias::new(&b, 2, 3, 3, 0).unwrap();
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
    /// `[h][i][j]` at `data[h * head_stride + i * row_stride + j]`.
    ///
    /// Errors: [`Error::StrideTooSmall`] if `row_stride` is neither 0 nor at
    /// least `cols`. The length of `data` is checked at the call, against the
    /// number of heads.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        head_stride: usize,
    ) -> Result<Self, Error> {
        if row_stride != 0 && row_stride < cols {
            return Err(Error::StrideTooSmall { what: "bias", stride: row_stride, min: cols });
        }
        Ok(Bias { data, rows, cols, row_stride, head_stride })
    }

    /// One dense `rows × cols` matrix shared by every head.
    pub fn shared(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, Error> {
        Self::new(data, rows, cols, cols, 0)
    }

    fn check(&self, heads: usize, n_q: usize, n_kv: usize) -> Result<(), Error> {
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
}

/// An attention computation: a scorer, a mask, an optional key length and an
/// optional bias, applied to queries, keys and values by [`run`](Self::run)
/// (one head), [`run_lse`](Self::run_lse) (one head, with log-sum-exp) or
/// [`run_heads`](Self::run_heads) (many heads, grouped-query).
///
/// For query row `i` with visible keys `J_i` (mask, key length):
///
/// ```text
/// out[i] = Σ_{j ∈ J_i} softmax_j(s(q_i, k_j) + bias[i][j]) · v_j
/// lse[i] = ln Σ_{j ∈ J_i} e^{s(q_i, k_j) + bias[i][j]}
/// ```
///
/// computed by a streaming softmax that never stores the `n_q × n_kv` score
/// matrix and allocates nothing. A row with no visible key (or only `−∞`
/// scores) gets `out[i] = 0` and `lse[i] = −∞`; a NaN in `q_i`, in a visible
/// `k_j` or `v_j`, or in the bias makes that row NaN.
///
/// ```
/// use streamattn::{Attention, MatMut, MatRef, Mask, Scorer};
/// let (n_q, n_kv, d, d_v) = (2, 3, 4, 2);
/// let q = [0.1f32; 2 * 4];
/// let k = [0.2f32, 0.0, 0.1, 0.3, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0];
/// let v = [1.0f32, 0.0, 0.0, 1.0, 0.5, 0.5];
/// let mut out = [0.0f32; 2 * 2];
/// Attention::new(Scorer::dot())
///     .mask(Mask::Causal { offset: 1 })
///     .run(
///         MatRef::dense(&q, n_q, d)?,
///         MatRef::dense(&k, n_kv, d)?,
///         MatRef::dense(&v, n_kv, d_v)?,
///         MatMut::dense(&mut out, n_q, d_v)?,
///     )?;
/// // Each output row is a convex combination of value rows.
/// assert!(out.iter().all(|&x| (0.0..=1.0).contains(&x)));
/// # Ok::<(), streamattn::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Attention<'b> {
    pub(crate) scorer: Scorer<'b>,
    pub(crate) mask: Mask,
    pub(crate) key_len: Option<usize>,
    pub(crate) bias: Option<Bias<'b>>,
    pub(crate) norms: Option<HeadsRef<'b>>,
    pub(crate) kernel: Kernel,
}

/// Which implementation computes the result. Both compute the same function;
/// they differ only in rounding, within the tolerance the tests document.
///
/// ```
/// use streamattn::{Attention, Kernel, Scorer};
/// let reference = Attention::new(Scorer::dot()).kernel(Kernel::Scalar);
/// # let _ = reference;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kernel {
    /// The vectorised tiled kernel (lane width chosen by the build's target
    /// features). The default.
    #[default]
    Tiled,
    /// The scalar streaming path, one row and one small tile of keys at a
    /// time: slow, simple, and what the tiled kernel is tested against.
    Scalar,
    /// The tiled kernel at a fixed lane width (1, 4, 8 or 16), whatever the
    /// build: for tests that run every width on one machine.
    #[doc(hidden)]
    TiledX1,
    #[doc(hidden)]
    TiledX4,
    #[doc(hidden)]
    TiledX8,
    #[doc(hidden)]
    TiledX16,
}

impl Kernel {
    /// Runs a validated problem on this kernel: every head into `out` (laid
    /// out by `layout`) and, if given, the log-sum-exps `lse[h * n_q + i]`.
    pub(crate) fn compute(self, p: &Problem<'_>, out: &mut [f32], layout: &Layout, lse: Option<&mut [f32]>) {
        match self {
            Kernel::Scalar => scalar::run(p, out, layout, lse),
            Kernel::Tiled => tile::native(p, out, layout, lse),
            Kernel::TiledX1 => tile::x1(p, out, layout, lse),
            Kernel::TiledX4 => tile::x4(p, out, layout, lse),
            Kernel::TiledX8 => tile::x8(p, out, layout, lse),
            Kernel::TiledX16 => tile::x16(p, out, layout, lse),
        }
    }
}

impl<'b> Attention<'b> {
    /// Attention with `scorer`, no mask, every key, no bias.
    pub const fn new(scorer: Scorer<'b>) -> Self {
        Attention { scorer, mask: Mask::None, key_len: None, bias: None, norms: None, kernel: Kernel::Tiled }
    }

    /// Chooses the implementation (default [`Kernel::Tiled`]).
    pub const fn kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// Sets the mask.
    pub const fn mask(mut self, mask: Mask) -> Self {
        self.mask = mask;
        self
    }

    /// Only the first `key_len` keys exist; the rest (padding of a
    /// preallocated cache) are ignored. Must be at most `n_kv`.
    pub const fn key_len(mut self, key_len: usize) -> Self {
        self.key_len = Some(key_len);
        self
    }

    /// Adds `bias` to every score.
    pub const fn bias(mut self, bias: Bias<'b>) -> Self {
        self.bias = Some(bias);
        self
    }

    /// Uses `norms[h][j] = ‖k[h][j]‖²`, computed by [`key_norms`](crate::key_norms)
    /// when the keys were stored, instead of computing the norms of the keys
    /// at each call. `norms` is `n_kv_heads × n_kv × 1`, like the keys (the
    /// rows past the key length are not read). Only the distance scorers
    /// (`NegSqDist`, `NegLogDist`) use key norms, and only the tiled kernel
    /// reads them (the scalar path computes its own); they are checked
    /// against the keys' shape at each call ([`Error::ShapeMismatch`] with
    /// `what = "key_norms"`), whatever the scorer.
    ///
    /// ```
    /// use streamattn::{key_norms, Attention, HeadsMut, HeadsRef, MatMut, MatRef, Scorer};
    /// let (n_kv, d) = (3, 2);
    /// let k = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
    /// let v = [1.0f32, 2.0, 3.0];
    /// let mut norms = [0.0f32; 3]; // kept next to the cache, appended with it
    /// key_norms(HeadsRef::heads_major(&k, 1, n_kv, d)?, HeadsMut::heads_major(&mut norms, 1, n_kv, 1)?)?;
    /// let mut out = [0.0f32];
    /// Attention::new(Scorer::neg_sq_dist())
    ///     .cached_key_norms(HeadsRef::heads_major(&norms, 1, n_kv, 1)?)
    ///     .run(
    ///         MatRef::dense(&[1.0, 0.0], 1, d)?,
    ///         MatRef::dense(&k, n_kv, d)?,
    ///         MatRef::dense(&v, n_kv, 1)?,
    ///         MatMut::dense(&mut out, 1, 1)?,
    ///     )?;
    /// assert!(out[0] > 1.0 && out[0] < 2.0); // nearest key 0, then 2, then 1
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    pub const fn cached_key_norms(mut self, norms: HeadsRef<'b>) -> Self {
        self.norms = Some(norms);
        self
    }

    /// One head: `q` is `n_q × d`, `k` is `n_kv × d`, `v` is `n_kv × d_v`, `out`
    /// is `n_q × d_v`. See [`run_heads`](Self::run_heads) for the errors.
    pub fn run(&self, q: MatRef<'_>, k: MatRef<'_>, v: MatRef<'_>, out: MatMut<'_>) -> Result<(), Error> {
        self.run_heads(
            HeadsRef::from_mat(q),
            HeadsRef::from_mat(k),
            HeadsRef::from_mat(v),
            HeadsMut::from_mat(out),
            None,
        )
    }

    /// [`run`](Self::run), also writing the log-sum-exp of each row's scores to
    /// `lse[i]` (natural log; `−∞` for a row with no visible key).
    pub fn run_lse(
        &self,
        q: MatRef<'_>,
        k: MatRef<'_>,
        v: MatRef<'_>,
        out: MatMut<'_>,
        lse: &mut [f32],
    ) -> Result<(), Error> {
        self.run_heads(
            HeadsRef::from_mat(q),
            HeadsRef::from_mat(k),
            HeadsRef::from_mat(v),
            HeadsMut::from_mat(out),
            Some(lse),
        )
    }

    /// Many heads with grouped-query attention: `q` has `n_heads` heads,
    /// `k` and `v` have `n_kv_heads`, and query head `h` reads key/value head
    /// `h / (n_heads / n_kv_heads)`. `out` has `n_heads` heads of `n_q × d_v`.
    /// `lse`, if given, receives `lse[h * n_q + i]`.
    ///
    /// Errors, checked before anything is written:
    /// - [`Error::ShapeMismatch`]: `k.cols() != q.cols()`, `v` not of
    ///   `k`'s heads and rows, `out` not `n_heads × n_q × v.cols()`, a bias not
    ///   `n_q × n_kv`;
    /// - [`Error::HeadGrouping`]: `n_heads` not a positive multiple of a
    ///   positive `n_kv_heads`;
    /// - [`Error::InvalidParameter`]: a scorer parameter out of its domain;
    /// - [`Error::OutOfRange`]: mask offset or key length above `n_kv`;
    /// - [`Error::BufferTooShort`], [`Error::Overflow`]: a bias or `lse` too short;
    /// - [`Error::ShapeMismatch`] with `what = "key_norms"`: cached key norms
    ///   not of the keys' shape.
    ///
    /// `n_q = 0` does nothing; `n_kv = 0` gives zero rows and `lse = −∞`.
    ///
    /// ```
    /// use streamattn::{Attention, HeadsMut, HeadsRef, Scorer};
    /// // 4 query heads share 2 KV heads; a [seq, heads, d] cache read in place.
    /// let (h, h_kv, n_q, n_kv, d) = (4, 2, 1, 5, 8);
    /// let q = vec![0.5f32; h * n_q * d];
    /// let kv: Vec<f32> = (0..n_kv * h_kv * d).map(|x| (x % 7) as f32 * 0.1).collect();
    /// let mut out = vec![0.0f32; h * n_q * d];
    /// let mut lse = vec![0.0f32; h * n_q];
    /// Attention::new(Scorer::neg_sq_dist()).run_heads(
    ///     HeadsRef::seq_major(&q, h, n_q, d)?,
    ///     HeadsRef::seq_major(&kv, h_kv, n_kv, d)?,
    ///     HeadsRef::seq_major(&kv, h_kv, n_kv, d)?,
    ///     HeadsMut::seq_major(&mut out, h, n_q, d)?,
    ///     Some(&mut lse),
    /// )?;
    /// // Heads 0 and 1 share KV head 0 and have the same query: same output.
    /// assert_eq!(out[..d], out[d..2 * d]);
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    pub fn run_heads(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_>,
        v: HeadsRef<'_>,
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        let problem = self.problem(q, k, v, &out.layout, lse.as_deref())?;
        if problem.q.rows() == 0 {
            return Ok(()); // nothing to do, however many (empty) heads the views have
        }
        self.kernel.compute(&problem, out.data, &out.layout, lse);
        Ok(())
    }

    /// Checks every argument against the others.
    pub(crate) fn problem<'a>(
        &self,
        q: HeadsRef<'a>,
        k: HeadsRef<'a>,
        v: HeadsRef<'a>,
        out: &Layout,
        lse: Option<&[f32]>,
    ) -> Result<Problem<'a>, Error>
    where
        'b: 'a,
    {
        let (n_heads, n_kv_heads) = (q.heads(), k.heads());
        let (n_q, n_kv, d) = (q.rows(), k.rows(), q.cols());
        let mismatch = |what, expected, found| {
            if expected == found {
                Ok(())
            } else {
                Err(Error::ShapeMismatch { what, expected, found })
            }
        };
        mismatch("k", d, k.cols())?;
        mismatch("v", n_kv_heads, v.heads())?;
        mismatch("v", n_kv, v.rows())?;
        if n_kv_heads == 0 || n_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(Error::HeadGrouping { n_heads, n_kv_heads });
        }
        mismatch("out", n_heads, out.heads)?;
        mismatch("out", n_q, out.rows)?;
        mismatch("out", v.cols(), out.cols)?;
        let kind = self.scorer.resolve(d)?;
        let key_len = self.key_len.unwrap_or(n_kv);
        if key_len > n_kv {
            return Err(Error::OutOfRange { what: "key_len", value: key_len, max: n_kv });
        }
        self.mask.check(n_kv)?;
        if let Some(b) = &self.bias {
            b.check(n_heads, n_q, n_kv)?;
        }
        if let Some(n) = &self.norms {
            crate::norms::check(&k, n.heads(), n.rows(), n.cols())?;
        }
        if let Some(l) = lse {
            let needed = n_heads.checked_mul(n_q).ok_or(Error::Overflow { what: "lse" })?;
            if l.len() < needed {
                return Err(Error::BufferTooShort { what: "lse", needed, len: l.len() });
            }
        }
        Ok(Problem {
            q,
            k,
            v,
            kind,
            mask: self.mask,
            key_len,
            bias: self.bias,
            norms: self.norms,
            group: n_heads / n_kv_heads,
        })
    }
}

/// A validated call: every index the kernels compute is in bounds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Problem<'a> {
    pub q: HeadsRef<'a>,
    pub k: HeadsRef<'a>,
    pub v: HeadsRef<'a>,
    pub kind: Kind<'a>,
    pub mask: Mask,
    pub key_len: usize,
    pub bias: Option<Bias<'a>>,
    /// Cached `‖k_j‖²`, `n_kv_heads × n_kv × 1`.
    pub norms: Option<HeadsRef<'a>>,
    /// Query heads per key/value head.
    pub group: usize,
}
