"""A small Azure Files REST server for the tests (Azurite has no Files service).

usage: files_server.py ROOT ACCOUNT KEY_BASE64

Listens on a free loopback port and prints it on the first line of stdout. Serves
http://127.0.0.1:PORT/ACCOUNT/SHARE/PATH, path-style as Azurite does; shares are the
folders of ROOT, files and directories are real files and folders under them, written
and read in pieces (a 1 GiB file never sits in memory).

What it checks, as the service does: the Shared Key signature of every request (the
Blob/Queue/File string-to-sign, canonicalized resource /ACCOUNT/URL-PATH plus the query),
or a service SAS (sr=s or sr=f, its signature, expiry and permissions), or a bearer
token (only with x-ms-file-request-intent: backup; audience and lifetime checked, not
its signature); x-ms-version;
name rules (no `\\ / : | < > * ? "`, no `.`/`..`); Put Range at most 4 MiB, inside the
file, its Content-MD5; listing pages with continuation markers; and the error codes of
the real service (ShareNotFound, ResourceNotFound, ParentNotFound, ResourceAlreadyExists,
ShareAlreadyExists, InvalidRange, Md5Mismatch, AuthenticationFailed,
AuthorizationPermissionMismatch, ...).

Test hooks, files under ROOT that a test writes (never reachable over HTTP):
- .hostile/SHARE.json: [[kind, name, size], ...] entries added to the listing of the
  share's root, as a hostile or broken service could send them;
- .faults.json: {"cut_gets": N} cuts the next N file GETs of more than 1 MiB half-way
  (the connection closes), {"busy": N} answers the next N requests 503 ServerBusy,
  {"page": N} makes every listing page at most N entries long, {"lose_renames": N}
  renames the next N files and then answers 503, as if the answer were lost,
  {"hide_head": "SHARE/PATH"} answers that file's next HEAD 404, as if it were not
  there yet (it appears between a check and a write).

Microsoft's own Python SDK (azure-storage-file-share) runs against this server in the
tests (tests/common/files_sdk.py), so a drift from the real protocol fails there first.
"""

import base64
import email.utils
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

ROOT, ACCOUNT, KEY = sys.argv[1], sys.argv[2], base64.b64decode(sys.argv[3])
MAX_RANGE = 4 << 20
BAD_CHARS = set('\\/:|<>*?"') | {chr(c) for c in range(0x20)}
LOCK = threading.Lock()
# path -> {"gen": int, "ctype": str, "md5": str|None}
PROPS = {}
GEN = [0]


class Fail(Exception):
    def __init__(self, status, code, msg=""):
        super().__init__(code)
        self.status, self.code, self.msg = status, code, msg or code


def next_gen():
    with LOCK:
        GEN[0] += 1
        return GEN[0]


def touch(rel, **kw):
    with LOCK:
        GEN[0] += 1
        p = PROPS.setdefault(rel, {"ctype": "application/octet-stream", "md5": None})
        p["gen"] = GEN[0]
        p.update(kw)


def etag_of(rel, st):
    p = PROPS.get(rel)
    gen = p["gen"] if p else st.st_mtime_ns ^ st.st_size
    return '"0x8D%013X"' % (gen & ((1 << 52) - 1))


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(t))


def take_fault(kind):
    path = os.path.join(ROOT, ".faults.json")
    with LOCK:
        try:
            with open(path) as f:
                faults = json.load(f)
        except (OSError, ValueError):
            return False
        if faults.get(kind, 0) <= 0:
            return False
        faults[kind] -= 1
        with open(path, "w") as f:
            json.dump(faults, f)
        return True


def take_hidden(rel):
    """Whether `rel` is the file whose next HEAD is to miss it (and forget that)."""
    path = os.path.join(ROOT, ".faults.json")
    with LOCK:
        try:
            with open(path) as f:
                faults = json.load(f)
        except (OSError, ValueError):
            return False
        if faults.get("hide_head") != rel:
            return False
        faults["hide_head"] = None
        with open(path, "w") as f:
            json.dump(faults, f)
        return True


