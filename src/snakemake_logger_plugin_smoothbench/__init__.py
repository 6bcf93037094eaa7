"""smoothbench's console for Snakemake: a Snakemake logger plugin (``snakemake --logger smoothbench``).

``smoothbench run`` (``make study``) runs Snakemake with it unless given ``--verbose``. Instead of
Snakemake's block per job (every input and output file, the log, the shell command, the
resources), the console has

- one line saying what the run has to do (``21 jobs: data 2, noise 8, train 8, ...``);
- one line per finished job: how many are done of how many, what it was (its rule and
  wildcards) and how long it took, e.g. ``[ 7/21] train mnist5k symmetric 0.3 (41 s)``;
- every error whole (a failed job's block, with its log where ``--show-failed-logs`` says so),
  every warning, and every message it does not know to be Snakemake's bookkeeping;
- in a run with nothing to do, Snakemake's "Nothing to be done" and then what the workflow
  asked to be told then (``at_nothing_to_do``: the reproduction check of workflow/rules/common.smk).

A dry run (``-n``) and ``--verbose`` print what Snakemake's own console prints. Snakemake finds
this plugin by its module name (``snakemake_logger_plugin_*``, the logger plugin interface);
it imports nothing of smoothbench, so that the workflow's own check of which smoothbench it
runs (common.smk) sees the copy the workflow imports first.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent

# Snakemake's own line when every requested file is up to date (snakemake.common.NOTHING_TO_BE_DONE_MSG)
NOTHING_TO_BE_DONE = "Nothing to be done (all requested files are present and up to date)."

# Snakemake's bookkeeping, not shown: events whose content the lines above say, or leave out
_UNSHOWN_EVENTS = {LogEvent.WORKFLOW_STARTED, LogEvent.RESOURCES_INFO, LogEvent.JOB_INFO, LogEvent.SHELLCMD,
                   LogEvent.JOB_STARTED, LogEvent.JOB_FINISHED, LogEvent.GROUP_INFO, LogEvent.DEBUG_DAG,
                   LogEvent.RULEGRAPH}
# ... and informational messages by how they begin (any other message is shown)
_UNSHOWN_MESSAGES = ("Select jobs to execute", "Building DAG of jobs", "Using shell:", "Assuming unrestricted shared",
                     "Complete log(s):", "Elapsed time:", "Conda environments: ignored",
                     "Singularity containers: ignored", "Group jobs: inactive", "Provided cores", "Provided resources",
                     "Rules claiming more threads", "Using workflow specific profile")

_AT_NOTHING_TO_DO: list[Callable[[], None]] = []


def at_nothing_to_do(function: Callable[[], None]) -> None:
    """Have ``function`` called once a run that is not a dry run finds nothing to do (Snakemake
    calls the workflow's ``onsuccess`` only after a run with jobs). Registered by the workflow
    while it is parsed, in the Snakemake process that has this console."""
    _AT_NOTHING_TO_DO.append(function)


def job_text(rule: str, wildcards: dict | None) -> str:
    """What a job was: its rule and its wildcards' values, e.g. ``train mnist5k symmetric 0.3``."""
    return " ".join([rule, *(str(v) for v in (wildcards or {}).values())])


def duration_text(seconds: float) -> str:
    """``41 s``, ``3 min 05 s``, ``1 h 02 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class LogHandler(LogHandlerBase):
    """The console: Snakemake's records in, the lines above out (to stderr, or stdout with
    Snakemake's ``--stdout``). Snakemake attaches its default filter (``--quiet``, shell commands)
    and formatter (used for what is shown whole)."""

    def __post_init__(self) -> None:
        self.stream = sys.stdout if self.common_settings.stdout else sys.stderr
        self.everything = bool(self.common_settings.dryrun or self.common_settings.verbose)
        self.jobs: dict[int, str] = {}           # jobid -> what it is
        self.started: dict[int, float] = {}      # jobid -> when it started (the record's time)
        self.finished: list[int] = []            # jobids finished, not yet said

    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return False

    @property
    def has_formatter(self) -> bool:
        return False

    @property
    def needs_rulegraph(self) -> bool:
        return False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = self.lines(record)
            for line in lines:
                self.stream.write(line + "\n")
            self.stream.flush()
            if lines and lines[-1].strip() == NOTHING_TO_BE_DONE and not self.everything:
                for function in _AT_NOTHING_TO_DO:
                    function()
        except Exception:  # a console that cannot write must not stop the workflow
            self.handleError(record)

    def lines(self, record: logging.LogRecord) -> list[str]:
        """What the console says of one of Snakemake's records (nothing, one line, or a block)."""
        if self.everything:
            return [self.format(record)]
        event = getattr(record, "event", None)
        if event == LogEvent.JOB_INFO:
            self.jobs[record.jobid] = job_text(record.rule_name, record.wildcards)
        elif event == LogEvent.JOB_STARTED:
            for jobid in record.jobs:
                self.started[jobid] = record.created
        elif event == LogEvent.JOB_FINISHED:
            self.finished.append(record.job_id)
        elif event == LogEvent.PROGRESS:
            out = []
            width = len(str(record.total))
            for jobid in self.finished:
                took = record.created - self.started[jobid] if jobid in self.started else None
                out.append(f"[{record.done:>{width}}/{record.total}] {self.jobs.get(jobid, f'job {jobid}')}"
                           + (f" ({duration_text(took)})" if took is not None else ""))
            self.finished = []
            return out
        elif event == LogEvent.RUN_INFO and getattr(record, "stats", None):
            stats = dict(record.stats)
            total = stats.pop("total", sum(stats.values()))
            return [f"{total} job{'s' if total != 1 else ''} to run: "
                    + ", ".join(f"{rule} {count}" for rule, count in stats.items())]
        elif event in (LogEvent.JOB_ERROR, LogEvent.GROUP_ERROR, LogEvent.ERROR) or record.levelno >= logging.WARNING:
            return [self.format(record)]
        elif event is None or event not in _UNSHOWN_EVENTS:
            text = self.format(record)
            # (a record without a message of its own reaches a plugin as the text "None")
            if text.strip() not in ("", "None") and not text.lstrip().startswith(_UNSHOWN_MESSAGES):
                return [text]
        return []
