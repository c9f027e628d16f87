//! Parallel entries on rayon's thread pool (feature `rayon`, which needs
//! `std`; the default build is `no_std` and single-threaded).
//!
//! [`Attention::par_run_heads`] (and [`par_run`](Attention::par_run),
//! [`par_run_lse`](Attention::par_run_lse)) compute exactly what
//! [`Attention::run_heads`] computes, bit for bit, with the work spread over
//! the threads of the current rayon pool as independent tasks:
//!
//! - **prefill** (more than 8 query rows): one task per query head and block
//!   of 1536 query rows (the last block of a head takes up to 8 more rows);
//! - **decode** (at most 8 query rows): one task per key/value head, with all
//!   the query heads that read it;
//! - **scalar path** ([`Kernel::Scalar`](crate::Kernel::Scalar)): one task per head and 64 rows.
//!
//! [`Attention::par_run_batch`] runs the tasks of all the sequences of a
//! batch in one loop, largest first.
//!
//! # Why the result is bit-identical
//!
//! A task runs the single-thread kernel on a sub-problem: views of its query
//! heads and rows and of its key/value head (no copy), the mask's `offset`
//! increased by the task's first row (so every row keeps its position among
//! the keys and sees the same keys), the bias rows of its heads and rows. A
//! row's arithmetic in the tiled kernel depends on more than the row: on the
//! path (decode when the query heads of a key/value head have at most 8 rows
//! in all, else prefill), and in prefill on the block of rows it is in (the
//! block's first visible key is where its key tiles start) and on its
//! micro-block of 4 or 6 rows (the order in which a row's keys are
//! accumulated near a window's edge). So tasks are cut only where the
//! single-thread call's blocks start: prefill blocks are 512 rows (one
//! micro-block for heads wider than the packed tile, `d > 256` with SIMD),
//! and 1536 is a multiple of 512, 4 and 6; a task of the prefill path keeps
//! more than 8 rows, so it stays on that path; a decode task is the whole
//! pass the single-thread call makes. The scalar path computes every row on
//! its own. `tests/parallel.rs` checks the claim bit for bit on shapes where
//! cuts elsewhere (every 512 rows with 6-row micro-blocks, every 500 rows) or
//! a decode threshold other than 8 would change the result.
//!
//! # Split-KV
//!
//! Splitting one row's keys is what a decode with fewer key/value heads than
//! threads needs; [`Attention::par_run_heads_split`] does it when asked
//! ([`KvSplit`]): each part of the key range is computed with its
//! log-sum-exp and the parts are combined by [`merge`](crate::merge), in key
//! order. That result differs from the single-thread one by rounding (see
//! [`KvSplit`]), and for given split points it does not depend on the number
//! of threads or on scheduling. Masks and the key length stay in the cache's
//! coordinates: in a part starting at key `a`, the rows whose position is at
//! or past `a` run with the mask's offset reduced by `a`, and a window's rows
//! before `a` that still reach into the part run as a causal mask.
//!
//! # Throughput
//!
//! Prefill is bound by arithmetic and scales with the cores. Decode is bound
//! by memory bandwidth, which cores share: where two threads read memory
//! only 1.2–1.5× as fast as one, the parallel decode scales by as much.
//!
//! # Errors and allocation
//!
//! Every entry validates its arguments exactly as the single-thread entry
//! does, before any work, and returns the same [`Error`] for bad input. The
//! entries allocate (task lists, scratch for outputs whose heads interleave
//! in memory, partial results of split-KV); the kernels they run do not.
//! Calls with little work (under `2^16` multiply-adds,
//! `heads · n_q · key_len · (d + d_v)`) run on the calling thread.
//!
//! The code: the entries and [`KvSplit`] here, the tasks of a call in
//! `plan`, output scratch in `scratch`, the parallel execution in `exec`.

mod exec;
mod plan;
mod scratch;

