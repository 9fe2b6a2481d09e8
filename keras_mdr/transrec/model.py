"""TransRec: an item encoder and a SASRec user encoder, trained on next-item prediction."""

import keras
import numpy as np
from keras import ops

from keras_mdr.api_export import km_export
from keras_mdr.data.sequences import SequenceData
from keras_mdr.models.multi_domain_model import _Untracked  # keeps the TF-only tokenizer out of the XLA core
from keras_mdr.transrec.encoders import IdItemEncoder, SASRecEncoder, TextItemEncoder
from keras_mdr.transrec.tokenizers import TitleTokenizer

LOSSES = ("bce", "sampled_softmax")
WINDOWS = ("last", "all")
DEFAULT_BATCH_SIZE = 64


def _deserialize(layer):
    return keras.saving.deserialize_keras_object(layer) if isinstance(layer, dict) else layer


@km_export("keras_mdr.transrec.TransRec")
class TransRec(keras.Model):
    """A sequential recommender: item vectors from an item encoder, a user vector from SASRec over them.

    For a window of items `i_0 .. i_T` (left-padded), with item vectors
    `e = ItemEncoder(i)` and user states `u = SASRec(e_0 .. e_{T-1})`, the
    score of item `j` after the first `t + 1` items is `<u_t, e_j>`. Training
    is next-item prediction at every position:

    - `loss="bce"` (Adapter4Rec's): `mean_t softplus(-<u_t, e_{i_{t+1}}>) +
      mean_{t,k} softplus(<u_t, e_{n_{t,k}}>)` over real positions, with
      `K = num_negatives` negatives per position sampled from the catalogue
      (never an item of the window);
    - `loss="sampled_softmax"`: softmax cross-entropy of each position's
      target against the batch's other targets (in-batch negatives, a
      candidate equal to the target item masked).

    The model's inputs are integer tensors only (see
    `keras_mdr.transrec.preprocessing`), so `compile(jit_compile=True)`
    compiles the whole train step. Tokenisation (`tokenizer`, TF-only) runs
    in the `tf.data` pipeline and in front of the core at export; it is held
    outside Keras' tracking.

    Args:
        item_encoder: `IdItemEncoder` or `TextItemEncoder`.
        user_encoder: `SASRecEncoder`.
        item_ids: the catalogue's item ids (`str [N]`), index `i + 1` each.
        item_texts: the items' texts (`str [N]`), for a text encoder.
        tokenizer: the `TitleTokenizer` of a text encoder.
        loss: `"bce"` or `"sampled_softmax"`.
        num_negatives: K, sampled negatives per position (`"bce"`).
        method: how the model was made, for reports (`"pretrain"`,
            `"houlsby"`, ... see `transrec.transfer`).
        windows: the training windows `fit` cuts from each history by
            default: `"last"` (the most recent `max_length + 1` training
            items, as Adapter4Rec) or `"all"` (see
            `SequenceData.training_windows`).

    Reference: Kang and McAuley, ICDM 2018 (SASRec); Fu, Yuan et al.,
    "Exploring Adapter-based Transfer Learning for Recommender Systems",
    WSDM 2024 (TransRec, Adapter4Rec).
    """

    def __init__(
        self,
        item_encoder,
        user_encoder,
        item_ids,
        item_texts=None,
        tokenizer=None,
        loss="bce",
        num_negatives=1,
        method="pretrain",
        windows="last",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.item_encoder = _deserialize(item_encoder)
        self.user_encoder = _deserialize(user_encoder)
        if not isinstance(self.user_encoder, SASRecEncoder):
            raise ValueError(f"user_encoder must be a SASRecEncoder, got {type(self.user_encoder).__name__}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not isinstance(num_negatives, int) or num_negatives < 1:
            raise ValueError(f"num_negatives must be an integer >= 1, got {num_negatives!r}")
        if windows not in WINDOWS:
            raise ValueError(f"windows must be one of {WINDOWS}, got {windows!r}")
        self.loss_name = loss
        self.num_negatives = num_negatives
        self.windows = windows
        self.method = method
        self.item_ids = np.asarray(item_ids, dtype=object).astype(str)
        self.item_texts = None if item_texts is None else np.asarray(item_texts, dtype=object).astype(str)
        tokenizer = _deserialize(tokenizer)
        self._tokenizer = _Untracked(tokenizer)
        if isinstance(self.item_encoder, TextItemEncoder):
            if self.item_texts is None or tokenizer is None:
                raise ValueError("a text item encoder needs item_texts and a tokenizer")
            if not isinstance(tokenizer, TitleTokenizer):
                raise ValueError(f"tokenizer must be a TitleTokenizer, got {type(tokenizer).__name__}")
            if tokenizer.vocabulary_size > self.item_encoder.vocabulary_size:
                raise ValueError(
                    f"the tokenizer has {tokenizer.vocabulary_size} tokens but the text encoder "
                    f"embeds {self.item_encoder.vocabulary_size}"
                )
        elif isinstance(self.item_encoder, IdItemEncoder):
            if self.item_encoder.num_items != len(self.item_ids):
                raise ValueError(
                    f"the id encoder has {self.item_encoder.num_items} items, the catalogue {len(self.item_ids)}"
                )
        else:
            raise ValueError(f"item_encoder must be IdItemEncoder or TextItemEncoder, got {type(self.item_encoder).__name__}")
        if self.num_items <= self.max_length + 1:
            raise ValueError(
                f"the catalogue has {self.num_items} items; negative sampling needs more than a window "
                f"(max_length + 1 = {self.max_length + 1})"
            )
        self._catalogue_tokens = None
        self._functions = _Untracked({})

    # Properties ---------------------------------------------------------------

    @property
    def tokenizer(self):
        return self._tokenizer.value

    @property
    def is_text(self):
        return isinstance(self.item_encoder, TextItemEncoder)

    @property
    def num_items(self):
        return len(self.item_ids)

    @property
    def max_length(self):
        return self.user_encoder.max_length

    @property
    def catalogue_tokens(self):
        """int32 `[N + 1, L]`: the tokenized catalogue (row 0, padding, all zeros); None for an id model."""
        if self.is_text and self._catalogue_tokens is None:
            tokens = self.tokenizer(self.item_texts).numpy()
            self._catalogue_tokens = np.concatenate([np.zeros((1, tokens.shape[1]), np.int32), tokens])
        return self._catalogue_tokens

    def cached_function(self, key, make):
        """`make()` (e.g. a compiled `tf.function`) made once per model and `key`, so evaluations reuse it."""
        functions = self._functions.value
        if key not in functions:
            functions[key] = make()
        return functions[key]

    def item_features(self, items):
        """What the item encoder reads for item indices (numpy): the indices, or their tokens."""
        return self.catalogue_tokens[items] if self.is_text else np.asarray(items, np.int32)

    def check_catalogue(self, data):
        """Raises unless `data` (a `SequenceData`) has this model's catalogue."""
        if not isinstance(data, SequenceData):
            raise TypeError(f"expected a SequenceData, got {type(data).__name__}")
        if len(data.item_ids) != self.num_items or not np.array_equal(data.item_ids, self.item_ids):
            raise ValueError(
                f"{data.name}'s catalogue ({data.num_items} items) is not this model's ({self.num_items} "
                "items); adapt the model to it with keras_mdr.transrec.transfer"
            )
        if self.is_text and not np.array_equal(data.item_texts, self.item_texts):
            raise ValueError(f"{data.name}'s item texts differ from the model's catalogue texts")

    # The numeric core -----------------------------------------------------------

    def encode_items(self, features, training=None):
        return self.item_encoder(features, training=training)

    def encode_users(self, history_vectors, history, training=None):
        """User states `[B, T, d]` for item vectors `[B, T, d]` of the history `[B, T]` (0 pads)."""
        return self.user_encoder(history_vectors, padding_mask=ops.greater(history, 0), training=training)

    def call(self, inputs, training=None):
        items = inputs["items"]
        if self.is_text:
            # Each distinct item of the batch is encoded once, then gathered where it occurs.
            unique_vectors = self.encode_items(inputs["unique_tokens"], training)
            item_vectors = ops.take(unique_vectors, inputs["item_slots"], axis=0)
            negative_vectors = ops.take(unique_vectors, inputs["negative_slots"], axis=0)
        else:
            item_vectors = self.encode_items(items, training)
            negative_vectors = self.encode_items(inputs["negatives"], training)
        users = self.encode_users(item_vectors[:, :-1], items[:, :-1], training)
        return {"users": users, "targets": item_vectors[:, 1:], "negatives": negative_vectors}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        items = ops.cast(x["items"], "int32")
        valid = ops.cast(ops.greater(items[:, :-1], 0), "float32")
        count = ops.maximum(ops.sum(valid), 1.0)
        users = ops.cast(y_pred["users"], "float32")
        targets = ops.cast(y_pred["targets"], "float32")
        if self.loss_name == "bce":
            positive = ops.sum(users * targets, axis=-1)
            negative = ops.einsum("btd,btkd->btk", users, ops.cast(y_pred["negatives"], "float32"))
            loss = ops.sum(ops.softplus(-positive) * valid) / count + ops.sum(
                ops.softplus(negative) * valid[..., None]
            ) / (count * self.num_negatives)
        else:
            loss = self._in_batch_softmax(users, targets, items[:, 1:], valid, count)
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), "float32")
        return loss

    @staticmethod
    def _in_batch_softmax(users, targets, target_items, valid, count):
        width = users.shape[-1]
        users = ops.reshape(users, (-1, width))
        candidates = ops.reshape(targets, (-1, width))
        ids = ops.reshape(target_items, (-1,))
        flat_valid = ops.reshape(valid, (-1,))
        logits = ops.matmul(users, ops.transpose(candidates))
        own = ops.eye(ops.shape(ids)[0], dtype="bool")
        # Another position with the same item is not a negative; padding is no candidate.
        excluded = ops.logical_or(
            ops.logical_and(ops.equal(ids[:, None], ids[None, :]), ops.logical_not(own)),
            ops.logical_not(ops.greater(flat_valid, 0.0))[None, :],
        )
        logits = ops.where(excluded, -1e9, logits)
        losses = ops.logsumexp(logits, axis=-1) - ops.diagonal(logits)
        return ops.sum(losses * flat_valid) / count

    # Data in -------------------------------------------------------------------

    def make_dataset(self, data, batch_size=DEFAULT_BATCH_SIZE, windows=None, shuffle=True, seed=None):
        """Training batches (a `tf.data.Dataset`) from a `SequenceData` with this model's catalogue.

        Args:
            data: the `SequenceData`.
            batch_size: windows per batch.
            windows: `"last"` (one window per user) or `"all"`, see
                `SequenceData.training_windows` (default: the model's).
            shuffle, seed: shuffle the windows every epoch.
        """
        from keras_mdr.transrec import preprocessing

        self.check_catalogue(data)
        windows = windows or self.windows
        if windows not in WINDOWS:
            raise ValueError(f"windows must be one of {WINDOWS}, got {windows!r}")
        return preprocessing.training_dataset(
            data.training_windows(self.max_length, windows),
            self.num_items,
            self.num_negatives,
            batch_size,
            catalogue_tokens=self.catalogue_tokens,
            shuffle=shuffle,
            seed=seed,
        )

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, windows=None, seed=None, callbacks=None, **kwargs):
        """`keras.Model.fit` on a `SequenceData` (or a dataset of `make_dataset` batches).

        `validation_data` (a `SequenceData`, usually the training data
        itself) is evaluated by full ranking on its validation targets after
        every epoch, logged as `val_hr@10` and `val_ndcg@10`.
        """
        from keras_mdr.transrec.evaluation import FullRankingCallback

        if y is not None:
            raise ValueError("TransRec learns from the sequences themselves; `y` is not used")
        if isinstance(x, SequenceData):
            x = self.make_dataset(x, batch_size or DEFAULT_BATCH_SIZE, windows=windows, seed=seed)
        callbacks = list(callbacks or [])
        if validation_data is not None:
            callbacks.insert(0, FullRankingCallback(validation_data, split="valid"))
        return super().fit(x, callbacks=callbacks, shuffle=False, **kwargs)

    # Saving --------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            # Objects, not configs, so that Keras shares a layer used by both encoders (Compacter's rule).
            "item_encoder": self.item_encoder,
            "user_encoder": self.user_encoder,
            "item_ids": self.item_ids.tolist(),
            "item_texts": None if self.item_texts is None else self.item_texts.tolist(),
            "tokenizer": self.tokenizer,
            "loss": self.loss_name,
            "num_negatives": self.num_negatives,
            "method": self.method,
            "windows": self.windows,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {"core": True}

    def build_from_config(self, config):
        self.build_core()

    def build_core(self):
        """Builds every weight by running the core once on a dummy batch."""
        window = np.zeros((1, self.max_length + 1), np.int32)
        window[0, -2:] = [1, 2]
        negatives = np.full((1, self.max_length, self.num_negatives), 3, np.int32)
        inputs = {"items": window, "negatives": negatives}
        if self.is_text:
            inputs["unique_tokens"] = self.item_features(np.arange(4, dtype=np.int32))
            inputs["item_slots"], inputs["negative_slots"] = window, negatives
        self(inputs)
        return self
