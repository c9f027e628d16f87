#!/usr/bin/env python3
"""Writes the committed seed corpora fuzz/corpus/<target>/seed-* (small and
deterministic). The targets decode their input with `arbitrary`, so random
bytes of a few lengths already reach every operation, scorer and layout;
all-zero and all-0xff inputs reach the extreme choices of every decoder
(first and last options, empty tails). Run from anywhere: python3 fuzz/seeds.py
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = {"api": [24, 48, 96, 160, 256, 400, 700], "differential": [40, 120, 300, 600, 1000],
         "split_merge": [40, 120, 300, 600, 1000]}

for target, sizes in SIZES.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    rng = random.Random("streamattn-" + target)
    seeds = {f"seed-random-{n}": bytes(rng.randrange(256) for _ in range(n)) for n in sizes}
    seeds["seed-zeros"] = bytes(64)
    seeds["seed-ones"] = b"\xff" * 64
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
