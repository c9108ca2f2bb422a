"""The default canned set written as a responses file: the inverse of loading.py.

Every entry is written with all its options (entries.entry_from_row, the inverse of parse_entry), in the
order the server tries them, with the default answer and the `settings:` block; the plain `prompt: answer`
form only when every entry is plain. Before the text is handed to anyone it is read back with
responses_file.parse_responses and compared with the database: an entry that does not come back the same
is written again in the most literal YAML (every string double-quoted, tool arguments as JSON text), and a
dump that still would not load back as the same set is refused with DumpError.

The default set is the rows of every responses file and those typed in the admin (not the scenarios'
entries, nor those a test run added for itself).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from responses_app.canned.entries import RESPONSE_KEYS, entry_from_row, parse_entry
from responses_app.canned.fields import EntryError
from responses_app.canned.responses_file import ParsedResponses, ResponsesFileError, parse_responses
from responses_app.models import CannedResponse, ResponseSet, Source

Row = tuple[str, str, dict[str, Any]]  # (prompt, answer, options) as parse_entry gives them
# The order an entry's fields are written in: what it matches, the restrictions, then what it answers.
FIELD_ORDER = ("match", "model", "provider", "tool", "has_tool_result", "priority", "name", "recorded", "recorded_timing",
               "response", "turns", "embedding", "error", "timing", "stream_error", "content_filter")
# Characters a literal block (`|`) would not give back as written: YAML reads them as line breaks.
NOT_IN_LITERAL = frozenset("\r\x85\u2028\u2029")
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


class DumpError(ValueError):
    """The set cannot be written as a responses file that loads back the same; nothing was written."""


@dataclass(frozen=True)
class Dump:
    text: str
    entries: int  # entries in `text`, as read back from it
    from_admin: int  # of those, rows typed or edited in the admin
    settings: int  # top-level keys of the `settings:` block written


# --- how values are written -------------------------------------------------------------------------

class _Quoted(str):
    """A string written double-quoted: YAML's most literal form, escapes and all."""


class _Bare(str):
    """A key written as a plain word even where YAML 1.1 would read another type (`on:`): the responses
    file reads keys as the text written."""


class _Flow(dict):
    """A small mapping written on one line: `{regex: ..., on: system}`."""


class _FlowList(list):
    """A list written on one line: `[0.1, 0.2]`."""


class _Dumper(yaml.SafeDumper):
    """Multi-line text as literal blocks where that gives it back exactly, so the file stays pleasant to
    edit by hand (the emitter falls back to quotes where a block cannot hold the text); lists indented
    under their key, as the docs write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    """Names (`anthropic`, `get_weather`) bare, lines of text in double quotes, several lines as a block."""
    if "\n" in value and not NOT_IN_LITERAL.intersection(value):
        style = "|"
    elif WORD.fullmatch(value):
        style = None  # the emitter still quotes a word YAML would read as something else (`yes`, `null`)
    else:
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_quoted(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style='"')


def _represent_bare(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar(dumper.resolve(yaml.ScalarNode, str(value), (True, False)), str(value))


def _represent_flow(dumper: yaml.SafeDumper, value: dict) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=True)


def _represent_flow_list(dumper: yaml.SafeDumper, value: list) -> yaml.SequenceNode:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=True)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Quoted, _represent_quoted)
_Dumper.add_representer(_Bare, _represent_bare)
_Dumper.add_representer(_Flow, _represent_flow)
_Dumper.add_representer(_FlowList, _represent_flow_list)


def _yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=float("inf"),
                     default_flow_style=False)


# --- entries ----------------------------------------------------------------------------------------

def canonical_row(prompt: str, answer: str, options: dict[str, Any]) -> Row:
    """A stored row as a responses file would give it (the admin stores the same; rows written some other
    way may differ in form, never in what they answer). EntryError when no file could hold it."""
    return parse_entry(entry_from_row(prompt, answer, options or {}))


def _number(value: Any) -> Any:
    """Whole numbers without `.0`: every float option is read back through float()."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 and math.copysign(1, value) > 0:
        return int(value)
    return value


