"""Reading one file inside an agent folder, safely: the only way colonies and queens open one.

A file in an agent folder is data an attacker may have shaped, and what we read
from it is recorded in the log for good. So before a byte is parsed:

- the folder must be a resolved path inside an allowed root (callers validate it
  with `validate_agent_path`); here it is opened once and the open folder checked
  to be that path, and files are opened (and written) relative to it, so a part
  of the path swapped for a link after the check reaches nothing outside;
- the file itself must not be a symbolic link, wherever it points (opened with
  O_NOFOLLOW, so no resolve-then-open race): hive writes these files itself, so a
  link is a mistake or an attack, and following one leaked an outside file's
  content into the log;
- it must be a regular file (no FIFO that blocks the reader, no device; opened
  with O_NONBLOCK, then checked with fstat on the open descriptor);
- its size is limited before reading, and the read itself stops at the limit;
- JSON nesting is measured on the raw bytes before parsing (no RecursionError,
  and nothing deeper than the log's encoder can write back).

Every refusal is an `AgentFileError` (a domain `Invalid`, so HTTP answers 400)
whose message names the file; nothing has been appended when it is raised.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from projections.errors import Invalid

KIB: Final = 1024
MAX_AGENT_FILE_BYTES: Final = 256 * KIB  # metadata.json, worker files, profile.yaml
MAX_TRIGGERS_FILE_BYTES: Final = 256 * KIB  # triggers.json
MAX_JSON_DEPTH: Final = 32  # far below orjson's 1024 (parse) and 254 (encode) limits
NAME_MAX: Final = 255  # bytes in one path component (Linux, macOS)
PATH_MAX: Final = 4095  # bytes in a whole path

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = b"[{"


class AgentFileError(Invalid):
    """A file inside an agent folder that is refused (symlink, special, too big, too deep)."""


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in raw JSON bytes, strings ignored. Linear,
    no recursion: run before parsing so a hostile file cannot exhaust the parser."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    depth = deepest = 0
    for byte in brackets:
        if byte in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def value_depth(value: object) -> int:
    """The nesting depth of a parsed JSON value, iteratively (no recursion)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def path_too_long(path: Path) -> str | None:
    """Why the OS would answer ENAMETOOLONG for `path`, or None."""
    if len(os.fsencode(path)) > PATH_MAX:
        return f"longer than {PATH_MAX} bytes"
    if any(len(os.fsencode(part)) > NAME_MAX for part in path.parts):
        return f"has a path component longer than {NAME_MAX} bytes"
    return None


def inside(path: Path, roots: Iterable[Path]) -> bool:
    """`path` (resolved) lies strictly inside one of the roots (resolved here)."""
    for root in roots:
        real = root.resolve()
        if path != real and path.is_relative_to(real):
            return True
    return False


def shown(path: Path) -> str:
    """`path` for a message: a name that is not UTF-8 is shown with escapes (a JSON
    body cannot carry the surrogates Python decodes such bytes to)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _fd_path(fd: int) -> str | None:
    """The kernel's path of an open folder (Linux), or None where /proc is missing."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _is_folder_at(fd: int, folder: Path) -> bool:
    """The open folder `fd` is the one at `folder` (resolved, no link in any part)."""
    actual = _fd_path(fd)
    if actual is not None:
        return actual == str(folder)
    try:  # no /proc: the path resolves to itself and leads to the same folder
        same = os.path.samestat(os.stat(folder, follow_symlinks=False), os.fstat(fd))
        return same and folder.resolve() == folder
    except (OSError, RuntimeError):
        return False


@contextlib.contextmanager
def open_folder(folder: Path) -> Iterator[int]:
    """A descriptor on `folder`, checked after opening to be the folder at that resolved
    path. Files are then opened and written relative to it, so a part of the path
    swapped for a link between a caller's check and the use reaches nothing outside
    (checking the path, then opening by path, wrote into the link's target)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(folder, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise AgentFileError(f"{shown(folder)}: cannot be opened ({exc.strerror})") from None
    try:
        if not _is_folder_at(fd, folder):
            raise AgentFileError(f"{shown(folder)}: is not a resolved path (symlink?)")
        yield fd
    finally:
        os.close(fd)


def lock_folder(folder_fd: int) -> None:
    """An exclusive flock on the open folder, held until its descriptor is closed. The
    service's read-merge-writes of metadata.json hold it, so two of them (two requests,
    or two processes on this host) never lose each other's change: a PATCH of the icon
    beside an open by colony_id dropped one of the two (2 in 40 tries)."""
    fcntl.flock(folder_fd, fcntl.LOCK_EX)


def read_at(folder_fd: int, path: Path, limit: int = MAX_AGENT_FILE_BYTES) -> bytes | None:
    """The bytes of `path` (its name opened in the open folder `folder_fd`), or None
    when it does not exist. Refuses a symlink, a special file, or more than `limit`."""
    if (why := path_too_long(path)) is not None:
        raise AgentFileError(f"{shown(path)}: file name {why}")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path.name, flags, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AgentFileError(
                f"{shown(path)}: is a symbolic link; links are refused inside agent folders"
            ) from None
        raise AgentFileError(f"{shown(path)}: cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AgentFileError(f"{shown(path)}: is not a regular file")
        if info.st_size > limit:
            raise AgentFileError(f"{shown(path)}: is {info.st_size} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(65_536, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise AgentFileError(f"{shown(path)}: is over the limit of {limit} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise AgentFileError(f"{shown(path)}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)


def read_agent_bytes(path: Path, limit: int = MAX_AGENT_FILE_BYTES) -> bytes | None:
    """The bytes of `path`, or None when it (or its folder) does not exist. Refuses
    (AgentFileError) a symlink, a special file, an unresolved folder, or more than
    `limit` bytes."""
    try:
        with open_folder(path.parent) as folder_fd:
            return read_at(folder_fd, path, limit)
    except FileNotFoundError:
        return None


def json_file_bytes(value: object) -> bytes:
    """A JSON file as the service writes it into agent folders (indented, UTF-8)."""
    return json.dumps(value, indent=2, ensure_ascii=False).encode("utf-8")


def write_at(folder_fd: int, path: Path, data: bytes) -> None:
    """`data` as `path`'s content, atomically (a temp file in the same open folder, then
    rename). An existing link or special file of that name is refused, not replaced."""
    try:
        info = os.stat(path.name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(info.st_mode):
            raise AgentFileError(f"{shown(path)}: is not a regular file; not replaced")
    tmp = f".{path.stem}-{secrets.token_hex(8)}.json"  # hidden: never listed as a worker
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o644, dir_fd=folder_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder_fd)
        raise
    os.fsync(folder_fd)


def parse_agent_json(path: Path, data: bytes | None, default: Any) -> Any:
    """The parsed JSON of `data` read from `path`; `default` when missing or not JSON
    (hive's leniency); nesting deeper than MAX_JSON_DEPTH is refused.

    orjson stops by itself at 1024 levels (JSONDecodeError, never RecursionError), so
    parsing first is safe; the raw-byte scan runs only when parsing failed, to tell a
    too-deep file (refused) from a malformed one (absent). That keeps the common case
    at orjson's speed (the scan costs several times the parse)."""
    if data is None:
        return default
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value, depth = default, json_depth(data)
    else:
        depth = value_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise AgentFileError(f"{shown(path)}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def read_agent_json(path: Path, default: Any, limit: int = MAX_AGENT_FILE_BYTES) -> Any:
    """The parsed JSON of `path` (`parse_agent_json`); refuses what `read_agent_bytes`
    refuses."""
    return parse_agent_json(path, read_agent_bytes(path, limit), default)
