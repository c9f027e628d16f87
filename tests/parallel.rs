//! The parallel entries (feature `rayon`): `cargo test --release --features rayon`.
//!
//! a. Without a key split, `par_run_heads` (and `par_run`, `par_run_lse`)
//!    equal the single-thread entries bit for bit: every scorer, mask, bias,
//!    key length, grouping, layout and kernel, decode and prefill shapes,
//!    several row blocks per head, on pools of 2, 3 and 4 threads.
//! b. Bad input gives the single-thread entry's `Err`, before any write.
//! c. Split-KV (`KvSplit::At`, `KvSplit::Auto`) against the f64 reference of
//!    `tests/common` and against the single-thread result, within a derived
//!    bound: split points at every tile boundary (the tiled kernel's 128- or
//!    64-key tiles, the scalar path's 32) and one off either side, many parts
//!    at once, masks whose rows straddle the split points.
//! d. The merge is associative and order-independent within the same bound.
//!
//! # The split-KV bound
//!
//! A split call computes each part `P_k` of the keys as a separate
//! single-thread call on sub-views, within that part's reference tolerance
//! (`Case::reference()` of the case restricted to the part's keys, derived at
//! the top of `tests/common/mod.rs`), and merges the parts in key order with
//! the crate's merge. `common::merge_bound` bounds one merge from its two
//! inputs' references and bounds; the bound of a merged result serves as
//! the tolerance of the next merge's input, so folding it over the parts
//! bounds the split result against the exact result (the reference of the
//! whole, which the fold's last union is). `merge_bound` needs a bound on the
//! gap between the two f32 log-sum-exps merged, which the test does not see:
//! `|L̃_a − L̃_b| ≤ |L_a − L_b| + λ_a + λ_b`. Against the single-thread
//! result, whose error is within the whole reference's tolerance, the bound
//! is the sum of the two.
//!
//! Partial results with an lse of `+∞` on both sides of a merge (two keys of
//! infinite score in one row) are averaged by the merge and not covered by
//! `merge_bound`; the data here are random, so no score is infinite.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]
#![cfg(feature = "rayon")]

#[macro_use]
mod common;

use common::{merge_bound, paths, Case, Elem, Layout, Path, Reference, Rng, Strided, SCORERS};
use core::ops::Range;
use core::slice;
use std::sync::OnceLock;
use streamattn::{merge, Attention, Bias, Error, HeadsMut, HeadsRef, KvSplit, Mask, MatMut, MatRef, Scorer};

// ---------------------------------------------------------------------------
// Helpers.

/// Pools of 2, 3 and 4 threads: more tasks than threads, uneven counts, and
/// (on a 2-core machine) more threads than cores.
fn pools() -> &'static [rayon::ThreadPool] {
    static POOLS: OnceLock<Vec<rayon::ThreadPool>> = OnceLock::new();
    POOLS.get_or_init(|| {
        [2, 3, 4].iter().map(|&n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()).collect()
    })
}

fn pool(n: usize) -> &'static rayon::ThreadPool {
    pools().iter().find(|p| p.current_num_threads() == n).unwrap()
}

/// `case` through `par_run_heads_split` with `kernel` and `split`.
/// A dense `n × d` view.
fn m(x: &[f32], n: usize, d: usize) -> MatRef<'_> {
    MatRef::dense(x, n, d).unwrap()
}

fn par(case: &Case, kernel: Path, split: KvSplit<'_>) -> (Vec<f32>, Vec<f32>) {
    let split = match split {
        KvSplit::Off => None,
        KvSplit::At(at) => Some(Some(at.to_vec())),
        _ => Some(None),
    };
    case.run_with(kernel, ParSplit(split))
}

/// `Attention::par_run_heads_split`, the split owned: `None` for
/// `KvSplit::Off`, `Some(None)` for `Auto`, `Some(Some(points))` for
/// `At(points)`.
struct ParSplit(Option<Option<Vec<usize>>>);

entry!(ParSplit, |self, a, q, k, v, out, lse| {
    let split = match &self.0 {
        None => KvSplit::Off,
        Some(None) => KvSplit::Auto,
        Some(Some(at)) => KvSplit::At(at),
    };
    a.par_run_heads_split(q, k, v, out, lse, split)
});

/// `Attention::par_run_heads`.
struct ParRunHeads;

entry!(ParRunHeads, |self, a, q, k, v, out, lse| a.par_run_heads(q, k, v, out, lse));

/// The parallel entries run at least this much work in parallel
/// (`heads · n_q · key_len · (d + d_v)`, `MIN_WORK` in `src/parallel.rs`);
/// the bit-identity cases are above it, so their tasks really are split.
const MIN_WORK: usize = 1 << 16;

