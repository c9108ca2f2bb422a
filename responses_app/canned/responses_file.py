"""What a responses file says: its YAML read, checked and turned into entries, with every problem named by line.

Nothing here touches the database; loading.py writes what this parses.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import yaml

from responses_app.canned.entries import entry_digest, parse_entry
from responses_app.canned.fault_schema import parse_failures, parse_model_rules, parse_rate_limits, parse_timing
from responses_app.canned.fields import EntryError, Scalar
from responses_app.canned.matching import Entry
from responses_app.canned.shadowing import find_shadowed

logger = logging.getLogger("mockllm.loading")
SECTIONS = ("responses", "defaults", "settings")
DEFAULTS_KEYS = ("unknown_response",)
# Only plain data tags: Python object tags and other custom tags are refused, never constructed.
SAFE_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "omap", "merge")
}
KNOWN_SETTINGS = {"lag_enabled": (bool,), "lag_factor": (int, float)}
MAX_ERRORS_SHOWN = 20
MAX_VALUES = 1_000_000  # values in the file once YAML aliases are expanded: more is an alias bomb


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based, 0 when unknown
    column: int
    message: str

    def describe(self, path: str) -> str:
        return f"{path}:{self.line}:{self.column}: {self.message}" if self.line else f"{path}: {self.message}"


class ResponsesFileError(ValueError):
    """The file cannot be loaded; `problems` says where and why. Nothing was written."""

    def __init__(self, path: str, problems: list[Problem]):
        self.path = path
        self.problems = problems
        shown = [p.describe(path) for p in problems[:MAX_ERRORS_SHOWN]]
        if len(problems) > MAX_ERRORS_SHOWN:
            shown.append(f"... and {len(problems) - MAX_ERRORS_SHOWN} more problems")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class ParsedEntry:
    prompt: str
    answer: str
    options: dict[str, Any]
    line: int
    digest: str


@dataclass(frozen=True)
class ParsedResponses:
    entries: tuple[ParsedEntry, ...]  # in file order
    unknown_response: str | None
    settings: dict[str, Any] | None
    warnings: tuple[str, ...] = ()

    @property
    def answers(self) -> dict[str, str]:
        """prompt -> answer text, for entries in the original format and quick looks."""
        return {entry.prompt: entry.answer for entry in self.entries}


def _where(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _problem(node: yaml.Node, message: str) -> Problem:
    line, column = _where(node)
    return Problem(line, column, message)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _scalar_text(node: yaml.Node) -> str:
    # The text as the user wrote it: `yes:` stays "yes" and `42:` stays "42" instead of becoming
    # True or 42, which would never equal a prompt and so would never match.
    return node.value


def _check_tags(node: yaml.Node, problems: list[Problem], seen: set[int]) -> None:
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:  # aliases share nodes: visit each once, however often it is referenced
            continue
        seen.add(id(current))
        if current.tag not in SAFE_TAGS:
            problems.append(_problem(current, f"the tag {current.tag!r} is not allowed in a responses file"))
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def parse_responses(text: str, path: str = "<string>") -> ParsedResponses:
    """Parse and validate a responses file; raise ResponsesFileError naming every problem found."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise ResponsesFileError(path, [Problem(line, column, f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise ResponsesFileError(path, [Problem(0, 0, f"invalid YAML: {exc}")]) from None

    if root is None:
        raise ResponsesFileError(path, [Problem(0, 0, "the file is empty (expected a `responses:` section)")])
    problems: list[Problem] = []
    _check_tags(root, problems, set())
    if problems:
        raise ResponsesFileError(path, problems)
    if not isinstance(root, yaml.MappingNode):
        raise ResponsesFileError(path, [_problem(root, "the file must be a mapping with a `responses:` section")])

    sections: dict[str, yaml.Node] = {}
    for key, value in root.value:
        name = _scalar_text(key) if isinstance(key, yaml.ScalarNode) else None
        if name not in SECTIONS:
            problems.append(_problem(key, f"unknown section {name!r} (expected one of: {', '.join(SECTIONS)})"))
        elif name in sections:
            problems.append(_problem(key, f"section {name!r} appears twice"))
        else:
            sections[name] = value
    if "responses" not in sections:
        problems.append(Problem(1, 1, "the file has no `responses:` section"))

    entries = _parse_entries(sections.get("responses"), problems)
    unknown_response = _parse_defaults(sections.get("defaults"), problems)
    settings = _parse_settings(sections.get("settings"), problems)
    if problems:
        raise ResponsesFileError(path, problems)
    return ParsedResponses(entries=tuple(entries), unknown_response=unknown_response, settings=settings,
                           warnings=tuple(_shadow_warnings(entries)))


