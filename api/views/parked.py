"""/api/admin/parked-records: call and operator records PostgreSQL refused (issue 8).

The record writer parks a refused row with PostgreSQL's error instead of retrying it forever
(``storage/records.py``); admins list them here, newest first. ``payload`` is the record as the
engine had it, as JSON text (NUL bytes escaped). Admin only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from api.errors import json_response
from api.http import parse_query, row_json
from api.routing import Route
from api.state import SERVICES
from storage.parked import list_parked


class ParkedQuery(BaseModel):
    skip: int = Field(0, ge=0, le=1_000_000_000)
    limit: int = Field(100, ge=1, le=1000)


class ParkedRecord(BaseModel):
    id: int
    kind: Literal["call", "operator"]
    record_id: str
    payload: str
    error: str
    attempts: int
    first_parked_at: datetime
    parked_at: datetime


class ParkedPage(BaseModel):
    items: list[ParkedRecord]
    total: int


async def list_parked_records(request: web.Request) -> web.Response:
    query = parse_query(request, ParkedQuery)
    rows, total = await list_parked(request.app[SERVICES].pool, skip=query.skip,
                                    limit=query.limit)
    return json_response({"items": [row_json(r) for r in rows], "total": total})


ROUTES: list[Route] = [
    Route("GET", "/api/admin/parked-records", list_parked_records, ("admin",),
          "Records PostgreSQL refused (parked with its error; every other record was written)",
          query=ParkedQuery, response=ParkedPage, tags=("admin",)),
]
