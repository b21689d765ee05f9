"""Contact sources: every kind of bad row reported at its line, the rest loaded."""

from __future__ import annotations

import random
from pathlib import Path

import phonenumbers
import pytest

from router.contacts import (
    SourceOptions,
    cache_stats,
    clear_cache,
    load_source,
    parse_threshold,
    read_source,
    select_contacts,
)
from router.phones import normalise_phone, phone_or_error

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contacts"


def test_bad_rows_are_reported_at_their_line_and_the_rest_is_loaded() -> None:
    """BOM, ';' separator, quoted separators and newlines; one problem per bad field."""
    src = load_source(FIXTURES / "bad-rows.csv", SourceOptions(region="FR"))
    assert src.error is None
    got = [f"{p.line}: {p.column}: {p.why}" for p in src.problems]
    assert got == [
        "3: phone: invalid phone number '*****': not a valid number for FR (check the "
        "digits); still reachable by e-mail",
        "4: timezone: unknown time zone 'Europe/Pariss': use an IANA name such as 'UTC' or "
        "'Europe/Paris'; the default 'UTC' is used",
        "5: locale: invalid locale 'French': expected a tag such as 'en', 'fr' or 'fr-CA'; "
        "the default 'en' is used",
        "6: email: invalid email address 'e***@@***': expected name@domain.tld; still "
        "reachable by SMS",
        "7: id: duplicate id 'c1' (first at line 2); the row is skipped",
        "8: id: empty: every contact needs an id; the row is skipped",
        "9: email: invalid email address 'f***': expected name@domain.tld",
        "9: email, phone: no usable address (a valid email or phone); the row is skipped",
        "12: row: 9 fields but the header has 8 (a separator inside an unquoted value?); "
        "the row is skipped",
    ]
    assert (src.rows, src.valid, src.invalid, src.unreachable, src.duplicates) == (
        11, 3, 7, 3, 1)
    assert dict(src.reachable) == {"email": 5, "sms": 4}
    by_id = {c.id: c for c in src.contacts}
    assert sorted(by_id) == ["c1", "c2", "c3", "c4", "c5", "c7", "c9"]
    assert list(src.lines) == [2, 3, 4, 5, 6, 10, 13]
    c1 = by_id["c1"]
    assert (c1.name, c1.phone, c1.channels) == ("Martin; Alice", "+33612345678",
                                                frozenset({"email", "sms"}))
    assert dict(c1.attributes) == {"service": "payments"}
    assert by_id["c2"].phone is None and by_id["c2"].email == "bruno@example.com"
    assert by_id["c3"].timezone == "UTC" and by_id["c4"].locale == "en"
    assert by_id["c5"].email is None and by_id["c5"].phone == "+33698765433"
    assert by_id["c7"].name == "Jean\nDupont"
    assert by_id["c9"].channels == frozenset({"sms"})


def test_problems_hold_no_personal_data() -> None:
    """Phone numbers and e-mail addresses are masked in every problem text."""
    src = load_source(FIXTURES / "bad-rows.csv", SourceOptions(region="FR"))
    text = "\n".join(str(p) for p in src.problems)
    for secret in ("01 23", "emma@@example", "fanny-at-example.com", "Martin", "Bruno"):
        assert secret not in text


def test_without_a_region_national_numbers_are_refused() -> None:
    """No default region: a number without '+' is refused, the contact keeps its e-mail."""
    src = load_source(FIXTURES / "bad-rows.csv")
    c1 = next(c for c in src.contacts if c.id == "c1")
    assert c1.phone is None and c1.email == "alice@example.com"
    assert any(p.line == 2 and p.column == "phone" and "start with '+'" in p.why
               for p in src.problems)


def test_a_missing_required_column_makes_the_source_unusable() -> None:
    """No 'id' column: nothing is loaded, the header line is named."""
    src = load_source(FIXTURES / "no-id.csv")
    assert src.error is not None and "missing required column(s) id" in src.error
    assert src.error_line == 1 and src.contacts == ()


def test_yaml_source() -> None:
    """A YAML list: positions per item, list-valued tags, attributes from extra keys."""
    src = load_source(FIXTURES / "vip.yaml", SourceOptions(region="FR"))
    assert [str(p) for p in src.problems] == [
        f"{FIXTURES / 'vip.yaml'}:10: timezone: unknown time zone 'Mars/Olympus': use an "
        "IANA name such as 'UTC' or 'Europe/Paris'; the default 'UTC' is used"]
    v1, v2 = src.contacts
    assert (v1.phone, v1.locale, v1.tags, v1.attributes["service"]) == (
        "+442079460018", "en-GB", ("vip", "press"), "payments")
    assert (v2.email, v2.phone, v2.attributes["service"]) == (None, "+33611223344", "billing")


