"""Load rule files: parse YAML with positions, validate strictly, cross-check, compile.

Every finding becomes a positioned :class:`~router.errors.Problem`; when any is an error,
:func:`load_rules` raises :class:`~router.errors.RuleError` with all of them (warnings
included, so ``tocsin rules check`` can print everything in one go).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from router.checks import check_locale
from router.contacts import (
    DEFAULT_MAX_INVALID,
    SELECTABLE_FIELDS,
    STANDARD_COLUMNS,
    SourceOptions,
    parse_threshold,
    read_source,
    select_contacts,
)
from router.errors import Problem, RuleError
from router.models import CHANNEL_KINDS, Contact
from router.rules.ack_policy import check_ack, tier_channels
from router.rules.incident_rules import NO_QUIET_HOURS, collect_incident_rules
from router.rules.lifecycle import build_policy
from router.rules.matchers import Matcher, MatcherParseError, MatchType, parse_matchers
from router.rules.problems import did_you_mean, validation_problems
from router.rules.ruleset import Audience, ContactSourceReport, RuleSet, rules_hash
from router.rules.schema import (
    AudienceModel,
    ContactSourceModel,
    DefaultsModel,
    MessageModel,
    RouteModel,
    RuleFileModel,
    SeverityFromLabel,
    TemplateModel,
)
from router.rules.sms_policy import TemplateSmsPolicy
from router.rules.sms_samples import sample_overflows, sample_overruns
from router.rules.templates import (
    CompiledMessage,
    CompiledTemplate,
    TemplateCompileError,
    compile_field,
    recipient_reads,
)
from router.rules.tree import Route, SeverityRule
from router.yamlsrc import Mark, Path_, SourceFile, read_yaml

__all__ = ["load_rules", "rule_files"]

_MESSAGES = TypeAdapter(dict[str, MessageModel])
#: Per channel: the message fields it requires, and those it also accepts. A channel not
#: listed takes a required ``text`` and an optional ``subject``.
_CHANNEL_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "email": (("subject", "text"), ("html",)),
    "sms": (("text",), ()),
    "topic": (("text",), ("subject",)),
    "push": (("title", "body"), ()),
}
#: Where a field lands in the rendered message (push: title → subject, body → text).
_SLOT = {"subject": "subject", "text": "text", "html": "html", "title": "subject",
         "body": "text"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")
#: The keys of a template besides its channels.
_TEMPLATE_KEYS = frozenset({"fallback_locale", "sms_policy"})


def _channel_kinds() -> frozenset[str]:
    return CHANNEL_KINDS


def rule_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Expand files and directories (``*.yaml``/``*.yml`` directly inside, sorted)."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir()
                           if q.is_file() and q.suffix in (".yaml", ".yml"))
            if not found:
                problems.append(Problem(str(p), 0, 0, "no rule files (*.yaml, *.yml) in this "
                                        "directory"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append(Problem(str(p), 0, 0, "no such file or directory"))
    return files, problems


@dataclass
class _Loaded:
    src: SourceFile
    model: RuleFileModel


@dataclass
class _Ctx:
    problems: list[Problem] = field(default_factory=list)
    channel_kinds: frozenset[str] = frozenset()
    audiences: dict[str, tuple[Audience, SourceFile, Path_]] = field(default_factory=dict)
    templates: dict[str, tuple[CompiledTemplate, SourceFile, Path_]] = field(
        default_factory=dict)
    route_names: dict[str, tuple[str, SourceFile, Path_]] = field(default_factory=dict)
    #: Templates that exist but failed to compile (already reported; no "unknown" noise).
    broken_templates: set[str] = field(default_factory=set)
    #: The "answers by SMS need a two-way number" warning was given (once per rule set).
    ack_sms_noted: bool = False
    #: The contact files read, as (path, inode, size, mtime_ns).
    contact_files: list[tuple[str, int, int, int]] = field(default_factory=list)
    #: A file that may define 'route:' failed to load (no "no route" error then).
    route_unread: bool = False
    #: The quiet_hours names of the rule set (contact files refer to them).
    quiet_names: set[str] = field(default_factory=set)

    def error(self, src: SourceFile, path: Path_, message: str, *, key: bool = False) -> None:
        self.problems.append(src.problem(path, message, key=key))

    def warn(self, src: SourceFile, path: Path_, message: str, *, key: bool = False) -> None:
        self.problems.append(src.problem(path, message, key=key, severity="warning"))


def load_rules(paths: Sequence[str | Path]) -> RuleSet:
    """Load, validate and compile a rule set; raise RuleError listing every problem."""
    files, problems = rule_files(paths)
    ctx = _Ctx(problems=problems, channel_kinds=_channel_kinds())
    loaded: list[_Loaded] = []
    for path in files:
        item = _load_file(path, ctx)
        if item is not None:
            loaded.append(item)

    defaults = DefaultsModel()
    defaults_at: tuple[SourceFile, Path_] | None = None
    route_at: tuple[SourceFile, RouteModel] | None = None
    for item in loaded:
        m, src = item.model, item.src
        if m.defaults is not None:
            if defaults_at is not None:
                first = defaults_at[0].mark(("defaults",), key=True)
                ctx.error(src, ("defaults",), "'defaults' is already defined in "
                          f"{defaults_at[0].path}:{first.line}; define it in one file only",
                          key=True)
            else:
                defaults, defaults_at = m.defaults, (src, ("defaults",))
        if m.route is not None:
            if route_at is not None:
                first = route_at[0].mark(("route",), key=True)
                ctx.error(src, ("route",), "a second 'route' — the route tree is already "
                          f"defined in {route_at[0].path}:{first.line}; exactly one file may "
                          "define it", key=True)
            else:
                route_at = (src, m.route)

    ctx.quiet_names = {name for item in loaded for name in (item.model.quiet_hours or {})}
    for item in loaded:
        _collect_audiences(item, defaults, ctx)
    for item in loaded:
        _collect_templates(item, defaults, ctx)

    root: Route | None = None
    if route_at is not None:
        src, model = route_at
        root = _build_route(model, src, ("route",), None, "root", ctx)
        _assign_ids(root, _matcher_set(root.matchers))
        _check_tree(root, model, src, ("route",), ctx, is_root=True)
    elif not ctx.route_unread and (loaded or not ctx.problems):
        where = str(files[0]) if files else ", ".join(str(p) for p in paths)
        ctx.problems.append(Problem(where, 0, 0, "no rule file defines 'route:' (exactly one "
                                    "file must define the route tree)"))

    incident = collect_incident_rules([(item.src, item.model) for item in loaded], route_at,
                                      ctx)
    ordered = sorted(ctx.problems, key=lambda p: (p.file, p.line, p.col))
    if any(p.severity == "error" for p in ordered) or root is None:
        raise RuleError(ordered)
    root.finish()
    return RuleSet(
        root=root,
        audiences={name: a for name, (a, _, _) in ctx.audiences.items()},
        templates={name: t for name, (t, _, _) in ctx.templates.items()},
        default_locale=defaults.locale,
        default_timezone=defaults.timezone,
        source_files=tuple(files),
        warnings=[p for p in ordered if p.severity == "warning"],
        incident=incident,
        content_hash=rules_hash([(Path(item.src.path).name, "\n".join(item.src.lines))
                                 for item in loaded]),
        contact_files=tuple(dict.fromkeys(ctx.contact_files)),
    )


# --------------------------------------------------------------------------- files


def _load_file(path: Path, ctx: _Ctx) -> _Loaded | None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        ctx.problems.append(Problem(str(path), 0, 0, f"not UTF-8 text: {exc.reason}"))
        return None
    except OSError as exc:
        ctx.problems.append(Problem(str(path), 0, 0, f"cannot read: {exc.strerror}"))
        return None
    src, problems = read_yaml(str(path), text)
    ctx.problems.extend(problems)
    if src is None:
        ctx.route_unread = True  # not YAML: it may be the file with the route tree
        return None
    if not isinstance(src.data, dict):
        ctx.problems.append(src.problem((), "a rule file must be a mapping with keys such as "
                                        "'route', 'audiences', 'templates', 'defaults'"))
        return None
    try:
        model = RuleFileModel.model_validate(src.data)
    except ValidationError as exc:
        ctx.problems.extend(validation_problems(exc, src, RuleFileModel))
        ctx.route_unread |= "route" in src.data
        return None
    if problems:
        ctx.route_unread |= "route" in src.data
        return None
    return _Loaded(src, model)


# --------------------------------------------------------------------------- audiences


def _collect_audiences(item: _Loaded, defaults: DefaultsModel, ctx: _Ctx) -> None:
    src = item.src
    for name, aud in (item.model.audiences or {}).items():
        path: Path_ = ("audiences", name)
        if not _NAME.match(name):
            ctx.error(src, path, f"invalid audience name '{name}': use letters, digits, '_', "
                      "'-', '.', ':' or '@'", key=True)
            continue
        if name in ctx.audiences:
            _, first_src, first_path = ctx.audiences[name]
            ctx.error(src, path, f"audience '{name}' is already defined at "
                      f"{_where(first_src, first_path)}", key=True)
            continue
        ctx.audiences[name] = (_audience(name, aud, defaults, src, path, ctx), src, path)


def _audience(name: str, aud: AudienceModel, defaults: DefaultsModel, src: SourceFile,
              path: Path_, ctx: _Ctx) -> Audience:
    contacts: list[Contact] = []
    seen: dict[str, str] = {}
    for i, c in enumerate(aud.contacts or []):
        if c.id in seen:
            ctx.error(src, (*path, "contacts", i, "id"),
                      f"contact id '{c.id}' is used twice in audience '{name}'")
            continue
        seen[c.id] = _where(src, (*path, "contacts", i))
        contacts.append(Contact(id=c.id, name=c.name, email=c.email, phone=c.phone,
                                locale=c.locale or defaults.locale,
                                timezone=c.timezone or defaults.timezone,
                                quiet_hours=c.quiet_hours or aud.quiet_hours,
                                topic=c.topic))
    reports = [report for i, item in enumerate(aud.contacts_from or [])
               if (report := _source(name, aud, item, defaults, src, (*path, "contacts_from", i),
                                     contacts, seen, ctx)) is not None]
    return Audience(name=name, contacts=tuple(contacts), description=aud.description,
                    sources=tuple(reports))


def _source(name: str, aud: AudienceModel, item: ContactSourceModel,
            defaults: DefaultsModel, src: SourceFile, path: Path_, contacts: list[Contact],
            seen: dict[str, str], ctx: _Ctx) -> ContactSourceReport | None:
    """Read one ``contacts_from`` file into ``contacts`` (its ``select`` applied); its
    row problems are warnings, a file fault or too many bad rows an error."""
    file = Path(src.path).parent / item.file
    options = SourceOptions(region=item.region, default_locale=defaults.locale,
                            default_timezone=defaults.timezone, quiet_hours=aud.quiet_hours)
    loaded = read_source(file, options)
    if loaded.error is not None:
        ctx.contact_files.append((str(file), *loaded.identity))
        ctx.error(src, (*path, "file"), f"contact file {file}"
                  f"{f' (line {loaded.error_line})' if loaded.error_line else ''}: "
                  f"{loaded.error}")
        return None
    ctx.contact_files.append((str(file), *loaded.identity))
    for p in loaded.problems:
        ctx.problems.append(Problem(p.file, p.line, 0, f"{p.column}: {p.why}", "warning",
                                    excerpt=False))
    limit = item.max_invalid or defaults.max_invalid
    threshold = parse_threshold(limit) if limit is not None else DEFAULT_MAX_INVALID
    if threshold.exceeded(loaded.rows, loaded.bad_rows):
        share = 100 * loaded.bad_rows / loaded.rows if loaded.rows else 0.0
        ctx.error(src, (*path, "file"), f"contact file {file}: {loaded.bad_rows} of "
                  f"{loaded.rows} rows are invalid or duplicates ({share:.1f}%), over "
                  f"max_invalid {threshold} (audience '{name}'): fix the file, or raise "
                  "max_invalid")
    select = {k: (v,) if isinstance(v, str) else tuple(v)
              for k, v in (aud.select or {}).items()}
    for key in select:
        if key not in SELECTABLE_FIELDS and key not in loaded.columns:
            columns = [c for c in loaded.columns if c not in STANDARD_COLUMNS]
            ctx.error(src, (*path[:-2], "select", key), f"select key '{key}' is not a column "
                      f"of {file}{did_you_mean(key, columns)} (its attribute columns: "
                      f"{', '.join(columns) or 'none'})", key=True)
    kept = select_contacts(loaded.contacts, select)
    lines = loaded.lines
    unknown_quiet: dict[str, int] = {}
    for i in kept:
        contact = loaded.contacts[i]
        quiet = contact.quiet_hours
        if (quiet is not None and quiet != aud.quiet_hours and quiet != NO_QUIET_HOURS
                and quiet not in ctx.quiet_names):
            if quiet not in unknown_quiet:
                unknown_quiet[quiet] = lines[i]
                ctx.problems.append(Problem(
                    str(file), lines[i], 0, f"quiet_hours: unknown quiet_hours '{quiet}'"
                    f"{did_you_mean(quiet, ctx.quiet_names)} (here and in every row naming "
                    f"it): the audience's ({aud.quiet_hours or 'none'}) applies",
                    "warning", excerpt=False))
            contact = replace(contact, quiet_hours=aud.quiet_hours)
        first = seen.get(contact.id)
        if first is not None:
            ctx.problems.append(Problem(str(file), lines[i], 0, f"id: duplicate id "
                                        f"'{contact.id}' in audience '{name}' (first at "
                                        f"{first}); the row is skipped", "warning",
                                        excerpt=False))
            continue
        seen[contact.id] = f"{file}:{lines[i]}"
        contacts.append(contact)
    return ContactSourceReport(
        path=str(file), loaded_at=loaded.loaded_at, rows=loaded.rows, valid=loaded.valid,
        invalid=loaded.invalid, duplicates=loaded.duplicates, reachable=loaded.reachable,
        problems=tuple(str(p) for p in loaded.problems), unreachable=loaded.unreachable,
        selected=len(kept))


def _where(src: SourceFile, path: Path_) -> str:
    m = src.mark(path, key=True)
    return f"{src.path}:{m.line}"


# --------------------------------------------------------------------------- templates


def _collect_templates(item: _Loaded, defaults: DefaultsModel, ctx: _Ctx) -> None:
    src = item.src
    for name, tpl in (item.model.templates or {}).items():
        path: Path_ = ("templates", name)
        if not _NAME.match(name):
            ctx.error(src, path, f"invalid template name '{name}': use letters, digits, '_', "
                      "'-', '.', ':' or '@'", key=True)
            continue
        if name in ctx.templates:
            _, first_src, first_path = ctx.templates[name]
            ctx.error(src, path, f"template '{name}' is already defined at "
                      f"{_where(first_src, first_path)}", key=True)
            continue
        compiled = _template(name, tpl, defaults, src, path, ctx)
        if compiled is not None:
            ctx.templates[name] = (compiled, src, path)
        else:
            ctx.broken_templates.add(name)


def _template(name: str, tpl: TemplateModel, defaults: DefaultsModel, src: SourceFile,
              path: Path_, ctx: _Ctx) -> CompiledTemplate | None:
    before = len(ctx.problems)
    channels: dict[str, dict[str, CompiledMessage]] = {}
    extra: dict[str, Any] = dict(tpl.model_extra or {})
    if not extra:
        ctx.error(src, path, f"template '{name}' has no messages: add a channel such as "
                  "'email' with one mapping per locale", key=True)
    for channel, raw in extra.items():
        cpath: Path_ = (*path, channel)
        if channel not in ctx.channel_kinds:
            ctx.error(src, cpath, f"unknown channel '{channel}'"
                      f"{did_you_mean(channel, ctx.channel_kinds | _TEMPLATE_KEYS)} "
                      f"(known channels: {', '.join(sorted(ctx.channel_kinds))})", key=True)
            continue
        try:
            messages = _MESSAGES.validate_python(raw)
        except ValidationError as exc:
            ctx.problems.extend(validation_problems(exc, src, MessageModel, prefix=cpath,
                                                    data=raw))
            continue
        if not messages:
            ctx.error(src, cpath, f"template '{name}' has no locales for channel '{channel}'")
            continue
        per_locale: dict[str, CompiledMessage] = {}
        for locale, msg in messages.items():
            lpath: Path_ = (*cpath, locale)
            try:
                check_locale(locale)
            except ValueError as exc:
                ctx.error(src, lpath, str(exc), key=True)
                continue
            required_fields, optional_fields = _CHANNEL_FIELDS.get(
                channel, (("text",), ("subject",)))
            allowed = (*required_fields, *optional_fields)
            for required in required_fields:
                if getattr(msg, required) is None:
                    ctx.error(src, lpath, f"missing required key '{required}' (every "
                              f"'{channel}' message needs {' and '.join(required_fields)})",
                              key=True)
            fields: dict[str, Any] = {"subject": None, "text": None, "html": None}
            for fname in _SLOT:
                source = getattr(msg, fname)
                if source is None:
                    continue
                if fname not in allowed:
                    ctx.error(src, (*lpath, fname), f"'{fname}' is not a field of "
                              f"'{channel}' messages (fields: {', '.join(allowed)})",
                              key=True)
                    continue
                try:
                    fields[_SLOT[fname]] = compile_field(source, html=(fname == "html"))
                except TemplateCompileError as exc:
                    _template_problem(src, (*lpath, fname), exc, ctx)
            if fields["text"] is not None:
                per_locale[locale] = CompiledMessage(
                    fields["subject"], fields["text"], fields["html"],
                    reads=recipient_reads(*(getattr(msg, f) for f in _SLOT)))
        fallback = tpl.fallback_locale or defaults.locale
        if messages and fallback not in messages:
            which = "fallback_locale" if tpl.fallback_locale else "default locale"
            ctx.error(src, cpath, f"template '{name}' has no '{channel}' message in its "
                      f"{which} '{fallback}' (locales: {', '.join(sorted(messages))})",
                      key=True)
        channels[channel] = per_locale
    sms_policy = None
    if tpl.sms_policy is not None:
        if "sms" not in extra:
            ctx.error(src, (*path, "sms_policy"), f"template '{name}' has an sms_policy but "
                      "no 'sms' messages", key=True)
        sms_policy = TemplateSmsPolicy.from_model(tpl.sms_policy)
    if len(ctx.problems) != before:
        return None
    template = CompiledTemplate(name=name, fallback_locale=tpl.fallback_locale,
                                channels=channels, sms_policy=sms_policy)
    _check_sms_budget(template, src, path, ctx)
    for channel, locale, reason in sample_overruns(template):
        ctx.warn(src, (*path, channel, locale),
                 f"{reason} with sample data ({channel}, {locale})", key=True)
    return template


def _check_sms_budget(template: CompiledTemplate, src: SourceFile, path: Path_,
                      ctx: _Ctx) -> None:
    """``overflow: fail``: every locale's SMS must fit its budget with sample data."""
    for locale, found in sample_overflows(template):
        where: Path_ = (*path, "sms", locale, "text")
        if isinstance(found, str):
            ctx.warn(src, where, f"cannot check the SMS budget of template "
                     f"'{template.name}' ({locale}): rendering it with sample data failed: "
                     f"{found}", key=True)
            continue
        limit = template.sms_policy.max_segments if template.sms_policy else None
        ctx.error(src, where, f"the SMS of template '{template.name}' ({locale}) needs "
                  f"{found.segments} parts ({found.encoding}, {found.units} units) with "
                  f"sample data, over its sms_policy max_segments {limit} (overflow: fail): "
                  "shorten the text, or use overflow: truncate", key=True)


