"""roteq_recorder.py - feed roteq from a PyTorch training loop.

Records, around each optimizer step, every neuron's weight norm after the step and the angle its
weight vector turned through during the step, into roteq's long CSV trace
(`step,layer,neuron,norm,angle,lr,weight_decay`, docs/FORMATS.md section 1), and writes the run
metadata JSON that `roteq analyze` needs to compute the predictions (optimizer name in roteq's
table, hyperparameters, per-layer dim and per-layer overrides). Optionally saves snapshots of the
recorded weights as safetensors, written here byte by byte from the published format, so that the
same run can be analysed from checkpoints too.

One file, needing only torch and the Python standard library: copy it next to your training
script. Usage (see adapters/torch/README.md):

    rec = RoteqRecorder(model, optimizer, "run/trace.csv")   # + metadata run/trace.csv.json
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        rec.step()                # optimizer.step() with recording around it
        scheduler.step()
    rec.close()                   # run/trace.csv appears complete (written as .tmp.* until then)

A "neuron" is one row of a weight tensor (an output unit of a Linear layer, an output channel of
a convolution with the trailing axes flattened). Angles are computed in float64 whatever the
parameter dtype, as 2*atan2(||u - v||, ||u + v||) on the unit vectors u, v: exact to rounding for
every angle in [0, pi], where acos of the cosine loses half its digits near 0 (at 1e-3 rad the
cosine is 1 - 5e-7).
"""

import contextlib
import ctypes
import json
import math
import os
import sys
import tempfile
import time
import warnings

import torch

__all__ = ["RoteqRecorder", "neuron_axes", "optimizer_metadata", "optimizer_state",
           "row_norms_and_angles", "save_safetensors", "unwrap_optimizer"]

# The process umask, for giving temporary files the permissions open() would.
_UMASK = os.umask(0o22)
os.umask(_UMASK)

# safetensors dtype names of the float dtypes roteq measures (docs/FORMATS.md): the choices of
# snapshot_dtype.
_ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
              torch.bfloat16: "BF16"}
# Every dtype save_safetensors writes: the float ones and the integer and bool ones a full
# state_dict holds (BatchNorm's num_batches_tracked is int64). roteq skips non-float tensors.
_ST_ALL_DTYPES = {**_ST_DTYPES, torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
                  torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}

# Hyperparameter keys per roteq optimizer, as in the family files (families/; checked against
# `roteq theory --list` by tests/families/test_recorder_map.py). roteq rejects a key
# that does not apply to the optimizer, so hparams= given by hand are checked here, at once.
_HP_KEYS = {
    "sgd": ("lr", "weight_decay"),
    "sgdm": ("lr", "weight_decay", "momentum", "dampening"),
    "nesterov": ("lr", "weight_decay", "momentum"),
    "adam_l2": ("lr", "weight_decay", "beta1", "beta2", "eps"),
    "adamw": ("lr", "weight_decay", "beta1", "beta2", "eps"),
    "lion": ("lr", "weight_decay", "beta1", "beta2"),
    "muon": ("lr", "weight_decay", "momentum", "nesterov", "ns_steps", "adjust_lr"),
}

# torch.optim.Muon (PyTorch 2.9) and Keller Jordan's standalone classes (Muon, SingleDeviceMuon,
# and the *WithAuxAdam variants whose groups say use_muon; their other groups are an Adam with
# decoupled decay, i.e. adamw). Same algorithm: lerp momentum, Nesterov, 5 Newton-Schulz steps,
# lr * sqrt(max(1, rows/cols)) unless torch's adjust_lr_fn says otherwise.
_MUON_CLASSES = ("Muon", "SingleDeviceMuon", "MuonWithAuxAdam", "SingleDeviceMuonWithAuxAdam")


def _num(x):
    """A param-group value as a Python float (torch 2.x allows tensor lr)."""
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


