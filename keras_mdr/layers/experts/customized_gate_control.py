"""One extraction level of PLE: task-specific and shared experts, gated per task."""

import keras
import numpy as np
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.layers.experts.expert_bank import ExpertBank
from keras_mdr.layers.experts.expert_gate import ExpertGate
from keras_mdr.layers.experts.expert_mixture import ExpertMixture
from keras_mdr.layers.core.validation import check_positive_int, check_rate, check_units


@km_export("keras_mdr.layers.CustomizedGateControl")
class CustomizedGateControl(keras.layers.Layer):
    """Customized Gate Control: one level of Progressive Layered Extraction.

    With T tasks, S specific experts per task and K shared experts
    (`E = T S + K` in all), task `t`'s specific experts `f_{t,s}` read task
    `t`'s input `x_t`, the shared experts `f_k` read the shared input `x_s`,
    and

        z_t = sum_j g_{t,j}(x_t) [f_{t,1..S} ; f_{1..K}]_j,
              g_t = softmax(W_{d,t} x_t)      (gate over S + K experts)
        z_s = sum_j g_{s,j}(x_s) [all E experts]_j,
              g_s = softmax(W_{d,s} x_s)      (only with `shared_output`)

    where `d` is the row's domain when `num_domains` is set (gates routed per
    (domain, task) through one grouped matmul, each row computing only its
    own gates) and the gates are per task otherwise. Stacking levels, each
    with the previous level's `[B, T + 1, H]` output as input, gives PLE; the
    last level omits the shared output.

    Args:
        num_tasks: T.
        num_specific_experts: S, experts per task.
        num_shared_experts: K.
        expert_units: widths of each expert's layers.
        num_domains: D for gates per (domain, task), or `None`.
        shared_output: also compute the shared gate's mixture of all experts
            (every level but the last).
        activation: activation of the experts' layers.
        dropout: dropout rate inside the experts.

    Call arguments:
        inputs: `[B, in]` (the same input for every expert, the first level)
            or `[B, T + 1, in]` (the T task inputs, then the shared input).
        domain_ids: `[B]` int, required when `num_domains` is set.
        training: enables dropout.

    Returns:
        `[B, T, H]` task outputs, or `[B, T + 1, H]` (the shared output last)
        with `shared_output`; `H = expert_units[-1]`.

    Reference: Tang et al., "Progressive Layered Extraction (PLE): A Novel
    Multi-Task Learning (MTL) Model for Personalized Recommendations",
    RecSys 2020.
    """

    def __init__(
        self,
        num_tasks,
        num_specific_experts=1,
        num_shared_experts=1,
        expert_units=(64,),
        num_domains=None,
        shared_output=False,
        activation="relu",
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_tasks = check_positive_int("num_tasks", num_tasks)
        self.num_specific_experts = check_positive_int("num_specific_experts", num_specific_experts)
        self.num_shared_experts = check_positive_int("num_shared_experts", num_shared_experts)
        self.expert_units = check_units("expert_units", expert_units)
        self.num_domains = None if num_domains is None else check_positive_int("num_domains", num_domains)
        self.shared_output = bool(shared_output)
        self.activation = activation
        self.dropout = check_rate("dropout", dropout)

        t, s, k = self.num_tasks, self.num_specific_experts, self.num_shared_experts
        # Expert e reads input slot source[e]: slot t for task t's experts, slot T for shared ones.
        self._expert_source = np.repeat(np.arange(t + 1), [s] * t + [k]).astype("int32")
        # Task t's gate mixes its own S experts and the K shared ones.
        shared = np.arange(t * s, t * s + k)
        self._task_experts = np.stack(
            [np.concatenate([np.arange(i * s, (i + 1) * s), shared]) for i in range(t)]
        ).astype("int32")

        self.experts = ExpertBank(t * s + k, self.expert_units, activation, self.dropout, name="experts")
        # Task gates run on the B * T (row, task) pairs, grouped by (domain, task) or by task.
        task_groups = t if self.num_domains is None else self.num_domains * t
        self.task_gates = ExpertGate(s + k, num_gates=1, num_domains=task_groups, name="task_gates")
        self.shared_gate = None
        if self.shared_output:
            self.shared_gate = ExpertGate(t * s + k, num_gates=1, num_domains=self.num_domains, name="shared_gate")
        self.mixture = ExpertMixture(name="mixture")

    def build(self, inputs_shape, domain_ids_shape=None):
        width = inputs_shape[-1]
        if len(inputs_shape) == 2:
            self.experts.build((None, width))
        else:
            self.experts.build((None, len(self._expert_source), width))
        self.task_gates.build((None, width), (None,))
        if self.shared_gate is not None:
            self.shared_gate.build((None, width), (None,))

    def call(self, inputs, domain_ids=None, training=None):
        if self.num_domains is not None and domain_ids is None:
            raise ValueError("CustomizedGateControl with num_domains needs domain_ids")
        t = self.num_tasks
        if len(inputs.shape) == 2:
            experts = self.experts(inputs, training=training)
            task_inputs = ops.repeat(ops.expand_dims(inputs, 1), t, axis=1)
            shared_input = inputs
        else:
            experts = self.experts(ops.take(inputs, self._expert_source, axis=1), training=training)
            task_inputs = inputs[:, :t]
            shared_input = inputs[:, t]
        width = inputs.shape[-1]

        groups = ops.arange(t, dtype="int32")
        if self.num_domains is not None:
            domain_ids = ops.cast(domain_ids, "int32")
            groups = ops.expand_dims(domain_ids, 1) * t + groups
        else:
            groups = ops.zeros_like(task_inputs[:, :, 0], dtype="int32") + groups
        task_gates = self.task_gates(ops.reshape(task_inputs, (-1, width)), ops.reshape(groups, (-1,)))
        task_gates = ops.reshape(task_gates, (-1, t, self._task_experts.shape[1]))
        outputs = self.mixture(task_gates, ops.take(experts, self._task_experts, axis=1))
        if self.shared_gate is not None:
            shared_gate = self.shared_gate(shared_input, domain_ids)
            outputs = ops.concatenate([outputs, self.mixture(shared_gate, experts)], axis=1)
        return outputs

    def compute_output_shape(self, inputs_shape, domain_ids_shape=None):
        return (inputs_shape[0], self.num_tasks + int(self.shared_output), self.expert_units[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_tasks=self.num_tasks,
            num_specific_experts=self.num_specific_experts,
            num_shared_experts=self.num_shared_experts,
            expert_units=self.expert_units,
            num_domains=self.num_domains,
            shared_output=self.shared_output,
            activation=self.activation,
            dropout=self.dropout,
        )
        return config
