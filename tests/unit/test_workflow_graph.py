"""Workflow graph rules (CONTRACT §7.11): topological order, cycles named, bad keys refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spooled_backend.core.errors import BadRequest
from spooled_backend.workflows.schemas import WorkflowJobIn
from spooled_backend.workflows.service import check_graph, find_cycle


def _jobs(deps: dict[str, list[str]]) -> list[WorkflowJobIn]:
    return [WorkflowJobIn(key=k, queue_name="q", payload={}, depends_on=v or None) for k, v in deps.items()]


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Random DAGs: node i may depend only on nodes < i; keys shuffled in request order."""
    n = draw(st.integers(min_value=1, max_value=40))
    deps = {f"k{i}": sorted({f"k{j}" for j in draw(st.lists(st.integers(0, i - 1), max_size=4))})
            if i else [] for i in range(n)}
    order = draw(st.permutations(list(deps)))
    return {k: deps[k] for k in order}


@settings(max_examples=100, deadline=None)
@given(dags())
def test_topological_order_puts_every_parent_first(deps: dict[str, list[str]]) -> None:
    order = check_graph(_jobs(deps))
    assert sorted(order) == sorted(deps)
    position = {k: i for i, k in enumerate(order)}
    for child, parents in deps.items():
        for parent in parents:
            assert position[parent] < position[child]


@settings(max_examples=100, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_is_reported_as_a_real_cycle(deps: dict[str, list[str]], data: st.DataObject) -> None:
    chains = [(c, p) for c, ps in deps.items() for p in ps]
    if not chains:
        return
    child, parent = data.draw(st.sampled_from(chains))
    deps[parent] = sorted(set(deps[parent]) | {child})  # parent now also waits for child
    cycle = find_cycle(deps)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) >= 3
    for waiter, waited in itertools.pairwise(cycle):
        assert waited in deps[waiter], (cycle, waiter, waited)
    with pytest.raises(BadRequest, match="Workflow has a dependency cycle: "):
        check_graph(_jobs(deps))


def test_a_thousand_long_chain_needs_no_recursion() -> None:
    deps = {f"n{i}": [f"n{i - 1}"] if i else [] for i in range(1000)}
    assert check_graph(_jobs(deps)) == [f"n{i}" for i in range(1000)]
    deps["n0"] = ["n999"]
    cycle = find_cycle(deps)
    assert cycle is not None and len(cycle) == 1001


def test_key_rules_in_order_duplicates_then_self_then_unknown() -> None:
    with pytest.raises(BadRequest, match="Duplicate job keys in workflow: 'a'"):
        check_graph(_jobs({"a": [], "b": ["a"]}) + _jobs({"a": ["b"]}))
    with pytest.raises(BadRequest, match="A job cannot depend on itself: 'a'"):
        check_graph(_jobs({"a": ["a", "ghost"]}))
    with pytest.raises(BadRequest, match="Unknown dependency keys: 'ghost'"):
        check_graph(_jobs({"a": ["ghost"], "b": ["a", "ghost"]}))
    many = {f"k{i}": [f"missing{i}"] for i in range(12)}
    with pytest.raises(BadRequest, match=r"and 2 more$"):
        check_graph(_jobs(many))
