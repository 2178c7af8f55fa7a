"""HTTP/2 framing (RFC 7540 section 4, 6) and HPACK header compression (RFC 7541) for the
synchronous gRPC client of kosctl (``kos.apis.client.syncgrpc``).

Only what a client of unary and server-streaming calls needs: building frames, splitting a
byte stream into frames, encoding request headers as literals (never indexed: the encoder
keeps no dynamic table) and decoding any header block a server sends (static and dynamic
table, Huffman strings, table size updates). Importing this module costs nothing beyond the
interpreter (no asyncio, h2 or hpack), which is the point: ``kosctl get`` pays for the
bytes it sends, not for a framework.
"""

from __future__ import annotations

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 7540 section 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# settings (section 6.5.2)
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
DEFAULT_WINDOW = 65535
MAX_WINDOW = 2**31 - 1
DEFAULT_MAX_FRAME = 16384

ERROR_CODES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
               "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
               "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")


class ProtocolError(Exception):
    """The peer broke HTTP/2 or HPACK."""


def error_name(code: int) -> str:
    return ERROR_CODES[code] if 0 <= code < len(ERROR_CODES) else f"error code {code}"


def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((ftype, flags)) + (stream & MAX_WINDOW).to_bytes(4, "big") + payload


def settings(values: dict[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in values.items()))


def window_update(stream: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream, increment.to_bytes(4, "big"))


def parse_settings(payload: bytes) -> dict[int, int]:
    if len(payload) % 6:
        raise ProtocolError(f"SETTINGS payload of {len(payload)} bytes is not a multiple of 6")
    return {int.from_bytes(payload[i:i + 2], "big"): int.from_bytes(payload[i + 2:i + 6], "big")
            for i in range(0, len(payload), 6)}


def split_frames(buf: bytearray, max_size: int = DEFAULT_MAX_FRAME) -> list[tuple[int, int, int, bytes]]:
    """Remove every complete frame from the front of ``buf``: (type, flags, stream, payload)."""
    out = []
    pos = 0
    while len(buf) - pos >= 9:
        length = int.from_bytes(buf[pos:pos + 3], "big")
        if length > max_size:
            raise ProtocolError(f"frame of {length} bytes exceeds the maximum frame size {max_size}")
        if len(buf) - pos < 9 + length:
            break
        ftype, flags = buf[pos + 3], buf[pos + 4]
        stream = int.from_bytes(buf[pos + 5:pos + 9], "big") & MAX_WINDOW
        out.append((ftype, flags, stream, bytes(buf[pos + 9:pos + 9 + length])))
        pos += 9 + length
    del buf[:pos]
    return out


