//! The tiled streaming kernel, shared by every scorer.
//!
//! ```text
//! for each block of up to QB query rows:
//!     zero the block's output rows; m = −∞, l = 0 per row
//!     for each tile of TK keys that some row of the block sees:
//!         pack the tile's keys transposed (kt[c][j]) and their norms     pack.rs
//!             (norms copied instead when the call has cached ones)
//!         for each micro-block of MR rows that sees the tile:
//!             s = q · kt            register block MR × NR vectors      score.rs
//!             p = weights(s), update m, l, get α per row                 weights.rs
//!             out = α·out + p · v   register block MR × NC vectors      pv.rs
//!     out /= l, lse = m + ln l
//! ```
//!
//! `Additive` runs the same loop with the additive score microkernel
//! (`tanh(a + b)` in place of `q·k`), and the decode pass below is not used
//! for it: its `h` tangents per pair make even one query row compute-bound.
//!
//! The key index is the SIMD dimension of the score microkernel (a packed
//! tile is reused by every row of the block), the head dimension that of
//! P·V. Masked work is skipped: tiles no row of the block sees are never
//! packed, micro-blocks that do not see a tile are passed over, and inside a
//! tile each row's weights and values cover only its own keys. Rows left over
//! after the last full micro-block run the same microkernels with one row.
//!
//! When the query heads that share a key/value head have at most 8 rows in
//! all (decoding), packing would cost more than it saves: those rows run
//! instead as one streaming pass over K and V (decode.rs), with the same
//! weights and softmax steps.
//!
//! Scratch is on the stack and bounded, whatever the shape: the packed tile
//! (`KT_CAP` floats: 64 KiB with SIMD, 16 KiB without), one micro-block of
//! scores (`MR × TK` floats, at most 3 KiB; 4 KiB for a decode pass), and
//! `QB` row states and norms (6 KiB); about 75 KiB in all. Tiles are
//! `TK = 128` keys wide for heads of up to `KT_CAP / 128` columns (128 with
//! SIMD) and 64 keys up to twice that; a wider head is packed in column
//! chunks, and then a block is a single micro-block (its scores accumulate
//! over the chunks).

mod decode;
mod pack;
mod pv;
mod score;
mod weights;

use crate::attention::Problem;
use crate::scorer::{dot, sq_dist, Kind};
use crate::simd::Vector;
use crate::softmax::Running;
use crate::view::Layout;
use crate::MatRef;
use core::ops::Range;
use pv::Out;
use weights::Row;

/// Keys per tile at most: 128 for heads of up to `KT_CAP / 128` columns, 64
/// above (measured: 128 keys amortise the per-row work of a tile over twice
/// the multiply-adds, +11% at d = 64 against 64 keys).
pub(crate) const TK: usize = 128;
/// Floats of packed keys: `d × tk` for `d ≤ KT_CAP / tk`.
#[cfg(any(target_feature = "sse2", target_feature = "neon", target_feature = "simd128"))]
const KT_CAP: usize = 16384;
#[cfg(not(any(target_feature = "sse2", target_feature = "neon", target_feature = "simd128")))]
const KT_CAP: usize = 4096;
/// Query rows per block: each packed tile serves this many rows.
pub(crate) const QB: usize = 512;
/// The decode path takes the query heads that share a key/value head when
/// they have at most this many rows in all.
pub(crate) use decode::ROWS as DECODE_ROWS;

/// Register blocks per width: (rows, key vectors, output vectors).
/// AVX-512 has 32 vector registers: 4 × 4 accumulators. AVX2, SSE2 and NEON
/// get 16 registers: 6 × 2 (as ggml's AVX2 kernel). Decode chooses its own
/// P·V block by the number of rows (decode.rs).
macro_rules! widths {
    ($($name:ident: $v:ty, $mr:expr, $nr:expr, $nc:expr;)*) => {$(
        pub(crate) fn $name(p: &Problem<'_>, out: &mut [f32], ol: &Layout, lse: Option<&mut [f32]>) {
            run::<$v, $mr, $nr, $nc>(p, out, ol, lse)
        }
    )*};
}

