/* The C library from C: a GQA decode and prefill on f32 and bf16 caches
 * against a double-precision reference computed here, a paged batch, a
 * merge, and every error code once, each leaving the output untouched.
 *
 *   cc -std=c11 -Wall -Wextra -Werror -Icapi/include capi/tests/c/check.c \
 *      capi/target/release/libstreamattn_c.a -lm -lpthread -ldl -o check && ./check
 *
 * Tolerance: inputs lie in [-1, 1], d = 16, at most 40 keys. The crate's
 * derived bound (tests/common of the Rust crate: score error
 * gamma(d + 5) * scale * (|a| + |b|)^2 for the worst scorer here, output
 * error (e^{2 delta} - 1)(A + |O|) + 2 gamma(2n + 3) A) is below 2e-5 for
 * these sizes and every scorer used; TOL is that bound, rounded up. A wrong
 * stride, head or mask gives errors of order 0.1. */
#include "streamattn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TOL 2e-5
#define D 16

static int failures = 0;

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            failures++;                                                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
        }                                                                                         \
    } while (0)

static uint64_t state = 0x9e3779b97f4a7c15u;
static float rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (float)(state >> 40) / (float)(1u << 23) - 1.0f;
}

/* Round to nearest even bfloat16, and back. */
static uint16_t to_bf16(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    b += 0x7fff + ((b >> 16) & 1);
    return (uint16_t)(b >> 16);
}
static float from_bf16(uint16_t h) {
    uint32_t b = (uint32_t)h << 16;
    float x;
    memcpy(&x, &b, 4);
    return x;
}

static sa_heads heads_f32(const float *x, size_t heads, size_t rows) {
    sa_heads h = {0};
    h.data = x;
    h.len = heads * rows * D;
    h.dtype = SA_F32;
    h.heads = heads;
    h.rows = rows;
    h.cols = D;
    h.head_stride = rows * D;
    h.row_stride = D;
    return h;
}

static sa_heads_mut heads_out(float *x, size_t heads, size_t rows) {
    sa_heads_mut h = {x, heads * rows * D, heads, rows, D, rows * D, D};
    return h;
}

/* The reference: query head h of `heads` over kv head h / (heads / kv),
 * Dot with scale 1/sqrt(D), causal bottom-right, in double, from the
 * values the kernel reads (kf, vf: the f32 or widened bf16 caches). */
static void reference(const float *q, const float *kf, const float *vf, size_t heads, size_t kv,
                      size_t n_q, size_t n_kv, double *out, double *lse) {
    size_t group = heads / kv;
    for (size_t h = 0; h < heads; h++) {
        const float *k = kf + (h / group) * n_kv * D, *v = vf + (h / group) * n_kv * D;
        for (size_t i = 0; i < n_q; i++) {
            const float *qi = q + (h * n_q + i) * D;
            size_t seen = n_kv - n_q + i + 1;
            double m = -INFINITY, s[64];
            for (size_t j = 0; j < seen; j++) {
                double dot = 0;
                for (size_t c = 0; c < D; c++) dot += (double)qi[c] * k[j * D + c];
                s[j] = dot / sqrt((double)D);
                if (s[j] > m) m = s[j];
            }
            double l = 0, o[D] = {0};
            for (size_t j = 0; j < seen; j++) {
                double p = exp(s[j] - m);
                l += p;
                for (size_t c = 0; c < D; c++) o[c] += p * v[j * D + c];
            }
            for (size_t c = 0; c < D; c++) out[(h * n_q + i) * D + c] = o[c] / l;
            lse[h * n_q + i] = m + log(l);
        }
    }
}

