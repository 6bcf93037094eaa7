"""The benchmark commands on the CPU (quick configurations): their tables, and that the
FLOP figures come from counted FLOPs and the peak table. No timing is asserted."""

import re

import pytest
import torch

from smoothbench.bench import step as stepbench, stepvariants, table, train as trainbench
from smoothbench.cli import commands as cli
from smoothbench.engine import models
from smoothbench.engine.models import measure


@pytest.fixture(autouse=True)
def _restore_torch_settings():
    """bench step applies the engine's determinism settings process-wide; put them back."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.get_num_threads(), torch.backends.mkldnn.enabled)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.set_num_threads(saved[2])
    torch.backends.mkldnn.enabled = saved[3]


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The Markdown tables in printed output: [(header, rows)]."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(-+:\|)+", lines[i + 1]):
            cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
            header, rows, i = cells(lines[i]), [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


# ----------------------------------------------------------------------------- counted FLOPs against hand counts

def _conv(side_out, cout, cin, k):
    return side_out * side_out * cout * cin * k * k


def test_flop_count_of_small_cnn_equals_hand_count():
    # SmallCNN width 0.25 on 3x8x8: widths 8, 16, 32; two 2x2 pools; GAP; linear 32 -> 10
    hand = (_conv(8, 8, 3, 3) + _conv(8, 8, 8, 3)          # 8x8
            + _conv(4, 16, 8, 3) + _conv(4, 16, 16, 3)     # pool -> 4x4
            + _conv(2, 32, 16, 3)                          # pool -> 2x2
            + 32 * 10)
    assert hand == 124_736
    net = models.build_model("cnn", 3, (3, 8, 8), 10, seed=0, width=0.25)
    assert measure.count_flops_per_sample(net, (3, 8, 8)) == hand


def test_flop_count_of_fastnet_equals_hand_count():
    # FastNet width 0.125 on 3x32x32: stem 4, blocks 8, 32, 32; each block's first conv runs
    # BEFORE its pool (at the incoming resolution), its second after; bias-free linear 32 -> 10
    hand = (_conv(32, 4, 3, 3)
            + _conv(32, 8, 4, 3) + _conv(16, 8, 8, 3)
            + _conv(16, 32, 8, 3) + _conv(8, 32, 32, 3)
            + _conv(8, 32, 32, 3) + _conv(4, 32, 32, 3)
            + 32 * 10)
    assert hand == 2_470_208
    net = models.build_model("fastnet", 1, (3, 32, 32), 10, seed=0, width=0.125)
    assert measure.count_flops_per_sample(net, (3, 32, 32)) == hand


@pytest.mark.parametrize("name, blocks", [("resnet18", (2, 2, 2, 2)), ("resnet34", (3, 4, 6, 3))])
def test_flop_count_of_thin_resnet_equals_hand_count(name, blocks):
    # CIFAR ResNet width 0.125: widths 8, 16, 32, 64 at 32, 16, 8, 4 pixels; stride-2 3x3 conv
    # and 1x1 stride-2 shortcut at the start of stages 2-4
    widths, sides = (8, 16, 32, 64), (32, 16, 8, 4)
    hand, cin = _conv(32, 8, 3, 3), 8
    for n, cout, side in zip(blocks, widths, sides):
        for j in range(n):
            hand += _conv(side, cout, cin, 3) + _conv(side, cout, cout, 3)
            if cin != cout:
                hand += _conv(side, cout, cin, 1)
            cin = cout
    hand += 64 * 10
    net = models.build_model(name, 2, (3, 32, 32), 10, seed=0, width=0.125)
    assert measure.count_flops_per_sample(net, (3, 32, 32)) == hand


# ----------------------------------------------------------------------------- the peak table

@pytest.mark.parametrize("name, key", [
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A10", "A10"),
    ("NVIDIA GeForce RTX 4090", "4090"), ("x86_64", None),
])
def test_peak_lookup_takes_the_longest_matching_name(name, key):
    hit = table.peak_bf16(name)
    assert (hit is None) if key is None else (hit == (key, table.PEAK_BF16[key]))


# ----------------------------------------------------------------------------- bench step

FAKE_GPU = "NVIDIA H100 80GB HBM3"


def test_quick_step_bench_table_and_flop_fraction_from_the_peak_table(monkeypatch, capsys):
    monkeypatch.setattr(table, "device_name", lambda dev: FAKE_GPU)
    monkeypatch.setitem(table.PEAK_BF16, "H100", 123e12)          # an odd peak: the figure must follow it
    results = stepbench.bench_step(device="cpu", quick=True)
    out = capsys.readouterr().out
    [(header, rows)] = _tables(out)
    assert header == stepbench.STEP_HEADER
    # every model x M x variant, in that order
    combos = [(m, n, v) for m in stepbench.STEP_MODELS for n in (1, 2) for v in stepbench.STEP_VARIANTS]
    assert [(r[1], int(r[4]), r[2]) for r in rows] == combos
    assert "H100: 123 TFLOP/s" in out
    by = {(r["model"], r["M"], r["variant"]): r for r in results}
    for values in rows:
        row = dict(zip(header, values))
        r = by[(row["model"], int(row["M"]), row["variant"])]
        macs = measure.count_flops_per_sample(
            models.build_model(r["model"], 1, (3, 32, 32), 10, seed=0, width=0.125), (3, 32, 32))
        assert r["macs_per_sample"] == macs
        assert r["flops_per_step"] == 2 * 3 * macs * r["M"] * 16
        assert r["peak_fraction"] == pytest.approx(r["flops_per_step"] / r["step_s"] / 123e12, rel=1e-12)
        assert row["device"] == "cpu" and row["B"] == "16" and row["precision"] == "fp32"   # auto on the CPU
        assert float(row["step ms"]) == pytest.approx(1e3 * r["step_s"], abs=0.051)
        assert float(row["model-samples/s"]) == pytest.approx(r["M"] * 16 / r["step_s"], abs=0.51)
        assert float(row["TFLOP/s"]) == pytest.approx(r["flops_per_step"] / r["step_s"] / 1e12, abs=5e-4)
        assert row["of bf16 peak"] == f"{100 * r['peak_fraction']:.1f}%"
        assert row["peak MiB"] == "n/a"                             # no CUDA memory counter on the CPU
        loop = by[(r["model"], r["M"], "loop")]
        assert row["vs loop"] == f"{loop['step_s'] / r['step_s']:.2f}x"
        assert row["repeatable"] == "-"                             # not asked for
    # hand-counted FastNet (test above) x 6 x M x B
    assert by[("fastnet", 2, "stacked")]["flops_per_step"] == 6 * 2_470_208 * 2 * 16


def test_step_bench_without_a_known_peak_prints_na(capsys):
    stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"], num_models=[1], variants=["stacked"])
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0][header.index("of bf16 peak")] == "n/a"
    assert rows[0][header.index("vs loop")] == "n/a"                # no loop row to compare with


def test_out_of_memory_prints_oom_and_the_table_goes_on(monkeypatch, capsys):
    real = stepbench._step_fn

    def fake(variant, name, m, *args):
        if variant == "stacked" and m == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(variant, name, m, *args)

    monkeypatch.setattr(stepbench, "_step_fn", fake)
    results = stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"])
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert [r["status"] for r in results] == ["ok", "ok", "OOM", "ok"]
    oom = rows[2]
    assert oom[:6] == ["cpu", "fastnet", "stacked", "fp32", "2", "16"] and oom[6] == "OOM"
    assert set(oom[7:]) == {"-"}
    assert rows[3][2] == "loop" and rows[3][6] != "OOM"


def test_other_runtime_errors_are_not_taken_for_oom(monkeypatch):
    def broken(*args):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_BAD_PARAM")

    monkeypatch.setattr(stepbench, "_step_fn", broken)
    with pytest.raises(RuntimeError, match="BAD_PARAM"):
        stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"], num_models=[1])


def test_an_alternative_variant_that_fails_says_so_in_its_row(monkeypatch, capsys):
    real = stepbench._step_fn

    def vmap_breaks(variant, *args):
        if variant == "vmap":
            raise RuntimeError("vmap: batching rule not implemented for aten::something\nmore detail")
        return real(variant, *args)

    monkeypatch.setattr(stepbench, "_step_fn", vmap_breaks)
    results = stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"], num_models=[1],
                                   variants=["vmap", "stacked"], steps=1, warmup=0)
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert [r["status"] for r in results] == [
        "error: RuntimeError: vmap: batching rule not implemented for aten::something", "ok"]
    assert rows[0][6] == results[0]["status"] and set(rows[0][7:]) == {"-"} and rows[1][6] != results[0]["status"]


def test_cli_bench_step_subset_and_errors(capsys):
    assert cli.main(["bench", "step", "--device", "cpu", "--quick", "--models", "cnn", "--num-models", "3",
                     "--variants", "loop", "--batch", "4", "--steps", "1", "--warmup", "0"]) == 0
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert [r[:6] for r in rows] == [["cpu", "cnn", "loop", "fp32", "3", "4"]]
    assert cli.main(["bench", "step", "--device", "cpu", "--quick", "--num-models", "1,x"]) == 2
    assert "--num-models '1,x': allowed a comma-separated list of integers" in capsys.readouterr().err
    assert cli.main(["bench", "step", "--device", "cpu", "--quick", "--models", "vgg"]) == 2
    assert "model 'vgg'; allowed: fastnet, resnet18, resnet34" in capsys.readouterr().err


def test_cli_bench_step_variant_errors(capsys):
    assert cli.main(["bench", "step", "--device", "cpu", "--quick", "--variants", "stacked,vmapp"]) == 2
    assert "variant 'vmapp'; allowed: stacked, loop, stacked-nchw, stacked-nhwc, vmap, graphs" in \
        capsys.readouterr().err
    assert cli.main(["bench", "step", "--device", "cpu", "--quick", "--variants", "graphs", "--compile"]) == 2
    assert "variant graphs does not combine with --compile" in capsys.readouterr().err


# ----------------------------------------------------------------------------- step variants

def _per_model(variant: str, tensors: list[torch.Tensor], m: int) -> list[torch.Tensor]:
    """The trained state of each of the m models as one flat vector, whatever the variant's layout:
    stacked (M, ...), vmap (M, 1, ...), loop m one-model stacks (1, ...) one after another."""
    if variant == "loop":
        per = len(tensors) // m
        return [torch.cat([t[0].flatten() for t in tensors[i * per:(i + 1) * per]]) for i in range(m)]
    return [torch.cat([t[i].flatten() for t in tensors]) for i in range(m)]


def _trained(variant: str, amp_dtype=None, steps: int = 2, m: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, 10, (8,), generator=g)
    step = stepbench._step_fn(variant, "fastnet", m, {"width": 0.125}, x, y, torch.tensor([0.0, -2.0])[:m],
                              torch.device("cpu"), False, amp_dtype)
    for _ in range(steps):
        step()
    return _per_model(variant, [t.detach().clone() for t in step.tensors()], m)


def test_every_step_variant_trains_as_m_separate_models_do():
    """After two steps the state of each model, stacked / in either layout / through torch.func,
    equals that of M separate models stepped one by one (the loop: the reference), to fp32
    rounding; the two models (CE and NLS r = -2) really differ, and really moved."""
    ref = _trained("loop")
    start = _trained("loop", steps=0)
    assert (ref[0] - ref[1]).abs().max() > 1e-3 and (ref[0] - start[0]).abs().max() > 1e-3
    for variant in ("stacked", "stacked-nchw", "stacked-nhwc", "vmap"):
        got = _trained(variant)
        for i in range(2):
            torch.testing.assert_close(got[i], ref[i], rtol=1e-4, atol=1e-5, msg=lambda s: f"{variant}[{i}]: {s}")
    with pytest.raises(stepvariants.NotOnThisDevice, match="n/a on CPU"):
        _trained("graphs")


def test_bf16_precision_is_autocast_and_fp32_is_not():
    """The same step in bf16 autocast ends near the fp32 one but not on it (rounding to 8 bits)."""
    fp32, bf16 = _trained("stacked", None, m=1)[0], _trained("stacked", torch.bfloat16, m=1)[0]
    assert not torch.equal(fp32, bf16)
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05)


def test_precision_both_gives_a_row_per_precision_compared_within_it(capsys):
    results = stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"], num_models=[1],
                                   precision="both", steps=1, warmup=0)
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert [(r[2], r[3]) for r in rows] == [("stacked", "bf16"), ("loop", "bf16"), ("stacked", "fp32"),
                                            ("loop", "fp32")]
    by = {(r["variant"], r["precision"]): r for r in results}
    for prec in ("bf16", "fp32"):
        assert by[("stacked", prec)]["speedup_vs_loop"] == by[("loop", prec)]["step_s"] / by[("stacked", prec)]["step_s"]
    with pytest.raises(ValueError, match="--precision 'fp16'; allowed: auto, bf16, fp32, both"):
        stepbench.bench_step(device="cpu", quick=True, precision="fp16")


def test_cuda_graphs_row_says_na_on_the_cpu_and_the_table_goes_on(capsys):
    stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"], num_models=[1],
                         variants=["graphs", "vmap"], steps=1, warmup=0)
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert rows[0][2] == "graphs" and rows[0][6] == "n/a on CPU" and set(rows[0][7:]) == {"-"}
    assert rows[1][2] == "vmap" and float(rows[1][6]) > 0


def test_repeatable_says_yes_for_the_engine_step_and_no_for_a_step_that_is_not(monkeypatch, capsys):
    stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"], num_models=[2], variants=["stacked"],
                         steps=1, warmup=0, repeatable=True)
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert dict(zip(header, rows[0]))["repeatable"] == "yes"
    real = stepbench._step_fn

    def jittery(*args):
        step = real(*args)

        def run():
            step.run()
            with torch.no_grad():          # unseeded noise: a kernel that is not deterministic
                next(iter(step.tensors())).add_(torch.rand(()) * 1e-3)
        return stepvariants.Step(run, step.tensors)

    monkeypatch.setattr(stepbench, "_step_fn", jittery)
    stepbench.bench_step(device="cpu", quick=True, model_names=["fastnet"], num_models=[2], variants=["stacked"],
                         steps=1, warmup=0, repeatable=True)
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert dict(zip(header, rows[0]))["repeatable"] == "no"


# ----------------------------------------------------------------------------- bench train

def test_quick_train_bench_row_on_cifar_shaped_data(monkeypatch, capsys):
    """Group vs one process per cell for an image model, run through the real CLI processes."""
    monkeypatch.setattr(table, "device_name", lambda dev: FAKE_GPU)
    [r] = trainbench.bench_train(device="cpu", epochs=1, quick=True, model_names=["fastnet"], num_cells=2,
                                 train_size=256)
    [(header, rows)] = _tables(capsys.readouterr().out)
    assert header == ["device", "data", "model", "group s", "one-by-one s", "group cells/h", "one-by-one cells/h",
                      "group samples/s", "one-by-one samples/s", "speed-up", "of bf16 peak"]
    assert rows[0][:3] == ["cpu", "cifar-shaped", "fastnet"]
    # 256 images, 26 held out -> 230 -> one full batch of 128 per epoch, for each of the 2 cells
    samples = 128 * 1 * 2
    assert r["group_samples_per_s"] == pytest.approx(samples / r["group_s"])
    assert r["group_cells_per_h"] == pytest.approx(2 / r["group_s"] * 3600)
    assert r["flops"] == samples * 6 * 2_470_208                    # hand-counted FastNet at width 0.125
    assert r["peak_fraction"] == pytest.approx(r["flops"] / r["group_s"] / table.PEAK_BF16["H100"])
    assert rows[0][-1] == f"{100 * r['peak_fraction']:.1f}%"
    assert rows[0][-2] == f"{r['one_by_one_s'] / r['group_s']:.1f}x"


def test_study_job_bench_times_the_same_cells_three_ways(tmp_path, capsys):
    """bench train --study: one job, one process per group, one per cell, on a tiny study's
    setting: the same cells each way (3 rows), the job's speed-up against itself 1.0x."""
    import yaml

    study = {"datasets": ["digits"], "noise": {"symmetric": [0.2]}, "methods": {"ce": [0], "ls": [0.3]},
             "seeds": [0, 1], "protocol": {"default": {"model_args": {"hidden": [16]},
                                                       "variants": {"direct": {"epochs": 1}}}}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    from smoothbench.bench import study as benchstudy

    rows = benchstudy.bench_study(path, seeds=2)
    assert [r["processes"] for r in rows] == [1, 2, 4] and {r["cells"] for r in rows} == {4}
    assert rows[0]["speedup"] == 1.0 and all(r["seconds"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "training job of digits-symmetric-0.2 (study.yaml): 2 seeds x 2 cells" in out
    with pytest.raises(ValueError, match="is not a setting of"):
        benchstudy.bench_study(path, setting="digits/symmetric/0.9")
