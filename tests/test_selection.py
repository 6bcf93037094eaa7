"""selection: which epoch a cell's number comes from, under each selection."""

from __future__ import annotations

import math

import pytest

from smoothbench.core import selection


def _hist(test, val):
    return [{"epoch": i + 1, "test_acc": t, "val_acc": v} for i, (t, v) in enumerate(zip(test, val))]


def test_each_selection_reads_its_own_epoch():
    h = _hist([0.5, 0.8, 0.7, 0.6], [0.4, 0.3, 0.6, 0.5])
    got = selection.select(h)
    assert got == {"test_acc_final": 0.6, "test_acc_best": 0.8, "best_epoch": 2,
                   "test_acc_selected": 0.7, "selected_epoch": 3, "val_acc_selected": 0.6}


def test_ties_go_to_the_earliest_epoch():
    h = _hist([0.7, 0.9, 0.9, 0.9], [0.5, 0.5, 0.5, 0.2])
    got = selection.select(h)
    assert (got["best_epoch"], got["selected_epoch"]) == (2, 1)


def test_no_held_out_split_means_no_honest_selection():
    h = _hist([0.7, 0.9], [math.nan, math.nan])
    got = selection.select(h)
    assert got["test_acc_selected"] is None and got["selected_epoch"] is None and got["val_acc_selected"] is None
    assert got["test_acc_best"] == 0.9


def test_selection_columns_are_results_columns():
    from smoothbench.core.vocabulary import RESULT_COLUMNS

    for name, (column, meaning) in selection.SELECTIONS.items():
        assert column in RESULT_COLUMNS and meaning and name in selection.SELECTION_TITLES
    assert set(selection.EPOCH_COLUMNS.values()) <= set(RESULT_COLUMNS)
    with pytest.raises(ValueError, match="selection 'oracle' is unknown; allowed: best, selected, final"):
        selection.metric("oracle")
