"""Property: for random sequences of config edits on a stopped guest (a VM and a container),
made through the Proxmox API and observed by the collectors, the plan back to the time before
them, executed with proxmoxer as given, lands on the target, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.service import CollectorService
from eventstore import open_store, utcnow
from tests.pve import ServedPve
from tests.rollback.rollback_helpers import differences, executed, observe, plan, state

GUESTS = {
    "qemu": ("lab/qemu/101", "nodes/pve2/qemu/101"),
    "lxc": ("lab/lxc/200", "nodes/pve2/lxc/200"),
}
TEXTS = st.sampled_from(["first run", "second: with colon", "ops team", "x"])
TAGS = st.lists(st.sampled_from(["a", "b", "prod", "web"]), min_size=1, max_size=3, unique=True)
_COMMON = [
    st.tuples(st.just("cores"), st.integers(1, 8)),
    st.tuples(st.just("memory"), st.sampled_from([512, 1024, 2048, 4096])),
    st.tuples(st.just("description"), TEXTS | st.none()),
    st.tuples(st.just("onboot"), st.sampled_from([0, 1]) | st.none()),
    st.tuples(st.just("tags"), TAGS.map(";".join) | st.none()),
]
EDITS = {
    "qemu": st.one_of(
        *_COMMON,
        st.tuples(st.just("sockets"), st.integers(1, 2) | st.none()),
        st.tuples(
            st.just("net1"),
            st.sampled_from(["", ",tag=20", ",firewall=1"]).map(
                lambda extra: f"virtio=BC:24:11:00:01:01,bridge=vmbr0{extra}"
            )
            | st.none(),
        ),
    ),
    "lxc": st.one_of(
        *_COMMON,
        st.tuples(st.just("swap"), st.sampled_from([0, 256, 512])),
        st.tuples(st.just("searchdomain"), st.sampled_from(["lab", "example.org"]) | st.none()),
    ),
}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, list[tuple[str, Any]], list[bool]]:
    kind = draw(st.sampled_from(sorted(GUESTS)))
    edits = draw(st.lists(EDITS[kind], min_size=1, max_size=5))
    observed = draw(st.lists(st.booleans(), min_size=len(edits), max_size=len(edits)))
    return kind, edits, observed


def test_plan_then_execute_lands_on_the_target(
    database_url: str, served: ServedPve, operator: Any
) -> None:
    operator.nodes("pve2").lxc(200).status.stop.post()  # both guests stopped

    @settings(
        max_examples=20,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(scenario=scenarios())
    def check(scenario: tuple[str, list[tuple[str, Any]], list[bool]]) -> None:
        asyncio.run(_example(database_url, served, operator, *scenario))

    check()


async def _example(
    url: str,
    served: ServedPve,
    operator: Any,
    kind: str,
    edits: list[tuple[str, Any]],
    observed: list[bool],
) -> None:
    rid, path = GUESTS[kind]
    store = await open_store(url)
    collector = CollectorService(
        store,
        [served.cluster_config("lab")],
        fingerprint_key=b"test-key",
        environ=served.environ,
    )
    try:
        await store.migrate()
        await observe(store, collector)
        t = utcnow()
        target = await state(store, rid)
        for (key, value), look in zip(edits, observed, strict=True):
            if value is None:
                operator(path).config.put(delete=key)
            else:
                operator(path).config.put(**{key: value})
            if look:
                await observe(store, collector)
        await observe(store, collector)
        found = await plan(store, rid, at=t)
        assert found.blockers == []
        assert [s.action for s in found.steps] in ([], ["config"])
        after = await executed(store, collector, operator, found, rid)
        assert differences(target, after) == [], found
    finally:
        await collector.stop()
        await store.close()
