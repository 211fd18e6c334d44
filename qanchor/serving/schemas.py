"""Request field types, response models and typed errors of the embedding service's HTTP API.

The API methods in ``services/service.py`` take the field types below (BentoML builds the
request schema and the OpenAPI document from them) and return the models; the errors carry the
HTTP status the service answers with.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from qanchor.errors import QAnchorError

# Bounds on request fields: a malformed or oversized field is rejected before any work.
UserId = Annotated[str, Field(min_length=1, max_length=128, description="user id")]
# Stripped before the length check, so a whitespace-only query is a 400, not an embedding.
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=512),
    Field(description="scenario name or query"),
]
# Strict: JSON true is not the integer 1.
Tokens = Annotated[int, Field(strict=True, ge=1, le=64, description="most tokens to decode")]


class ServingError(QAnchorError):
    """An error caused by the request; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, **detail: object) -> None:
        super().__init__(message)
        self.message, self.detail = message, detail

    def body(self) -> dict[str, object]:
        return {"error": self.message, **self.detail}


class BadRequest(ServingError):
    status = 400


class UnknownScenario(ServingError):
    status = 400


class UnknownUsers(ServingError):
    status = 404


class NotServing(ServingError):
    """The service cannot serve (e.g. its feature store was built for another model)."""

    status = 503


class TooLarge(ServingError):
    status = 413


class EmbedResult(BaseModel):
    """One user's embedding for one scenario or query."""

    user_id: str
    scenario: str | None = Field(description="scenario name (None for a free-text query)")
    query: str = Field(description="the query text the embedding is conditioned on")
    vector: list[float]
    model_version: str
    feature_version: str = Field(description="hash of the user's served features")
    prefix_cached: bool = Field(description="whether the user's prefix KV came from the cache")


class BatchResult(BaseModel):
    """Embeddings of users x scenarios: ``vectors[i][j]`` is user i for column j."""

    user_ids: list[str]
    columns: list[str] = Field(description="scenario names, then free-text queries")
    vectors: list[list[list[float]]]
    model_version: str
    feature_versions: list[str]
    prefix_cached: list[bool]


class Explanation(BaseModel):
    """A short text about a user for a query, decoded from the user's cached prefix."""

    user_id: str
    query: str
    text: str
    model_version: str
    feature_version: str
    prefix_cached: bool


class ScenarioInfo(BaseModel):
    name: str
    query: str
    adapter_version: str = Field(description="content hash of the scenario's adapter files")


class ScenarioList(BaseModel):
    model_version: str
    scenarios: list[ScenarioInfo]


class PushEvent(BaseModel):
    """One new event, as in the input contract's events.parquet."""

    user_id: UserId
    ts: datetime
    source: Annotated[str, Field(min_length=1, max_length=64)]
    text: Annotated[str, Field(min_length=1, max_length=2048)]
    value: Annotated[float | None, Field(allow_inf_nan=False)] = None


class PushResult(BaseModel):
    events: int
    stale: list[str] = Field(description="users whose features changed")
    versions: dict[str, str] = Field(description="new feature version per pushed user")
    invalidated: int = Field(description="cached prefixes dropped")
