"""What an SMS reply means and what Tocsin decides to do with it (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.acks.replies import (
    Reply,
    choices_text,
    decide,
    parse_reply,
    reply_language,
)
from tests.acks.sns_peer import pending

DB = pending("inc-db", "4821", "DB down on db-1", minute=1)
DISK = pending("inc-disk", "1234", "Disk full on web-3", minute=2)


@pytest.mark.parametrize("text", ["OUI", "oui", "oui !", "Oui.", "  yes ", "Y", "o", "OK",
                                  "ok!", "ACK", "Òui", "oui je regarde", "Yes, on it"])
def test_yes_words(text: str) -> None:
    """Case, accents, punctuation and trailing words after a real word do not matter."""
    reply = parse_reply(text)
    assert reply.kind == "yes" and reply.code is None


@pytest.mark.parametrize("text", ["OUI 4821", "4821 oui", "oui, 4821", "Yes #4821 thanks",
                                  "ok-4821"])
def test_yes_with_a_code(text: str) -> None:
    """The code may come before or after the yes word."""
    assert parse_reply(text) == Reply("yes", code="4821", language=parse_reply(text).language)


@pytest.mark.parametrize("text", ["STOP", "stop", "Arrêt", "ARRET", "stop all", "STOPALL",
                                  "Unsubscribe", "cancel", "END", "quit", "opt-out", "OPTOUT."])
def test_opt_out_keywords(text: str) -> None:
    """A whole message that is a carrier keyword is an opt-out."""
    assert parse_reply(text).kind == "opt_out"


def test_aws_matched_keyword_is_an_opt_out() -> None:
    """messageKeyword STOP (AWS matched it) counts even if the body differs."""
    assert parse_reply("Stop svp", keyword="STOP").kind == "opt_out"
    assert parse_reply("oui", keyword="KEYWORD_33700000001").kind == "yes"


@pytest.mark.parametrize("text", ["", "?", "non", "no", "oui mais non", "y a un souci",
                                  "stop 4821 please", "peut-être", "OUI 4821 1234", "ok ok",
                                  "12345"])
def test_not_understood(text: str) -> None:
    """Negations, ambiguity and other words are not a yes."""
    assert parse_reply(text).kind == "unknown"


def test_bare_code_answers_like_a_pager() -> None:
    """``4821`` alone picks that incident; a code that matches none is not understood."""
    assert decide(parse_reply("4821"), [DB, DISK]).targets == (DB,)
    assert decide(parse_reply("9999"), [DB, DISK]).action == "not_understood"


def test_decisions() -> None:
    """One pending: it; several: choose; a code: that one; none: nothing."""
    yes = parse_reply("oui")
    assert decide(yes, [DB]).targets == (DB,)
    assert decide(yes, [DISK, DB]).choices == (DB, DISK)  # oldest first
    assert decide(parse_reply("oui 1234"), [DB, DISK]).targets == (DISK,)
    assert decide(parse_reply("oui 9999"), [DB, DISK]).action == "choose"
    assert decide(yes, []).action == "not_pending"
    assert decide(parse_reply("stop"), []).action == "opt_out"


def test_same_incident_twice_counts_once() -> None:
    """Two contacts with the same phone paged for one incident: one target."""
    bob = pending("inc-db", "4821", "DB down on db-1", contact="bob", minute=5)
    assert decide(parse_reply("oui"), [DB, bob]).targets == (DB,)


def test_choices_text_fits_one_sms() -> None:
    """The choices list each code with a short title, in the reply's language."""
    text = choices_text([DB, DISK], "fr")
    assert text == ("Plusieurs incidents: répondez OUI 4821 (DB down on db-1) ou "
                    "OUI 1234 (Disk full on web-3)")
    many = [pending(f"i{n}", str(1000 + n), "A very long incident title that goes on")
            for n in range(6)]
    text = choices_text(many, "en")
    assert text.startswith("Several incidents: reply YES 1000 (") and "(+2 more)" in text
    assert len(text) <= 200


def test_language_follows_the_word_then_the_country() -> None:
    """OUI → fr, YES → en; OK from +33 → fr, from +44 → en."""
    assert reply_language(parse_reply("yes"), "+33612345678") == "en"
    assert reply_language(parse_reply("oui"), "+447700900123") == "fr"
    assert reply_language(parse_reply("ok"), "+33612345678") == "fr"
    assert reply_language(parse_reply("ok"), "+447700900123") == "en"


@given(st.text(max_size=200))
def test_any_text_parses(text: str) -> None:
    """Whatever arrives, parse_reply answers (never raises) with a known kind."""
    assert parse_reply(text).kind in ("yes", "code", "opt_out", "unknown")


@given(st.sampled_from(["oui", "yes 4821", "4821 ok", "stop", "arrêt", "ack"]),
       st.sampled_from(["", "!", ".", " ?", "  ", "!!", "…"]), st.booleans())
def test_case_and_punctuation_do_not_matter(text: str, tail: str, upper: bool) -> None:
    """Case and trailing punctuation never change the meaning."""
    variant = (text.upper() if upper else text.title()) + tail
    assert parse_reply(variant) == parse_reply(text)
