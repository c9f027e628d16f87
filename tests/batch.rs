//! Batches of sequences (`Attention::run_batch`, `par_run_batch`): packed
//! query rows (`cu_seqlens`), one cache per sequence, each contiguous or
//! paged.
//!
//! Each sequence of a batch runs the kernels `run_heads` runs on its views,
//! with the mask moved to the cache's last rows, so the batch must give bit
//! for bit what one `run_heads` call per sequence gives on a contiguous copy
//! of its cache with that mask. Those per-sequence results are held to the
//! f64 reference by `common::check` (its tolerance is derived there); no
//! other tolerance is used here.
//!
//! Outputs and log-sum-exps start as a NaN sentinel, so a row the batch
//! skips or writes to the wrong place shows; caches are paged pools with
//! NaN outside their rows (`common::Pool`) or padded buffers.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

#[macro_use]
mod common;

use common::{check, paths, Cache, Case, Elem, Layout, Path, Store};
use streamattn::{bf16, f16, Attention, Error, HeadsMut, HeadsRef, Mask, Scorer};

/// Not a value any kernel writes.
const SENTINEL: u32 = 0x7fc0_beef;

/// One batch: a case per sequence (sharing heads, `d`, `d_v`, scorer and
/// logit terms), the cache layout of each, the batch's mask and the layout
/// of the packed queries and outputs.
struct Batch {
    cases: Vec<Case>,
    layouts: Vec<Layout>,
    mask: Mask,
    seq_major: bool,
}

/// How the batch is run.
#[derive(Clone, Copy)]
enum Via {
    Run,
    #[cfg(feature = "rayon")]
    Par(streamattn::KvSplit<'static>),
}

impl Batch {
    fn cu_seqlens(&self) -> Vec<usize> {
        let mut cu = vec![0];
        for c in &self.cases {
            cu.push(cu.last().unwrap() + c.n_q);
        }
        cu
    }

    /// The batch's settings (those of the first case, the batch's mask).
    fn attention(&self) -> Attention<'_> {
        let c = &self.cases[0];
        let mut a = Attention::new(c.scorer).mask(self.mask);
        if let Some(cap) = c.softcap {
            a = a.softcap(cap);
        }
        if let Some(s) = &c.slopes {
            a = a.alibi(s);
        }
        if let Some(s) = &c.sinks {
            a = a.sinks(s);
        }
        a
    }

    /// Sequence `s` alone: its case with the batch's mask at its cache's
    /// last rows, as `run_heads` takes it.
    fn alone(&self, s: usize) -> Case {
        let c = &self.cases[s];
        let shift = c.n_kv - c.n_q;
        let mask = match self.mask {
            _ if c.n_q == 0 => Mask::None,
            Mask::Causal { offset } => Mask::Causal { offset: shift + offset },
            Mask::Window { offset, left, right } => Mask::Window { offset: shift + offset, left, right },
            m => m,
        };
        c.clone().with_mask(mask)
    }

