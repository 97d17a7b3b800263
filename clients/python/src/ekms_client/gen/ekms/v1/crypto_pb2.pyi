from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataKeySpec(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AES_256: _ClassVar[DataKeySpec]
    AES_128: _ClassVar[DataKeySpec]
AES_256: DataKeySpec
AES_128: DataKeySpec

class Field(_message.Message):
    __slots__ = ("table", "column")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    table: str
    column: str
    def __init__(self, table: _Optional[str] = ..., column: _Optional[str] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("field", "module")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MODULE_FIELD_NUMBER: _ClassVar[int]
    field: Field
    module: str
    def __init__(self, field: _Optional[_Union[Field, _Mapping]] = ..., module: _Optional[str] = ...) -> None: ...

class EncryptRequest(_message.Message):
    __slots__ = ("target", "plaintext", "context")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    target: Target
    plaintext: bytes
    context: bytes
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., plaintext: _Optional[bytes] = ..., context: _Optional[bytes] = ...) -> None: ...

class EncryptResponse(_message.Message):
    __slots__ = ("ciphertext", "key_version")
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    key_version: int
    def __init__(self, ciphertext: _Optional[bytes] = ..., key_version: _Optional[int] = ...) -> None: ...

class DecryptRequest(_message.Message):
    __slots__ = ("target", "ciphertext", "context")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    target: Target
    ciphertext: bytes
    context: bytes
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., context: _Optional[bytes] = ...) -> None: ...

class DecryptResponse(_message.Message):
    __slots__ = ("plaintext", "key_version")
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    plaintext: bytes
    key_version: int
    def __init__(self, plaintext: _Optional[bytes] = ..., key_version: _Optional[int] = ...) -> None: ...

class RewrapRequest(_message.Message):
    __slots__ = ("target", "ciphertext", "context")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    target: Target
    ciphertext: bytes
    context: bytes
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., context: _Optional[bytes] = ...) -> None: ...

class RewrapResponse(_message.Message):
    __slots__ = ("ciphertext", "key_version", "changed")
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    ciphertext: bytes
    key_version: int
    changed: bool
    def __init__(self, ciphertext: _Optional[bytes] = ..., key_version: _Optional[int] = ..., changed: _Optional[bool] = ...) -> None: ...

class EncryptItem(_message.Message):
    __slots__ = ("id", "target", "plaintext", "context", "items")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    target: Target
    plaintext: bytes
    context: bytes
    items: _containers.RepeatedCompositeFieldContainer[EncryptItem]
    def __init__(self, id: _Optional[str] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., plaintext: _Optional[bytes] = ..., context: _Optional[bytes] = ..., items: _Optional[_Iterable[_Union[EncryptItem, _Mapping]]] = ...) -> None: ...

class EncryptResult(_message.Message):
    __slots__ = ("id", "status", "ciphertext", "key_version", "results")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: _status_pb2.Status
    ciphertext: bytes
    key_version: int
    results: _containers.RepeatedCompositeFieldContainer[EncryptResult]
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., key_version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[EncryptResult, _Mapping]]] = ...) -> None: ...

class DecryptItem(_message.Message):
    __slots__ = ("id", "target", "ciphertext", "context", "items")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    target: Target
    ciphertext: bytes
    context: bytes
    items: _containers.RepeatedCompositeFieldContainer[DecryptItem]
    def __init__(self, id: _Optional[str] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., context: _Optional[bytes] = ..., items: _Optional[_Iterable[_Union[DecryptItem, _Mapping]]] = ...) -> None: ...

class DecryptResult(_message.Message):
    __slots__ = ("id", "status", "plaintext", "key_version", "results")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PLAINTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: _status_pb2.Status
    plaintext: bytes
    key_version: int
    results: _containers.RepeatedCompositeFieldContainer[DecryptResult]
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., plaintext: _Optional[bytes] = ..., key_version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[DecryptResult, _Mapping]]] = ...) -> None: ...

class EncryptBatchRequest(_message.Message):
    __slots__ = ("target", "items")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    target: Target
    items: _containers.RepeatedCompositeFieldContainer[EncryptItem]
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., items: _Optional[_Iterable[_Union[EncryptItem, _Mapping]]] = ...) -> None: ...

class EncryptBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EncryptResult]
    def __init__(self, results: _Optional[_Iterable[_Union[EncryptResult, _Mapping]]] = ...) -> None: ...

