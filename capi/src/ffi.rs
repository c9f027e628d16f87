//! The exported functions, and the one place where the caller's pointers
//! become references.
//!
//! The contract of every entry (the header's): each pointer that is not
//! `NULL` points to as many initialised elements as its length says,
//! aligned for its type, which nothing else writes during the call. Within
//! that contract nothing here is undefined behaviour: a `NULL` pointer with
//! a nonzero length, a misaligned pointer, a length whose bytes overflow, an
//! output that overlaps an input or another output, and an unknown
//! enumeration value are all reported as errors before a reference is made,
//! and the crate checks every shape before it writes.

// The crate's only `unsafe`: raw parts to slices, and the exported symbols.
#![allow(unsafe_code)]

use crate::config::{self, Terms};
use crate::status::{
    self, Fail, SA_ERR_DTYPE, SA_ERR_MISALIGNED, SA_ERR_NULL_POINTER, SA_ERR_OUT_OF_RANGE, SA_ERR_OVERFLOW,
    SA_ERR_OVERLAP, SA_ERR_UNKNOWN_VALUE,
};
use crate::types::*;
use core::ffi::c_char;
use streamattn::{bf16, f16, Element, HeadsMut, HeadsRef, Level, MatMut, MatRef, PagedLayout};

/// Sequences a batch call takes at most: their views are kept on the stack.
pub const SA_MAX_BATCH: usize = 128;

/// A byte range of the caller's memory.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn of<T>(ptr: *const T, len: usize) -> Span {
        let start = ptr as usize;
        Span { start, end: start.saturating_add(len.saturating_mul(size_of::<T>())) }
    }
    /// Whether the ranges share a byte (an empty range shares none).
    fn meets(self, other: Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Checks the raw parts of a slice: `NULL` only with length 0, aligned, at
/// most `isize::MAX` bytes.
fn check_parts<T>(ptr: *const T, len: usize, what: &'static str) -> Result<(), Fail> {
    if len == 0 {
        return Ok(());
    }
    if ptr.is_null() {
        return Err(Fail::Abi(SA_ERR_NULL_POINTER, what));
    }
    if !(ptr as usize).is_multiple_of(align_of::<T>()) {
        return Err(Fail::Abi(SA_ERR_MISALIGNED, what));
    }
    if len > isize::MAX as usize / size_of::<T>().max(1) {
        return Err(Fail::Abi(SA_ERR_OVERFLOW, what));
    }
    Ok(())
}

/// `len` elements from `ptr`.
///
/// # Safety
/// The entry's contract for `ptr` and `len`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize, what: &'static str) -> Result<&'a [T], Fail> {
    check_parts(ptr, len, what)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: `ptr` is not NULL, aligned, and `len` elements of at most
    // `isize::MAX` bytes from it are initialised and not written during the
    // call (the contract).
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// `len` writable elements from `ptr`.
///
/// # Safety
/// The entry's contract for `ptr` and `len`, and no other reference to the
/// range exists (the caller checked it overlaps no input or output).
unsafe fn slice_mut<'a>(ptr: *mut f32, len: usize, what: &'static str) -> Result<&'a mut [f32], Fail> {
    check_parts(ptr, len, what)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `slice`, and the range is this call's alone: it overlaps
    // no other argument (checked before).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// The struct `p` points to, copied.
///
/// # Safety
/// `p` is `NULL` or points to an initialised `T`.
unsafe fn read<T: Copy>(p: *const T, what: &'static str) -> Result<T, Fail> {
    check_parts(p, 1, what)?;
    // SAFETY: not NULL and aligned (checked), initialised (the contract).
    Ok(unsafe { p.read() })
}

/// The element types of the ABI and their `SA_*` dtype values.
trait Dtype: Element {
    const DTYPE: u32;
}
impl Dtype for f32 {
    const DTYPE: u32 = SA_F32;
}
impl Dtype for f16 {
    const DTYPE: u32 = SA_F16;
}
impl Dtype for bf16 {
    const DTYPE: u32 = SA_BF16;
}

