from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunRef(_message.Message):
    __slots__ = ("run", "round")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    run: str
    round: int
    def __init__(self, run: _Optional[str] = ..., round: _Optional[int] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("model", "text", "score", "prompt_tokens", "completion_tokens", "principle")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPLE_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    score: float
    prompt_tokens: int
    completion_tokens: int
    principle: str
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., principle: _Optional[str] = ...) -> None: ...

class Prompt(_message.Message):
    __slots__ = ("prompt_id", "text", "messages", "source", "responses", "generation_failures")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FAILURES_FIELD_NUMBER: _ClassVar[int]
    prompt_id: str
    text: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    source: str
    responses: _containers.RepeatedCompositeFieldContainer[Response]
    generation_failures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompt_id: _Optional[str] = ..., text: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., source: _Optional[str] = ..., responses: _Optional[_Iterable[_Union[Response, _Mapping]]] = ..., generation_failures: _Optional[_Iterable[str]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("shape", "dtype", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class RewardEstimate(_message.Message):
    __slots__ = ("mean", "std", "samples", "features", "pref_mean", "pref_var", "model_version")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PREF_MEAN_FIELD_NUMBER: _ClassVar[int]
    PREF_VAR_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    mean: Tensor
    std: Tensor
    samples: Tensor
    features: Tensor
    pref_mean: Tensor
    pref_var: Tensor
    model_version: int
    def __init__(self, mean: _Optional[_Union[Tensor, _Mapping]] = ..., std: _Optional[_Union[Tensor, _Mapping]] = ..., samples: _Optional[_Union[Tensor, _Mapping]] = ..., features: _Optional[_Union[Tensor, _Mapping]] = ..., pref_mean: _Optional[_Union[Tensor, _Mapping]] = ..., pref_var: _Optional[_Union[Tensor, _Mapping]] = ..., model_version: _Optional[int] = ...) -> None: ...

class Pair(_message.Message):
    __slots__ = ("prompt_index", "first", "second", "score", "pseudo_label")
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    SECOND_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PSEUDO_LABEL_FIELD_NUMBER: _ClassVar[int]
    prompt_index: int
    first: int
    second: int
    score: float
    pseudo_label: int
    def __init__(self, prompt_index: _Optional[int] = ..., first: _Optional[int] = ..., second: _Optional[int] = ..., score: _Optional[float] = ..., pseudo_label: _Optional[int] = ...) -> None: ...

class PairToJudge(_message.Message):
    __slots__ = ("pair_id", "prompt", "a", "b")
    PAIR_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    pair_id: str
    prompt: Prompt
    a: Response
    b: Response
    def __init__(self, pair_id: _Optional[str] = ..., prompt: _Optional[_Union[Prompt, _Mapping]] = ..., a: _Optional[_Union[Response, _Mapping]] = ..., b: _Optional[_Union[Response, _Mapping]] = ...) -> None: ...

class Annotation(_message.Message):
    __slots__ = ("pair_id", "winner", "probability_a", "score_a", "score_b", "tie", "rationale", "aspects", "failure", "usage")
    class AspectsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PAIR_ID_FIELD_NUMBER: _ClassVar[int]
    WINNER_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_A_FIELD_NUMBER: _ClassVar[int]
    SCORE_A_FIELD_NUMBER: _ClassVar[int]
    SCORE_B_FIELD_NUMBER: _ClassVar[int]
    TIE_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    ASPECTS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    pair_id: str
    winner: int
    probability_a: float
    score_a: float
    score_b: float
    tie: bool
    rationale: str
    aspects: _containers.ScalarMap[str, float]
    failure: str
    usage: JudgeUsage
    def __init__(self, pair_id: _Optional[str] = ..., winner: _Optional[int] = ..., probability_a: _Optional[float] = ..., score_a: _Optional[float] = ..., score_b: _Optional[float] = ..., tie: _Optional[bool] = ..., rationale: _Optional[str] = ..., aspects: _Optional[_Mapping[str, float]] = ..., failure: _Optional[str] = ..., usage: _Optional[_Union[JudgeUsage, _Mapping]] = ...) -> None: ...

class JudgeUsage(_message.Message):
    __slots__ = ("calls", "failed_calls", "prompt_tokens", "completion_tokens", "seconds", "cache_hits", "cost")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILED_CALLS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    calls: int
    failed_calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cache_hits: int
    cost: float
    def __init__(self, calls: _Optional[int] = ..., failed_calls: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., seconds: _Optional[float] = ..., cache_hits: _Optional[int] = ..., cost: _Optional[float] = ...) -> None: ...

class LabelledPair(_message.Message):
    __slots__ = ("pair_id", "run", "prompt_id", "row_json")
    PAIR_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    ROW_JSON_FIELD_NUMBER: _ClassVar[int]
    pair_id: str
    run: RunRef
    prompt_id: str
    row_json: str
    def __init__(self, pair_id: _Optional[str] = ..., run: _Optional[_Union[RunRef, _Mapping]] = ..., prompt_id: _Optional[str] = ..., row_json: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("run", "version", "uri", "state")
    RUN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    run: str
    version: int
    uri: str
    state: bytes
    def __init__(self, run: _Optional[str] = ..., version: _Optional[int] = ..., uri: _Optional[str] = ..., state: _Optional[bytes] = ...) -> None: ...
