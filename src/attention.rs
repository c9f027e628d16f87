//! The public entry: an [`Attention`] configuration, validated into a
//! [`Problem`] and handed to a kernel.

use crate::problem::{Alibi, Problem, Typed};
use crate::view::Layout;
use crate::{
    arch, scalar, tile, Bias, Element, Error, HeadsMut, HeadsRef, Level, Mask, MatMut, MatRef, Scorer,
};
use half::{bf16, f16};

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
    pub(crate) softcap: Option<f32>,
    pub(crate) alibi: Option<&'b [f32]>,
    pub(crate) sinks: Option<&'b [f32]>,
    pub(crate) kernel: Kernel,
    pub(crate) max_level: Level,
}

/// Which implementation computes the result. Both compute the same function;
/// they differ only in rounding, within the tolerance the tests document.
///
/// A call runs on [`Kernel::default_for`] its scorer unless
/// [`Attention::kernel`] chooses.
///
/// ```
/// use streamattn::{Attention, Kernel, Scorer};
/// let reference = Attention::new(Scorer::dot()).kernel(Kernel::Scalar);
/// # let _ = reference;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// The vectorised tiled kernel, at the best [`Level`] the CPU supports
    /// within [`Attention::max_level`]. Needs the `tiled` feature (on by
    /// default); without it a call is [`Error::Unsupported`].
    Tiled,
    /// The scalar streaming path, one row and one small tile of keys at a
    /// time: simple, what the tiled kernel is tested against, and on
    /// targets without SIMD the default for most scorers.
    Scalar,
}

impl Kernel {
    /// The kernel that runs `scorer` unless [`Attention::kernel`] chooses
    /// one: [`Kernel::Tiled`] on targets with a vector [`Level`] (x86-64,
    /// aarch64, wasm32 with `simd128`). On the others (Cortex-M, ...) the
    /// tiled kernel runs one lane at a time, and the scalar path executes
    /// fewer instructions for `Dot`, `NegSqDist` and `NegLogDist` (the
    /// README's firmware table, measured on a Cortex-M4F), so those get
    /// [`Kernel::Scalar`] and `Additive` keeps [`Kernel::Tiled`]. Without
    /// the `tiled` feature, always [`Kernel::Scalar`].
    ///
    /// ```
    /// use streamattn::{Kernel, Scorer};
    /// let k = Kernel::default_for(&Scorer::dot());
    /// if cfg!(target_arch = "x86_64") {
    ///     assert_eq!(k, Kernel::Tiled);
    /// }
    /// ```
    #[must_use]
    pub const fn default_for(scorer: &Scorer<'_>) -> Kernel {
        if cfg!(feature = "tiled") && (arch::SIMD_TARGET || matches!(scorer, Scorer::Additive { .. })) {
            Kernel::Tiled
        } else {
            Kernel::Scalar
        }
    }
}

impl Default for Kernel {
    /// [`Kernel::default_for`] `Dot`.
    fn default() -> Kernel {
        Kernel::default_for(&Scorer::dot())
    }
}

impl Kernel {
    /// Runs a validated problem on this kernel: every head into `out` (laid
    /// out by `layout`) and, if given, the log-sum-exps
    /// `lse[h * lse_stride + i]`.
    pub(crate) fn compute<E: Element>(
        self,
        p: &Problem<'_, E>,
        out: &mut [f32],
        layout: &Layout,
        lse: Option<&mut [f32]>,
    ) {
        // The kernels are compiled here, once per element type, not in every
        // crate that calls a (generic) entry.
        match p.typed() {
            Typed::F32(p) => self.compute_f32(&p, out, layout, lse),
            Typed::F16(p) => self.compute_f16(&p, out, layout, lse),
            Typed::Bf16(p) => self.compute_bf16(&p, out, layout, lse),
        }
    }

