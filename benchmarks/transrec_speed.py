"""TransRec speed: train sequences/s and full-ranking evaluation users/s, with and without XLA.

The id SASRec (d = 64, 2 blocks, 2 heads, max length 20, dropout `--dropout`,
BCE with one sampled negative) on Adapter4Rec's Amazon histories (`keras_mdr.data.amazon_sequences`,
ids only). Train: `train_on_batch` on fixed batches of 256 training windows;
the XLA and the plain model take turns (`--steps` steps each per round) so
that both see the same load on the shared machine; the ratio is taken within
each round. Evaluation: full ranking of every user's test item against the
whole catalogue, in batches of 1024 users (one matmul per batch), compiled
with XLA or not, also in turns. First calls (tracing, compiling) are left out.

Usage:
    python benchmarks/transrec_speed.py --data ../shared/data/amazon-seq
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

import keras_mdr as km  # noqa: E402
from keras_mdr import transrec  # noqa: E402
from keras_mdr.transrec import evaluation  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "results", "transrec_speed.json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join("..", "shared", "data", "amazon-seq"))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()

    data = km.data.amazon_sequences(args.data)
    keras.utils.set_random_seed(0)
    models = {}
    for xla in (True, False):
        model = transrec.build_transrec(data, "id", dropout=args.dropout)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=xla)
        models[xla] = model
    batches = list(models[True].make_dataset(data, args.batch_size, seed=0).take(args.steps))
    for model in models.values():
        model.train_on_batch(batches[0])  # trace and compile

    train = {True: [], False: []}
    for _ in range(args.rounds):
        for xla, model in models.items():
            start = time.perf_counter()
            for batch in batches:
                model.train_on_batch(batch)
            train[xla].append(len(batches) * args.batch_size / (time.perf_counter() - start))

    history, target, seen = data.evaluation("test", models[True].max_length)
    evaluate = {True: [], False: []}
    for xla, model in models.items():  # trace and compile both batch shapes
        evaluation.ranks(model, evaluation.item_table(model, jit_compile=xla), history, target, seen, jit_compile=xla)
    for _ in range(args.rounds):
        for xla, model in models.items():
            start = time.perf_counter()
            table = evaluation.item_table(model, jit_compile=xla)
            evaluation.ranks(model, table, history, target, seen, jit_compile=xla)
            evaluate[xla].append(len(history) / (time.perf_counter() - start))

    def summary(values):
        return {"median": float(np.median(values)), "all": [round(v, 1) for v in values]}

    results = {
        "data": data.summary(),
        "batch_size": args.batch_size,
        "dropout": args.dropout,
        "load_average": os.getloadavg(),
        "train_sequences_per_s": {"xla": summary(train[True]), "no_xla": summary(train[False])},
        "train_xla_speedup": float(np.median(np.array(train[True]) / np.array(train[False]))),
        "eval_users_per_s": {"xla": summary(evaluate[True]), "no_xla": summary(evaluate[False])},
        "eval_xla_speedup": float(np.median(np.array(evaluate[True]) / np.array(evaluate[False]))),
    }
    print(json.dumps(results, indent=1))
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
