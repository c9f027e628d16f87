//! The buffers of a benchmark shape: Q, K, V and the output, and K and V
//! again as a paged cache (used by the `attention` and `paired` benches,
//! not by `parallel`).
#![allow(dead_code)]

use super::{data, shuffled, Elem, Floats, Pages};
use std::hint::black_box;
use streamattn::{Attention, HeadsMut, HeadsRef, PagedLayout};

/// One shape: `heads` query heads over `kv_heads` key/value heads, `n_q` rows
/// against `n_kv` keys, head dimension `d`.
pub struct Shape {
    pub name: &'static str,
    pub heads: usize,
    pub kv_heads: usize,
    pub n_q: usize,
    pub n_kv: usize,
    pub d: usize,
    pub causal: bool,
}

/// The shapes benchmarked.
pub const SHAPES: &[Shape] = &[
    Shape { name: "prefill-1k-d64", heads: 8, kv_heads: 8, n_q: 1024, n_kv: 1024, d: 64, causal: false },
    Shape { name: "prefill-1k-d128", heads: 8, kv_heads: 8, n_q: 1024, n_kv: 1024, d: 128, causal: false },
    Shape { name: "causal-2k-d128", heads: 4, kv_heads: 4, n_q: 2048, n_kv: 2048, d: 128, causal: true },
    Shape { name: "long-8k-d64", heads: 1, kv_heads: 1, n_q: 8192, n_kv: 8192, d: 64, causal: false },
    Shape { name: "decode-32k-d128", heads: 8, kv_heads: 8, n_q: 1, n_kv: 32768, d: 128, causal: false },
    Shape { name: "gqa-decode-32k", heads: 32, kv_heads: 8, n_q: 1, n_kv: 32768, d: 128, causal: false },
    // A call so small that the fixed cost per call (checks, level dispatch) shows.
    Shape { name: "tiny-16-d64", heads: 1, kv_heads: 1, n_q: 1, n_kv: 16, d: 64, causal: false },
];

/// The smoke run's shapes (`STREAMATTN_BENCH_QUICK`).
pub const QUICK: &[Shape] = &[
    Shape { name: "quick-256-d64", heads: 2, kv_heads: 2, n_q: 256, n_kv: 256, d: 64, causal: false },
    Shape { name: "quick-decode-4k", heads: 4, kv_heads: 2, n_q: 1, n_kv: 4096, d: 64, causal: false },
];

/// Q, K, V and the output of a shape, with K and V stored as `T`.
pub struct Buffers<T: Elem = f32> {
    pub q: Vec<f32>,
    pub k: Floats<T>,
    pub v: Floats<T>,
    pub out: Vec<f32>,
}

impl<T: Elem> Buffers<T> {
    pub fn new(s: &Shape, heads: usize, pages: Pages) -> Self {
        let kv_heads = if heads == s.heads { s.kv_heads } else { heads };
        Buffers {
            q: data(heads * s.n_q * s.d, 1),
            k: Floats::new(kv_heads * s.n_kv * s.d, 2, pages),
            v: Floats::new(kv_heads * s.n_kv * s.d, 3, pages),
            out: vec![0.0; heads * s.n_q * s.d],
        }
    }

    pub fn run(&mut self, s: &Shape, heads: usize, attn: &Attention<'_>) {
        let kv_heads = self.k.len() / (s.n_kv * s.d);
        attn.run_heads(
            HeadsRef::heads_major(&self.q, heads, s.n_q, s.d).unwrap(),
            HeadsRef::heads_major(&self.k, kv_heads, s.n_kv, s.d).unwrap(),
            HeadsRef::heads_major(&self.v, kv_heads, s.n_kv, s.d).unwrap(),
            HeadsMut::heads_major(&mut self.out, heads, s.n_q, s.d).unwrap(),
            None,
        )
        .unwrap();
        black_box(&self.out);
    }
}

/// K and V of a shape in pools of blocks of `bs` rows,
/// `[n_blocks, kv_heads, bs, d]`, the blocks in a shuffled order, and the
/// block table that finds them.
pub struct PagedCache {
    k: Floats,
    v: Floats,
    table: Vec<u32>,
    layout: PagedLayout,
}

impl PagedCache {
    pub fn new(s: &Shape, b: &Buffers, bs: usize, pages: Pages) -> Self {
        let n_blocks = s.n_kv.div_ceil(bs);
        let layout = PagedLayout::heads_major(bs, s.kv_heads, s.d).unwrap();
        let table = shuffled(n_blocks);
        let mut k = Floats::<f32>::new(n_blocks * layout.block_stride, 4, pages);
        let mut v = Floats::<f32>::new(n_blocks * layout.block_stride, 5, pages);
        for h in 0..s.kv_heads {
            for j in 0..s.n_kv {
                let src = (h * s.n_kv + j) * s.d;
                let dst =
                    table[j / bs] as usize * layout.block_stride + h * layout.head_stride + (j % bs) * s.d;
                k[dst..dst + s.d].copy_from_slice(&b.k[src..src + s.d]);
                v[dst..dst + s.d].copy_from_slice(&b.v[src..src + s.d]);
            }
        }
        PagedCache { k, v, table, layout }
    }

    /// The heads of `s` against the paged K and V, into `b.out`.
    pub fn run(&mut self, s: &Shape, b: &mut Buffers, attn: &Attention<'_>) {
        attn.run_heads(
            HeadsRef::heads_major(&b.q, s.heads, s.n_q, s.d).unwrap(),
            HeadsRef::paged(&self.k, self.layout, &self.table, s.n_kv).unwrap(),
            HeadsRef::paged(&self.v, self.layout, &self.table, s.n_kv).unwrap(),
            HeadsMut::heads_major(&mut b.out, s.heads, s.n_q, s.d).unwrap(),
            None,
        )
        .unwrap();
        black_box(&b.out);
    }
}