widths! {
    x1: f32, 4, 4, 4;
    x4: wide::f32x4, 6, 2, 2;
    x8: wide::f32x8, 6, 2, 2;
    x16: wide::f32x16, 4, 4, 4;
}

/// The width the build's target features select ([`crate::simd::Native`]).
pub(crate) fn native(p: &Problem<'_>, out: &mut [f32], ol: &Layout, lse: Option<&mut [f32]>) {
    use crate::simd::Native;
    match <Native as Vector>::LANES {
        16 => x16(p, out, ol, lse),
        8 => x8(p, out, ol, lse),
        4 => x4(p, out, ol, lse),
        _ => x1(p, out, ol, lse),
    }
}

/// One query row of a call: row `i` of query head `h`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    pub h: usize,
    pub i: usize,
}

/// Computes every head of `problem` into `out` (laid out by `out_layout`)
/// and, if given, the log-sum-exps `lse[h * n_q + i]`. When the query heads
/// that share a key/value head have at most [`DECODE_ROWS`] rows in all, they
/// go through the decode kernel together (one pass over that K and V);
/// otherwise each head goes through the blocked prefill loop.
pub(crate) fn run<V: Vector, const MR: usize, const NR: usize, const NC: usize>(
    problem: &Problem<'_>,
    out: &mut [f32],
    out_layout: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let (n_heads, n_q, g) = (problem.q.heads(), problem.q.rows(), problem.group);
    if n_q == 0 {
        return;
    }
    // Additive scores cost `h` tangents per pair whatever the path: the
    // prefill loop, with keys as the SIMD dimension, serves decode too.
    if g * n_q <= DECODE_ROWS && !matches!(problem.kind, Kind::Additive { .. }) {
        for hk in 0..n_heads / g {
            let mut rows = [At { h: 0, i: 0 }; DECODE_ROWS];
            let mut n = 0;
            for h in hk * g..(hk + 1) * g {
                for i in 0..n_q {
                    rows[n] = At { h, i };
                    n += 1;
                }
            }
            decode::rows::<V>(problem, &rows[..n], out, out_layout, lse.as_deref_mut());
        }
    } else {
        for h in 0..n_heads {
            head::<V, MR, NR, NC>(problem, h, out, out_layout, lse.as_deref_mut());
        }
    }
}

/// Zeroes the output row of `at` and returns its initial state and `‖q‖²`
/// (0 unless the scorer needs it).
fn start_row(p: &Problem<'_>, at: At, out: &mut [f32], ol: &Layout) -> (Running, f32) {
    let o = ol.offset(at.h, at.i);
    out[o..o + p.v.cols()].fill(0.0);
    let q = p.q.head(at.h).row(at.i);
    let q_norm = if matches!(p.kind, Kind::LogDist { .. }) { dot(q, q) } else { 0.0 };
    let run = if weights::linear(p.kind, p.bias.is_some()) { Running::EMPTY_LINEAR } else { Running::EMPTY };
    (run, q_norm)
}

/// Normalises the output row of `at` and writes its log-sum-exp.
fn finish_row(p: &Problem<'_>, at: At, run: &Running, out: &mut [f32], ol: &Layout, lse: Option<&mut [f32]>) {
    let linear = weights::linear(p.kind, p.bias.is_some());
    let (inv, row_lse) = if linear { run.finish_linear() } else { run.finish() };
    let o = ol.offset(at.h, at.i);
    let o = &mut out[o..o + p.v.cols()];
    if inv == 0.0 {
        o.fill(0.0); // no key had weight: exactly 0
    } else {
        o.iter_mut().for_each(|x| *x *= inv);
    }
    if let Some(l) = lse {
        l[at.h * p.q.rows() + at.i] = row_lse + p.kind.lse_shift(p.q.head(at.h).row(at.i));
    }
}

