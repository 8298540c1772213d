"""Real S3 clients against a running `hyok gateway` (driven by tests/it/gateway.rs).

Environment: GW_ENDPOINT, GW_KEY/GW_SECRET (a credential for every bucket),
GW_LIMITED_KEY/GW_LIMITED_SECRET (a credential for bucket `limited` only), GW_WORK (scratch
folder), GW_MARKER (a string every plaintext contains), GW_BIG_MIB (size of the large aws cli
file), GW_SUITE (`full`, or `s3`: a shorter run for the S3 backend; `cap`: the gateway runs with
`[gateway] max_requests = 1`; `residency`: its residency rules refuse its backend; `vhost`:
virtual-hosted-style requests under `gw.test`; `stall`: `[gateway] idle_timeout = 2`),
GW_BACKEND_ENDPOINT (S3
backend only: the backend server, whose buckets this script creates and whose raw objects it
downloads into GW_WORK/raw for the caller to check), RCLONE (rclone binary; empty = skip),
S3CMD (s3cmd binary; empty = skip), S3FS (s3fs-fuse binary; empty = skip), GO (go binary, with Debian's AWS SDK for Go v2 in
GO_PATH; empty = skip), JS_SDK (folder of scripts/setup-js.sh's node_modules, for the AWS SDK
for JavaScript v3; empty = skip).

Prints one line per check and `N passed, 0 failed`; exits non-zero at the first failure.
"""

import base64
import concurrent.futures as cf
import filecmp
import hashlib
import http.client
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

E = os.environ
ENDPOINT = E["GW_ENDPOINT"]
WORK = E["GW_WORK"]
MARKER = E["GW_MARKER"].encode()
SUITE = E.get("GW_SUITE", "full")
# Bucket names get this suffix (a shared S3 backend keeps buckets between runs).
SFX = E.get("GW_BUCKET_SUFFIX", "")
PASSED = 0


def ok(what):
    global PASSED
    PASSED += 1
    print(f"ok: {what}", flush=True)


def fail(what):
    print(f"FAILED: {what}", flush=True)
    print(f"{PASSED} passed, 1 failed", flush=True)
    sys.exit(1)


def check(cond, what):
    if cond:
        ok(what)
    else:
        fail(what)


def body(n, seed):
    r = random.Random(seed)
    data = bytearray(r.getrandbits(8) for _ in range(min(n, 4096)))
    while len(data) < n:
        data += data[: n - len(data)]
    data = bytes(data[:n])
    if n >= len(MARKER) + 16:
        data = data[:8] + MARKER + data[8 + len(MARKER):]
    return data


def big_body(n, seed):
    r = random.Random(seed)
    chunk = r.randbytes(1 << 20)
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(chunk + i.to_bytes(8, "big")).digest() * 32768
        i += 1
    out = out[:n]
    out[100:100 + len(MARKER)] = MARKER
    return bytes(out)


def client(key=None, secret=None, **cfg):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key or E["GW_KEY"],
        aws_secret_access_key=secret or E["GW_SECRET"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}, **cfg),
    )


