//! The validated problem the kernels compute: views, scorer, mask, key
//! length, bias and cached norms, checked against each other by
//! [`Attention`](crate::Attention) before any kernel runs, so that every
//! index a kernel computes is in bounds. Sub-problems (a task's heads, rows
//! and keys) are cut here too.

use crate::element::sealed::Slice;
use crate::scorer::Kind;
use crate::{Bias, Element, HeadsRef, Level, Mask};
use core::ops::Range;
use half::{bf16, f16};

/// A validated call: every index the kernels compute is in bounds. Keys
/// and values are stored as `E` (`f32`, `f16` or `bf16`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Problem<'a, E: Element = f32> {
    pub q: HeadsRef<'a>,
    pub k: HeadsRef<'a, E>,
    pub v: HeadsRef<'a, E>,
    pub kind: Kind<'a>,
    pub mask: Mask,
    pub key_len: usize,
    pub bias: Option<Bias<'a>>,
    /// Cached `‖k_j‖²`, `n_kv_heads × n_kv × 1`.
    pub norms: Option<HeadsRef<'a>>,
    /// Logit softcap `c`: scores become `c·tanh(s/c)`.
    pub softcap: Option<f32>,
    /// ALiBi slopes, one per query head, and the position offset.
    pub alibi: Option<Alibi<'a>>,
    /// Attention sinks: one logit per query head.
    pub sinks: Option<&'a [f32]>,
    /// Query heads per key/value head.
    pub group: usize,
    /// Log-sum-exps go to `lse[h * lse_stride + i]` (`n_q`, but for the
    /// sequences of a batch, which share one packed `lse`).
    pub lse_stride: usize,
    /// The level the tiled kernel runs at (supported by the CPU).
    pub level: Level,
}

/// ALiBi: query head `h` adds `−slopes[h] · |i + delta − j|` to the logit
/// of row `i` and key `j` (row and key indices of this problem).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Alibi<'a> {
    pub slopes: &'a [f32],
    pub delta: isize,
}

impl Alibi<'_> {
    /// `(−slope, position)` of row `i` of head `h`: the term of key `j` is
    /// `−slope · |j − position|`. The position is exact in `f32` below 2²⁴.
    #[inline]
    pub fn row(&self, h: usize, i: usize) -> (f32, f32) {
        (-self.slopes[h], (i as isize + self.delta) as f32)
    }
}

/// A problem by its concrete element type.
pub(crate) enum Typed<'a> {
    F32(Problem<'a, f32>),
    F16(Problem<'a, f16>),
    Bf16(Problem<'a, bf16>),
}

impl<'a, E: Element> Problem<'a, E> {
    /// The same problem with its element type made concrete.
    pub fn typed(&self) -> Typed<'a> {
        match (E::slice(self.k.data), E::slice(self.v.data)) {
            (Slice::F32(k), Slice::F32(v)) => Typed::F32(self.with_data(k, v)),
            (Slice::F16(k), Slice::F16(v)) => Typed::F16(self.with_data(k, v)),
            (Slice::Bf16(k), Slice::Bf16(v)) => Typed::Bf16(self.with_data(k, v)),
            _ => unreachable!("K and V have the one element type E"),
        }
    }

    /// This problem over `k` and `v`, the same memory as its K and V.
    fn with_data<T: Element>(&self, k: &'a [T], v: &'a [T]) -> Problem<'a, T> {
        Problem {
            q: self.q,
            k: HeadsRef { data: k, layout: self.k.layout, pages: self.k.pages },
            v: HeadsRef { data: v, layout: self.v.layout, pages: self.v.pages },
            kind: self.kind,
            mask: self.mask,
            key_len: self.key_len,
            bias: self.bias,
            norms: self.norms,
            softcap: self.softcap,
            alibi: self.alibi,
            sinks: self.sinks,
            group: self.group,
            lse_stride: self.lse_stride,
            level: self.level,
        }
    }
}

impl<E: Element> Problem<'_, E> {
    /// Whether the logits are the scorer's values alone: no bias, softcap,
    /// ALiBi or sinks (the linear-domain softmax needs this).
    pub fn plain(&self) -> bool {
        self.bias.is_none() && self.softcap.is_none() && self.alibi.is_none() && self.sinks.is_none()
    }

    /// The keys some row of `rows` sees: the smallest range holding every
    /// row's keys (empty if no row sees a key).
    pub fn keys_seen(&self, rows: impl IntoIterator<Item = usize>) -> Range<usize> {
        let (mut lo, mut hi) = (usize::MAX, 0);
        for i in rows {
            let keys = self.mask.key_range(i, self.key_len);
            if !keys.is_empty() {
                (lo, hi) = (lo.min(keys.start), hi.max(keys.end));
            }
        }
        if lo < hi {
            lo..hi
        } else {
            0..0
        }
    }

    /// The keys of the tile `t0..t0 + nt` that row `i` sees, in tile
    /// coordinates (empty if none).
    #[inline]
    pub fn seen_in_tile(&self, i: usize, t0: usize, nt: usize) -> Range<usize> {
        let keys = self.mask.key_range(i, self.key_len);
        keys.start.max(t0).saturating_sub(t0)..keys.end.min(t0 + nt).saturating_sub(t0)
    }
}

#[cfg(feature = "rayon")]
impl<'a, E: Element> Problem<'a, E> {
    /// The sub-problem of query heads `heads` (which read one key/value
    /// head), query rows `rows` and keys `keys` (clipped to the key length),
    /// with `mask` in the sub-problem's coordinates (its row 0 is row
    /// `rows.start`, its key 0 is key `keys.start`): views of the same
    /// memory, the matching bias block and cached norms.
    pub fn sub(
        &self,
        heads: Range<usize>,
        rows: Range<usize>,
        keys: Range<usize>,
        mask: Mask,
    ) -> Problem<'a, E> {
        let hk = heads.start / self.group;
        let key_len = self.key_len.min(keys.end).saturating_sub(keys.start);
        Problem {
            q: self.q.sub(heads.clone(), rows.clone()),
            k: self.k.sub(hk..hk + 1, keys.clone()),
            v: self.v.sub(hk..hk + 1, keys.clone()),
            mask,
            key_len,
            bias: self.bias.map(|b| b.sub(heads.start, rows.clone(), keys.clone())),
            norms: self.norms.map(|n| n.sub(hk..hk + 1, keys.clone())),
            alibi: self.alibi.map(|a| Alibi {
                slopes: &a.slopes[heads.clone()],
                delta: a.delta + rows.start as isize - keys.start as isize,
            }),
            sinks: self.sinks.map(|s| &s[heads.clone()]),
            group: heads.len(),
            // A task writes its own dense `[heads][rows]` log-sum-exps.
            lse_stride: rows.len(),
            ..*self
        }
    }
}
