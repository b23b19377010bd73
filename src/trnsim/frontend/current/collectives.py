"""`nki.collectives`: collective communication among the ranks of a launch.

trnsim simulates the ranks that exist inside one launch: the NeuronCores of `kernel[2]` (or the single core of
an LNC=1 launch). A replica group naming ranks outside the launch is rejected with a clear error. Every rank of a
group must call the same sequence of collectives; the call blocks until all ranks of the group arrived (a
mismatch or a rank that never arrives is reported, never a hang), then the result is computed in fp32 and every
rank's destination is written.
"""

from __future__ import annotations

from typing import Any

from ...core.context import current
from ...core.errors import NkiTypeError, NkiUnsupportedError, NkiValidationError
from ...core.source import caller_location
from ...core.tensor import Tensor
from ...isa import collectives as _cc
from .isa import NkiInstruction, VirtualRegister
from .language import NKIObject
from .lnc import scheduler
from .tensor import TiView


class ReplicaGroup(NKIObject):
    """Disjoint groups of ranks, e.g. ReplicaGroup([[0, 1]])."""

    def __init__(self, replica_groups: Any = None) -> None:
        groups = [[0]] if replica_groups is None else replica_groups
        if groups and isinstance(groups[0], int):
            groups = [groups]
        self.replica_groups = [tuple(int(r) for r in g) for g in groups]
        seen: set[int] = set()
        for g in self.replica_groups:
            if seen & set(g) or len(set(g)) != len(g):
                raise NkiValidationError(
                    f"ReplicaGroup: groups must be disjoint lists of distinct ranks, got {groups}",
                    code="err_invalid_replica_group",
                    loc=caller_location(),
                )
            seen |= set(g)

    def group_of(self, rank: int, api: str) -> tuple[int, ...]:
        for g in self.replica_groups:
            if rank in g:
                return g
        raise NkiValidationError(
            f"{api}: rank {rank} is in none of the replica groups {self.replica_groups}",
            code="err_invalid_replica_group",
            loc=caller_location(),
        )

    def __repr__(self) -> str:
        return f"ReplicaGroup({[list(g) for g in self.replica_groups]})"


def _group(rg: Any, api: str) -> tuple[int, ...]:
    if isinstance(rg, ReplicaGroup):
        return rg.group_of(current().core, api)
    if isinstance(rg, (list, tuple)):
        return ReplicaGroup(rg).group_of(current().core, api)
    raise NkiTypeError(f"{api}: replica_group must be a ReplicaGroup, got {type(rg).__name__}", code="err_invalid_operand",
                       loc=caller_location())


def _tensors(x: Any, api: str, nm: str) -> list[Tensor]:
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise NkiTypeError(f"{api}: {nm}[{i}] must be a tensor, got {type(t).__name__}", code="err_invalid_operand",
                               loc=caller_location())
        if isinstance(t, TiView):
            raise NkiUnsupportedError(
                f"{api}: {nm}[{i}] is a tensor-indirection view (NkiTensor.indirect), which is documented for compute "
                f"instructions only",
                code="err_unsupported_api", loc=caller_location(),
            )
    return items


def _run(kind: str, api: str, group: tuple[int, ...], srcs: list, dsts: list, op: Any = None, **extra: Any) -> NkiInstruction:
    loc = caller_location()
    sched = scheduler()
    if sched is None:
        raise NkiUnsupportedError(f"{api} needs a current-API launch", code="err_unsupported_api", loc=loc)
    rank = current().core
    payload = _cc.RankCall(rank, srcs, dsts, loc, extra)

    def perform(slot: dict[int, tuple]) -> None:
        calls = [slot[r][1] for r in group]

        def guard(call: _cc.RankCall):
            return sched.check_access(call.srcs, call.dsts, call.loc)

        _cc.run_collective(kind, calls, op=op, api=api, guard=guard)

    sched.collective(group, kind, payload, loc, perform)
    return NkiInstruction(None, extra.get("name"))


