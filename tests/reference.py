"""Independent numpy reference for Deep Taylor Decomposition / LRP.

Written directly from the pseudocode of section 2 of the DTD supplement
(Montavon et al., "Explaining NonLinear Classification Decisions with Deep
Taylor Decomposition", supplementary material) and, for the LRP rules, from
its section 4 (epsilon, alpha-beta) and Montavon et al. 2019 (gamma).

Everything here is plain numpy in float64.  Keras is only *read*: layer
configs via ``layer.get_config()`` and parameters via ``layer.get_weights()``.
Convolutions and poolings are turned into explicit matrices / index windows by
plain Python loops, so every linear layer is handled by the same dense-matrix
rules below.

Conventions of the matrix rules: ``W`` has shape (d_in, d_out), ``b`` (d_out),
``X`` (d_in) for one sample, ``R`` (d_out) the relevance of the layer's
outputs; each rule returns the relevance of the layer's inputs (d_in).
Wherever a denominator is exactly 0 the quotient is taken to be 0.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "bert_forward",
    "rotary_matrix",
    "safe_div",
    "w2",
    "z",
    "zplus",
    "zsign",
    "zbox",
    "epsilon",
    "alphabeta",
    "gamma",
    "flat",
    "zflat",
    "apply_rule",
    "conv_as_matrix",
    "pool_windows",
    "maxpool_forward",
    "maxpool_winner_backward",
    "maxpool_proportional_backward",
    "model_plan",
    "forward",
    "linear_layer_inputs",
    "reference_relevance",
    "dtd_rule_for_layer",
    "constant_rule",
]
__all__ += ["frozen_norm", "norm_epsilon"]


# ---------------------------------------------------------------------------
# Elementwise helpers
# ---------------------------------------------------------------------------


def safe_div(a, b):
    """Elementwise ``a / b`` with the result 0 wherever ``b == 0``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    out = np.zeros(a.shape, dtype=np.float64)
    nz = b != 0
    out[nz] = a[nz] / b[nz]
    return out


def _plus(A):
    """Positive part: entries >= 0 kept, the others set to 0."""
    A = np.asarray(A, dtype=np.float64)
    return np.where(A >= 0, A, 0.0)


def _minus(A):
    """Negative part: entries < 0 kept, the others set to 0."""
    A = np.asarray(A, dtype=np.float64)
    return np.where(A < 0, A, 0.0)


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


# ---------------------------------------------------------------------------
# Dense-matrix propagation rules (supplement section 2 and section 4)
# ---------------------------------------------------------------------------


def w2(W, R):
    """w^2-rule (supplement 2.1).  The bias is ignored.

    V <- W (.) W ; N <- V (/) ([1] . V) ; return N . R
    """
    W, R = _f64(W, R)
    V = W * W
    ones = np.ones((W.shape[0], W.shape[0]))
    N = safe_div(V, ones @ V)
    return N @ R


def z(W, X, R):
    """z-rule (supplement 2.2).  The bias is not in the denominator.

    Z <- W^T X ; return X (.) (W . (R (/) Z))
    """
    W, X, R = _f64(W, X, R)
    Z = W.T @ X
    return X * (W @ safe_div(R, Z))


def zplus(W, X, R):
    """z^+-rule (supplement 2.3).

    V <- W^+ ; Z <- V^T X ; return X (.) (V . (R (/) Z))
    """
    W, X, R = _f64(W, X, R)
    if np.all(X >= 0):
        V = _plus(W)
        Z = V.T @ X
        return X * (V @ safe_div(R, Z))
    # Outside ℝ₊ (where LRP presets apply z⁺) the library takes the positive part of each
    # product, R_i = Σ_j (x_i w_ij)⁺ / Σ_i (x_i w_ij)⁺ R_j, which equals the above for x ≥ 0.
    P = np.maximum(X[:, None] * W, 0.0)
    return P @ safe_div(R, P.sum(axis=0))


def zsign(W, X, R):
    """DTD's rule for hidden layers on real-valued inputs (not in the supplement; the
    library's documented choice): neuron j's relevance goes to the products x_i w_ij of
    the sign of its bias-free sum, R_i = Σ_j s_ij / Σ_i s_ij R_j with s_ij the positive
    part of x_i w_ij where Σ_i x_i w_ij >= 0 and the negative part where it is < 0.
    """
    W, X, R = _f64(W, X, R)
    P = X[:, None] * W
    S = np.where(P.sum(axis=0) >= 0, np.maximum(P, 0.0), np.minimum(P, 0.0))
    return S @ safe_div(R, S.sum(axis=0))


def zbox(W, X, R, L, H):
    """z^B-rule (supplement 2.4).  ``L``/``H`` are scalars or (d_in) vectors.

    U <- W^- ; V <- W^+ ; N <- R (/) (W^T X - V^T L - U^T H)
    return X (.) (W . N) - L (.) (V . N) - H (.) (U . N)
    """
    W, X, R = _f64(W, X, R)
    L = np.broadcast_to(np.asarray(L, dtype=np.float64), X.shape)
    H = np.broadcast_to(np.asarray(H, dtype=np.float64), X.shape)
    U = _minus(W)
    V = _plus(W)
    N = safe_div(R, W.T @ X - V.T @ L - U.T @ H)
    return X * (W @ N) - L * (V @ N) - H * (U @ N)


def epsilon(W, b, X, R, eps):
    """LRP-epsilon (supplement section 4).

    R_i = sum_j z_ij / s(sum_i z_ij + b_j) R_j,  s(t) = t + eps (1[t>=0] - 1[t<0])
    """
    W, b, X, R = _f64(W, b, X, R)
    t = W.T @ X + b
    s = t + eps * (np.where(t >= 0, 1.0, 0.0) - np.where(t < 0, 1.0, 0.0))
    return X * (W @ safe_div(R, s))