def _template_problem(src: SourceFile, path: Path_, exc: TemplateCompileError,
                      ctx: _Ctx) -> None:
    """Position a template error at the template's own line inside the file."""
    mark = src.mark(path)
    if mark.style in ("|", ">"):
        line = mark.line + exc.lineno
        text = src.lines[line - 1] if 0 < line <= len(src.lines) else ""
        col = len(text) - len(text.lstrip(" ")) + 1
    else:
        line = mark.line + exc.lineno - 1
        col = mark.col if exc.lineno == 1 else 1
    ctx.problems.append(Problem(src.path, line, col, exc.message))


# --------------------------------------------------------------------------- routes


def _matcher_col(src: SourceFile, path: Path_, text: str, offset: int) -> tuple[int, int]:
    """File line/col of character ``offset`` of a matcher string written at ``path``."""
    mark: Mark = src.mark(path)
    before = text[:offset]
    if mark.style in ("|", ">"):
        line = mark.line + 1 + before.count("\n")
        src_line = src.lines[line - 1] if 0 < line <= len(src.lines) else ""
        indent = len(src_line) - len(src_line.lstrip(" "))
        return line, indent + 1 + len(before.rsplit("\n", 1)[-1])
    quote = 1 if mark.style in ("'", '"') else 0
    if "\n" in before:
        return mark.line, mark.col
    return mark.line, mark.col + quote + offset


