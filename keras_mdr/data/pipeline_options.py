"""The `tf.data` options of every pipeline keras_mdr builds."""

import tensorflow as tf


def without_autotuning(dataset):
    """`dataset` with tf.data's autotuning turned off.

    Autotuning runs an optimisation thread that sleeps for periods doubling
    from 10 ms, and destroying an iterator (the end of every epoch, of every
    `evaluate` and `predict` call) waits for that thread's current sleep to
    end: a call could take up to twice its time (benchmarks/RESULTS.md,
    "tf.data autotuning and the end of an iterator"). Without autotuning,
    `AUTOTUNE` parallelism is the size of tf.data's thread pool (the number of
    cores, at most 16), the value the pipelines here measured as fast.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
