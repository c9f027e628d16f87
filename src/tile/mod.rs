//! The tiled streaming kernel, shared by every scorer.
//!
//! ```text
//! for each block of up to QB query rows:
//!     zero the block's output rows; m = −∞, l = 0 per row
//!     NegSqDist: the block's centre c, ‖q − c‖² per row               centre.rs
//!     for each tile of TK keys that some row of the block sees:
//!         pack the tile's keys transposed (kt[c][j]) and their norms     pack.rs
//!             (NegSqDist: k − c and ‖k − c‖²; NegLogDist: norms copied
//!             instead when the call has cached ones)
//!         for each micro-block of MR rows that sees the tile:
//!             s = q · kt            register block MR × NR vectors      score.rs
//!                 (NegSqDist: (q − c) · kt)
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
//! weights and softmax steps. Targets without a vector level build no decode
//! pass (`arch::tuning`): one lane at a time it executes more instructions
//! than the scalar path, which is their default kernel for those scorers.
//!
//! Scratch is on the stack and bounded, whatever the shape. With SIMD: the
//! packed tile (the level's `packed` floats from the tuning table, 64 KiB),
//! one micro-block of scores (`MR × TK` floats, at most 3 KiB; 4 KiB for a
//! decode pass), `QB` row states and norms (6 KiB), and for `NegSqDist` a
//! centre and a micro-block of offset query rows (7 KiB; a decode pass 9 KiB
//! at 8 rows); about 85 KiB in all. Tiles are `TK = 128` keys wide for heads
//! of up to `packed / 128` columns (128 with SIMD) and 64 keys up to twice
//! that; a wider head is packed in column chunks, and then a block is a
//! single micro-block (its scores accumulate over the chunks). Without SIMD
//! the same buffers are sized for small stacks (`TK = 32`, `QB = 16`, a
//! 1 KiB tile): about 5 KiB of stack for a whole call, measured on a
//! Cortex-M4F.

mod centre;
mod decode;
mod pack;
mod pv;
mod score;
mod weights;

use crate::arch::{Job, Simd, Vector, BLOCK_ROWS, DECODE_ROWS, PACKED_MAX, TILE_KEYS};
use crate::problem::Problem;
use crate::scorer::{dot, sq_dist, Kind};
use crate::softmax::Running;
use crate::view::Layout;
use crate::{Element, MatRef};
use centre::centred;
use core::ops::Range;
use pv::Out;
use weights::Row;

/// Keys per tile at most.
pub(crate) const TK: usize = TILE_KEYS;
/// Query rows per block: each packed tile serves this many rows.
pub(crate) const QB: usize = BLOCK_ROWS;
/// The widest column chunk of a packed tile (tiles of `TK / 2` keys).
const CHUNK_MAX: usize = PACKED_MAX / (TK / 2);
/// The most rows of any level's prefill register block.
const MR_MAX: usize = 6;

/// `NegSqDist`'s scratch in the prefill loop (centre.rs): the block's centre
/// (all columns, or for heads wider than a packed tile the chunk being
/// scored) and a micro-block of query rows offset by it.
struct Centring {
    c: [f32; CHUNK_MAX],
    qc: [[f32; CHUNK_MAX]; MR_MAX],
}

/// A call of the tiled kernel, run at a level by [`crate::arch::dispatch`]:
/// every head of `problem` into `out` (laid out by `layout`) and, if given,
/// the log-sum-exps `lse[h * lse_stride + i]`.
pub(crate) struct Tiled<'c, 'p, E: Element> {
    pub problem: &'c Problem<'p, E>,
    pub out: &'c mut [f32],
    pub layout: &'c Layout,
    pub lse: Option<&'c mut [f32]>,
}

impl<E: Element> Job for Tiled<'_, '_, E> {
    type Output = ();
    fn run<S: Simd>(self, simd: S) {
        debug_assert_eq!(S::LEVEL, self.problem.level);
        run(simd, self.problem, self.out, self.layout, self.lse);
    }
}

/// One query row of a call: row `i` of query head `h`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    pub h: usize,
    pub i: usize,
}

