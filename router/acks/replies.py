"""What an SMS reply means, and what Tocsin does about it: pure, no I/O.

:func:`parse_reply` reads the text case-, accent- and punctuation-insensitively:

- **yes**: ``OUI``, ``YES``, ``Y``, ``O``, ``OK``, ``ACK`` (``oui !``, ``Oui.``), with an
  optional code before or after (``OUI 4821``, ``4821 oui``); words may follow a yes
  word of two letters or more (``oui je regarde``), never a negation (``oui mais non``);
  a bare code (``4821``) answers too, like a pager's digits;
- **opt-out**: the whole message is a keyword carriers handle (``STOP``, ``ARRET``/``ARRÊT``,
  ``STOPALL``, ``UNSUBSCRIBE``, ``CANCEL``, ``END``, ``QUIT``, ``OPTOUT``...), or AWS
  matched one (``messageKeyword``);
- anything else is **not understood**.

:func:`decide` turns a reply and the requests pending for that phone into one
:class:`Decision`: acknowledge (with a code: the incidents with that code; without: the
only one), ask to choose (several pending, or a code that matches none), record an
opt-out, or nothing. The texts Tocsin answers with are here too, in French or English
(:func:`reply_language`): short, one SMS part.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from router.acks.codes import CODE_DIGITS
from router.acks.contract import PendingAck

__all__ = [
    "OPT_OUT_KEYWORDS",
    "YES_WORDS",
    "Decision",
    "Language",
    "Reply",
    "acknowledged_text",
    "already_text",
    "choices_text",
    "decide",
    "help_text",
    "parse_reply",
    "reply_language",
]

Language = Literal["fr", "en"]

#: Yes words, normalised (upper case, no accents), with their language (None: both).
YES_WORDS: Final[dict[str, Language | None]] = {
    "OUI": "fr", "O": "fr", "YES": "en", "Y": "en", "OK": None, "ACK": None}
#: Words that turn a yes into "not understood" (``oui mais non``, ``yes not me``).
_NEGATIONS: Final = frozenset({"NO", "NON", "NOT", "PAS", "NOPE", "NE", "N"})
#: Opt-out keywords (the whole message, spaces removed): what carriers and AWS handle.
OPT_OUT_KEYWORDS: Final = frozenset({
    "STOP", "STOPALL", "STOPSMS", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT",
    "REVOKE", "ARRET", "ARRETER", "DESABONNER", "DESINSCRIRE"})
_CODE = re.compile(rf"^[1-9]\d{{{CODE_DIGITS - 1}}}$")
_NOT_WORD = re.compile(r"[^A-Z0-9]+")
#: Country codes whose people get French answers when the reply word says nothing.
_FRENCH_PREFIXES: Final = ("+33", "+32", "+41", "+352", "+377", "+262", "+590", "+594",
                           "+596", "+687", "+689")
#: Longest title shown per choice, and most choices listed in one SMS.
_TITLE_CHARS: Final = 28
_MAX_CHOICES: Final = 4


@dataclass(frozen=True, slots=True)
class Reply:
    """What a reply says: ``yes`` (with ``code`` maybe), ``code`` alone, ``opt_out``
    (``keyword``) or ``unknown``; ``language`` when the word tells it."""

    kind: Literal["yes", "code", "opt_out", "unknown"]
    code: str | None = None
    keyword: str | None = None
    language: Language | None = None


def _tokens(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()
    return [t for t in _NOT_WORD.split(plain) if t]


def parse_reply(text: str, *, keyword: str | None = None) -> Reply:
    """What ``text`` says; ``keyword`` is the keyword AWS matched (``messageKeyword``)."""
    tokens = _tokens(text)
    joined = "".join(tokens)
    if joined in OPT_OUT_KEYWORDS:
        return Reply("opt_out", keyword=joined)
    aws_keyword = "".join(_tokens(keyword or ""))
    if aws_keyword in OPT_OUT_KEYWORDS:
        return Reply("opt_out", keyword=aws_keyword)
    if not tokens:
        return Reply("unknown")
    codes = [t for t in tokens if _CODE.match(t)]
    if len(tokens) == 1 and codes:
        return Reply("code", code=codes[0])
    # A code first ("4821 oui"), then the yes word; at most one code in all.
    rest = tokens[1:] if _CODE.match(tokens[0]) else tokens
    if not rest or rest[0] not in YES_WORDS or len(codes) > 1:
        return Reply("unknown")
    word, words = rest[0], [t for t in rest[1:] if not _CODE.match(t)]
    if words and (len(word) < 2 or any(w in _NEGATIONS or w in YES_WORDS for w in words)):
        return Reply("unknown")  # "y a un souci", "oui mais non", "ok ok" are not a clear yes
    return Reply("yes", code=codes[0] if codes else None, language=YES_WORDS[word])


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a reply.

    ``acknowledge``: the pending requests to acknowledge; ``choose``: ask which one
    (``choices``); ``opt_out``; ``not_pending``: the phone has nothing waiting for an
    answer (or is no paged contact); ``not_understood``.
    """

    action: Literal["acknowledge", "choose", "opt_out", "not_pending", "not_understood"]
    targets: tuple[PendingAck, ...] = ()
    choices: tuple[PendingAck, ...] = ()


