"""A new domain on a trained model: adapter, LoRA, head, fine-tuning and from-scratch on MovieLens-100K.

Protocol: ML-100K in the ml-1m.csv schema (`keras_mdr.data.public.movielens`),
age-group domains, click = rating > 3, the random 80/10/10 split of the
quality benchmark (seed 2022). For each held-out domain H in turn:

1. Source: a model trained on the other two domains' training rows (batch
   4096, Adam 1e-3, up to 30 epochs, early stopping on validation AUC with
   patience 2, best epoch restored), as in `movielens_quality.py` but with
   a shorter patience (the shared machine is slow).
2. For each fraction f of H's training rows (and the same fraction of H's
   validation rows, for early stopping): `keras_mdr.transfer.add_domain`
   with each method, then `keras_mdr.training.train` on H's rows only
   (Adam 2e-3, up to 20 epochs, early stopping on H's validation AUC with
   patience 2; batch size rows / 8 between 64 and 1024, so that even 5%
   of a domain gets 8 steps an epoch). The same source model serves every
   method and fraction.
3. From scratch: the same model trained on the two source domains' rows plus
   f of H's (vocabularies learned from those rows), as in step 1.

Measured per run: test AUC of H and of the two source domains (before and
after the transfer), trainable and total parameters, epochs and wall time of
the transfer (add_domain plus training). Each (held-out domain, model, seed)
cell runs in its own process and is saved to `--out` as soon as it ends, so
an interrupted run resumes where it stopped. Training runs without XLA
(graph mode): each run is short and XLA's compile time would dominate it.

Usage:
    nice -n 10 python benchmarks/transfer.py --data /work/shared/data/ml-100k/ml-100k.csv.gz \
        --models mmoe star hamur --out benchmarks/results/transfer.json
    python benchmarks/transfer.py --markdown      # prints the tables of --out
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

METHODS = ("adapter", "lora", "head", "finetune")
FRACTIONS = (0.05, 0.2, 1.0)


def _domain_rows(frame, values):
    return frame[frame["age"].isin(values)].reset_index(drop=True)


def _train(model, train, validation, args, seed, transfer):
    import keras_mdr as km

    batch_size = min(1024, max(64, len(train) // 8)) if transfer else args.batch_size
    history = km.training.train(
        model,
        train,
        validation,
        epochs=args.transfer_epochs if transfer else args.epochs,
        batch_size=batch_size,
        learning_rate=args.transfer_learning_rate if transfer else args.learning_rate,
        early_stopping_patience=args.transfer_patience if transfer else args.patience,
        jit_compile=False,
        seed=seed,
        verbose=0,
    )
    return len(history.epoch)


def _aucs(report):
    return {domain: values["auc"] for domain, values in report["tasks"]["click"]["domains"].items()}


def run_cell(held_out, model_name, seed, args):
    """Source model, every method x fraction, and from-scratch runs for one (held-out domain, model, seed)."""
    import keras
    import pandas as pd

    import keras_mdr as km
    from keras_mdr.data import public

    data = public.movielens(args.data, embedding_dim=16)
    train, validation, test = km.data.random_split(data.frame, (0.8, 0.1, 0.1), seed=args.split_seed)
    groups = data.domain.values
    source_groups = {name: values for name, values in groups.items() if name != held_out}
    source_values = [v for values in source_groups.values() for v in values]
    source_train, source_validation = _domain_rows(train, source_values), _domain_rows(validation, source_values)
    new_train, new_validation = _domain_rows(train, groups[held_out]), _domain_rows(validation, groups[held_out])

    keras.utils.set_random_seed(seed)
    source = km.build_model(model_name, features=data.features, domain=km.Domain("age", values=source_groups),
                            tasks=data.tasks, data=source_train, batch_size=args.batch_size)
    start = time.perf_counter()
    epochs = _train(source, source_train, source_validation, args, seed, transfer=False)
    cell = {
        "source": {"aucs": _aucs(source.evaluate_report(_domain_rows(test, source_values))), "epochs": epochs,
                   "seconds": round(time.perf_counter() - start, 1)},
        "runs": [],
    }
    for fraction in FRACTIONS:
        rows = new_train.sample(frac=fraction, random_state=seed) if fraction < 1 else new_train
        valid = new_validation.sample(frac=fraction, random_state=seed) if fraction < 1 else new_validation
        for method in METHODS:
            keras.utils.set_random_seed(seed)
            start = time.perf_counter()
            model = km.transfer.add_domain(source, {held_out: groups[held_out]}, data=rows, method=method,
                                           bottleneck=args.bottleneck, rank=args.rank)
            epochs = _train(model, rows, valid, args, seed, transfer=True)
            seconds = time.perf_counter() - start
            params = model.trainable_report(print_fn=lambda _: None)
            cell["runs"].append({"fraction": fraction, "method": method, "aucs": _aucs(model.evaluate_report(test)),
                                 "trainable": params["trainable"], "total": params["total"], "epochs": epochs,
                                 "seconds": round(seconds, 1)})
            print(f"  {held_out} {model_name} {seed} f={fraction} {method}: {cell['runs'][-1]['aucs']}", flush=True)
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        scratch_train = pd.concat([source_train, rows], ignore_index=True)
        scratch = km.build_model(model_name, features=data.features, domain=data.domain, tasks=data.tasks,
                                 data=scratch_train, batch_size=args.batch_size)
        epochs = _train(scratch, scratch_train, pd.concat([source_validation, valid], ignore_index=True), args, seed,
                        transfer=False)
        params = scratch.trainable_report(print_fn=lambda _: None)
        cell["runs"].append({"fraction": fraction, "method": "scratch", "aucs": _aucs(scratch.evaluate_report(test)),
                             "trainable": params["trainable"], "total": params["total"], "epochs": epochs,
                             "seconds": round(time.perf_counter() - start, 1)})
        print(f"  {held_out} {model_name} {seed} f={fraction} scratch: {cell['runs'][-1]['aucs']}", flush=True)
    return cell


def _key(held_out, model_name, seed):
    return f"{held_out}/{model_name}/{seed}"


def _summary(results, held_outs, models, seeds):
    """Mean over held-out domains: the new domain's AUC and the old domains' change, mean ± std over seeds."""
    import numpy as np

    lines = ["\nMean over the held-out domains: the new domain's test AUC / the change of the two old domains' mean "
             "test AUC from the source model; ± is the standard deviation over seeds of that mean\n",
             "| model | method | seeds | " + " | ".join(f"{f:.0%}: new AUC / old Δ" for f in FRACTIONS) + " |",
             "|---|---|---:|" + "---:|" * len(FRACTIONS)]
    for model_name in models:
        present = [s for s in seeds if all(_key(h, model_name, s) in results for h in held_outs)]
        if not present:
            continue
        for method in METHODS + ("scratch",):
            row = []
            for fraction in FRACTIONS:
                new, change = [], []
                for seed in present:
                    per_domain_new, per_domain_change = [], []
                    for held_out in held_outs:
                        cell = results[_key(held_out, model_name, seed)]
                        run = next(r for r in cell["runs"] if r["fraction"] == fraction and r["method"] == method)
                        before = np.mean(list(cell["source"]["aucs"].values()))
                        after = np.mean([a for d, a in run["aucs"].items() if d != held_out])
                        per_domain_new.append(run["aucs"][held_out])
                        per_domain_change.append(after - before)
                    new.append(np.mean(per_domain_new))
                    change.append(np.mean(per_domain_change))
                row.append(f"{np.mean(new):.4f} ± {np.std(new):.4f} / {np.mean(change):+.4f}")
            lines.append(f"| {model_name} | {method} | {len(present)} | " + " | ".join(row) + " |")
    return lines


def markdown(results, held_outs, models, seeds):
    """Tables: the summary over held-out domains, then per held-out domain and fraction, mean over seeds of the new
    domain's and the source domains' AUC."""
    import numpy as np

    lines = _summary(results, held_outs, models, seeds)
    for held_out in held_outs:
        lines += [f"\nHeld-out domain `{held_out}`: test AUC of the new domain / mean of the two source domains "
                  "(before the transfer: source model), trainable parameters, transfer seconds; mean over seeds\n",
                  "| model | method | " + " | ".join(f"{f:.0%} new / old" for f in FRACTIONS)
                  + " | trainable | seconds (5% / 100%) |",
                  "|---|---|" + "---:|" * (len(FRACTIONS) + 2)]
        for model_name in models:
            cells = [results[_key(held_out, model_name, s)] for s in seeds if _key(held_out, model_name, s) in results]
            if not cells:
                continue
            before = np.mean([np.mean(list(c["source"]["aucs"].values())) for c in cells])
            lines.append(f"| {model_name} | source model | " + " | ".join(f"- / {before:.4f}" for _ in FRACTIONS)
                         + " | - | - |")
            for method in METHODS + ("scratch",):
                row, trainable, seconds = [], [], {}
                for fraction in FRACTIONS:
                    runs = [r for c in cells for r in c["runs"] if r["fraction"] == fraction and r["method"] == method]
                    new = np.mean([r["aucs"][held_out] for r in runs])
                    old = np.mean([np.mean([a for d, a in r["aucs"].items() if d != held_out]) for r in runs])
                    row.append(f"{new:.4f} / {old:.4f}")
                    trainable += [r["trainable"] for r in runs]
                    seconds[fraction] = np.mean([r["seconds"] for r in runs])
                lines.append(f"| {model_name} | {method} | " + " | ".join(row)
                             + f" | {int(np.median(trainable)):,} | {seconds[FRACTIONS[0]]:.0f} / {seconds[1.0]:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/work/shared/data/ml-100k/ml-100k.csv.gz")
    parser.add_argument("--held-out", nargs="+", default=["age_1_18", "age_25", "age_35_56"])
    parser.add_argument("--models", nargs="+", default=["mmoe", "star", "hamur"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[2022, 2023, 2024])
    parser.add_argument("--split-seed", type=int, default=2022)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--transfer-epochs", type=int, default=20)
    parser.add_argument("--transfer-learning-rate", type=float, default=2e-3)
    parser.add_argument("--transfer-patience", type=int, default=2)
    parser.add_argument("--bottleneck", type=int, default=16, help="adapter bottleneck width")
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank")
    parser.add_argument("--out", default="benchmarks/results/transfer.json")
    parser.add_argument("--cell", nargs=3, metavar=("HELD_OUT", "MODEL", "SEED"), help="run one cell (internal)")
    parser.add_argument("--markdown", action="store_true", help="print the tables of --out and exit")
    args = parser.parse_args()
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    if args.markdown:
        print(markdown(results, args.held_out, args.models, args.seeds))
        return
    if args.cell:
        held_out, model_name, seed = args.cell
        cell = run_cell(held_out, model_name, int(seed), args)
        results = json.load(open(args.out)) if os.path.exists(args.out) else {}
        results[_key(held_out, model_name, seed)] = cell
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out + ".partial", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(args.out + ".partial", args.out)
        return
    forwarded = [a for a in sys.argv[1:]]
    for seed in args.seeds:
        for model_name in args.models:
            for held_out in args.held_out:
                if _key(held_out, model_name, seed) in results:
                    continue
                print(f"{held_out} {model_name} seed {seed}", flush=True)
                subprocess.run([sys.executable, __file__, *forwarded, "--cell", held_out, model_name, str(seed)],
                               check=True)
                results = json.load(open(args.out))


if __name__ == "__main__":
    main()