def backend():
    """A client of the S3 backend itself (None on a local folder)."""
    be = E.get("GW_BACKEND_ENDPOINT")
    if not be:
        return None
    return boto3.client("s3", endpoint_url=be, region_name="us-east-1",
                        aws_access_key_id=E["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=E["AWS_SECRET_ACCESS_KEY"],
                        config=Config(s3={"addressing_style": "path"}))


def make_backend_bucket(name):
    s3 = backend()
    if s3 is None:
        return
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def aws(*args, check_rc=True):
    env = dict(E)
    env.update(AWS_ACCESS_KEY_ID=E["GW_KEY"], AWS_SECRET_ACCESS_KEY=E["GW_SECRET"],
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    for v in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        env.pop(v, None)
    cmd = [sys.executable, "-m", "awscli", "--endpoint-url", ENDPOINT, *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        fail(f"aws {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-800:]}")
    return r


def tree_equal(a, b):
    c = filecmp.dircmp(a, b)
    if c.left_only or c.right_only or c.diff_files or c.funny_files:
        return False
    for f in c.common_files:
        if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False):
            return False
    return all(tree_equal(os.path.join(a, d), os.path.join(b, d)) for d in c.common_dirs)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_secret(path, text):
    """A file holding a secret, readable by its owner only from its creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def aws_cli():
    d = os.path.join(WORK, "acli")
    bucket = "acli" + SFX
    make_backend_bucket(bucket)
    # An S3 backend's buckets are made by its operator (above); creating one that exists
    # succeeds, as on S3 in us-east-1, and so does doing it again.
    aws("s3", "mb", f"s3://{bucket}")
    aws("s3", "mb", f"s3://{bucket}")
    ok("aws s3 mb (twice)")
    small = body(1024, 1)
    write(f"{d}/small.bin", small)
    aws("s3", "cp", f"{d}/small.bin", f"s3://{bucket}/small.bin")
    aws("s3", "cp", f"s3://{bucket}/small.bin", f"{d}/small.back")
    check(read(f"{d}/small.back") == small, "aws s3 cp 1 KiB up and down, byte-identical")

    n = int(E.get("GW_BIG_MIB", "40")) * 1024 * 1024 + 12345
    big = big_body(n, 2)
    write(f"{d}/big.bin", big)
    t = time.time()
    aws("s3", "cp", f"{d}/big.bin", f"s3://{bucket}/big.bin")
    up = time.time() - t
    t = time.time()
    aws("s3", "cp", f"s3://{bucket}/big.bin", f"{d}/big.back")
    down = time.time() - t
    check(read(f"{d}/big.back") == big,
          f"aws s3 cp {n} bytes (multipart) up {up:.1f} s and down {down:.1f} s, byte-identical")
    # Between S3 locations the aws cli copies objects of 8 MiB and more part by part
    # (UploadPartCopy); `mv` copies, then deletes the source.
    aws("s3", "cp", f"s3://{bucket}/big.bin", f"s3://{bucket}/big-copy.bin")
    aws("s3", "mv", f"s3://{bucket}/big-copy.bin", f"s3://{bucket}/big-moved.bin")
    aws("s3", "cp", f"s3://{bucket}/big-moved.bin", f"{d}/moved.back")
    ls = aws("s3", "ls", f"s3://{bucket}/").stdout
    check(read(f"{d}/moved.back") == big and "big-copy.bin" not in ls,
          "aws s3 cp and mv between S3 locations (multipart copy), byte-identical")
    aws("s3", "rm", f"s3://{bucket}/big-moved.bin")
    head = client().head_object(Bucket=bucket, Key="big.bin")
    check(head["ContentLength"] == n and head["ETag"].strip('"').endswith("-%d" % -(-n // (8 << 20))),
          "multipart object: plaintext Content-Length and a multipart ETag")

    ls = aws("s3", "ls", f"s3://{bucket}/").stdout
    check(" 1024 small.bin" in ls and f" {n} big.bin" in ls, "aws s3 ls shows plaintext sizes")

    src = f"{d}/tree"
    for i in range(20):
        write(f"{src}/dir{i % 3}/sub/file{i}.txt", body(100 + i * 37, 10 + i))
    aws("s3", "sync", src, f"s3://{bucket}/tree")
    aws("s3", "sync", f"s3://{bucket}/tree", f"{d}/tree.back")
    check(tree_equal(src, f"{d}/tree.back"), "aws s3 sync of a tree up and back")
    again = aws("s3", "sync", src, f"s3://{bucket}/tree").stdout
    check("upload:" not in again, "aws s3 sync again uploads nothing")

    r = aws("s3api", "get-object", "--bucket", bucket, "--key", "big.bin",
            "--range", "bytes=100000-8500000", f"{d}/range.out")
    check(read(f"{d}/range.out") == big[100000:8500001], "aws s3api get-object --range (plaintext bytes)")

    # A folder marker, as the S3 console's "Create folder" makes it.
    aws("s3api", "put-object", "--bucket", bucket, "--key", "tree/empty-folder/")
    ls = aws("s3", "ls", f"s3://{bucket}/tree/").stdout
    check("PRE empty-folder/" in ls, "aws s3api put-object of a folder marker; aws s3 ls shows the folder")

    aws("s3", "rm", "--recursive", f"s3://{bucket}/")
    ls = aws("s3", "ls", "--recursive", f"s3://{bucket}/").stdout
    check(ls.strip() == "", "aws s3 rm --recursive leaves the bucket empty (folder markers too)")
    shutil.rmtree(d)


def boto3_suite():
    s3 = client(max_pool_connections=32)
    b = "boto" + SFX
    make_backend_bucket(b)
    make_backend_bucket("limited")
    try:
        s3.create_bucket(Bucket=b)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    names = [f"k/{i:05d}" for i in range(1100 if SUITE == "full" else 1050)]
    bodies = {k: body(50 + i % 700, 1000 + i) for i, k in enumerate(names)}

    def put(k):
        s3.put_object(Bucket=b, Key=k, Body=bodies[k], ContentType="text/x-test",
                      Metadata={"origin": "boto3", "idx": k[-5:]})

    t = time.time()
    with cf.ThreadPoolExecutor(16) as ex:
        list(ex.map(put, names))
    ok(f"boto3 put_object x{len(names)} in {time.time() - t:.1f} s")

    h = s3.head_object(Bucket=b, Key=names[7])
    check(h["ContentLength"] == len(bodies[names[7]]) and h["ContentType"] == "text/x-test"
          and h["Metadata"] == {"origin": "boto3", "idx": names[7][-5:]}
          and h["ETag"] == '"%s"' % hashlib.md5(bodies[names[7]]).hexdigest(),
          "head_object: plaintext length, content type, user metadata, ETag = MD5")
    g = s3.get_object(Bucket=b, Key=names[9])
    check(g["Body"].read() == bodies[names[9]], "get_object returns the plaintext")
    g = s3.get_object(Bucket=b, Key=names[9], Range="bytes=10-19")
    check(g["Body"].read() == bodies[names[9]][10:20] and g["ContentRange"].startswith("bytes 10-19/"),
          "get_object with a range")
    try:
        s3.get_object(Bucket=b, Key=names[9], IfNoneMatch=g["ETag"])
        fail("If-None-Match with the current ETag answered 200")
    except ClientError as e:
        check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 304, "If-None-Match: 304")
    try:
        s3.get_object(Bucket=b, Key=names[9], IfMatch='"0123"')
        fail("If-Match with another ETag answered 200")
    except ClientError as e:
        check(e.response["ResponseMetadata"]["HTTPStatusCode"] == 412, "If-Match mismatch: 412")

    seen = {}
    pages = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="k/",
                                                            PaginationConfig={"PageSize": 300}):
        pages += 1
        for o in page.get("Contents", []):
            seen[o["Key"]] = o
    check(sorted(seen) == names and pages == -(-len(names) // 300),
          f"list_objects_v2: {len(seen)} keys in {pages} pages")
    check(all(seen[k]["Size"] == len(bodies[k])
              and seen[k]["ETag"] == '"%s"' % hashlib.md5(bodies[k]).hexdigest() for k in names),
          "listing sizes are the plaintext's, ETags the plaintext MD5")
    v1 = s3.list_objects(Bucket=b, Prefix="k/000", MaxKeys=50)
    check(len(v1["Contents"]) == 50 and v1["IsTruncated"], "list_objects (v1) with prefix and MaxKeys")
    r = s3.list_objects_v2(Bucket=b, Prefix="k/0104")
    check([o["Key"] for o in r.get("Contents", [])] == [f"k/0104{i}" for i in range(10)]
          and not r["IsTruncated"], "a prefix that ends inside a folder's names")

    for k in ["d/a/1", "d/a/2", "d/b/3", "d/c"]:
        s3.put_object(Bucket=b, Key=k, Body=body(64, 5))
    r = s3.list_objects_v2(Bucket=b, Prefix="d/", Delimiter="/")
    check([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["d/a/", "d/b/"]
          and [o["Key"] for o in r["Contents"]] == ["d/c"], "delimiter: common prefixes")
    r = s3.list_objects_v2(Bucket=b, Prefix="d/", Delimiter="/", MaxKeys=1)
    r2 = s3.list_objects_v2(Bucket=b, Prefix="d/", Delimiter="/", MaxKeys=5,
                            ContinuationToken=r["NextContinuationToken"])
    check([p["Prefix"] for p in r["CommonPrefixes"]] == ["d/a/"]
          and [p["Prefix"] for p in r2.get("CommonPrefixes", [])] == ["d/b/"],
          "delimiter pages do not repeat a common prefix")
    s3.put_object(Bucket=b, Key="empty", Body=b"")
    r = s3.get_object(Bucket=b, Key="empty", Range="bytes=-1")
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 200 and r["Body"].read() == b""
          and "ContentRange" not in r, "a suffix range of an empty object: the whole (empty) object")
    check(error_code(lambda: s3.get_object(Bucket=b, Key="empty", Range="bytes=0-")) == "InvalidRange",
          "another range of an empty object: InvalidRange")
    s3.delete_object(Bucket=b, Key="empty")
    for ls in (s3.list_objects, s3.list_objects_v2):
        r = ls(Bucket=b, Prefix="d/", MaxKeys=0)
        check(not r["IsTruncated"] and not r.get("Contents") and not r.get("CommonPrefixes"),
              "MaxKeys=0: an empty page, not truncated (as S3)")
        r = ls(Bucket=b, Prefix="d/", Delimiter="")
        check("Delimiter" not in r and len(r.get("Contents", [])) == 4 and not r.get("CommonPrefixes"),
              "an empty delimiter is no delimiter, and not echoed")
    # At the root: "k/" holds more keys than a backend page, and an upload in progress puts
    # the gateway's own records in the bucket; neither may show or cut the page.
    pending = s3.create_multipart_upload(Bucket=b, Key="pending")["UploadId"]
    r = s3.list_objects_v2(Bucket=b, Delimiter="/")
    check([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["d/", "k/"]
          and not r.get("Contents") and not r["IsTruncated"],
          f"delimiter at the root: {[p['Prefix'] for p in r.get('CommonPrefixes', [])]}")
    r = s3.list_objects_v2(Bucket=b, Delimiter="/", MaxKeys=1)
    r2 = s3.list_objects_v2(Bucket=b, Delimiter="/", ContinuationToken=r["NextContinuationToken"])
    r3 = s3.list_objects_v2(Bucket=b, Delimiter="/", StartAfter="d/")
    check([p["Prefix"] for p in r["CommonPrefixes"]] == ["d/"] and r["IsTruncated"]
          and [p["Prefix"] for p in r2.get("CommonPrefixes", [])] == ["k/"] and not r2["IsTruncated"]
          and [p["Prefix"] for p in r3.get("CommonPrefixes", [])] == ["k/"],
          "root pages pass a prefix of > 1,000 keys")
    s3.abort_multipart_upload(Bucket=b, Key="pending", UploadId=pending)

    # Keys that XML or URLs would change: botocore asks for url encoding and decodes the
    # answer only when it says it is encoded; asked for explicitly, the answer stays encoded.
    odd = ["enc/100%", "enc/asdf+b", "enc/foo+1/bar", "enc/quux ab/thud"]
    for k in odd:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    check(all(s3.get_object(Bucket=b, Key=k)["Body"].read() == k.encode() for k in odd),
          "keys with + % and spaces round-trip")
    r = s3.list_objects_v2(Bucket=b, Prefix="enc/", Delimiter="/")
    check([o["Key"] for o in r.get("Contents", [])] == ["enc/100%", "enc/asdf+b"]
          and [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["enc/foo+1/", "enc/quux ab/"],
          f"listing of keys with + % and spaces: {r.get('Contents')} {r.get('CommonPrefixes')}")
    for v2 in (True, False):
        ls = s3.list_objects_v2 if v2 else s3.list_objects
        r = ls(Bucket=b, Prefix="enc/", Delimiter="/", EncodingType="url")
        check(r.get("EncodingType") == "url"
              and [o["Key"] for o in r.get("Contents", [])] == ["enc/100%25", "enc/asdf%2Bb"]
              and [p["Prefix"] for p in r.get("CommonPrefixes", [])]
              == ["enc/foo%2B1/", "enc/quux%20ab/"],
              f"EncodingType=url ({'v2' if v2 else 'v1'}): {r.get('EncodingType')} "
              f"{[o['Key'] for o in r.get('Contents', [])]}")
    try:
        s3.list_objects_v2(Bucket=b, EncodingType="base64")
        fail("EncodingType=base64 was accepted")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "InvalidArgument", "an unknown EncodingType: InvalidArgument")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in odd]})

    s3.copy_object(Bucket=b, Key="copied", CopySource={"Bucket": b, "Key": names[3]})
    c = s3.get_object(Bucket=b, Key="copied")
    check(c["Body"].read() == bodies[names[3]] and c["Metadata"]["origin"] == "boto3"
          and c["ETag"] == '"%s"' % hashlib.md5(bodies[names[3]]).hexdigest(), "copy_object")

    gone = names[:1000]
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in gone]})
    check(len(r.get("Deleted", [])) == 1000 and not r.get("Errors"), "delete_objects of 1000 keys")
    left = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix="k/")
            for o in p.get("Contents", [])]
    check(left == names[1000:], "deleted keys are gone from the listing")

    # Multipart: parts out of order, in parallel.
    part = 5 * 1024 * 1024
    data = big_body(4 * part + 777777, 7)
    up = s3.create_multipart_upload(Bucket=b, Key="mp.bin", ContentType="application/x-mp",
                                    Metadata={"md5chksum": "abc"})
    uid = up["UploadId"]
    chunks = [(i + 1, data[i * part:(i + 1) * part]) for i in range(5)]
    order = chunks[:]
    random.Random(3).shuffle(order)

    def send(c):
        n, d = c
        return n, s3.upload_part(Bucket=b, Key="mp.bin", UploadId=uid, PartNumber=n, Body=d)["ETag"]

    with cf.ThreadPoolExecutor(5) as ex:
        etags = dict(ex.map(send, order))
    lp = s3.list_parts(Bucket=b, Key="mp.bin", UploadId=uid)
    check([p["PartNumber"] for p in lp["Parts"]] == [1, 2, 3, 4, 5]
          and [p["Size"] for p in lp["Parts"]] == [len(d) for _, d in chunks], "list_parts")
    mu = s3.list_multipart_uploads(Bucket=b)
    check([u["UploadId"] for u in mu.get("Uploads", [])] == [uid], "list_multipart_uploads")
    check(s3.list_objects_v2(Bucket=b, Prefix="mp").get("KeyCount") == 0,
          "an upload in progress is not visible")
    done = s3.complete_multipart_upload(
        Bucket=b, Key="mp.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in range(1, 6)]})
    g = s3.get_object(Bucket=b, Key="mp.bin")
    check(g["Body"].read() == data and g["ContentType"] == "application/x-mp"
          and g["Metadata"] == {"md5chksum": "abc"} and done["ETag"].endswith('-5"'),
          "multipart upload with parts sent out of order in parallel")
    rg = s3.get_object(Bucket=b, Key="mp.bin", Range=f"bytes={part - 10}-{part + 10}")
    check(rg["Body"].read() == data[part - 10:part + 11], "range across a part boundary")

    # UploadPartCopy: parts copied from ranges of a stored object.
    uid = s3.create_multipart_upload(Bucket=b, Key="mp-copy.bin")["UploadId"]
    src = {"Bucket": b, "Key": "mp.bin"}

    def copy_part(n, rng, **kw):
        return s3.upload_part_copy(Bucket=b, Key="mp-copy.bin", UploadId=uid, PartNumber=n,
                                   CopySource=src, CopySourceRange=rng, **kw)

    spans = [(1, 0, part + 99), (2, part + 100, len(data) - 1)]
    copied = [copy_part(n, f"bytes={a}-{z}")["CopyPartResult"]["ETag"] for n, a, z in spans]
    check(error_code(lambda: copy_part(3, f"bytes=0-{len(data)}")) == "InvalidArgument",
          "a copy range past the source's end: InvalidArgument")
    check(error_code(lambda: copy_part(3, "bytes=0-9", CopySourceIfMatch='"0123"'))
          == "PreconditionFailed", "x-amz-copy-source-if-match with another ETag: PreconditionFailed")
    s3.complete_multipart_upload(
        Bucket=b, Key="mp-copy.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for (n, _, _), e in zip(spans, copied)]})
    check(s3.get_object(Bucket=b, Key="mp-copy.bin")["Body"].read() == data,
          "upload_part_copy of two ranges, completed: the source's bytes")
    s3.delete_object(Bucket=b, Key="mp-copy.bin")
    uid = s3.create_multipart_upload(Bucket=b, Key="one-copy")["UploadId"]
    e = s3.upload_part_copy(Bucket=b, Key="one-copy", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": b, "Key": names[-1]})["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="one-copy", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]})
    check(s3.get_object(Bucket=b, Key="one-copy")["Body"].read() == bodies[names[-1]],
          "upload_part_copy of a whole object (no range): its bytes")
    s3.delete_object(Bucket=b, Key="one-copy")

    up = s3.create_multipart_upload(Bucket=b, Key="aborted.bin")
    s3.upload_part(Bucket=b, Key="aborted.bin", UploadId=up["UploadId"], PartNumber=1,
                   Body=big_body(part, 8))
    s3.abort_multipart_upload(Bucket=b, Key="aborted.bin", UploadId=up["UploadId"])
    try:
        s3.head_object(Bucket=b, Key="aborted.bin")
        fail("an aborted upload is visible")
    except ClientError as e:
        check(e.response["Error"]["Code"] in ("404", "NoSuchKey"), "an aborted upload leaves nothing")
    check(not s3.list_multipart_uploads(Bucket=b).get("Uploads"), "no uploads left after abort")
    # A part under 5 MiB that is not the last: EntityTooSmall, and the upload stays usable.
    uid = s3.create_multipart_upload(Bucket=b, Key="small.bin")["UploadId"]
    small = [s3.upload_part(Bucket=b, Key="small.bin", UploadId=uid, PartNumber=n,
                            Body=body(100, 50 + n))["ETag"] for n in (1, 2)]
    check(error_code(lambda: s3.complete_multipart_upload(
        Bucket=b, Key="small.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), small)]}))
          == "EntityTooSmall", "a small part before the last: EntityTooSmall")
    s3.complete_multipart_upload(Bucket=b, Key="small.bin", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small[0]}]})
    check(s3.get_object(Bucket=b, Key="small.bin")["Body"].read() == body(100, 51),
          "after EntityTooSmall, the upload completes with its last part alone")
    # Three uploads of one key over pages of two: the markers lose none and repeat none.
    ids = sorted(s3.create_multipart_upload(Bucket=b, Key="many.bin")["UploadId"] for _ in range(3))
    p1 = s3.list_multipart_uploads(Bucket=b, MaxUploads=2)
    p2 = s3.list_multipart_uploads(Bucket=b, MaxUploads=2, KeyMarker=p1["NextKeyMarker"],
                                   UploadIdMarker=p1["NextUploadIdMarker"])
    got = [u["UploadId"] for u in p1.get("Uploads", []) + p2.get("Uploads", [])]
    check(p1["IsTruncated"] and not p2["IsTruncated"] and sorted(got) == ids and len(got) == 3,
          f"list_multipart_uploads pages of one key's uploads: {len(got)} of 3")
    for u in ids:
        s3.abort_multipart_upload(Bucket=b, Key="many.bin", UploadId=u)

    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": names[-1]},
                                    ExpiresIn=300)
    with urllib.request.urlopen(url) as resp:
        check(resp.read() == bodies[names[-1]], "presigned GET URL")
    # SigV4 presigned URLs live at most a week, as on S3.
    v4 = client(signature_version="s3v4")
    for secs, want in ((604800, 200), (604801, 400)):
        url = v4.generate_presigned_url("get_object", Params={"Bucket": b, "Key": names[-1]},
                                        ExpiresIn=secs)
        try:
            with urllib.request.urlopen(url) as resp:
                status = resp.status
        except urllib.error.HTTPError as e:
            status = e.code
            body_text = e.read().decode(errors="replace")
            check("AuthorizationQueryParametersError" in body_text, "expiry error code")
        check(status == want, f"SigV4 presigned URL for {secs} s: {status}")

    bad = client(secret="wrong-secret-0000")
    try:
        bad.get_object(Bucket=b, Key=names[-1])
        fail("a wrong secret was accepted")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "SignatureDoesNotMatch", "wrong secret: SignatureDoesNotMatch")

    lim = client(E["GW_LIMITED_KEY"], E["GW_LIMITED_SECRET"])
    denied = 0
    for call in (lambda: lim.get_object(Bucket=b, Key=names[-1]),
                 lambda: lim.put_object(Bucket=b, Key="x", Body=b"x"),
                 lambda: lim.list_objects_v2(Bucket=b),
                 lambda: lim.delete_object(Bucket=b, Key=names[-1])):
        try:
            call()
        except ClientError as e:
            denied += e.response["Error"]["Code"] == "AccessDenied"
    check(denied == 4, "credential outside its buckets: AccessDenied (get, put, list, delete)")
    if not E.get("GW_BACKEND_ENDPOINT"):
        lim.create_bucket(Bucket="limited")
    lim.put_object(Bucket="limited", Key="mine", Body=body(300, 9))
    check(lim.get_object(Bucket="limited", Key="mine")["Body"].read() == body(300, 9),
          "the limited credential works in its own bucket")
    uid = lim.create_multipart_upload(Bucket="limited", Key="stolen")["UploadId"]
    check(error_code(lambda: lim.upload_part_copy(
        Bucket="limited", Key="stolen", UploadId=uid, PartNumber=1,
        CopySource={"Bucket": b, "Key": names[-1]})) == "AccessDenied",
          "upload_part_copy from a bucket outside the credential's: AccessDenied")
    lim.abort_multipart_upload(Bucket="limited", Key="stolen", UploadId=uid)
    big_put = big_body(9 * 1024 * 1024 + 5, 11)
    s3.put_object(Bucket=b, Key="single-large", Body=big_put)
    h = s3.head_object(Bucket=b, Key="single-large")
    check(h["ETag"] == '"%s"' % hashlib.md5(big_put).hexdigest() and h["ContentLength"] == len(big_put),
          "a 9 MiB single PUT: ETag = MD5 of the plaintext")


def conditional_suite():
    """Conditional writes are honoured, never ignored: If-None-Match: * (create only) and
    If-Match (replace or delete only what was read) on PutObject, CompleteMultipartUpload and
    DeleteObject(s); appends and object lock are refused rather than skipped."""
    s3 = client()
    b = "boto" + SFX
    k = "cond/lock"
    first, second = body(700, 71), body(900, 72)
    s3.put_object(Bucket=b, Key=k, Body=first, IfNoneMatch="*")
    check(error_code(lambda: s3.put_object(Bucket=b, Key=k, Body=second, IfNoneMatch="*"))
          == "PreconditionFailed", "a second PUT with If-None-Match: * gets PreconditionFailed")
    check(s3.get_object(Bucket=b, Key=k)["Body"].read() == first, "and the first object stays")
    tag = s3.head_object(Bucket=b, Key=k)["ETag"]
    check(error_code(lambda: s3.put_object(Bucket=b, Key=k, Body=second,
                                           IfMatch='"0123456789abcdef0123456789abcdef"'))
          == "PreconditionFailed", "PUT with If-Match of another ETag gets PreconditionFailed")
    check(error_code(lambda: s3.put_object(Bucket=b, Key="cond/none", Body=second, IfMatch=tag))
          == "NoSuchKey", "PUT with If-Match on a missing key gets NoSuchKey")
    s3.put_object(Bucket=b, Key=k, Body=second, IfMatch=tag)
    check(s3.get_object(Bucket=b, Key=k)["Body"].read() == second,
          "PUT with If-Match of the current ETag replaces the object")
    check(error_code(lambda: s3.put_object(Bucket=b, Key=k, Body=first, IfMatch=tag))
          == "PreconditionFailed", "the old ETag no longer matches")
    code = error_code(lambda: s3.put_object(Bucket=b, Key="cond/append", Body=first,
                                           WriteOffsetBytes=0))
    check(code == "NotImplemented",
          f"an append (WriteOffsetBytes) is refused, not taken as a replacement ({code})")
    code = error_code(lambda: s3.put_object(
        Bucket=b, Key="cond/locked", Body=first, ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate="2030-01-01T00:00:00Z"))
    check(code == "NotImplemented", f"object lock is refused, not silently skipped ({code})")
    uid = s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"]
    etag = s3.upload_part(Bucket=b, Key=k, UploadId=uid, PartNumber=1, Body=first)["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    check(error_code(lambda: s3.complete_multipart_upload(
        Bucket=b, Key=k, UploadId=uid, MultipartUpload=parts, IfNoneMatch="*"))
        == "PreconditionFailed", "Complete with If-None-Match: * on an existing key fails")
    tag = s3.head_object(Bucket=b, Key=k)["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key=k, UploadId=uid, MultipartUpload=parts,
                                 IfMatch=tag)
    check(s3.get_object(Bucket=b, Key=k)["Body"].read() == first,
          "Complete with If-Match of the current ETag replaces the object")
    # Parts of 5 MiB: the Complete assembles them without re-encrypting (direct frames on a
    # local folder, parts in place on S3) and writes under the condition all the same.
    big = [body(5 << 20, 73), body(5 << 20, 74), body(1000, 75)]

    def upload(key):
        uid = s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
        return uid, {"Parts": [
            {"PartNumber": n, "ETag": s3.upload_part(Bucket=b, Key=key, UploadId=uid,
                                                     PartNumber=n, Body=p)["ETag"]}
            for n, p in enumerate(big, 1)]}
    kb = "cond/big"
    uid, parts = upload(kb)
    s3.complete_multipart_upload(Bucket=b, Key=kb, UploadId=uid, MultipartUpload=parts,
                                 IfNoneMatch="*")
    check(s3.get_object(Bucket=b, Key=kb)["Body"].read() == b"".join(big),
          "Complete of 5 MiB parts with If-None-Match: * creates the object")
    big_tag = s3.head_object(Bucket=b, Key=kb)["ETag"]
    big = [body(5 << 20, 76), body(5 << 20, 77), body(2000, 78)]
    uid, parts = upload(kb)
    check(error_code(lambda: s3.complete_multipart_upload(
        Bucket=b, Key=kb, UploadId=uid, MultipartUpload=parts, IfNoneMatch="*"))
        == "PreconditionFailed", "and a second such Complete fails")
    s3.complete_multipart_upload(Bucket=b, Key=kb, UploadId=uid, MultipartUpload=parts,
                                 IfMatch=big_tag)
    check(s3.get_object(Bucket=b, Key=kb)["Body"].read() == b"".join(big),
          "the same upload completed with If-Match of the current ETag replaces it")
    # CopyObject takes If-Match / If-None-Match for its destination, as PutObject does.
    src = {"Bucket": b, "Key": k}
    check(error_code(lambda: s3.copy_object(Bucket=b, Key=kb, CopySource=src, IfNoneMatch="*"))
          == "PreconditionFailed", "CopyObject with If-None-Match: * onto an existing key fails")
    check(error_code(lambda: s3.copy_object(Bucket=b, Key=kb, CopySource=src,
                                            IfMatch='"0123456789abcdef0123456789abcdef"'))
          == "PreconditionFailed", "CopyObject with If-Match of another ETag fails")
    check(error_code(lambda: s3.copy_object(Bucket=b, Key="cond/none", CopySource=src,
                                            IfMatch=big_tag))
          == "NoSuchKey", "CopyObject with If-Match onto a missing key gets NoSuchKey")
    check(s3.get_object(Bucket=b, Key=kb)["Body"].read() == b"".join(big), "and nothing changed")
    s3.copy_object(Bucket=b, Key=kb, CopySource=src,
                   IfMatch=s3.head_object(Bucket=b, Key=kb)["ETag"])
    s3.copy_object(Bucket=b, Key="cond/copy", CopySource=src, IfNoneMatch="*")
    check(s3.get_object(Bucket=b, Key=kb)["Body"].read() == first
          and s3.get_object(Bucket=b, Key="cond/copy")["Body"].read() == first,
          "CopyObject with If-Match of the current ETag, or If-None-Match: * to a new key, copies")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": kb}, {"Key": "cond/copy"}]})
    tag = s3.head_object(Bucket=b, Key=k)["ETag"]
    check(error_code(lambda: s3.delete_object(Bucket=b, Key=k, IfMatch='"00"'))
          == "PreconditionFailed", "DELETE with If-Match of another ETag gets PreconditionFailed")
    r = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k, "ETag": '"00"'}]})
    check([e["Code"] for e in r.get("Errors", [])] == ["PreconditionFailed"],
          "DeleteObjects with another ETag reports PreconditionFailed for the key")
    check(s3.get_object(Bucket=b, Key=k)["Body"].read() == first, "and the object stays")
    s3.delete_object(Bucket=b, Key=k, IfMatch=tag)
    check(error_code(lambda: s3.head_object(Bucket=b, Key=k)) in ("404", "NoSuchKey"),
          "DELETE with If-Match of the current ETag deletes")


def headers_suite():
    """The content headers S3 keeps with an object (Content-Encoding, -Disposition,
    -Language, Cache-Control, Expires) come back on GET and HEAD, through multipart uploads
    and copies; response-* overrides apply; oversized user metadata is refused."""
    import datetime
    s3 = client()
    b = "boto" + SFX
    exp = datetime.datetime(2037, 10, 21, 7, 28, tzinfo=datetime.timezone.utc)
    want = {"ContentEncoding": "gzip", "ContentDisposition": 'attachment; filename="r.csv.gz"',
            "ContentLanguage": "de-CH", "CacheControl": "max-age=60", "Expires": exp}
    data = body(3000, 81)
    s3.put_object(Bucket=b, Key="hdr/put", Body=data, ContentType="text/csv", **want)

    def same(r, what):
        got = {k: r.get(k) for k in want}
        check(got == want and r.get("ContentType") == "text/csv", f"{what}: {got}")

    same(s3.head_object(Bucket=b, Key="hdr/put"), "PUT: HEAD returns the content headers")
    r = s3.get_object(Bucket=b, Key="hdr/put")
    check(r["Body"].read() == data, "PUT: the body is unchanged by Content-Encoding")
    same(r, "PUT: GET returns the content headers")
    # Kept as sent; only an aws-chunked coding (the request's framing) is taken out.
    got = []
    for sent in ("deflate, gzip", "br,gzip", "gzip, aws-chunked"):
        s3.put_object(Bucket=b, Key="hdr/enc", Body=data, ContentEncoding=sent)
        got.append(s3.head_object(Bucket=b, Key="hdr/enc").get("ContentEncoding"))
    check(got == ["deflate, gzip", "br,gzip", "gzip"], f"Content-Encoding kept as sent: {got}")
    s3.delete_object(Bucket=b, Key="hdr/enc")
    uid = s3.create_multipart_upload(Bucket=b, Key="hdr/multi", ContentType="text/csv",
                                     **want)["UploadId"]
    etag = s3.upload_part(Bucket=b, Key="hdr/multi", UploadId=uid, PartNumber=1,
                          Body=data)["ETag"]
    s3.complete_multipart_upload(Bucket=b, Key="hdr/multi", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    same(s3.head_object(Bucket=b, Key="hdr/multi"), "multipart: HEAD returns the content headers")
    s3.copy_object(Bucket=b, Key="hdr/copy", CopySource={"Bucket": b, "Key": "hdr/put"})
    same(s3.head_object(Bucket=b, Key="hdr/copy"), "copy: the content headers are copied")
    s3.copy_object(Bucket=b, Key="hdr/replaced", CopySource={"Bucket": b, "Key": "hdr/put"},
                   MetadataDirective="REPLACE", ContentType="text/plain",
                   CacheControl="no-store")
    r = s3.head_object(Bucket=b, Key="hdr/replaced")
    check(r.get("CacheControl") == "no-store" and r.get("ContentType") == "text/plain"
          and r.get("ContentEncoding") is None, "copy with REPLACE: only the new headers")
    r = s3.get_object(Bucket=b, Key="hdr/put", ResponseContentDisposition="inline",
                      ResponseContentType="application/octet-stream")
    r["Body"].read()
    check(r.get("ContentDisposition") == "inline"
          and r.get("ContentType") == "application/octet-stream"
          and r.get("CacheControl") == "max-age=60", "GET with response-* overrides")
    url = s3.generate_presigned_url("get_object", Params={
        "Bucket": b, "Key": "hdr/put", "ResponseContentDisposition": "attachment; filename=x"})
    with urllib.request.urlopen(url, timeout=30) as resp:
        check(resp.headers.get("Content-Disposition") == "attachment; filename=x"
              and resp.read() == data, "presigned GET with response-content-disposition")
    check(error_code(lambda: s3.put_object(Bucket=b, Key="hdr/big", Body=b"x",
                                           Metadata={"big": "v" * 2100}))
          == "MetadataTooLarge", "user metadata over 2 KB gets MetadataTooLarge")
    for k in ("hdr/put", "hdr/multi", "hdr/copy", "hdr/replaced"):
        s3.delete_object(Bucket=b, Key=k)


def refusals_suite():
    """Requests for what the gateway cannot do get an error, not a different result: a part
    number above 1 (every object is one part here), a version id, customer-provided keys."""
    s3 = client()
    b = "boto" + SFX
    data = body(5000, 91)
    s3.put_object(Bucket=b, Key="ref/obj", Body=data)
    r = s3.get_object(Bucket=b, Key="ref/obj", PartNumber=1)
    check(r["Body"].read() == data and "PartsCount" not in r,
          "GET partNumber=1: the whole object, as one part")
    check(error_code(lambda: s3.get_object(Bucket=b, Key="ref/obj", PartNumber=2))
          == "InvalidPartNumber", "GET partNumber=2: InvalidPartNumber")
    check(error_code(lambda: s3.head_object(Bucket=b, Key="ref/obj", PartNumber=2)) == "416",
          "HEAD partNumber=2: 416")
    check(s3.get_object(Bucket=b, Key="ref/obj", VersionId="null")["Body"].read() == data,
          "GET versionId=null: the object")
    check(error_code(lambda: s3.get_object(Bucket=b, Key="ref/obj", VersionId="v2"))
          == "InvalidArgument", "GET of another version id: InvalidArgument")
    check(error_code(lambda: s3.delete_object(Bucket=b, Key="ref/obj", VersionId="v2"))
          == "InvalidArgument", "DELETE of another version id: InvalidArgument")
    check(s3.get_object(Bucket=b, Key="ref/obj")["Body"].read() == data,
          "and the object is still there")
    key = bytes(range(32))
    check(error_code(lambda: s3.put_object(Bucket=b, Key="ref/ssec", Body=data,
                                           SSECustomerAlgorithm="AES256", SSECustomerKey=key))
          == "NotImplemented", "PUT with a customer-provided key (SSE-C): NotImplemented")
    check(error_code(lambda: s3.get_object(Bucket=b, Key="ref/obj",
                                           SSECustomerAlgorithm="AES256", SSECustomerKey=key))
          == "NotImplemented", "GET with a customer-provided key (SSE-C): NotImplemented")
    v = s3.get_bucket_versioning(Bucket=b)
    check("Status" not in v and "MFADelete" not in v, "get_bucket_versioning: never enabled")
    check(error_code(lambda: s3.get_bucket_versioning(Bucket="no-such-bucket" + SFX)) == "NoSuchBucket",
          "get_bucket_versioning of a missing bucket: NoSuchBucket")
    check(error_code(lambda: s3.put_bucket_versioning(
        Bucket=b, VersioningConfiguration={"Status": "Enabled"})) == "NotImplemented",
          "put_bucket_versioning: NotImplemented")
    # Tags are not stored: an object's tag set is empty (the aws cli v2 reads it before a
    # multipart copy), and setting one is refused.
    check(s3.get_object_tagging(Bucket=b, Key="ref/obj")["TagSet"] == [],
          "get_object_tagging: an empty tag set")
    check(error_code(lambda: s3.get_object_tagging(Bucket=b, Key="ref/none")) == "NoSuchKey",
          "get_object_tagging of a missing key: NoSuchKey")
    check(error_code(lambda: s3.put_object_tagging(
        Bucket=b, Key="ref/obj", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}))
          == "NotImplemented", "put_object_tagging: NotImplemented")
    check(error_code(lambda: s3.put_object(Bucket=b, Key="k" * 1025, Body=data))
          == "KeyTooLongError", "a key over 1,024 bytes: KeyTooLongError")
    if not E.get("GW_BACKEND_ENDPOINT"):
        # A local folder stores each segment of a key as a file name: one longer than the
        # file system allows is the client's to fix (400), not a server error to retry.
        long = "ref/" + "n" * 300
        check(error_code(lambda: s3.put_object(Bucket=b, Key=long, Body=data))
              == "KeyTooLongError", "a name too long for the backend's file system: KeyTooLongError")
        check(error_code(lambda: s3.get_object(Bucket=b, Key=long)) in ("KeyTooLongError", "NoSuchKey"),
              "and reading it: KeyTooLongError or NoSuchKey, not a server error")
    early_answer_keeps_the_connection_usable(s3, b, data)
    over_five_gib(s3, b)
    s3.delete_object(Bucket=b, Key="ref/obj")


def over_five_gib(s3, b):
    """A PutObject or UploadPart that announces more than S3's 5 GiB a request gets
    EntityTooLarge before its body is read, and nothing is stored."""
    up = s3.create_multipart_upload(Bucket=b, Key="ref/huge-mp")["UploadId"]
    for op, params in (("put_object", {"Key": "ref/huge"}),
                       ("upload_part", {"Key": "ref/huge-mp", "UploadId": up, "PartNumber": 1})):
        url = urllib.parse.urlsplit(s3.generate_presigned_url(
            op, Params={"Bucket": b, **params}, ExpiresIn=600))
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        conn.putrequest("PUT", f"{url.path}?{url.query}")
        conn.putheader("Content-Length", str(5 * 1024 ** 3 + 1))
        conn.endheaders()
        conn.send(b"x" * 4096)
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        conn.close()
        check(resp.status == 400 and "<Code>EntityTooLarge</Code>" in text,
              f"{op} announcing 5 GiB + 1 byte: 400 EntityTooLarge ({resp.status})")
    check(error_code(lambda: s3.head_object(Bucket=b, Key="ref/huge")) == "404",
          "and nothing is stored")
    check(s3.list_parts(Bucket=b, Key="ref/huge-mp", UploadId=up).get("Parts", []) == [],
          "nor a part")
    s3.abort_multipart_upload(Bucket=b, Key="ref/huge-mp", UploadId=up)


def foreign_suite():
    """Objects in the backend that no gateway wrote, or that were damaged there, are listed
    (and HEAD answers them) with their stored size: one of them neither fails the listing of
    the bucket nor hides; reading one answers InvalidObjectState, not a server error a client
    retries; they can be deleted, and the rest of the bucket reads as before."""
    s3 = client()
    b = "boto" + SFX
    s3.put_object(Bucket=b, Key="foreign/ok", Body=b"readable")
    be = backend()
    if be is not None:
        stored = be.get_object(Bucket=b, Key="foreign/ok")["Body"].read()
    else:
        stored = read(os.path.join(E["GW_BACKEND_DIR"], b, "foreign", "ok"))
    flipped = bytearray(stored)
    flipped[-20] ^= 1
    raw = {"foreign/plain": b"plain bytes that no gateway wrote\n", "foreign/cut": stored[:40]}
    for k, v in raw.items():
        if be is not None:
            be.put_object(Bucket=b, Key=k, Body=v)
        else:
            write(os.path.join(E["GW_BACKEND_DIR"], b, k), v)
    r = s3.list_objects_v2(Bucket=b, Prefix="foreign/")
    sizes = {o["Key"]: o["Size"] for o in r.get("Contents", [])}
    check(sizes == {"foreign/cut": 40, "foreign/ok": 8, "foreign/plain": len(raw["foreign/plain"])},
          f"foreign and cut objects listed with their stored sizes: {sizes}")
    for k in raw:
        check(error_code(lambda: s3.get_object(Bucket=b, Key=k)) == "InvalidObjectState",
              f"GET of {k}: InvalidObjectState")
    h = s3.head_object(Bucket=b, Key="foreign/plain")
    check(h["ContentLength"] == len(raw["foreign/plain"]),
          "HEAD of a foreign object: as listed (the GET after it says what is wrong)")
    check(s3.get_object(Bucket=b, Key="foreign/ok")["Body"].read() == b"readable",
          "the gateway's own object beside them reads as before")
    # An object whose data key none of the caller's keys can unwrap (a credential with
    # another keyring) and a damaged one: an error answer with the reason, before any byte
    # of a body, and no retry (boto3 retries a cut body and 5xx, not 403).
    other = client(E["GW_OTHER_KEY"], E["GW_OTHER_SECRET"])
    check(other.head_object(Bucket=b, Key="foreign/ok")["ContentLength"] == 8,
          "HEAD needs no key: another keyring's credential sees the object")
    for rng in (None, "bytes=2-5"):
        args = {"Range": rng} if rng else {}
        try:
            other.get_object(Bucket=b, Key="foreign/ok", **args)
            code, text = None, ""
        except ClientError as e:
            code, text = e.response["Error"]["Code"], e.response["Error"].get("Message", "")
        check(code == "AccessDenied" and "another keyring" in text and "test-key" not in text,
              f"GET{' ' + rng if rng else ''} by a credential whose keys cannot open it: {code}"
              " (the gateway's key names stay in its log)")
    if be is not None:
        be.put_object(Bucket=b, Key="foreign/flipped", Body=bytes(flipped))
    else:
        write(os.path.join(E["GW_BACKEND_DIR"], b, "foreign", "flipped"), bytes(flipped))
    code = error_code(lambda: s3.get_object(Bucket=b, Key="foreign/flipped"))
    check(code == "InvalidObjectState", f"GET of an object whose only frame is damaged: {code}")
    # A copied part whose source cannot be decrypted (another key's bytes, one bit flipped):
    # the reason, not the part's body "ending early".
    uid = s3.create_multipart_upload(Bucket=b, Key="foreign/copy")["UploadId"]
    code = error_code(lambda: s3.upload_part_copy(
        Bucket=b, Key="foreign/copy", UploadId=uid, PartNumber=1,
        CopySource={"Bucket": b, "Key": "foreign/flipped"}))
    check(code == "InvalidObjectState", f"upload_part_copy of a damaged source: {code}")
    s3.abort_multipart_upload(Bucket=b, Key="foreign/copy", UploadId=uid)
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in
                                                    ("foreign/ok", "foreign/flipped", *raw)]})
    check(not s3.list_objects_v2(Bucket=b, Prefix="foreign/").get("Contents"),
          "foreign objects can be deleted through the gateway")


def markers_suite():
    """Folder markers (keys ending in `/`, as S3 consoles, s3fs and Hadoop's s3a create for
    folders) are objects like any other: stored as `KEY␠` in the backend, listed in their
    place in key order (pages included), read, and deleted; a key whose last name is the
    marker's single space is refused."""
    s3 = client()
    b = "boto" + SFX
    keys = ["mk/dir/", "mk/dir/ x", "mk/dir/!", "mk/dir/a", "mk/dir/b/", "mk/dir0"]
    for k in reversed(keys):
        s3.put_object(Bucket=b, Key=k, Body=b"" if k.endswith("/") else k.encode())
    s3.put_object(Bucket=b, Key="mk/full/", Body=b"a marker may hold bytes")
    check(s3.head_object(Bucket=b, Key="mk/dir/")["ContentLength"] == 0
          and s3.get_object(Bucket=b, Key="mk/dir/")["Body"].read() == b""
          and s3.get_object(Bucket=b, Key="mk/full/")["Body"].read() == b"a marker may hold bytes",
          "folder markers: put, head and get")
    want = keys + ["mk/full/"]
    got = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="mk/")["Contents"]]
    check(got == want, f"folder markers listed in key order: {got}")
    paged, token = [], None
    while True:
        args = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=b, Prefix="mk/", MaxKeys=1, **args)
        paged += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    after = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="mk/", StartAfter="mk/dir/")["Contents"]]
    check(paged == want and after == want[1:], f"pages of one key and start-after a marker: {paged} {after}")
    r = s3.list_objects_v2(Bucket=b, Prefix="mk/", Delimiter="/")
    check([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["mk/dir/", "mk/full/"]
          and [o["Key"] for o in r.get("Contents", [])] == ["mk/dir0"],
          "with a delimiter, markers fall in their common prefixes")
    code = error_code(lambda: s3.put_object(Bucket=b, Key="mk/dir/ ", Body=b"x"))
    check(code == "InvalidArgument", f"a key whose last name is a single space: {code}")
    be = backend()
    if be is not None:
        stored = [o["Key"] for o in be.list_objects_v2(Bucket=b, Prefix="mk/dir/")["Contents"]]
        check("mk/dir/ " in stored, f"the marker is stored as `mk/dir/ `: {stored}")
    else:
        check(os.path.isfile(os.path.join(E["GW_BACKEND_DIR"], b, "mk", "dir", " ")),
              "the marker is stored as the file `mk/dir/ `")
        # A local folder cannot hold `a` beside `a/…`: a client error, not a server error.
        codes = [error_code(lambda: s3.put_object(Bucket=b, Key=k, Body=b"x"))
                 for k in ("mk/dir0/x", "mk/dir0/x/")]
        codes.append(error_code(lambda: s3.get_object(Bucket=b, Key="mk/dir0/x")))
        check(codes == ["InvalidArgument", "InvalidArgument", "NoSuchKey"],
              f"a key under another key's name, on a local folder: {codes}")
    s3.delete_object(Bucket=b, Key="mk/dir/")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "mk/full/"}]})
    got = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="mk/")["Contents"]]
    check(got == keys[1:], f"markers deleted, the keys under them stay: {got}")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in keys[1:]]})
    check(not s3.list_objects_v2(Bucket=b, Prefix="mk/").get("Contents"), "and deleted")