def fault_value(kind):
    try:
        with open(os.path.join(ROOT, ".faults.json")) as f:
            return json.load(f).get(kind)
    except (OSError, ValueError):
        return None


def parse_range(value):
    """bytes=A-B -> (A, B) inclusive."""
    if not value or not value.startswith("bytes="):
        return None
    a, _, b = value[6:].partition("-")
    try:
        return int(a), (int(b) if b else None)
    except ValueError:
        raise Fail(400, "InvalidHeaderValue", "bad range")


def xml_name(name):
    if any(ord(c) < 0x20 or c in "\ufffe\uffff" for c in name):
        return '<Name Encoded="true">%s</Name>' % urllib.parse.quote(name, safe="")
    return "<Name>%s</Name>" % escape(name)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # --- plumbing -----------------------------------------------------------------

    def answer(self, status, headers=None, body=b""):
        self.send_response(status)
        h = {"x-ms-request-id": "%x" % next_gen(), "x-ms-version": "2023-11-03",
             "Date": http_date(time.time())}
        h.update(headers or {})
        if "Content-Length" not in h:
            h["Content-Length"] = str(len(body))
        for k, v in h.items():
            self.send_header(k, v)
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def fail(self, e):
        body = b""
        if self.command != "HEAD":
            body = ('<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>'
                    % (e.code, escape(e.msg))).encode()
        # The request's own body, if not read, must not be taken for the next request.
        self.drain()
        self.answer(e.status, {"x-ms-error-code": e.code, "Content-Type": "application/xml"}, body)

    def drain(self):
        left = int(self.headers.get("Content-Length") or 0) - getattr(self, "consumed", 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        self.consumed = int(self.headers.get("Content-Length") or 0)

    def hdr(self, name):
        return self.headers.get(name)

    def handle_any(self):
        self.consumed = 0
        try:
            if take_fault("busy"):
                raise Fail(503, "ServerBusy", "The server is busy.")
            url = urllib.parse.urlsplit(self.path)
            self.raw_path = url.path
            self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            self.q = {k.lower(): v[0] for k, v in self.query.items()}
            # The service takes an encoded `/` (%2F, as the SDK writes sub-directories)
            # for a separator too.
            parts = urllib.parse.unquote(url.path).split("/")[1:]
            if not parts or parts[0] != ACCOUNT:
                raise Fail(400, "InvalidUri", "path-style: /ACCOUNT/SHARE/PATH")
            parts = parts[1:]
            if parts and parts[-1] == "":
                parts = parts[:-1]
            self.share = parts[0] if parts else ""
            self.rel_parts = parts[1:]
            self.authorize()
            self.dispatch()
        except Fail as e:
            self.fail(e)
        except BrokenPipeError:
            self.close_connection = True

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = handle_any

    # --- authorization ------------------------------------------------------------

    def authorize(self):
        if not self.hdr("x-ms-version"):
            raise Fail(400, "MissingRequiredHeader", "x-ms-version")
        auth = self.hdr("Authorization")
        if auth and auth.startswith("Bearer "):
            self.check_bearer(auth[len("Bearer "):])
            self.sas = None
            return
        if auth:
            if not auth.startswith("SharedKey "):
                raise Fail(403, "AuthenticationFailed", "only Shared Key and SAS here")
            acct, _, sig = auth[len("SharedKey "):].partition(":")
            if acct != ACCOUNT or not hmac.compare_digest(sig, self.shared_key_signature()):
                raise Fail(403, "AuthenticationFailed", "signature mismatch")
            self.sas = None
            return
        if "sig" in self.q:
            self.sas = self.check_sas(self.q, self.share, self.rel_parts)
            self.need_sas("r" if self.command in ("GET", "HEAD") else "")
            return
        raise Fail(401, "NoAuthenticationInformation", "no credentials")

    def check_bearer(self, token):
        """An Entra ID token, as the Files REST API takes one: only with
        x-ms-file-request-intent: backup and version 2022-11-02 or later. The token's
        audience and lifetime are checked (as Azurite's `--oauth basic`), not its
        signature."""
        if self.hdr("x-ms-version") < "2022-11-02":
            raise Fail(400, "InvalidHeaderValue", "OAuth needs x-ms-version 2022-11-02 or later")
        if (self.hdr("x-ms-file-request-intent") or "").lower() != "backup":
            raise Fail(400, "MissingRequiredHeader", "x-ms-file-request-intent")
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            raise Fail(401, "InvalidAuthenticationInfo", "not a JWT")
        if claims.get("aud", "").rstrip("/") != "https://storage.azure.com":
            raise Fail(401, "InvalidAuthenticationInfo", "audience")
        if claims.get("exp", 0) < time.time():
            raise Fail(401, "InvalidAuthenticationInfo", "Lifetime validation failed. The token is expired.")

    def shared_key_signature(self):
        h = lambda n: self.headers.get(n, "") or ""
        length = h("Content-Length")
        if length == "0":
            length = ""
        ms = sorted((k.lower(), v.strip()) for k, v in self.headers.items()
                    if k.lower().startswith("x-ms-"))
        canon_headers = "".join("%s:%s\n" % kv for kv in ms)
        resource = "/" + ACCOUNT + self.raw_path
        for k in sorted(self.query, key=str.lower):
            resource += "\n%s:%s" % (k.lower(), ",".join(sorted(self.query[k])))
        sts = "\n".join([self.command, h("Content-Encoding"), h("Content-Language"), length,
                         h("Content-MD5"), h("Content-Type"), h("Date"), h("If-Modified-Since"),
                         h("If-Match"), h("If-None-Match"), h("If-Unmodified-Since"), h("Range")])
        sts += "\n" + canon_headers + resource
        return base64.b64encode(hmac.new(KEY, sts.encode(), hashlib.sha256).digest()).decode()

    @staticmethod
    def check_sas(q, share, rel_parts):
        sr = q.get("sr")
        if sr == "s":
            resource = "/file/%s/%s" % (ACCOUNT, share)
        elif sr == "f":
            resource = "/file/%s/%s/%s" % (ACCOUNT, share, "/".join(rel_parts))
        else:
            raise Fail(403, "AuthenticationFailed", "only service SAS (sr=s or sr=f) here")
        fields = [q.get("sp", ""), q.get("st", ""), q.get("se", ""), resource, q.get("si", ""),
                  q.get("sip", ""), q.get("spr", ""), q.get("sv", ""), q.get("rscc", ""),
                  q.get("rscd", ""), q.get("rsce", ""), q.get("rscl", ""), q.get("rsct", "")]
        want = base64.b64encode(hmac.new(KEY, "\n".join(fields).encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(want, q.get("sig", "")):
            raise Fail(403, "AuthenticationFailed", "SAS signature mismatch")
        se = q.get("se", "")
        try:
            expiry = time.mktime(time.strptime(se[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        except ValueError:
            raise Fail(403, "AuthenticationFailed", "SAS expiry")
        if expiry < time.time():
            raise Fail(403, "AuthenticationFailed", "SAS expired")
        return q.get("sp", "")

    def need_sas(self, perms):
        if self.sas is None:
            return
        for p in perms:
            if p not in self.sas:
                raise Fail(403, "AuthorizationPermissionMismatch", "SAS lacks " + p)

    # --- paths --------------------------------------------------------------------

    def share_dir(self):
        if not self.share:
            raise Fail(400, "InvalidUri", "no share")
        d = os.path.join(ROOT, self.share)
        if not os.path.isdir(d):
            raise Fail(404, "ShareNotFound", "The specified share does not exist.")
        return d

    def local(self, rel_parts=None):
        rel_parts = self.rel_parts if rel_parts is None else rel_parts
        for seg in rel_parts:
            if seg in ("", ".", "..") or any(c in BAD_CHARS for c in seg) or len(seg) > 255:
                raise Fail(400, "InvalidResourceName", "bad name")
        return os.path.join(self.share_dir(), *rel_parts)

    def rel(self, rel_parts=None):
        return self.share + "/" + "/".join(self.rel_parts if rel_parts is None else rel_parts)

    def parent_must_exist(self, path):
        if not os.path.isdir(os.path.dirname(path)):
            raise Fail(404, "ParentNotFound", "The specified parent path does not exist.")

    # --- dispatch -----------------------------------------------------------------

    def dispatch(self):
        restype, comp, m = self.q.get("restype"), self.q.get("comp"), self.command
        if restype == "share" and not self.rel_parts:
            return self.share_op(m)
        if restype == "directory" and comp == "list":
            self.need_sas("l")
            return self.list_dir()
        if restype == "directory":
            return self.dir_op(m)
        if comp == "range" and m == "PUT":
            self.need_sas("w")
            return self.put_range()
        if comp == "rename" and m == "PUT":
            self.need_sas("w")
            return self.rename()
        if comp is None and m == "PUT" and (self.hdr("x-ms-type") or "").lower() == "file":
            self.need_sas("c")
            return self.create_file()
        if comp is None and m in ("GET", "HEAD"):
            return self.get_file()
        if comp is None and m == "DELETE":
            self.need_sas("d")
            return self.delete_file()
        raise Fail(400, "UnsupportedHttpVerb" if comp is None else "InvalidQueryParameterValue",
                   "not served by this test server")

    def share_op(self, m):
        d = os.path.join(ROOT, self.share)
        if m == "PUT":
            if self.sas is not None:
                raise Fail(403, "AuthorizationPermissionMismatch", "a service SAS cannot create shares")
            if len(self.share) < 3 or not all(c.islower() or c.isdigit() or c == "-" for c in self.share):
                raise Fail(400, "InvalidResourceName", "share name")
            try:
                os.mkdir(d)
            except FileExistsError:
                raise Fail(409, "ShareAlreadyExists", "The specified share already exists.")
            st = os.stat(d)
            return self.answer(201, {"ETag": etag_of(self.share, st), "Last-Modified": http_date(st.st_mtime)})
        if m == "DELETE":
            self.share_dir()
            import shutil
            shutil.rmtree(d)
            return self.answer(202)
        st = os.stat(self.share_dir())
        return self.answer(200, {"ETag": etag_of(self.share, st), "Last-Modified": http_date(st.st_mtime),
                                 "x-ms-share-quota": "5120"})

    def dir_op(self, m):
        path = self.local()
        rel = self.rel()
        if m == "PUT":
            self.need_sas("c")
            if not self.rel_parts:
                raise Fail(409, "ResourceAlreadyExists", "The specified resource already exists.")
            self.parent_must_exist(path)
            try:
                os.mkdir(path)
            except FileExistsError:
                raise Fail(409, "ResourceAlreadyExists", "The specified resource already exists.")
            touch(rel)
            st = os.stat(path)
            return self.answer(201, {"ETag": etag_of(rel, st), "Last-Modified": http_date(st.st_mtime),
                                     "x-ms-request-server-encrypted": "true",
                                     "x-ms-file-attributes": "Directory",
                                     "x-ms-file-id": str(st.st_ino), "x-ms-file-parent-id": "0"})
        if not os.path.isdir(path):
            raise Fail(404, "ParentNotFound" if not os.path.isdir(os.path.dirname(path))
                       else "ResourceNotFound", "The specified resource does not exist.")
        if m == "DELETE":
            self.need_sas("d")
            if not self.rel_parts:
                raise Fail(400, "InvalidResourceName", "the root cannot be deleted")
            try:
                os.rmdir(path)
            except OSError:
                raise Fail(409, "DirectoryNotEmpty", "The specified directory is not empty.")
            return self.answer(202)
        st = os.stat(path)
        return self.answer(200, {"ETag": etag_of(rel, st), "Last-Modified": http_date(st.st_mtime),
                                 "x-ms-file-attributes": "Directory", "x-ms-server-encrypted": "true"})

    def list_dir(self):
        path = self.local()
        if not os.path.isdir(path):
            raise Fail(404, "ParentNotFound" if not os.path.isdir(os.path.dirname(path))
                       else "ResourceNotFound", "The specified resource does not exist.")
        try:
            maxresults = int(self.q.get("maxresults") or 5000)
        except ValueError:
            raise Fail(400, "InvalidQueryParameterValue", "maxresults")
        if maxresults <= 0:
            raise Fail(400, "OutOfRangeQueryParameterValue", "maxresults")
        maxresults = min(maxresults, 5000, fault_value("page") or 5000)
        prefix, marker = self.q.get("prefix") or "", self.q.get("marker") or ""
        include = [i.strip().lower() for i in (self.q.get("include") or "").split(",") if i.strip()]
        entries = []
        for name in sorted(os.listdir(path)):
            if name.startswith(prefix) and name >= marker:
                full = os.path.join(path, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                entries.append(("Directory" if os.path.isdir(full) else "File", name, st.st_size, st))
        if not self.rel_parts:
            try:
                with open(os.path.join(ROOT, ".hostile", self.share + ".json")) as f:
                    for kind, name, size in json.load(f):
                        entries.append((kind, name, size, None))
            except FileNotFoundError:
                pass
        page, rest = entries[:maxresults], entries[maxresults:]
        out = ['<?xml version="1.0" encoding="utf-8"?>',
               '<EnumerationResults ServiceEndpoint="http://%s/%s/" ShareName="%s" DirectoryPath="%s">'
               % (escape(self.hdr("Host") or ""), ACCOUNT, self.share, escape("/".join(self.rel_parts))),
               "<Marker>%s</Marker>" % escape(marker), "<Prefix>%s</Prefix>" % escape(prefix),
               "<MaxResults>%d</MaxResults>" % maxresults, "<DirectoryId>0</DirectoryId><Entries>"]
        for kind, name, size, st in page:
            rel = self.rel(self.rel_parts + [name])
            props = []
            if kind == "File":
                props.append("<Content-Length>%d</Content-Length>" % size)
            if st is not None and "timestamps" in include:
                props.append("<CreationTime>%s</CreationTime><LastAccessTime>%s</LastAccessTime>"
                             "<LastWriteTime>%s</LastWriteTime><ChangeTime>%s</ChangeTime>"
                             "<Last-Modified>%s</Last-Modified>"
                             % (iso(st.st_ctime), iso(st.st_atime), iso(st.st_mtime), iso(st.st_ctime),
                                http_date(st.st_mtime)))
            if st is not None and "etag" in include:
                props.append("<Etag>%s</Etag>" % escape(etag_of(rel, st)))
            out.append("<%s><FileId>%d</FileId>%s<Properties>%s</Properties></%s>"
                       % (kind, st.st_ino if st else 0, xml_name(name), "".join(props), kind))
        out.append("</Entries><NextMarker>%s</NextMarker></EnumerationResults>"
                   % (escape(rest[0][1]) if rest else ""))
        self.answer(200, {"Content-Type": "application/xml"}, "".join(out).encode())

    def file_path(self):
        if not self.rel_parts:
            raise Fail(400, "InvalidUri", "no file")
        return self.local()

    def create_file(self):
        path = self.file_path()
        self.parent_must_exist(path)
        if os.path.isdir(path):
            raise Fail(409, "ResourceAlreadyExists", "a directory of that name exists")
        try:
            size = int(self.hdr("x-ms-content-length"))
        except (TypeError, ValueError):
            raise Fail(400, "MissingRequiredHeader", "x-ms-content-length")
        with open(path, "wb") as f:
            f.truncate(size)
        rel = self.rel()
        meta = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-ms-meta-")}
        touch(rel, ctype=self.hdr("x-ms-content-type") or "application/octet-stream",
              md5=self.hdr("x-ms-content-md5"), meta=meta)
        st = os.stat(path)
        self.answer(201, {"ETag": etag_of(rel, st), "Last-Modified": http_date(st.st_mtime),
                          "x-ms-request-server-encrypted": "true", "x-ms-file-attributes": "Archive",
                          "x-ms-file-creation-time": iso(st.st_mtime), "x-ms-file-last-write-time": iso(st.st_mtime),
                          "x-ms-file-change-time": iso(st.st_mtime), "x-ms-file-id": str(st.st_ino),
                          "x-ms-file-parent-id": "0"})

    def existing_file(self):
        path = self.file_path()
        if not os.path.isfile(path):
            raise Fail(404, "ParentNotFound" if not os.path.isdir(os.path.dirname(path))
                       else "ResourceNotFound", "The specified resource does not exist.")
        return path

    def put_range(self):
        path = self.existing_file()
        r = parse_range(self.hdr("x-ms-range") or self.hdr("Range"))
        if r is None or r[1] is None:
            raise Fail(400, "MissingRequiredHeader", "x-ms-range")
        start, end = r
        length = int(self.hdr("Content-Length") or 0)
        write = (self.hdr("x-ms-write") or "").lower()
        size = os.path.getsize(path)
        if end < start or end >= size:
            raise Fail(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
        if end - start + 1 > MAX_RANGE:
            raise Fail(413, "RequestBodyTooLarge", "a range is at most 4 MiB")
        # At most 4 MiB: read whole, checked against its Content-MD5, then written.
        if write == "update":
            if length != end - start + 1:
                raise Fail(400, "InvalidHeaderValue", "Content-Length must match the range")
            data = self.rfile.read(length)
            self.consumed += len(data)
            if len(data) != length:
                raise Fail(400, "IncompleteBody", "body ended early")
        elif write == "clear":
            data = b"\0" * (end - start + 1)
        else:
            raise Fail(400, "InvalidHeaderValue", "x-ms-write")
        md5 = hashlib.md5(data)
        if write == "update" and self.hdr("Content-MD5") is not None:
            if base64.b64decode(self.hdr("Content-MD5")) != md5.digest():
                raise Fail(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, start)
        finally:
            os.close(fd)
        rel = self.rel()
        touch(rel, md5=None)
        st = os.stat(path)
        self.answer(201, {"ETag": etag_of(rel, st), "Last-Modified": http_date(st.st_mtime),
                          "Content-MD5": base64.b64encode(md5.digest()).decode(),
                          "x-ms-request-server-encrypted": "true"})

    def get_file(self):
        if self.command == "HEAD" and take_hidden(self.rel()):
            raise Fail(404, "ResourceNotFound", "The specified resource does not exist.")
        path = self.existing_file()
        rel = self.rel()
        st = os.stat(path)
        size = st.st_size
        props = PROPS.get(rel, {})
        h = {"ETag": etag_of(rel, st), "Last-Modified": http_date(st.st_mtime), "x-ms-type": "File",
             "Content-Type": props.get("ctype") or "application/octet-stream", "Accept-Ranges": "bytes",
             "x-ms-server-encrypted": "true", "x-ms-file-attributes": "Archive",
             "x-ms-file-creation-time": iso(st.st_mtime), "x-ms-file-last-write-time": iso(st.st_mtime),
             "x-ms-file-change-time": iso(st.st_mtime), "x-ms-file-id": str(st.st_ino),
             "x-ms-file-parent-id": "0", "x-ms-lease-state": "available", "x-ms-lease-status": "unlocked"}
        h.update(props.get("meta") or {})
        r = parse_range(self.hdr("x-ms-range") or self.hdr("Range"))
        if r is None:
            start, end, status = 0, size - 1, 200
            if props.get("md5"):
                h["Content-MD5"] = props["md5"]
        else:
            start, end = r
            end = size - 1 if end is None else min(end, size - 1)
            if start >= size:
                raise Fail(416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
            status = 206
            h["Content-Range"] = "bytes %d-%d/%d" % (start, end, size)
            if (self.hdr("x-ms-range-get-content-md5") or "").lower() == "true":
                if end - start + 1 > MAX_RANGE:
                    raise Fail(400, "OutOfRangeInput", "a range with its MD5 is at most 4 MiB")
                with open(path, "rb") as f:
                    f.seek(start)
                    h["Content-MD5"] = base64.b64encode(hashlib.md5(f.read(end - start + 1)).digest()).decode()
            if props.get("md5"):
                h["x-ms-content-md5"] = props["md5"]
        length = max(0, end - start + 1)
        h["Content-Length"] = str(length)
        self.send_response(status)
        h.update({"x-ms-request-id": "%x" % next_gen(), "x-ms-version": "2023-11-03", "Date": http_date(time.time())})
        for k, v in h.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = length // 2 if length > (1 << 20) and take_fault("cut_gets") else None
        with open(path, "rb") as f:
            f.seek(start)
            sent = 0
            while sent < length:
                want = min(1 << 20, length - sent)
                if cut is not None and sent + want > cut:
                    self.wfile.write(f.read(cut - sent))
                    self.wfile.flush()
                    self.close_connection = True
                    return
                chunk = f.read(want)
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)

    def delete_file(self):
        path = self.existing_file()
        os.remove(path)
        with LOCK:
            PROPS.pop(self.rel(), None)
        self.answer(202)

    def rename(self):
        dest = self.file_path()
        source = self.hdr("x-ms-file-rename-source")
        if not source:
            raise Fail(400, "MissingRequiredHeader", "x-ms-file-rename-source")
        src_url = urllib.parse.urlsplit(source)
        src_parts = urllib.parse.unquote(src_url.path).split("/")[1:]
        if src_url.path.startswith("/" + ACCOUNT + "/"):
            src_parts = src_parts[1:]
        if not src_parts or src_parts[0] != self.share:
            raise Fail(400, "InvalidHeaderValue", "the source must be in the same share")
        if self.sas is not None:
            q = {k.lower(): v[0] for k, v in urllib.parse.parse_qs(src_url.query).items()}
            if "sig" not in q:
                raise Fail(403, "AuthenticationFailed", "the rename source carries no SAS")
            self.check_sas(q, src_parts[0], src_parts[1:])
        src = self.local(src_parts[1:])
        if not os.path.isfile(src):
            raise Fail(404, "ResourceNotFound", "The specified resource does not exist.")
        self.parent_must_exist(dest)
        replace = (self.hdr("x-ms-file-rename-replace-if-exists") or "false").lower() == "true"
        with LOCK:
            if os.path.isdir(dest):
                raise Fail(409, "ResourceAlreadyExists", "a directory of that name exists")
            if os.path.exists(dest) and not replace:
                raise Fail(409, "ResourceAlreadyExists", "The specified resource already exists.")
            os.replace(src, dest)
            src_rel = self.rel(src_parts[1:])
            PROPS[self.rel()] = PROPS.pop(src_rel, {"ctype": "application/octet-stream", "md5": None, "gen": 0})
            GEN[0] += 1
            PROPS[self.rel()]["gen"] = GEN[0]
        if take_fault("lose_renames"):
            raise Fail(503, "ServerBusy", "done, but the answer is lost")
        st = os.stat(dest)
        self.answer(200, {"ETag": etag_of(self.rel(), st), "Last-Modified": http_date(st.st_mtime),
                          "x-ms-request-server-encrypted": "true", "x-ms-file-attributes": "Archive",
                          "x-ms-file-id": str(st.st_ino), "x-ms-file-parent-id": "0"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
