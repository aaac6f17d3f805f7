"""The archive folder: MANIFEST.json, the configs tarball, blob copies; writing, verifying, restoring.

<root>/<stamp>/ holds
  MANIFEST.json          schema-versioned record: instances, environments, models, HAProxy, and every
                         archived file with sha256, size, mode, owner and mtime (secret-looking values redacted)
  MANIFEST.json.sha256   its checksum, written last: an archive without it is incomplete and never chosen
  configs.tar.gz         the archived files themselves (units, drop-ins, environment files, HAProxy config,
                         keys, model manifests, results), with their metadata
  blobs/                 blob copies, only when blobs are copied or moved
  probe/<stamp>/         the "before" measurement, OLLAMA_TEST_REPORT.md
"""

from __future__ import annotations

import grp
import hashlib
import io
import json
import os
import pwd
import shutil
import stat
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# The store module reads Ollama's files; the archive hashes its copies the same way.
from ansible.module_utils.ollama_archive_store import sha256_file

SCHEMA = "classroom-cluster/ollama-archive"
SCHEMA_VERSION = 1
MANIFEST = "MANIFEST.json"
SIDECAR = "MANIFEST.json.sha256"
TARBALL = "configs.tar.gz"
REPORT = "OLLAMA_TEST_REPORT.md"
BLOBS = "blobs"
# The store's files come back first, so a starting server never sees blobs without their manifests.
RESTORE_ORDER = ("manifest", "key", "environment", "unit", "drop-in", "result", "haproxy")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass(frozen=True)
class FileEntry:
    """One archived file: where it lives, its tarball member and the metadata a restore puts back."""

    path: str
    member: str
    kind: str
    sha256: str
    size: int
    mode: str
    owner: str
    group: str
    uid: int
    gid: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str, kind: str) -> FileEntry:
        st = os.stat(path)
        return cls(
            path=path,
            member=path.lstrip("/"),
            kind=kind,
            sha256=sha256_file(path),
            size=st.st_size,
            mode=f"{stat.S_IMODE(st.st_mode):04o}",
            owner=_user(st.st_uid),
            group=_group(st.st_gid),
            uid=st.st_uid,
            gid=st.st_gid,
            mtime_ns=st.st_mtime_ns,
        )

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> FileEntry:
        return cls(**{k: obj[k] for k in cls.__dataclass_fields__})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def differs_on_disk(self) -> str:
        """'' when the file on disk is this entry (content, mode, owner, mtime); else what differs."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "missing"
        if st.st_size != self.size or sha256_file(self.path) != self.sha256:
            return "content"
        if f"{stat.S_IMODE(st.st_mode):04o}" != self.mode or (st.st_uid, st.st_gid) != (self.uid, self.gid):
            return "mode or owner"
        if st.st_mtime_ns != self.mtime_ns:
            return "mtime"
        return ""


@dataclass(frozen=True)
class PayloadEntry:
    """A file of the archive folder itself (tarball, blob copies, reports) and its checksum."""

    path: str  # relative to the archive folder
    sha256: str
    size: int

    @classmethod
    def of(cls, folder: Path, rel: str) -> PayloadEntry:
        full = folder / rel
        return cls(rel, sha256_file(full), full.stat().st_size)


@dataclass
class Verification:
    archive: str
    problems: list[str] = field(default_factory=list)
    checked_files: int = 0
    checked_bytes: int = 0


# --- Writing ---------------------------------------------------------------------------------------


def write_tarball(dest: Path, entries: list[FileEntry]) -> None:
    """The files with their recorded metadata; a file that changed since it was hashed is refused."""
    with tarfile.open(dest, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.member):
            data = Path(entry.path).read_bytes()
            if sha256_bytes(data) != entry.sha256:
                raise ValueError(f"{entry.path} changed while the archive was written; run the stage again")
            info = tarfile.TarInfo(entry.member)
            info.size = len(data)
            info.mode = int(entry.mode, 8)
            info.uid, info.gid = entry.uid, entry.gid
            info.uname, info.gname = entry.owner, entry.group
            info.mtime = entry.mtime_ns / 1e9
            info.pax_headers = {"mtime": f"{entry.mtime_ns // 1_000_000_000}.{entry.mtime_ns % 1_000_000_000:09d}"}
            tar.addfile(info, io.BytesIO(data))


def copy_blob(src: str, dest_dir: Path, move: bool) -> None:
    """A blob into the archive with its metadata; moved only after the copy's sha256 matches its name."""
    name = os.path.basename(src)
    dest = dest_dir / name
    if move:
        try:
            os.rename(src, dest)
            return
        except OSError:
            pass  # another file system: copy, check, then remove the original
    st = os.stat(src)
    shutil.copy2(src, dest)
    os.chown(dest, st.st_uid, st.st_gid)
    if f"sha256-{sha256_file(dest)}" != name:
        dest.unlink()
        raise ValueError(f"{src}: its content does not match its name; blob not archived")
    if move:
        os.unlink(src)


