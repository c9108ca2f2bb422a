"""Choosing the canned reply for a request: an immutable index built once per change of the set.

Entries are tried in rank order (higher `priority` first, then file order); the first that matches
wins. Exact and normalized entries on the last user message are found by dictionary probes, so their
cost does not grow with the number of entries. Contains and regex entries are found by RE2 sets of up to
1,000 patterns, built with the index: one pass over each text the entries look at finds all of a set's
matches (ScanSets). Other entries that look at other parts of the conversation are tried one by one.
RE2's matching time is linear in the text, so no pattern can stall the server.
Recordings (canned/recordings.py) are held apart, by the fingerprint of the request they answer.

Longer than 350 lines: the index, its incremental extension and its near-miss hints share one set of
private dictionaries, and splitting them would expose those.
"""
from __future__ import annotations

import bisect
import dataclasses
import difflib
import fnmatch
import heapq
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from operator import attrgetter
from typing import Any

import re2

from responses_app.canned.conversation import ChatRequest, Reply, ToolCall
from responses_app.canned.entries import FAULT_KEYS
from responses_app.canned.forcing import default_reply, honour_forcing
from responses_app.canned.tokens import count_tokens

NEAR_MISS_SAMPLE = 300  # how many exact prompts the "similar text" hint compares an unmatched prompt with
NEAR_MISS_SCAN = 100_000  # characters of an unmatched prompt searched for canned prompts it starts with or contains
NEAR_MISS_CHECKS = 10_000  # canned prompts compared at some position of it, at most
_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """Case- and white-space-insensitive form: NFC, case-folded, runs of white space as one space."""
    return _fold(text) if len(text) <= 4096 else _fold.__wrapped__(text)  # a prompt once, not per entry


@lru_cache(maxsize=1024)
def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def reply_from_spec(spec: dict[str, Any]) -> Reply:
    calls = tuple(ToolCall(c["name"], c.get("arguments", "{}"), c.get("id")) for c in spec.get("tool_calls", ()))
    text = spec.get("text")
    if calls and not text:
        text = None
    elif text is None:
        text = ""
    return Reply(
        text=text, tool_calls=calls, thinking=spec.get("thinking"), finish_reason=spec.get("finish_reason"),
        stop_reason=spec.get("stop_reason"), usage_overrides=dict(spec["usage"]) if spec.get("usage") else None,
        response_id=spec.get("id"),
        created=spec.get("created"), signature=spec.get("signature"),
    )


def reply_tokens(reply: Reply) -> int:
    """Output tokens of a reply: its text, thinking and tool calls."""
    total = count_tokens(reply.text or "") + count_tokens(reply.thinking or "")
    for call in reply.tool_calls:
        total += count_tokens(call.name) + count_tokens(call.arguments)
    return total


# The texts an entry's `on:` looks at, by its value.
TARGET_TEXTS: dict[str, Callable[[ChatRequest], Iterable[str]]] = {
    "last_user": lambda request: (request.prompt,),
    "any_user": lambda request: request.user_texts,
    "system": lambda request: (request.system,),
    "conversation": lambda request: (request.conversation,),
}