def post_form_suite():
    """Browser-form uploads (POST with a presigned policy) store an encrypted object like a
    PUT; a key with `${filename}`, which the gateway cannot fill in, is refused, not stored
    at the literal key."""
    s3 = client()
    b = "boto" + SFX
    data = b"uploaded from a browser form\n" * 20

    def post(key):
        p = s3.generate_presigned_post(b, key, Fields={"Content-Type": "text/plain"},
                                       Conditions=[{"Content-Type": "text/plain"},
                                                   ["content-length-range", 1, 1 << 20]],
                                       ExpiresIn=300)
        bnd = "hyokformboundary%d" % random.randrange(1 << 30)
        form = [f'--{bnd}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                for k, v in p["fields"].items()]
        form.append(f'--{bnd}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n'
                    f'Content-Type: text/plain\r\n\r\n'.encode() + data + b"\r\n")
        form.append(f"--{bnd}--\r\n".encode())
        req = urllib.request.Request(p["url"], data=b"".join(form), method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={bnd}"})
        try:
            with urllib.request.urlopen(req) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    status = post("form/upload.txt")
    g = s3.get_object(Bucket=b, Key="form/upload.txt")
    check(status == 204 and g["Body"].read() == data and g["ContentType"] == "text/plain"
          and g["ETag"] == '"%s"' % hashlib.md5(data).hexdigest(),
          f"POST form upload: stored and read back ({status})")
    check(post("form/${filename}") == 501
          and not s3.list_objects_v2(Bucket=b, Prefix="form/$").get("Contents"),
          "POST form with ${filename} in the key: 501, nothing stored")
    s3.delete_object(Bucket=b, Key="form/upload.txt")


def early_answer_keeps_the_connection_usable(s3, b, data):
    """A PUT refused before its body was read (here: an append), its body sent only after
    the refusal, then a GET on the same connection: the GET gets its object, not the PUT's
    leftover bytes read as a request (a bare 400) nor a connection the server dropped
    without saying so."""
    put = urllib.parse.urlsplit(s3.generate_presigned_url(
        "put_object", Params={"Bucket": b, "Key": "ref/refused", "WriteOffsetBytes": 0},
        ExpiresIn=600))
    get = urllib.parse.urlsplit(s3.generate_presigned_url(
        "get_object", Params={"Bucket": b, "Key": "ref/obj"}, ExpiresIn=600))
    # 700 bytes are read off the connection after the answer; 2 MiB are not: that answer
    # closes the connection (and says so).
    for size, closes in ((700, False), (2 << 20, True)):
        conn = http.client.HTTPConnection(put.hostname, put.port, timeout=30)
        conn.putrequest("PUT", f"{put.path}?{put.query}")
        conn.putheader("Content-Length", str(size))
        conn.putheader("x-amz-write-offset-bytes", "0")
        conn.endheaders()
        first = conn.getresponse()
        first.read()
        # http.client reconnects by itself only when the answer said `Connection: close`.
        if not first.will_close:
            conn.send(b"x" * size)
        try:
            conn.request("GET", f"{get.path}?{get.query}")
            second = conn.getresponse()
            got = (second.status, second.read())
        except OSError as e:
            got = (None, repr(e))
        conn.close()
        check(first.status == 501 and first.will_close == closes and got == (200, data),
              f"after a PUT of {size} bytes refused before its body, the next request is served "
              f"({first.status}, close={first.will_close}, then {got[0]})")


def metric(name):
    """One counter of the gateway's /metrics."""
    text = urllib.request.urlopen(ENDPOINT + "/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[-1])
    fail(f"/metrics has no {name}")


def direct_suite():
    """Multipart parts sealed in place as the frames of the final object ("direct frames",
    DESIGN.md), and the cases that must fall back to staging: a part sent twice with other
    bytes, parts of unequal sizes, two Completes at once."""
    s3 = client(max_pool_connections=16)
    b = "boto" + SFX
    part = 5 * 1024 * 1024

    def marked(n, seed):
        data = bytearray(big_body(n, seed))
        for at in range(part // 2, n - len(MARKER), part):
            data[at:at + len(MARKER)] = MARKER
        return bytes(data)

    def put_part(key, uid, n, data):
        return s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n, Body=data)["ETag"]

    def complete(key, uid, etags):
        return s3.complete_multipart_upload(
            Bucket=b, Key=key, UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in sorted(etags.items())]})

    def got(key):
        return s3.get_object(Bucket=b, Key=key)["Body"].read()

    # On an S3 backend, parts 2 … N go straight into a backend multipart upload ("parts in
    # place"); on a local folder they stay objects of their own.
    on_s3 = bool(E.get("GW_BACKEND_ENDPOINT"))

    def in_place():
        return (metric("hyok_gateway_inplace_parts_total"),
                metric("hyok_gateway_inplace_completes_total"))

    # Equal parts ending on a frame boundary, sent in reverse order in parallel: all direct,
    # the final frame is empty.
    parts0, done0 = metric("hyok_gateway_direct_parts_total"), metric("hyok_gateway_direct_completes_total")
    ip0 = in_place()
    data = marked(3 * part, 31)
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/even")["UploadId"]
    with cf.ThreadPoolExecutor(3) as ex:
        etags = dict(ex.map(lambda n: (n, put_part("direct/even", uid, n, data[(n - 1) * part:n * part])),
                            [3, 2, 1]))
    complete("direct/even", uid, etags)
    check(got("direct/even") == data
          and metric("hyok_gateway_direct_parts_total") - parts0 == 3
          and metric("hyok_gateway_direct_completes_total") - done0 == 1,
          "equal parts are sealed in place and completed without re-encryption")
    ip1 = in_place()
    check((ip1[0] - ip0[0], ip1[1] - ip0[1]) == ((2, 1) if on_s3 else (0, 0)),
          f"parts 2 and 3 went into the backend upload on S3 only ({ip0} -> {ip1})")
    if on_s3:
        # The object completed in place has the metadata `hyok cp` writes (the copy to the key
        # replaces the staging object's), so `hyok ls -l` needs no header read.
        be = backend()
        md = be.head_object(Bucket=b, Key="direct/even")["Metadata"]
        check(md.get("hyok-plaintext-length") == str(len(data)) and "hyok-header-length" in md
              and "hyok-wrapping-keys" in md,
              f"an object completed in place carries hyok's metadata ({sorted(md)})")

    # A part uploaded twice with other bytes: the second wins (the retry is staged, so the
    # upload falls back to re-encryption; no sequence number is sealed twice).
    data = marked(3 * part + 4321, 32)
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/retry")["UploadId"]
    etags = {1: put_part("direct/retry", uid, 1, data[:part])}
    put_part("direct/retry", uid, 2, marked(part, 33))
    etags[2] = put_part("direct/retry", uid, 2, data[part:2 * part])
    etags[3] = put_part("direct/retry", uid, 3, data[2 * part:3 * part])
    etags[4] = put_part("direct/retry", uid, 4, data[3 * part:])
    lp = s3.list_parts(Bucket=b, Key="direct/retry", UploadId=uid)
    check([p["ETag"] for p in lp["Parts"]] == [etags[n] for n in range(1, 5)],
          "list_parts shows the second upload of part 2")
    complete("direct/retry", uid, etags)
    check(got("direct/retry") == data, "a part uploaded twice with other bytes: the second wins")
    ip2 = in_place()
    check(not on_s3 or (ip2[0] - ip1[0] >= 2 and ip2[1] == ip1[1]),
          "the retried part's first version went in place and the Complete fell back")

    # A part whose bytes fail the checksum it announced (on S3 it streams in place as it
    # arrives): refused, and no trace of it; the part sent again with the right bytes is used.
    data = marked(3 * part, 39)
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/badsum")["UploadId"]
    etags = {1: put_part("direct/badsum", uid, 1, data[:part])}
    wrong = base64.b64encode(zlib.crc32(b"other bytes").to_bytes(4, "big")).decode()
    try:
        s3.upload_part(Bucket=b, Key="direct/badsum", UploadId=uid, PartNumber=2,
                       Body=marked(part, 40), ChecksumCRC32=wrong)
        refused = None
    except ClientError as e:
        refused = e.response["Error"]["Code"]
    check(refused in ("BadDigest", "InvalidRequest", "XAmzContentChecksumMismatch"),
          f"a part failing its announced checksum is refused ({refused})")
    etags[2] = put_part("direct/badsum", uid, 2, data[part:2 * part])
    etags[3] = put_part("direct/badsum", uid, 3, data[2 * part:])
    complete("direct/badsum", uid, etags)
    check(got("direct/badsum") == data, "the part sent again after a checksum failure is used")

    # Parts over 16 MiB (Hadoop's S3A sends 64 MiB, the aws cli over 16 MiB for very large
    # files): claimed before their bodies are read, then streamed in place; an unaligned last
    # part of its own size.
    big = 20 * 1024 * 1024
    data = marked(3 * big + 3 * 1024 * 1024 + 17, 41)
    parts1, done1, ip3 = (metric("hyok_gateway_direct_parts_total"),
                          metric("hyok_gateway_direct_completes_total"), in_place())
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/large")["UploadId"]
    with cf.ThreadPoolExecutor(4) as ex:
        etags = dict(ex.map(lambda n: (n, put_part("direct/large", uid, n,
                                                   data[(n - 1) * big:n * big])), [4, 3, 2, 1]))
    complete("direct/large", uid, etags)
    ip4 = in_place()
    check(got("direct/large") == data
          and metric("hyok_gateway_direct_parts_total") - parts1 == 3
          and metric("hyok_gateway_direct_completes_total") - done1 == 1
          and (ip4[0] - ip3[0], ip4[1] - ip3[1]) == ((2, 1) if on_s3 else (0, 0)),
          f"20 MiB parts go in place and complete without re-encryption ({ip3} -> {ip4})")
    # A large part failing its checksum while it streams: refused, and the part sent again
    # (staged then: the first attempt keeps its claim) is used.
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/large-badsum")["UploadId"]
    try:
        s3.upload_part(Bucket=b, Key="direct/large-badsum", UploadId=uid, PartNumber=2,
                       Body=data[big:2 * big], ChecksumCRC32=wrong)
        refused = None
    except ClientError as e:
        refused = e.response["Error"]["Code"]
    check(refused in ("BadDigest", "InvalidRequest", "XAmzContentChecksumMismatch"),
          f"a large part failing its announced checksum is refused ({refused})")
    etags = {n: put_part("direct/large-badsum", uid, n, data[(n - 1) * big:n * big])
             for n in (1, 2)}
    etags[3] = put_part("direct/large-badsum", uid, 3, b"tail")
    complete("direct/large-badsum", uid, etags)
    check(got("direct/large-badsum") == data[:2 * big] + b"tail",
          "the large part sent again after a checksum failure is used")

    # Parts over 64 MiB (the aws cli's for files over 640 GiB, or a larger
    # multipart_chunksize): part 2 goes in place too, and the Complete streams part 1 (with
    # the header in front) and the re-sealed unaligned last part to the backend instead of
    # holding them, then completes without re-encryption.
    huge = 65 * 1024 * 1024
    data = marked(3 * huge + 17, 43)
    parts1, done1, ip5 = (metric("hyok_gateway_direct_parts_total"),
                          metric("hyok_gateway_direct_completes_total"), in_place())
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/huge")["UploadId"]
    with cf.ThreadPoolExecutor(3) as ex:
        etags = dict(ex.map(lambda n: (n, put_part("direct/huge", uid, n,
                                                   data[(n - 1) * huge:n * huge + (17 if n == 3 else 0)])),
                            [3, 2, 1]))
    complete("direct/huge", uid, etags)
    ip6 = in_place()
    check(got("direct/huge") == data
          and metric("hyok_gateway_direct_parts_total") - parts1 == 2
          and metric("hyok_gateway_direct_completes_total") - done1 == 1
          and (ip6[0] - ip5[0], ip6[1] - ip5[1]) == ((1, 1) if on_s3 else (0, 0)),
          f"65 MiB parts go in place and complete without re-encryption ({ip5} -> {ip6})")
    # Two parts, none in place (the last is unaligned): the Complete copies part 1's frames
    # while the last part is decrypted ahead of them; both read with the writer's transfer.
    # (Such a Complete waited for ever once the waiting reader held the permits.)
    data = marked(24 * 1024 * 1024 + 40 * 1024 * 1024 + 5, 47)
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/two")["UploadId"]
    cut = 24 * 1024 * 1024
    etags = {1: put_part("direct/two", uid, 1, data[:cut]), 2: put_part("direct/two", uid, 2, data[cut:])}
    complete("direct/two", uid, etags)
    check(got("direct/two") == data, "a large first part and a larger unaligned last part complete")

    # A part number left out of the Complete: the object is parts 1 and 3 (S3 semantics); on
    # S3 the fallback reads part 3 back from the backend upload by offset.
    data = marked(3 * part, 37)
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/skip")["UploadId"]
    etags = {n: put_part("direct/skip", uid, n, data[(n - 1) * part:n * part]) for n in (1, 2, 3)}
    del etags[2]
    complete("direct/skip", uid, etags)
    check(got("direct/skip") == data[:part] + data[2 * part:],
          "a part left out of the Complete is left out of the object")

    # Unequal part sizes: staged and re-encrypted, still correct.
    sizes = [6 * 1024 * 1024, part, 7 * 1024 * 1024, 1000]
    data = marked(sum(sizes), 34)
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/unequal")["UploadId"]
    etags, at = {}, 0
    for n, size in enumerate(sizes, 1):
        etags[n] = put_part("direct/unequal", uid, n, data[at:at + size])
        at += size
    done = complete("direct/unequal", uid, etags)
    check(got("direct/unequal") == data and done["ETag"].endswith('-4"'),
          "parts of unequal sizes fall back to re-encryption and are correct")

    # Two Completes at once: one header at most is sealed for the upload's message id; the
    # object decrypts and holds the data whichever finished.
    data = marked(2 * part + 99, 35)
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/race")["UploadId"]
    etags = {1: put_part("direct/race", uid, 1, data[:part]),
             2: put_part("direct/race", uid, 2, data[part:2 * part]),
             3: put_part("direct/race", uid, 3, data[2 * part:])}
    done0 = metric("hyok_gateway_direct_completes_total")

    def try_complete(_):
        try:
            return complete("direct/race", uid, etags)["ETag"]
        except ClientError as e:
            return e.response["Error"]["Code"]

    with cf.ThreadPoolExecutor(2) as ex:
        results = list(ex.map(try_complete, range(2)))
    check(any(r.endswith('-3"') for r in results) and got("direct/race") == data
          and metric("hyok_gateway_direct_completes_total") - done0 <= 1,
          f"two Completes at once: the object is whole, at most one sealed a header ({results})")

    # An aborted upload of direct parts (on S3, part 2 in place) leaves nothing, on the
    # backend either.
    uid = s3.create_multipart_upload(Bucket=b, Key="direct/aborted")["UploadId"]
    put_part("direct/aborted", uid, 1, marked(part, 36))
    put_part("direct/aborted", uid, 2, marked(part, 38))
    lp = s3.list_parts(Bucket=b, Key="direct/aborted", UploadId=uid)
    check([(p["PartNumber"], p["Size"]) for p in lp["Parts"]] == [(1, part), (2, part)],
          "list_parts shows a direct part and a part in place with their plaintext sizes")
    s3.abort_multipart_upload(Bucket=b, Key="direct/aborted", UploadId=uid)
    # The gateway keeps the upload's record it read for parts 1 and 2; a part after the
    # abort must still find the upload gone, and write nothing.
    try:
        put_part("direct/aborted", uid, 3, marked(part, 40))
        fail("a part was accepted after its upload was aborted")
    except ClientError as e:
        check(e.response["Error"]["Code"] == "NoSuchUpload",
              f"a part after the abort gets NoSuchUpload ({e.response['Error']['Code']})")
    check(not s3.list_multipart_uploads(Bucket=b).get("Uploads")
          and s3.list_objects_v2(Bucket=b, Prefix="direct/aborted").get("KeyCount") == 0,
          "an aborted upload of direct parts leaves nothing")
    if on_s3:
        be = backend()
        left = be.list_objects_v2(Bucket=b, Prefix=f".hyok-gateway/uploads/{uid}/").get("Contents", [])
        check(not left, f"no upload state is left on the backend ({[o['Key'] for o in left][:5]})")


def rclone_suite():
    rc = E.get("RCLONE")
    if not rc:
        print("SKIPPED: rclone (RCLONE not set)", flush=True)
        return
    env = dict(E)
    env.pop("AWS_CA_BUNDLE", None)  # rclone reads it and fails on an empty or foreign bundle
    env.update(RCLONE_CONFIG_GW_TYPE="s3", RCLONE_CONFIG_GW_PROVIDER="Other",
               RCLONE_CONFIG_GW_ACCESS_KEY_ID=E["GW_KEY"],
               RCLONE_CONFIG_GW_SECRET_ACCESS_KEY=E["GW_SECRET"],
               RCLONE_CONFIG_GW_ENDPOINT=ENDPOINT, RCLONE_CONFIG_GW_REGION="us-east-1",
               RCLONE_CONFIG_GW_FORCE_PATH_STYLE="true", RCLONE_CONFIG="/dev/null")
    src = os.path.join(WORK, "rclone-src")
    for i in range(1000):
        write(f"{src}/small/{i // 100}/f{i}.txt", body(10 + i, 5000 + i))
    for i, mib in enumerate((12, 21)):
        write(f"{src}/large/big{i}.bin", big_body(mib * 1024 * 1024 + i, 60 + i))
    make_backend_bucket("rclone-b" + SFX)

    def run(*args):
        r = subprocess.run([rc, *args], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"rclone {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-1500:]}")
        return r

    run("mkdir", "gw:rclone-b" + SFX + "")
    t = time.time()
    run("copy", src, "gw:rclone-b" + SFX + "/tree", "--transfers", "8", "--checkers", "16")
    ok(f"rclone copy of 1,000 small and 2 large files in {time.time() - t:.1f} s")
    r = run("check", src, "gw:rclone-b" + SFX + "/tree")
    check("0 differences found" in r.stderr and "hashes could not be checked" not in r.stderr,
          "rclone check: every MD5 agrees")
    os.remove(f"{src}/small/3/f300.txt")
    write(f"{src}/small/new.txt", body(999, 77))
    run("sync", src, "gw:rclone-b" + SFX + "/tree", "--transfers", "8")
    r = run("check", src, "gw:rclone-b" + SFX + "/tree")
    check("0 differences found" in r.stderr, "rclone sync, then check agrees")


def part_etag_suite():
    """A part's ETag is the MD5 of its plaintext when the client sends no flexible checksum
    (s3cmd and the AWS SDK for Java 1.x compare it with their own after every part), on
    every path a part can take: sealed in place or as direct frames (whole frames), staged
    (a last part of any length), sent with a Content-MD5, sent again. The object's ETag is
    then S3's: MD5 of the parts' MD5s, dash, part count."""
    plain = client(request_checksum_calculation="when_required")
    s3 = client()
    b = "boto" + SFX
    part = 5 * 1024 * 1024
    sizes = (part, part, part, part + 12345)
    data = [big_body(n, 700 + i) for i, n in enumerate(sizes)]
    md5s = [hashlib.md5(d).hexdigest() for d in data]
    uid = plain.create_multipart_upload(Bucket=b, Key="etags.bin")["UploadId"]

    def put(c, n, **kw):
        return c.upload_part(Bucket=b, Key="etags.bin", UploadId=uid, PartNumber=n,
                             Body=data[n - 1], **kw)["ETag"].strip('"')

    got = {n: put(plain, n) for n in (2, 1, 4)}
    check([got[n] for n in (1, 2, 4)] == [md5s[0], md5s[1], md5s[3]],
          "part ETags are the parts' MD5s without a checksum (whole frames, out of order; "
          "a last part of any length)")
    # Part 3 first with a flexible checksum (its ETag need not be an MD5), then again
    # without one: the ETag is the MD5 again, and the upload still completes.
    flexible = put(s3, 3, ChecksumAlgorithm="CRC32")
    check(len(flexible) == 32 and all(c in "0123456789abcdef" for c in flexible),
          "a part sent with a flexible checksum has a 16-byte ETag")
    got[3] = put(plain, 3, ContentMD5=base64.b64encode(bytes.fromhex(md5s[2])).decode())
    check(got[3] == md5s[2], "a part sent again with Content-MD5: its MD5 as ETag")
    lp = plain.list_parts(Bucket=b, Key="etags.bin", UploadId=uid)
    check([p["ETag"].strip('"') for p in lp["Parts"]] == md5s, "list_parts shows the MD5s")
    done = plain.complete_multipart_upload(
        Bucket=b, Key="etags.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": got[n]} for n in (1, 2, 3, 4)]})
    s3_etag = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest() + "-4"
    check(done["ETag"].strip('"') == s3_etag
          and plain.head_object(Bucket=b, Key="etags.bin")["ETag"].strip('"') == s3_etag,
          "the object's ETag is S3's multipart ETag of those parts")
    check(plain.get_object(Bucket=b, Key="etags.bin")["Body"].read() == b"".join(data),
          "the object reads back byte-identical")
    # A retried Complete (its first answer lost) succeeds with the same ETag, as on S3; a
    # Complete of the gone upload with other parts is NoSuchUpload.
    listed = [{"PartNumber": n, "ETag": got[n]} for n in (1, 2, 3, 4)]
    again = plain.complete_multipart_upload(Bucket=b, Key="etags.bin", UploadId=uid,
                                            MultipartUpload={"Parts": listed})
    check(again["ETag"].strip('"') == s3_etag, "CompleteMultipartUpload again: 200, same ETag")
    check(error_code(lambda: plain.complete_multipart_upload(
        Bucket=b, Key="etags.bin", UploadId=uid, MultipartUpload={"Parts": listed[:3]}))
          == "NoSuchUpload", "a Complete of the completed upload with other parts: NoSuchUpload")
    plain.delete_object(Bucket=b, Key="etags.bin")