/// The spans an `sa_heads` reads: its elements and its block table.
fn spans(h: &sa_heads) -> [Span; 2] {
    let bytes = match h.dtype {
        SA_F32 => 4,
        _ => 2,
    };
    [
        Span { start: h.data as usize, end: (h.data as usize).saturating_add(h.len.saturating_mul(bytes)) },
        Span::of(h.block_table, if h.block_table.is_null() { 0 } else { h.table_len }),
    ]
}

/// The heads `h` describes, as elements of type `E`.
///
/// # Safety
/// The entry's contract for `h.data`, `h.len`, `h.block_table` and `h.table_len`.
unsafe fn heads<'a, E: Dtype>(h: &sa_heads, what: &'static str) -> Result<HeadsRef<'a, E>, Fail> {
    if h.dtype != E::DTYPE {
        return Err(Fail::Abi(SA_ERR_DTYPE, what));
    }
    // SAFETY: the contract for `data` and `len`, with `E` the type `dtype` names.
    let data = unsafe { slice(h.data.cast::<E>(), h.len, what)? };
    if h.block_table.is_null() {
        return Ok(HeadsRef::new(data, h.heads, h.rows, h.cols, h.head_stride, h.row_stride)?);
    }
    // SAFETY: the contract for `block_table` and `table_len`.
    let table = unsafe { slice(h.block_table, h.table_len, what)? };
    let layout = PagedLayout {
        block_size: h.block_size,
        heads: h.heads,
        cols: h.cols,
        block_stride: h.block_stride,
        head_stride: h.head_stride,
        row_stride: h.row_stride,
    };
    Ok(HeadsRef::paged(data, layout, table, h.rows)?)
}

/// The writable heads `h` describes.
///
/// # Safety
/// The entry's contract for `h.data` and `h.len`, and `h` overlaps no other
/// argument (checked before).
unsafe fn heads_mut<'a>(h: &sa_heads_mut, what: &'static str) -> Result<HeadsMut<'a>, Fail> {
    // SAFETY: the contract, and no overlap (the caller's check).
    let data = unsafe { slice_mut(h.data, h.len, what)? };
    Ok(HeadsMut::new(data, h.heads, h.rows, h.cols, h.head_stride, h.row_stride)?)
}

/// `lse` as an optional output (`NULL`: none).
///
/// # Safety
/// As [`heads_mut`], for `lse` and `lse_len`.
unsafe fn lse_out<'a>(lse: *mut f32, lse_len: usize) -> Result<Option<&'a mut [f32]>, Fail> {
    if lse.is_null() {
        return Ok(None);
    }
    // SAFETY: the contract, and no overlap (the caller's check).
    Ok(Some(unsafe { slice_mut(lse, lse_len, "lse")? }))
}

/// The outputs of a call: `out`'s elements and `lse`, checked to overlap
/// each other and every input in `inputs` not at all.
fn check_outputs(outputs: &[Span], inputs: impl Iterator<Item = Span> + Clone) -> Result<(), Fail> {
    for (n, o) in outputs.iter().enumerate() {
        if outputs[..n].iter().any(|p| p.meets(*o)) || inputs.clone().any(|i| i.meets(*o)) {
            return Err(Fail::Abi(SA_ERR_OVERLAP, "out or lse"));
        }
    }
    Ok(())
}

