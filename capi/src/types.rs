//! The C types of the ABI: plain structs of pointers, lengths and numbers,
//! and the constants their `u32` fields take. Enumerations are `u32` fields
//! with `#define`d values, not C enums, so that any value a C caller passes
//! is defined behaviour: an unknown one is `SA_ERR_UNKNOWN_VALUE`.

use core::ffi::{c_char, c_void};

/// `sa_heads.dtype`: 32-bit floats.
pub const SA_F32: u32 = 0;
/// `sa_heads.dtype`: IEEE half precision (`uint16_t` bit patterns).
pub const SA_F16: u32 = 1;
/// `sa_heads.dtype`: bfloat16 (`uint16_t` bit patterns, the high half of an `f32`).
pub const SA_BF16: u32 = 2;

/// `sa_attention.scorer`: `scale · q·k`.
pub const SA_DOT: u32 = 0;
/// `sa_attention.scorer`: `−scale · ‖q − k‖²`.
pub const SA_NEG_SQ_DIST: u32 = 1;
/// `sa_attention.scorer`: `−ln(eps + ‖q − k‖^p)` (inverse distance weighting).
pub const SA_NEG_LOG_DIST: u32 = 2;
/// `sa_attention.scorer`: `Σ_c w_c · tanh(q_c + k_c)` on projected queries and keys.
pub const SA_ADDITIVE: u32 = 3;

/// `sa_attention.mask`: every key is seen.
pub const SA_MASK_NONE: u32 = 0;
/// `sa_attention.mask`: key `j` is seen by row `i` when `j <= i + mask_offset`.
pub const SA_MASK_CAUSAL: u32 = 1;
/// `sa_attention.mask`: causal with `mask_offset = n_kv − n_q` (the last
/// query row sees every key; the new rows are the cache's last rows).
pub const SA_MASK_CAUSAL_BOTTOM_RIGHT: u32 = 2;
/// `sa_attention.mask`: key `j` is seen by row `i` when
/// `i + mask_offset − window_left <= j <= i + mask_offset + window_right`.
pub const SA_MASK_WINDOW: u32 = 3;

/// `sa_attention.kernel`: the vectorised tiled kernel.
pub const SA_KERNEL_TILED: u32 = 0;
/// `sa_attention.kernel`: the scalar reference path.
pub const SA_KERNEL_SCALAR: u32 = 1;
/// `sa_attention.kernel`: the default for the scorer (`sa_attention_default`
/// sets it): the tiled kernel on targets with SIMD; on targets without, the
/// scalar path for every scorer but `SA_ADDITIVE`.
pub const SA_KERNEL_DEFAULT: u32 = 2;

/// A level: no SIMD, the same bits on every CPU.
pub const SA_LEVEL_GENERIC: u32 = 0;
/// A level: x86-64 SSE2, 4 lanes.
pub const SA_LEVEL_SSE2: u32 = 1;
/// A level: aarch64 NEON, 4 lanes.
pub const SA_LEVEL_NEON: u32 = 2;
/// A level: wasm32 `simd128`, 4 lanes.
pub const SA_LEVEL_SIMD128: u32 = 3;
/// A level: x86-64 AVX2 + FMA + F16C, 8 lanes.
pub const SA_LEVEL_AVX2: u32 = 4;
/// A level: x86-64 AVX-512, 16 lanes; as `sa_attention.max_level`, no cap.
pub const SA_LEVEL_AVX512: u32 = 5;

/// `sa_attention.key_len`: every key of `k` and `v` (`SIZE_MAX`).
pub const SA_ALL_KEYS: usize = !0;

/// Read-only heads of a matrix: element `[h][r][c]` at
/// `data[h * head_stride + r * row_stride + c]` (strides in elements), `len`
/// elements readable from `data` (`data` may be `NULL` when `len` is 0).
///
/// Paged (when `block_table` is not `NULL`): `data` is a pool of blocks of
/// `block_size` rows, `block_stride` elements apart, and row `r` is row
/// `r % block_size` of block `block_table[r / block_size]`, at `head_stride`
/// and `row_stride` within its block. `table_len` entries are readable from
/// `block_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sa_heads {
    /// The first element (`float`, or `uint16_t` for `SA_F16` and `SA_BF16`).
    pub data: *const c_void,
    /// Elements readable from `data`.
    pub len: usize,
    /// `SA_F32`, `SA_F16` or `SA_BF16`.
    pub dtype: u32,
    /// Heads.
    pub heads: usize,
    /// Rows per head (keys, or query rows).
    pub rows: usize,
    /// Columns (the head dimension).
    pub cols: usize,
    /// Elements from one head to the next (within a block when paged).
    pub head_stride: usize,
    /// Elements from one row to the next (within a block when paged).
    pub row_stride: usize,
    /// `NULL` for a contiguous view; else the block of each group of `block_size` rows.
    pub block_table: *const u32,
    /// Entries readable from `block_table`.
    pub table_len: usize,
    /// Rows per block (paged views).
    pub block_size: usize,
    /// Elements from one block to the next (paged views).
    pub block_stride: usize,
}

