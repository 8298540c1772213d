"""Throughput and latency of hyok gateway (backend s3s-fs) against s3s-fs directly.

Run by scripts/bench-gateway.sh, which starts the gateway. Environment: GW_ENDPOINT, GW_KEY,
GW_SECRET, GW_PID (the gateway, for its peak RSS), DIRECT_ENDPOINT and AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY (s3s-fs), BENCH_MIB (large file size), BENCH_SMALL (count of 4 KiB
objects), BENCH_COMPLETE_PARTS (8 MiB parts of a timed CompleteMultipartUpload; 0: none),
BENCH_WORK (scratch folder), RCLONE (rclone binary; empty: no rclone rows), BENCH_REPEAT
(round trips of the large file per tool and configuration; 1). Prints Markdown tables.
"""

import concurrent.futures as cf
import filecmp
import os
import statistics
import subprocess
import sys
import time

import boto3
from botocore.config import Config

E = os.environ
WORK = E["BENCH_WORK"]
MIB = int(E.get("BENCH_MIB", "1024"))
SMALL = int(E.get("BENCH_SMALL", "10000"))
SUFFIX = str(os.getpid())
# Page cache filled and freed before each timed step (see settle).
SETTLE_MIB = int(E.get("BENCH_SETTLE_MIB", "2048"))
# Parts of 8 MiB of the timed CompleteMultipartUpload step (0: no such step).
COMPLETE_PARTS = int(E.get("BENCH_COMPLETE_PARTS", "0"))
# Round trips of the large file per tool and configuration, alternating direct and gateway;
# the tables give the median (and the range), the ratio is of the medians.
REPEAT = max(1, int(E.get("BENCH_REPEAT", "1")))

TARGETS = {
    "gateway": (E["GW_ENDPOINT"], E["GW_KEY"], E["GW_SECRET"]),
    "direct": (E["DIRECT_ENDPOINT"], E["AWS_ACCESS_KEY_ID"], E["AWS_SECRET_ACCESS_KEY"]),
}


def client(t):
    ep, k, s = TARGETS[t]
    return boto3.client("s3", endpoint_url=ep, aws_access_key_id=k, aws_secret_access_key=s,
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, max_pool_connections=64))


def aws(t, *args):
    ep, k, s = TARGETS[t]
    env = dict(E, AWS_ACCESS_KEY_ID=k, AWS_SECRET_ACCESS_KEY=s, AWS_DEFAULT_REGION="us-east-1")
    env.pop("AWS_ENDPOINT_URL", None)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", ep, *args], env=env,
                   check=True, capture_output=True)
    return time.time() - t0


def rclone(t, *args):
    ep, k, s = TARGETS[t]
    env = dict(E, RCLONE_CONFIG="/dev/null", RCLONE_CONFIG_T_TYPE="s3",
               RCLONE_CONFIG_T_PROVIDER="Other", RCLONE_CONFIG_T_ENDPOINT=ep,
               RCLONE_CONFIG_T_ACCESS_KEY_ID=k, RCLONE_CONFIG_T_SECRET_ACCESS_KEY=s,
               RCLONE_CONFIG_T_REGION="us-east-1", RCLONE_CONFIG_T_FORCE_PATH_STYLE="true")
    env.pop("AWS_CA_BUNDLE", None)  # rclone fails on a foreign bundle (machine quirk)
    t0 = time.time()
    subprocess.run([E["RCLONE"], *args], env=env, check=True, capture_output=True)
    return time.time() - t0


def settle():
    """As bench/run.sh does before each timed run: write back what is dirty, then fill
    SETTLE_MIB of page cache with a file deleted unwritten, so that every step writes into
    memory the kernel freed a moment ago (on this VM the host reclaims long-free pages, and
    writing into them costs several times more system time: the order of steps would decide
    the result otherwise)."""
    os.sync()
    path = os.path.join(WORK, "settle.tmp")
    chunk = bytes(1 << 20)
    with open(path, "wb") as f:
        for _ in range(SETTLE_MIB):
            f.write(chunk)
    os.remove(path)


def remove(bucket, keys):
    """Delete benchmark objects from s3s-fs (the gateway's ones are there too): disk is tight."""
    c = client("direct")
    for i in range(0, len(keys), 1000):
        c.delete_objects(Bucket=bucket,
                         Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})


def gateway_cpu_s():
    """User + system CPU seconds the gateway has used so far."""
    try:
        with open(f"/proc/{E['GW_PID']}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def complete_step(bucket):
    """Time the parts and CompleteMultipartUpload alone: COMPLETE_PARTS parts of 8 MiB (8 in
    parallel), then Complete, directly against s3s-fs and through the gateway."""
    data = os.urandom(8 << 20)
    key = "complete.bin"
    for t in ("direct", "gateway"):
        c = client(t)
        settle()
        uid = c.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        t0 = time.time()
        with cf.ThreadPoolExecutor(8) as ex:
            etags = list(ex.map(lambda i: c.upload_part(Bucket=bucket, Key=key, UploadId=uid,
                                                         PartNumber=i, Body=data)["ETag"],
                                range(1, COMPLETE_PARTS + 1)))
        t1 = time.time()
        c.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]})
        t2 = time.time()
        print(f"{COMPLETE_PARTS} x 8 MiB, {t}: parts {t1 - t0:.1f} s, "
              f"CompleteMultipartUpload {t2 - t1:.1f} s\n")
        remove(bucket, [key])