/// Computes every head of `problem` into `out` (laid out by `out_layout`)
/// and, if given, the log-sum-exps `lse[h * lse_stride + i]`. When the query heads
/// that share a key/value head have at most [`DECODE_ROWS`] rows in all, they
/// go through the decode kernel together (one pass over that K and V) at
/// the levels with vectors; otherwise each head goes through the blocked
/// prefill loop.
fn run<S: Simd, E: Element>(
    simd: S,
    problem: &Problem<'_, E>,
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
    // A decode pass holds a centre of up to `centre::DECODE_COLS` columns.
    let centred_too_wide = centred(problem.kind) && problem.q.cols() > centre::DECODE_COLS;
    // The one-lane level (`Generic`) runs no decode pass, on any target: one
    // lane at a time the pass executes more instructions than the scalar
    // path (`benches/RESULTS.md`, Cortex-M4F), and its eight instantiations
    // per element type would be most of the flash of a firmware without
    // SIMD. On targets with SIMD it runs only when asked for, and then
    // takes the path that targets without SIMD take.
    if const { S::LANES > 1 }
        && g * n_q <= DECODE_ROWS
        && !matches!(problem.kind, Kind::Additive { .. })
        && !centred_too_wide
    {
        for hk in 0..n_heads / g {
            let mut rows = [At { h: 0, i: 0 }; DECODE_ROWS];
            let mut n = 0;
            for h in hk * g..(hk + 1) * g {
                for i in 0..n_q {
                    rows[n] = At { h, i };
                    n += 1;
                }
            }
            decode::rows(simd, problem, &rows[..n], out, out_layout, lse.as_deref_mut());
        }
    } else {
        // Zeroed once per call, and only for the scorer that uses it.
        let mut centring = if centred(problem.kind) {
            Some(Centring { c: [0.0; CHUNK_MAX], qc: [[0.0; CHUNK_MAX]; MR_MAX] })
        } else {
            None
        };
        for h in 0..n_heads {
            let lse = lse.as_deref_mut();
            let centring = centring.as_mut();
            simd.vectorize(
                #[inline(always)]
                || head_at(simd, problem, h, out, out_layout, lse, centring),
            );
        }
    }
}

/// [`head`] with the level's register block (`arch::tuning`).
#[inline(always)]
fn head_at<S: Simd, E: Element>(
    simd: S,
    p: &Problem<'_, E>,
    h: usize,
    out: &mut [f32],
    ol: &Layout,
    lse: Option<&mut [f32]>,
    centring: Option<&mut Centring>,
) {
    // A `const` operand: only the arm of the level's block is instantiated
    // (a plain `match` compiles every arm and lets LLVM drop the dead ones).
    match const { (S::TUNING.rows, S::TUNING.key_vectors, S::TUNING.out_vectors) } {
        (4, 4, 4) => head::<S, E, 4, 4, 4>(simd, p, h, out, ol, lse, centring),
        (6, 2, 2) => head::<S, E, 6, 2, 2>(simd, p, h, out, ol, lse, centring),
        _ => unreachable!("arch::tuning checks that every level's block is one of these"),
    }
}

/// Zeroes the output row of `at` and returns its initial state and `‖q‖²`
/// (`NegLogDist`; else 0).
fn start_row<E: Element>(p: &Problem<'_, E>, at: At, out: &mut [f32], ol: &Layout) -> (Running, f32) {
    let o = ol.offset(at.h, at.i);
    out[o..o + p.v.cols()].fill(0.0);
    let q = p.q.head(at.h).row(at.i);
    let q_norm = if matches!(p.kind, Kind::LogDist { .. }) { dot(q, q) } else { 0.0 };
    let run = if weights::linear(p.kind, p.plain()) { Running::EMPTY_LINEAR } else { Running::EMPTY };
    (run, q_norm)
}

/// Normalises the output row of `at` and writes its log-sum-exp.
fn finish_row<E: Element>(
    p: &Problem<'_, E>,
    at: At,
    mut run: Running,
    out: &mut [f32],
    ol: &Layout,
    lse: Option<&mut [f32]>,
) {
    let linear = weights::linear(p.kind, p.plain());
    let alpha = p.sinks.map_or(1.0, |s| run.sink(s[at.h]));
    let (inv, row_lse) = if linear { run.finish_linear() } else { run.finish() };
    let inv = inv * alpha;
    let o = ol.offset(at.h, at.i);
    let o = &mut out[o..o + p.v.cols()];
    if centred(p.kind) && run.l.is_nan() {
        // A distance from the centre was not finite (weights::weights): the
        // scalar path measures the row's distances directly.
        let row_lse = crate::scalar::row(p, at.h, at.i, o);
        if let Some(l) = lse {
            l[at.h * p.lse_stride + at.i] = row_lse;
        }
        return;
    }
    if inv == 0.0 {
        o.fill(0.0); // no key had weight: exactly 0
    } else {
        for x in o.iter_mut() {
            *x *= inv;
        }
    }
    crate::scalar::rescue_overflow(p, at.h, at.i, o);
    if let Some(l) = lse {
        l[at.h * p.lse_stride + at.i] = row_lse;
    }
}

