"""Adapting a pre-trained TransRec to a new catalogue with new users: adapters, fine-tuning or from scratch.

`transfer(model, target, method)` returns a new `TransRec` over the target's
catalogue; the pre-trained model is left untouched. For the adapter methods
everything pre-trained is frozen and only the adapters train (and, with
`train_layer_norms=True`, the LayerNorms), as in Adapter4Rec (Fu, Yuan et
al., WSDM 2024), at the paper's sites:

| method | what trains |
|---|---|
| `houlsby` | bottleneck adapters after attention and after the FFN of every block, both encoders |
| `pfeiffer` | a bottleneck adapter after the FFN of every block, both encoders |
| `parallel` | parallel adapters beside attention and beside the FFN of every block, both encoders |
| `lora` | LoRA on the query and value projections of every block, both encoders (trained kernels kept, frozen) |
| `compacter` | Compacter adapters at Houlsby's sites, both encoders, one PHM rule shared by all |
| `kadapter` | a K-Adapter beside each encoder's blocks (causal in the user encoder) |
| `soft_prompt` | prompt vectors in front of the text encoder's tokens (the user encoder stays frozen) |
| `finetune` | everything, starting from the pre-trained weights |
| `scratch` | everything, from a fresh initialisation (the tokenizer's vocabulary from the target) |

Every adapter but the soft prompt starts as the identity, so before
training the adapted model scores exactly as the pre-trained encoders do on
the target catalogue; prompts change the text encoder's attention from the
start (see `keras_mdr.layers.SoftPrompt`).
"""

import keras

from keras_mdr.data.sequences import SequenceData
from keras_mdr.layers.adapters.compacter_adapter import CompacterAdapter
from keras_mdr.layers.adapters.k_adapter import KAdapter
from keras_mdr.layers.adapters.parallel_adapter import ParallelAdapter
from keras_mdr.layers.adapters.phm_dense import PHMRule
from keras_mdr.layers.adapters.placement import add_houlsby_adapters, add_pfeiffer_adapters
from keras_mdr.layers.adapters.soft_prompt import SoftPrompt
from keras_mdr.transrec.build import rebuilt_with_catalogue
from keras_mdr.transrec.encoders import IdItemEncoder, TextItemEncoder
from keras_mdr.transrec.model import TransRec
from keras_mdr.transrec.tokenizers import make_tokenizer

BLOCK_METHODS = ("houlsby", "pfeiffer", "parallel", "lora", "compacter")
ADAPTER_METHODS = BLOCK_METHODS + ("kadapter", "soft_prompt")
METHODS = ADAPTER_METHODS + ("finetune", "scratch")


def _clone(layer, weights=True):
    """A new layer from `layer`'s config, built like it, with its weights (or freshly initialised)."""
    # Deserializing builds the layer (its serialized form holds the build config).
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if weights:
        clone.set_weights(layer.get_weights())
    return clone


class _Adapters:
    """Makes a method's adapters for one model; Compacter's rule is shared by every adapter it makes."""

    def __init__(self, method, bottleneck, lora_rank, phm_dim, num_prompts, train_layer_norms):
        self.method, self.bottleneck, self.lora_rank = method, bottleneck, lora_rank
        self.phm_dim, self.num_prompts = phm_dim, num_prompts
        self.frozen = dict(freeze_host=True, trainable_norms=train_layer_norms)
        self.rule = PHMRule(phm_dim, name="phm_rule") if method == "compacter" else None

    def block(self, block):
        method, m = self.method, self.bottleneck
        if method == "houlsby":
            return add_houlsby_adapters(block, m, **self.frozen)
        if method == "pfeiffer":
            return add_pfeiffer_adapters(block, m, **self.frozen)
        if method == "parallel":
            return block.with_adapters(
                parallel_attention_adapter=ParallelAdapter(m), parallel_ffn_adapter=ParallelAdapter(m), **self.frozen
            )
        if method == "lora":
            return block.with_adapters(lora_rank=self.lora_rank, lora_targets=("query", "value"), **self.frozen)
        if method == "compacter":
            make = lambda: CompacterAdapter(m, phm_dim=self.phm_dim, rule=self.rule)  # noqa: E731
            return add_houlsby_adapters(block, make_adapter=make, **self.frozen)
        return block.with_adapters(**self.frozen)  # frozen copy; the adapter sits beside the blocks

    def encoder(self, encoder, causal):
        adapters = {}
        if self.method == "kadapter":
            heads = encoder.num_heads if self.bottleneck % encoder.num_heads == 0 else 1
            adapters["k_adapter"] = KAdapter(self.bottleneck, heads, num_layers=encoder.num_blocks, causal=causal)
        if self.method == "soft_prompt" and isinstance(encoder, TextItemEncoder):
            adapters["soft_prompt"] = SoftPrompt(self.num_prompts, name="soft_prompt")
        blocks = [self.block(b) for b in encoder.blocks]
        return encoder.adapted(blocks, trainable_norms=self.frozen["trainable_norms"], **adapters)


