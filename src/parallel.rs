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
//! - **scalar path** ([`Kernel::Scalar`]): one task per head and 64 rows.
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
//! a decode threshold other than 8 do change the result (tried while writing
//! the tests).
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
//! by memory bandwidth, which cores share: on the development machine two
//! threads read K and V only 1.2–1.5× as fast as one, and the parallel decode
//! scales by as much (README, Performance).
//!
//! # Errors and allocation
//!
//! Every entry validates its arguments exactly as the single-thread entry
//! does, before any work, and returns the same [`Error`] for bad input. The
//! entries allocate (task lists, scratch for outputs whose heads interleave
//! in memory, partial results of split-KV); the kernels they run do not.
//! Calls with little work (under `2^16` multiply-adds,
//! `heads · n_q · key_len · (d + d_v)`) run on the calling thread.

use crate::attention::Problem;
use crate::softmax::merge_row;
use crate::view::Layout;
use crate::{tile, Attention, Bias, Error, HeadsMut, HeadsRef, Kernel, Mask, MatMut, MatRef};
// The tiled kernel takes its decode path when the query heads sharing a
// key/value head have at most `DECODE_ROWS` rows in all; a prefill task keeps
// more rows than that, so it takes the prefill path too.
use crate::tile::DECODE_ROWS;
use core::ops::Range;
use rayon::prelude::*;
use std::vec;
use std::vec::Vec;

