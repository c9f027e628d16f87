//! The decode kernel: a few query rows against a long key range, in one
//! streaming pass over K and V.
//!
//! Decoding is memory-bound: each key and value is used by at most
//! [`ROWS`] query rows, so packing a key tile would cost more than the
//! arithmetic it feeds. Here every key row is read once, straight from the
//! caller's buffer, and scored against all rows of the pass while it is in
//! registers (SIMD along the head dimension, one horizontal sum per row and
//! key); the query heads that share a key/value head (grouped-query
//! attention) are rows of the same pass, so K and V are read once per group,
//! not once per query head. Each tile of scores then goes through the same
//! softmax and P·V steps as the prefill loop ([`super::update`]).
//!
//! Two further steps, each measured side by side with the kernel before it:
//!
//! - from three rows on, the dot products take blocks of [`key_block`] keys,
//!   so that each query vector loaded serves several keys: one key at a
//!   time, the loop was bound by loads (R + 1 loads for R multiply-adds); on
//!   cached data, blocking made four rows 1.3× faster. One and two rows keep
//!   the single-key loop (blocking them measured no faster with one row and
//!   5–10% slower with two);
//! - the pass asks L2 (module `prefetch`) for the tile's value rows during
//!   the dot products, and for keys as [`scheme`] says: with AVX-512, passes
//!   of 2 to 4 rows ask for the next tile's key rows during P·V (the columns
//!   that match the value columns being read), so that memory traffic runs
//!   through both halves of the pass; other passes ask for the key rows
//!   [`AHEAD`] ahead (8 KiB at d = 128) during the dot products; one row
//!   with AVX-512 asks for nothing. With more arithmetic per key the core
//!   falls behind the hardware prefetcher, and blocked loads, which
//!   interleave several key rows, are a pattern it follows badly.
//!
//! Measured from DRAM at decode-32k shapes (8 KV heads, K and V on 64-byte
//! boundaries), in one process alternating with the scheme before, paired
//! medians of 9 to 11 runs:
//!
//! - keys [`AHEAD`] ahead into L2, against 4 rows ahead into L1 from three
//!   rows on (the scheme of session 4): four rows (grouped-query, 32 query
//!   heads) 1.05–1.20× with AVX-512 and 1.14–1.86× with AVX2 on 4 KiB
//!   pages, 1.11–1.59× and 1.84–1.86× on 2 MiB pages; eight rows
//!   1.25–1.46× and two rows 1.17–1.41× with either; one row 0.97–1.34×
//!   with AVX2 and 1.33–1.41× with SSE2 (four rows 1.20–1.35×), but
//!   0.85–0.87× with AVX-512. On cached data (K and V in L2) it costs 0–3%.
//!   The distance matters little from 8 to 128 rows ahead; 4 rows ahead is
//!   5–20% short of it. With AVX2 the L1 scheme did nothing for key rows on
//!   64-byte boundaries (the same speed as values only) and gained only on
//!   rows that straddle cache lines, as in the benchmarks' earlier buffers
//!   (a `Vec`, 16 bytes into a line); a runtime's cache is aligned;
//! - the next tile's keys during P·V, against keys ahead: with AVX-512, two
//!   rows 1.19–1.24×, three 1.40–1.67×, four 1.14–1.28× (1.27–1.64× on
//!   2 MiB pages); six and eight rows 0.91–1.04×; one row 0.68–0.78×. With
//!   AVX2 it measured 0.94–1.22× (and lower still when it asked for whole
//!   key rows at every column block of P·V), so AVX2 keeps the keys ahead.
//!
//! Measured slower, and left out: the next tile's keys during P·V against
//! the L1 scheme on unaligned rows (0.8–0.92× at four rows, session 4);
//! values only, with the keys left to the hardware prefetcher (0.7–0.8×);
//! every other line; a software pipelined pass that interleaves the dot
//! products of tile t + 1 with P·V of tile t a few keys at a time, so that K
//! and V stream in lockstep (a pure read in that pattern reads 1.0–1.3×
//! faster than a tile of K then a tile of V, but the pass, with its output
//! rows in memory, ran at 0.5–0.9×); tiles of 64, 32 or 16 keys for the
//! decode pass (0.90–1.02×, 0.77–0.84×, 0.67–0.79× at four rows).
//!
//! The page size of K and V is the caller's, and it matters: on 2 MiB pages
//! (`madvise(MADV_HUGEPAGE)` on Linux) one-row decode read 1.03–1.31× faster
//! than on 4 KiB pages over six runs, and a plain read of the same buffers
//! 1.13–1.24×: each 4 KiB page is a TLB miss and a restart of the hardware
//! prefetcher, every 32 key rows at d = 128.

// Register blocks are indexed arrays: index loops are the clearest form.
#![allow(clippy::needless_range_loop)]

