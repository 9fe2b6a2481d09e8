"""Auxiliary losses on an expert router's probabilities (CESAA's Adaptive Expert Aggregation).

Both are plain functions of the routing probabilities `pi [B, N]` (each row a
distribution over the N selectable experts), so a layer adds them with
`add_loss` and any router can reuse them. They live beside the layers (not in
`keras_mdr.training`) because layers call them: dependencies point from
training to layers, never back.
"""

from keras import ops


def domain_expert_mutual_information(probabilities, domain_ids, num_domains, epsilon=1e-12):
    """`I(D; J)`: the mutual information between a row's domain and its expert choice.

    With the joint `P(d, j) = mean_i 1[d_i = d] pi_ij` and its marginals
    `P(d) = sum_j P(d, j)` (the share of rows of domain d) and
    `P(j) = sum_d P(d, j)` (the mean routing probability of expert j):

        I(D; J) = sum_{d, j} P(d, j) log(P(d, j) / (P(d) P(j))).

    Maximising it (adding `-w I` to the loss) asks for `I = H(J) - H(J | D)`
    to grow: experts used evenly over the batch (high `H(J)`) while each
    domain routes consistently to its own few experts (low `H(J | D)`).
    Terms with `P(d, j) = 0` (a domain absent from the batch) are 0, as
    `0 log 0 = 0`; `epsilon` only keeps the logarithms (and their gradients)
    finite there.

    Args:
        probabilities: `[B, N]` routing probabilities, rows summing to 1.
        domain_ids: `[B]` int in `[0, num_domains)`.
        num_domains: D.
        epsilon: added inside the logarithms.

    Returns:
        A scalar >= 0 (nats).
    """
    probabilities = ops.cast(probabilities, "float32")
    rows = ops.cast(ops.shape(probabilities)[0], "float32")
    domains = ops.one_hot(ops.cast(domain_ids, "int32"), num_domains, dtype="float32")
    joint = ops.einsum("bd,bn->dn", domains, probabilities) / rows
    p_domain = ops.sum(joint, axis=1, keepdims=True)
    p_expert = ops.sum(joint, axis=0, keepdims=True)
    log_ratio = ops.log(joint + epsilon) - ops.log(p_domain + epsilon) - ops.log(p_expert + epsilon)
    return ops.sum(joint * log_ratio)


def load_balancing_loss(probabilities, expert_ids, num_experts):
    """Switch-Transformer load balancing, `N sum_j f_j P_j`.

    `f_j` is the share of the `B * K` (row, chosen expert) assignments that
    went to expert j (not differentiable: it counts choices) and `P_j` the
    mean routing probability of expert j. The loss is 1 when both are
    uniform and grows as choices concentrate on few experts (Fedus et al.,
    2021, "Switch Transformers", eq. 4; counting all K choices rather than
    only the first, since all K experts run).

    Args:
        probabilities: `[B, N]` routing probabilities.
        expert_ids: `[B, K]` int, the chosen experts.
        num_experts: N.

    Returns:
        A scalar >= 0.
    """
    probabilities = ops.cast(probabilities, "float32")
    chosen = ops.one_hot(ops.reshape(ops.cast(expert_ids, "int32"), (-1,)), num_experts, dtype="float32")
    fraction = ops.mean(chosen, axis=0)
    return num_experts * ops.sum(fraction * ops.mean(probabilities, axis=0))
