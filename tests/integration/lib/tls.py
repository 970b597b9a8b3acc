"""A TLS origin: a self-signed certificate made with the openssl CLI at test
time, and an Origin whose connections are wrapped in TLS."""
import os
import ssl
import subprocess

from .origin import Origin


def make_cert(dirpath, cn="127.0.0.1"):
    """Create cert.pem/key.pem in dirpath; returns (cert, key)."""
    cert = os.path.join(dirpath, "cert.pem")
    key = os.path.join(dirpath, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", f"/CN={cn}",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, timeout=30)
    return cert, key


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(cert):
    ctx = ssl.create_default_context(cafile=cert)
    return ctx


class TLSOrigin(Origin):
    def __init__(self, dirpath, handler, host="127.0.0.1", **kw):
        os.makedirs(dirpath, exist_ok=True)
        self.cert, self.key = make_cert(dirpath)
        super().__init__(handler, host=host, tls_context=server_context(self.cert, self.key),
                         name="tls-origin", **kw)