/// Computes head `h` with the blocked prefill loop (module docs): vectors
/// `V`, register blocks of `MR` rows × `NR` vectors of keys (scores) and `MR`
/// rows × `NC` vectors of output columns (P·V).
#[inline(always)]
fn head<S: Simd, E: Element, const MR: usize, const NR: usize, const NC: usize>(
    simd: S,
    problem: &Problem<'_, E>,
    h: usize,
    out: &mut [f32],
    out_layout: &Layout,
    mut lse: Option<&mut [f32]>,
    mut centring: Option<&mut Centring>,
) {
    let kind = problem.kind;
    let q = problem.q.head(h);
    let k = problem.k.head(h / problem.group);
    let norms = problem.norms.map(|n| n.head(h / problem.group));
    let (n_q, d) = (q.rows(), q.cols());
    // Tile width and widest column chunk packed at once.
    const { assert!(S::TUNING.packed <= PACKED_MAX) };
    const { assert!(MR <= MR_MAX) };
    let packed = S::TUNING.packed;
    let tk = if d <= packed / TK { TK } else { TK / 2 };
    let dc_max = packed / tk;
    let block_rows = if d <= dc_max { QB } else { MR };

    let mut kt_buf = [0.0f32; PACKED_MAX];
    let kt = &mut kt_buf[..packed];
    let mut kn = [0.0f32; TK];
    let mut s = [[0.0f32; TK]; MR];
    let mut run = [Running::EMPTY; QB];
    let mut q_norm = [0.0f32; QB];

    for b0 in (0..n_q).step_by(block_rows) {
        let rows = b0..n_q.min(b0 + block_rows);
        for i in rows.clone() {
            (run[i - b0], q_norm[i - b0]) = start_row(problem, At { h, i }, out, out_layout);
        }
        if let Some(cb) = centring.as_deref_mut() {
            block_centre(q, rows.clone(), dc_max, &mut cb.c, &mut q_norm[..rows.len()]);
        }
        for t0 in problem.keys_seen(rows.clone()).step_by(tk) {
            let nt = tk.min(problem.key_len - t0);
            if rows.clone().all(|i| problem.seen_in_tile(i, t0, nt).is_empty()) {
                continue;
            }
            if d <= dc_max {
                let centre = centring.as_deref().map(|cb| &cb.c[..d]);
                KeyTile { kind, k, norms, t0, nt, tk }.pack(simd, 0, d, kt, &mut kn, centre);
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
                    kt: &mut *kt,
                    kn: &mut kn,
                    run: &mut run[m0 - b0..m0 - b0 + r],
                    q_norm: &q_norm[m0 - b0..m0 - b0 + r],
                    block: rows.clone(),
                    centring: centring.as_deref_mut(),
                };
                if r == MR {
                    let at = core::array::from_fn(|t| At { h, i: m0 + t });
                    micro::<S, E, MR, NR, NC>(simd, &mut tile, at, &mut s, out, out_layout);
                } else {
                    let s1: &mut [[f32; TK]; 1] = (&mut s[..1]).try_into().unwrap();
                    micro::<S, E, 1, NR, NC>(simd, &mut tile, [At { h, i: m0 }], s1, out, out_layout);
                }
                m0 += r;
            }
        }
        for i in rows.clone() {
            finish_row(problem, At { h, i }, run[i - b0], out, out_layout, lse.as_deref_mut());
        }
    }
}

