"""The Proxmox value rules (collectors/values.py), table by table from pve-api.md §3 and §8.

Every example string is one the sheet shows (captured from real clusters or Proxmox's own
code); where a row is made up to cover a rule, it says so.
"""

from __future__ import annotations

from typing import Any

import pytest

from collectors import values as v
from collectors.events import Discovered
from collectors.values import MASK
from eventstore import EventStore
from projections.fold import tags_column
from projections.queries import inventory, resource_at
from projections.runner import ProjectionRunner
from tests.collectors.conftest import CollectorFactory
from tests.projections.projection_helpers import at, guest_state, new
from tests.pve import ServedPve

FP = "hmac-sha256:0123abcd"  # a fingerprinted secret as the log holds it

# -- tags (§8.6, §4.3) ---------------------------------------------------------------------------
TAGS: list[tuple[str, list[str]]] = [
    ("prod;web", ["prod", "web"]),  # stored form
    ("db;prod", ["db", "prod"]),  # /cluster/resources
    ("tag1;tag2", ["tag1", "tag2"]),  # lxc config from a real cluster
    ("go-proxmox+cloud-init", ["go-proxmox+cloud-init"]),  # one tag
    ("one, two, three", ["one", "two", "three"]),  # old fixtures: comma and space
    ("prod,web", ["prod", "web"]),
    ("prod web", ["prod", "web"]),
    ("a;b,c d\te\nf", ["a", "b", "c", "d", "e", "f"]),  # every separator split_list knows
    (";;a,,;b;", ["a", "b"]),  # empty items are no tags
    ("web;prod", ["web", "prod"]),  # order kept by the split; compared as a set
    ("", []),
]


@pytest.mark.parametrize(("text", "tags"), TAGS)
def test_tags_split_as_proxmox_splits_them(text: str, tags: list[str]) -> None:
    assert v.split_tags(text) == tags
    assert v.tag_set(text) == frozenset(tags)
    assert v.split_tags(tags) == tags  # a list is already split
    assert v.format_tags(text) == ";".join(tags)


def test_a_nul_byte_alone_separates() -> None:
    # PVE::Tools::split_list: with a NUL in the text, only NULs separate
    assert v.split_list("a b\0c") == ["a b", "c"]


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("Web;prod,web", ["prod", "web"]),  # lower-cased, de-duplicated, sorted
        ("b a", ["a", "b"]),
        ("", []),
    ],
)
def test_tags_normalised_as_proxmox_stores_them(text: str, stored: list[str]) -> None:
    assert v.normalise_tags(text) == stored


def test_tag_style_options() -> None:
    assert v.normalise_tags("Web;a", case_sensitive=True) == ["Web", "a"]
    assert v.normalise_tags("web;a", ordered=True) == ["web", "a"]
    assert v.is_valid_tag("go-proxmox+cloud-init")
    assert not v.is_valid_tag("-starts-with-dash")


# -- sizes (§3, §8.4) ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("32G", 32 << 30),
        ("32768M", 32 << 30),
        ("33554432K", 32 << 30),
        ("34359738368", 32 << 30),  # bytes without a unit
        (34359738368, 32 << 30),  # bytes as a number (status, resources)
        ("1T", 1 << 40),
        ("4M", 4 << 20),
        ("1.5G", 1536 << 20),
        ("30g", 30 << 30),
        ("big", None),
        (None, None),
    ],
)
def test_sizes(text: Any, size: int | None) -> None:
    assert v.size_bytes(text) == size


@pytest.mark.parametrize(
    ("size", "text"),
    [(32 << 30, "32G"), (1 << 40, "1T"), (4 << 20, "4M"), (1536 << 20, "1536M"), (1000, "1000")],
)
def test_sizes_written_as_proxmox_writes_them(size: int, text: str) -> None:
    assert v.format_size(size) == text


