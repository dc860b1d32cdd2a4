"""Proxmox VE values as Proxmox means them: the one home of every value rule.

Writers (the collectors deciding what is a change) and readers (projections, relations,
history, drift and rollback) import these rules from here, so "the same value" means one thing
everywhere. Nothing here imports anything of ours. The rules follow pve-api.md §3 (value
conventions) and §8 (config value formats), which cite Proxmox's own code:

* **Scalars** (§3): numbers may come as numbers or strings (``4`` = ``"4"`` = ``4.0``), booleans
  as ``0``/``1`` or, from Rust endpoints, ``true``/``false``; a flag key (:data:`FLAG_KEYS`)
  also accepts what ``PVE::JSONSchema::parse_boolean`` accepts (``on``, ``yes``, ``true``, ...).
  A type alone is never a difference.
* **Masked secrets**: a real cluster answers ``**********`` (:data:`MASK`) instead of some
  secrets. That is "unknown", not a value: see :func:`same` for what a comparison answers.
* **Lists and tags** (§8.6): ``PVE::Tools::split_list`` splits on ``,``, ``;`` and whitespace
  (or only on NUL bytes when there are any); tags are compared as sets.
* **Property strings** (§8.1-§8.5): ``key=value`` items, one of them the unnamed default item,
  parsed key by key with the default item named (``volume`` for disks and mount points,
  ``model`` and ``macaddr`` for a qemu NIC written ``virtio=BC:24:...``), compared key by key in
  any order, and printed as ``PVE::JSONSchema::print_property_string`` prints them.
* **Sizes** (``32G`` = ``32768M`` = ``33554432K`` = ``34359738368``), **volume ids**
  (``storage:volume``) and **backup volume names** (``vzdump-qemu-100-...``, PBS
  ``backup/vm/100/...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

MASK = "**********"
"""What a real Proxmox VE answers instead of some secrets (``cipassword``): unknown, not a value."""

GUEST_TYPES = ("qemu", "lxc")
"""The two guest types, as ``/cluster/resources`` names them."""

# -- scalars -------------------------------------------------------------------------------------

FLAG_KEYS = frozenset(
    {
        # guest config (§4.8, §4.12)
        "onboot",
        "template",
        "protection",
        "numa",
        "tablet",
        "acpi",
        "kvm",
        "localtime",
        "reboot",
        "unprivileged",
        "console",
        # resources, storages, snapshots, backups (§4.3, §4.10, §4.13)
        "shared",
        "active",
        "enabled",
        "disable",
        "vmstate",
        "protected",
        "running",
        "online",
        "quorate",
        # options inside property strings (§8.2-§8.5)
        "firewall",
        "link_down",
        "ssd",
        "iothread",
        "backup",
        "replicate",
        "acl",
        "quota",
        "ro",
        "pre-enrolled-keys",
        "base64",
        "host-managed",
        "fstrim_cloned_disks",
        "freeze-fs",
        "nesting",
        "keyctl",
        "fuse",
        "mknod",
        "pcie",
        "rombar",
        "usb3",
        "x-vga",
    }
)
"""Keys whose values are Proxmox booleans (schema type "boolean", written ``0``/``1``)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# A number as Perl prints one: no leading zeros, no exponent, no sign but minus. A name such as
# "007" or "1e3" stays a name.
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
_INTEGER = re.compile(r"\s*[-+]?\d+\s*")


def parse_flag(value: Any) -> int | None:
    """A Proxmox boolean as ``1``/``0`` (``1``, ``true``, ``on``, ``yes``, ...), else None."""
    if isinstance(value, bool | int) and value in (0, 1):
        return int(value)
    text = str(scalar(value)).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    return None


def as_flag(value: Any) -> int:
    """A Proxmox boolean as ``1`` or ``0``; anything that is not a true value is ``0``."""
    return 1 if parse_flag(value) == 1 else 0


def as_int(value: Any) -> int | None:
    """An integer sent as a number or a string (LXC ``vmid`` before PVE 8.1), else None."""
    if isinstance(value, int):  # bool included: 0/1
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def scalar(value: Any) -> Any:
    """A scalar in the one form that compares as Proxmox means it.

    ``True``/``1``/``1.0``/``"1"`` all become ``"1"``; a string that is a plain decimal number
    becomes that number's text (``"4.50"`` -> ``"4.5"``); other strings are themselves. Lists,
    dicts and None are returned unchanged.
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        if "." not in value:
            return str(int(value))
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return value


def is_masked(value: Any) -> bool:
    """Whether a value is Proxmox's mask (unknown), as a whole."""
    return isinstance(value, str) and value == MASK


