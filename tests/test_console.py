"""smoothbench's console for Snakemake (the logger plugin `smoothbench run` runs Snakemake with):
one line per finished job (done/total, what it was, how long), one line for what the run has to
do, errors whole, Snakemake's bookkeeping left out, and what the workflow registered called
once a run finds nothing to do. Fast: Snakemake's own records, made here as Snakemake makes them
(snakemake.jobs / scheduling.job_scheduler / workflow), through the handler Snakemake would
build; the end-to-end console is tests/test_first_hour.py's."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
import snakemake_logger_plugin_smoothbench as console
from snakemake.common import NOTHING_TO_BE_DONE_MSG
from snakemake.logging import DefaultFilter, DefaultFormatter
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry

from smoothbench.pipeline import runner


def _handler(dryrun=False, verbose=False):
    """The handler as Snakemake builds it for `--logger smoothbench` (its default filter and
    formatter attached, since the plugin has neither), writing into a string."""
    settings = SimpleNamespace(printshellcmds=True, nocolor=True, quiet=set(), debug_dag=False, verbose=verbose,
                               show_failed_logs=True, stdout=False, dryrun=dryrun)
    plugin = LoggerPluginRegistry().get_plugin(runner.CONSOLE)
    handler = plugin.log_handler(settings, None)
    assert not handler.has_filter and not handler.has_formatter
    handler.addFilter(DefaultFilter(settings.quiet, False, verbose, dryrun, True))
    handler.setFormatter(DefaultFormatter(settings.quiet, True))
    handler.stream = io.StringIO()
    return handler


def _record(msg, created=0.0, level=logging.INFO, **extra):
    record = logging.LogRecord("snakemake", level, "x", 0, msg, None, None)
    record.created = created
    record.__dict__.update(extra)
    return record


def _job_info(jobid, rule, wildcards):
    return _record(f" Rule: {rule}, Jobid: {jobid}", event=LogEvent.JOB_INFO, jobid=jobid, rule_msg=None,
                   rule_name=rule, local=True, input=["data/digits.npz", "noisy/digits/symmetric-0.4-s0.npz"],
                   output=["results/digits/symmetric-0.4/seed0/group.json"], log=[], benchmark=None,
                   wildcards=wildcards, reason="Missing output files", resources={}, priority=0, threads=1,
                   indent=False, is_checkpoint=False, printshellcmd=True, is_handover=False,
                   shellcmd="smoothbench train ...")


def _said(handler, *records):
    for r in records:
        handler.handle(r)
    return handler.stream.getvalue().splitlines()


def test_one_line_per_finished_job_and_one_for_what_the_run_has_to_do():
    h = _handler()
    lines = _said(
        h,
        _record("Building DAG of jobs..."),
        _record("Job stats:\n...", event=LogEvent.RUN_INFO, stats={"data": 1, "train": 2, "all": 1, "total": 4}),
        _record("Select jobs to execute..."),
        _job_info(3, "train", {"dataset": "digits", "kind": "symmetric", "rate": "0.4"}),
        _job_info(5, "train", {"dataset": "digits", "kind": "symmetric", "rate": "0"}),
        _record("Execute 2 jobs...", created=100.0, event=LogEvent.JOB_STARTED, jobs=[3, 5]),
        _record("smoothbench train ...", event=LogEvent.SHELLCMD, cmd="smoothbench train ..."),
        _record("Finished jobid: 5 (Rule: train)", event=LogEvent.JOB_FINISHED, job_id=5),
        _record(None, created=141.4, event=LogEvent.PROGRESS, done=3, total=4),
        _record("Finished jobid: 3 (Rule: train)", event=LogEvent.JOB_FINISHED, job_id=3),
        _record(None, created=100.0 + 3 * 3600 + 125, event=LogEvent.PROGRESS, done=4, total=4),
        _record("Complete log(s): .snakemake/log/x.log"),
    )
    assert lines == ["4 jobs to run: data 1, train 2, all 1",
                     "[3/4] train digits symmetric 0 (41 s)",
                     "[4/4] train digits symmetric 0.4 (3 h 02 min)"]


def test_errors_warnings_and_unknown_messages_are_shown_whole():
    h = _handler()
    error = _record("Error in rule train, jobid: 3", level=logging.ERROR, event=LogEvent.JOB_ERROR)
    error.__dict__.update(rule_name="train", rule_msg=None, jobid=3, input=["a"], output=["b"], log=[],
                          conda_env=None, shellcmd="smoothbench train --data a", aux={})
    lines = _said(h, error, _record("Removing output files of failed job train since they might be corrupted:\nb"),
                  _record("a warning", level=logging.WARNING))
    text = "\n".join(lines)
    assert "Error in rule train:" in text and "jobid: 3" in text and "smoothbench train --data a" in text
    assert "Removing output files of failed job train since they might be corrupted:\nb" in text
    assert lines[-1] == "a warning"


def test_nothing_to_do_says_so_then_calls_what_the_workflow_registered(monkeypatch):
    calls = []
    monkeypatch.setattr(console, "_AT_NOTHING_TO_DO", [])
    h = _handler()
    console.at_nothing_to_do(lambda: calls.append(h.stream.getvalue()))
    lines = _said(h, _record("Building DAG of jobs..."), _record(NOTHING_TO_BE_DONE_MSG))
    assert lines == [NOTHING_TO_BE_DONE_MSG]
    assert calls == [NOTHING_TO_BE_DONE_MSG + "\n"]            # after the line, once
    dry = _handler(dryrun=True)                                # a dry run: Snakemake's console, no call
    assert _said(dry, _record("Building DAG of jobs..."), _record(NOTHING_TO_BE_DONE_MSG)) == [
        "Building DAG of jobs...", NOTHING_TO_BE_DONE_MSG]
    assert len(calls) == 1


@pytest.mark.parametrize("settings", [dict(dryrun=True), dict(verbose=True)], ids=["dry run", "verbose"])
def test_a_dry_run_and_verbose_show_snakemake_s_own_console(settings):
    h = _handler(**settings)
    lines = _said(h, _job_info(3, "train", {"dataset": "digits"}))
    assert "    input: data/digits.npz, noisy/digits/symmetric-0.4-s0.npz" in lines


def test_run_gives_snakemake_the_console_unless_verbose_or_another_logger():
    assert runner.with_console(["--cores", "2"]) == ["--cores", "2", "--logger", "smoothbench"]
    assert runner.with_console(["--cores", "2", "--verbose"]) == ["--cores", "2"]
    assert runner.with_console(["--logger", "other"]) == ["--logger", "other"]