def _scratch(model, target):
    user_encoder = _clone(model.user_encoder, weights=False)
    if not model.is_text:
        item_encoder = IdItemEncoder(target.num_items, model.item_encoder.output_dim)
        return rebuilt_with_catalogue(model, target, item_encoder, user_encoder, "scratch")
    old = model.tokenizer
    tokenizer = make_tokenizer(target.item_texts, old.kind, old.sequence_length, len(old.vocabulary))
    config = model.item_encoder.get_config()
    config.update(vocabulary_size=tokenizer.vocabulary_size, blocks=None, k_adapter=None, soft_prompt=None)
    config.update(freeze_host=False, trainable_norms=False, name=None)
    return rebuilt_with_catalogue(model, target, TextItemEncoder(**config), user_encoder, "scratch", tokenizer)


def transfer(
    model, target, method="houlsby", *, bottleneck=16, lora_rank=8, phm_dim=4, num_prompts=4, train_layer_norms=False
):
    """A new `TransRec` over `target`'s catalogue, adapted from the pre-trained `model` by `method`.

    Args:
        model: the pre-trained `TransRec` (left untouched).
        target: the target `SequenceData` (new items, new users).
        method: one of `METHODS` (see the module docstring).
        bottleneck: hidden width of the bottleneck, parallel, Compacter and
            K-Adapter adapters.
        lora_rank: rank of LoRA.
        phm_dim: n of Compacter's PHM layers.
        num_prompts: soft prompt vectors.
        train_layer_norms: with an adapter method, the LayerNorms train too.

    Returns:
        A built `TransRec` whose trainable weights are exactly the method's.
    """
    if not isinstance(model, TransRec):
        raise TypeError(f"transfer needs a TransRec, got {type(model).__name__}")
    if not isinstance(target, SequenceData):
        raise TypeError(f"the target must be a SequenceData, got {type(target).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "scratch":
        return _scratch(model, target)
    if not model.is_text:
        raise ValueError(
            f"method={method!r} needs a text item encoder: an id encoder has no vectors for the target's new "
            "items (use method='scratch')"
        )
    if not target.has_text:
        raise ValueError(f"the target {target.name} has no item texts")
    item_encoder, user_encoder = _clone(model.item_encoder), _clone(model.user_encoder)
    if method in ADAPTER_METHODS:
        adapters = _Adapters(method, bottleneck, lora_rank, phm_dim, num_prompts, train_layer_norms)
        item_encoder = adapters.encoder(item_encoder, causal=False)
        user_encoder = adapters.encoder(user_encoder, causal=True)
    return rebuilt_with_catalogue(model, target, item_encoder, user_encoder, method)


def trainable_report(model):
    """`{"trainable": n, "total": m, "share": n / m}`: parameter counts of `model` (a shared variable once)."""

    def count(weights):
        return sum(int(w.numpy().size) for w in {id(w): w for w in weights}.values())

    trainable, total = count(model.trainable_weights), count(model.weights)
    return {"trainable": trainable, "total": total, "share": trainable / max(total, 1)}