class DecryptBatchRequest(_message.Message):
    __slots__ = ("target", "items")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    target: Target
    items: _containers.RepeatedCompositeFieldContainer[DecryptItem]
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., items: _Optional[_Iterable[_Union[DecryptItem, _Mapping]]] = ...) -> None: ...

class DecryptBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DecryptResult]
    def __init__(self, results: _Optional[_Iterable[_Union[DecryptResult, _Mapping]]] = ...) -> None: ...

class RewrapItem(_message.Message):
    __slots__ = ("id", "target", "ciphertext", "context")
    ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    target: Target
    ciphertext: bytes
    context: bytes
    def __init__(self, id: _Optional[str] = ..., target: _Optional[_Union[Target, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., context: _Optional[bytes] = ...) -> None: ...

class RewrapResult(_message.Message):
    __slots__ = ("id", "status", "ciphertext", "key_version", "changed")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: _status_pb2.Status
    ciphertext: bytes
    key_version: int
    changed: bool
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., ciphertext: _Optional[bytes] = ..., key_version: _Optional[int] = ..., changed: _Optional[bool] = ...) -> None: ...

class RewrapBatchRequest(_message.Message):
    __slots__ = ("target", "items")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    target: Target
    items: _containers.RepeatedCompositeFieldContainer[RewrapItem]
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., items: _Optional[_Iterable[_Union[RewrapItem, _Mapping]]] = ...) -> None: ...

class RewrapBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RewrapResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RewrapResult, _Mapping]]] = ...) -> None: ...

class GenerateDataKeyRequest(_message.Message):
    __slots__ = ("target", "context", "key_spec")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_SPEC_FIELD_NUMBER: _ClassVar[int]
    target: Target
    context: bytes
    key_spec: DataKeySpec
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., context: _Optional[bytes] = ..., key_spec: _Optional[_Union[DataKeySpec, str]] = ...) -> None: ...

class GenerateDataKeyResponse(_message.Message):
    __slots__ = ("plaintext_key", "sealed_key", "key_version")
    PLAINTEXT_KEY_FIELD_NUMBER: _ClassVar[int]
    SEALED_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    plaintext_key: bytes
    sealed_key: bytes
    key_version: int
    def __init__(self, plaintext_key: _Optional[bytes] = ..., sealed_key: _Optional[bytes] = ..., key_version: _Optional[int] = ...) -> None: ...

class GenerateDataKeyWithoutPlaintextResponse(_message.Message):
    __slots__ = ("sealed_key", "key_version")
    SEALED_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    sealed_key: bytes
    key_version: int
    def __init__(self, sealed_key: _Optional[bytes] = ..., key_version: _Optional[int] = ...) -> None: ...

class DecryptDataKeyRequest(_message.Message):
    __slots__ = ("target", "sealed_key", "context")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SEALED_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    target: Target
    sealed_key: bytes
    context: bytes
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., sealed_key: _Optional[bytes] = ..., context: _Optional[bytes] = ...) -> None: ...

class DecryptDataKeyResponse(_message.Message):
    __slots__ = ("plaintext_key", "key_version")
    PLAINTEXT_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    plaintext_key: bytes
    key_version: int
    def __init__(self, plaintext_key: _Optional[bytes] = ..., key_version: _Optional[int] = ...) -> None: ...

class ComputeMacRequest(_message.Message):
    __slots__ = ("target", "value", "context", "key_version")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    target: Target
    value: bytes
    context: bytes
    key_version: int
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., value: _Optional[bytes] = ..., context: _Optional[bytes] = ..., key_version: _Optional[int] = ...) -> None: ...

class ComputeMacResponse(_message.Message):
    __slots__ = ("mac", "key_version")
    MAC_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    mac: bytes
    key_version: int
    def __init__(self, mac: _Optional[bytes] = ..., key_version: _Optional[int] = ...) -> None: ...

class VerifyMacRequest(_message.Message):
    __slots__ = ("target", "value", "mac", "context")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    target: Target
    value: bytes
    mac: bytes
    context: bytes
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., value: _Optional[bytes] = ..., mac: _Optional[bytes] = ..., context: _Optional[bytes] = ...) -> None: ...

class VerifyMacResponse(_message.Message):
    __slots__ = ("key_version",)
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    key_version: int
    def __init__(self, key_version: _Optional[int] = ...) -> None: ...
