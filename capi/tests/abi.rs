//! The C entries against the Rust API on the same data: every scorer, mask,
//! element type, grouping, paged caches, the optional logit terms, merge and
//! key norms give the same bits through the ABI as through the crate (the
//! ABI only converts views, so any difference is a conversion bug); and every
//! error code, each with its output left untouched.

#![allow(clippy::pedantic)]

use core::ffi::CStr;
use core::ptr::{null, null_mut};
use streamattn::{
    bf16, f16, Attention, Bias, Element, HeadsMut, HeadsRef, Kernel, Level, Mask, PagedLayout, Scorer,
};
use streamattn_c::*;

/// Deterministic values in [-1, 1).
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The cache element types and their `SA_*` dtype values.
trait Elem: Element {
    const DTYPE: u32;
    fn from(x: f32) -> Self;
}
impl Elem for f32 {
    const DTYPE: u32 = SA_F32;
    fn from(x: f32) -> Self {
        x
    }
}
impl Elem for f16 {
    const DTYPE: u32 = SA_F16;
    fn from(x: f32) -> Self {
        f16::from_f32(x)
    }
}
impl Elem for bf16 {
    const DTYPE: u32 = SA_BF16;
    fn from(x: f32) -> Self {
        bf16::from_f32(x)
    }
}

/// Dense `[heads][rows][cols]`.
fn view<E: Elem>(x: &[E], heads: usize, rows: usize, cols: usize) -> sa_heads {
    sa_heads {
        data: x.as_ptr().cast(),
        len: x.len(),
        dtype: E::DTYPE,
        heads,
        rows,
        cols,
        head_stride: rows * cols,
        row_stride: cols,
        block_table: null(),
        table_len: 0,
        block_size: 0,
        block_stride: 0,
    }
}

fn view_mut(x: &mut [f32], heads: usize, rows: usize, cols: usize) -> sa_heads_mut {
    sa_heads_mut {
        data: x.as_mut_ptr(),
        len: x.len(),
        heads,
        rows,
        cols,
        head_stride: rows * cols,
        row_stride: cols,
    }
}

fn error() -> sa_error {
    sa_error { code: -1, message: [0; 256] }
}

fn message(e: &sa_error) -> String {
    // SAFETY: `report` always writes a NUL within the buffer.
    #[allow(unsafe_code)]
    let m = unsafe { CStr::from_ptr(e.message.as_ptr()) };
    m.to_str().unwrap().to_owned()
}

fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

const D: usize = 12;

/// One case through both paths: `(heads, kv_heads, n_q, n_kv)` on random data.
fn run_both<E: Elem>(
    a: &sa_attention,
    rust: Attention<'_>,
    heads: usize,
    kv: usize,
    n_q: usize,
    n_kv: usize,
    seed: u64,
) {
    let q = data(heads * n_q * D, seed);
    let k: Vec<E> = data(kv * n_kv * D, seed + 1).into_iter().map(E::from).collect();
    let v: Vec<E> = data(kv * n_kv * D, seed + 2).into_iter().map(E::from).collect();
    compare(a, rust, &q, &k, &v, [heads, kv, n_q, n_kv], &format!("{a:?}"));
}

/// `sa_run_heads` and `Attention::run_heads` on the same dense views, with
/// `lse`: the same bits. `shape` is `[heads, kv_heads, n_q, n_kv]`.
fn compare<E: Elem>(
    a: &sa_attention,
    rust: Attention<'_>,
    q: &[f32],
    k: &[E],
    v: &[E],
    shape: [usize; 4],
    case: &str,
) {
    let [heads, kv, n_q, n_kv] = shape;
    let (mut out, mut lse) = (vec![7.0f32; heads * n_q * D], vec![7.0f32; heads * n_q]);
    let mut e = error();
    #[allow(unsafe_code)]
    let code = unsafe {
        sa_run_heads(
            a,
            &view(q, heads, n_q, D),
            &view(k, kv, n_kv, D),
            &view(v, kv, n_kv, D),
            &view_mut(&mut out, heads, n_q, D),
            lse.as_mut_ptr(),
            lse.len(),
            &mut e,
        )
    };
    assert_eq!(code, SA_OK, "{case}: {}", message(&e));
    assert_eq!(e.code, SA_OK);
    let (mut want, mut want_lse) = (vec![0.0f32; out.len()], vec![0.0f32; lse.len()]);
    rust.run_heads(
        HeadsRef::heads_major(q, heads, n_q, D).unwrap(),
        HeadsRef::heads_major(k, kv, n_kv, D).unwrap(),
        HeadsRef::heads_major(v, kv, n_kv, D).unwrap(),
        HeadsMut::heads_major(&mut want, heads, n_q, D).unwrap(),
        Some(&mut want_lse),
    )
    .unwrap();
    assert!(same(&out, &want) && same(&lse, &want_lse), "{case}");
}