use super::{finish_row, needs_norms, seen, start_row, update, At, TK};
use crate::attention::Problem;
use crate::prefetch;
use crate::simd::Vector;
use crate::softmax::Running;
use crate::view::Layout;
use core::ops::Range;

/// Most rows in one pass.
pub(crate) const ROWS: usize = 8;

/// How many key rows ahead the passes that prefetch keys during the dot
/// products ask for (8 KiB at d = 128; module docs).
const AHEAD: usize = 16;

/// What a pass asks the caches for, besides the tile's value rows during the
/// dot products (module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prefetch {
    /// Nothing: the hardware prefetcher alone.
    None,
    /// The key rows [`AHEAD`] ahead, during the dot products.
    KeysAhead,
    /// The next tile's key rows, during P·V of this tile: the traffic is
    /// spread over both halves of the pass.
    NextKeys,
}

/// The prefetch of a pass of `rows` rows with `lanes`-wide vectors.
const fn scheme(lanes: usize, rows: usize) -> Prefetch {
    match (lanes, rows) {
        (16, 1) => Prefetch::None,
        (16, 2..=4) => Prefetch::NextKeys,
        _ => Prefetch::KeysAhead,
    }
}

/// Computes the rows `at` (at most [`ROWS`], all reading the same key/value
/// head).
pub(crate) fn rows<V: Vector>(
    p: &Problem<'_>,
    at: &[At],
    out: &mut [f32],
    ol: &Layout,
    lse: Option<&mut [f32]>,
) {
    macro_rules! by_count {
        ($($n:literal)*) => {
            match at.len() {
                $($n => pass::<V, $n>(p, at.try_into().unwrap(), out, ol, lse),)*
                _ => unreachable!("a decode pass has 1 to {} rows", ROWS),
            }
        };
    }
    by_count!(1 2 3 4 5 6 7 8)
}

/// Keys per block of the dot products with `rows` rows: `rows × block`
/// accumulators, `block` key vectors and, with norms, `block` more, within
/// the register file (32 vectors with AVX-512, 16 otherwise). One or two
/// rows stay at one key (module docs).
pub(crate) const fn key_block(lanes: usize, rows: usize) -> usize {
    match (lanes, rows) {
        (_, 0..=2) | (1, _) => 1,
        (16, 3 | 4) => 4,
        (16, _) => 2,
        (_, 3 | 4) => 2,
        _ => 1,
    }
}

/// `R` rows: a tile of scores, then its weights and values.
fn pass<V: Vector, const R: usize>(
    p: &Problem<'_>,
    at: [At; R],
    out: &mut [f32],
    ol: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let hk = at[0].h / p.group;
    let (k, v) = (p.k.head(hk), p.v.head(hk));
    let mut run = [Running::EMPTY; R];
    let mut q_norm = [0.0f32; R];
    let (mut lo, mut hi) = (usize::MAX, 0);
    for r in 0..R {
        (run[r], q_norm[r]) = start_row(p, at[r], out, ol);
        let keys = p.mask.key_range(at[r].i, p.key_len);
        if !keys.is_empty() {
            (lo, hi) = (lo.min(keys.start), hi.max(keys.end));
        }
    }
    let q = at.map(|a| p.q.head(a.h).row(a.i));
    let cached = p.norms.map(|n| n.head(hk));
    let norms = needs_norms(p.kind) && cached.is_none();
    let mut s = [[0.0f32; TK]; R];
    let mut kn = [0.0f32; TK];
    for t0 in (lo..hi).step_by(TK) {
        let nt = TK.min(p.key_len - t0);
        let seen = at.map(|a| seen(p, a.i, t0, nt));
        let first = seen.iter().filter(|r| !r.is_empty()).map(|r| r.start).min();
        let Some(first) = first else { continue };
        let last = seen.iter().map(|r| r.end).max().unwrap_or(0);
        // Into L2 (module docs): during the dot products, this tile's value
        // rows and with `KeysAhead` the key rows ahead; during P·V with
        // `NextKeys` the columns of the next tile's key rows that match the
        // value columns read. `scheme` is a constant.
        let scheme = scheme(V::LANES, R);
        let ahead = |j: usize| {
            if scheme == Prefetch::KeysAhead && t0 + j + AHEAD < p.key_len {
                prefetch::l2(k.row(t0 + j + AHEAD));
            }
            if scheme != Prefetch::None {
                prefetch::l2(v.row(t0 + j));
            }
        };
        let next = |j: usize, c: Range<usize>| {
            if scheme == Prefetch::NextKeys && t0 + TK + j < p.key_len {
                let row = k.row(t0 + TK + j);
                prefetch::l2(&row[c.start.min(row.len())..c.end.min(row.len())]);
            }
        };
        dots::<V, R>(&q, |j| k.row(t0 + j), first..last, &mut s, &mut kn, norms, ahead);
        super::cached_norms(p.kind, cached, t0 + first, &mut kn[first..last]);
        super::key_terms(p.kind, &mut kn[first..last]);
        // P·V holds as many output vectors per pass over the tile's values as
        // the registers allow (32 with AVX-512, 16 otherwise), next to one
        // vector of values per output vector (measured against accumulating
        // into the output rows in memory: +4% to +20% at decode-32k).
        let (s, kn, run) = (&mut s, &kn, &mut run[..]);
        match (V::LANES == 16, R) {
            (true, 1 | 2) | (false, 1) => {
                update::<V, R, 8>(p, at, seen, s, kn, t0, run, &q_norm, out, ol, next)
            }
            (true, 3 | 4) | (false, 2) => {
                update::<V, R, 4>(p, at, seen, s, kn, t0, run, &q_norm, out, ol, next)
            }
            (true, _) | (false, 3 | 4) => {
                update::<V, R, 2>(p, at, seen, s, kn, t0, run, &q_norm, out, ol, next)
            }
            (false, _) => update::<V, R, 1>(p, at, seen, s, kn, t0, run, &q_norm, out, ol, next),
        }
    }
    for r in 0..R {
        finish_row(p, at[r], &run[r], out, ol, lse.as_deref_mut());
    }
}

