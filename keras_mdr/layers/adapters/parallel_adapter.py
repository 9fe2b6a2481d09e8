"""The parallel adapter: a bottleneck branch the host adds beside a sub-layer, once."""

from keras_mdr.api_export import km_export
from keras_mdr.layers.adapters.bottleneck_adapter import BottleneckAdapter


@km_export("keras_mdr.layers.ParallelAdapter")
class ParallelAdapter(BottleneckAdapter):
    """`Delta(x) = W_u Drop(act(W_d x + b_d)) + b_u`: the bottleneck branch alone, zero at init.

    The host adds it beside a sub-layer `s` that reads the same input, with
    one residual: `y = LN(x + s(x) + scale * Delta(x))` (the `parallel_*`
    sites of `TransformerBlock`, with its `parallel_scale`). `W_u` and `b_u`
    start at zero, so the host is unchanged at init.

    Differs from the Adapter4Rec reference code: its parallel adapter is a
    residual block (`x + Delta(x)`) added next to the host's own residual, so
    the input is added twice (`LN(2x + s(x) + Delta(x))`) and the host's
    outputs change the moment the adapter is inserted. Here the branch has no
    skip of its own.

    Args:
        bottleneck: m, the hidden width.
        activation: the bottleneck's activation.
        dropout: dropout rate on the bottleneck activations.
        kernel_initializer: initializer of the down-projection `W_d [d, m]`.

    Call arguments:
        inputs: `[..., d]`, the sub-layer's input.
        training: enables dropout.

    Returns:
        `[..., d]`, `Delta(x)`.

    Example:
    >>> branch = ParallelAdapter(bottleneck=4)
    >>> float(np.abs(branch(np.ones((2, 5, 16), "float32"))).max())   # zero at init
    0.0

    Reference: He et al., "Towards a Unified View of Parameter-Efficient
    Transfer Learning", ICLR 2022; Fu, Yuan et al., WSDM 2024.
    """

    def call(self, inputs, training=None):
        return self.delta(inputs, training=training)