/// The arrays of an `sa_attention`, with their spans for the overlap check.
///
/// # Safety
/// The entry's contract for every pointer of `c`.
unsafe fn terms<'a>(c: &sa_attention) -> Result<(Terms<'a>, [Span; 7]), Fail> {
    // SAFETY (each `slice` and `heads` below): the contract for the field.
    let opt = |p: *const f32, len: usize, what| -> Result<Option<&'a [f32]>, Fail> {
        if p.is_null() {
            Ok(None)
        } else {
            Ok(Some(unsafe { slice(p, len, what)? }))
        }
    };
    let norms = if c.cached_key_norms.is_null() {
        None
    } else {
        Some(unsafe { read(c.cached_key_norms, "sa_attention.cached_key_norms")? })
    };
    let [norm_data, norm_table] = norms.as_ref().map_or([Span::of(core::ptr::null::<f32>(), 0); 2], spans);
    let t = Terms {
        additive_w: unsafe { slice(c.additive_w, c.additive_w_len, "sa_attention.additive_w")? },
        bias: opt(c.bias, c.bias_len, "sa_attention.bias")?,
        cached_key_norms: match &norms {
            None => None,
            Some(n) => Some(unsafe { heads::<f32>(n, "sa_attention.cached_key_norms")? }),
        },
        alibi_slopes: opt(c.alibi_slopes, c.alibi_len, "sa_attention.alibi_slopes")?,
        sinks: opt(c.sinks, c.sinks_len, "sa_attention.sinks")?,
    };
    let nonnull = |p: *const f32, len: usize| Span::of(p, if p.is_null() { 0 } else { len });
    let s = [
        nonnull(c.additive_w, c.additive_w_len),
        nonnull(c.bias, c.bias_len),
        norm_data,
        norm_table,
        nonnull(c.alibi_slopes, c.alibi_len),
        nonnull(c.sinks, c.sinks_len),
        Span::of(c.cached_key_norms, usize::from(!c.cached_key_norms.is_null())),
    ];
    Ok((t, s))
}

/// Writes the outcome to `err` (if not `NULL`) and returns its code.
///
/// # Safety
/// `err` is `NULL` or points to writable memory for an `sa_error`.
unsafe fn finish(err: *mut sa_error, outcome: Result<(), Fail>) -> i32 {
    let mut e = sa_error { code: 0, message: [0; 256] };
    let code = status::report(&mut e, outcome);
    if !err.is_null() && err.is_aligned() {
        // SAFETY: not NULL, aligned, writable (the contract).
        unsafe { err.write(e) };
    }
    code
}

/// The defaults for `scorer` (`SA_DOT`, ...): scale `1/√d`, `eps = 1e-3`,
/// `p = 2`, no mask, every key, no bias, softcap, ALiBi or sinks, the tiled
/// kernel at the best level this CPU has. Set `additive_w` for `SA_ADDITIVE`.
#[no_mangle]
pub extern "C" fn sa_attention_default(scorer: u32) -> sa_attention {
    config::default(scorer)
}

/// The widest `SA_LEVEL_*` this CPU runs (detected once, at the first call).
#[no_mangle]
pub extern "C" fn sa_detected_level() -> u32 {
    config::level_value(Level::detected())
}

/// The name of a level (`"avx2"`), or `"unknown"`; NUL-terminated, static.
#[no_mangle]
pub extern "C" fn sa_level_name(level: u32) -> *const c_char {
    let name: &'static [u8] = match config::level(level) {
        Some(Level::Generic) => b"generic\0",
        Some(Level::Sse2) => b"sse2\0",
        Some(Level::Neon) => b"neon\0",
        Some(Level::Simd128) => b"simd128\0",
        Some(Level::Avx2) => b"avx2\0",
        Some(Level::Avx512) => b"avx512\0",
        _ => b"unknown\0",
    };
    name.as_ptr().cast()
}

/// The name of a status code (`"SA_ERR_SHAPE_MISMATCH"`); NUL-terminated, static.
#[no_mangle]
pub extern "C" fn sa_status_name(code: i32) -> *const c_char {
    status::name(code).as_ptr().cast()
}

/// Attention over many heads: `out[h][i] = Σ_j softmax_j(s(q[h][i], k[g][j])) · v[g][j]`
/// with `g = h / (heads / kv_heads)` (grouped-query attention), and
/// `lse[h * n_q + i]` the log-sum-exp of each row's logits if `lse` is not
/// `NULL` (`lse_len >= heads · n_q`).
///
/// `q` and `out` are `SA_F32`; `k` and `v` share one dtype and may be paged.
/// One head is `heads = 1`. Returns `SA_OK` or an error code, and fills
/// `err` (if not `NULL`); on an error nothing has been written.
///
/// # Safety
/// Every pointer is `NULL` or valid for the lengths given (the header's
/// contract); outputs overlap no input (checked).
#[no_mangle]
pub unsafe extern "C" fn sa_run_heads(
    attn: *const sa_attention,
    q: *const sa_heads,
    k: *const sa_heads,
    v: *const sa_heads,
    out: *const sa_heads_mut,
    lse: *mut f32,
    lse_len: usize,
    err: *mut sa_error,
) -> i32 {
    // SAFETY: the contract, passed on.
    unsafe { finish(err, run_heads(attn, q, k, v, out, lse, lse_len)) }
}

