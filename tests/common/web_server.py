"""A small web server for the tests: plain files, and the parts of the Hugging Face
Hub's HTTP API that stagehand and huggingface_hub use.

usage: web_server.py ROOT [CERT KEY]

With CERT and KEY (PEM files), it speaks HTTPS.

Listens on a free loopback port and prints it on the first line of stdout.

Plain files, from ROOT/files/PATH:
- /ranged/PATH: ETag (the content's SHA-256), Last-Modified, Accept-Ranges: bytes,
  Range answered 206 (If-Range honoured: a stale validator gets the whole file, 200);
- /plain/PATH: no Accept-Ranges, Range ignored (200 and the whole file), no ETag and
  no Last-Modified, as a bare server or a script would answer;
- ROOT/.cut: a number N: the next N GETs of more than 64 KiB close the connection
  half-way (a cut download).

Hub repositories are folders ROOT/hub/TYPEs/ORG/NAME/BRANCH/ (TYPE model or dataset);
a branch's commit id is the SHA-1 of its files' names and contents, so changing a file
on disk moves the branch. Files of 1 KiB or more are LFS files (their oid is their
SHA-256; resolve answers a 302 to /cdn/SHA256 with X-Linked-Etag and X-Linked-Size, as
the Hub does); smaller ones are plain git blobs (oid: git's blob SHA-1). Answers:
- GET /api/TYPEs/ORG/NAME/revision/REV (REV a branch or a commit id): id, sha,
  siblings;
- GET /api/TYPEs/ORG/NAME/tree/REV[/PATH][?recursive=true]: the entries, two per page
  (a Link header to the next page, as the Hub pages);
- HEAD/GET /[datasets/]ORG/NAME/resolve/REV/PATH: X-Repo-Commit, ETag; LFS: 302;
- GET /cdn/SHA256: the LFS object, Range supported.
ROOT/.throttle: a number R: every body is sent at R bytes a second.
Every GET's Range header is logged in ROOT/.ranges ("PATH RANGE" a line).
Every Hub request is counted in ROOT/.hub_requests (one path a line), for the tests.
With ROOT/.token, every Hub call but the CDN's must send `Authorization: Bearer <token>`;
the CDN (on `localhost`, another host) refuses any token, as a token must never leave the Hub.
"""

import email.utils
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
LFS_MIN = 1024
LOCK = threading.Lock()
SCHEME = "https" if len(sys.argv) > 3 else "http"


def files_of(base):
    out = []
    for d, _, names in os.walk(base):
        for n in names:
            full = os.path.join(d, n)
            out.append(os.path.relpath(full, base).replace(os.sep, "/"))
    return sorted(out)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def git_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def commit_of(base):
    h = hashlib.sha1()
    for p in files_of(base):
        h.update(p.encode() + b"\0" + hashlib.sha256(read(os.path.join(base, p))).digest())
    return h.hexdigest()


def repo_dir(kind, repo):
    return os.path.join(ROOT, "hub", kind + "s", repo)


def branch_for(kind, repo, rev):
    """The branch folder a revision names: a branch, or a branch's current commit."""
    d = repo_dir(kind, repo)
    if not os.path.isdir(d):
        return None
    for b in sorted(os.listdir(d)):
        base = os.path.join(d, b)
        if b == rev or commit_of(base) == rev:
            return base
    return None


