"""The keras-mdr command line: help, quickstart, train/evaluate from a config, and bad input."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from keras_mdr import cli
from keras_mdr.testing import tiny_synthetic

COMMANDS = ["quickstart", "train", "transfer", "convert", "evaluate", "export", "serve", "list-models"]


def test_help_works_for_the_program_and_every_subcommand():
    result = subprocess.run([sys.executable, "-m", "keras_mdr", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0


def test_list_models_prints_registered_names(capsys):
    assert cli.main(["list-models", "-v"]) == 0
    assert "shared_bottom: bottom_units=" in capsys.readouterr().out


def test_quickstart_trains_reports_saves_exports_and_answers_a_grpc_request(tmp_path, capsys):
    output = tmp_path / "qs"
    code = cli.main(["quickstart", "--rows", "3000", "--epochs", "1", "--batch-size", "512", "--output", str(output)])
    assert code == 0
    out = capsys.readouterr().out
    assert "test: AUC / logloss per domain and task" in out
    for domain in ("d0", "d1", "d2", "all"):
        assert f"\n{domain} " in out
    assert (output / "model.keras").exists()
    metrics = json.loads((output / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}
    assert (output / "export" / "quickstart" / "1" / "saved_model.pb").exists()
    assert "gRPC PredictRequest to 127.0.0.1:" in out
    response = out.split("PredictResponse, one probability per task and row:")[1].splitlines()
    assert response[1].split()[0] == "click" and response[2].split()[0] == "like"


@pytest.fixture
def config_file(tmp_path):
    data = tiny_synthetic(900)
    data.frame.rename(columns={"click": "label"}).to_csv(tmp_path / "train.csv.gz", index=False)
    config = {
        "data": {"train": "train.csv.gz", "split": {"seed": 1, "fractions": [0.7, 0.15, 0.15]}},
        "features": [
            {"name": "user_id", "type": "categorical", "embedding_dim": 4},
            {"name": "item_id", "type": "categorical", "dtype": "int64", "embedding_dim": 4},
            {"name": "age", "type": "numeric"},
            {"name": "tags", "type": "multi_categorical", "separator": "|", "embedding_dim": 4},
        ],
        "domain": {"column": "domain"},
        "tasks": [{"name": "click", "label": "label"}, {"name": "like", "label": "like", "mask": "click"}],
        "model": {"name": "shared_bottom", "params": {"bottom_units": [8], "tower_units": [4]}},
        "training": {"epochs": 2, "batch_size": 128, "learning_rate": 0.01, "early_stopping_patience": 1, "seed": 3},
        "output": "run",
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_writes_metrics_per_task_and_domain_and_the_model(config_file, capsys):
    assert cli.main(["train", "--config", str(config_file)]) == 0
    run = config_file.parent / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"validation", "test"}
    test = metrics["test"]
    assert 0 <= test["auc"] <= 1 and test["logloss"] > 0
    for task in ("click", "like"):
        assert set(test["tasks"][task]["domains"]) == {"d0", "d1", "d2"}
        for values in test["tasks"][task]["domains"].values():
            assert set(values) == {"auc", "logloss", "count"}
    assert (run / "model.keras").exists()
    assert not (run / "backup").exists()
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_click/d2/auc"]) >= 1
    assert (run / "report.png").stat().st_size > 20_000  # bars for 2 tasks x 4 groups x 2 splits, 2 curves

    assert cli.main(["evaluate", "--config", str(config_file), "--plot"]) == 0
    assert (run / "evaluation.png").stat().st_size > 20_000
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["test"]["tasks"]["click"]["auc"] == pytest.approx(test["tasks"]["click"]["auc"], abs=1e-6)

    base_dir = config_file.parent / "exports" / "mdr"
    for _ in range(2):
        assert cli.main(["export", "--config", str(config_file), "--base-dir", str(base_dir)]) == 0
    assert sorted(p.name for p in base_dir.iterdir()) == ["1", "2"]
    card = json.loads((base_dir / "2" / "model_card.json").read_text())
    assert card["metrics"]["test"]["tasks"]["click"]["auc"] == pytest.approx(test["tasks"]["click"]["auc"])
    capsys.readouterr()
    assert cli.main(["export", "--model", str(run / "model.keras"), "--base-dir", str(base_dir), "--version", "2"]) == 2
    assert "Version 2 already exists" in capsys.readouterr().err


def test_the_report_plot_is_deterministic(tmp_path):
    from keras_mdr.training.report_plot import plot_report

    def report(auc):
        domains = {d: {"auc": auc + 0.01 * i, "logloss": 0.5, "count": 10} for i, d in enumerate(["d0", "d1", "d2"])}
        return {"auc": auc, "logloss": 0.5, "tasks": {t: {"auc": auc, "logloss": 0.5, "count": 30, "domains": domains}
                                                      for t in ("click", "like")}}

    metrics = {"validation": report(0.7), "test": report(0.68)}
    history = {"loss": [0.9, 0.8, None], "val_loss": [0.95, 0.85, 0.84], "auc": [0.6, 0.65, 0.7],
               "val_auc": [0.6, 0.6, 0.7]}
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    plot_report(metrics, first, history, title="run")
    plot_report(metrics, second, history, title="run")
    assert first.read_bytes() == second.read_bytes() and first.stat().st_size > 20_000
    plot_report(metrics, second)  # the bars alone
    assert second.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convert_writes_shards_and_a_config_that_train_streams(config_file, capsys):
    out = config_file.parent / "shards"
    _edit(config_file, lambda c: c["training"].update(epochs=1))
    assert cli.main(["convert", "--config", str(config_file), "--out", str(out), "--shards", "3"]) == 0
    for split in ("train", "validation", "test"):
        assert sorted(p.name for p in out.glob(f"{split}-*")) == [f"{split}-0000{i}-of-00003.tfrecord" for i in range(3)]
    converted = yaml.safe_load((out / "run.yaml").read_text())
    assert converted["data"]["train"] == "train-*.tfrecord"
    assert converted["domain"]["values"] and all(f.get("vocabulary") or f.get("mean") is not None
                                                  for f in converted["features"])
    assert cli.main(["train", "--config", str(out / "run.yaml")]) == 0
    metrics = json.loads((config_file.parent / "run" / "metrics.json").read_text())
    assert metrics["test"]["tasks"]["click"]["count"] == 135  # 15% of the 900 rows, read from the test shards
    capsys.readouterr()
    assert cli.main(["convert", "--config", str(config_file), "--out", str(out)]) == 2
    assert "already holds TFRecord files" in capsys.readouterr().err


def _edit(config_file, change):
    config = yaml.safe_load(config_file.read_text())
    change(config)
    config_file.write_text(yaml.safe_dump(config))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda c: c["model"].update(name="nope"), "Unknown model 'nope'"),
        (lambda c: c["model"]["params"].update(layers=3), "no hyper-parameter 'layers'"),
        (lambda c: c["features"].append({"name": "missing_col", "type": "numeric"}), "missing feature column 'missing_col'"),
        (lambda c: c["tasks"].append({"name": "buy"}), r"missing label \(task 'buy'\) column 'buy'"),
        (lambda c: c.update(extra=1), r"unknown keys \['extra'\] in 'top level'"),
        (lambda c: c["data"].update(train="nope.csv"), "Data file not found"),
        (lambda c: c["training"].update(epoch=3), r"keys \['epoch'\] in 'training' \(did you mean 'epochs'\?\)"),
        (lambda c: c["features"][0].update(embeding_dim=3), r"\['embeding_dim'\] \(did you mean 'embedding_dim'\?\)"),
        (lambda c: c["model"].update(name="mmoee"), r"Unknown model 'mmoee' \(did you mean 'mmoe'\?\)"),
        (lambda c: c["training"].update(epochs="ten"), r"'training.epochs' must be an integer >= 1, got 'ten'"),
        (lambda c: c["training"].update(learning_rate="fast"), r"'training.learning_rate' must be a number > 0"),
        (lambda c: c["training"].update(jit_compile="yes"), r"'training.jit_compile' must be true or false"),
        (lambda c: c["training"].update(optimizer="adamw"),
         r"'training.optimizer' must be one of \['adam', 'lazy_adam', 'adagrad', 'sgd'\], got 'adamw'"),
        (lambda c: c["training"].update(table_optimizer="ftrl"),
         r"'training.table_optimizer' must be one of \['adam', 'lazy_adam', 'adagrad', 'sgd'\] or null, got 'ftrl'"),
        (lambda c: c["training"].update(table_learning_rate=0),
         r"'training.table_learning_rate' must be a number > 0 or null, got 0"),
        (lambda c: c.update(tasks="click"), r"'tasks' must be a list, got 'click'"),
        (lambda c: c["model"].update(params=[1]), r"'model.params' must be a mapping"),
        (lambda c: c["model"].update(dtype_policy="float16"),
         r"'model.dtype_policy' must be one of \('float32', 'mixed_bfloat16', 'mixed_float16'\), got 'float16'"),
        (lambda c: c["data"].update(split={"seed": "x"}), r"'data.split.seed' must be an integer, got 'x'"),
        (lambda c: c["training"].update(distribution={"strategy": "mirorred"}),
         r"'training.distribution.strategy' must be one of \['mirrored', 'multi_worker'\], got 'mirorred' "
         r"\(did you mean 'mirrored'\?\)"),
        (lambda c: c["training"].update(distribution={}),
         r"'training.distribution.strategy' must be one of \['mirrored', 'multi_worker'\], got None"),
        (lambda c: c["training"].update(distribution="mirrored"), r"'training.distribution' must be a mapping"),
        (lambda c: c["training"].update(distribution={"strategy": "mirrored", "devices": 2}),
         r"unknown keys \['devices'\] in 'training.distribution'"),
    ],
)
def test_bad_configs_exit_2_with_the_problem_named(config_file, capsys, change, message):
    _edit(config_file, change)
    assert cli.main(["train", "--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("keras-mdr train: error:") and err.count("\n") == 1, err
    assert re.search(message, err), err


def test_train_with_a_mirrored_distribution_trains_on_the_strategy_and_writes_the_run(config_file, monkeypatch):
    from keras_mdr import run as run_lib

    strategies, original_train = [], run_lib.train

    def train(model, *args, strategy, **kwargs):
        strategies.append(strategy)
        return original_train(model, *args, strategy=strategy, **kwargs)

    monkeypatch.setattr(run_lib, "train", train)
    _edit(config_file, lambda c: c["training"].update(distribution={"strategy": "mirrored"}, epochs=1))
    assert cli.main(["train", "--config", str(config_file)]) == 0
    assert [type(s).__name__ for s in strategies] == ["MirroredStrategy"]
    run = config_file.parent / "run"
    assert json.loads((run / "metrics.json").read_text())["test"]["auc"] is not None
    assert (run / "model.keras").exists() and not (run / "backup").exists()


def test_the_training_optimizers_of_a_config_are_the_ones_train_compiles_with(config_file, monkeypatch):
    from keras_mdr import run as run_lib

    class Stop(Exception):
        pass

    optimizers = []

    def train(model, *args, optimizer, table_optimizer, table_learning_rate, **kwargs):
        optimizers.append((optimizer, table_optimizer, table_learning_rate))
        raise Stop

    monkeypatch.setattr(run_lib, "train", train)
    _edit(config_file, lambda c: c["training"].update(optimizer="lazy_adam"))
    with pytest.raises(Stop):
        cli.main(["train", "--config", str(config_file)])
    _edit(config_file, lambda c: c["training"].update(optimizer="adam", table_optimizer="adagrad",
                                                      table_learning_rate=0.05))
    with pytest.raises(Stop):
        cli.main(["train", "--config", str(config_file)])
    assert optimizers == [("lazy_adam", None, None), ("adam", "adagrad", 0.05)]


def test_the_dtype_policy_of_a_config_is_the_one_the_trained_model_has(config_file, monkeypatch):
    from keras_mdr import run as run_lib

    class Stop(Exception):
        pass

    policies = []

    def train(model, *args, **kwargs):
        policies.append((model.dtype_policy.name, model.get_layer("probabilities").dtype_policy.name))
        raise Stop

    monkeypatch.setattr(run_lib, "train", train)
    _edit(config_file, lambda c: c["model"].update(dtype_policy="mixed_bfloat16"))
    with pytest.raises(Stop):
        cli.main(["train", "--config", str(config_file)])
    assert policies == [("mixed_bfloat16", "float32")]


def test_invalid_yaml_names_the_file_line_and_column(config_file, capsys):
    config_file.write_text("data: {train: train.csv.gz\nfeatures: []\n")
    assert cli.main(["train", "--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    pattern = r"keras-mdr train: error: config: \S+config.yaml is not valid YAML: .+ \(line 2, column \d+\)\n"
    assert re.fullmatch(pattern, err), err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train", "--config", "no/such/config.yaml"], "Config file not found: no/such/config.yaml"),
        (["serve", "no/such/exports"], "No model base directory at no/such/exports"),
        (["export", "--model", "no/such/model.keras", "--base-dir", "x"], "No trained model at no/such/model.keras"),
        (["quickstart", "--model", "hamurr"], r"Unknown model 'hamurr' \(did you mean 'hamur'\?\)"),
    ],
)
def test_paths_that_do_not_exist_and_unknown_names_exit_2_with_one_line(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


def test_argument_values_out_of_range_are_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["quickstart", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "argument --batch-size: must be an integer > 0, got '0'" in capsys.readouterr().err


def test_verbose_shows_the_traceback_of_a_user_error(config_file, capsys):
    _edit(config_file, lambda c: c["training"].update(epochs=0))
    assert cli.main(["train", "--config", str(config_file), "-v"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in load_config" in err
    assert err.endswith("keras-mdr train: error: config: 'training.epochs' must be an integer >= 1, got 0\n")


def test_an_empty_data_file_is_a_clear_cli_error(config_file, capsys):
    (config_file.parent / "empty.csv").write_text("")
    _edit(config_file, lambda c: c["data"].update(train="empty.csv"))
    assert cli.main(["train", "--config", str(config_file)]) == 2
    assert "is empty" in capsys.readouterr().err


def test_evaluate_without_a_trained_model_says_to_train_first(config_file, capsys):
    assert cli.main(["evaluate", "--config", str(config_file)]) == 2
    assert "run `keras-mdr train" in capsys.readouterr().err


# Quiet start-up -------------------------------------------------------------------------------------


def _env_without_log_level():
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # conftest sets it for the test process; a user's shell has none
    return env


def test_list_models_prints_no_tensorflow_startup_lines():
    """A user's shell: no log level set. `import keras_mdr` loads no TensorFlow, so the CLI sets the level first."""
    script = (
        "import sys, keras_mdr\n"
        "assert 'tensorflow' not in sys.modules, 'import keras_mdr loaded TensorFlow'\n"
        "from keras_mdr import cli\n"
        "sys.exit(cli.main(['list-models']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=_env_without_log_level()
    )
    assert result.returncode == 0, result.stderr
    assert "hamur" in result.stdout.split()
    assert result.stderr == "", f"start-up lines on stderr:\n{result.stderr}"