static void attention_against_the_reference(void) {
    enum { HEADS = 4, KV = 2, NQ = 5, NKV = 40 };
    static float q[HEADS * NQ * D], k[KV * NKV * D], v[KV * NKV * D], kw[KV * NKV * D], vw[KV * NKV * D];
    static uint16_t kb[KV * NKV * D], vb[KV * NKV * D];
    static float out[HEADS * NQ * D], lse[HEADS * NQ];
    static double want[HEADS * NQ * D], want_lse[HEADS * NQ];
    for (size_t i = 0; i < sizeof q / sizeof *q; i++) q[i] = rnd();
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        k[i] = rnd();
        v[i] = rnd();
        kb[i] = to_bf16(k[i]);
        vb[i] = to_bf16(v[i]);
        kw[i] = from_bf16(kb[i]);
        vw[i] = from_bf16(vb[i]);
    }
    sa_attention a = sa_attention_default(SA_DOT);
    a.mask = SA_MASK_CAUSAL_BOTTOM_RIGHT;
    for (int bf = 0; bf < 2; bf++) {
        for (size_t n_q = 1; n_q <= NQ; n_q += NQ - 1) { /* a decode, then a prefill chunk */
            sa_heads qh = heads_f32(q, HEADS, n_q);
            sa_heads kh = heads_f32(k, KV, NKV), vh = heads_f32(v, KV, NKV);
            if (bf) {
                kh.data = kb;
                kh.dtype = SA_BF16;
                vh.data = vb;
                vh.dtype = SA_BF16;
            }
            sa_heads_mut oh = heads_out(out, HEADS, n_q);
            sa_error err;
            int code = sa_run_heads(&a, &qh, &kh, &vh, &oh, lse, HEADS * n_q, &err);
            CHECK(code == SA_OK, "%s: %s", sa_status_name(code), err.message);
            reference(q, bf ? kw : k, bf ? vw : v, HEADS, KV, n_q, NKV, want, want_lse);
            double worst = 0;
            for (size_t i = 0; i < HEADS * n_q * D; i++) worst = fmax(worst, fabs(out[i] - want[i]));
            for (size_t i = 0; i < HEADS * n_q; i++) worst = fmax(worst, fabs(lse[i] - want_lse[i]));
            CHECK(worst <= TOL, "%s n_q=%zu: error %g > %g", bf ? "bf16" : "f32", n_q, worst, TOL);
        }
    }
}

/* Two sequences in one pool of 4-row blocks (one head), stored in reverse
 * order: the batch gives each sequence what sa_run_heads gives on a
 * contiguous copy, bit for bit; then a merge of two key halves gives the
 * whole, within TOL. */
