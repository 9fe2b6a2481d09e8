"""Per-domain test AUC and logloss of zoo models on MovieLens-100K.

Protocol (the foundation issue's): the ml-1m.csv-schema MovieLens-100K file,
domains by age group {1,18} / {25} / {35,45,50,56}, label rating > 3, a random
80/10/10 split with seed 2022, embedding 16, batch 4096, Adam 1e-3, up to 50
epochs with early stopping on validation AUC (patience 4, best epoch restored),
3 seeds for initialisation and shuffling. `--tasks click like` adds the second
task like = rating == 5.

Each finished run is added to `--runs` and skipped when the script runs again,
so a stopped grid resumes where it stopped; seeds are the outer loop, so a
partial grid has every model at the first seeds. The summary of a model in
`--out` covers all its recorded runs.

Usage:
    python benchmarks/movielens_quality.py --data ../shared/data/ml-100k/ml-100k.csv.gz \
        --models shared_bottom mmoe --out benchmarks/results/movielens_quality.json
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from records import load_results, save_results  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr.data import public  # noqa: E402

VARIANTS = {
    # name: (registered model, hyper-parameters)
    "hamur_mlp": ("hamur", {"backbone": "mlp"}),
    "hamur_dcn": ("hamur", {"backbone": "dcn"}),
    "hamur_wide_deep": ("hamur", {"backbone": "wide_deep"}),
    # HAMUR's AUC study (RESULTS.md): one change from the defaults each.
    "hamur_two_adapters": ("hamur", {"adapter_after": [0, 1]}),
    "hamur_hyper_128": ("hamur", {"hyper_units": [128]}),
    "hamur_rank_64": ("hamur", {"rank": 64, "bottleneck": 64}),
    "hamur_dropout_0.1": ("hamur", {"dropout": 0.1}),
    "hamur_reference_init": ("hamur", {"reference_init": True}),
    # The default schedule moves alpha by 0.1 in 1,000 steps; ML-100K trains about 20 steps an epoch, so
    # this variant sharpens it (alpha ~ 11 after 10 epochs) and adds the sparsity regulariser.
    "adasparse_sharp": ("adasparse", {"alpha_step": 0.05, "sparsity_range": (0.2, 0.5)}),
}


def run_one(variant, data, splits, seed, args):
    model_name, params = VARIANTS.get(variant, (variant, {}))
    train, validation, test = splits
    keras.utils.set_random_seed(seed)
    model = km.build_model(model_name, features=data.features, domain=data.domain, tasks=data.tasks,
                           data=train, batch_size=args.batch_size, **params)
    start = time.perf_counter()
    history = km.training.train(model, train, validation, epochs=args.epochs, learning_rate=args.learning_rate,
                                early_stopping_patience=args.patience, seed=seed, verbose=0,
                                jit_compile=args.jit_compile)
    seconds = time.perf_counter() - start
    record = {"seed": seed, "epochs": len(history.epoch), "train_seconds": round(seconds, 1),
              "load_average": [round(x, 2) for x in os.getloadavg()], "test": model.evaluate_report(test)}
    if hasattr(model, "sparsity"):  # AdaSparse: the share of pruned neurons reached, per domain
        record["sparsity"] = {d: round(float(v), 4) for d, v in model.sparsity()["all"].items()}
    return record


def summarise(runs, tasks, domains):
    def stats(values):
        values = [v for v in values if v is not None]
        return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}

    summary = {}
    for task in tasks:
        summary[task] = {
            "all": {m: stats([r["test"]["tasks"][task][m] for r in runs]) for m in ("auc", "logloss")},
            **{d: {m: stats([r["test"]["tasks"][task]["domains"][d][m] for r in runs]) for m in ("auc", "logloss")}
               for d in domains},
        }
    return summary


def markdown(results):
    """Markdown tables of the summaries in a results file: test AUC and logloss, mean ± std over seeds."""
    lines = []
    for tasks, variants in results.items():
        for task in tasks.split("+"):
            domains = [d for d in next(iter(variants.values()))["summary"][task] if d != "all"]
            lines += [f"\nTasks {tasks.replace('+', ' + ')}: task `{task}`, test AUC (logloss), mean ± std over seeds\n",
                      "| model | " + " | ".join(["all"] + domains) + " | epochs | train s |",
                      "|---|" + "---:|" * (len(domains) + 3)]
            for variant, result in variants.items():
                summary = result["summary"][task]
                cells = [
                    f"{summary[d]['auc']['mean']:.4f} ± {summary[d]['auc']['std']:.4f} ({summary[d]['logloss']['mean']:.4f})"
                    for d in ["all"] + domains
                ]
                epochs = "/".join(str(r["epochs"]) for r in result["runs"])
                seconds = np.mean([r["train_seconds"] for r in result["runs"]])
                lines.append(f"| {variant} | " + " | ".join(cells) + f" | {epochs} | {seconds:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/ml-100k/ml-100k.csv.gz")
    parser.add_argument("--models", nargs="+", default=["shared_bottom", "mmoe", "ple", "star"])
    parser.add_argument("--tasks", nargs="+", default=["click"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2022, 2023, 2024])
    parser.add_argument("--split-seed", type=int, default=2022)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--out", default="benchmarks/results/movielens_quality.json")
    parser.add_argument("--runs", default="benchmarks/results/movielens_quality_runs.json",
                        help="every finished run; runs already in it are skipped")
    parser.add_argument("--markdown", action="store_true", help="print the tables of --out and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.load(open(args.out))))
        return
    args.jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]

    data = public.movielens(args.data, tasks=args.tasks, embedding_dim=16)
    splits = km.data.random_split(data.frame, (0.8, 0.1, 0.1), seed=args.split_seed)
    key = "+".join(args.tasks)
    for path in (args.runs, args.out):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    recorded = load_results(args.runs)
    done = recorded["runs"]
    for seed in args.seeds:
        for variant in args.models:
            if any((r["tasks"], r["model"], r["seed"]) == (key, variant, seed) for r in done):
                continue
            record = {"tasks": key, "model": variant, **run_one(variant, data, splits, seed, args)}
            done.append(record)
            save_results(recorded, args.runs)
            line = " ".join(f"{t}: {record['test']['tasks'][t]['auc']:.4f}" for t in args.tasks)
            print(f"{variant:>16} [{key}] seed {seed} test AUC {line} epochs {record['epochs']}", flush=True)

    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    for variant in args.models:
        runs = sorted((r for r in done if (r["tasks"], r["model"]) == (key, variant)), key=lambda r: r["seed"])
        runs = [{k: v for k, v in r.items() if k not in ("tasks", "model")} for r in runs]
        results.setdefault(key, {})[variant] = {"runs": runs, "summary": summarise(runs, args.tasks, data.domain.names)}
    save_results(results, args.out)


if __name__ == "__main__":
    main()