def entry(base, p):
    data = read(os.path.join(base, p))
    e = {"type": "file", "path": p, "size": len(data), "oid": git_oid(data)}
    if len(data) >= LFS_MIN:
        e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
    return e


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.route(head=True)

    def do_GET(self):
        self.route(head=False)

    def send(self, status, body=b"", headers=(), head=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def json(self, obj, headers=()):
        self.send(200, json.dumps(obj).encode(), [("Content-Type", "application/json")] + list(headers))

    def route(self, head):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = urllib.parse.parse_qs(url.query)
        if not head and self.headers.get("Range"):
            with LOCK, open(os.path.join(ROOT, ".ranges"), "a") as f:
                f.write("%s %s\n" % (path, self.headers.get("Range")))
        try:
            if path.startswith("/ranged/") or path.startswith("/plain/"):
                kind, rest = path[1:].split("/", 1)
                return self.file(os.path.join(ROOT, "files", rest), kind == "ranged", head)
            self.count(path)
            if path.startswith("/cdn/"):
                # A signed CDN address in the real Hub: no token, and none expected.
                if self.headers.get("Authorization"):
                    return self.send(400, b"a token reached the CDN", head=head)
                return self.cdn(path[len("/cdn/"):], head)
            if not self.authorized():
                return self.send(401, b'{"error":"Invalid credentials"}', head=head)
            if path.startswith("/api/"):
                return self.api(path[len("/api/"):], query, url.query)
            return self.resolve(path[1:], head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def count(self, path):
        with LOCK, open(os.path.join(ROOT, ".hub_requests"), "a") as f:
            f.write(path + "\n")

    def authorized(self):
        t = os.path.join(ROOT, ".token")
        if not os.path.exists(t):
            return True
        want = "Bearer " + read(t).decode().strip()
        return self.headers.get("Authorization") == want

    def cut(self):
        p = os.path.join(ROOT, ".cut")
        with LOCK:
            if not os.path.exists(p):
                return False
            n = int(read(p) or b"0")
            if n <= 0:
                return False
            with open(p, "w") as f:
                f.write(str(n - 1))
            return True

    def file(self, full, ranged, head):
        if not os.path.isfile(full):
            return self.send(404, b"not found", head=head)
        data = read(full)
        headers = []
        etag = '"%s"' % hashlib.sha256(data).hexdigest()
        if ranged:
            mtime = email.utils.formatdate(os.path.getmtime(full), usegmt=True)
            headers = [("ETag", etag), ("Last-Modified", mtime), ("Accept-Ranges", "bytes")]
        self.body(data, headers, ranged, head, etag)

    def body(self, data, headers, ranged, head, etag):
        status, part = 200, data
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if ranged and rng and rng.startswith("bytes=") and (if_range is None or if_range in (etag, dict(headers).get("Last-Modified"))):
            a, _, b = rng[len("bytes="):].partition("-")
            start = int(a)
            end = min(int(b), len(data) - 1) if b else len(data) - 1
            if start >= len(data):
                return self.send(416, b"", [("Content-Range", "bytes */%d" % len(data))] + headers, head)
            status, part = 206, data[start:end + 1]
            headers = headers + [("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))]
        if not head and len(part) > 64 * 1024 and self.cut():
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        rate = self.throttle()
        if rate and not head:
            # Paced, so that a test can kill the agent half-way through a file.
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            step = 64 * 1024
            for i in range(0, len(part), step):
                self.wfile.write(part[i:i + step])
                time.sleep(step / rate)
            return
        self.send(status, part, headers, head)

    def throttle(self):
        p = os.path.join(ROOT, ".throttle")
        return int(read(p) or b"0") if os.path.exists(p) else 0

    def repo_and_rest(self, parts):
        """[datasets/]ORG/NAME/rest... → (kind, repo, rest)."""
        kind = "model"
        if parts and parts[0] in ("datasets", "models"):
            kind = parts[0][:-1]
            parts = parts[1:]
        return kind, "/".join(parts[:2]), parts[2:]

    def api(self, path, query, raw_query):
        parts = path.split("/")
        if not parts[0] in ("models", "datasets"):
            return self.send(404, b"{}")
        kind, repo, rest = self.repo_and_rest(parts)
        if len(rest) < 2 or rest[0] not in ("revision", "tree"):
            return self.send(404, b"{}")
        base = branch_for(kind, repo, rest[1])
        if base is None:
            return self.send(404, b'{"error":"Repository or revision not found"}', [("X-Error-Code", "RevisionNotFound")])
        commit = commit_of(base)
        if rest[0] == "revision":
            return self.json({"id": repo, "sha": commit, "siblings": [{"rfilename": p} for p in files_of(base)]})
        sub = "/".join(rest[2:]).strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        out, dirs = [], set()
        for p in files_of(base):
            if sub and not p.startswith(sub + "/"):
                continue
            tail = p[len(sub) + 1:] if sub else p
            if "/" in tail and not recursive:
                dirs.add((sub + "/" if sub else "") + tail.split("/")[0])
                continue
            if recursive:
                for i, _ in enumerate(tail.split("/")[:-1]):
                    dirs.add((sub + "/" if sub else "") + "/".join(tail.split("/")[: i + 1]))
            out.append(entry(base, p))
        out += [{"type": "directory", "path": d, "oid": "0" * 40, "size": 0} for d in sorted(dirs)]
        cursor = int(query.get("cursor", ["0"])[0])
        page = out[cursor:cursor + 2]
        headers = []
        if cursor + 2 < len(out):
            q = dict(urllib.parse.parse_qsl(raw_query))
            q["cursor"] = str(cursor + 2)
            host = self.headers.get("Host")
            nxt = "%s://%s/api/%s?%s" % (SCHEME, host, path, urllib.parse.urlencode(q))
            headers = [("Link", '<%s>; rel="next"' % nxt)]
        self.json(page, headers)

    def resolve(self, path, head):
        kind, repo, rest = self.repo_and_rest(path.split("/"))
        if len(rest) < 3 or rest[0] != "resolve":
            return self.send(404, b"not found", head=head)
        base = branch_for(kind, repo, rest[1])
        p = "/".join(rest[2:])
        if base is None or not os.path.isfile(os.path.join(base, p)):
            return self.send(404, b"Entry not found", [("X-Error-Code", "EntryNotFound")], head)
        data = read(os.path.join(base, p))
        e = entry(base, p)
        headers = [("X-Repo-Commit", commit_of(base)), ("ETag", '"%s"' % e["oid"])]
        if "lfs" in e:
            sha = e["lfs"]["oid"]
            headers += [
                ("X-Linked-Etag", '"%s"' % sha),
                ("X-Linked-Size", str(len(data))),
                # Another host, as the Hub's CDN is (localhost for 127.0.0.1):
                # huggingface_hub reads the metadata from this answer, follows only
                # the GET, and sends it no token.
                ("Location", "%s://localhost:%d/cdn/%s" % (SCHEME, self.server.server_address[1], sha)),
            ]
            return self.send(302, b"", headers, head)
        self.body(data, headers + [("Accept-Ranges", "bytes")], True, head, headers[1][1])

    def cdn(self, sha, head):
        for d, _, names in os.walk(os.path.join(ROOT, "hub")):
            for n in names:
                data = read(os.path.join(d, n))
                if hashlib.sha256(data).hexdigest() == sha:
                    etag = '"%s"' % sha
                    return self.body(data, [("ETag", etag), ("Accept-Ranges", "bytes")], True, head, etag)
        self.send(404, b"no such object", head=head)


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) > 3:
        # HTTPS, with the certificate and key given (tests/common/tls.rs).
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