def reset_peak_rss():
    """Start the gateway's VmHWM again from its current RSS (Linux: `5` to clear_refs)."""
    try:
        with open(f"/proc/{E['GW_PID']}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    try:
        with open(f"/proc/{E['GW_PID']}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def spread(samples):
    """The median of throughput samples, with their range when there are several."""
    m = statistics.median(samples)
    if len(samples) == 1:
        return f"{m:.0f}"
    return f"{m:.0f} ({min(samples):.0f}-{max(samples):.0f})"


def large_round_trip(tool, t, bucket, big):
    """One upload and one download of the large file with `tool` against target `t`: the
    seconds each took and the gateway's CPU seconds during the upload. The copy back must
    equal the original."""
    back = os.path.join(WORK, f"{t}.back")
    if tool == "aws cli":
        name = f"{t}/big.bin"
        key = f"s3://{bucket}/{name}"
        settle()
        cpu = gateway_cpu_s()
        up = aws(t, "s3", "cp", big, key, "--only-show-errors")
        cpu = gateway_cpu_s() - cpu
        settle()
        down = aws(t, "s3", "cp", key, back, "--only-show-errors")
    else:
        name = f"{t}/rclone.bin"
        key = f"T:{bucket}/{name}"
        settle()
        cpu = gateway_cpu_s()
        up = rclone(t, "copyto", big, key)
        cpu = gateway_cpu_s() - cpu
        settle()
        down = rclone(t, "copyto", key, back)
    remove(bucket, [name])
    if not filecmp.cmp(big, back, shallow=False):
        sys.exit(f"{tool} via {t}: the downloaded file differs")
    os.remove(back)
    return up, down, cpu


def main():
    big = os.path.join(WORK, "big.bin")
    with open(big, "wb") as f:
        for _ in range(MIB):
            f.write(os.urandom(1 << 20))
    bucket = "bench-" + SUFFIX
    client("direct").create_bucket(Bucket=bucket)  # the gateway's backend bucket, too
    tools = ["aws cli"] + (["rclone"] if E.get("RCLONE") else [])
    for tool in tools:
        # Throughput samples per configuration, the two configurations alternating.
        ups = {"direct": [], "gateway": []}
        downs = {"direct": [], "gateway": []}
        gw_cpu = []
        for _ in range(REPEAT):
            for t in ("direct", "gateway"):
                up, down, cpu = large_round_trip(tool, t, bucket, big)
                ups[t].append(MIB / up)
                downs[t].append(MIB / down)
                if t == "gateway":
                    gw_cpu.append(cpu)
        med = statistics.median
        print(f"| {MIB} MiB, {tool} | up MiB/s | down MiB/s |\n| --- | ---: | ---: |")
        for t in ("direct", "gateway"):
            print(f"| {t} | {spread(ups[t])} | {spread(downs[t])} |")
        print(f"| gateway / direct | {med(ups['gateway']) / med(ups['direct']):.2f}x | "
              f"{med(downs['gateway']) / med(downs['direct']):.2f}x |\n")
        print(f"gateway CPU during the {tool} upload: {med(gw_cpu):.1f} s"
              + (f" (median of {REPEAT})" if REPEAT > 1 else "") + "\n")
        sys.stdout.flush()

    if COMPLETE_PARTS > 0:
        complete_step(bucket)
    whole_run = peak_rss_mib()
    if SMALL > 0:
        # The goal is for the peak under the 32-client load: measured from the phase's start.
        reset = reset_peak_rss()
        small_objects(bucket)
        small = peak_rss_mib()
        whole_run = max(whole_run, small)
        if reset:
            print(f"\ngateway peak RSS during the 32-client 4 KiB load: {small:.0f} MiB")
    print(f"\ngateway peak RSS over the whole run: {whole_run:.0f} MiB")
    os.remove(big)


def small_objects(bucket):
    """32 boto3 threads PUT, then GET, SMALL objects of 4 KiB, direct and through the gateway."""
    body = os.urandom(4096)
    print(f"| {SMALL} x 4 KiB, 32 clients (boto3) | PUT obj/s | PUT p50 ms | PUT p99 ms "
          f"| GET obj/s | GET p50 ms | GET p99 ms |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for t in ("direct", "gateway"):
        c = client(t)

        def timed(fn):
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1000

        res = []
        for op in ("put", "get"):
            def one(i, op=op):
                k = f"{t}/small/{i:06d}"
                if op == "put":
                    return timed(lambda: c.put_object(Bucket=bucket, Key=k, Body=body))
                return timed(lambda: c.get_object(Bucket=bucket, Key=k)["Body"].read())
            settle()
            t0 = time.time()
            with cf.ThreadPoolExecutor(32) as ex:
                lat = sorted(ex.map(one, range(SMALL)))
            wall = time.time() - t0
            res += [SMALL / wall, statistics.median(lat), lat[int(len(lat) * 0.99)]]
        print(f"| {t} | " + " | ".join(f"{x:.0f}" if i % 3 == 0 else f"{x:.1f}"
                                      for i, x in enumerate(res)) + " |")
        sys.stdout.flush()
        remove(bucket, [f"{t}/small/{i:06d}" for i in range(SMALL)])


if __name__ == "__main__":
    main()
