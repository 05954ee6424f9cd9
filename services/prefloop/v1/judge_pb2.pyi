from prefloop.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JudgeRequest(_message.Message):
    __slots__ = ("run", "pairs")
    RUN_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    run: _common_pb2.RunRef
    pairs: _containers.RepeatedCompositeFieldContainer[_common_pb2.PairToJudge]
    def __init__(self, run: _Optional[_Union[_common_pb2.RunRef, _Mapping]] = ..., pairs: _Optional[_Iterable[_Union[_common_pb2.PairToJudge, _Mapping]]] = ...) -> None: ...

class JudgeResponse(_message.Message):
    __slots__ = ("annotations", "new_calls")
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    NEW_CALLS_FIELD_NUMBER: _ClassVar[int]
    annotations: _containers.RepeatedCompositeFieldContainer[_common_pb2.Annotation]
    new_calls: int
    def __init__(self, annotations: _Optional[_Iterable[_Union[_common_pb2.Annotation, _Mapping]]] = ..., new_calls: _Optional[int] = ...) -> None: ...
