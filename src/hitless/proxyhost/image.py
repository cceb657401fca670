"""The proxy's image, `hitless-proxy:<version>-<key>`: the proxy and what it imports, on the base
image.

Built here from this machine's installation (containers reach no package registry) and tagged
with a key of its contents: an unchanged installation never builds it again, and two
installations of one version that differ (two checkouts on one engine) never take each other's
tag, which would make each replace the other's proxy on every command.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from hitless import __version__
from hitless.imagebuild import (
    DEFAULT_CACHE_DIR,
    Progress,
    build_image,
    ensure_base_image,
    file_lock,
    image_label,
    quiet,
)
from hitless.proxyhost import bundle

PROXY_REPOSITORY = "hitless-proxy"
PROXY_KEY_LABEL = "io.hitless.proxy-image.key"
# site/ holds the dependencies (a layer reused while their versions stay), hitless/ the package.
PROXY_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
COPY site/ /opt/hitless/site/
COPY hitless/ /opt/hitless/site/hitless/
ENV PYTHONPATH=/opt/hitless/site PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m compileall -q /opt/hitless/site \\
 && python3 -c "import uvloop, httptools, prometheus_client, hitless.proxy.worker.server, hitless.proxy.launch"
ARG KEY
ARG VERSION
LABEL io.hitless.proxy-image.key=${KEY} io.hitless.version=${VERSION}
STOPSIGNAL SIGTERM
ENTRYPOINT ["python3", "-m", "hitless.proxy.launch"]
"""


def proxy_image_tag(key: str) -> str:
    """The proxy's image for the installed hitless: `hitless-proxy:<version>-<key>`."""
    return f"{PROXY_REPOSITORY}:{__version__}-{key[:12]}"


def ensure_proxy_image(client: Any, cache_dir: Path | None = None, progress: Progress = quiet) -> str:
    """`hitless-proxy:<version>-<key>` on the project's base image, with hitless and the proxy's
    dependencies copied from this machine (containers reach no registry). Cached by a key of
    its contents (see hitless.proxyhost.bundle): a second call with nothing changed only hashes
    hitless's files; a changed checkout rebuilds only the package layer."""
    base = ensure_base_image(client, cache_dir, progress)
    dists = bundle.distributions()
    own = bundle.package_files()
    key = bundle.bundle_key(dists, own, client.images.get(base).id, PROXY_DOCKERFILE)
    tag = proxy_image_tag(key)
    if image_label(client, tag, PROXY_KEY_LABEL) == key:
        return tag
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    with file_lock(cache / "hitless-proxy.lock"):
        if image_label(client, tag, PROXY_KEY_LABEL) == key:  # built by another process meanwhile
            return tag
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="hitless-proxy-") as context:
            root = Path(context)
            bundle.stage(bundle.dependency_files(dists), root / "site")
            bundle.stage(own, root)
            (root / "Dockerfile").write_text(PROXY_DOCKERFILE)
            build_image(client, root, tag, {"BASE": base, "KEY": key, "VERSION": __version__}, progress=progress)
        progress(f"built {tag} in {time.monotonic() - started:.1f} s")
    return tag