/// Query rows per prefill task (the last task of a head may have up to 8
/// more, see [`units`]). The tiled kernel processes a head's rows in blocks
/// of 512 (or, for heads wider than its packed tile, of one micro-block of 4
/// or 6 rows), and a row's tiles and arithmetic depend on the block it is in:
/// a task must start on a block boundary of the single-thread call. Three
/// blocks, 1536 rows, are a multiple of 4 and 6 too, so every task of every
/// lane width starts on one.
const ROW_ALIGN: usize = 3 * tile::QB;
const _: () = assert!(ROW_ALIGN.is_multiple_of(4) && ROW_ALIGN.is_multiple_of(6));
/// Query rows per task of the scalar path (its rows are independent).
const SCALAR_ROWS: usize = 64;
/// Below this many multiply-adds (`heads · n_q · key_len · (d + d_v)`) a call
/// runs on the calling thread.
const MIN_WORK: usize = 1 << 16;
/// [`KvSplit::Auto`] gives each part at least this many multiply-adds per
/// query row (`keys · (d + d_v)`): 1024 keys at `d = d_v = 128`.
const MIN_PART_WORK: usize = 1 << 18;
/// [`KvSplit::Auto`] puts split points on multiples of this many keys (the
/// tiled kernel's tile width).
const PART_ALIGN: usize = tile::TK;

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
/// ```
/// use streamattn::KvSplit;
/// let split = KvSplit::At(&[8192, 16384, 24576]); // four parts of a 32k cache
/// assert_ne!(split, KvSplit::Off);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
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
    pub fn par_run(&self, q: MatRef<'_>, k: MatRef<'_>, v: MatRef<'_>, out: MatMut<'_>) -> Result<(), Error> {
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
    pub fn par_run_lse(
        &self,
        q: MatRef<'_>,
        k: MatRef<'_>,
        v: MatRef<'_>,
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
    pub fn par_run_heads(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_>,
        v: HeadsRef<'_>,
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
    pub fn par_run_heads_split(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_>,
        v: HeadsRef<'_>,
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
        split: KvSplit<'_>,
    ) -> Result<(), Error> {
        let problem = self.problem(q, k, v, &out.layout, lse.as_deref())?;
        let points = split_points(&problem, self.kernel, split)?;
        if problem.q.rows() == 0 {
            return Ok(()); // as run_heads: nothing to do
        }
        let units = units(&problem, self.kernel);
        if points.is_empty() {
            run_units(self.kernel, &problem, &units, out, lse);
        } else {
            run_split(self.kernel, &problem, &units, &points, out, lse);
        }
        Ok(())
    }

    /// The split points (inside `1..n_kv`, increasing) that
    /// [`par_run_heads_split`](Self::par_run_heads_split) would use with these
    /// arguments on the current pool; empty when it would not split. For
    /// tests and diagnostics.
    #[doc(hidden)]
    pub fn par_split_points(
        &self,
        q: HeadsRef<'_>,
        k: HeadsRef<'_>,
        v: HeadsRef<'_>,
        out: &HeadsMut<'_>,
        split: KvSplit<'_>,
    ) -> Result<Vec<usize>, Error> {
        let problem = self.problem(q, k, v, &out.layout, None)?;
        split_points(&problem, self.kernel, split)
    }
}

/// One task of a call: query heads `heads` (all reading one key/value head)
/// and their query rows `rows`.
#[derive(Clone, Debug)]
struct Unit {
    heads: Range<usize>,
    rows: Range<usize>,
}

/// The independent tasks of a call, each of which the single-thread kernel
/// computes exactly as it would inside the whole call (module docs):
///
/// - scalar path: rows are independent; one task per head and block of
///   [`SCALAR_ROWS`] rows;
/// - tiled kernel, more than [`DECODE_ROWS`] rows: one task per query head
///   and block of [`ROW_ALIGN`] rows (a last block of at most `DECODE_ROWS`
///   rows joins the one before), which takes the prefill path as the whole
///   call does, on the same 512-row blocks;
/// - tiled kernel, at most `DECODE_ROWS` rows: one task per key/value head
///   with all its query heads, so the task has the call's `group · n_q` and
///   takes the same path (one decode pass, or per-head prefill).
fn units(p: &Problem<'_>, kernel: Kernel) -> Vec<Unit> {
    let (n_heads, n_q, g) = (p.q.heads(), p.q.rows(), p.group);
    let chunk = match kernel {
        Kernel::Scalar => SCALAR_ROWS,
        _ if n_q > DECODE_ROWS => ROW_ALIGN,
        _ => return (0..n_heads / g).map(|hk| Unit { heads: hk * g..(hk + 1) * g, rows: 0..n_q }).collect(),
    };
    let mut units = Vec::new();
    for h in 0..n_heads {
        let mut r0 = 0;
        while r0 < n_q {
            let mut r1 = n_q.min(r0 + chunk);
            if n_q - r1 <= DECODE_ROWS {
                r1 = n_q;
            }
            units.push(Unit { heads: h..h + 1, rows: r0..r1 });
            r0 = r1;
        }
    }
    units
}

/// The interior split points of a call (increasing, inside `1..n_kv`):
/// checks and normalises [`KvSplit::At`], computes [`KvSplit::Auto`].
fn split_points(p: &Problem<'_>, kernel: Kernel, split: KvSplit<'_>) -> Result<Vec<usize>, Error> {
    let n_kv = p.k.rows();
    match split {
        KvSplit::Off => Ok(Vec::new()),
        KvSplit::At(at) => {
            if let Some(&bad) = at.iter().find(|&&t| t > n_kv) {
                return Err(Error::OutOfRange { what: "split", value: bad, max: n_kv });
            }
            let mut points: Vec<usize> = at.iter().copied().filter(|&t| 0 < t && t < n_kv).collect();
            points.sort_unstable();
            points.dedup();
            Ok(points)
        }
        KvSplit::Auto => {
            if p.q.rows() == 0 {
                return Ok(Vec::new());
            }
            Ok(auto_points(p, units(p, kernel).len(), rayon::current_num_threads()))
        }
    }
}

/// The [`KvSplit::Auto`] policy (documented there).
fn auto_points(p: &Problem<'_>, n_units: usize, threads: usize) -> Vec<usize> {
    if threads <= 1 || n_units.is_multiple_of(threads) || n_units >= 8 * threads {
        return Vec::new();
    }
    let want = threads / gcd(n_units, threads);
    // The keys some row sees.
    let (mut lo, mut hi) = (usize::MAX, 0);
    for i in 0..p.q.rows() {
        let keys = p.mask.key_range(i, p.key_len);
        if !keys.is_empty() {
            (lo, hi) = (lo.min(keys.start), hi.max(keys.end));
        }
    }
    if lo >= hi {
        return Vec::new();
    }
    let len = hi - lo;
    let per_key = p.q.cols() + p.v.cols();
    let parts = want.min(len.saturating_mul(per_key) / MIN_PART_WORK);
    let mut points: Vec<usize> = (1..parts)
        .map(|k| lo + ((len as u128 * k as u128 / parts as u128) as usize) / PART_ALIGN * PART_ALIGN)
        .filter(|&t| t > lo)
        .collect();
    points.dedup();
    points
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Heads `heads`, rows `rows` of a validated view (same strides, data from
/// the first element of the selection).
fn sub_view<'a>(x: HeadsRef<'a>, heads: Range<usize>, rows: Range<usize>) -> HeadsRef<'a> {
    let l = x.layout;
    let data = if heads.is_empty() || rows.is_empty() {
        &x.data[..0]
    } else {
        // In bounds: the view was checked with at least this many heads and rows.
        &x.data[l.offset(heads.start, rows.start)..]
    };
    HeadsRef { data, layout: Layout { heads: heads.len(), rows: rows.len(), ..l } }
}

/// Heads from `h0`, rows `rows` and columns `cols` of a validated bias.
fn sub_bias<'a>(b: Bias<'a>, h0: usize, rows: Range<usize>, cols: Range<usize>) -> Bias<'a> {
    let data = if rows.is_empty() || cols.is_empty() {
        &b.data[..0]
    } else {
        &b.data[h0 * b.head_stride + rows.start * b.row_stride + cols.start..]
    };
    Bias { data, rows: rows.len(), cols: cols.len(), ..b }
}

