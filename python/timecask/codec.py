"""Value codecs and order-preserving key encodings for typed table handles.

A value codec turns Python objects into the bytes timecask stores and back:

- ``"bytes"`` (the default): values are ``bytes``, stored as they are;
- ``"msgpack"``: dicts, lists, tuples (read back as lists), ints, floats,
  strings, bytes, bools, ``None`` and aware ``datetime`` objects, as
  self-describing MessagePack — maps with named fields, the format of the
  Rust typed layer's MessagePack codec (``rmp-serde`` with structs as maps);
  datetimes as the MessagePack timestamp extension (type -1), read back as
  aware UTC datetimes;
- ``"json"``: what ``json`` handles, as UTF-8 JSON (what the CLI shows as JSON);
- ``"str"``: text as UTF-8;
- any object with ``encode(obj) -> bytes`` and ``decode(bytes) -> obj``.

A key encoding turns keys into bytes whose byte order is the keys' natural
order, matching the Rust typed layer (``timecask::typed::Key``): ``"bytes"``
(bytes or str in, bytes out), ``"str"`` (UTF-8), ``"u8"``..``"u128"``
(big-endian), ``"i8"``..``"i128"`` (big-endian with the sign bit flipped).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import msgpack

from ._errors import CodecError

__all__ = ["Codec", "KeyCodec", "value_codec", "key_codec"]


class Codec(Protocol):
    """What a value codec provides."""

    name: str

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class _Bytes:
    name = "bytes"

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj)
        raise TypeError(f"this table stores bytes, not {type(obj).__name__}; open it with codec=\"msgpack\"")

    def decode(self, data: bytes) -> Any:
        return data


class _MsgPack:
    name = "msgpack"

    def encode(self, obj: Any) -> bytes:
        try:
            return msgpack.packb(obj, use_bin_type=True, datetime=True)
        except (TypeError, ValueError, OverflowError) as e:
            raise CodecError(f"cannot encode {type(obj).__name__} as MessagePack: {e}", codec=self.name) from e

    def decode(self, data: bytes) -> Any:
        try:
            return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)
        except Exception as e:  # msgpack raises several unrelated types
            raise CodecError(f"value is not valid MessagePack: {e}", codec=self.name) from e


class _Json:
    name = "json"

    def encode(self, obj: Any) -> bytes:
        try:
            return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as e:
            raise CodecError(f"cannot encode {type(obj).__name__} as JSON: {e}", codec=self.name) from e

    def decode(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as e:
            raise CodecError(f"value is not valid JSON: {e}", codec=self.name) from e


class _Str:
    name = "str"

    def encode(self, obj: Any) -> bytes:
        if not isinstance(obj, str):
            raise TypeError(f"this table stores str, not {type(obj).__name__}")
        return obj.encode()

    def decode(self, data: bytes) -> Any:
        try:
            return data.decode()
        except UnicodeDecodeError as e:
            raise CodecError(f"value is not UTF-8: {e}", codec=self.name) from e


_VALUE_CODECS = {c.name: c for c in (_Bytes(), _MsgPack(), _Json(), _Str())}


def value_codec(codec: Any = None) -> Codec:
    """The value codec named ``codec`` (``None``: bytes), or ``codec`` itself."""
    if codec is None:
        return _VALUE_CODECS["bytes"]
    if isinstance(codec, str):
        try:
            return _VALUE_CODECS[codec]
        except KeyError:
            raise ValueError(f"unknown codec {codec!r}; one of {sorted(_VALUE_CODECS)} or an object with encode/decode") from None
    if callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None)):
        return codec
    raise TypeError("a codec is a name or an object with encode(obj) and decode(bytes)")


class KeyCodec:
    """An order-preserving key encoding (see the module docs)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._width = 0
        self._signed = False
        if name in ("bytes", "str"):
            return
        if name[:1] in ("u", "i") and name[1:] in ("8", "16", "32", "64", "128"):
            self._width = int(name[1:]) // 8
            self._signed = name[0] == "i"
            return
        raise ValueError(f"unknown key encoding {name!r}; one of bytes, str, u8..u128, i8..i128")

    def encode(self, key: Any) -> bytes:
        if self._width:
            if not isinstance(key, int) or isinstance(key, bool):
                raise TypeError(f"a {self.name} key is an int, not {type(key).__name__}")
            bits = self._width * 8
            low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self._signed else (0, (1 << bits) - 1)
            if not low <= key <= high:
                raise OverflowError(f"{key} does not fit a {self.name} key")
            if self._signed:
                key += 1 << (bits - 1)  # flips the sign bit of the two's complement
            return key.to_bytes(self._width, "big")
        if self.name == "str":
            if not isinstance(key, str):
                raise TypeError(f"a str key is a str, not {type(key).__name__}")
            return key.encode()
        if isinstance(key, str):
            return key.encode()
        if isinstance(key, (bytes, bytearray)):
            return bytes(key)
        raise TypeError(f"a key is bytes or str, not {type(key).__name__}")

    def decode(self, data: bytes) -> Any:
        if self._width:
            if len(data) != self._width:
                raise CodecError(f"a {self.name} key has {self._width} bytes, this one {len(data)}", codec=self.name)
            n = int.from_bytes(data, "big")
            return n - (1 << (self._width * 8 - 1)) if self._signed else n
        if self.name == "str":
            try:
                return data.decode()
            except UnicodeDecodeError as e:
                raise CodecError(f"key is not UTF-8: {e}", codec=self.name) from e
        return data

    def __repr__(self) -> str:
        return f"KeyCodec({self.name!r})"


def key_codec(key: Any = None) -> KeyCodec:
    """The key encoding named ``key`` (``None``: bytes), or ``key`` itself."""
    if key is None:
        return KeyCodec("bytes")
    if isinstance(key, str):
        return KeyCodec(key)
    if callable(getattr(key, "encode", None)) and callable(getattr(key, "decode", None)):
        return key
    raise TypeError("a key encoding is a name or an object with encode(key) and decode(bytes)")