    // The unit tests (`cargo test --lib`) never run the kernels (the
    // integration tests do): there these three are `#[inline]`, compiled
    // only where called, so the unit-test build does not compile every
    // kernel a second time.
    #[cfg_attr(not(test), inline(never))]
    #[cfg_attr(test, inline)]
    fn compute_f32(self, p: &Problem<'_, f32>, out: &mut [f32], layout: &Layout, lse: Option<&mut [f32]>) {
        self.compute_as(p, out, layout, lse);
    }

    #[cfg_attr(not(test), inline(never))]
    #[cfg_attr(test, inline)]
    fn compute_f16(self, p: &Problem<'_, f16>, out: &mut [f32], layout: &Layout, lse: Option<&mut [f32]>) {
        self.compute_as(p, out, layout, lse);
    }

    #[cfg_attr(not(test), inline(never))]
    #[cfg_attr(test, inline)]
    fn compute_bf16(self, p: &Problem<'_, bf16>, out: &mut [f32], layout: &Layout, lse: Option<&mut [f32]>) {
        self.compute_as(p, out, layout, lse);
    }

    fn compute_as<E: Element>(
        self,
        p: &Problem<'_, E>,
        out: &mut [f32],
        layout: &Layout,
        lse: Option<&mut [f32]>,
    ) {
        match self {
            Kernel::Scalar => scalar::run(p, out, layout, lse),
            #[cfg(feature = "tiled")]
            Kernel::Tiled => arch::dispatch(p.level, tile::Tiled { problem: p, out, layout, lse }),
            // Never reached: without the `tiled` feature the call was an
            // `Error::Unsupported` (`Attention::problem`).
            #[cfg(not(feature = "tiled"))]
            Kernel::Tiled => scalar::run(p, out, layout, lse),
        }
    }
}

impl<'b> Attention<'b> {
    /// Attention with `scorer`, no mask, every key, no bias.
    #[must_use]
    pub const fn new(scorer: Scorer<'b>) -> Self {
        Attention {
            scorer,
            mask: Mask::None,
            key_len: None,
            bias: None,
            norms: None,
            softcap: None,
            alibi: None,
            sinks: None,
            kernel: Kernel::default_for(&scorer),
            max_level: Level::Avx512,
        }
    }

    /// Chooses the implementation (default [`Kernel::default_for`] the scorer).
    #[must_use]
    pub const fn kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// Caps the [`Level`] the tiled kernel runs at: the call runs at the best
    /// level the CPU supports of at most `max.lanes()` lanes (by default,
    /// the best it supports). A runtime caps the level to get the same bits
    /// on different machines (`Level::Generic` computes the same bits on
    /// every CPU; `Level::Avx2` the same on every CPU that has AVX2), or to
    /// rule a level out. It does not change [`Kernel::Scalar`].
    ///
    /// ```
    /// use streamattn::{Attention, Level, Scorer};
    /// let attn = Attention::new(Scorer::dot()).max_level(Level::Avx2);
    /// assert!(attn.level().lanes() <= 8);
    /// ```
    #[must_use]
    pub const fn max_level(mut self, max: Level) -> Self {
        self.max_level = max;
        self
    }

    /// The level the tiled kernel runs at on this CPU: the best supported
    /// within [`max_level`](Self::max_level). For a runtime's log.
    #[must_use]
    pub fn level(&self) -> Level {
        Level::capped(self.max_level)
    }

    /// Sets the mask.
    #[must_use]
    pub const fn mask(mut self, mask: Mask) -> Self {
        self.mask = mask;
        self
    }

    /// Only the first `key_len` keys exist; the rest (padding of a
    /// preallocated cache) are ignored. Must be at most `n_kv`.
    #[must_use]
    pub const fn key_len(mut self, key_len: usize) -> Self {
        self.key_len = Some(key_len);
        self
    }

    /// Adds `bias` to every score.
    #[must_use]
    pub const fn bias(mut self, bias: Bias<'b>) -> Self {
        self.bias = Some(bias);
        self
    }

