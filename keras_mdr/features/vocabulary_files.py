"""Large vocabularies as files beside a model's config, as Keras' `StringLookup` keeps an adapted one.

A vocabulary of more than `MAX_INLINE_SIZE` values stays out of a model's
config (the `config.json` of a `.keras` file, parsed whole at load): the
config gives only its size, under `vocabulary_files`, and the `.keras` file
holds the values as an asset, `assets/vocabulary_<feature index>.txt`, one
value per line (an empty line is the value `""`). A string vocabulary with a
value that contains a line break stays in the config.
"""

import dataclasses
import os

from keras_mdr import specs as specs_lib

MAX_INLINE_SIZE = 1000


def in_file(feature):
    """Whether `feature`'s vocabulary is saved as a file rather than in the config."""
    vocabulary = getattr(feature, "vocabulary", None)
    if isinstance(vocabulary, specs_lib.UnloadedVocabulary):
        return True
    if vocabulary is None or len(vocabulary) <= MAX_INLINE_SIZE:
        return False
    return feature.dtype == specs_lib.INT64 or not any("\n" in v for v in vocabulary)


def _path(dir_path, index):
    return os.path.join(dir_path, f"vocabulary_{index}.txt")


def save(features, dir_path):
    """Writes the vocabulary of each of `features` that `in_file` into `dir_path`."""
    for index, feature in enumerate(features):
        if in_file(feature):
            # newline="": written and read back byte for byte ("\r" stays a character of its value).
            with open(_path(dir_path, index), "w", encoding="utf-8", newline="") as f:
                f.write("\n".join(map(str, feature.vocabulary)))


def load(features, dir_path):
    """`features` with each `UnloadedVocabulary` replaced by the values `save` wrote into `dir_path`."""
    loaded = []
    for index, feature in enumerate(features):
        if isinstance(getattr(feature, "vocabulary", None), specs_lib.UnloadedVocabulary):
            path = _path(dir_path, index)
            if not os.path.exists(path):
                raise ValueError(f"Feature '{feature.name}': the saved model has no vocabulary file {path}")
            with open(path, encoding="utf-8", newline="") as f:
                values = f.read().split("\n")
            if len(values) != len(feature.vocabulary):
                raise ValueError(
                    f"Feature '{feature.name}': {path} holds {len(values)} values, "
                    f"the model's config says {len(feature.vocabulary)}"
                )
            feature = dataclasses.replace(feature, vocabulary=values)
        loaded.append(feature)
    return loaded