    /// The split points `par_run_batch` with `Auto` would use, per sequence.
    #[cfg(feature = "rayon")]
    fn split_points(&self, path: Path) -> Vec<Vec<usize>> {
        let c0 = &self.cases[0];
        let cu = self.cu_seqlens();
        let total = cu[cu.len() - 1];
        let q = vec![0.0f32; total * c0.heads * c0.d];
        fn view<'x>(x: &'x [f32], c: &Case, cols: usize) -> HeadsRef<'x> {
            HeadsRef::seq_major(x, c.kv_heads, c.n_kv, cols).unwrap()
        }
        let (kx, vx): (Vec<Vec<f32>>, Vec<Vec<f32>>) = self
            .cases
            .iter()
            .map(|c| (vec![0.0; c.n_kv * c.kv_heads * c.d], vec![0.0; c.n_kv * c.kv_heads * c.dv]))
            .unzip();
        let k: Vec<HeadsRef<'_>> = self.cases.iter().zip(&kx).map(|(c, x)| view(x, c, c.d)).collect();
        let v: Vec<HeadsRef<'_>> = self.cases.iter().zip(&vx).map(|(c, x)| view(x, c, c.dv)).collect();
        let mut out = vec![0.0f32; total * c0.heads * c0.dv];
        let out = HeadsMut::seq_major(&mut out, c0.heads, total, c0.dv).unwrap();
        let q = HeadsRef::seq_major(&q, c0.heads, total, c0.d).unwrap();
        let attn = path.set(self.attention());
        attn.par_batch_split_points(q, &cu, &k, &v, &out, streamattn::KvSplit::Auto).unwrap()
    }

    /// Runs the batch; returns each sequence's dense `[h][i][c]` output and
    /// `[h][i]` lse.
    fn run(&self, path: Path, via: Via) -> Vec<Run> {
        match self.cases[0].elem {
            Elem::F32 => self.run_typed::<f32>(path, via),
            Elem::F16 => self.run_typed::<f16>(path, via),
            Elem::Bf16 => self.run_typed::<bf16>(path, via),
        }
    }

    fn run_typed<T: Store>(&self, path: Path, via: Via) -> Vec<Run> {
        let c0 = &self.cases[0];
        let (h, d, dv) = (c0.heads, c0.d, c0.dv);
        let cu = self.cu_seqlens();
        let total = cu[cu.len() - 1];
        // Packed row r of head hh, `cols` wide, in the queries' layout.
        let at = |hh: usize, r: usize, cols: usize| {
            if self.seq_major {
                (r * h + hh) * cols
            } else {
                (hh * total + r) * cols
            }
        };
        let mut q = vec![0.0f32; total * h * d];
        for (s, c) in self.cases.iter().enumerate() {
            for hh in 0..h {
                for i in 0..c.n_q {
                    q[at(hh, cu[s] + i, d)..][..d].copy_from_slice(c.qrow(hh, i));
                }
            }
        }
        let pack = |s: usize, c: &Case, data: &[f32], cols, seed| {
            Cache::<T>::pack(data, c.kv_heads, c.n_kv, cols, self.layouts[s], seed + s as u64)
        };
        let k: Vec<_> = self.cases.iter().enumerate().map(|(s, c)| pack(s, c, &c.k, d, 10)).collect();
        let v: Vec<_> = self.cases.iter().enumerate().map(|(s, c)| pack(s, c, &c.v, dv, 50)).collect();
        let k: Vec<HeadsRef<'_, T>> = k.iter().map(Cache::view).collect();
        let v: Vec<HeadsRef<'_, T>> = v.iter().map(Cache::view).collect();
        let mut out = vec![f32::from_bits(SENTINEL); total * h * dv];
        let mut lse = vec![f32::from_bits(SENTINEL); h * total];
        let (qv, ov) = if self.seq_major {
            (HeadsRef::seq_major(&q, h, total, d), HeadsMut::seq_major(&mut out, h, total, dv))
        } else {
            (HeadsRef::heads_major(&q, h, total, d), HeadsMut::heads_major(&mut out, h, total, dv))
        };
        let attn = path.set(self.attention());
        let result = match via {
            Via::Run => attn.run_batch(qv.unwrap(), &cu, &k, &v, ov.unwrap(), Some(&mut lse)),
            #[cfg(feature = "rayon")]
            Via::Par(split) => {
                attn.par_run_batch(qv.unwrap(), &cu, &k, &v, ov.unwrap(), Some(&mut lse), split)
            }
        };
        result.expect("valid batch rejected");
        self.cases
            .iter()
            .enumerate()
            .map(|(s, c)| {
                let mut o = Vec::new();
                let mut l = Vec::new();
                for hh in 0..h {
                    for i in 0..c.n_q {
                        o.extend_from_slice(&out[at(hh, cu[s] + i, dv)..][..dv]);
                        l.push(lse[hh * total + cu[s] + i]);
                    }
                }
                (o, l)
            })
            .collect()
    }
}

/// One sequence's dense `[h][i][c]` output and `[h][i]` lse.
type Run = (Vec<f32>, Vec<f32>);

/// Asserts that two runs agree bit for bit (NaN with NaN).
fn assert_same(a: &Run, b: &Run, what: &str) {
    for (name, x, y) in [("out", &a.0, &b.0), ("lse", &a.1, &b.1)] {
        assert_eq!(x.len(), y.len(), "{what}: {name} length");
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            assert!(
                p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan() && p.to_bits() != SENTINEL),
                "{what}: {name}[{i}] {p:e} vs {q:e}"
            );
        }
    }
}