def _route_matchers(model: RouteModel, src: SourceFile, path: Path_,
                    ctx: _Ctx) -> list[Matcher]:
    out: list[Matcher] = []
    for i, text in enumerate(model.matchers or []):
        try:
            out.extend(parse_matchers(text))
        except MatcherParseError as exc:
            line, col = _matcher_col(src, (*path, "matchers", i), text, exc.offset)
            ctx.problems.append(Problem(src.path, line, col,
                                        f"bad matcher {text!r} at character {exc.column}: "
                                        f"{exc.message}"))
    for kind, table in (("match", model.match), ("match_re", model.match_re)):
        for label, value in (table or {}).items():
            try:
                mtype = MatchType.EQUAL if kind == "match" else MatchType.REGEX
                out.append(Matcher.create(label, mtype, value, match_re=kind == "match_re"))
            except MatcherParseError as exc:
                ctx.error(src, (*path, kind, label), exc.message)
    return out


def _severity(model: RouteModel) -> SeverityRule | None:
    sev = model.severity
    if sev is None:
        return None
    if isinstance(sev, SeverityFromLabel):
        return SeverityRule(label=sev.label, mapping=sev.map, default=sev.default)
    return SeverityRule(fixed=sev)


def _matcher_set(matchers: Sequence[Matcher]) -> str:
    """One segment of a route key: the route's matchers, sorted, e.g. ``{service="x"}``."""
    return "{" + ",".join(sorted(str(m) for m in matchers)) + "}"


