"""Microsoft's Python SDK (azure-storage-file-share) against a Files REST endpoint.

usage: files_sdk.py URL ACCOUNT KEY COMMAND ARGS...

  suite                      the SDK conformance run (prints "ok" when every step passed)
  mkshare SHARE              create a share
  put SHARE PATH TEXT        write a small file (folders made as needed)
  get SHARE PATH             print a file's text
  upload_tree SHARE DIR TO   upload every file under DIR to TO/… (folders made)
  sha256s SHARE PREFIX       JSON {path: sha256} of every file under the folder PREFIX
  sas SHARE PERMISSIONS      a share SAS valid for an hour, on stdout
"""

import datetime
import hashlib
import json
import os
import sys

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.fileshare import (ShareServiceClient, ShareSasPermissions, ShareClient,
                                     generate_share_sas)

URL, ACCOUNT, KEY = sys.argv[1], sys.argv[2], sys.argv[3]
CRED = {"account_name": ACCOUNT, "account_key": KEY}


def service():
    return ShareServiceClient(account_url=URL, credential=CRED)


def share(name):
    return service().get_share_client(name)


def make_dirs(sh, path):
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        try:
            sh.get_directory_client("/".join(parts[:i])).create_directory()
        except ResourceExistsError:
            pass


def walk(sh, prefix):
    """(path, size) of every file under the folder prefix."""
    todo = [prefix.strip("/")]
    while todo:
        d = todo.pop()
        for item in sh.get_directory_client(d).list_directories_and_files():
            p = (d + "/" + item["name"]) if d else item["name"]
            if item["is_directory"]:
                todo.append(p)
            else:
                yield p, item["size"]


def pattern(n, seed):
    return bytes((i * 31 + seed) % 251 for i in range(n))


def expect(exc, fn):
    try:
        fn()
    except exc as e:
        return e
    raise AssertionError("expected %s" % exc.__name__)


def suite():
    svc = service()
    sh = svc.create_share("sdk-suite")
    expect(ResourceExistsError, lambda: svc.create_share("sdk-suite"))
    d = sh.create_directory("dir")
    expect(ResourceExistsError, lambda: sh.create_directory("dir"))
    sub = d.create_subdirectory("sub")
    # Upload: more than two 4 MiB ranges, so Create File + several Put Range.
    big = pattern(9 * 1024 * 1024 + 17, 3)
    f = sub.get_file_client("big.bin")
    f.upload_file(big)
    props = f.get_file_properties()
    assert props.size == len(big), props.size
    # Ranged and whole downloads.
    assert f.download_file(offset=5_000_000, length=123_456).readall() == big[5_000_000:5_123_456]
    assert f.download_file().readall() == big
    assert f.download_file(max_concurrency=4).readall() == big
    # A single Put Range in the middle, and its Content-MD5 checked by the server.
    f.upload_range(b"x" * 4096, offset=4096, length=4096, validate_content=True)
    assert f.download_file(offset=4096, length=4096).readall() == b"x" * 4096
    # Listing with continuation: 7 files, 3 per page.
    for i in range(7):
        d.upload_file("f%d.txt" % i, b"file %d" % i)
    pages = list(d.list_directories_and_files(results_per_page=3).by_page())
    assert len(pages) >= 3, len(pages)
    names = sorted(x["name"] for p in pages for x in p)
    assert names == sorted(["sub"] + ["f%d.txt" % i for i in range(7)]), names
    assert dict(walk(sh, ""))["dir/sub/big.bin"] == len(big)
    # Errors the service returns.
    expect(ResourceNotFoundError, lambda: sh.get_file_client("dir/nope.txt").get_file_properties())
    e = expect(ResourceNotFoundError, lambda: sh.get_file_client("nodir/x.txt").upload_file(b"x"))
    assert e.error_code == "ParentNotFound", e.error_code
    e = expect(ResourceNotFoundError, lambda: svc.get_share_client("nope").get_directory_client("").list_directories_and_files().next())
    assert e.error_code == "ShareNotFound", e.error_code
    e = expect(HttpResponseError, lambda: f.download_file(offset=len(big) + 10, length=5).readall())
    assert e.status_code == 416, e.status_code
    wrong = ShareServiceClient(account_url=URL, credential={"account_name": ACCOUNT, "account_key": "d3Jvbmc="})
    e = expect(HttpResponseError, lambda: wrong.get_share_client("sdk-suite").get_file_client("dir/f0.txt").get_file_properties())
    assert e.status_code == 403, e.status_code
    # A share SAS: reads with read+list, refused a write without write.
    sas = generate_share_sas(ACCOUNT, "sdk-suite", KEY, permission=ShareSasPermissions(read=True, list=True),
                             expiry=datetime.datetime.utcnow() + datetime.timedelta(hours=1))
    ro = ShareClient(account_url=URL, share_name="sdk-suite", credential=sas)
    assert ro.get_file_client("dir/f3.txt").download_file().readall() == b"file 3"
    assert len(list(ro.get_directory_client("dir").list_directories_and_files())) == 8
    e = expect(HttpResponseError, lambda: ro.get_file_client("dir/new.txt").upload_file(b"no"))
    assert e.status_code == 403, e.status_code
    # Rename, refusing to replace, then replacing.
    g = d.get_file_client("f0.txt")
    expect(ResourceExistsError, lambda: g.rename_file("dir/f1.txt"))
    g = g.rename_file("dir/f1.txt", overwrite=True)
    assert g.download_file().readall() == b"file 0"
    # Deletes.
    g.delete_file()
    expect(ResourceNotFoundError, lambda: g.get_file_properties())
    expect(HttpResponseError, lambda: d.delete_directory())
    svc.delete_share("sdk-suite")
    expect(ResourceNotFoundError, lambda: f.get_file_properties())
    print("ok")


def main():
    cmd, args = sys.argv[4], sys.argv[5:]
    if cmd == "suite":
        suite()
    elif cmd == "mkshare":
        service().create_share(args[0])
    elif cmd == "put":
        sh = share(args[0])
        make_dirs(sh, args[1])
        sh.get_file_client(args[1]).upload_file(args[2].encode())
    elif cmd == "get":
        sys.stdout.write(share(args[0]).get_file_client(args[1]).download_file().readall().decode())
    elif cmd == "upload_tree":
        sh = share(args[0])
        root = args[1]
        for dirpath, _, files in os.walk(root):
            for name in files:
                local = os.path.join(dirpath, name)
                rel = os.path.relpath(local, root).replace(os.sep, "/")
                path = args[2].strip("/") + "/" + rel
                make_dirs(sh, path)
                with open(local, "rb") as fh:
                    sh.get_file_client(path).upload_file(fh, max_concurrency=4)
    elif cmd == "sha256s":
        sh = share(args[0])
        out = {}
        for path, _ in walk(sh, args[1]):
            h = hashlib.sha256()
            for chunk in sh.get_file_client(path).download_file(max_concurrency=4).chunks():
                h.update(chunk)
            out[path] = h.hexdigest()
        print(json.dumps(out))
    elif cmd == "sas":
        perms = ShareSasPermissions(**{{"r": "read", "c": "create", "w": "write", "d": "delete", "l": "list"}[p]: True
                                       for p in args[1]})
        print(generate_share_sas(ACCOUNT, args[0], KEY, permission=perms,
                                 expiry=datetime.datetime.utcnow() + datetime.timedelta(hours=1)))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
