#!/usr/bin/env python3
"""Small stdlib-only helpers for scripts/services.sh.

  helpers.py free-ports N          print N distinct free loopback TCP ports, one a line
  helpers.py port-free PORT        exit 0 if 127.0.0.1:PORT can be bound now
  helpers.py mongo-ping HOST PORT  send a MongoDB OP_MSG {ping: 1} and check {ok: 1}
  helpers.py url-quote STRING      percent-encode STRING for a URI path
"""

import socket
import struct
import sys
import urllib.parse


def free_ports(n):
    socks = []
    try:
        # Hold every socket open until all are bound so the ports are distinct.
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _bson_ping():
    def cstring(s):
        return s.encode() + b"\x00"

    body = b"\x10" + cstring("ping") + struct.pack("<i", 1)
    db = cstring("admin")
    body += b"\x02" + cstring("$db") + struct.pack("<i", len(db)) + db
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf += chunk
    return buf


def _bson_ok(doc):
    """Return the value of the top-level 'ok' field of a BSON document, or None."""
    i = 4
    end = len(doc) - 1
    while i < end:
        etype = doc[i]
        j = doc.index(b"\x00", i + 1)
        name = doc[i + 1 : j].decode("utf-8", "replace")
        i = j + 1
        if etype == 0x01:  # double
            val, size = struct.unpack("<d", doc[i : i + 8])[0], 8
        elif etype == 0x10:  # int32
            val, size = struct.unpack("<i", doc[i : i + 4])[0], 4
        elif etype == 0x12:  # int64
            val, size = struct.unpack("<q", doc[i : i + 8])[0], 8
        elif etype == 0x08:  # bool
            val, size = doc[i] == 1, 1
        elif etype in (0x02, 0x0D, 0x0E):  # string-like
            val, size = None, 4 + struct.unpack("<i", doc[i : i + 4])[0]
        elif etype in (0x03, 0x04):  # document / array
            val, size = None, struct.unpack("<i", doc[i : i + 4])[0]
        elif etype == 0x05:  # binary
            val, size = None, 5 + struct.unpack("<i", doc[i : i + 4])[0]
        elif etype == 0x07:  # ObjectId
            val, size = None, 12
        elif etype in (0x09, 0x11):  # datetime, timestamp
            val, size = None, 8
        elif etype in (0x06, 0x0A, 0x7F, 0xFF):  # undefined, null, max/min key
            val, size = None, 0
        elif etype == 0x13:  # decimal128
            val, size = None, 16
        else:
            return None
        if name == "ok":
            return val
        i += size
    return None


def mongo_ping(host, port, timeout=2.0):
    doc = _bson_ping()
    payload = struct.pack("<I", 0) + b"\x00" + doc  # flagBits, section kind 0, body
    header = struct.pack("<iiii", 16 + len(payload), 1, 0, 2013)  # OP_MSG
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(header + payload)
        length, _req, _resp_to, opcode = struct.unpack("<iiii", _recv_exact(sock, 16))
        rest = _recv_exact(sock, length - 16)
    if opcode != 2013:
        raise ValueError("unexpected reply opcode %d" % opcode)
    if rest[4] != 0:
        raise ValueError("unexpected OP_MSG section kind %d" % rest[4])
    ok = _bson_ok(rest[5:])
    if ok not in (1, 1.0, True):
        raise ValueError("ping reply has ok=%r" % (ok,))


def main(argv):
    if len(argv) >= 2 and argv[1] == "free-ports":
        n = int(argv[2]) if len(argv) > 2 else 1
        print("\n".join(str(p) for p in free_ports(n)))
        return 0
    if len(argv) == 3 and argv[1] == "port-free":
        return 0 if port_free(int(argv[2])) else 1
    if len(argv) == 3 and argv[1] == "url-quote":
        print(urllib.parse.quote(argv[2]))
        return 0
    if len(argv) == 4 and argv[1] == "mongo-ping":
        try:
            mongo_ping(argv[2], int(argv[3]))
        except (OSError, ValueError, ConnectionError) as e:
            print("mongo-ping: %s" % e, file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