/// `NegSqDist`: the centre of the query rows `rows` of `q` into `c` (all
/// `d` columns if `d ≤ dc_max`; else, for wide heads, a chunk at a time,
/// recomputed as the tiles are scored) and `q_norm[r] = ‖q_r − c‖²`.
fn block_centre(q: MatRef<'_>, rows: Range<usize>, dc_max: usize, c: &mut [f32], q_norm: &mut [f32]) {
    let (n, d) = (rows.len(), q.cols());
    let row = |r: usize| q.row(rows.start + r);
    q_norm.fill(0.0);
    for c0 in (0..d).step_by(dc_max) {
        let dc = dc_max.min(d - c0);
        centre::centre(row, n, c0, &mut c[..dc]);
        for (r, x) in q_norm.iter_mut().enumerate() {
            *x += sq_dist(&row(r)[c0..c0 + dc], &c[..dc]);
        }
    }
}

/// The keys `t0..t0 + nt` of one key/value head, as the prefill loop packs
/// them into a tile of width `tk`.
#[derive(Clone, Copy)]
struct KeyTile<'k, E: Element> {
    kind: Kind<'k>,
    k: MatRef<'k, E>,
    /// Cached `‖k_j‖²` of the head, if the call has them.
    norms: Option<MatRef<'k>>,
    t0: usize,
    nt: usize,
    tk: usize,
}

impl<E: Element> KeyTile<'_, E> {
    /// Packs columns `c0..c0 + dc` of the keys into `kt`, offset by
    /// `centre` (those columns of it) if given, and after the last chunk
    /// leaves in `kn` the squared norms of what was packed: `‖k − c‖²` for
    /// `NegSqDist`, `‖k‖²` for `NegLogDist` (from the cached norms if given).
    #[inline(always)]
    fn pack<S: Simd>(
        &self,
        simd: S,
        c0: usize,
        dc: usize,
        kt: &mut [f32],
        kn: &mut [f32; TK],
        centre: Option<&[f32]>,
    ) {
        let KeyTile { kind, k, norms, t0, nt, tk } = *self;
        let last = c0 + dc == k.cols();
        let compute = needs_norms(kind) && !(norms.is_some() && reads_cached_norms(kind));
        pack::pack(simd, |j| k.row(t0 + j), nt, tk, c0, dc, kt, compute.then_some(&mut *kn), centre);
        if last {
            cached_norms(kind, norms, t0, &mut kn[..nt]);
        }
    }
}

/// Whether the scorer uses `‖k‖²`.
fn needs_norms(kind: Kind<'_>) -> bool {
    matches!(kind, Kind::SqDist { .. } | Kind::LogDist { .. })
}

/// Whether the scorer takes `‖k‖²` from cached norms when a call has them
/// (`NegLogDist`; `NegSqDist` needs `‖k − c‖²`, which no cache holds).
fn reads_cached_norms(kind: Kind<'_>) -> bool {
    matches!(kind, Kind::LogDist { .. })
}

/// Copies the cached norms of keys `t0..t0 + kn.len()` into `kn`, if the
/// scorer reads them ([`reads_cached_norms`]) and the call has them.
fn cached_norms(kind: Kind<'_>, norms: Option<MatRef<'_>>, t0: usize, kn: &mut [f32]) {
    if let (Some(n), true) = (norms, reads_cached_norms(kind)) {
        for (j, x) in kn.iter_mut().enumerate() {
            *x = n.row(t0 + j)[0];
        }
    }
}

/// One tile of the prefill loop, seen by a micro-block of rows.
struct Tile<'t, 'p, E: Element> {
    problem: &'t Problem<'p, E>,
    /// First key of the tile, number of keys in it, tile width.
    t0: usize,
    nt: usize,
    tk: usize,
    /// Widest column chunk packed at once.
    dc_max: usize,
    kt: &'t mut [f32],
    kn: &'t mut [f32; TK],
    /// States and norms of the micro-block's rows.
    run: &'t mut [Running],
    q_norm: &'t [f32],
    /// The rows of the block, and for `NegSqDist` its scratch.
    block: Range<usize>,
    centring: Option<&'t mut Centring>,
}

