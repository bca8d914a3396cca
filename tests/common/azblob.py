"""The tests' Azure Blob helper, on the official Python SDK (azure-storage-blob).

  azblob.py mkcontainer NAME...
  azblob.py mkpublic NAME...                            containers anyone may read (public access)
  azblob.py upload SRC CONTAINER [--prefix P] [--md5]   every file under SRC as P/<rel>
  azblob.py put CONTAINER NAME TEXT [KEY=VALUE...]      one blob, any name (even hostile),
                                                        with metadata
  azblob.py get CONTAINER NAME                          print a blob's content
  azblob.py sha256 CONTAINER [--prefix P]               'sha256 name' per blob
  azblob.py sas CONTAINER                               container SAS (racwdl, 1 day)
  azblob.py patterned CONTAINER NAME SIZE               a large blob made in a second: three
                                                        blocks staged once, committed over and
                                                        over; prints its sha256

Endpoint AZ_ENDPOINT, account ACCOUNT, key ACCOUNT_KEY.
"""

import argparse
import urllib3.util.url

# urllib3 resolves `..` segments in URL paths, so `back/../x` would never reach the
# service as such; the tests need exactly such hostile names stored.
urllib3.util.url._remove_path_dot_segments = lambda path: path

import datetime as dt
import hashlib
import os
import sys

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, ContentSettings, generate_container_sas

ACCOUNT = os.environ["ACCOUNT"]
KEY = os.environ["ACCOUNT_KEY"]
ENDPOINT = os.environ["AZ_ENDPOINT"]


def service():
    return BlobServiceClient(account_url=ENDPOINT, credential={"account_name": ACCOUNT, "account_key": KEY})


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("mkcontainer"); s.add_argument("names", nargs="+")
    s = sub.add_parser("mkpublic"); s.add_argument("names", nargs="+")
    s = sub.add_parser("upload"); s.add_argument("src"); s.add_argument("container")
    s.add_argument("--prefix", default=""); s.add_argument("--md5", action="store_true")
    s.add_argument("--bad-md5", action="store_true", help="store a wrong Content-MD5 (a corrupt blob)")
    s = sub.add_parser("put"); s.add_argument("container"); s.add_argument("name"); s.add_argument("text")
    s.add_argument("metadata", nargs="*")
    s = sub.add_parser("get"); s.add_argument("container"); s.add_argument("name")
    s = sub.add_parser("sha256"); s.add_argument("container"); s.add_argument("--prefix", default="")
    s = sub.add_parser("sas"); s.add_argument("container")
    s = sub.add_parser("patterned"); s.add_argument("container"); s.add_argument("name")
    s.add_argument("size", type=int)
    a = p.parse_args()
    svc = service()
    if a.cmd == "mkcontainer":
        for n in a.names:
            c = svc.get_container_client(n)
            if not c.exists():
                c.create_container()
    elif a.cmd == "mkpublic":
        for n in a.names:
            c = svc.get_container_client(n)
            if not c.exists():
                c.create_container(public_access="container")
    elif a.cmd == "upload":
        cc = svc.get_container_client(a.container)
        prefix = a.prefix.rstrip("/") + "/" if a.prefix else ""
        for root, _, files in os.walk(a.src):
            for fn in files:
                path = os.path.join(root, fn)
                rel = os.path.relpath(path, a.src).replace(os.sep, "/")
                data = open(path, "rb").read()
                settings = ContentSettings(content_md5=bytearray(hashlib.md5(data).digest())) if a.md5 else None
                # max_single_put_size small: large files go up as blocks, whose blob has
                # only the Content-MD5 we give it.
                bc = cc.upload_blob(prefix + rel, data, overwrite=True, content_settings=settings)
                if a.bad_md5:
                    # Set afterwards: the service checks an MD5 given with the upload.
                    bc.set_http_headers(ContentSettings(content_md5=bytearray(hashlib.md5(data + b"x").digest())))
    elif a.cmd == "put":
        meta = dict(kv.split("=", 1) for kv in a.metadata) or None
        svc.get_container_client(a.container).upload_blob(a.name, a.text.encode(), overwrite=True, metadata=meta)
    elif a.cmd == "get":
        sys.stdout.buffer.write(svc.get_container_client(a.container).download_blob(a.name).readall())
    elif a.cmd == "sha256":
        cc = svc.get_container_client(a.container)
        for b in cc.list_blobs(name_starts_with=a.prefix or None):
            h = hashlib.sha256(cc.download_blob(b.name).readall()).hexdigest()
            print(h, b.name)
    elif a.cmd == "patterned":
        # Blocks of 3 MiB + 1 and 5 MiB + 3 bytes, alternating, then the rest: their
        # period (8 MiB + 4) never lines up with a power-of-two block size, so no two
        # 2 MiB blocks of the blob are equal and one served at the wrong offset shows.
        from azure.storage.blob import BlobBlock
        import base64, random
        mib = 1 << 20
        a_, b_ = random.Random(1).randbytes(3 * mib + 1), random.Random(2).randbytes(5 * mib + 3)
        pairs = max((a.size - 1) // (len(a_) + len(b_)), 0)
        rest = random.Random(3).randbytes(a.size - pairs * (len(a_) + len(b_)))
        parts = {"a": a_, "b": b_, "c": rest}
        order = ["a", "b"] * pairs + ["c"]
        bc = svc.get_blob_client(a.container, a.name)
        ids = {k: base64.b64encode(k.encode() * 8).decode() for k in parts}
        for k, v in parts.items():
            if v:
                bc.stage_block(ids[k], v)
        bc.commit_block_list([BlobBlock(block_id=ids[k]) for k in order if parts[k]])
        h = hashlib.sha256()
        for k in order:
            h.update(parts[k])
        print(h.hexdigest())
    elif a.cmd == "sas":
        now = dt.datetime.now(dt.timezone.utc)
        print(generate_container_sas(
            ACCOUNT, a.container, account_key=KEY,
            permission=ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True),
            expiry=now + dt.timedelta(days=1), start=now - dt.timedelta(minutes=5)))


if __name__ == "__main__":
    main()