def s3cmd_suite():
    """s3cmd (Debian package), which checks every part's ETag against its own MD5."""
    exe = E.get("S3CMD")
    if not exe:
        print("SKIPPED: s3cmd (S3CMD not set)", flush=True)
        return
    host = ENDPOINT.split("://", 1)[1].rstrip("/")
    cfg = os.path.join(WORK, "s3cmd.cfg")
    write_secret(cfg, f"[default]\naccess_key = {E['GW_KEY']}\nsecret_key = {E['GW_SECRET']}\n"
                      f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n"
                      "signature_v2 = False\nbucket_location = us-east-1\n")
    env = dict(E)
    env.pop("AWS_CA_BUNDLE", None)
    bucket = "s3cmd" + SFX
    make_backend_bucket(bucket)

    def run(*args):
        r = subprocess.run([exe, "-c", cfg, *args], env=env, capture_output=True, text=True)
        if r.returncode != 0 or "WARNING: MD5" in r.stderr or "Retrying" in r.stderr:
            fail(f"s3cmd {' '.join(args)}: exit {r.returncode}: {(r.stdout + r.stderr).strip()[-1500:]}")
        return r.stdout

    run("mb", f"s3://{bucket}")
    ok("s3cmd mb")
    d = os.path.join(WORK, "s3cmd")
    big = big_body(12 * 1024 * 1024 + 4321, 808)
    write(f"{d}/big.bin", big)
    run("put", "--multipart-chunk-size-mb=5", f"{d}/big.bin", f"s3://{bucket}/big.bin")
    run("get", "--force", f"s3://{bucket}/big.bin", f"{d}/big.back")
    check(read(f"{d}/big.back") == big,
          "s3cmd put (multipart, every part's ETag checked) and get, byte-identical")
    info = run("info", f"s3://{bucket}/big.bin")
    check(hashlib.md5(big).hexdigest() in info and str(len(big)) in info,
          "s3cmd info: plaintext size and MD5")
    for i in range(20):
        write(f"{d}/tree/{i % 3}/f{i}.txt", body(100 + i, 900 + i))
    run("sync", f"{d}/tree/", f"s3://{bucket}/tree/")
    again = run("sync", f"{d}/tree/", f"s3://{bucket}/tree/")
    check("upload:" not in again, "s3cmd sync, then sync again uploads nothing (MD5s agree)")
    run("sync", f"s3://{bucket}/tree/", f"{d}/tree.back/")
    check(tree_equal(f"{d}/tree", f"{d}/tree.back"), "s3cmd sync back, byte-identical")
    run("del", "--recursive", "--force", f"s3://{bucket}/")
    check(run("ls", "--recursive", f"s3://{bucket}/").strip() == "", "s3cmd del --recursive")


