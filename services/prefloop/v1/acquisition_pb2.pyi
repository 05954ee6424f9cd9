from prefloop.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SelectRequest(_message.Message):
    __slots__ = ("run", "method", "params_json", "seed", "estimate", "mask", "judge_scores", "models")
    RUN_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    JUDGE_SCORES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    run: _common_pb2.RunRef
    method: str
    params_json: str
    seed: int
    estimate: _common_pb2.RewardEstimate
    mask: _common_pb2.Tensor
    judge_scores: _common_pb2.Tensor
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run: _Optional[_Union[_common_pb2.RunRef, _Mapping]] = ..., method: _Optional[str] = ..., params_json: _Optional[str] = ..., seed: _Optional[int] = ..., estimate: _Optional[_Union[_common_pb2.RewardEstimate, _Mapping]] = ..., mask: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., judge_scores: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class SelectResponse(_message.Message):
    __slots__ = ("pairs", "info_json")
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Pair]
    info_json: str
    def __init__(self, pairs: _Optional[_Iterable[_Union[_common_pb2.Pair, _Mapping]]] = ..., info_json: _Optional[str] = ...) -> None: ...

class ListMethodsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Method(_message.Message):
    __slots__ = ("name", "kind", "needs", "paper", "summary", "params_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    PAPER_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    needs: _containers.RepeatedScalarFieldContainer[str]
    paper: str
    summary: str
    params_json: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., needs: _Optional[_Iterable[str]] = ..., paper: _Optional[str] = ..., summary: _Optional[str] = ..., params_json: _Optional[str] = ...) -> None: ...

class ListMethodsResponse(_message.Message):
    __slots__ = ("methods",)
    METHODS_FIELD_NUMBER: _ClassVar[int]
    methods: _containers.RepeatedCompositeFieldContainer[Method]
    def __init__(self, methods: _Optional[_Iterable[_Union[Method, _Mapping]]] = ...) -> None: ...
