"""Sanity check: CESAA learns on the synthetic data; per-domain test AUC and expert utilisation.

Trains `cesaa` (and `shared_bottom` with the same towers, as a yardstick) on
`keras_mdr.data.synthetic(num_rows)` split 80/10/10, with early stopping on the
validation AUC, then prints / writes the test AUC per task and domain and the
share of each domain's test rows routed to each expert.

    python benchmarks/cesaa_learning.py --output benchmarks/results/cesaa_learning.md
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_mdr as km  # noqa: E402


def train_and_report(name, data, train, validation, test, epochs, batch_size, hyper_params):
    keras.utils.set_random_seed(0)
    model = km.build_model(name, features=data.features, domain=data.domain, tasks=data.tasks, data=train,
                           **hyper_params)
    history = km.training.train(
        model, train, validation, epochs=epochs, batch_size=batch_size, early_stopping_patience=2,
        jit_compile=True, seed=0, verbose=0,
    )
    return model, model.evaluate_report(test, batch_size=batch_size), len(history.history["loss"])


def routing_information(table, top_k):
    """`I(D; J)` of a utilisation table, each chosen expert counting `1 / K` of its row."""
    shares = table.filter(like="expert_").to_numpy() / top_k
    rows = table["rows"].to_numpy(dtype=float)
    joint = shares * (rows / rows.sum())[:, None]
    expected = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    present = joint > 0
    return float(np.sum(joint[present] * np.log(joint[present] / expected[present])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--mutual-information-weights", type=float, nargs="+", default=[0.01, 0.1])
    parser.add_argument("--png", default="/tmp/cesaa_utilization_mi{weight}.png")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    data = km.data.synthetic(args.rows)
    train, validation, test = km.data.random_split(data.frame, (0.8, 0.1, 0.1), seed=0)
    cesaa_params = {"num_experts": 8, "top_k": 2, "num_shared_experts": 1}
    runs = [
        (f"cesaa mi={w}", "cesaa", {**cesaa_params, "mutual_information_weight": w})
        for w in args.mutual_information_weights
    ] + [("shared_bottom", "shared_bottom", {"bottom_units": [128, 64]})]
    reports, epochs_run, utilization = {}, {}, {}
    for label, name, params in runs:
        model, reports[label], epochs_run[label] = train_and_report(
            name, data, train, validation, test, args.epochs, args.batch_size, params
        )
        if name == "cesaa":
            weight = params["mutual_information_weight"]
            table = km.training.report_expert_utilization(
                model, test, args.png.format(weight=weight), batch_size=args.batch_size
            )
            utilization[label] = (table, routing_information(table, params["top_k"]))
            print(f"I(D; J) of the test routing: {utilization[label][1]:.4f} nats")

    lines = []
    domains = data.domain.names
    header = "| model | epochs | task | pooled AUC | " + " | ".join(f"AUC {d} (rows)" for d in domains) + " |"
    lines += [header, "|" + "---|" * (4 + len(domains))]
    for name, report in reports.items():
        for task, values in report["tasks"].items():
            cells = [
                "n/a" if values["domains"][d]["auc"] is None
                else f"{values['domains'][d]['auc']:.4f} ({values['domains'][d]['count']})"
                for d in domains
            ]
            cells = [str(epochs_run[name]), task, f"{values['auc']:.4f}"] + cells
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))

    if args.output:
        command = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
        text = [
            "# CESAA learns on the synthetic data",
            "",
            "```bash",
            command,
            "```",
            "",
            f"`keras_mdr.data.synthetic({args.rows})` split 80/10/10 (seed 0); Adam 1e-3, batch {args.batch_size}, "
            f"at most {args.epochs} epochs with early stopping on validation AUC (patience 2, best weights "
            "restored), XLA. CESAA: "
            + ", ".join(f"{k}={v}" for k, v in cesaa_params.items())
            + " and mutual_information_weight as labelled (other hyper-parameters at their defaults); "
            "shared_bottom with bottom [128, 64] and the same "
            "default towers as a yardstick.",
            "",
            "Test AUC (per-domain row counts in brackets; like is only labelled on clicked rows):",
            "",
            *lines,
            "",
            "Share of each domain's test rows routed to each CESAA expert (inference routing; rows sum to K = "
            f"{cesaa_params['top_k']}), and the mutual information `I(D; J)` of that hard routing (a uniform "
            "choice among the K is assumed; at most log D = "
            f"{np.log(data.domain.num_domains):.3f} nats):",
        ]
        for label, (table, information) in utilization.items():
            shares = "```\n" + table.to_string(float_format=lambda v: f"{v:.3f}") + "\n```"
            text += ["", f"{label}: I(D; J) = {information:.4f} nats", "", shares]
        text.append("")
        with open(args.output, "w") as f:
            f.write("\n".join(text))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
