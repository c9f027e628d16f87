"""PyTorch CPU attention (f32) on the shapes of benches/attention.rs, for
figures side by side with the crate's.

    python benches/peers/torch_attention.py [--threads 1] [--reps 7] [--only REGEX] [--dtype f32|bf16|f16]

Prints one line per (shape, method): the median time and the throughput in
the crate's units: GFLOP/s (4 * n_q * n_kv * d per head, halved for causal)
for prefill shapes, GiB/s of K and V read (each KV head once, at the
tensors' element size) for decode. `--dtype` sets the element type of Q, K
and V (PyTorch computes in it; the crate keeps Q and arithmetic in f32).
Methods: `sdpa` (scaled_dot_product_attention, `enable_gqa` for grouped
heads), and for the distance scorers the unfused `cdist` forms that a PyTorch
user would write (`sqdist-cdist`: -||q-k||^2/sqrt(d); `logdist-cdist`:
-ln(eps + ||q-k||^2)).
"""
import argparse, math, re, statistics, time
import torch
import torch.nn.functional as F

SHAPES = [
    # name, heads, kv_heads, n_q, n_kv, d, causal
    ("prefill-1k-d64", 8, 8, 1024, 1024, 64, False),
    ("prefill-1k-d128", 8, 8, 1024, 1024, 128, False),
    ("causal-2k-d128", 4, 4, 2048, 2048, 128, True),
    ("long-8k-d64", 1, 1, 8192, 8192, 64, False),
    ("decode-32k-d128", 8, 8, 1, 32768, 128, False),
    ("gqa-decode-32k", 32, 8, 1, 32768, 128, False),
]


def median_time(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--only", default="", help="regex on the shape name")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__} cpu={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()}")
    for name, h, hk, n, m, d, causal in SHAPES:
        if not re.search(a.only, name):
            continue
        dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
        q = torch.randn(1, h, n, d).to(dtype)
        k = torch.randn(1, hk, m, d).to(dtype)
        v = torch.randn(1, hk, m, d).to(dtype)
        if n == 1:
            work, unit = 2 * hk * m * d * k.element_size() / 2**30, "GiB/s"
        else:
            work, unit = 4.0 * h * n * m * d / (2 if causal else 1) / 1e9, "GFLOP/s"
        methods = [("sdpa", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=h != hk))]
        if not causal and h == hk:
            methods += [
                ("sqdist-cdist", lambda: torch.softmax(-torch.cdist(q, k).square() / math.sqrt(d), -1) @ v),
                ("logdist-cdist", lambda: torch.softmax(-torch.log(torch.cdist(q, k).square() + 1e-6), -1) @ v),
            ]
        for mname, fn in methods:
            with torch.no_grad():
                t = median_time(fn, a.reps)
            print(f"{name:18s} {mname:14s} {a.dtype:4s} {t * 1e3:10.3f} ms {work / t:8.2f} {unit}")


if __name__ == "__main__":
    main()
