"""Resumable benchmark results: one JSON file with a list of finished runs, rewritten atomically after each."""

import json
import os
import subprocess
import sys

import numpy as np


def load_results(path):
    """The results in `path`, or `{"runs": []}` when it does not exist yet."""
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"runs": []}


def save_results(results, path):
    """Writes `results` to `path` through a temporary file, so an interrupted write leaves the old file."""
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)


def recorded_arguments(args):
    """A run's command-line arguments to keep beside its results: all but where they go and how they print."""
    return {k: v for k, v in vars(args).items() if k not in ("out", "markdown")}


def run_each_in_process(script, models, out, arguments):
    """Runs `script --one MODEL *arguments` in a process of its own for each model not yet in `out`.

    `out` holds a list of results, each with a `"model"`; the script prints its
    result as the last line of its output, in JSON. Each result is appended
    and saved as soon as it is there, so a stopped run resumes.
    """
    results = json.load(open(out)) if os.path.exists(out) else []
    for model in models:
        if any(r["model"] == model for r in results):
            continue
        command = [sys.executable, script, "--one", model, *arguments]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
        save_results(results, out)


def mean_std(values):
    """"mean ± std" of a metric over seeds, 4 decimals; the mean alone for one seed, whose spread is unknown."""
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def ranking_cells(runs):
    """Markdown cells "seeds | HR@10 | NDCG@10" over `runs` (one per seed, each with `test["hr@10"]`, ...)."""
    hr = [r["test"]["hr@10"] for r in runs]
    ndcg = [r["test"]["ndcg@10"] for r in runs]
    return f"{len(runs)} | {mean_std(hr)} | {mean_std(ndcg)}"


def training_cells(runs):
    """Markdown cells "s/epoch | epochs | load avg" over `runs` (one per seed), epochs listed per seed."""
    return (
        f"{np.mean([r['seconds_per_epoch'] for r in runs]):.1f} | {'/'.join(str(r['epochs']) for r in runs)} "
        f"| {np.mean([r.get('load_average', np.nan) for r in runs]):.1f}"
    )
