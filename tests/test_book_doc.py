"""docs/book.md lists every run id as the code runs it, and README and --help point at it."""

import contextlib
import io
import re
from pathlib import Path

import pytest

from experiments import book_table, ch1, ch2, ch3, ch4, ch5, ch6

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = (REPO_ROOT / "docs" / "book.md").read_text()
CHAPTERS = {"ch1": ch1, "ch2": ch2, "ch3": ch3, "ch4": ch4, "ch5": ch5, "ch6": ch6}


def test_the_generated_tables_are_current():
    assert book_table.with_tables(DOC) == DOC, "run python -m experiments.book_table --write"


@pytest.mark.parametrize("chapter", sorted(book_table.chapter_configs()))
def test_every_run_id_has_a_row(chapter):
    ids, _, _ = book_table.chapter_configs()[chapter]
    section = DOC.split(f"### `python -m experiments.{chapter}`", 1)[1].split("###", 1)[0]
    rows = set(re.findall(r"^\| ([^ |/]+)", section, flags=re.M)) - {"id", "---"}
    assert set(ids) <= rows, sorted(set(ids) - rows)


def test_the_doc_explains_the_metrics_and_the_initialiser_choice():
    for words in ("**peak**", "**final**", "**test_at_best_validation**", "smoke run (--quick)",
                  "(not comparable)", "why 3g and 3h use the default"):
        assert words in DOC


def help_text(module) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        module.main(["--help"])
    return out.getvalue()


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_help_points_at_docs_book_md_and_lists_the_ids(chapter):
    text = help_text(CHAPTERS[chapter])
    assert "BOOK.md" not in text.replace("docs/book.md", "")
    if chapter != "ch2":  # chapter 2 has no --only: it measures one gradient three ways
        assert "docs/book.md" in text
        ids = CHAPTERS[chapter].IDS
        # argparse may wrap a line inside an id such as X-early-stopping
        assert ",".join(ids) in "".join(text.split())


def test_readme_names_docs_book_md_never_book_md():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "BOOK.md" not in readme and "docs/book.md" in readme