def _shadow_warnings(entries: list[ParsedEntry]) -> list[str]:
    """Entries that can never match because an earlier one answers everything they would."""
    compiled = [Entry.build(i + 1, e.prompt, e.answer, e.options, i) for i, e in enumerate(entries)]
    lines = {i + 1: e.line for i, e in enumerate(entries)}
    return [
        f"line {lines[later.id]}: entry {later.id} ({later.prompt[:40]!r}) can never match: entry {earlier.id} "
        f"(line {lines[earlier.id]}, {earlier.kind} {earlier.prompt[:40]!r}) is tried first and answers "
        "everything it would; give it a higher `priority` or move it up"
        for later, earlier in find_shadowed(compiled)
    ]


def _parse_entries(node: yaml.Node | None, problems: list[Problem]) -> list[ParsedEntry]:
    if node is None:
        return []
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return []  # `responses:` with nothing under it: an empty set, said on purpose
    if isinstance(node, yaml.MappingNode):
        entries = _parse_mapping_entries(node, problems)
    elif isinstance(node, yaml.SequenceNode):
        entries = _parse_list_entries(node, problems)
    else:
        problems.append(_problem(node, "`responses` must be a mapping of prompt: answer, or a list of entries"))
        return []
    first: dict[str, ParsedEntry] = {}
    unique = []
    for entry in entries:
        if entry.digest in first:
            earlier = first[entry.digest]
            problems.append(Problem(entry.line, 1, f"the prompt {_short(entry.prompt)} appears twice (first on line "
                                    f"{earlier.line}) with the same matching options"))
        else:
            first[entry.digest] = entry
            unique.append(entry)
    return unique


def _parse_mapping_entries(node: yaml.MappingNode, problems: list[Problem]) -> list[ParsedEntry]:
    """The original format: `prompt: answer` pairs."""
    entries = []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            problems.append(_problem(key, "a prompt must be a single string, not a list or a mapping"))
            continue
        if key.tag.endswith(":null") and key.style is None and key.value in ("", "~", "null", "Null", "NULL"):
            problems.append(_problem(key, "a prompt is empty or null; quote it if you mean the text"))
            continue
        prompt = _scalar_text(key)
        if not isinstance(value, yaml.ScalarNode):
            problems.append(_problem(value, f"the answer to {_short(prompt)} must be a string"))
            continue
        if value.tag.endswith(":null") and value.style is None:
            problems.append(
                _problem(value, f"the answer to {_short(prompt)} is missing; write \"\" for an empty answer")
            )
            continue
        entries.append(ParsedEntry(prompt, _scalar_text(value), {}, _where(key)[0], entry_digest(prompt, {})))
    return entries


