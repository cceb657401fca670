"""Pure parts of the upgrade engine: image overrides, stage selection, the stored request, events."""

import pytest

from hitless.engine.steps import Event
from hitless.engine.upgrade import UpgradeRequest, selected_services, with_images
from hitless.errors import BadInput
from hitless.spec import parse_spec

SPEC = """
project: nova
sets:
  nova:
    conductor: {image: 'nova-conductor:1.0', network: {mode: host, ports: 9100-9101}, update: {strategy: all-at-once}}
    api: {image: 'nova-api:1.0', replicas: 2, network: {port: 8774}}
    compute: {image: 'nova-compute:1.0', network: {mode: host, ports: 9200-9210}, update: {strategy: rolling}}
  glance:
    api: {image: 'glance-api:1.0', network: {port: 9292}}
"""


def test_image_overrides_by_path_or_unique_name():
    tree = with_images(parse_spec(SPEC), {"nova/api": "nova-api:2.0", "compute": "nova-compute:2.0"})
    images = {s.path: s.service.image for s in tree.services()}
    assert images == {"nova/conductor": "nova-conductor:1.0", "nova/api": "nova-api:2.0",
                      "nova/compute": "nova-compute:2.0", "glance/api": "glance-api:1.0"}


@pytest.mark.parametrize("override, problem", [
    ({"api": "x:2"}, "ambiguous service name"),
    ({"keystone": "x:2"}, "no such service"),
    ({"nova/api": "no-tag"}, "--image nova/api=no-tag"),
])
def test_bad_image_overrides_are_bad_input(override, problem):
    with pytest.raises(BadInput, match=problem):
        with_images(parse_spec(SPEC), override)


def test_until_stops_after_a_stage_in_upgrade_order():
    tree = parse_spec(SPEC)
    assert [s.path for s in selected_services(tree, ("nova",), "nova/api")] == ["nova/conductor", "nova/api"]
    assert [s.path for s in selected_services(tree, (), "nova")] == ["nova/conductor", "nova/api", "nova/compute"]
    assert [s.path for s in selected_services(tree, ("nova",), None)] == ["nova/conductor", "nova/api", "nova/compute"]
    with pytest.raises(BadInput, match="not among the services"):
        selected_services(tree, ("glance",), "nova/api")


def test_a_request_survives_the_journal_and_rebuilds_the_same_tree(tmp_path):
    request = UpgradeRequest(kind="upgrade", spec_text=SPEC, source="hitless.yaml", base_dir=str(tmp_path),
                      paths=("nova",), images={"nova/api": "nova-api:2.0"}, until="nova/api")
    again = UpgradeRequest.from_json(request.to_json())
    assert again == request
    assert [s.service.image for s in again.tree().select(["nova/api"])] == ["nova-api:2.0"]


def test_a_rollback_request_carries_the_services_it_returns_to(tmp_path):
    old = parse_spec(SPEC.replace("replicas: 2", "replicas: 3")).select(["nova/api"])[0].service
    request = UpgradeRequest(kind="rollback", spec_text=SPEC.replace("nova-api:1.0", "nova-api:2.0"), source="s",
                             base_dir=str(tmp_path), paths=("nova/api",), services={"nova/api": old.model_dump_json()})
    [api] = request.tree().select(["nova/api"])
    assert api.service.image == "nova-api:1.0" and api.service.replicas == 3


def test_events_serialize_without_empty_fields():
    event = Event("step", "start nova/api slot 0", "started", "start", "nova/api/0", 3, {"generation": 2})
    data = event.to_dict()
    assert data["kind"] == "step" and data["seq"] == 3 and data["generation"] == 2 and "fields" not in data
    assert "status" not in Event("info", "hello").to_dict()