fn work(c: &Case) -> usize {
    c.heads * c.n_q * c.key_len() * (c.d + c.dv)
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// Asserts that every parallel entry equals the single-thread one bit for
/// bit, on every pool.
fn assert_identical(case: &Case, kernel: Path, what: &str) {
    assert!(
        work(case) >= MIN_WORK || case.n_q == 0 || case.key_len() == 0,
        "{what}: too small to run in parallel"
    );
    let (so, sl) = case.run(kernel);
    for p in pools() {
        let n = p.current_num_threads();
        let (po, pl) = p.install(|| case.run_with(kernel, ParRunHeads));
        assert!(bits(&po) == bits(&so), "{what}, {kernel:?}, {n} threads: output differs");
        assert!(bits(&pl) == bits(&sl), "{what}, {kernel:?}, {n} threads: lse differs");
        // The explicit "no split" forms are the same call.
        let (ao, al) = p.install(|| par(case, kernel, KvSplit::At(&[0, case.n_kv])));
        assert!(bits(&ao) == bits(&so) && bits(&al) == bits(&sl), "{what}, {kernel:?}: At(0, n_kv) split");
    }
}

fn all_kernels() -> impl Iterator<Item = Path> {
    paths().into_iter()
}

/// Masks with a nonzero offset, a bottom-right causal mask and windows
/// (narrow, one-sided, reaching past both ends).
fn masks(n_q: usize, n_kv: usize) -> Vec<Mask> {
    vec![
        Mask::None,
        Mask::Causal { offset: n_kv / 3 },
        Mask::causal_bottom_right(n_q, n_kv),
        Mask::Window { offset: n_kv / 4, left: 37, right: 5 },
        Mask::Window { offset: 0, left: 0, right: 130 },
        Mask::Window { offset: n_kv, left: usize::MAX, right: usize::MAX },
    ]
}

/// `case` with a random mask-free variant: bias per head or shared, a key
/// length, or both, chosen by `v`; cached key norms when `v & 8`; K and
/// V stored as `f32`, `f16` or `bf16` by `seed` (a third of the cases each);
/// and a softcap, ALiBi and sinks for a quarter of the seeds.
fn variant(mut case: Case, v: usize, seed: u64) -> Case {
    case = case.with_elem(Elem::ALL[seed as usize % 3]);
    if seed % 4 == 1 {
        case = case.with_softcap(20.0).with_alibi(0.25).with_sinks(seed, 2.0);
    }
    if v & 8 != 0 {
        case = case.with_cached_norms();
    }
    if v & 1 != 0 {
        case = case.with_random_bias(seed, 2.0, v & 4 != 0);
    }
    if v & 2 != 0 {
        let n = case.n_kv * 5 / 7;
        case = case.with_key_len(n);
    }
    case
}

// ---------------------------------------------------------------------------
// a. Bit-identical without a split.

/// Every scorer × mask × layout × kernel on a prefill shape with grouped
/// heads (one task per query head), with bias and key length variants.
#[test]
fn identical_prefill_every_scorer_mask_layout() {
    let (heads, kv, n_q, n_kv, d, dv) = (4, 2, 37, 300, 24, 20);
    for (s, &scorer) in SCORERS.iter().enumerate() {
        for (m, mask) in masks(n_q, n_kv).into_iter().enumerate() {
            for (l, layout) in
                [Layout::HeadsMajor, Layout::SeqMajor, Layout::Padded(3)].into_iter().enumerate()
            {
                let seed = (s * 100 + m * 10 + l) as u64;
                let case = variant(
                    Case::random(seed, heads, kv, n_q, n_kv, d, dv, scorer)
                        .with_mask(mask)
                        .with_layout(layout),
                    (s + m + l) % 16,
                    seed,
                );
                for kernel in all_kernels() {
                    assert_identical(&case, kernel, &format!("{scorer:?}, {mask:?}, {layout:?}"));
                }
            }
        }
    }
}

/// Decode and near-decode shapes: the decode path (`group · n_q ≤ 8`, one
/// task per key/value head), the prefill path with at most 8 rows (one task
/// per key/value head) and with 9 to 12 rows and groups (one per query
/// head), on a long cache with every mask, bias and key length.
#[test]
fn identical_decode_and_grouped_heads() {
    // (heads, kv_heads, n_q): decode 1·1, 4·2 = 8; prefill 3·3 = 9 and 2·5 with
    // n_q ≤ 8; n_q = 9..12 with groups of 1, 2 and 4.
    let shapes = [
        (8, 8, 1),
        (8, 2, 1),
        (8, 2, 2),
        (4, 1, 2),
        (6, 2, 3),
        (4, 1, 3),
        (4, 2, 5),
        (4, 2, 9),
        (8, 2, 12),
        (2, 2, 10),
    ];
    for (t, &(heads, kv, n_q)) in shapes.iter().enumerate() {
        for (m, mask) in masks(n_q, 2000).into_iter().enumerate() {
            for &scorer in &[Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist(), SCORERS[7]] {
                let seed = (t * 100 + m) as u64;
                let layout = if (t + m) % 2 == 0 { Layout::SeqMajor } else { Layout::HeadsMajor };
                let case = variant(
                    Case::random(seed, heads, kv, n_q, 2000, 64, 48, scorer)
                        .with_mask(mask)
                        .with_layout(layout),
                    t + m,
                    seed,
                );
                for kernel in paths() {
                    assert_identical(
                        &case,
                        kernel,
                        &format!("{heads}/{kv} heads, n_q {n_q}, {mask:?}, {scorer:?}"),
                    );
                }
            }
        }
    }
}

/// More than one block of 1536 rows per head: a last block of 8 rows (joined
/// to the one before) and of 9 rows (a task of its own); head dimensions with
/// 128-key tiles, 64-key tiles, and above 256 (the kernel then blocks rows
/// by micro-blocks of 4 or 6 and packs keys in column chunks). Windows matter
/// most: the kernel's tiles start at the first key a row block sees, and
/// rows whose window starts before the keys their micro-block shares
/// accumulate those last; both depend on where blocks start. The keys reach
/// past the last row, so that every row sees some.
#[test]
fn identical_across_row_blocks() {
    let narrow =
        [Mask::Window { offset: 3, left: 20, right: 30 }, Mask::Window { offset: 50, left: 7, right: 0 }];
    let dense = [Mask::Causal { offset: 0 }, Mask::None];
    let shapes: [(usize, usize, &[Mask]); 4] = [
        (1536 + 8, 16, &[narrow[0], narrow[1], dense[0], dense[1]]),
        (2 * 1536 + 9, 16, &narrow),
        (1536 + 9, 200, &narrow),
        (1536 + 20, 264, &narrow),
    ];
    for (n_q, d, masks) in shapes {
        for (m, &mask) in masks.iter().enumerate() {
            let scorer = SCORERS[(m + d) % SCORERS.len()];
            let layout = if m % 2 == 0 { Layout::SeqMajor } else { Layout::HeadsMajor };
            let case =
                Case::random(m as u64, 2, 1, n_q, n_q + 60, d, 8, scorer).with_mask(mask).with_layout(layout);
            let case = variant(case, [0, 1, 5][(m + d) % 3], 7); // no bias, per head, shared
            let kernels: Vec<Path> = if d > 100 { common::tiled() } else { all_kernels().collect() };
            for kernel in kernels {
                assert_identical(&case, kernel, &format!("n_q {n_q}, d {d}, {mask:?}, {scorer:?}"));
            }
        }
    }
}

/// `par_run` and `par_run_lse` (one head) against `run` and `run_lse`, with a
/// padded output, and empty calls (`n_q = 0`, `n_kv = 0`, `key_len = 0`).
#[test]
fn identical_single_head_entries_and_empty_calls() {
    let (n_q, n_kv, d) = (100, 500, 32);
    let mut r = Rng::new(5);
    let (q, k, v) = (r.vec(n_q * d, 1.0), r.vec(n_kv * d, 1.0), r.vec(n_kv * d, 1.0));
    for mask in masks(n_q, n_kv) {
        let attn = Attention::new(Scorer::neg_sq_dist()).mask(mask);
        let (mut a, mut b) = (vec![9.0f32; n_q * (d + 3)], vec![9.0f32; n_q * (d + 3)]);
        let (mut la, mut lb) = (vec![0.0f32; n_q], vec![0.0f32; n_q]);
        attn.run_lse(
            m(&q, n_q, d),
            m(&k, n_kv, d),
            m(&v, n_kv, d),
            MatMut::new(&mut a, n_q, d, d + 3).unwrap(),
            &mut la,
        )
        .unwrap();
        pool(3).install(|| {
            let o = MatMut::new(&mut b, n_q, d, d + 3).unwrap();
            attn.par_run_lse(m(&q, n_q, d), m(&k, n_kv, d), m(&v, n_kv, d), o, &mut lb).unwrap()
        });
        assert_eq!(bits(&a), bits(&b), "par_run_lse, {mask:?}");
        assert_eq!(bits(&la), bits(&lb), "par_run_lse, {mask:?}");
        b.fill(9.0);
        pool(2).install(|| {
            let o = MatMut::new(&mut b, n_q, d, d + 3).unwrap();
            attn.par_run(m(&q, n_q, d), m(&k, n_kv, d), m(&v, n_kv, d), o).unwrap()
        });
        assert_eq!(bits(&a), bits(&b), "par_run, {mask:?}");
    }
    // Empty calls, split or not: n_q = 0 writes nothing; no key gives 0 and −∞.
    let no_rows = Case::random(1, 2, 1, 0, 5, 4, 4, Scorer::dot());
    let no_len = Case::random(1, 2, 1, 20, 5, 4, 4, Scorer::dot()).with_key_len(0);
    let mut no_keys = Case::random(1, 2, 1, 20, 0, 4, 4, Scorer::dot());
    (no_keys.k, no_keys.v) = (vec![], vec![]);
    for split in [KvSplit::Off, KvSplit::Auto, KvSplit::At(&[0, 1, 3])] {
        let split0 = if matches!(split, KvSplit::At(_)) { KvSplit::At(&[0]) } else { split };
        assert_eq!(pool(2).install(|| par(&no_rows, Path::best(), split)), (vec![], vec![]));
        for (case, split) in [(&no_len, split), (&no_keys, split0)] {
            let (o, l) = pool(2).install(|| par(case, Path::best(), split));
            assert!(o.iter().all(|&x| x.to_bits() == 0), "{split:?}: output of a row without keys");
            assert!(l.iter().all(|&x| x == f32::NEG_INFINITY), "{split:?}: lse of a row without keys");
        }
    }
}

// ---------------------------------------------------------------------------
// b. Errors.

/// An entry under test: the attention, the output and the lse.
type Entry<'x> = dyn Fn(&Attention<'_>, HeadsMut<'_>, &mut [f32]) -> Result<(), Error> + 'x;

/// Each bad input gives the single-thread entry's error from every parallel
/// entry, and nothing is written.
#[test]
fn errors_match_single_thread() {
    let (h, n_q, n_kv, d) = (4, 10, 50, 8);
    let q = vec![0.5f32; h * n_q * d];
    let kv = vec![0.25f32; 2 * n_kv * d];
    let bias = vec![0.0f32; n_q * n_kv];
    let short_bias = vec![0.0f32; n_q * n_kv - 1];
    let hq = |heads: usize, rows: usize, cols: usize| {
        HeadsRef::heads_major(&q[..heads * rows * cols], heads, rows, cols).unwrap()
    };
    let hk = |heads: usize, rows: usize, cols: usize| {
        HeadsRef::heads_major(&kv[..heads * rows * cols], heads, rows, cols).unwrap()
    };
    let dot = Attention::new(Scorer::dot());
    // (attention, q, k/v, lse length): each case is wrong in one way.
    let cases: Vec<(&str, Attention<'_>, HeadsRef<'_>, HeadsRef<'_>, usize)> = vec![
        ("d mismatch", dot, hq(h, n_q, d), hk(2, n_kv / 2, 2 * d), h * n_q),
        ("grouping", dot, hq(3, n_q, d), hk(2, n_kv, d), 3 * n_q),
        ("scale", Attention::new(Scorer::Dot { scale: Some(-1.0) }), hq(h, n_q, d), hk(2, n_kv, d), h * n_q),
        (
            "eps",
            Attention::new(Scorer::NegLogDist { eps: -1.0, p: 2.0 }),
            hq(h, n_q, d),
            hk(2, n_kv, d),
            h * n_q,
        ),
        (
            "p",
            Attention::new(Scorer::NegLogDist { eps: 1e-3, p: 0.0 }),
            hq(h, n_q, d),
            hk(2, n_kv, d),
            h * n_q,
        ),
        ("offset", dot.mask(Mask::Causal { offset: n_kv + 1 }), hq(h, n_q, d), hk(2, n_kv, d), h * n_q),
        ("key_len", dot.key_len(n_kv + 1), hq(h, n_q, d), hk(2, n_kv, d), h * n_q),
        (
            "bias shape",
            dot.bias(Bias::shared(&bias, n_q, n_kv - 1).unwrap()),
            hq(h, n_q, d),
            hk(2, n_kv, d),
            h * n_q,
        ),
        (
            "bias short",
            dot.bias(Bias::shared(&short_bias, n_q, n_kv).unwrap()),
            hq(h, n_q, d),
            hk(2, n_kv, d),
            h * n_q,
        ),
        ("lse short", dot, hq(h, n_q, d), hk(2, n_kv, d), h * n_q - 1),
    ];
    for (what, attn, q, k, lse_len) in cases {
        let n_out = q.heads() * q.rows() * k.cols();
        let run = |entry: &Entry<'_>| {
            let mut out = vec![7.0f32; n_out];
            let mut lse = vec![7.0f32; lse_len];
            let o = HeadsMut::heads_major(&mut out, q.heads(), q.rows(), k.cols()).unwrap();
            let r = entry(&attn, o, &mut lse);
            assert!(out.iter().chain(&lse).all(|&x| x == 7.0), "{what}: written before the error");
            r
        };
        let expected = run(&|a, o, l| a.run_heads(q, k, k, o, Some(l)));
        assert!(expected.is_err(), "{what}: accepted");
        for n in [2, 3] {
            pool(n).install(|| {
                assert_eq!(run(&|a, o, l| a.par_run_heads(q, k, k, o, Some(l))), expected, "{what}");
                for split in [KvSplit::Auto, KvSplit::At(&[1, 10]), KvSplit::At(&[n_kv + 5])] {
                    let got = run(&|a, o, l| a.par_run_heads_split(q, k, k, o, Some(l), split));
                    assert_eq!(got, expected, "{what}, {split:?}");
                }
            });
        }
    }
    // A split point past n_kv, and only that, is an error of its own.
    let (q, k) = (hq(h, n_q, d), hk(2, n_kv, d));
    let mut out = vec![7.0f32; h * n_q * d];
    let o = HeadsMut::heads_major(&mut out, h, n_q, d).unwrap();
    let r = dot.par_run_heads_split(q, k, k, o, None, KvSplit::At(&[3, n_kv + 1, 9]));
    assert_eq!(r, Err(Error::OutOfRange { what: "split", value: n_kv + 1, max: n_kv }));
    assert!(out.iter().all(|&x| x == 7.0));
}

