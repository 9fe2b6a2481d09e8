"""The base of every model in the zoo.

A `MultiDomainModel` is a functional `keras.Model` whose graph is the numeric
core only: its inputs are the `Preprocessor`'s outputs (embedding rows,
standardised numbers and the domain id), so `compile(jit_compile=True)` really
compiles the whole train step with XLA. `fit`, `evaluate` and `predict` also
take raw data (a DataFrame, a dict of columns, or a `tf.data.Dataset` of raw
columns) and run the model's `preprocessor` in the `tf.data` pipeline, as
keras-hub's tasks do. Export chains the preprocessor in front of the core.

Losses and metrics belong to the tasks: a masked, weighted binary
cross-entropy per task (plus any auxiliary losses the layers add), and
streaming AUC / logloss per task, per (domain, task) and pooled.
"""

import dataclasses
import functools
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_mdr import specs as specs_lib
from keras_mdr.api_export import km_export
from keras_mdr.data import columns as columns_lib
from keras_mdr.data import files as files_lib
from keras_mdr.data.pipeline_options import without_autotuning
from keras_mdr.features import vocabulary_files
from keras_mdr.features.preprocessing import DOMAIN_ID, Preprocessor
from keras_mdr.layers.embedding.feature_embedding import FeatureEmbedding, embedding_fields
from keras_mdr.mixed_precision import dtype_policy_scope, policy_name
from keras_mdr.models import transfer_plan
from keras_mdr.models.domain_freeze import DomainFreeze
from keras_mdr.training import distributed
from keras_mdr.training.metrics import TaskMetrics, binary_logloss
from keras_mdr.training.progress import with_progress_logger

LOSS_REDUCTIONS = ("pooled", "domain_task_mean")


def prepare_specs(features, domain, tasks):
    """Normalises specs and checks that every statistic has been learned."""
    features, domain, tasks = specs_lib.normalize_specs(features, domain, tasks)
    missing = [f.name for f in features if not f.is_adapted]
    if missing or not domain.is_adapted:
        what = missing + ([f"domain column '{domain.column}'"] if not domain.is_adapted else [])
        raise ValueError(
            f"These inputs still need statistics learned from data: {what}. "
            "Pass `data=` to `build_model` or call `keras_mdr.adapt` first."
        )
    return features, domain, tasks


def core_inputs(features):
    """`keras.Input`s of the numeric core, keyed like the `Preprocessor`'s outputs.

    The inputs are named `core:<feature>`, so a feature may share its name
    with any layer of the model (`embedding`, `towers`, ...); the raw inputs
    of an exported model keep the plain feature names.
    """
    inputs = {}
    for f in features:
        if f.kind == "numeric":
            shape, dtype = (), "float32"
        elif f.kind == "multi_categorical":
            shape, dtype = (f.max_len,), "int32"
        else:
            shape, dtype = (), "int32"
        inputs[f.name] = keras.Input(shape=shape, dtype=dtype, name=f"core:{f.name}")
    inputs[DOMAIN_ID] = keras.Input(shape=(), dtype="int32", name=f"core:{DOMAIN_ID}")
    return inputs


def embed_features(features, inputs, output_mode="concat", embedding_dim=None, name="embedding"):
    """Embeds the core inputs with a `FeatureEmbedding` named `name`."""
    sparse, dense = embedding_fields(features, embedding_dim)
    return FeatureEmbedding(sparse, dense, output_mode=output_mode, name=name)(inputs)


class _Untracked:
    """Holds an object where Keras' attribute tracking does not look."""

    def __init__(self, value):
        self.value = value


@km_export("keras_mdr.models.TaskProbabilities")
class TaskProbabilities(keras.layers.Layer):
    """Logits `[B, T]` to `{task: sigmoid(logit) [B]}`, float32 under any dtype policy.

    Args:
        tasks: the task names, in column order.
    """

    def __init__(self, tasks, **kwargs):
        # The loss and the metrics read these probabilities: float32 even in a mixed-precision model.
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.tasks = list(tasks)

    def call(self, logits):
        probabilities = ops.sigmoid(ops.cast(logits, "float32"))
        return {t: probabilities[:, i] for i, t in enumerate(self.tasks)}

    def compute_output_shape(self, logits_shape):
        return {t: (logits_shape[0],) for t in self.tasks}

    def get_config(self):
        config = super().get_config()
        config["tasks"] = self.tasks
        return config


