"""DCAT application profiles, chained by inheritance: DCAT-AP 3 → HealthDCAT-AP → EUCAIM.

``get_profile(name)`` returns a new profile by short name (``dcat_ap``, ``healthdcat_ap``,
``eucaim``), by the name of a ``catalogue.dcat_profiles`` entry point, or by dotted path.
"""

from __future__ import annotations

from catalogue.dcat.profiles.base import Profile
from catalogue.dcat.profiles.dcat_ap import DcatAp3Profile
from catalogue.dcat.profiles.eucaim import EucaimProfile
from catalogue.dcat.profiles.healthdcat_ap import HealthDcatApProfile
from catalogue.errors import ConfigError

__all__ = [
    "PROFILES",
    "DcatAp3Profile",
    "EucaimProfile",
    "HealthDcatApProfile",
    "Profile",
    "get_profile",
]

PROFILES: dict[str, type[Profile]] = {
    "dcat_ap": DcatAp3Profile,
    "dcat_ap_3": DcatAp3Profile,
    "healthdcat_ap": HealthDcatApProfile,
    "eucaim": EucaimProfile,
}


def get_profile(name: str = "eucaim") -> Profile:
    """A new instance of the profile called ``name``."""
    key = name.strip().lower().replace("-", "_")
    if key in PROFILES:
        return PROFILES[key]()
    from catalogue.plugins import load_plugin

    cls = load_plugin("dcat_profile", name)
    if not (isinstance(cls, type) and issubclass(cls, Profile)):
        raise ConfigError(f"DCAT profile {name!r} is not a Profile class")
    return cls()
