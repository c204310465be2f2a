"""numpy_trace.py - the whole trace format in a dozen lines of plain NumPy, for any framework.

A toy layer of 64 scale-invariant neurons (gradient orthogonal to w, scaled by 1/||w||, as
behind a normalisation) trained by SGD with L2 weight decay; after every step it writes each
neuron's norm and the angle of that step, then the metadata JSON. Check it with
`roteq analyze numpy_trace.csv`. Usage: /usr/bin/python3 examples/numpy_trace.py [OUT.csv]
"""
import json, sys
import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else "numpy_trace.csv"
rng, lr, wd, dim = np.random.default_rng(7), 0.1, 0.05, 128
W = 0.3 * rng.standard_normal((64, dim))  # 64 neurons (rows), each a weight vector of length dim
unit = lambda X: X / np.linalg.norm(X, axis=1, keepdims=True)
with open(out, "w") as f:
    f.write("step,layer,neuron,norm,angle,lr,weight_decay\n")
    for step in range(1, 3001):
        G = rng.standard_normal(W.shape)
        G = (G - (G * unit(W)).sum(1, keepdims=True) * unit(W)) / np.linalg.norm(W, axis=1, keepdims=True)
        W_new = W - lr * (G + wd * W)  # torch.optim.SGD(lr=lr, weight_decay=wd)
        u, v = unit(W), unit(W_new)  # stable angle: 2 atan2(|u - v|, |u + v|), never acos
        angle = 2 * np.arctan2(np.linalg.norm(u - v, axis=1), np.linalg.norm(u + v, axis=1))
        W = W_new
        f.writelines(f"{step},toy,{i},{n!r},{a!r},{lr!r},{wd!r}\n"
                     for i, (n, a) in enumerate(zip(np.linalg.norm(W, axis=1).tolist(), angle.tolist())))
with open(out + ".json", "w") as f:  # metadata: TRACE.json, where roteq analyze looks
    json.dump({"optimizer": "sgd", "lr": lr, "weight_decay": wd,  # grad_norm: RMS ||g~||, here sqrt(dim-1)
               "layers": {"toy": {"dim": dim, "grad_norm": (dim - 1) ** 0.5}}}, f)
