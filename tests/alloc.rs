//! The kernels never allocate: a counting global allocator sees zero
//! allocations during calls of every kernel, scorer and mask, on shapes that
//! cross every blocking boundary (more rows than a row block, a head wider than
//! a packed tile, long key ranges).

// Test and example code is held to clippy's default lints (Cargo.toml).
#![allow(clippy::pedantic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use streamattn::{Attention, Bias, HeadsMut, HeadsRef, Kernel, Level, Mask, Scorer};

struct Counting;

thread_local! {
    /// Counting is per thread, so the test harness's own threads do not count.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ACTIVE.with(|a| a.get()) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    ACTIVE.with(|a| a.set(true));
    f();
    ACTIVE.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

#[test]
fn no_kernel_allocates() {
    // The scalar path, then the tiled kernel at every level this CPU has.
    let kernels: Vec<(Kernel, Level)> = std::iter::once((Kernel::Scalar, Level::Generic))
        .chain(Level::ALL.into_iter().filter(|l| l.supported()).map(|l| (Kernel::Tiled, l)))
        .collect();
    // (heads, kv_heads, n_q, n_kv, d, d_v)
    let shapes = [(2, 1, 300, 700, 40, 24), (1, 1, 5, 130, 300, 7), (4, 2, 1, 3000, 64, 64)];
    for (heads, kv_heads, n_q, n_kv, d, dv) in shapes {
        let w: Vec<f32> = (0..d).map(|c| (c % 5) as f32 * 0.1 - 0.2).collect();
        let scorers = [
            Scorer::dot(),
            Scorer::neg_sq_dist(),
            Scorer::neg_log_dist(),
            Scorer::NegLogDist { eps: 0.0, p: 3.0 },
            Scorer::additive(&w),
        ];
        let q: Vec<f32> = (0..heads * n_q * d).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
        let k: Vec<f32> = (0..kv_heads * n_kv * d).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1).collect();
        let v: Vec<f32> = (0..kv_heads * n_kv * dv).map(|i| (i % 17) as f32).collect();
        let bias: Vec<f32> = (0..n_q * n_kv).map(|i| (i % 3) as f32 * 0.5).collect();
        let mut out = vec![0.0f32; heads * n_q * dv];
        let mut lse = vec![0.0f32; heads * n_q];
        for &kernel in &kernels {
            for scorer in scorers {
                for mask in [
                    Mask::None,
                    Mask::causal_bottom_right(n_q, n_kv),
                    Mask::Window { offset: 3, left: 50, right: 9 },
                ] {
                    let b = Bias::shared(&bias, n_q, n_kv).unwrap();
                    let (kernel, level) = kernel;
                    let attn = Attention::new(scorer)
                        .mask(mask)
                        .kernel(kernel)
                        .max_level(level)
                        .bias(b)
                        .key_len(n_kv - 1);
                    let qv = HeadsRef::heads_major(&q, heads, n_q, d).unwrap();
                    let kv = HeadsRef::heads_major(&k, kv_heads, n_kv, d).unwrap();
                    let vv = HeadsRef::heads_major(&v, kv_heads, n_kv, dv).unwrap();
                    let ov = HeadsMut::heads_major(&mut out, heads, n_q, dv).unwrap();
                    let n = allocations_during(|| attn.run_heads(qv, kv, vv, ov, Some(&mut lse)).unwrap());
                    assert_eq!(n, 0, "{kernel:?} {level} {scorer:?} {mask:?} allocated {n} times");
                    assert!(out.iter().all(|x| x.is_finite()));
                }
            }
        }
    }
    // A batch of two sequences (a prefill chunk and a decode) over one
    // paged pool, at every level.
    let (h, d, bs) = (4, 32, 16);
    let layout = streamattn::PagedLayout::seq_major(bs, 2, d).unwrap();
    let pool: Vec<f32> = (0..8 * layout.block_stride).map(|i| (i % 13) as f32 * 0.1).collect();
    let (t0, t1) = ([3u32, 1], [0u32, 7, 2, 5]);
    let k =
        [HeadsRef::paged(&pool, layout, &t0, 20).unwrap(), HeadsRef::paged(&pool, layout, &t1, 60).unwrap()];
    let q = vec![0.1f32; 11 * h * d];
    let mut out = vec![0.0f32; 11 * h * d];
    let mut lse = vec![0.0f32; h * 11];
    for &(kernel, level) in &kernels {
        let attn =
            Attention::new(Scorer::dot()).mask(Mask::Causal { offset: 0 }).kernel(kernel).max_level(level);
        let qv = HeadsRef::seq_major(&q, h, 11, d).unwrap();
        let ov = HeadsMut::seq_major(&mut out, h, 11, d).unwrap();
        let n = allocations_during(|| attn.run_batch(qv, &[0, 10, 11], &k, &k, ov, Some(&mut lse)).unwrap());
        assert_eq!(n, 0, "run_batch, {kernel:?} {level} allocated {n} times");
        assert!(out.iter().all(|x| x.is_finite()));
    }
    // The counter works: an allocation inside the window is seen.
    assert_eq!(allocations_during(|| drop(std::hint::black_box(vec![1u8; 10]))), 1);
}