def _group_hparams(optimizer, group):
    """(roteq optimizer name, {hyperparameter: value}) for one param group of a torch optimizer.

    Raises ValueError for optimizers roteq has no prediction for; pass `optimizer_name` and
    `hparams` to RoteqRecorder to describe those by hand."""
    cls = type(optimizer)
    lr, wd = _num(group["lr"]), _num(group.get("weight_decay", 0.0))
    if isinstance(optimizer, torch.optim.AdamW) or (
            isinstance(optimizer, torch.optim.Adam) and group.get("decoupled_weight_decay")):
        name = "adamw"
    elif isinstance(optimizer, torch.optim.Adam):
        name = "adam_l2"  # torch.optim.Adam adds weight_decay * w to the gradient
    elif isinstance(optimizer, torch.optim.SGD):
        momentum = _num(group.get("momentum", 0.0))
        if momentum == 0.0:
            return "sgd", {"lr": lr, "weight_decay": wd}
        if group.get("nesterov", False):
            return "nesterov", {"lr": lr, "weight_decay": wd, "momentum": momentum}
        return "sgdm", {"lr": lr, "weight_decay": wd, "momentum": momentum,
                        "dampening": _num(group.get("dampening", 0.0))}
    elif cls.__name__ in _MUON_CLASSES and group.get("use_muon", True):
        return "muon", {"lr": lr, "weight_decay": wd,
                        "momentum": _num(group.get("momentum", 0.95)),
                        "nesterov": 1.0 if group.get("nesterov", True) else 0.0,
                        "ns_steps": float(group.get("ns_steps", 5)),
                        "adjust_lr": group.get("adjust_lr_fn") or "original"}
    elif cls.__name__ in _MUON_CLASSES:  # the auxiliary Adam groups (use_muon False)
        name = "adamw"
    elif cls.__name__ == "Lion" and "betas" in group:  # lion-pytorch and most ports
        beta1, beta2 = (_num(b) for b in group["betas"])
        return "lion", {"lr": lr, "weight_decay": wd, "beta1": beta1, "beta2": beta2}
    else:
        raise ValueError(
            f"roteq_recorder: no roteq optimizer for {cls.__module__}.{cls.__name__}; pass "
            "optimizer_name= and hparams= (see adapters/torch/README.md)")
    if group.get("amsgrad", False):
        warnings.warn("roteq_recorder: amsgrad=True; roteq's Adam predictions assume plain Adam",
                      stacklevel=3)
    beta1, beta2 = (_num(b) for b in group["betas"])
    return name, {"lr": lr, "weight_decay": wd, "beta1": beta1, "beta2": beta2,
                  "eps": _num(group["eps"])}


def unwrap_optimizer(optimizer):
    """The torch optimizer inside wrappers that keep it as `.optimizer` (Accelerate's
    AcceleratedOptimizer, which HF Trainer hands to callbacks, and similar), for reading its
    type and hyperparameters; stepping still goes through the wrapper."""
    seen = set()
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer) and \
            id(optimizer) not in seen:
        seen.add(id(optimizer))
        optimizer = optimizer.optimizer
    return optimizer


def optimizer_metadata(optimizer, layers, optimizer_name=None, hparams=None, lrs=None):
    """The run-metadata object `roteq analyze` reads (issue 4, "Run metadata").

    `layers` maps layer name -> (param, dim). Top-level hyperparameters come from the param group
    holding the most recorded layers; a layer whose group differs gets the differing keys as
    per-layer overrides. `optimizer_name`/`hparams` override what is read from the optimizer.
    `lrs`: per param group, the lr to write instead of the group's current one (the recorder
    passes the lr of the last step taken: a scheduler may already have set the next step's)."""
    optimizer = unwrap_optimizer(optimizer)
    group_of = {}
    groups = [dict(g, lr=lrs[gi]) if lrs is not None else g
              for gi, g in enumerate(optimizer.param_groups)]
    for gi, group in enumerate(groups):
        for p in group["params"]:
            group_of[id(p)] = gi
    per_layer = {}
    for name, (param, dim) in layers.items():
        gi = group_of.get(id(param))
        if gi is None:
            raise ValueError(f"roteq_recorder: layer {name} is not in the optimizer's param groups")
        if optimizer_name is not None:
            opt, hp = optimizer_name, {}
            group = groups[gi]
            for key in ("lr", "weight_decay"):
                if key in group:
                    hp[key] = _num(group[key])
        else:
            opt, hp = _group_hparams(optimizer, groups[gi])
        if hparams:
            allowed = _HP_KEYS.get(opt)
            bad = sorted(set(hparams) - set(allowed)) if allowed is not None else []
            if bad:
                raise ValueError(f"roteq_recorder: hparams {', '.join(bad)} do not apply to {opt} "
                                 f"({', '.join(allowed)} do)")
            hp.update({k: v if k == "adjust_lr" else float(v) for k, v in hparams.items()})
        per_layer[name] = (gi, opt, hp, dim)
    if not per_layer:
        raise ValueError("roteq_recorder: no layers to record")
    counts = {}
    for gi, _, _, _ in per_layer.values():
        counts[gi] = counts.get(gi, 0) + 1
    main_gi = max(counts, key=lambda g: (counts[g], -g))
    main_opt, main_hp = next((o, h) for g, o, h, _ in per_layer.values() if g == main_gi)
    meta = {"optimizer": main_opt}
    meta.update(main_hp)
    meta["layers"] = {}
    for name, (gi, opt, hp, dim) in per_layer.items():
        entry = {"dim": dim}
        if opt != main_opt:
            # roteq analyze takes one optimizer per run (and ignores this key): say so.
            warnings.warn(f"roteq_recorder: layer {name} is optimised as {opt}, the run as "
                          f"{main_opt}; analyse it separately (--layers, --optimizer)",
                          stacklevel=3)
            entry["optimizer"] = opt
        entry.update({k: v for k, v in hp.items() if main_hp.get(k) != v})
        meta["layers"][name] = entry
    return meta