/// The mask seen from query row `r0` on: row `i` of the result is row
/// `r0 + i`, at the same position among the keys.
fn shift_rows(mask: Mask, r0: usize) -> Mask {
    // No saturation in practice: offset ≤ n_kv and r0 < n_q, both below
    // isize::MAX / 4 (lengths of f32 slices).
    match mask {
        Mask::None => Mask::None,
        Mask::Causal { offset } => Mask::Causal { offset: offset.saturating_add(r0) },
        Mask::Window { offset, left, right } => {
            Mask::Window { offset: offset.saturating_add(r0), left, right }
        }
    }
}

/// The sub-problem of a task: its query heads and rows, its key/value head
/// (and its cached key norms), the mask shifted to its first row, the
/// matching bias rows.
fn unit_problem<'a>(p: &Problem<'a>, u: &Unit) -> Problem<'a> {
    let hk = u.heads.start / p.group;
    Problem {
        q: sub_view(p.q, u.heads.clone(), u.rows.clone()),
        k: sub_view(p.k, hk..hk + 1, 0..p.k.rows()),
        v: sub_view(p.v, hk..hk + 1, 0..p.v.rows()),
        mask: shift_rows(p.mask, u.rows.start),
        bias: p.bias.map(|b| sub_bias(b, u.heads.start, u.rows.clone(), 0..b.cols)),
        norms: p.norms.map(|n| sub_view(n, hk..hk + 1, 0..n.rows())),
        group: u.heads.len(),
        ..*p
    }
}

/// Dense `[heads][rows][d_v]` scratch layout.
fn dense(heads: usize, rows: usize, d_v: usize) -> Layout {
    Layout { heads, rows, cols: d_v, head_stride: rows * d_v, row_stride: d_v }
}

/// The memory each task's output rows span, if these spans are pairwise
/// disjoint (heads-major outputs), so that each task can get its own slice.
fn disjoint_spans(ol: &Layout, units: &[Unit]) -> Option<Vec<Range<usize>>> {
    let spans: Vec<Range<usize>> = units
        .iter()
        .map(|u| ol.offset(u.heads.start, u.rows.start)..ol.offset(u.heads.end - 1, u.rows.end - 1) + ol.cols)
        .collect();
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&t| spans[t].start);
    order.windows(2).all(|w| spans[w[0]].end <= spans[w[1]].start).then_some(spans)
}

/// Cuts `data` into the given pairwise disjoint spans, returned in the order given.
fn carve<'o>(data: &'o mut [f32], spans: &[Range<usize>]) -> Vec<&'o mut [f32]> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&t| spans[t].start);
    let mut slices: Vec<&'o mut [f32]> = (0..spans.len()).map(|_| Default::default()).collect();
    let (mut rest, mut at) = (data, 0);
    for t in order {
        let (_, tail) = rest.split_at_mut(spans[t].start - at);
        let (mine, tail) = tail.split_at_mut(spans[t].len());
        slices[t] = mine;
        (rest, at) = (tail, spans[t].end);
    }
    slices
}

