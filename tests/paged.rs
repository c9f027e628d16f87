//! Paged caches (`HeadsRef::paged`): keys and values in blocks of a pool,
//! found through a block table.
//!
//! The kernels read a paged cache a stretch of rows at a time (the rest of
//! a block) with the same arithmetic, in the same order, as a contiguous
//! cache, so a paged cache must give bit for bit the result of the same
//! data stored contiguously, on every path and dispatch level, through the
//! parallel entries too. The contiguous result is held to the f64
//! reference by `common::check` (its tolerance is derived there); no other
//! tolerance is used here.
//!
//! Every pool has its blocks in a shuffled order, unused blocks, NaN in
//! every element the cache does not own, and a table entry past the ones
//! read that names no block (`common::Pool`): a kernel that reads a wrong
//! row, block or entry gives NaN or a wrong value, not a near miss.

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

#[macro_use]
mod common;

use common::{check, paths, Case, Elem, Layout, Pool, Rng};
use streamattn::{key_norms, Error, HeadsMut, HeadsRef, Mask, PagedLayout, Scorer};

/// Block sizes: one row, a size that is not a power of two, and the
/// common ones (16 rows is under a decode tile, 128 a whole tile).
const BLOCK_SIZES: [usize; 4] = [1, 3, 16, 128];

/// (heads, kv_heads, n_q, n_kv, d, d_v): decode, grouped decode, prefill,
/// a long cache with a few rows, two keys, no keys.
const SHAPES: &[(usize, usize, usize, usize, usize, usize)] = &[
    (2, 2, 1, 300, 64, 64),
    (4, 1, 1, 700, 33, 17),
    (1, 1, 40, 150, 64, 64),
    (2, 1, 3, 700, 17, 8),
    (1, 1, 5, 2, 8, 8),
    (1, 1, 2, 0, 8, 8),
];

fn masks(n_q: usize, n_kv: usize) -> [Mask; 3] {
    [
        Mask::None,
        Mask::causal_bottom_right(n_q, n_kv),
        Mask::Window { offset: n_kv.saturating_sub(n_q), left: 100, right: 0 },
    ]
}

/// `case` with its keys and values paged in blocks of `block_size`.
fn paged(case: &Case, block_size: usize, seq_major: bool) -> Case {
    case.clone().with_layout(Layout::Paged { block_size, seq_major })
}

/// Asserts that two runs agree bit for bit (NaN with NaN).
fn assert_same(a: &(Vec<f32>, Vec<f32>), b: &(Vec<f32>, Vec<f32>), what: &str) {
    for (name, x, y) in [("out", &a.0, &b.0), ("lse", &a.1, &b.1)] {
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            assert!(
                p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan()),
                "{what}: {name}[{i}] {p:e} vs {q:e}"
            );
        }
    }
}

#[test]
fn a_paged_cache_computes_what_its_contiguous_copy_computes() {
    let mut seed = 9100;
    for &(heads, kv_heads, n_q, n_kv, d, dv) in SHAPES {
        for scorer in common::SCORERS {
            for mask in masks(n_q, n_kv) {
                seed += 1;
                let elem = Elem::ALL[seed as usize % 3];
                let mut case = Case::random(seed, heads, kv_heads, n_q, n_kv, d, dv, scorer)
                    .with_mask(mask)
                    .with_elem(elem);
                // The logit terms and cached norms on some cases.
                match seed % 5 {
                    0 => case = case.with_cached_norms(),
                    1 => case = case.with_softcap(2.0).with_alibi(1.0),
                    2 => case = case.with_sinks(seed, 2.0),
                    _ => {}
                }
                if matches!(scorer, Scorer::Additive { .. }) {
                    case.softcap = None; // checked at each call: the additive scorer takes none
                    case.slopes = None;
                }
                check(&case);
                for path in paths() {
                    let contiguous = case.run(path);
                    for (b, &bs) in BLOCK_SIZES.iter().enumerate() {
                        let seq_major = (b + seed as usize).is_multiple_of(2);
                        let what = format!("{path:?}, block size {bs}, seq-major {seq_major}, case {seed}");
                        assert_same(&paged(&case, bs, seq_major).run(path), &contiguous, &what);
                    }
                }
            }
        }
    }
}

#[cfg(feature = "rayon")]
mod parallel {
    use super::*;
    use streamattn::KvSplit;

    /// `par_run_heads_split` at the given split points (`None`: no split).
    struct Par(Option<Vec<usize>>);

    entry!(Par, |self, a, q, k, v, out, lse| {
        let split = match &self.0 {
            None => KvSplit::Off,
            Some(at) => KvSplit::At(at),
        };
        a.par_run_heads_split(q, k, v, out, lse, split)
    });

    /// The parallel entries cut the cache into sub-views at head, row and
    /// key boundaries; split points fall inside blocks here.
    #[test]
    fn the_parallel_entries_read_a_paged_cache_as_a_contiguous_one() {
        let mut seed = 9900;
        for &(heads, kv_heads, n_q, n_kv) in &[(4, 2, 1, 700), (2, 1, 1, 301), (2, 2, 33, 400)] {
            for scorer in [Scorer::dot(), Scorer::neg_sq_dist(), Scorer::neg_log_dist()] {
                seed += 1;
                let elem = Elem::ALL[seed as usize % 3];
                let case = Case::random(seed, heads, kv_heads, n_q, n_kv, 24, 40, scorer)
                    .with_mask(Mask::causal_bottom_right(n_q, n_kv))
                    .with_elem(elem);
                for split in [None, Some(vec![5, 131, 250]), Some(vec![17, 18, 300])] {
                    let contiguous = case.run_with(common::Path::best(), Par(split.clone()));
                    for bs in BLOCK_SIZES {
                        let what = format!("split {split:?}, block size {bs}, case {seed}");
                        let p = paged(&case, bs, seed % 2 == 0)
                            .run_with(common::Path::best(), Par(split.clone()));
                        assert_same(&p, &contiguous, &what);
                    }
                }
            }
        }
    }
}

