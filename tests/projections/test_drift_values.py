"""Drift's value rules and desired-set documents, without a database: table-driven.

Values compare as Proxmox means them (the rules of collectors.values): numbers as numbers,
tags as sets, property strings key by key in any order, one item of a property string with
its unnamed first item named, sizes as sizes. A document is refused whole, naming the line
(400) or the field (422).
"""

from __future__ import annotations

from typing import Any

import pytest

from projections.drift.compare import Ignore, changed_fields, differs, value_of
from projections.drift.desired import parse_document
from projections.errors import InvalidParameterError, UnprocessableError

STATE = {
    "name": "web",
    "node": "pve1",
    "status": "running",
    "tags": ["prod", "web"],
    "pool": "prod",
    "lock": None,
    "config": {
        "memory": "4096",
        "cores": 2,
        "onboot": 1,
        "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0,tag=20,firewall=1",
        "scsi0": "local-lvm:vm-100-disk-0,iothread=1,size=32G",
        "rootfs": "local-lvm:subvol-200-disk-0,size=8G",
        "smbios1": "uuid=5c5b8d1e-0000-4000-8000-000000000001",
        "cipassword": "**********",
        "net1": "virtio=BC:24:11:00:00:02,bridge=vmbr1,secret=**********",
    },
}
NONE = Ignore(())


@pytest.mark.parametrize(
    ("field", "expected", "same"),
    [
        ("config.memory", 4096, True),
        ("config.memory", "4096", True),
        ("config.memory", 4096.0, True),
        ("config.memory", "4097", False),
        ("config.cores", "2", True),
        ("config.onboot", True, True),
        ("config.onboot", "yes", True),
        ("config.onboot", 0, False),
        ("tags", ["web", "prod"], True),
        ("tags", "web;prod", True),
        ("tags", "prod,web", True),
        ("tags", ["prod"], False),
        ("name", "web", True),
        ("name", "Web", False),
        ("pool", None, False),
        ("status", "stopped", False),
        # property strings key by key, in any order
        ("config.net0", "bridge=vmbr0,virtio=BC:24:11:00:00:01,firewall=1,tag=20", True),
        ("config.net0", "virtio=bc:24:11:00:00:01,bridge=vmbr0,tag=20,firewall=1", True),
        ("config.net0", "virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=20,firewall=1", False),
        ("config.scsi0", "local-lvm:vm-100-disk-0,size=32768M,iothread=1", True),
        ("config.scsi0", "file=local-lvm:vm-100-disk-0,size=32G,iothread=on", True),
        ("config.scsi0", "local-lvm:vm-100-disk-0,size=32G", False),
        # one item of a property string, the unnamed first one named
        ("config.net0.bridge", "vmbr0", True),
        ("config.net0.bridge", "vmbr1", False),
        ("config.net0.tag", 20, True),
        ("config.net0.model", "virtio", True),
        ("config.net0.macaddr", "bc:24:11:00:00:01", True),
        ("config.net0.firewall", True, True),
        ("config.net0.rate", None, True),
        ("config.net0.rate", "10", False),
        ("config.scsi0.size", "32G", True),
        ("config.scsi0.size", "32768M", True),
        ("config.scsi0.size", 34359738368, True),
        ("config.scsi0.size", "33G", False),
        ("config.scsi0.volume", "local-lvm:vm-100-disk-0", True),
        ("config.rootfs.volume", "local-lvm:subvol-200-disk-0", True),
        ("config.rootfs.size", "8192M", True),
        ("config.smbios1.uuid", "5c5b8d1e-0000-4000-8000-000000000001", True),
        # masked by Proxmox: unknown, so no difference
        ("config.cipassword", "secret", True),
        ("config.net1.secret", "x", True),
        # absent
        ("config.balloon", None, True),
        ("config.balloon", 0, False),
    ],
)
def test_values_compare_as_proxmox_means_them(field: str, expected: Any, same: bool) -> None:
    assert differs(field, expected, value_of(STATE, field), NONE) is not same


def test_an_ignored_item_of_a_property_string_is_left_out_of_the_whole_string() -> None:
    other_mac = "virtio=BC:24:11:FF:FF:FF,bridge=vmbr0,tag=20,firewall=1"
    assert differs("config.net0", other_mac, STATE["config"]["net0"], NONE)
    ignore = Ignore(["config.net*.macaddr"])
    assert not differs("config.net0", other_mac, STATE["config"]["net0"], ignore)
    other_bridge = other_mac.replace("vmbr0", "vmbr9")
    assert differs("config.net0", other_bridge, STATE["config"]["net0"], ignore)


def test_a_baseline_lists_each_changed_field_except_the_ignored_ones() -> None:
    later = {
        **STATE,
        "node": "pve2",
        "tags": ["web", "prod"],  # the same set
        "lock": "backup",
        "config": {
            **STATE["config"],
            "memory": 4096,  # the same number
            "cores": 4,
            "smbios1": "uuid=5c5b8d1e-0000-4000-8000-000000000002",
            "net0": "virtio=BC:24:11:00:00:02,bridge=vmbr0,tag=20,firewall=1",
            "vmgenid": "1234",
        },
    }
    fields = [f for f, _, _ in changed_fields(STATE, later, NONE)]
    assert fields == [
        "config.cores",
        "config.net0",
        "config.smbios1",
        "config.vmgenid",
        "lock",
        "node",
    ]
    ignore = Ignore(["config.smbios1", "config.vmgenid", "lock", "config.net*.macaddr"])
    assert changed_fields(STATE, later, ignore) == [
        ("config.cores", 2, 4),
        ("node", "pve1", "pve2"),
    ]


