"""Sanity anchor: the "id" SASRec on MovieLens-100K, leave-one-out, full ranking over all 1,682 movies.

All 943 users and 100,000 ratings (every rating an interaction, in time
order; `keras_mdr.data.movielens_sequences`), the last item tests, the one
before validates. SASRec d = 64, 2 blocks, 2 heads, dropout `--dropout`,
max length `--max-length`, windows covering each training history, batch
128, Adam 1e-3, up to 200 epochs with early stopping on validation NDCG@10
(patience 5, best epoch restored), loss `bce` (one sampled negative per
position, Adapter4Rec's) or `sampled_softmax` (in-batch), seeds 0, 1, 2
(the outer loop). Resumable: runs already in `--out` are skipped.

Usage:
    python benchmarks/transrec_anchor.py --raw ../shared/data/ml-100k/raw
    python benchmarks/transrec_anchor.py --raw ../shared/data/ml-100k/raw --markdown
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from records import load_results, ranking_cells, recorded_arguments, save_results, training_cells  # noqa: E402
from timing import EpochTrainTimer  # noqa: E402

import keras_mdr as km  # noqa: E402
from keras_mdr import transrec  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "results", "transrec_anchor.json")


def run(args):
    data = km.data.movielens_sequences(args.raw)
    results = load_results(args.out)
    results.update(data=data.summary(), args=recorded_arguments(args))
    done = {(r["loss"], r["seed"]) for r in results["runs"]}
    # Seeds outer: a partial file already holds every loss once.
    for seed in args.seeds:
        for loss in args.losses:
            if (loss, seed) in done:
                continue
            keras.utils.set_random_seed(seed)
            model = transrec.build_transrec(
                data, "id", max_length=args.max_length, dropout=args.dropout, loss=loss, windows="all"
            )
            timer = EpochTrainTimer()
            history = km.training.train(
                model, data, data, epochs=args.epochs, batch_size=128, early_stopping_patience=args.patience,
                monitor="val_ndcg@10", verbose=0, callbacks=[timer],
            )
            run = {
                "loss": loss,
                "seed": seed,
                "epochs": len(history.epoch),
                "seconds_per_epoch": float(np.median(timer.seconds[1:] or timer.seconds)),
                "load_average": os.getloadavg()[0],
                "test": transrec.full_ranking(model, data),
            }
            results["runs"].append(run)
            save_results(results, args.out)
            print(run, flush=True)
            keras.backend.clear_session()


def markdown(path, raw):
    results = load_results(path)
    reference = transrec.popularity_ranking(km.data.movielens_sequences(raw))
    rows = [
        "| loss | seeds | HR@10 | NDCG@10 | s/epoch | epochs | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| most popular (no model) | - | {reference['hr@10']:.4f} | {reference['ndcg@10']:.4f} | - | - | - |",
    ]
    for loss in dict.fromkeys(r["loss"] for r in results["runs"]):
        runs = [r for r in results["runs"] if r["loss"] == loss]
        rows.append(f"| {loss} | {ranking_cells(runs)} | {training_cells(runs)} |")
    print("\n".join(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", default=os.path.join("..", "shared", "data", "ml-100k", "raw"))
    parser.add_argument("--losses", nargs="+", default=["bce", "sampled_softmax"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-length", type=int, default=50)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.markdown:
        markdown(args.out, args.raw)
    else:
        run(args)


if __name__ == "__main__":
    main()