/// (heads, kv_heads, d, d_v, sequences as (new rows, cache rows)): decodes,
/// prefill chunks, whole prompts, sequences without new rows or keys, a
/// cache of one key.
type Shape = (usize, usize, usize, usize, &'static [(usize, usize)]);

const BATCHES: &[Shape] = &[
    (4, 2, 32, 32, &[(1, 300), (0, 40), (17, 150), (1, 1), (3, 700), (0, 0), (2, 2), (1, 1100)]),
    (2, 1, 17, 8, &[(40, 40), (1, 129), (9, 300)]),
];

/// Cache layouts, one per sequence in turn.
const LAYOUTS: [Layout; 7] = [
    Layout::Paged { block_size: 16, seq_major: false },
    Layout::HeadsMajor,
    Layout::Paged { block_size: 3, seq_major: true },
    Layout::SeqMajor,
    Layout::Paged { block_size: 128, seq_major: false },
    Layout::Padded(3),
    Layout::Paged { block_size: 1, seq_major: true },
];

const MASKS: [Mask; 4] = [
    Mask::None,
    Mask::Causal { offset: 0 },
    Mask::Window { offset: 0, left: 100, right: 0 },
    Mask::Window { offset: 1, left: 5, right: 2 },
];

/// A batch of shape `BATCHES[b]` with random data.
fn batch(b: usize, seed: u64, scorer: Scorer<'static>, mask: Mask, elem: Elem) -> Batch {
    let (heads, kv_heads, d, dv, seqs) = BATCHES[b];
    let mut cases: Vec<Case> = seqs
        .iter()
        .enumerate()
        .map(|(s, &(n_q, n_kv))| {
            Case::random(seed * 100 + s as u64, heads, kv_heads, n_q, n_kv, d, dv, scorer).with_elem(elem)
        })
        .collect();
    let shared = cases[0].scorer; // the additive scorer's w, drawn from the seed
    let additive = matches!(scorer, Scorer::Additive { .. });
    for c in &mut cases {
        c.scorer = shared;
        match seed % 4 {
            1 if !additive => *c = c.clone().with_softcap(2.0).with_alibi(1.0),
            2 => *c = c.clone().with_sinks(seed, 2.0),
            _ => {}
        }
    }
    let layouts = (0..seqs.len()).map(|s| LAYOUTS[(s + seed as usize) % LAYOUTS.len()]).collect();
    Batch { cases, layouts, mask, seq_major: seed.is_multiple_of(2) }
}

#[test]
fn a_batch_computes_what_its_sequences_compute_alone() {
    let mut seed = 700;
    for b in 0..BATCHES.len() {
        for scorer in common::SCORERS {
            for mask in MASKS {
                seed += 1;
                let batch = batch(b, seed, scorer, mask, Elem::ALL[seed as usize % 3]);
                for s in 0..batch.cases.len() {
                    check(&batch.alone(s)); // each sequence against the f64 reference
                }
                for path in paths() {
                    let got = batch.run(path, Via::Run);
                    for (s, got) in got.iter().enumerate() {
                        let want = batch.alone(s).run(path);
                        assert_same(got, &want, &format!("{path:?}, batch {seed}, sequence {s}"));
                    }
                }
            }
        }
    }
}

/// The new rows' positions: with ALiBi and a window reaching past the
/// rows' own keys, a sequence computed with the mask of another position
/// would differ.
#[test]
fn each_sequence_is_aligned_to_its_own_cache() {
    let batch = batch(0, 1, Scorer::dot(), Mask::Window { offset: 0, left: 3, right: 1 }, Elem::F32);
    let got = batch.run(Path::best(), Via::Run);
    for (s, got) in got.iter().enumerate() {
        let c = &batch.cases[s];
        if c.n_q == 0 || c.n_kv == c.n_q {
            continue;
        }
        // The same rows placed at the cache's start (top-left) see other keys.
        let wrong = c.clone().with_mask(Mask::Window { offset: 0, left: 3, right: 1 }).run(Path::best());
        assert_ne!(got.0, wrong.0, "sequence {s}: aligned top-left");
    }
}

/// A valid batch of three sequences over `f32` caches, and its buffers.
struct Parts {
    q: Vec<f32>,
    k: Vec<Vec<f32>>,
    cu: Vec<usize>,
    out: Vec<f32>,
    lse: Vec<f32>,
}

const H: usize = 2;
const D: usize = 8;

fn parts() -> Parts {
    let rows = [(2, 10), (1, 30), (4, 4)];
    Parts {
        q: vec![0.1; 7 * H * D],
        k: rows.iter().map(|&(_, n)| vec![0.2; n * H * D]).collect(),
        cu: vec![0, 2, 3, 7],
        out: vec![f32::from_bits(SENTINEL); 7 * H * D],
        lse: vec![f32::from_bits(SENTINEL); H * 7],
    }
}

/// Runs `attn` on the batch `p` after `edit` changed it, with `k` of the
/// given rows per sequence; asserts the error and that nothing was written.
fn rejects(attn: Attention<'_>, mut p: Parts, rows: &[usize], lse_len: usize, want: Error) {
    let k: Vec<HeadsRef<'_>> =
        p.k.iter().zip(rows).map(|(k, &n)| HeadsRef::seq_major(&k[..n * H * D], H, n, D).unwrap()).collect();
    let total = p.q.len() / (H * D);
    let q = HeadsRef::seq_major(&p.q, H, total, D).unwrap();
    let out = HeadsMut::seq_major(&mut p.out, H, total, D).unwrap();
    let got = attn.run_batch(q, &p.cu, &k, &k, out, Some(&mut p.lse[..lse_len]));
    assert_eq!(got, Err(want));
    assert!(
        p.out.iter().chain(&p.lse).all(|x| x.to_bits() == SENTINEL),
        "{want:?}: written before the error"
    );
    #[cfg(feature = "rayon")]
    {
        let out = HeadsMut::seq_major(&mut p.out, H, total, D).unwrap();
        let split = streamattn::KvSplit::Auto;
        let got = attn.par_run_batch(q, &p.cu, &k, &k, out, Some(&mut p.lse[..lse_len]), split);
        assert_eq!(got, Err(want), "par_run_batch");
        assert!(p.out.iter().chain(&p.lse).all(|x| x.to_bits() == SENTINEL), "{want:?}: written (par)");
    }
}

#[test]
fn every_bad_batch_is_an_error_before_any_write() {
    let dot = Attention::new(Scorer::dot());
    let rows = [10, 30, 4];
    let full = H * 7;
    // The valid batch runs (and writes).
    {
        let mut p = parts();
        let k: Vec<HeadsRef<'_>> =
            p.k.iter().zip(rows).map(|(k, n)| HeadsRef::seq_major(k, H, n, D).unwrap()).collect();
        let q = HeadsRef::seq_major(&p.q, H, 7, D).unwrap();
        dot.run_batch(q, &p.cu, &k, &k, HeadsMut::seq_major(&mut p.out, H, 7, D).unwrap(), Some(&mut p.lse))
            .unwrap();
        assert!(p.out.iter().chain(&p.lse).all(|x| x.to_bits() != SENTINEL));
    }
    let norms = [0.0f32; 10];
    let bias = [0.0f32; 4];
    rejects(dot.key_len(3), parts(), &rows, full, Error::Unsupported { what: "key_len" });
    let b = streamattn::Bias::shared(&bias, 2, 2).unwrap();
    rejects(dot.bias(b), parts(), &rows, full, Error::Unsupported { what: "bias" });
    let n = HeadsRef::heads_major(&norms, 1, 10, 1).unwrap();
    rejects(dot.cached_key_norms(n), parts(), &rows, full, Error::Unsupported { what: "key_norms" });
    let mut p = parts();
    p.cu = vec![0, 2, 3];
    rejects(dot, p, &rows, full, Error::ShapeMismatch { what: "cu_seqlens", expected: 4, found: 3 });
    let mut p = parts();
    p.cu = vec![1, 2, 3, 7];
    rejects(dot, p, &rows, full, Error::ShapeMismatch { what: "cu_seqlens", expected: 0, found: 1 });
    let mut p = parts();
    p.cu = vec![0, 3, 2, 7];
    rejects(dot, p, &rows, full, Error::Decreasing { what: "cu_seqlens", index: 2 });
    let mut p = parts();
    p.cu = vec![0, 2, 3, 6];
    rejects(dot, p, &rows, full, Error::ShapeMismatch { what: "cu_seqlens", expected: 7, found: 6 });
    rejects(
        dot,
        parts(),
        &rows,
        full - 1,
        Error::BufferTooShort { what: "lse", needed: full, len: full - 1 },
    );
    // Sequence by sequence: the last one has 4 new rows over 3 cache rows.
    rejects(dot, parts(), &[10, 30, 3], full, Error::OutOfRange { what: "cu_seqlens", value: 4, max: 3 });
    let window = dot.mask(Mask::Window { offset: 2, left: 1, right: 0 });
    rejects(window, parts(), &rows, full, Error::OutOfRange { what: "offset", value: 2, max: 1 });
    let sinks = [0.0f32; 3];
    rejects(
        dot.sinks(&sinks),
        parts(),
        &rows,
        full,
        Error::ShapeMismatch { what: "sinks", expected: 2, found: 3 },
    );
}

#[test]
fn mismatched_views_are_errors() {
    let dot = Attention::new(Scorer::dot());
    let p = parts();
    let k: Vec<HeadsRef<'_>> =
        p.k.iter().map(|k| HeadsRef::seq_major(k, H, k.len() / (H * D), D).unwrap()).collect();
    let narrow = vec![0.0f32; 30 * H * 4];
    let q = HeadsRef::seq_major(&p.q, H, 7, D).unwrap();
    let mut out = p.out.clone();
    let mut run = |k: &[HeadsRef<'_>], v: &[HeadsRef<'_>], out_rows: usize| {
        let o = HeadsMut::seq_major(&mut out[..out_rows * H * D], H, out_rows, D).unwrap();
        dot.run_batch(q, &p.cu, k, v, o, None)
    };
    assert_eq!(run(&k, &k[..2], 7), Err(Error::ShapeMismatch { what: "v", expected: 3, found: 2 }));
    assert_eq!(run(&k, &k, 6), Err(Error::ShapeMismatch { what: "out", expected: 7, found: 6 }));
    let bad = [k[0], HeadsRef::seq_major(&narrow, H, 30, 4).unwrap(), k[2]];
    assert_eq!(run(&bad, &bad, 7), Err(Error::ShapeMismatch { what: "k", expected: D, found: 4 }));
    assert_eq!(run(&[], &[], 7), Err(Error::ShapeMismatch { what: "cu_seqlens", expected: 1, found: 4 }));
    assert!(out.iter().all(|x| x.to_bits() == SENTINEL));
    // An empty batch: no sequence, no rows.
    let o = HeadsMut::seq_major(&mut [], H, 0, D).unwrap();
    let q0 = HeadsRef::seq_major(&[], H, 0, D).unwrap();
    assert_eq!(dot.run_batch::<f32>(q0, &[0], &[], &[], o, None), Ok(()));
}

#[cfg(feature = "rayon")]
mod parallel {
    use super::*;
    use streamattn::KvSplit;

    /// Each sequence of `batch` run with `Auto` on a pool of `threads`:
    /// the split points the batch chose for it, and its result.
    fn auto(batch: &Batch, path: Path, threads: usize) -> (Vec<Vec<usize>>, Vec<Run>) {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| (batch.split_points(path), batch.run(path, Via::Par(KvSplit::Auto))))
    }

    /// `par_run_heads_split` at the given points.
    struct At<'p>(&'p [usize]);
    entry!(At<'_>, |self, a, q, k, v, out, lse| a.par_run_heads_split(
        q,
        k,
        v,
        out,
        lse,
        KvSplit::At(self.0)
    ));

    /// Asserts that each sequence of an `Auto` run is what
    /// `par_run_heads_split` gives for it alone at the points the batch
    /// chose, bit for bit (`tests/parallel.rs` bounds that result against
    /// the f64 reference).
    fn assert_auto(
        batch: &Batch,
        path: Path,
        points: &[Vec<usize>],
        auto: &[(Vec<f32>, Vec<f32>)],
        what: &str,
    ) {
        for s in 0..batch.cases.len() {
            let alone = batch.alone(s).run_with(path, At(&points[s]));
            assert_same(&auto[s], &alone, &format!("{what}, sequence {s}, split at {:?}", points[s]));
        }
    }

    /// Unsplit, the parallel batch is the single-thread batch bit for bit;
    /// with `Auto`, these batches of many small sequences are not split.
    #[test]
    fn the_parallel_batch_computes_what_its_sequences_compute() {
        let mut seed = 900;
        for b in 0..BATCHES.len() {
            for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
                for mask in MASKS {
                    seed += 1;
                    let batch = batch(b, seed, scorer, mask, Elem::ALL[seed as usize % 3]);
                    let path = Path::best();
                    let single = batch.run(path, Via::Run);
                    let par = batch.run(path, Via::Par(KvSplit::Off));
                    let (points, auto) = auto(&batch, path, 2);
                    assert!(points.iter().all(Vec::is_empty), "batch {seed}: split at {points:?}");
                    for s in 0..batch.cases.len() {
                        let what = format!("batch {seed}, sequence {s}");
                        assert_same(&par[s], &single[s], &format!("{what}, unsplit"));
                        assert_same(&auto[s], &single[s], &format!("{what}, auto"));
                    }
                }
            }
        }
    }

    /// `Auto` splits the keys of a sequence whose tasks are each more than
    /// a thread's share of the batch (one long decode over one key/value
    /// head) into `min(T, ⌈T·w/W⌉)` parts, and no other sequence; every
    /// sequence is then what `par_run_heads_split` gives at those points.
    #[test]
    fn auto_splits_the_sequences_that_would_hold_up_the_batch() {
        // Per-row work of the long decode: 8000 keys × 128 = 2^20 · 0.98,
        // room for 3 parts of at least 2^18; it is 88% of the batch's work.
        const SEQS: &[(usize, usize)] = &[(1, 8000), (1, 300), (4, 250), (0, 90)];
        let mut seed = 950;
        for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
            for mask in [Mask::None, Mask::Causal { offset: 0 }] {
                seed += 1;
                let cases = SEQS
                    .iter()
                    .enumerate()
                    .map(|(s, &(n_q, n_kv))| {
                        Case::random(seed * 100 + s as u64, 2, 1, n_q, n_kv, 64, 64, scorer)
                            .with_elem(Elem::ALL[seed as usize % 3])
                    })
                    .collect();
                let layouts = vec![
                    Layout::Paged { block_size: 16, seq_major: true },
                    Layout::SeqMajor,
                    Layout::HeadsMajor,
                    Layout::SeqMajor,
                ];
                let batch = Batch { cases, layouts, mask, seq_major: true };
                let path = Path::best();
                for threads in [2, 3] {
                    let (points, auto) = auto(&batch, path, threads);
                    let what = format!("{scorer:?}, {mask:?}, {threads} threads");
                    assert_eq!(
                        points[0].len(),
                        threads - 1,
                        "{what}: the long decode split at {:?}",
                        points[0]
                    );
                    assert!(points[1..].iter().all(Vec::is_empty), "{what}: split at {points:?}");
                    assert_auto(&batch, path, &points, &auto, &what);
                }
            }
        }
    }

    #[test]
    fn split_points_are_rejected_in_a_batch() {
        let p = parts();
        let k: Vec<HeadsRef<'_>> =
            p.k.iter().map(|k| HeadsRef::seq_major(k, H, k.len() / (H * D), D).unwrap()).collect();
        let mut out = p.out.clone();
        let got = Attention::new(Scorer::dot()).par_run_batch(
            HeadsRef::seq_major(&p.q, H, 7, D).unwrap(),
            &p.cu,
            &k,
            &k,
            HeadsMut::seq_major(&mut out, H, 7, D).unwrap(),
            None,
            KvSplit::At(&[5]),
        );
        assert_eq!(got, Err(Error::Unsupported { what: "split" }));
        assert!(out.iter().all(|x| x.to_bits() == SENTINEL));
    }
}
