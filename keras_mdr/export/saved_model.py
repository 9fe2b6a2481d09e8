"""Export a `MultiDomainModel` as a versioned SavedModel for TF Serving.

Layout written by `export_saved_model(model, base_dir)`:

    base_dir/
      <version>/                      # 1, 2, 3, ... (TF Serving's version dirs)
        saved_model.pb, variables/    # the SavedModel (TensorFlow ops only)
        assets.extra/tf_serving_warmup_requests
        model_card.json               # inputs, domains, tasks, hyper-parameters, metrics

Signatures:

- `serving_default`: one named input per raw column (`[None]`; `string` or
  `int64` ids, `float32` numbers, the domain column included), one named
  output per task (`float32 [None]`, the probability).
- `predict_examples`: input `examples`, serialized `tf.Example`s
  (`string [None]`, see `serialize_examples`); the same outputs.

Both run the model's `Preprocessor` (vocabulary lookups, standardisation,
domain check) followed by the numeric core, so clients send raw values. An
unknown domain value fails the request with INVALID_ARGUMENT naming the
column; unknown categorical values use the out-of-vocabulary row.

Atomicity: the version is written to a hidden sibling `.tmp-export-*` (not
an integer name, so TF Serving's version poller ignores it), loaded back and
checked against the Keras model, then renamed to `<version>` in one
`rename(2)`. A failed export removes its temporary directory and leaves other
versions untouched; a crashed process may leave a `.tmp-export-*` directory
behind, which TF Serving ignores and which is safe to delete.
"""

import os
import shutil
import uuid

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from keras_mdr.export import model_card as model_card_lib
from keras_mdr.export import warmup as warmup_lib
from keras_mdr.data.examples import parse_spec, serialize_columns

SERVING_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "predict_examples"
EXAMPLES_INPUT = "examples"
TEMP_PREFIX = ".tmp-export-"
# Export check: the SavedModel against the Keras model on the warmup rows.
VERIFY_TOLERANCE = 1e-4


