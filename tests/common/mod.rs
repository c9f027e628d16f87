//! Shared by the integration tests: a deterministic generator, test cases laid
//! out in every supported memory layout, a materialised f64 reference written
//! as plain loops, and the error bound each comparison uses.
//!
//! # The tolerance, derived
//!
//! `u = 2⁻²⁴` is the unit roundoff of f32 and `γ(n) = n·u / (1 − n·u)` the
//! standard bound on the relative error of an n-term f32 sum or product
//! (Higham, *Accuracy and Stability of Numerical Algorithms*, §3.1). Order of
//! summation and the use of FMA do not change these bounds, so one bound
//! covers the scalar path and every SIMD kernel.
//!
//! 1. **Logit error** `e_ij`, the absolute error of the f32 logit of pair
//!    `(i, j)` (up to a constant of the row, which cancels in the softmax):
//!    - `Dot`: `γ(d+2) · scale · Σ_c |q_c k_c|` (d products and sums, the
//!      rounding of `1/√d`, the final multiply);
//!    - `NegSqDist`: the tiled kernel forms `‖a‖² + ‖b‖² − 2a·b` with
//!      `a = fl(q − c)`, `b = fl(k − c)` for a centre `c` (the coordinate-wise
//!      median of some of the query rows sharing the key/value head). Each
//!      rounded difference errs by `u` relative, each of the three d-term
//!      sums by `γ(d+2)` relative to its own terms (`Σ|a_c b_c| ≤ ‖a‖‖b‖`), and
//!      adding them, the final multiply-add and the scale add `3u` relative:
//!      `γ(d+5) · scale · (‖a‖ + ‖b‖)²`. The test does not know `c`, only that
//!      each `c_c` lies between the smallest and largest `q_c` of the rows of
//!      the key/value head's query heads (`lo_c`, `hi_c`), so it bounds
//!      `|a_c| ≤ max(q_c − lo_c, hi_c − q_c)` and
//!      `|b_c| ≤ max(|k_c − lo_c|, |k_c − hi_c|)`. The scalar path's
//!      `−scale Σ(q_c − k_c)²` errs by `γ(d+3) · scale · ‖q − k‖²`, less.
//!    - `NegLogDist`: the scalar path's `Σ(q_c − k_c)²` has relative error
//!      `γ(d+2)` (every term is non-negative). The tiled kernel uses the norm
//!      trick `‖q‖² + ‖k‖² − 2q·k`, whose absolute error is at most
//!      `2γ(d+2)(‖q‖² + ‖k‖²)`, and recomputes directly every pair with
//!      `eps + d² < (‖q‖² + ‖k‖²)/4`; so `eps + d²` has relative error at most
//!      `8γ(d+2)` in either kernel. `d^p` from `d²` multiplies that by `p/2`
//!      and adds the power's own error: `u` for `p = 1` (sqrt), 1 ulp for libm's
//!      powf, and for the tiled `e^{y}` with `y = (p/2)·ln d²` the error of
//!      `ln` (2 ulp, tested) and of rounding y, `5u·|y|`, plus `E_exp`. So
//!      `ρ = max(1, p/2)·8γ(d+4) + 5u·|y| + E_exp + 2u` bounds the relative
//!      error of `eps + d^p`, and `ln x` turns it into an absolute error ρ,
//!      plus its own rounding `u·(|s| + 1)`;
//!    - a softcap `s' = c·tanh(s/c)` keeps `e` (it is 1-Lipschitz) and adds
//!      `0.9u·c + (E_TANH + u)|s'|` (see `softcap` below);
//!    - a bias adds the rounding of one addition, at most `u · (|s| + |b|)`;
//!      the ALiBi term `a = −slope·|pos_i − j|` (positions exact) the
//!      rounding of its product, `u|a|`, and of one more addition,
//!      `u · (|s| + |b| + |a|)`;
//!    - a sink is one more logit, exact, whose value is 0: it counts among
//!      the keys below (in `n_i`, `S_i`, the maximum and `l`), not in `A_c`.
//!
//!    `Δ_i = max_j e_ij` over the keys row i sees (but see step 4).
//! 2. **Weight error**. `p_j = e^{s_j − m}` has relative error at most
//!    `δ_i = Δ_i + 2u·S_i + E_exp`, where `S_i = max_j |s_ij|` bounds the
//!    rounding of `s_j − m` and `E_exp = 4u` bounds the exponential (libm's
//!    `expf` is within 1 ulp; the SIMD exponential's bound is tested to be
//!    below this in the crate's unit tests). Normalised weights then have
//!    relative error at most `e^{2δ} − 1`, and since
//!    `O' − O = Σ_j (p'_j − p_j)(v_j − O)`, the output moves by at most
//!    `(e^{2δ} − 1) · (A_c + |O_c|)` in column c, where
//!    `A_c = Σ_j p_j |v_jc|` (exact weights).
//! 3. **Accumulation error**. `o = Σ_j p_j v_j` and `l = Σ_j p_j` are f32 sums
//!    of `n_i` terms with at most `n_i` rescalings by `α` and one final
//!    division: relative errors `γ(2n_i + 3)` of `Σ p_j |v_jc|` and of `l`,
//!    so `2γ(2n_i + 3) · A_c`.
//!
//! 4. **Flushed weights**. The vectorised exponential returns 0 for
//!    arguments below −87.33 (`src/exp.rs`: absolute error under `2⁻¹²⁵`),
//!    and weights are relative to the row's largest (1, so `l ≥ 1`): each of
//!    the `n_i` weights may lose up to `2⁻¹²⁵`, which moves `O_c` by at most
//!    `2⁻¹²⁵ Σ_j |v_jc − O_c| ≤ n_i · 2⁻¹²⁵ · (V_c + |O_c|)`, with
//!    `V_c = max_j |v_jc|` over the keys the row sees. A key that is certainly
//!    that far below the row maximum, `s_j + e_j + u|s_j| − (m − e_m − 2u|m|)
//!    < −88` (`m` the largest exact score, `e_m` the largest logit error of a
//!    key scoring `m`: the kernel's maximum is at least `m − e_m`, the
//!    subtraction rounds by `u(|s_j| + |m|)`), has exact and computed weights
//!    both below `e^{−87.9} < 2⁻¹²⁶` and is covered by this term alone: `Δ_i`
//!    and `S_i` run over the other keys. (This keeps the bound finite for a
//!    far key whose logit, and its error, is huge: it weighs nothing.)
//!
//! Output tolerance:
//! `(e^{2δ} − 1)(A_c + |O_c|) + 2γ(2n_i + 3)·A_c + n_i·2⁻¹²⁵·(V_c + |O_c|) + 1e-35`
//! (the last term absorbs subnormal underflow of products). Log-sum-exp
//! tolerance: `Δ_i + E_exp + γ(2n_i + 3) + u·|lse|`.
//! When the reference's row maximum is `+∞` the weights are exactly 0 or 1
//! and only the accumulation term remains.
//!
//! Two f32 results each within the tolerance of the reference are within
//! twice the tolerance of each other; that is the bound between kernels.

