"""The study file: params.yaml -> validated params -> groups, cells and protocols.

Fast: no training, no Snakemake. Every bad value must give ONE line naming the file,
the key path and what is allowed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from smoothbench.core import vocabulary as cells, schema
from smoothbench.cli import commands as cli
from smoothbench.study import grid
from smoothbench import methods as registry

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "config").glob("*.yaml"))
# the presets of the reference's CIFAR pipeline (the others: studies of the default study's data)
CIFAR_PRESETS = [p for p in PRESETS if p.name.startswith(("paper-", "robust-"))]


def study(**changes) -> dict:
    """A small valid study; keyword arguments replace top-level keys."""
    params = {
        "datasets": ["digits", "mnist1d"],
        "noise": {"symmetric": [0.0, 0.2, 0.4, 0.6], "pairflip": [0.2, 0.4]},
        "methods": {"ce": [0.0], "ls": [0.2, 0.4, 0.6], "nls": [-0.2, -0.4, -1.0, -2.0],
                    "flip": [0.18, 0.36, 0.54]},
        "seeds": [0, 1],
        "protocol": {"default": {"model": "mlp", "variants": {"direct": {
                                     "epochs": 30, "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}}}},
                     "digits": {"variants": {"direct": {"epochs": 40, "optimizer": {"lr": 0.05}}}}},
    }
    params.update(changes)
    return params


def error_of(params: dict, source: str = "params.yaml") -> str:
    with pytest.raises(ValueError) as info:
        grid.validate_params(params, source=source)
    text = str(info.value)
    assert "\n" not in text, f"error must be one line: {text!r}"
    assert text.startswith(f"{source}: "), text
    return text


# --------------------------------------------------------------------------- groups


def test_expand_groups_counts_and_order():
    p = grid.validate_params(study())
    groups = grid.expand_groups(p)
    assert len(groups) == 2 * (4 + 2) * 2          # datasets x (symmetric + pairflip rates) x seeds
    assert len({g.id for g in groups}) == len(groups)
    assert all(len(g.cells) == 1 + 3 + 4 + 3 for g in groups)
    first = groups[0]
    assert (first.dataset, first.noise_kind, first.noise_rate, first.seed) == ("digits", "symmetric", "0", 0)
    assert [g.id for g in groups[:3]] == ["digits-symmetric-0-s0", "digits-symmetric-0-s1", "digits-symmetric-0.2-s0"]
    assert groups[-1].id == "mnist1d-pairflip-0.4-s1"


def test_group_paths_and_cells_spec():
    g = grid.expand_groups(grid.validate_params(study()))[5]
    assert g.id == "digits-symmetric-0.4-s1" == cells.group_id(g.dataset, g.noise_kind, g.noise_rate, g.seed)
    assert g.out_dir == "results/digits/symmetric-0.4/seed1"
    assert g.group_json == "results/digits/symmetric-0.4/seed1/group.json"
    assert g.labels_path == "noisy/digits/symmetric-0.4-s1.npz"
    assert g.data_path == "data/digits.npz"
    assert g.cells_spec == "ce:0,ls:0.2,ls:0.4,ls:0.6,nls:-2,nls:-1,nls:-0.4,nls:-0.2,flip:0.18,flip:0.36,flip:0.54"
    assert registry.parse_cells(g.cells_spec) == list(g.cells)


def test_jobs_are_the_settings_with_all_their_seeds():
    p = grid.validate_params(study())
    jobs = grid.expand_jobs(p)
    assert len(jobs) == 2 * (4 + 2)                             # one per (dataset, noise kind, rate)
    assert [g.seed for g in jobs[2].groups] == [0, 1] and jobs[2].id == "digits-symmetric-0.4"
    assert jobs[2].checkpoint_dir == "checkpoints/results/digits/symmetric-0.4"      # per study: its results folder
    assert [g for j in jobs for g in j.groups] == grid.expand_groups(p)


def test_a_dataset_can_have_its_own_methods():
    """dataset_methods replaces `methods` for one dataset (flip rates that match its K, no BCE
    family where it equals softmax GLS); each grid is checked against its datasets' K."""
    bc_noise = {"breast_cancer": {"symmetric": [0.0, 0.4]}}
    p = grid.validate_params(study(datasets=["mnist5k", "breast_cancer"], dataset_noise=bc_noise,
                                   dataset_methods={"breast_cancer": {"ce": [0], "flip": [0.2], "gce": ["default"]}}))
    cells_of = {g.dataset: [c.id for c in g.cells] for g in grid.expand_groups(p)}
    assert cells_of["breast_cancer"] == ["ce_0", "flip_0.2", "gce_0.7"]
    assert cells_of["mnist5k"][0] == "ce_0" and "flip_0.54" in cells_of["mnist5k"]
    assert grid.report_keys(p)[("breast_cancer", "symmetric", "direct")] == {"ce", "flip", "gce"}
    assert error_of(study(datasets=["mnist5k", "breast_cancer"], dataset_noise=bc_noise)).startswith(
        "params.yaml: methods.flip[2] = 0.54: flip rate ε = 0.54 exceeds (K-1)/K = 0.5 (K = 2)")