/// Dot products of the `R` rows with the keys `range` (tile coordinates)
/// into `s[r][j]`, and with `norms` the keys' squared norms into `kn[j]`:
/// blocks of [`key_block`] keys, then one at a time. Calls `ahead(j)` before
/// reading key `j`.
#[inline(always)]
fn dots<'k, V: Vector, const R: usize>(
    q: &[&[f32]; R],
    keys: impl Fn(usize) -> &'k [f32],
    range: Range<usize>,
    s: &mut [[f32; TK]; R],
    kn: &mut [f32; TK],
    norms: bool,
    ahead: impl Fn(usize),
) {
    let mut j = range.start;
    macro_rules! blocks {
        ($kb:literal, $n:literal) => {
            while range.end - j >= $kb {
                let mut k: [&[f32]; $kb] = [&[]; $kb];
                for b in 0..$kb {
                    ahead(j + b);
                    k[b] = keys(j + b);
                }
                let (dots, k_norms) = block::<V, R, $kb, $n>(q, k);
                for b in 0..$kb {
                    for r in 0..R {
                        s[r][j + b] = dots[r][b];
                    }
                    kn[j + b] = k_norms[b];
                }
                j += $kb;
            }
        };
    }
    macro_rules! all {
        ($n:literal) => {{
            match key_block(V::LANES, R) {
                4 => blocks!(4, $n),
                2 => blocks!(2, $n),
                _ => {}
            }
            blocks!(1, $n);
        }};
    }
    if norms {
        all!(true)
    } else {
        all!(false)
    }
}

/// `q_r · k_b` for every row and key of the block, and `‖k_b‖²` if `N`: each
/// key vector is loaded once, each query vector once per block.
#[inline(always)]
fn block<V: Vector, const R: usize, const KB: usize, const N: bool>(
    q: &[&[f32]; R],
    k: [&[f32]; KB],
) -> ([[f32; KB]; R], [f32; KB]) {
    let l = V::LANES;
    let d = k[0].len();
    let mut acc = [[V::splat(0.0); KB]; R];
    let mut nacc = [V::splat(0.0); KB];
    let mut kv = [V::splat(0.0); KB];
    // Index loops over the register block: array `map` does not inline
    // reliably here (measured: 2× slower).
    let mut c = 0;
    while c + l <= d {
        for b in 0..KB {
            kv[b] = V::load(&k[b][c..c + l]);
        }
        step::<V, R, KB, N>(&mut acc, &mut nacc, &kv, |r| V::load(&q[r][c..c + l]));
        c += l;
    }
    if c < d {
        for b in 0..KB {
            kv[b] = V::load_partial(&k[b][c..]);
        }
        step::<V, R, KB, N>(&mut acc, &mut nacc, &kv, |r| V::load_partial(&q[r][c..]));
    }
    let mut dots = [[0.0; KB]; R];
    let mut norms = [0.0; KB];
    for b in 0..KB {
        for r in 0..R {
            dots[r][b] = acc[r][b].reduce_add();
        }
        norms[b] = if N { nacc[b].reduce_add() } else { 0.0 };
    }
    (dots, norms)
}

/// One vector of columns: `acc[r][b] += q_r · k_b`, `nacc[b] += k_b · k_b`.
#[inline(always)]
fn step<V: Vector, const R: usize, const KB: usize, const N: bool>(
    acc: &mut [[V; KB]; R],
    nacc: &mut [V; KB],
    kv: &[V; KB],
    q: impl Fn(usize) -> V,
) {
    for r in 0..R {
        let qv = q(r);
        for b in 0..KB {
            acc[r][b] = qv.mul_add(kv[b], acc[r][b]);
        }
    }
    if N {
        for b in 0..KB {
            nacc[b] = kv[b].mul_add(kv[b], nacc[b]);
        }
    }
}
