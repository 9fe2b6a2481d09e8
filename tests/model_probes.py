"""Reads a zoo model's intermediate layer outputs for equivalence tests."""

import keras
import numpy as np

from keras_mdr.features.preprocessing import DOMAIN_ID


def layer_outputs(model, frame, names):
    """`(domain_ids [N], {name: output})` of the named layers on raw rows, at inference."""
    batch = next(iter(model.make_dataset(frame, batch_size=len(frame), labels=False)))
    probe = keras.Model(model.input, {n: model.get_layer(n).output for n in names})
    outputs = probe(batch, training=False)
    return np.asarray(batch[DOMAIN_ID]), {n: np.asarray(v) for n, v in outputs.items()}


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def expert(bank, e, x):
    """Expert `e` of an `ExpertBank` on `x [N, in]`, one layer at a time."""
    for kernel, bias in zip(bank.kernels, bank.biases):
        x = np.maximum(x @ kernel.numpy()[e] + bias.numpy()[e], 0.0)
    return x


def gate(gate_layer, x, groups):
    """An `ExpertGate`'s `[N, G, E]` weights, row by row with the row's group's kernel."""
    projection = gate_layer.projection
    kernel, bias = projection.kernel.numpy(), projection.bias.numpy()
    rows = []
    for i in range(len(x)):
        if kernel.ndim == 3:
            logits = x[i] @ kernel[groups[i]] + bias[groups[i]]
        else:
            logits = x[i] @ kernel + bias
        rows.append(softmax(logits.reshape(gate_layer.num_gates, gate_layer.num_experts)))
    return np.stack(rows)
