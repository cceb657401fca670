"""The spec: a YAML tree of sets and services, validated into a desired state."""

from hitless.spec.load import load_spec, parse_spec
from hitless.spec.model import Service, Spec
from hitless.spec.tree import DesiredTree, ServiceNode, SetNode

__all__ = ["DesiredTree", "Service", "ServiceNode", "SetNode", "Spec", "load_spec", "parse_spec"]