def all_reduce(srcs: Any, dsts: Any, replica_group: Any, op: Any, priority: Any = None, name: str | None = None) -> NkiInstruction:
    """dsts = op over the ranks of the group of srcs (op: nl.add / nl.maximum / nl.minimum)."""
    api = "nki.collectives.all_reduce"
    return _run("all_reduce", api, _group(replica_group, api), _tensors(srcs, api, "srcs"), _tensors(dsts, api, "dsts"), op)


def all_gather(srcs: Any, dsts: Any, replica_group: Any, collective_dim: int = 0, priority: Any = None,
               name: str | None = None) -> NkiInstruction:
    """dsts = concatenation of every rank's srcs along collective_dim (rank order of the group)."""
    api = "nki.collectives.all_gather"
    return _run("all_gather", api, _group(replica_group, api), _tensors(srcs, api, "srcs"), _tensors(dsts, api, "dsts"),
                collective_dim=collective_dim)


def reduce_scatter(srcs: Any, dsts: Any, replica_group: Any, collective_dim: int = 0, op: Any = None,
                   priority: Any = None, name: str | None = None) -> NkiInstruction:
    """dsts = this rank's slice (along collective_dim) of op over the ranks' srcs."""
    api = "nki.collectives.reduce_scatter"
    return _run("reduce_scatter", api, _group(replica_group, api), _tensors(srcs, api, "srcs"),
                _tensors(dsts, api, "dsts"), op, collective_dim=collective_dim)


def all_to_all(srcs: Any, dsts: Any, replica_group: Any, collective_dim: int = 0, priority: Any = None,
               name: str | None = None) -> NkiInstruction:
    """Rank i's j-th slice of srcs goes to rank j's i-th slice of dsts (HBM)."""
    api = "nki.collectives.all_to_all"
    return _run("all_to_all", api, _group(replica_group, api), _tensors(srcs, api, "srcs"), _tensors(dsts, api, "dsts"),
                collective_dim=collective_dim)


def collective_permute(srcs: Any, dsts: Any, source_target_pairs: Any, priority: Any = None,
                       name: str | None = None) -> NkiInstruction:
    """Send srcs along explicit (source, target) rank pairs; a rank nobody sends to keeps its dsts."""
    api = "nki.collectives.collective_permute"
    pairs = [(int(a), int(b)) for a, b in source_target_pairs]
    ranks = tuple(sorted({r for p in pairs for r in p}))
    sources = {b: a for a, b in pairs}
    return _run("permute", api, ranks, _tensors(srcs, api, "srcs"), _tensors(dsts, api, "dsts"), sources=sources)


def _ring_sources(group: tuple[int, ...]) -> dict[int, int]:
    n = len(group)
    return {group[i]: group[(i - 1) % n] for i in range(n)}


def collective_permute_implicit(srcs_by_channel: Any, dsts_by_channel: Any, replica_group: Any, channel_ids: Any = (0,),
                                priority: Any = None, name: str | None = None) -> NkiInstruction:
    """Ring step: every rank sends to its successor and receives from its predecessor in the group."""
    api = "nki.collectives.collective_permute_implicit"
    group = _group(replica_group, api)
    return _run("permute", api, group, _tensors(srcs_by_channel, api, "srcs"), _tensors(dsts_by_channel, api, "dsts"),
                sources=_ring_sources(group))


def collective_permute_implicit_reduce(srcs0_by_channel: Any, srcs1_by_channel: Any, dsts_by_channel: Any,
                                       replica_group: Any, op: Any, channel_ids: Any = (0,), priority: Any = None,
                                       name: str | None = None) -> NkiInstruction:
    """Ring step with reduction: dsts = op(predecessor's srcs0, this rank's srcs1)."""
    api = "nki.collectives.collective_permute_implicit_reduce"
    group = _group(replica_group, api)
    return _run("permute_reduce", api, group, _tensors(srcs0_by_channel, api, "srcs0"),
                _tensors(dsts_by_channel, api, "dsts"), op, sources=_ring_sources(group),
                srcs1=_tensors(srcs1_by_channel, api, "srcs1"))


