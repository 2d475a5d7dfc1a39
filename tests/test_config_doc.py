"""docs/OPERATIONS.md's configuration reference is the one the code generates."""

from __future__ import annotations

from swarmnode.config import SECTIONS
from swarmnode.configdoc import DOC, field_docs, render, splice
from swarmnode.settings import settings_of


def test_the_operations_page_holds_the_generated_reference():
    page = DOC.read_text()
    assert splice(page, render()) == page, (
        "docs/OPERATIONS.md is stale: run `python -m swarmnode.configdoc --write`"
    )


def test_every_setting_of_every_section_is_documented_with_its_meaning():
    reference = render()
    for name, cls in SECTIONS.items():
        assert f"### `[{name}]`" in reference
        docs = field_docs(cls)
        for f in settings_of(cls):
            assert docs.get(f.name), f"[{name}] {f.name} has no docstring"
            assert f"| `{f.name}` |" in reference
