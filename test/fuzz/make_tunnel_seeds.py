#!/usr/bin/env python3
"""Writes the seed corpus of tunnel_fuzz (corpus/tunnel_fuzz/): HTTP/2 frames a remote agent sends
after the client preface (tunnel_fuzz.cpp adds the preface). Headers are HPACK literals without
indexing and new names, so that no table state is needed. Run from test/fuzz/ to regenerate."""
import os
import struct

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 2, 3, 4, 6, 7, 8, 9)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8
SINK = "127.77.0.1:7"  # the one destination tunnel_fuzz's server allows


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name, value):
    name, value = name.encode(), value.encode()
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def block(*headers):
    return b"".join(literal(n, v) for n, v in headers)


def connect(stream, authority=SINK, timeout=None, method="CONNECT", end=False):
    h = [(":method", method), (":authority", authority)]
    if timeout is not None:
        h.append(("sockmesh-connect-timeout-ms", timeout))
    return frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), stream, block(*h))


settings = frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 65535))
settings_ack = frame(SETTINGS, ACK, 0)

seeds = {
    "settings": settings + settings_ack,
    "connect-sink-data": settings + connect(1) + frame(DATA, 0, 1, b"hello") +
    frame(DATA, END_STREAM, 1, b"bye"),
    "connect-sink-timeout": settings + connect(1, timeout="250") + frame(DATA, END_STREAM, 1, b"x" * 100),
    "connect-sink-reset": settings + connect(1) + frame(DATA, 0, 1, b"abc") +
    frame(RST_STREAM, 0, 1, struct.pack(">I", 8)),
    "connect-denied": settings + connect(1, authority="10.0.0.1:80") + frame(DATA, END_STREAM, 1, b"x"),
    "connect-bad-authority": settings + connect(1, authority="not-an-address"),
    "connect-ipv6": settings + connect(1, authority="[fd00::1]:443"),
    "connect-bad-timeout": settings + connect(1, timeout="0"),
    "get-not-connect": settings + frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                        block((":method", "GET"), (":scheme", "https"),
                                              (":path", "/"), (":authority", SINK))),
    "extended-connect": settings + frame(HEADERS, END_HEADERS, 1,
                                         block((":method", "CONNECT"), (":protocol", "websocket"),
                                               (":scheme", "https"), (":path", "/"),
                                               (":authority", SINK))),
    "two-streams": settings + connect(1) + connect(3, authority="10.1.1.1:1") +
    frame(DATA, 0, 1, b"a" * 1000) + frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1000)) +
    frame(DATA, END_STREAM, 3, b"b"),
    "continuation": settings + frame(HEADERS, 0, 1, literal(":method", "CONNECT")) +
    frame(CONTINUATION, END_HEADERS, 1, literal(":authority", SINK)),
    "padded-priority": settings + frame(HEADERS, END_HEADERS | PADDED | 0x20, 1,
                                        b"\x04" + struct.pack(">IB", 0, 15) +
                                        block((":method", "CONNECT"), (":authority", SINK)) + b"\0" * 4) +
    frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 1)),
    "ping-goaway": settings + frame(PING, 0, 0, b"12345678") + frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)),
    "window-connection": settings + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)) + connect(1),
    "data-closed-stream": settings + frame(DATA, 0, 5, b"orphan"),
    "garbage": b"\xff" * 24,
    "empty": b"",
}

os.makedirs("corpus/tunnel_fuzz", exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join("corpus/tunnel_fuzz", name), "wb") as f:
        f.write(data)
