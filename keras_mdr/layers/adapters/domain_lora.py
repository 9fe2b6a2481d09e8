"""LoRA per domain on a shared layer's kernels: each row through its own domain's update."""

import keras
import numpy as np
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.adapters.lora_dense import low_rank_delta
from keras_mdr.layers.core.mlp_block import MLPBlock
from keras_mdr.layers.core.validation import check_positive_int, check_rate
from keras_mdr.layers.adapters.hyper_network import HyperNetwork
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.routing import grouped_dispatch

HOSTS = (keras.layers.Dense, MLPBlock, HyperNetwork, ExpertBank)


@km_export("keras_mdr.layers.DomainLoRA")
class DomainLoRA(keras.layers.Layer):
    """A shared layer whose every kernel gets a low-rank update per domain.

    For each kernel `W0 [in, out]` of the wrapped layer (`host`), a row of
    domain `d` computes with

        W_d = W0 + (alpha / r) A_d B_d,     A_d [in, r] (random), B_d [r, out] (zero at init)

    evaluated as `x W0 + (alpha / r) (x A_d) B_d` with the update routed by
    domain (`low_rank_delta`: one grouped matmul, each row paying for its own
    domain's factors only, never a per-row matrix). An `ExpertBank` host has
    a factor pair per (domain, expert). The host keeps its own kernels, frozen
    (as in `LoRADense`); a domain whose `B_d` is zero computes exactly what
    the host does. `keras_mdr.transfer.add_domain` keeps the source domains'
    factors frozen, so only a new domain's update acts.

    `merged=True` is the serving form: each domain's `W_d` is stored
    (`[D, in, out]`, `[D * E, in, out]` for experts) and every row does one
    grouped matmul with its own domain's kernel, so LoRA costs nothing extra
    at inference; `merged_weights()` gives the weights of that form.

    Args:
        host: the trained layer: a `keras.layers.Dense`, an `MLPBlock`, a
            `HyperNetwork` (its MLP and output layer) or an `ExpertBank`.
        rank: r.
        num_domains: D.
        alpha: the update's scale is `alpha / r`; `None` means `alpha = r`.
        dropout: dropout rate on the input of the low-rank path.
        a_initializer: initializer of the `A` factors.
        merged: store each domain's merged kernel instead of the factors.
        tile_size: rows per tile of the grouped matmuls.

    Call arguments:
        inputs: `[B, in]`, the host's input.
        domain_ids: `[B]` int.
        training: enables dropout (the host's and the update's).

    Returns:
        The host's output for the same input.

    Example:
    >>> dense = keras.layers.Dense(8)
    >>> x = np.ones((3, 16), "float32")
    >>> trained = dense(x)
    >>> lora = DomainLoRA(dense, rank=2, num_domains=3)
    >>> bool(np.allclose(lora(x, np.array([0, 2, 1])), trained))
    True

    Reference: Hu et al., "LoRA: Low-Rank Adaptation of Large Language
    Models", ICLR 2022; Fu, Yuan et al., "Exploring Adapter-based Transfer
    Learning for Recommender Systems", WSDM 2024.
    """

    def __init__(
        self,
        host,
        rank,
        num_domains,
        alpha=None,
        dropout=0.0,
        a_initializer="he_uniform",
        merged=False,
        tile_size=64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(host, HOSTS):
            raise ValueError(
                f"host must be one of {[c.__name__ for c in HOSTS]}, got {type(host).__name__}: {host!r}"
            )
        if isinstance(host, keras.layers.Dense) and (host.lora_enabled or host.quantization_mode):
            raise ValueError(f"host {host.name!r} must be a plain Dense (no Keras LoRA, not quantized)")
        self.rank = check_positive_int("rank", rank)
        self.num_domains = check_positive_int("num_domains", num_domains)
        if alpha is not None and not float(alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        self.alpha = float(rank if alpha is None else alpha)
        self.dropout = check_rate("dropout", dropout)
        self.a_initializer = keras.initializers.get(a_initializer)
        self.merged = bool(merged)
        self.tile_size = check_positive_int("tile_size", tile_size)
        self.host = host
        self.host.trainable = False
        self.dropout_layer = keras.layers.Dropout(self.dropout, name="dropout")

    @property
    def scale(self):
        """`alpha / r`."""
        return self.alpha / self.rank

    def _dense_layers(self):
        if isinstance(self.host, keras.layers.Dense):
            return [self.host]
        mlp = self.host.hidden if isinstance(self.host, HyperNetwork) else self.host
        layers = [] if mlp is None else [block[0] for block in mlp.blocks]
        if isinstance(self.host, HyperNetwork):
            layers.append(self.host.output_dense)
        return layers

    def _kernels(self):
        """`(W0, groups)` for every kernel: `W0 [in, out]` per domain, or `[E, in, out]` per (domain, expert)."""
        if isinstance(self.host, ExpertBank):
            return [(k, self.num_domains * self.host.num_experts) for k in self.host.kernels]
        return [(layer.kernel, self.num_domains) for layer in self._dense_layers()]

    def build(self, inputs_shape, domain_ids_shape=None):
        if len(inputs_shape) != 2:
            raise ValueError(f"DomainLoRA takes [B, in] inputs, got shape {tuple(inputs_shape)}")
        if not self.host.built:
            self.host.build(inputs_shape)
        self.factors, self.merged_kernels = [], []
        for i, (kernel, groups) in enumerate(self._kernels()):
            in_dim, out_dim = kernel.shape[-2:]
            if self.merged:
                self.merged_kernels.append(
                    self.add_weight(name=f"merged_kernel_{i}", shape=(groups, in_dim, out_dim), trainable=False)
                )
            else:
                a = self.add_weight(name=f"lora_a_{i}", shape=(groups, in_dim, self.rank), initializer=self.a_initializer)
                b = self.add_weight(name=f"lora_b_{i}", shape=(groups, self.rank, out_dim), initializer="zeros")
                self.factors.append((a, b))

    def _linear(self, i, x, group_ids, kernel, training):
        """`x W0 + s (x A_g) B_g` (or `x W_g` merged) for rows `x [N, in]` of groups `group_ids [N]`."""
        if self.merged:
            plan = grouped_dispatch.plan_groups(group_ids, self.merged_kernels[i].shape[0], self.tile_size)
            tiles = grouped_dispatch.grouped_matmul(grouped_dispatch.to_tiles(x, plan), self.merged_kernels[i], plan)
            return grouped_dispatch.from_tiles(tiles, plan)
        a, b = self.factors[i]
        update_input = self.dropout_layer(x, training=training)
        return ops.matmul(x, kernel) + low_rank_delta(update_input, a, b, self.scale, group_ids, self.tile_size)

    def _dense(self, i, layer, x, domain_ids, training):
        y = self._linear(i, x, domain_ids, layer.kernel, training)
        return y + layer.bias if layer.use_bias else y

    def _mlp(self, mlp, x, domain_ids, training, first=0):
        for i, block in enumerate(mlp.blocks):
            x = self._dense(first + i, block[0], x, domain_ids, training)
            for layer in block[1:]:
                x = layer(x, training=training)
        return x

    def _experts(self, x, domain_ids, training):
        bank = self.host
        experts = bank.num_experts
        # Pair (row b, expert e) is row b * E + e; its group is (domain d_b, expert e), d_b * E + e.
        groups = ops.reshape(ops.expand_dims(domain_ids, 1) * experts + ops.arange(experts, dtype="int32"), (-1,))
        for i, (kernel, bias) in enumerate(zip(bank.kernels, bank.biases)):
            if len(x.shape) == 2:
                shared_input, x = "bi", ops.repeat(ops.expand_dims(x, 1), experts, axis=1)
            else:
                shared_input = "bei"
            pairs = ops.reshape(x, (-1, x.shape[-1]))
            if self.merged:
                y = self._linear(i, pairs, groups, None, training)
            else:
                a, b = self.factors[i]
                shared = ops.einsum(f"{shared_input},eij->bej", x[:, 0] if shared_input == "bi" else x, kernel)
                update_input = self.dropout_layer(pairs, training=training)
                delta = low_rank_delta(update_input, a, b, self.scale, groups, self.tile_size)
                y = ops.reshape(shared, (-1, kernel.shape[-1])) + delta
            x = bank.activation(ops.reshape(y, (-1, experts, kernel.shape[-1])) + bias)
            if bank.dropout_layer is not None:
                x = bank.dropout_layer(x, training=training)
        return x

    def call(self, inputs, domain_ids, training=None):
        domain_ids = ops.cast(domain_ids, "int32")
        host = self.host
        if isinstance(host, ExpertBank):
            return self._experts(inputs, domain_ids, training)
        if isinstance(host, keras.layers.Dense):
            return host.activation(self._dense(0, host, inputs, domain_ids, training))
        if isinstance(host, MLPBlock):
            return self._mlp(host, inputs, domain_ids, training)
        x = inputs if host.hidden is None else self._mlp(host.hidden, inputs, domain_ids, training)
        x = self._dense(len(self._dense_layers()) - 1, host.output_dense, x, domain_ids, training)
        return ops.reshape(x, (-1, host.rank, host.rank))

    def merged_weights(self):
        """The weights of this layer's `merged=True` form: each domain's `W0 + s A_d B_d`, then the host's."""
        if self.merged:
            return self.get_weights()
        merged = []
        for (kernel, groups), (a, b) in zip(self._kernels(), self.factors):
            kernel = ops.convert_to_numpy(kernel)
            shared = np.tile(kernel, (self.num_domains, 1, 1)) if kernel.ndim == 3 else kernel[None]
            update = np.einsum("gir,gro->gio", ops.convert_to_numpy(a), ops.convert_to_numpy(b))
            merged.append(shared + self.scale * update)
        return merged + self.host.get_weights()

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return self.host.compute_output_shape(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            host=keras.saving.serialize_keras_object(self.host),
            rank=self.rank,
            num_domains=self.num_domains,
            alpha=self.alpha,
            dropout=self.dropout,
            a_initializer=keras.initializers.serialize(self.a_initializer),
            merged=self.merged,
            tile_size=self.tile_size,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["host"] = keras.saving.deserialize_keras_object(config["host"])
        return cls(**config)
