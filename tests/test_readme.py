"""The README's claims table is what a reader takes away: it must be the committed default
study's (expected/findings.md), verdict for verdict and number for number, so that a change of
the study that is not carried into the README fails here rather than misleads a reader."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = re.compile(r"[-+]?\d+\.\d+|<0\.001")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def readme_claims(text: str) -> dict[tuple[str, str, str], list[str]]:
    """(dataset, noise, claim id) -> [honest verdict, evidence, final, best] of the README's table."""
    lines = text.splitlines()
    head = next(i for i, x in enumerate(lines) if x.startswith("| dataset / noise | claim |"))
    out = {}
    for line in lines[head + 2:]:
        if not line.startswith("| "):
            break
        where, claim, honest, evidence, final, best = cells(line)
        dataset, noise = where.split(" / ")
        out[(dataset, noise, claim.split()[0])] = [honest, evidence, final, best]
    return out


def findings_claims(text: str) -> dict[tuple[str, str, str], list[str]]:
    """The same from findings.md's claims table (one protocol variant in the default study)."""
    out = {}
    for line in text.splitlines():
        c = cells(line) if line.startswith("| ") else []
        if len(c) == 8 and re.fullmatch(r"\([a-z]'?\)", c[3].split()[0] if c[3] else ""):
            dataset, noise, _variant, claim, honest, evidence, final, best = c
            out[(dataset, noise, claim.split()[0])] = [honest, evidence, final, best]
    return out


def numbers(evidence: str) -> list[str]:
    """The figures of an evidence text, without the seed count and the note on what was pooled
    (the README leaves both out)."""
    evidence = re.sub(r" \(n=\d+\)", "", evidence)
    evidence = re.sub(r"; per seed, [^;]*", "", evidence)
    return NUMBER.findall(evidence)


def test_readme_claims_table_is_the_committed_studys():
    readme = readme_claims((ROOT / "README.md").read_text())
    findings = findings_claims((ROOT / "expected" / "findings.md").read_text())
    assert findings and set(readme) == set(findings)
    for key, (honest, evidence, final, best) in findings.items():
        r_honest, r_evidence, r_final, r_best = readme[key]
        assert (r_honest, r_final, r_best) == (honest, final, best), key
        if honest.endswith("not tested"):
            continue
        assert numbers(r_evidence) == numbers(evidence), (key, r_evidence, evidence)


def test_the_comparison_sees_a_changed_number():
    """The check is not vacuous: one changed figure or verdict of the README fails it."""
    readme = (ROOT / "README.md").read_text()
    findings = findings_claims((ROOT / "expected" / "findings.md").read_text())
    ours = readme_claims(readme)
    key = next(k for k, v in findings.items() if not v[0].endswith("not tested"))
    honest, evidence = ours[key][:2]
    first = NUMBER.search(evidence).group()
    planted = evidence.replace(first, "+99.99", 1)
    assert numbers(planted) != numbers(findings[key][1])
    assert readme_claims(readme.replace(f"| {honest} | {evidence} |", f"| {honest} | {planted} |"))[key][1] == planted