def list_versions(base_dir):
    """The integer version directories under `base_dir`, sorted ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if name.isdigit() and os.path.isdir(os.path.join(base_dir, name))
    )


def read_signature_defs(version_dir):
    """`{signature name: SignatureDef proto}` of a SavedModel, read from `saved_model.pb`.

    TensorFlow's internal signatures (`__saved_model_init_op`) are left out.
    """
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    signatures = saved_model.meta_graphs[0].signature_def
    return {name: sig for name, sig in signatures.items() if not name.startswith("__")}


def _summary(signature_defs):
    def dtypes(tensors):
        return {name: tf.dtypes.as_dtype(info.dtype).name for name, info in sorted(tensors.items())}

    return {
        name: {"inputs": dtypes(sig.inputs), "outputs": dtypes(sig.outputs)}
        for name, sig in sorted(signature_defs.items())
    }


def _resolve_version(base_dir, version):
    existing = list_versions(base_dir)
    if version is None:
        return existing[-1] + 1 if existing else 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"version must be an integer >= 1, got {version!r}")
    if int(version) in existing:
        raise FileExistsError(
            f"Version {version} already exists under {base_dir}; versions are immutable, "
            "export to a new version (version=None picks the next one)"
        )
    return int(version)


def _check_model(model):
    missing = [a for a in ("preprocessor", "features", "domain", "tasks") if not hasattr(model, a)]
    if missing or not isinstance(model, keras.Model):
        raise TypeError(
            f"export_saved_model needs a keras_mdr MultiDomainModel (from keras_mdr.build_model), "
            f"got {type(model).__name__}"
        )


def _write_saved_model(model, path, jit_compile):
    preprocessor = model.preprocessor
    archive = keras.export.ExportArchive()
    archive.track(model)
    # The lookup tables live in the preprocessor's layers. Track those, not the
    # Preprocessor model itself: Keras would trace its default save signature
    # with float inputs, which string lookups reject.
    for layer in preprocessor.layers:
        archive.track(layer)
    # Only the numeric core goes under XLA: string lookups cannot compile.
    core = tf.function(
        lambda inputs: model(inputs, training=False), jit_compile=jit_compile, autograph=False
    )
    input_signature = preprocessor.input_signature()
    features = parse_spec(input_signature)

    def serve(inputs):
        return core(preprocessor(inputs))

    def serve_examples(examples):
        return core(preprocessor(tf.io.parse_example(examples, features)))

    archive.add_endpoint(SERVING_SIGNATURE, serve, input_signature=[input_signature])
    archive.add_endpoint(
        EXAMPLES_SIGNATURE,
        serve_examples,
        input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)],
    )
    archive.write_out(path, verbose=False)


def _keras_predictions(model, columns):
    """The Keras model's outputs for the typed columns (also builds the preprocessor's layers)."""
    outputs = model(model.preprocessor({k: tf.constant(v) for k, v in columns.items()}), training=False)
    return {task: values.numpy() for task, values in outputs.items()}


def _verify(model, path, columns, expected):
    """Loads the SavedModel back and checks both signatures against the Keras outputs."""
    loaded = tf.saved_model.load(path)
    raw = loaded.signatures[SERVING_SIGNATURE](**{k: tf.constant(v) for k, v in columns.items()})
    examples = loaded.signatures[EXAMPLES_SIGNATURE](
        **{EXAMPLES_INPUT: tf.constant(serialize_columns(columns))}
    )
    for signature, outputs in ((SERVING_SIGNATURE, raw), (EXAMPLES_SIGNATURE, examples)):
        if set(outputs) != set(expected):
            raise RuntimeError(f"Export check: signature {signature} returns {sorted(outputs)}, expected the tasks")
        for task, values in expected.items():
            error = float(np.max(np.abs(outputs[task].numpy() - values)))
            if not error <= VERIFY_TOLERANCE:
                raise RuntimeError(
                    f"Export check: signature {signature}, task {task}: the SavedModel differs "
                    f"from the Keras model by {error:.3g} (> {VERIFY_TOLERANCE})"
                )


def export_saved_model(model, base_dir, version=None, jit_compile=False, warmup_data=None, metrics=None):
    """Writes `model` as `base_dir/<version>/`, a SavedModel TF Serving loads.

    The SavedModel takes raw features and needs only TensorFlow to load (no
    Keras, no keras_mdr). See the module docstring for the signatures and the
    layout.

    Args:
        model: a `MultiDomainModel` (from `keras_mdr.build_model`).
        base_dir: the model's base path (TF Serving's `base_path`); created
            if missing.
        version: the integer version to write; `None` takes the next one
            after the largest existing version (1 for an empty directory).
            An existing version is never overwritten.
        jit_compile: compile the numeric core with XLA (preprocessing stays
            outside XLA). TF Serving on CPU then needs the flag
            `--xla_cpu_compilation_enabled=true`, and every new batch size
            compiles once (about 1.3 s for `shared_bottom` with default
            hyper-parameters on a busy 2-core CPU), so send fixed batch
            sizes: batch on the server with `allowed_batch_sizes`
            (`serving/batching_parameters.txt`) or pad on the client. The
            warmup file holds one request per allowed batch size, so TF
            Serving compiles them while loading.
        warmup_data: a DataFrame or dict of raw columns; its first rows (up to
            32) make the warmup requests. `None` uses one row per known domain
            value built from the model's vocabularies and means.
        metrics: metrics to record in `model_card.json` (e.g.
            `model.evaluate_report(test_df)`).

    Returns:
        The path of the new version directory.

    Raises:
        FileExistsError: `version` already exists.
        RuntimeError: the written SavedModel does not reproduce the Keras
            model's predictions (nothing is left behind).
    """
    _check_model(model)
    columns = warmup_lib.warmup_columns(model, warmup_data)
    expected = _keras_predictions(model, columns)

    def write(temp, version):
        # A model with LoRA updates is written with them merged into its kernels (`serving_model`).
        _write_saved_model(model.serving_model(), temp, jit_compile)
        requests = warmup_lib.warmup_requests(
            columns, os.path.basename(os.path.dirname(temp)), SERVING_SIGNATURE, EXAMPLES_SIGNATURE, EXAMPLES_INPUT
        )
        warmup_lib.write_warmup_requests(temp, requests)
        _verify(model, temp, columns, expected)
        card = model_card_lib.model_card(
            model, version, _summary(read_signature_defs(temp)), jit_compile=jit_compile, metrics=metrics
        )
        model_card_lib.write_model_card(temp, card)

    return write_version(base_dir, version, write)


def write_version(base_dir, version, write):
    """Writes `base_dir/<version>/` atomically: `write(temp_dir, version)` fills a hidden sibling, then one rename.

    Args:
        base_dir: the model's base path (created if missing).
        version: the integer version, or None for the next one.
        write: fills (and may check) the temporary directory; an exception
            removes it and leaves the other versions untouched.

    Returns:
        The path of the new version directory.
    """
    base_dir = os.path.abspath(os.fspath(base_dir))
    os.makedirs(base_dir, exist_ok=True)
    version = _resolve_version(base_dir, version)
    final = os.path.join(base_dir, str(version))
    temp = os.path.join(base_dir, f"{TEMP_PREFIX}{version}-{uuid.uuid4().hex[:12]}")
    os.mkdir(temp)
    try:
        write(temp, version)
        if os.path.exists(final):
            raise FileExistsError(f"Version {version} appeared under {base_dir} during the export")
        os.rename(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final