def s3fs_suite():
    """s3fs-fuse (Debian package): the bucket mounted as a file system. Files written,
    renamed (CopyObject; UploadPartCopy for a large one), chmod'ed and touched (metadata
    replaced by a copy), appended to, then read back after a fresh mount, and removed."""
    exe = E.get("S3FS")
    if not exe:
        print("SKIPPED: s3fs (S3FS not set)", flush=True)
        return
    if not os.path.exists("/dev/fuse"):
        print("SKIPPED: s3fs (no /dev/fuse on this machine)", flush=True)
        return
    s3 = client()
    bucket = "s3fs" + SFX
    make_backend_bucket(bucket)
    s3.create_bucket(Bucket=bucket)
    mnt = os.path.join(WORK, "s3fs-mnt")
    os.makedirs(mnt, exist_ok=True)
    pw = os.path.join(WORK, "s3fs.passwd")
    write_secret(pw, f"{E['GW_KEY']}:{E['GW_SECRET']}\n")
    log = os.path.join(WORK, "s3fs.log")
    env = dict(E)
    for k in ("AWS_CA_BUNDLE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k, None)

    def mount():
        opts = [f"passwd_file={pw}", f"url={ENDPOINT}", "use_path_request_style",
                "retries=2", "connect_timeout=10", "readwrite_timeout=60",
                f"logfile={log}", "dbglevel=warn"]
        r = subprocess.run([exe, bucket, mnt] + [a for o in opts for a in ("-o", o)],
                           env=env, capture_output=True, text=True, timeout=60)
        for _ in range(100):
            if os.path.ismount(mnt):
                return True
            time.sleep(0.1)
        print(f"SKIPPED: s3fs could not mount (FUSE unavailable?): exit {r.returncode} "
              f"{(r.stdout + r.stderr).strip()[-300:]}", flush=True)
        return False

    def umount():
        if subprocess.run(["umount", mnt], capture_output=True, timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=60)

    if not mount():
        return
    small = b"s3fs through the gateway: " + MARKER + b"\n"
    large = big_body(30 << 20, 77)
    try:
        write(os.path.join(mnt, "small.txt"), small)
        write(os.path.join(mnt, "large.bin"), large)
        os.mkdir(os.path.join(mnt, "dir"))
        write(os.path.join(mnt, "dir", "a.txt"), small)
        os.rename(os.path.join(mnt, "dir", "a.txt"), os.path.join(mnt, "dir", "b.txt"))
        os.rename(os.path.join(mnt, "large.bin"), os.path.join(mnt, "dir", "large.bin"))
        os.chmod(os.path.join(mnt, "small.txt"), 0o640)
        with open(os.path.join(mnt, "small.txt"), "ab") as f:
            f.write(b"appended\n")
        os.utime(os.path.join(mnt, "small.txt"), (1577836800, 1577836800))
        ok("s3fs: write, mkdir, rename (small and 30 MiB), chmod, append, touch")
    finally:
        umount()
    if not mount():
        fail("s3fs mounted once but not again")
    try:
        st = os.stat(os.path.join(mnt, "small.txt"))
        check(read(os.path.join(mnt, "small.txt")) == small + b"appended\n"
              and st.st_mode & 0o777 == 0o640 and int(st.st_mtime) == 1577836800,
              "s3fs after a fresh mount: content, mode and mtime kept")
        check(read(os.path.join(mnt, "dir", "large.bin")) == large
              and read(os.path.join(mnt, "dir", "b.txt")) == small
              and sorted(os.listdir(os.path.join(mnt, "dir"))) == ["b.txt", "large.bin"]
              and sorted(os.listdir(mnt)) == ["dir", "small.txt"],
              "s3fs after a fresh mount: renamed files byte-identical, old names gone")
        with open(os.path.join(mnt, "dir", "large.bin"), "rb") as f:
            f.seek(17 << 20)
            piece = f.read(1 << 20)
        check(piece == large[17 << 20:18 << 20], "s3fs: a read in the middle of the large file")
        head = s3.head_object(Bucket=bucket, Key="dir/large.bin")
        check(head["ContentLength"] == len(large) and "mode" in head["Metadata"],
              f"s3fs's metadata through the gateway: {sorted(head['Metadata'])}")
        stored = os.path.join(E.get("GW_BACKEND_DIR", ""), bucket)
        if E.get("GW_BACKEND_DIR"):
            raw = [read(os.path.join(d, n)) for d, _, ns in os.walk(stored) for n in ns]
            check(len(raw) >= 4 and not any(MARKER in r or small[:20] in r for r in raw),
                  f"s3fs's files are ciphertext in the backend ({len(raw)} files)")
        shutil.rmtree(os.path.join(mnt, "dir"))
        os.remove(os.path.join(mnt, "small.txt"))
    finally:
        umount()
    left = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    check(left == [], f"s3fs rm -r leaves the bucket empty ({[o['Key'] for o in left]})")


def go_suite():
    """The AWS SDK for Go v2 (Debian's golang-github-aws-aws-sdk-go-v2-dev): gateway_go/main.go,
    built here in GOPATH mode, runs its own checks and prints one line per check."""
    go = E.get("GO")
    if not go:
        print("SKIPPED: the AWS SDK for Go v2 (GO not set)", flush=True)
        return
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gateway_go", "main.go")
    exe = os.path.join(WORK, "gateway-go")
    env = dict(E)
    env.pop("AWS_CA_BUNDLE", None)
    env.update(GO111MODULE="off", GOPATH=E["GO_PATH"], GOFLAGS="", CGO_ENABLED="0")
    env.setdefault("GOCACHE", os.path.join(os.path.expanduser("~"), ".cache", "go-build"))
    built = subprocess.run([go, "build", "-o", exe, src], env=env, cwd=WORK,
                           capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        fail(f"go build of the Go SDK client: {(built.stdout + built.stderr).strip()[-1500:]}")
    bucket = "go" + SFX
    make_backend_bucket(bucket)
    env["GW_GO_BUCKET"] = bucket
    sdk_checks("Go SDK v2", subprocess.run([exe], env=env, capture_output=True, text=True,
                                           timeout=600))


def sdk_checks(name, run):
    """Report the `ok …` lines of an SDK client program; fail unless it passed them all."""
    lines = run.stdout.splitlines()
    for line in lines:
        if line.startswith("ok "):
            ok(f"{name}: " + line[3:].strip())
    if run.returncode != 0 or not lines:
        fail(f"{name} client: exit {run.returncode}: {(run.stdout + run.stderr).strip()[-1500:]}")


def js_suite():
    """The AWS SDK for JavaScript v3 (pinned in gateway_js/package.json, installed by
    scripts/setup-js.sh into JS_SDK): gateway_js/main.mjs runs its own checks and prints one
    line per check."""
    sdk = E.get("JS_SDK")
    if not sdk:
        print("SKIPPED: the AWS SDK for JavaScript v3 (JS_SDK not set: scripts/setup-js.sh, node 20 or later)", flush=True)
        return
    here = os.path.join(WORK, "js")
    os.makedirs(here, exist_ok=True)
    # ES modules resolve packages from the script's folder up: run a copy beside the SDK.
    script = os.path.join(here, "main.mjs")
    shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "gateway_js", "main.mjs"), script)
    link = os.path.join(here, "node_modules")
    if not os.path.lexists(link):
        os.symlink(os.path.join(sdk, "node_modules"), link)
    bucket = "js" + SFX
    make_backend_bucket(bucket)
    env = dict(E)
    env.pop("AWS_CA_BUNDLE", None)
    env.update(GW_JS_BUCKET=bucket, NODE_NO_WARNINGS="1")
    sdk_checks("JavaScript SDK v3", subprocess.run(["node", script], env=env, cwd=here,
                                                   capture_output=True, text=True, timeout=600))