def unpad(flags: int, payload: bytes, priority: bool = False) -> bytes:
    """The content of a DATA or HEADERS payload without padding (and priority fields)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            raise ProtocolError("padded frame without a pad length")
        start = 1
        end -= payload[0]
    if priority and flags & PRIORITY_FLAG:
        start += 5
    if end < start:
        raise ProtocolError("padding exceeds the frame payload")
    return payload[start:end]


# -- HPACK -------------------------------------------------------------------------------------

# RFC 7541 Appendix A
STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"), (":path", "/index.html"),
    (":scheme", "http"), (":scheme", "https"), (":status", "200"), (":status", "204"), (":status", "206"),
    (":status", "304"), (":status", "400"), (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""), ("accept", ""),
    ("access-control-allow-origin", ""), ("age", ""), ("allow", ""), ("authorization", ""),
    ("cache-control", ""), ("content-disposition", ""), ("content-encoding", ""), ("content-language", ""),
    ("content-length", ""), ("content-location", ""), ("content-range", ""), ("content-type", ""),
    ("cookie", ""), ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""), ("max-forwards", ""),
    ("proxy-authenticate", ""), ("proxy-authorization", ""), ("range", ""), ("referer", ""), ("refresh", ""),
    ("retry-after", ""), ("server", ""), ("set-cookie", ""), ("strict-transport-security", ""),
    ("transfer-encoding", ""), ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
)

# RFC 7541 Appendix B: the bit length of each symbol's code (0-255, then EOS), as letters
# ('a' = 5 bits ... 'z' = 30 bits). The code is canonical (codes of one length are
# consecutive, in symbol order, shorter codes first), so the lengths define it completely.
_HUFFMAN_LENGTHS = (
    "isxxxxxxxtzxxzxxxxxxxxzxxxxxxxxxbffhibdgffdgdbbbaaabbbbbbbcdkbhfibccccccccccccccccccccccdcdioij"
    "bkabababbbaccbbbabcbaabccccckgjixprpprrrsrssssststtrstssssqrsrsstrqprrssqsrrtqrssqqrqsrssprrrsrr"
    "svvporsruvvvwwvtuoqvwwvwtqqvvxwwwptpqrqqsrruuttvsvwvvwwwwwxwwwwwvz"
)
EOS = 256


def _canonical() -> dict[int, tuple[int, int, int]]:
    """Per code length: (first code, number of codes, index of the first symbol in ``order``)."""
    lengths = [ord(c) - ord("a") + 5 for c in _HUFFMAN_LENGTHS]
    order = sorted(range(len(lengths)), key=lambda s: (lengths[s], s))
    table: dict[int, tuple[int, int, int]] = {}
    code = 0
    prev = lengths[order[0]]
    for i, sym in enumerate(order):
        n = lengths[sym]
        if i:
            code = (code + 1) << (n - prev)
        prev = n
        first, count, start = table.get(n, (code, 0, i))
        table[n] = (first, count + 1, start)
    return table


_ORDER = sorted(range(len(_HUFFMAN_LENGTHS)), key=lambda s: (_HUFFMAN_LENGTHS[s], s))
_huffman: dict[int, tuple[int, int, int]] | None = None


def huffman_decode(data: bytes) -> bytes:
    """Decode an HPACK Huffman string (padding: at most 7 one bits, the prefix of EOS)."""
    global _huffman
    if _huffman is None:
        _huffman = _canonical()
    table = _huffman
    out = bytearray()
    code = n = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            n += 1
            entry = table.get(n)
            if entry is not None and 0 <= code - entry[0] < entry[1]:
                sym = _ORDER[entry[2] + code - entry[0]]
                if sym == EOS:
                    raise ProtocolError("Huffman string contains EOS")
                out.append(sym)
                code = n = 0
            elif n >= 30:
                raise ProtocolError("invalid Huffman code")
    if n > 7 or code != (1 << n) - 1:
        raise ProtocolError("invalid Huffman padding")
    return bytes(out)


def encode_int(value: int, prefix: int, first: int = 0) -> bytes:
    """An HPACK integer with a ``prefix``-bit prefix; ``first`` carries the pattern bits."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _decode_int(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
    limit = (1 << prefix) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated HPACK integer")
        b = data[pos]
        pos += 1
        value += (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise ProtocolError("HPACK integer too large")


def _string(value: str) -> bytes:
    raw = value.encode()
    return encode_int(len(raw), 7) + raw


def encode_headers(headers: list[tuple[str, str]]) -> bytes:
    """A header block of literals without indexing (names from the static table where they
    are there); no Huffman, no dynamic table, so the peer's table size does not matter."""
    out = []
    for name, value in headers:
        index = _STATIC_NAME.get(name)
        if index is None:
            out.append(b"\x00" + _string(name) + _string(value))
        else:
            out.append(encode_int(index, 4) + _string(value))
    return b"".join(out)


_STATIC_NAME: dict[str, int] = {}
for _i, (_name, _) in enumerate(STATIC_TABLE, 1):
    _STATIC_NAME.setdefault(_name, _i)


class Decoder:
    """An HPACK decoder: one per connection (the dynamic table spans header blocks)."""

    def __init__(self, max_table_size: int = 4096) -> None:
        self.max_table_size = max_table_size  # what we allow (SETTINGS_HEADER_TABLE_SIZE)
        self.table_size = max_table_size  # the current limit (the encoder may lower it)
        self._dynamic: list[tuple[str, str]] = []  # newest first
        self._size = 0

    def _entry(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        i = index - len(STATIC_TABLE) - 1
        if 0 <= i < len(self._dynamic):
            return self._dynamic[i]
        raise ProtocolError(f"HPACK index {index} is not in the table")

    def _add(self, name: str, value: str) -> None:
        size = len(name.encode()) + len(value.encode()) + 32
        self._dynamic.insert(0, (name, value))
        self._size += size
        self._evict()

    def _evict(self) -> None:
        while self._size > self.table_size and self._dynamic:
            n, v = self._dynamic.pop()
            self._size -= len(n.encode()) + len(v.encode()) + 32

    def _str(self, data: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(data):
            raise ProtocolError("truncated HPACK string")
        huffman = data[pos] & 0x80
        length, pos = _decode_int(data, pos, 7)
        end = pos + length
        if end > len(data):
            raise ProtocolError("truncated HPACK string")
        raw = data[pos:end]
        return (huffman_decode(raw) if huffman else raw).decode("utf-8", "replace"), end

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        out = []
        pos = 0
        while pos < len(block):
            b = block[pos]
            if b & 0x80:  # indexed field
                index, pos = _decode_int(block, pos, 7)
                out.append(self._entry(index))
                continue
            if b & 0xE0 == 0x20:  # dynamic table size update
                size, pos = _decode_int(block, pos, 5)
                if size > self.max_table_size:
                    raise ProtocolError(f"HPACK table size {size} exceeds {self.max_table_size}")
                self.table_size = size
                self._evict()
                continue
            prefix = 6 if b & 0x40 else 4
            index, pos = _decode_int(block, pos, prefix)
            if index:
                name = self._entry(index)[0]
            else:
                name, pos = self._str(block, pos)
            value, pos = self._str(block, pos)
            if b & 0x40:  # with incremental indexing
                self._add(name, value)
            out.append((name, value))
        return out