# -- property strings (§8.1-§8.5) ----------------------------------------------------------------
PROPERTY_STRINGS: list[tuple[str, str, dict[str, str]]] = [
    # qemu NICs: the model is the key of the MAC (§8.2)
    (
        "net0",
        "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1,tag=20",
        {
            "model": "virtio",
            "macaddr": "BC:24:11:2E:C5:4A",
            "bridge": "vmbr0",
            "firewall": "1",
            "tag": "20",
        },
    ),
    (
        "net1",
        "virtio=BC:24:11:AA:BB:CC,bridge=vmbr1",
        {"model": "virtio", "macaddr": "BC:24:11:AA:BB:CC", "bridge": "vmbr1"},
    ),
    (
        "net0",
        "e1000=ff:ff:ff:ff:ff:ff,bridge=vmbr0",
        {"model": "e1000", "macaddr": "ff:ff:ff:ff:ff:ff", "bridge": "vmbr0"},
    ),
    # lxc NIC from a real cluster (§4.12): name is required, so printed first
    (
        "net0",
        "name=eth0,bridge=vmbr0,firewall=1,hwaddr=5D:CF:BD:B2:C5:39,ip=dhcp,type=veth",
        {
            "name": "eth0",
            "bridge": "vmbr0",
            "firewall": "1",
            "hwaddr": "5D:CF:BD:B2:C5:39",
            "ip": "dhcp",
            "type": "veth",
        },
    ),
    # qemu disks (§8.4, §4.8)
    ("scsi0", "local-lvm:vm-100-disk-0", {"volume": "local-lvm:vm-100-disk-0"}),
    (
        "scsi1",
        "storage:vm-103-disk-3,size=30G",
        {"volume": "storage:vm-103-disk-3", "size": "30G"},
    ),
    ("ide2", "none,media=cdrom", {"volume": "none", "media": "cdrom"}),
    (
        "ide2",
        "local:iso/debian-12.iso,media=cdrom",
        {"volume": "local:iso/debian-12.iso", "media": "cdrom"},
    ),
    (
        "ide2",
        "local-lvm:vm-100-cloudinit,media=cdrom",
        {"volume": "local-lvm:vm-100-cloudinit", "media": "cdrom"},
    ),
    (
        "ide2",
        "local:9012/vm-9012-cloudinit.qcow2,media=cdrom",
        {"volume": "local:9012/vm-9012-cloudinit.qcow2", "media": "cdrom"},
    ),
    (
        "virtio0",
        "local-zfs:base-9000-disk-0/vm-100-disk-0,size=32G",
        {"volume": "local-zfs:base-9000-disk-0/vm-100-disk-0", "size": "32G"},
    ),
    (
        "efidisk0",
        "local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M",
        {
            "volume": "local-lvm:vm-100-disk-1",
            "efitype": "4m",
            "pre-enrolled-keys": "1",
            "size": "4M",
        },
    ),
    (
        "tpmstate0",
        "local-lvm:vm-100-disk-2,size=4M,version=v2.0",
        {"volume": "local-lvm:vm-100-disk-2", "size": "4M", "version": "v2.0"},
    ),
    ("unused0", "local-lvm:vm-100-disk-3", {"volume": "local-lvm:vm-100-disk-3"}),
    # lxc root and mount points (§8.4, §4.12); mp= is required, so printed before the rest
    (
        "rootfs",
        "vmstore:subvol-101-disk-0,size=30G",
        {"volume": "vmstore:subvol-101-disk-0", "size": "30G"},
    ),
    ("mp0", "/mnt/foo/bar,mp=/storage", {"volume": "/mnt/foo/bar", "mp": "/storage"}),
    (  # made up: a volume mount point with options after mp=
        "mp1",
        "local-lvm:vm-101-disk-1,mp=/data,backup=1,size=8G",
        {"volume": "local-lvm:vm-101-disk-1", "mp": "/data", "backup": "1", "size": "8G"},
    ),
    # other compound keys (§8.5, §4.8, §4.12)
    ("agent", "1,type=virtio", {"enabled": "1", "type": "virtio"}),
    ("startup", "order=1,up=30,down=60", {"order": "1", "up": "30", "down": "60"}),
    ("memory", "2048", {"current": "2048"}),
    ("features", "fuse=1,mknod=1,nesting=1", {"fuse": "1", "mknod": "1", "nesting": "1"}),
    (
        "meta",
        "creation-qemu=8.1.5,ctime=1717171717",
        {"creation-qemu": "8.1.5", "ctime": "1717171717"},
    ),
    (
        "smbios1",
        "uuid=863b31c3-42ca-4a92-aed7-4111f342f70a",
        {"uuid": "863b31c3-42ca-4a92-aed7-4111f342f70a"},
    ),
    ("boot", "order=scsi0;ide2;net0", {"order": "scsi0;ide2;net0"}),
    ("rng0", "source=/dev/urandom", {"source": "/dev/urandom"}),
]