#![allow(dead_code)]

use streamattn::{
    bf16, f16, Attention, Bias, Element, Error, HeadsMut, HeadsRef, Kernel, Level, Mask, PagedLayout, Scorer,
};

/// How a case's keys and values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    Bf16,
}

impl Elem {
    pub const ALL: [Elem; 3] = [Elem::F32, Elem::F16, Elem::Bf16];

    /// `x` rounded to this type (to nearest, ties to even), as an f32.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Elem::F32 => x,
            Elem::F16 => f16::from_f32(x).to_f32(),
            Elem::Bf16 => bf16::from_f32(x).to_f32(),
        }
    }
}

/// An element type the tests can store data in (rounding from f32).
pub trait Store: Element {
    fn from(x: f32) -> Self;
}

impl Store for f32 {
    fn from(x: f32) -> Self {
        x
    }
}

impl Store for f16 {
    fn from(x: f32) -> Self {
        f16::from_f32(x)
    }
}

impl Store for bf16 {
    fn from(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// An entry with the signature of `Attention::run_heads`, for
/// [`Case::run_with`] (generic over the element types, which a closure
/// cannot be).
pub trait Entry {
    fn call<E: Element>(
        self,
        attention: &Attention<'_>,
        q: HeadsRef<'_>,
        k: HeadsRef<'_, E>,
        v: HeadsRef<'_, E>,
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
    ) -> Result<(), Error>;
}

/// `entry!(Type, |self, a, q, k, v, out, lse| body)`: implements [`Entry`]
/// for `Type` with `body` (any of the crate's entries taking those
/// arguments). Visible where `common` is declared with `#[macro_use]`.
#[allow(unused_macros)]
macro_rules! entry {
    ($ty:ty, |$s:ident, $a:ident, $q:ident, $k:ident, $v:ident, $out:ident, $lse:ident| $body:expr) => {
        impl $crate::common::Entry for $ty {
            fn call<E: streamattn::Element>(
                $s,
                $a: &streamattn::Attention<'_>,
                $q: streamattn::HeadsRef<'_>,
                $k: streamattn::HeadsRef<'_, E>,
                $v: streamattn::HeadsRef<'_, E>,
                $out: streamattn::HeadsMut<'_>,
                $lse: Option<&mut [f32]>,
            ) -> Result<(), streamattn::Error> {
                $body
            }
        }
    };
}

/// `Attention::run_heads`.
pub struct RunHeads;

entry!(RunHeads, |self, a, q, k, v, out, lse| a.run_heads(q, k, v, out, lse));

pub const U: f64 = 1.0 / (1u64 << 24) as f64;

pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Bound on the relative error of the exponential, in either kernel.
pub const E_EXP: f64 = 4.0 * U;

/// A small deterministic generator (64-bit LCG, high bits).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next_u32(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
    /// Uniform in [-1, 1).
    pub fn sym(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u32() as usize) % n.max(1)
    }
    pub fn vec(&mut self, n: usize, amp: f32) -> Vec<f32> {
        (0..n).map(|_| amp * self.sym()).collect()
    }
}

/// How the buffers handed to the crate are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `[heads, rows, cols]`, dense.
    HeadsMajor,
    /// `[rows, heads, cols]`, dense.
    SeqMajor,
    /// `[heads, rows, cols]` with `pad` extra floats after each row and after
    /// each head.
    Padded(usize),
    /// Keys and values in a paged pool ([`Pool`]) of blocks of
    /// `block_size` rows, `[n_blocks, block_size, heads, cols]` if
    /// `seq_major`, else `[n_blocks, heads, block_size, cols]`; the other
    /// buffers `[heads, rows, cols]`.
    Paged { block_size: usize, seq_major: bool },
}

/// One attention problem. Logical data is dense `[head][row][col]`.
#[derive(Clone, Debug)]
pub struct Case {
    pub heads: usize,
    pub kv_heads: usize,
    pub n_q: usize,
    pub n_kv: usize,
    pub d: usize,
    pub dv: usize,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    /// Dense `[head][i][j]`, or `[i][j]` shared by every head.
    pub bias: Option<Vec<f32>>,
    pub bias_shared: bool,
    pub scorer: Scorer<'static>,
    pub mask: Mask,
    pub key_len: Option<usize>,
    pub layout: Layout,
    /// Hand the kernels the key norms computed by `key_norms` (in K's layout).
    pub cached_norms: bool,
    /// How K and V are stored (their data already rounded to that type:
    /// [`Case::with_elem`]).
    pub elem: Elem,
    /// Logit softcap, ALiBi slopes and sinks (one per query head).
    pub softcap: Option<f32>,
    pub slopes: Option<Vec<f32>>,
    pub sinks: Option<Vec<f32>>,
}

