//! The decode kernel: a few query rows against a long key range, in one
//! streaming pass over K and V.
//!
//! Decoding is memory-bound: each key and value is used by at most
//! [`DECODE_ROWS`] query rows, so packing a key tile would cost more than the
//! arithmetic it feeds. Here every key row is read once, straight from the
//! caller's buffer, and scored against all rows of the pass while it is in
//! registers (SIMD along the head dimension, one horizontal sum per row and
//! key); the query heads that share a key/value head (grouped-query
//! attention) are rows of the same pass, so K and V are read once per group,
//! not once per query head. Each tile of scores then goes through the same
//! softmax and P·V steps as the prefill loop ([`super::update`]).
//!
//! Two things keep the pass at the memory's speed (the per-level choices
//! are in the tuning table, `arch::tuning`):
//!
//! - from three rows on, the dot products take blocks of keys, so that each
//!   query vector loaded serves several keys; one key at a time the loop is
//!   bound by loads (R + 1 loads for R multiply-adds);
//! - the pass asks L2 for the tile's value rows during the dot products, and
//!   for key rows either [`KEYS_AHEAD`] ahead during the dot products or,
//!   for the next tile, during P·V, so that memory traffic runs through both
//!   halves of the pass. With more arithmetic per key the core falls behind
//!   the hardware prefetcher, and blocked loads, which interleave several
//!   key rows, are a pattern it follows badly.
//!
//! The schemes measured, and the ones left out, are in `benches/RESULTS.md`.

// Register blocks are indexed arrays: index loops are the clearest form.
#![allow(clippy::needless_range_loop)]

use super::centre::{self, centred, DECODE_COLS};
use super::pv::paired_cols;
use super::{finish_row, needs_norms, reads_cached_norms, start_row, update, At, Dest, Rows, Scores, TK};
use crate::arch::{
    natural_order, paired_order, prefetch_l2, Prefetch, Simd, Vector, DECODE_ROWS, KEYS_AHEAD,
};
use crate::problem::Problem;
use crate::scorer::sq_dist;
use crate::softmax::Running;
use crate::view::{Cursor, Layout};
use crate::Element;
use core::ops::Range;