@pytest.mark.parametrize(("key", "text", "items"), PROPERTY_STRINGS)
def test_property_strings_parse_and_format_back(key: str, text: str, items: dict[str, str]) -> None:
    assert v.parse_property(key, text) == items
    assert v.format_property(key, items) == text  # a round trip gives Proxmox's string
    assert v.same(key, text, text)


def _reordered(text: str) -> str:
    """The same items in another order: the unnamed one last, the rest reversed."""
    parts = text.split(",")
    return ",".join([*reversed(parts[1:]), parts[0]])


@pytest.mark.parametrize(("key", "text", "items"), PROPERTY_STRINGS)
def test_property_strings_compare_key_by_key_in_any_order(
    key: str, text: str, items: dict[str, str]
) -> None:
    shuffled = _reordered(text)
    assert v.parse_property(key, shuffled) == items
    assert v.same(key, shuffled, text)
    assert v.format_property(key, v.parse_property(key, shuffled)) == text


@pytest.mark.parametrize(
    ("key", "text", "items"),
    [
        # the long forms Proxmox accepts: model=/macaddr=, file=, volume=
        ("net0", "model=virtio,macaddr=BC:24:11:2E:C5:4A,bridge=vmbr0", None),
        ("scsi0", "file=local-lvm:vm-100-disk-0,size=32G", {"volume": "local-lvm:vm-100-disk-0"}),
        ("rootfs", "volume=vmstore:subvol-101-disk-0,size=30G", None),
        ("agent", "enabled=1,type=virtio", {"enabled": "1", "type": "virtio"}),
    ],
)
def test_long_forms_name_the_same_items(key: str, text: str, items: dict[str, str] | None) -> None:
    parsed = v.parse_property(key, text)
    short = {
        "net0": "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0",
        "scsi0": "local-lvm:vm-100-disk-0,size=32G",
        "rootfs": "vmstore:subvol-101-disk-0,size=30G",
        "agent": "1,type=virtio",
    }[key]
    assert v.format_property(key, parsed) == short
    assert v.same(key, text, short)
    if items is not None:
        assert items.items() <= parsed.items()