def alphabeta(W, b, X, R, alpha, beta):
    """LRP-alpha-beta (supplement section 4).

    R_i = sum_j (alpha z+_ij / (sum_i z+_ij + b+_j) - beta z-_ij / (sum_i z-_ij + b-_j)) R_j
    with z_ij = x_i w_ij, z+ = max(z, 0), z- = min(z, 0), b+ = max(b, 0), b- = min(b, 0).
    """
    W, b, X, R = _f64(W, b, X, R)
    Zij = X[:, None] * W
    Zp = np.maximum(Zij, 0.0)
    Zn = np.minimum(Zij, 0.0)
    dp = Zp.sum(axis=0) + np.maximum(b, 0.0)
    dn = Zn.sum(axis=0) + np.minimum(b, 0.0)
    return alpha * (Zp @ safe_div(R, dp)) - beta * (Zn @ safe_div(R, dn))


def gamma(W, b, X, R, g):
    """Generalized LRP-gamma (Andeol et al. 2021, as in zennit >= 0.5).

    With z_j = sum_i x_i w_ij + b_j, x+ = max(x, 0), x- = min(x, 0):
    for j with z_j > 0, n_ij = x+_i (w_ij + g w+_ij) + x-_i (w_ij + g w-_ij) and
    R_i gets n_ij / (sum_i n_ij + b_j + g b+_j) R_j; for z_j < 0 the same with
    w+ and w- swapped and the bias b_j + g b-_j; z_j = 0 passes nothing.
    Written with loops over j, one neuron at a time.
    """
    W, b, X, R = _f64(W, b, X, R)
    xp, xn = np.maximum(X, 0.0), np.minimum(X, 0.0)
    out = np.zeros_like(X)
    for j in range(W.shape[1]):
        w = W[:, j]
        wp, wn = np.maximum(w, 0.0), np.minimum(w, 0.0)
        zj = X @ w + b[j]
        if zj > 0:
            n = xp * (w + g * wp) + xn * (w + g * wn)
            d = n.sum() + b[j] + g * max(b[j], 0.0)
        elif zj < 0:
            n = xp * (w + g * wn) + xn * (w + g * wp)
            d = n.sum() + b[j] + g * min(b[j], 0.0)
        else:
            continue
        if d != 0:
            out += n / d * R[j]
    return out


def flat(M, R):
    """Flat rule: R_i = sum_j M_ij / (sum_i M_ij) R_j, M the 0/1 connectivity mask."""
    M, R = _f64(M, R)
    return M @ safe_div(R, M.sum(axis=0))


def zflat(W, X, R, M):
    """z-rule where sum_i x_i w_ij != 0, else the flat rule over j's inputs (mask M):
    R_i = sum_j [s_j != 0] z_ij / s_j R_j + [s_j == 0] M_ij / sum_i M_ij R_j."""
    W, X, R, M = _f64(W, X, R, M)
    Z = X[:, None] * W
    s = Z.sum(axis=0)
    alive = s != 0
    return Z @ safe_div(np.where(alive, R, 0.0), s) + M @ safe_div(np.where(alive, 0.0, R),
                                                                   M.sum(axis=0))


def _bound(v, X):
    """A box bound as a flat vector: a scalar, or an array with one entry per input."""
    v = np.asarray(v, dtype=np.float64)
    X = np.reshape(X, -1)
    if v.size == X.size:
        return v.reshape(-1)
    return np.broadcast_to(v, X.shape)


def apply_rule(spec, W, b, X, R, M):
    """Dispatch a rule spec tuple such as ``("zbox", low, high)`` to the rules above."""
    name = spec[0]
    if name == "w2":
        return w2(W, R)
    if name == "z":
        return z(W, X, R)
    if name == "zplus":
        return zplus(W, X, R)
    if name == "zsign":
        return zsign(W, X, R)
    if name == "zbox":
        low, high = spec[1], spec[2]
        return zbox(W, X, R, _bound(low, X), _bound(high, X))
    if name == "epsilon":
        return epsilon(W, b, X, R, spec[1])
    if name == "alphabeta":
        return alphabeta(W, b, X, R, spec[1], spec[2])
    if name == "gamma":
        return gamma(W, b, X, R, spec[1])
    if name == "flat":
        return flat(M, R)
    if name == "zflat":
        return zflat(W, X, R, M)
    raise ValueError(f"unknown rule spec {spec!r}")


# ---------------------------------------------------------------------------
# Convolutions as explicit matrices
# ---------------------------------------------------------------------------


def _as_tuple(v, n):
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(e) for e in v)
    if len(v) == 1 and n > 1:
        return v * n
    return v


def _same_pad(n, k, s, d=1):
    """Keras/TF "same": total = max((ceil(n/s)-1)*s + (k-1)*d + 1 - n, 0); before = total//2."""
    total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2


def _out_len(n, k, s, d, padding):
    if padding == "same":
        return math.ceil(n / s)
    if padding == "causal":  # left-padded by (k-1)*d, then "valid"
        return (n - 1) // s + 1
    if padding == "valid":
        return (n - (k - 1) * d - 1) // s + 1
    raise ValueError(f"unsupported padding {padding!r}")


def _split_shape(shape, data_format):
    """(spatial, channels) of a per-sample shape."""
    shape = tuple(int(e) for e in shape)
    if data_format == "channels_first":
        return shape[1:], shape[0]
    return shape[:-1], shape[-1]


def _join_shape(spatial, channels, data_format):
    if data_format == "channels_first":
        return (channels,) + tuple(spatial)
    return tuple(spatial) + (channels,)


def _pos_index(data_format):
    """Return f(index_array, position_tuple, channel) -> flat index."""
    if data_format == "channels_first":
        return lambda idx, p, c: idx[(c,) + tuple(p)]
    return lambda idx, p, c: idx[tuple(p) + (c,)]