impl Case {
    /// Random data in [-amp, amp), no bias, no mask, dense heads-major.
    #[allow(clippy::too_many_arguments)]
    pub fn random(
        seed: u64,
        heads: usize,
        kv_heads: usize,
        n_q: usize,
        n_kv: usize,
        d: usize,
        dv: usize,
        scorer: Scorer<'static>,
    ) -> Case {
        let mut r = Rng::new(seed);
        let scorer = instantiate(scorer, d, seed);
        Case {
            heads,
            kv_heads,
            n_q,
            n_kv,
            d,
            dv,
            q: r.vec(heads * n_q * d, 1.0),
            k: r.vec(kv_heads * n_kv * d, 1.0),
            v: r.vec(kv_heads * n_kv * dv, 1.0),
            bias: None,
            bias_shared: false,
            scorer,
            mask: Mask::None,
            key_len: None,
            layout: Layout::HeadsMajor,
            cached_norms: false,
            elem: Elem::F32,
            softcap: None,
            slopes: None,
            sinks: None,
        }
    }

    pub fn with_softcap(mut self, cap: f32) -> Case {
        self.softcap = Some(cap);
        self
    }

    /// ALiBi with the usual slopes `2^(−8(h+1)/H)` times `amp`.
    pub fn with_alibi(mut self, amp: f32) -> Case {
        let n = self.heads as f32;
        self.slopes = Some((0..self.heads).map(|h| amp * (-8.0 * (h as f32 + 1.0) / n).exp2()).collect());
        self
    }

    /// Random sinks in [-amp, amp).
    pub fn with_sinks(mut self, seed: u64, amp: f32) -> Case {
        self.sinks = Some(Rng::new(seed ^ 0x51c5).vec(self.heads, amp));
        self
    }

    /// The ALiBi term of row `i`, key `j` of head `h` (exact in f64): rows
    /// are the last `n_q` of the `key_len` positions.
    pub fn alibi_at(&self, h: usize, i: usize, j: usize) -> f64 {
        self.slopes.as_ref().map_or(0.0, |s| {
            let pos = i as f64 + self.key_len() as f64 - self.n_q as f64;
            -(s[h] as f64) * (pos - j as f64).abs()
        })
    }

    pub fn with_cached_norms(mut self) -> Case {
        self.cached_norms = true;
        self
    }

    pub fn with_mask(mut self, mask: Mask) -> Case {
        self.mask = mask;
        self
    }

    pub fn with_layout(mut self, layout: Layout) -> Case {
        self.layout = layout;
        self
    }

    pub fn with_key_len(mut self, key_len: usize) -> Case {
        self.key_len = Some(key_len);
        self
    }

    /// A random bias in [-amp, amp), per head or shared.
    pub fn with_random_bias(mut self, seed: u64, amp: f32, shared: bool) -> Case {
        let heads = if shared { 1 } else { self.heads };
        self.bias = Some(Rng::new(seed).vec(heads * self.n_q * self.n_kv, amp));
        self.bias_shared = shared;
        self
    }

    pub fn qrow(&self, h: usize, i: usize) -> &[f32] {
        &self.q[(h * self.n_q + i) * self.d..][..self.d]
    }
    pub fn krow(&self, h: usize, j: usize) -> &[f32] {
        &self.k[(h * self.n_kv + j) * self.d..][..self.d]
    }
    pub fn vrow(&self, h: usize, j: usize) -> &[f32] {
        &self.v[(h * self.n_kv + j) * self.dv..][..self.dv]
    }
    pub fn bias_at(&self, h: usize, i: usize, j: usize) -> f32 {
        match &self.bias {
            None => 0.0,
            Some(b) => {
                let h = if self.bias_shared { 0 } else { h };
                b[(h * self.n_q + i) * self.n_kv + j]
            }
        }
    }
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
    pub fn key_len(&self) -> usize {
        self.key_len.unwrap_or(self.n_kv)
    }

