"""The `tf.data` options of every pipeline keras_mdr builds."""

import tensorflow as tf


def without_autotuning(dataset):
    """`dataset` with tf.data's autotuning turned off.

    Autotuning runs an optimisation thread that sleeps for periods that double
    (20, 40, 80, 160 ms, ...), and destroying an iterator (the end of every
    epoch, of every `evaluate` and `predict` call) can wait for that sleep to
    end: a call took up to twice its time (benchmarks/RESULTS.md, "tf.data
    autotuning and the end of an iterator"). Without autotuning, `AUTOTUNE`
    parallelism falls back to tf.data's default (on the 2-core machine, the
    same 2 parallel calls autotuning reached).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