def _assign_ids(route: Route, key: str) -> None:
    """Give ``route`` and its descendants their identity (``route_id``).

    ``key`` is the route's matchers path from the root (Alertmanager's route key, e.g.
    ``{}/{service="billing"}``). The identity is the route's name when it has one, else
    its key: it does not change when routes are inserted or moved around it, so the
    incidents it groups survive such an edit (docs/rules.md "Route identity"). Siblings
    with the same matchers are told apart by their rank among themselves only (``/1``
    for the second), so inserting any other sibling changes nothing either.
    """
    route.key = key
    route.route_id = route.name or key
    seen: dict[str, int] = {}
    for child in route.children:
        segment = _matcher_set(child.matchers)
        twins = seen.get(segment, 0)
        seen[segment] = twins + 1
        _assign_ids(child, f"{key}/{segment}" + (f"/{twins}" if twins else ""))


def _build_route(model: RouteModel, src: SourceFile, path: Path_, parent: Route | None,
                 position: str, ctx: _Ctx) -> Route:
    """One route and its children; ``position`` (``root/2``) is where it sits in the tree,
    for messages only (its identity is set afterwards by :func:`_assign_ids`)."""
    group_by: tuple[str, ...] = parent.group_by if parent else ()
    group_by_all = parent.group_by_all if parent else False
    if model.group_by is not None:
        group_by_all = model.group_by == ["..."]
        group_by = () if group_by_all else tuple(sorted(model.group_by))
    channels: Mapping[str, tuple[str, ...]] = parent.channels if parent else {}
    if model.channels is not None:
        channels = {k: tuple(v) for k, v in model.channels.items()}
    mark = src.mark(path)
    route = Route(
        route_id=position,
        position=position,
        key="",
        name=model.name,
        matchers=tuple(_route_matchers(model, src, path, ctx)),
        continue_=model.continue_,
        group_by=group_by,
        group_by_all=group_by_all,
        severity=_severity(model) or (parent.severity if parent else SeverityRule(
            fixed="warning")),
        audiences=tuple(model.audiences) if model.audiences is not None else (
            parent.audiences if parent else ()),
        channels=channels,
        template=model.template if model.template is not None else (
            parent.template if parent else ""),
        owner=model.owner if model.owner is not None else (parent.owner if parent else None),
        source=(src.path, mark.line, mark.col),
        policy=build_policy(model, parent.policy if parent else None),
        fallback=dict(model.fallback) if model.fallback is not None else (
            parent.fallback if parent else {}),
    )
    for i, child in enumerate(model.routes or []):
        route.children.append(_build_route(child, src, (*path, "routes", i), route,
                                           f"{position}/{i}", ctx))
    return route


