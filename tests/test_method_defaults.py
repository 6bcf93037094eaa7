"""Literature defaults per dataset family and cells for some settings only: what ``default`` (and a
left-out parameter) resolves to on each dataset, with its source, and ``setting_methods``."""

from __future__ import annotations

import pytest

from smoothbench import data, methods as registry
from smoothbench.study import grid

# the authors' values, written here from their sources (the APL configs, the authors' configs)
SCE = {"mnist": (0.01, 1.0), "cifar10": (0.1, 1.0), "cifar100": (6.0, 0.1)}
NCE_RCE = {"mnist": (1.0, 10.0), "cifar10": (1.0, 1.0), "cifar100": (10.0, 0.1)}
ELR = {"cifar10": (3.0, 0.7), "cifar100": (7.0, 0.9)}
JOCOR = {"mnist": (0.95, 10.0), "cifar10": (0.9, 10.0), "cifar100": (0.85, 10.0)}


def _study(datasets, methods, **more) -> dict:
    return {"datasets": datasets, "noise": {"symmetric": [0.2, 0.4]}, "methods": methods, "seeds": [0],
            "protocol": {"default": {"model": "mlp", "variants": {"direct": {"epochs": 1}}}}, **more}


def test_default_resolves_to_the_authors_values_of_the_datasets_family():
    for family, values in SCE.items():
        assert registry.get("sce").settings("default", family=family) == values
    for family, values in NCE_RCE.items():
        assert registry.get("nce_rce").settings("default", family=family) == values
    for family, values in ELR.items():
        assert registry.get("elr").settings("default", family=family) == values
    for family, values in JOCOR.items():
        assert registry.get("jocor").settings("default", family=family) == values
    assert registry.get("forward_est").settings("default", family="cifar100") == (100.0,)
    assert registry.get("peer").settings("default", family="cifar100") == (0.95, 0.0)


def test_a_family_without_the_authors_value_takes_their_cifar10_value_else_their_mnist_value():
    assert registry.get("sce").settings("default", family="tabular") == SCE["cifar10"]
    assert registry.get("elr").settings("default", family="mnist") == ELR["cifar10"]
    assert registry.get("boot_soft").settings("default", family="cifar100") == (0.95,)      # Reed et al.: MNIST only
    assert registry.get("sce").settings("default") == registry.get("sce").defaults == SCE["cifar10"]
    # without a CIFAR-10 value, the MNIST value comes before the CIFAR-100 one
    toy = registry.Method("toy", "toy", (registry.Param("a", "a", 1.0, "a weight", low=0.0),), lambda b, p: b.nll,
                          "a test's", "a test's method",
                          literature=(registry.Literature(("cifar100",), {"a": 3.0}, "here"),
                                      registry.Literature(("mnist",), {"a": 2.0}, "here")))
    assert toy.defaults_for("tabular") == (2.0,) and toy.defaults_for("cifar100") == (3.0,)


def test_left_out_parameters_take_the_familys_value_too():
    sce = registry.get("sce")
    assert sce.settings({"beta": 2.0}, family="mnist") == (0.01, 2.0)
    assert sce.settings(0.5, family="cifar100") == (0.5, 0.1)
    assert registry.parse_cells("sce,elr:5", family="cifar100") == [registry.cell("sce", SCE["cifar100"]),
                                                                      registry.cell("elr", (5.0, 0.9))]


def test_every_literature_entry_names_registered_families_and_a_source():
    for name in registry.names():
        for lit in registry.get(name).literature:
            assert set(lit.families) <= set(data.FAMILIES) and lit.source, name


def test_the_study_resolves_defaults_per_dataset_and_own_files_by_their_family():
    params = grid.validate_params(_study(["mnist5k", "breast_cancer", "digits"], {"ce": [0.0], "sce": ["default"]}))
    by = {g.dataset: [c.id for c in g.cells] for g in grid.expand_groups(params)}
    assert by == {"mnist5k": ["ce_0", "sce_0.01_1"], "breast_cancer": ["ce_0", "sce_0.1_1"],
                  "digits": ["ce_0", "sce_0.1_1"]}
    assert grid.family_of({"dataset_files": {"mine": {"format": "npz", "path": "data-in/x.npz", "family": "cifar100"}}},
                          "mine") == "cifar100"
    assert grid.family_of({"dataset_files": {"mine": {"format": "npz", "path": "data-in/x.npz"}}}, "mine") is None


def test_setting_methods_add_cells_to_the_named_settings_only():
    params = grid.validate_params(_study(["digits", "mnist1d"], {"ce": [0.0]}, setting_methods=[
        {"dataset": "digits", "noise": {"symmetric": [0.4]}, "methods": {"coteach": ["default"]}}]))
    cells = {(g.dataset, g.noise_rate): [c.id for c in g.cells] for g in grid.expand_groups(params)}
    assert cells == {("digits", "0.2"): ["ce_0"], ("digits", "0.4"): ["ce_0", "coteach_10"],
                     ("mnist1d", "0.2"): ["ce_0"], ("mnist1d", "0.4"): ["ce_0"]}
    assert grid.report_keys(params)[("digits", "symmetric", "direct")] == {"ce", "coteach"}
    # two models per cell: 1 epoch of ce everywhere, 2 model-epochs for the coteach cell
    assert grid.model_epochs(params) == 4 * 1 + 2


@pytest.mark.parametrize("entry, expected", [
    ({"dataset": "mnist5k", "noise": {"symmetric": [0.4]}, "methods": {"gce": [0.7]}},
     "params: setting_methods[0].dataset = \"mnist5k\": mnist5k is not in datasets (digits)"),
    ({"dataset": "digits", "noise": {"symmetric": [0.3]}, "methods": {"gce": [0.7]}},
     "params: setting_methods[0].noise.symmetric[0] = 0.3: digits has no such noise setting; its settings: "
     "symmetric 0.2, symmetric 0.4"),
    ({"dataset": "digits", "noise": {"symmetric": [0.2]}, "methods": {"ce": [0.0]}},
     "params: setting_methods[0].methods.ce[0] = 0.0: the same cell as methods.ce"),
])
def test_setting_methods_errors_are_one_line_naming_the_entry(entry, expected):
    with pytest.raises(ValueError) as info:
        grid.validate_params(_study(["digits"], {"ce": [0.0]}, setting_methods=[entry]))
    assert str(info.value) == expected


def test_train_finds_the_family_of_a_registered_datasets_file(tmp_path, capsys):
    """``smoothbench train`` fills the parameters left out of --cells with the values of the family
    of the registered dataset its --data file holds (parse_cells with it: tested above); a file it
    cannot read gives none; an unknown --family is one line."""
    import numpy as np

    from smoothbench.cli import commands as cli
    from smoothbench.data import datasets as data_mod

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(40, 1, 28, 28), dtype=np.uint8)
    y = np.arange(40) % 10
    path = tmp_path / "mnist5k.npz"
    data_mod.save_dataset(path, name="mnist5k", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20],
                          class_names=[str(i) for i in range(10)])
    assert cli._dataset_family(str(path)) == "mnist"
    assert cli._dataset_family(str(tmp_path / "missing.npz")) is None
    assert cli.main(["train", "--data", str(path), "--labels", "x.npz", "--cells", "sce", "--protocol", "{}",
                     "--out", "o", "--family", "imagenet"]) != 0
    assert capsys.readouterr().err.strip().endswith("--family 'imagenet' is unknown; allowed: mnist, cifar10, "
                                                    "cifar100, tabular")