    pub fn attention(&self) -> Attention<'_> {
        let mut a = Attention::new(self.scorer).mask(self.mask);
        if let Some(n) = self.key_len {
            a = a.key_len(n);
        }
        if let Some(b) = &self.bias {
            let hs = if self.bias_shared { 0 } else { self.n_q * self.n_kv };
            a = a.bias(Bias::new(b, self.n_q, self.n_kv, hs, self.n_kv).unwrap());
        }
        if let Some(c) = self.softcap {
            a = a.softcap(c);
        }
        if let Some(s) = &self.slopes {
            a = a.alibi(s);
        }
        if let Some(s) = &self.sinks {
            a = a.sinks(s);
        }
        a
    }

    /// Runs the crate on `kernel`; returns dense `[h][i][c]` output and
    /// `[h][i]` lse. Checks that padding of the output buffer is untouched.
    pub fn run(&self, kernel: Path) -> (Vec<f32>, Vec<f32>) {
        self.run_with(kernel, RunHeads)
    }

    /// [`Case::run`] through another entry ([`Entry`]), with K and V stored
    /// as the case's element type.
    pub fn run_with<E: Entry>(&self, kernel: Path, entry: E) -> (Vec<f32>, Vec<f32>) {
        match self.elem {
            Elem::F32 => self.run_typed::<f32>(kernel, entry),
            Elem::F16 => self.run_typed::<f16>(kernel, entry),
            Elem::Bf16 => self.run_typed::<bf16>(kernel, entry),
        }
    }

    fn run_typed<T: Store>(&self, kernel: Path, entry: impl Entry) -> (Vec<f32>, Vec<f32>) {
        let q = Strided::pack(&self.q, self.heads, self.n_q, self.d, self.layout);
        let k = Cache::<T>::pack(&self.k, self.kv_heads, self.n_kv, self.d, self.layout, 1);
        let v = Cache::<T>::pack(&self.v, self.kv_heads, self.n_kv, self.dv, self.layout, 2);
        let mut o = Strided::pack(
            &vec![f32::from_bits(0x7fc0_dead); self.heads * self.n_q * self.dv],
            self.heads,
            self.n_q,
            self.dv,
            self.layout,
        );
        let mut lse = vec![f32::from_bits(0x7fc0_dead); self.heads * self.n_q];
        let mut norms =
            Strided::pack(&vec![0.0; self.kv_heads * self.n_kv], self.kv_heads, self.n_kv, 1, self.layout);
        let mut attn = kernel.set(self.attention());
        if self.cached_norms {
            streamattn::key_norms(k.view(), norms.view_mut()).expect("key norms");
            attn = attn.cached_key_norms(norms.view());
        }
        entry
            .call(&attn, q.view(), k.view(), v.view(), o.view_mut(), Some(&mut lse))
            .expect("valid case rejected");
        o.assert_padding_untouched();
        (o.unpack(), lse)
    }

    /// K and V stored as `elem`: their data rounded to that type (to
    /// nearest, ties to even), which the reference then takes as the exact
    /// inputs.
    pub fn with_elem(mut self, elem: Elem) -> Case {
        self.k.iter_mut().chain(self.v.iter_mut()).for_each(|x| *x = elem.round(*x));
        self.elem = elem;
        self
    }

    /// The materialised f64 reference and its tolerances.
    pub fn reference(&self) -> Reference {
        let (d, dv) = (self.d, self.dv);
        let mut r = Reference {
            out: vec![0.0; self.heads * self.n_q * dv],
            lse: vec![0.0; self.heads * self.n_q],
            tol: vec![0.0; self.heads * self.n_q * dv],
            lse_tol: vec![0.0; self.heads * self.n_q],
        };
        let (mut s, mut e, mut kl) = (Vec::new(), Vec::new(), Vec::new());
        for h in 0..self.heads {
            let hk = h / self.group();
            let qbox = self.query_box(hk);
            for i in 0..self.n_q {
                let row = h * self.n_q + i;
                let q = self.qrow(h, i);
                let keys = self.mask.key_range(i, self.key_len());
                // Scores as defined, their error bounds, and the magnitude of
                // the logit the kernel computes.
                s.clear();
                e.clear();
                kl.clear();
                for j in keys.clone() {
                    let k = self.krow(hk, j);
                    let (mut sij, mut eij, mut kij) = pair(self.scorer, q, k, d, &qbox);
                    if let Some(c) = self.softcap {
                        (sij, eij, kij) = softcap(c as f64, sij, eij);
                    }
                    let (b, a) = (self.bias_at(h, i, j) as f64, self.alibi_at(h, i, j));
                    s.push(sij + b + a);
                    // One rounded addition per term (the ALiBi product and
                    // its addition are one multiply-add in the tiled kernel).
                    let terms = [b, a].iter().filter(|x| **x != 0.0).count() as f64;
                    e.push(eij + U * terms * (kij + b.abs() + a.abs()) + U * a.abs());
                    kl.push(kij + b.abs() + a.abs());
                }
                let n_keys = s.len();
                if let Some(sinks) = &self.sinks {
                    // The sink: one more logit, exact, with value 0.
                    let x = sinks[h] as f64;
                    s.push(x);
                    e.push(0.0);
                    kl.push(x.abs());
                }
                let n = s.len();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let acc = 2.0 * gamma(2 * n + 3);
                if m == f64::NEG_INFINITY {
                    r.lse[row] = f64::NEG_INFINITY;
                    continue; // out stays 0, tolerance 0: fully masked rows are exact
                }
                let w: Vec<f64> = if m == f64::INFINITY {
                    s.iter().map(|&x| if x == f64::INFINITY { 1.0 } else { 0.0 }).collect()
                } else {
                    s.iter().map(|&x| (x - m).exp()).collect()
                };
                let l: f64 = w.iter().sum();
                let delta = if m == f64::INFINITY {
                    0.0
                } else {
                    // Keys whose computed weight is certainly below 2^-126
                    // (step 4) count only in the flush term.
                    let e_max = s.iter().zip(&e).filter(|p| *p.0 == m).map(|p| *p.1).fold(0.0, f64::max);
                    let live =
                        |t: usize| s[t] + e[t] + U * s[t].abs() + 2.0 * U * m.abs() + e_max - m >= -88.0;
                    let big_delta =
                        (0..n).filter(|&t| live(t) && w[t] > 0.0).map(|t| e[t]).fold(0.0, f64::max);
                    let big_s =
                        (0..n).filter(|&t| live(t) && kl[t].is_finite()).map(|t| kl[t]).fold(0.0, f64::max);
                    big_delta + 2.0 * U * big_s + E_EXP
                };
                let wf = (2.0 * delta).exp_m1();
                for c in 0..dv {
                    let (mut o, mut a, mut vmax) = (0.0, 0.0, 0.0f64);
                    for (t, j) in keys.clone().enumerate().take(n_keys) {
                        let x = self.vrow(hk, j)[c] as f64;
                        vmax = vmax.max(x.abs());
                        if w[t] != 0.0 {
                            o += w[t] * x;
                            a += w[t] * x.abs();
                        }
                    }
                    let (o, a) = (o / l, a / l);
                    let flush = n as f64 * 2f64.powi(-125) * (vmax + o.abs());
                    r.out[row * dv + c] = o;
                    // (All-zero values give 0 whatever the weights, also for wf = ∞.)
                    let weights = if a + o.abs() == 0.0 { 0.0 } else { wf * (a + o.abs()) };
                    r.tol[row * dv + c] = weights + acc * a + flush + 1e-35;
                }
                let lse = m + l.ln();
                r.lse[row] = lse;
                r.lse_tol[row] = delta + E_EXP + gamma(2 * n + 3) + U * lse.abs();
            }
        }
        r
    }
}

