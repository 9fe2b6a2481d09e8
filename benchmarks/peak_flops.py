"""The machine's practical float32 peak: the best GFLOP/s of a large TensorFlow matmul.

The benchmarks report achieved FLOP/s as a fraction of this measured number
(the theoretical peak needs the clock rate, which a virtual machine may hide).

Usage:
    python benchmarks/peak_flops.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_seconds  # noqa: E402


def main():
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    best = 0.0
    for n in (1024, 2048, 4096):
        a = tf.random.normal((n, n))
        b = tf.random.normal((n, n))
        matmul = tf.function(lambda: tf.matmul(a, b), jit_compile=True)
        seconds = median_seconds(lambda: matmul().numpy(), 5)
        gflops = 2 * n**3 / seconds / 1e9
        best = max(best, gflops)
        print(f"{device} matmul {n}x{n}x{n} float32: {gflops:,.1f} GFLOP/s")
    print(f"best: {best:,.1f} GFLOP/s")


if __name__ == "__main__":
    main()