def request_id_suite():
    """Every answer carries x-amz-request-id (SDKs report it with an error); ids differ."""
    s3 = client()
    b = "boto" + SFX
    ids = [s3.list_objects_v2(Bucket=b, MaxKeys=1)["ResponseMetadata"].get("RequestId")
           for _ in range(2)]
    try:
        s3.get_object(Bucket=b, Key="no/such/key")
        fail("a missing key was found")
    except ClientError as e:
        ids.append(e.response["ResponseMetadata"].get("RequestId"))
    check(all(i and len(i) == 16 and all(c in "0123456789ABCDEF" for c in i) for i in ids)
          and len(set(ids)) == 3, f"x-amz-request-id on answers and errors: {ids}")
    # The error document carries the same id, as S3's (`<RequestId>`).
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "no/such/key"},
                                    ExpiresIn=600)
    try:
        urllib.request.urlopen(url, timeout=30)
        fail("a missing key was found")
    except urllib.error.HTTPError as e:
        code, text, rid = e.code, e.read().decode(), e.headers.get("x-amz-request-id")
    check(code == 404 and f"<RequestId>{rid}</RequestId></Error>" in text
          and "<Code>NoSuchKey</Code>" in text,
          f"the error body carries the answer's request id ({text[-90:]})")
    # Objects report their encryption at rest as S3's default does.
    put = s3.put_object(Bucket=b, Key="sse/x", Body=b"x")
    head = s3.head_object(Bucket=b, Key="sse/x")
    got = s3.get_object(Bucket=b, Key="sse/x")
    got["Body"].read()
    check([r.get("ServerSideEncryption") for r in (put, head, got)] == ["AES256"] * 3,
          "PUT, HEAD and GET report ServerSideEncryption AES256")
    s3.delete_object(Bucket=b, Key="sse/x")


