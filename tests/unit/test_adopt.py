"""What runs beside hitless: docker-compose's containers of the project, and other port holders (pure)."""

from __future__ import annotations

import pytest

from hitless.engine.adopt import ComposeRuns, Handover, check_no_compose, survey, without_frontends
from hitless.runtime.base import ForeignContainer
from hitless.runtime.stop import StopOutcome
from hitless.spec import parse_spec

SPEC = """
project: shop
sets:
  web: {image: 'web:1', network: {port: 80}, frontend: {listen: '127.0.0.1:8080'}}
  worker: {image: 'worker:1', network: {port: 90}}
"""


class Foreign:
    """A runtime as far as `survey` looks: what runs that hitless did not start."""

    kind = "docker"

    def __init__(self, *containers: ForeignContainer):
        self.containers = list(containers)

    def foreign(self) -> list[ForeignContainer]:
        return self.containers


def container(name: str, project: str | None, service: str | None, *published: tuple[str, int],
              oneoff: bool = False) -> ForeignContainer:
    labels = {} if project is None else {"com.docker.compose.project": project, "com.docker.compose.service": service or "",
                                         "com.docker.compose.oneoff": str(oneoff)}
    return ForeignContainer(id=name + "-id", name=name, image="img:1", labels=labels, published=published)


def test_the_project_s_compose_containers_are_found_by_their_service():
    tree = parse_spec(SPEC)
    found = survey(tree, Foreign(  # type: ignore[arg-type]
        container("shop_web_1", "shop", "web", ("127.0.0.1", 8080)),
        container("shop_worker_1", "shop", "worker"),
        container("other_web_1", "other", "web"),
        container("shop_web_run_1", "shop", "web", oneoff=True),
    ))
    assert {k: [c.name for c in v] for k, v in found.takeovers.items()} == {"web": ["shop_web_1"],
                                                                              "worker": ["shop_worker_1"]}
    assert found.holders == []


def test_compose_running_is_refused_with_one_line_per_container():
    tree = parse_spec(SPEC)
    runtime = Foreign(container("shop_web_1", "shop", "web", ("0.0.0.0", 8080)), container("shop_worker_1", "shop", "worker"))
    with pytest.raises(ComposeRuns) as caught:
        check_no_compose(tree, runtime, "up")  # type: ignore[arg-type]
    assert caught.value.exit_status == 2
    assert caught.value.lines() == [
        "shop_web_1 (docker-compose project shop, service web) runs and holds 0.0.0.0:8080, the frontend of web: "
        "`hitless up --adopt` moves it behind hitless's proxy (hitless's instances started and warm first, the port "
        "handed over at once)",
        "shop_worker_1 (docker-compose project shop, service worker) runs (service worker of the spec): "
        "`hitless up --adopt` moves it behind hitless's proxy (hitless's instances started and warm first, the port "
        "handed over at once)",
    ]


@pytest.mark.parametrize(("published", "held"), [
    (("0.0.0.0", 8080), True), (("127.0.0.1", 8080), True), (("::", 8080), True), (("10.0.0.5", 8080), False),
    (("127.0.0.1", 8081), False),
])
def test_another_container_on_a_frontend_s_port_is_named_never_a_silent_conflict(published, held: bool):
    tree = parse_spec(SPEC)
    runtime = Foreign(container("stray", None, None, published))
    if not held:
        check_no_compose(tree, runtime, "upgrade")  # type: ignore[arg-type]
        return
    with pytest.raises(ComposeRuns) as caught:
        check_no_compose(tree, runtime, "upgrade")  # type: ignore[arg-type]
    assert caught.value.lines() == ["127.0.0.1:8080, the frontend of web, is held by container stray (image img:1), "
                                    "which is not one of this project's services: stop it first"]


def test_frontends_are_left_out_until_their_port_is_free():
    tree = without_frontends(parse_spec(SPEC), {"web"})
    assert [n.service.frontend for n in tree.services()] == [None, None]


def test_the_gap_is_said_in_one_line():
    handover = Handover("web", ("shop_web_1",), "127.0.0.1:8080", signalled=10.0, bound=10.120, served=10.125,
                        stops=(StopOutcome(0, 0.2, False),))
    assert handover.gap == pytest.approx(0.12)
    assert handover.describe() == ("web: 127.0.0.1:8080 handed over from shop_web_1 to the proxy: gap 120 ms (from its "
                                   "stop signal until the proxy bound the port; exit 0 after 0.20 s), then requests "
                                   "held 5 ms until hitless's instances took them")
    assert handover.to_dict()["gap_seconds"] == pytest.approx(0.12)