def _parse_list_entries(node: yaml.SequenceNode, problems: list[Problem]) -> list[ParsedEntry]:
    """The richer format: a list of entries with matching rules and replies (see entries.py)."""
    constructor = yaml.SafeLoader("")
    budget = [MAX_VALUES]
    entries = []
    for number, item in enumerate(node.value, start=1):
        if not isinstance(item, yaml.MappingNode):
            problems.append(_problem(item, f"entry {number} must be a mapping with `match:` and `response:`"))
            continue
        try:
            data = _node_data(item, constructor, budget)
            prompt, answer, options = parse_entry(data)
        except EntryError as exc:
            line = exc.line or _where(item)[0]
            problems.append(Problem(line, 1 if exc.line else _where(item)[1], f"entry {number}: {exc.message}"))
            continue
        except _TooLarge:
            problems.append(_problem(item, "the file expands to too many values (a YAML alias bomb?)"))
            return entries
        entries.append(ParsedEntry(prompt, answer, options, _where(item)[0], entry_digest(prompt, options)))
    return entries


class _TooLarge(Exception):
    pass


def _node_data(node: yaml.Node, constructor: yaml.SafeLoader, budget: list[int]) -> Any:
    """A node as dicts, lists and Scalars (the text as written, the value YAML reads, the line)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, yaml.MappingNode):
        data = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise EntryError("", "keys must be plain names", _where(key)[0])
            data[key.value] = _node_data(value, constructor, budget)
        return data
    if isinstance(node, yaml.SequenceNode):
        return [_node_data(item, constructor, budget) for item in node.value]
    value = constructor.construct_object(node)
    if not isinstance(value, (str, int, float, bool)) and value is not None:
        value = node.value  # dates and the like: keep the text
    return Scalar(node.value, value, _where(node)[0])


def _parse_defaults(node: yaml.Node | None, problems: list[Problem]) -> str | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    if not isinstance(node, yaml.MappingNode):
        problems.append(_problem(node, "`defaults` must be a mapping (for example `unknown_response: ...`)"))
        return None
    unknown_response = None
    for key, value in node.value:
        name = _scalar_text(key) if isinstance(key, yaml.ScalarNode) else None
        if name not in DEFAULTS_KEYS:
            problems.append(_problem(key, f"unknown key {name!r} in `defaults` (expected: {', '.join(DEFAULTS_KEYS)})"))
        elif not isinstance(value, yaml.ScalarNode) or (value.tag.endswith(":null") and value.style is None):
            problems.append(_problem(value, "`defaults.unknown_response` must be a string"))
        else:
            unknown_response = _scalar_text(value)
    return unknown_response


def _parse_settings(node: yaml.Node | None, problems: list[Problem]) -> dict[str, Any] | None:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return None
    if not isinstance(node, yaml.MappingNode):
        problems.append(_problem(node, "`settings` must be a mapping"))
        return None
    nested = {"timing": parse_timing, "failures": parse_failures, "rate_limits": parse_rate_limits,
              "models": parse_model_rules}
    constructor = yaml.SafeLoader("")
    settings: dict[str, Any] = {}
    for key, value in node.value:
        name = _scalar_text(key) if isinstance(key, yaml.ScalarNode) else None
        if name in nested:
            try:
                settings[name] = nested[name](_node_data(value, constructor, [MAX_VALUES]), f"settings.{name}")
            except EntryError as exc:
                problems.append(Problem(exc.line or _where(value)[0], 1, exc.message))
            except _TooLarge:
                problems.append(_problem(value, "the file expands to too many values (a YAML alias bomb?)"))
            continue
        if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.ScalarNode):
            problems.append(_problem(key, f"setting {name!r} must be `name: value` with a single value "
                                     f"(the nested settings are: {', '.join(nested)})"))
            continue
        parsed = constructor.construct_object(value)
        expected = KNOWN_SETTINGS.get(name)
        if expected and (not isinstance(parsed, expected) or (bool not in expected and isinstance(parsed, bool))):
            kinds = " or ".join("true/false" if t is bool else "a number" for t in expected)
            problems.append(_problem(value, f"setting {name!r} must be {kinds}, not {value.value!r}"))
            continue
        if isinstance(parsed, (int, float, str, bool)) or parsed is None:
            settings[name] = parsed
        else:
            settings[name] = value.value  # dates and such: keep the text
    return settings
