"""router.errors.excerpt: a provider's answer is never kept whole."""

from __future__ import annotations

from router.errors import EXCERPT_CHARS, excerpt


def test_short_text_is_kept_on_one_line() -> None:
    """Whitespace runs and control characters become single spaces."""
    assert excerpt("  bad\r\n\tVAPID\x00 key \x1b[31m ") == "bad VAPID key [31m"


def test_long_text_is_cut_with_an_ellipsis() -> None:
    """Longer than the limit: cut to the limit, ending with an ellipsis."""
    cut = excerpt("<html>" + "x" * 5000)
    assert len(cut) == EXCERPT_CHARS
    assert cut.endswith("…") and cut.startswith("<html>x")
    assert excerpt("abcdef", limit=4) == "abc…"
