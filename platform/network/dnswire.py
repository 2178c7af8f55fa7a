"""The DNS message wire format (RFC 1035 section 4, EDNS0 OPT from RFC 6891), as much of it as
a caching forwarder needs: read a query's header and question, find every TTL in a reply (to
age cached replies), build answers for local names and error replies, truncate for UDP.

Everything is bounded: a message is at most ``MAX_MESSAGE`` bytes, a name at most 255 octets
and 128 compression jumps, a section at most ``MAX_RECORDS`` records. Malformed input raises
``DNSFormatError`` (never an IndexError or struct.error). Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_MESSAGE = 65535
MAX_RECORDS = 512
MAX_NAME = 255
UDP_DEFAULT = 512  # the RFC 1035 UDP limit without EDNS
UDP_MAX = 4096  # the largest UDP reply we send, whatever the client advertises

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_AAAA, TYPE_OPT, TYPE_ANY = 1, 2, 5, 6, 12, 28, 41, 255
CLASS_IN = 1

RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 0, 1, 2, 3, 4, 5

FLAG_QR, FLAG_AA, FLAG_TC, FLAG_RD, FLAG_RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")


class DNSFormatError(ValueError):
    """The bytes are not a DNS message we can read."""


@dataclass(frozen=True)
class Question:
    name: str  # lower case, no trailing dot ("" is the root)
    qtype: int
    qclass: int


@dataclass(frozen=True)
class Query:
    """A parsed query: header fields, the one question, and the client's EDNS UDP size."""

    id: int
    flags: int
    question: Question
    question_end: int  # offset just past the question section
    udp_size: int  # what the client accepts over UDP (512 without EDNS)
    edns: bool = False

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