# -- sizes ---------------------------------------------------------------------------------------

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_bytes(value: Any) -> int | None:
    """A size in bytes: ``32G``, ``32768M``, ``33554432K``, bytes as a number (``1024``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        return None
    found = _SIZE.fullmatch(value.strip())
    if found is None:
        return None
    return int(float(found.group(1)) * _UNITS[found.group(2).upper()])


def format_size(size: int) -> str:
    """A size as Proxmox writes it (``PVE::JSONSchema::format_size``): the largest unit that
    divides it exactly, bytes without a unit."""
    for unit in ("T", "G", "M", "K"):
        factor = _UNITS[unit]
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


# -- lists and tags ------------------------------------------------------------------------------

_LIST_SEPARATORS = re.compile(r"[,;\s]+")
_TAG = re.compile(r"[a-z0-9_][a-z0-9_\-+.]*", re.IGNORECASE)


def split_list(value: Any) -> list[str]:
    """A Proxmox list as ``PVE::Tools::split_list`` reads it, order kept: ``,``, ``;`` and
    whitespace separate items (``"one, two;three"``), unless the text holds NUL bytes, which
    then alone separate. A list is taken item by item; None and ``""`` are empty."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [text for text in map(str, value) if text]
    text = str(value)
    if "\0" in text:
        return [item for item in text.split("\0") if item]
    return [item for item in _LIST_SEPARATORS.split(text) if item]


def split_tags(value: Any) -> list[str]:
    """Tags as Proxmox splits them (stored ``;``-separated; any list separator on input)."""
    return split_list(value)


def tag_set(value: Any) -> frozenset[str]:
    """Tags as the set they mean: order and repetition are not part of them."""
    return frozenset(split_list(value))


def normalise_tags(value: Any, *, case_sensitive: bool = False, ordered: bool = False) -> list[str]:
    """Tags as Proxmox stores them after a write: lower-cased (unless the datacenter's
    ``tag-style`` says ``case-sensitive=1``), without repeats, sorted (unless
    ``ordering=config``)."""
    seen: dict[str, None] = {}
    for tag in split_list(value):
        seen.setdefault(tag if case_sensitive else tag.lower())
    tags = list(seen)
    return tags if ordered else sorted(tags)


def format_tags(value: Any) -> str:
    """Tags as Proxmox returns them: ``;``-separated (``prod;web``)."""
    return ";".join(split_list(value))


def is_valid_tag(tag: str) -> bool:
    """Whether Proxmox accepts a tag (``go-proxmox+cloud-init`` is one tag)."""
    return bool(_TAG.fullmatch(tag))


def content_list(value: Any) -> list[str]:
    """A storage's ``content`` (``images,rootdir``) as a sorted list without repeats."""
    return sorted(set(split_list(value)))


_HOTPLUG_DEFAULT = frozenset({"network", "disk", "usb"})


def hotplug_set(value: Any) -> frozenset[str]:
    """A qemu ``hotplug`` value as the features it enables: ``0`` none, ``1`` the default."""
    text = str(scalar(value))
    if text == "0":
        return frozenset()
    if text == "1":
        return _HOTPLUG_DEFAULT
    return frozenset(split_list(text))


# -- property strings ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # compared by identity: ``property_format(k) is DISK``
class PropertyFormat:
    """How one kind of property string names and orders its items."""

    default: str | None = None
    """The name of the item written without ``key=`` (PVE's ``default_key``)."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Other names Proxmox accepts for an item (``file=`` for a qemu disk's volume)."""
    required: tuple[str, ...] = ()
    """Items printed right after the default one (PVE prints required keys first)."""
    order: tuple[str, ...] | None = None
    """A fixed order for formats Proxmox prints by hand (``startup``); else sorted."""


NIC_MODELS = frozenset(
    {
        "virtio",
        "e1000",
        "e1000e",
        "e1000-82540em",
        "e1000-82544gc",
        "e1000-82545em",
        "rtl8139",
        "vmxnet3",
        "i82551",
        "i82557b",
        "i82559er",
        "ne2k_pci",
        "ne2k_isa",
        "pcnet",
    }
)
"""qemu NIC models (§8.2): each is written as the key of the MAC address (``virtio=BC:24:...``)."""