// ---------------------------------------------------------------------------
// c. Split-KV against the reference.

/// The reference of `case` restricted to the keys in `keep`: same mask and
/// key length, every other key masked by a `−∞` bias. Its tolerance is that
/// of `tests/common` for the row's visible keys (the masked ones only add
/// terms to `n_i`, which makes it larger).
fn restricted(case: &Case, keep: &[Range<usize>]) -> Reference {
    restrict(case, keep).reference()
}

/// `case` with every key outside `keep` masked by a `−∞` bias.
fn restrict(case: &Case, keep: &[Range<usize>]) -> Case {
    let mut c = case.clone();
    let mut b = Vec::with_capacity(case.heads * case.n_q * case.n_kv);
    for h in 0..case.heads {
        for i in 0..case.n_q {
            for j in 0..case.n_kv {
                let kept = keep.iter().any(|r| r.contains(&j));
                b.push(if kept { case.bias_at(h, i, j) } else { f32::NEG_INFINITY });
            }
        }
    }
    c.bias = Some(b);
    c.bias_shared = false;
    c
}

/// The bound of a merge of `a` into `b` for every row (see the module docs):
/// a reference whose exact values are those of `union` (the reference of
/// both inputs' keys) and whose tolerances are the merge's bounds.
fn merged(a: &Reference, b: &Reference, union: Reference, dv: usize) -> Reference {
    let mut m = union;
    for row in 0..m.lse.len() {
        let (la, lb) = (a.lse[row], b.lse[row]);
        let gap = if la.is_finite() && lb.is_finite() {
            (la - lb).abs() + a.lse_tol[row] + b.lse_tol[row]
        } else {
            0.0
        };
        let (out, lse) = merge_bound(a, b, gap, row, dv);
        m.tol[row * dv..(row + 1) * dv].copy_from_slice(&out);
        m.lse_tol[row] = lse;
    }
    m
}

