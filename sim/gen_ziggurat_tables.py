#!/usr/bin/python3
"""gen_ziggurat_tables.py - writes sim/ziggurat_tables.h, the ziggurat of the simulator's normals
(sim/normal_inline.h), to stdout: python3 sim/gen_ziggurat_tables.py > sim/ziggurat_tables.h;
python3 sim/gen_ziggurat_tables.py 256 > sim/ziggurat256_tables.h writes the 256-box variant (names
zig256_*, ZIG256_*) with the two halves of each entry also as separate 32-bit tables, which the
AVX-512 kernels hold in registers (a lookup is a permute, no memory access per normal).

Marsaglia & Tsang's (2000) ziggurat for f(x) = exp(-x^2/2) with N = 2048 (or 256) boxes of one common area V,
built so that the fast path needs one 64-bit table entry per normal: box i's width W[i] is a
float32 (scaled by 2^-52) and its acceptance threshold K[i] a 32-bit integer, packed together.
  - Base box 0: [0, W0] x [0, f(r)], W0 = v0/f(r) rounded up to a float, v0 = r f(r) + tail mass;
    V = W0 f(r). Points with x < r are under the curve; the rest stand for the tail, which they
    enter with probability tail / (V - r f(r)) (the rest of them are rejected).
  - Box i >= 1 spans y in [F[i], F[i+1]], F[1] = f(r), F[i+1] = F[i] + V/W[i], with W[i] = the
    curve's x at F[i] rounded up to a float, so every box covers the curve in its band. Points
    with x < X[i+1] = f^-1(F[i+1]) are under the curve; the others take the wedge test.
  - r is the double for which the top box just reaches y = 1 (F[2048] >= 1; what lies above 1 is
    rejected by the wedge test). Any widths that cover the curve and give equal areas make the
    algorithm exact, so rounding the widths to floats costs nothing but a few more rejections.
K[i] = floor(2^32 X[i+1]/W[i]) is conservative: (w >> 32) < K[i] implies x < X[i+1].

The wedge bounds (<prefix>_wedge) decide most wedge points without a logarithm, and only where
the exact test is certain to agree. A wedge point of box i >= 1 has x in [X[i+1], W[i]] and
y = F[i] + u (F[i+1] - F[i]) (the doubles), so it is under the curve iff u < c(x) =
(f(x) - F[i]) / (F[i+1] - F[i]). With the quadratic q(t) = a + b t + c t^2 through c(x) at
t = x - xnext[i] = 0, h/2 and h (h = W[i] - xnext[i]; a, b, c rounded to floats) and
d = c(x) - q(t), the kernel computes D = (u - a) - t (b + c t) in doubles and accepts if D < lo,
rejects if D > hi, where lo = min d - m - e and hi = max d + m + e (floats, rounded outward):
e bounds the rounding of t and D, and m is the margin within which the exact test
(nrm_log(y) < -x^2/2, each side within a few ulps) could still disagree with y < f(x) (a
relative 1e-13 of f, plus the rounding of y, in units of u). min and max of d come from 64
samples widened by h_s^2/8 max|d''| (h_s the sample spacing; c''(x) = (x^2 - 1) f(x)/(F[i+1] -
F[i]) is monotone on [0, sqrt 3] and beyond). Between lo and hi, for x < xnext[i], and in the
base box (lo, hi = -2, 2) the kernel takes the exact test.
Computed in 40-digit arithmetic (mpmath), so the tables never depend on a libm."""
import math
import struct
import sys

import mpmath

mpmath.mp.dps = 40
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
P = "zig" if N == 2048 else "zig%d" % N  # C name prefix
M = P.upper()  # macro prefix


def f(x):
    return mpmath.exp(-x * x / 2)


def finv(y):
    return mpmath.sqrt(-2 * mpmath.log(y))


def f32_up(x):
    """The smallest float32 >= x (x positive)."""
    v = struct.unpack("<f", struct.pack("<f", float(x)))[0]
    if mpmath.mpf(v) < x:
        b = struct.unpack("<I", struct.pack("<f", v))[0]
        v = struct.unpack("<f", struct.pack("<I", b + 1))[0]
    return v


def tail(r):
    return mpmath.sqrt(mpmath.pi / 2) * mpmath.erfc(r / mpmath.sqrt(2))