/// Writable `float` heads: element `[h][r][c]` at
/// `data[h * head_stride + r * row_stride + c]`, `len` elements writable
/// from `data`. They must not overlap any input or other output of the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sa_heads_mut {
    /// The first element.
    pub data: *mut f32,
    /// Elements writable from `data`.
    pub len: usize,
    /// Heads.
    pub heads: usize,
    /// Rows per head.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Elements from one head to the next.
    pub head_stride: usize,
    /// Elements from one row to the next.
    pub row_stride: usize,
}

/// What to compute: the scorer and its parameters, the mask and the optional
/// terms of the logits. Start from `sa_attention_default(scorer)`; a pointer
/// field left `NULL` leaves its term out.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sa_attention {
    /// `SA_DOT`, `SA_NEG_SQ_DIST`, `SA_NEG_LOG_DIST` or `SA_ADDITIVE`.
    pub scorer: u32,
    /// `SA_DOT`, `SA_NEG_SQ_DIST`: the scale; 0 means `1/√d`.
    pub scale: f32,
    /// `SA_NEG_LOG_DIST`: `eps` (default `1e-3`).
    pub eps: f32,
    /// `SA_NEG_LOG_DIST`: the power `p` (default 2).
    pub p: f32,
    /// `SA_ADDITIVE`: the `d` output weights `w`.
    pub additive_w: *const f32,
    /// Entries readable from `additive_w`.
    pub additive_w_len: usize,
    /// `SA_MASK_NONE`, `SA_MASK_CAUSAL`, `SA_MASK_CAUSAL_BOTTOM_RIGHT` or `SA_MASK_WINDOW`.
    pub mask: u32,
    /// `SA_MASK_CAUSAL`, `SA_MASK_WINDOW`: the position of query row 0 among the keys.
    pub mask_offset: usize,
    /// `SA_MASK_WINDOW`: keys seen before the row's position.
    pub window_left: usize,
    /// `SA_MASK_WINDOW`: keys seen after the row's position.
    pub window_right: usize,
    /// Keys `0..key_len` are used (a cache's filled length); `SA_ALL_KEYS` (`SIZE_MAX`) for all.
    pub key_len: usize,
    /// An additive bias `[heads][n_q][n_kv]` (`NULL`: none): entry `[h][i][j]` at
    /// `bias[h * bias_head_stride + i * bias_row_stride + j]`; a stride of 0
    /// shares the bias across heads or rows.
    pub bias: *const f32,
    /// Entries readable from `bias`.
    pub bias_len: usize,
    /// Rows of the bias (`n_q`).
    pub bias_rows: usize,
    /// Columns of the bias (`n_kv`).
    pub bias_cols: usize,
    /// Elements from one head of the bias to the next.
    pub bias_head_stride: usize,
    /// Elements from one row of the bias to the next.
    pub bias_row_stride: usize,
    /// Cached squared key norms `[kv_heads][n_kv][1]` (`SA_F32`) for
    /// `SA_NEG_LOG_DIST` (see `sa_key_norms`); `NULL`: computed as needed.
    pub cached_key_norms: *const sa_heads,
    /// Logit softcapping `s ← c·tanh(s/c)`; 0: none.
    pub softcap: f32,
    /// ALiBi slopes, one per query head (`NULL`: none).
    pub alibi_slopes: *const f32,
    /// Entries readable from `alibi_slopes`.
    pub alibi_len: usize,
    /// Attention sinks, one logit per query head (`NULL`: none).
    pub sinks: *const f32,
    /// Entries readable from `sinks`.
    pub sinks_len: usize,
    /// `SA_KERNEL_DEFAULT`, `SA_KERNEL_TILED` or `SA_KERNEL_SCALAR`.
    pub kernel: u32,
    /// The widest level to run at (`SA_LEVEL_*`); `SA_LEVEL_AVX512`: no cap.
    pub max_level: u32,
}

/// The outcome of a call: `code` is `SA_OK` or an `SA_ERR_*` code, and
/// `message` a NUL-terminated sentence saying which argument is wrong and
/// why (cut at 255 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct sa_error {
    /// `SA_OK` or an `SA_ERR_*` code; the same value the call returns.
    pub code: i32,
    /// The message, NUL-terminated.
    pub message: [c_char; 256],
}
