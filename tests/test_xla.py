"""The numeric core really trains under XLA; preprocessing is what would turn XLA off."""

import glob
import os
import subprocess
import sys
import textwrap

import keras

import keras_mdr as km
from keras_mdr.testing import tiny_synthetic

TRAIN_ONE_EPOCH = textwrap.dedent(
    """
    import keras_mdr as km
    from keras_mdr.testing import tiny_synthetic
    d = tiny_synthetic(300)
    m = km.build_model("shared_bottom", features=d.features, domain=d.domain, tasks=d.tasks,
                       data=d.frame, bottom_units=[4], tower_units=[2])
    m.compile(optimizer="adam", jit_compile=True)
    m.fit(d.frame, epochs=1, batch_size=100, verbose=0)
    """
)


def test_core_train_step_is_compiled_by_xla(tmp_path):
    dump = tmp_path / "xla_dump"
    env = dict(os.environ, XLA_FLAGS=f"--xla_dump_to={dump} --xla_dump_hlo_as_text", TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-c", TRAIN_ONE_EPOCH], check=True, env=env, timeout=300)
    modules = glob.glob(str(dump / "*one_step_on_data*before_optimizations.txt"))
    assert modules, "XLA compiled no train step (no HLO module for one_step_on_data was dumped)"
    hlo = open(modules[0]).read()
    # The whole step is one XLA module: the embedding gather and the optimizer update are in it.
    assert "gather" in hlo and "sqrt" in hlo


def test_a_model_with_string_lookups_silently_loses_xla_but_the_core_keeps_it():
    data = tiny_synthetic(200)
    core = km.build_model("shared_bottom", features=data.features, domain=data.domain, tasks=data.tasks,
                          data=data.frame, bottom_units=[4], tower_units=[2])
    raw = {
        name: keras.Input(shape=(), dtype=spec.dtype.name, name=name)
        for name, spec in core.preprocessor.input_signature().items()
    }
    end_to_end = keras.Model(raw, core(core.preprocessor(raw)))
    end_to_end.compile(optimizer="adam", jit_compile=True)
    core.compile(optimizer="adam", jit_compile=True)
    assert end_to_end.jit_compile is False
    assert core.jit_compile is True
