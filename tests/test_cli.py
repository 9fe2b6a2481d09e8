"""The keras-mdr command line: help, quickstart, train/evaluate from a config, and bad input."""

import json
import subprocess
import sys

import pytest
import yaml

from keras_mdr import cli
from keras_mdr.testing import tiny_synthetic

COMMANDS = ["quickstart", "train", "transfer", "evaluate", "export", "serve", "list-models"]


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

    assert cli.main(["evaluate", "--config", str(config_file)]) == 0
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
    ],
)
def test_bad_configs_exit_2_with_the_problem_named(config_file, capsys, change, message):
    _edit(config_file, change)
    assert cli.main(["train", "--config", str(config_file)]) == 2
    err = capsys.readouterr().err
    assert "keras-mdr train: error:" in err
    assert __import__("re").search(message, err), err


def test_an_empty_data_file_is_a_clear_cli_error(config_file, capsys):
    (config_file.parent / "empty.csv").write_text("")
    _edit(config_file, lambda c: c["data"].update(train="empty.csv"))
    assert cli.main(["train", "--config", str(config_file)]) == 2
    assert "is empty" in capsys.readouterr().err


def test_evaluate_without_a_trained_model_says_to_train_first(config_file, capsys):
    assert cli.main(["evaluate", "--config", str(config_file)]) == 2
    assert "run `keras-mdr train" in capsys.readouterr().err
