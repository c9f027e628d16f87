//! The tiled streaming kernel, shared by every scorer.
//!
//! ```text
//! for each block of up to QB query rows:
//!     zero the block's output rows; m = −∞, l = 0 per row
//!     for each tile of TK keys that some row of the block sees:
//!         pack the tile's keys transposed (kt[c][j]) and their norms     pack.rs
//!         for each micro-block of MR rows that sees the tile:
//!             s = q · kt            register block MR × NR vectors      score.rs
//!             p = weights(s), update m, l, get α per row                 weights.rs
//!             out = α·out + p · v   register block MR × NC vectors      pv.rs
//!     out /= l, lse = m + ln l
//! ```
//!
//! The key index is the SIMD dimension of the score microkernel (a packed
//! tile is reused by every row of the block), the head dimension that of
//! P·V. Masked work is skipped: tiles no row of the block sees are never
//! packed, micro-blocks that do not see a tile are passed over, and inside a
//! tile each row's weights and values cover only its own keys. Rows left over
//! after the last full micro-block run the same microkernels with one row.
//!
//! Scratch is on the stack and bounded, whatever the shape: the packed tile
//! (`KT_CAP` floats: 64 KiB with SIMD, 16 KiB without), one micro-block of
//! scores (`MR × TK` floats, at most 3 KiB), and `QB` row states and norms
//! (3 KiB); about 70 KiB in all. Tiles are `TK = 128` keys wide for heads of
//! up to `KT_CAP / 128` columns (128 with SIMD) and 64 keys up to twice that;
//! a wider head is packed in column chunks, and then a block is a single
//! micro-block (its scores accumulate over the chunks).

mod pack;
mod pv;
mod score;
mod weights;

use crate::attention::Problem;
use crate::scorer::{dot, sq_dist, Kind};
use crate::simd::Vector;
use crate::softmax::Running;
use crate::view::Layout;
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
const QB: usize = 512;