def _under_dtype_policy(init):
    """`init` run with its model's `dtype_policy` as Keras' policy, so that the layers it creates take it."""

    @functools.wraps(init)
    def __init__(self, *args, dtype_policy=None, **kwargs):
        dtype_policy = policy_name(dtype_policy)
        with dtype_policy_scope(dtype_policy):
            init(self, *args, dtype_policy=dtype_policy, **kwargs)

    return __init__


@km_export("keras_mdr.models.MultiDomainModel")
class MultiDomainModel(keras.Model):
    """A multi-domain, multi-task model: raw data in, `{task: probability}` out.

    Subclasses build the numeric core from `core_inputs(features)` to logits
    `[B, T]` and call `super().__init__(features, domain, tasks,
    inputs=inputs, logits=logits, hyper_parameters={...})` with their own
    constructor arguments, which `get_config` then records.

    Args:
        features: adapted feature specs.
        domain: the adapted `Domain`.
        tasks: `Task` specs; output `t` is the probability of task `t`.
        inputs: the core's `keras.Input`s (`core_inputs(features)`).
        logits: `[B, T]` logits, one column per task in order.
        loss_reduction: `"pooled"` averages each task's loss over its labelled
            rows; `"domain_task_mean"` averages over the (domain, task)
            groups present in the batch, each group's rows first (groups
            absent from a batch are skipped, never divided by zero).
        batch_size: default batch size of `fit`, `evaluate` and `predict` on
            raw data.
        dtype_policy: `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"`
            (`None`: Keras' global policy when the model is built). Under a
            mixed policy the core's layers compute in 16 bits with float32
            variables; the preprocessing, the probabilities, the loss and the
            metrics stay float32, and `compile` wraps the optimizer of a
            `"mixed_float16"` model in a `keras.optimizers.LossScaleOptimizer`.
            A subclass's whole constructor runs under the policy.
        hyper_parameters: the subclass's constructor arguments beyond the
            specs, `{name: value}`; they are the rest of `get_config`.
        transfer: set by `keras_mdr.transfer.add_domain` on a model that
            gained domains: the method, the number of source domains and the
            adapters or LoRA wrappers added to the graph (see
            `keras_mdr.models.transfer_plan`). With a frozen method only the
            new domains' parameters train (see `DomainFreeze`).
    """

    def __init__(
        self,
        features,
        domain,
        tasks,
        *,
        inputs,
        logits,
        loss_reduction="pooled",
        batch_size=1024,
        dtype_policy=None,
        hyper_parameters=None,
        transfer=None,
        **kwargs,
    ):
        features, domain, tasks = prepare_specs(features, domain, tasks)
        if loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}, got {loss_reduction!r}")
        if transfer is not None:
            transfer = transfer_plan.check_plan(transfer, domain.num_domains)
            logits = transfer_plan.insert_modules(inputs, logits, domain.num_domains, transfer)
        outputs = TaskProbabilities([t.name for t in tasks], name="probabilities")(logits)
        with warnings.catch_warnings():
            # Inputs are named `core:<feature>` but keyed by feature name on purpose
            # (see `core_inputs`); Keras matches dict inputs by key.
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
            super().__init__(inputs=inputs, outputs=outputs, dtype=policy_name(dtype_policy), **kwargs)
        self.features = features
        self.domain = domain
        self.tasks = tasks
        self.loss_reduction = loss_reduction
        self.batch_size = int(batch_size)
        self._hyper_parameters = _Untracked(dict(hyper_parameters or {}))
        self._transfer = _Untracked(transfer)
        # Held outside Keras' layer tracking: the lookups are not XLA-compilable,
        # and a tracked sublayer would silently turn `jit_compile` off. A model whose
        # vocabularies are still in a saved model's assets gets it in `load_assets`.
        self._preprocessor = _Untracked(None if self._unloaded_vocabularies() else self._make_preprocessor())
        self.task_metrics = [TaskMetrics(t.name, domain.names) for t in tasks]
        freeze = None
        if transfer is not None and transfer["method"] in transfer_plan.FROZEN_METHODS:
            freeze = DomainFreeze(self, self._source_model(), transfer["source_domains"])
        self._domain_freeze = _Untracked(freeze)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _under_dtype_policy(cls.__init__)

    @property
    def hyper_parameters(self):
        """The model's hyper-parameters, `{name: value}` (a copy)."""
        return dict(self._hyper_parameters.value)

    @property
    def preprocessor(self):
        """The `Preprocessor` (a `keras.Model`) mapping raw columns to this core's inputs."""
        if self._preprocessor.value is None:
            raise ValueError(
                f"The vocabularies of {self._unloaded_vocabularies()} are in the assets of a saved model and "
                "were not read: load the model with keras.saving.load_model (from_config alone does not "
                "read assets)"
            )
        return self._preprocessor.value

    def _make_preprocessor(self):
        sizes = (self.transfer or {}).get("vocabulary_sizes")
        return Preprocessor(self.features, self.domain, vocabulary_sizes=sizes, name="preprocessor")

    def _unloaded_vocabularies(self):
        unloaded = specs_lib.UnloadedVocabulary
        return [f.name for f in self.features if isinstance(getattr(f, "vocabulary", None), unloaded)]

    @property
    def transfer(self):
        """The transfer plan of a model that gained domains (`keras_mdr.transfer.add_domain`), else `None`."""
        return self._transfer.value

    @classmethod
    def hyper_parameters_for_new_domains(cls, hyper_parameters, source_domains):
        """The hyper-parameters of this model after domains are added to its `source_domains` ones.

        A model whose computation for a domain depends on the domain count
        beyond its per-domain tables overrides this, so that adding a domain
        leaves the source domains' outputs unchanged (`M3oE`).
        """
        return dict(hyper_parameters)

    def _source_model(self):
        """This architecture built with the source domains only (its weights' shapes are read)."""
        config = self.spec_config()
        source = self.transfer["source_domains"]
        config["domain"] = dict(config["domain"], values=dict(list(self.domain.values.items())[:source]))
        # Vocabularies as the source domains see them: the ids first seen in a new domain are its rows.
        sizes = self.transfer.get("vocabulary_sizes") or {}
        config["features"] = [
            dataclasses.replace(f, vocabulary=f.vocabulary[: max(sizes[f.name][:source])]) if f.name in sizes else f
            for f in config["features"]
        ]
        config["transfer"] = dict(self.transfer, method="finetune", vocabulary_sizes=None)
        return type(self).from_config(config)

    def trainable_report(self, print_fn=print):
        """Prints and returns the trainable and total parameters, per top-level layer.

        A per-domain variable of a model that gained domains with a frozen
        method counts only its new domains' rows as trainable.

        Returns:
            `{"trainable": n, "total": n, "layers": {layer: (trainable, total)}}`.
        """
        freeze = self._domain_freeze.value
        trainable_ids = {id(v) for v in self.trainable_weights}
        layers = {}
        for layer in self.layers:
            trainable = total = 0
            for variable in layer.weights:
                size = int(np.prod(variable.shape))
                total += size
                if id(variable) in trainable_ids:
                    trainable += size - (freeze.frozen_size(variable) if freeze else 0)
            if total:
                layers[layer.name] = (trainable, total)
        trainable = sum(t for t, _ in layers.values())
        total = sum(n for _, n in layers.values())
        width = max(len(n) for n in layers)
        lines = [f"{'layer':<{width}} {'trainable':>12} {'total':>12}"]
        lines += [f"{name:<{width}} {t:>12,} {n:>12,}" for name, (t, n) in layers.items()]
        lines.append(f"{'all':<{width}} {trainable:>12,} {total:>12,}  ({trainable / total:.2%} trainable)")
        print_fn("\n".join(lines))
        return {"trainable": trainable, "total": total, "layers": layers}

    def serving_model(self):
        """The model to export: this one, or a copy with its LoRA updates merged into per-domain kernels.

        A merged `DomainLoRA` gives each domain its own kernel `W0 + s A_d B_d`
        (the source domains, whose update is zero, keep `W0`), so a served
        row still costs one matmul per layer.
        """
        lora = (self.transfer or {}).get("lora")
        if not lora or lora.get("merged"):
            return self
        config = self.spec_config()
        config["transfer"] = dict(self.transfer, method="finetune", lora=dict(lora, merged=True))
        merged = type(self).from_config(config)
        merged._preprocessor = self._preprocessor  # the same lookups, already built
        for source, target in zip(self.layers, merged.layers):
            if hasattr(source, "merged_weights"):
                target.set_weights(source.merged_weights())
            else:
                target.set_weights(source.get_weights())
        return merged

    # Losses and metrics -------------------------------------------------

    def _row_weights(self, labels, sample_weight):
        weights = ops.cast(labels >= 0, "float32")
        if sample_weight is not None:
            weights = weights * ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        return weights

    def _group_sums(self, values, x):
        """Per-row `values [B]` summed per loss group: `[1]` pooled, `[D]` per domain."""
        if self.loss_reduction == "pooled":
            return ops.sum(values, keepdims=True)
        domain_ids = ops.cast(x[DOMAIN_ID], "int32")
        return ops.segment_sum(values, domain_ids, num_segments=self.domain.num_domains)

    def loss_counts(self, x, y, sample_weight=None):
        """The denominators of the task losses: labelled (weighted) rows per task and loss group, `[T, G]`.

        A group is the whole batch (`G = 1`) with `loss_reduction="pooled"`,
        a domain (`G = D`) with `"domain_task_mean"`. They depend on labels,
        weights and domains only, so a data-parallel step can sum them over
        replicas before the forward pass (`keras_mdr.training.distributed`).
        """
        return ops.stack(
            [self._group_sums(self._row_weights(ops.cast(y[t.name], "float32"), sample_weight), x) for t in self.tasks]
        )

    def loss_sums(self, x, y, y_pred, sample_weight=None):
        """The numerators of the task losses: weighted logloss summed per task and loss group, `[T, G]`."""
        sums = []
        for task in self.tasks:
            labels = ops.cast(y[task.name], "float32")
            weights = self._row_weights(labels, sample_weight)
            losses = binary_logloss(ops.clip(labels, 0.0, 1.0), ops.cast(y_pred[task.name], "float32")) * weights
            sums.append(self._group_sums(losses, x))
        return ops.stack(sums)

    def task_loss(self, sums, counts):
        """The weighted task loss from `loss_sums` and `loss_counts` (see `loss_reduction`).

        Linear in `sums` for fixed `counts`: the losses of a split batch with
        the whole batch's counts add up to the whole batch's loss.
        """
        task_weights = ops.convert_to_tensor([[t.weight] for t in self.tasks], "float32")
        means = sums / ops.maximum(counts, 1e-12)
        if self.loss_reduction == "pooled":
            return ops.sum(task_weights * means)
        # Groups absent from the batch are skipped, never divided by zero.
        present = ops.cast(counts > 0, "float32")
        return ops.sum(task_weights * means * present) / ops.maximum(ops.sum(present), 1.0)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = self.task_loss(
            self.loss_sums(x, y, y_pred, sample_weight), self.loss_counts(x, y, sample_weight)
        )
        for loss in self.losses:
            total = total + ops.cast(ops.sum(loss), "float32")
        return total

    def update_task_metrics(self, x, y, y_pred):
        """Updates each task's streaming `TaskMetrics` with a batch."""
        for task, metric in zip(self.tasks, self.task_metrics):
            metric.update_state(y[task.name], y_pred[task.name], x[DOMAIN_ID])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        self.update_task_metrics(x, y, y_pred)
        return self.get_metrics_result()

    def get_metrics_result(self):
        results = super().get_metrics_result()
        tasks = [t.name for t in self.tasks]
        results["auc"] = ops.mean(ops.stack([results[f"{t}_auc"] for t in tasks]))
        results["logloss"] = ops.mean(ops.stack([results[f"{t}_logloss"] for t in tasks]))
        return results

    # Raw data in --------------------------------------------------------

    def make_dataset(self, data, batch_size=None, shuffle=False, seed=None, labels=True):
        """A batched, preprocessed `tf.data.Dataset` from raw data.

        Args:
            data: a pandas DataFrame or dict of columns (checked, with errors
                naming the column); files: a path, a glob or a list of them
                (CSV, Parquet or TFRecord, streamed by
                `keras_mdr.data.file_dataset`); or a `tf.data.Dataset` of raw
                column dicts (batched or not). A dataset whose elements
                already hold the core's inputs passes through unchanged.
            batch_size: rows per batch (default `self.batch_size`).
            shuffle: shuffle in-memory data each epoch; files: their order
                each epoch and the rows in a buffer.
            seed: shuffle seed.
            labels: also yield `{task: label}` (-1 where a task's mask is off).
        """
        batch_size = int(batch_size or self.batch_size)
        tasks = self.tasks if labels else ()
        if files_lib.is_file_source(data):
            data = files_lib.file_dataset(
                data, self.features, self.domain, tasks, batch_size=batch_size, shuffle=shuffle, seed=seed
            )
        if isinstance(data, tf.data.Dataset):
            return self._raw_dataset(data, batch_size, tasks)
        inputs, label_columns = columns_lib.prepare_columns(data, self.features, self.domain, tasks)
        dataset = tf.data.Dataset.from_tensor_slices((inputs, label_columns) if labels else inputs)
        if shuffle:
            dataset = dataset.shuffle(len(next(iter(inputs.values()))), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size)
        return self._preprocess(dataset, labels)

    def _preprocess(self, dataset, labels):
        if labels:
            dataset = dataset.map(lambda x, y: (self.preprocessor(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        else:
            dataset = dataset.map(self.preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
        return without_autotuning(dataset.prefetch(tf.data.AUTOTUNE))

    def _raw_dataset(self, dataset, batch_size, tasks):
        spec = dataset.element_spec
        columns = spec[0] if isinstance(spec, tuple) else spec
        if not isinstance(columns, dict):
            raise ValueError("A dataset for a keras_mdr model must yield dicts of columns")
        if DOMAIN_ID in columns:
            return dataset
        needed = self.preprocessor.input_signature()
        missing = [n for n in needed if n not in columns]
        if missing:
            raise ValueError(f"dataset: missing input columns {missing}")
        if columns[next(iter(needed))].shape.rank == 0:
            dataset = dataset.batch(batch_size)
        if isinstance(spec, tuple):
            return self._preprocess(dataset, labels=True)
        if not tasks:
            return self._preprocess(dataset.map(lambda x: {n: x[n] for n in needed}), labels=False)
        for task in tasks:
            for column in (task.label, task.mask):
                if column is not None and column not in columns:
                    raise ValueError(f"dataset: missing label column '{column}' (task '{task.name}')")

        def split(x):
            labels = {}
            for task in tasks:
                label = tf.cast(x[task.label], tf.float32)
                if task.mask is not None:
                    label = tf.where(tf.equal(tf.cast(x[task.mask], tf.float32), 1.0), label, -1.0)
                labels[task.name] = label
            return {n: x[n] for n in needed}, labels

        return self._preprocess(dataset.map(split), labels=True)

    def make_train_function(self, force=False):
        # Every `fit` starts here, outside the traced step.
        self.snapshot_source_domains()
        return super().make_train_function(force)

    def train_step(self, data):
        logs = super().train_step(data)
        self.keep_source_domains()
        return logs

    def snapshot_source_domains(self):
        """Before training: records what `keep_source_domains` writes back (see `DomainFreeze`); no-op otherwise."""
        if self._domain_freeze.value is not None:
            self._domain_freeze.value.snapshot()

    def keep_source_domains(self):
        """After a training step: writes the source domains' rows back (see `DomainFreeze`); no-op otherwise."""
        if self._domain_freeze.value is not None:
            self._domain_freeze.value.restore()

    def fit(self, x=None, y=None, batch_size=None, validation_data=None, shuffle=True, seed=None, **kwargs):
        """`keras.Model.fit` on raw data (see `make_dataset`); labels come from `x`'s columns.

        The progress bar shows the loss and each task's AUC, and a table per
        domain and task follows each epoch (`keras_mdr.training.ProgressLogger`);
        the logs and the `History` hold every metric.
        """
        if y is not None:
            raise ValueError("Pass labels as columns of `x`; `y` is not used by keras_mdr models")
        x = self.make_dataset(x, batch_size, shuffle=shuffle, seed=seed)
        if validation_data is not None:
            validation_data = self.make_dataset(validation_data, batch_size)
        kwargs["callbacks"] = with_progress_logger(kwargs.get("callbacks"))
        # Shuffling already happened in the pipeline; Keras cannot shuffle a dataset.
        return super().fit(x, validation_data=validation_data, shuffle=False, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """`keras.Model.evaluate` on raw data (see `make_dataset`)."""
        if y is not None:
            raise ValueError("Pass labels as columns of `x`; `y` is not used by keras_mdr models")
        kwargs["callbacks"] = with_progress_logger(kwargs.get("callbacks"))
        return super().evaluate(self.make_dataset(x, batch_size), **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """`{task: probability [N]}` for raw data (see `make_dataset`)."""
        kwargs.setdefault("verbose", 0)
        return super().predict(self.make_dataset(x, batch_size, labels=False), **kwargs)

    def evaluate_report(self, data, batch_size=None):
        """Evaluates and returns `{auc, logloss, tasks: {task: {auc, logloss, domains}}}`.

        `auc` and `logloss` at the top are the means over tasks; each task has
        its pooled values and, under `domains`, `{auc, logloss, count}` per
        domain (`None` where a domain lacks a class).

        A model trained on a `MultiWorkerMirroredStrategy`, whose Keras
        `evaluate` fails, is evaluated by keras_mdr's step loop
        (`keras_mdr.training.distributed.evaluate_distributed`): every worker
        must call this, as every worker trained, and each gets the report of
        the whole `data`.
        """
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            distributed.evaluate_distributed(self, self.distribute_strategy, data, batch_size)
        else:
            self.evaluate(data, batch_size=batch_size, verbose=0)
        tasks = {m.task: m.report() for m in self.task_metrics}
        aucs = [t["auc"] for t in tasks.values()]
        loglosses = [t["logloss"] for t in tasks.values()]
        return {
            "auc": None if None in aucs else float(np.mean(aucs)),
            "logloss": None if None in loglosses else float(np.mean(loglosses)),
            "tasks": tasks,
        }

    # Saving ---------------------------------------------------------------

    def spec_config(self):
        """`get_config` with the feature specs themselves, every vocabulary in them, to rebuild the model in memory."""
        return {
            "name": self.name,
            "trainable": self.trainable,
            "features": list(self.features),
            "domain": self.domain.get_config(),
            "tasks": [t.get_config() for t in self.tasks],
            "loss_reduction": self.loss_reduction,
            "batch_size": self.batch_size,
            "dtype_policy": self.dtype_policy.name,
            **self.hyper_parameters,
            **({} if self.transfer is None else {"transfer": self.transfer}),
        }

    def get_config(self):
        """The config saved with the model (`spec_config` in plain values).

        A vocabulary of more than `vocabulary_files.MAX_INLINE_SIZE` values is
        left out (`None`), its size under `vocabulary_files`; `save_assets`
        writes its values beside the config, as Keras' `StringLookup` saves
        an adapted vocabulary.
        """
        config = self.spec_config()
        files = {f.name: len(f.vocabulary) for f in self.features if vocabulary_files.in_file(f)}
        config["features"] = [
            dataclasses.replace(f, vocabulary=None).get_config() if f.name in files else f.get_config()
            for f in self.features
        ]
        if files:
            config["vocabulary_files"] = files
        return config

    @classmethod
    def from_config(cls, config):
        """The model of a `get_config`; vocabularies in files are `UnloadedVocabulary`s until `load_assets`."""
        config = dict(config)
        files = config.pop("vocabulary_files", None)
        if files:
            config["features"] = [
                dict(f, vocabulary=specs_lib.UnloadedVocabulary(files[f["name"]])) if f["name"] in files else f
                for f in config["features"]
            ]
        return cls(**config)

    def save_assets(self, dir_path):
        vocabulary_files.save(self.features, dir_path)

    def load_assets(self, dir_path):
        if self._unloaded_vocabularies():
            self.features = vocabulary_files.load(self.features, dir_path)
            self._preprocessor = _Untracked(self._make_preprocessor())
