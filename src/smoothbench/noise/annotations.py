"""Noise of your own: a file of real annotations per label set, the registry entry ``annotations``.

A study names its label sets in ``noise_options.annotations.files`` (label set -> {dataset,
path}); the kind's "rate" is such a name and its labels are read from the file
(``userfiles.load_annotations``: one label per training sample, in training order), not drawn,
so the seeds are only recorded. docs/formats.md, "Your own labels".
"""

from __future__ import annotations

import numpy as np

from ..data import userfiles
from .registry import NoiseJob, NoiseKind, Option, register
from .sampling import empirical_transition


def annotation_files(study: dict) -> dict:
    """Label set -> {dataset, path}: the annotation files of a study."""
    return ((study.get("noise_options") or {}).get("annotations") or {}).get("files") or {}


def _corrupt(job: NoiseJob) -> tuple[np.ndarray, np.ndarray]:
    files = job.options.get("files") or {}
    entry = files.get(str(job.rate))
    if not entry or entry.get("dataset") != job.dataset:
        raise ValueError(f"annotations {job.rate}: no label file for dataset {job.dataset} in option files "
                         f"(given: {', '.join(sorted(files)) or 'none'})")
    noisy = userfiles.load_annotations(entry["path"], job.labels.size, job.num_classes, job.dataset)
    return noisy, empirical_transition(job.labels, noisy, job.num_classes)


def _check_label_set(study: dict, name: str, datasets: list, where: str) -> str | None:
    files = annotation_files(study)
    if name not in files:
        return f"unknown label set; give its file in noise_options.annotations.files ({', '.join(files) or 'none given'})"
    owner = files[name]["dataset"]
    if owner not in datasets:
        why = "which is not in datasets" if owner not in study["datasets"] else \
            "which has its own grid in dataset_noise" if where == "noise" else f"not to {datasets[0]}"
        return f"the label set {name} belongs to {owner} (noise_options.annotations.files.{name}.dataset), {why}"
    return None


register(NoiseKind(
    name="annotations", description="real annotations of your own: a file of labels per label set",
    rates="the name of a label set of noise_options.annotations.files",
    label_sets=lambda study: {name: f.get("dataset") for name, f in annotation_files(study).items()},
    grid_schema={"type": "array", "items": {"$ref": "#/$defs/label_set"}},
    check_label_set=_check_label_set, corrupt=_corrupt, transition_from_labels=True,
    options=(Option("files", {"type": "object", "propertyNames": {"$ref": "#/$defs/label_set"},
                              "additionalProperties": {"type": "object", "additionalProperties": False,
                                                       "required": ["dataset", "path"],
                                                       "properties": {"dataset": {"$ref": "#/$defs/dataset_name"},
                                                                      "path": {"type": "string", "minLength": 1}}}},
                    meaning="label set -> {dataset, path}: a file of real annotations, one label per training "
                            "sample of the dataset in training order (.npy, .npz with one array labels, or .csv "
                            "with one integer per line), inside data-in/. See docs/formats.md, \"Your own labels\".",
                    metavar="'{\"NAME\": {\"dataset\": D, \"path\": FILE}}'"),),
    needs="a file of annotations per label set (option files)"))