def test_results_dir_is_configurable():
    p = grid.validate_params(study(output={"results_dir": "out/res"}))
    assert grid.expand_groups(p)[0].out_dir == "out/res/digits/symmetric-0/seed0"


def test_human_label_sets_go_with_their_dataset():
    p = grid.validate_params(study(datasets=["cifar10", "cifar100"],
                                   noise={"human": ["aggre", "worst", "noisy100"]}, seeds=[0]))
    ids = [g.id for g in grid.expand_groups(p)]
    assert ids == ["cifar10-human-aggre-s0", "cifar10-human-worst-s0", "cifar100-human-noisy100-s0"]
    assert list(grid.report_keys(p)) == [("cifar10", "human", "direct"), ("cifar100", "human", "direct")]


def test_a_dataset_can_have_its_own_noise_grid():
    """dataset_noise replaces `noise` for one dataset: a binary dataset's symmetric rates stay
    below 0.5 while K = 10 datasets go to 0.6; each grid is checked against its datasets' K."""
    p = grid.validate_params(study(datasets=["mnist5k", "breast_cancer"], methods={"ce": [0], "ls": [0.2]},
                                   noise={"symmetric": [0.0, 0.6], "pairflip": [0.3]},
                                   dataset_noise={"breast_cancer": {"symmetric": [0.0, 0.4]}}, seeds=[0]))
    ids = [g.id for g in grid.expand_groups(p)]
    assert ids == ["mnist5k-symmetric-0-s0", "mnist5k-symmetric-0.6-s0", "mnist5k-pairflip-0.3-s0",
                   "breast_cancer-symmetric-0-s0", "breast_cancer-symmetric-0.4-s0"]
    bad = study(datasets=["mnist5k", "breast_cancer"], methods={"ce": [0]},
                dataset_noise={"breast_cancer": {"symmetric": [0.5]}})
    assert error_of(bad) == ("params.yaml: dataset_noise.breast_cancer.symmetric[0] = 0.5: symmetric noise rates "
                             "must lie in [0, 0.5) for breast_cancer (K = 2 classes)")
    assert error_of(study(dataset_noise={"cifar10": {"symmetric": [0.2]}})).startswith(
        "params.yaml: dataset_noise.cifar10 = ")


def test_single_cell_study():
    p = grid.validate_params(study(datasets=["digits"], noise={"symmetric": [0.4]},
                                   methods={"nls": [-0.4]}, seeds=[3]))
    (g,) = grid.expand_groups(p)
    assert g.id == "digits-symmetric-0.4-s3"
    assert [c.id for c in g.cells] == ["nls_-0.4"]


# --------------------------------------------------------------------------- protocols