@dataclass(slots=True, eq=False)  # hashed by identity; not frozen, which makes building 100,000 slower
class Entry:
    id: int
    prompt: str
    kind: str  # exact, normalized, contains, regex
    target: str  # last_user, any_user, system, conversation
    rank: tuple[int, int, int]
    replies: tuple[Reply, ...]
    model: str | None = None
    provider: str | None = None
    tool: str | None = None
    has_tool_result: bool | None = None
    name: str | None = None
    embedding: tuple[float, ...] | None = None
    key: str = ""  # the exact key (trimmed) or the normalized text, per kind
    regex: Any = field(default=None, compare=False)
    recorded: str | None = None  # a recording's request fingerprint: found by it alone (canned/recordings.py)
    recorded_timing: dict[str, Any] | None = None  # a recording's own pace, when a request asks for it
    faults: dict[str, Any] | None = None  # the entry's error, timing, stream_error and content_filter options

    @classmethod
    def build(cls, id: int, prompt: str, answer: str, options: dict[str, Any], position: int) -> Entry:
        kind = options.get("match", "exact")
        if not options:  # the original format: most entries of a large set
            return cls(id=id, prompt=prompt, kind="exact", target="last_user", rank=(0, position, id),
                       replies=(Reply(answer),), key=prompt.strip())
        if "turns" in options:
            replies = tuple(reply_from_spec(turn) for turn in options["turns"])
        else:
            replies = (reply_from_spec({**(options.get("response") or {}), "text": answer}),)
        key = prompt.strip() if kind == "exact" else normalize(prompt)
        return cls(
            id=id, prompt=prompt, kind=kind, target=options.get("on", "last_user"),
            rank=(-int(options.get("priority", 0)), position, id), replies=replies,
            model=options.get("model"), provider=options.get("provider"), tool=options.get("tool"),
            has_tool_result=options.get("has_tool_result"), name=options.get("name"),
            embedding=tuple(options["embedding"]) if "embedding" in options else None,
            key=key, regex=re2.compile(prompt) if kind == "regex" else None,
            recorded=options.get("recorded"), recorded_timing=options.get("recorded_timing"),
            faults={k: options[k] for k in FAULT_KEYS if k in options} or None,
        )

    @property
    def scanned(self) -> bool:
        """Tried one by one on every request, rather than found by a dictionary probe."""
        return self.target != "last_user" or self.kind in ("contains", "regex")

    def label(self) -> str:
        shown = self.name or (self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "...")
        return f"entry {self.id} ({shown!r})"

    def matches_text(self, text: str) -> bool:
        if self.kind == "exact":
            stripped = text.strip()
            # As in the original server, which looked up prompt.lower(): a lower-case key answers any case.
            return stripped == self.key or (self.key.islower() and stripped.lower() == self.key)
        if self.kind == "normalized":
            return normalize(text) == self.key
        if self.kind == "contains":
            return self.key in normalize(text)
        return self.regex.search(text) is not None

    def texts(self, request: ChatRequest) -> Iterable[str]:
        return TARGET_TEXTS[self.target](request)

    def refusal(self, request: ChatRequest) -> str | None:
        """Why this entry does not apply to the request beyond its text, or None when it does."""
        if self.model is not None and not fnmatch.fnmatchcase(request.model, self.model):
            return f"model {request.model!r} does not match {self.model!r}"
        if self.provider is not None and request.provider != self.provider:
            return f"provider is {request.provider}, the entry wants {self.provider}"
        if self.tool is not None and self.tool not in {tool.name for tool in request.tools}:
            return f"the request offers no tool named {self.tool!r}"
        if self.has_tool_result is not None and request.has_tool_result != self.has_tool_result:
            return "the request has a tool result" if request.has_tool_result else "the request has no tool result"
        return None

    def reply_for(self, request: ChatRequest) -> Reply:
        """The reply for the request's turn; past the last scripted turn, the last one again."""
        return self.replies[min(request.turn, len(self.replies)) - 1]


@dataclass(frozen=True)  # no slots: output_tokens is computed once, then kept in the instance's __dict__
class Match:
    entry: Entry | None  # None when no entry matched
    reply: Reply
    rule: str  # the entry's match kind, or default / forced_tool / json_schema
    near_misses: tuple[str, ...] = ()
    warning: str | None = None  # why the entry's own reply was not sent as it is

    @cached_property
    def output_tokens(self) -> int:
        """Counted once per request, though the journal, rate limits, pacing and the usage block all ask."""
        return reply_tokens(self.reply)


@dataclass(frozen=True)
class ScanSets:
    """The scanned entries that look at one part of a request (`on:`): the regex entries' patterns and the
    contains entries' texts compiled into RE2 sets, which find every entry that matches a text in one pass
    over it (in time linear in the text), SET_SIZE patterns a set; the other entries, tried one by one."""

    regexes: tuple[tuple[Any, tuple[Entry, ...]], ...]  # (re2.Set, its entries by index)
    contains: tuple[tuple[Any, tuple[Entry, ...]], ...]  # sets of the escaped (normalized) texts
    others: tuple[Entry, ...]

    @classmethod
    def build(cls, scanned: Iterable[Entry]) -> dict[str, ScanSets]:
        by_target: dict[str, list[Entry]] = {}
        for entry in scanned:
            by_target.setdefault(entry.target, []).append(entry)
        return {target: cls._of(entries) for target, entries in by_target.items()}

    @classmethod
    def extend(cls, sets: dict[str, ScanSets], added: list[Entry], scan: tuple[Entry, ...]) -> dict[str, ScanSets]:
        """`sets` with the scanned entries `added` (now in `scan`, all scanned entries): an added entry is
        tried one by one until its target has more than SET_SIZE // 10 of those, which rebuilds that
        target's sets, so adding entries one at a time does not rebuild every set each time."""
        extended = dict(sets)
        for target in {entry.target for entry in added}:
            held = extended.get(target)
            new = [entry for entry in added if entry.target == target]
            if held is not None and len(held.others) + len(new) <= SET_SIZE // 10:
                extended[target] = dataclasses.replace(held, others=held.others + tuple(new))
            else:
                extended[target] = cls._of([entry for entry in scan if entry.target == target])
        return extended

    @classmethod
    def _of(cls, entries: list[Entry]) -> ScanSets:
        others = [entry for entry in entries if entry.kind not in ("regex", "contains")]
        regexes = _re2_sets([entry for entry in entries if entry.kind == "regex"], lambda entry: entry.prompt, others)
        contains = _re2_sets([entry for entry in entries if entry.kind == "contains"],
                             lambda entry: re2.escape(entry.key), others)
        return cls(regexes, contains, tuple(others))

    def matching(self, text: str) -> list[Entry]:
        """The regex and contains entries that match `text`."""
        try:
            found = [entries[i] for found_set, entries in self.regexes for i in found_set.Match(text) or ()]
            if self.contains:
                folded = normalize(text)
                found += [entries[i] for found_set, entries in self.contains for i in found_set.Match(folded) or ()]
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for RE2; each entry decides, as on its own
            return [entry for _, entries in (*self.regexes, *self.contains) for entry in entries
                    if entry.matches_text(text)]
        return found