def test_only_the_command_line_changes_global_logging():
    """Library modules leave the log level, Python logging and stderr to the program that imports them."""
    package = os.path.dirname(cli.__file__)
    allowed = {os.path.join(package, name) for name in ("cli.py", "startup_logs.py")}
    settings = re.compile(r"os\.environ\b.*TF_CPP_MIN_LOG_LEVEL|basicConfig|\.setLevel\(|os\.dup2|set_verbosity")
    offenders = []
    for folder, _, files in os.walk(package):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and path not in allowed:
                with open(path) as f:
                    offenders += [f"{path}:{i}" for i, line in enumerate(f, 1) if settings.search(line)]
    assert not offenders


ABSL_STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796102414.466882    8631 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
    "I0000 00:00:1796102414.522247    8631 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
    "To enable the following instructions: AVX2 FMA, rebuild TensorFlow.\n"
    "E0000 00:00:1796102419.124330    8631 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
    "/site-packages/x.py:3: DeprecationWarning: a Python warning\n"
)


@pytest.mark.parametrize("level,kept", [(3, [5]), (2, [4, 5]), (1, [4, 5]), (0, [0, 1, 2, 3, 4, 5])])
def test_startup_filter_drops_absl_lines_below_the_level_and_keeps_everything_else(level, kept):
    """Line 3 continues line 2's message; absl's notice (line 0) stays only before a kept message."""
    from keras_mdr.startup_logs import filter_startup_lines

    lines = ABSL_STARTUP.splitlines(keepends=True)
    assert filter_startup_lines(ABSL_STARTUP, level) == "".join(lines[i] for i in kept)
