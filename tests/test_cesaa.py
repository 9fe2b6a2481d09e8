"""CESAA end to end, and the expert utilisation report."""

import keras
import numpy as np

import keras_mdr as km
from keras_mdr.testing import run_model_test, tiny_synthetic

SMALL = {"num_experts": 4, "top_k": 2, "expert_units": [8], "tower_units": [4], "domain_embedding_dim": 2}


def test_cesaa_passes_model_test_case_with_one_task():
    data = tiny_synthetic(num_rows=512)
    run_model_test("cesaa", SMALL, data=data._replace(tasks=data.tasks[:1]))


def test_cesaa_passes_model_test_case_with_two_tasks_and_grouped_training():
    hyper_params = {**SMALL, "dispatch": "grouped", "num_shared_experts": 2}
    run_model_test("cesaa", hyper_params, data=tiny_synthetic(num_rows=512))


def test_expert_utilization_report_rows_sum_to_k_and_writes_heat_map(tmp_path):
    data = tiny_synthetic(num_rows=300)
    model = km.build_model(
        "cesaa", features=data.features, domain=data.domain, tasks=data.tasks, data=data.frame,
        **{**SMALL, "num_experts": 5, "top_k": 3},
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    printed = []
    report = km.training.ExpertUtilizationReport(
        data.frame, png_path=str(tmp_path / "utilization_{epoch}.png"), print_fn=printed.append
    )
    model.fit(data.frame, epochs=1, batch_size=300, verbose=0, callbacks=[report])

    table = report.table
    shares = table.filter(like="expert_")
    assert list(table.index) == model.domain.names and shares.shape == (model.domain.num_domains, 5)
    np.testing.assert_allclose(shares.sum(axis=1), 3.0, atol=1e-9)
    counts = data.frame["domain"].value_counts()
    assert table["rows"].to_dict() == {name: counts[name] for name in model.domain.names}
    assert "expert_4" in printed[-1]
    png = (tmp_path / "utilization_1.png").read_bytes()
    assert png.startswith(b"\x89PNG")