#[test]
fn every_scorer_mask_and_element_type_gives_the_crates_bits() {
    let w = data(D, 99);
    let scorers: [(u32, Scorer<'_>); 4] = [
        (SA_DOT, Scorer::dot()),
        (SA_NEG_SQ_DIST, Scorer::neg_sq_dist()),
        (SA_NEG_LOG_DIST, Scorer::neg_log_dist()),
        (SA_ADDITIVE, Scorer::additive(&w)),
    ];
    let (n_q, n_kv) = (5, 37);
    let masks = [
        (SA_MASK_NONE, Mask::None),
        (SA_MASK_CAUSAL, Mask::Causal { offset: 3 }),
        (SA_MASK_CAUSAL_BOTTOM_RIGHT, Mask::causal_bottom_right(n_q, n_kv)),
        (SA_MASK_WINDOW, Mask::Window { offset: 20, left: 4, right: 1 }),
    ];
    let mut seed = 1;
    for (sc, scorer) in scorers {
        for (mk, mask) in masks {
            let mut a = sa_attention_default(sc);
            a.additive_w = w.as_ptr();
            a.additive_w_len = w.len();
            a.mask = mk;
            a.mask_offset = match mask {
                Mask::Causal { offset } | Mask::Window { offset, .. } => offset,
                _ => 0,
            };
            a.window_left = 4;
            a.window_right = 1;
            let rust = Attention::new(scorer).mask(mask);
            seed += 10;
            run_both::<f32>(&a, rust, 4, 2, n_q, n_kv, seed);
            run_both::<f16>(&a, rust, 4, 2, n_q, n_kv, seed);
            run_both::<bf16>(&a, rust, 2, 2, n_q, n_kv, seed);
        }
    }
}

#[test]
fn every_option_of_sa_attention_reaches_the_crate() {
    let (heads, n_q, n_kv) = (2, 3, 29);
    let slopes = [0.5f32, 0.25];
    let sinks = [0.3f32, -1.0];
    let bias = data(heads * n_q * n_kv, 5);
    let k = data(heads * n_kv * D, 6);
    let mut norms = vec![0.0f32; heads * n_kv];
    #[allow(unsafe_code)]
    let code =
        unsafe { sa_key_norms(&view(&k, heads, n_kv, D), &view_mut(&mut norms, heads, n_kv, 1), null_mut()) };
    assert_eq!(code, SA_OK);
    let mut want = vec![0.0f32; norms.len()];
    streamattn::key_norms(
        HeadsRef::heads_major(&k, heads, n_kv, D).unwrap(),
        HeadsMut::heads_major(&mut want, heads, n_kv, 1).unwrap(),
    )
    .unwrap();
    assert!(same(&norms, &want));
    let norms_view = view(&norms, heads, n_kv, 1);

    let base = sa_attention_default(SA_NEG_LOG_DIST);
    let rust = Attention::new(Scorer::neg_log_dist());
    let mut cases: Vec<(sa_attention, Attention<'_>)> = Vec::new();
    let mut a = base;
    a.softcap = 2.5;
    cases.push((a, rust.softcap(2.5)));
    let mut a = base;
    a.alibi_slopes = slopes.as_ptr();
    a.alibi_len = 2;
    cases.push((a, rust.alibi(&slopes)));
    let mut a = base;
    a.sinks = sinks.as_ptr();
    a.sinks_len = 2;
    cases.push((a, rust.sinks(&sinks)));
    let mut a = base;
    a.key_len = 17;
    cases.push((a, rust.key_len(17)));
    let mut a = base;
    (a.bias, a.bias_len, a.bias_rows, a.bias_cols, a.bias_head_stride, a.bias_row_stride) =
        (bias.as_ptr(), bias.len(), n_q, n_kv, n_q * n_kv, n_kv);
    cases.push((a, rust.bias(Bias::new(&bias, n_q, n_kv, n_q * n_kv, n_kv).unwrap())));
    let mut a = base;
    a.cached_key_norms = &norms_view;
    cases.push((a, rust.cached_key_norms(HeadsRef::heads_major(&norms, heads, n_kv, 1).unwrap())));
    let mut a = base;
    a.kernel = SA_KERNEL_SCALAR;
    cases.push((a, rust.kernel(Kernel::Scalar)));
    let mut a = base;
    a.kernel = SA_KERNEL_TILED;
    cases.push((a, rust.kernel(Kernel::Tiled)));
    assert_eq!(base.kernel, SA_KERNEL_DEFAULT);
    let mut a = sa_attention_default(SA_ADDITIVE);
    let w = data(D, 9);
    a.additive_w = w.as_ptr();
    a.additive_w_len = D;
    cases.push((a, Attention::new(Scorer::additive(&w)).kernel(Kernel::default_for(&Scorer::additive(&w)))));
    let mut a = base;
    a.max_level = SA_LEVEL_GENERIC;
    cases.push((a, rust.max_level(Level::Generic)));
    let mut a = sa_attention_default(SA_DOT);
    a.scale = 0.75;
    cases.push((a, Attention::new(Scorer::Dot { scale: Some(0.75) })));
    let mut a = base;
    (a.eps, a.p) = (0.25, 1.0);
    cases.push((a, Attention::new(Scorer::NegLogDist { eps: 0.25, p: 1.0 })));
    for (n, (a, rust)) in cases.into_iter().enumerate() {
        let q = data(heads * n_q * D, 40 + n as u64);
        let v = data(heads * n_kv * D, 80 + n as u64);
        compare(&a, rust, &q, &k, &v, [heads, heads, n_q, n_kv], &format!("case {n}"));
    }
}

#[test]
fn a_paged_batch_and_a_merge_give_the_crates_bits() {
    // Three sequences: a prefill chunk of 4 rows, a decode, an empty cache
    // with no rows; bf16 pool of blocks of 3 rows, shuffled.
    let (heads, kv, bs) = (4, 2, 3);
    let lens = [11usize, 7, 0];
    let rows = [4usize, 1, 0];
    let cu: Vec<usize> = core::iter::once(0)
        .chain(rows.iter().scan(0, |t, r| {
            Some({
                *t += r;
                *t
            })
        }))
        .collect();
    let total = cu[3];
    let blocks: usize = lens.iter().map(|l| l.div_ceil(bs)).sum();
    let layout = PagedLayout::seq_major(bs, kv, D).unwrap();
    let pool_len = blocks * layout.block_stride;
    let kp: Vec<bf16> = data(pool_len, 3).into_iter().map(bf16::from_f32).collect();
    let vp: Vec<bf16> = data(pool_len, 4).into_iter().map(bf16::from_f32).collect();
    let order: Vec<u32> = (0..blocks as u32).rev().collect();
    let mut tables = Vec::new();
    let mut at = 0;
    for l in lens {
        let n = l.div_ceil(bs);
        tables.push(order[at..at + n].to_vec());
        at += n;
    }
    let paged = |pool: &[bf16], t: &[u32], rows: usize| sa_heads {
        data: pool.as_ptr().cast(),
        len: pool.len(),
        dtype: SA_BF16,
        heads: kv,
        rows,
        cols: D,
        head_stride: layout.head_stride,
        row_stride: layout.row_stride,
        block_table: t.as_ptr(),
        table_len: t.len(),
        block_size: bs,
        block_stride: layout.block_stride,
    };
    let ks: Vec<sa_heads> = (0..3).map(|s| paged(&kp, &tables[s], lens[s])).collect();
    let vs: Vec<sa_heads> = (0..3).map(|s| paged(&vp, &tables[s], lens[s])).collect();
    let q = data(heads * total * D, 9);
    let (mut out, mut lse) = (vec![0.0f32; heads * total * D], vec![0.0f32; heads * total]);
    let mut a = sa_attention_default(SA_DOT);
    a.mask = SA_MASK_CAUSAL;
    let mut e = error();
    #[allow(unsafe_code)]
    let code = unsafe {
        sa_run_batch(
            &a,
            &view(&q, heads, total, D),
            cu.as_ptr(),
            cu.len(),
            ks.as_ptr(),
            vs.as_ptr(),
            3,
            &view_mut(&mut out, heads, total, D),
            lse.as_mut_ptr(),
            lse.len(),
            &mut e,
        )
    };
    assert_eq!(code, SA_OK, "{}", message(&e));
    let kr: Vec<HeadsRef<'_, bf16>> =
        (0..3).map(|s| HeadsRef::paged(&kp, layout, &tables[s], lens[s]).unwrap()).collect();
    let vr: Vec<HeadsRef<'_, bf16>> =
        (0..3).map(|s| HeadsRef::paged(&vp, layout, &tables[s], lens[s]).unwrap()).collect();
    let (mut want, mut want_lse) = (vec![0.0f32; out.len()], vec![0.0f32; lse.len()]);
    Attention::new(Scorer::dot())
        .mask(Mask::Causal { offset: 0 })
        .run_batch(
            HeadsRef::heads_major(&q, heads, total, D).unwrap(),
            &cu,
            &kr,
            &vr,
            HeadsMut::heads_major(&mut want, heads, total, D).unwrap(),
            Some(&mut want_lse),
        )
        .unwrap();
    assert!(same(&out, &want) && same(&lse, &want_lse));

    // Merge the first head's rows with the second's.
    let (n, split) = (total, total * D);
    let (mut ma, mut la) = (out[..split].to_vec(), lse[..n].to_vec());
    let (mut ra, mut rl) = (ma.clone(), la.clone());
    let (ob, lb) = (&out[split..2 * split], &lse[n..2 * n]);
    #[allow(unsafe_code)]
    let code = unsafe {
        sa_merge(
            &view_mut(&mut ma, 1, n, D),
            la.as_mut_ptr(),
            n,
            &view(ob, 1, n, D),
            lb.as_ptr(),
            n,
            null_mut(),
        )
    };
    assert_eq!(code, SA_OK);
    streamattn::merge(
        streamattn::MatMut::dense(&mut ra, n, D).unwrap(),
        &mut rl,
        streamattn::MatRef::dense(ob, n, D).unwrap(),
        lb,
    )
    .unwrap();
    assert!(same(&ma, &ra) && same(&la, &rl));
}

#[test]
fn every_error_code_is_returned_before_anything_is_written() {
    let (h, n_q, n_kv) = (2, 3, 8);
    let q = data(h * n_q * D, 1);
    let k = data(h * n_kv * D, 2);
    let v = data(h * n_kv * D, 3);
    let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
    let mut out = vec![7.0f32; h * n_q * D];
    let mut lse = vec![7.0f32; h * n_q];
    let ok = sa_attention_default(SA_DOT);
    let (qv, kv_, vv) = (view(&q, h, n_q, D), view(&k, h, n_kv, D), view(&v, h, n_kv, D));
    let nan = [f32::NAN; 2];
    let table = [5u32];
    let out_ptr = out.as_mut_ptr();
    let out_len = out.len();
    let ov = sa_heads_mut {
        data: out_ptr,
        len: out_len,
        heads: h,
        rows: n_q,
        cols: D,
        head_stride: n_q * D,
        row_stride: D,
    };
    let lse_ptr = lse.as_mut_ptr();
    type Case = (i32, sa_attention, sa_heads, sa_heads, sa_heads, sa_heads_mut, *mut f32);
    let mut cases: Vec<(&str, Case)> = Vec::new();
    let with = |f: &dyn Fn(&mut sa_heads)| {
        let mut x = kv_;
        f(&mut x);
        x
    };
    cases.push(("zero dim", (SA_ERR_ZERO_DIM, ok, qv, with(&|x| x.cols = 0), vv, ov, lse_ptr)));
    cases.push(("short", (SA_ERR_BUFFER_TOO_SHORT, ok, qv, with(&|x| x.len -= 1), vv, ov, lse_ptr)));
    cases.push((
        "stride",
        (SA_ERR_STRIDE_TOO_SMALL, ok, qv, with(&|x| x.row_stride = D - 1), vv, ov, lse_ptr),
    ));
    cases.push((
        "overflow",
        (SA_ERR_OVERFLOW, ok, qv, with(&|x| x.row_stride = usize::MAX / 2), vv, ov, lse_ptr),
    ));
    cases.push(("shape", (SA_ERR_SHAPE_MISMATCH, ok, qv, kv_, with(&|x| x.rows = n_kv - 1), ov, lse_ptr)));
    let three = |x: sa_heads| sa_heads { heads: 3, rows: 5, head_stride: 5 * D, ..x }; // 2 query heads over 3
    cases.push(("grouping", (SA_ERR_HEAD_GROUPING, ok, qv, three(kv_), three(vv), ov, lse_ptr)));
    let mut bad = ok;
    bad.softcap = -1.0;
    cases.push(("parameter", (SA_ERR_INVALID_PARAMETER, bad, qv, kv_, vv, ov, lse_ptr)));
    let pool = with(&|x| {
        x.block_table = table.as_ptr();
        x.table_len = 1;
        x.block_size = n_kv;
        x.block_stride = n_kv * D * h;
        x.head_stride = n_kv * D;
    });
    cases.push(("pool", (SA_ERR_BLOCK_OUT_OF_POOL, ok, qv, pool, vv, ov, lse_ptr)));
    let mut bad = ok;
    bad.scorer = 17;
    cases.push(("unknown", (SA_ERR_UNKNOWN_VALUE, bad, qv, kv_, vv, ov, lse_ptr)));
    cases.push(("null", (SA_ERR_NULL_POINTER, ok, qv, with(&|x| x.data = null()), vv, ov, lse_ptr)));
    let odd = sa_heads { data: k.as_ptr().cast::<u8>().wrapping_add(1).cast(), ..kv_ };
    cases.push(("misaligned", (SA_ERR_MISALIGNED, ok, qv, odd, vv, ov, lse_ptr)));
    let aliased = sa_heads { data: out_ptr.cast_const().cast(), len: out_len, ..qv };
    cases.push(("overlap", (SA_ERR_OVERLAP, ok, aliased, kv_, vv, ov, lse_ptr)));
    cases.push(("dtype", (SA_ERR_DTYPE, ok, qv, view(&k16, h, n_kv, D), vv, ov, lse_ptr)));
    let mut bad = ok;
    bad.sinks = nan.as_ptr();
    bad.sinks_len = 2;
    cases.push(("sinks", (SA_ERR_INVALID_PARAMETER, bad, qv, kv_, vv, ov, lse_ptr)));
    for (name, (want, a, q, k, v, o, l)) in cases {
        let mut e = error();
        #[allow(unsafe_code)]
        let code = unsafe { sa_run_heads(&a, &q, &k, &v, &o, l, h * n_q, &mut e) };
        assert_eq!(code, want, "{name}: {}", message(&e));
        assert_eq!(e.code, want, "{name}");
        assert!(!message(&e).is_empty());
        #[allow(unsafe_code)]
        let untouched = unsafe { core::slice::from_raw_parts(out_ptr, out_len) }.iter().all(|&x| x == 7.0);
        assert!(untouched, "{name}: out written");
    }
    assert!(lse.iter().all(|&x| x == 7.0));

    // The batch's own: decreasing offsets, more rows than keys, a bias, too many sequences.
    let ks = [kv_, kv_];
    let vs = [vv, vv];
    let batch = |a: &sa_attention, cu: &[usize], n: usize| {
        let mut e = error();
        #[allow(unsafe_code)]
        let code = unsafe {
            sa_run_batch(
                a,
                &qv,
                cu.as_ptr(),
                cu.len(),
                ks.as_ptr(),
                vs.as_ptr(),
                n,
                &ov,
                null_mut(),
                0,
                &mut e,
            )
        };
        assert_eq!(code, e.code);
        code
    };
    assert_eq!(batch(&ok, &[0, 3, 1], 2), SA_ERR_DECREASING);
    let mut causal = ok;
    causal.mask = SA_MASK_CAUSAL;
    let short_k = [sa_heads { rows: 2, ..kv_ }];
    let mut e = error();
    #[allow(unsafe_code)]
    let code = unsafe {
        sa_run_batch(
            &causal,
            &qv,
            [0usize, 3].as_ptr(),
            2,
            short_k.as_ptr(),
            short_k.as_ptr(),
            1,
            &ov,
            null_mut(),
            0,
            &mut e,
        )
    };
    assert_eq!(code, SA_ERR_OUT_OF_RANGE, "{}", message(&e));
    let mut with_bias = ok;
    (with_bias.bias, with_bias.bias_len, with_bias.bias_rows, with_bias.bias_cols) = (q.as_ptr(), 1, 1, 1);
    assert_eq!(batch(&with_bias, &[0, 3], 1), SA_ERR_UNSUPPORTED);
    assert_eq!(batch(&ok, &[0, 3], SA_MAX_BATCH + 1), SA_ERR_OUT_OF_RANGE);
    #[allow(unsafe_code)]
    let untouched = unsafe { core::slice::from_raw_parts(out_ptr, out_len) }.iter().all(|&x| x == 7.0);
    assert!(untouched);

    // Names.
    #[allow(unsafe_code)]
    let name = unsafe { CStr::from_ptr(sa_status_name(SA_ERR_OVERLAP)) };
    assert_eq!(name.to_str().unwrap(), "SA_ERR_OVERLAP");
    #[allow(unsafe_code)]
    let level = unsafe { CStr::from_ptr(sa_level_name(sa_detected_level())) };
    assert_eq!(level.to_str().unwrap(), Level::detected().name());
}
