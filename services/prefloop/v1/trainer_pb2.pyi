from prefloop.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainRequest(_message.Message):
    __slots__ = ("run", "pairs", "pair_ids", "prompts_done", "prompts_total", "seed")
    RUN_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    PAIR_IDS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_DONE_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    run: _common_pb2.RunRef
    pairs: _containers.RepeatedCompositeFieldContainer[_common_pb2.LabelledPair]
    pair_ids: _containers.RepeatedScalarFieldContainer[str]
    prompts_done: int
    prompts_total: int
    seed: int
    def __init__(self, run: _Optional[_Union[_common_pb2.RunRef, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[_common_pb2.LabelledPair, _Mapping]]] = ..., pair_ids: _Optional[_Iterable[str]] = ..., prompts_done: _Optional[int] = ..., prompts_total: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class TrainResponse(_message.Message):
    __slots__ = ("model_version", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    model_version: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, model_version: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("run", "version")
    RUN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    run: str
    version: int
    def __init__(self, run: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...