def row_norms_and_angles(before, after):
    """Per-row norm of `after` and angle between rows of `before` and `after` (2-D, float64).

    Returns (norms, angles) as float64 tensors; the angle is NaN where either row is zero (the
    direction is undefined there). 2*atan2(||u - v||, ||u + v||) for unit u, v is the angle with
    full relative precision from 0 to pi (||u - v|| = 2 sin(theta/2), ||u + v|| = 2 cos(theta/2))."""
    # Squares summed by hand: torch.linalg.vector_norm(dim=1) is ~3x slower on CPU float64.
    n_before = before.square().sum(1).sqrt_()
    n_after = after.square().sum(1).sqrt_()
    u = before / n_before.unsqueeze(1)
    v = after / n_after.unsqueeze(1)
    cos_part = (u + v).square_().sum(1).sqrt_()
    sin_part = u.sub_(v).square_().sum(1).sqrt_()
    angles = 2.0 * torch.atan2(sin_part, cos_part)
    angles = torch.where((n_before > 0) & (n_after > 0), angles,
                         torch.full_like(angles, math.nan))
    return n_after, angles


def _neuron_first_shape(p, axis):
    """p's shape with the neuron axis moved to the front."""
    shape = list(p.shape)
    n = shape.pop(axis)
    return [n] + shape


class _Workspace:
    """Preallocated float64 buffers for one layer, reused every recorded step: allocating fresh
    multi-megabyte tensors each step costs more in page faults than the arithmetic itself.
    Computes the same norms and angles as row_norms_and_angles and the step statistics
    (gradient cosine, update norm, radial part, cosine with the previous update) with five
    rows x C buffers per layer (40 bytes per recorded weight).

    `axis` is the layer's neuron axis: neuron i is the slice p.select(axis, i), the other axes
    flattened (C order after moving `axis` to the front)."""

    def __init__(self, p, axis=0):
        dev = p.device if p.device.type in ("cpu", "cuda") else torch.device("cpu")
        self.axis = axis
        self.shape = _neuron_first_shape(p, axis)
        rows, cols = self.shape[0], math.prod(self.shape[1:])
        self.before = torch.empty(rows, cols, dtype=torch.float64, device=dev)
        self.u, self.v, self.d, self.d_prev = (torch.empty_like(self.before) for _ in range(4))
        (self.n_before, self.n_after, self.cos_part, self.sin_part, self.angles, self.grad_sq,
         self.grad_cos, self.d_norm, self.d_prev_norm, self.radial, self.cos_prev) = (
            torch.empty(rows, dtype=torch.float64, device=dev) for _ in range(11))
        self.has_grad = False
        self.prev_step = None  # the step whose update d_prev holds

    def _load(self, dst, t):
        """dst (rows x C) <- t with the neuron axis moved to the front, in one copy."""
        dst.view(self.shape).copy_(t.detach().movedim(self.axis, 0))

    def save_before(self, p, grad):
        """Keep w_t before the step; with grad, measure p.grad against it (grad_cos, grad_sq)."""
        self._load(self.before, p)
        torch.sum(torch.mul(self.before, self.before, out=self.u), 1, out=self.n_before).sqrt_()
        self.has_grad = grad and p.grad is not None
        if self.has_grad:
            self._load(self.u, p.grad)
            torch.sum(torch.mul(self.u, self.before, out=self.v), 1, out=self.grad_cos)
            torch.sum(self.u.square_(), 1, out=self.grad_sq)
            self.grad_cos.div_(self.grad_sq.sqrt() * self.n_before)
        else:
            self.grad_cos.fill_(math.nan)

    def mean_sq_scaled_grad(self):
        """Mean over the layer's non-zero rows of ||g||^2 ||w||^2 for the step just computed:
        ||g~||^2, the squared gradient norm at unit weight norm, for a scale-invariant neuron
        (whose gradient scales as 1/||w||). NaN when there was no gradient."""
        if not self.has_grad:
            return math.nan
        live = self.n_before > 0
        n = int(live.sum())
        if n == 0:
            return math.nan
        return float((self.grad_sq * self.n_before.square())[live].sum()) / n

    def update(self, p, step, lr, wd):
        """Loads w_{t+1} (p now) into self.v and, for lr > 0, the update
        d_t = (w_{t+1} - (1 - lr*wd) w_t) / lr into self.d with its norm, its radial part
        <d, w_t>/||w_t|| and its cosine with d_{t-1} (NaN unless step - 1 was observed). The
        update is kept as d_{t-1} for step + 1."""
        self._load(self.v, p)
        if lr == 0.0:
            for t in (self.d_prev_norm, self.radial, self.cos_prev):
                t.fill_(math.nan)
            self.prev_step = None
            return
        torch.sub(self.v, self.before, alpha=1.0 - lr * wd, out=self.d).div_(lr)
        torch.sum(torch.mul(self.d, self.d, out=self.u), 1, out=self.d_norm).sqrt_()
        torch.sum(torch.mul(self.d, self.before, out=self.u), 1, out=self.radial)
        self.radial.div_(self.n_before)
        if self.prev_step == step - 1:
            torch.sum(torch.mul(self.d, self.d_prev, out=self.u), 1, out=self.cos_prev)
            self.cos_prev.div_(self.d_norm * self.d_prev_norm)
        else:
            self.cos_prev.fill_(math.nan)
        self.d, self.d_prev = self.d_prev, self.d
        self.d_norm, self.d_prev_norm = self.d_prev_norm, self.d_norm
        self.prev_step = step

    def angles_to_loaded(self):
        """(norms, angles) from the saved weights to those in self.v; clobbers before, u, v."""
        b, u, v = self.before, self.u, self.v
        torch.sum(torch.mul(v, v, out=u), 1, out=self.n_after).sqrt_()
        torch.div(b, self.n_before.unsqueeze(1), out=u)
        v.div_(self.n_after.unsqueeze(1))
        torch.sum(torch.add(u, v, out=b).square_(), 1, out=self.cos_part).sqrt_()
        torch.sum(u.sub_(v).square_(), 1, out=self.sin_part).sqrt_()
        torch.atan2(self.sin_part, self.cos_part, out=self.angles).mul_(2.0)
        zero = (self.n_before == 0) | (self.n_after == 0)
        self.angles.masked_fill_(zero, math.nan)
        return self.n_after, self.angles

    def compute(self, p):
        """(norms, angles) for the step from the saved weights to p's current weights."""
        self._load(self.v, p)
        return self.angles_to_loaded()

    def stats(self):
        """(grad_cos, update_norm, update_radial, update_cos_prev) lists of the step just
        measured by update(); its update is in d_prev after the swap."""
        return (self.grad_cos.tolist(), self.d_prev_norm.tolist(), self.radial.tolist(),
                self.cos_prev.tolist())