def _check_tree(route: Route, model: RouteModel, src: SourceFile, path: Path_, ctx: _Ctx,
                *, is_root: bool) -> None:
    label = _route_label(route)
    if is_root:
        if model.matchers or model.match or model.match_re:
            key = "matchers" if model.matchers else ("match" if model.match else "match_re")
            ctx.error(src, (*path, key), f"the root route takes every alert: it cannot have "
                      f"'{key}' (put them on a child route)", key=True)
        if model.continue_:
            ctx.error(src, (*path, "continue"), "the root route cannot have 'continue'",
                      key=True)
    if model.name is not None:
        if model.name in ctx.route_names:
            other_id, osrc, opath = ctx.route_names[model.name]
            ctx.error(src, (*path, "name"), f"route name '{model.name}' is already used by "
                      f"route {other_id} at {_where(osrc, opath)}")
        else:
            ctx.route_names[model.name] = (route.position, src, path)

    for i, aud in enumerate(model.audiences or []):
        if aud not in ctx.audiences:
            ctx.error(src, (*path, "audiences", i), f"unknown audience '{aud}'"
                      f"{did_you_mean(aud, ctx.audiences)}")
    for primary, backup in (model.fallback or {}).items():
        for key, ch in ((primary, primary), ("", backup)):
            if ch not in ctx.channel_kinds:
                ctx.error(src, (*path, "fallback", primary), f"unknown channel '{ch}'"
                          f"{did_you_mean(ch, ctx.channel_kinds)} in fallback", key=bool(key))
        if primary == backup:
            ctx.error(src, (*path, "fallback", primary), f"channel '{primary}' cannot "
                      "fall back to itself")
    for sev, chans in (model.channels or {}).items():
        for i, ch in enumerate(chans):
            if ch not in ctx.channel_kinds:
                ctx.error(src, (*path, "channels", sev, i), f"unknown channel '{ch}'"
                          f"{did_you_mean(ch, ctx.channel_kinds)} (known channels: "
                          f"{', '.join(sorted(ctx.channel_kinds))})")
    check_ack(model.ack, route.policy.ack, src, (*path, "ack"), audiences=ctx.audiences,
              channel_kinds=ctx.channel_kinds, ctx=ctx)
    if (model.template is not None and model.template not in ctx.templates
            and model.template not in ctx.broken_templates):
        ctx.error(src, (*path, "template"), f"unknown template '{model.template}'"
                  f"{did_you_mean(model.template, ctx.templates)}")

    can_be_final = not any(not c.matchers and not c.match and not c.match_re
                           for c in (model.routes or []))
    if can_be_final:
        what = []
        if not route.audiences:
            what.append("audiences")
        if not route.template:
            what.append("template")
        if not any(route.channels.values()):
            what.append("channels")
        for key in what:
            ctx.error(src, path, f"{label} can match alerts but has no '{key}': set it on "
                      "this route or on a parent route", key=True)
        if route.template in ctx.templates and route.channels:
            tpl = ctx.templates[route.template][0]
            used = sorted({c for cs in route.channels.values() for c in cs
                           if c in ctx.channel_kinds})
            for ch in used:
                if ch not in tpl.channels:
                    where = (*path, "template") if model.template else path
                    ctx.error(src, where, f"{label} may send on '{ch}' but template "
                              f"'{route.template}' has no '{ch}' messages", key=True)
            _check_escalation_channels(route, model, tpl, used, src, path, ctx)
        _note_ack_by_sms(route, src, path, ctx)
        _check_ack_answerable(route, src, path, ctx)

    stopper: tuple[Route, Path_] | None = None
    for i, (child, child_model) in enumerate(zip(route.children, model.routes or [],
                                                  strict=True)):
        cpath: Path_ = (*path, "routes", i)
        if stopper is not None:
            sroute, spath = stopper
            ctx.warn(src, cpath, f"{_route_label(child)} is unreachable: the earlier sibling "
                     f"{sroute.position} (line {src.mark(spath).line}) has no matchers and "
                     "no 'continue: true', so it takes every alert that gets here")
        elif not (child_model.matchers or child_model.match or child_model.match_re
                  or child_model.continue_):
            stopper = (child, cpath)
        _check_tree(child, child_model, src, cpath, ctx, is_root=False)


