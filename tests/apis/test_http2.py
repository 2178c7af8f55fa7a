"""kos.apis.http2 against the hpack library grpclib's server uses: every header block hpack
writes (Huffman or not, with its dynamic table and size updates) decodes to the same headers;
what kos encodes, hpack reads; frames split at any byte boundary come out whole."""

from __future__ import annotations

import pytest
from hpack import Decoder as HpackDecoder
from hpack import Encoder as HpackEncoder
from hpack.table import HeaderTable
from hypothesis import given
from hypothesis import strategies as st

from kos.apis import http2

names = st.one_of(st.sampled_from([":status", "content-type", "grpc-status", "grpc-message", "node", "te"]),
                  st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12))
values = st.text(max_size=60)
blocks = st.lists(st.lists(st.tuples(names, values), max_size=8), min_size=1, max_size=6)


def test_static_table_is_rfc_7541_appendix_a() -> None:
    assert tuple((n.decode(), v.decode()) for n, v in HeaderTable.STATIC_TABLE) == http2.STATIC_TABLE


@given(blocks, st.booleans(), st.sampled_from([4096, 256, 0]))
def test_decodes_what_hpack_encodes(headers: list[list[tuple[str, str]]], huffman: bool, table: int) -> None:
    enc = HpackEncoder()
    dec = http2.Decoder()
    for i, block in enumerate(headers):
        if i == 1:
            enc.header_table_size = table  # the next block starts with a size update
        assert dec.decode(enc.encode(block, huffman=huffman)) == block


@given(st.binary(max_size=300))
def test_huffman_round_trip(data: bytes) -> None:
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

    assert http2.huffman_decode(HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)) == data


def test_huffman_rejects_bad_padding_and_eos() -> None:
    with pytest.raises(http2.ProtocolError):
        http2.huffman_decode(b"\x00")  # '0' (5 bits) then 3 zero bits: padding must be ones
    with pytest.raises(http2.ProtocolError):
        http2.huffman_decode(b"\xff\xff\xff\xff")  # EOS (30 one bits) inside the string


@given(st.lists(st.tuples(names, values), max_size=10))
def test_hpack_reads_what_kos_encodes(headers: list[tuple[str, str]]) -> None:
    assert HpackDecoder().decode(http2.encode_headers(headers)) == headers


def test_bad_blocks_are_protocol_errors() -> None:
    for block in (b"\xbf", b"\x7f", b"\x0f", b"\x00\x85ab", b"\x3f\xff\xff\x03"):
        with pytest.raises(http2.ProtocolError):
            http2.Decoder().decode(block)


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 255), st.integers(0, 2**31 - 1), st.binary(max_size=40)),
                max_size=6), st.integers(1, 50))
def test_frames_split_at_any_boundary(frames: list[tuple[int, int, int, bytes]], step: int) -> None:
    wire = b"".join(http2.frame(*f) for f in frames)
    buf = bytearray()
    out: list[tuple[int, int, int, bytes]] = []
    for i in range(0, len(wire), step):
        buf += wire[i:i + step]
        out += http2.split_frames(buf)
    assert out == frames and not buf


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(http2.ProtocolError):
        http2.split_frames(bytearray(http2.frame(http2.DATA, 0, 1, bytes(20000))))