/// One micro-block of `R` rows of one head against the packed tile.
#[inline(always)]
fn micro<S: Simd, E: Element, const R: usize, const NR: usize, const NC: usize>(
    simd: S,
    tile: &mut Tile<'_, '_, E>,
    at: [At; R],
    s: &mut [[f32; TK]; R],
    out: &mut [f32],
    out_layout: &Layout,
) {
    let p = tile.problem;
    let (t0, nt, tk, dc_max) = (tile.t0, tile.nt, tile.tk, tile.dc_max);
    let seen = at.map(|a| p.seen_in_tile(a.i, t0, nt));
    if seen.iter().all(core::ops::Range::is_empty) {
        return;
    }
    let h = at[0].h;
    let k = p.k.head(h / p.group);
    let d = p.q.cols();
    let qh = p.q.head(h);
    let qrows = at.map(|a| qh.row(a.i));
    if d <= dc_max {
        let q = if let Some(cb) = tile.centring.as_deref_mut() {
            for (r, q) in qrows.iter().enumerate() {
                centre::offset(q, &cb.c[..d], &mut cb.qc[r]);
            }
            core::array::from_fn(|r| &cb.qc[r][..d])
        } else {
            qrows
        };
        scores::<S, R, NR>(simd, p.kind, q, &tile.kt[..], 0, tk, d, s);
    } else {
        for c0 in (0..d).step_by(dc_max) {
            let dc = dc_max.min(d - c0);
            let norms = p.norms.map(|n| n.head(h / p.group));
            let key_tile = KeyTile { kind: p.kind, k, norms, t0, nt, tk };
            let q = if let Some(cb) = tile.centring.as_deref_mut() {
                let b = tile.block.clone();
                centre::centre(|r| qh.row(b.start + r), b.len(), c0, &mut cb.c[..dc]);
                key_tile.pack(simd, c0, dc, &mut tile.kt[..], tile.kn, Some(&cb.c[..dc]));
                for (r, q) in qrows.iter().enumerate() {
                    centre::offset(&q[c0..], &cb.c[..dc], &mut cb.qc[r]);
                }
                core::array::from_fn(|r| &cb.qc[r][..dc])
            } else {
                key_tile.pack(simd, c0, dc, &mut tile.kt[..], tile.kn, None);
                qrows.map(|r| &r[c0..])
            };
            scores::<S, R, NR>(simd, p.kind, q, &tile.kt[..], c0, tk, dc, s);
        }
    }
    let rows = Rows { at, seen, run: &mut *tile.run, q_norm: tile.q_norm };
    let scores = Scores { t0, s, kn: &*tile.kn };
    update::<S, E, R, NC>(
        simd,
        p,
        rows,
        scores,
        &mut Dest { data: out, layout: out_layout, paired: false },
        |_, _| {},
    );
}

/// The scores of a micro-block against a packed tile (or a column chunk of
/// it). A function, not a closure: a closure called twice may be compiled
/// out of line, without the level's target features.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scores<S: Simd, const R: usize, const NR: usize>(
    simd: S,
    kind: Kind<'_>,
    q: [&[f32]; R],
    kt: &[f32],
    c0: usize,
    tk: usize,
    dc: usize,
    s: &mut [[f32; TK]; R],
) {
    match kind {
        Kind::Additive { w, .. } => score::additive::<S, R, NR>(simd, q, kt, &w[c0..], tk, dc, s, c0 > 0),
        _ => score::scores::<S, R, NR>(simd, q, kt, tk, dc, s, c0 > 0),
    }
}

/// The rows of a register block (all reading the same key/value head) and
/// their streaming state.
pub(crate) struct Rows<'b, const R: usize> {
    pub at: [At; R],
    /// The keys of the tile each row sees (tile coordinates).
    pub seen: [Range<usize>; R],
    pub run: &'b mut [Running],
    /// `‖q‖²` of each row (`NegLogDist`), or `‖q − c‖²` (`NegSqDist`).
    pub q_norm: &'b [f32],
}

/// A tile's scores: `s[r]` holds the dot products `q·k_j` of the rows with
/// keys `t0..` (offset by the centre for `NegSqDist`), and `kn` the keys'
/// squared norms (the same).
pub(crate) struct Scores<'s, const R: usize> {
    pub t0: usize,
    pub s: &'s mut [[f32; TK]; R],
    pub kn: &'s [f32; TK],
}

/// Where the outputs go: `data`, laid out by `layout`.
pub(crate) struct Dest<'o> {
    pub data: &'o mut [f32],
    pub layout: &'o Layout,
    /// P·V reads `bf16` values in pairs of vectors (`pv::Out::paired`).
    pub paired: bool,
}