def test_protocol_deep_merge_and_defaults():
    p = grid.validate_params(study())
    digits = grid.protocol_for(p, "digits")["variants"]["direct"]
    mnist1d = grid.protocol_for(p, "mnist1d")["variants"]["direct"]
    assert digits["epochs"] == 40 and mnist1d["epochs"] == 30
    assert digits["optimizer"]["lr"] == 0.05 and mnist1d["optimizer"]["lr"] == 0.1
    assert digits["optimizer"]["momentum"] == 0.9  # kept from the default: merged, not replaced
    for ds in ("digits", "mnist1d"):  # complete: every key of the engine's contract
        proto = grid.protocol_for(p, ds)
        assert set(proto) == {"model", "model_args", "init", "batch_size", "drop_last", "variants", "augment",
                              "normalize", "val_fraction", "checkpoint_every", "ece_bins", "device", "precision"}
        v = proto["variants"]["direct"]
        assert v["optimizer"]["nesterov"] is True and v["optimizer"]["weight_decay"] == 5e-4
        assert v["schedule"] == {"name": "cosine", "milestones": [], "gamma": 0.1}
        assert v["warmup"]["epochs"] == 0 and v["warmup"]["branch"] == "last"
        assert proto["augment"] == {"crop_padding": 0, "hflip": False, "pad_fill": "mean"}
        assert (proto["init"], proto["drop_last"], proto["normalize"]) == ("kaiming_normal", True, None)
        assert (proto["val_fraction"], proto["checkpoint_every"], proto["ece_bins"]) == (0.1, 5, 15)
        assert (proto["device"], proto["precision"], proto["batch_size"]) == ("auto", "auto", 128)


def test_protocol_of_dataset_without_override_is_the_default():
    p = grid.validate_params(study())
    assert grid.protocol_for(p, "cifar10") == grid.protocol_for(p, "mnist1d")


def test_per_dataset_overrides_stay_partial():
    p = grid.validate_params(study())
    assert p["protocol"]["digits"] == {"variants": {"direct": {"epochs": 40, "optimizer": {"lr": 0.05}}}}


