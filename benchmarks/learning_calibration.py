"""Runs the learning test's protocol (tests/test_learning.py) over several seeds.

The thresholds in tests/test_learning.py are set a margin below the lowest
values this prints.

Usage:
    python benchmarks/learning_calibration.py --models shared_bottom mmoe --seeds 1 2 3
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import test_learning  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=sorted(test_learning.SMALL))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--one-tower", action="store_true", help="also the shared tower without domains")
    args = parser.parse_args()
    runs = [(name, False) for name in args.models]
    if args.one_tower:
        runs.append(("shared_bottom (one tower, no domain)", True))
    print("| model | seed | click AUC | click AUC per domain | like AUC |")
    print("|---|---:|---:|---|---:|")
    for label, one_tower in runs:
        name = label.split(" ")[0]
        for seed in args.seeds:
            report = test_learning.trained_report(name, one_tower=one_tower, seed=seed)
            click = report["tasks"]["click"]
            domains = " / ".join(f"{d} {v['auc']:.4f}" for d, v in click["domains"].items())
            print(f"| {label} | {seed} | {click['auc']:.4f} | {domains} | {report['tasks']['like']['auc']:.4f} |",
                  flush=True)


if __name__ == "__main__":
    main()