def decide(reply: Reply, pending: Sequence[PendingAck]) -> Decision:
    """The one decision for ``reply`` given what waits for an answer from that phone.

    A code shared by several pending incidents (one chance in 9,000 per pair)
    acknowledges them all: the person typed the code every one of them showed.
    """
    first: dict[str, PendingAck] = {}
    for item in pending:
        first.setdefault(item.incident_id, item)
    unique = tuple(sorted(first.values(), key=lambda p: p.asked_at))
    if reply.kind == "opt_out":
        return Decision("opt_out")
    if reply.kind == "unknown":
        return Decision("not_understood", choices=unique)
    if not unique:
        return Decision("not_pending")
    if reply.code is not None:
        matches = tuple(p for p in unique if p.code == reply.code)
        if matches:
            return Decision("acknowledge", targets=matches)
        if reply.kind == "code":
            return Decision("not_understood", choices=unique)
        return Decision("choose", choices=unique)
    if len(unique) == 1:
        return Decision("acknowledge", targets=unique)
    return Decision("choose", choices=unique)


def reply_language(reply: Reply, phone: str) -> Language:
    """The language of the answer: the reply word's, else by the phone's country code."""
    if reply.language is not None:
        return reply.language
    return "fr" if phone.startswith(_FRENCH_PREFIXES) else "en"


def _short(title: str) -> str:
    line = " ".join(title.split())
    return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 1].rstrip() + "…"


def choices_text(choices: Sequence[PendingAck], language: Language) -> str:
    """The one SMS listing the choices: ``Plusieurs incidents: répondez OUI 4821 (DB
    down) ou OUI 1234 (Disk full)``."""
    word, joiner, more = ("OUI", " ou ", "autres") if language == "fr" else ("YES", " or ",
                                                                            "more")
    listed = [f"{word} {p.code} ({_short(p.title)})" for p in choices[:_MAX_CHOICES]]
    extra = len(choices) - len(listed)
    tail = f" (+{extra} {more})" if extra > 0 else ""
    if language == "fr":
        return f"Plusieurs incidents: répondez {joiner.join(listed)}{tail}"
    return f"Several incidents: reply {joiner.join(listed)}{tail}"


def acknowledged_text(target: PendingAck, language: Language) -> str:
    """The confirmation sent to who answered: ``Pris en compte: DB down (4821)``."""
    if language == "fr":
        return f"Pris en compte: {_short(target.title)} ({target.code})"
    return f"Acknowledged: {_short(target.title)} ({target.code})"


def already_text(target: PendingAck, by: str, language: Language) -> str:
    """Someone answered first: ``Déjà pris par Alice: DB down (4821)``."""
    if language == "fr":
        return f"Déjà pris par {by}: {_short(target.title)} ({target.code})"
    return f"Already taken by {by}: {_short(target.title)} ({target.code})"


def help_text(choices: Sequence[PendingAck], language: Language) -> str:
    """The answer to a reply not understood (sent once a day at most)."""
    if len(choices) == 1:
        code = choices[0].code
        return (f"Réponse non comprise. Répondez OUI {code} pour prendre l'incident."
                if language == "fr" else
                f"Reply not understood. Reply YES {code} to take the incident.")
    return ("Réponse non comprise. " + choices_text(choices, "fr") if language == "fr"
            else "Reply not understood. " + choices_text(choices, "en"))