def conv_as_matrix(layer, input_shape):
    """Express a keras Conv1D/2D/3D as a dense matrix over one flattened sample.

    ``input_shape`` is the per-sample input shape (a leading batch dimension is
    dropped if present).  Returns ``(W, b, M, output_shape)`` where ``W`` is
    (d_in, d_out), ``b`` (d_out), ``M`` the 0/1 connectivity mask (d_in, d_out)
    and ``output_shape`` the per-sample output shape, all in the layer's own
    data layout (C-order flattening).  ``W.T @ x.ravel() + b`` equals the
    pre-activation output of the layer, raveled.
    """
    cfg = layer.get_config()
    kernel_size = tuple(cfg["kernel_size"])
    rank = len(kernel_size)
    input_shape = tuple(int(e) for e in input_shape)
    if len(input_shape) == rank + 2:
        input_shape = input_shape[1:]
    if len(input_shape) != rank + 1:
        raise ValueError(f"input shape {input_shape} does not fit a {rank}D convolution")
    strides = _as_tuple(cfg["strides"], rank)
    dilation = _as_tuple(cfg["dilation_rate"], rank)
    padding = cfg["padding"].lower()
    data_format = cfg.get("data_format") or "channels_last"
    groups = int(cfg.get("groups", 1) or 1)
    filters = int(cfg["filters"])
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float64)
    if cfg.get("use_bias", True):
        bias = np.asarray(weights[1], dtype=np.float64)
    else:
        bias = np.zeros(filters)

    spatial_in, c_in = _split_shape(input_shape, data_format)
    if padding == "same":
        pads = [
            _same_pad(n, k, s, d)
            for n, k, s, d in zip(spatial_in, kernel_size, strides, dilation, strict=True)
        ]
    elif padding == "valid":
        pads = [0] * rank
    elif padding == "causal":  # Conv1D only: every pad before the sequence
        pads = [(k - 1) * d for k, d in zip(kernel_size, dilation, strict=True)]
    else:
        raise ValueError(f"unsupported padding {padding!r}")
    spatial_out = tuple(
        _out_len(n, k, s, d, padding)
        for n, k, s, d in zip(spatial_in, kernel_size, strides, dilation, strict=True)
    )
    output_shape = _join_shape(spatial_out, filters, data_format)

    d_in = int(np.prod(input_shape))
    d_out = int(np.prod(output_shape))
    idx_in = np.arange(d_in).reshape(input_shape)
    idx_out = np.arange(d_out).reshape(output_shape)
    at = _pos_index(data_format)

    cin_g = c_in // groups
    cout_g = filters // groups
    W = np.zeros((d_in, d_out))
    M = np.zeros((d_in, d_out))
    b = np.zeros(d_out)
    for o in itertools.product(*[range(n) for n in spatial_out]):
        for co in range(filters):
            b[at(idx_out, o, co)] = bias[co]
        for k in itertools.product(*[range(n) for n in kernel_size]):
            p = tuple(o[a] * strides[a] + k[a] * dilation[a] - pads[a] for a in range(rank))
            if any(p[a] < 0 or p[a] >= spatial_in[a] for a in range(rank)):
                continue  # a padding position: not an input
            for co in range(filters):
                g = co // cout_g
                j = at(idx_out, o, co)
                for cig in range(cin_g):
                    i = at(idx_in, p, g * cin_g + cig)
                    W[i, j] += kernel[k + (cig, co)]
                    M[i, j] = 1.0
    return W, b, M, output_shape


# ---------------------------------------------------------------------------
# Max pooling by loops
# ---------------------------------------------------------------------------


def pool_windows(layer, input_shape):
    """Index windows of a keras MaxPooling1D/2D/3D over one flattened sample.

    Returns ``(windows, output_shape)``: ``windows[j]`` is the integer array of
    flat input indices pooled into flat output ``j`` (padding positions excluded).
    """
    cfg = layer.get_config()
    rank = len(tuple(cfg["pool_size"]))
    input_shape = tuple(int(e) for e in input_shape)
    if len(input_shape) == rank + 2:
        input_shape = input_shape[1:]
    pool = _as_tuple(cfg["pool_size"], rank)
    strides = cfg.get("strides")
    strides = pool if strides is None else _as_tuple(strides, rank)
    padding = cfg["padding"].lower()
    data_format = cfg.get("data_format") or "channels_last"
    spatial_in, channels = _split_shape(input_shape, data_format)
    if padding == "same":
        pads = [_same_pad(n, k, s) for n, k, s in zip(spatial_in, pool, strides, strict=True)]
    else:
        pads = [0] * rank
    spatial_out = tuple(
        _out_len(n, k, s, 1, padding) for n, k, s in zip(spatial_in, pool, strides, strict=True)
    )
    output_shape = _join_shape(spatial_out, channels, data_format)
    idx_in = np.arange(int(np.prod(input_shape))).reshape(input_shape)
    idx_out = np.arange(int(np.prod(output_shape))).reshape(output_shape)
    at = _pos_index(data_format)
    windows = [None] * idx_out.size
    for o in itertools.product(*[range(n) for n in spatial_out]):
        for c in range(channels):
            members = []
            for k in itertools.product(*[range(n) for n in pool]):
                p = tuple(o[a] * strides[a] + k[a] - pads[a] for a in range(rank))
                if any(p[a] < 0 or p[a] >= spatial_in[a] for a in range(rank)):
                    continue
                members.append(at(idx_in, p, c))
            windows[at(idx_out, o, c)] = np.asarray(members, dtype=np.int64)
    return windows, output_shape


def maxpool_forward(windows, x):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return np.array([x[w].max() for w in windows])


