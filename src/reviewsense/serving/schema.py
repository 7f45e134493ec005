"""The HTTP API's types: requests, answers, errors and limits (what the OpenAPI schema shows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

INLINE_CHARS = 20_000  # requests up to this many characters are scored on the event loop


DEFAULT_THRESHOLD = 0.5  # label = probability >= threshold, unless a request says otherwise


@dataclass(frozen=True)
class Limits:
    max_texts: int = 1_000  # texts per request
    max_chars: int = 100_000  # characters per text
    max_body_bytes: int = 10 * 1024 * 1024
    body_timeout: float = 30.0  # seconds for the whole request body to arrive
    max_top_k: int = 50


# -- schema ---------------------------------------------------------------------------------
class PredictRequest(BaseModel):
    # strict: JSON types exactly as the schema states them (no "5" for 5, no 0 for false)
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"texts": ["The movie was great!", "The movie was terrible..."], "explain": False}]})

    texts: list[str] = Field(description="the texts to score, in order (limits: see GET /v1/model)")
    explain: bool = Field(False, description="also return the words/n-grams that pushed each score up and down")
    top_k: int = Field(10, ge=1, description="features per direction in explanations")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=1, allow_inf_nan=False,
                             description="two classes only: the probability at which the label turns positive "
                                         "(label = probability >= threshold); a model of more classes labels each "
                                         "text with its top class and answers 422 to a request that sets this")

    @field_validator("top_k", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        """JSON Schema's integers include 13.0; a strict int would refuse it."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


class Contribution(BaseModel):
    feature: str
    contribution: float = Field(description="added to the logit by this word/n-gram")


class Token(BaseModel):
    token: str
    start: int = Field(description="character offset of the word in the text")
    end: int
    contribution: float


class ExplanationOut(BaseModel):
    explained: str | None = Field(None, description="more than two classes: the class whose logit the "
                                                    "contributions add up to (the top label)")
    logit: float
    bias: float
    positive: list[Contribution]
    negative: list[Contribution]
    tokens: list[Token]


class PredictionOut(BaseModel):
    probability: float = Field(ge=0, le=1, description="two classes: probability of the positive class "
                                                        "(class_names[1]); more: of the top label")
    label: int = Field(description="index of the label in class_names")
    label_name: str
    probabilities: dict[str, float] | None = Field(None, description="more than two classes: every class's "
                                                                     "probability, by name")
    explanation: ExplanationOut | None = None


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    family: str
    format_version: int | None
    reviewsense_version: str | None = Field(description="version that trained the model")
    server_version: str
    created: str | None = Field(description="when the model was trained (UTC)")
    class_names: list[str]
    vocabulary_size: int | None
    explain: bool = Field(description="whether POST /v1/predict can explain this model's scores")
    metrics: dict[str, Any] = Field(description="metrics recorded at training time (test, validation)")
    limits: dict[str, Any]


class Problem(BaseModel):
    detail: str | list[dict[str, Any]]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "invalid Content-Length, a compressed body that does not decompress, or "
                                           "a Host that is not a loopback name on a server bound to loopback"},
    401: {"model": Problem, "description": "missing or wrong API key (when the server has one)"},
    403: {"model": Problem, "description": "a request from a web page (Origin) other than the server's own and the "
                                           "CORS origins it allows"},
    408: {"model": Problem, "description": "the request body did not arrive in time"},
    413: {"model": Problem, "description": "request body (compressed or decompressed) over the server's size limit"},
    415: {"model": Problem, "description": "a Content-Type other than application/json, or a Content-Encoding "
                                           "other than gzip, deflate or identity"},
    422: {"model": Problem, "description": "malformed JSON, wrong fields/types, more texts / longer texts than the "
                                           "server's limits (see GET /v1/model), or a text the model computes NaN "
                                           "or infinite probabilities for"},
}


def validation_problems(errors, prefix: tuple = ()) -> list[dict[str, Any]]:
    """Validation errors as ``{loc, msg, type}``, never echoing the input: values are left
    out and long field names (a client's, in an unknown field) are cut short."""
    def short(part):
        return part if not isinstance(part, str) or len(part) <= 40 else part[:37] + "..."
    return [{"loc": [*prefix, *map(short, err.get("loc", ()))], "msg": str(err.get("msg", ""))[:200],
             "type": err.get("type", "")} for err in errors]


def request_schema(limits: Limits) -> dict[str, Any]:
    """The JSON schema of a predict request, with this server's limits in it."""
    schema = PredictRequest.model_json_schema()
    texts = schema["properties"]["texts"]
    texts["maxItems"] = limits.max_texts
    texts["items"]["maxLength"] = limits.max_chars
    schema["properties"]["top_k"]["maximum"] = limits.max_top_k
    return schema