impl Case {
    /// The coordinate-wise smallest and largest query entries over the rows
    /// of the query heads that read key/value head `hk` (finite entries only).
    pub fn query_box(&self, hk: usize) -> (Vec<f64>, Vec<f64>) {
        let g = self.group();
        let (mut lo, mut hi) = (vec![f64::INFINITY; self.d], vec![f64::NEG_INFINITY; self.d]);
        for h in hk * g..(hk + 1) * g {
            for i in 0..self.n_q {
                for (c, &x) in self.qrow(h, i).iter().enumerate() {
                    if x.is_finite() {
                        lo[c] = lo[c].min(x as f64);
                        hi[c] = hi[c].max(x as f64);
                    }
                }
            }
        }
        (lo, hi)
    }
}

/// Score as defined (f64), the bound on the f32 logit's error, and the
/// magnitude of the logit the kernel computes. `qbox` is [`Case::query_box`].
fn pair(scorer: Scorer, q: &[f32], k: &[f32], d: usize, qbox: &(Vec<f64>, Vec<f64>)) -> (f64, f64, f64) {
    if let Scorer::Additive { w } = scorer {
        return additive_pair(w, q, k);
    }
    let qk: f64 = q.iter().zip(k).map(|(&a, &b)| a as f64 * b as f64).sum();
    let qk_abs: f64 = q.iter().zip(k).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
    let d2: f64 = q.iter().zip(k).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
    let default_scale = 1.0 / (d as f64).sqrt();
    match scorer {
        Scorer::Dot { scale } => {
            let sc = scale.map_or(default_scale, |x| x as f64);
            (sc * qk, gamma(d + 2) * sc * qk_abs, sc * qk.abs())
        }
        // Likewise a `NegSqDist` squared distance, or score, above 2·f32::MAX
        // overflows in every kernel: weight 0 (documented).
        Scorer::NegSqDist { scale }
            if d2.max(d2 * scale.map_or(default_scale, |x| x as f64)) > 2.0 * f32::MAX as f64 =>
        {
            (f64::NEG_INFINITY, 0.0, f64::INFINITY)
        }
        Scorer::NegSqDist { scale } => {
            let sc = scale.map_or(default_scale, |x| x as f64);
            let (mut a2, mut b2) = (0.0f64, 0.0f64);
            for c in 0..d {
                let (lo, hi, x, y) = (qbox.0[c], qbox.1[c], q[c] as f64, k[c] as f64);
                a2 += (x - lo).max(hi - x).powi(2);
                b2 += (y - lo).abs().max((y - hi).abs()).powi(2);
            }
            let bound = sc * (a2.sqrt() + b2.sqrt()).powi(2);
            (-sc * d2, gamma(d + 5) * bound, sc * d2)
        }
        // A squared distance above 2·f32::MAX overflows the f32 sum in every
        // kernel: the key gets weight 0, as documented. (Between f32::MAX
        // and twice that the f32 result depends on rounding: test data avoid it.)
        Scorer::NegLogDist { .. } if d2 > 2.0 * f32::MAX as f64 => (f64::NEG_INFINITY, 0.0, f64::INFINITY),
        Scorer::NegLogDist { eps, p } => {
            let (eps, p) = (eps as f64, p as f64);
            let s = -(eps + d2.powf(p / 2.0)).ln();
            let y = if d2 > 0.0 { (p / 2.0 * d2.ln()).abs() } else { 0.0 };
            let rho = (p / 2.0).max(1.0) * 8.0 * gamma(d + 4) + 5.0 * U * y + E_EXP + 2.0 * U;
            (s, rho + U * (s.abs() + 1.0), s.abs())
        }
        _ => unreachable!("scorer not covered by the tests"),
    }
}

/// A score `s` with error bound `e` softcapped to `c·tanh(s/c)`: the new
/// score, its error bound and magnitude (step 1 of the derivation, softcap).
/// `c·tanh(x/c)` is 1-Lipschitz, so `e` carries over. The kernels compute
/// `c · tanh(fl(s · fl(1/c)))` (the scalar path `fl(s/c)`, less): the
/// argument errs by `2u|s/c|`, which moves `c·tanh` by at most
/// `2u·c·|x|·sech²x ≤ 0.9u·c`; the tangent errs by `E_TANH` relative and the
/// product by `u`. So `e' = e + 0.9u·c + (E_TANH + u)|s'|`. Infinite scores
/// (an overflowed `NegSqDist` distance) become `±c`, exactly.
fn softcap(c: f64, s: f64, e: f64) -> (f64, f64, f64) {
    let t = c * (s / c).tanh();
    let e = if s.is_finite() { e + 0.9 * U * c + (E_TANH + U) * t.abs() } else { 0.0 };
    (t, e, t.abs())
}

