"""Build images on a machine that reaches no container registry.

A base image with python3 is `python:3.11-slim` when the engine has it or can pull it, otherwise
one made here: `debootstrap --variant=minbase --include=python3` from the Debian mirror apt
already uses, tarred into a cache directory and `docker import`ed. It holds Python and nothing
an application needs: images built on it bring their own packages. The rootfs tarball stays in
the cache, so a lost image is re-imported in seconds instead of re-running debootstrap; a lock
file keeps two concurrent builds from running debootstrap twice.

Images on top of it are built with the docker SDK from a Dockerfile; a failed build becomes one
line that names the failing step and ends with its output.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hitless.errors import BadInput, OperationFailed, RuntimeUnavailable

OFFICIAL_BASE = "python:3.11-slim"
SUITE = "bookworm"
# The tag is the cache key: change it (and the tarball's name with it) whenever BASE_PACKAGES
# changes, so that an image or tarball made from the old list is never reused.
LOCAL_BASE = "hitless/python3-base:bookworm-3"
BASE_PACKAGES = ("python3",)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE_DIR = Path(os.environ.get("HITLESS_CACHE_DIR", "/var/cache/hitless"))
PULL_FIRST_ANSWER_TIMEOUT = 5.0  # seconds to wait for the registry's first answer
PULL_TIMEOUT = 900.0  # a pull that has started may download for this long
DEBOOTSTRAP_TIMEOUT = 1800.0

# What `docker import` writes into the image config; the official image sets the same.
IMPORT_CHANGES = (
    'ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)

Progress = Callable[[str], None]

# Builder chatter that says nothing about why a step failed.
_BUILD_NOISE = ("--->", "Removing intermediate container")


def quiet(_: str) -> None:
    """A progress callback that says nothing."""


def tail(text: str, lines: int = 5) -> str:
    """The last non-empty lines of some output, joined on one line."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def engine_client(timeout: int = 300) -> Any:
    """A docker SDK client of the engine the environment names (DOCKER_HOST), checked to answer."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailable(f"the Docker engine does not answer: {exc}") from exc
    return client


def run_bounded(argv: Sequence[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """Run a command to its end, output captured; OperationFailed when it outlives `timeout`."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise OperationFailed(f"{what} did not finish within {timeout:.0f} s") from exc