    /// Logit softcapping (Gemma 2): each score `s(q_i, k_j)` becomes
    /// `cap · tanh(s / cap)` before the bias, ALiBi and the mask apply, so
    /// that every logit lies within `±cap` plus those terms (`±∞` scores give
    /// `±cap`). `cap` must be finite and positive ([`Error::InvalidParameter`]
    /// with `what = "softcap"` at the call otherwise).
    ///
    /// ```
    /// use streamattn::{Attention, MatMut, MatRef, Scorer};
    /// let k = [100.0f32, 0.0, -100.0, 0.0];
    /// let v = [1.0f32, 0.0];
    /// let mut out = [0.0f32];
    /// // Scores ±100 capped to about ±5: the second key keeps a weight of e^-10.
    /// Attention::new(Scorer::Dot { scale: Some(1.0) }).softcap(5.0).run(
    ///     MatRef::dense(&[1.0, 0.0], 1, 2)?,
    ///     MatRef::dense(&k, 2, 2)?,
    ///     MatRef::dense(&v, 2, 1)?,
    ///     MatMut::dense(&mut out, 1, 1)?,
    /// )?;
    /// assert!((out[0] - 1.0 / (1.0 + (-10f32).exp())).abs() < 1e-6);
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    #[must_use]
    pub const fn softcap(mut self, cap: f32) -> Self {
        self.softcap = Some(cap);
        self
    }

    /// ALiBi (Press et al. 2022): query head `h` adds
    /// `−slopes[h] · |i + key_len − n_q − j|` to the logit of row `i` and key
    /// `j`, computed on the fly (no bias matrix). Query rows are the last
    /// `n_q` positions of the `key_len` keys (bottom-right, as a causal mask
    /// with `offset = key_len − n_q`), as in FlashAttention. `slopes` has one
    /// finite entry per query head ([`Error::ShapeMismatch`] or
    /// [`Error::InvalidParameter`] with `what = "alibi_slopes"` at the call
    /// otherwise); the usual choice for `H` heads is `2^(−8(h+1)/H)`.
    /// Positions are exact in `f32` up to `2²⁴` keys.
    ///
    /// ```
    /// use streamattn::{Attention, MatMut, MatRef, Mask, Scorer};
    /// // Equal scores: ALiBi alone weighs key j by e^{-|2 - j|}.
    /// let v = [1.0f32, 2.0, 3.0];
    /// let mut out = [0.0f32];
    /// Attention::new(Scorer::dot()).alibi(&[1.0]).mask(Mask::Causal { offset: 2 }).run(
    ///     MatRef::dense(&[0.0], 1, 1)?,
    ///     MatRef::dense(&[0.0; 3], 3, 1)?,
    ///     MatRef::dense(&v, 3, 1)?,
    ///     MatMut::dense(&mut out, 1, 1)?,
    /// )?;
    /// let w = [(-2f32).exp(), (-1f32).exp(), 1.0];
    /// let want = (w[0] + 2.0 * w[1] + 3.0 * w[2]) / (w[0] + w[1] + w[2]);
    /// assert!((out[0] - want).abs() < 1e-6);
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    #[must_use]
    pub const fn alibi(mut self, slopes: &'b [f32]) -> Self {
        self.alibi = Some(slopes);
        self
    }

    /// Attention sinks: query head `h` has one more logit, `sinks[h]`, which
    /// joins every row's softmax denominator and carries no value:
    ///
    /// ```text
    /// out[i] = Σ_j e^{s_ij} v_j / (e^{sinks[h]} + Σ_j e^{s_ij})
    /// lse[i] = ln(e^{sinks[h]} + Σ_j e^{s_ij})
    /// ```
    ///
    /// so a row with no visible key gets `out = 0` and `lse = sinks[h]`.
    /// `sinks` has one finite entry per query head ([`Error::ShapeMismatch`]
    /// or [`Error::InvalidParameter`] with `what = "sinks"` at the call
    /// otherwise). To [`merge`](crate::merge) partial results over key
    /// ranges, give the sinks to one part only.
    ///
    /// ```
    /// use streamattn::{Attention, MatMut, MatRef, Scorer};
    /// let mut out = [0.0f32];
    /// let mut lse = [0.0f32];
    /// // One key of logit 0 and a sink of logit 0: half the weight each.
    /// Attention::new(Scorer::dot()).sinks(&[0.0]).run_lse(
    ///     MatRef::dense(&[0.0], 1, 1)?,
    ///     MatRef::dense(&[0.0], 1, 1)?,
    ///     MatRef::dense(&[4.0], 1, 1)?,
    ///     MatMut::dense(&mut out, 1, 1)?,
    ///     &mut lse,
    /// )?;
    /// assert!((out[0] - 2.0).abs() < 1e-6 && (lse[0] - 2f32.ln()).abs() < 1e-6);
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    #[must_use]
    pub const fn sinks(mut self, sinks: &'b [f32]) -> Self {
        self.sinks = Some(sinks);
        self
    }

