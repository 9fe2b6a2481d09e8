"""The Adapter4Rec study on MovieLens-100K: pre-train a text TransRec on the source, adapt it to the target.

Protocol: `keras_mdr.data.movielens_transfer` (source = users with id % 3 != 0
x movies with an action-like genre, target = the other users x the other
movies; README "TransRec"). Item text = title and genres. Text encoder:
2 blocks, width 64, 2 heads, mean pooling, WordPiece vocabulary from the
source titles (keras-hub; `--tokenizer word` without it); user encoder:
SASRec d = 64, 2 blocks, 2 heads, max length 20; dropout 0.1; BCE with one
sampled negative per position; windows covering each training history;
batch 64; Adam; XLA. Pre-training: up to `--pretrain-epochs` epochs with
early stopping on the source's validation NDCG@10 (patience 3, best epoch
restored), once (seed 0). Adaptation: every method of
`keras_mdr.transrec.METHODS` from the same pre-trained model, up to
`--epochs` epochs with early stopping on the target's validation NDCG@10,
seeds 0, 1, 2; test HR@10 / NDCG@10 by full ranking over the target
catalogue. `zero_shot` is the pre-trained model on the target with no
training. "s/epoch" is the median training time of an epoch after the first
(which compiles), evaluation excluded.

Usage:
    python benchmarks/transrec_adapters.py --raw ../shared/data/ml-100k/raw
    python benchmarks/transrec_adapters.py --markdown
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from records import load_results, ranking_cells, recorded_arguments, save_results, training_cells  # noqa: E402
from timing import EpochTrainTimer  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr import transrec  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "results", "transrec_adapters.json")


def _train(model, data, args, learning_rate, epochs):
    timer = EpochTrainTimer()
    start = time.perf_counter()
    history = km.training.train(
        model, data, data, epochs=epochs, batch_size=args.batch_size, learning_rate=learning_rate,
        early_stopping_patience=args.patience, monitor="val_ndcg@10", verbose=0, callbacks=[timer],
        jit_compile=not args.no_xla,
    )
    later = timer.seconds[1:] or timer.seconds
    return {
        "epochs": len(history.epoch),
        "best_val_ndcg@10": float(max(history.history["val_ndcg@10"])),
        "seconds_per_epoch": float(np.median(later)),
        "train_seconds": round(time.perf_counter() - start, 1),
        "load_average": os.getloadavg()[0],
    }


def pretrained(source, args):
    path = os.path.join(args.work_dir, f"pretrained_{args.tokenizer}.keras")
    if os.path.exists(path):
        return keras.saving.load_model(path), None
    keras.utils.set_random_seed(0)
    model = transrec.build_transrec(source, "text", tokenizer=args.tokenizer, windows="all")
    record = _train(model, source, args, args.learning_rate, args.pretrain_epochs)
    record["source_test"] = transrec.full_ranking(model, source, "test")
    os.makedirs(args.work_dir, exist_ok=True)
    model.save(path)
    return model, record


def run(args):
    source, target = km.data.movielens_transfer(args.raw)
    results = load_results(args.out)
    results["data"] = {"source": source.summary(), "target": target.summary()}
    results["args"] = recorded_arguments(args)
    model, record = pretrained(source, args)
    if record is not None:
        results["pretrain"] = record
        print("pretrain", record, flush=True)
    done = {(r["method"], r["seed"]) for r in results["runs"]}
    if ("zero_shot", 0) not in done:
        zero = transrec.transfer(model, target, "finetune")
        results["runs"].append({"method": "zero_shot", "seed": 0, "test": transrec.full_ranking(zero, target)})
        save_results(results, args.out)
    for seed in args.seeds:
        for method in args.methods:
            if (method, seed) in done:
                continue
            keras.utils.set_random_seed(seed)
            adapted = transrec.transfer(model, target, method, train_layer_norms=args.train_layer_norms)
            lr = args.learning_rate if method in ("finetune", "scratch") else args.adapter_learning_rate
            record = {"method": method, "seed": seed, **transrec.trainable_report(adapted)}
            record.update(_train(adapted, target, args, lr, args.epochs))
            record["test"] = transrec.full_ranking(adapted, target, "test")
            results["runs"].append(record)
            save_results(results, args.out)
            print(record, flush=True)
            keras.backend.clear_session()


def markdown(path, raw):
    results = load_results(path)
    _, target = km.data.movielens_transfer(raw)
    reference = transrec.popularity_ranking(target)
    rows = [
        "| method | seeds | HR@10 | NDCG@10 | trainable params | share | s/epoch | epochs | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    methods = list(dict.fromkeys(r["method"] for r in results["runs"]))
    for method in methods:
        runs = [r for r in results["runs"] if r["method"] == method]
        if method == "zero_shot":
            test = runs[0]["test"]
            rows.append(f"| zero_shot (no training) | - | {test['hr@10']:.4f} | {test['ndcg@10']:.4f} | 0 | 0 | - | - | - |")
            rows.append(f"| most popular on the target (no model) | - | {reference['hr@10']:.4f} | {reference['ndcg@10']:.4f} | - | - | - | - | - |")
            continue
        rows.append(
            f"| {method} | {ranking_cells(runs)} | {runs[0]['trainable']:,} | {100 * runs[0]['share']:.1f}% "
            f"| {training_cells(runs)} |"
        )
    print("\n".join(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", default=os.path.join("..", "shared", "data", "ml-100k", "raw"))
    parser.add_argument("--methods", nargs="+", default=list(transrec.METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tokenizer", default="wordpiece", choices=["word", "wordpiece"])
    parser.add_argument("--pretrain-epochs", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--adapter-learning-rate", type=float, default=1e-3)
    parser.add_argument("--train-layer-norms", action="store_true",
                        help="with an adapter method, the pre-trained LayerNorms train too")
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--work-dir", default=os.path.join("/tmp", "transrec_adapters"))
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.markdown:
        markdown(args.out, args.raw)
    else:
        run(args)


if __name__ == "__main__":
    main()