static void paged_batch_and_merge(void) {
    enum { BS = 4, L0 = 9, L1 = 6, R0 = 3, R1 = 1, BLOCKS = 5 };
    static float pool_k[BLOCKS * BS * D], pool_v[BLOCKS * BS * D], ck[L0 * D], cv[L0 * D];
    static float q[(R0 + R1) * D], out[(R0 + R1) * D], alone[R0 * D], lse[R0 + R1], lse_alone[R0];
    for (size_t i = 0; i < sizeof pool_k / sizeof *pool_k; i++) {
        pool_k[i] = rnd();
        pool_v[i] = rnd();
    }
    for (size_t i = 0; i < sizeof q / sizeof *q; i++) q[i] = rnd();
    const uint32_t t0[3] = {4, 3, 2}, t1[2] = {1, 0};
    const size_t lens[2] = {L0, L1};
    const uint32_t *tables[2] = {t0, t1};
    sa_heads ks[2], vs[2];
    for (int s = 0; s < 2; s++) {
        sa_heads p = {0};
        p.data = pool_k;
        p.len = BLOCKS * BS * D;
        p.dtype = SA_F32;
        p.heads = 1;
        p.rows = lens[s];
        p.cols = D;
        p.head_stride = BS * D;
        p.row_stride = D;
        p.block_table = tables[s];
        p.table_len = (lens[s] + BS - 1) / BS;
        p.block_size = BS;
        p.block_stride = BS * D;
        ks[s] = p;
        p.data = pool_v;
        vs[s] = p;
    }
    const size_t cu[3] = {0, R0, R0 + R1};
    sa_attention a = sa_attention_default(SA_NEG_SQ_DIST);
    a.mask = SA_MASK_CAUSAL;
    sa_heads qh = heads_f32(q, 1, R0 + R1);
    sa_heads_mut oh = heads_out(out, 1, R0 + R1);
    sa_error err;
    int code = sa_run_batch(&a, &qh, cu, 3, ks, vs, 2, &oh, lse, R0 + R1, &err);
    CHECK(code == SA_OK, "batch: %s", err.message);

    /* Sequence 0 alone, on a contiguous copy of its blocks. */
    for (size_t r = 0; r < L0; r++) {
        memcpy(ck + r * D, pool_k + (t0[r / BS] * BS + r % BS) * D, D * sizeof(float));
        memcpy(cv + r * D, pool_v + (t0[r / BS] * BS + r % BS) * D, D * sizeof(float));
    }
    sa_attention b = a;
    b.mask = SA_MASK_CAUSAL_BOTTOM_RIGHT;
    sa_heads q0 = heads_f32(q, 1, R0), k0 = heads_f32(ck, 1, L0), v0 = heads_f32(cv, 1, L0);
    sa_heads_mut o0 = heads_out(alone, 1, R0);
    code = sa_run_heads(&b, &q0, &k0, &v0, &o0, lse_alone, R0, &err);
    CHECK(code == SA_OK, "alone: %s", err.message);
    CHECK(memcmp(out, alone, sizeof alone) == 0 && memcmp(lse, lse_alone, sizeof lse_alone) == 0,
          "batch != alone, bit for bit");

    /* Keys 0..5 and 5..9 of sequence 0, no mask, merged: the whole. */
    static float part_a[R0 * D], part_b[R0 * D], la[R0], lb[R0];
    sa_attention m = sa_attention_default(SA_NEG_SQ_DIST);
    sa_heads ka = heads_f32(ck, 1, 5), va = heads_f32(cv, 1, 5);
    sa_heads kb = heads_f32(ck + 5 * D, 1, L0 - 5), vb = heads_f32(cv + 5 * D, 1, L0 - 5);
    sa_heads_mut oa = heads_out(part_a, 1, R0), ob = heads_out(part_b, 1, R0);
    code = sa_run_heads(&m, &q0, &ka, &va, &oa, la, R0, &err) | sa_run_heads(&m, &q0, &kb, &vb, &ob, lb, R0, &err);
    CHECK(code == SA_OK, "parts: %s", err.message);
    sa_heads bh = heads_f32(part_b, 1, R0);
    code = sa_merge(&oa, la, R0, &bh, lb, R0, &err);
    CHECK(code == SA_OK, "merge: %s", err.message);
    code = sa_run_heads(&m, &q0, &k0, &v0, &o0, lse_alone, R0, &err);
    double worst = 0;
    for (size_t i = 0; i < R0 * D; i++) worst = fmax(worst, fabs(part_a[i] - alone[i]));
    for (size_t i = 0; i < R0; i++) worst = fmax(worst, fabs(la[i] - lse_alone[i]));
    CHECK(code == SA_OK && worst <= 2 * TOL, "merge error %g", worst); /* two results, each within TOL */
}

/* Each error code once; the output keeps its sentinel. */
static void every_error_code(void) {
    enum { H = 2, NQ = 3, NKV = 8 };
    static float q[H * NQ * D], k[H * NKV * D], v[H * NKV * D], out[H * NQ * D], lse[H * NQ];
    static uint16_t k16[H * NKV * D];
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) out[i] = 7.0f;
    const uint32_t table[1] = {5};
    const float nan2[2] = {NAN, NAN};
    const size_t cu_bad[3] = {0, 3, 1};
    struct {
        int want;
        const char *name;
        sa_attention a;
        sa_heads q, k, v;
    } cases[20];
    int n = 0;
    sa_attention ok = sa_attention_default(SA_DOT);
    sa_heads qh = heads_f32(q, H, NQ), kh = heads_f32(k, H, NKV), vh = heads_f32(v, H, NKV);
