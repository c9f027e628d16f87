/* streamattn: streaming attention kernels, C ABI. Generated from capi/src by cbindgen; do not edit. */

#ifndef STREAMATTN_H
#define STREAMATTN_H

/* Regenerate: STREAMATTN_UPDATE_HEADER=1 cargo test --test header (in capi/). */

#include <stddef.h>
#include <stdint.h>

// Sequences a batch call takes at most: their views are kept on the stack.
#define SA_MAX_BATCH 128

// Success.
#define SA_OK 0

// A head dimension (or block size) is 0.
#define SA_ERR_ZERO_DIM 1

// A buffer is shorter than its shape and strides need.
#define SA_ERR_BUFFER_TOO_SHORT 2

// A stride would make rows or heads overlap.
#define SA_ERR_STRIDE_TOO_SMALL 3

// Shape times stride overflows `size_t`.
#define SA_ERR_OVERFLOW 4

// Two dimensions that must agree do not.
#define SA_ERR_SHAPE_MISMATCH 5

// The query heads are not a positive multiple of the key/value heads.
#define SA_ERR_HEAD_GROUPING 6

// A parameter (scale, eps, p, softcap, weights, slopes, sinks) is out of its domain.
#define SA_ERR_INVALID_PARAMETER 7

// A block table entry names a block outside the pool.
#define SA_ERR_BLOCK_OUT_OF_POOL 8

// `cu_seqlens` decreases.
#define SA_ERR_DECREASING 9

// An argument this entry cannot apply (e.g. a bias in a batch).
#define SA_ERR_UNSUPPORTED 10

// A count is out of range (e.g. more new rows than keys).
#define SA_ERR_OUT_OF_RANGE 11

// A required pointer is `NULL`, or a `NULL` pointer comes with a nonzero length.
#define SA_ERR_NULL_POINTER 12

// A pointer is not aligned for its element type.
#define SA_ERR_MISALIGNED 13

// An enumeration field (`dtype`, `scorer`, `mask`, `kernel`, `max_level`) has no such value.
#define SA_ERR_UNKNOWN_VALUE 14

// An output overlaps an input or another output.
#define SA_ERR_OVERLAP 15

// Element types that must agree do not (keys and values), or an input that
// must be `SA_F32` is not (queries, cached norms).
#define SA_ERR_DTYPE 16

// An error this version of the header has no code for.
#define SA_ERR_OTHER 99

// `sa_heads.dtype`: 32-bit floats.
#define SA_F32 0

// `sa_heads.dtype`: IEEE half precision (`uint16_t` bit patterns).
#define SA_F16 1

// `sa_heads.dtype`: bfloat16 (`uint16_t` bit patterns, the high half of an `f32`).
#define SA_BF16 2

// `sa_attention.scorer`: `scale · q·k`.
#define SA_DOT 0

// `sa_attention.scorer`: `−scale · ‖q − k‖²`.
#define SA_NEG_SQ_DIST 1

// `sa_attention.scorer`: `−ln(eps + ‖q − k‖^p)` (inverse distance weighting).
#define SA_NEG_LOG_DIST 2

// `sa_attention.scorer`: `Σ_c w_c · tanh(q_c + k_c)` on projected queries and keys.
#define SA_ADDITIVE 3

// `sa_attention.mask`: every key is seen.
#define SA_MASK_NONE 0

// `sa_attention.mask`: key `j` is seen by row `i` when `j <= i + mask_offset`.
#define SA_MASK_CAUSAL 1

// `sa_attention.mask`: causal with `mask_offset = n_kv − n_q` (the last
// query row sees every key; the new rows are the cache's last rows).
#define SA_MASK_CAUSAL_BOTTOM_RIGHT 2

// `sa_attention.mask`: key `j` is seen by row `i` when
// `i + mask_offset − window_left <= j <= i + mask_offset + window_right`.
#define SA_MASK_WINDOW 3

// `sa_attention.kernel`: the vectorised tiled kernel.
#define SA_KERNEL_TILED 0

// `sa_attention.kernel`: the scalar reference path.
#define SA_KERNEL_SCALAR 1

// `sa_attention.kernel`: the default for the scorer (`sa_attention_default`
// sets it): the tiled kernel on targets with SIMD; on targets without, the
// scalar path for every scorer but `SA_ADDITIVE`.
#define SA_KERNEL_DEFAULT 2

// A level: no SIMD, the same bits on every CPU.
#define SA_LEVEL_GENERIC 0

// A level: x86-64 SSE2, 4 lanes.
#define SA_LEVEL_SSE2 1

// A level: aarch64 NEON, 4 lanes.
#define SA_LEVEL_NEON 2

// A level: wasm32 `simd128`, 4 lanes.
#define SA_LEVEL_SIMD128 3

// A level: x86-64 AVX2 + FMA + F16C, 8 lanes.
#define SA_LEVEL_AVX2 4

// A level: x86-64 AVX-512, 16 lanes; as `sa_attention.max_level`, no cap.
#define SA_LEVEL_AVX512 5

