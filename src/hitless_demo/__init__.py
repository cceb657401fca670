"""The demos of hitless: netapi (a small Neutron-like API), real OpenStack releases from PyPI, and
the Kolla way of upgrading them, measured beside `hitless upgrade`.

They use hitless as any user would: through its spec, its engine and its probe. hitless itself
never imports this package; `hitless demo` is registered through the `hitless.commands` entry
point group.
"""
