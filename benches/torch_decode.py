"""PyTorch SDPA on the crate's decode shapes, for side-by-side figures.

Run with PyTorch installed (../shared/peers/setup-torch.sh makes a venv):
    python benches/torch_decode.py [--threads 1]
Prints the median time and GiB/s of K and V read, counting each KV head once
(as benches/attention.rs does), for decode-32k-d128 (8 heads) and
gqa-decode-32k (32 query heads over 8 KV heads, `enable_gqa=True`).
"""
import argparse, statistics, time
import torch
import torch.nn.functional as F

SHAPES = [("decode-32k-d128", 8, 8), ("gqa-decode-32k", 32, 8)]
N_KV, D = 32768, 128

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=11)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__} cpu={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()}")
    for name, hq, hk in SHAPES:
        q = torch.randn(1, hq, 1, D)
        k = torch.randn(1, hk, N_KV, D)
        v = torch.randn(1, hk, N_KV, D)
        def sdpa():
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=hq != hk)
        with torch.no_grad():
            sdpa()
            ts = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                sdpa()
                ts.append(time.perf_counter() - t0)
        t = statistics.median(ts)
        gib = 2 * hk * N_KV * D * 4 / 2**30
        print(f"{name:18s} sdpa{' enable_gqa' if hq != hk else '':11s} {t * 1e3:9.2f} ms {gib / t:7.2f} GiB/s")

if __name__ == "__main__":
    main()