/// The bound of the split call's result: the merge bound folded over the
/// parts `bounds[k]..bounds[k + 1]`, in key order.
fn split_reference(case: &Case, bounds: &[usize]) -> Reference {
    // The parts have no sinks: the split call merges them in last, as a
    // part of output 0 and log-sum-exp `sinks[h]` (exact).
    let parts = Case { sinks: None, ..case.clone() };
    let mut acc = restricted(&parts, slice::from_ref(&(bounds[0]..bounds[1])));
    for w in bounds.windows(2).skip(1) {
        let part = restricted(&parts, slice::from_ref(&(w[0]..w[1])));
        let union = restricted(&parts, slice::from_ref(&(bounds[0]..w[1])));
        acc = merged(&acc, &part, union, case.dv);
    }
    if let Some(sinks) = &case.sinks {
        let rows = case.heads * case.n_q;
        let sink = Reference {
            out: vec![0.0; rows * case.dv],
            lse: (0..rows).map(|r| sinks[r / case.n_q] as f64).collect(),
            tol: vec![0.0; rows * case.dv],
            lse_tol: vec![0.0; rows],
        };
        acc = merged(&acc, &sink, restricted(case, slice::from_ref(&(bounds[0]..case.n_kv))), case.dv);
    }
    acc
}

/// Checks a split call with the split points `points` against the f64
/// reference (within the folded merge bound) and against the single-thread
/// result (that plus the whole reference's tolerance), on pools of 2, 3, 4.
/// The result must not depend on the pool.
fn check_split(case: &Case, kernel: Path, points: &[usize], what: &str) {
    let mut bounds = vec![0];
    bounds.extend(points.iter().copied().filter(|&t| t > 0 && t < case.n_kv));
    bounds.push(case.n_kv);
    bounds.dedup();
    let split = split_reference(case, &bounds);
    let whole = case.reference();
    let (so, sl) = case.run(kernel);
    let mut first: Option<(Vec<u32>, Vec<u32>)> = None;
    for p in pools() {
        let (po, pl) = p.install(|| par(case, kernel, KvSplit::At(points)));
        let what = format!("{what}, {kernel:?}, split at {points:?}, {} threads", p.current_num_threads());
        split.assert_close(&po, &pl, 1.0, &format!("{what}: split vs f64"));
        for (idx, (&a, &b)) in po.iter().zip(&so).enumerate() {
            let bound = split.tol[idx] + whole.tol[idx];
            let err = (a as f64 - b as f64).abs();
            assert!(
                err <= bound,
                "{what}: out[{idx}] split {a:e} vs single-thread {b:e}: {err:e} > {bound:e}"
            );
        }
        for (idx, (&a, &b)) in pl.iter().zip(&sl).enumerate() {
            let bound = split.lse_tol[idx] + whole.lse_tol[idx];
            let ok = if b.is_infinite() { a == b } else { (a as f64 - b as f64).abs() <= bound };
            assert!(ok, "{what}: lse[{idx}] split {a:e} vs single-thread {b:e}, bound {bound:e}");
        }
        let got = (bits(&po), bits(&pl));
        match &first {
            None => first = Some(got),
            Some(f) => assert!(*f == got, "{what}: result depends on the pool"),
        }
    }
}