/// # Safety
/// As [`sa_run_heads`].
unsafe fn run_heads(
    attn: *const sa_attention,
    q: *const sa_heads,
    k: *const sa_heads,
    v: *const sa_heads,
    out: *const sa_heads_mut,
    lse: *mut f32,
    lse_len: usize,
) -> Result<(), Fail> {
    // SAFETY (every call below): the contract for each argument.
    let c = unsafe { read(attn, "attn")? };
    let (q, k, v, out) = unsafe { (read(q, "q")?, read(k, "k")?, read(v, "v")?, read(out, "out")?) };
    let (terms, term_spans) = unsafe { terms(&c)? };
    let inputs = spans(&q).into_iter().chain(spans(&k)).chain(spans(&v)).chain(term_spans);
    check_outputs(&[Span::of(out.data, out.len), Span::of(lse, lse_len)], inputs)?;
    let a = config::attention(&c, terms, q.rows, k.rows)?;
    let qv = unsafe { heads::<f32>(&q, "q")? };
    let outv = unsafe { heads_mut(&out, "out")? };
    let lse = unsafe { lse_out(lse, lse_len)? };
    if k.dtype != v.dtype {
        return Err(Fail::Abi(SA_ERR_DTYPE, "k and v"));
    }
    /// # Safety
    /// The contract for `k` and `v`.
    unsafe fn typed<E: Dtype>(
        a: &streamattn::Attention<'_>,
        q: HeadsRef<'_>,
        k: &sa_heads,
        v: &sa_heads,
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
    ) -> Result<(), Fail> {
        // SAFETY: the contract for `k` and `v`.
        let (k, v) = unsafe { (heads::<E>(k, "k")?, heads::<E>(v, "v")?) };
        Ok(a.run_heads(q, k, v, out, lse)?)
    }
    match k.dtype {
        SA_F32 => unsafe { typed::<f32>(&a, qv, &k, &v, outv, lse) },
        SA_F16 => unsafe { typed::<f16>(&a, qv, &k, &v, outv, lse) },
        SA_BF16 => unsafe { typed::<bf16>(&a, qv, &k, &v, outv, lse) },
        _ => Err(Fail::Abi(SA_ERR_UNKNOWN_VALUE, "k.dtype")),
    }
}

/// A batch of sequences in one call (continuous batching): the new query
/// rows of sequence `s` are rows `cu_seqlens[s] .. cu_seqlens[s + 1]` of `q`
/// and `out` (`[heads][total rows][d]`, any strides), its cache is `k[s]`,
/// `v[s]` (each contiguous or paged, all of one dtype), and its new rows
/// are the cache's last rows: causal and window masks and ALiBi are aligned
/// to each cache's end. `lse[h * total + r]` if `lse` is not `NULL`.
/// `n_seqs <= SA_MAX_BATCH`, `cu_len = n_seqs + 1`. A bias, a key length
/// or cached norms in `attn` are `SA_ERR_UNSUPPORTED`.
///
/// # Safety
/// As [`sa_run_heads`]; `k` and `v` point to `n_seqs` views each.
#[no_mangle]
pub unsafe extern "C" fn sa_run_batch(
    attn: *const sa_attention,
    q: *const sa_heads,
    cu_seqlens: *const usize,
    cu_len: usize,
    k: *const sa_heads,
    v: *const sa_heads,
    n_seqs: usize,
    out: *const sa_heads_mut,
    lse: *mut f32,
    lse_len: usize,
    err: *mut sa_error,
) -> i32 {
    // SAFETY: the contract, passed on.
    unsafe { finish(err, run_batch(attn, q, cu_seqlens, cu_len, k, v, n_seqs, out, lse, lse_len)) }
}