def maxpool_winner_backward(windows, x, R):
    """Winner-take-all: R_j goes entirely to the argmax of its window."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    R = np.asarray(R, dtype=np.float64).reshape(-1)
    out = np.zeros_like(x)
    for j, w in enumerate(windows):
        out[w[np.argmax(x[w])]] += R[j]
    return out


def maxpool_proportional_backward(windows, x, R):
    """Proportional: R_i = sum_j x_i / (sum_{i in window j} x_i) R_j (0 if the sum is 0)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    R = np.asarray(R, dtype=np.float64).reshape(-1)
    out = np.zeros_like(x)
    for j, w in enumerate(windows):
        out[w] += safe_div(x[w] * R[j], x[w].sum())
    return out


# ---------------------------------------------------------------------------
# Whole-model reference
# ---------------------------------------------------------------------------

_CONV = ("Conv1D", "Conv2D", "Conv3D")
_POOL = ("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D")


def _activation_name(act):
    if act is None:
        return "linear"
    if isinstance(act, str):
        return act
    if isinstance(act, dict):
        cfg = act.get("config")
        if isinstance(cfg, str):
            return cfg
        if isinstance(cfg, dict) and "name" in cfg:
            return cfg["name"]
        return str(act.get("class_name", "")).lower()
    raise ValueError(f"cannot read activation {act!r}")


def _normalize_domain(domain):
    if isinstance(domain, str):
        if domain not in ("real", "positive"):
            raise ValueError(f"unknown domain {domain!r}")
        return domain
    d = tuple(domain)
    if len(d) == 3 and d[0] == "box":
        return ("box", d[1], d[2])
    if len(d) == 2:
        return ("box", d[0], d[1])
    raise ValueError(f"unknown domain {domain!r}")


def model_plan(model, input_shape):
    """Turn a keras Sequential model into a list of numpy steps.

    ``input_shape`` is the per-sample input shape.  Each step is a dict with a
    ``kind`` in {"linear", "relu", "reshape", "identity", "maxpool", "softmax"}.
    """
    steps = []
    shape = tuple(int(e) for e in input_shape)
    n_linear = 0
    layers = [lyr for lyr in model.layers if type(lyr).__name__ != "InputLayer"]
    for pos, layer in enumerate(layers):
        cls = type(layer).__name__
        cfg = layer.get_config()
        last = pos == len(layers) - 1
        if cls == "Dense":
            if len(shape) != 1:
                raise ValueError("reference supports Dense on flat inputs only")
            weights = layer.get_weights()
            W = np.asarray(weights[0], dtype=np.float64)
            b = (
                np.asarray(weights[1], dtype=np.float64)
                if cfg.get("use_bias", True)
                else np.zeros(W.shape[1])
            )
            M = np.ones_like(W)
            out_shape = (W.shape[1],)
            steps.append(
                dict(
                    kind="linear",
                    layer=layer,
                    index=n_linear,
                    W=W,
                    b=b,
                    M=M,
                    in_shape=shape,
                    out_shape=out_shape,
                )
            )
            n_linear += 1
            act = _activation_name(cfg.get("activation"))
        elif cls in _CONV:
            W, b, M, out_shape = conv_as_matrix(layer, shape)
            steps.append(
                dict(
                    kind="linear",
                    layer=layer,
                    index=n_linear,
                    W=W,
                    b=b,
                    M=M,
                    in_shape=shape,
                    out_shape=tuple(out_shape),
                )
            )
            n_linear += 1
            act = _activation_name(cfg.get("activation"))
            out_shape = tuple(out_shape)
        elif cls == "TimeDistributed" and type(layer.layer).__name__ == "Dense":
            # the same Dense at every step: a block-diagonal matrix over (step, feature)
            weights = layer.layer.get_weights()
            w = np.asarray(weights[0], dtype=np.float64)
            bias = np.asarray(weights[1], dtype=np.float64) if len(weights) > 1 else np.zeros(
                w.shape[1])
            steps_, n_in, n_out = shape[0], w.shape[0], w.shape[1]
            W = np.zeros((steps_ * n_in, steps_ * n_out))
            M = np.zeros_like(W)
            for t in range(steps_):
                W[t * n_in:(t + 1) * n_in, t * n_out:(t + 1) * n_out] = w
                M[t * n_in:(t + 1) * n_in, t * n_out:(t + 1) * n_out] = 1.0
            out_shape = (steps_, n_out)
            steps.append(dict(kind="linear", layer=layer, index=n_linear, W=W,
                              b=np.tile(bias, steps_), M=M, in_shape=shape,
                              out_shape=out_shape))
            n_linear += 1
            act = _activation_name(layer.layer.get_config().get("activation"))
        elif cls in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
            steps_, channels = shape  # channels_last (time, channels)
            out_shape = (channels,)
            windows = [np.arange(steps_) * channels + c for c in range(channels)]
            if cls == "GlobalMaxPooling1D":
                steps.append(dict(kind="maxpool", layer=layer, windows=windows,
                                  in_shape=shape, out_shape=out_shape))
            else:  # the mean over time: a linear map with weights 1/steps, no bias
                W = np.zeros((steps_ * channels, channels))
                for c, w in enumerate(windows):
                    W[w, c] = 1.0 / steps_
                steps.append(dict(kind="linear", layer=layer, index=n_linear, W=W,
                                  b=np.zeros(channels), M=(W != 0).astype(float),
                                  in_shape=shape, out_shape=out_shape, keeps_domain=True))
                n_linear += 1
            act = "linear"
        elif cls == "ReLU":
            if (
                cfg.get("max_value") is not None
                or cfg.get("negative_slope", 0)
                or cfg.get("threshold", 0)
            ):
                raise ValueError("reference supports the plain ReLU only")
            act = "relu"
            out_shape = shape
        elif cls == "Activation":
            act = _activation_name(cfg.get("activation"))
            out_shape = shape
        elif cls == "Dropout":
            steps.append(dict(kind="identity", layer=layer, in_shape=shape, out_shape=shape))
            act = "linear"
            out_shape = shape
        elif cls == "Flatten":
            perm = None
            if (cfg.get("data_format") or "channels_last") == "channels_first" and len(shape) > 1:
                perm = tuple(range(1, len(shape))) + (0,)
            out_shape = (int(np.prod(shape)),)
            steps.append(
                dict(kind="reshape", layer=layer, in_shape=shape, out_shape=out_shape, perm=perm)
            )
            act = "linear"
        elif cls == "Reshape":
            target = [int(e) for e in cfg["target_shape"]]
            if -1 in target:
                known = int(np.prod([e for e in target if e != -1]))
                target[target.index(-1)] = int(np.prod(shape)) // known
            out_shape = tuple(target)
            steps.append(
                dict(kind="reshape", layer=layer, in_shape=shape, out_shape=out_shape, perm=None)
            )
            act = "linear"
        elif cls in _POOL:
            windows, out_shape = pool_windows(layer, shape)
            steps.append(
                dict(
                    kind="maxpool",
                    layer=layer,
                    windows=windows,
                    in_shape=shape,
                    out_shape=tuple(out_shape),
                )
            )
            act = "linear"
            out_shape = tuple(out_shape)
        else:
            raise ValueError(f"reference does not support layer {cls}")

        if act == "relu":
            steps.append(dict(kind="relu", layer=layer, in_shape=out_shape, out_shape=out_shape))
        elif act == "softmax":
            if not last:
                raise ValueError("softmax is only allowed on the last layer")
            steps.append(dict(kind="softmax", layer=layer, in_shape=out_shape, out_shape=out_shape))
        elif act != "linear":
            raise ValueError(f"reference does not support activation {act!r}")
        shape = out_shape
    return steps


