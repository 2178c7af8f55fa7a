"""The floor under ``kosctl get`` (issue 17): ``python bench/clientfloor.py KOSCONFIG``.

What any client of a mutual-TLS gRPC API pays at the least, with nothing of kos imported:
the interpreter, ``ssl`` and ``socket``, reading the context's endpoint and PEM material
from the kosconfig (by string splitting, no YAML), a TLS 1.3 context with the client
certificate, the TCP connect and the handshake, the HTTP/2 preface and the server's first
SETTINGS frame (the round trip a call needs anyway). ``bench/kosctl_speed.py`` times it as a
process beside ``python3 -c pass`` and ``kosctl get``: the gap between this and ``kosctl get``
is kos's own cost (argument parsing, its modules, the two calls, the table).
"""

import base64
import os
import socket
import ssl
import sys


def main(path: str) -> int:
    with open(path) as f:
        text = f.read()
    current = text.split("context:", 1)[1].split("\n", 1)[0].strip()
    block = text.split(f"\n    {current}:\n", 1)[1]
    pem = {}
    endpoint = ""
    for line in block.splitlines():
        s = line.strip()
        if s.startswith("- ") and not endpoint:
            endpoint = s[2:]
        for k in ("ca", "crt", "key"):
            if s.startswith(k + ": ") and k not in pem:
                pem[k] = base64.b64decode(s[len(k) + 2:])
    host, _, port = endpoint.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    ctx.load_verify_locations(cadata=pem["ca"].decode())
    fds = []
    for k in ("crt", "key"):
        fds.append(os.memfd_create(k))
        os.write(fds[-1], pem[k])
    ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
    with ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10)) as tls:
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0")  # preface + empty SETTINGS
        head = tls.recv(9)
    return 0 if len(head) == 9 and head[3] == 4 else 1  # the server's SETTINGS frame


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