/// # Safety
/// As [`sa_run_batch`].
#[allow(clippy::too_many_arguments)]
unsafe fn run_batch(
    attn: *const sa_attention,
    q: *const sa_heads,
    cu_seqlens: *const usize,
    cu_len: usize,
    k: *const sa_heads,
    v: *const sa_heads,
    n_seqs: usize,
    out: *const sa_heads_mut,
    lse: *mut f32,
    lse_len: usize,
) -> Result<(), Fail> {
    if n_seqs > SA_MAX_BATCH {
        return Err(Fail::Abi(SA_ERR_OUT_OF_RANGE, "n_seqs (more than SA_MAX_BATCH)"));
    }
    // SAFETY (every call below): the contract for each argument.
    let c = unsafe { read(attn, "attn")? };
    let (q, out) = unsafe { (read(q, "q")?, read(out, "out")?) };
    let ks = unsafe { slice(k, n_seqs, "k")? };
    let vs = unsafe { slice(v, n_seqs, "v")? };
    let cu = unsafe { slice(cu_seqlens, cu_len, "cu_seqlens")? };
    let (terms, term_spans) = unsafe { terms(&c)? };
    let inputs = spans(&q).into_iter().chain(ks.iter().chain(vs).flat_map(spans)).chain(term_spans).chain([
        Span::of(cu_seqlens, cu_len),
        Span::of(k, n_seqs),
        Span::of(v, n_seqs),
    ]);
    check_outputs(&[Span::of(out.data, out.len), Span::of(lse, lse_len)], inputs)?;
    let a = config::attention(&c, terms, q.rows, q.rows)?;
    let qv = unsafe { heads::<f32>(&q, "q")? };
    let outv = unsafe { heads_mut(&out, "out")? };
    let lse = unsafe { lse_out(lse, lse_len)? };
    let dtype = ks.first().map_or(SA_F32, |h| h.dtype);
    if ks.iter().chain(vs).any(|h| h.dtype != dtype) {
        return Err(Fail::Abi(SA_ERR_DTYPE, "k and v (one dtype for the batch)"));
    }
    /// The views of the batch's caches, on the stack, then the call.
    ///
    /// # Safety
    /// The contract for every view of `ks` and `vs`.
    unsafe fn typed<E: Dtype>(
        a: &streamattn::Attention<'_>,
        q: HeadsRef<'_>,
        cu: &[usize],
        ks: &[sa_heads],
        vs: &[sa_heads],
        out: HeadsMut<'_>,
        lse: Option<&mut [f32]>,
    ) -> Result<(), Fail> {
        let empty = HeadsRef::<E>::heads_major(&[], 0, 0, 1)?;
        let (mut kv, mut vv) = ([empty; SA_MAX_BATCH], [empty; SA_MAX_BATCH]);
        for s in 0..ks.len() {
            // SAFETY: the contract for each view.
            kv[s] = unsafe { heads::<E>(&ks[s], "k[s]")? };
            vv[s] = unsafe { heads::<E>(&vs[s], "v[s]")? };
        }
        Ok(a.run_batch(q, cu, &kv[..ks.len()], &vv[..vs.len()], out, lse)?)
    }
    match dtype {
        SA_F32 => unsafe { typed::<f32>(&a, qv, cu, ks, vs, outv, lse) },
        SA_F16 => unsafe { typed::<f16>(&a, qv, cu, ks, vs, outv, lse) },
        SA_BF16 => unsafe { typed::<bf16>(&a, qv, cu, ks, vs, outv, lse) },
        _ => Err(Fail::Abi(SA_ERR_UNKNOWN_VALUE, "k.dtype")),
    }
}