_VOLUME = PropertyFormat(default="volume", aliases={"file": "volume"})
NET = PropertyFormat(default="model", required=("name",))
"""``netN``: qemu's ``virtio=<MAC>,...`` (model and macaddr) or lxc's ``name=eth0,...``."""
DISK = _VOLUME
"""qemu disks (``scsiN``, ``virtioN``, ``sataN``, ``ideN``, ``efidisk0``, ``tpmstate0``), lxc
``rootfs`` and ``unusedN``: the volume (``[file=]`` or ``[volume=]``) first."""
MOUNT_POINT = PropertyFormat(default="volume", aliases={"file": "volume"}, required=("mp",))
"""lxc ``mpN``: the volume or host path, then ``mp=`` (required, so printed first)."""
_FORMATS: dict[str, PropertyFormat] = {
    "agent": PropertyFormat(default="enabled"),
    "startup": PropertyFormat(order=("order", "up", "down")),
    "memory": PropertyFormat(default="current"),
    "cpu": PropertyFormat(default="cputype"),
    "vga": PropertyFormat(default="type"),
    "watchdog": PropertyFormat(default="model"),
    "boot": PropertyFormat(default="legacy"),
    "rootfs": DISK,
    "efidisk0": DISK,
    "tpmstate0": DISK,
    "smbios1": PropertyFormat(),
    "features": PropertyFormat(),
    "meta": PropertyFormat(),
    "rng0": PropertyFormat(),  # written source=/dev/urandom, though PVE reads it bare too
    "spice_enhancements": PropertyFormat(),
    "audio0": PropertyFormat(default="device"),
}
_NUMBERED = re.compile(r"([a-z]+)(\d+)")
_NUMBERED_FORMATS: dict[str, PropertyFormat] = {
    "net": NET,
    "scsi": DISK,
    "virtio": DISK,
    "sata": DISK,
    "ide": DISK,
    "unused": DISK,
    "mp": MOUNT_POINT,
    "ipconfig": PropertyFormat(),
    "hostpci": PropertyFormat(default="host"),
    "usb": PropertyFormat(default="host"),
    "numa": PropertyFormat(default="cpus"),
    "dev": PropertyFormat(default="path"),
}


@lru_cache(maxsize=1024)  # config key names repeat in every guest
def property_format(key: str) -> PropertyFormat | None:
    """The property-string format of a config key, or None if its value is not one."""
    found = _FORMATS.get(key)
    if found is not None:
        return found
    numbered = _NUMBERED.fullmatch(key)
    if numbered is None:
        return None
    return _NUMBERED_FORMATS.get(numbered.group(1))


def is_disk_key(key: str) -> bool:
    """Whether a config key holds a disk, a mount point, ``rootfs`` or an unused volume."""
    found = property_format(key)
    return found is DISK or found is MOUNT_POINT


def is_nic_key(key: str) -> bool:
    """Whether a config key is a NIC (``netN``)."""
    return property_format(key) is NET


_GENERIC = PropertyFormat()


@lru_cache(maxsize=65536)  # a guest's property strings repeat in every version: parse once
def _items(fmt: PropertyFormat, text: str) -> tuple[tuple[str, str], ...]:
    items: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep:
            # The unnamed item; PVE takes it wherever it stands.
            items.setdefault(fmt.default or "", part)
        elif fmt is NET and name in NIC_MODELS and "model" not in items:
            items["model"], items["macaddr"] = name, value  # virtio=BC:24:11:...
        else:
            items.setdefault(fmt.aliases.get(name, name), value)
    return tuple(items.items())


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, list | tuple | dict):
        return None
    return str(scalar(value))


def parse_property(key: str, value: Any) -> dict[str, str]:
    """A property string as its items, the default item named (``volume``, ``model``, ...).

    ``parse_property("net0", "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,tag=20")`` is
    ``{"model": "virtio", "macaddr": "BC:24:11:2E:C5:4A", "bridge": "vmbr0", "tag": "20"}``. A
    key that is no property string of ours is parsed generically (an unnamed item as ``""``).
    """
    text = _text(value)
    if text is None:
        return {}
    return dict(_items(property_format(key) or _GENERIC, text))


def _item_text(name: str, value: Any) -> str:
    if name in FLAG_KEYS:
        found = parse_flag(value)
        if found is not None:
            return str(found)
    if name == "size":
        size = size_bytes(value)
        if size is not None:
            return format_size(size)
    return value if isinstance(value, str) else str(scalar(value))


