"""The CUDA path against independent references: the loss against float64, a stacked model
against its slices run one at a time, the engine against itself (determinism), and a killed
CUDA training process against an uninterrupted one.

Every test is marked ``cuda``. Each runs its check on the CPU as well (parameter ``cpu``),
so the comparison logic is exercised on machines without a GPU; the ``cuda`` cases skip
when ``torch.cuda.is_available()`` is false.
"""

import json
import math
import os
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import kill_and_resume, train_command, write_cifar_shaped, write_labels

from smoothbench.engine import models, layers as stacked, training as train
from smoothbench.engine.models.base import StackedModel
from smoothbench.methods import parse_cells
from smoothbench.methods.gls import gls_loss

pytestmark = pytest.mark.cuda

# deterministic cuBLAS workspaces, as train.set_determinism sets them: PyTorch reads the setting
# once per process, and the loss and model tests below use cuBLAS before the engine test does
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="CUDA is not available (torch.cuda.is_available() is False)")
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=needs_cuda)]

EPS32 = torch.finfo(torch.float32).eps          # 2**-23
BF16_HALF_ULP = 2.0 ** -8                       # round-to-nearest bf16 (8 significand bits): |rel. error| <= 2**-8


@pytest.fixture
def ieee_fp32():
    """TF32 off (cuBLAS and cuDNN), restored afterwards: fp32 means fp32 in these comparisons."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def restore_determinism():
    """The engine switches deterministic algorithms on (and oneDNN off on the CPU) for the whole
    process; undo it after the test."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.mkldnn.enabled)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
     torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.mkldnn.enabled) = saved[2:]


def _assert_within(actual: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor, what: str) -> None:
    """Elementwise |actual - expected| <= bound (float64), with the worst offender in the message."""
    diff = (actual.double().cpu() - expected).abs()
    ratio = diff / bound
    worst = int(ratio.argmax())
    assert bool((diff <= bound).all()), (
        f"{what}: {int((diff > bound).sum())} of {diff.numel()} entries out of tolerance; worst at flat index "
        f"{worst}: |{actual.flatten()[worst].item()!r} - {expected.flatten()[worst].item()!r}| = "
        f"{diff.flatten()[worst].item():.3g} > {bound.flatten()[worst].item():.3g}")


# ----------------------------------------------------------------------------- (a) the loss

