#!/usr/bin/env python3
"""muon_table.py ROWS.csv - theory/README.md's Muon accuracy table from the rows of
`roteq sweep examples/grids/muon_accuracy.json --out ROWS.csv`: one line per shape, ns_steps and
momentum, Nesterov and heavy ball side by side, each with the measured row norm / RMS row angle
and the errors (prediction / measured - 1) of best, lionlike and plain; then the largest |error|
of best. Standard library only."""
import csv
import sys


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def shape_ns(r):
    """'64x64' and ns_steps from the row's reason ('64x64 matrices, ns_steps 5, ...')."""
    parts = r["reason"].split(", ")
    return parts[0].split()[0], int(parts[1].split()[1])


def err(pred, meas):
    return float(pred) / float(meas) - 1


def cell(r, pn, pa, digits):
    en, ea = err(r[pn], r["norm"]), err(r[pa], r["angle"])
    return f"{100 * en:+.{digits}f}% / {100 * ea:+.{digits}f}%", max(abs(en), abs(ea))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: muon_table.py ROWS.csv")
    table, worst = {}, [0.0, 0.0]
    for r in rows(sys.argv[1]):
        if r["status"] == "ERROR":
            sys.exit(f"{sys.argv[1]}: point {r['index']} is an ERROR row: {r['reason']}")
        shape, ns = shape_ns(r)
        key = (shape, ns, float(r["momentum"]))
        table.setdefault(key, {})[r["nesterov"] == "1"] = r
    order = ["64x64", "128x64", "64x256", "256x256"]
    print("| shape | ns | μ | Nesterov: measured norm / angle | best | lionlike | plain "
          "| heavy ball: measured | best | lionlike | plain |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(table, key=lambda k: (order.index(k[0]) if k[0] in order else 9, k[1], k[2])):
        line = [key[0], str(key[1]), f"{key[2]:g}"]
        for nest in (True, False):
            r = table[key].get(nest)
            if r is None:
                line += ["", "", "", ""]
                continue
            best, wb = cell(r, "pred_norm", "pred_angle", 2)
            worst = [max(worst[0], abs(err(r["pred_norm"], r["norm"]))),
                     max(worst[1], abs(err(r["pred_angle"], r["angle"])))]
            line += [f"{float(r['norm']):.4f} / {float(r['angle']):.5f}", best,
                     cell(r, "pred_norm_paper", "pred_angle_paper", 1)[0],
                     cell(r, "pred_norm_plain", "pred_angle_plain", 0)[0]]
        print("| " + " | ".join(line) + " |")
    n = sum(len(v) for v in table.values())
    print(f"\n({n} runs; best's largest error: {100 * worst[0]:.2f}% in the row norm, "
          f"{100 * worst[1]:.2f}% in the RMS angle.)")


if __name__ == "__main__":
    main()