/// [`pair`] for `Additive`: `s = Σ_c w_c tanh(q_c + k_c)` (`q`, `k` the
/// projections). Error of the f32 logit (step 1 of the derivation):
/// `fl(q_c + k_c)` errs by `u|x|`, which moves `tanh` by at most
/// `u·|x|·sech²x ≤ 0.449u`; the tangent itself errs by `E_TANH·|t_c|`; the
/// `h` products and sums add `γ(h+1)·Σ|w_c t_c|` (with the tangents' error
/// folded in, `(1 + E_TANH)`). So
/// `e = Σ_c |w_c|(0.449u + E_TANH|t_c|) + γ(h+1)(1 + E_TANH)Σ_c |w_c t_c|`.
fn additive_pair(w: &[f32], q: &[f32], k: &[f32]) -> (f64, f64, f64) {
    let (mut s, mut e, mut abs) = (0.0f64, 0.0f64, 0.0f64);
    for ((&w, &a), &b) in w.iter().zip(q).zip(k) {
        let t = (a as f64 + b as f64).tanh();
        let w = w as f64;
        s += w * t;
        e += w.abs() * (0.449 * U + E_TANH * t.abs());
        abs += (w * t).abs();
    }
    (s, e + gamma(w.len() + 1) * (1.0 + E_TANH) * abs, s.abs())
}

/// Bound on the relative error of the hyperbolic tangent, in either kernel:
/// the crate's vectorised `tanh` is within 1.5 ulp (`3u` relative; all 2³²
/// inputs, `src/tanh.rs`), libm's `tanhf` (scalar path) within `2.83u`
/// (all 2³² inputs: 2.83u, `libm_tanhf_exhaustive` in tests/reference.rs).
pub const E_TANH: f64 = 3.0 * U;

/// In the scorer tables, `Additive` with an empty `w` stands for additive
/// attention with random output weights `w ∈ [−1, 1)^d`, drawn by
/// [`instantiate`] once `d` is known.
pub const ADDITIVE: Scorer<'static> = Scorer::Additive { w: &[] };

/// Fills in the random `w` of an [`ADDITIVE`] placeholder for head
/// dimension `d`; other scorers are returned unchanged. (The vector is
/// leaked: test cases are few and small.)
pub fn instantiate(scorer: Scorer<'static>, d: usize, seed: u64) -> Scorer<'static> {
    match scorer {
        Scorer::Additive { w: [] } => Scorer::Additive { w: Rng::new(seed ^ 0xadd1).vec(d, 1.0).leak() },
        other => other,
    }
}

/// The reference result of a [`Case`], with per-element tolerances.
pub struct Reference {
    pub out: Vec<f64>,
    pub lse: Vec<f64>,
    pub tol: Vec<f64>,
    pub lse_tol: Vec<f64>,
}

impl Reference {
    /// Asserts that `(out, lse)` is within `factor` × the tolerance.
    pub fn assert_close(&self, out: &[f32], lse: &[f32], factor: f64, what: &str) {
        for (idx, ((&x, &r), &t)) in out.iter().zip(&self.out).zip(&self.tol).enumerate() {
            let err = (x as f64 - r).abs();
            assert!(
                err <= factor * t || (r.is_nan() && x.is_nan()),
                "{what}: out[{idx}] = {x:e}, reference {r:e}, error {err:e} > tolerance {:e}",
                factor * t
            );
        }
        for (idx, ((&x, &r), &t)) in lse.iter().zip(&self.lse).zip(&self.lse_tol).enumerate() {
            let ok = if r.is_infinite() { x as f64 == r } else { (x as f64 - r).abs() <= factor * t };
            assert!(ok, "{what}: lse[{idx}] = {x:e}, reference {r:e}, tolerance {:e}", factor * t);
        }
    }
}

/// `2^-149`, the spacing of f32 subnormals.
pub const SUBNORMAL: f64 = 1.401298464324817e-45;
/// `2^-140`: rounding of products in the subnormal range (as in the fuzz target).
pub const UNDERFLOW: f64 = 7.174648137343064e-43;

/// Bound on |merged − exact| for one row (`row`, of `dv` columns) when
/// [`streamattn::merge`] combines two partial results over disjoint key sets,
/// from the partials' references and tolerances (`ra`, `rb`: the crate's
/// partials must be within `ra.tol`/`ra.lse_tol` of `ra.out`/`ra.lse`, and
/// likewise for b) and the rounding of the merge. `gap` is an upper bound on
/// `|L̃_a − L̃_b|`, the difference of the two f32 log-sum-exps merged (that
/// difference itself when it is known). Returns the per-column output bounds
/// and the lse bound. The references may themselves be merged results with
/// the bounds of an earlier merge as their tolerances: merges compose.
///
/// Exact: `O = c_a O_a + c_b O_b` with `c_a = 1/(1 + e^{L_b − L_a})`,
/// `L = ln(e^{L_a} + e^{L_b})`. The crate's partials are within `t_x` (output)
/// and `λ_x` (lse) of the references (`Case::reference()` of the sub-range).
///
/// - Perturbing `L_b − L_a` by at most `λ = λ_a + λ_b` multiplies `c_a` by a
///   factor in `[e^{−λ}, e^{λ}]`.
/// - The merge computes `w = e^{fl(L̃_x − max)}` (one weight is exactly 1),
///   `c_x = w_x / (w_a + w_b)`: the subtraction errs by `u·|L̃_a − L̃_b|`, the
///   exponential by `E_EXP` (relative), the sum and the division by `u` each,
///   so `ĉ_x = c̃_x (1 + θ)`, `|θ| <= ρ = e^{u|ΔL̃| + E_EXP}(1 + u)² − 1`.
///   Together `|ĉ_x − c_x| <= κ c_x`, `κ = (1 + ρ) e^{λ} − 1`.
/// - `fl(ĉ_a Õ_a + ĉ_b Õ_b)` adds `γ(2)(|ĉ_a Õ_a| + |ĉ_b Õ_b|)`, plus
///   `2^-140` for products that round in the subnormal range.
/// - A weight `e^{−|ΔL̃|}` below `2^-126` (an lse gap above ~87) is subnormal:
///   its error is absolute, `2^-150` from the exponential and again from the
///   division, so `2^-149 Σ_x (|O_x| + t_x)` more.
///
/// So `|Ô − O| <= Σ_x [ (1+κ) c_x t_x + κ c_x |O_x| + γ(2)(1+κ) c_x (|O_x| + t_x)
/// + 2^-149 (|O_x| + t_x) ] + 2^-140`.
///
/// The lse: `ln Σ e^{L_x}` is 1-Lipschitz in the max norm, so the inputs
/// contribute `max(λ_a, λ_b)`; the sum `1 + w` has relative error at most ρ,
/// i.e. `−ln(1 − ρ)` after the logarithm, and the logarithm and the final
/// addition round by `u·(|L| + 1)`.
///
/// A partial that saw no key has lse exactly −∞ (the reference contract) and
/// weight exactly 0, the other weight exactly 1, so the merge returns the
/// other partial unchanged: its own tolerances are the bound. Likewise a
/// partial with lse +∞ (an infinite logit, `NegLogDist` with `eps = 0` on an
/// exact match) takes weight exactly 1 against a finite one and is returned
/// unchanged. (Two +∞ partials would be averaged, which is the union's result
/// only when both hold as many infinite logits; `plant` makes one infinite
/// logit per row, so this does not arise here.)
pub fn merge_bound(ra: &Reference, rb: &Reference, gap: f64, row: usize, dv: usize) -> (Vec<f64>, f64) {
    let cols = row * dv..(row + 1) * dv;
    let (big_la, big_lb) = (ra.lse[row], rb.lse[row]);
    if big_la == f64::NEG_INFINITY || big_lb == f64::INFINITY {
        return (rb.tol[cols].to_vec(), rb.lse_tol[row]);
    }
    if big_lb == f64::NEG_INFINITY || big_la == f64::INFINITY {
        return (ra.tol[cols].to_vec(), ra.lse_tol[row]);
    }
    let lam = ra.lse_tol[row] + rb.lse_tol[row];
    let rho = (U * gap + E_EXP).exp() * (1.0 + U).powi(2) - 1.0;
    let kappa = (1.0 + rho) * lam.exp() - 1.0;
    let ca = 1.0 / (1.0 + (big_lb - big_la).exp());
    let cb = 1.0 / (1.0 + (big_la - big_lb).exp());
    let out = cols
        .map(|i| {
            let term = |c: f64, o: f64, t: f64| {
                (1.0 + kappa) * c * t
                    + kappa * c * o.abs()
                    + gamma(2) * (1.0 + kappa) * c * (o.abs() + t)
                    + SUBNORMAL * (o.abs() + t)
            };
            term(ca, ra.out[i], ra.tol[i]) + term(cb, rb.out[i], rb.tol[i]) + UNDERFLOW
        })
        .collect();
    let big_l = big_la.max(big_lb) + (-(big_la - big_lb).abs()).exp().ln_1p();
    let lse = ra.lse_tol[row].max(rb.lse_tol[row]) - (1.0 - rho).ln() + U * (big_l.abs() + 1.0);
    (out, lse)
}

/// Every scorer, with default and non-default parameters (the `p = 2`,
/// `p = 1` and general-power paths of `NegLogDist`, and `eps = 0`), and
/// `Additive` (random `w`, see [`ADDITIVE`]).
pub const SCORERS: [Scorer; 9] = [
    Scorer::dot(),
    Scorer::Dot { scale: Some(0.3) },
    Scorer::neg_sq_dist(),
    Scorer::NegSqDist { scale: Some(2.0) },
    Scorer::neg_log_dist(),
    Scorer::NegLogDist { eps: 0.0, p: 2.0 },
    Scorer::NegLogDist { eps: 1e-2, p: 1.0 },
    Scorer::NegLogDist { eps: 1e-3, p: 3.5 },
    ADDITIVE,
];

/// How a test computes: the scalar path, or the tiled kernel at a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Scalar,
    Tiled(Level),
}

