#!/usr/bin/env python3
"""Writes the committed seed corpora in tests/fuzz/corpus/ (run from anywhere; idempotent).

pickle/: what CPython's pickle.dumps produces, protocols 0-5, for the values the
multiprocessing connection and manager protocols exchange (requests, replies, exceptions,
Tokens) and one of each supported type.
codec/: mp::codec encodings (a selector byte, then cereal's binary layout as mp::codec
writes it: little-endian scalars, uint64 sizes) for the types codec_fuzz.cpp decodes.
"""
import collections
import os
import pickle
import struct
from multiprocessing.managers import Token

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')


def write(target, name, data):
    os.makedirs(os.path.join(here, target), exist_ok=True)
    with open(os.path.join(here, target, name), 'wb') as f:
        f.write(data)


token = Token('Queue', ('127.0.0.1', 50000), '7f3a2c')
shared = [1, 2]
deep = []
for _ in range(40):
    deep = [deep]
values = {
    'request': ('7f3a2c', 'get', (), {'timeout': 1.0}),
    'create': (None, 'create', ('Queue',), {}),
    'return': ('#RETURN', 42),
    'error': ('#ERROR', ValueError('boom')),
    'keyerror': ('#ERROR', KeyError('missing')),
    'traceback': ('#TRACEBACK', 'Traceback (most recent call last):\n  ...\nRuntimeError: x\n'),
    'proxy': ('#PROXY', (('get', 'put', 'qsize'), token)),
    'scalars': (None, True, False, 0, 255, 65535, 2**31, -2**31 - 1, 2**63 - 1, -2**63, 1.5, -0.0, float('inf')),
    'text': ('', 'h\xe9llo \u6f22 \U0001f600', '\ud800', 'x' * 300),
    'bytes': (b'', b'\x00\xff', bytearray(b'xy'), b'q' * 300),
    'containers': ([], [1, [2, [3]]], {}, {'a': 1, 2: 'b', (1, 'x'): None}, set(), {1, 2, 3}, frozenset({'z'})),
    'batch': list(range(1100)),
    'shared': [shared, shared, 'same', 'same'],
    'ordereddict': collections.OrderedDict([('b', 1), ('a', 2)]),
    'deep': deep,
}
for name, value in values.items():
    for proto in range(6):
        write('pickle', 'py%d-%s' % (proto, name), pickle.dumps(value, proto))


def u64(n): return struct.pack('<Q', n)
def i32(n): return struct.pack('<i', n)
def i64(n): return struct.pack('<q', n)
def f64(x): return struct.pack('<d', x)
def s(text): b = text.encode(); return u64(len(b)) + b
def vec(items, enc): return u64(len(items)) + b''.join(enc(x) for x in items)


codec = {
    'string': b'\x00' + b'hello',
    'ints': b'\x01' + i32(1) + i32(-2) + i32(3),
    'map': b'\x02' + u64(2) + s('a') + vec([1.5, 2.5], f64) + s('b') + vec([], f64),
    'task': b'\x03' + s('build') + i32(7) + vec(['x', ''], s) + u64(1) + s('runs') + f64(0.5),
    'variant-int': b'\x04' + i32(0) + i32(42),
    'variant-str': b'\x04' + i32(1) + s('text'),
    'variant-list': b'\x04' + i32(2) + vec([1, -2], i64),
    'tuple': b'\x05' + i64(-1) + s('t') + vec([1, 2, 3], i32),
    'unordered': b'\x06' + u64(1) + i32(5) + vec(['a', 'bc'], s),
    'nested': b'\x07' + vec([['a'], [], ['b', 'c']], lambda xs: vec(xs, s)),
}
for name, data in codec.items():
    write('codec', name, data)


# connection/: an options byte (see connection_fuzz.cpp: bit 0 read-ahead, bits 1-2 size
# limit, bits 3-4 receive call, bit 5 socketpair) then a stream of CPython-framed messages.
def frame(payload): return struct.pack('>i', len(payload)) + payload
def frame64(payload): return b'\xff\xff\xff\xff' + struct.pack('>Q', len(payload)) + payload


connection = {
    'empty': b'\x01',
    'one': b'\x01' + frame(b'hello'),
    'many-small': b'\x01' + b''.join(frame(bytes([i]) * i) for i in range(40)),
    'zero-length': b'\x00' + frame(b'') + frame(b'x') + frame(b''),
    'long-header': b'\x21' + frame64(b'eight-byte length') + frame(b'after'),
    'big': b'\x01' + frame(b'B' * 70000) + frame(b'tail'),
    'big-unbuffered-socket': b'\x20' + frame(b'b' * 5000) + frame(b'c' * 3),
    'into-too-short': b'\x11' + frame(b's' * 100) + frame(b'L' * 600) + frame(b'after'),
    'recv-string': b'\x19' + frame(b'codec') + frame(b''),
    'reused': b'\x09' + frame(b'a' * 3000) + frame(b'b'),
    'truncated-header': b'\x01' + frame(b'ok') + b'\x00\x00',
    'truncated-payload': b'\x01' + frame(b'ok') + struct.pack('>i', 10) + b'abc',
    'truncated-long-header': b'\x01' + b'\xff\xff\xff\xff\x00\x00',
    'negative-length': b'\x01' + frame(b'ok') + struct.pack('>i', -2),
    'over-limit': b'\x03' + frame(b'0123456789abcdef') + frame(b'0123456789abcdefg'),
    'huge-length': b'\x01' + b'\xff\xff\xff\xff' + struct.pack('>Q', 2**63 + 5),
    'garbage-after-frame': b'\x01' + frame(b'valid') + b'garbage!',
}
for name, data in connection.items():
    write('connection', name, data)
