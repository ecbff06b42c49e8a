"""The README opens with the two set-up commands, and CI runs the second one verbatim."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_starts_with_two_setup_commands():
    text = (REPO / "README.md").read_text()
    head = text.split("\n## ", 1)[0]
    assert len(re.findall(r"```sh\n", head)) == 2
    run, test = _commands()[:2]
    assert run.endswith("python app.py") and "requirements.txt" in run
    assert test.endswith("-m pytest") and "chromium" in test and "requirements-test.txt" in test


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert _commands()[1] in ci