def _step_forward(step, a):
    kind = step["kind"]
    if kind == "linear":
        return (step["W"].T @ a.reshape(-1) + step["b"]).reshape(step["out_shape"])
    if kind == "relu":
        return np.maximum(a, 0.0)
    if kind == "identity":
        return a
    if kind == "reshape":
        if step["perm"] is not None:
            a = np.transpose(a, step["perm"])
        return a.reshape(step["out_shape"])
    if kind == "maxpool":
        return maxpool_forward(step["windows"], a).reshape(step["out_shape"])
    if kind == "softmax":
        e = np.exp(a - a.max())
        return e / e.sum()
    raise AssertionError(kind)


def forward(model, x):
    """Numpy forward pass, sample by sample (float64).  Returns the model output."""
    x = np.asarray(x, dtype=np.float64)
    steps = model_plan(model, x.shape[1:])
    outs = []
    for n in range(x.shape[0]):
        a = x[n]
        for step in steps:
            a = _step_forward(step, a)
        outs.append(a)
    return np.stack(outs)


def _domains(steps, input_domain):
    """Domain of the input of each step."""
    dom = _normalize_domain(input_domain)
    result = []
    for step in steps:
        result.append(dom)
        kind = step["kind"]
        if kind == "linear" and not step.get("keeps_domain"):  # a mean keeps ℝ₊ and boxes
            dom = "real"
        elif kind == "relu":
            dom = "positive"
        # reshape / identity / maxpool / softmax keep the domain
    return result


def dtd_rule_for_layer(index, layer, domain):
    """DTD choice of rule from the input domain: real -> w2, positive -> z+, box -> zB."""
    if domain == "real":
        return ("w2",)
    if domain == "positive":
        return ("zplus",)
    if isinstance(domain, tuple) and domain[0] == "box":
        return ("zbox", domain[1], domain[2])
    raise ValueError(f"unknown domain {domain!r}")


def constant_rule(spec, input_spec=None, layer_specs=None):
    """Build a ``rule_for_layer`` that mimics ``LRP(rule, input_rule, layer_rules)``.

    ``layer_specs`` maps layer names to specs and wins; ``input_spec`` applies to
    the linear layer(s) with index 0 (the one reading the model input).
    """
    layer_specs = dict(layer_specs or {})

    def rule_for_layer(index, layer, domain):
        if layer.name in layer_specs:
            return layer_specs[layer.name]
        if index == 0 and input_spec is not None:
            return input_spec
        return spec

    return rule_for_layer