/// The keys of the tile `t0..t0 + nt` that row `i` sees, in tile coordinates
/// (empty if none).
fn seen(p: &Problem<'_>, i: usize, t0: usize, nt: usize) -> Range<usize> {
    let keys = p.mask.key_range(i, p.key_len);
    keys.start.max(t0).saturating_sub(t0)..keys.end.min(t0 + nt).saturating_sub(t0)
}

/// Computes head `h` with the blocked prefill loop (module docs): vectors
/// `V`, register blocks of `MR` rows × `NR` vectors of keys (scores) and `MR`
/// rows × `NC` vectors of output columns (P·V).
fn head<V: Vector, const MR: usize, const NR: usize, const NC: usize>(
    problem: &Problem<'_>,
    h: usize,
    out: &mut [f32],
    out_layout: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let kind = problem.kind;
    let q = problem.q.head(h);
    let k = problem.k.head(h / problem.group);
    let norms = problem.norms.map(|n| n.head(h / problem.group));
    let (n_q, d) = (q.rows(), q.cols());
    // Tile width and widest column chunk packed at once.
    let tk = if d <= KT_CAP / TK { TK } else { TK / 2 };
    let dc_max = KT_CAP / tk;
    let block_rows = if d <= dc_max { QB } else { MR };

    let mut kt = [0.0f32; KT_CAP];
    let mut kn = [0.0f32; TK];
    let mut s = [[0.0f32; TK]; MR];
    let mut run = [Running::EMPTY; QB];
    let mut q_norm = [0.0f32; QB];

    for b0 in (0..n_q).step_by(block_rows) {
        let rows = b0..n_q.min(b0 + block_rows);
        let (mut lo, mut hi) = (usize::MAX, 0);
        for i in rows.clone() {
            (run[i - b0], q_norm[i - b0]) = start_row(problem, At { h, i }, out, out_layout);
            let keys = problem.mask.key_range(i, problem.key_len);
            if !keys.is_empty() {
                (lo, hi) = (lo.min(keys.start), hi.max(keys.end));
            }
        }
        for t0 in (lo..hi).step_by(tk) {
            let nt = tk.min(problem.key_len - t0);
            if rows.clone().all(|i| seen(problem, i, t0, nt).is_empty()) {
                continue;
            }
            if d <= dc_max {
                pack_tile(kind, k, norms, t0, nt, tk, 0, d, &mut kt, &mut kn);
            }
            let mut m0 = rows.start;
            while m0 < rows.end {
                let r = if m0 + MR <= rows.end { MR } else { 1 };
                let mut tile = Tile {
                    problem,
                    t0,
                    nt,
                    tk,
                    dc_max,
                    kt: &mut kt,
                    kn: &mut kn,
                    run: &mut run[m0 - b0..m0 - b0 + r],
                    q_norm: &q_norm[m0 - b0..m0 - b0 + r],
                };
                if r == MR {
                    let at = core::array::from_fn(|t| At { h, i: m0 + t });
                    micro::<V, MR, NR, NC>(&mut tile, at, &mut s, out, out_layout);
                } else {
                    let s1: &mut [[f32; TK]; 1] = (&mut s[..1]).try_into().unwrap();
                    micro::<V, 1, NR, NC>(&mut tile, [At { h, i: m0 }], s1, out, out_layout);
                }
                m0 += r;
            }
        }
        for i in rows.clone() {
            finish_row(problem, At { h, i }, &run[i - b0], out, out_layout, lse.as_deref_mut());
        }
    }
}

