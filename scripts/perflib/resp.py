"""A small Redis client (RESP2 over a Unix or TCP socket, pipelined) and the key book of the
`redis` workload: which keys exist, which version of its value each holds, and what that value
must be.

Values are derived from (key id, version) alone, so the client never stores them and any
value the server returns can be checked byte for byte: the size is 64-512 B (a seeded mix of
the id and the version, uniform over the range), the value starts with "<id>/<version>:" and
is filled with an 8-byte pattern taken from the same mix. A value that belongs to another key,
another version, or has one byte changed does not compare equal.
"""

from __future__ import annotations

import random
import socket
from array import array
from dataclasses import dataclass, field

CRLF = b"\r\n"
_MASK64 = (1 << 64) - 1


class RespError(Exception):
    """An error reply of the server (-ERR ...), or a protocol violation."""


class ProtocolError(RespError):
    pass


def encode(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


class Reader:
    """Incremental RESP2 reply parser: feed() bytes, then get() replies until it returns
    Reader.NEED. Errors come back as RespError instances (not raised), so one bad reply in a
    pipeline does not hide the others."""

    NEED = object()

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0

    def feed(self, data: bytes) -> None:
        if self.pos:
            self.buf = self.buf[self.pos:] + data
            self.pos = 0
        else:
            self.buf += data

    def get(self):
        start = self.pos
        try:
            value, self.pos = self._parse(start)
        except _Incomplete:
            self.pos = start
            return Reader.NEED
        return value

    def _line(self, pos: int) -> tuple[bytes, int]:
        end = self.buf.find(CRLF, pos)
        if end < 0:
            raise _Incomplete
        return self.buf[pos:end], end + 2

    def _parse(self, pos: int):
        if pos >= len(self.buf):
            raise _Incomplete
        kind = self.buf[pos:pos + 1]
        line, pos = self._line(pos + 1)
        if kind == b"$":
            n = int(line)
            if n < 0:
                return None, pos
            end = pos + n
            if end + 2 > len(self.buf):
                raise _Incomplete
            if self.buf[end:end + 2] != CRLF:
                raise ProtocolError("bulk string not followed by CRLF")
            return self.buf[pos:end], end + 2
        if kind == b"+":
            return line, pos
        if kind == b":":
            return int(line), pos
        if kind == b"-":
            return RespError(line.decode("utf-8", "replace")), pos
        if kind == b"*":
            n = int(line)
            if n < 0:
                return None, pos
            items = []
            for _ in range(n):
                item, pos = self._parse(pos)
                items.append(item)
            return items, pos
        raise ProtocolError(f"unexpected reply type {kind!r}")


class Client:
    """One connection. pipeline() sends a batch of encoded commands in one write and returns
    their replies in order."""

    def __init__(self, sock: socket.socket, timeout: float = 60.0):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.reader = Reader()

    @classmethod
    def unix(cls, path: str, timeout: float = 60.0) -> "Client":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            s.close()
            raise
        return cls(s, timeout)

    @classmethod
    def tcp(cls, host: str, port: int, timeout: float = 60.0) -> "Client":
        s = socket.create_connection((host, port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(s, timeout)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_replies(self, n: int) -> list:
        out = []
        reader = self.reader
        while len(out) < n:
            r = reader.get()
            if r is Reader.NEED:
                data = self.sock.recv(1 << 20)
                if not data:
                    raise ProtocolError(f"connection closed after {len(out)} of {n} replies")
                reader.feed(data)
                continue
            out.append(r)
        return out

    def pipeline(self, commands: list[bytes]) -> list:
        self.send(b"".join(commands))
        return self.read_replies(len(commands))

    def call(self, *args):
        reply = self.pipeline([encode(*args)])[0]
        if isinstance(reply, RespError):
            raise reply
        return reply


def parse_info(text: bytes | str) -> dict[str, str]:
    """The `field:value` lines of an INFO reply."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and not line.startswith("#"):
            out[k.strip()] = v.strip()
    return out


# --- keys and values ------------------------------------------------------------------------

def mix64(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of x."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def key_name(key_id: int) -> bytes:
    return b"k:%08d" % key_id


def value_for(key_id: int, version: int, lo: int = 64, hi: int = 512) -> bytes:
    """The value key_id holds at version (lo <= len <= hi)."""
    h = mix64((key_id << 20) ^ version)
    size = lo + h % (hi - lo + 1)
    head = b"%d/%d:" % (key_id, version)
    fill = mix64(h).to_bytes(8, "little")
    return (head + fill * (size // 8 + 1))[:size]


@dataclass
class Mismatch:
    key_id: int
    expected: bytes | None
    got: object

    def describe(self) -> str:
        if self.key_id < 0:  # not about one key (DBSIZE)
            return str(self.got)

        def show(v):
            if isinstance(v, bytes):
                return f"{len(v)} B {v[:24]!r}..."
            return repr(v)
        return (f"key {key_name(self.key_id).decode()}: expected "
                f"{show(self.expected) if self.expected is not None else 'no key'}, "
                f"got {show(self.got)}")


@dataclass
class KeyBook:
    """What the server must hold: version[id] of every key id, 0 = deleted (versions start
    at 1)."""

    count: int
    lo: int = 64
    hi: int = 512
    version: array = field(init=False)

    def __post_init__(self) -> None:
        self.version = array("I", bytes(4 * self.count))

    def live_ids(self) -> list[int]:
        v = self.version
        return [i for i in range(self.count) if v[i]]

    def expected(self, key_id: int, version: int | None = None) -> bytes | None:
        """The value key_id must hold (at `version`, default: the book's); None = no key."""
        ver = self.version[key_id] if version is None else version
        return value_for(key_id, ver, self.lo, self.hi) if ver else None

    def check(self, key_id: int, got, version: int | None = None) -> Mismatch | None:
        exp = self.expected(key_id, version)
        return None if got == exp else Mismatch(key_id, exp, got)

    def set_command(self, key_id: int, version: int) -> bytes:
        """SET of key_id at version; the book records it (call it only for commands that are
        sent)."""
        self.version[key_id] = version
        return encode(b"SET", key_name(key_id), value_for(key_id, version, self.lo, self.hi))

    def del_command(self, key_id: int) -> bytes:
        self.version[key_id] = 0
        return encode(b"DEL", key_name(key_id))


def check_replies(kind: str, replies: list, expect) -> None:
    """Raises RespError on an error reply or on a reply other than expect (for SET and DEL)."""
    for r in replies:
        if isinstance(r, RespError):
            raise RespError(f"{kind}: {r}")
        if r != expect:
            raise RespError(f"{kind}: unexpected reply {r!r} (expected {expect!r})")


def verify_all(client: Client, book: KeyBook, batch: int = 500, absent_sample: int = 2000,
               seed: int = 1) -> tuple[int, list[Mismatch]]:
    """Reads every live key (MGET in batches) and compares it with its expected value; also
    checks that DBSIZE is the number of live keys and that a sample of deleted keys is absent.
    Returns (keys checked, mismatches)."""
    live = book.live_ids()
    bad: list[Mismatch] = []
    for i in range(0, len(live), batch):
        ids = live[i:i + batch]
        reply = client.call(b"MGET", *[key_name(k) for k in ids])
        if not isinstance(reply, list) or len(reply) != len(ids):
            raise ProtocolError(f"MGET of {len(ids)} keys returned {type(reply).__name__}")
        for k, got in zip(ids, reply):
            m = book.check(k, got)
            if m is not None:
                bad.append(m)
    dead = [i for i in range(book.count) if not book.version[i]]
    if dead:
        rng = random.Random(seed)
        sample = rng.sample(dead, min(absent_sample, len(dead)))
        for i in range(0, len(sample), batch):
            ids = sample[i:i + batch]
            reply = client.call(b"MGET", *[key_name(k) for k in ids])
            for k, got in zip(ids, reply):
                if got is not None:
                    bad.append(Mismatch(k, None, got))
    size = client.call(b"DBSIZE")
    if size != len(live):
        bad.append(Mismatch(-1, None, f"DBSIZE {size}, expected {len(live)}"))
    return len(live), bad