use crate::batch::Batch;
use crate::problem::Problem;
use crate::{Attention, Element, Error, HeadsMut, HeadsRef, MatMut, MatRef};
use std::vec;
use std::vec::Vec;

/// A sequence of a batch with new rows: its validated problem, its packed
/// rows, its tasks and its split points.
struct Sequence<'a, E: Element> {
    problem: Problem<'a, E>,
    rows: core::ops::Range<usize>,
    units: Vec<plan::Unit>,
    points: Vec<usize>,
}

/// How [`Attention::par_run_heads_split`] may split each query row's key range
/// into parts computed by different tasks (split-KV).
///
/// With a split, the keys `0..n_kv` are cut at split points `0 < t_1 < … <
/// t_m < n_kv`; each part `t_k..t_{k+1}` gives every row its attention over
/// the keys of the part it sees (mask and key length applied in the cache's
/// coordinates, so the split changes nothing in what a row sees) with the
/// log-sum-exp `L_k`, and the parts are merged in key order:
///
/// ```text
/// L = ln Σ_k e^{L_k}        O = Σ_k e^{L_k − L} O_k
/// ```
///
/// which is the unsplit result up to rounding: each part is a separate
/// streaming pass (its tiles start at the part's first key, so the running
/// maxima and sums are rounded differently), and each merge rounds its
/// weights `e^{L_k − L}` and the combination. `tests/parallel.rs` bounds the
/// difference from the f64 reference by composing the merge bound of
/// `tests/common` over the parts; in practice it is a few units in the last
/// place. For given split points the result is deterministic: the same for
/// any number of threads and any scheduling.
///
/// `+∞` scores (an overflowing `Dot` product, `NegLogDist` with `eps = 0`
/// and a query equal to keys, a `+∞` bias) give a part `L_k = +∞` and the
/// mean of its `+∞` keys' values; two such parts cannot be merged by their
/// sizes, which their results do not carry. A row with `+∞` scores in two or
/// more parts is therefore computed again over all its keys, as the
/// unsplit call computes it: the mean over all its `+∞` keys.
///
/// ```
/// use streamattn::KvSplit;
/// let split = KvSplit::At(&[8192, 16384, 24576]); // four parts of a 32k cache
/// assert_ne!(split, KvSplit::Off);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KvSplit<'s> {
    /// Never split keys: the result is bit-identical to the single-thread call.
    #[default]
    Off,
    /// Split when the call has too few independent tasks to keep the pool's
    /// threads busy (a decode with few key/value heads): with `u` tasks and
    /// `T = rayon::current_num_threads()` threads, no split if `T = 1`, `u` is
    /// a multiple of `T` or `u ≥ 8T`; otherwise `T / gcd(u, T)` parts of about
    /// equal length (split points on multiples of 128 keys) over the keys that
    /// some row sees, fewer if a part would have under `2^18` multiply-adds
    /// per row (`keys · (d + d_v)`, 1024 keys at `d = d_v = 128`). The result
    /// may then depend on the number of threads (by rounding only).
    Auto,
    /// Split at these key indices (any order; duplicates, `0` and `n_kv` are
    /// allowed and add no part). Each must be at most `n_kv`, else
    /// [`Error::OutOfRange`] with `what = "split"`. No point inside
    /// `1..n_kv` means no split.
    At(&'s [usize]),
}