/// The tile width of a kernel for head dimension `d`.
fn tile(kernel: Path, d: usize) -> usize {
    match kernel {
        Path::Scalar => 32,
        _ if d <= 128 => 128,
        _ => 64,
    }
}

/// One split point at every tile boundary of the kernel and one key either
/// side, on decode shapes (grouped heads, one to three rows) and a short
/// prefill, with masks, bias and key length.
#[test]
fn split_at_every_tile_boundary() {
    let cases = [
        // (heads, kv_heads, n_q, n_kv, d, dv, mask)
        (2, 1, 1, 390, 32, 24, Mask::None),
        (4, 2, 3, 300, 40, 16, Mask::causal_bottom_right(3, 300)),
        (2, 2, 2, 270, 136, 8, Mask::Window { offset: 120, left: 70, right: 60 }),
        (2, 1, 12, 260, 16, 16, Mask::Window { offset: 100, left: 30, right: 3 }),
    ];
    for (c, &(heads, kv, n_q, n_kv, d, dv, mask)) in cases.iter().enumerate() {
        for (s, &scorer) in SCORERS.iter().enumerate().filter(|(s, _)| (s + c) % 2 == 0) {
            let seed = (c * 10 + s) as u64;
            let layout = if s % 4 < 2 { Layout::SeqMajor } else { Layout::HeadsMajor };
            let case = variant(
                Case::random(seed, heads, kv, n_q, n_kv, d, dv, scorer).with_mask(mask).with_layout(layout),
                s + c,
                seed,
            );
            for kernel in [Path::Scalar, Path::best()] {
                let tk = tile(kernel, d);
                for t in (tk..n_kv).step_by(tk) {
                    for p in [t - 1, t, t + 1] {
                        check_split(&case, kernel, &[p], &format!("{scorer:?}, {mask:?}, {layout:?}"));
                    }
                }
            }
        }
    }
}

