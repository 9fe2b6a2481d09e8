"""Expert utilisation per domain: which routed experts each domain's rows go to.

For a model with a `ConditionalExperts` layer (CESAA), the table's entry
`(d, j)` is the share of domain d's rows whose K chosen experts include
expert j, with the routing used at inference (no gate noise, nothing
dropped). Each domain's expert columns therefore sum to K. A domain that
routes consistently to its own experts shows a few cells near 1; a domain
spread over all experts shows cells near K / N.
"""

import keras
import numpy as np

from keras_mdr.layers.experts.conditional_experts import ConditionalExperts
from keras_mdr.training import domain_tables


def expert_utilization(model, data, batch_size=None, layer_name=None):
    """Computes the share of each domain's rows routed to each expert.

    Args:
        model: a `MultiDomainModel` with a `ConditionalExperts` layer.
        data: raw data (see `MultiDomainModel.make_dataset`).
        batch_size: rows per batch.
        layer_name: which `ConditionalExperts` layer, when there are several.

    Returns:
        A DataFrame indexed by domain name with columns `expert_0 ...
        expert_{N-1}` (shares; each row sums to K, NaN for a domain absent
        from `data`) and `rows` (the domain's row count).
    """
    layer = domain_tables.find_layer(model, ConditionalExperts, layer_name)
    num_domains, num_experts = model.domain.num_domains, layer.num_experts
    counts, rows = np.zeros((num_domains, num_experts)), np.zeros(num_domains)
    # The tensors the layer was called on, computed from the core's inputs.
    for x, domains in domain_tables.probe_batches(model, data, list(layer.input), batch_size):
        expert_ids, _ = layer.route(x, domains)
        batch_counts, batch_rows = domain_tables.domain_shares(model, domains, expert_ids, num_experts)
        counts, rows = counts + batch_counts, rows + batch_rows
    with np.errstate(invalid="ignore", divide="ignore"):
        return domain_tables.domain_table(model, counts / rows[:, None], rows, "expert_")


def plot_expert_utilization(table, path, title="Expert utilisation per domain"):
    """Writes a domains x experts heat map of `expert_utilization`'s table as a PNG.

    matplotlib (a `dev` extra) is imported here only; no pyplot global state
    is touched, so this is safe inside training scripts and threads.
    """
    from matplotlib.figure import Figure

    shares = table.filter(like="expert_").to_numpy(dtype=float)
    num_domains, num_experts = shares.shape
    figure = Figure(figsize=(max(4.0, 0.5 * num_experts + 2.5), max(2.5, 0.45 * num_domains + 1.5)))
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(num_experts), [str(j) for j in range(num_experts)])
    axes.set_yticks(range(num_domains), list(table.index))
    axes.set_xlabel("expert")
    axes.set_ylabel("domain")
    axes.set_title(title)
    if shares.size <= 400:
        for (d, j), share in np.ndenumerate(shares):
            axes.text(j, d, f"{share:.2f}", ha="center", va="center", fontsize=7,
                      color="black" if share > 0.6 else "white")
    figure.colorbar(image, ax=axes, label="share of the domain's rows")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def report_expert_utilization(model, data, png_path=None, batch_size=None, layer_name=None, print_fn=print):
    """Computes `expert_utilization`, prints it and (with `png_path`) writes its heat map.

    Returns:
        The table (see `expert_utilization`).
    """
    table = expert_utilization(model, data, batch_size, layer_name)
    print_fn("Share of each domain's rows routed to each expert (rows sum to K):")
    print_fn(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if png_path is not None:
        plot_expert_utilization(table, png_path)
    return table


class ExpertUtilizationReport(keras.callbacks.Callback):
    """Prints the expert utilisation table (and writes its heat map) during `fit`.

    Args:
        data: raw data to route (e.g. a validation sample).
        png_path: heat-map path, may contain `{epoch}` (1-based); `None`
            prints only.
        every_epochs: report after every this many epochs.
        batch_size, layer_name, print_fn: as for `report_expert_utilization`.
    """

    def __init__(self, data, png_path=None, every_epochs=1, batch_size=None, layer_name=None, print_fn=print):
        super().__init__()
        if not isinstance(every_epochs, int) or every_epochs < 1:
            raise ValueError(f"every_epochs must be an integer >= 1, got {every_epochs!r}")
        self.data = data
        self.png_path = png_path
        self.every_epochs = every_epochs
        self.batch_size = batch_size
        self.layer_name = layer_name
        self.print_fn = print_fn
        self.table = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs:
            return
        path = None if self.png_path is None else self.png_path.format(epoch=epoch + 1)
        self.print_fn(f"Epoch {epoch + 1}:")
        self.table = report_expert_utilization(
            self.model, self.data, path, self.batch_size, self.layer_name, self.print_fn
        )