def _tensor_bytes(t):
    """Raw little-endian bytes of a tensor (C order), without numpy."""
    t = t.detach().to("cpu").contiguous()
    if sys.byteorder != "little" and t.element_size() > 1:
        t = t.view(torch.uint8).view(-1, t.element_size()).flip(1).contiguous()
    n = t.numel() * t.element_size()
    return ctypes.string_at(t.data_ptr(), n) if n else b""


def _mkstemp_beside(path):
    """PATH.tmp.XXXXXX in path's folder, with the permissions a plain open() would give
    (mkstemp's are 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp.",
                               dir=os.path.dirname(os.path.abspath(path)))
    os.chmod(tmp, 0o666 & ~_UMASK)
    return fd, tmp


def _atomic_write(path, chunks):
    """Write `chunks` (bytes) to PATH.tmp.XXXXXX beside `path`, then rename over `path`, as roteq
    does for its own outputs: a reader never sees a truncated file."""
    fd, tmp = _mkstemp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_safetensors(path, tensors, metadata=None):
    """Write `tensors` (name -> tensor) as a safetensors file, each with its own dtype: float64,
    float32, float16, bfloat16, int64/32/16/8, uint8 or bool (a full state_dict saves as it is;
    roteq analyses the float tensors and skips the others). Other dtypes (complex, float8,
    unsigned 16-64) raise ValueError naming the tensor; nothing is written then.

    Format (huggingface/safetensors, docs "format"): an unsigned 64-bit little-endian header
    length N, then N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...,
    "__metadata__": {str: str}} padded with spaces to a multiple of 8, then the tensors' raw
    little-endian bytes, back to back, offsets relative to the end of the header."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        if t.dtype not in _ST_ALL_DTYPES:
            raise ValueError(f"roteq_recorder: tensor {name}: dtype {t.dtype} not supported "
                             f"(use one of {', '.join(str(d) for d in _ST_ALL_DTYPES)})")
        data = _tensor_bytes(t)
        header[name] = {"dtype": _ST_ALL_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    _atomic_write(path, [len(text).to_bytes(8, "little"), text] + blobs)


def _default_selection(name, param, group):
    return param.dim() >= 2 and _num(group.get("weight_decay", 0.0)) > 0.0


# Module classes whose weight is stored [in, out] (the neuron is a column): HF transformers'
# GPT-2-style Conv1D (transformers.pytorch_utils.Conv1D, y = x @ W + b). Matched by class name
# so that transformers need not be importable here.
_IN_OUT_CLASSES = ("Conv1D",)

# The trace columns: roteq's, then the step statistics (docs/FORMATS.md section 1).
_COLUMNS = "step,layer,neuron,norm,angle,lr,weight_decay"
_STAT_COLUMNS = "grad_cos,update_norm,update_radial,update_cos_prev"


def neuron_axes(model, overrides=None):
    """{parameter name: neuron axis} for the parameters whose neurons are not along axis 0:
    the weight of every module whose class is named Conv1D ([in, out], axis -1), then
    `overrides` ({parameter name: axis}) on top."""
    axes = {}
    for mname, module in model.named_modules():
        if type(module).__name__ in _IN_OUT_CLASSES and isinstance(
                getattr(module, "weight", None), torch.Tensor):
            axes[f"{mname}.weight" if mname else "weight"] = -1
    axes.update(overrides or {})
    return axes


def _fmt(x):
    """repr(float), the shortest text that reads back to the same double; '' for NaN/Inf."""
    return repr(x) if x - x == 0.0 else ""


def _fmt9(x):
    """A statistic with 9 significant digits (twice as fast to format as repr, and far more
    digits than a per-step cosine or update norm carries); '' for NaN/Inf."""
    return f"{x:.9g}" if x - x == 0.0 else ""


def _group_json(group, lr_applied):
    """A param group's hyperparameters for the roteq.optimizer metadata (null where the
    optimizer has no such key)."""
    def opt_num(key):
        return _num(group[key]) if key in group else None
    betas = group.get("betas")
    return {"lr": _num(group["lr"]), "lr_applied": lr_applied,
            "betas": [_num(b) for b in betas] if betas is not None else None,
            "eps": opt_num("eps"), "weight_decay": opt_num("weight_decay"),
            "momentum": opt_num("momentum"), "dampening": opt_num("dampening"),
            "nesterov": bool(group.get("nesterov", False))}


def optimizer_state(optimizer, params, lr_applied=None):
    """The optimizer state of `params` ({name: parameter}) in roteq's snapshot format:
    (tensors, metadata) with tensors {"optimizer/<name>/<state key>": tensor} (exp_avg,
    exp_avg_sq, momentum_buffer, ... in the parameter's own layout and dtype) and metadata
    {"roteq.optimizer": JSON text of {"class", "params": {name: {"group", "step"}}, "groups":
    [{"lr", "lr_applied", "betas", "eps", "weight_decay", "momentum", "dampening", "nesterov"},
    ...]}}.
    Scalar state (Adam's `step`) goes into params[name]. `lr_applied`: per param group, the lr
    of the last step applied (None where unknown, e.g. before the first step); a param group's
    `lr` may already be the next step's when a scheduler has stepped."""
    opt = unwrap_optimizer(optimizer)
    group_of = {}
    for gi, group in enumerate(opt.param_groups):
        for p in group["params"]:
            group_of[id(p)] = gi
    tensors, entries = {}, {}
    for name, p in params.items():
        if id(p) not in group_of:
            raise ValueError(f"roteq_recorder: {name} is not in the optimizer's param groups")
        entry = {"group": group_of[id(p)]}
        for key, value in opt.state.get(p, {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                tensors[f"optimizer/{name}/{key}"] = value.detach()
            elif isinstance(value, (int, float, torch.Tensor)):
                v = value.item() if isinstance(value, torch.Tensor) else value
                entry[key] = int(v) if key == "step" else float(v)
        entries[name] = entry
    lrs = list(lr_applied) if lr_applied is not None else [None] * len(opt.param_groups)
    doc = {"class": type(opt).__name__, "params": entries,
           "groups": [_group_json(g, lrs[gi]) for gi, g in enumerate(opt.param_groups)]}
    return tensors, {"roteq.optimizer": json.dumps(doc, separators=(",", ":"))}


class RoteqRecorder:
    """Records per-neuron norms and angular updates of a model trained by a torch optimizer.

    model, optimizer: the module being trained and its torch.optim optimizer.
    trace: path of the CSV trace; the metadata JSON goes beside it as TRACE.json
        (trace.csv -> trace.csv.json, where `roteq analyze` looks for it, as `roteq simulate
        --trace` writes it) unless `meta` names another path.
    neurons: which parameters are layers of neurons. None: every parameter of rank >= 2 whose
        param group has weight decay > 0. Or an iterable of parameter names
        (model.named_parameters() names, e.g. "fc1.weight"), or a predicate
        f(name, param, param_group) -> bool. Layers are named by their parameter names.
    neuron_axis: {parameter name: axis} for layers whose neurons are not along axis 0. The
        weights of modules whose class is named Conv1D (HF transformers' [in, out] layout) get
        -1 by themselves. Written per layer as "neuron_axis" in the metadata.
    every: record the steps whose number is a multiple of `every` (1: every step). Each recorded
        row holds the norm after that step and the angle of that single step.
    record_stats: also write, per neuron and recorded step, grad_cos, update_norm,
        update_radial and update_cos_prev (docs/FORMATS.md section 1). With every > 1 the step
        before each recorded one is observed too (weights only, no rows), so update_cos_prev
        is there at every recorded step but the first.
    snapshot_dir, snapshot_every: also save the recorded weights before the first step (step 0)
        and after every `snapshot_every`-th step, as safetensors in `snapshot_dir`; the
        metadata is also written to `snapshot_dir`.json, where `roteq analyze` looks for it.
    snapshot_layout: "files" (snapshot_dir/step_00000100.safetensors) or "hf"
        (snapshot_dir/checkpoint-100/model.safetensors, HF Trainer's layout).
    snapshot_dtype: None (the parameter's dtype) or torch.float64/float32/float16/bfloat16.
    snapshot_optimizer: also save the optimizer state of the recorded layers in each snapshot
        (optimizer_state(): tensors optimizer/<name>/<key> in their own dtype, and the
        "roteq.optimizer" metadata with the lr of the step just applied).
    optimizer_name, hparams: describe an optimizer this file does not map (roteq names:
        sgd, sgdm, nesterov, adam_l2, adamw, lion, rv_*), or override values read from it.
    record_initial: write step-0 rows with the initial norms and an empty angle (the trace then
        carries what a step-0 snapshot does: the starting point of the transient).
    record_grad_norm: measure each layer's RMS gradient norm at unit weight norm,
        ||g~|| = ||grad|| * ||w|| per neuron (exact for scale-invariant neurons), over the last
        quarter of the recorded steps, and write it as the layer's "grad_norm" in the metadata
        at close(). roteq's predictions for SGD's norm and for Adam+L2 need it. The gradient
        must be unscaled when the step is recorded (with a GradScaler, call
        scaler.unscale_(optimizer) first).
    check_finite: raise FloatingPointError when a recorded weight becomes NaN or Inf (a trace
        with a non-finite norm is rejected by roteq analyze).

    Steps are counted from 1 (the first optimizer.step() is step 1), as in `roteq simulate`;
    step 0 is the state before training.
    """

    def __init__(self, model, optimizer, trace, neurons=None, every=1, meta=None,
                 snapshot_dir=None, snapshot_every=0, snapshot_layout="files",
                 snapshot_dtype=None, optimizer_name=None, hparams=None, record_initial=True,
                 record_grad_norm=True, check_finite=True, record_stats=True,
                 snapshot_optimizer=False, neuron_axis=None):
        if int(every) < 1:
            raise ValueError("roteq_recorder: every must be >= 1")
        if snapshot_layout not in ("files", "hf"):
            raise ValueError("roteq_recorder: snapshot_layout must be 'files' or 'hf'")
        if snapshot_dtype is not None and snapshot_dtype not in _ST_DTYPES:
            raise ValueError(f"roteq_recorder: snapshot_dtype {snapshot_dtype} not supported")
        if (snapshot_dir is None) != (int(snapshot_every) <= 0):
            raise ValueError("roteq_recorder: snapshot_dir and snapshot_every > 0 go together")
        self.optimizer = optimizer
        self.every = int(every)
        self.snapshot_dir = snapshot_dir
        self.snapshot_every = int(snapshot_every)
        self.snapshot_layout = snapshot_layout
        self.snapshot_dtype = snapshot_dtype
        self.snapshot_optimizer = snapshot_optimizer
        self.check_finite = check_finite
        self.record_grad_norm = record_grad_norm
        self.record_stats = record_stats
        self.step_count = 0
        self.seconds = 0.0  # time spent inside the recorder (overhead), for reporting
        self._recording = None  # (lr, wd) per layer while a recorded step is under way
        self._observing = None  # the same for the step before a recorded one (every > 1)
        self._lr_applied = None  # per param group, the lr of the last step applied
        self._lr_pending = None

        group_of = {}
        for group in optimizer.param_groups:
            for p in group["params"]:
                group_of[id(p)] = group
        if neurons is None:
            select = _default_selection
        elif callable(neurons):
            select = neurons
        else:
            wanted = set(neurons)
            select = lambda name, p, g: name in wanted  # noqa: E731
        axes = neuron_axes(model, neuron_axis)
        self.layers = {}  # name -> (param, param group)
        self.axes = {}  # name -> neuron axis (0, or negative from the end)
        for name, p in model.named_parameters():
            group = group_of.get(id(p))
            if group is not None and p.dim() >= 1 and select(name, p, group):
                if p.dim() < 2:
                    raise ValueError(f"roteq_recorder: {name} has rank 1; a layer of neurons "
                                     "needs rank >= 2 (rows = neurons)")
                if "," in name:
                    raise ValueError(f"roteq_recorder: layer name {name!r} contains a comma")
                axis = int(axes.get(name, 0))
                if not -p.dim() <= axis < p.dim():
                    raise ValueError(f"roteq_recorder: neuron_axis {axis} of {name} is outside "
                                     f"its {p.dim()} axes")
                self.layers[name] = (p, group)
                self.axes[name] = axis - p.dim() if axis > 0 else axis
        unknown = set(neuron_axis or {}) - set(dict(model.named_parameters()))
        if unknown:
            raise ValueError("roteq_recorder: neuron_axis names no parameter of the model: "
                             f"{', '.join(sorted(unknown))}")
        if not callable(neurons) and neurons is not None:
            missing = set(neurons) - set(self.layers)
            if missing:
                raise ValueError("roteq_recorder: not trainable parameters of the model in the "
                                 f"optimizer: {', '.join(sorted(missing))}")
        if not self.layers:
            raise ValueError("roteq_recorder: no parameter selected (default: rank >= 2 with "
                             "weight decay > 0); pass neurons=")
        for name, (p, group) in self.layers.items():
            if _num(group.get("weight_decay", 0.0)) <= 0.0:
                warnings.warn(f"roteq_recorder: {name} has no weight decay: no equilibrium to "
                              "predict", stacklevel=2)

        dims = {n: (p, p.numel() // p.shape[self.axes[n]]) for n, (p, _) in self.layers.items()}
        self._meta_args = (dims, optimizer_name, hparams)
        self.metadata = optimizer_metadata(optimizer, dims, optimizer_name, hparams)
        for name, axis in self.axes.items():
            self.metadata["layers"][name]["neuron_axis"] = axis
        # Keys roteq does not know are ignored by `roteq analyze`; these say how the trace was made.
        self.metadata["recorder"] = {
            "name": "roteq_recorder.py", "torch": torch.__version__,
            "torch_optimizer": type(unwrap_optimizer(optimizer)).__name__, "every": self.every,
            "snapshot_every": self.snapshot_every, "stats": bool(record_stats),
            "snapshot_optimizer": bool(snapshot_optimizer), "steps": 0}
        self.trace_path = trace
        self.meta_path = meta if meta is not None else trace + ".json"
        d = os.path.dirname(os.path.abspath(trace))
        os.makedirs(d, exist_ok=True)
        fd, self._tmp_path = _mkstemp_beside(trace)
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20)
        self._file.write(
            f"# roteq_recorder.py: torch {torch.__version__}, "
            f"{type(unwrap_optimizer(optimizer)).__name__} -> "
            f"{self.metadata['optimizer']}, every {self.every} step(s)\n"
            f"{_COLUMNS}{',' + _STAT_COLUMNS if record_stats else ''}\n")
        # ",<layer>,<i>," prefixes built once: formatting rows is the recorder's main cost.
        self._prefix = {n: [f",{n},{i}," for i in range(p.shape[self.axes[n]])]
                        for n, (p, _) in self.layers.items()}
        self._work = {n: _Workspace(p, self.axes[n]) for n, (p, _) in self.layers.items()}
        self._grad_sq = {n: [] for n in self.layers}  # per recorded step: mean ||g~||^2
        # A copy beside the snapshot folder (run/snapshots.json) is where `roteq analyze
        # run/snapshots` looks for metadata, as TRACE.json is for a trace.
        self._meta_paths = [self.meta_path]
        if snapshot_dir is not None:
            self._meta_paths.append(os.path.normpath(snapshot_dir) + ".json")
        try:
            self._write_meta()
            if record_initial:
                self._write_initial()
            if self.snapshot_dir is not None:
                os.makedirs(self.snapshot_dir, exist_ok=True)
                self._snapshot(0)
        except BaseException:
            self._file.close()  # no temporary trace left behind
            os.unlink(self._tmp_path)
            raise

    def _write_initial(self):
        """Step-0 rows: the initial norms (no angle yet), as the step-0 snapshot carries them."""
        out = []
        empty = ",,,," if self.record_stats else ""
        for name, (p, g) in self.layers.items():
            work = self._work[name]
            work._load(work.before, p)
            norms = work.before.square().sum(1).sqrt_().tolist()
            tail = f",,{_num(g['lr'])!r},{_num(g.get('weight_decay', 0.0))!r}{empty}\n"
            out.extend(f"0{pre}{n!r}{tail}" for pre, n in zip(self._prefix[name], norms))
        self._file.write("".join(out))

    # -- the step -------------------------------------------------------------------------------

    def before_step(self):
        """Call right before optimizer.step() (or scaler.step(optimizer))."""
        t0 = time.perf_counter()
        step = self.step_count + 1
        # The values in force during this step, read before a scheduler changes them.
        self._lr_pending = [_num(g["lr"]) for g in unwrap_optimizer(self.optimizer).param_groups]
        hp = None
        if step % self.every == 0 or (self.record_stats and (step + 1) % self.every == 0):
            hp = [(_num(g["lr"]), _num(g.get("weight_decay", 0.0)))
                  for _, g in self.layers.values()]
        if step % self.every == 0:
            grad = self.record_grad_norm or self.record_stats
            for name, (p, _) in self.layers.items():
                self._work[name].save_before(p, grad)
            self._recording = hp
        elif hp is not None:  # the step before a recorded one: its update, for update_cos_prev
            for name, (p, _) in self.layers.items():
                self._work[name].save_before(p, False)
            self._observing = hp
        self.seconds += time.perf_counter() - t0

    def _rows(self, name, step, lr, wd, norms, angles):
        """The CSV lines of one layer at one recorded step."""
        tail = f",{lr!r},{wd!r}"
        head = str(step)
        if not self.record_stats:
            return [f"{head}{pre}{n!r},{_fmt(a)}{tail}\n"
                    for pre, n, a in zip(self._prefix[name], norms.tolist(), angles.tolist())]
        gc, un, ur, uc = self._work[name].stats()
        return [f"{head}{pre}{n!r},{_fmt(a)}{tail},{_fmt9(c)},{_fmt9(m)},{_fmt9(r)},{_fmt9(q)}\n"
                for pre, n, a, c, m, r, q in zip(self._prefix[name], norms.tolist(),
                                                 angles.tolist(), gc, un, ur, uc)]

    def after_step(self):
        """Call right after optimizer.step(); records the step if it is a recorded one."""
        t0 = time.perf_counter()
        self.step_count += 1
        step = self.step_count
        if self._lr_pending is not None:
            self._lr_applied, self._lr_pending = self._lr_pending, None
        if self._observing is not None:
            for (name, (p, _)), (lr, wd) in zip(self.layers.items(), self._observing):
                self._work[name].update(p, step, lr, wd)
            self._observing = None
        if self._recording is not None:
            out = []
            for (name, (p, _)), (lr, wd) in zip(self.layers.items(), self._recording):
                work = self._work[name]
                if self.record_stats:
                    work.update(p, step, lr, wd)
                    norms, angles = work.angles_to_loaded()
                else:
                    norms, angles = work.compute(p)
                g2 = work.mean_sq_scaled_grad()
                if g2 == g2:
                    self._grad_sq[name].append(g2)
                if self.check_finite and not bool(torch.isfinite(norms).all()):
                    bad = int((~torch.isfinite(norms)).nonzero()[0])
                    raise FloatingPointError(f"roteq_recorder: {name} neuron {bad} has a "
                                             f"non-finite weight after step {step}")
                out.extend(self._rows(name, step, lr, wd, norms, angles))
            self._file.write("".join(out))
            self._recording = None
        if self.snapshot_dir is not None and step % self.snapshot_every == 0:
            self._snapshot(step)
        self.seconds += time.perf_counter() - t0

    @property
    def lr_applied(self):
        """Per param group of the optimizer, the lr of the last step taken through the recorder
        (None before the first): what optimizer_state() needs once a scheduler has moved the
        groups' lr on to the next step's."""
        return list(self._lr_applied) if self._lr_applied is not None else None

    def step(self, closure=None):
        """optimizer.step(closure) with recording around it; returns what the optimizer returns."""
        self.before_step()
        result = self.optimizer.step() if closure is None else self.optimizer.step(closure)
        self.after_step()
        return result

    def attach(self):
        """Record every optimizer.step() without touching the training loop, through the
        optimizer's step hooks (torch >= 2.0: register_step_pre_hook / register_step_post_hook).
        Returns self; detach() removes the hooks."""
        opt = self.optimizer
        if not hasattr(opt, "register_step_pre_hook"):
            raise RuntimeError(f"roteq_recorder: attach() needs torch >= 2.0 optimizer step hooks "
                               f"(torch {torch.__version__}); call rec.step() instead of "
                               "optimizer.step()")
        self._hooks = [opt.register_step_pre_hook(lambda *_: self.before_step()),
                       opt.register_step_post_hook(lambda *_: self.after_step())]
        return self

    def detach(self):
        for h in getattr(self, "_hooks", []):
            h.remove()
        self._hooks = []

    @contextlib.contextmanager
    def around_step(self):
        """`with rec.around_step(): scaler.step(optimizer)` for loops that step elsewhere."""
        self.before_step()
        yield
        self.after_step()

    # -- files ----------------------------------------------------------------------------------

    def close(self):
        """Flush the trace and move it into place, and complete the metadata (idempotent): the
        measured gradient norms, and the hyperparameters of the last step taken (written at
        construction from the param groups as they were then, e.g. a warmup's first lr)."""
        if self._file is None:
            return
        self._file.close()
        self._file = None
        os.replace(self._tmp_path, self.trace_path)
        if self._lr_applied is not None:
            last = optimizer_metadata(self.optimizer, *self._meta_args, lrs=self._lr_applied)
            for name, entry in last["layers"].items():
                entry["neuron_axis"] = self.axes[name]
            last["recorder"] = self.metadata["recorder"]
            self.metadata = last
        for name, g2 in self._grad_sq.items():
            if g2:
                tail = g2[len(g2) - max(1, len(g2) // 4):]
                self.metadata["layers"][name]["grad_norm"] = math.sqrt(sum(tail) / len(tail))
        self.metadata["recorder"]["steps"] = self.step_count
        self._write_meta()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Also on an exception (e.g. Ctrl-C): the trace holds whole steps only, and the steps
        # recorded so far are worth analysing.
        self.close()
        return False

    def _snapshot(self, step):
        tensors = {}
        for name, (p, _) in self.layers.items():
            w = p.detach()
            tensors[name] = w if self.snapshot_dtype is None else w.to(self.snapshot_dtype)
        meta = {"step": step, "optimizer": self.metadata["optimizer"], "format": "pt"}
        if self.snapshot_optimizer:
            state, more = optimizer_state(self.optimizer,
                                          {n: p for n, (p, _) in self.layers.items()},
                                          self._lr_applied)
            tensors.update(state)
            meta.update(more)
        if self.snapshot_layout == "files":
            path = os.path.join(self.snapshot_dir, f"step_{step:08d}.safetensors")
        else:
            folder = os.path.join(self.snapshot_dir, f"checkpoint-{step}")
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "model.safetensors")
        save_safetensors(path, tensors, meta)

    def _write_meta(self):
        text = (json.dumps(self.metadata, indent=1) + "\n").encode("utf-8")
        for path in self._meta_paths:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            _atomic_write(path, [text])