/// Many parts at once: every tile boundary and its neighbours, parts of a
/// single key, points past the key length; rows whose causal diagonal or
/// window edges fall inside, before and after parts.
#[test]
fn split_into_many_parts() {
    let masks = [
        Mask::None,
        Mask::Causal { offset: 40 },
        Mask::Window { offset: 10, left: 25, right: 45 },
        Mask::Window { offset: 200, left: 0, right: 0 },
    ];
    for (m, mask) in masks.into_iter().enumerate() {
        for (s, &scorer) in SCORERS.iter().enumerate().filter(|(s, _)| (s + m) % 3 == 0) {
            let seed = (m * 10 + s) as u64;
            let case = variant(
                Case::random(seed, 4, 2, 20, 330, 24, 12, scorer)
                    .with_mask(mask)
                    .with_layout(Layout::SeqMajor),
                m + s,
                seed,
            );
            for kernel in paths() {
                let tk = tile(kernel, case.d);
                let mut points: Vec<usize> =
                    (tk..case.n_kv).step_by(tk).flat_map(|t| [t - 1, t, t + 1]).collect();
                points.extend([7, 8, 250, 251, 329, 330]);
                check_split(&case, kernel, &points, &format!("{scorer:?}, {mask:?}"));
            }
        }
    }
}