// `sa_attention.key_len`: every key of `k` and `v` (`SIZE_MAX`).
#define SA_ALL_KEYS ~0

// Read-only heads of a matrix: element `[h][r][c]` at
// `data[h * head_stride + r * row_stride + c]` (strides in elements), `len`
// elements readable from `data` (`data` may be `NULL` when `len` is 0).
//
// Paged (when `block_table` is not `NULL`): `data` is a pool of blocks of
// `block_size` rows, `block_stride` elements apart, and row `r` is row
// `r % block_size` of block `block_table[r / block_size]`, at `head_stride`
// and `row_stride` within its block. `table_len` entries are readable from
// `block_table`.
typedef struct sa_heads {
  // The first element (`float`, or `uint16_t` for `SA_F16` and `SA_BF16`).
  const void *data;
  // Elements readable from `data`.
  size_t len;
  // `SA_F32`, `SA_F16` or `SA_BF16`.
  uint32_t dtype;
  // Heads.
  size_t heads;
  // Rows per head (keys, or query rows).
  size_t rows;
  // Columns (the head dimension).
  size_t cols;
  // Elements from one head to the next (within a block when paged).
  size_t head_stride;
  // Elements from one row to the next (within a block when paged).
  size_t row_stride;
  // `NULL` for a contiguous view; else the block of each group of `block_size` rows.
  const uint32_t *block_table;
  // Entries readable from `block_table`.
  size_t table_len;
  // Rows per block (paged views).
  size_t block_size;
  // Elements from one block to the next (paged views).
  size_t block_stride;
} sa_heads;

// What to compute: the scorer and its parameters, the mask and the optional
// terms of the logits. Start from `sa_attention_default(scorer)`; a pointer
// field left `NULL` leaves its term out.
typedef struct sa_attention {
  // `SA_DOT`, `SA_NEG_SQ_DIST`, `SA_NEG_LOG_DIST` or `SA_ADDITIVE`.
  uint32_t scorer;
  // `SA_DOT`, `SA_NEG_SQ_DIST`: the scale; 0 means `1/√d`.
  float scale;
  // `SA_NEG_LOG_DIST`: `eps` (default `1e-3`).
  float eps;
  // `SA_NEG_LOG_DIST`: the power `p` (default 2).
  float p;
  // `SA_ADDITIVE`: the `d` output weights `w`.
  const float *additive_w;
  // Entries readable from `additive_w`.
  size_t additive_w_len;
  // `SA_MASK_NONE`, `SA_MASK_CAUSAL`, `SA_MASK_CAUSAL_BOTTOM_RIGHT` or `SA_MASK_WINDOW`.
  uint32_t mask;
  // `SA_MASK_CAUSAL`, `SA_MASK_WINDOW`: the position of query row 0 among the keys.
  size_t mask_offset;
  // `SA_MASK_WINDOW`: keys seen before the row's position.
  size_t window_left;
  // `SA_MASK_WINDOW`: keys seen after the row's position.
  size_t window_right;
  // Keys `0..key_len` are used (a cache's filled length); `SA_ALL_KEYS` (`SIZE_MAX`) for all.
  size_t key_len;
  // An additive bias `[heads][n_q][n_kv]` (`NULL`: none): entry `[h][i][j]` at
  // `bias[h * bias_head_stride + i * bias_row_stride + j]`; a stride of 0
  // shares the bias across heads or rows.
  const float *bias;
  // Entries readable from `bias`.
  size_t bias_len;
  // Rows of the bias (`n_q`).
  size_t bias_rows;
  // Columns of the bias (`n_kv`).
  size_t bias_cols;
  // Elements from one head of the bias to the next.
  size_t bias_head_stride;
  // Elements from one row of the bias to the next.
  size_t bias_row_stride;
  // Cached squared key norms `[kv_heads][n_kv][1]` (`SA_F32`) for
  // `SA_NEG_LOG_DIST` (see `sa_key_norms`); `NULL`: computed as needed.
  const struct sa_heads *cached_key_norms;
  // Logit softcapping `s ← c·tanh(s/c)`; 0: none.
  float softcap;
  // ALiBi slopes, one per query head (`NULL`: none).
  const float *alibi_slopes;
  // Entries readable from `alibi_slopes`.
  size_t alibi_len;
  // Attention sinks, one logit per query head (`NULL`: none).
  const float *sinks;
  // Entries readable from `sinks`.
  size_t sinks_len;
  // `SA_KERNEL_DEFAULT`, `SA_KERNEL_TILED` or `SA_KERNEL_SCALAR`.
  uint32_t kernel;
  // The widest level to run at (`SA_LEVEL_*`); `SA_LEVEL_AVX512`: no cap.
  uint32_t max_level;
} sa_attention;