def versions_suite():
    """ListObjectVersions of an unversioned bucket: each object once, version `null`,
    latest; pages by key marker; what Terraform's force_destroy and the Ceph s3-tests do
    to empty a bucket (list versions, delete each with VersionId null) works."""
    s3 = client()
    b = "boto" + SFX
    keys = [f"ver/{i:03d}" for i in range(7)] + ["ver/d/x", "ver/d/y"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    seen, pages, kw = [], 0, {"Bucket": b, "Prefix": "ver/", "MaxKeys": 3}
    while True:
        r = s3.list_object_versions(**kw)
        pages += 1
        seen += r.get("Versions", [])
        if not r["IsTruncated"]:
            break
        kw.update(KeyMarker=r["NextKeyMarker"], VersionIdMarker=r["NextVersionIdMarker"])
    check([v["Key"] for v in seen] == keys and pages == 3
          and all(v["VersionId"] == "null" and v["IsLatest"] for v in seen)
          and all(v["Size"] == len(v["Key"]) for v in seen)
          and all(v["ETag"].strip('"') == hashlib.md5(v["Key"].encode()).hexdigest() for v in seen),
          "list_object_versions: every object once, version null, latest, in pages of 3")
    r = s3.list_object_versions(Bucket=b, Prefix="ver/", Delimiter="/")
    check([p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["ver/d/"]
          and len(r.get("Versions", [])) == 7 and not r.get("DeleteMarkers"),
          "list_object_versions with a delimiter")
    check(error_code(lambda: s3.list_object_versions(Bucket=b, VersionIdMarker="null"))
          == "InvalidArgument", "a version-id marker without a key marker: InvalidArgument")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=b, Prefix="ver/"):
        objs = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        if objs:
            d = s3.delete_objects(Bucket=b, Delete={"Objects": objs, "Quiet": True})
            check(not d.get("Errors"), "delete_objects of listed versions (VersionId null)")
    check(not s3.list_objects_v2(Bucket=b, Prefix="ver/").get("Contents"),
          "the bucket's versions deleted: nothing left under the prefix")


def delete_bucket_suite():
    """DeleteBucket on a local folder: refused while an object is left (BucketNotEmpty);
    an upload in progress does not keep the bucket (S3 aborts it with the bucket)."""
    if E.get("GW_BACKEND_ENDPOINT"):
        return  # an S3 backend's buckets are its operator's
    s3 = client()
    b = "gone" + SFX
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="a/b/c", Body=b"x")
    uid = s3.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    s3.upload_part(Bucket=b, Key="mp", UploadId=uid, PartNumber=1, Body=b"y" * 100)
    check(error_code(lambda: s3.delete_bucket(Bucket=b)) == "BucketNotEmpty",
          "delete_bucket with an object left: BucketNotEmpty")
    s3.delete_object(Bucket=b, Key="a/b/c")
    s3.delete_bucket(Bucket=b)
    check(error_code(lambda: s3.head_bucket(Bucket=b)) in ("404", "NoSuchBucket"),
          "delete_bucket with only an upload in progress: the bucket and the upload are gone")
    s3.create_bucket(Bucket=b)
    check(not s3.list_multipart_uploads(Bucket=b).get("Uploads"),
          "the same bucket created again has no uploads")
    s3.delete_bucket(Bucket=b)


def pyarrow_suite():
    """pyarrow's S3 file system, i.e. the AWS SDK for C++: its UploadPart bodies are
    aws-chunked with a CRC64NVME trailer, sent with `Transfer-Encoding: chunked` and no
    Content-Length (only `x-amz-decoded-content-length`); its reads are ranged GETs."""
    try:
        import pyarrow as pa
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq
    except ImportError:
        print("SKIPPED: pyarrow (not in this venv: scripts/setup-python.sh)", flush=True)
        return
    b = "boto" + SFX
    fs = pafs.S3FileSystem(access_key=E["GW_KEY"], secret_key=E["GW_SECRET"],
                           endpoint_override=ENDPOINT, scheme="http", region="us-east-1",
                           allow_bucket_creation=False, allow_bucket_deletion=False)
    n = 1_000_000
    table = pa.table({"i": pa.array(range(n), pa.int64()),
                      "s": pa.array([f"row-{i:07d}" for i in range(n)])})
    pq.write_table(table, f"{b}/arrow/t.parquet", filesystem=fs, compression="none")
    size = fs.get_file_info(f"{b}/arrow/t.parquet").size
    check(pq.read_table(f"{b}/arrow/t.parquet", filesystem=fs).equals(table),
          f"pyarrow (AWS SDK for C++): parquet of {size} bytes written (multipart, chunked "
          "bodies without Content-Length) and read back")
    data = big_body(6 * 1024 * 1024 + 17, 1234)
    with fs.open_output_stream(f"{b}/arrow/raw.bin") as f:
        for _ in range(3):
            f.write(data)
    with fs.open_input_file(f"{b}/arrow/raw.bin") as f:
        f.seek(len(data) - 5)
        at_seam = f.read(10)
        f.seek(0)
        whole = f.read()
    check(at_seam == data[-5:] + data[:5] and whole == data * 3,
          "pyarrow output stream (multipart) and random-access reads")
    small = body(3000, 4321)
    with fs.open_output_stream(f"{b}/arrow/small.bin") as f:
        f.write(small)
    with fs.open_input_stream(f"{b}/arrow/small.bin") as f:
        check(f.read() == small, "pyarrow small file (one PutObject) round trip")
    listed = fs.get_file_info(pafs.FileSelector(f"{b}/arrow", recursive=True))
    check(sorted(i.path for i in listed)
          == [f"{b}/arrow/raw.bin", f"{b}/arrow/small.bin", f"{b}/arrow/t.parquet"]
          and {i.size for i in listed} == {size, 3 * len(data), len(small)},
          "pyarrow listing: keys and plaintext sizes")
    for i in listed:
        fs.delete_file(i.path)


def backend_reads():
    """The gateway's count of read requests to its backend, by kind (from /metrics)."""
    text = urllib.request.urlopen(ENDPOINT + "/metrics", timeout=30).read().decode()
    out = {}
    for line in text.splitlines():
        for kind in ("get", "head"):
            if line.startswith('hyok_gateway_backend_reads_total{kind="%s"} ' % kind):
                out[kind] = int(line.split()[-1])
    if set(out) != {"get", "head"}:
        fail("/metrics has no hyok_gateway_backend_reads_total")
    return out


def request_count_suite():
    """Backend requests per client request, from the gateway's metrics (nothing else runs
    meanwhile): a small GET is one backend GET, whatever its range or condition; a HEAD is
    one GET of the header; a range of a large object past its first frame is two."""
    s3 = client()
    b = "boto" + SFX
    small = body(4096, 4242)
    large = big_body(3 * 1024 * 1024 + 123, 4343)
    s3.put_object(Bucket=b, Key="count/small", Body=small)
    s3.put_object(Bucket=b, Key="count/large", Body=large)

    def cost(call):
        before = backend_reads()
        r = call()
        after = backend_reads()
        return r, (after["get"] - before["get"], after["head"] - before["head"])

    def code_of(call):
        try:
            call()
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"]
        return 200

    got, c = cost(lambda: s3.get_object(Bucket=b, Key="count/small")["Body"].read())
    check(got == small and c == (1, 0), f"a 4 KiB GET: one backend GET, no HEAD (gets, heads: {c})")
    got, c = cost(lambda: s3.get_object(Bucket=b, Key="count/small",
                                        Range="bytes=1000-2999")["Body"].read())
    check(got == small[1000:3000] and c == (1, 0), f"a ranged 4 KiB GET: one backend GET ({c})")
    got, c = cost(lambda: s3.get_object(Bucket=b, Key="count/small",
                                        Range="bytes=-100")["Body"].read())
    check(got == small[-100:] and c == (1, 0), f"a suffix range: one backend GET ({c})")
    h, c = cost(lambda: s3.head_object(Bucket=b, Key="count/small"))
    check(h["ContentLength"] == 4096 and c == (1, 0), f"a HEAD: one backend GET of the header ({c})")
    status, c = cost(lambda: code_of(lambda: s3.get_object(Bucket=b, Key="count/small",
                                                           IfNoneMatch=h["ETag"])))
    check(status == 304 and c == (1, 0), f"If-None-Match: 304 after one backend GET ({c})")
    got, c = cost(lambda: s3.get_object(Bucket=b, Key="count/large",
                                        Range="bytes=2500000-2600000")["Body"].read())
    check(got == large[2500000:2600001] and c == (2, 0),
          f"a range of a 3 MiB object past its first frame: header GET + frames GET ({c})")
    got, c = cost(lambda: s3.get_object(Bucket=b, Key="count/large")["Body"].read())
    check(got == large and c == (2, 0),
          f"a whole 3 MiB object: its first MiB, then the rest in one 8 MiB part ({c})")

    def listing():
        return {o["Key"]: (o["ETag"], o["Size"])
                for o in s3.list_objects_v2(Bucket=b, Prefix="count/")["Contents"]}

    # A description is reused while the backend's listing shows the same entity tag and
    # size; a backend whose listings carry no entity tags (s3s-fs) is read every time.
    be = E.get("GW_BACKEND_ENDPOINT")
    tagged = True
    if be:
        raw = boto3.client("s3", endpoint_url=be, region_name="us-east-1",
                           config=Config(s3={"addressing_style": "path"}))
        listed = raw.list_objects_v2(Bucket=b, Prefix="count/").get("Contents", [])
        tagged = bool(listed) and all(o.get("ETag") for o in listed)
    first, c = cost(listing)
    check(c[0] <= 2, f"a listing of two objects: at most one header GET each ({c})")
    again, c = cost(listing)
    check(again == first and c == ((0, 0) if tagged else (2, 0)),
          f"the same listing again: the same ETags and sizes, "
          f"{'no backend read' if tagged else 'headers read again (no tags listed)'} ({c})")
    other = body(5000, 4444)
    s3.put_object(Bucket=b, Key="count/small", Body=other)
    changed, c = cost(listing)
    check(changed["count/small"] == ('"%s"' % hashlib.md5(other).hexdigest(), 5000)
          and changed["count/large"] == first["count/large"]
          and c == ((1, 0) if tagged else (2, 0)),
          f"after a PUT: the new object is read again ({c})")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "count/small"}, {"Key": "count/large"}]})