def test_defaults_filled():
    p = grid.validate_params({"datasets": ["digits"], "noise": {"symmetric": [0.2]},
                              "methods": {"ls": [0.1]}, "seeds": [0]})
    assert p["noise_options"] == {}
    assert p["data"] == {"cache_dir": "cache"}
    assert p["output"] == {"results_dir": "results", "reports_dir": "reports"}
    assert p["protocol"]["default"]["model"] == "mlp"
    assert p["noise_seed"] is None
    direct = grid.protocol_for(p, "digits")["variants"]["direct"]
    assert direct["epochs"] == 30
    assert direct["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def test_validate_does_not_mutate_its_input():
    raw = study()
    before = copy.deepcopy(raw)
    grid.validate_params(raw)
    assert raw == before


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["methods"].update(foo=[0.1]),
     "params.yaml: methods.foo: unknown key; allowed: backward, backward_est, bce, bls, bnls, boot_hard, boot_soft, ce, coteach"),
    (lambda p: p["methods"]["ls"].__setitem__(2, 1.5), "params.yaml: methods.ls[2] = 1.5: must be <= 1"),
    (lambda p: p["methods"]["nls"].__setitem__(0, 0.3), "params.yaml: methods.nls[0] = 0.3: must be < 0"),
    (lambda p: p["methods"]["ce"].__setitem__(0, 0.1), "params.yaml: methods.ce[0] = 0.1: must be <= 0"),
    (lambda p: p["methods"]["flip"].append(0.0), "params.yaml: methods.flip[3] = 0.0: must be > 0"),
    (lambda p: p["methods"]["flip"].append(0.95),
     "params.yaml: methods.flip[3] = 0.95: flip rate ε = 0.95 exceeds (K-1)/K = 0.9 (K = 10): its LS twin "
     "r = εK/(K-1) = 1.05556 would be above 1 on digits"),
    (lambda p: p["methods"]["ls"].append("x"),
     'params.yaml: methods.ls[3] = "x": must be a number (r), a mapping of r, or "default"'),
    (lambda p: p["methods"].update(sce=[{"alpha": -1}]), "params.yaml: methods.sce[0].alpha = -1: must be > 0"),
    (lambda p: p["methods"].update(sce=[{"alpha": "x"}]),
     'params.yaml: methods.sce[0].alpha = "x": must be a number (a setting is a number (alpha), a mapping of alpha, '
     'beta, or "default")'),
    (lambda p: p["methods"].update(sce=[{"gamma": 1}]),
     "params.yaml: methods.sce[0].gamma: unknown key; allowed: alpha, beta"),
    (lambda p: p["methods"].update(forward=[1]),
     'params.yaml: methods.forward[0] = 1: must be "default" (it has no parameters)'),
    (lambda p: p["methods"].update(elr=[{"beta": 1}]), "params.yaml: methods.elr[0].beta = 1: must be < 1"),
    (lambda p: p["methods"].update(sce=[0.1, {"alpha": 0.1, "beta": 1}]),
     "params.yaml: methods.sce[1] = {\"alpha\": 0.1, \"beta\": 1}: the same cell as methods.sce[0]"),
    (lambda p: p.update(dataset_methods={"cifar10": {"ce": [0]}}), "params.yaml: dataset_methods.cifar10 = "),
    (lambda p: p.update(noise_seed="abc"), 'params.yaml: noise_seed = "abc": must be null or an integer'),
    (lambda p: p.update(noise_seed=-2), "params.yaml: noise_seed = -2: must be >= 0"),
    (lambda p: p["noise"]["pairflip"].__setitem__(1, 0.5),
     "params.yaml: noise.pairflip[1] = 0.5: pairflip noise rates must lie in [0, 0.5) for digits (K = 10 classes)"),
    (lambda p: p["noise"]["symmetric"].append(1.0),
     "params.yaml: noise.symmetric[4] = 1.0: symmetric noise rates must lie in [0, 0.9) for digits (K = 10 classes)"),
    (lambda p: p["noise"].update(asymmetric=[-0.1]),
     "params.yaml: noise.asymmetric[0] = -0.1: asymmetric noise rates must lie in [0, 0.5) for digits (K = 10 classes)"),
    (lambda p: p["noise"].update(instance=[1.2]),
     "params.yaml: noise.instance[0] = 1.2: instance noise rates must lie in [0, 1) for digits (K = 10 classes)"),
    (lambda p: p["noise"].update(gaussian=[0.2]),
     "params.yaml: noise.gaussian: unknown key; allowed: annotations, asymmetric, human, instance, pairflip, "
     "symmetric"),
    (lambda p: p["noise"].update(human=["aggre"]),
     "params.yaml: noise.human[0] = \"aggre\": the label set aggre belongs to cifar10, which is not in datasets"),
    (lambda p: p["noise"].update(human=["best"]),
     'params.yaml: noise.human[0] = "best": allowed: aggre, random1, random2, random3, worst, noisy100'),
    (lambda p: p["datasets"].append("imagenet"),
     'params.yaml: datasets[2] = "imagenet": allowed: digits, mnist1d, mnist5k, breast_cancer, mnist, fashion_mnist, cifar10, cifar100'),
    (lambda p: p.update(datasets=[]), "params.yaml: datasets = []: the grid is empty"),
    (lambda p: p.update(seeds=[]), "params.yaml: seeds = []: the grid is empty"),
    (lambda p: p.update(methods={"ls": [], "nls": []}),
     "params.yaml: methods.ls = []: must list at least one value (leave the key out to leave it out)"),
    (lambda p: p.update(noise={"symmetric": []}),
     "params.yaml: noise.symmetric = []: must list at least one value (leave the key out to leave it out)"),
    (lambda p: p.update(methods={}), "params.yaml: methods = {}: the grid is empty"),
    (lambda p: p["protocol"]["default"].update(foo=1),
     "params.yaml: protocol.default.foo: unknown key; allowed: augment, batch_size, checkpoint_every, device"),
    (lambda p: p["protocol"]["digits"].update(dropout=0.5),
     "params.yaml: protocol.digits.dropout: unknown key; allowed:"),
    (lambda p: p["protocol"]["default"]["variants"]["direct"]["optimizer"].update(name="adam"),
     'params.yaml: protocol.default.variants.direct.optimizer.name = "adam": allowed: sgd'),
    (lambda p: p["protocol"]["digits"].update(model="vit"),
     'params.yaml: protocol.digits.model = "vit": allowed: mlp, cnn, resnet18, resnet34, fastnet'),
    (lambda p: p["protocol"]["digits"]["variants"]["direct"].update(epochs=0),
     "params.yaml: protocol.digits.variants.direct.epochs = 0: must be >= 1"),
    (lambda p: p["protocol"]["digits"]["variants"].update(Warm={}),
     "params.yaml: protocol.digits.variants.Warm: key \"Warm\" must match ^[a-z][a-z0-9]*$"),
    (lambda p: p["protocol"]["default"]["variants"]["direct"].update(warmup={"epochs": 3, "branch": "oracle"}),
     'params.yaml: protocol.default.variants.direct.warmup.branch = "oracle": allowed: last, selected, best'),
    (lambda p: p["protocol"]["default"].update(val_fraction=0.0, variants={"w": {"warmup": {"epochs": 2,
                                                                                       "branch": "selected"}}}),
     'params.yaml: protocol.default.variants.w.warmup.branch = "selected": branching at the best held-out epoch '
     "needs a held-out split (val_fraction > 0)"),
    (lambda p: p["protocol"]["default"].update(normalize={"mean": [0.5], "std": [0.5, 0.2]}),
     "params.yaml: protocol.default.normalize.std = [0.5, 0.2]: needs one value per mean (1)"),
    (lambda p: p["protocol"]["default"].update(normalize={"mean": [0.5], "std": [0.0]}),
     "params.yaml: protocol.default.normalize"),
    (lambda p: p["protocol"]["default"].update(init="xavier"),
     'params.yaml: protocol.default.init = "xavier": allowed: kaiming_normal, torch_default'),
    (lambda p: p.update(noise_seed=-1), "params.yaml: noise_seed"),
    (lambda p: p.update(noise_options={"pairflip": {"pairs": "random"}}),
     'params.yaml: noise_options.pairflip.pairs = "random": allowed: reference, cyclic'),
    (lambda p: p.update(datasets=["breast_cancer"], noise={"pairflip": [0.2]}, methods={"ce": [0]}),
     'params.yaml: noise_options.pairflip.pairs = "reference": the reference pairs are for K = 10 classes; '
     "breast_cancer has K = 2: set noise_options.pairflip.pairs: cyclic"),
    (lambda p: p["protocol"]["digits"].update(batch_size=0),
     "params.yaml: protocol.digits.batch_size = 0: must be >= 1"),
    (lambda p: p["protocol"]["default"].update(val_fraction=0.5),
     "params.yaml: protocol.default.val_fraction = 0.5: must be < 0.5"),
    (lambda p: p["protocol"]["default"].update(device="tpu"),
     'params.yaml: protocol.default.device = "tpu": allowed: auto, cpu, cuda'),
    (lambda p: p["protocol"].update(imagenet={}),
     "params.yaml: protocol.imagenet: unknown key; allowed: default, digits, mnist1d"),
    (lambda p: p["protocol"]["default"]["variants"]["direct"].update(schedule={"name": "multistep"}),
     "params.yaml: protocol.default.variants.direct.schedule.milestones = []: multistep needs milestones"),
    (lambda p: p["protocol"]["digits"]["variants"]["direct"].update(optimizer={"momentum": 0.0}),
     "params.yaml: protocol.digits.variants.direct.optimizer.momentum = 0.0: nesterov needs momentum > 0"),
    # what depends on a dataset's inputs and its noise's T, known before any job (digits: vectors (64,), K = 10)
    (lambda p: p["protocol"]["default"].update(model="fastnet"),
     'params.yaml: protocol.default.model = "fastnet": for digits, needs image input_shape (C, H, W), got (64,); '
     "for vectors use mlp"),
    (lambda p: p["protocol"]["default"].update(model_args={"pool": 2}),
     "params.yaml: protocol.default.model_args.pool = 2: for digits, pooling (> 1) is for image inputs (C, H, W); "
     "these are vectors (64,): set pool: 1"),
    (lambda p: p["protocol"]["default"].update(normalize={"mean": [0.5] * 3, "std": [0.2] * 3}),
     "params.yaml: protocol.default.normalize.mean = [0.5, 0.5, 0.5]: for digits, needs one value per input feature; "
     "the inputs have 64 features"),
    (lambda p: p["noise"].update(asymmetric=[0.2]),
     "params.yaml: noise.asymmetric[0] = 0.2: asymmetric noise on digits needs a class_map {source class: target "
     "class}: give it as noise_options.asymmetric.map.digits in params.yaml (--option map=... of the noise step); "
     "built-in maps exist for cifar10, cifar100"),
    (lambda p: p.update(noise={"asymmetric": [0.2]}, noise_options={"asymmetric": {"map": {"digits": {"3": 10}}}}),
     'params.yaml: noise_options.asymmetric.map.digits = {"3": 10}: class_map entry 3: 10 must map a class in [0, 10) '
     "to another one"),
    (lambda p: p.update(datasets=["cifar10"], noise={"asymmetric": [0.2]},
                        noise_options={"asymmetric": {"map": {"cifar10": {"3": 5}}}}),
     'params.yaml: noise_options.asymmetric.map.cifar10 = {"3": 5}: dataset cifar10 has a built-in asymmetric map; '
     "drop the map option"),
    (lambda p: p["seeds"].append(0), "params.yaml: seeds[2] = 0: listed twice (also at seeds[0])"),
    (lambda p: p["methods"]["ls"].append(0.2), "params.yaml: methods.ls[3] = 0.2: the same cell as methods.ls[0]"),
    (lambda p: p.pop("seeds"), "params.yaml: seeds: missing; this key is required"),
    (lambda p: p.update(epochs=3), "params.yaml: epochs: unknown key; allowed: analysis, data, dataset_files, "
     "dataset_methods, dataset_noise, datasets"),
])
def test_bad_value_gives_one_line_naming_the_key(mutate, expected):
    params = study()
    mutate(params)
    assert error_of(params).startswith(expected)


