"""A stand-in for the Microsoft Entra ID token endpoint (HTTPS) or a managed identity
endpoint (HTTP, as IDENTITY_ENDPOINT is), for the tests.

  token_server.py CERT KEY LOG MODE      CERT `-`: plain HTTP

Answers a POST (a service principal's sign-in) or a GET (a managed identity's) with a
bearer token in the shape Azurite's `--oauth basic` checks (issuer, audience,
lifetime; no signature check), appending each request to LOG as one line: method,
path, form body (or `-`), and the `metadata` and `x-identity-header` headers. MODE
`ok` gives a valid token, `expired` one whose lifetime ended an hour ago. Prints its
port, then serves until killed.
"""

import base64
import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

CERT, KEY, LOG, MODE = sys.argv[1:5]


def b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def token():
    now = int(time.time()) - (7200 if MODE == "expired" else 0)
    claims = {
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + 3600,
    }
    return b64({"alg": "RS256", "typ": "JWT"}) + "." + b64(claims) + ".c2lnbmF0dXJl"


class Handler(BaseHTTPRequestHandler):
    def answer(self, body, reply):
        with open(LOG, "a") as f:
            f.write(
                f"{self.command} {self.path} {body or '-'} "
                f"{self.headers.get('metadata', '-')} {self.headers.get('x-identity-header', '-')}\n"
            )
        out = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
        self.answer(body, {"access_token": token(), "expires_in": 3600, "token_type": "Bearer"})

    def do_GET(self):
        expires = str(int(time.time()) + 3600)
        self.answer("", {"access_token": token(), "expires_on": expires, "token_type": "Bearer"})

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
if CERT != "-":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