# -- equality (§3, §8, fakepve's differences in §10) ---------------------------------------------
SAME: list[tuple[str, Any, Any, bool]] = [
    # numbers as numbers or strings; a type alone is no difference
    ("cores", 4, "4", True),
    ("memory", 2048, "2048", True),  # PVE 8 returns memory as a string
    ("memory", 1024, "2048", False),
    ("cpulimit", "1.5", 1.5, True),
    ("cpulimit", "4.0", 4, True),
    ("cores", 4, 5, False),
    ("name", "007", "7", False),  # a name is no number
    ("name", "1e3", "1000", False),
    ("name", "web", "Web", False),
    ("description", None, "", False),  # absent and empty differ
    ("description", "", None, False),
    ("vmid", 105, "105", True),  # LXC lists before PVE 8.1
    # flags: 0/1, true/false, and what parse_boolean reads on a flag key
    ("onboot", 1, True, True),
    ("template", 0, False, True),
    ("onboot", "on", 1, True),
    ("protection", "yes", "1", True),
    ("onboot", "off", 1, False),
    ("status", "on", "1", False),  # not a flag key: a word is a word
    # tags and other sets
    ("tags", "prod;web", "web,prod", True),
    ("tags", "prod;web", ["web", "prod"], True),
    ("tags", None, [], True),
    ("tags", "prod", "prod;web", False),
    ("content", "images,rootdir", ["rootdir", "images"], True),
    ("content", ["backup"], ["backup", "iso"], False),
    ("members", ["lab/qemu/100", "lab/lxc/200"], ["lab/lxc/200", "lab/qemu/100"], True),
    ("pending_delete", None, [], True),
    # property strings: key by key, values by their kind
    (
        "net0",
        "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1,tag=20",
        "virtio=bc:24:11:2e:c5:4a,tag=20,firewall=on,bridge=vmbr0",
        True,
    ),
    (
        "net0",
        "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0",
        "virtio=BC:24:11:2E:C5:4A,bridge=vmbr1",
        False,
    ),
    (
        "net0",
        "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0",
        "e1000=BC:24:11:2E:C5:4A,bridge=vmbr0",
        False,
    ),
    ("net0", "virtio=BC:24:11:2E:C5:4A,bridge=vmbr0", "virtio=BC:24:11:2E:C5:4A", False),
    ("scsi0", "local-lvm:vm-100-disk-0,size=32G", "local-lvm:vm-100-disk-0,size=32768M", True),
    ("scsi0", "local-lvm:vm-100-disk-0,size=32G", "local-lvm:vm-100-disk-0,size=33554432K", True),
    ("scsi0", "local-lvm:vm-100-disk-0,size=32G", "local-lvm:vm-100-disk-0,size=64G", False),
    ("scsi0", "local-lvm:vm-100-disk-0,discard=on", "local-lvm:vm-100-disk-0,discard=1", False),
    ("scsi0", "local-lvm:vm-100-disk-0,ssd=1", "local-lvm:vm-100-disk-0,ssd=true", True),
    ("agent", 1, "enabled=1", True),
    ("agent", "1", "1,type=virtio", False),
    ("memory", "current=2048", 2048, True),
    ("startup", "order=1,up=30,down=60", "down=60,up=30,order=1", True),
    ("ipconfig0", "ip=dhcp,ip6=auto", "ip6=auto,ip=dhcp", True),
    ("description", "a=1,b=2", "b=2,a=1", False),  # text, not a property string
    ("hotplug", "1", "disk,network,usb", True),
    ("hotplug", "0", "network", False),
    # masked secrets: unknown, see values.same
    ("cipassword", FP, MASK, True),  # the observation tells nothing new
    ("cipassword", MASK, MASK, True),
    ("cipassword", None, MASK, False),  # the key appeared
    ("cipassword", MASK, FP, False),  # the log learns the value
    ("cipassword", MASK, None, False),  # the key went away
    ("mp0", f"nas:/export,mp=/data,password={FP}", f"nas:/export,mp=/data,password={MASK}", True),
    ("mp0", f"nas:/export,mp=/data,password={FP}", f"nas:/export,mp=/x,password={MASK}", False),
    ("options", f"a=1,password={FP}", f"password={MASK},a=1", True),
    # nested values, each key by its own rule
    (
        "config",
        {"tags": "b;a", "cores": 2, "net0": "virtio=AA:BB,bridge=vmbr0,tag=10"},
        {"tags": "a;b", "cores": "2", "net0": "virtio=AA:BB,tag=10,bridge=vmbr0"},
        True,
    ),
    ("config", {"cores": 2}, {"cores": 2, "memory": 512}, False),
    ("ha", {"state": "started", "max_restart": 1}, {"state": "started", "max_restart": "1"}, True),
    (
        "lxc",
        [["lxc.apparmor.profile", "unconfined"]],
        [["lxc.apparmor.profile", "unconfined"]],
        True,
    ),
    ("lxc", [["a", "1"], ["b", "2"]], [["b", "2"], ["a", "1"]], False),  # raw lines keep order
    ("config", {"cores": 2}, "cores=2", False),
]


@pytest.mark.parametrize(("key", "old", "new_value", "expected"), SAME)
def test_same_as_proxmox_means_it(key: str, old: Any, new_value: Any, expected: bool) -> None:
    assert v.same(key, old, new_value) is expected


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (1, 1),
        (0, 0),
        (True, 1),
        (False, 0),
        ("1", 1),
        ("true", 1),
        ("ON", 1),
        ("no", 0),
        ("x", None),
    ],
)
def test_flags(value: Any, flag: int | None) -> None:
    assert v.parse_flag(value) == flag
    assert v.as_flag(value) == (flag or 0)