def slow_readers_suite():
    """Clients that stop reading their downloads hold none of the backend parts-in-flight
    cap the gateway's requests share: nine such downloads of a whole object (the cap is 8)
    leave another client's ranged GET answered at once. Before, each held a place while
    it waited, and the ninth client's GET waited until one of them went on reading."""
    b = "boto" + SFX
    s3 = client(max_pool_connections=16, read_timeout=20)
    n = 48 * 1024 * 1024
    data = big_body(n, 77)
    s3.put_object(Bucket=b, Key="slow/readers", Body=data)
    stalled = [s3.get_object(Bucket=b, Key="slow/readers")["Body"] for _ in range(9)]
    t0 = time.time()
    try:
        got = s3.get_object(Bucket=b, Key="slow/readers",
                            Range="bytes=41943040-41943139")["Body"].read()
        answered = got == data[41943040:41943140]
    except Exception as e:  # a read timeout: the GET waited for a place
        answered = False
        print(f"  the ranged GET failed: {e}")
    took = time.time() - t0
    for body_ in stalled:
        body_.close()
    check(answered, f"9 stalled downloads leave a ranged GET answered ({took:.1f} s)")
    s3.delete_object(Bucket=b, Key="slow/readers")


def error_code(call):
    """The S3 error code `call` fails with (None when it succeeds)."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def closed_within(sock, seconds):
    """Read from `sock` until the gateway closes it (EOF or reset); returns the bytes read,
    or None if it was still open after `seconds`."""
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return got
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return got
    except socket.timeout:
        return None


def stall_suite():
    """[gateway] idle_timeout = 2: clients that stop half-way are cut off, the gateway goes on
    serving the others, and nothing a stalled upload sent is stored."""
    s3 = client()
    b = "stall" + SFX
    s3.create_bucket(Bucket=b)
    host, port = urllib.parse.urlsplit(ENDPOINT).hostname, urllib.parse.urlsplit(ENDPOINT).port
    # A connection that sends nothing, and one that sends its headers a byte at a time.
    idle = socket.create_connection((host, port), timeout=30)
    check(closed_within(idle, 30) == b"", "a connection that sends nothing is closed")
    # An HTTP/2 connection (prior knowledge) that opens no stream: GOAWAY, then closed.
    h2 = socket.create_connection((host, port), timeout=30)
    h2.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    t0 = time.monotonic()
    got = closed_within(h2, 30)
    types, at = [], 0
    while got is not None and at + 9 <= len(got):
        types.append(got[at + 3])
        at += 9 + int.from_bytes(got[at:at + 3], "big")
    check(got is not None and 7 in types and time.monotonic() - t0 < 20,
          f"an HTTP/2 connection with no stream open gets GOAWAY and is closed (frames {types})")
    slow = socket.create_connection((host, port), timeout=30)
    head = f"GET /{b}/x HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode()
    slow.sendall(head)
    cut = False
    for _ in range(60):
        time.sleep(0.5)
        try:
            slow.sendall(b"a")
        except OSError:
            cut = True
            break
    check(cut or closed_within(slow, 30) is not None,
          "headers sent a byte at a time: the connection is closed")
    # A PUT whose body stops: 400 RequestTimeout, nothing stored.
    data = body(100_000, 23)
    url = urllib.parse.urlsplit(s3.generate_presigned_url(
        "put_object", Params={"Bucket": b, "Key": "stalled"}, ExpiresIn=600))
    conn = socket.create_connection((host, port), timeout=30)
    conn.sendall(f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data[:5000])
    answer = closed_within(conn, 30) or b""
    check(answer.startswith(b"HTTP/1.1 400") and b"<Code>RequestTimeout</Code>" in answer,
          f"a PUT body that stops: 400 RequestTimeout ({answer[:12]!r} … {answer[-120:]!r})")
    check(error_code(lambda: s3.head_object(Bucket=b, Key="stalled")) in ("404", "NoSuchKey"),
          "nothing of the stalled PUT is stored")
    # A GET whose client stops reading: the connection is closed, the gateway goes on.
    big = body(48 << 20, 24)
    s3.put_object(Bucket=b, Key="big", Body=big)
    url = urllib.parse.urlsplit(s3.generate_presigned_url(
        "get_object", Params={"Bucket": b, "Key": "big"}, ExpiresIn=600))
    reader = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    reader.connect((host, port))
    reader.sendall(f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
                   .encode())
    first = reader.recv(1024)
    time.sleep(8)
    rest = closed_within(reader, 30)
    check(first.startswith(b"HTTP/1.1 200") and rest is not None
          and len(first) + len(rest) < len(big),
          "a GET whose client stops reading is cut off "
          f"({len(first) + len(rest or b'')} of {len(big)} bytes reached it)")
    # Meanwhile and afterwards, other clients are served.
    check(s3.get_object(Bucket=b, Key="big")["Body"].read() == big,
          "the same object read by a client that keeps reading")
    s3.delete_object(Bucket=b, Key="big")


def cap_suite():
    """max_requests = 1: a PUT whose body is still arriving holds the only place, so another
    request gets SlowDown at once; when the PUT ends, requests pass again."""
    s3 = client()
    once = boto3.client(
        "s3", endpoint_url=ENDPOINT, aws_access_key_id=E["GW_KEY"],
        aws_secret_access_key=E["GW_SECRET"], region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    b = "cap" + SFX
    s3.create_bucket(Bucket=b)
    data = body(64 * 1024, 21)
    url = urllib.parse.urlsplit(s3.generate_presigned_url(
        "put_object", Params={"Bucket": b, "Key": "slow"}, ExpiresIn=600))
    # The place may still be held for a moment by the answer before (it is released once
    # that answer's body is sent): a PUT answered at once (SlowDown) is sent again.
    for _ in range(50):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        conn.putrequest("PUT", f"{url.path}?{url.query}")
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders()
        conn.send(data[:1000])
        answered, _, _ = select.select([conn.sock], [], [], 0.3)
        if not answered:
            break
        early = conn.getresponse()
        early.read()
        conn.close()
    # Until the gateway has read the slow PUT's head, the other request may still pass.
    code = None
    for _ in range(100):
        code = error_code(lambda: once.list_objects_v2(Bucket=b))
        if code == "SlowDown":
            break
        time.sleep(0.1)
    try:
        conn.send(data[1000:])
        resp = conn.getresponse()
        answer = (resp.status, resp.read()[:300])
    except OSError as e:
        answer = (None, repr(e))
    # The PUT's own answer is shown with the first check: if the other request passed, it
    # says whether the PUT had already been answered (and why).
    check(code == "SlowDown",
          f"a second request while one is in flight: SlowDown (got {code}; the slow PUT: {answer})")
    check(answer[0] == 200, f"the slow PUT itself completes ({answer})")
    got = None
    for _ in range(100):
        try:
            got = once.get_object(Bucket=b, Key="slow")["Body"].read()
            break
        except ClientError as e:
            if e.response["Error"]["Code"] != "SlowDown":
                raise
            time.sleep(0.1)
    check(got == data, "after it, requests pass again and the object reads back")


def residency_suite():
    """[residency] allow_local = false with a local-folder backend: every write is refused
    before any key use; reads and listings still answer."""
    s3 = client()
    b = "resident" + SFX
    s3.create_bucket(Bucket=b)
    code = error_code(lambda: s3.put_object(Bucket=b, Key="k", Body=body(100, 3)))
    check(code == "AccessDenied", f"PUT to a backend the residency rules refuse: AccessDenied ({code})")
    code = error_code(lambda: s3.create_multipart_upload(Bucket=b, Key="big"))
    check(code == "AccessDenied", f"multipart upload there: AccessDenied ({code})")
    listed = s3.list_objects_v2(Bucket=b).get("KeyCount")
    check(listed == 0, "nothing was stored")


def vhost_suite():
    """Virtual-hosted-style requests (`[gateway] virtual_host_domains = ["gw.test"]`), as
    the Go and Java SDKs send by default: boto3 with addressing_style "virtual" at
    http://gw.test:PORT, the names resolved to the gateway's address as wildcard DNS would."""
    real = socket.getaddrinfo

    def resolve(host, *args, **kw):
        if isinstance(host, str) and (host == "gw.test" or host.endswith(".gw.test")):
            host = "127.0.0.1"
        return real(host, *args, **kw)

    socket.getaddrinfo = resolve
    port = urllib.parse.urlsplit(ENDPOINT).port
    endpoint = f"http://gw.test:{port}"
    v = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=E["GW_KEY"],
                     aws_secret_access_key=E["GW_SECRET"], region_name="us-east-1",
                     config=Config(s3={"addressing_style": "virtual"},
                                   retries={"max_attempts": 2}))
    p = client()
    url = v.generate_presigned_url("head_bucket", Params={"Bucket": "vhboto"})
    check(urllib.parse.urlsplit(url).hostname == "vhboto.gw.test",
          f"boto3 addresses the bucket in the host name ({urllib.parse.urlsplit(url).hostname})")
    v.create_bucket(Bucket="vhboto")
    check("vhboto" in [b["Name"] for b in p.list_buckets()["Buckets"]],
          "create_bucket, virtual-hosted: the bucket is there path-style")
    small = body(3000, 41)
    v.put_object(Bucket="vhboto", Key="small.txt", Body=small, ContentType="text/plain")
    check(p.get_object(Bucket="vhboto", Key="small.txt")["Body"].read() == small,
          "put_object, virtual-hosted: the same bytes path-style")
    big = big_body(11 << 20, 42)
    u = v.create_multipart_upload(Bucket="vhboto", Key="multi/object.bin")["UploadId"]
    parts = []
    for n, (a, b) in enumerate([(0, 5 << 20), (5 << 20, 10 << 20), (10 << 20, len(big))], 1):
        r = v.upload_part(Bucket="vhboto", Key="multi/object.bin", UploadId=u, PartNumber=n,
                          Body=big[a:b])
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    v.complete_multipart_upload(Bucket="vhboto", Key="multi/object.bin", UploadId=u,
                                MultipartUpload={"Parts": parts})
    got = v.get_object(Bucket="vhboto", Key="multi/object.bin", Range="bytes=5242000-5243999")
    check(got["Body"].read() == big[5242000:5244000] and got["ContentLength"] == 2000,
          "multipart upload and ranged get, virtual-hosted")
    check(p.get_object(Bucket="vhboto", Key="multi/object.bin")["Body"].read() == big,
          "the multipart object, path-style: the same bytes")
    keys = [o["Key"] for o in v.list_objects_v2(Bucket="vhboto").get("Contents", [])]
    check(keys == ["multi/object.bin", "small.txt"], f"list_objects_v2, virtual-hosted: {keys}")
    url = v.generate_presigned_url("get_object", Params={"Bucket": "vhboto", "Key": "small.txt"})
    with urllib.request.urlopen(url, timeout=30) as r:
        check(r.read() == small, "presigned GET, virtual-hosted")
    v.delete_objects(Bucket="vhboto", Delete={"Objects": [{"Key": "small.txt"}]})
    check(v.list_objects_v2(Bucket="vhboto")["KeyCount"] == 1, "delete_objects, virtual-hosted")
    socket.getaddrinfo = real


def download_backend():
    s3 = backend()
    if s3 is None:
        return
    raw = os.path.join(WORK, "raw")
    n = 0
    for bucket in ("acli" + SFX, "boto" + SFX, "limited", "rclone-b" + SFX, "go" + SFX,
                   "js" + SFX):
        try:
            pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
        except ClientError:
            continue
        for p in pages:
            for o in p.get("Contents", []):
                data = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
                write(os.path.join(raw, bucket, o["Key"]), data)
                n += 1
    ok(f"downloaded {n} raw backend objects")


if __name__ == "__main__":
    t0 = time.time()
    if SUITE in ("cap", "residency", "vhost", "stall"):
        {"cap": cap_suite, "residency": residency_suite, "vhost": vhost_suite,
         "stall": stall_suite}[SUITE]()
        print(f"{PASSED} passed, 0 failed", flush=True)
        sys.exit(0)
    aws_cli()
    boto3_suite()
    conditional_suite()
    headers_suite()
    refusals_suite()
    foreign_suite()
    markers_suite()
    post_form_suite()
    direct_suite()
    part_etag_suite()
    versions_suite()
    request_id_suite()
    delete_bucket_suite()
    pyarrow_suite()
    request_count_suite()
    slow_readers_suite()
    if SUITE == "full":
        rclone_suite()
        s3fs_suite()
    s3cmd_suite()
    go_suite()
    js_suite()
    download_backend()
    print(f"clients took {time.time() - t0:.1f} s", flush=True)
    print(f"{PASSED} passed, 0 failed", flush=True)
