"""Every choice in one place (choices.csv), and no test label in any honest choice: replace every
test-accuracy number of a study by noise and every honest choice stays, in the choices table
and in every report file that shows one."""

from __future__ import annotations

import csv
import random
import shutil

import numpy as np
import pytest

from smoothbench.core.vocabulary import TEST_CORRECT_FILE
from smoothbench.report import build, choices, collect
from toy_results import TOY, read_csv_rows, write_toy

TEST_RESULT_COLUMNS = ("test_acc_final", "test_acc_best", "test_acc_selected", "test_nll", "ece", "best_epoch")
TEST_CURVE_COLUMNS = ("test_acc", "test_nll", "ece")


def _study(root):
    """A toy study with two protocol variants (warmup 1 point better), collected and chosen."""
    paths = write_toy(root / "results", variants={"direct": 0.0, "warmup": 0.01})
    collect.collect(paths, root / "results.csv", root / "curves.csv")
    choices.write_choices(root / "results.csv", root / "choices.csv")
    return root


def _noised(src, dst, seed: int):
    """A copy of the study in ``dst`` with every test-derived number replaced by noise: test
    accuracies, NLL, ECE and best-on-test epochs in results.csv, the test columns of curves.csv,
    and the per-test-sample correctness bits."""
    rng = random.Random(seed)
    dst.mkdir()
    for name, columns in (("results.csv", TEST_RESULT_COLUMNS), ("curves.csv", TEST_CURVE_COLUMNS)):
        with open(src / name, newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            for c in columns:
                if row[c] not in ("", "nan"):
                    row[c] = str(rng.randint(1, 3)) if c == "best_epoch" else repr(rng.random())
        with open(dst / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    with np.load(src / TEST_CORRECT_FILE) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["bits"] = np.random.default_rng(seed).integers(0, 256, arrays["bits"].shape, dtype=np.uint8)
    from smoothbench.core.files import write_npz

    write_npz(dst / TEST_CORRECT_FILE, arrays)
    choices.write_choices(dst / "results.csv", dst / "choices.csv")
    return dst


def _rows(path, selection=None):
    return [r for r in read_csv_rows(path) if selection is None or r["selection"] == selection]


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = _study(tmp_path_factory.mktemp("study"))
    noisy = _noised(root, tmp_path_factory.mktemp("noised") / "s", seed=3)
    for s in (root, noisy):
        build.build_reports(s / "results.csv", s / "curves.csv", s / "reports", analysis={"bootstrap": 200})
    return root, noisy


def test_the_noise_replaced_every_test_number(studies):
    root, noisy = studies
    a, b = read_csv_rows(root / "results.csv"), read_csv_rows(noisy / "results.csv")
    assert all(x["test_acc_selected"] != y["test_acc_selected"] for x, y in zip(a, b) if x["test_acc_selected"])
    assert [x["val_acc_selected"] for x in a] == [y["val_acc_selected"] for y in b]


def test_every_honest_choice_survives_noise_in_every_test_number(studies):
    root, noisy = studies
    for sel in ("selected", "final"):                       # both choose on held-out (noisy) labels only
        assert _rows(root / "choices.csv", sel) == _rows(noisy / "choices.csv", sel), sel
    # ... and the best-on-test choice is the reference's, made on the test set: noise changes it
    assert _rows(root / "choices.csv", "best") != _rows(noisy / "choices.csv", "best")


def test_the_report_files_show_the_same_honest_choices(studies):
    root, noisy = studies
    keep = ("dataset", "noise_kind", "noise_rate", "ranked_by", "rank", "method", "params", "edge", "variant",
            "rank_score_pct")
    boards = [[{k: r[k] for k in keep} for r in read_csv_rows(s / "reports" / "tables" / "leaderboard.csv")]
              for s in (root, noisy)]
    assert boards[0] == boards[1]
    tables = [[{k: r[k] for k in ("noise_kind", "noise_rate", "table", "method", "params", "variant", "best")}
               for r in read_csv_rows(s / "reports" / "tables" / "table_selected.csv")] for s in (root, noisy)]
    assert tables[0] == tables[1]
    protocols = [[{k: r[k] for k in ("noise_rate", "variant", "method", "params", "honest_choice")}
                  for r in read_csv_rows(s / "reports" / "tables" / "protocol.csv")] for s in (root, noisy)]
    assert protocols[0] == protocols[1]


def test_the_choices_table_is_the_choices_of_its_results(tmp_path):
    """choices.csv is made once and read by every report step: a table that is not the choices of
    the results beside it is refused in one line, and so is a missing one."""
    root = _study(tmp_path / "s")
    text = (root / "choices.csv").read_text()
    rows = collect.read_results(root / "results.csv")
    assert choices.choices_csv(choices.read_choices(root / "choices.csv", rows)) == text
    (root / "choices.csv").write_text(text.replace("ls,selected,val_acc_selected,r=0.2", "ls,selected,val_acc_selected,r=0.4", 1))
    with pytest.raises(ValueError, match=r"choices.csv: not the choices of the results table beside it"):
        build.build_reports(root / "results.csv", root / "curves.csv", root / "reports")
    (root / "choices.csv").unlink()
    with pytest.raises(ValueError, match=r"choices.csv: choices file is missing"):
        build.build_reports(root / "results.csv", root / "curves.csv", root / "reports")


def test_choices_follow_the_mean_held_out_accuracy_with_their_ties_and_edges(tmp_path):
    """The rule, against the toy's numbers by hand: the highest mean held-out accuracy over the
    seeds that did not diverge; ties to the set closer to 0; the chosen value's place in its grid."""
    root = _study(tmp_path / "s")
    got = {(r["noise_rate"], r["variant"], r["method"], r["selection"]): r for r in _rows(root / "choices.csv")}
    for rate, cells in TOY.items():
        for method in ("ls", "nls", "flip"):
            rates = sorted(r for m, r in cells if m == method)
            means = {}
            for r in rates:
                ok = [sel - 0.05 for st, _, sel in cells[(method, r)] if st == "ok"]   # toy: held-out = honest - 5
                if ok:
                    means[r] = sum(ok) / len(ok)
            best = min(means, key=lambda r: (-round(means[r], 9), abs(r), r))
            row = got[(rate, "direct", method, "selected")]
            assert float(row["rate"]) == best, (rate, method)
            assert row["edge"] == ("" if len(rates) < 2 else f"{'eps' if method == 'flip' else 'r'}:"
                                   f"{'low' if best == rates[0] else 'high'}")
            assert int(row["n_seeds"]) == len([1 for st, _, _ in cells[(method, best)] if st == "ok"])
    # every seed of NLS r = -1 diverged at noise 0.6: it cannot be chosen
    assert got[("0.6", "direct", "nls", "selected")]["rate"] == "-0.4"
    # the variant: warmup, 1 point better everywhere, is chosen for every method
    assert {r["variant"] for r in _rows(root / "choices.csv", "selected") if r["variant_chosen"] == "1"} == {"warmup"}


def test_without_a_held_out_split_there_is_no_honest_choice(tmp_path):
    paths = write_toy(tmp_path / "results")
    for p in paths:                                        # a study with val_fraction 0: no held-out accuracy
        text = p.read_text().replace('"val_acc_selected": ', '"val_acc_selected": null, "_was": ')
        p.write_text(text)
        for curves in p.parent.rglob("curves.csv"):
            lines = curves.read_text().splitlines()
            curves.write_text("\n".join([lines[0]] + [",".join(x.split(",")[:6] + ["nan"] + x.split(",")[7:])
                                                      for x in lines[1:]]) + "\n")
    collect.collect(paths, tmp_path / "results.csv", tmp_path / "curves.csv")
    made = choices.write_choices(tmp_path / "results.csv", tmp_path / "choices.csv")
    honest = [c for c in made if c.selection == "selected"]
    assert honest and all(c.values is None and c.why == "no held-out split" for c in honest)
    final = [c for c in made if c.selection == "final" and c.values is not None]
    assert final and all(c.chosen_by == "test_acc_final" for c in final)   # said where it is test-chosen
    shutil.rmtree(tmp_path / "results")