def write_json_atomic(path: Path, obj: object) -> bytes:
    data = (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()
    write_atomic(path, data)
    return data


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def seal(folder: Path, manifest: dict[str, Any]) -> None:
    """MANIFEST.json, then its checksum file: from that moment the archive is complete."""
    data = write_json_atomic(folder / MANIFEST, manifest)
    write_atomic(folder / SIDECAR, f"{sha256_bytes(data)}  {MANIFEST}\n".encode())


# --- Reading and verifying -------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveRef:
    path: str
    name: str
    complete: bool


def list_archives(root: str) -> list[ArchiveRef]:
    """Archive folders under root, oldest first (names are UTC stamps, so they sort by time)."""
    base = Path(root)
    if not base.is_dir():
        return []
    refs = []
    for entry in sorted(base.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            complete = (entry / MANIFEST).is_file() and (entry / SIDECAR).is_file()
            refs.append(ArchiveRef(str(entry), entry.name, complete))
    return refs


def choose(root: str, name: str) -> tuple[ArchiveRef | None, str]:
    """The named archive, or the newest complete one; None and the reason when there is none."""
    refs = list_archives(root)
    if name:
        found = next((r for r in refs if name in (r.name, r.path)), None)
        if found is None:
            listing = ", ".join(r.name for r in refs if r.complete) or "none"
            return None, f"there is no archive named {name} in {root} (complete archives: {listing})"
        if not found.complete:
            return None, f"archive {found.path} is incomplete (no {MANIFEST} or {SIDECAR}): it was never finished"
        return found, ""
    complete = [r for r in refs if r.complete]
    if not complete:
        return None, f"there is no complete Ollama archive in {root}"
    return complete[-1], ""


def load_manifest(folder: str) -> tuple[dict[str, Any] | None, list[str]]:
    base = Path(folder)
    try:
        data = (base / MANIFEST).read_bytes()
        recorded = (base / SIDECAR).read_text().split()[0]
    except (OSError, IndexError) as exc:
        return None, [f"{base / MANIFEST}: cannot be read ({exc})"]
    if sha256_bytes(data) != recorded:
        return None, [f"{base / MANIFEST}: sha256 is {sha256_bytes(data)}, {SIDECAR} records {recorded}"]
    try:
        obj = json.loads(data)
    except ValueError as exc:
        return None, [f"{base / MANIFEST}: not JSON ({exc})"]
    if not isinstance(obj, dict) or obj.get("schema") != SCHEMA:
        return None, [f"{base / MANIFEST}: not an Ollama archive manifest of this project"]
    if obj.get("schema_version") != SCHEMA_VERSION:
        return None, [f"{base / MANIFEST}: schema_version {obj.get('schema_version')}, this role reads "
                      f"{SCHEMA_VERSION}"]
    return obj, []


def tar_members(folder: Path) -> dict[str, bytes]:
    with tarfile.open(folder / TARBALL, "r:gz") as tar:
        out = {}
        for member in tar.getmembers():
            if member.isfile():
                fh = tar.extractfile(member)
                if fh is not None:
                    out[member.name] = fh.read()
        return out


def verify(folder: str, manifest: dict[str, Any], blob_check: str) -> Verification:
    """Every checksum the manifest records: payload files, each archived file inside the tarball,
    blob copies (their names are their sha256), and in place blobs by size or sha256."""
    result = Verification(archive=folder)
    _verify_payload(Path(folder), manifest, result)
    _verify_members(Path(folder), manifest, result)
    # Blob copies (copy or move) are payload entries, checked above; blobs kept in place are checked here.
    if manifest.get("blob_mode") == "in_place":
        for store in manifest.get("stores", []):
            _verify_blobs_in_place(store, blob_check, result)
    return result


def _verify_payload(base: Path, manifest: dict[str, Any], result: Verification) -> None:
    for raw in manifest.get("payload", []):
        entry = PayloadEntry(**raw)
        full = base / entry.path
        if not full.is_file():
            result.problems.append(f"{full}: missing")
            continue
        actual = sha256_file(full)
        result.checked_files += 1
        result.checked_bytes += entry.size
        if actual != entry.sha256:
            result.problems.append(f"{full}: sha256 is {actual}, {MANIFEST} records {entry.sha256}")


def _verify_members(base: Path, manifest: dict[str, Any], result: Verification) -> None:
    try:
        members = tar_members(base)
    except (OSError, tarfile.TarError, EOFError) as exc:
        result.problems.append(f"{base / TARBALL}: cannot be read ({exc})")
        return
    for raw in manifest.get("files", []):
        entry = FileEntry.from_json(raw)
        if entry.member not in members:
            result.problems.append(f"{base / TARBALL}: member {entry.member} ({entry.path}) is missing")
            continue
        actual = sha256_bytes(members[entry.member])
        result.checked_files += 1
        if actual != entry.sha256:
            result.problems.append(f"{base / TARBALL}: member {entry.member} ({entry.path}) has sha256 {actual}, "
                                   f"{MANIFEST} records {entry.sha256}")


def _verify_blobs_in_place(store: dict[str, Any], blob_check: str, result: Verification) -> None:
    referenced = set(store.get("referenced", []))
    for blob in store.get("blobs", []):
        if blob["name"] not in referenced:
            continue
        path = Path(store["path"]) / "blobs" / blob["name"]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            result.problems.append(f"{path}: missing (kept in place at archive time)")
            continue
        if size != blob["size"]:
            result.problems.append(f"{path}: {size} bytes, {MANIFEST} records {blob['size']}")
        elif blob_check == "sha256" and f"sha256-{sha256_file(path)}" != blob["name"]:
            result.problems.append(f"{path}: content sha256 does not match its name")
        result.checked_files += 1
        result.checked_bytes += size


# --- Restoring -------------------------------------------------------------------------------------


def restore_files(folder: str, manifest: dict[str, Any], kinds: tuple[str, ...], check_mode: bool,
                  skip_kinds: tuple[str, ...] = ("haproxy",)) -> list[dict[str, str]]:
    """Put back every archived file of the given kinds that is missing or differs, in RESTORE_ORDER,
    with its recorded content, mode, owner and mtime. Returns what was (or would be) restored."""
    entries = [FileEntry.from_json(raw) for raw in manifest.get("files", [])]
    wanted = [e for kind in RESTORE_ORDER if kind in kinds and kind not in skip_kinds
              for e in entries if e.kind == kind]
    todo = [(e, why) for e in wanted if (why := e.differs_on_disk())]
    if not todo or check_mode:
        return [{"path": e.path, "why": why} for e, why in todo]
    members = tar_members(Path(folder))
    done = []
    for entry, why in todo:
        data = members[entry.member]
        if sha256_bytes(data) != entry.sha256:
            raise ValueError(f"{entry.member} in {folder}/{TARBALL} no longer matches {MANIFEST}")
        put_file(entry, data)
        done.append({"path": entry.path, "why": why})
    return done


def put_file(entry: FileEntry, data: bytes) -> None:
    target = Path(entry.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chown(tmp, entry.uid, entry.gid)
        os.chmod(tmp, int(entry.mode, 8))
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def restore_blobs(folder: str, manifest: dict[str, Any], check_mode: bool) -> list[dict[str, str]]:
    """Copied or moved blobs back into their stores (after the manifests), metadata included."""
    if manifest.get("blob_mode") == "in_place":
        return []
    done = []
    for store in manifest.get("stores", []):
        for blob in store.get("archived_blobs", []):
            src = Path(folder) / BLOBS / blob["name"]
            dest = Path(store["path"]) / "blobs" / blob["name"]
            if dest.is_file() and dest.stat().st_size == blob["size"]:
                continue
            done.append({"path": str(dest), "why": "missing"})
            if check_mode:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.restore")
            shutil.copy2(src, tmp)
            os.chown(tmp, blob["uid"], blob["gid"])
            os.utime(tmp, ns=(blob["mtime_ns"], blob["mtime_ns"]))
            os.replace(tmp, dest)
    return done


def extract_member(folder: str, manifest: dict[str, Any], kind: str, dest: str) -> str:
    """The archived file of one kind (the HAProxy config) written to dest for a validated install."""
    entry = next((FileEntry.from_json(raw) for raw in manifest.get("files", []) if raw["kind"] == kind), None)
    if entry is None:
        return ""
    data = tar_members(Path(folder))[entry.member]
    if sha256_bytes(data) != entry.sha256:
        raise ValueError(f"{entry.member} in {folder}/{TARBALL} no longer matches {MANIFEST}")
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(Path(dest), data, 0o600)
    return entry.path
