"""A tiny UDP DNS server on 127.0.0.1 answering A and AAAA from a table.

table: {"origin.test": ["127.0.0.1"], "v6.test": ["::1"]}. A name in the
table but without an address of the asked type gets NOERROR with no answer;
a name not in the table gets NXDOMAIN. Every query is recorded."""
import socket
import struct
import threading
import time

A, AAAA = 1, 28


def parse_query(data):
    """A query's (id, flags, qtype, qclass, question bytes, name
    lowercased), or None for what is not a one-question query."""
    qid, flags, qd, _an, _ns, _ar = struct.unpack("!HHHHHH", data[:12])
    if qd != 1 or flags & 0x8000:
        return None
    i, labels = 12, []
    while True:
        n = data[i]
        i += 1
        if n == 0:
            break
        labels.append(data[i:i + n].decode("ascii", "replace"))
        i += n
    qtype, qclass = struct.unpack("!HH", data[i:i + 4])
    return qid, flags, qtype, qclass, data[12:i + 4], ".".join(labels).lower()


class DNSServer:
    def __init__(self, table, ttl=60, host="127.0.0.1"):
        self.table = {k.lower().rstrip("."): list(v) for k, v in table.items()}
        self.ttl = ttl
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.queries = []   # (name lowercased, qtype, monotonic time)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True, name="dns")
        self._t.start()

    @property
    def server_text(self):
        return f"{self.host}:{self.port}"

    def count(self, name, qtype=None):
        name = name.lower().rstrip(".")
        with self.lock:
            return sum(1 for n, t, _ in self.queries if n == name and (qtype is None or t == qtype))

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            self._reply(data, peer)

    def _reply(self, data, peer):
        try:
            resp = self.answer(data)
        except Exception:
            return
        if resp:
            try:
                self.sock.sendto(resp, peer)
            except OSError:
                pass

    def answer(self, data):
        q = parse_query(data)
        if q is None:
            return None
        qid, flags, qtype, qclass, question, name = q
        with self.lock:
            self.queries.append((name, qtype, time.monotonic()))
        rd = flags & 0x0100
        opcode = flags & 0x7800
        answers = []
        if name in self.table:
            rcode = 0
            for a in self.table[name]:
                if qtype == A and ":" not in a:
                    answers.append(socket.inet_pton(socket.AF_INET, a))
                elif qtype == AAAA and ":" in a:
                    answers.append(socket.inet_pton(socket.AF_INET6, a))
        else:
            rcode = 3
        rflags = 0x8000 | opcode | 0x0400 | rd | 0x0080 | rcode
        out = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question
        for rdata in answers:
            out += struct.pack("!HHHIH", 0xC00C, qtype, qclass, self.ttl, len(rdata)) + rdata
        return out

    def stop(self):
        self._stop.set()
        self._t.join(1)
        self.sock.close()


CNAME = 5


def _name_wire(name):
    out = b""
    for l in name.rstrip(".").split("."):
        out += bytes([len(l)]) + l.encode()
    return out + b"\x00"


class FlexDNSServer(DNSServer):
    """A DNS server with records of their own TTLs and CNAMEs.

    table: name -> list of records ("A"|"AAAA", addr, ttl) or ("CNAME",
    target, ttl); a CNAME is followed inside the table. drop: a set of
    (name, qtype) never answered. delay: {qtype: seconds} before answering
    that type. Both may be changed under self.lock while it runs."""

    def __init__(self, table, drop=(), delay=None):
        self.flex = {k.lower(): list(v) for k, v in table.items()}
        self.drop = set(drop)
        self.delay = dict(delay or {})
        super().__init__({}, 60)

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                qtype = struct.unpack("!H", data[-4:-2])[0]
            except Exception:
                continue
            d = self.delay.get(qtype, 0)
            if d:
                threading.Timer(d, self._reply, (data, peer)).start()
            else:
                self._reply(data, peer)

    def answer(self, data):
        q = parse_query(data)
        if q is None:
            return None
        qid, flags, qtype, qclass, question, name = q
        with self.lock:
            self.queries.append((name, qtype, time.monotonic()))
            if (name, qtype) in self.drop:
                return None
            table = dict(self.flex)
        rd = flags & 0x0100
        answers = []
        rcode = 0 if name in table else 3
        cur, owner_wire, hops = name, b"\xc0\x0c", 0
        while cur in table and hops < 8:
            hops += 1
            nxt = None
            for kind, val, ttl in table[cur]:
                if kind == "CNAME":
                    rdata = _name_wire(val)
                    answers.append(owner_wire + struct.pack("!HHIH", CNAME, 1, ttl, len(rdata)) + rdata)
                    nxt = val.lower()
                elif kind == "A" and qtype == A:
                    rdata = socket.inet_pton(socket.AF_INET, val)
                    answers.append(owner_wire + struct.pack("!HHIH", A, 1, ttl, 4) + rdata)
                elif kind == "AAAA" and qtype == AAAA:
                    rdata = socket.inet_pton(socket.AF_INET6, val)
                    answers.append(owner_wire + struct.pack("!HHIH", AAAA, 1, ttl, 16) + rdata)
            if nxt is None:
                break
            cur, owner_wire = nxt, _name_wire(nxt)
        rflags = 0x8000 | 0x0400 | rd | 0x0080 | rcode
        out = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question
        return out + b"".join(answers)


def resolve(server, name, qtype=A, timeout=2):
    """A minimal stub query for self-tests: returns (rcode, [addresses])."""
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for l in name.split("."):
        q += bytes([len(l)]) + l.encode()
    q += b"\x00" + struct.pack("!HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, (server.host, server.port))
        r, _ = s.recvfrom(4096)
    finally:
        s.close()
    _id, flags, _qd, an, _ns, _ar = struct.unpack("!HHHHHH", r[:12])
    i = len(q)
    out = []
    for _ in range(an):
        _n, t, _c, _ttl, ln = struct.unpack("!HHHIH", r[i:i + 12])
        rdata = r[i + 12:i + 12 + ln]
        out.append(socket.inet_ntop(socket.AF_INET if t == A else socket.AF_INET6, rdata))
        i += 12 + ln
    return flags & 0xF, out