@dataclass
class Reply:
    """A parsed reply: what caching needs (rcode, flags, where the TTLs are)."""

    id: int
    flags: int
    question: Question | None
    rcode: int
    answers: int
    ttl_offsets: list[int] = field(default_factory=list)  # every TTL field except OPT's
    min_ttl: int | None = None  # smallest TTL of the answer section (None: no answers)
    soa_negative_ttl: int | None = None  # negative-caching TTL from an SOA in authority

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TC)


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``pos``: (lower-case name, offset after it)."""
    labels: list[str] = []
    end = -1
    jumps = 0
    total = 0
    n = len(msg)
    while True:
        if pos >= n:
            raise DNSFormatError("name runs past the end of the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise DNSFormatError("compression pointer runs past the end of the message")
            if end < 0:
                end = pos + 2
            jumps += 1
            if jumps > 128:
                raise DNSFormatError("too many compression pointers (a loop?)")
            target = ((length & 0x3F) << 8) | msg[pos + 1]
            if target >= pos:
                raise DNSFormatError("compression pointer does not point backwards")
            pos = target
            continue
        if length & 0xC0:
            raise DNSFormatError(f"unsupported label type {length >> 6}")
        pos += 1
        if length == 0:
            break
        if pos + length > n:
            raise DNSFormatError("label runs past the end of the message")
        total += length + 1
        if total > MAX_NAME:
            raise DNSFormatError("name is longer than 255 octets")
        labels.append(msg[pos:pos + length].decode("latin-1").lower())
        pos += length
    return ".".join(labels), (end if end >= 0 else pos)


def encode_name(name: str) -> bytes:
    """A name in uncompressed wire form (``"a.b"`` or ``"a.b."``)."""
    name = name.rstrip(".")
    out = bytearray()
    if name:
        for label in name.split("."):
            raw = label.encode("ascii")
            if not 0 < len(raw) <= 63:
                raise DNSFormatError(f"label {label!r} of {name!r} must be 1-63 octets")
            out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise DNSFormatError(f"name {name!r} is longer than 255 octets")
    return bytes(out)


def _header(msg: bytes) -> tuple[int, int, int, int, int, int]:
    if len(msg) < _HEADER.size:
        raise DNSFormatError(f"message of {len(msg)} bytes is shorter than the 12-byte header")
    if len(msg) > MAX_MESSAGE:
        raise DNSFormatError(f"message of {len(msg)} bytes is longer than {MAX_MESSAGE}")
    return _HEADER.unpack_from(msg, 0)


def _question(msg: bytes, pos: int) -> tuple[Question, int]:
    name, pos = _name(msg, pos)
    if pos + 4 > len(msg):
        raise DNSFormatError("question runs past the end of the message")
    qtype, qclass = struct.unpack_from("!HH", msg, pos)
    return Question(name, qtype, qclass), pos + 4


def _records(msg: bytes, pos: int, count: int) -> tuple[list[tuple[str, int, int, int, int, int]], int]:
    """(name, type, class, ttl, ttl offset, rdata offset) per record; the offset after them."""
    if count > MAX_RECORDS:
        raise DNSFormatError(f"{count} records in a section (at most {MAX_RECORDS})")
    out = []
    for _ in range(count):
        name, pos = _name(msg, pos)
        if pos + _RR.size > len(msg):
            raise DNSFormatError("record runs past the end of the message")
        rtype, rclass, ttl, rdlen = _RR.unpack_from(msg, pos)
        ttl_at = pos + 4
        pos += _RR.size
        if pos + rdlen > len(msg):
            raise DNSFormatError("record data runs past the end of the message")
        out.append((name, rtype, rclass, ttl, ttl_at, pos))
        pos += rdlen
    return out, pos


def parse_query(msg: bytes) -> Query:
    """A query with exactly one question (what resolvers send); raises DNSFormatError."""
    id_, flags, qd, an, ns, ar = _header(msg)
    if flags & FLAG_QR:
        raise DNSFormatError("message is a response, not a query")
    if qd != 1:
        raise DNSFormatError(f"query has {qd} questions, expected 1")
    question, end = _question(msg, _HEADER.size)
    udp_size, edns = UDP_DEFAULT, False
    _, pos = _records(msg, end, an + ns)
    for _n, rtype, rclass, _ttl, _at, _rd in _records(msg, pos, ar)[0]:
        if rtype == TYPE_OPT:
            udp_size, edns = max(UDP_DEFAULT, min(rclass, UDP_MAX)), True
    return Query(id=id_, flags=flags, question=question, question_end=end, udp_size=udp_size, edns=edns)


def parse_reply(msg: bytes) -> Reply:
    """A reply: header, question (if any), TTL positions, answer/negative TTLs."""
    id_, flags, qd, an, ns, ar = _header(msg)
    if not flags & FLAG_QR:
        raise DNSFormatError("message is a query, not a response")
    if qd > 1:
        raise DNSFormatError(f"reply has {qd} questions, expected at most 1")
    question, pos = (None, _HEADER.size)
    if qd:
        question, pos = _question(msg, pos)
    answers, pos = _records(msg, pos, an)
    authority, pos = _records(msg, pos, ns)
    additional, _ = _records(msg, pos, ar)
    reply = Reply(id=id_, flags=flags, question=question, rcode=flags & 0xF, answers=an)
    for _n, rtype, _c, _ttl, at, _rd in answers + authority + additional:
        if rtype == TYPE_OPT:
            continue
        reply.ttl_offsets.append(at)
    if answers:
        reply.min_ttl = min(ttl for _n, _t, _c, ttl, _a, _r in answers)
    for _n, rtype, _c, ttl, _at, rd in authority:
        if rtype == TYPE_SOA:
            # SOA RDATA: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM (RFC 2308: min of TTL, MINIMUM)
            _, p = _name(msg, rd)
            _, p = _name(msg, p)
            if p + 20 > len(msg):
                raise DNSFormatError("SOA record data runs past the end of the message")
            minimum = struct.unpack_from("!I", msg, p + 16)[0]
            reply.soa_negative_ttl = min(ttl, minimum)
    return reply


def with_id(msg: bytes, id_: int) -> bytes:
    return struct.pack("!H", id_) + msg[2:]


def aged(msg: bytes, ttl_offsets: Sequence[int], age: int) -> bytes:
    """``msg`` with every TTL at ``ttl_offsets`` lowered by ``age`` seconds (not below 0)."""
    if age <= 0:
        return msg
    out = bytearray(msg)
    for at in ttl_offsets:
        ttl = struct.unpack_from("!I", out, at)[0]
        struct.pack_into("!I", out, at, max(0, ttl - age))
    return bytes(out)


def make_query(name: str, qtype: int, *, id_: int, rd: bool = True, udp_size: int = 0) -> bytes:
    """A query for ``name``; ``udp_size`` > 0 adds an EDNS0 OPT record advertising it."""
    flags = FLAG_RD if rd else 0
    out = _HEADER.pack(id_, flags, 1, 0, 0, 1 if udp_size else 0) + encode_name(name) + struct.pack("!HH", qtype,
                                                                                                     CLASS_IN)
    if udp_size:
        out += b"\x00" + struct.pack("!HHIH", TYPE_OPT, udp_size, 0, 0)
    return out


def _response_header(q: Query, *, rcode: int, an: int, aa: bool) -> bytes:
    flags = FLAG_QR | (q.flags & (0x7800 | FLAG_RD)) | FLAG_RA | (FLAG_AA if aa else 0) | (rcode & 0xF)
    return _HEADER.pack(q.id, flags, 1, an, 0, 0)


def error_reply(query: bytes, q: Query, rcode: int) -> bytes:
    """A reply with the query's question and ``rcode`` (SERVFAIL, REFUSED, NOTIMP, ...)."""
    return _response_header(q, rcode=rcode, an=0, aa=False) + query[_HEADER.size:q.question_end]