/// Packs keys `t0..t0 + nt` of `k` (or a column chunk of them) and, after
/// the last chunk, leaves in `kn` the term the scorer adds: `−‖k‖²` for
/// `NegSqDist`, `‖k‖²` for `NegLogDist`, from the cached `norms` if given
/// (else computed while packing).
#[allow(clippy::too_many_arguments)]
fn pack_tile(
    kind: Kind<'_>,
    k: MatRef<'_>,
    norms: Option<MatRef<'_>>,
    t0: usize,
    nt: usize,
    tk: usize,
    c0: usize,
    dc: usize,
    kt: &mut [f32],
    kn: &mut [f32; TK],
) {
    let last = c0 + dc == k.cols();
    let compute = needs_norms(kind) && norms.is_none();
    pack::pack(|j| k.row(t0 + j), nt, tk, c0, dc, kt, compute.then_some(&mut *kn));
    if last {
        cached_norms(kind, norms, t0, &mut kn[..nt]);
        key_terms(kind, &mut kn[..nt]);
    }
}

/// Whether the scorer uses `‖k‖²`.
fn needs_norms(kind: Kind<'_>) -> bool {
    matches!(kind, Kind::SqDist { .. } | Kind::LogDist { .. })
}

/// Copies the cached norms of keys `t0..t0 + kn.len()` into `kn`, if the
/// scorer needs them and the call has them.
fn cached_norms(kind: Kind<'_>, norms: Option<MatRef<'_>>, t0: usize, kn: &mut [f32]) {
    if let (Some(n), true) = (norms, needs_norms(kind)) {
        for (j, x) in kn.iter_mut().enumerate() {
            *x = n.row(t0 + j)[0];
        }
    }
}

/// Turns `‖k‖²` into the term the scorer adds to `2·q·k` before scaling
/// (`NegSqDist`: `−‖k‖²`); `NegLogDist` uses `‖k‖²` as it is.
fn key_terms(kind: Kind<'_>, kn: &mut [f32]) {
    if let Kind::SqDist { .. } = kind {
        kn.iter_mut().for_each(|x| *x = -*x);
    }
}

/// One tile of the prefill loop, seen by a micro-block of rows.
struct Tile<'t, 'p> {
    problem: &'t Problem<'p>,
    /// First key of the tile, number of keys in it, tile width.
    t0: usize,
    nt: usize,
    tk: usize,
    /// Widest column chunk packed at once.
    dc_max: usize,
    kt: &'t mut [f32; KT_CAP],
    kn: &'t mut [f32; TK],
    /// States and norms of the micro-block's rows.
    run: &'t mut [Running],
    q_norm: &'t [f32],
}

/// One micro-block of `R` rows of one head against the packed tile.
#[inline(always)]
fn micro<V: Vector, const R: usize, const NR: usize, const NC: usize>(
    tile: &mut Tile<'_, '_>,
    at: [At; R],
    s: &mut [[f32; TK]; R],
    out: &mut [f32],
    out_layout: &Layout,
) {
    let p = tile.problem;
    let (t0, nt, tk, dc_max) = (tile.t0, tile.nt, tile.tk, tile.dc_max);
    let seen = at.map(|a| seen(p, a.i, t0, nt));
    if seen.iter().all(|r| r.is_empty()) {
        return;
    }
    let h = at[0].h;
    let k = p.k.head(h / p.group);
    let d = p.q.cols();
    let qrows = at.map(|a| p.q.head(h).row(a.i));
    let scores = |q: [&[f32]; R], kt: &[f32], c0: usize, dc: usize, s: &mut [[f32; TK]; R]| match p.kind {
        Kind::Additive { w } => score::additive::<V, R, NR>(q, kt, &w[c0..], tk, dc, s, c0 > 0),
        _ => score::scores::<V, R, NR>(q, kt, tk, dc, s, c0 > 0),
    };
    if d <= dc_max {
        scores(qrows, &tile.kt[..], 0, d, s);
    } else {
        for c0 in (0..d).step_by(dc_max) {
            let dc = dc_max.min(d - c0);
            let norms = p.norms.map(|n| n.head(h / p.group));
            pack_tile(p.kind, k, norms, t0, nt, tk, c0, dc, &mut tile.kt[..], tile.kn);
            scores(qrows.map(|r| &r[c0..]), &tile.kt[..], c0, dc, s);
        }
    }
    update::<V, R, NC>(p, at, seen, s, tile.kn, t0, tile.run, tile.q_norm, out, out_layout, |_, _| {});
}

