"""Declarations of features, the domain column and tasks.

Specs are small frozen dataclasses. Each one serializes to a plain dict (the
same dict the CLI's YAML config uses), so a model's config, a config file and
a model card all describe inputs the same way. Statistics learned from data
(vocabularies, means, variances, domain values) live in the spec itself, which
makes a built model independent of the data it was adapted on.
"""

import dataclasses
import math

from keras_mdr.did_you_mean import did_you_mean

STRING = "string"
INT64 = "int64"
BINARY = "binary"


def _check_name(kind, name):
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} name must be a non-empty string, got {name!r}")


def _check_positive(owner, arg, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {arg} must be an integer >= 1, got {value!r}")


class UnloadedVocabulary:
    """The size of a vocabulary kept in a file beside a saved model's config, until the file is read.

    A model built by `from_config` from a saved config holds one per feature
    whose vocabulary was saved as an asset (see
    `keras_mdr.features.vocabulary_files`): the size is all its tables need,
    and `keras.saving.load_model` then reads the values. Its length and
    slices work; its values raise.
    """

    def __init__(self, size):
        self.size = int(size)

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        if isinstance(index, slice):
            return UnloadedVocabulary(len(range(self.size)[index]))
        raise self._not_loaded()

    def __iter__(self):
        raise self._not_loaded()

    def _not_loaded(self):
        return ValueError(
            f"This vocabulary of {self.size} values is in the assets of a saved model and was not read: "
            "load the model with keras.saving.load_model (from_config alone does not read assets)"
        )

    def __repr__(self):
        return f"UnloadedVocabulary({self.size})"


def _vocabulary_tuple(owner, vocabulary, dtype):
    if vocabulary is None or isinstance(vocabulary, UnloadedVocabulary):
        return vocabulary
    if isinstance(vocabulary, (str, bytes)):
        raise ValueError(f"{owner}: vocabulary must be a list of values, got a string")
    values = tuple(str(v) if dtype == STRING else int(v) for v in vocabulary)
    if len(set(values)) != len(values):
        raise ValueError(f"{owner}: vocabulary has duplicate values")
    return values


@dataclasses.dataclass(frozen=True)
class SparseFeature:
    """A categorical feature with one id per row, embedded in `embedding_dim`.

    Ids map to embedding rows through a vocabulary (row 0 is the
    out-of-vocabulary row) or through hashing into `num_hash_bins` rows. A
    vocabulary left as `None` is learned from training data by `adapt`.

    Args:
        name: column name; also the model's input name.
        vocabulary: known values, or `None` to learn them.
        num_hash_bins: hash ids into this many rows instead of a vocabulary.
        embedding_dim: width of the embedding.
        dtype: `"string"` or `"int64"`, the type a client sends.
        max_vocabulary_size: when learning, keep at most this many values.
        min_frequency: when learning, drop values seen fewer times.
    """

    name: str
    vocabulary: tuple = None
    num_hash_bins: int = None
    embedding_dim: int = 16
    dtype: str = STRING
    max_vocabulary_size: int = None
    min_frequency: int = 1

    kind = "categorical"

    def __post_init__(self):
        _check_name("Feature", self.name)
        owner = f"Feature '{self.name}'"
        if self.dtype not in (STRING, INT64):
            raise ValueError(f"{owner}: dtype must be 'string' or 'int64', got {self.dtype!r}")
        if self.vocabulary is not None and self.num_hash_bins is not None:
            raise ValueError(f"{owner}: give a vocabulary or num_hash_bins, not both")
        _check_positive(owner, "num_hash_bins", self.num_hash_bins, allow_none=True)
        _check_positive(owner, "embedding_dim", self.embedding_dim)
        _check_positive(owner, "max_vocabulary_size", self.max_vocabulary_size, allow_none=True)
        _check_positive(owner, "min_frequency", self.min_frequency)
        object.__setattr__(
            self, "vocabulary", _vocabulary_tuple(owner, self.vocabulary, self.dtype)
        )

    @property
    def is_adapted(self):
        return self.vocabulary is not None or self.num_hash_bins is not None

    @property
    def num_rows(self):
        """Rows of the embedding table (the OOV row included)."""
        if self.num_hash_bins is not None:
            return self.num_hash_bins
        return len(self.vocabulary) + 1

    def get_config(self):
        return _config(self, self.kind)


@dataclasses.dataclass(frozen=True)
class SequenceFeature:
    """A multi-valued string feature such as `genres = "Drama|Comedy"`.

    The raw value is one string per row; it is split on `separator`, truncated
    to `max_len` values, embedded and pooled (`"mean"` or `"sum"` over the
    values present). Row 0 of the table is padding, row 1 out-of-vocabulary.

    Args:
        name: column name; also the model's input name.
        separator: the string between values.
        max_len: values kept per row.
        pooling: `"mean"` or `"sum"`.
        vocabulary, num_hash_bins, embedding_dim, max_vocabulary_size,
        min_frequency: as for `SparseFeature`.
    """

    name: str
    separator: str = "|"
    max_len: int = 16
    pooling: str = "mean"
    vocabulary: tuple = None
    num_hash_bins: int = None
    embedding_dim: int = 16
    max_vocabulary_size: int = None
    min_frequency: int = 1

    kind = "multi_categorical"
    dtype = STRING

    def __post_init__(self):
        _check_name("Feature", self.name)
        owner = f"Feature '{self.name}'"
        if not isinstance(self.separator, str) or not self.separator:
            raise ValueError(f"{owner}: separator must be a non-empty string, got {self.separator!r}")
        if self.pooling not in ("mean", "sum"):
            raise ValueError(f"{owner}: pooling must be 'mean' or 'sum', got {self.pooling!r}")
        if self.vocabulary is not None and self.num_hash_bins is not None:
            raise ValueError(f"{owner}: give a vocabulary or num_hash_bins, not both")
        _check_positive(owner, "max_len", self.max_len)
        _check_positive(owner, "num_hash_bins", self.num_hash_bins, allow_none=True)
        _check_positive(owner, "embedding_dim", self.embedding_dim)
        _check_positive(owner, "max_vocabulary_size", self.max_vocabulary_size, allow_none=True)
        _check_positive(owner, "min_frequency", self.min_frequency)
        object.__setattr__(
            self, "vocabulary", _vocabulary_tuple(owner, self.vocabulary, STRING)
        )

    @property
    def is_adapted(self):
        return self.vocabulary is not None or self.num_hash_bins is not None

    @property
    def num_rows(self):
        """Rows of the embedding table (padding and OOV rows included)."""
        if self.num_hash_bins is not None:
            return self.num_hash_bins + 1
        return len(self.vocabulary) + 2

    def get_config(self):
        return _config(self, self.kind)


@dataclasses.dataclass(frozen=True)
class DenseFeature:
    """A numeric feature, standardised with a mean and variance learned by `adapt`.

    Args:
        name: column name; also the model's input name.
        normalize: standardise `(x - mean) / sqrt(variance)`.
        mean, variance: the statistics, or `None` to learn them.
    """

    name: str
    normalize: bool = True
    mean: float = None
    variance: float = None

    kind = "numeric"
    dtype = "float32"

    def __post_init__(self):
        _check_name("Feature", self.name)
        owner = f"Feature '{self.name}'"
        for arg in ("mean", "variance"):
            value = getattr(self, arg)
            if value is not None:
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(f"{owner}: {arg} must be finite, got {value}")
                object.__setattr__(self, arg, value)
        if (self.mean is None) != (self.variance is None):
            raise ValueError(f"{owner}: give both mean and variance, or neither")
        if self.variance is not None and self.variance < 0:
            raise ValueError(f"{owner}: variance must be >= 0, got {self.variance}")

    @property
    def is_adapted(self):
        return not self.normalize or self.mean is not None

    def get_config(self):
        return _config(self, self.kind)


FEATURE_TYPES = {cls.kind: cls for cls in (SparseFeature, SequenceFeature, DenseFeature)}


def _config(spec, kind):
    config = {"type": kind}
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        config[field.name] = list(value) if isinstance(value, tuple) else value
    return config


def feature_from_config(config):
    """Builds a feature spec from its dict form (`{"type": "categorical", ...}`)."""
    if isinstance(config, (SparseFeature, SequenceFeature, DenseFeature)):
        return config
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"A feature must be a dict with at least a 'name', got {config!r}")
    config = dict(config)
    kind = config.pop("type", "categorical")
    if kind not in FEATURE_TYPES:
        raise ValueError(
            f"Feature '{config['name']}': type must be one of {sorted(FEATURE_TYPES)}, got {kind!r}"
            f"{did_you_mean(str(kind), FEATURE_TYPES)}"
        )
    cls = FEATURE_TYPES[kind]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(
            f"Feature '{config['name']}' ({kind}): unknown keys {unknown}{did_you_mean(unknown, known)}; "
            f"allowed: {sorted(known)}"
        )
    return cls(**config)