def test_symmetric_rate_limit_depends_on_classes():
    # K = 10: at (K-1)/K = 0.9 every label is uniform; below [0, 1) but above 0.9 is refused too
    text = error_of(study(noise={"symmetric": [0.95]}))
    assert text == "params.yaml: noise.symmetric[0] = 0.95: symmetric noise rates must lie in [0, 0.9) " \
                   "for digits (K = 10 classes)"
    grid.validate_params(study(datasets=["cifar100"], noise={"symmetric": [0.95]}))  # K = 100: fine


def test_not_a_mapping():
    assert error_of([1, 2]).startswith("params.yaml: must hold a mapping")


def test_load_params_reports_bad_yaml_in_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("datasets: [digits\nnoise: {}\n")
    with pytest.raises(ValueError) as info:
        grid.load_params(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}: not valid YAML")


def test_load_params_names_the_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study(methods={"ls": [1.5]})))
    with pytest.raises(ValueError, match=r"^.*study\.yaml: methods\.ls\[0\] = 1\.5: must be <= 1$"):
        grid.load_params(path)
    with pytest.raises(FileNotFoundError):
        grid.load_params(tmp_path / "missing.yaml")


STUDY_TEXT = """\
datasets: [digits]
noise: {symmetric: [0.2]}
methods:
  ce: [0.0]
  ls: [0.2]
seeds: [0]
"""