/// The rest of a tile once `s[r]` holds the dot products `q·k_j` of rows
/// `at` (all reading the same key/value head) with keys `t0..`, and `kn` the
/// key terms: weights and the online softmax per row, then P·V
/// ([`pv_rows`]) with `NC` output vectors per register block, calling
/// `ahead(j, columns)` before it reads those columns of value `j`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn update<V: Vector, const R: usize, const NC: usize>(
    p: &Problem<'_>,
    at: [At; R],
    seen: [Range<usize>; R],
    s: &mut [[f32; TK]; R],
    kn: &[f32; TK],
    t0: usize,
    run: &mut [Running],
    q_norm: &[f32],
    out: &mut [f32],
    out_layout: &Layout,
    ahead: impl Fn(usize, Range<usize>) + Copy,
) {
    let hk = at[0].h / p.group;
    let (k, v) = (p.k.head(hk), p.v.head(hk));
    let nt = seen.iter().map(|r| r.end).max().unwrap_or(0);
    let mut alpha = [1.0f32; R];
    for r in 0..R {
        if seen[r].is_empty() {
            continue;
        }
        let (h, i) = (at[r].h, at[r].i);
        let row = Row {
            lo: seen[r].start,
            hi: seen[r].end,
            q_norm: q_norm[r],
            bias: p.bias.map(|b| &b.row(h, i)[t0..t0 + nt]),
        };
        let qi = p.q.head(h).row(i);
        alpha[r] =
            weights::weights::<V>(p.kind, &mut s[r], kn, &row, &mut run[r], |j| sq_dist(qi, k.row(t0 + j)));
    }
    let offsets = at.map(|a| out_layout.offset(a.h, a.i));
    let mut o = Out { data: out, offsets: &offsets };
    pv_rows::<V, R, NC>(&mut o, alpha, s, |j| v.row(t0 + j), &seen, v.cols(), ahead);
}

/// P·V for rows that see the keys `seen[r]` of the tile: the keys every row
/// sees go through the `R`-row register block, the rest (near a causal
/// diagonal or a window edge) row by row.
#[inline(always)]
fn pv_rows<'v, V: Vector, const R: usize, const NC: usize>(
    out: &mut Out<'_>,
    alpha: [f32; R],
    s: &[[f32; TK]; R],
    value: impl Fn(usize) -> &'v [f32] + Copy,
    seen: &[Range<usize>; R],
    d_v: usize,
    ahead: impl Fn(usize, Range<usize>) + Copy,
) {
    let nt = seen.iter().map(|r| r.end).max().unwrap_or(0);
    let common = seen.iter().fold(0..nt, |a, b| a.start.max(b.start)..a.end.min(b.end));
    let common = if common.is_empty() { 0..0 } else { common };
    if !common.is_empty() {
        pv::pv::<V, R, NC>(out, alpha, s, value, common.clone(), d_v, ahead);
    }
    for r in 0..R {
        let own = &seen[r];
        if own.is_empty() {
            continue;
        }
        let (before, after, a) = if common.is_empty() {
            (own.clone(), 0..0, alpha[r])
        } else {
            (own.start..common.start, common.end..own.end, 1.0)
        };
        let s1: &[[f32; TK]; 1] = (&s[r..r + 1]).try_into().unwrap();
        let mut o1 = Out { data: &mut *out.data, offsets: &out.offsets[r..r + 1] };
        if !before.is_empty() || a != 1.0 {
            pv::pv::<V, 1, NC>(&mut o1, [a], s1, value, before, d_v, ahead);
        }
        if !after.is_empty() {
            pv::pv::<V, 1, NC>(&mut o1, [1.0], s1, value, after, d_v, ahead);
        }
    }
}
