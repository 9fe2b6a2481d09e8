"""Resumable benchmark results: one JSON file with a list of finished runs, rewritten atomically after each."""

import json
import os


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
