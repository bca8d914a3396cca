"""Makes buckets and objects on an S3 server with boto3, the way AWS's own SDK does
(names stagehand must refuse included), for the S3 end-to-end tests; and starts that
server (`serve PORT`): moto in server mode, with one fix for a test server's speed.

S3_ENDPOINT names the server; moto takes any key pair.
"""
import hashlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor


def serve(port):
    """moto's server on 127.0.0.1:PORT, its ranged GET reading only the range asked for.

    moto answers a GET by reading the whole object out of its buffer and then cuts the
    range from it (moto 5.x: `S3Response.get_object` returns `key.value`,
    `key_response` slices it in `_handle_range_header`), so a 1 GiB object downloaded
    as 16 ranges read 16 GiB inside the test server. This is a fix of the test server
    only (stagehand's requests and moto's answers are unchanged): while a GET with a
    `Range` header is answered, `FakeKey.value` is a window on the object's buffer that
    reads only the bytes sliced from it. Anything else that reaches the window whole is
    read whole, as before.
    """
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response
    import moto.server

    ranged = threading.local()
    whole = FakeKey.value

    class Window:
        """The object's bytes, read from its buffer only where sliced."""

        def __init__(self, key):
            self.key = key

        def __len__(self):
            return self.key.size

        def __bool__(self):
            return self.key.size > 0

        def __getitem__(self, s):
            start, stop, step = s.indices(self.key.size)
            assert step == 1, "a window reads contiguous bytes"
            with self.key.lock:
                self.key._value_buffer.seek(start)
                return self.key._value_buffer.read(max(0, stop - start))

    def value(key):
        return Window(key) if getattr(ranged, "on", False) else whole.fget(key)

    FakeKey.value = property(value, whole.fset)
    key_response = S3Response.key_response

    def windowed_key_response(self, request, full_url, headers):
        ranged.on = request.method == "GET" and bool(request.headers.get("range"))
        try:
            status, hdrs, body = key_response(self, request, full_url, headers)
        finally:
            ranged.on = False
        if isinstance(body, Window):
            body = body[:]
        return status, hdrs, body

    S3Response.key_response = windowed_key_response
    moto.server.main(["-H", "127.0.0.1", "-p", str(port)])


def client(service="s3"):
    import boto3

    # S3_KEYS: "<id> <secret> <session token>" to sign with (a server that checks).
    keys = os.environ.get("S3_KEYS", "testing-key-id testing-secret -").split()
    return boto3.client(
        service,
        endpoint_url=os.environ["S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
        aws_session_token=None if keys[2] == "-" else keys[2],
    )


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "serve":
    serve(int(args[0]))
    sys.exit(0)
if cmd == "session-key":
    # Temporary credentials from STS, "<id> <secret> <session token>" (one request).
    c = client("sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/stagehand-test", RoleSessionName="test"
    )["Credentials"]
    print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    sys.exit(0)
if cmd == "role-key":
    # A role that may do anything on S3, and its temporary credentials from STS, as
    # "session-key" prints them (three requests: a server that checks signatures also
    # checks that the role exists and its policy allows the action).
    iam = client("iam")
    iam.create_role(RoleName="stagehand-s3", AssumeRolePolicyDocument="{}")
    iam.put_role_policy(
        RoleName="stagehand-s3",
        PolicyName="s3",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
    )
    c = client("sts").assume_role(
        RoleArn="arn:aws:iam::123456789012:role/stagehand-s3", RoleSessionName="test"
    )["Credentials"]
    print(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
    sys.exit(0)
s3 = client()
if cmd == "mkbucket":
    for b in args:
        s3.create_bucket(Bucket=b)
elif cmd == "put":
    bucket, key, text = args
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
elif cmd == "put-if-absent":
    # What a conditional create does on this server: 'created' or the error's code.
    bucket, key, text = args
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=text.encode(), IfNoneMatch="*")
        print("created")
    except s3.exceptions.ClientError as e:
        print(e.response["Error"]["Code"])
elif cmd == "upload":
    # Every file under a folder, as prefix/<relative path>.
    folder, bucket, prefix = args
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            key = prefix + "/" + os.path.relpath(p, folder)
            s3.upload_file(p, bucket, key)
elif cmd == "sha256":
    # "<sha256> <key>" for every object under a prefix, each body hashed as it streams
    # in (a GiB never held whole), eight at a time.
    bucket, prefix = args

    def digest(key):
        h = hashlib.sha256()
        for chunk in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20):
            h.update(chunk)
        return h.hexdigest()

    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    with ThreadPoolExecutor(8) as pool:
        for key, h in zip(keys, pool.map(digest, keys)):
            print(h, key)
elif cmd == "etag":
    # The object's ETag, as HeadObject gives it (quotes stripped).
    bucket, key = args
    print(s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"'))
elif cmd == "get":
    bucket, key = args
    sys.stdout.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
else:
    sys.exit(f"unknown command {cmd}")