def _plain_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return _number(value)


def _arguments_as_mapping(arguments: str) -> dict[str, Any] | None:
    """Tool arguments (JSON text) as a YAML mapping, as people write them; None when they are not an
    object. (Arguments a mapping would not give back exactly, the read-back check writes as JSON text.)"""
    try:
        decoded = json.loads(arguments)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _reply(reply: dict[str, Any], literal: bool, turn: bool = False) -> Any:
    """A reply (text and details) in its shortest form: a string when it is only text."""
    reply = dict(reply)
    if reply.get("text") == "" and len(reply) > 1 and not turn:
        del reply["text"]  # `response:` without a text reads back as "" (a turn keeps what it was given)
    if set(reply) == {"text"}:
        return reply["text"]
    if "tool_calls" in reply:
        calls = []
        for call in reply["tool_calls"]:
            call = dict(call)
            arguments = call.get("arguments", "{}")
            if arguments == "{}":
                call.pop("arguments", None)
            elif not literal and (mapping := _arguments_as_mapping(arguments)) is not None:
                call["arguments"] = _Flow(mapping)
            calls.append(_Flow(call) if not literal and len(call) > 1 else call)
        reply["tool_calls"] = calls
    if "usage" in reply:
        reply["usage"] = _Flow(reply["usage"])
    return {key: reply[key] for key in RESPONSE_KEYS if key in reply}


def entry_document(prompt: str, answer: str, options: dict[str, Any], *, literal: bool = False) -> dict[str, Any]:
    """The list entry of a row, in the order and form a person would write it. literal: every string
    double-quoted and tool arguments as JSON text, the form that reads back exactly whatever the text."""
    spec = entry_from_row(prompt, answer, _plain_numbers(options))
    if isinstance(spec["match"], dict):
        spec["match"] = _Flow({(_Bare(k) if k == "on" else k): v for k, v in spec["match"].items()})
    if "response" in spec:
        spec["response"] = _reply(spec["response"], literal)
        no_text = spec["response"] == "" and "turns" not in spec
        if no_text and ("embedding" in spec or "error" in spec or "content_filter" in spec):
            del spec["response"]  # an embedding, an error or a content filter stands alone
    if "turns" in spec:
        spec["turns"] = [_reply(turn, literal, turn=True) for turn in spec["turns"]]
    if "embedding" in spec:
        spec["embedding"] = _FlowList(spec["embedding"])
    for key in ("error", "timing", "stream_error", "content_filter", "recorded_timing"):
        if key in spec:
            spec[key] = _Flow(spec[key])
    ordered = {key: spec[key] for key in FIELD_ORDER if key in spec}
    return _quote_strings(ordered) if literal else ordered


def _quote_strings(value: Any, keys: bool = False) -> Any:
    """Every string value (and with keys=True every key) as a _Quoted, keeping the flow markers. The
    entries' keys are field names; a responses file reads any key as the text written."""
    if isinstance(value, dict):
        items = {(_Quoted(k) if keys and isinstance(k, str) else k): _quote_strings(v, keys) for k, v in value.items()}
        return _Flow(items) if isinstance(value, _Flow) else items
    if isinstance(value, list):
        items = [_quote_strings(v, keys) for v in value]
        return _FlowList(items) if isinstance(value, _FlowList) else items
    if isinstance(value, str) and not isinstance(value, _Bare):
        return _Quoted(value)
    return value


def _settings_document(value: Any) -> Any:
    """The settings block: mappings of plain values on one line, as the docs write them."""
    if isinstance(value, dict):
        inner = {k: _settings_document(v) for k, v in value.items()}
        if inner and all(not isinstance(v, (dict, list)) or isinstance(v, _FlowList) for v in inner.values()):
            return _Flow(inner)
        return inner
    if isinstance(value, list):
        return _FlowList(value) if all(not isinstance(v, (dict, list)) for v in value) else value
    return value