@pytest.mark.parametrize(
    ("value", "number"),
    [(105, 105), ("105", 105), (True, 1), (4.0, 4), (4.5, None), ("0x10", None), (None, None)],
)
def test_integers_sent_as_numbers_or_strings(value: Any, number: int | None) -> None:
    assert v.as_int(value) == number


# -- volume ids (§8.4, §4.13) --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("volid", "storage", "volume", "owner"),
    [
        ("local-lvm:vm-100-disk-0", "local-lvm", "vm-100-disk-0", 100),  # lvm(thin)
        ("local:100/vm-100-disk-0.qcow2", "local", "100/vm-100-disk-0.qcow2", 100),  # dir
        (
            "local-zfs:base-9000-disk-0/vm-100-disk-0",
            "local-zfs",
            "base-9000-disk-0/vm-100-disk-0",
            100,
        ),
        ("ceph:vm-100-disk-1", "ceph", "vm-100-disk-1", 100),  # rbd
        ("vmstore:subvol-101-disk-0", "vmstore", "subvol-101-disk-0", 101),  # zfs container
        ("local-lvm:vm-100-cloudinit", "local-lvm", "vm-100-cloudinit", 100),
        ("local:iso/debian-12.iso", "local", "iso/debian-12.iso", None),
        (
            "local:backup/vzdump-qemu-100-2025_11_17-23_51_27.vma.zst",
            "local",
            "backup/vzdump-qemu-100-2025_11_17-23_51_27.vma.zst",
            None,
        ),
        (
            "pbs:backup/vm/931/2023-12-14T04:34:34Z",
            "pbs",
            "backup/vm/931/2023-12-14T04:34:34Z",
            None,
        ),
    ],
)
def test_volume_ids(volid: str, storage: str, volume: str, owner: int | None) -> None:
    parsed = v.parse_volid(volid)
    assert parsed == (storage, volume)
    assert parsed is not None
    assert str(parsed) == volid
    assert parsed.owner == owner


@pytest.mark.parametrize("value", ["none", "cdrom", "/mnt/foo/bar", "", None, 32])
def test_what_is_no_volume_id(value: Any) -> None:
    assert v.parse_volid(value) is None


@pytest.mark.parametrize(
    ("value", "volid"),
    [
        ("local-lvm:vm-100-disk-0,size=32G", "local-lvm:vm-100-disk-0"),
        ("file=local-lvm:vm-100-disk-0,size=32G", "local-lvm:vm-100-disk-0"),
        ("volume=vmstore:subvol-101-disk-0,size=30G", "vmstore:subvol-101-disk-0"),
        ("local:iso/debian-12.iso,media=cdrom", "local:iso/debian-12.iso"),  # names a volume
        ("local-lvm:vm-101-disk-1,mp=/data,backup=1,size=8G", "local-lvm:vm-101-disk-1"),
        ("none,media=cdrom", None),  # empty drive
        ("/mnt/foo/bar,mp=/storage", None),  # host bind mount
        (None, None),
    ],
)
def test_the_volume_a_disk_uses(value: Any, volid: str | None) -> None:
    found = v.disk_volume(value)
    assert (str(found) if found is not None else None) == volid


@pytest.mark.parametrize(
    ("value", "nic"),
    [
        ("virtio=BC:24:11:2E:C5:4A,bridge=vmbr0,firewall=1,tag=20", ("vmbr0", 20)),
        ("virtio=ff:ff:ff:ff:ff:ff,bridge=vmbr1", ("vmbr1", None)),
        (
            "name=eth0,bridge=vmbr0,firewall=1,hwaddr=5D:CF:BD:B2:C5:39,ip=dhcp,type=veth",
            ("vmbr0", None),
        ),
        ("virtio=BC:24:11:2E:C5:4A", None),  # no bridge: not attached
        (None, None),
    ],
)
def test_the_bridge_a_nic_uses(value: Any, nic: tuple[str, int | None] | None) -> None:
    assert v.nic_bridge(value) == nic


