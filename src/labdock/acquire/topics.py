"""Topic templates: match an MQTT topic and take tags from its levels.

A template is an MQTT topic filter whose levels may also be named
placeholders: `lab/{room}/{device}/{measurement}`. A `{name}` level matches
one level like `+` and stores it under that name. A `+` matches one level
and stores nothing. A final `#` matches the rest, and a final `{name#}`
stores the rest, slashes included. The placeholder `{measurement}` sets the
measurement; every other name becomes a tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_.-]*)(#?)\}$")


class TemplateError(ValueError):
    """An invalid topic template."""


@dataclass(frozen=True, slots=True)
class _Level:
    literal: str | None  # None for a wildcard or placeholder
    name: str | None  # placeholder name, None for `+`, `#` and literals
    rest: bool  # True for `#` or `{name#}`


@dataclass(frozen=True, slots=True)
class TopicTemplate:
    """A compiled topic template."""

    text: str
    levels: tuple[_Level, ...]

    @classmethod
    def parse(cls, text: str) -> TopicTemplate:
        """Compile `text`; raise TemplateError naming the bad level."""
        if not text:
            raise TemplateError("the topic template is empty")
        if text.startswith("$share/"):
            raise TemplateError(
                f"topic template {text!r} starts with $share/: put the shared "
                "subscription group in broker.share_group, not in the template"
            )
        raw_levels = text.split("/")
        levels = []
        names: set[str] = set()
        for index, raw in enumerate(raw_levels):
            last = index == len(raw_levels) - 1
            match = _PLACEHOLDER.match(raw)
            if raw == "#" or (match and match.group(2)):
                if not last:
                    raise TemplateError(
                        f"in topic template {text!r}, level {index + 1} ({raw!r}) "
                        "matches the rest of the topic, so it must be the last level"
                    )
                name = match.group(1) if match else None
                levels.append(_Level(None, name, True))
            elif raw == "+":
                levels.append(_Level(None, None, False))
            elif match:
                levels.append(_Level(None, match.group(1), False))
            elif raw.startswith("{") and raw.endswith("}"):
                raise TemplateError(
                    f"in topic template {text!r}, level {index + 1} ({raw!r}) is an "
                    "invalid placeholder; a name starts with a letter or _ and "
                    "contains only letters, digits, _, . and -, as in {device}"
                )
            elif any(c in raw for c in "+#{}"):
                raise TemplateError(
                    f"in topic template {text!r}, level {index + 1} ({raw!r}) mixes "
                    "text with a wildcard; a level is either literal text, +, #, "
                    "{name} or {name#}"
                )
            else:
                levels.append(_Level(raw, None, False))
            name = levels[-1].name
            if name is not None:
                if name in names:
                    raise TemplateError(
                        f"topic template {text!r} names {{{name}}} twice"
                    )
                names.add(name)
        return cls(text, tuple(levels))

    @property
    def filter(self) -> str:
        """The MQTT topic filter that subscribes to every matching topic."""
        parts = []
        for level in self.levels:
            if level.literal is not None:
                parts.append(level.literal)
            elif level.rest:
                parts.append("#")
            else:
                parts.append("+")
        return "/".join(parts)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels if level.name)

    def match(self, topic: str) -> dict[str, str] | None:
        """Return the placeholder values of `topic`, or None if it doesn't match.

        As in MQTT, a `#` also matches the parent level itself (`a/#` matches
        `a`), and wildcards don't match topics starting with `$`.
        """
        if topic.startswith("$") and (
            not self.levels or self.levels[0].literal is None
        ):
            return None
        topic_levels = topic.split("/")
        values: dict[str, str] = {}
        for index, level in enumerate(self.levels):
            if level.rest:
                rest = "/".join(topic_levels[index:])
                if level.name is not None:
                    values[level.name] = rest
                return values
            if index >= len(topic_levels):
                return None
            value = topic_levels[index]
            if level.literal is not None:
                if value != level.literal:
                    return None
            elif level.name is not None:
                values[level.name] = value
        if len(topic_levels) != len(self.levels):
            return None
        return values


def filter_covers(broad: str, narrow: str) -> bool:
    """Return True if every topic that `narrow` matches is matched by `broad`."""
    broad_levels = broad.split("/")
    narrow_levels = narrow.split("/")
    for index, level in enumerate(broad_levels):
        if level == "#":
            return True
        if index >= len(narrow_levels):
            return False
        other = narrow_levels[index]
        if other == "#":
            return False
        if level != "+" and level != other:
            return False
        if level == "+" and other == "#":
            return False
    return len(broad_levels) == len(narrow_levels)


def minimal_filters(filters: list[str]) -> list[str]:
    """Drop the filters that another filter in the list already covers.

    A broker may deliver a message once per matching subscription of a
    client, so overlapping filters would store a reading twice.
    """
    kept: list[str] = []
    for candidate in filters:
        if candidate in kept:
            continue
        if any(
            filter_covers(other, candidate) for other in filters if other != candidate
        ):
            continue
        kept.append(candidate)
    return kept
