"""DCAT documents ↔ catalogue datasets.

- :mod:`catalogue.dcat.namespaces`: namespace constants and the alias table (canonicalisation).
- :mod:`catalogue.dcat.formats`: format detection, hardened parsing (no network, no XML
  entities, triple cap), serialisation; :class:`~catalogue.dcat.formats.RdfError`.
- :mod:`catalogue.dcat.profiles`: DCAT-AP 3 → HealthDCAT-AP → EUCAIM profiles
  (``get_profile``).
- :mod:`catalogue.dcat.validation`: SHACL validation.
"""