/// Register blocks per width: (rows, key vectors, output vectors). AVX-512
/// has 32 vector registers: 4 × 4 accumulators. AVX2, SSE2 and NEON kernels
/// get 16 registers: 6 × 2 accumulators (as ggml's AVX2 kernel).
macro_rules! widths {
    ($($name:ident: $v:ty, $mr:expr, $nr:expr, $nc:expr;)*) => {$(
        pub(crate) fn $name(p: &Problem<'_>, h: usize, out: &mut [f32], ol: &Layout, lse: Option<&mut [f32]>) {
            head::<$v, $mr, $nr, $nc>(p, h, out, ol, lse)
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
pub(crate) fn native(p: &Problem<'_>, h: usize, out: &mut [f32], ol: &Layout, lse: Option<&mut [f32]>) {
    use crate::simd::Native;
    match <Native as Vector>::LANES {
        16 => x16(p, h, out, ol, lse),
        8 => x8(p, h, out, ol, lse),
        4 => x4(p, h, out, ol, lse),
        _ => x1(p, h, out, ol, lse),
    }
}

/// Computes head `h` of `problem` with vectors `V`, register blocks of `MR`
/// rows × `NR` vectors of keys (scores) and `MR` rows × `NC` vectors of
/// output columns (P·V). Same contract as [`crate::scalar::head`].
pub(crate) fn head<V: Vector, const MR: usize, const NR: usize, const NC: usize>(
    problem: &Problem<'_>,
    h: usize,
    out: &mut [f32],
    out_layout: &Layout,
    mut lse: Option<&mut [f32]>,
) {
    let kind = problem.kind;
    let q = problem.q.head(h);
    let k = problem.k.head(h / problem.group);
    let v = problem.v.head(h / problem.group);
    let (n_q, d, d_v) = (q.rows(), q.cols(), v.cols());
    let linear = weights::linear(kind, problem.bias.is_some());
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
            let t = i - b0;
            run[t] = if linear { Running::EMPTY_LINEAR } else { Running::EMPTY };
            q_norm[t] = if matches!(kind, Kind::LogDist { .. }) { dot(q.row(i), q.row(i)) } else { 0.0 };
            let o = out_layout.offset(h, i);
            out[o..o + d_v].fill(0.0);
            let keys = problem.mask.key_range(i, problem.key_len);
            if !keys.is_empty() {
                (lo, hi) = (lo.min(keys.start), hi.max(keys.end));
            }
        }
        for t0 in (lo..hi).step_by(tk) {
            let nt = tk.min(problem.key_len - t0);
            let seen = |i: usize| {
                let keys = problem.mask.key_range(i, problem.key_len);
                keys.start.max(t0).saturating_sub(t0)..keys.end.min(t0 + nt).saturating_sub(t0)
            };
            if rows.clone().all(|i| seen(i).is_empty()) {
                continue;
            }
            if d <= dc_max {
                pack_tile(kind, |j| k.row(t0 + j), nt, tk, 0, d, &mut kt, &mut kn);
            }
            let mut tile = Tile {
                problem,
                h,
                t0,
                nt,
                tk,
                dc_max,
                kt: &mut kt,
                kn: &mut kn,
                run: &mut run[..rows.len()],
                q_norm: &q_norm[..rows.len()],
                b0,
            };
            let mut m0 = rows.start;
            while m0 < rows.end {
                if m0 + MR <= rows.end {
                    let ids = core::array::from_fn(|r| m0 + r);
                    micro::<V, MR, NR, NC>(&mut tile, ids, ids.map(seen), &mut s, out, out_layout);
                    m0 += MR;
                } else {
                    let s1: &mut [[f32; TK]; 1] = (&mut s[..1]).try_into().unwrap();
                    micro::<V, 1, NR, NC>(&mut tile, [m0], [seen(m0)], s1, out, out_layout);
                    m0 += 1;
                }
            }
        }
        for i in rows.clone() {
            let t = i - b0;
            let (inv, row_lse) = if linear { run[t].finish_linear() } else { run[t].finish() };
            let o = out_layout.offset(h, i);
            let o = &mut out[o..o + d_v];
            if inv == 0.0 {
                o.fill(0.0);
            } else {
                o.iter_mut().for_each(|x| *x *= inv);
            }
            if let Some(l) = lse.as_deref_mut() {
                l[i] = row_lse + kind.lse_shift(q.row(i));
            }
        }
    }
}

/// Packs a tile (or a column chunk of it) and turns the key norms into the
/// term the scorer adds: `−scale·‖k‖²` for `NegSqDist`, `‖k‖²` for `NegLogDist`.
#[allow(clippy::too_many_arguments)]
fn pack_tile<'a>(
    kind: Kind,
    key: impl Fn(usize) -> &'a [f32],
    nt: usize,
    tk: usize,
    c0: usize,
    dc: usize,
    kt: &mut [f32],
    kn: &mut [f32; TK],
) {
    let last = c0 + dc == key(0).len();
    match kind {
        Kind::Dot { .. } => pack::pack(key, nt, tk, c0, dc, kt, None),
        Kind::SqDist { scale } => {
            pack::pack(key, nt, tk, c0, dc, kt, Some(kn));
            if last {
                kn.iter_mut().for_each(|x| *x *= -scale);
            }
        }
        Kind::LogDist { .. } => pack::pack(key, nt, tk, c0, dc, kt, Some(kn)),
    }
}

/// The state shared by the micro-blocks of one tile.
struct Tile<'t, 'p> {
    problem: &'t Problem<'p>,
    h: usize,
    /// First key of the tile, number of keys in it, tile width.
    t0: usize,
    nt: usize,
    tk: usize,
    /// Widest column chunk packed at once.
    dc_max: usize,
    kt: &'t mut [f32; KT_CAP],
    kn: &'t mut [f32; TK],
    /// Row states and norms of the block, indexed by row − b0.
    run: &'t mut [Running],
    q_norm: &'t [f32],
    b0: usize,
}

/// One micro-block of `R` query rows `ids` against the tile; `seen[r]` are
/// the tile keys row `ids[r]` sees (tile coordinates).
#[inline(always)]
fn micro<V: Vector, const R: usize, const NR: usize, const NC: usize>(
    tile: &mut Tile<'_, '_>,
    ids: [usize; R],
    seen: [core::ops::Range<usize>; R],
    s: &mut [[f32; TK]; R],
    out: &mut [f32],
    out_layout: &Layout,
) {
    if seen.iter().all(|r| r.is_empty()) {
        return;
    }
    let p = tile.problem;
    let (t0, nt, h) = (tile.t0, tile.nt, tile.h);
    let q = p.q.head(h);
    let k = p.k.head(h / p.group);
    let v = p.v.head(h / p.group);
    let d = q.cols();
    let qrows = ids.map(|i| q.row(i));
    let (tk, dc_max) = (tile.tk, tile.dc_max);
    if d <= dc_max {
        score::scores::<V, R, NR>(qrows, &tile.kt[..], tk, d, s, false);
    } else {
        for c0 in (0..d).step_by(dc_max) {
            let dc = dc_max.min(d - c0);
            pack_tile(p.kind, |j| k.row(t0 + j), nt, tk, c0, dc, &mut tile.kt[..], tile.kn);
            score::scores::<V, R, NR>(qrows.map(|r| &r[c0..]), &tile.kt[..], tk, dc, s, c0 > 0);
        }
    }
    let mut alpha = [1.0f32; R];
    for r in 0..R {
        if seen[r].is_empty() {
            continue;
        }
        let i = ids[r];
        let row = Row {
            lo: seen[r].start,
            hi: seen[r].end,
            q_norm: tile.q_norm[i - tile.b0],
            bias: p.bias.map(|b| &b.row(h, i)[t0..t0 + nt]),
        };
        let qi = qrows[r];
        alpha[r] = weights::weights::<V>(p.kind, &mut s[r], tile.kn, &row, &mut tile.run[i - tile.b0], |j| {
            sq_dist(qi, k.row(t0 + j))
        });
    }
    // Keys every row sees go through the R-row register block; the rest
    // (near a causal diagonal or a window edge) row by row.
    let common = seen.iter().fold(0..nt, |a, b| a.start.max(b.start)..a.end.min(b.end));
    let offsets = ids.map(|i| out_layout.offset(h, i));
    let d_v = v.cols();
    let value = |j: usize| v.row(t0 + j);
    let mut o = Out { data: out, offsets: &offsets };
    let common = if common.is_empty() { 0..0 } else { common };
    if !common.is_empty() {
        pv::pv::<V, R, NC>(&mut o, alpha, s, value, common.clone(), d_v);
    }
    for r in 0..R {
        let own = &seen[r];
        if own.is_empty() {
            continue;
        }
        let (before, after) = if common.is_empty() {
            (own.clone(), 0..0)
        } else {
            (own.start..common.start.max(own.start), common.end.min(own.end)..own.end)
        };
        let a = if common.is_empty() { alpha[r] } else { 1.0 };
        let s1: &[[f32; TK]; 1] = (&s[r..r + 1]).try_into().unwrap();
        let mut o1 = Out { data: o.data, offsets: &offsets[r..r + 1] };
        if !before.is_empty() || a != 1.0 {
            pv::pv::<V, 1, NC>(&mut o1, [a], s1, value, before, d_v);
        }
        if !after.is_empty() {
            pv::pv::<V, 1, NC>(&mut o1, [1.0], s1, value, after, d_v);
        }
    }
}
