"""M2M's meta learning mechanism: meta attention over experts and meta towers, weights generated per scenario."""

import keras
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.core.validation import check_non_negative_int, check_positive_int, check_units
from keras_mdr.layers.routing import grouped_dispatch


def routed_dense(x, plan, kernels, biases):
    """`x [N, M, in]` times the kernel of each row's group (`kernels [G, in, out]`), through the row tiles.

    Every one of a row's M vectors uses the row's group, so the `M` vectors
    of a tile's rows share its one kernel: one grouped matmul, no per-row
    kernel.
    """
    rows_per, width = x.shape[1], x.shape[2]
    tiles = grouped_dispatch.to_tiles(ops.reshape(x, (-1, rows_per * width)), plan)
    tiles = ops.reshape(tiles, (plan.num_tiles, plan.tile_size * rows_per, width))
    tiles = grouped_dispatch.grouped_matmul(tiles, kernels, plan, biases)
    tiles = ops.reshape(tiles, (plan.num_tiles, plan.tile_size, rows_per * kernels.shape[-1]))
    return ops.reshape(grouped_dispatch.from_tiles(tiles, plan), (-1, rows_per, kernels.shape[-1]))


@km_export("keras_mdr.layers.ScenarioMetaTowers")
class ScenarioMetaTowers(keras.layers.Layer):
    """M2M's meta attention and meta towers: per-task representations whose weights the scenario generates.

        S_d      = MLP_S(e_d)                                 scenario representation, [D, s]
        T_t      = MLP_T(u_t)                                 task representation, [T, h]
        Meta_d   : h_k = act(h_{k-1} W_k(S_d) + b_k(S_d)),    W_k(S) = reshape(S V_k + v_k), b_k(S) = S U_k + u_k
        a_{t,i}  = w . Meta^att_d([E_i ; T_t])                 meta attention over the E experts
        R_t      = sum_i softmax_i(a_{t,i}) E_i
        L_0 = R_t,  L_j = act(Meta^j_d(L_{j-1}) + L_{j-1})    meta towers (residual), j = 1..J

    The meta units' weights are generated from the scenario representations
    of the D domains once per call (D small matrices per layer) and every
    row is routed through its own domain's (a grouped matmul over the rows
    sorted by domain: no per-row weight matrix). The first attention layer
    splits as `E_i W[:h] + T_t W[h:]`: the task half is computed once for
    every (domain, task), the expert half per row. Attention runs over a
    row's own experts only. `e_d` and `u_t` are learned embeddings.

    Args:
        num_domains: D.
        num_tasks: T.
        scenario_units: widths of `MLP_S` (the last is s).
        attention_units: widths of the meta attention unit's layers (its
            output is scored by `w`).
        num_tower_layers: J, meta tower layers (each `h -> h`).
        domain_embedding_dim: width of `e_d`.
        task_embedding_dim: width of `u_t`.
        activation: the meta units' and MLPs' activation.
        tile_size: rows per tile of the routed matmuls.

    Call arguments:
        experts: `[B, E, h]`, the expert outputs `E_i`.
        domain_ids: `[B]` int.

    Returns:
        `[B, T, h]`: `L_J` per task.

    Example:
    >>> layer = ScenarioMetaTowers(num_domains=3, num_tasks=2, scenario_units=[4], attention_units=[6])
    >>> layer(np.ones((5, 4, 8)), np.array([0, 2, 1, 2, 0])).shape
    (5, 2, 8)

    Reference: Zhang et al., "Leaving No One Behind: A Multi-Scenario
    Multi-Task Meta Learning Approach for Advertiser Modeling", WSDM 2022.
    """

    def __init__(
        self,
        num_domains,
        num_tasks,
        scenario_units=(16,),
        attention_units=(32,),
        num_tower_layers=2,
        domain_embedding_dim=16,
        task_embedding_dim=16,
        activation="relu",
        tile_size=64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_domains = check_positive_int("num_domains", num_domains)
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.scenario_units = check_units("scenario_units", scenario_units)
        self.attention_units = check_units("attention_units", attention_units)
        self.num_tower_layers = check_non_negative_int("num_tower_layers", num_tower_layers)
        self.domain_embedding_dim = check_positive_int("domain_embedding_dim", domain_embedding_dim)
        self.task_embedding_dim = check_positive_int("task_embedding_dim", task_embedding_dim)
        self.activation = keras.activations.get(activation)
        self.tile_size = check_positive_int("tile_size", tile_size)
        self.scenario_mlp = [
            keras.layers.Dense(units, activation=self.activation, name=f"scenario_{i}")
            for i, units in enumerate(self.scenario_units)
        ]

    def _generator(self, name, width_in, width_out):
        """The weights that map a scenario representation to one meta layer's kernel and bias."""
        s = self.scenario_units[-1]
        return {
            "kernel_generator": self.add_weight(
                name=f"{name}_kernel_generator", shape=(s, width_in, width_out), initializer="glorot_uniform"
            ),
            "kernel_offset": self.add_weight(
                name=f"{name}_kernel_offset", shape=(width_in, width_out), initializer="glorot_uniform"
            ),
            "bias_generator": self.add_weight(
                name=f"{name}_bias_generator", shape=(s, width_out), initializer="zeros"
            ),
            "bias_offset": self.add_weight(name=f"{name}_bias_offset", shape=(width_out,), initializer="zeros"),
        }

    def build(self, experts_shape, domain_ids_shape=None):
        width = experts_shape[-1]
        self.expert_width = width
        self.domain_embeddings = self.add_weight(
            name="domain_embeddings", shape=(self.num_domains, self.domain_embedding_dim), initializer="uniform"
        )
        self.task_embeddings = self.add_weight(
            name="task_embeddings", shape=(self.num_tasks, self.task_embedding_dim), initializer="uniform"
        )
        shape = (None, self.domain_embedding_dim)
        for layer in self.scenario_mlp:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.task_mlp = keras.layers.Dense(width, activation=self.activation, name="task")
        self.task_mlp.build((None, self.task_embedding_dim))
        self.attention_generators = []
        width_in = 2 * width
        for i, units in enumerate(self.attention_units):
            self.attention_generators.append(self._generator(f"attention_{i}", width_in, units))
            width_in = units
        self.attention_vector = self.add_weight(
            name="attention_vector", shape=(width_in,), initializer="glorot_uniform"
        )
        self.tower_generators = [self._generator(f"tower_{j}", width, width) for j in range(self.num_tower_layers)]

    def scenario_representations(self):
        """`S [D, s]`: the scenario representation of every domain."""
        s = self.domain_embeddings
        for layer in self.scenario_mlp:
            s = layer(s)
        return s

    def task_representations(self):
        """`T [T, h]`: the task representation of every task."""
        return self.task_mlp(self.task_embeddings)

    @staticmethod
    def generate(generator, scenarios):
        """The D kernels `[D, in, out]` and biases `[D, out]` of one meta layer: `W(S_d) = S_d V + v`."""
        kernels = ops.einsum("ds,sio->dio", scenarios, generator["kernel_generator"]) + generator["kernel_offset"]
        biases = ops.matmul(scenarios, generator["bias_generator"]) + generator["bias_offset"]
        return kernels, biases

    def call(self, experts, domain_ids):
        domain_ids = ops.cast(domain_ids, "int32")
        num_experts, width = experts.shape[1], experts.shape[2]
        plan = grouped_dispatch.plan_groups(domain_ids, self.num_domains, self.tile_size)
        scenarios = self.scenario_representations()
        tasks = self.task_representations()

        # Meta attention, first layer: E_i W[:h] per row, T_t W[h:] once per (domain, task).
        kernels, biases = self.generate(self.attention_generators[0], scenarios)
        expert_part = routed_dense(experts, plan, kernels[:, :width], None)  # [B, E, a]
        task_part = ops.einsum("tj,djk->dtk", tasks, kernels[:, width:]) + ops.expand_dims(biases, 1)  # [D, T, a]
        task_part = ops.take(task_part, domain_ids, axis=0)  # [B, T, a]
        hidden = self.activation(ops.expand_dims(expert_part, 2) + ops.expand_dims(task_part, 1))  # [B, E, T, a]
        for generator in self.attention_generators[1:]:
            kernels, biases = self.generate(generator, scenarios)
            flat = ops.reshape(hidden, (-1, num_experts * self.num_tasks, hidden.shape[-1]))
            hidden = ops.reshape(
                self.activation(routed_dense(flat, plan, kernels, biases)),
                (-1, num_experts, self.num_tasks, kernels.shape[-1]),
            )
        scores = ops.einsum("beta,a->bte", hidden, self.attention_vector)  # [B, T, E]
        weights = ops.softmax(scores, axis=-1)
        towers = ops.einsum("bte,beh->bth", weights, experts)  # R_t

        for generator in self.tower_generators:
            kernels, biases = self.generate(generator, scenarios)
            towers = self.activation(self.activation(routed_dense(towers, plan, kernels, biases)) + towers)
        return towers

    def compute_output_shape(self, experts_shape, domain_ids_shape=None):
        return (experts_shape[0], self.num_tasks, experts_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_domains=self.num_domains,
            num_tasks=self.num_tasks,
            scenario_units=self.scenario_units,
            attention_units=self.attention_units,
            num_tower_layers=self.num_tower_layers,
            domain_embedding_dim=self.domain_embedding_dim,
            task_embedding_dim=self.task_embedding_dim,
            activation=keras.activations.serialize(self.activation),
            tile_size=self.tile_size,
        )
        return config
