"""What the harvest workers' fork server loads once, before it forks any worker
(:mod:`catalogue.harvest.pools`): the FHIR and DCAT worker modules, the FHIR models (each
warmed by validating a minimal resource) and the command line's modules.

A new worker runs the program's script again, as ``__mp_main__``. For the ``catalogue`` command
that is one import of :mod:`catalogue.cli`: 85 ms per worker, unless it is already loaded here.
The fork server's own ``"__main__"`` preload would do it for any program, but Python 3.11 never
passes it the script's path (it looks for a ``main_path`` key the preparation data does not
have).

Importing this module only loads, and then freezes the garbage collector's view of what is
loaded. It never raises: a fork server that failed here would fail every pool. A worker then
loads what is missing itself.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

try:
    from catalogue import cli as _cli  # noqa: F401 - see the docstring
    from catalogue.fhir import READ_RELEASES, RESOURCE_TYPES, validate
    from catalogue.harvest import dcat as _dcat  # noqa: F401 - rdflib, profiles, fast cut
    from catalogue.harvest import fhir as _fhir  # noqa: F401 - the FHIR worker and mapping

    for _release in READ_RELEASES:
        for _kind in RESOURCE_TYPES:
            validate(_release, {"resourceType": _kind, "id": "warm"})
except Exception as exc:  # see the module's docstring
    log.warning("harvest workers' preload failed (workers load their modules themselves): %s",
                exc)
# what is loaded now is never garbage: the workers' collections skip it, and its pages stay
# shared with the fork server
gc.freeze()
