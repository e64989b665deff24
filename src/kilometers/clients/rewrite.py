"""Wrap and unwrap the servers of one config file: plan the new text, show it as a diff, write it.

Only the changed entries get new text (see ``jsonedit``); a backup of the file is written first,
and the new file keeps the old one's permissions (and owner, where allowed).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import state
from .base import ConfigLocation, JSONPath
from .entries import EntryError, is_remote, is_wrapped, unwrap_entry, wrap_entry
from .jsonedit import JSONEditError, Member, Node, Style, detect_style, dumps_at, line_indent, parse, splice
from .storeenv import Target, restore_env, with_env


class ConfigFileError(RuntimeError):
    """A config file cannot be read, parsed or written; it was left as it was."""


@dataclass
class EntryResult:
    name: str
    path: JSONPath
    action: str
    """wrap: ``wrapped``, ``already``, ``updated`` (its env now chooses the shell's store),
    ``skipped``; unwrap: ``restored``, ``merged``, ``rebuilt``, ``skipped``."""
    detail: str = ""


@dataclass
class Plan:
    location: ConfigLocation
    old_text: str
    new_text: str
    results: list[EntryResult] = field(default_factory=list)
    add: dict[str, dict[str, Any]] = field(default_factory=dict)
    """State records to save (wrap)."""
    remove: set[str] = field(default_factory=set)
    """State records to drop (unwrap)."""

    @property
    def changed(self) -> bool:
        return self.new_text != self.old_text

    def diff(self) -> str:
        path = str(self.location.path)
        lines = difflib.unified_diff(
            self.old_text.splitlines(keepends=True),
            self.new_text.splitlines(keepends=True),
            fromfile=path,
            tofile=path,
        )
        return "".join(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
        )


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path} is not UTF-8 text ({exc}); it was left as it was") from None
    except OSError as exc:
        raise ConfigFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def parse_config(location: ConfigLocation, text: str) -> Node:
    try:
        doc = parse(text, jsonc=location.format.jsonc)
    except JSONEditError as exc:
        kind = "JSON (comments allowed)" if location.format.jsonc else "valid JSON"
        raise ConfigFileError(
            f"{location.path} is not {kind}: {exc}. Fix the file and run km again; it was left as it was"
        ) from None
    if not isinstance(doc.value, dict):
        raise ConfigFileError(f"{location.path} does not hold a JSON object; it was left as it was")
    return doc


def server_entries(location: ConfigLocation, doc: Node) -> Iterator[tuple[JSONPath, Member]]:
    """Every server entry of the file: its JSON path and its member (name, key position, value)."""
    for map_path in location.format.maps(doc.value):
        node = doc.find(map_path)
        if node is None or not isinstance(node.value, dict):
            continue
        for index, member in enumerate(node.members):
            if any(later.key == member.key for later in node.members[index + 1 :]):
                continue  # a duplicate key: JSON readers keep the last one
            yield (*map_path, member.key), member


def _set(doc: Any, path: JSONPath, value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _check(location: ConfigLocation, new_text: str, expected: Any) -> None:
    """The new text must parse to exactly the document we meant to write."""
    try:
        written = parse(new_text, jsonc=location.format.jsonc).value
    except JSONEditError as exc:  # pragma: no cover - a bug in km, never the user's file
        raise ConfigFileError(
            f"km produced invalid JSON for {location.path} ({exc}); nothing written"
        ) from None
    if written != expected:  # pragma: no cover
        raise ConfigFileError(f"km's rewrite of {location.path} did not round-trip; nothing written")


def _wrap_edits(
    text: str, member: Member, wrapped: dict[str, Any], style: Style
) -> list[tuple[int, int, str]]:
    """The edits that turn one entry into ``wrapped``.

    A stdio entry keeps its text but for the values of ``command`` and ``args`` (``args`` is added
    after ``command`` when missing), so its env, comments and layout stay as they were; ``args`` is
    written on one line when it was on one line. A remote entry changes shape and is rewritten whole.
    """
    node = member.node
    command = node.member("command")
    if command is None or is_remote(node.value) or not isinstance(command.node.value, str):
        one_line = "\n" not in text[node.start : node.end]
        new = dumps_at(
            wrapped, replace(style, indent=None) if one_line else style, line_indent(text, member.key_start)
        )
        return [(node.start, node.end, new)]
    edits = [(command.node.start, command.node.end, json.dumps(wrapped["command"], ensure_ascii=False))]
    args = node.member("args")
    if args is not None:
        one_line = "\n" not in text[args.node.start : args.node.end]
        new = dumps_at(
            wrapped["args"],
            replace(style, indent=None) if one_line else style,
            line_indent(text, args.key_start),
        )
        edits.append((args.node.start, args.node.end, new))
    elif "\n" in text[node.start : command.key_start]:
        indent = line_indent(text, command.key_start)
        new = dumps_at(wrapped["args"], style, indent)
        edits.append(
            (command.node.end, command.node.end, f',{style.newline}{indent}"args"{style.key_separator}{new}')
        )
    else:
        new = dumps_at(wrapped["args"], replace(style, indent=None), "")
        edits.append(
            (command.node.end, command.node.end, f'{style.item_separator}"args"{style.key_separator}{new}')
        )
    return edits + _env_edits(text, node, wrapped.get("env", {}), style)


def _append(text: str, obj: Node, values: dict[str, Any], style: Style) -> tuple[int, int, str]:
    """The edit that adds ``values`` as members after the last member of the object ``obj``."""
    last = obj.members[-1]
    fmt = style if "\n" in text[obj.start : obj.end] else replace(style, indent=None)
    indent = line_indent(text, last.key_start) if fmt.indent is not None else ""
    lead = f",{style.newline}{indent}" if fmt.indent is not None else fmt.item_separator
    add = "".join(
        f"{lead}{json.dumps(k, ensure_ascii=False)}{fmt.key_separator}{dumps_at(v, fmt, indent)}"
        for k, v in values.items()
    )
    return (last.node.end, last.node.end, add)


def _env_edits(text: str, node: Node, env: Any, style: Style) -> list[tuple[int, int, str]]:
    """The edits that give the entry ``node`` the ``env`` values it lacks or has otherwise; the
    rest of its env (other variables, their layout and comments) keeps its text."""
    current = node.member("env")
    have = current.node.value if current is not None else None
    changes = {k: v for k, v in env.items() if not isinstance(have, dict) or have.get(k) != v}
    if not changes:
        return []
    if current is None:
        return [_append(text, node, {"env": changes}, style)]
    target = current.node
    if not target.members:
        one_line = "\n" not in text[node.start : node.end]
        new = dumps_at(
            changes, replace(style, indent=None) if one_line else style, line_indent(text, current.key_start)
        )
        return [(target.start, target.end, new)]
    edits = []
    added = {}
    for key, value in changes.items():
        member = target.member(key)
        if member is None:
            added[key] = value
        else:
            edits.append((member.node.start, member.node.end, json.dumps(value, ensure_ascii=False)))
    if added:
        edits.append(_append(text, target, added, style))
    return edits


def plan_wrap(
    location: ConfigLocation,
    km: str,
    text: str | None = None,
    target: Target | None = None,
    saved: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """Wrap every entry of the file. With ``target``, each wrapped entry's env also gets the
    settings that make it record into the target's store (entries already wrapped too); ``saved``
    (the file's state records) lets an entry km wrapped before keep its record up to date."""
    text = read_text(location.path) if text is None else text
    doc = parse_config(location, text)
    style = detect_style(text)
    plan = Plan(location, text, text)
    expected = copy.deepcopy(doc.value)
    edits: list[tuple[int, int, str]] = []
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    shared = location.scope == "project"
    for path, member in server_entries(location, doc):
        entry = member.node.value
        if is_wrapped(entry):
            try:
                changes = target.env_changes(entry, shared) if target is not None else {}
            except EntryError as exc:
                plan.results.append(EntryResult(member.key, path, "skipped", str(exc)))
                continue
            if not changes:
                plan.results.append(EntryResult(member.key, path, "already"))
                continue
            updated = with_env(entry, changes)
            edits.extend(_env_edits(text, member.node, updated["env"], style))
            _set(expected, path, updated)
            record = (saved or {}).get(state.pointer(path))
            if record is not None and record.get("wrapped") == entry:
                plan.add[state.pointer(path)] = {**record, "wrapped": updated}
            plan.results.append(
                EntryResult(member.key, path, "updated", f"its env now sets {', '.join(changes)}")
            )
            continue
        try:
            changes = target.env_changes(entry, shared) if target is not None else {}
            wrapped = with_env(wrap_entry(member.key, entry, km), changes)
        except EntryError as exc:
            plan.results.append(EntryResult(member.key, path, "skipped", str(exc)))
            continue
        node = member.node
        edits.extend(_wrap_edits(text, member, wrapped, style))
        _set(expected, path, wrapped)
        plan.add[state.pointer(path)] = {
            "name": member.key,
            "path": list(path),
            "original_text": text[node.start : node.end],
            "original": entry,
            "wrapped": wrapped,
            "wrapped_at": stamp,
        }
        remote = "remote server, bridged with --url" if is_remote(entry) else ""
        plan.results.append(EntryResult(member.key, path, "wrapped", remote))
    if edits:
        plan.new_text = splice(text, edits)
        _check(location, plan.new_text, expected)
    return plan


def plan_unwrap(location: ConfigLocation, saved: dict[str, dict[str, Any]], text: str | None = None) -> Plan:
    text = read_text(location.path) if text is None else text
    doc = parse_config(location, text)
    style = detect_style(text)
    plan = Plan(location, text, text)
    expected = copy.deepcopy(doc.value)
    edits: list[tuple[int, int, str]] = []
    wrapped_here: set[str] = set()
    for path, member in server_entries(location, doc):
        entry = member.node.value
        if not is_wrapped(entry):
            continue
        key = state.pointer(path)
        wrapped_here.add(key)
        record = saved.get(key)
        node = member.node
        if (
            record is not None
            and record.get("wrapped") == entry
            and isinstance(record.get("original_text"), str)
        ):
            new_text = record["original_text"]
            restored = record.get("original")
            action, detail = "restored", ""
        else:
            original = record.get("original") if record is not None else None
            original = original if isinstance(original, dict) else None
            try:
                restored = restore_env(unwrap_entry(entry, location.format, original), original)
            except EntryError as exc:
                plan.results.append(EntryResult(member.key, path, "skipped", str(exc)))
                continue
            new_text = dumps_at(restored, style, line_indent(text, member.key_start))
            if record is not None:
                action, detail = "merged", "it was changed after km wrapped it: your changes are kept"
            else:
                action, detail = "rebuilt", "no saved original: rebuilt from its km monitor command"
        edits.append((node.start, node.end, new_text))
        _set(expected, path, restored)
        plan.remove.add(key)
        plan.results.append(EntryResult(member.key, path, action, detail))
    # records of entries that are gone or no longer wrapped are of no use any more
    plan.remove.update(key for key in saved if key not in wrapped_here)
    if edits:
        plan.new_text = splice(text, edits)
        _check(location, plan.new_text, expected)
    return plan


def backup_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.km-backup-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.km-backup-{stamp}-{counter}")
        counter += 1
    return candidate


def write_config(path: Path, text: str) -> Path:
    """Back the file up, then replace its contents with ``text``. Returns the backup's path.

    A symlinked config is written through to its target. The file keeps its mode (and owner and
    group where permitted); the new contents appear atomically (rename in the same directory).
    """
    real = path.resolve()
    data = text.encode("utf-8")
    try:
        info = real.stat()
        backup = backup_path(real)
        shutil.copy2(real, backup)
    except OSError as exc:
        raise ConfigFileError(f"cannot back up {path}: {exc}; it was left as it was") from None
    mode = stat.S_IMODE(info.st_mode)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.km-", dir=real.parent)
    except OSError:
        try:  # a directory we may not create files in: write the file in place
            with open(real, "r+b") as file:
                file.write(data)
                file.truncate()
        except OSError as exc:
            raise ConfigFileError(f"cannot write {path}: {exc}") from None
        return backup
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, mode)
        if hasattr(os, "chown"):
            with contextlib.suppress(OSError):
                os.chown(tmp, info.st_uid, info.st_gid)
        os.replace(tmp, real)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigFileError(f"cannot write {path}: {exc}; it was left as it was") from None
    return backup


def apply(plan: Plan, client: str) -> Path | None:
    """Save the plan's state records and write the file; returns the backup (None: nothing to do)."""
    if not plan.changed:
        if plan.remove:
            state.update(plan.location.path, client, {}, plan.remove)
        return None
    if plan.add:  # the originals are saved before the file changes: never a wrapped entry without one
        state.update(plan.location.path, client, plan.add, set())
    backup = write_config(plan.location.path, plan.new_text)
    if plan.remove:
        state.update(plan.location.path, client, {}, plan.remove)
    return backup
