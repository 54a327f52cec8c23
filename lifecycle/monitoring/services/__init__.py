"""Every write of the monitoring stage, one module per part: ``references`` (reference
profiles of datasets), ``windows`` (drift and figures per window), ``alerts`` (monitor
rules judged, alerts opened, acknowledged and resolved), ``actions`` (what a firing
alert does, once) and ``monitors`` (a model's monitor rules added and removed one at a
time)."""
