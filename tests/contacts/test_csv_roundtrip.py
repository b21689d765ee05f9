"""Property: what a spreadsheet writes (any text, quoted as csv does) reads back the same."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from router.contacts import load_source

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00")
                | st.sampled_from([";", ",", '"', "\n", "é"]), min_size=1, max_size=12).map(
    str.strip).filter(bool)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=8),
       delimiter=st.sampled_from([",", ";"]), bom=st.booleans())
def test_names_and_attributes_round_trip(rows: list[tuple[str, str]], delimiter: str,
                                         bom: bool) -> None:
    """Quoted separators, quotes and line breaks survive; each contact keeps its line."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(["id", "name", "email", "note"])
    starts = []
    for i, (name, note) in enumerate(rows):
        starts.append(buf.getvalue().count("\n") + 1)
        writer.writerow([f"c{i}", name, f"c{i}@example.com", note])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.csv"
        path.write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode())
        src = load_source(path)
    assert src.error is None and src.problems == ()
    assert [(c.name, c.attributes["note"]) for c in src.contacts] == rows
    assert list(src.lines) == starts