/// Merges partial results over disjoint key ranges (split-KV): row `i` of
/// `out_a` (`rows × cols`, `row_stride`) becomes
/// `(e^{lse_a[i]} out_a[i] + e^{lse_b[i]} out_b[i]) / (e^{lse_a[i]} + e^{lse_b[i]})`
/// and `lse_a[i]` becomes `ln(e^{lse_a[i]} + e^{lse_b[i]})`. `out_a` and
/// `out_b` are single heads (`heads = 1`), `SA_F32`.
///
/// # Safety
/// As [`sa_run_heads`].
#[no_mangle]
pub unsafe extern "C" fn sa_merge(
    out_a: *const sa_heads_mut,
    lse_a: *mut f32,
    lse_a_len: usize,
    out_b: *const sa_heads,
    lse_b: *const f32,
    lse_b_len: usize,
    err: *mut sa_error,
) -> i32 {
    // SAFETY: the contract, passed on.
    unsafe { finish(err, merge(out_a, lse_a, lse_a_len, out_b, lse_b, lse_b_len)) }
}

/// # Safety
/// As [`sa_merge`].
unsafe fn merge(
    out_a: *const sa_heads_mut,
    lse_a: *mut f32,
    lse_a_len: usize,
    out_b: *const sa_heads,
    lse_b: *const f32,
    lse_b_len: usize,
) -> Result<(), Fail> {
    // SAFETY (every call below): the contract for each argument.
    let (a, b) = unsafe { (read(out_a, "out_a")?, read(out_b, "out_b")?) };
    if a.heads != 1 || b.heads != 1 {
        return Err(streamattn::Error::ShapeMismatch {
            what: "heads",
            expected: 1,
            found: a.heads.max(b.heads),
        }
        .into());
    }
    if b.dtype != SA_F32 {
        return Err(Fail::Abi(SA_ERR_DTYPE, "out_b"));
    }
    let inputs = spans(&b).into_iter().chain([Span::of(lse_b, lse_b_len)]);
    check_outputs(&[Span::of(a.data, a.len), Span::of(lse_a, lse_a_len)], inputs)?;
    let bv = unsafe { slice(b.data.cast::<f32>(), b.len, "out_b")? };
    let lse_b = unsafe { slice(lse_b, lse_b_len, "lse_b")? };
    let av = unsafe { slice_mut(a.data, a.len, "out_a")? };
    let lse_a = unsafe { slice_mut(lse_a, lse_a_len, "lse_a")? };
    let av = MatMut::new(av, a.rows, a.cols, a.row_stride)?;
    let bv = MatRef::new(bv, b.rows, b.cols, b.row_stride)?;
    Ok(streamattn::merge(av, lse_a, bv, lse_b)?)
}

/// The squared norm of every key: `norms[h][j] = ‖k[h][j]‖²`, for
/// `sa_attention.cached_key_norms` (`norms` is `heads × n × 1`).
///
/// # Safety
/// As [`sa_run_heads`].
#[no_mangle]
pub unsafe extern "C" fn sa_key_norms(
    k: *const sa_heads,
    norms: *const sa_heads_mut,
    err: *mut sa_error,
) -> i32 {
    // SAFETY: the contract, passed on.
    unsafe { finish(err, key_norms(k, norms)) }
}

/// # Safety
/// As [`sa_key_norms`].
unsafe fn key_norms(k: *const sa_heads, norms: *const sa_heads_mut) -> Result<(), Fail> {
    // SAFETY (every call below): the contract for each argument.
    let (k, n) = unsafe { (read(k, "k")?, read(norms, "norms")?) };
    check_outputs(&[Span::of(n.data, n.len)], spans(&k).into_iter())?;
    let nv = unsafe { heads_mut(&n, "norms")? };
    match k.dtype {
        SA_F32 => Ok(streamattn::key_norms(unsafe { heads::<f32>(&k, "k")? }, nv)?),
        SA_F16 => Ok(streamattn::key_norms(unsafe { heads::<f16>(&k, "k")? }, nv)?),
        SA_BF16 => Ok(streamattn::key_norms(unsafe { heads::<bf16>(&k, "k")? }, nv)?),
        _ => Err(Fail::Abi(SA_ERR_UNKNOWN_VALUE, "k.dtype")),
    }
}
