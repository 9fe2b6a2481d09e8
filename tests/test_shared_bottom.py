from keras_mdr.testing import run_model_test


def test_shared_bottom_passes_model_test_case():
    run_model_test("shared_bottom", {"bottom_units": [16, 8], "tower_units": [8], "dropout": 0.1})


def test_shared_bottom_with_domain_task_mean_loss():
    run_model_test("shared_bottom", {"bottom_units": [8], "tower_units": [4], "loss_reduction": "domain_task_mean"})