/// `KvSplit::Auto`: splits a decode with fewer key/value heads than threads
/// (and none otherwise), its result is that of `At` with the points it
/// chose, and it is within the bound of those points.
#[test]
fn split_auto() {
    let points = |case: &Case, n: usize| {
        let q = Strided::pack(&case.q, case.heads, case.n_q, case.d, case.layout);
        let k = Strided::pack(&case.k, case.kv_heads, case.n_kv, case.d, case.layout);
        let v = Strided::pack(&case.v, case.kv_heads, case.n_kv, case.dv, case.layout);
        let mut o = vec![0.0f32; case.heads * case.n_q * case.dv];
        let o = HeadsMut::heads_major(&mut o, case.heads, case.n_q, case.dv).unwrap();
        pool(n)
            .install(|| case.attention().par_split_points(q.view(), k.view(), v.view(), &o, KvSplit::Auto))
            .unwrap()
    };
    // One head, one query, 8192 keys of d = d_v = 128: two parts on 2
    // threads, three on 3; eight heads on 2 or 4 threads: no split.
    let one = Case::random(1, 1, 1, 1, 8192, 128, 128, Scorer::dot());
    assert_eq!(points(&one, 2), vec![4096]);
    assert_eq!(points(&one, 3), vec![2688, 5376]);
    assert_eq!(points(&Case::random(1, 8, 8, 1, 8192, 128, 128, Scorer::dot()), 2), Vec::<usize>::new());
    assert_eq!(points(&Case::random(1, 8, 8, 1, 8192, 128, 128, Scorer::dot()), 4), Vec::<usize>::new());
    // Small caches are not split.
    assert_eq!(points(&Case::random(1, 1, 1, 1, 1500, 128, 128, Scorer::dot()), 2), Vec::<usize>::new());
    // A window: only the keys it sees are split.
    let w = one.clone().with_mask(Mask::Window { offset: 6000, left: 4000, right: 0 });
    assert_eq!(points(&w, 2), vec![2000 + 1920]);
    // Three KV heads of 6 query heads: 2 parts each on 2 threads, and on 4
    // (4 wanted, but 6000 keys of d + d_v = 128 make only 2 of 2^18).
    let gqa = Case::random(2, 6, 3, 1, 6000, 64, 64, Scorer::neg_sq_dist())
        .with_mask(Mask::causal_bottom_right(1, 6000))
        .with_layout(Layout::SeqMajor);
    for (case, n) in [(one.clone(), 2), (one.clone(), 3), (w, 2), (gqa.clone(), 2), (gqa, 4)] {
        let at = points(&case, n);
        assert!(!at.is_empty(), "no split chosen on {n} threads");
        let (ao, al) = pool(n).install(|| par(&case, Path::best(), KvSplit::Auto));
        let (bo, bl) = pool(n).install(|| par(&case, Path::best(), KvSplit::At(&at)));
        assert!(bits(&ao) == bits(&bo) && bits(&al) == bits(&bl), "Auto differs from At({at:?})");
        check_split(&case, Path::best(), &at, "Auto");
    }
}

// ---------------------------------------------------------------------------
// d. The merge: associative and order-independent.

/// A merge tree over partial results: a leaf (part index) or a merge of the
/// left subtree's result with the right's (`merge(left, right)`).
enum Tree {
    Leaf(usize),
    Node(Box<Tree>, Box<Tree>),
}

fn leaf(i: usize) -> Tree {
    Tree::Leaf(i)
}

fn node(a: Tree, b: Tree) -> Tree {
    Tree::Node(Box::new(a), Box::new(b))
}

/// Merges the partials as `tree` says; returns the result, the parts it
/// covers, and its bound (a reference over those parts' keys with the
/// composed merge bounds as tolerance).
fn eval(
    tree: &Tree,
    case: &Case,
    parts: &[Range<usize>],
    partials: &[(Vec<f32>, Vec<f32>)],
) -> (Vec<f32>, Vec<f32>, Vec<Range<usize>>, Reference) {
    match tree {
        Tree::Leaf(i) => {
            let (o, l) = partials[*i].clone();
            (o, l, vec![parts[*i].clone()], restricted(case, slice::from_ref(&parts[*i])))
        }
        Tree::Node(a, b) => {
            let (mut oa, mut la, mut ka, ra) = eval(a, case, parts, partials);
            let (ob, lb, kb, rb) = eval(b, case, parts, partials);
            let n_q = case.n_q;
            merge(
                MatMut::dense(&mut oa, n_q, case.dv).unwrap(),
                &mut la,
                MatRef::dense(&ob, n_q, case.dv).unwrap(),
                &lb,
            )
            .unwrap();
            ka.extend(kb);
            let m = merged(&ra, &rb, restricted(case, &ka), case.dv);
            (oa, la, ka, m)
        }
    }
}