/// The rest of a tile once the scores are in: weights and the online
/// softmax per row, then P·V ([`pv_rows`]) with `NC` output vectors per
/// register block, calling `ahead(j, columns)` before it reads those columns
/// of value `j`.
#[inline(always)]
fn update<S: Simd, E: Element, const R: usize, const NC: usize>(
    simd: S,
    p: &Problem<'_, E>,
    rows: Rows<'_, R>,
    scores: Scores<'_, R>,
    dest: &mut Dest<'_>,
    ahead: impl Fn(usize, Range<usize>) + Copy,
) {
    let Rows { at, seen, run, q_norm } = rows;
    let Scores { t0, s, kn } = scores;
    let hk = at[0].h / p.group;
    let (k, v) = (p.k.head(hk), p.v.head(hk));
    let nt = seen.iter().map(|r| r.end).max().unwrap_or(0);
    // `NegSqDist`: the largest `‖k_j − c‖²` of the tile, for `Row::finite`.
    let kn_max = if matches!(p.kind, Kind::SqDist { .. }) { largest(simd, &kn[..nt]) } else { 0.0 };
    let linear = weights::linear(p.kind, p.plain());
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
            finite: q_norm[r] + kn_max < f32::MAX / 2.0,
            bias: p.bias.map(|b| &b.row(h, i)[t0..t0 + nt]),
            softcap: p.softcap.map(|c| (c, 1.0 / c)),
            alibi: p.alibi.map(|a| {
                let (neg_slope, pos) = a.row(h, i);
                (neg_slope, pos - t0 as f32)
            }),
            linear,
        };
        let qi = p.q.head(h).row(i);
        alpha[r] =
            weights::weights(simd, p.kind, &mut s[r], kn, &row, &mut run[r], |j| sq_dist(qi, k.row(t0 + j)));
    }
    let offsets = at.map(|a| dest.layout.offset(a.h, a.i));
    let mut o = Out { data: &mut *dest.data, offsets: &offsets, paired: dest.paired };
    pv_rows::<S, E, R, NC>(simd, &mut o, alpha, s, v, t0, &seen, ahead);
}

/// The largest element of `x`, or NaN if `x` holds a NaN (−∞ if empty).
#[inline(always)]
fn largest<S: Simd>(simd: S, x: &[f32]) -> f32 {
    let l = S::LANES;
    let (mut max, mut nan) = (simd.splat(f32::NEG_INFINITY), simd.splat(0.0));
    let mut j = 0;
    while j + l <= x.len() {
        let v = simd.load(&x[j..]);
        (max, nan) = (max.max(v), nan.nan_or(v * simd.splat(0.0)));
        j += l;
    }
    let v = simd.load_partial(&x[j..]);
    (max, nan) = (max.max(v), nan.nan_or(v * simd.splat(0.0)));
    max.reduce_max() + nan.reduce_add()
}

/// P·V for rows that see the keys `seen[r]` of the tile (the rows
/// `t0 + seen[r]` of `v`): the keys every row
/// sees go through the `R`-row register block, the rest (near a causal
/// diagonal or a window edge) row by row.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pv_rows<S: Simd, E: Element, const R: usize, const NC: usize>(
    simd: S,
    out: &mut Out<'_>,
    alpha: [f32; R],
    s: &[[f32; TK]; R],
    v: MatRef<'_, E>,
    t0: usize,
    seen: &[Range<usize>; R],
    ahead: impl Fn(usize, Range<usize>) + Copy,
) {
    let d_v = v.cols();
    let nt = seen.iter().map(|r| r.end).max().unwrap_or(0);
    let common = seen.iter().fold(0..nt, |a, b| a.start.max(b.start)..a.end.min(b.end));
    let common = if common.is_empty() { 0..0 } else { common };
    if !common.is_empty() {
        pv::pv::<S, E, R, NC>(simd, out, alpha, s, v, t0, common.clone(), d_v, ahead);
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
        let s1: &[[f32; TK]; 1] = (&s[r..=r]).try_into().unwrap();
        let mut o1 = Out { data: &mut *out.data, offsets: &out.offsets[r..=r], paired: out.paired };
        if !before.is_empty() || a != 1.0 {
            pv::pv::<S, E, 1, NC>(simd, &mut o1, [a], s1, v, t0, before, d_v, ahead);
        }
        if !after.is_empty() {
            pv::pv::<S, E, 1, NC>(simd, &mut o1, [1.0], s1, v, t0, after, d_v, ahead);
        }
    }
}