/// Copies a task's dense `[heads][rows][d_v]` result into the output.
fn copy_in(data: &mut [f32], ol: &Layout, u: &Unit, src: &[f32]) {
    let d_v = ol.cols;
    let mut rows = src.chunks_exact(d_v);
    for h in u.heads.clone() {
        for (i, row) in u.rows.clone().zip(&mut rows) {
            let o = ol.offset(h, i);
            data[o..o + d_v].copy_from_slice(row);
        }
    }
}

/// Copies a task's `[heads][rows]` log-sum-exps to `lse[h * n_q + i]`.
fn copy_lse(lse: &mut [f32], n_q: usize, u: &Unit, src: &[f32]) {
    let nr = u.rows.len();
    for (h, l) in u.heads.clone().zip(src.chunks_exact(nr)) {
        lse[h * n_q + u.rows.start..][..nr].copy_from_slice(l);
    }
}

/// Computes every task of an unsplit call. Each task is computed by the
/// single-thread kernel exactly as inside the whole call ([`units`]), so the
/// result is bit-identical. Outputs whose tasks span disjoint memory are
/// written in place, others through scratch.
fn run_units(kernel: Kernel, p: &Problem<'_>, units: &[Unit], out: HeadsMut<'_>, lse: Option<&mut [f32]>) {
    let work = (p.q.heads() * p.q.rows()).saturating_mul(p.key_len).saturating_mul(p.q.cols() + p.v.cols());
    if units.len() <= 1 || work < MIN_WORK {
        return kernel.compute(p, out.data, &out.layout, lse);
    }
    let (ol, d_v) = (out.layout, p.v.cols());
    let want_lse = lse.is_some();
    let mut lses: Vec<Vec<f32>> =
        units.iter().map(|u| vec![0.0; if want_lse { u.heads.len() * u.rows.len() } else { 0 }]).collect();
    let task = |u: &Unit, o: &mut [f32], layout: &Layout, l: &mut Vec<f32>| {
        kernel.compute(&unit_problem(p, u), o, layout, want_lse.then_some(&mut l[..]));
    };
    match disjoint_spans(&ol, units) {
        Some(spans) => {
            let slices = carve(out.data, &spans);
            units.par_iter().zip(slices).zip(&mut lses).with_max_len(1).for_each(|((u, o), l)| {
                task(u, o, &Layout { heads: u.heads.len(), rows: u.rows.len(), ..ol }, l);
            });
        }
        None => {
            let mut scratch: Vec<Vec<f32>> =
                units.iter().map(|u| vec![0.0; u.heads.len() * u.rows.len() * d_v]).collect();
            units.par_iter().zip(&mut scratch).zip(&mut lses).with_max_len(1).for_each(|((u, o), l)| {
                task(u, o, &dense(u.heads.len(), u.rows.len(), d_v), l);
            });
            for (u, o) in units.iter().zip(&scratch) {
                copy_in(out.data, &ol, u, o);
            }
        }
    }
    if let Some(lse) = lse {
        for (u, l) in units.iter().zip(&lses) {
            copy_lse(lse, p.q.rows(), u, l);
        }
    }
}