SET_SIZE = 1000  # patterns in one RE2 set: within RE2's default memory budget for the patterns of an entry


def _re2_sets(entries: list[Entry], pattern: Callable[[Entry], str],
              others: list[Entry]) -> tuple[tuple[Any, tuple[Entry, ...]], ...]:
    """RE2 sets (searched, as re2.search does) of the entries' patterns, SET_SIZE at a time; the entries of
    a set RE2 cannot build go to `others`, to be tried one by one."""
    sets = []
    for start in range(0, len(entries), SET_SIZE):
        part = entries[start:start + SET_SIZE]
        found_set = re2.Set.SearchSet()
        try:
            for entry in part:
                found_set.Add(pattern(entry))
            found_set.Compile()
        except re2.error:
            others.extend(part)
            continue
        sets.append((found_set, tuple(part)))
    return tuple(sets)


@dataclass(frozen=True)
class SetIndex:
    """Every canned entry, keyed the ways a request may reach it, plus the default answer."""

    version: int
    unknown_response: str
    settings: dict[str, Any]
    entries: tuple[Entry, ...]
    _exact: dict[str, tuple[Entry, ...]] = field(repr=False, default_factory=dict)
    _normalized: dict[str, tuple[Entry, ...]] = field(repr=False, default_factory=dict)
    _scan: tuple[Entry, ...] = field(repr=False, default=())
    _near: dict[str, dict[str, tuple[Entry, ...]]] = field(repr=False, default_factory=dict)  # built when first needed
    _embeddings: dict[str, tuple[float, ...]] = field(repr=False, default_factory=dict)
    last_id: int = 0  # the largest entry id: rows added later have larger ones (models.SetVersion)
    _recorded: dict[str, Entry] = field(repr=False, default_factory=dict)  # recordings, by request fingerprint
    _scan_sets: dict[str, ScanSets] = field(repr=False, default_factory=dict)  # ScanSets.build(_scan)

    @classmethod
    def build(
        cls, rows: Iterable[tuple], *, version: int, unknown_response: str, settings: dict[str, Any]
    ) -> SetIndex:
        """rows: (id, prompt, answer) or (id, prompt, answer, options, position)."""
        built = [Entry.build(row[0], row[1], row[2], row[3] if len(row) > 3 else {}, row[4] if len(row) > 4 else 0)
                 for row in rows]
        entries = sorted((entry for entry in built if entry.recorded is None), key=lambda e: e.rank)
        exact: dict[str, list[Entry]] = {}
        normalized: dict[str, list[Entry]] = {}
        scan: list[Entry] = []
        embeddings: dict[str, tuple[float, ...]] = {}
        recorded: dict[str, Entry] = {}  # answer their own request only, after every hand-written entry
        for entry in sorted((entry for entry in built if entry.recorded is not None), key=lambda e: e.id):
            recorded.setdefault(entry.recorded, entry)
        for entry in entries:
            if entry.embedding is not None:
                embeddings.setdefault(entry.prompt.strip(), entry.embedding)
            if entry.scanned:
                scan.append(entry)
            elif entry.kind == "normalized":
                normalized.setdefault(entry.key, []).append(entry)
            else:
                exact.setdefault(entry.key, []).append(entry)
        return cls(
            version, unknown_response, settings, tuple(entries),
            {k: tuple(v) for k, v in exact.items()}, {k: tuple(v) for k, v in normalized.items()}, tuple(scan),
            {}, embeddings, max((entry.id for entry in built), default=0), recorded, ScanSets.build(scan),
        )

    def extended(self, rows: Iterable[tuple], *, version: int) -> SetIndex:
        """This set with the entries of `rows` (id, prompt, answer, options, position) added, all of them new.

        The cost is that of the new entries, plus copying this set's dictionaries (a fast copy of
        references, with no Python work per entry): adding one entry to a set of 10,000 does not build
        10,000 entries again."""
        built = sorted((Entry.build(*row) for row in rows), key=lambda e: e.rank)
        if not built:
            return dataclasses.replace(self, version=version)
        added = [entry for entry in built if entry.recorded is None]
        if len(added) < len(built):  # recordings go to their own dictionary only
            recorded = dict(self._recorded)
            for entry in built:
                if entry.recorded is not None:
                    recorded.setdefault(entry.recorded, entry)
            last_id = max(self.last_id, max(entry.id for entry in built))
            held = dataclasses.replace(self, _recorded=recorded, last_id=last_id)
            if not added:
                return dataclasses.replace(held, version=version)
            return held.extended_with(added, version=version)
        return self.extended_with(added, version=version)

    def extended_with(self, added: list[Entry], *, version: int) -> SetIndex:
        """This set with the hand-written entries `added` (built, in rank order) added."""
        rank = attrgetter("rank")

        def merged(held: tuple[Entry, ...], new: list[Entry]) -> tuple[Entry, ...]:
            if len(new) < 32:
                combined = list(held)
                for entry in new:
                    bisect.insort(combined, entry, key=rank)
                return tuple(combined)
            return tuple(heapq.merge(held, new, key=rank))

        exact, normalized = dict(self._exact), dict(self._normalized)
        near = dict(self._near["map"]) if "map" in self._near else None
        new_exact: dict[str, list[Entry]] = {}
        new_normalized: dict[str, list[Entry]] = {}
        for entry in added:
            if entry.scanned:
                continue
            (new_normalized if entry.kind == "normalized" else new_exact).setdefault(entry.key, []).append(entry)
        for key, entries in new_exact.items():
            exact[key] = merged(exact.get(key, ()), entries)
            if near is not None:
                folded = normalize(key)
                near[folded] = near.get(folded, ()) + tuple(entries)
        for key, entries in new_normalized.items():
            normalized[key] = merged(normalized.get(key, ()), entries)
        entries = merged(self.entries, added)
        embeddings = self._embeddings
        if any(entry.embedding is not None for entry in added):  # the first in rank order gives the vector
            embeddings = {}
            for entry in entries:
                if entry.embedding is not None:
                    embeddings.setdefault(entry.prompt.strip(), entry.embedding)
        scanned = [entry for entry in added if entry.scanned]
        scan = merged(self._scan, scanned) if scanned else self._scan
        return dataclasses.replace(
            self, version=version, entries=entries, _exact=exact, _normalized=normalized,
            _scan=scan, _scan_sets=ScanSets.extend(self._scan_sets, scanned, scan) if scanned else self._scan_sets,
            _near={} if near is None else {"map": near}, _embeddings=embeddings,
            last_id=max(self.last_id, max(entry.id for entry in added)),
        )

    def _near_map(self) -> dict[str, tuple[Entry, ...]]:
        """Exact entries by their normalized text, for "differs only in case" hints; built on first use."""
        if "map" not in self._near:
            near: dict[str, list[Entry]] = {}
            for key, entries in self._exact.items():
                near.setdefault(normalize(key), []).extend(entries)
            self._near["map"] = {k: tuple(v) for k, v in near.items()}
        return self._near["map"]

    def _by_first_word(self) -> dict[str, tuple[tuple[str, Entry], ...]]:
        """Exact and normalized entries, by the first word of their normalized text ("" when it does not start
        with a word), for the "starts with" and "contains" hints; built on first use."""
        if "words" not in self._near:
            words: dict[str, list[tuple[str, Entry]]] = {}
            keyed = [(key, entry) for key, entries in self._near_map().items() for entry in entries]
            keyed += [(key, entry) for key, entries in self._normalized.items() for entry in entries]
            for key, entry in sorted(keyed, key=lambda pair: pair[1].rank):
                first = _WORD.match(key)
                words.setdefault(first.group() if first else "", []).append((key, entry))
            self._near["words"] = {k: tuple(v) for k, v in words.items()}
        return self._near["words"]

    def _within(self, text: str) -> list[str]:
        """Hints for the exact and normalized entries whose text the (normalized) prompt starts with or contains,
        whole words only: libraries add instructions before or after what the user typed."""
        words = self._by_first_word()
        hints: list[str] = []
        seen: set[int] = set()
        checks = 0
        scanned = text[:NEAR_MISS_SCAN]
        starts = [(0, "")] + [(m.start(), m.group()) for m in _WORD.finditer(scanned)]
        for start, word in starts:
            for key, entry in words.get(word, ()):
                checks += 1
                if checks > NEAR_MISS_CHECKS or len(hints) == 3:
                    return hints
                end = start + len(key)
                if entry.id in seen or len(key) >= len(text) or not text.startswith(key, start):
                    continue
                if end < len(text) and _WORD.fullmatch(text[end - 1:end + 1]):
                    continue  # the canned text ends inside a word of the prompt
                seen.add(entry.id)
                where = "starts with" if start == 0 else "contains"
                hints.append(f"{entry.label()}: the prompt {where} this entry's text, which must be the whole "
                             "message (use `match: {contains: ...}` to answer it within a longer one)")
        return hints

    def find(self, request: ChatRequest, unknown_response: str | None = None) -> Match:
        """The first entry, in rank order, whose text and restrictions accept the request."""
        stripped = request.prompt.strip()
        probed = self._exact.get(stripped, ())
        lowered = stripped.lower()
        if lowered != stripped:
            probed += tuple(e for e in self._exact.get(lowered, ()) if e.key.islower())
        folded = normalize(request.prompt) if self._normalized or not probed else ""
        probed += self._normalized.get(folded, ()) if folded else ()
        rank = attrgetter("rank")  # with no entry to scan, no merge to set up (one probed entry, usually)
        candidates = (heapq.merge(sorted(set(probed), key=rank), self._scanned_matches(request), key=rank)
                      if self._scan else probed if len(probed) < 2 else sorted(set(probed), key=rank))
        refused: list[str] = []
        for entry in candidates:  # each accepts the request's text; its other restrictions are checked here
            reason = entry.refusal(request)
            if reason is not None:
                refused.append(f"{entry.label()}: {reason}")
                continue
            reply, warning = honour_forcing(request, entry.reply_for(request))
            return Match(entry, reply, entry.kind, warning=warning)
        reply, rule = default_reply(request, self.unknown_response if unknown_response is None else unknown_response)
        return Match(None, reply, rule, tuple(self._near_misses(request, refused, folded)[:3]))

    def _scanned_matches(self, request: ChatRequest) -> list[Entry]:
        """The scanned entries whose text accepts the request, in rank order. Regex and contains entries
        are found in one pass over each text, by RE2 sets of their patterns (ScanSets); the others, and
        all of them when a set cannot be built, are tried one by one."""
        found: list[Entry] = []
        for target, sets in self._scan_sets.items():
            texts = TARGET_TEXTS[target](request)
            found.extend(entry for entry in sets.others if any(entry.matches_text(text) for text in texts))
            for text in texts:
                found.extend(sets.matching(text))
        return sorted(set(found), key=attrgetter("rank")) if len(found) > 1 else found

    def _near_misses(self, request: ChatRequest, refused: list[str], folded: str) -> list[str]:
        hints = list(refused)
        folded = folded or normalize(request.prompt)
        for entry in self._near_map().get(folded, ()):
            hints.append(f"{entry.label()}: differs only in case or white space (use `match: {{normalized: ...}}`)")
        if folded:
            hints.extend(self._within(folded))
        if not hints and request.prompt.strip():
            sample = [e.key for e in self.entries[:NEAR_MISS_SAMPLE] if e.kind == "exact"]
            for close in difflib.get_close_matches(request.prompt.strip(), sample, n=2, cutoff=0.8):
                entry = next(e for e in self.entries if e.kind == "exact" and e.key == close)
                hints.append(f"{entry.label()}: similar text")
        return hints

    def embedding_for(self, text: str) -> tuple[float, ...] | None:
        return self._embeddings.get(text.strip())

    def recording(self, fingerprint: str) -> Entry | None:
        """The recording of the request with this fingerprint (canned/recordings.py), if this set has one."""
        return self._recorded.get(fingerprint)

    @property
    def recordings(self) -> int:
        return len(self._recorded)

    def __len__(self) -> int:
        return len(self.entries) + len(self._recorded)
