"""PyTorch CPU attention on the serving step of benches/parallel.rs
(`serving-step`), one scaled_dot_product_attention call per sequence, for
figures side by side with the crate's `run_batch` / `par_run_batch`.

    python benches/peers/torch_serving_step.py [--threads 1] [--reps 5] [--dtype bf16|f32]

The step: 32 sequences, 32 query heads over 8 key/value heads (`enable_gqa`),
d = 128; sequence 0 prefills a 512-row chunk over a cache of 4096 rows
(causal, aligned bottom-right with `causal_lower_right`), sequences 1-31
decode one row over caches of 1024 to 32768 rows (evenly spaced). PyTorch's
SDPA takes contiguous caches, so each sequence's K and V are separate
contiguous tensors (the crate reads them from a shuffled paged pool); the
queries, keys and values are all of `--dtype` (SDPA needs one type).

Prints the median time of a whole step and the bytes of K and V read per
second (each key/value head once, at the tensors' element size).
"""
import argparse, statistics, time
import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

HEADS, KV_HEADS, D = 32, 8, 128
PREFILL = (512, 4096)
DECODE = [1024 + s * (32768 - 1024) // 30 for s in range(31)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]
    seqs = [PREFILL] + [(1, n) for n in DECODE]
    tensors = []
    for n_q, n_kv in seqs:
        q = torch.randn(1, HEADS, n_q, D).to(dtype)
        k = torch.randn(1, KV_HEADS, n_kv, D).to(dtype)
        v = torch.randn(1, KV_HEADS, n_kv, D).to(dtype)
        mask = causal_lower_right(n_q, n_kv) if n_q > 1 else None
        tensors.append((q, k, v, mask))
    read = sum(2 * KV_HEADS * n_kv * D * tensors[0][1].element_size() for _, n_kv in seqs)

    def step():
        for q, k, v, mask in tensors:
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

    with torch.no_grad():
        step()
        ts = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            step()
            ts.append(time.perf_counter() - t0)
    t = statistics.median(ts)
    print(f"torch {torch.__version__} cpu={torch.backends.cpu.get_cpu_capability()} threads={torch.get_num_threads()}")
    print(f"serving-step sdpa-per-sequence {a.dtype} {t * 1e3:10.1f} ms {read / t / 2**30:8.2f} GiB/s")


if __name__ == "__main__":
    main()