/// The query rows of `rows` that see keys at or after key `a`, in at most
/// two groups, each with the mask that gives its rows' keys in the
/// coordinates of a part starting at key `a` (row 0 of the mask = the
/// group's first row). Rows in neither group see no key of the part.
///
/// Row `i` is at position `pos = i + offset` among the keys.
/// - `None`: every row, no mask.
/// - `Causal`: rows with `pos ≥ a`, `Causal { offset: pos_first − a }`; the
///   others see only keys `≤ pos < a`.
/// - `Window`: rows with `pos ≥ a` as `Window { offset: pos_first − a, .. }`;
///   rows with `pos < a ≤ pos + right` see keys `a..=pos + right` (their
///   window starts before `a`): `Causal { offset: pos_first + right − a }`;
///   rows with `pos + right < a` see none.
fn part_groups(mask: Mask, rows: Range<usize>, a: usize) -> [(Range<usize>, Mask); 2] {
    let at = |i: usize| i.clamp(rows.start, rows.end);
    let none = (rows.end..rows.end, Mask::None);
    match mask {
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

/// One part of one task of a split call, computed into dense
/// `[heads][rows][d_v]` scratch with its `[heads][rows]` log-sum-exps
/// (rows that see no key of the part keep 0 and `−∞`).
fn compute_part(
    kernel: Kernel,
    p: &Problem<'_>,
    u: &Unit,
    keys: Range<usize>,
    out: &mut [f32],
    lse: &mut [f32],
) {
    let (nh, nr, d_v) = (u.heads.len(), u.rows.len(), p.v.cols());
    let hk = u.heads.start / p.group;
    for (rows, mask) in part_groups(p.mask, u.rows.clone(), keys.start) {
        if rows.is_empty() {
            continue;
        }
        let sp = Problem {
            q: sub_view(p.q, u.heads.clone(), rows.clone()),
            k: sub_view(p.k, hk..hk + 1, keys.clone()),
            v: sub_view(p.v, hk..hk + 1, keys.clone()),
            mask,
            key_len: keys.len(),
            bias: p.bias.map(|b| sub_bias(b, u.heads.start, rows.clone(), keys.clone())),
            norms: p.norms.map(|n| sub_view(n, hk..hk + 1, keys.clone())),
            group: nh,
            ..*p
        };
        let (r0, ng) = (rows.start - u.rows.start, rows.len());
        let layout = Layout { heads: nh, rows: ng, cols: d_v, head_stride: nr * d_v, row_stride: d_v };
        let mut group_lse = vec![0.0; nh * ng];
        kernel.compute(&sp, &mut out[r0 * d_v..], &layout, Some(&mut group_lse));
        for (h, l) in group_lse.chunks_exact(ng).enumerate() {
            lse[h * nr + r0..][..ng].copy_from_slice(l);
        }
    }
}

/// A split call: every (task, part) pair computed in parallel, then each
/// task's parts merged in key order ([`merge_row`]) and copied in.
fn run_split(
    kernel: Kernel,
    p: &Problem<'_>,
    units: &[Unit],
    points: &[usize],
    out: HeadsMut<'_>,
    mut lse: Option<&mut [f32]>,
) {
    let (ol, d_v) = (out.layout, p.v.cols());
    let bounds: Vec<usize> = core::iter::once(0).chain(points.iter().copied()).chain([p.k.rows()]).collect();
    // Each part clipped to the key length; parts past it are empty.
    let parts: Vec<Range<usize>> =
        bounds.windows(2).map(|w| w[0]..w[1].min(p.key_len)).filter(|r| !r.is_empty()).collect();
    /// Task `unit` on keys `keys`: `[heads][rows][d_v]` output, `[heads][rows]` lse.
    struct Partial {
        unit: usize,
        keys: Range<usize>,
        out: Vec<f32>,
        lse: Vec<f32>,
    }
    let mut partials: Vec<Partial> = Vec::new();
    for (unit, u) in units.iter().enumerate() {
        let n = u.heads.len() * u.rows.len();
        for keys in &parts {
            let (out, lse) = (vec![0.0; n * d_v], vec![f32::NEG_INFINITY; n]);
            partials.push(Partial { unit, keys: keys.clone(), out, lse });
        }
    }
    partials.par_iter_mut().with_max_len(1).for_each(|x| {
        compute_part(kernel, p, &units[x.unit], x.keys.clone(), &mut x.out, &mut x.lse);
    });
    let mut partials = partials.into_iter().peekable();
    for (t, u) in units.iter().enumerate() {
        let n = u.heads.len() * u.rows.len();
        let (mut acc, mut acc_lse) = (vec![0.0f32; n * d_v], vec![f32::NEG_INFINITY; n]);
        while let Some(Partial { out: o, lse: l, .. }) = partials.next_if(|x| x.unit == t) {
            for (r, &lr) in l.iter().enumerate() {
                // Merging a part the row does not see (−∞) changes nothing.
                if lr != f32::NEG_INFINITY {
                    merge_row(&mut acc[r * d_v..][..d_v], &mut acc_lse[r], &o[r * d_v..][..d_v], lr);
                }
            }
        }
        copy_in(out.data, &ol, u, &acc);
        if let Some(lse) = lse.as_deref_mut() {
            copy_lse(lse, p.q.rows(), u, &acc_lse);
        }
    }
}
