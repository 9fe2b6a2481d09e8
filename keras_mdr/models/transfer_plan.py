"""What a model that gained domains records about it, and the modules it adds to its graph.

`keras_mdr.transfer.add_domain` rebuilds a model from its config with the
extended `Domain` and a `transfer` plan, a plain dict saved with the model:

    {"method": "adapter" | "lora" | "head" | "finetune",
     "source_domains": S,          # domains [0, S) keep their parameters (frozen methods)
     "adapter": None | {"bottleneck": m, "activation": ..., "dropout": ...,
                        "after": [layer names], "before": [layer names]},
     "lora": None | {"rank": r, "alpha": a, "dropout": ..., "layers": [layer names], "merged": False},
     "vocabulary_sizes": None | {feature: [size per domain]}}   # ids first seen in new domains

`vocabulary_sizes` names the features whose vocabulary grew with ids first
seen in a new domain's data (appended, so every old id keeps its row); the
`Preprocessor` maps the ids beyond a domain's size to the out-of-vocabulary
row, so the source domains see exactly the inputs they saw before.

`MultiDomainModel` passes its finished core graph through `insert_modules`,
which adds a `DomainBottleneckAdapter` after each layer named in `after` and
in front of each layer named in `before`, and puts each layer named in
`layers` inside a `DomainLoRA`. Both are per-domain tables routed by domain
(each row pays for its own domain's adapter), created at zero update for
every domain, so the graph computes what it did until they train. The model's
own code never changes: the modules are inserted by layer name.
"""

import warnings

import keras

from keras_mdr.features.preprocessing import DOMAIN_ID

METHODS = ("adapter", "lora", "head", "finetune")
FROZEN_METHODS = ("adapter", "lora", "head")


def check_plan(plan, num_domains):
    """Checks a transfer plan (see the module docstring) and returns a normalised copy."""
    if not isinstance(plan, dict):
        raise ValueError(f"transfer must be a dict, got {plan!r}")
    unknown = sorted(set(plan) - {"method", "source_domains", "adapter", "lora", "vocabulary_sizes"})
    if unknown:
        raise ValueError(
            f"transfer: unknown keys {unknown}; allowed: adapter, lora, method, source_domains, vocabulary_sizes"
        )
    method = plan.get("method")
    if method not in METHODS:
        raise ValueError(f"transfer method must be one of {METHODS}, got {method!r}")
    source = plan.get("source_domains")
    if not isinstance(source, int) or isinstance(source, bool) or not 1 <= source <= num_domains:
        raise ValueError(f"transfer source_domains must be an integer in [1, {num_domains}], got {source!r}")
    return {
        "method": method,
        "source_domains": source,
        "adapter": None if plan.get("adapter") is None else dict(plan["adapter"]),
        "lora": None if plan.get("lora") is None else dict(plan["lora"]),
        "vocabulary_sizes": None if plan.get("vocabulary_sizes") is None else dict(plan["vocabulary_sizes"]),
    }


def insert_modules(inputs, logits, num_domains, plan):
    """Returns `logits` of the core graph with the plan's adapters and LoRA wrappers in it.

    Args:
        inputs: the core's inputs (`core_inputs(features)`).
        logits: the core's `[B, T]` logits, computed from `inputs`.
        num_domains: D.
        plan: a checked transfer plan.

    Raises:
        ValueError: a layer named by the plan is not in the graph, or is
            called more than once.
    """
    from keras_mdr.layers.adapters.domain_bottleneck_adapter import DomainBottleneckAdapter
    from keras_mdr.layers.adapters.domain_lora import DomainLoRA

    adapter, lora = plan["adapter"], plan["lora"]
    if adapter is None and lora is None:
        return logits
    adapter = adapter or {"after": [], "before": []}
    lora = lora or {"layers": []}
    adapter_args = {k: v for k, v in adapter.items() if k not in ("after", "before")}
    lora_args = {k: v for k, v in lora.items() if k != "layers"}
    domain_ids = inputs[DOMAIN_ID]
    named = set(adapter["after"]) | set(adapter["before"]) | set(lora["layers"])
    called = []

    def call(layer, *args, **kwargs):
        name = layer.name
        if name in named:
            if name in called:
                raise ValueError(f"transfer: layer '{name}' is called more than once; cannot insert modules at it")
            called.append(name)
        if name in adapter["before"]:
            adapted = DomainBottleneckAdapter(num_domains=num_domains, name=f"{name}_input_adapter", **adapter_args)
            args = (adapted(args[0], domain_ids),) + args[1:]
        if name in lora["layers"]:
            outputs = DomainLoRA(layer, num_domains=num_domains, name=f"{name}_lora", **lora_args)(
                args[0], domain_ids, **kwargs
            )
        else:
            outputs = layer(*args, **kwargs)
        if name in adapter["after"]:
            outputs = DomainBottleneckAdapter(num_domains=num_domains, name=f"{name}_adapter", **adapter_args)(
                outputs, domain_ids
            )
        return outputs

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        graph = keras.Model(inputs, logits)
        rewired = keras.models.clone_model(graph, input_tensors=inputs, clone_function=lambda l: l, call_function=call)
    missing = sorted(named - set(called))
    if missing:
        raise ValueError(f"transfer: the model has no layer named {missing} to put adapters or LoRA at")
    return rewired.output
