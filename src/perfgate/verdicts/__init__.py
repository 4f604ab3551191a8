"""What is judged and against what: the thresholds file (fields, per-class sections, the derive rules'
names) and the bounds that ship with the plugin (``shipped.toml``). A new gated field goes in
``fields.FIELDS``.

Imports ``subjects`` (technique names), ``instruments`` and ``errors``."""