@dataclasses.dataclass(frozen=True)
class Domain:
    """The column that says which domain (scenario) a row belongs to.

    Args:
        column: the column name; also the model's input name.
        values: the known domains, either a list of raw values (each its own
            domain, named by its string form) or a dict mapping a domain name
            to the list of raw values it groups, e.g.
            `{"young": [1, 18], "middle": [25], "senior": [35, 45, 50, 56]}`.
            `None` learns one domain per distinct value from training data.
        dtype: `"string"` or `"int64"`, inferred from the values when `None`.

    A value outside the known ones is an error, both when training and when
    serving: the exported model rejects the request with INVALID_ARGUMENT,
    because no domain-specific parameters exist for it.
    """

    column: str
    values: object = None
    dtype: str = None

    def __post_init__(self):
        _check_name("Domain column", self.column)
        if self.values is None:
            return
        if isinstance(self.values, dict):
            groups = {}
            for name, raw in self.values.items():
                raw = list(raw) if isinstance(raw, (list, tuple)) else [raw]
                if not raw:
                    raise ValueError(f"Domain '{name}' of column '{self.column}' has no values")
                groups[str(name)] = raw
        elif isinstance(self.values, (list, tuple)):
            groups = {str(v): [v] for v in self.values}
            if len(groups) != len(self.values):
                raise ValueError(f"Domain column '{self.column}': duplicate values {list(self.values)}")
        else:
            raise ValueError(
                f"Domain column '{self.column}': values must be a list or a dict, got {self.values!r}"
            )
        if not groups:
            raise ValueError(f"Domain column '{self.column}': values is empty")
        raw_values = [v for raw in groups.values() for v in raw]
        dtype = self.dtype or (STRING if any(isinstance(v, str) for v in raw_values) else INT64)
        if dtype not in (STRING, INT64):
            raise ValueError(f"Domain column '{self.column}': dtype must be 'string' or 'int64', got {dtype!r}")
        cast = str if dtype == STRING else int
        groups = {name: [cast(v) for v in raw] for name, raw in groups.items()}
        flat = [v for raw in groups.values() for v in raw]
        if len(set(flat)) != len(flat):
            raise ValueError(f"Domain column '{self.column}': a raw value belongs to two domains")
        object.__setattr__(self, "values", groups)
        object.__setattr__(self, "dtype", dtype)

    @property
    def is_adapted(self):
        return self.values is not None

    @property
    def names(self):
        """Domain names, in the order of their ids."""
        return list(self.values)

    @property
    def num_domains(self):
        return len(self.values)

    def value_to_id(self):
        """Maps every raw value to its domain id."""
        return {v: i for i, raw in enumerate(self.values.values()) for v in raw}

    def get_config(self):
        return {"column": self.column, "values": self.values, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        if isinstance(config, cls):
            return config
        if not isinstance(config, dict) or "column" not in config:
            raise ValueError(f"domain must be a dict with a 'column', got {config!r}")
        unknown = sorted(set(config) - {"column", "values", "dtype"})
        if unknown:
            raise ValueError(
                f"domain: unknown keys {unknown}{did_you_mean(unknown, ['column', 'dtype', 'values'])}; "
                "allowed: ['column', 'dtype', 'values']"
            )
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class Task:
    """A prediction target.

    Args:
        name: the task's name; also the model's output name.
        label: the label column (0/1); defaults to `name`.
        kind: only `"binary"` for now (probability of the positive class).
        mask: a column name, or another task's name (meaning that task's
            label column); the task's label counts only where it is 1, e.g.
            conversion only where click == 1 (ESMM-style CVR).
        weight: the weight of this task's loss in the total loss.
    """

    name: str
    label: str = None
    kind: str = BINARY
    mask: str = None
    weight: float = 1.0

    def __post_init__(self):
        _check_name("Task", self.name)
        if self.label is None:
            object.__setattr__(self, "label", self.name)
        if self.kind != BINARY:
            raise ValueError(f"Task '{self.name}': kind must be 'binary', got {self.kind!r}")
        if self.mask is not None and (not isinstance(self.mask, str) or not self.mask):
            raise ValueError(f"Task '{self.name}': mask must be a column name, got {self.mask!r}")
        weight = float(self.weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"Task '{self.name}': weight must be finite and >= 0, got {self.weight!r}")
        object.__setattr__(self, "weight", weight)

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        if isinstance(config, cls):
            return config
        if isinstance(config, str):
            return cls(config)
        if not isinstance(config, dict) or "name" not in config:
            raise ValueError(f"A task must be a dict with at least a 'name', got {config!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"Task '{config['name']}': unknown keys {unknown}{did_you_mean(unknown, known)}; "
                f"allowed: {sorted(known)}"
            )
        return cls(**config)


def normalize_specs(features, domain, tasks):
    """Turns spec dicts into spec objects and checks that names fit together."""
    if not features:
        raise ValueError("features must name at least one feature")
    features = [feature_from_config(f) for f in features]
    domain = Domain.from_config(domain if not isinstance(domain, str) else {"column": domain})
    if isinstance(tasks, (str, Task, dict)):
        tasks = [tasks]
    tasks = [Task.from_config(t) for t in tasks or []]
    if not tasks:
        raise ValueError("tasks must name at least one task")
    names = [f.name for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Feature names must be unique; repeated: {duplicates}")
    task_names = [t.name for t in tasks]
    duplicates = sorted({n for n in task_names if task_names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Task names must be unique; repeated: {duplicates}")
    labels = {t.name: t.label for t in tasks}
    tasks = [
        dataclasses.replace(t, mask=labels[t.mask]) if t.mask in labels and t.mask != t.name else t
        for t in tasks
    ]
    if domain.column in names:
        feature = features[names.index(domain.column)]
        if domain.dtype is not None and feature.dtype != domain.dtype:
            raise ValueError(
                f"Column '{domain.column}' is both a feature ({feature.dtype}) and the domain "
                f"({domain.dtype}); declare both with the same dtype"
            )
    return features, domain, tasks