// Writable `float` heads: element `[h][r][c]` at
// `data[h * head_stride + r * row_stride + c]`, `len` elements writable
// from `data`. They must not overlap any input or other output of the call.
typedef struct sa_heads_mut {
  // The first element.
  float *data;
  // Elements writable from `data`.
  size_t len;
  // Heads.
  size_t heads;
  // Rows per head.
  size_t rows;
  // Columns.
  size_t cols;
  // Elements from one head to the next.
  size_t head_stride;
  // Elements from one row to the next.
  size_t row_stride;
} sa_heads_mut;

// The outcome of a call: `code` is `SA_OK` or an `SA_ERR_*` code, and
// `message` a NUL-terminated sentence saying which argument is wrong and
// why (cut at 255 bytes).
typedef struct sa_error {
  // `SA_OK` or an `SA_ERR_*` code; the same value the call returns.
  int32_t code;
  // The message, NUL-terminated.
  char message[256];
} sa_error;

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

// The defaults for `scorer` (`SA_DOT`, ...): scale `1/√d`, `eps = 1e-3`,
// `p = 2`, no mask, every key, no bias, softcap, ALiBi or sinks, the tiled
// kernel at the best level this CPU has. Set `additive_w` for `SA_ADDITIVE`.
struct sa_attention sa_attention_default(uint32_t scorer);

// The widest `SA_LEVEL_*` this CPU runs (detected once, at the first call).
uint32_t sa_detected_level(void);

// The name of a level (`"avx2"`), or `"unknown"`; NUL-terminated, static.
const char *sa_level_name(uint32_t level);

// The name of a status code (`"SA_ERR_SHAPE_MISMATCH"`); NUL-terminated, static.
const char *sa_status_name(int32_t code);

// Attention over many heads: `out[h][i] = Σ_j softmax_j(s(q[h][i], k[g][j])) · v[g][j]`
// with `g = h / (heads / kv_heads)` (grouped-query attention), and
// `lse[h * n_q + i]` the log-sum-exp of each row's logits if `lse` is not
// `NULL` (`lse_len >= heads · n_q`).
//
// `q` and `out` are `SA_F32`; `k` and `v` share one dtype and may be paged.
// One head is `heads = 1`. Returns `SA_OK` or an error code, and fills
// `err` (if not `NULL`); on an error nothing has been written.
//
// # Safety
// Every pointer is `NULL` or valid for the lengths given (the header's
// contract); outputs overlap no input (checked).
int32_t sa_run_heads(const struct sa_attention *attn,
                     const struct sa_heads *q,
                     const struct sa_heads *k,
                     const struct sa_heads *v,
                     const struct sa_heads_mut *out,
                     float *lse,
                     size_t lse_len,
                     struct sa_error *err);

// A batch of sequences in one call (continuous batching): the new query
// rows of sequence `s` are rows `cu_seqlens[s] .. cu_seqlens[s + 1]` of `q`
// and `out` (`[heads][total rows][d]`, any strides), its cache is `k[s]`,
// `v[s]` (each contiguous or paged, all of one dtype), and its new rows
// are the cache's last rows: causal and window masks and ALiBi are aligned
// to each cache's end. `lse[h * total + r]` if `lse` is not `NULL`.
// `n_seqs <= SA_MAX_BATCH`, `cu_len = n_seqs + 1`. A bias, a key length
// or cached norms in `attn` are `SA_ERR_UNSUPPORTED`.
//
// # Safety
// As [`sa_run_heads`]; `k` and `v` point to `n_seqs` views each.
int32_t sa_run_batch(const struct sa_attention *attn,
                     const struct sa_heads *q,
                     const size_t *cu_seqlens,
                     size_t cu_len,
                     const struct sa_heads *k,
                     const struct sa_heads *v,
                     size_t n_seqs,
                     const struct sa_heads_mut *out,
                     float *lse,
                     size_t lse_len,
                     struct sa_error *err);

// Merges partial results over disjoint key ranges (split-KV): row `i` of
// `out_a` (`rows × cols`, `row_stride`) becomes
// `(e^{lse_a[i]} out_a[i] + e^{lse_b[i]} out_b[i]) / (e^{lse_a[i]} + e^{lse_b[i]})`
// and `lse_a[i]` becomes `ln(e^{lse_a[i]} + e^{lse_b[i]})`. `out_a` and
// `out_b` are single heads (`heads = 1`), `SA_F32`.
//
// # Safety
// As [`sa_run_heads`].
int32_t sa_merge(const struct sa_heads_mut *out_a,
                 float *lse_a,
                 size_t lse_a_len,
                 const struct sa_heads *out_b,
                 const float *lse_b,
                 size_t lse_b_len,
                 struct sa_error *err);

// The squared norm of every key: `norms[h][j] = ‖k[h][j]‖²`, for
// `sa_attention.cached_key_norms` (`norms` is `heads × n × 1`).
//
// # Safety
// As [`sa_run_heads`].
int32_t sa_key_norms(const struct sa_heads *k,
                     const struct sa_heads_mut *norms,
                     struct sa_error *err);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* STREAMATTN_H */
