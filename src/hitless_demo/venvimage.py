"""Images that hold a Python virtual environment, built without the containers reaching PyPI.

Three layers of cache, each keyed by what it was made from:

1. a **wheelhouse** on this machine, filled by `pip wheel` (the only step that needs PyPI);
   a marker per requirement set says it is complete, so a second build needs no network;
2. the **virtualenv**, made inside a container of the base image (so it is built by the very
   Python the image runs: `python3 -m venv --without-pip`, then pip run from its own wheel with
   `--no-index`, the container on no network), in a build directory on this machine;
3. the **image**: the virtualenv and a few files copied onto the base, labelled with a key of
   all of the above, so an image already built from the same inputs is not built again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hitless.errors import OperationFailed, RuntimeUnavailable
from hitless.imagebuild import (
    DEFAULT_CACHE_DIR,
    Progress,
    build_image,
    ensure_base_image,
    file_lock,
    image_label,
    quiet,
    run_bounded,
    tail,
)

KEY_LABEL = "io.hitless.venv-image.key"
VENV_PATH = "/opt/venv"  # where the virtualenv lives in the image (and in the builder container)
WHEEL_TIMEOUT = 1800.0
VENV_TIMEOUT = 900.0


@dataclasses.dataclass(frozen=True)
class VenvImage:
    """One image: its tag, the requirements of its virtualenv (pins and constraints are pip
    lines), and a Dockerfile with the files it copies (names relative to the build context,
    where the virtualenv is `venv/`). The Dockerfile gets build arg BASE; the key label is added."""

    tag: str
    requirements: tuple[str, ...]
    dockerfile: str
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    constraints: str = ""  # a pip constraints file's text, like OpenStack's upper-constraints

    def key(self, base_id: str) -> str:
        """A hash of everything the image is made from."""
        digest = hashlib.sha256()
        for part in (self.tag, "\n".join(self.requirements), self.constraints, self.dockerfile, base_id,
                     *(f"{name}\0{data.hex()}" for name, data in sorted(self.files.items()))):
            digest.update(part.encode() + b"\0\0")
        return digest.hexdigest()[:24]


def _requirement_set_key(requirements: Sequence[str], constraints: str) -> str:
    return hashlib.sha256(("\n".join(requirements) + "\0" + constraints).encode()).hexdigest()[:16]


def fill_wheelhouse(wheelhouse: Path, requirements: Sequence[str], constraints: str = "", what: str = "",
                    progress: Progress = quiet) -> None:
    """Wheels of `requirements` (and of pip itself) in `wheelhouse`, from PyPI the first time;
    afterwards a marker says they are there and nothing is downloaded."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    key = _requirement_set_key(requirements, constraints)
    marker = wheelhouse / f".complete-{key}"
    if marker.exists():
        return
    what = what or " ".join(requirements)
    argv = ["python3", "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheelhouse), "pip", *requirements]
    if constraints:
        (wheelhouse / f".constraints-{key}.txt").write_text(constraints)
        argv += ["--constraint", str(wheelhouse / f".constraints-{key}.txt")]
    progress(f"fetching wheels for {what} into {wheelhouse}")
    done = run_bounded(argv, WHEEL_TIMEOUT, f"pip wheel for {what}")
    if done.returncode != 0:
        noise = ("WARNING: Location", "WARNING: Running pip as")
        detail = "\n".join(line for line in done.stderr.splitlines() if not line.startswith(noise))
        raise OperationFailed(f"pip wheel for {what} failed (exit {done.returncode}; is PyPI reachable?): {tail(detail)}")
    marker.write_text("\n".join(requirements) + "\n")


def pip_wheel(wheelhouse: Path) -> Path:
    """The newest wheel of pip itself in the wheelhouse."""
    wheels = sorted(wheelhouse.glob("pip-*-py3-none-any.whl"))
    if not wheels:
        raise OperationFailed(f"no pip wheel in {wheelhouse}")
    return wheels[-1]


def build_venv(client: Any, base: str, wheelhouse: Path, image: VenvImage, venv_dir: Path) -> None:
    """Make the virtualenv at `venv_dir` on this machine, inside a container of `base` that sees
    it at VENV_PATH, from the wheelhouse only (no network); raises with the tail of pip's output."""
    import docker.errors

    if venv_dir.exists():
        shutil.rmtree(venv_dir)
    venv_dir.mkdir(parents=True)
    stage = venv_dir.parent / "requirements"
    stage.mkdir(exist_ok=True)
    (stage / "requirements.txt").write_text("\n".join(image.requirements) + "\n")
    (stage / "constraints.txt").write_text(image.constraints)
    pip = f"/wheels/{pip_wheel(wheelhouse).name}/pip"
    script = (f"python3 -m venv --without-pip {VENV_PATH} && "
              f"{VENV_PATH}/bin/python3 {pip} install --quiet --no-index --no-cache-dir --find-links /wheels "
              f"--constraint /stage/constraints.txt --requirement /stage/requirements.txt && "
              f"{VENV_PATH}/bin/python3 {pip} freeze --path {VENV_PATH}/lib/python3*/site-packages > {VENV_PATH}/frozen.txt")
    try:
        container = client.containers.run(
            base, ["sh", "-c", script], detach=True, network_mode="none",
            volumes={str(wheelhouse): {"bind": "/wheels", "mode": "ro"}, str(stage): {"bind": "/stage", "mode": "ro"},
                     str(venv_dir): {"bind": VENV_PATH, "mode": "rw"}},
            environment={"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:
            status = container.wait(timeout=VENV_TIMEOUT)
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
    except docker.errors.APIError as exc:
        raise OperationFailed(f"building the virtualenv of {image.tag} failed: {exc.explanation or exc}") from exc
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailable(f"the Docker engine does not answer: {exc}") from exc
    except Exception as exc:  # the SDK's wait() raises the transport's timeout
        raise OperationFailed(f"building the virtualenv of {image.tag} did not finish within {VENV_TIMEOUT:.0f} s") from exc
    if status.get("StatusCode") != 0:
        raise OperationFailed(f"building the virtualenv of {image.tag} failed (exit {status.get('StatusCode')}): {tail(output)}")


def ensure_venv_images(client: Any, images: Sequence[VenvImage], cache_dir: Path | None = None,
                       progress: Progress = quiet) -> list[str]:
    """Each image built unless one with the same key exists; their tags, in order."""
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    base = ensure_base_image(client, cache, progress)
    base_id = client.images.get(base).id
    wheelhouse = cache / "wheelhouse"
    for image in images:
        key = image.key(base_id)
        if image_label(client, image.tag, KEY_LABEL) == key:
            progress(f"{image.tag} is up to date")
            continue
        with file_lock(cache / "venv-images.lock"):
            if image_label(client, image.tag, KEY_LABEL) == key:
                continue
            started = time.monotonic()
            fill_wheelhouse(wheelhouse, image.requirements, image.constraints, image.tag, progress)
            context = cache / "venv-build" / image.tag.replace(":", "-").replace("/", "_")
            progress(f"building the virtualenv of {image.tag}")
            build_venv(client, base, wheelhouse, image, context / "venv")
            for name, data in image.files.items():
                (context / name).parent.mkdir(parents=True, exist_ok=True)
                (context / name).write_bytes(data)
            (context / "Dockerfile").write_text(f"{image.dockerfile.rstrip()}\nARG KEY\nLABEL {KEY_LABEL}=${{KEY}}\n")
            (context / ".dockerignore").write_text("requirements\n")
            build_image(client, context, image.tag, {"BASE": base, "KEY": key}, progress=progress)
            shutil.rmtree(context / "venv")  # the image holds it now
            progress(f"built {image.tag} in {time.monotonic() - started:.1f} s")
    return [image.tag for image in images]