@pytest.mark.parametrize(
    ("key", "disk", "nic"),
    [
        ("scsi0", True, False),
        ("virtio15", True, False),
        ("sata5", True, False),
        ("ide2", True, False),
        ("efidisk0", True, False),
        ("tpmstate0", True, False),
        ("unused3", True, False),
        ("rootfs", True, False),
        ("mp9", True, False),
        ("net0", False, True),
        ("scsihw", False, False),
        ("serial0", False, False),
        ("memory", False, False),
    ],
)
def test_which_keys_are_disks_and_nics(key: str, disk: bool, nic: bool) -> None:
    assert v.is_disk_key(key) is disk
    assert v.is_nic_key(key) is nic


# -- backup volume names (§4.13) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "backup"),
    [
        (
            "local:backup/vzdump-qemu-100-2025_11_17-23_51_27.vma.zst",
            ("qemu", 100, "2025_11_17-23_51_27"),
        ),
        ("backup/vzdump-lxc-105-2025_11_17-22_59_58.tar.zst", ("lxc", 105, "2025_11_17-22_59_58")),
        ("vzdump-openvz-120-2014_01_01-00_00_00.tgz", ("lxc", 120, "2014_01_01-00_00_00")),
        ("pbs:backup/vm/931/2023-12-14T04:34:34Z", ("qemu", 931, "2023-12-14T04:34:34Z")),
        ("backup/ct/105/2023-12-14T04:34:34Z", ("lxc", 105, "2023-12-14T04:34:34Z")),
        # resource ids carry the volume too (CONTRACT.md)
        (
            "lab/backup/local/backup/vzdump-qemu-100-2026_11_01-00_00_01.vma.zst",
            ("qemu", 100, "2026_11_01-00_00_01"),
        ),
        (
            "lab/backup/pbs/backup/vm/100/2026-11-01T00:00:01Z",
            ("qemu", 100, "2026-11-01T00:00:01Z"),
        ),
        ("local:backup/vzdump-qemu-100-custom.vma.zst", ("qemu", 100, None)),  # not standard
        # anchored at the start of the file name: these name no guest
        ("local:backup/my-vzdump-qemu-100-2025_11_17-23_51_27.vma.zst", None),
        ("local:backup/vzdump-qemu-100.vma.zst", None),
        ("local:iso/vm/100/debian.iso", None),
        ("pbs:backup/host/pve1/2023-12-14T04:34:34Z", None),
        (None, None),
    ],
)
def test_backup_volume_names(name: Any, backup: tuple[str, int, str | None] | None) -> None:
    assert v.parse_backup_name(name) == backup


@pytest.mark.parametrize(
    ("content", "listed"),
    [
        ("images,rootdir", ["images", "rootdir"]),
        ("vztmpl,backup,iso", ["backup", "iso", "vztmpl"]),
        ("backup", ["backup"]),
        ("", []),
        (None, []),
    ],
)
def test_storage_content_lists(content: Any, listed: list[str]) -> None:
    assert v.content_list(content) == listed


# -- one tag rule for the collectors, the fold and the queries -----------------------------------
async def test_collectors_fold_and_queries_split_tags_alike(
    store: EventStore, make_collector: CollectorFactory, served: ServedPve
) -> None:
    """Tags read from Proxmox (the collectors), stored for the tag filter (the fold) and
    answered (the queries) are split by the one rule: no second copy disagrees."""
    collector = make_collector()
    await collector.sync("lab", deep=True)
    runner = ProjectionRunner(store)
    for number, (text, tags) in enumerate(TAGS):
        # the collectors: a raw tag string as /cluster/resources shows it
        served.pve.vm(101).config["tags"] = text
        await collector.sync("lab")
        # the fold and the queries: a state whose tags are still one string (older logs)
        rid = f"lab/qemu/{900 + number}"
        await store.append([new(rid, Discovered(state=guest_state(rid, tags=text)), number)])
        await runner.catch_up()
        assert tags_column(text) == (f";{';'.join(tags)};" if tags else "")
        assert (await resource_at(store, rid)).tags == tags
        for tag in tags:
            found = await inventory(store, tag=tag, at=at(number), type="qemu")
            assert rid in {r.id for r in found.items}, (text, tag)
        collected = await resource_at(store, "lab/qemu/101")
        assert collected.tags == tags, text