@pytest.mark.parametrize("text, expected", [
    (STUDY_TEXT + "methods: {ls: [0.4]}\n", "methods: written twice (line 3 and line 7)"),
    (STUDY_TEXT.replace("  ls: [0.2]\n", "  ls: [0.2]\n  nls: [-0.2]\n  ls: [0.4]\n"),
     "methods.ls: written twice (line 5 and line 7)"),
    (STUDY_TEXT + "protocol:\n  default:\n    variants:\n      direct: {epochs: 2, epochs: 3}\n",
     "protocol.default.variants.direct.epochs: written twice (line 10, columns 16 and 27)"),
    (STUDY_TEXT.replace("ls: [0.2]", "sce: [{alpha: 0.1, beta: 1}, {alpha: 0.2, alpha: 0.3}]"),
     "methods.sce[1].alpha: written twice (line 5, columns 33 and 45)"),
    (STUDY_TEXT + "noise_options:\n  asymmetric:\n    map: {digits: {1: 7, 01: 2}}\n",     # one key as YAML reads it
     "noise_options.asymmetric.map.digits.1: written twice (line 9, columns 20 and 26)"),
])
def test_a_key_written_twice_is_one_line_naming_both_places(tmp_path, capsys, text, expected):
    """YAML keeps the last of a key written twice; a study file refuses it, in any mapping, and
    every command that reads a study file reads it so."""
    path = tmp_path / "study.yaml"
    path.write_text(text)
    line = f"{path}: {expected}; a key may appear once in a mapping (YAML keeps only the last): keep one"
    with pytest.raises(ValueError) as info:
        grid.load_params(path)
    assert str(info.value) == line
    for command in ("validate", "grid"):
        assert cli.main([command, str(path)]) == 2
        assert capsys.readouterr().err.strip() == f"smoothbench {command}: error: {line}"