def _escalation_channels(route: Route) -> set[str]:
    """Every channel the route's escalation tiers may page on."""
    if route.policy.ack is None:
        return set()
    route_channels = [c for cs in route.channels.values() for c in cs]
    return {c for tier in route.policy.ack.escalate
            for sev in {*(s for s, _ in tier.channels), "default", *route.channels}
            for c in tier_channels(tier, sev, route_channels)}


def _check_escalation_channels(route: Route, model: RouteModel, tpl: CompiledTemplate,
                               used: list[str], src: SourceFile, path: Path_,
                               ctx: _Ctx) -> None:
    """A final route's escalation tiers page on channels its template (or its
    ``.escalation`` variant) has messages for."""
    label = _route_label(route)
    variant = ctx.templates.get(f"{route.template}.escalation")
    covered = set(tpl.channels) | (set(variant[0].channels) if variant else set())
    for ch in sorted(_escalation_channels(route) - set(used)):
        if ch in ctx.channel_kinds and ch not in covered:
            where = (*path, "ack") if model.ack is not None else path
            ctx.error(src, where, f"{label} may escalate on '{ch}' but template "
                      f"'{route.template}' has no '{ch}' messages", key=True)


def _note_ack_by_sms(route: Route, src: SourceFile, path: Path_, ctx: _Ctx) -> None:
    """Warn once per rule set that SMS answers need a two-way origination number.

    Whether the configured origination identity can receive replies is in the service
    config, which ``rules check`` does not read: the warning names the first route that
    asks for an answer by SMS.
    """
    if ctx.ack_sms_noted or route.policy.ack is None:
        return
    sends = {c for cs in route.channels.values() for c in cs} | _escalation_channels(route)
    if "sms" not in sends:
        return
    ctx.ack_sms_noted = True
    ctx.warn(src, path, f"{_route_label(route)} asks for an acknowledgement by SMS: replies "
             "reach Tocsin only from an origination number that supports two-way SMS (a "
             "sender ID cannot receive them); see docs/channels.md \"Answers by SMS\"",
             key=True)


#: Channels whose recipients cannot answer a notice (a topic is a broadcast).
_UNANSWERABLE = frozenset({"topic"})


def _check_ack_answerable(route: Route, src: SourceFile, path: Path_, ctx: _Ctx) -> None:
    """Warn when a route asks for an answer but only sends where nobody can give one."""
    sends = {c for cs in route.channels.values() for c in cs}
    if route.policy.ack is None or not sends or not sends <= _UNANSWERABLE:
        return
    ctx.warn(src, path, f"{_route_label(route)} asks for an acknowledgement but sends only "
             f"on {', '.join(sorted(sends))}, which cannot be answered: nobody can stop its "
             "reminders and escalation but the API or the CLI (add sms, email or push, or "
             "set ack: false)", key=True)


def _route_label(route: Route) -> str:
    if route.name:
        return f"route '{route.name}' ({route.position})"
    return f"route {route.position}"