def build(r):
    """(W, F, X, V) for base r; F has N+1 entries, or fewer if the boxes reach 1 too early."""
    r = mpmath.mpf(r)
    fr = f(r)
    w0 = f32_up((r * fr + tail(r)) / fr)
    V = mpmath.mpf(w0) * fr
    W, F, X = [w0], [mpmath.mpf(0), fr], [None, r]
    for i in range(1, N):
        W.append(f32_up(X[i]))
        F.append(F[i] + V / mpmath.mpf(W[i]))
        if F[i + 1] >= 1:
            X.append(mpmath.mpf(0))
            if i < N - 1:
                break
        else:
            X.append(finv(F[i + 1]))
    return W, F, X, V


def reaches_top(r):
    W, F, X, V = build(r)
    return len(F) < N + 1 or F[N] >= 1


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def f32_out(x):
    """x rounded away from zero to a float32."""
    v = f32(x)
    if abs(mpmath.mpf(v)) < abs(x):
        v = struct.unpack("<f", struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0] + 1))[0]
    return v


def hexs(v):
    """v as a short C hex float (no trailing zero digits)."""
    m, e = float(v).hex().split("p")
    m = m.rstrip("0").rstrip(".") if "." in m else m
    return m + "p" + e


def down(x):
    """x rounded down to a double."""
    d = float(x)
    return d if mpmath.mpf(d) <= x else math.nextafter(d, 0)


def wedge_bounds(i, W, F, X):
    """(xnext, a, b, c, lo, hi, undecided share, wedge share) of box i's wedge test (module
    comment)."""
    x0 = mpmath.mpf(down(X[i + 1]))  # the kernel's xnext[i]
    if i == 0:
        return (float(x0), 0.0, 0.0, 0.0, -2.0, 2.0, 0, 0)
    fi, fj = float(F[i]), float(F[i + 1])  # the doubles the kernel reads
    mfi, dfl = mpmath.mpf(fi), mpmath.mpf(fj - fi)  # the kernel's F[i+1] - F[i], rounded

    def c(x):
        return (f(x) - mfi) / dfl

    def c2(x):  # c''
        return (x * x - 1) * f(x) / dfl

    x1 = mpmath.mpf(W[i])
    h = x1 - x0
    y0, ym, y1 = c(x0), c(x0 + h / 2), c(x1)
    cc = f32((y1 - 2 * ym + y0) * 2 / (h * h))
    bb = f32((y1 - y0) / h - mpmath.mpf(cc) * h)
    aa = f32(y0)
    ma, mb, mc = mpmath.mpf(aa), mpmath.mpf(bb), mpmath.mpf(cc)
    n = 64
    ts = [h * k / (n - 1) for k in range(n)]
    ds = [c(x0 + t) - (ma + mb * t + mc * t * t) for t in ts]
    xs = [x0, x1] + ([mpmath.sqrt(3)] if x0 < mpmath.sqrt(3) < x1 else [])
    curv = max(abs(c2(x) - 2 * mc) for x in xs)
    slack = curv * (h / (n - 1)) ** 2 / 8
    m = (mpmath.mpf("1e-13") + mpmath.mpf(2) ** -51) * f(x0) * mpmath.mpf("1.01") / dfl
    # five roundings of terms at most |a| + 1 + |b| h + |c| h^2, and t's rounding (ulp of x)
    # times |b| + 2 |c| h
    e = (6 * (abs(ma) + 1 + abs(mb) * h + abs(mc) * h * h) +
         (abs(mb) + 2 * abs(mc) * h) * x1) * mpmath.mpf(2) ** -52
    lo = min(ds) - slack - m - e
    hi = max(ds) + slack + m + e
    assert lo < 0 < hi
    lo_f, hi_f = f32_out(lo), f32_out(hi)
    assert mpmath.mpf(lo_f) <= lo and mpmath.mpf(hi_f) >= hi
    # box i's share of wedge points is h / W[i] (boxes are drawn equally often); the undecided
    # band's share of those is hi - lo
    return (float(x0), aa, bb, cc, lo_f, hi_f, (hi - lo) * h / x1, h / x1)


