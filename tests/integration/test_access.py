"""Client access control: `allow` lists and the loopback-only default."""
from lib import asserts as A
from lib import origin as O


def test_access001_client_not_allowed_403(t):
    p = t.sluice("allow 10.0.0.0/8")
    o = t.origin()
    r = t.get(p, o.url("/"))
    A.proxy_error(r, 403)
    A.eq(o.accepted, 0, "connections made to the origin")
    p.wait_log("TCP_DENIED/403")


def test_access002_default_allows_loopback(t):
    p = t.sluice()
    o = t.origin(O.respond(body=b"welcome"))
    r = t.get(p, o.url("/"))
    A.status(r, 200)
    A.eq(r.body, b"welcome", "body")


def test_access003_allow_list_with_client(t):
    p = t.sluice("allow 10.0.0.0/8 127.0.0.1/32")
    o = t.origin()
    A.status(t.get(p, o.url("/")), 200)


def test_access004_denied_connect(t):
    p = t.sluice("allow 192.168.0.0/16\nconnect_ports 443")
    c = t.client(p)
    c.send(b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n")
    r = c.read_response(method="CONNECT")
    A.proxy_error(r, 403)


def test_access005_ipv6_client_denied_by_v4_only_list(t):
    p = t.sluice("allow 127.0.0.0/8", host="::1")
    o = t.origin()
    A.proxy_error(t.get(p, o.url("/")), 403)