def test_comma_separator_and_no_bom(tmp_path: Path) -> None:
    """',' is detected from the header; quoted commas stay in the value."""
    path = tmp_path / "c.csv"
    path.write_text('id,name,email,plan\nx,"Doe, John",x@example.com,gold\n', encoding="utf-8")
    src = load_source(path)
    assert src.problems == () and src.contacts[0].name == "Doe, John"
    assert src.contacts[0].attributes == {"plan": "gold"}


def test_select_exact_value_or_any_of_a_list() -> None:
    """select: exact attribute values; a list means any of them; keys all match."""
    src = load_source(FIXTURES / "vip.yaml", SourceOptions(region="FR"))
    ids = [src.contacts[i].id for i in select_contacts(src.contacts, {"service": ("payments",)})]
    assert ids == ["vip-1"]
    both = select_contacts(src.contacts, {"service": ("payments", "billing")})
    assert len(both) == 2
    assert select_contacts(src.contacts, {"service": ("billing",), "tags": ("vip",)}) == []
    assert select_contacts(src.contacts, {"tags": ("press",)}) == [0]
    assert select_contacts(src.contacts, {"service": ("Payments",)}) == []


def test_cache_reads_a_file_once_until_it_changes(tmp_path: Path) -> None:
    """Same (path, inode, size, mtime_ns, options): served from the cache; a change re-reads."""
    clear_cache()
    path = tmp_path / "c.csv"
    path.write_text("id,name,email\na,A,a@example.com\n", encoding="utf-8")
    before = cache_stats()["reads"]
    first = read_source(path)
    assert read_source(path) is first
    assert cache_stats()["reads"] == before + 1
    path.write_text("id,name,email\na,A,a@example.com\nb,B,b@example.com\n", encoding="utf-8")
    second = read_source(path)
    assert cache_stats()["reads"] == before + 2 and len(second.contacts) == 2
    assert read_source(path, SourceOptions(region="FR")) is not second  # other options


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("+33 6 12 34 56 78", None, "+33612345678"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("0612345678", "FR", "+33612345678"),
    ("+1 650 253 0000", None, "+16502530000"),
    ("020 7946 0018", "GB", "+442079460018"),
    ("06 12", "FR", None),
    ("0612345678", None, None),
])
def test_phone_fast_path_agrees_with_libphonenumber(raw: str, region: str | None,
                                                    expected: str | None) -> None:
    """The pattern check and libphonenumber give the same verdict and E.164 form."""
    if expected is None:
        with pytest.raises(ValueError):
            normalise_phone(raw, region)
    else:
        assert normalise_phone(raw, region) == expected


def test_phone_fast_path_never_accepts_what_libphonenumber_refuses() -> None:
    """20,000 random numbers of every region: same E.164 form, or both refuse."""
    rng = random.Random(7)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    for _ in range(20_000):
        code = phonenumbers.country_code_for_region(rng.choice(regions))
        size = rng.randint(4, 12)
        raw = f"+{code}{rng.randint(10 ** (size - 1), 10 ** size - 1)}"
        number = phonenumbers.parse(raw, None)
        expected = (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                    if phonenumbers.is_valid_number(number) else None)
        assert phone_or_error(raw)[0] == expected, raw


def test_thresholds() -> None:
    """max_invalid: a count or a percentage of the rows."""
    assert parse_threshold("2").exceeded(100, 3) and not parse_threshold("2").exceeded(100, 2)
    assert parse_threshold("1%").limit(1000) == 10
    assert parse_threshold("0%").exceeded(5, 1)
    with pytest.raises(ValueError):
        parse_threshold("lots")


@pytest.mark.parametrize(("content", "error", "line"), [
    ("id,name,email\na,Élodie,e@example.com\n".encode("latin-1"),
     "not UTF-8 text (invalid continuation byte)", 2),
    (b"\n", "no header line (the first line names the columns: id,name,email,phone,...)", 1),
    (b"id,name,email,email\n", "column 'email' is named twice in the header", 1),
    (b"id,name,locale\n", "no 'email' nor 'phone' column: a contact needs an address", 1),
])
def test_file_level_faults(tmp_path: Path, content: bytes, error: str, line: int) -> None:
    """Not UTF-8 (e.g. a Latin-1 spreadsheet export), no header, a column twice, no
    address column: the source is refused as a whole, with the line."""
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    src = load_source(path)
    assert (src.error, src.error_line, src.contacts) == (error, line, ())