def formerr_reply(query: bytes) -> bytes | None:
    """FORMERR for a query we could not parse, if it has at least a header (else None)."""
    if len(query) < _HEADER.size:
        return None
    id_, flags = struct.unpack_from("!HH", query, 0)
    if flags & FLAG_QR:
        return None  # never answer a response (reflection loops)
    return _HEADER.pack(id_, FLAG_QR | (flags & (0x7800 | FLAG_RD)) | FLAG_RA | RCODE_FORMERR, 0, 0, 0, 0)


def address_reply(query: bytes, q: Query, addresses: Sequence[str], *, ttl: int) -> bytes:
    """An authoritative answer for the question's name: the A (or AAAA) records among
    ``addresses`` (NOERROR without records when none has the asked family)."""
    want = 4 if q.question.qtype == TYPE_A else 6 if q.question.qtype == TYPE_AAAA else 0
    rrs = bytearray()
    count = 0
    for a in addresses:
        ip = ipaddress.ip_address(a)
        if ip.version != want:
            continue
        rtype = TYPE_A if want == 4 else TYPE_AAAA
        # 0xC00C: a compression pointer to the question's name at offset 12
        rrs += struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, ttl, len(ip.packed)) + ip.packed
        count += 1
    return _response_header(q, rcode=RCODE_NOERROR, an=count, aa=True) + query[_HEADER.size:q.question_end] + rrs


def truncated(reply: bytes) -> bytes:
    """The reply cut down to its header and question with TC set (the client retries over TCP)."""
    id_, flags, qd, _an, _ns, _ar = _header(reply)
    pos = _HEADER.size
    if qd == 1:
        _, pos = _question(reply, pos)
    return _HEADER.pack(id_, flags | FLAG_TC, 1 if qd == 1 else 0, 0, 0, 0) + reply[_HEADER.size:pos]


def answer_addresses(reply: bytes) -> list[str]:
    """The A and AAAA addresses in a reply's answer section, in order."""
    _id, _flags, qd, an, _ns, _ar = _header(reply)
    pos = _HEADER.size
    for _ in range(qd):
        _, pos = _question(reply, pos)
    out = []
    for _n, rtype, _c, _ttl, _at, rd in _records(reply, pos, an)[0]:
        rdlen = struct.unpack_from("!H", reply, rd - 2)[0]
        if (rtype, rdlen) in ((TYPE_A, 4), (TYPE_AAAA, 16)):
            out.append(str(ipaddress.ip_address(reply[rd:rd + rdlen])))
    return out