#[test]
fn rows_are_found_through_the_table() {
    let (heads, rows, cols) = (3, 11, 5);
    let dense: Vec<f32> = (0..heads * rows * cols).map(|x| x as f32).collect();
    for bs in [1, 2, 3, 4, 16] {
        for seq_major in [false, true] {
            let pool = Pool::<f32>::pack(&dense, heads, rows, cols, bs, seq_major, bs as u64);
            let view = pool.view();
            assert_eq!((view.heads(), view.rows(), view.cols()), (heads, rows, cols));
            for h in 0..heads {
                for r in 0..rows {
                    assert_eq!(view.head(h).row(r), &dense[(h * rows + r) * cols..][..cols]);
                }
            }
        }
    }
}

#[test]
fn blocks_may_repeat_and_only_the_entries_read_are_checked() {
    // One block of 2 rows, read twice: rows 0 and 2 are the same row.
    let pool = [1.0f32, 2.0, 3.0, 4.0];
    let layout = PagedLayout::heads_major(2, 1, 2).unwrap();
    let k = HeadsRef::paged(&pool, layout, &[0, 0, 99], 4).unwrap();
    assert_eq!(k.head(0).row(2), &[1.0, 2.0]);
    assert_eq!(k.head(0).row(3), &[3.0, 4.0]);
    // The entry for row 4 is read once the cache has 5 rows.
    let err = HeadsRef::paged(&pool, layout, &[0, 0, 99], 5).unwrap_err();
    assert_eq!(err, Error::BlockOutOfPool { entry: 2, block: 99, blocks: 1 });
}

#[test]
fn key_norms_of_a_paged_cache() {
    let (heads, rows, cols) = (2, 37, 9);
    let dense = Rng::new(5).vec(heads * rows * cols, 1.0);
    let mut want = vec![0.0f32; heads * rows];
    let contiguous = HeadsRef::heads_major(&dense, heads, rows, cols).unwrap();
    key_norms(contiguous, HeadsMut::heads_major(&mut want, heads, rows, 1).unwrap()).unwrap();
    for bs in BLOCK_SIZES {
        let pool = Pool::<f32>::pack(&dense, heads, rows, cols, bs, bs % 2 == 0, 3);
        let mut got = vec![0.0f32; heads * rows];
        key_norms(pool.view(), HeadsMut::heads_major(&mut got, heads, rows, 1).unwrap()).unwrap();
        assert_eq!(got, want, "block size {bs}");
    }
}

#[test]
fn every_error_of_a_paged_view_in_order() {
    let pool = [0.0f32; 24];
    // 2 heads of 2 rows of 3 columns per block: 12 floats a block, 2 blocks.
    let layout = PagedLayout::heads_major(2, 2, 3).unwrap();
    assert_eq!(
        layout,
        PagedLayout { block_size: 2, heads: 2, cols: 3, block_stride: 12, head_stride: 6, row_stride: 3 }
    );
    assert!(HeadsRef::paged(&pool, layout, &[1, 0], 4).is_ok());

    let zero = PagedLayout { block_size: 0, cols: 0, ..layout };
    assert_eq!(HeadsRef::paged(&pool, zero, &[0], 1).unwrap_err(), Error::ZeroDim { what: "block_size" });
    let no_cols = PagedLayout { cols: 0, ..layout };
    assert_eq!(HeadsRef::paged(&pool, no_cols, &[0], 1).unwrap_err(), Error::ZeroDim { what: "pool" });
    let rows_overlap = PagedLayout { row_stride: 2, ..layout };
    assert_eq!(
        HeadsRef::paged(&pool, rows_overlap, &[0], 1).unwrap_err(),
        Error::StrideTooSmall { what: "pool", stride: 2, min: 3 }
    );
    assert_eq!(
        HeadsRef::paged(&pool[..11], layout, &[0], 1).unwrap_err(),
        Error::BufferTooShort { what: "pool", needed: 12, len: 11 }
    );
    let blocks_overlap = PagedLayout { block_stride: 11, ..layout };
    assert_eq!(
        HeadsRef::paged(&pool, blocks_overlap, &[0], 1).unwrap_err(),
        Error::StrideTooSmall { what: "block_stride", stride: 11, min: 12 }
    );
    assert_eq!(
        HeadsRef::paged(&pool, layout, &[0], 3).unwrap_err(),
        Error::BufferTooShort { what: "block_table", needed: 2, len: 1 }
    );
    assert_eq!(
        HeadsRef::paged(&pool, layout, &[1, 2], 3).unwrap_err(),
        Error::BlockOutOfPool { entry: 1, block: 2, blocks: 2 }
    );
    // A pool with room for a block and a half holds one block.
    assert_eq!(
        HeadsRef::paged(&pool[..18], layout, &[1], 1).unwrap_err(),
        Error::BlockOutOfPool { entry: 0, block: 1, blocks: 1 }
    );
    // With no rows the table is not read.
    assert!(HeadsRef::paged(&pool, layout, &[], 0).is_ok());
    // Overflow of a block's size.
    assert_eq!(PagedLayout::heads_major(usize::MAX, 2, 3).unwrap_err(), Error::Overflow { what: "pool" });
    assert_eq!(PagedLayout::seq_major(2, usize::MAX, 3).unwrap_err(), Error::Overflow { what: "pool" });
}
