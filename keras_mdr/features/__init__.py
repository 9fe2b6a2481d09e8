"""Preprocessing from raw columns, and adapting specs to data."""

from keras_mdr.features.adapt import adapt
from keras_mdr.features.preprocessing import (
    DOMAIN_ID,
    CategoryIndex,
    DomainIndex,
    MultiCategoryIndex,
    Preprocessor,
    Standardize,
)