def test_a_merged_key_may_be_overridden(tmp_path):
    """A YAML merge (``<<: *anchor``) and a key of the mapping it is merged into are not a key
    written twice: the mapping's own key wins, as YAML says."""
    path = tmp_path / "study.yaml"
    path.write_text(STUDY_TEXT + "sgd: &sgd {name: sgd, lr: 0.1, momentum: 0.9}\nprotocol:\n  default:\n"
                    "    variants: {direct: {epochs: 2, optimizer: {<<: *sgd, lr: 0.05}}}\n")
    raw = grid.read_study(path)
    assert raw["protocol"]["default"]["variants"]["direct"]["optimizer"] == {"name": "sgd", "lr": 0.05,
                                                                             "momentum": 0.9}


def test_cli_validate_prints_one_line_and_fails(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study(noise={"pairflip": [0.7]})))
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"smoothbench validate: error: {path}: noise.pairflip[0] = 0.7: " \
                  "pairflip noise rates must lie in [0, 0.5) for digits (K = 10 classes)"


# --------------------------------------------------------------------------- files


def test_the_schema_ships_inside_the_package_and_the_workflow_points_to_it():
    import tomllib

    assert schema.SCHEMA_PATH.parent == Path(schema.__file__).resolve().parent
    assert schema.SCHEMA_PATH.is_file()
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "core/*.yaml" in data_files["smoothbench"]
    pointer = ROOT / "workflow" / "schemas" / "params.schema.yaml"
    assert pointer.is_symlink() and pointer.resolve() == schema.SCHEMA_PATH


def test_committed_params_validate():
    p = grid.load_params(ROOT / "params.yaml")
    groups = grid.expand_groups(p)
    assert {g.dataset for g in groups} == {"mnist5k", "breast_cancer"}    # real data, embedded
    seeds = len(p["seeds"])
    assert len(groups) == (3 + 2) * seeds + 3 * seeds   # mnist5k (symmetric + pairflip) + breast_cancer
    assert len(grid.expand_jobs(p)) == 3 + 2 + 3       # one training job per setting, all its seeds
    assert all(grid.protocol_for(p, ds)["device"] in ("auto", "cpu") for ds in p["datasets"])
    mnist = {c.method for c in groups[0].cells}
    bc = {c.method for g in groups if g.dataset == "breast_cancer" for c in g.cells}
    # seed notes 000 and 001 and the robust baselines of the method registry issue
    assert mnist == {"ce", "ls", "nls", "flip", "bce", "bls", "bnls", "gce", "sce", "forward", "forward_est", "coteach_est"}
    assert bc == mnist - {"bce", "bls", "bnls"}          # K = 2: the BCE family is softmax GLS


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_presets_validate(path):
    p = grid.load_params(path)
    groups = grid.expand_groups(p)
    assert groups
    if path not in CIFAR_PRESETS:
        return
    for ds in p["datasets"]:
        proto = grid.protocol_for(p, ds)
        # the reference's ResNet-34 pipeline on a GPU: fixed CIFAR constants, black padding, default init
        assert proto["model"] == "resnet34" and proto["device"] == "cuda" and proto["precision"] == "fp32"
        assert proto["init"] == "torch_default" and proto["drop_last"] is False and proto["batch_size"] == 128
        assert proto["augment"] == {"crop_padding": 4, "hflip": True, "pad_fill": "black"}
        mean = {"cifar10": [0.4914, 0.4822, 0.4465], "cifar100": [0.5071, 0.4867, 0.4408]}[ds]
        assert proto["normalize"]["mean"] == mean
        assert proto["val_fraction"] == (0.1 if path.stem.endswith("-honest") else 0.0)