def format_property(key: str, items: Mapping[str, Any]) -> str:
    """Items as Proxmox writes the property string (``PVE::JSONSchema::print_property_string``):
    the default item bare (a qemu NIC as ``model=macaddr``), required items, then the rest in
    sorted order; flags as ``0``/``1`` and sizes in their largest exact unit.

    Proxmox prints this way the values it parses and writes back itself (NICs, disks,
    ``rootfs``/``mpN``); other keys keep the order the client sent, which compares the same.
    """
    fmt = property_format(key) or _GENERIC
    present = {name: value for name, value in items.items() if value is not None}
    parts: list[str] = []
    if fmt is NET and "model" in present:
        model, mac = present.pop("model"), present.pop("macaddr", None)
        parts.append(f"{model}={mac}" if mac else str(model))
    elif fmt.default is not None and fmt.default in present:
        parts.append(str(present.pop(fmt.default)))
    elif "" in present:
        parts.append(str(present.pop("")))
    first = [name for name in (*fmt.required, *(fmt.order or ())) if name in present]
    rest = sorted(name for name in present if name not in first)
    parts.extend(f"{name}={_item_text(name, present[name])}" for name in (*first, *rest))
    return ",".join(parts)


def same_item(name: str, old: Any, new: Any) -> bool:
    """Whether two values of one property-string item are the same: flags as flags, sizes as
    sizes, MAC addresses in any case, numbers as numbers."""
    if old == new:
        return True
    if name in FLAG_KEYS:
        flags = parse_flag(old), parse_flag(new)
        if flags[0] is not None:
            return flags[0] == flags[1]
    elif name == "size":
        sizes = size_bytes(old), size_bytes(new)
        if sizes[0] is not None:
            return sizes[0] == sizes[1]
    elif name in ("macaddr", "hwaddr"):
        return str(old).upper() == str(new).upper()
    return bool(scalar(old) == scalar(new))


def same_property(key: str, old: Any, new: Any) -> bool:
    """Whether two property strings say the same, item by item in any order (see
    :func:`same` for masked items)."""
    before, after = parse_property(key, old), parse_property(key, new)
    if before == after:
        return True
    for name in before.keys() | after.keys():
        was, now = before.get(name), after.get(name)
        if now == MASK and was is not None:
            continue  # a masked option tells nothing new
        if was is None or now is None or not same_item(name, was, now):
            return False
    return True


class Nic(NamedTuple):
    """What a NIC attaches to."""

    bridge: str
    tag: int | str | None
    """The VLAN tag (an int), None when untagged."""


@lru_cache(maxsize=65536)
def _nic(value: str) -> Nic | None:
    items = dict(_items(NET, value))
    bridge = items.get("bridge")
    if not bridge:
        return None
    tag: int | str | None = items.get("tag")
    if isinstance(tag, str) and tag.isdigit():
        tag = int(tag)
    return Nic(bridge, tag)


def nic_bridge(value: Any) -> Nic | None:
    """The bridge and VLAN tag of a ``netN`` value, or None when it names no bridge."""
    return _nic(value) if isinstance(value, str) else None


# -- volumes and backups -------------------------------------------------------------------------

_VOLID = re.compile(r"([a-z][a-z0-9\-_.]*):(.+)", re.IGNORECASE | re.DOTALL)
_OWNER_DIR = re.compile(r"(\d+)/")
_OWNER_NAME = re.compile(r"(?:vm|base|subvol|basevol)-(\d+)-")


class VolumeId(NamedTuple):
    """A volume id ``storage:volume`` (``local-lvm:vm-100-disk-0``)."""

    storage: str
    volume: str

    def __str__(self) -> str:
        return f"{self.storage}:{self.volume}"

    @property
    def owner(self) -> int | None:
        """The vmid owning the volume: ``local:100/vm-100-disk-0.qcow2``, ``vm-100-disk-1``,
        ``base-9000-disk-0/vm-100-disk-0`` (a linked clone is its own guest's); else None."""
        found = _OWNER_DIR.match(self.volume)
        if found is not None:
            return int(found.group(1))
        found = _OWNER_NAME.match(self.volume.rsplit("/", 1)[-1])
        return int(found.group(1)) if found is not None else None


def parse_volid(value: Any) -> VolumeId | None:
    """A volume id split into storage and volume; None for ``none``, ``cdrom``, a host path
    (``/mnt/foo``) or anything without a storage."""
    if not isinstance(value, str):
        return None
    found = _VOLID.fullmatch(value)
    if found is None:
        return None
    return VolumeId(found.group(1), found.group(2))


@lru_cache(maxsize=65536)  # a guest's disk strings repeat in every version: parse once
def _disk_volume(value: str) -> VolumeId | None:
    items = _items(DISK, value)
    volume = next((text for name, text in items if name == "volume"), "")
    return parse_volid(volume)


