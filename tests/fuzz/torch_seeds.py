#!/usr/bin/env python3
"""torch_seeds.py DIR - seed inputs for fuzz_pickle and fuzz_torchzip, with the standard library
only (no torch needed): DIR/pickle/*.pkl and DIR/torchzip/*.pt, laid out as torch.save writes
them (protocol 2 pickle; entries ARCHIVE/data.pkl, ARCHIVE/data/KEY stored uncompressed).
"""
import os
import struct
import sys
import zipfile


def s(x):
    b = x.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def i(v):
    return b"J" + struct.pack("<i", v)


def ints(vs):
    return b"(" + b"".join(i(v) for v in vs) + b"t"


def tensor(storage_type, key, numel, offset, shape, stride):
    return (b"ctorch._utils\n_rebuild_tensor_v2\n((" + s("storage") +
            b"ctorch\n" + storage_type.encode() + b"\n" + s(key) + s("cpu") + i(numel) +
            b"tQ" + i(offset) + ints(shape) + ints(stride) +
            b"\x89ccollections\nOrderedDict\n)RtRq\x05")


def state_dict():
    """{'fc.weight': 3x4 F32, 'fc.bias': 3 (same storage, offset 12), 'tied': memo of fc.weight,
    't': the transpose, 'step': a 0-d tensor, 'epoch': 3}"""
    body = (b"\x80\x02ccollections\nOrderedDict\n)Rq\x00(" +
            s("fc.weight") + tensor("FloatStorage", "0", 16, 0, [3, 4], [4, 1]) +
            s("fc.bias") + tensor("FloatStorage", "0", 16, 12, [3], [1]) +
            s("tied") + b"h\x05" +
            s("t") + tensor("FloatStorage", "0", 16, 0, [4, 3], [1, 4]) +
            s("h") + tensor("HalfStorage", "1", 6, 0, [2, 3], [3, 1]) +
            s("step") + tensor("DoubleStorage", "2", 1, 0, [], []) +
            s("epoch") + i(3) + b"u}b.")
    return body


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "pickle"), exist_ok=True)
    os.makedirs(os.path.join(out, "torchzip"), exist_ok=True)
    pkl = state_dict()
    with open(os.path.join(out, "pickle", "seed1.pkl"), "wb") as f:
        f.write(pkl)
    train = (b"\x80\x02}(" + s("model") + b"}(" + s("w") +
             tensor("FloatStorage", "0", 16, 0, [4, 4], [4, 1]) + b"u" + s("optimizer") + b"}(" +
             s("state") + b"}(" + i(0) + b"}(" + s("step") + b"G" + struct.pack(">d", 5.0) +
             s("exp_avg") + tensor("FloatStorage", "0", 16, 0, [4, 4], [4, 1]) + b"uu" +
             s("param_groups") + b"](}(" + s("lr") + b"G" + struct.pack(">d", 1e-3) +
             s("params") + b"](" + i(0) + b"eu" + b"euu.")
    with open(os.path.join(out, "pickle", "seed2.pkl"), "wb") as f:
        f.write(train)
    floats = struct.pack("<16f", *[0.25 * k - 1.5 for k in range(16)])
    halfs = bytes(range(12))
    dbl = struct.pack("<d", 7.0)
    for name, p, extra in (("seed1.pt", pkl, [("1", halfs), ("2", dbl)]), ("seed2.pt", train, [])):
        with zipfile.ZipFile(os.path.join(out, "torchzip", name), "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", p)
            z.writestr("archive/data/0", floats)
            for k, b in extra:
                z.writestr("archive/data/" + k, b)
            z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main()