def render(rows: list[Row], unknown_response: str | None, settings: dict[str, Any] | None, *,
           literal: frozenset[int] = frozenset(), everything_literal: bool = False, header: str = "") -> str:
    """A responses file holding `rows` in this order; the rows whose index is in `literal` (or all of it,
    with everything_literal) in the most literal form."""
    if everything_literal:
        literal = frozenset(range(len(rows)))
    document: dict[str, Any] = {}
    if all(not options for _, _, options in rows):
        document["responses"] = {
            (_Quoted(prompt) if i in literal else prompt): (_Quoted(answer) if i in literal else answer)
            for i, (prompt, answer, _) in enumerate(rows)
        }
    else:
        document["responses"] = [entry_document(*row, literal=i in literal) for i, row in enumerate(rows)]
    if unknown_response is not None:
        document["defaults"] = {"unknown_response": _Quoted(unknown_response) if everything_literal else unknown_response}
    if settings:
        block = {k: _settings_document(v) for k, v in settings.items()}
        document["settings"] = _quote_strings(block, keys=True) if everything_literal else block
    return header + _yaml(document)


# --- the default set ---------------------------------------------------------------------------------

def _differences(parsed: ParsedResponses, rows: list[Row], unknown_response: str | None,
                 settings: dict[str, Any] | None) -> tuple[list[int], str]:
    """The indexes of the rows that did not read back as themselves, and what else differs."""
    if len(parsed.entries) != len(rows):
        return list(range(len(rows))), f"{len(parsed.entries)} entries read back instead of {len(rows)}"
    changed = [i for i, (entry, row) in enumerate(zip(parsed.entries, rows, strict=True))
               if (entry.prompt, entry.answer, entry.options) != row]
    if parsed.unknown_response != unknown_response:
        return changed, "the default answer does not read back as itself"
    if (parsed.settings or {}) != (settings or {}):
        return changed, "the settings do not read back as themselves"
    return changed, ""


def dump_default_set(header: str = "", *, recordings_only: bool = False, test_id: str = "") -> Dump:
    """The default set as a responses file, read back and checked to load as the same set.

    Entries come in the order the server tries them among equal priorities (file order, then the admin's
    rows), so loading the dump anywhere answers every request the same way. recordings_only: only the
    recordings (record and replay), without the default answer and settings, as a file to load beside
    the others; test_id: a test run's own entries instead of the default set's. Raises DumpError.
    """
    response_set = ResponseSet.get()
    stored = CannedResponse.objects.filter(scenario="", test_id=test_id)
    if recordings_only:
        stored = stored.filter(options__has_key="recorded")
    stored = stored.order_by("position", "id").values_list("prompt", "answer", "options", "source")
    rows: list[Row] = []
    from_admin = 0
    for prompt, answer, options, source in stored.iterator(chunk_size=2000):
        try:
            rows.append(canonical_row(prompt, answer, options))
        except EntryError as exc:
            raise DumpError(f"the entry {_short(prompt)} has options no responses file can hold: {exc.message}") from None
        from_admin += source == Source.ADMIN
    unknown_response = None if recordings_only or test_id else response_set.unknown_response
    settings = None if recordings_only or test_id else dict(response_set.settings or {}) or None

    literal: frozenset[int] = frozenset()
    problem = ""
    for attempt in range(3):  # as written; the entries that differed, literally; everything literally
        text = render(rows, unknown_response, settings, literal=literal, everything_literal=attempt == 2,
                      header=header)
        try:
            parsed = parse_responses(text, "the dump")
        except ResponsesFileError as exc:
            changed, problem = list(range(len(rows))), f"it would not load: {exc.problems[0].describe(exc.path)}"
        else:
            changed, problem = _differences(parsed, rows, unknown_response, settings)
            if not changed and not problem:
                return Dump(text, len(parsed.entries), from_admin, len(settings or {}))
        literal |= frozenset(changed)
    if changed and not problem:
        problem = f"the entry {_short(rows[changed[0]][0])} would not read back as itself"
    raise DumpError(f"the set cannot be written as a responses file that loads back the same: {problem}")


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