def reference_relevance(
    model,
    x,
    neuron=None,
    rule_for_layer=dtd_rule_for_layer,
    max_pool="winner",
    input_domain="real",
    condition=None,
    at=None,
):
    """Relevance of ``x`` (batch first) for a keras Sequential model, in float64.

    ``condition=(layer name, channel)``: the relevance reaching that layer's output keeps
    only that channel (last axis), zero elsewhere, before going further down (a CRP
    conditional heatmap, Achtibat et al. 2023, eq. for R(θ) with one concept).
    ``condition=(layer name, channel, axis)``: the channel on ``axis`` of the per-sample
    output (0 for a channels_first layer).

    ``at=layer name``: return the relevance reaching that layer's output (after the
    condition's mask, if it is the conditioned layer), ``[batch, *output shape]``,
    instead of the input relevance.

    The explained quantity is the pre-softmax output (logit) of ``neuron``
    (int, ``None`` for the argmax, or one entry per sample); relevance is
    propagated back layer by layer with the rule spec returned by
    ``rule_for_layer(index_of_linear_layer, layer, input_domain_of_layer)``.
    """
    if max_pool not in ("winner", "proportional"):
        raise ValueError(f"unknown max_pool mode {max_pool!r}")
    x = np.asarray(x, dtype=np.float64)
    steps = model_plan(model, x.shape[1:])
    domains = _domains(steps, input_domain)
    specs = [
        rule_for_layer(step["index"], step["layer"], dom) if step["kind"] == "linear" else None
        for step, dom in zip(steps, domains, strict=True)
    ]
    if neuron is None or np.ndim(neuron) == 0:
        neurons = [neuron] * x.shape[0]
    else:
        neurons = list(neuron)
        if len(neurons) != x.shape[0]:
            raise ValueError("one neuron per sample expected")

    result = np.zeros_like(x)
    found = []
    for n in range(x.shape[0]):
        acts = [x[n]]
        for step in steps:
            if step["kind"] == "softmax":
                break
            acts.append(_step_forward(step, acts[-1]))
        logits = acts[-1].reshape(-1)
        k = int(np.argmax(logits)) if neurons[n] is None else int(neurons[n])
        R = np.zeros_like(logits)
        R[k] = logits[k]
        R = R.reshape(acts[-1].shape)
        masked = False
        for pos in range(len(acts) - 2, -1, -1):
            step, a_in = steps[pos], acts[pos]
            if condition is not None and not masked and step["layer"].name == condition[0]:
                axis = condition[2] if len(condition) > 2 else -1
                keep = np.zeros(R.shape[axis])
                keep[condition[1]] = 1.0
                R, masked = np.moveaxis(np.moveaxis(R, axis, -1) * keep, -1, axis), True
            if at is not None and step["layer"].name == at:
                found.append(R.copy())
                break
            kind = step["kind"]
            if kind in ("relu", "identity"):
                pass
            elif kind == "reshape":
                if step["perm"] is not None:
                    mid = tuple(step["in_shape"][p] for p in step["perm"])
                    R = np.transpose(R.reshape(mid), np.argsort(step["perm"]))
                else:
                    R = R.reshape(step["in_shape"])
            elif kind == "maxpool":
                back = (
                    maxpool_winner_backward
                    if max_pool == "winner"
                    else maxpool_proportional_backward
                )
                R = back(step["windows"], a_in, R).reshape(step["in_shape"])
            elif kind == "linear":
                R = apply_rule(
                    specs[pos], step["W"], step["b"], a_in.reshape(-1), R.reshape(-1), step["M"]
                ).reshape(step["in_shape"])
            else:
                raise AssertionError(kind)
        if at is not None:
            if len(found) != n + 1:
                raise ValueError(f"no layer {at!r} on the way down")
            continue
        if condition is not None and not masked:
            raise ValueError(f"no layer {condition[0]!r} on the way down")
        result[n] = R
    return np.stack(found) if at is not None else result


def linear_layer_inputs(model, x):
    """Inputs of the linear (Dense/Conv) layers, in order: a list of (layer, batch array)."""
    x = np.asarray(x, dtype=np.float64)
    steps = model_plan(model, x.shape[1:])
    found = [(step["layer"], []) for step in steps if step["kind"] == "linear"]
    for n in range(x.shape[0]):
        a, k = x[n], 0
        for step in steps:
            if step["kind"] == "linear":
                found[k][1].append(a)
                k += 1
            a = _step_forward(step, a)
    return [(layer, np.stack(arrs)) for layer, arrs in found]


# ---------------------------------------------------------------------------
# Merging branches (issue 14): one output value from k same-shaped inputs
# ---------------------------------------------------------------------------


def merge_relevance(kind, xs, R, add="proportional"):
    """Relevance of each branch of an elementwise merge, from the formulas in the
    dtd_keras.layers.merge docstring (written from them, not from the code):

    - ``"add"``/``"average"``: ``R_k = c_k / Σ c · R`` with ``c_k = x_k`` (proportional)
      or ``x_k⁺`` (positive); where ``|Σ c| ≤ 1e-6 Σ |x|`` (or, positive, ``Σ c ≤ …``),
      ``|x_k| / Σ |x| · R``;
    - ``"subtract"``: the same on the terms ``a`` and ``−b``;
    - ``"maximum"``/``"minimum"``: all of ``R`` to the selected branch, the first of the
      tied ones.
    """
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    R = np.asarray(R, dtype=np.float64)
    if kind in ("maximum", "minimum"):
        stack = np.stack(xs)
        pick = np.argmax(stack, axis=0) if kind == "maximum" else np.argmin(stack, axis=0)
        return [np.where(pick == k, R, 0.0) for k in range(len(xs))]
    terms = [xs[0], -xs[1]] if kind == "subtract" else xs
    c = [np.maximum(t, 0.0) for t in terms] if add == "positive" else terms
    total, total_abs = sum(c), sum(np.abs(t) for t in terms)
    test = total if add == "positive" else np.abs(total)
    cancel = test <= 1e-6 * total_abs
    return [np.where(cancel, safe_div(np.abs(t) * R, total_abs), safe_div(ck * R, total))
            for t, ck in zip(terms, c)]


def moved_relevance(index_map, R, size):
    """Relevance through an op that only moves values: ``index_map`` holds, for every
    output value, the flat index of the input value it copies (the op applied to
    ``np.arange(size)``); each input gets the sum of its copies' relevance."""
    out = np.zeros(size)
    np.add.at(out, np.asarray(index_map).reshape(-1), np.asarray(R, np.float64).reshape(-1))
    return out
# --- keras-hub models (issue 14): rotary embedding and a BERT encoder, from the papers -------

def rotary_matrix(seq_len, dim, max_wavelength=10000.0):
    """RoFormer (Su et al. 2021, eq. 34, pairs (k, k + dim/2) as keras-hub and HF lay them
    out): the rotation of a [seq_len, dim] input flattened row-major, ``y = x @ M``.

    Position p, pair k < dim/2, θ_k = max_wavelength^(−2k/dim):
    y_k = x_k cos pθ_k − x_{k+dim/2} sin pθ_k;  y_{k+dim/2} = x_{k+dim/2} cos pθ_k + x_k sin pθ_k.
    """
    half = dim // 2
    M = np.zeros((seq_len * dim, seq_len * dim))
    for p in range(seq_len):
        for k in range(half):
            angle = p * max_wavelength ** (-2.0 * k / dim)
            a, b = p * dim + k, p * dim + k + half
            M[a, a], M[b, a] = math.cos(angle), -math.sin(angle)
            M[b, b], M[a, b] = math.cos(angle), math.sin(angle)
    return M


