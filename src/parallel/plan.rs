//! The tasks of a parallel call: which query heads and rows each task
//! computes, chosen so that each is computed by the single-thread kernel
//! exactly as inside the whole call, and the split points of split-KV.

use super::KvSplit;
// The tiled kernel takes its decode path when the query heads sharing a
// key/value head have at most `DECODE_ROWS` rows in all; a prefill task keeps
// more rows than that, so it takes the prefill path too.
use crate::arch::{BLOCK_ROWS, DECODE_ROWS, TILE_KEYS};
use crate::problem::Problem;
use crate::Element;
use crate::{Error, Kernel};
use core::ops::Range;
use std::vec::Vec;

/// Query rows per prefill task (the last task of a head may have up to 8
/// more, see [`units`]). The tiled kernel processes a head's rows in blocks
/// of 512 (or, for heads wider than its packed tile, of one micro-block of 4
/// or 6 rows), and a row's tiles and arithmetic depend on the block it is in:
/// a task must start on a block boundary of the single-thread call. Three
/// blocks, 1536 rows, are a multiple of 4 and 6 too, so every task of every
/// lane width starts on one.
const ROW_ALIGN: usize = 3 * BLOCK_ROWS;
const _: () = assert!(ROW_ALIGN.is_multiple_of(4) && ROW_ALIGN.is_multiple_of(6));
/// Query rows per task of the scalar path (its rows are independent).
const SCALAR_ROWS: usize = 64;
/// Below this many multiply-adds (`heads · n_q · key_len · (d + d_v)`) a call
/// runs on the calling thread.
pub(super) const MIN_WORK: usize = 1 << 16;
/// [`KvSplit::Auto`] gives each part at least this many multiply-adds per
/// query row (`keys · (d + d_v)`): 1024 keys at `d = d_v = 128`.
const MIN_PART_WORK: usize = 1 << 18;
/// [`KvSplit::Auto`] puts split points on multiples of this many keys (the
/// tiled kernel's tile width).
const PART_ALIGN: usize = TILE_KEYS;

/// One task of a call: query heads `heads` (all reading one key/value head)
/// and their query rows `rows`.
#[derive(Clone, Debug)]
pub(super) struct Unit {
    pub heads: Range<usize>,
    pub rows: Range<usize>,
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
pub(super) fn units<E: Element>(p: &Problem<'_, E>, kernel: Kernel) -> Vec<Unit> {
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
pub(super) fn split_points<E: Element>(
    p: &Problem<'_, E>,
    kernel: Kernel,
    split: KvSplit<'_>,
) -> Result<Vec<usize>, Error> {
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

/// The multiply-adds of a problem, `heads · n_q · key_len · (d + d_v)`
/// (saturating): what the parallel entries balance.
pub(super) fn work<E: Element>(p: &Problem<'_, E>) -> usize {
    (p.q.heads() * p.q.rows()).saturating_mul(p.key_len).saturating_mul(p.q.cols() + p.v.cols())
}

/// The [`KvSplit::Auto`] policy (documented there).
fn auto_points<E: Element>(p: &Problem<'_, E>, n_units: usize, threads: usize) -> Vec<usize> {
    if threads <= 1 || n_units.is_multiple_of(threads) || n_units >= 8 * threads {
        return Vec::new();
    }
    even_points(p, threads / gcd(n_units, threads))
}

/// The split points of one sequence of a batch with [`KvSplit::Auto`]
/// (documented at `par_run_batch`): its keys in as many parts as make each
/// of its `n_units` tasks at most a thread's share of the batch's `total`
/// work, at most `threads` parts.
pub(super) fn batch_points<E: Element>(
    p: &Problem<'_, E>,
    n_units: usize,
    threads: usize,
    total: usize,
) -> Vec<usize> {
    if threads <= 1 || n_units == 0 || total == 0 {
        return Vec::new();
    }
    let per_unit = (work(p) / n_units) as u128;
    let want = (per_unit * threads as u128).div_ceil(total as u128).min(threads as u128) as usize;
    even_points(p, want)
}

/// Points cutting the keys that some row sees into `want` parts of about
/// equal length, on multiples of [`PART_ALIGN`], fewer if a part would have
/// under [`MIN_PART_WORK`] multiply-adds per row.
fn even_points<E: Element>(p: &Problem<'_, E>, want: usize) -> Vec<usize> {
    let Range { start: lo, end: hi } = p.keys_seen(0..p.q.rows());
    if lo >= hi || want <= 1 {
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

/// The key ranges of the parts cut at `points` (increasing, inside
/// `1..n_kv`), clipped to the key length; parts past it are left out.
pub(super) fn parts<E: Element>(p: &Problem<'_, E>, points: &[usize]) -> Vec<Range<usize>> {
    let bounds: Vec<usize> = core::iter::once(0).chain(points.iter().copied()).chain([p.k.rows()]).collect();
    bounds.windows(2).map(|w| w[0]..w[1].min(p.key_len)).filter(|r| !r.is_empty()).collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
