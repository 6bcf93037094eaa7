"""Atomic file output: a killed job never leaves a half-written file that looks complete."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file lives in the same folder (same file system), so the final
    ``os.replace`` is atomic. On error the temporary file is removed, and an OS error
    (read-only folder, full disk) names ``path``, not the temporary file.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files; give outputs the usual umask-based mode
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except OSError as exc:
        ours = exc.filename is None or str(exc.filename) == str(path.parent) or \
            Path(str(exc.filename)).name.startswith(f".{path.name}.")
        if exc.errno is not None and ours:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Deterministic JSON: sorted keys, fixed indentation, trailing newline."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def strict_json(obj: Any) -> Any:
    """``obj`` with non-finite floats as None, so that its JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [strict_json(v) for v in obj]
    return obj


def write_rows(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[dict]) -> None:
    """A CSV file of ``rows`` (dicts) in ``columns`` order, atomically: ``\\n`` line ends,
    floats with 9 significant digits (``nan`` for NaN), everything else as ``str``."""
    def text(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if v != v else format(v, ".9g")
        return str(v)

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([text(r[c]) for c in columns])


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed entry date: same arrays -> same bytes


def write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """Write ``arrays`` atomically as an uncompressed ``.npz`` at exactly ``path``.

    No pickles, and byte-for-byte reproducible: ``np.savez`` stamps each zip entry with
    the current time, this writer uses a fixed date and fixed attributes instead.
    """
    import numpy as np

    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, arr in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_STORED
                info.create_system = 3
                info.external_attr = 0o644 << 16
                with zf.open(info, mode="w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asarray(arr, order="C"), allow_pickle=False)
