"""Reading the files a user names (run file, prompts, thresholds, API key) without ever a traceback.

Each may be missing, a directory, a FIFO, unreadable, huge or not UTF-8; each case is `BadInput`
naming the option that pointed at it. A leading UTF-8 byte-order mark is dropped."""

import json
import os
import stat
from pathlib import Path

from classroom_probe.errors import BadInput

KIB = 1 << 10
MIB = 1 << 20


def read_bytes(path: Path, option: str, max_bytes: int) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO must not hang waiting for a writer (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise BadInput(option, f"{path} does not exist") from exc
    except PermissionError as exc:
        raise BadInput(option, f"{path} is not readable (permission denied)") from exc
    except OSError as exc:
        raise BadInput(option, f"cannot open {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise BadInput(option, f"{path} is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise BadInput(option, f"{path} is not a regular file")
        if st.st_size > max_bytes:
            raise BadInput(option, f"{path} is {st.st_size:,} bytes; the limit is {max_bytes:,}")
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, min(MIB, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise BadInput(option, f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if size > max_bytes:
        raise BadInput(option, f"{path} is larger than {max_bytes:,} bytes")
    return b"".join(chunks)


def read_text(path: Path, option: str, max_bytes: int) -> str:
    data = read_bytes(path, option, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(option, f"{path} is not UTF-8 text (byte {exc.start}, line {line})") from exc


def read_json(path: Path, option: str, max_bytes: int) -> object:
    text = read_text(path, option, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(option, f"{path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise BadInput(option, f"{path} nests too deeply") from exc
