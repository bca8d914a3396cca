"""A stand-in for AWS STS's AssumeRoleWithWebIdentity over HTTPS (what EKS IRSA asks),
for the tests.

  sts_server.py CERT KEY LOG ROLE TOKEN ID SECRET SESSION

Answers `POST /?Action=AssumeRoleWithWebIdentity&RoleArn=…&WebIdentityToken=…` with
the temporary credentials ID, SECRET and SESSION (valid for an hour), as STS's XML,
when the role is ROLE and the web identity token is TOKEN; anything else gets STS's
403 `AccessDenied`. Appends each request's action and role to LOG (never the token).
Prints its port, then serves until killed.
"""

import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

CERT, KEY, LOG, ROLE, TOKEN, ID, SECRET, SESSION = sys.argv[1:9]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        q = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        with open(LOG, "a") as f:
            f.write(f"{q.get('Action', '-')} {q.get('RoleArn', '-')}\n")
        ok = (
            q.get("Action") == "AssumeRoleWithWebIdentity"
            and q.get("RoleArn") == ROLE
            and q.get("WebIdentityToken") == TOKEN
        )
        if ok:
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            body = (
                '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                "<AssumeRoleWithWebIdentityResult><Credentials>"
                f"<AccessKeyId>{ID}</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey>"
                f"<SessionToken>{SESSION}</SessionToken><Expiration>{expires}</Expiration>"
                "</Credentials></AssumeRoleWithWebIdentityResult>"
                "</AssumeRoleWithWebIdentityResponse>"
            )
        else:
            body = (
                '<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>'
                "<Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message>"
                "</Error></ErrorResponse>"
            )
        out = body.encode()
        self.send_response(200 if ok else 403)
        self.send_header("content-type", "text/xml")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
