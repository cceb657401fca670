"""The OpenStack example's spec, and the same spec retargeted for one run (pure, no I/O but
reading the example)."""

from __future__ import annotations

import yaml

from hitless.spec import parse_spec
from hitless_demo.openstack.images import RELEASES, openstack_image
from hitless_demo.openstack.load import EXAMPLE_SPEC, NEW, OLD, CloudLayout, clouds_yaml, counts, failures, openstack_spec
from hitless_demo.paths import OPENSTACK_DIR

LAYOUT = CloudLayout("ostest-1a2b", keystone_port=21000, neutron_port=21001, first_instance_port=21100)


def test_the_example_spec_is_valid_and_names_every_phase():
    tree = parse_spec(EXAMPLE_SPEC.read_text(), base_dir=OPENSTACK_DIR)
    services = {n.path: n.service for n in tree.services()}
    assert set(services) == {"keystone/api", "neutron/server"}
    for service in services.values():
        mig = service.migrations
        assert mig.bootstrap and mig.expand and mig.contract and mig.status
        assert service.health.http and service.health.timeout >= 5
        assert service.image in RELEASES


def test_a_run_spec_owns_its_databases_ports_and_volumes():
    text = openstack_spec(EXAMPLE_SPEC.read_text(), LAYOUT, NEW)
    tree = parse_spec(text, base_dir=OPENSTACK_DIR)
    assert tree.project == "ostest-1a2b"
    # Nothing of the example's own names is left: a run never touches another's data.
    for example_value in ("@127.0.0.1/keystone", "@127.0.0.1/neutron", "-u keystone", "-u neutron",
                          "127.0.0.1:5000", "127.0.0.1:9696", "5001-5009", "9697-9705", "./etc"):
        assert example_value not in text
    services = {n.path: n.service for n in tree.services()}
    keystone, neutron = services["keystone/api"], services["neutron/server"]
    assert (keystone.image, neutron.image) == (NEW["keystone"], NEW["neutron"])
    assert keystone.environment["OS_DATABASE__CONNECTION"].endswith("/ostest_1a2b_keystone")
    assert neutron.environment["OS_DATABASE__CONNECTION"].endswith("/ostest_1a2b_neutron")
    assert neutron.environment["OS_KEYSTONE_AUTHTOKEN__AUTH_URL"] == "http://127.0.0.1:21000"
    assert keystone.environment["OS_BOOTSTRAP_PUBLIC_URL"] == "http://127.0.0.1:21000/v3"
    assert (keystone.frontend.listen, neutron.frontend.listen) == ("127.0.0.1:21000", "127.0.0.1:21001")
    assert (keystone.network.ports.first, keystone.network.ports.last) == (21100, 21108)
    assert (neutron.network.ports.first, neutron.network.ports.last) == (21109, 21117)
    sources = {v.source for s in services.values() for v in s.volumes}
    assert {"ostest-1a2b-keystone-keys", "ostest-1a2b-neutron-state"} <= sources
    assert str(OPENSTACK_DIR / "etc" / "keystone") in sources
    assert "ostest_1a2b_neutron" in " ".join(tree.spec.snapshots["neutron"].command.backup)


def test_old_and_new_are_releases_the_example_builds():
    for tag in (*OLD.values(), *NEW.values()):
        image = openstack_image(tag)
        assert image.tag == tag and any(r.startswith(tag.split(":")[0] + "==") for r in image.requirements)
        assert b"gunicorn" in image.files["wsgi-serve"]


def test_clouds_yaml_reaches_keystone_through_its_frontend():
    cloud = yaml.safe_load(clouds_yaml(LAYOUT, "run"))["clouds"]["run"]
    assert cloud["auth"]["auth_url"] == "http://127.0.0.1:21000"


def test_counts_and_failures():
    records = [{"op": "a", "ok": True}, {"op": "a", "ok": False}, {"op": "b", "ok": True}]
    assert counts(records) == {"a": (2, 1), "b": (1, 0)}
    assert failures(records) == [{"op": "a", "ok": False}]


def test_the_kolla_way_runs_the_services_the_spec_describes():
    from hitless_demo.kolla import KollaService

    tree = parse_spec(openstack_spec(EXAMPLE_SPEC.read_text(), LAYOUT, OLD), base_dir=OPENSTACK_DIR)
    keystone = KollaService.of(next(n for n in tree.services() if n.path == "keystone/api"), OPENSTACK_DIR)
    assert keystone.name == "keystone-api" and keystone.health_path == "/v3"
    assert keystone.environment["OS_BOOTSTRAP_PUBLIC_URL"] == "http://127.0.0.1:21000/v3"
    assert {(m.source, m.target, m.read_only) for m in keystone.mounts} == {
        (str(OPENSTACK_DIR / "etc" / "keystone"), "/etc/keystone", True),
        ("ostest-1a2b-keystone-keys", "/var/lib/keystone", False)}