impl Path {
    /// The tiled kernel at the best level this CPU has (the default).
    pub fn best() -> Path {
        Path::Tiled(Level::detected())
    }

    /// `attention` set to compute this way; checks that the tiled kernel
    /// runs at the level asked for.
    pub fn set(self, attention: Attention<'_>) -> Attention<'_> {
        match self {
            Path::Scalar => attention.kernel(Kernel::Scalar),
            Path::Tiled(level) => {
                let a = attention.kernel(Kernel::Tiled).max_level(level);
                assert_eq!(a.level(), level, "the tests run supported levels only");
                a
            }
        }
    }
}

/// The tiled kernel at every level this CPU supports, widest first.
pub fn tiled() -> Vec<Path> {
    Level::ALL.into_iter().filter(|l| l.supported()).map(Path::Tiled).collect()
}

/// The scalar path, then the tiled kernel at every level.
pub fn paths() -> Vec<Path> {
    std::iter::once(Path::Scalar).chain(tiled()).collect()
}

/// Checks a case: each kernel against the f64 reference, and every tiled
/// kernel against the scalar path (twice the tolerance, by the triangle
/// inequality).
pub fn check(case: &Case) {
    let r = case.reference();
    let (so, sl) = case.run(Path::Scalar);
    r.assert_close(&so, &sl, 1.0, "scalar vs f64");
    for kernel in tiled() {
        let (to, tl) = case.run(kernel);
        r.assert_close(&to, &tl, 1.0, &format!("{kernel:?} vs f64"));
        for (idx, ((&a, &b), &t)) in to.iter().zip(&so).zip(&r.tol).enumerate() {
            let err = (a as f64 - b as f64).abs();
            assert!(
                err <= 2.0 * t || (a.is_nan() && b.is_nan()),
                "{kernel:?} vs scalar: out[{idx}] {a:e} vs {b:e}, error {err:e} > {:e}",
                2.0 * t
            );
        }
    }
}

/// Keys or values as a case hands them to the crate: a strided buffer, or
/// a paged pool ([`Layout::Paged`]).
pub enum Cache<T> {
    Strided(Strided<T>),
    Paged(Pool<T>),
}

impl<T: Store> Cache<T> {
    /// Dense `[heads][rows][cols]` data in `layout`; `seed` shuffles a pool.
    pub fn pack(dense: &[f32], heads: usize, rows: usize, cols: usize, layout: Layout, seed: u64) -> Self {
        match layout {
            Layout::Paged { block_size, seq_major } => {
                Cache::Paged(Pool::pack(dense, heads, rows, cols, block_size, seq_major, seed))
            }
            _ => Cache::Strided(Strided::pack(dense, heads, rows, cols, layout).to::<T>()),
        }
    }

