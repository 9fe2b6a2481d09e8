"""Wall-clock timing shared by the benchmark scripts."""

import time


def median_seconds(run, repeats):
    """Median wall time of `repeats` calls of `run`, after one call that traces and compiles."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