/// Four partial results merged by every association and in several orders:
/// each result is within its tree's composed bound of the exact whole, so
/// any two are within the sum of their bounds of each other.
#[test]
fn merge_is_associative_and_order_independent() {
    for (s, &scorer) in SCORERS.iter().enumerate() {
        for mask in
            [Mask::None, Mask::causal_bottom_right(5, 260), Mask::Window { offset: 70, left: 60, right: 90 }]
        {
            let mut case = Case::random(s as u64, 1, 1, 5, 260, 20, 12, scorer).with_mask(mask);
            if s % 2 == 1 {
                case = case.with_random_bias(9, 3.0, false);
            }
            let parts = [0..40, 40..128, 128..129, 129..260];
            for kernel in [Path::Scalar, Path::best()] {
                // Each partial: the case with the keys outside the part masked
                // by a −∞ bias (what `restricted` describes).
                let partials: Vec<_> =
                    parts.iter().map(|p| restrict(&case, slice::from_ref(p)).run(kernel)).collect();
                let trees = [
                    node(node(node(leaf(0), leaf(1)), leaf(2)), leaf(3)),
                    node(leaf(0), node(leaf(1), node(leaf(2), leaf(3)))),
                    node(node(leaf(0), leaf(1)), node(leaf(2), leaf(3))),
                    node(node(node(leaf(3), leaf(1)), leaf(0)), leaf(2)),
                    node(node(leaf(2), leaf(0)), node(leaf(3), leaf(1))),
                ];
                let results: Vec<_> = trees.iter().map(|t| eval(t, &case, &parts, &partials)).collect();
                for (t, (o, l, _, r)) in results.iter().enumerate() {
                    r.assert_close(o, l, 1.0, &format!("{scorer:?}, {mask:?}, {kernel:?}, tree {t} vs f64"));
                }
                for (a, (oa, la, _, ra)) in results.iter().enumerate() {
                    for (oc, lc, _, rc) in &results[a + 1..] {
                        for i in 0..oa.len() {
                            let err = (oa[i] as f64 - oc[i] as f64).abs();
                            assert!(
                                err <= ra.tol[i] + rc.tol[i],
                                "{scorer:?}, {mask:?}: trees differ at out[{i}]"
                            );
                        }
                        for i in 0..la.len() {
                            let ok = if la[i].is_infinite() {
                                la[i] == lc[i]
                            } else {
                                (la[i] as f64 - lc[i] as f64).abs() <= ra.lse_tol[i] + rc.lse_tol[i]
                            };
                            assert!(ok, "{scorer:?}, {mask:?}: trees differ at lse[{i}]");
                        }
                    }
                }
            }
        }
    }
}

/// `+∞` scores in several parts of a split: the result is the mean of the
/// values of all the row's `+∞` keys, as the unsplit call gives it, not the
/// mean of the parts' means. `NegLogDist` with `eps = 0` scores an exact
/// match `+∞`: with `q = 0` and keys `[0, 1, 0, 0]` (values 3, 100, 6, 9),
/// the row is `(3 + 6 + 9) / 3 = 6`, whichever keys the parts hold; the
/// same with a `+∞` bias on keys of `Dot`, on rows of several heads, in
/// every kernel.
#[test]
fn split_with_infinite_scores_in_several_parts() {
    let cases = [
        // (scorer, keys, values, bias, expected)
        (Scorer::NegLogDist { eps: 0.0, p: 2.0 }, [0.0, 1.0, 0.0, 0.0], [3.0, 100.0, 6.0, 9.0], None, 6.0),
        (
            Scorer::dot(),
            [0.5, 1.0, 0.25, 0.0],
            [3.0, 100.0, 6.0, 9.0],
            Some([f32::INFINITY, 0.0, f32::INFINITY, f32::INFINITY]),
            6.0,
        ),
    ];
    for (scorer, keys, values, bias, want) in cases {
        // Two heads (one KV head): each row repeats the pattern, on a longer
        // cache whose `+∞` keys fall in several parts of every split below.
        let n_kv = 4 * 64;
        let mut case = Case::random(9, 2, 1, 1, n_kv, 1, 1, scorer);
        case.q = vec![0.0; 2];
        case.k = (0..n_kv).map(|j| keys[j % 4]).collect();
        case.v = (0..n_kv).map(|j| values[j % 4]).collect();
        if let Some(b) = bias {
            case.bias = Some((0..n_kv).map(|j| b[j % 4]).collect());
            case.bias_shared = true;
        }
        for kernel in paths() {
            let (whole, whole_lse) = case.run(kernel);
            assert_eq!(whole, vec![want; 2], "{scorer:?} {kernel:?} unsplit");
            for points in [&[1][..], &[2, 130], &[64, 128, 192], &[3, 5, 7, 9, 200]] {
                let (out, lse) = par(&case, kernel, KvSplit::At(points));
                for (o, w) in out.iter().zip(&whole) {
                    assert!(
                        (o - w).abs() <= 4.0 * f32::EPSILON * w.abs(),
                        "{scorer:?} {kernel:?} {points:?}: {o} vs {w}"
                    );
                }
                assert_eq!(lse, whole_lse, "{scorer:?} {kernel:?} {points:?}");
            }
        }
    }
}
