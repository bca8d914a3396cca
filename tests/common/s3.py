"""Makes buckets and objects on an S3 server with boto3, the way AWS's own SDK does
(names stagehand must refuse included), for the S3 end-to-end tests.

S3_ENDPOINT names the server; moto takes any key pair.
"""
import hashlib
import os
import sys

import boto3

s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    region_name="us-east-1",
    aws_access_key_id="testing-key-id",
    aws_secret_access_key="testing-secret",
)
cmd, args = sys.argv[1], sys.argv[2:]
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
    # "<sha256> <key>" for every object under a prefix.
    bucket, prefix = args
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            print(hashlib.sha256(body).hexdigest(), o["Key"])
elif cmd == "get":
    bucket, key = args
    sys.stdout.write(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())
else:
    sys.exit(f"unknown command {cmd}")