def main():
    lo, hi = mpmath.mpf(3.5), mpmath.mpf(4.5)  # reaches_top(lo), not reaches_top(hi)
    for _ in range(80):
        mid = (lo + hi) / 2
        if reaches_top(mid):
            lo = mid
        else:
            hi = mid
    r = float(lo)
    while not reaches_top(r):
        r = math.nextafter(r, 0)
    W, F, X, V = build(r)
    assert len(F) == N + 1 and F[N] >= 1 and F[N - 1] < 1
    rr = mpmath.mpf(r)
    tail_p = tail(rr) / ((mpmath.mpf(W[0]) - rr) * f(rr))
    K = [int(mpmath.floor(X[i + 1] / mpmath.mpf(W[i]) * 2**32)) for i in range(N)]
    slow = sum(1 - mpmath.mpf(k) / 2**32 for k in K) / N
    packed = [(K[i] << 32) | struct.unpack("<I", struct.pack("<f", W[i] * 2.0**-52))[0]
              for i in range(N)]

    wedge = [wedge_bounds(i, W, F, X) for i in range(N)]
    undecided = sum(w[6] for w in wedge) / sum(w[7] for w in wedge)

    hname = "ziggurat_tables.h" if N == 2048 else "ziggurat%d_tables.h" % N
    print("/* %s - generated by sim/gen_ziggurat_tables.py (see there); do not edit." % hname)
    print(" * %d boxes of area V = %s for exp(-x^2/2), base r = %s;" % (N, mpmath.nstr(V, 17), r))
    print(" * top box reaches y = 1 + %.1e; fraction of draws past the fast test %.5f;"
          % (float(F[N] - 1), float(slow)))
    print(" * fraction of wedge points the bounds leave to the logarithm %.1e. */" % undecided)
    guard = "ROTEQ_SIM_%s_H" % hname[:-2].upper()
    print("#ifndef %s\n#define %s\n" % (guard, guard))
    print("#include <stdint.h>\n")
    print("#define %s_BOXES %d" % (M, N))
    print("#define %s_R %s" % (M, r.hex()))
    print("/* probability that a base-box point beyond r stands for the tail */")
    print("#define %s_TAIL_P %s\n" % (M, float(tail_p).hex()))

    def table(ctype, name, vals, fmt, align=""):
        print("static %sconst %s %s_%s[%d] = {" % (align, ctype, P, name, len(vals)))
        for i in range(0, len(vals), 4):
            print("    " + ", ".join(fmt(v) for v in vals[i:i + 4]) + ",")
        print("};")

    print("/* K[i] << 32 | the float32 bits of W[i] 2^-52: the fast path's one lookup */")
    table("uint64_t", "kw", packed, lambda v: "0x%016xull" % v)
    print("/* X[i+1] = f^-1(F[i+1]) rounded down (X[1] = r, X[N] = 0): box i's x < X[i+1] is under the curve */")
    table("double", "xnext", [down(x) for x in X[1:]], float.hex)
    print("/* F[i], i = 0..N (F[0] unused, F[N] >= 1) */")
    table("double", "f", [float(y) for y in F], float.hex)
    print("/* box i's wedge test without a logarithm: xnext[i], a, b, c, lo, hi (see the generator) */")
    print("#ifndef ROTEQ_SIM_ZIG_WEDGE_BOX\n#define ROTEQ_SIM_ZIG_WEDGE_BOX")
    print("typedef struct {\n    double xn;\n    float a, b, c, lo, hi, pad;\n} zig_wedge_box;\n#endif")
    print("static _Alignas(32) const zig_wedge_box %s_wedge[%d] = {" % (P, N))
    for w in wedge:
        print("    {%s, %s, 0}," % (hexs(w[0]), ", ".join(hexs(v) + "f" for v in w[1:6])))
    print("};")
    if N != 2048:
        print("/* the float32 bits of W[i] 2^-52 and K[i] apart, for lookups held in vector registers */")
        table("uint32_t", "wbits", [v & 0xffffffff for v in packed], lambda v: "0x%08xu" % v,
              "_Alignas(64) ")
        table("uint32_t", "k", [v >> 32 for v in packed], lambda v: "0x%08xu" % v, "_Alignas(64) ")
    print("\n#endif")


if __name__ == "__main__":
    main()
