"""A compose file as a hitless spec: interpolation, the mapping of its keys, and their validation.

`hitless -f compose.yaml` (or a compose.yaml found as hitless.yaml is) reads it through
`load.load_compose`; `convert.convert` is the pure mapping, `service` and `update` map one
service, `order` builds the tree `depends_on` orders, `keys` says what is honoured and what not.
"""
