"""``smoothbench bench loss``: the vectorised loss of a stack against a loop over its models,
against explicit one-hot soft targets, and the mixed-method stack loss in one call against one
call per method.
"""

from __future__ import annotations

import torch

from ..methods.gls import gls_loss
from .table import devices, median_time, print_table


def bench_loss(device: str = "auto", repeats: int = 20) -> list[dict]:
    """Forward+backward throughput of ``gls_loss`` over a stack of M models vs
    (a) a Python loop calling it once per model and (b) explicit one-hot soft-target CE."""
    configs = [(1, 128, 10), (8, 128, 10), (16, 128, 10), (32, 512, 10), (8, 256, 100), (16, 128, 1000)]
    results = []
    for dev in devices(device):
        for m, b, k in configs:
            g = torch.Generator(device="cpu").manual_seed(0)
            base = torch.randn(m, b, k, generator=g).to(dev)
            labels = torch.randint(0, k, (b,), generator=g).to(dev)
            rates = torch.linspace(-2.0, 0.8, m).to(dev)
            rates_list = rates.tolist()

            def vectorised():
                x = base.clone().requires_grad_(True)
                gls_loss(x, labels, rates, check=False).sum().backward()

            def loop():
                x = base.clone().requires_grad_(True)
                total = sum(gls_loss(x[i], labels, rates_list[i], check=False) for i in range(m))
                total.backward()

            def onehot():
                x = base.clone().requires_grad_(True)
                r = rates[:, None, None]
                onehot_labels = torch.nn.functional.one_hot(labels, k).float()
                target = (1 - r) * onehot_labels + r / k              # materialised (M, B, K) soft targets
                (-(target * torch.log_softmax(x, -1)).sum(-1).mean(-1)).sum().backward()

            t_vec = median_time(vectorised, dev, repeats)
            t_loop = median_time(loop, dev, repeats)
            t_hot = median_time(onehot, dev, repeats)
            results.append({"device": dev.type, "M": m, "B": b, "K": k, "vectorised_s": t_vec, "loop_s": t_loop,
                            "onehot_s": t_hot})
    rows = [[r["device"], str(r["M"]), str(r["B"]), str(r["K"]),
             f"{r['M'] * r['B'] / r['vectorised_s'] / 1e6:.2f}", f"{r['M'] * r['B'] / r['loop_s'] / 1e6:.2f}",
             f"{r['M'] * r['B'] / r['onehot_s'] / 1e6:.2f}",
             f"{r['loop_s'] / r['vectorised_s']:.1f}x", f"{r['onehot_s'] / r['vectorised_s']:.2f}x"] for r in results]
    print(f"gls_loss forward+backward, median of {repeats} (torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads)")
    print_table(["device", "M", "B", "K", "gls Msamples/s", "loop Msamples/s", "one-hot Msamples/s",
                 "gls vs loop", "gls vs one-hot"], rows)
    print()
    return results + bench_mixed_loss(device=device, repeats=repeats)


def bench_mixed_loss(device: str = "auto", repeats: int = 20, seeds: tuple[int, ...] = (1, 10),
                     batch: int = 128, classes: int = 10) -> list[dict]:
    """The step's loss of a stack that mixes every registered method (one cell each, at its
    defaults; S seeds x C cells, the cells of two models taking two slots, the peer cells their
    peer predictions): ONE ``StackLoss`` call (methods that share a loss function in one call on
    a view of the stack) against one call per method, forward + backward."""
    from ..core import draws
    from .. import methods as registry
    from ..methods.stackloss import StackLoss, quantile_of

    cells = registry.sort_cells(registry.cell(m, registry.get(m).defaults) for m in registry.names())
    c = len(cells)
    results = []
    for dev in devices(device):
        for s in seeds:
            g = torch.Generator(device="cpu").manual_seed(0)
            labels = torch.randint(0, classes, (s, batch), generator=g).to(dev)
            peer_labels = torch.randint(0, classes, (s, batch), generator=g).to(dev)
            index = torch.stack([torch.randperm(4 * batch, generator=g)[:batch] for _ in range(s)]).to(dev)
            t = torch.full((classes, classes), 0.3 / (classes - 1), dtype=torch.float64)
            t.fill_diagonal_(0.7)
            t = t.expand(s, classes, classes)
            rates = torch.full((s,), 0.3, dtype=torch.float64)
            estimates = {quantile_of(cl): (t, rates) for cl in cells if registry.get(cl.method).estimated}
            keys = draws.keys(range(s * c), dev).view(s, c)
            mixed = StackLoss(cells, s, classes, dev, keys, t, num_train=4 * batch, noise_rates=rates,
                              estimates=estimates)
            singles = [StackLoss([cell], s, classes, dev, keys[:, j:j + 1], t, num_train=4 * batch, noise_rates=rates,
                                 estimates=estimates) for j, cell in enumerate(cells)]
            base = torch.randn(s, mixed.slots, batch, classes, generator=g).to(dev)
            peer = torch.randn(s, mixed.slots, batch, classes, generator=g).to(dev)
            spans = [(mixed.slot(j), mixed.slot(j) + loss.slots) for j, loss in enumerate(singles)]

            def one_call():
                x = base.clone().requires_grad_(True)
                mixed(x, labels, 0, index=index, peer=(peer, peer_labels)).sum().backward()

            def per_method():
                x = base.clone().requires_grad_(True)
                sum(loss(x[:, lo:hi], labels, 0, index=index, peer=(peer[:, lo:hi], peer_labels)).sum()
                    for (lo, hi), loss in zip(spans, singles)).backward()

            t_one = median_time(one_call, dev, repeats)
            t_each = median_time(per_method, dev, repeats)
            results.append({"device": dev.type, "S": s, "C": c, "B": batch, "K": classes, "calls": len(mixed.blocks),
                            "one_call_s": t_one, "per_method_s": t_each})
    print(f"mixed-method stack loss, forward+backward, median of {repeats}: every registered method once "
          f"(C = {c} cells, {results[0]['calls']} loss calls) x S seeds, B = {batch}, K = {classes}")
    print_table(["device", "S", "C", "B", "K", "loss calls", "one call ms", "per method ms", "one call vs per method"],
                [[r["device"], str(r["S"]), str(r["C"]), str(r["B"]), str(r["K"]), str(r["calls"]),
                  f"{1e3 * r['one_call_s']:.2f}", f"{1e3 * r['per_method_s']:.2f}",
                  f"{r['per_method_s'] / r['one_call_s']:.2f}x"] for r in results])
    return results
