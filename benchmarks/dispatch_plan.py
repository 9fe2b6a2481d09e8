"""Grouped dispatch under XLA: ranking rows by a running count vs by a sort, and the whole grouped matmul.

`grouped_dispatch.plan_groups` needs each row's rank among the earlier rows of
its group. Both ways give the same plan; this measures which is faster as the
number of groups G grows, at a batch of N rows. The two variants run
alternately, `--rounds` times, in one process, and the medians are reported, so
their ratio holds on a busy machine even when the absolute times do not.

Usage:
    python benchmarks/dispatch_plan.py --rows 4096 --groups 3 9 16 36 128
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_mdr.layers.routing import grouped_dispatch  # noqa: E402


def variants(num_groups, tile_size, width, units):
    kernels = tf.random.normal((num_groups, width, units))
    biases = tf.zeros((num_groups, units))

    def dispatch(x, group_ids, counting):
        plan = grouped_dispatch.plan_groups(group_ids, num_groups, tile_size, counting=counting)
        tiles = grouped_dispatch.grouped_matmul(grouped_dispatch.to_tiles(x, plan), kernels, plan, biases)
        return grouped_dispatch.from_tiles(tiles, plan)

    return {
        "rank by count": tf.function(lambda x, g: grouped_dispatch.rank_in_group(g, num_groups, True),
                                     jit_compile=True),
        "rank by sort": tf.function(lambda x, g: grouped_dispatch.rank_in_group(g, num_groups, False),
                                    jit_compile=True),
        "layer, count": tf.function(lambda x, g: dispatch(x, g, True), jit_compile=True),
        "layer, sort": tf.function(lambda x, g: dispatch(x, g, False), jit_compile=True),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--groups", type=int, nargs="+", default=[3, 9, 16, 36, 128])
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=128, help="the layer's input width")
    parser.add_argument("--units", type=int, default=8, help="the layer's output width")
    parser.add_argument("--calls", type=int, default=50, help="calls per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = tf.random.normal((args.rows, args.width))
    print(f"N={args.rows}, tile {args.tile_size}, layer {args.width} -> {args.units}; "
          f"microseconds per call, median of {args.rounds} alternating rounds")
    print("| G | rank by count | rank by sort | layer, count | layer, sort | layer speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for num_groups in args.groups:
        g = tf.constant(rng.integers(0, num_groups, args.rows), tf.int32)
        functions = variants(num_groups, args.tile_size, args.width, args.units)
        times = {name: [] for name in functions}
        for _ in range(args.rounds):
            for name, function in functions.items():
                function(x, g).numpy()  # compiled on the first round; a warm call otherwise
                start = time.perf_counter()
                for _ in range(args.calls):
                    result = function(x, g)
                result.numpy()
                times[name].append((time.perf_counter() - start) / args.calls * 1e6)
        median = {name: float(np.median(t)) for name, t in times.items()}
        print(f"| {num_groups} | {median['rank by count']:.0f} | {median['rank by sort']:.0f} | "
              f"{median['layer, count']:.0f} | {median['layer, sort']:.0f} | "
              f"{median['layer, sort'] / median['layer, count']:.2f}x |")
    print(f"load average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