GOOD_YAML = b"""\
resources:
  - match: {id: lab/qemu/100}
    fields:
      config.memory: 4096
      config.net0.bridge: vmbr0
      config.scsi0.size: 32G
      tags: [prod, web]
    ignore: [config.net*.macaddr]
  - match: {cluster: lab, type: lxc, name: db}
    fields: {status: running}
"""


def test_a_yaml_and_a_json_document_parse_alike() -> None:
    from_yaml = parse_document(GOOD_YAML, yaml_text=True)
    as_json = (
        b'{"resources": [{"match": {"id": "lab/qemu/100"}, "fields": {"config.memory": 4096,'
        b' "config.net0.bridge": "vmbr0", "config.scsi0.size": "32G", "tags": ["prod", "web"]},'
        b' "ignore": ["config.net*.macaddr"]}, {"match": {"cluster": "lab", "type": "lxc",'
        b' "name": "db"}, "fields": {"status": "running"}}]}'
    )
    assert parse_document(as_json, yaml_text=False) == from_yaml
    assert from_yaml.resources[1].match.name == "db"


@pytest.mark.parametrize(
    ("body", "yaml_text", "line"),
    [
        (b'{"resources": [\n  {"match": {"id": "lab/qemu/100"},}\n]}', False, 2),
        (b'{"resources": []\n\n\n', False, 4),
        (b"resources:\n  - match: {id: lab/qemu/100}\n    fields: [unclosed\n", True, 4),
        (b"resources:\n  - match: {id: lab/qemu/100\n  bad: : :\n", True, 3),
        (b"resources:\n\t- tab\n", True, 2),
        (b"resources: []\n\xff\n", True, 2),
        (b"!!python/object:os.system {}\n", True, 1),
    ],
)
def test_a_document_that_does_not_parse_is_a_400_naming_the_line(
    body: bytes, yaml_text: bool, line: int
) -> None:
    with pytest.raises(InvalidParameterError) as caught:
        parse_document(body, yaml_text=yaml_text)
    assert caught.value.param == "body"
    assert caught.value.detail.startswith(f"line {line}:"), caught.value.detail


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"config.net0.bridge.x": "a"}, "config.net0.bridge.x"),
        ({"digest": "abc"}, "digest"),
        ({"lock": "backup"}, "lock"),
        ({"Config.memory": 1}, "Config.memory"),
        ({"config.": 1}, "config."),
        ({"config.cores.x": 1}, "config.cores.x"),
        ({"vmid": 100}, "vmid"),
        ({"config.memory": {"a": 1}}, "config.memory"),
        ({"config.memory": [1]}, "config.memory"),
        ({"name": ["a"]}, "name"),
    ],
)
def test_a_field_outside_the_contracts_forms_is_a_422_naming_it(
    fields: dict[str, Any], named: str
) -> None:
    import json

    body = json.dumps({"resources": [{"match": {"id": "lab/qemu/100"}, "fields": fields}]})
    with pytest.raises(UnprocessableError) as caught:
        parse_document(body.encode(), yaml_text=False)
    assert named in caught.value.detail, caught.value.detail


@pytest.mark.parametrize(
    ("document", "named"),
    [
        (b"[]", "resources"),
        (b'{"specs": []}', "resources"),
        (b'{"resources": [{"fields": {}}]}', "match"),
        (b'{"resources": [{"match": {}}]}', "match"),
        (b'{"resources": [{"match": {"id": "web"}}]}', "match"),
        (b'{"resources": [{"match": {"id": "lab/qemu/1", "name": "x"}}]}', "match"),
        (b'{"resources": [{"match": {"cluster": "lab", "type": "qemu"}}]}', "match"),
        (b'{"resources": [{"match": {"id": "lab/qemu/1"}, "colour": 1}]}', "colour"),
        (b'{"resources": [{"match": {"id": "lab/qemu/1"}, "ignore": "x"}]}', "ignore"),
        (b"resources:\n  - match: {id: lab/qemu/1}\n    fields: {name: 2026-11-01}\n", "name"),
    ],
)
def test_a_document_of_another_shape_is_a_422_naming_the_place(document: bytes, named: str) -> None:
    with pytest.raises(UnprocessableError) as caught:
        parse_document(document, yaml_text=document.startswith(b"resources:"))
    assert named in caught.value.detail, caught.value.detail


def test_yaml_aliases_cannot_expand_a_small_body_into_a_huge_document() -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 9):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]")
    lines.append("resources: []")
    body = "\n".join(lines).encode()
    assert len(body) < 2000
    with pytest.raises(UnprocessableError) as caught:
        parse_document(body, yaml_text=True)
    assert "expands" in caught.value.detail


def test_the_documented_example_set_parses() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "drift.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    document = parse_document(block.encode(), yaml_text=True)
    assert [spec.match.id for spec in document.resources] == ["lab/qemu/100", None]
    assert document.resources[0].fields["config.scsi0.size"] == "32G"