    /// Uses `norms[h][j] = ‖k[h][j]‖²`, computed by [`key_norms`](crate::key_norms)
    /// when the keys were stored, instead of computing the norms of the keys
    /// at each call. `norms` is `n_kv_heads × n_kv × 1`, like the keys (the
    /// rows past the key length are not read). Only `NegLogDist` uses key
    /// norms (`NegSqDist` measures keys from a centre among the queries and
    /// computes `‖k − c‖²` itself), and only the tiled kernel reads them (the
    /// scalar path computes its own distances); they are checked
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
    #[must_use]
    pub const fn cached_key_norms(mut self, norms: HeadsRef<'b>) -> Self {
        self.norms = Some(norms);
        self
    }

    /// One head: `q` is `n_q × d`, `k` is `n_kv × d`, `v` is `n_kv × d_v`, `out`
    /// is `n_q × d_v`. See [`run_heads`](Self::run_heads) for the errors.
    pub fn run<E: Element>(
        &self,
        q: MatRef<'_>,
        k: MatRef<'_, E>,
        v: MatRef<'_, E>,
        out: MatMut<'_>,
    ) -> Result<(), Error> {
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
    pub fn run_lse<E: Element>(
        &self,
        q: MatRef<'_>,
        k: MatRef<'_, E>,
        v: MatRef<'_, E>,
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
    ///   not of the keys' shape;
    /// - [`Error::InvalidParameter`] with `what = "softcap"`: a softcap not
    ///   finite and positive; with `what = "alibi_slopes"` or `"sinks"`, an
    ///   entry not finite ([`Error::ShapeMismatch`] if there are not
    ///   `n_heads` entries).
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
    pub fn run_heads<E: Element>(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_, E>,
        v: HeadsRef<'_, E>,
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
    pub(crate) fn problem<'a, E: Element>(
        &self,
        q: HeadsRef<'a>,
        k: HeadsRef<'a, E>,
        v: HeadsRef<'a, E>,
        out: &Layout,
        lse: Option<&[f32]>,
    ) -> Result<Problem<'a, E>, Error>
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
        if self.kernel == Kernel::Tiled && !cfg!(feature = "tiled") {
            return Err(Error::Unsupported { what: "tiled" });
        }
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
        if let Some(cap) = self.softcap {
            if !(cap.is_finite() && cap > 0.0) {
                return Err(Error::InvalidParameter { what: "softcap", value: cap });
            }
        }
        for (what, per_head) in [("alibi_slopes", self.alibi), ("sinks", self.sinks)] {
            if let Some(x) = per_head {
                mismatch(what, n_heads, x.len())?;
                if let Some(&bad) = x.iter().find(|x| !x.is_finite()) {
                    return Err(Error::InvalidParameter { what, value: bad });
                }
            }
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
            softcap: self.softcap,
            // Rows are the last n_q positions of the key_len keys.
            alibi: self.alibi.map(|slopes| Alibi { slopes, delta: key_len as isize - n_q as isize }),
            sinks: self.sinks,
            group: n_heads / n_kv_heads,
            lse_stride: n_q,
            level: self.level(),
        })
    }
}