    pub fn view(&self) -> HeadsRef<'_, T> {
        match self {
            Cache::Strided(s) => s.view(),
            Cache::Paged(p) => p.view(),
        }
    }
}

/// A paged cache: `rows` rows per head in blocks of a pool, the blocks in a
/// shuffled order with two unused blocks among them, every element outside
/// the cache's rows NaN, and an entry past the ones read that names no
/// block (`u32::MAX`).
pub struct Pool<T> {
    pub data: Vec<T>,
    pub table: Vec<u32>,
    pub layout: PagedLayout,
    pub rows: usize,
}

impl<T: Store> Pool<T> {
    pub fn pack(
        dense: &[f32],
        heads: usize,
        rows: usize,
        cols: usize,
        block_size: usize,
        seq_major: bool,
        seed: u64,
    ) -> Self {
        let layout = if seq_major {
            PagedLayout::seq_major(block_size, heads, cols)
        } else {
            PagedLayout::heads_major(block_size, heads, cols)
        }
        .unwrap();
        let needed = rows.div_ceil(block_size);
        let n_blocks = needed + 2;
        let mut order: Vec<u32> = (0..n_blocks as u32).collect();
        let mut rng = Rng::new(seed);
        for i in (1..n_blocks).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut table = order[..needed].to_vec();
        table.push(u32::MAX);
        let mut data = vec![T::from(f32::NAN); n_blocks * layout.block_stride];
        for h in 0..heads {
            for r in 0..rows {
                let o = table[r / block_size] as usize * layout.block_stride
                    + h * layout.head_stride
                    + (r % block_size) * layout.row_stride;
                for (x, &y) in data[o..o + cols].iter_mut().zip(&dense[(h * rows + r) * cols..]) {
                    *x = T::from(y);
                }
            }
        }
        Pool { data, table, layout, rows }
    }

    pub fn view(&self) -> HeadsRef<'_, T> {
        HeadsRef::paged(&self.data, self.layout, &self.table, self.rows).unwrap()
    }
}

/// A buffer in one of the [`Layout`]s, with padding filled by a sentinel.
pub struct Strided<T = f32> {
    pub data: Vec<T>,
    pub heads: usize,
    pub rows: usize,
    pub cols: usize,
    pub head_stride: usize,
    pub row_stride: usize,
}

const SENTINEL: f32 = -7.77e7;

impl<T: Element> Strided<T> {
    pub fn view(&self) -> HeadsRef<'_, T> {
        HeadsRef::new(&self.data, self.heads, self.rows, self.cols, self.head_stride, self.row_stride)
            .unwrap()
    }
}

impl Strided {
    /// The same buffer with every element (padding too) rounded to `T`.
    pub fn to<T: Store>(&self) -> Strided<T> {
        let Strided { heads, rows, cols, head_stride, row_stride, .. } = *self;
        Strided {
            data: self.data.iter().map(|&x| T::from(x)).collect(),
            heads,
            rows,
            cols,
            head_stride,
            row_stride,
        }
    }

    pub fn pack(dense: &[f32], heads: usize, rows: usize, cols: usize, layout: Layout) -> Strided {
        let (hs, rs, len) = match layout {
            Layout::HeadsMajor | Layout::Paged { .. } => (rows * cols, cols, heads * rows * cols),
            Layout::SeqMajor => (cols, heads * cols, heads * rows * cols),
            Layout::Padded(pad) => {
                let rs = cols + pad;
                let hs = rows * rs + pad;
                (hs, rs, heads * hs)
            }
        };
        let mut data = vec![SENTINEL; len];
        for h in 0..heads {
            for r in 0..rows {
                let src = &dense[(h * rows + r) * cols..][..cols];
                data[h * hs + r * rs..][..cols].copy_from_slice(src);
            }
        }
        Strided { data, heads, rows, cols, head_stride: hs, row_stride: rs }
    }

    pub fn view_mut(&mut self) -> HeadsMut<'_> {
        HeadsMut::new(&mut self.data, self.heads, self.rows, self.cols, self.head_stride, self.row_stride)
            .unwrap()
    }

    pub fn unpack(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.heads * self.rows * self.cols);
        for h in 0..self.heads {
            for r in 0..self.rows {
                out.extend_from_slice(&self.data[h * self.head_stride + r * self.row_stride..][..self.cols]);
            }
        }
        out
    }

    pub fn assert_padding_untouched(&self) {
        let mut inside = vec![false; self.data.len()];
        for h in 0..self.heads {
            for r in 0..self.rows {
                let o = h * self.head_stride + r * self.row_stride;
                inside[o..o + self.cols].iter_mut().for_each(|x| *x = true);
            }
        }
        for (idx, (&x, &ins)) in self.data.iter().zip(&inside).enumerate() {
            assert!(ins || x == SENTINEL, "padding at {idx} was written: {x}");
        }
    }
}