#define CASE(code, a_, q_, k_, v_) cases[n].want = code, cases[n].name = #code, cases[n].a = a_, cases[n].q = q_, cases[n].k = k_, cases[n].v = v_, n++
    sa_heads x;
    x = kh, x.cols = 0;
    CASE(SA_ERR_ZERO_DIM, ok, qh, x, vh);
    x = kh, x.len--;
    CASE(SA_ERR_BUFFER_TOO_SHORT, ok, qh, x, vh);
    x = kh, x.row_stride = D - 1;
    CASE(SA_ERR_STRIDE_TOO_SMALL, ok, qh, x, vh);
    x = kh, x.row_stride = SIZE_MAX / 2;
    CASE(SA_ERR_OVERFLOW, ok, qh, x, vh);
    x = vh, x.rows = NKV - 1;
    CASE(SA_ERR_SHAPE_MISMATCH, ok, qh, kh, x);
    x = kh, x.heads = 3, x.rows = 5, x.head_stride = 5 * D; /* 2 query heads over 3 */
    sa_heads three = vh;
    three.heads = 3, three.rows = 5, three.head_stride = 5 * D;
    CASE(SA_ERR_HEAD_GROUPING, ok, qh, x, three);
    sa_attention bad = ok;
    bad.softcap = -1.0f;
    CASE(SA_ERR_INVALID_PARAMETER, bad, qh, kh, vh);
    x = kh, x.block_table = table, x.table_len = 1, x.block_size = NKV, x.block_stride = H * NKV * D;
    CASE(SA_ERR_BLOCK_OUT_OF_POOL, ok, qh, x, vh);
    bad = ok, bad.mask = 42;
    CASE(SA_ERR_UNKNOWN_VALUE, bad, qh, kh, vh);
    x = kh, x.data = NULL;
    CASE(SA_ERR_NULL_POINTER, ok, qh, x, vh);
    x = kh, x.data = (const char *)k + 1;
    CASE(SA_ERR_MISALIGNED, ok, qh, x, vh);
    x = qh, x.data = out;
    CASE(SA_ERR_OVERLAP, ok, x, kh, vh);
    x = kh, x.data = k16, x.dtype = SA_F16;
    CASE(SA_ERR_DTYPE, ok, qh, x, vh);
    bad = ok, bad.sinks = nan2, bad.sinks_len = 2;
    CASE(SA_ERR_INVALID_PARAMETER, bad, qh, kh, vh);
    sa_heads_mut oh = heads_out(out, H, NQ);
    for (int c = 0; c < n; c++) {
        sa_error err;
        int code = sa_run_heads(&cases[c].a, &cases[c].q, &cases[c].k, &cases[c].v, &oh, lse, H * NQ, &err);
        CHECK(code == cases[c].want && err.code == code && err.message[0] != 0, "%s: got %s (%s)",
              cases[c].name, sa_status_name(code), err.message);
    }
    /* The batch's own: decreasing offsets, more new rows than keys, a bias. */
    sa_heads kk[2] = {kh, kh}, vv[2] = {vh, vh};
    sa_error err;
    int code = sa_run_batch(&ok, &qh, cu_bad, 3, kk, vv, 2, &oh, NULL, 0, &err);
    CHECK(code == SA_ERR_DECREASING, "decreasing: %s", err.message);
    sa_heads short_k = kh, short_v = vh;
    short_k.rows = short_v.rows = 2;
    const size_t cu3[2] = {0, 3};
    code = sa_run_batch(&ok, &qh, cu3, 2, &short_k, &short_v, 1, &oh, NULL, 0, &err);
    CHECK(code == SA_ERR_OUT_OF_RANGE, "rows beyond the cache: %s", err.message);
    bad = ok, bad.bias = q, bad.bias_len = 1, bad.bias_rows = 1, bad.bias_cols = 1;
    code = sa_run_batch(&bad, &qh, cu3, 2, kk, vv, 1, &oh, NULL, 0, &err);
    CHECK(code == SA_ERR_UNSUPPORTED, "bias in a batch: %s", err.message);
    for (size_t i = 0; i < sizeof out / sizeof *out; i++) CHECK(out[i] == 7.0f, "out[%zu] written", i);
    CHECK(sa_run_heads(NULL, &qh, &kh, &vh, &oh, NULL, 0, NULL) == SA_ERR_NULL_POINTER, "NULL attn");
}

int main(void) {
    printf("streamattn from C: kernels at %s\n", sa_level_name(sa_detected_level()));
    attention_against_the_reference();
    paged_batch_and_merge();
    every_error_code();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