def collective_permute_implicit_current_processing_rank_id(iteration_id: Any, replica_group: Any, channel_id: int = 0,
                                                           name: str | None = None) -> VirtualRegister:
    """Register holding the rank whose data this rank processes in ring step `iteration_id` (step 0: its own)."""
    api = "nki.collectives.collective_permute_implicit_current_processing_rank_id"
    group = _group(replica_group, api)
    it = iteration_id.get(api, caller_location()) if isinstance(iteration_id, VirtualRegister) else int(iteration_id)
    pos = group.index(current().core)
    return VirtualRegister(group[(pos - it) % len(group)], name="rank")


def rank_id(name: str | None = None) -> VirtualRegister:
    """This rank's id (a register)."""
    return VirtualRegister(current().core, name="rank_id")


def _run_v(kind: str, srcs: Any, dsts: Any, replica_group: Any, metadata_tensor: Any, recv_counts_known: bool,
           has_rdispls: bool, name: str | None) -> NkiInstruction:
    api = f"nki.collectives.{kind}"
    loc = caller_location()
    run = current()
    group = _group(replica_group, api)
    meta = _cc.check_metadata(metadata_tensor, len(group), bool(has_rdispls), api, loc)
    if kind == "all_gather_v" and has_rdispls:
        run.warn(
            "warn_unsupported_collective_option",
            f"{api}: has_rdispls=True is documented but not yet supported by the Neuron compiler; trnsim places the "
            f"chunks at the recv displacements (metadata row 3)",
            loc,
        )
    sched = scheduler()
    if sched is None:
        raise NkiUnsupportedError(f"{api} needs a current-API launch", code="err_unsupported_api", loc=loc)
    s_list, d_list = _tensors(srcs, api, "srcs"), _tensors(dsts, api, "dsts")
    payload = _cc.RankCall(run.core, s_list, d_list, loc, {"metadata": meta, "name": name})
    known = bool(recv_counts_known)

    def perform(slot: dict[int, tuple]) -> None:
        calls = [slot[r][1] for r in group]

        def guard(call: _cc.RankCall):
            m = call.extra["metadata"]
            return sched.check_access(call.srcs + [m], call.dsts + ([] if known else [m]), call.loc)

        _cc.run_collective_v(kind, calls, api=api, has_rdispls=bool(has_rdispls), recv_counts_known=known,
                             guard=guard)

    sched.collective(group, kind, payload, loc, perform)
    return NkiInstruction(None, name)


def all_gather_v(srcs: Any, dsts: Any, replica_group: Any, metadata_tensor: Any, recv_counts_known: bool = False,
                 has_rdispls: bool = False, priority: Any = None, name: str | None = None) -> NkiInstruction:
    """Variable-size all-gather over flat element buffers: every rank broadcasts src[send_displ : + send_count]
    (metadata rows 0 / 1, first column) into slot `position of the sender` of every rank's dst (dst elements /
    group size each, or at recv_displs with has_rdispls); row 2 receives the counts unless recv_counts_known."""
    return _run_v("all_gather_v", srcs, dsts, replica_group, metadata_tensor, recv_counts_known, has_rdispls, name)


def all_to_all_v(srcs: Any, dsts: Any, replica_group: Any, metadata_tensor: Any, recv_counts_known: bool = False,
                 has_rdispls: bool = False, priority: Any = None, name: str | None = None) -> NkiInstruction:
    """Variable-size all-to-all over flat element buffers: rank s sends src[send_displs[j] : + send_counts[j]] to
    the rank at group position j, which stores it in slot s of its dst (or at recv_displs[s] with has_rdispls);
    row 2 of each receiver's metadata gets the received counts unless recv_counts_known."""
    return _run_v("all_to_all_v", srcs, dsts, replica_group, metadata_tensor, recv_counts_known, has_rdispls, name)
