"""SMS text handling: encodings, segment counts, truncation and transliteration."""

from __future__ import annotations

import pytest

from router.sms import (
    Encoding,
    SmsOverflowError,
    SmsPolicy,
    analyse,
    encoding_of,
    fit,
    segment_count,
    split_segments,
    to_gsm7,
    truncate,
)

# (id, text, encoding, units, segments)
CASES = [
    ("empty", "", Encoding.GSM7, 0, 0),
    ("english-short", "HostDown on node-1 (critical)", Encoding.GSM7, 29, 1),
    ("english-160", "a" * 160, Encoding.GSM7, 160, 1),
    ("english-161", "a" * 161, Encoding.GSM7, 161, 2),
    ("english-306", "a" * 306, Encoding.GSM7, 306, 2),
    ("english-307", "a" * 307, Encoding.GSM7, 307, 3),
    ("french-c-cedilla-is-ucs2", "Alerte déclenchée à Paris : où ça ?", Encoding.UCS2, 35, 1),
    ("french-circumflex-is-ucs2", "Évènement réglé, tâche close", Encoding.UCS2, 28, 1),
    ("french-in-gsm7", "Alerte déclenchée à 10h, réseau coupé", Encoding.GSM7, 37, 1),
    ("french-guillemets", "L'alerte « HostDown » est déclenchée", Encoding.UCS2, 36, 1),
    ("ucs2-70", "é" * 10 + "ê" * 60, Encoding.UCS2, 70, 1),
    ("ucs2-71", "ê" * 71, Encoding.UCS2, 71, 2),
    ("ucs2-134", "ê" * 134, Encoding.UCS2, 134, 2),
    ("ucs2-135", "ê" * 135, Encoding.UCS2, 135, 3),
    ("emoji-counts-two", "🔥 fire", Encoding.UCS2, 7, 1),
    ("emoji-35-fit", "🔥" * 35, Encoding.UCS2, 70, 1),
    ("emoji-36-two-parts", "🔥" * 36, Encoding.UCS2, 72, 2),
    ("extension-euro", "cost 5€", Encoding.GSM7, 8, 1),
    ("extension-braces", "{job}[0]", Encoding.GSM7, 12, 1),
    ("extension-80-fit", "€" * 80, Encoding.GSM7, 160, 1),
    ("extension-81-two-parts", "€" * 81, Encoding.GSM7, 162, 2),
]


@pytest.mark.parametrize(("text", "encoding", "units", "segments"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_analyse_table(text: str, encoding: Encoding, units: int, segments: int) -> None:
    """Encoding, unit count and part count match GSM 03.38 / UCS-2 rules for each text."""
    info = analyse(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)
    assert encoding_of(text) is encoding
    assert segment_count(text) == segments


def test_pairs_never_split_across_parts() -> None:
    """An escape pair (€) at a part border moves whole to the next part, costing a part."""
    text = "a" * 152 + "€" + "b" * 152  # 152+2+152 = 306 septets, but € cannot straddle
    parts = split_segments(text)
    assert parts[0] == "a" * 152
    assert "".join(parts) == text
    assert len(parts) == 3


def test_surrogate_pairs_never_split() -> None:
    """An emoji at a UCS-2 part border moves whole to the next part."""
    text = "ê" * 66 + "🔥" + "ê" * 10
    parts = split_segments(text)
    assert parts[0] == "ê" * 66
    assert parts[1].startswith("🔥")


# (id, text, max_segments, expected)
TRUNCATE_CASES = [
    ("fits-unchanged", "short text", 1, "short text"),
    ("english-word-boundary", "word " * 40, 1, ("word " * 31).rstrip() + "..."),
    ("ucs2-ellipsis", "mot à mot déclenché « alerte » " * 5, 1, None),
    ("one-long-word", "x" * 200, 1, "x" * 157 + "..."),
]


@pytest.mark.parametrize(("text", "max_segments", "expected"),
                         [c[1:] for c in TRUNCATE_CASES], ids=[c[0] for c in TRUNCATE_CASES])
def test_truncate_table(text: str, max_segments: int, expected: str | None) -> None:
    """Truncation keeps within the budget, cuts at a word boundary, ends with an ellipsis."""
    result = truncate(text, max_segments)
    assert segment_count(result) <= max_segments
    if expected is not None:
        assert result == expected
    if result != text:
        ellipsis = "..." if encoding_of(text) is Encoding.GSM7 else "…"
        assert result.endswith(ellipsis)
        head = result[: -len(ellipsis)]
        assert text.startswith(head)
        if " " in text[:len(head) + 1]:
            assert text[len(head)] == " "  # cut at a word boundary


def test_truncate_multi_part_budget() -> None:
    """A 3-part budget keeps as many words as 3×153 septets allow, never more."""
    text = " ".join(f"w{i:03d}" for i in range(200))
    result = truncate(text, 3)
    assert segment_count(result) == 3
    assert len(result) <= 3 * 153
    assert len(result) > 3 * 153 - 10


# (id, text, expected)
GSM7_CASES = [
    ("e-acute-stays", "réseau coupé à Paris", "réseau coupé à Paris"),
    ("other-accents-folded", "tâche forêt île hôte Noël naïf", "tache foret ile hote Noel naif"),
    ("c-cedilla", "ça reçu", "ca recu"),
    ("guillemets-and-nbsp", "« alerte »\u202f: fin…", '" alerte " : fin...'),
    ("apostrophe", "l’alerte", "l'alerte"),
    ("ligature", "cœur", "coeur"),
    ("emoji-replaced", "🔥 fire", "? fire"),
    ("extension-kept", "5€ [x]", "5€ [x]"),
    ("german-kept", "Größe Übel", "Größe Übel"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in GSM7_CASES],
                         ids=[c[0] for c in GSM7_CASES])
def test_to_gsm7_table(text: str, expected: str) -> None:
    """Transliteration keeps GSM-7 letters (é), folds other accents and punctuation."""
    result = to_gsm7(text)
    assert result == expected
    assert encoding_of(result) is Encoding.GSM7


def test_fit_transliterates_then_counts() -> None:
    """A French text with one « » goes from UCS-2 to GSM-7 with transliteration on."""
    text = "L'alerte « HostDown » est déclenchée sur node-1. " * 3
    assert analyse(text).encoding is Encoding.UCS2
    body, info = fit(text, SmsPolicy(max_segments=3, transliterate=True))
    assert info.encoding is Encoding.GSM7
    assert info.segments == 1
    assert "déclenchée" in body


def test_fit_overflow_fail_raises() -> None:
    """With overflow 'fail', a text over the part budget raises SmsOverflowError."""
    with pytest.raises(SmsOverflowError, match="needs 2 parts"):
        fit("a" * 200, SmsPolicy(max_segments=1, overflow="fail"))


def test_fit_overflow_truncate() -> None:
    """With overflow 'truncate', the result fits the budget."""
    body, info = fit("word " * 100, SmsPolicy(max_segments=2))
    assert info.segments == 2
    assert body.endswith("...")


def test_policy_rejects_bad_values() -> None:
    """A policy with zero parts or an unknown overflow is refused at construction."""
    with pytest.raises(ValueError, match="max_segments"):
        SmsPolicy(max_segments=0)
    with pytest.raises(ValueError, match="overflow"):
        SmsPolicy(overflow="drop")  # type: ignore[arg-type]