def _has_image(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailable(f"the Docker engine does not answer: {exc}") from exc


def _try_pull(client: Any, name: str, first_answer_timeout: float, timeout: float) -> bool:
    """Pull `name`; False as soon as the registry fails or stays silent for `first_answer_timeout`.

    The pull runs in a thread because the SDK cannot time out a pull separately from its other
    calls; a registry that is unreachable answers with an error in milliseconds, one that hangs
    is abandoned after the first-answer timeout (the engine may finish the pull on its own).
    """
    repository, _, tag = name.partition(":")
    first_answer = threading.Event()
    outcome: dict[str, Any] = {}

    def pull() -> None:
        try:
            for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
                first_answer.set()
                if "error" in event:
                    outcome["error"] = event["error"]
                    return
            outcome["ok"] = True
        except Exception as exc:  # any failure means: no pull here
            outcome["error"] = str(exc)
        finally:
            first_answer.set()

    worker = threading.Thread(target=pull, name=f"pull {name}", daemon=True)
    worker.start()
    if not first_answer.wait(first_answer_timeout):
        return False
    worker.join(timeout)
    return bool(outcome.get("ok")) and _has_image(client, name)


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with for the bookworm suite (deb822 or one-line)."""
    candidates: list[Path] = []
    if (apt_dir / "sources.list").is_file():
        candidates.append(apt_dir / "sources.list")
    candidates += sorted((apt_dir / "sources.list.d").glob("*.sources"))
    candidates += sorted((apt_dir / "sources.list.d").glob("*.list"))
    for path in candidates:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri, suites in _apt_entries(text, deb822=path.suffix == ".sources"):
            if SUITE in suites and "security" not in uri and "/debian" in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _apt_entries(text: str, deb822: bool) -> Iterator[tuple[str, list[str]]]:
    """(uri, suites) pairs of the binary-package entries in one apt sources file."""
    if not deb822:
        for line in text.splitlines():
            words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]
        return
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held across processes (flock), released on exit or crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _debootstrap_rootfs_tarball(tarball: Path, mirror: str, progress: Progress) -> None:
    """Run debootstrap into a scratch dir next to `tarball` and leave a complete tarball behind."""
    if shutil.which("debootstrap") is None:
        raise OperationFailed(
            f"no python3 base image: {OFFICIAL_BASE} cannot be pulled and debootstrap is not installed"
        )
    scratch = Path(tempfile.mkdtemp(prefix="rootfs-", dir=tarball.parent))
    try:
        rootfs = scratch / "rootfs"
        include = f"--include={','.join(BASE_PACKAGES)}"
        argv = ["debootstrap", "--variant=minbase", include, SUITE, str(rootfs), mirror]
        progress(f"running {' '.join(argv)}")
        done = run_bounded(argv, DEBOOTSTRAP_TIMEOUT, "debootstrap")
        if done.returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace") if log.is_file() else done.stdout + done.stderr
            raise OperationFailed(f"debootstrap failed (exit {done.returncode}): {tail(detail)}")
        # Package downloads and indexes are dead weight in an image.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".tar.partial")
        progress(f"writing {tarball}")
        done = subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise OperationFailed(f"tar of the debootstrap rootfs failed: {tail(done.stderr)}")
        partial.rename(tarball)  # atomic: a tarball in the cache is always complete
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _import_tarball(client: Any, tarball: Path, name: str) -> None:
    import docker.errors

    repository, _, tag = name.partition(":")
    try:
        client.api.import_image(src=str(tarball), repository=repository, tag=tag, changes=list(IMPORT_CHANGES))
    except docker.errors.DockerException as exc:
        raise OperationFailed(f"docker import of {tarball} failed: {exc}") from exc
    if not _has_image(client, name):
        raise OperationFailed(f"docker import of {tarball} did not produce {name}")


def ensure_base_image(
    client: Any,
    cache_dir: Path | None = None,
    progress: Progress = quiet,
    try_official: bool = True,
) -> str:
    """The name of a local image with python3: the official slim image, or one made by debootstrap.

    Fast when done before: an existing image is returned at once, and a cached rootfs tarball is
    re-imported without running debootstrap again.
    """
    if try_official and _has_image(client, OFFICIAL_BASE):
        return OFFICIAL_BASE
    if _has_image(client, LOCAL_BASE):
        return LOCAL_BASE
    if try_official:
        progress(f"trying to pull {OFFICIAL_BASE}")
        if _try_pull(client, OFFICIAL_BASE, PULL_FIRST_ANSWER_TIMEOUT, PULL_TIMEOUT):
            return OFFICIAL_BASE
        progress(f"{OFFICIAL_BASE} cannot be pulled; making {LOCAL_BASE} with debootstrap")
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    key = LOCAL_BASE.rpartition(":")[2]
    tarball = cache / f"python3-base-{key}.tar"
    with file_lock(cache / f"python3-base-{key}.lock"):
        if _has_image(client, LOCAL_BASE):  # another process built it while we waited
            return LOCAL_BASE
        if not tarball.is_file():
            _debootstrap_rootfs_tarball(tarball, debian_mirror(), progress)
        progress(f"importing {tarball} as {LOCAL_BASE}")
        _import_tarball(client, tarball, LOCAL_BASE)
    return LOCAL_BASE


def build_image(
    client: Any,
    context_dir: str | os.PathLike[str],
    tag: str,
    buildargs: dict[str, str] | None = None,
    progress: Progress = quiet,
) -> str:
    """Build the Dockerfile in `context_dir` as `tag`; returns the image id.

    Never pulls (the base must be local). A failure raises OperationFailed naming the failing
    step and the tail of its output.
    """
    import docker.errors

    context = Path(context_dir)
    if not (context / "Dockerfile").is_file():
        raise BadInput(f"no Dockerfile in {context}")
    output: list[str] = []
    step = ""
    image_id = ""
    try:
        events = client.api.build(
            path=str(context), tag=tag, buildargs=buildargs or {}, rm=True, forcerm=True,
            pull=False, decode=True,
        )
        for event in events:
            if "stream" in event:
                text = event["stream"]
                for line in text.splitlines():
                    if line.startswith("Step "):
                        step, output = line.strip(), []
                        progress(step)
                    elif line.strip() and not line.lstrip().startswith(_BUILD_NOISE):
                        output.append(line.rstrip())
            if "aux" in event and isinstance(event["aux"], dict) and "ID" in event["aux"]:
                image_id = event["aux"]["ID"]
            if "error" in event:
                where = f" at {step!r}" if step else ""
                detail = tail("\n".join(output + [event["error"]]))
                raise OperationFailed(f"building {tag} failed{where}: {detail}")
    except docker.errors.APIError as exc:
        raise OperationFailed(f"building {tag} failed: {exc.explanation or exc}") from exc
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailable(f"the Docker engine does not answer: {exc}") from exc
    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound as exc:
        raise OperationFailed(f"building {tag} reported success but no image is tagged {tag} ({image_id})") from exc


def build_versioned_images(
    client: Any,
    context_dir: str | os.PathLike[str],
    repository: str,
    versions: Sequence[str],
    progress: Progress = quiet,
) -> list[str]:
    """Build `repository:VERSION` for each version (buildargs BASE and VERSION); the image ids."""
    started = time.monotonic()
    base = ensure_base_image(client, progress=progress)
    progress(f"base image {base} ready in {time.monotonic() - started:.1f} s")
    ids = []
    for version in versions:
        started = time.monotonic()
        tag = f"{repository}:{version}"
        ids.append(build_image(client, context_dir, tag, {"BASE": base, "VERSION": version}, progress=progress))
        progress(f"built {tag} ({ids[-1][:19]}) in {time.monotonic() - started:.1f} s")
    return ids


def image_label(client: Any, name: str, label: str) -> str | None:
    """The value of `label` on the local image `name`; None when there is no such image."""
    import docker.errors

    try:
        return (client.images.get(name).labels or {}).get(label)
    except docker.errors.ImageNotFound:
        return None