/// Computes the rows `at` (1 to [`DECODE_ROWS`], all reading the same
/// key/value head).
pub(crate) fn rows<S: Simd, E: Element>(
    simd: S,
    p: &Problem<'_, E>,
    at: &[At],
    out: &mut [f32],
    ol: &Layout,
    lse: Option<&mut [f32]>,
) {
    macro_rules! by_count {
        ($($n:literal)*) => {
            match at.len() {
                $($n => simd.vectorize(#[inline(always)] || pass::<S, E, $n>(simd, p, at.try_into().unwrap(), out, ol, lse)),)*
                _ => unreachable!("a decode pass has 1 to {} rows", DECODE_ROWS),
            }
        };
    }
    by_count!(1 2 3 4 5 6 7 8);
}

/// `R` rows: their states, and for `NegSqDist` their centre (centre.rs,
/// at most [`DECODE_COLS`] columns) and offset rows; then [`stream`].
#[inline(always)]
fn pass<S: Simd, E: Element, const R: usize>(
    simd: S,
    p: &Problem<'_, E>,
    at: [At; R],
    out: &mut [f32],
    ol: &Layout,
    lse: Option<&mut [f32]>,
) {
    let mut run = [Running::EMPTY; R];
    let mut q_norm = [0.0f32; R];
    for r in 0..R {
        (run[r], q_norm[r]) = start_row(p, at[r], out, ol);
    }
    let q = at.map(|a| p.q.head(a.h).row(a.i));
    let mut state = State { run, q_norm };
    let d = p.q.cols();
    // `bf16` keys in pairs of vectors (`Simd::load_bf16_pair`): the rows and
    // the centre the keys meet are put in the same order.
    let paired = const { S::PAIRED_BF16 && E::BF16 } && d <= DECODE_COLS;
    let order = |x: &mut [f32]| {
        if paired {
            paired_order(x, S::LANES);
        }
    };
    // The rows the keys meet, and the centre they are offset by: one
    // `stream` for every case, so that its code exists once per `R`.
    let centred = centred(p.kind);
    let mut c = [0.0f32; DECODE_COLS];
    let mut qx = [[0.0f32; DECODE_COLS]; R];
    if centred && R == 1 {
        // One row is its own centre: its offset row stays 0, `‖q − c‖² = 0`,
        // and the pass measures `‖k − q‖²` directly.
        c[..d].copy_from_slice(q[0]);
        order(&mut c[..d]);
    } else if centred {
        centre::centre(|r| q[r], R, 0, &mut c[..d]);
        for r in 0..R {
            centre::offset(q[r], &c[..d], &mut qx[r]);
            state.q_norm[r] = sq_dist(q[r], &c[..d]);
            order(&mut qx[r][..d]);
        }
        order(&mut c[..d]);
    } else if paired {
        for r in 0..R {
            qx[r][..d].copy_from_slice(q[r]);
            order(&mut qx[r][..d]);
        }
    }
    let rows = if centred || paired { core::array::from_fn(|r| &qx[r][..d]) } else { q };
    let centre = if centred { Some(&c[..d]) } else { None };
    stream::<S, E, R>(simd, p, at, rows, centre, paired, state, out, ol, lse);
}

/// The streaming state of a pass's rows.
struct State<const R: usize> {
    run: [Running; R],
    q_norm: [f32; R],
}

/// The pass over the keys: rows `q` (offset by `centre` for `NegSqDist`),
/// each tile of scores, then its weights and values. If `paired`, `q` and
/// `centre` are in [`paired_order`], and the `bf16` keys and values are
/// read in pairs of vectors (`block`, `pv::pv`); the output rows are put
/// back in their natural order before they are finished.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn stream<S: Simd, E: Element, const R: usize>(
    simd: S,
    p: &Problem<'_, E>,
    at: [At; R],
    q: [&[f32]; R],
    centre: Option<&[f32]>,
    paired: bool,
    state: State<R>,
    out: &mut [f32],
    ol: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let State { mut run, q_norm } = state;
    let hk = at[0].h / p.group;
    let (k, v) = (p.k.head(hk), p.v.head(hk));
    let cached = p.norms.map(|n| n.head(hk));
    let norms = needs_norms(p.kind) && !(cached.is_some() && reads_cached_norms(p.kind));
    let mut s = [[0.0f32; TK]; R];
    let mut kn = [0.0f32; TK];
    // The prefetch distance is in bytes: twice the rows for 16-bit keys.
    let keys_ahead = KEYS_AHEAD * 4 / size_of::<E>();
    // The key rows prefetched, which run ahead of the rows read.
    let ahead = Cursor::new(k);
    for t0 in p.keys_seen(at.iter().map(|a| a.i)).step_by(TK) {
        let nt = TK.min(p.key_len - t0);
        let seen = at.map(|a| p.seen_in_tile(a.i, t0, nt));
        let first = seen.iter().filter(|r| !r.is_empty()).map(|r| r.start).min();
        let Some(first) = first else { continue };
        let last = seen.iter().map(|r| r.end).max().unwrap_or(0);
        // Into L2 (module docs): during the dot products, this tile's value
        // rows and with `KeysAhead` the key rows ahead; during P·V with
        // `NextKeys` the columns of the next tile's key rows that match the
        // value columns read. `scheme` is a constant.
        let scheme = S::TUNING.decode[R].prefetch;
        // The keys a stretch at a time: rows at one stride in K and in V
        // (all of the tile's for contiguous caches, a block's for paged ones).
        let mut j0 = first;
        while j0 < last {
            let (nk, kr) = k.stretch(t0 + j0);
            let (nv, vr) = v.stretch(t0 + j0);
            let end = last.min(j0 + nk.min(nv));
            dots::<S, E, R>(
                simd,
                &q,
                #[inline(always)]
                |j| kr.row(j - j0),
                j0..end,
                &mut s,
                &mut kn,
                norms,
                centre,
                paired,
                #[inline(always)]
                |j| {
                    if scheme == Prefetch::KeysAhead && t0 + j + keys_ahead < p.key_len {
                        prefetch_l2(ahead.row(t0 + j + keys_ahead));
                    }
                    if scheme != Prefetch::None {
                        prefetch_l2(vr.row(j - j0));
                    }
                },
            );
            j0 = end;
        }
        super::cached_norms(p.kind, cached, t0 + first, &mut kn[first..last]);
        // P·V holds as many output vectors per pass over the tile's values as
        // the registers allow, next to one vector of values per output vector.
        let rows = Rows { at, seen, run: &mut run[..], q_norm: &q_norm };
        let scores = Scores { t0, s: &mut s, kn: &kn };
        let dest = &mut Dest { data: &mut *out, layout: ol, paired };
        // The closure is written at each call so that it is inlined: out of
        // line, its call in the P·V loop would spill the accumulators.
        macro_rules! update {
            ($nc:literal) => {
                update::<S, E, R, $nc>(
                    simd,
                    p,
                    rows,
                    scores,
                    dest,
                    #[inline(always)]
                    |j, c| {
                        if scheme == Prefetch::NextKeys && t0 + TK + j < p.key_len {
                            let row = ahead.row(t0 + TK + j);
                            prefetch_l2(&row[c.start.min(row.len())..c.end.min(row.len())]);
                        }
                    },
                )
            };
        }
        match const { S::TUNING.decode[R].out_vectors } {
            8 => update!(8),
            4 => update!(4),
            2 => update!(2),
            _ => update!(1),
        }
    }
    let d_v = p.v.cols();
    let n = paired_cols::<S, E>(d_v, S::TUNING.decode[R].out_vectors);
    if paired && n > 0 {
        for a in at {
            let o = ol.offset(a.h, a.i);
            natural_order(&mut out[o..o + d_v], n, S::LANES);
        }
    }
    for r in 0..R {
        finish_row(p, at[r], run[r], out, ol, lse.as_deref_mut());
    }
}

/// Dot products of the `R` rows with the keys `range` (tile coordinates)
/// into `s[r][j]`, and with `norms` the keys' squared norms into `kn[j]`:
/// blocks of `key_block` keys (the tuning of the pass), then one at a time. With a `centre`, the
/// keys are offset by it first (`q` is then offset too, and `norms` is
/// set). Calls `ahead(j)` before reading key `j`. If `paired`, the `bf16`
/// keys are read in pairs of vectors, `q` and `centre` being in
/// [`paired_order`].
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dots<'k, S: Simd, E: Element, const R: usize>(
    simd: S,
    q: &[&[f32]; R],
    keys: impl Fn(usize) -> &'k [E],
    range: Range<usize>,
    s: &mut [[f32; TK]; R],
    kn: &mut [f32; TK],
    norms: bool,
    centre: Option<&[f32]>,
    paired: bool,
    ahead: impl Fn(usize),
) {
    let mut j = range.start;
    let c = centre.unwrap_or(&[]);
    macro_rules! blocks {
        ($kb:literal, $n:literal, $c:literal) => {
            while range.end - j >= $kb {
                let mut k: [&[E]; $kb] = [&[]; $kb];
                for b in 0..$kb {
                    ahead(j + b);
                    k[b] = keys(j + b);
                }
                let (dots, k_norms) = block::<S, E, R, $kb, $n, $c>(simd, q, k, c, paired);
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
        ($n:literal, $c:literal) => {{
            match const { S::TUNING.decode[R].key_block } {
                4 => blocks!(4, $n, $c),
                2 => blocks!(2, $n, $c),
                _ => {}
            }
            blocks!(1, $n, $c);
        }};
    }
    match (norms, centre.is_some()) {
        (_, true) => all!(true, true),
        (true, false) => all!(true, false),
        (false, false) => all!(false, false),
    }
}

/// `q_r · k_b` for every row and key of the block, and `‖k_b‖²` if `N`: each
/// key vector is loaded once, each query vector once per block. If `C`, the
/// keys are `k_b − centre`. If `paired`, the full chunks of `2 · LANES`
/// columns are read with [`Simd::load_pair_e`] (`q` and `centre` in
/// [`paired_order`]).
#[inline(always)]
fn block<S: Simd, E: Element, const R: usize, const KB: usize, const N: bool, const C: bool>(
    simd: S,
    q: &[&[f32]; R],
    k: [&[E]; KB],
    centre: &[f32],
    paired: bool,
) -> ([[f32; KB]; R], [f32; KB]) {
    let l = S::LANES;
    let d = k[0].len();
    let mut acc = [[simd.splat(0.0); KB]; R];
    let mut nacc = [simd.splat(0.0); KB];
    let mut kv = [simd.splat(0.0); KB];
    // Index loops over the register block: array `map` does not inline
    // reliably here (measured: 2× slower).
    let mut c = 0;
    let pairs = if paired { d / (2 * l) * (2 * l) } else { 0 };
    while c < pairs {
        let mut kw = [simd.splat(0.0); KB];
        for b in 0..KB {
            (kv[b], kw[b]) = simd.load_pair_e(&k[b][c..c + 2 * l]);
        }
        // The even columns of the chunk (`kv`), then the odd ones (`kw`).
        macro_rules! half {
            ($kv:expr, $c:expr) => {{
                let c = $c;
                if C {
                    let cv = simd.load(&centre[c..c + l]);
                    for b in 0..KB {
                        $kv[b] = $kv[b] - cv;
                    }
                }
                step::<S::V, R, KB, N>(
                    &mut acc,
                    &mut nacc,
                    &$kv,
                    #[inline(always)]
                    |r| simd.load(&q[r][c..c + l]),
                );
            }};
        }
        half!(kv, c);
        half!(kw, c + l);
        c += 2 * l;
    }
    while c + l <= d {
        let cv = if C { simd.load(&centre[c..c + l]) } else { simd.splat(0.0) };
        for b in 0..KB {
            kv[b] = simd.load_e(&k[b][c..c + l]);
            if C {
                kv[b] = kv[b] - cv;
            }
        }
        step::<S::V, R, KB, N>(
            &mut acc,
            &mut nacc,
            &kv,
            #[inline(always)]
            |r| simd.load(&q[r][c..c + l]),
        );
        c += l;
    }
    if c < d {
        let cv = if C { simd.load_partial(&centre[c..]) } else { simd.splat(0.0) };
        for b in 0..KB {
            kv[b] = simd.load_partial_e(&k[b][c..]);
            if C {
                kv[b] = kv[b] - cv;
            }
        }
        step::<S::V, R, KB, N>(
            &mut acc,
            &mut nacc,
            &kv,
            #[inline(always)]
            |r| simd.load_partial(&q[r][c..]),
        );
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