def _layer_norm(x, gamma, beta, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def bert_forward(w, heads, token_ids, segment_ids, padding_mask):
    """BERT (Devlin et al. 2019; Vaswani et al. 2017 attention) from Hugging Face
    parameter names ``w`` (Linear weights [out, in]); GELU in its tanh form (what
    keras-hub's converter uses). Returns ``(sequence_output, pooled_output)``."""
    w = {k: np.asarray(v, np.float64) for k, v in w.items()}
    n = token_ids.shape[1]

    def linear(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    x = (w["embeddings.word_embeddings.weight"][token_ids]
         + w["embeddings.position_embeddings.weight"][:n][None]
         + w["embeddings.token_type_embeddings.weight"][segment_ids])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    layers = len({k.split(".")[2] for k in w if k.startswith("encoder.layer.")})
    for i in range(layers):
        p = f"encoder.layer.{i}."
        q, k, v = (linear(x, p + "attention.self." + t) for t in ("query", "key", "value"))
        size = q.shape[-1] // heads
        split = [t.reshape(*t.shape[:2], heads, size).transpose(0, 2, 1, 3) for t in (q, k, v)]
        scores = split[0] @ split[1].transpose(0, 1, 3, 2) / math.sqrt(size)
        scores = np.where(padding_mask[:, None, None, :] > 0, scores, -1e9)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        a = scores / scores.sum(-1, keepdims=True)
        context = (a @ split[2]).transpose(0, 2, 1, 3).reshape(q.shape)
        x = _layer_norm(x + linear(context, p + "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"])
        h = linear(_gelu_tanh(linear(x, p + "intermediate.dense")), p + "output.dense")
        x = _layer_norm(x + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = np.tanh(linear(x[:, 0], "pooler.dense"))
    return x, pooled
# ---------------------------------------------------------------------------
# Attention (issue 14): AttnLRP (Achtibat et al., ICML 2024, section 3) and
# CP-LRP (Ali et al., ICML 2022), written from the papers' equations.
# ---------------------------------------------------------------------------


def stabilized(t, eps):
    """``t + eps * sign(t)`` with sign(0) = +1 (the LRP-epsilon stabiliser)."""
    t = np.asarray(t, dtype=np.float64)
    return t + eps * np.where(t >= 0, 1.0, -1.0)


def softmax_np(x, keep=None):
    """Softmax over the last axis; ``keep`` False entries get probability exactly 0."""
    x = np.asarray(x, dtype=np.float64)
    if keep is not None:
        x = np.where(keep, x, -np.inf)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attn_softmax(x, R, keep=None):
    """AttnLRP, Proposition 3.1: the softmax's first-order Taylor term at x, per output j,
    R_i = sum_j x_i (d s_j / d x_i) R_j / s_j = x_i (R_i - s_i sum_j R_j) (last axis).
    Masked inputs (keep False) take no part: relevance 0."""
    x, R = _f64(x, R)
    s = softmax_np(x, keep)
    # written out from the Jacobian d s_j / d x_i = s_j (delta_ij - s_i)
    jac = s[..., None, :] * (np.eye(x.shape[-1]) - s[..., :, None])  # [..., i, j]
    out = x * np.einsum("...ij,...j->...i", jac, safe_div(R, s))
    return out if keep is None else np.where(keep, out, 0.0)


def uniform_matmul(A, B, R, eps):
    """AttnLRP's uniform rule for z = A @ B (2-D): each factor gets half of every
    product's share, R_A[i,k] = 1/2 sum_j A_ik B_kj R_ij / s(z_ij), R_B[k,j] alike."""
    A, B, R = _f64(A, B, R)
    share = A[:, :, None] * B[None, :, :] * safe_div(R, stabilized(A @ B, eps))[:, None, :]
    return 0.5 * share.sum(axis=2), 0.5 * share.sum(axis=0)


def cp_matmul(A, B, R, eps):
    """CP-LRP for z = A @ B with A (attention) constant: R_B[k,j] = sum_i A_ik B_kj R_ij /
    s(z_ij) (LRP-epsilon on B), A gets nothing."""
    A, B, R = _f64(A, B, R)
    share = A[:, :, None] * B[None, :, :] * safe_div(R, stabilized(A @ B, eps))[:, None, :]
    return share.sum(axis=0)


def attention_relevance(Xq, Xkv, P, R_out, mode, eps, keep=None):
    """Relevance of one sample's query input Xq [T, d] and key/value input Xkv [S, d]
    through multi-head attention, from the relevance R_out [T, d] of its output.

    ``P``: Wq, Wk, Wv [d, N, H], bq, bk, bv [N, H], Wo [N, H, d], bo [d], scale.
    y_t = sum_n softmax(scale q_n k_n^T)_t v_n Wo_n + bo; projections get LRP-epsilon
    (bias in the denominator), the attention ``mode`` "attn_lrp" (uniform + softmax rule)
    or "cp_lrp" (attention constant). ``keep`` [T, S]: False masks a key for a query."""
    Xq, Xkv, R_out = _f64(Xq, Xkv, R_out)
    N = P["Wq"].shape[1]
    proj = {n: [(Xq if n == "q" else Xkv) @ P["W" + n][:, h] + P["b" + n][h] for h in range(N)]
            for n in "qkv"}
    o = [softmax_np(P["scale"] * proj["q"][h] @ proj["k"][h].T, keep) @ proj["v"][h]
         for h in range(N)]
    Wo = np.asarray(P["Wo"], np.float64).reshape(-1, Xq.shape[1])
    o_flat = np.stack(o, axis=1).reshape(Xq.shape[0], -1)
    R_o = np.stack([epsilon(Wo, P["bo"], o_flat[t], R_out[t], eps) for t in range(len(o_flat))])
    R_o = R_o.reshape(Xq.shape[0], N, -1)
    R_q, R_kv = np.zeros_like(Xq), np.zeros_like(Xkv)
    for h in range(N):
        q, k, v = proj["q"][h], proj["k"][h], proj["v"][h]
        A = softmax_np(P["scale"] * q @ k.T, keep)
        if mode == "cp_lrp":
            r_v, r_q, r_k = cp_matmul(A, v, R_o[:, h], eps), np.zeros_like(q), np.zeros_like(k)
        else:
            r_A, r_v = uniform_matmul(A, v, R_o[:, h], eps)
            r_scores = attn_softmax(P["scale"] * q @ k.T, r_A, keep)
            r_q, r_kT = uniform_matmul(P["scale"] * q, k.T, r_scores, eps)
            r_k = r_kT.T
        for r, name in ((r_q, "q"), (r_k, "k"), (r_v, "v")):
            X = Xq if name == "q" else Xkv
            back = np.stack([epsilon(P["W" + name][:, h], P["b" + name][h], X[t], r[t], eps)
                             for t in range(len(X))])
            if name == "q":
                R_q += back
            else:
                R_kv += back
    return R_q, R_kv
# LayerNorm / RMSNorm: AttnLRP's identity rule (Achtibat et al. 2024, section 3)
# ---------------------------------------------------------------------------


def frozen_norm(x, gamma, beta, axes, center, statistic, eps):
    """The normalisation of one sample as a linear map with its scale frozen.

    ``y = (x - mean(x)) * gamma / sigma + beta`` over ``axes`` (axes of the sample,
    no batch axis), ``sigma = sqrt(v + eps)`` held constant, where ``v`` is the variance
    (``statistic`` "variance" or "centred_variance") or the mean square ("mean_square");
    ``center=False`` drops the ``- mean(x)``. ``gamma``/``beta`` broadcast to the
    sample's shape (None: 1 / 0). Returns ``(W, b, y)`` over the flattened sample:
    ``W[i, j] = (delta_ij - [center] / n) * gamma_j / sigma_j`` for positions ``i, j``
    in the same normalisation group (``n`` positions), 0 across groups; ``y = W.T x + b``.
    """
    x = np.asarray(x, dtype=np.float64)
    axes = tuple(axes)
    mean = x.mean(axis=axes, keepdims=True)
    if statistic in ("variance", "centred_variance"):
        v = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    elif statistic == "mean_square":
        v = (x ** 2).mean(axis=axes, keepdims=True)
    else:
        raise ValueError(statistic)
    sigma = np.broadcast_to(np.sqrt(v + eps), x.shape).reshape(-1)
    g = np.broadcast_to(1.0 if gamma is None else np.asarray(gamma, np.float64),
                        x.shape).reshape(-1)
    b = np.broadcast_to(0.0 if beta is None else np.asarray(beta, np.float64),
                        x.shape).reshape(-1)
    kept = [d for d in range(x.ndim) if d not in axes]
    index = np.indices(x.shape).reshape(x.ndim, -1)
    group = [tuple(index[kept, i]) for i in range(x.size)]
    n = int(np.prod([x.shape[d] for d in axes]))
    W = np.zeros((x.size, x.size))
    for i in range(x.size):
        for j in range(x.size):
            if group[i] == group[j]:
                W[i, j] = ((i == j) - (1.0 / n if center else 0.0)) * g[j] / sigma[j]
    return W, b, W.T @ x.reshape(-1) + b


def norm_epsilon(x, R, gamma, beta, axes, center, statistic, eps, rule_eps):
    """Relevance of ``x`` (one sample) from the relevance ``R`` of the normalisation's
    output: the epsilon rule (``rule_eps``) on the frozen-scale linear map
    (:func:`frozen_norm`), the bias ``beta`` in the denominator."""
    W, b, _ = frozen_norm(x, gamma, beta, axes, center, statistic, eps)
    return epsilon(W, b, np.reshape(x, -1), np.reshape(R, -1), rule_eps).reshape(np.shape(x))
# Token models: embeddings summed, Dense+ReLU, masked mean over tokens, Dense
# ---------------------------------------------------------------------------


def token_model_lrp0(tables, ids, mask, W1, b1, W2, b2, neuron):
    """LRP-0 (ε = 0, bias in the denominator) through
    ``x_t = Σ_e E_e[ids_e,t]``, ``h_t = relu(W1ᵀ x_t + b1)``,
    ``p = Σ_t m_t h_t / Σ_t m_t``, ``y = W2ᵀ p + b2``; the relevance of logit ``neuron``
    of one sample. An embedding's share at token t is Σ_d E_e[ids_e,t]_d R_x[t]_d / x_t,d
    (the sum of its embedded values' shares, the Add split in proportion to each
    summand); returns one ``[seq]`` array per table."""
    parts = [np.asarray(E, np.float64)[np.asarray(i)] for E, i in zip(tables, ids)]
    x = np.sum(parts, axis=0)                            # [seq, dim]
    W1, b1, W2, b2 = _f64(W1, b1, W2, b2)
    m = np.asarray(mask, np.float64)
    h = np.maximum(x @ W1 + b1, 0.0)                     # [seq, hidden]
    weights = m / m.sum()                                # the mean's weights per token
    p = weights @ h
    y = p @ W2 + b2
    R_y = np.zeros_like(y)
    R_y[neuron] = y[neuron]
    R_p = epsilon(W2, b2, p, R_y, 0.0)
    R_h = weights[:, None] * h * safe_div(R_p, p)[None, :]  # z-rule through the mean
    R_x = np.stack([epsilon(W1, b1, x[t], R_h[t], 0.0) for t in range(len(x))])
    return [(part * safe_div(R_x, x)).sum(axis=-1) for part in parts]
