"""Which config keys a rollback plan may write, and when a running guest takes them.

These are rules about Proxmox VE's write side that only rollback planning needs (pve-api.md
§4.8, §5, §5.1); the rules about values themselves (equality, property strings, sizes,
volume ids) are :mod:`collectors.values`'.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from collectors.secrets import FINGERPRINT_PREFIX
from collectors.values import disk_volume, hotplug_set, parse_property, same

PROXMOX_WRITTEN = frozenset(
    {
        "digest",
        "vmgenid",
        "lock",
        "meta",
        "parent",
        "runningmachine",
        "runningcpu",
        "snaptime",
        "vmstate",
        "snapstate",
        "revert",  # fakepve 0.5 stores a revert as a key of that name (pve-api.md §10)
    }
)
"""Keys only Proxmox writes (§4.8): never in a step, never a difference."""

_UNUSED = re.compile(r"unused\d+")

Apply = Literal["now", "live", "pending"]

# §5.1, running qemu: applied at once, whatever ``hotplug`` says.
_QEMU_NOW = frozenset(
    {
        "name",
        "description",
        "tags",
        "onboot",
        "startup",
        "protection",
        "lock",
        "hookscript",
        "migrate_speed",
        "migrate_downtime",
        "shares",
        "vmstatestorage",
        "ciuser",
        "cipassword",
        "sshkeys",
        "nameserver",
        "searchdomain",
        "citype",
        "cicustom",
        "ciupgrade",
        # cgroup limits, balloon target, agent options and the tablet apply without a feature
        "cpuunits",
        "cpulimit",
        "balloon",
        "agent",
        "tablet",
    }
)
# §5.1, running qemu: applied live only when ``hotplug`` holds the feature.
_QEMU_FEATURE = (
    (re.compile(r"net\d+"), "network"),
    (re.compile(r"(scsi|virtio)\d+"), "disk"),
    (re.compile(r"usb\d+"), "usb"),
    (re.compile(r"vcpus"), "cpu"),
    (re.compile(r"memory"), "memory"),
)
_LXC_NOW = frozenset(
    {"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags"}
)
_LXC_LIVE = frozenset({"memory", "swap", "cpulimit", "cpuunits"})


def is_proxmox_written(key: str) -> bool:
    """Whether only Proxmox writes the key (a plan never sets or deletes it)."""
    return key in PROXMOX_WRITTEN


def is_unused(key: str) -> bool:
    """``unusedN``: a detached volume. Deleting one destroys it, so no plan does."""
    return bool(_UNUSED.fullmatch(key))


def is_redacted(value: Any) -> bool:
    """Whether a value holds a fingerprint instead of a secret (invariant 5): the log cannot
    give the secret back."""
    return isinstance(value, str) and FINGERPRINT_PREFIX in value


def is_cdrom(key: str, value: Any) -> bool:
    """A CD-ROM drive (``ide2: none,media=cdrom``): its media changes like any value."""
    return parse_property(key, value).get("media") == "cdrom"


def applies(
    guest_type: str, key: str, config: Mapping[str, Any], *, deleting: bool = False, new: bool
) -> Apply:
    """When a running guest takes a change of ``key`` (§5.1): ``now``, ``live`` (hotplugged)
    or ``pending`` (at its next start or an API reboot). ``new`` says the key is not in the
    running config yet (an lxc mount point can be added live, not changed)."""
    if guest_type == "lxc":
        if key in _LXC_NOW:
            return "now"
        if key in _LXC_LIVE or re.fullmatch(r"net\d+", key):
            return "live"
        if re.fullmatch(r"(mp|dev)\d+", key) and new and not deleting:
            return "live"
        if is_unused(key) and deleting:
            return "live"
        return "pending"
    if key in _QEMU_NOW or re.fullmatch(r"ipconfig\d+", key):
        return "now"
    if is_cdrom(key, config.get(key)):
        return "live"
    hotplug = hotplug_set(config.get("hotplug", "network,disk,usb"))
    for pattern, feature in _QEMU_FEATURE:
        if pattern.fullmatch(key):
            return "live" if feature in hotplug else "pending"
    return "pending"


def has_volume(key: str, value: Any) -> bool:
    """Whether a disk key's value names a volume on a storage (not an empty CD-ROM drive,
    not a host bind mount)."""
    return disk_volume(value) is not None and not is_cdrom(key, value)


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The config keys whose values differ as Proxmox means them, sorted; keys only Proxmox
    writes and detached volumes (``unusedN``) left out."""
    keys = set(old) | set(new)
    return sorted(
        k
        for k in keys
        if not is_proxmox_written(k) and not is_unused(k) and not same(k, old.get(k), new.get(k))
    )
