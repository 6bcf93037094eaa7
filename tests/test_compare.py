"""The reproduction check by hand (`smoothbench compare BUILT EXPECTED`): its one line, exactly,
for a copy that matches, a copy with one byte changed, and folders that are missing or empty
(comparing nothing proves nothing: a non-zero exit, one line). The committed copy expected/
is the reference; each case plants its fault into a copy of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from helpers import copy_reports, flip_one_byte, report_files_of

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "expected"


def compare(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smoothbench.cli", "compare", *args], cwd=cwd,
                          capture_output=True, text=True)


def test_a_faithful_copy_is_byte_identical(tmp_path):
    copy_reports(EXPECTED, tmp_path / "reports")
    n = len(report_files_of(EXPECTED))
    proc = compare(tmp_path, "reports", str(EXPECTED))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"reproduction check: reports/ is byte-identical to {EXPECTED}/ ({n} files)"]


def test_one_changed_byte_is_named(tmp_path):
    copy_reports(EXPECTED, tmp_path / "reports")
    n = len(report_files_of(EXPECTED))
    flip_one_byte(tmp_path / "reports" / "findings.md")
    proc = compare(tmp_path, "reports", str(EXPECTED))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"reproduction check: 1 of {n} files of reports/ are not byte-identical "
                                        f"to {EXPECTED}/ (the committed copy) - differ: findings.md"]


def test_a_missing_file_is_named(tmp_path):
    copy_reports(EXPECTED, tmp_path / "reports")
    n = len(report_files_of(EXPECTED))
    (tmp_path / "reports" / "summary.json").unlink()
    proc = compare(tmp_path, "reports", str(EXPECTED))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"reproduction check: 1 of {n} files of reports/ are not byte-identical "
                                        f"to {EXPECTED}/ (the committed copy) - missing: summary.json"]


WHAT_TO_GIVE = ("give the built report folder (default: reports; make study builds it) and the committed copy to "
                "compare it with (default: expected)")


def test_missing_folders_fail_with_one_line(tmp_path):
    proc = compare(tmp_path, "nosuch1", "nosuch2")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"smoothbench compare: error: nosuch1/: no such folder; {WHAT_TO_GIVE}"]
    copy_reports(EXPECTED, tmp_path / "reports")
    proc = compare(tmp_path, "reports", "nosuch2")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"smoothbench compare: error: nosuch2/: no such folder; {WHAT_TO_GIVE}"]
    proc = compare(tmp_path)                                         # the defaults: reports/ and expected/
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"smoothbench compare: error: expected/: no such folder; {WHAT_TO_GIVE}"]


def test_empty_folders_fail_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".gitignore").write_text("*\n")           # hidden files are not reports
    proc = compare(tmp_path, "empty", str(EXPECTED))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"smoothbench compare: error: empty/: holds no report files; {WHAT_TO_GIVE}"]
    (tmp_path / "copy").mkdir()
    shutil.copy(EXPECTED / "params.yaml", tmp_path / "copy" / "params.yaml")   # a copy of nothing but its study
    proc = compare(tmp_path, str(EXPECTED), "copy")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"smoothbench compare: error: copy/: holds no report files; {WHAT_TO_GIVE}"]
