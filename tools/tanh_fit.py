#!/usr/bin/env python3
"""Fits the two polynomials of src/tanh.rs; `python3 tools/tanh_fit.py` (mpmath only).

- Small |x| ≤ T: tanh(x) ≈ x + x³·S(x²), S of degree DEG_S in z = x².
- Elsewhere, expm1(2r)/2 ≈ r + r²·E(r) on |r| ≤ ln2/4 + margin, E of degree
  DEG_E (the margin: n is rounded from the f32 product |x|·2log2(e), so |r|
  can exceed ln2/4 slightly).

Each minimises the maximum *relative* error of the whole approximation (a Remez
exchange in 60-digit arithmetic). The coefficients are then rounded to f32 and
the error of the rounded polynomial, still evaluated exactly, is reported: the
evaluation in f32 and the rest of the algorithm add the error the tests measure.
"""
import math
import struct

from mpmath import cos, expm1, log, lu_solve, matrix, mp, mpf, pi, sqrt, tanh

mp.dps = 60
T = mpf("0.3125")
DEG_S = 2
DEG_E = 4
R = log(2) / 4 + mpf("0.00025")


def small():
    # x + x³·S(z) - tanh x = x³·(S(z) - g(z)), relative: w(z)·(S - g).
    def g(z):
        x = sqrt(z)
        return (tanh(x) - x) / x**3

    def w(z):
        x = sqrt(z)
        return x**3 / tanh(x)

    return g, w, mpf(0), T**2


def expm1_poly():
    # r + r²·E(r) - expm1(2r)/2 = r²·(E(r) - g(r)), relative: w(r)·(E - g).
    # The weight is taken positive (2r²/|expm1 2r|) so that the error changes
    # sign only where E - g does.
    def g(r):
        return (expm1(2 * r) / 2 - r) / r**2

    def w(r):
        return 2 * r**2 / abs(expm1(2 * r))

    return g, w, -R, R


def peval(c, x):
    acc = mpf(0)
    for k in reversed(c):
        acc = acc * x + k
    return acc


def remez(g, w, lo, hi, deg, iters=30, grid=4000):
    m = deg + 2
    # Midpoints of a uniform grid plus the ends: the weight vanishes at 0,
    # which is never a grid point.
    pts = [lo + (hi - lo) * (i + mpf(1) / 2) / grid for i in range(grid)] + [lo, hi]
    pts = sorted(p for p in pts if p != 0)
    # Initial reference: Chebyshev extrema.
    xs = [(lo + hi) / 2 - (hi - lo) / 2 * cos(pi * i / (m - 1)) for i in range(m)]
    xs = [x if x != 0 else pts[0] for x in xs]
    c = None
    for _ in range(iters):
        # w(x_i)·(P(x_i) - g(x_i)) = (-1)^i E at the reference points.
        a = matrix(m, m)
        b = matrix(m, 1)
        for i, x in enumerate(xs):
            for k in range(deg + 1):
                a[i, k] = w(x) * x**k
            a[i, m - 1] = (-1) ** i
            b[i] = w(x) * g(x)
        sol = lu_solve(a, b)
        c = [sol[k] for k in range(deg + 1)]
        # One extremum of the error per run of one sign.
        runs = []
        cur = None
        for p in pts:
            e = w(p) * (peval(c, p) - g(p))
            if cur is None or (e >= 0) != cur[0]:
                cur = [e >= 0, p, e]
                runs.append(cur)
            elif abs(e) > abs(cur[2]):
                cur[1], cur[2] = p, e
        if len(runs) < m:
            break
        # Drop the run of smallest |error| until m are left: at an end it just
        # goes; inside, its two neighbours (now of one sign) merge.
        while len(runs) > m:
            j = min(range(len(runs)), key=lambda i: abs(runs[i][2]))
            if j == 0 or j == len(runs) - 1:
                runs.pop(j)
            else:
                l, r = runs[j - 1], runs[j + 1]
                runs[j - 1 : j + 2] = [l if abs(l[2]) >= abs(r[2]) else r]
        xs = [r[1] for r in runs]
    return c, pts


def f32(x):
    return struct.unpack("f", struct.pack("f", float(x)))[0]


def shortest(x):
    # The shortest decimal that reads back as the same f32.
    for d in range(1, 12):
        s = "%.*e" % (d, x)
        if f32(float(s)) == x:
            return s
    return repr(x)


def report(name, fit, deg, taylor):
    g, w, lo, hi = fit
    c, pts = remez(g, w, lo, hi, deg)
    exact = max(abs(w(p) * (peval(c, p) - g(p))) for p in pts)
    cf = [mpf(f32(k)) for k in c]
    rounded = max(abs(w(p) * (peval(cf, p) - g(p))) for p in pts)
    print(f"{name}: degree {deg} on [{float(lo):.6f}, {float(hi):.6f}]")
    print(f"  max relative error: minimax {float(exact):.3e} = {float(exact * 2**24):.4f}·2^-24")
    print(f"  with f32 coefficients       {float(rounded):.3e} = {float(rounded * 2**24):.4f}·2^-24")
    for k, v in enumerate(cf):
        print(f"  {name[0].upper()}{k} = {shortest(float(v)):<16} (Taylor {taylor(k):.9g})")


def main():
    # Taylor coefficients of (tanh x - x)/x³ in x²: 2^(2k+4)(2^(2k+4)-1)B_(2k+4)/(2k+4)!.
    from mpmath import bernoulli

    def tanh_taylor(k):
        n = 2 * k + 4
        return float(2**n * (2**n - 1) * bernoulli(n) / math.factorial(n))

    report("small", small(), DEG_S, tanh_taylor)
    report("expm1", expm1_poly(), DEG_E, lambda k: 2 ** (k + 1) / math.factorial(k + 2))


if __name__ == "__main__":
    main()
