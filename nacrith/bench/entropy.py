"""The report's reference lines: an input's empirical byte entropies of
orders 0 to 2, what a model of the previous 0, 1 or 2 bytes would need."""

from __future__ import annotations

import numpy as np


def entropies(data: bytes) -> dict[str, float]:
    """Empirical order-0, -1 and -2 byte entropies in bits per byte: H(X_i | k previous bytes)."""
    arr = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    out = {}
    for order in range(3):
        if len(arr) <= order:
            out[f"H{order}"] = 0.0
            continue
        ctx = np.zeros(len(arr) - order, dtype=np.int64)
        for k in range(order):
            ctx = (ctx << 8) | arr[k : len(arr) - order + k]
        joint = (ctx << 8) | arr[order:]
        _, joint_counts = np.unique(joint, return_counts=True)
        _, ctx_counts = np.unique(ctx, return_counts=True)
        n = len(joint)
        h_joint = -np.sum(joint_counts * np.log2(joint_counts / n))
        h_ctx = -np.sum(ctx_counts * np.log2(ctx_counts / n)) if order else 0.0
        out[f"H{order}"] = float((h_joint - h_ctx) / len(arr))
    return out
