"""Export to versioned SavedModels that stock TF Serving loads."""

from keras_mdr.export.examples import serialize_examples
from keras_mdr.export.model_card import MODEL_CARD, read_model_card
from keras_mdr.export.saved_model import (
    EXAMPLES_INPUT,
    EXAMPLES_SIGNATURE,
    SERVING_SIGNATURE,
    export_saved_model,
    list_versions,
    read_signature_defs,
)
from keras_mdr.export.warmup import WARMUP_BATCH_SIZES, read_warmup_requests