impl Attention<'_> {
    /// [`run`](Self::run) (one head, `out[i] = Σ_j softmax_j(s(q_i, k_j)) v_j`)
    /// on the current rayon pool, in blocks of query rows: bit-identical to
    /// `run`, with the same errors.
    ///
    /// ```
    /// use streamattn::{Attention, MatMut, MatRef, Scorer};
    /// let (n_q, n_kv, d) = (64, 256, 16);
    /// let q: Vec<f32> = (0..n_q * d).map(|x| (x % 13) as f32 * 0.1).collect();
    /// let k: Vec<f32> = (0..n_kv * d).map(|x| (x % 7) as f32 * 0.1).collect();
    /// let (mut a, mut b) = (vec![0.0f32; n_q * d], vec![0.0f32; n_q * d]);
    /// let attn = Attention::new(Scorer::dot());
    /// let view = |x| MatRef::dense(x, n_kv, d);
    /// attn.run(MatRef::dense(&q, n_q, d)?, view(&k)?, view(&k)?, MatMut::dense(&mut a, n_q, d)?)?;
    /// attn.par_run(MatRef::dense(&q, n_q, d)?, view(&k)?, view(&k)?, MatMut::dense(&mut b, n_q, d)?)?;
    /// assert_eq!(a, b);
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    pub fn par_run<E: Element>(
        &self,
        q: MatRef<'_>,
        k: MatRef<'_, E>,
        v: MatRef<'_, E>,
        out: MatMut<'_>,
    ) -> Result<(), Error> {
        self.par_run_heads(
            HeadsRef::from_mat(q),
            HeadsRef::from_mat(k),
            HeadsRef::from_mat(v),
            HeadsMut::from_mat(out),
            None,
        )
    }

    /// [`run_lse`](Self::run_lse) (one head, also writing each row's
    /// log-sum-exp `lse[i] = ln Σ_j e^{s(q_i, k_j)}`, natural log) on the
    /// current rayon pool: bit-identical to `run_lse`, with the same errors.
    ///
    /// ```
    /// use streamattn::{Attention, MatMut, MatRef, Mask, Scorer};
    /// let (n_q, n_kv, d) = (40, 300, 8);
    /// let q: Vec<f32> = (0..n_q * d).map(|x| (x % 5) as f32 * 0.2).collect();
    /// let kv: Vec<f32> = (0..n_kv * d).map(|x| (x % 11) as f32 * 0.1).collect();
    /// let attn = Attention::new(Scorer::neg_log_dist()).mask(Mask::causal_bottom_right(n_q, n_kv));
    /// let (mut out, mut lse) = (vec![0.0f32; n_q * d], vec![0.0f32; n_q]);
    /// attn.par_run_lse(
    ///     MatRef::dense(&q, n_q, d)?,
    ///     MatRef::dense(&kv, n_kv, d)?,
    ///     MatRef::dense(&kv, n_kv, d)?,
    ///     MatMut::dense(&mut out, n_q, d)?,
    ///     &mut lse,
    /// )?;
    /// assert!(lse.iter().all(|l| l.is_finite()));
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    pub fn par_run_lse<E: Element>(
        &self,
        q: MatRef<'_>,
        k: MatRef<'_, E>,
        v: MatRef<'_, E>,
        out: MatMut<'_>,
        lse: &mut [f32],
    ) -> Result<(), Error> {
        self.par_run_heads(
            HeadsRef::from_mat(q),
            HeadsRef::from_mat(k),
            HeadsRef::from_mat(v),
            HeadsMut::from_mat(out),
            Some(lse),
        )
    }

    /// [`run_heads`](Self::run_heads) (many heads, grouped-query:
    /// `out[h][i] = Σ_j softmax_j(s(q_{h,i}, k_{h/g, j})) v_{h/g, j}`, and
    /// `lse[h * n_q + i]` if given) on the current rayon pool, over query
    /// heads × blocks of query rows, or over key/value heads for decode (see
    /// the [module docs](crate::parallel)). The result is bit-identical to
    /// `run_heads` for every input, whatever the number of threads; the
    /// errors are those of `run_heads`, returned before any work.
    ///
    /// Output views whose heads interleave in memory (`[seq, heads, d]`) are
    /// computed into per-task scratch buffers and copied in; heads-major
    /// outputs are written in place.
    ///
    /// ```
    /// use streamattn::{Attention, HeadsMut, HeadsRef, Mask, Scorer};
    /// // Prefill of 8 heads, [seq, heads, d] buffers.
    /// let (h, n, d) = (8, 128, 32);
    /// let x: Vec<f32> = (0..n * h * d).map(|i| ((i * 7) % 19) as f32 * 0.05 - 0.4).collect();
    /// let view = || HeadsRef::seq_major(&x, h, n, d);
    /// let attn = Attention::new(Scorer::neg_sq_dist()).mask(Mask::Causal { offset: 0 });
    /// let (mut a, mut b) = (vec![0.0f32; n * h * d], vec![0.0f32; n * h * d]);
    /// attn.run_heads(view()?, view()?, view()?, HeadsMut::seq_major(&mut a, h, n, d)?, None)?;
    /// attn.par_run_heads(view()?, view()?, view()?, HeadsMut::seq_major(&mut b, h, n, d)?, None)?;
    /// assert_eq!(a, b);
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    pub fn par_run_heads<E: Element>(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_, E>,
        v: HeadsRef<'_, E>,
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        self.par_run_heads_split(q, k, v, out, lse, KvSplit::Off)
    }

    /// [`par_run_heads`](Self::par_run_heads), also splitting each row's
    /// keys into parts as `split` says (split-KV, for decoding with fewer
    /// key/value heads than threads): every (task, part) pair is a task, and
    /// the parts are merged by log-sum-exp in key order. Without a split the
    /// result is bit-identical to [`run_heads`](Self::run_heads); with one it
    /// differs by rounding, as [`KvSplit`] describes.
    ///
    /// Errors: those of `run_heads`, and [`Error::OutOfRange`] (`"split"`) for a
    /// split point above `n_kv`; all returned before any work.
    ///
    /// ```
    /// use streamattn::{Attention, HeadsMut, HeadsRef, KvSplit, Mask, Scorer};
    /// // Decode: one query row of one head against 4096 cached keys.
    /// let (n_kv, d) = (4096, 64);
    /// let q: Vec<f32> = (0..d).map(|c| (c % 5) as f32 * 0.1).collect();
    /// let kv: Vec<f32> = (0..n_kv * d).map(|x| ((x * 31) % 17) as f32 * 0.05).collect();
    /// let attn = Attention::new(Scorer::dot()).mask(Mask::causal_bottom_right(1, n_kv));
    /// let view = |x, n| HeadsRef::heads_major(x, 1, n, d);
    /// let (mut whole, mut split) = (vec![0.0f32; d], vec![0.0f32; d]);
    /// let (mut lse_w, mut lse_s) = ([0.0f32], [0.0f32]);
    /// attn.run_heads(view(&q, 1)?, view(&kv, n_kv)?, view(&kv, n_kv)?,
    ///     HeadsMut::heads_major(&mut whole, 1, 1, d)?, Some(&mut lse_w))?;
    /// attn.par_run_heads_split(view(&q, 1)?, view(&kv, n_kv)?, view(&kv, n_kv)?,
    ///     HeadsMut::heads_major(&mut split, 1, 1, d)?, Some(&mut lse_s),
    ///     KvSplit::At(&[1024, 2048, 3072]))?;
    /// for (a, b) in whole.iter().zip(&split) {
    ///     assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0));
    /// }
    /// assert!((lse_w[0] - lse_s[0]).abs() <= 1e-5 * lse_w[0].abs());
    /// # Ok::<(), streamattn::Error>(())
    /// ```
    pub fn par_run_heads_split<E: Element>(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_, E>,
        v: HeadsRef<'_, E>,
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
        split: KvSplit<'_>,
    ) -> Result<(), Error> {
        let problem = self.problem(q, k, v, &out.layout, lse.as_deref())?;
        let points = plan::split_points(&problem, self.kernel, split)?;
        self.par_compute(&problem, &points, out, lse);
        Ok(())
    }

    /// [`run_batch`](Self::run_batch) on the current rayon pool, all
    /// sequences' tasks in one parallel loop, largest first: prefill chunks
    /// by query head and block of rows, decoding sequences by key/value head
    /// (the tasks of [`par_run_heads`](Self::par_run_heads)), and with
    /// [`KvSplit::Auto`] the keys of a sequence whose tasks are each more
    /// than a thread's share of the batch split into parts. With
    /// [`KvSplit::Off`] the result is bit-identical to `run_batch`.
    ///
    /// `Auto` in a batch: with `T = rayon::current_num_threads()`, `W` the
    /// batch's multiply-adds (`Σ heads · n_q · n_kv · (d + d_v)` over its
    /// sequences) and `w` those of one task of a sequence (its work over its
    /// task count), the sequence's keys are cut into `min(T, ⌈T·w / W⌉)`
    /// parts as [`KvSplit::Auto`] cuts them (no split for `T = 1`). A
    /// single long decode with fewer key/value heads than threads is split
    /// across all threads; a step with many sequences is not split at all.
    /// A split sequence differs from `run_batch` by rounding, as
    /// [`KvSplit`] describes.
    ///
    /// Errors: those of `run_batch`, and [`Error::Unsupported`] with
    /// `what = "split"` for [`KvSplit::At`] (split points belong to one
    /// cache); all returned before any work.
    ///
    /// ```
    /// use streamattn::{Attention, HeadsMut, HeadsRef, KvSplit, Mask, Scorer};
    /// # fn main() -> Result<(), streamattn::Error> {
    /// // Two decoding sequences, caches of 300 and 700 rows, 2 heads of 16.
    /// let (h, d) = (2, 16);
    /// let c0: Vec<f32> = (0..300 * h * d).map(|x| (x % 11) as f32 * 0.1).collect();
    /// let c1: Vec<f32> = (0..700 * h * d).map(|x| (x % 13) as f32 * 0.1).collect();
    /// let k = [HeadsRef::seq_major(&c0, h, 300, d)?, HeadsRef::seq_major(&c1, h, 700, d)?];
    /// let q = vec![0.2f32; 2 * h * d];
    /// let (mut a, mut b) = (vec![0.0f32; 2 * h * d], vec![0.0f32; 2 * h * d]);
    /// let attn = Attention::new(Scorer::dot()).mask(Mask::Causal { offset: 0 });
    /// let q_view = HeadsRef::seq_major(&q, h, 2, d)?;
    /// attn.run_batch(q_view, &[0, 1, 2], &k, &k, HeadsMut::seq_major(&mut a, h, 2, d)?, None)?;
    /// attn.par_run_batch(q_view, &[0, 1, 2], &k, &k, HeadsMut::seq_major(&mut b, h, 2, d)?, None, KvSplit::Off)?;
    /// assert_eq!(a, b);
    /// # Ok(())
    /// # }
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn par_run_batch<E: Element>(
        &self,
        q: HeadsRef<'_>,
        cu_seqlens: &[usize],
        k: &[HeadsRef<'_, E>],
        v: &[HeadsRef<'_, E>],
        mut out: HeadsMut<'_>,
        mut lse: Option<&mut [f32]>,
        split: KvSplit<'_>,
    ) -> Result<(), Error> {
        let batch = Batch { q, cu_seqlens, k, v, out: out.layout };
        let (seqs, total) = self.batch_plan(&batch, lse.as_deref(), split)?;
        if total < plan::MIN_WORK {
            for s in &seqs {
                if let Some((o, l)) = batch.outputs(&mut out, lse.as_deref_mut(), s.rows.clone()) {
                    self.kernel.compute(&s.problem, o.data, &o.layout, l);
                }
            }
            return Ok(());
        }
        let plans: Vec<exec::Plan<'_, '_, E>> = seqs
            .iter()
            .map(|s| exec::Plan {
                problem: &s.problem,
                units: s.units.clone(),
                parts: if s.points.is_empty() { Vec::new() } else { plan::parts(&s.problem, &s.points) },
            })
            .collect();
        exec::run_batch(self.kernel, &plans, |i, u, o, l| {
            let s = &seqs[i];
            // Every planned sequence has rows, so it has outputs.
            if let Some((o_s, l_s)) = batch.outputs(&mut out, lse.as_deref_mut(), s.rows.clone()) {
                scratch::copy_in(o_s.data, &o_s.layout, u, o);
                if let Some(l_s) = l_s {
                    scratch::copy_lse(l_s, s.problem.lse_stride, u, l);
                }
            }
        });
        Ok(())
    }

    /// The checks of [`par_run_batch`](Self::par_run_batch), then each
    /// sequence with new rows (its problem, packed rows, tasks and split
    /// points) and the batch's work.
    fn batch_plan<'a, E: Element>(
        &'a self,
        batch: &Batch<'a, '_, 'a, E>,
        lse: Option<&[f32]>,
        split: KvSplit<'_>,
    ) -> Result<(Vec<Sequence<'a, E>>, usize), Error> {
        self.check_batch(batch, lse)?;
        if let KvSplit::At(_) = split {
            return Err(Error::Unsupported { what: "split" });
        }
        let mut seqs = Vec::new();
        for s in 0..batch.k.len() {
            let (problem, rows) = self.sequence(batch, s)?;
            if !rows.is_empty() {
                let units = plan::units(&problem, self.kernel);
                seqs.push(Sequence { problem, rows, units, points: Vec::new() });
            }
        }
        let total = seqs.iter().fold(0usize, |w, s| w.saturating_add(plan::work(&s.problem)));
        if split == KvSplit::Auto {
            let threads = rayon::current_num_threads();
            for s in &mut seqs {
                s.points = plan::batch_points(&s.problem, s.units.len(), threads, total);
            }
        }
        Ok((seqs, total))
    }

    /// The split points of each sequence (in order, empty for one without
    /// new rows or not split) that [`par_run_batch`](Self::par_run_batch)
    /// would use with these arguments on the current pool. For tests and
    /// diagnostics.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn par_batch_split_points<E: Element>(
        &self,
        q: HeadsRef<'_>,
        cu_seqlens: &[usize],
        k: &[HeadsRef<'_, E>],
        v: &[HeadsRef<'_, E>],
        out: &HeadsMut<'_>,
        split: KvSplit<'_>,
    ) -> Result<Vec<Vec<usize>>, Error> {
        let batch = Batch { q, cu_seqlens, k, v, out: out.layout };
        let (seqs, _) = self.batch_plan(&batch, None, split)?;
        let mut points = vec![Vec::new(); k.len()];
        let mut it = seqs.into_iter();
        for s in 0..k.len() {
            if cu_seqlens[s + 1] > cu_seqlens[s] {
                points[s] = it.next().map(|x| x.points).unwrap_or_default();
            }
        }
        Ok(points)
    }

    /// Computes a validated problem on the pool, split at `points` (none:
    /// bit-identical to the single-thread kernel).
    fn par_compute<E: Element>(
        &self,
        problem: &Problem<'_, E>,
        points: &[usize],
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
    ) {
        if problem.q.rows() == 0 {
            return; // as run_heads: nothing to do
        }
        let units = plan::units(problem, self.kernel);
        if points.is_empty() {
            exec::run_units(self.kernel, problem, &units, out, lse);
        } else {
            exec::run_split(self.kernel, problem, &units, points, out, lse);
        }
    }

    /// The split points (inside `1..n_kv`, increasing) that
    /// [`par_run_heads_split`](Self::par_run_heads_split) would use with these
    /// arguments on the current pool; empty when it would not split. For
    /// tests and diagnostics.
    #[doc(hidden)]
    pub fn par_split_points<E: Element>(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_, E>,
        v: HeadsRef<'_, E>,
        out: &HeadsMut<'_>,
        split: KvSplit<'_>,
    ) -> Result<Vec<usize>, Error> {
        let problem = self.problem(q, k, v, &out.layout, None)?;
        plan::split_points(&problem, self.kernel, split)
    }
}