def disk_volume(value: Any) -> VolumeId | None:
    """The volume a disk, ``rootfs``, ``mpN`` or ``unusedN`` value uses, or None (an empty
    drive ``none,media=cdrom``, a host bind mount ``/mnt/foo,mp=/data``)."""
    return _disk_volume(value) if isinstance(value, str) else None


# A vzdump archive (PVE::Storage::archive_info): vzdump-{type}-{vmid}-{YYYY_MM_DD-hh_mm_ss}.ext,
# anchored at the start of the file name; PBS snapshots: backup/{vm|ct}/{vmid}/{RFC 3339 time}.
_VZDUMP = re.compile(
    r"(?:^|[/:])vzdump-(qemu|lxc|openvz)-(\d+)-(?:(\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\b)?"
)
_PBS = re.compile(r"(?:^|[/:])backup/(vm|ct)/(\d+)/([^/]+)$")


class BackupName(NamedTuple):
    """What a backup's volume name says: the guest and when it was taken."""

    guest_type: str
    """``qemu`` or ``lxc`` (an ``openvz`` archive restores as a container)."""
    vmid: int
    time: str | None
    """As written: ``2025_11_17-23_51_27`` (vzdump, the node's local time) or
    ``2023-12-14T04:34:34Z`` (PBS, UTC); None when the name has none."""


def parse_backup_name(value: Any) -> BackupName | None:
    """The guest and time a backup volume names, from its volid, volume or resource id."""
    if not isinstance(value, str):
        return None
    found = _VZDUMP.search(value)
    if found is not None:
        kind = "qemu" if found.group(1) == "qemu" else "lxc"
        return BackupName(kind, int(found.group(2)), found.group(3))
    found = _PBS.search(value)
    if found is not None:
        kind = "qemu" if found.group(1) == "vm" else "lxc"
        return BackupName(kind, int(found.group(2)), found.group(3))
    return None


# -- equality ------------------------------------------------------------------------------------

SET_FIELDS = frozenset({"content", "members", "pending_delete"})
"""State fields holding lists whose order means nothing (besides ``tags``)."""


def same(key: str, old: Any, new: Any) -> bool:
    """Whether ``new``, observed for ``key`` after ``old``, shows no change of it.

    The one rule of "the same value": the collectors append a change only where this is False,
    and the read side lists a change only where it is False. ``key`` is a state field or a
    config key (or ``""``); it decides how values compare: ``tags`` as tag sets, storage
    ``content`` and the like as sets, property strings key by key in any order, flags as flags,
    sizes as sizes, everything else as :func:`scalar` forms; dicts key by key, lists in order.
    None means absent: absent and present differ.

    A masked value (:data:`MASK`, whole or as one option of a property string) is unknown, so it
    equals nothing, and the question is only what the new observation tells:

    * ``new`` masked, ``old`` present: True. The observation says nothing about the value, so
      nothing changed that we could know; the old value stands (the log keeps its fingerprint).
    * ``old`` masked, ``new`` known: False. The log learns a value it did not know, recorded as
      a change from "unknown" (not necessarily a change of the real value).
    * ``old`` absent, ``new`` masked: False; the key appeared, with a value we cannot see.
    """
    if old is new or (type(old) is type(new) and old == new):
        return True
    if key == "tags":
        return tag_set(old) == tag_set(new)
    if key in SET_FIELDS:
        return sorted(map(str, map(scalar, split_list(old)))) == sorted(
            map(str, map(scalar, split_list(new)))
        )
    if old is None or new is None:
        return False
    if is_masked(new):
        return True
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(same(k, old[k], new[k]) for k in old)
    if isinstance(old, list | tuple) and isinstance(new, list | tuple):
        return len(old) == len(new) and all(same("", a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, list | tuple | dict) or isinstance(new, list | tuple | dict):
        return False
    if property_format(key) is not None or (isinstance(new, str) and MASK in new):
        return same_property(key, old, new)
    if key == "hotplug":
        return hotplug_set(old) == hotplug_set(new)
    return same_item(key, old, new)


# -- tasks ---------------------------------------------------------------------------------------
_UPID = re.compile(r"UPID:[^:]+:[0-9A-F]{8}:[0-9A-F]{8,9}:([0-9A-F]{8}):", re.IGNORECASE)


def upid_started(upid: Any) -> int | None:
    """A task's start (epoch seconds) from its UPID (pve-api.md §4 "UPID format": the fifth
    field, eight hex digits); None for anything that is not a UPID."""
    match = _UPID.match(upid) if isinstance(upid, str) else None
    return int(match.group(1), 16) if match else None
