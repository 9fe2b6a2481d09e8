"""M3oE joint vs bi-level training on the synthetic data, with Shared-Bottom for reference.

Trains each model on an 80/10/10 split of `keras_mdr.data.synthetic(rows)`
(validation: early stopping, and the structure steps in bi-level mode) and
writes per-domain test AUC per task as markdown, one table per seed (the seed
of the split, the initialisation and the shuffling).

    python benchmarks/m3oe_modes.py --rows 20000 --epochs 8 --seeds 0 1 --out benchmarks/results/m3oe_modes.md
"""

import argparse
import sys
import time

import keras

import keras_mdr as km
from keras_mdr.data.splits import random_split
from keras_mdr.training import train

MODELS = {
    "shared_bottom": ("shared_bottom", {}),
    "m3oe joint": ("m3oe", {"training_mode": "joint"}),
    "m3oe joint, partitioned_norm": ("m3oe", {"training_mode": "joint", "partitioned_norm": True}),
    "m3oe bilevel": ("m3oe", {"training_mode": "bilevel"}),
    "m3oe bilevel, structure lr 0.01": ("m3oe", {"training_mode": "bilevel", "structure_learning_rate": 0.01}),
}


def run(name, params, data, parts, args, seed):
    keras.utils.set_random_seed(seed)
    train_df, val_df, test_df = parts
    model = km.build_model(
        name, features=data.features, domain=data.domain, tasks=data.tasks, data=train_df, **params
    )
    start = time.time()
    history = train(
        model,
        train_df,
        val_df,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        early_stopping_patience=2,
        seed=seed,
        verbose=0,
    )
    seconds = time.time() - start
    report = model.evaluate_report(test_df, batch_size=4096)
    structure = model.structure() if hasattr(model, "structure") else None
    return report, len(history.history["loss"]), seconds, structure


def seed_table(data, args, seed):
    parts = random_split(data.frame, (0.8, 0.1, 0.1), seed=seed)
    domains, tasks = data.domain.names, [t.name for t in data.tasks]
    header = ["model", "epochs", "train s"]
    header += [f"{t} AUC {d}" for t in tasks for d in domains] + [f"{t} AUC all" for t in tasks]
    lines = [
        f"## Seed {seed}",
        "",
        "Test rows per domain: " + ", ".join(f"{d}={int((parts[2]['domain'] == d).sum())}" for d in domains) + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    structures = []
    for label, (name, params) in MODELS.items():
        report, epochs, seconds, structure = run(name, params, data, parts, args, seed)
        row = [label, str(epochs), f"{seconds:.0f}"]
        for t in tasks:
            for d in domains:
                auc = report["tasks"][t]["domains"][d]["auc"]
                row.append("n/a" if auc is None else f"{auc:.4f}")
        row += [f"{report['tasks'][t]['auc']:.4f}" for t in tasks]
        lines.append("| " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
        if structure is not None:
            structures.append(f"- {label}: " + ", ".join(f"{k} = {v:.3f}" for k, v in structure.items()))
    lines += ["", "Structure weights after training (sigmoid values; all start at 0.5):", ""] + structures
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    data = km.data.synthetic(args.rows)
    lines = [
        "# M3oE: joint vs bi-level training",
        "",
        f"`python benchmarks/m3oe_modes.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"synthetic({args.rows}), split 80/10/10; Adam {args.learning_rate}, batch {args.batch_size}, at most "
        f"{args.epochs} epochs, early stopping on val_auc (patience 2, best weights restored); M3oE with its "
        "default sizes. CPU without XLA on a shared machine: the seconds are noisy.",
        "",
    ]
    for seed in args.seeds:
        lines += seed_table(data, args, seed) + [""]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
