"""The steps every call goes through (besides `embed`, which the vector layer adds)."""

from __future__ import annotations

from typing import Any

from swarmnode.service.args import check_args, checker
from swarmnode.service.chain import Hooks, Next
from swarmnode.service.table import OpSpec, Request
from swarmnode.storage.lmdb_store import Store


class Validate:
    """Arguments checked against the operation table; `req.args` becomes the checked map.

    Only a check before the call: in a chain it runs inline (`hooks`), with the
    operation's arguments checker bound once (`args.checker`)."""

    name = "validate"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, req: Request, nxt: Next) -> Any:
        if req.known:
            visible = req.notes.get("readable")
            req.args = check_args(req.spec, req.args, self.store.catalog, visible)
        return await nxt(req)

    def hooks(self, spec: OpSpec) -> Hooks:
        check = checker(spec)
        store = self.store

        def enter(req: Request) -> bool:
            req.args = check(req.args, store.catalog, req.notes.get("readable"))
            return False

        return Hooks(enter=enter)