@pytest.mark.parametrize("labels_per_model", [False, True], ids=["shared-labels", "per-model-labels"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("device", DEVICES)
def test_gls_loss_equals_float64_reference(device, dtype, labels_per_model):
    """Values and gradients of ``gls_loss`` over stacked logits (M, B, K) with one rate per model,
    negative ones included, against explicit soft-target cross-entropy in float64.

    The reference is computed on the logits *as the device sees them* (rounded to ``dtype``),
    so only the loss's own arithmetic is measured. gls_loss computes in float32 for both
    dtypes, so the bounds are float32 rounding bounds:

    * log-softmax: |error| <= c * eps32 * (max|x| + log K) per entry; a sample's loss weighs
      the entries by |target|, which sums to <= 1 + 2|r|; c = 16 leaves margin for the
      mean over B;
    * gradient (softmax - target) * w / B: |error| <= c * eps32 * (max|x| + log K + 1 + 2|r|) * w / B;
      bf16 logits get a bf16 gradient: the float32 gradient rounded to nearest, which adds at
      most half an ulp, 2**-8 * |g|. (So a bf16 gradient cannot show errors below ~0.4%.)
    """
    M, B, K = 6, 257, 10                                     # odd B: no power-of-two luck in the means
    g = torch.Generator().manual_seed(0)
    x64 = torch.randn(M, B, K, generator=g, dtype=torch.float64) * 4
    x64[:, :3] *= 6                                          # a few rows with large logits (|x| up to ~100)
    labels = torch.randint(0, K, (M, B) if labels_per_model else (B,), generator=g)
    rates = torch.tensor([0.0, 0.1, 0.6, -0.4, -2.0, -8.0])   # float32, as the engine passes them
    weights = torch.rand(M, generator=g, dtype=torch.float64) + 0.5   # a different upstream gradient per model

    x_dev = x64.to(dtype)
    exact = x_dev.double()                                   # the rounded logits, exactly
    r = rates.double()[:, None, None]
    target = (1 - r) * F.one_hot(labels.expand(M, B), K).double() + r / K
    logp = torch.log_softmax(exact, -1)
    ref_loss = -(target * logp).sum(-1).mean(-1)                           # (M,)
    ref_grad = (logp.exp() - target) * (weights[:, None, None] / B)       # d(sum_m w_m loss_m)/dx

    x = x_dev.to(device).requires_grad_(True)
    loss = gls_loss(x, labels.to(device), rates.to(device))
    (loss * weights.to(device, torch.float32)).sum().backward()
    assert loss.shape == (M,) and loss.dtype == torch.float32 and loss.device.type == device
    assert x.grad.dtype == dtype

    scale = exact.abs().amax(dim=(1, 2)) + math.log(K)                     # (M,)
    rmag = 1 + 2 * rates.double().abs()
    _assert_within(loss.detach(), ref_loss, 16 * EPS32 * rmag * scale, f"loss ({device}, {dtype})")
    bound = (16 * EPS32 * (scale + rmag) * weights / B)[:, None, None].expand(M, B, K).clone()
    if dtype == torch.bfloat16:
        bound = bound * (1 + BF16_HALF_ULP) + ref_grad.abs() * BF16_HALF_ULP
    _assert_within(x.grad, ref_grad, bound, f"gradient ({device}, {dtype})")


# ----------------------------------------------------------------------------- (b) stacked model = its slices

# reduced widths so that the CPU case runs in seconds; CIFAR-shaped input
STACKED = {"fastnet": {"width": 0.25}, "resnet18": {"width": 0.125}, "cnn": {"width": 0.25}}
SHAPE, K = (3, 32, 32), 10
# fp32 with TF32 off: the stack (grouped convolutions, batched matmuls) and the single models
# (plain convolutions) differ only in summation order, ~1e-6 relative per layer; batch-statistics
# BN over ~20 layers amplifies that a little. Bounds relative to each tensor's own scale; a
# mixed-up slice is off by O(1) (the slices differ by far more, checked below).
OUT_TOL = 1e-4        # outputs and running statistics: rtol, and atol as a fraction of max|ref|
GRAD_TOL = 1e-3       # gradients: atol as a fraction of max|ref grad| (rtol stays OUT_TOL)


def _perturbed_stack(name: str, m: int, seed: int) -> StackedModel:
    """A stack of ``m`` models whose slices differ in every parameter and BN buffer."""
    stack = models.build_model(name, m, SHAPE, K, seed=0, **STACKED[name])
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in stack.state_dict().items():
            noise = torch.randn(t.shape, generator=g)
            if key.endswith("running_var"):
                t.mul_(torch.exp(0.3 * noise))
            else:
                t.add_(0.3 * noise * (t.std() if t.numel() > 1 and t.std() > 0 else 1.0))
    return stack


def _close(actual, expected, tol_abs_frac, what):
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=OUT_TOL, atol=tol_abs_frac * max(scale, 1e-12),
                               msg=lambda s: f"{what}: {s}")


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("name", list(STACKED))
@pytest.mark.parametrize("device", DEVICES)
def test_stacked_model_equals_its_slices(device, name, memory_format, ieee_fp32):
    """Train-mode forward, GLS gradients (one rate per model), BN running statistics, and
    eval-mode forward of an M-stack equal those of each slice built as a separate model."""
    M, B = 3, 16
    stack = _perturbed_stack(name, M, seed=1).to(device).train()
    initial = {k: v.detach().cpu().clone() for k, v in stack.state_dict().items()}
    g = torch.Generator().manual_seed(2)
    x = torch.randn(B, *SHAPE, generator=g).to(device).contiguous(memory_format=memory_format)
    y = torch.randint(0, K, (B,), generator=g).to(device)
    rates = torch.tensor([0.0, 0.4, -1.0], device=device)

    logits = stack(x)
    assert logits.shape == (M, B, K)
    assert (logits[0] - logits[1]).abs().max() > 1e-2                     # the slices really differ
    gls_loss(logits, y, rates).sum().backward()
    grads = {k: p.grad for k, p in stack.named_parameters()}
    state = stack.state_dict()
    stack.eval()
    with torch.no_grad():
        eval_logits = stack(x)

    for m in range(M):
        single = models.build_model(name, 1, SHAPE, K, seed=99, **STACKED[name])   # other init: must be overwritten
        stacked.assign_model(single, 0, stacked.select_state(initial, m))
        single = single.to(device).train()
        out = single(x)
        _close(out[0], logits[m].detach(), OUT_TOL, f"{name} logits[{m}]")
        gls_loss(out[0], y, float(rates[m])).backward()
        for k, p in single.named_parameters():
            _close(p.grad[0], grads[k][m], GRAD_TOL, f"{name} grad {k}[{m}]")
        for k, t in single.state_dict().items():
            _close(t[0], state[k][m], OUT_TOL, f"{name} {k}[{m}] after a train-mode forward")
        with torch.no_grad():
            _close(single.eval()(x)[0], eval_logits[m], OUT_TOL, f"{name} eval logits[{m}]")


# ----------------------------------------------------------------------------- (c) engine determinism

ENGINE_CELLS = "ce:0,ls:0.4,nls:-0.6,flip:0.3"
ENGINE_PROTO = {"model": "fastnet", "batch_size": 32,
                "variants": {"warm": {"epochs": 2, "optimizer": {"lr": 0.02},
                                      "warmup": {"epochs": 1, "optimizer": {"lr": 0.05}}}},
                "augment": {"crop_padding": 4, "hflip": True}, "val_fraction": 0.1, "checkpoint_every": 1}


def engine_proto(own_epochs: int = 2, **shared) -> dict:
    proto = json.loads(json.dumps(ENGINE_PROTO))
    proto["variants"]["warm"]["epochs"] = own_epochs
    return {**proto, **shared}
# CUDA: CIFAR-shaped and the engine's own precision choice (bf16 autocast). CPU: the same code
# path made cheap (grouped convolutions and bf16 convolutions are slow on a CPU): 16x16
# images, a thinner net, bf16 autocast forced so that the mixed-precision path is taken.
ENGINE_SETUP = {"cuda": dict(side=32, n_train=320, n_test=128, width=0.25, precision="auto"),
                "cpu": dict(side=16, n_train=160, n_test=64, width=0.125, precision="bf16")}
NONDETERMINISTIC = re.compile(r"(\S+) does not have a deterministic implementation")
# bounds for the case that a kernel without a deterministic implementation makes two runs differ
RUN_TO_RUN = {"test_acc_final": 0.05, "test_acc_best": 0.05, "clean_train_acc": 0.05, "test_nll": 0.05, "ece": 0.05}


@pytest.mark.parametrize("device", DEVICES)
def test_engine_twice_gives_identical_group_json(device, tmp_path, restore_determinism):
    """``train_group`` run twice with the same inputs writes byte-identical group.json and curves.

    On CUDA this is the engine's path: bf16 autocast, channels-last, CUDA generators for
    augmentation and flips, warm-up then branch. If a kernel warns that it has no
    deterministic implementation and the runs differ, the test names the kernel and
    bounds the difference (RUN_TO_RUN) instead of demanding equality.
    """
    setup = ENGINE_SETUP[device]
    d = write_cifar_shaped(tmp_path / "data.npz", n_train=setup["n_train"], n_test=setup["n_test"],
                           side=setup["side"])
    labels = write_labels(tmp_path, d, rate=0.4)
    proto = engine_proto(model_args={"width": setup["width"]}, precision=setup["precision"])
    cells = parse_cells(ENGINE_CELLS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = [train.train_group(str(d), str(labels), cells, proto, str(tmp_path / name), device=device,
                                  progress=False) for name in ("a", "b")]
    kernels = sorted({m.group(1) for w in caught for m in [NONDETERMINISTIC.search(str(w.message))] if m})
    assert runs[0]["device"] == device and len(runs[0]["cells"]) == 4
    assert all(c["status"] == "ok" for c in runs[0]["cells"])
    files = ["group.json"] + [f"cells/warm/{c.id}/curves.csv" for c in cells]
    same = {f: (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files}
    if all(same.values()):
        if kernels:
            warnings.warn(f"{device}: kernels flagged as nondeterministic, yet two runs were identical: "
                          f"{', '.join(kernels)}", stacklevel=1)
        return
    differing = [f for f, ok in same.items() if not ok]
    assert kernels, f"{device}: {differing} differ between two identical runs, and no kernel reported " \
                    f"itself as nondeterministic"
    for a, b in zip(runs[0]["cells"], runs[1]["cells"]):
        for key, bound in RUN_TO_RUN.items():
            assert abs(a[key] - b[key]) <= bound, (
                f"{device}: {a['cell_id']} {key} {a[key]} vs {b[key]} (> {bound}); nondeterministic kernels: "
                f"{', '.join(kernels)}")
    warnings.warn(f"{device}: runs differ ({differing}) within the bounds, through nondeterministic kernels "
                  f"{', '.join(kernels)}", stacklevel=1)


# ----------------------------------------------------------------------------- (d) kill and resume

KILL_SETUP = {
    # long enough that the kill (0.3 s after the first checkpoint) lands before the last epoch;
    # CPU: cheaper images, as in ENGINE_SETUP
    "cuda": dict(side=32, n_train=4096, width=0.5, epochs=10),
    "cpu": dict(side=16, n_train=800, width=0.125, epochs=4),
}


@pytest.mark.parametrize("device", [pytest.param("cpu", id="cpu", marks=pytest.mark.slow),
                                    pytest.param("cuda", id="cuda", marks=needs_cuda)])
def test_killed_training_process_resumes_to_the_uninterrupted_result(device, tmp_path):
    """``smoothbench train --device DEVICE`` SIGKILLed after its first checkpoint resumes to the
    group.json and curves of an uninterrupted run, byte for byte (CIFAR-shaped data, fast net,
    warm-up, augmentation and flip cells: every random stream goes through the checkpoint)."""
    setup = KILL_SETUP[device]
    d = write_cifar_shaped(tmp_path / "data.npz", n_train=setup["n_train"], n_test=256, side=setup["side"])
    labels = write_labels(tmp_path, d, rate=0.4)
    proto = engine_proto(setup["epochs"] - 1, model_args={"width": setup["width"]})
    cmd = train_command(d, labels, ENGINE_CELLS, json.dumps(proto), "--device", device)
    kill_and_resume(cmd, tmp_path, epochs=setup["epochs"] - 1, variant="warm",
                    cell_ids=[c.id for c in parse_cells(ENGINE_CELLS)],
                    timeout=300)


# ----------------------------------------------------------------------------- (e) a step without host syncs

SYNC_CELLS = ("ce:0,ls:0.2,nls:-1,flip:0.3,bce,bls:0.2,gce,sce,nce_rce,mae,focal,focal:0.5:1,boot_soft,boot_hard,"
              "forward,backward,forward_est,backward_est,peer,peer:1:1,elr,coteach,coteach_est,jocor,jocor_est")
# the CPU twin (no sync check there: it shows the test runs) takes one method of each code path:
# a label transform, per-sample state, T (oracle and estimated), peer samples, cells of two models
SYNC_CELLS_CPU = "ce:0,flip:0.3,bce,gce,forward,backward_est,peer:1:1,elr,coteach_est,jocor"


@pytest.mark.parametrize("device", DEVICES)
def test_a_training_step_does_no_host_device_synchronisation(device, tmp_path, monkeypatch, restore_determinism):
    """Every registered method in one stack of two seeds, augmentation on: each epoch's steps run
    under ``torch.cuda.set_sync_debug_mode("error")``, which raises on any host-device
    synchronisation (an ``.item()``, a ``nonzero``, a blocking copy). On the CPU the same code
    runs without the check."""
    from smoothbench.engine import phase as stackrun

    setup = ENGINE_SETUP[device]
    d = write_cifar_shaped(tmp_path / "data.npz", n_train=setup["n_train"], n_test=setup["n_test"],
                           side=setup["side"])
    labels = [write_labels(tmp_path, d, rate=0.4, seed=s) for s in (0, 1)]
    proto = engine_proto(1, model_args={"width": setup["width"]}, precision=setup["precision"])
    real, epochs = stackrun.PhaseRun._train_epoch, []

    def checked(self):
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        try:
            return real(self)
        finally:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("default")
            epochs.append(self.key)

    monkeypatch.setattr(stackrun.PhaseRun, "_train_epoch", checked)
    cells = parse_cells(SYNC_CELLS if device == "cuda" else SYNC_CELLS_CPU)
    out = train.train_setting(str(d), [str(x) for x in labels], cells, proto,
                              [str(tmp_path / "s0"), str(tmp_path / "s1")], device=device, progress=False)
    assert len(epochs) == 2 and len(out[0]["cells"]) == len(cells)   # the warm-up's epoch, the variant's
    assert all(math.isfinite(c["test_acc_final"]) for s in out for c in s["cells"])


@pytest.mark.parametrize("device", DEVICES)
def test_a_seed_stacked_with_others_trains_as_alone(device, tmp_path, restore_determinism):
    """Two seeds in one stack against the second seed alone: identical on the CPU; on CUDA
    within float noise (cuDNN may pick other kernels for another number of groups)."""
    setup = ENGINE_SETUP[device]
    d = write_cifar_shaped(tmp_path / "data.npz", n_train=setup["n_train"], n_test=setup["n_test"],
                           side=setup["side"])
    labels = [write_labels(tmp_path, d, rate=0.4, seed=s) for s in (0, 1)]
    proto = engine_proto(1, model_args={"width": setup["width"]}, precision="fp32")
    cells = parse_cells(ENGINE_CELLS)
    both = train.train_setting(str(d), [str(x) for x in labels], cells, proto,
                               [str(tmp_path / "a0"), str(tmp_path / "a1")], device=device, progress=False)
    alone = train.train_group(str(d), str(labels[1]), cells, proto, str(tmp_path / "b1"), device=device,
                              progress=False)
    for a, b in zip(both[1]["cells"], alone["cells"]):
        for key in ("test_acc_final", "test_acc_best", "clean_train_acc", "test_nll"):
            if device == "cpu":
                assert a[key] == b[key], (a["cell_id"], key)
            else:
                assert abs(a[key] - b[key]) <= 0.02, (a["cell_id"], key, a[key], b[key])