@pytest.mark.parametrize("name", ["paper-cifar10", "paper-cifar100"])
def test_synthetic_presets_follow_the_reference_point_by_point(name):
    faithful = grid.load_params(ROOT / "config" / f"{name}.yaml")
    honest = grid.load_params(ROOT / "config" / f"{name}-honest.yaml")
    ds = faithful["datasets"][0]
    f, h = grid.protocol_for(faithful, ds), grid.protocol_for(honest, ds)
    direct, warm = f["variants"]["direct"], f["variants"]["warmup"]
    # main_GLS_direct_train.py: 200 epochs, lr 0.1 x100, 0.01 x50, 0.001 x50, SGD Nesterov 0.9, wd 1e-4
    assert direct["epochs"] == 200 and direct["schedule"] == {"name": "multistep", "milestones": [100, 150],
                                                              "gamma": 0.1}
    assert direct["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                   "weight_decay": 1e-4} == warm["optimizer"] | {"lr": 0.1}
    # main_warmup.py: plain SGD, lr 0.1/0.01/0.001 for 40 epochs each; main_GLS_load.py: 100 epochs at 1e-6
    # from the warm-up's best-TEST checkpoint
    assert warm["warmup"]["epochs"] == 120 and warm["warmup"]["schedule"]["milestones"] == [40, 80]
    assert warm["warmup"]["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.0, "nesterov": False,
                                           "weight_decay": 0.0}
    assert (warm["epochs"], warm["optimizer"]["lr"], warm["schedule"]["name"]) == (100, 1e-6, "constant")
    assert warm["warmup"]["branch"] == "best" and h["variants"]["warmup"]["warmup"]["branch"] == "selected"
    # noise drawn once with random_state 0 by the reference's sampler; the honest twin redraws per seed
    assert faithful["noise_seed"] == 0 and faithful["noise_options"]["symmetric"] == {"sampler": "reference"}
    assert honest["noise_seed"] is None and "symmetric" not in honest["noise_options"]
    # the twins differ only where the honest one says so
    assert {k: v for k, v in f.items() if k not in ("val_fraction", "variants")} == \
        {k: v for k, v in h.items() if k not in ("val_fraction", "variants")}


def test_presets_cover_the_paper_settings():
    from smoothbench.report import collect

    refs = collect.read_references()
    for name in ("paper-cifar10", "paper-cifar100", "paper-cifarn"):
        p = grid.load_params(ROOT / "config" / f"{name}.yaml")
        settings = {(g.dataset, g.noise_kind, g.noise_rate) for g in grid.expand_groups(p)}
        methods = {m for m, rates in p["methods"].items() if rates}
        for r in refs:
            if r["dataset"] in p["datasets"] and (name != "paper-cifarn") == (r["noise_kind"] != "human"):
                assert (r["dataset"], r["noise_kind"], r["noise_rate"]) in settings, (name, r)
                assert r["method"] in methods and r["rate"] in p["methods"][r["method"]], (name, r)
    c10 = grid.load_params(ROOT / "config" / "paper-cifar10.yaml")
    assert c10["noise"]["pairflip"] == [0.2, 0.3] and c10["noise_options"]["pairflip"]["pairs"] == "reference"
    cn = grid.load_params(ROOT / "config" / "paper-cifarn.yaml")
    assert {g.id.rsplit("-", 1)[0] for g in grid.expand_groups(cn)} == {
        "cifar10-human-aggre", "cifar10-human-random1", "cifar10-human-worst", "cifar100-human-noisy100"}
    direct = grid.protocol_for(cn, "cifar10")["variants"]
    assert list(direct) == ["direct"] and direct["direct"]["optimizer"]["nesterov"] is False
    assert direct["direct"]["schedule"]["milestones"] == [60] and direct["direct"]["epochs"] == 100


def test_protocol_sensitivity_preset_is_the_default_study_at_three_phase_lrs():
    """docs/analysis.md reads config/protocol-sensitivity.yaml's variant `warmup` as the default
    study's mnist5k cells, bit for bit, and its other variants as differing only in the phase's
    learning rate: both hold as long as the two files agree."""
    default = grid.load_params(ROOT / "params.yaml")
    preset = grid.load_params(ROOT / "config" / "protocol-sensitivity.yaml")
    ours, theirs = grid.protocol_for(preset, "mnist5k"), grid.protocol_for(default, "mnist5k")
    assert preset["datasets"] == ["mnist5k"]
    for key in ("seeds", "noise", "noise_seed"):
        assert preset[key] == default[key], key
    assert preset["methods"] == {m: default["methods"][m] for m in preset["methods"]}
    assert ours["variants"]["warmup"] == theirs["variants"]["warmup"]
    assert {k: v for k, v in ours.items() if k != "variants"} == {k: v for k, v in theirs.items() if k != "variants"}
    base = copy.deepcopy(ours["variants"]["warmup"])
    base["optimizer"].pop("lr")
    lrs = {}
    for name, variant in ours["variants"].items():
        variant = copy.deepcopy(variant)
        lrs[name] = variant["optimizer"].pop("lr")
        assert variant == base, name
    assert lrs == {"warmup": 0.1, "lrhundredth": 0.01, "lrthousandth": 0.001}
