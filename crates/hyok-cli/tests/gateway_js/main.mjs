// The AWS SDK for JavaScript v3 (the pinned versions of package.json, installed by
// scripts/setup-js.sh) against `hyok gateway`: run by gateway_clients.py (js_suite) with
// GW_ENDPOINT, GW_KEY, GW_SECRET, GW_JS_BUCKET and GW_MARKER; prints one "ok   …" or
// "FAIL …" line per check and exits 1 if any failed. Objects under js/keep/ stay for the
// backend check (every stored object decrypts; the marker appears nowhere).
import { S3Client, PutObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command,
  CopyObjectCommand, DeleteObjectsCommand, DeleteObjectCommand, CreateBucketCommand,
  paginateListObjectsV2, CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand,
  AbortMultipartUploadCommand, ListMultipartUploadsCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";

const [endpoint, bucket, marker] = [process.env.GW_ENDPOINT, process.env.GW_JS_BUCKET, process.env.GW_MARKER];
const cfg = { endpoint, region: "us-east-1", forcePathStyle: true,
  credentials: { accessKeyId: process.env.GW_KEY, secretAccessKey: process.env.GW_SECRET } };
const s3 = new S3Client(cfg);
let fails = 0, passes = 0;
const check = (name, ok, extra = "") => { if (ok) passes++; else fails++; console.log(`${ok ? "ok  " : "FAIL"} ${name} ${extra}`); };
const md5 = (b) => createHash("md5").update(b).digest("hex");
const body = async (r) => Buffer.from(await r.Body.transformToByteArray());
async function attempt(name, fn) { try { await fn(); } catch (e) { check(name, false, `${e.name}: ${e.message}`); } }

await attempt("create bucket", async () => { try { await s3.send(new CreateBucketCommand({ Bucket: bucket })); } catch (e) { if (e.name !== "BucketAlreadyOwnedByYou") throw e; } check("create bucket", true); });
const small = Buffer.from(`hello from the JS SDK v3, ${marker}\n`);
await attempt("put small", async () => {
  const r = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "js/small.txt", Body: small, ContentType: "text/plain", Metadata: { team: "blue" } }));
  check("put small: ETag = MD5", r.ETag === `"${md5(small)}"`, r.ETag);
});
for (const alg of ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]) {
  await attempt(`put ${alg}`, async () => {
    const b = randomBytes(100000);
    const r = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `js/alg-${alg}`, Body: b, ChecksumAlgorithm: alg }));
    const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `js/alg-${alg}` })));
    check(`put ${alg}`, r.ETag === `"${md5(b)}"` && g.equals(b), r.ETag);
  });
}
await attempt("put stream (unknown length via Upload)", async () => {
  const b = randomBytes(3 << 20);
  const up = new Upload({ client: s3, params: { Bucket: bucket, Key: "js/stream-small", Body: Readable.from([b.subarray(0, 1 << 20), b.subarray(1 << 20)]) } });
  await up.done();
  const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/stream-small" })));
  check("Upload of a 3 MiB stream", g.equals(b));
});
await attempt("head", async () => {
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "js/small.txt" }));
  check("head: size, type, metadata", h.ContentLength === small.length && h.ContentType === "text/plain" && h.Metadata.team === "blue", JSON.stringify([h.ContentLength, h.ContentType, h.Metadata]));
});
await attempt("get whole + checksum mode", async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/small.txt", ChecksumMode: "ENABLED" }));
  check("get whole", (await body(r)).equals(small));
});
await attempt("get range", async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/small.txt", Range: "bytes=6-9" }));
  const b = await body(r);
  check("get range", b.toString() === "from" && r.ContentRange === `bytes 6-9/${small.length}`, `${b} ${r.ContentRange}`);
});
const big = randomBytes(30 << 20);
big.write(marker, 17 << 20);
for (const [ps, q] of [[5 << 20, 4], [8 << 20, 6]]) {
  await attempt(`Upload ${ps >> 20} MiB parts`, async () => {
    const up = new Upload({ client: s3, params: { Bucket: bucket, Key: `js/big-${ps >> 20}`, Body: Readable.from((function* () { for (let i = 0; i < big.length; i += 1 << 20) yield big.subarray(i, i + (1 << 20)); })()) }, partSize: ps, queueSize: q });
    const r = await up.done();
    const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `js/big-${ps >> 20}` })));
    check(`Upload of 30 MiB in ${ps >> 20} MiB parts, ${q} at a time`, g.equals(big), r.ETag);
  });
}
await attempt("Upload from a buffer", async () => {
  const up = new Upload({ client: s3, params: { Bucket: bucket, Key: "js/big-buf", Body: big, ChecksumAlgorithm: "CRC32C" }, partSize: 6 << 20, queueSize: 3 });
  await up.done();
  const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/big-buf" })));
  check("Upload of a 30 MiB buffer, 6 MiB parts, CRC32C", g.equals(big));
});
await attempt("ranged read of big", async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/big-5", Range: "bytes=12345678-23456788" }));
  check("range in the middle of a multipart object", (await body(r)).equals(big.subarray(12345678, 23456789)));
});
await attempt("manual multipart out of order + abort", async () => {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: "js/manual" }));
  const parts = [big.subarray(0, 5 << 20), big.subarray(5 << 20, 10 << 20), big.subarray(10 << 20, 11 << 20)];
  const res = await Promise.all([3, 1, 2].map((n) => s3.send(new UploadPartCommand({ Bucket: bucket, Key: "js/manual", UploadId, PartNumber: n, Body: parts[n - 1] })).then((r) => ({ PartNumber: n, ETag: r.ETag }))));
  res.sort((a, b) => a.PartNumber - b.PartNumber);
  const c = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: "js/manual", UploadId, MultipartUpload: { Parts: res } }));
  const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/manual" })));
  check("parts out of order in parallel", g.equals(big.subarray(0, 11 << 20)) && /-3"$/.test(c.ETag), c.ETag);
  const a = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: "js/aborted" }));
  await s3.send(new UploadPartCommand({ Bucket: bucket, Key: "js/aborted", UploadId: a.UploadId, PartNumber: 1, Body: parts[0] }));
  const l = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: "js/aborted", UploadId: a.UploadId }));
  let gone = false; try { await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "js/aborted" })); } catch (e) { gone = e.name === "NotFound"; }
  check("aborted upload listed, then nothing visible", gone && (l.Uploads || []).some((u) => u.UploadId === a.UploadId));
});
await attempt("conditional put", async () => {
  let e1 = null; try { await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "js/small.txt", Body: "x", IfNoneMatch: "*" })); } catch (e) { e1 = e; }
  check("If-None-Match * on an existing key -> PreconditionFailed", e1 && e1.$metadata.httpStatusCode === 412, e1 && e1.name);
});
await attempt("copy", async () => {
  const r = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: "js/copy.txt", CopySource: `${bucket}/js/small.txt` }));
  const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/copy.txt" })));
  check("copy", g.equals(small) && r.CopyObjectResult.ETag === `"${md5(small)}"`);
});
await attempt("list pagination", async () => {
  await Promise.all(Array.from({ length: 25 }, (_, i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `js/list/k${String(i).padStart(3, "0")}`, Body: `v${i}` }))));
  const keys = []; let pages = 0;
  for await (const p of paginateListObjectsV2({ client: s3, pageSize: 7 }, { Bucket: bucket, Prefix: "js/list/" })) { pages++; for (const o of p.Contents || []) keys.push(o); }
  check("ListObjectsV2 paginator (25 keys, pages of 7)", keys.length === 25 && pages === 4 && keys[3].Size === 2, `${keys.length} keys, ${pages} pages`);
  const d = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "js/", Delimiter: "/" }));
  check("delimiter", (d.CommonPrefixes || []).some((p) => p.Prefix === "js/list/"));
});
await attempt("presigned get", async () => {
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: bucket, Key: "js/small.txt" }), { expiresIn: 300 });
  const r = await fetch(url); const b = Buffer.from(await r.arrayBuffer());
  check("presigned GET", r.status === 200 && b.equals(small));
  const purl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: "js/presigned-put" }), { expiresIn: 300 });
  const p = await fetch(purl, { method: "PUT", body: small });
  const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/presigned-put" })));
  check("presigned PUT", p.status === 200 && g.equals(small), `${p.status}`);
});
await attempt("wrong secret", async () => {
  const bad = new S3Client({ ...cfg, credentials: { accessKeyId: process.env.GW_KEY, secretAccessKey: "not-the-secret" } });
  let e1 = null; try { await bad.send(new GetObjectCommand({ Bucket: bucket, Key: "js/small.txt" })); } catch (e) { e1 = e; }
  check("wrong secret -> SignatureDoesNotMatch", e1 && e1.name === "SignatureDoesNotMatch", e1 && e1.name);
});
await attempt("missing key", async () => {
  let e1 = null; try { await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/nope" })); } catch (e) { e1 = e; }
  check("missing key -> NoSuchKey", e1 && e1.name === "NoSuchKey", e1 && e1.name);
});
await attempt("kept objects", async () => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "js/keep/small.txt", Body: small }));
  await new Upload({ client: s3, params: { Bucket: bucket, Key: "js/keep/big", Body: big }, partSize: 5 << 20, queueSize: 4 }).done();
  const g = await body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: "js/keep/big" })));
  check("objects kept for the backend check", g.equals(big));
});
await attempt("delete", async () => {
  const all = []; for await (const p of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: "js/" })) for (const o of p.Contents || []) if (!o.Key.startsWith("js/keep/")) all.push({ Key: o.Key });
  const r = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: all } }));
  const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "js/" }));
  const left = (l.Contents || []).map((o) => o.Key).join(",");
  check("DeleteObjects of all but js/keep/", (r.Deleted || []).length === all.length && left === "js/keep/big,js/keep/small.txt", `${all.length} deleted; left ${left}`);
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: "js/none" }));
  check("DeleteObject of a missing key", true);
});
console.log(`${passes} passed, ${fails} failed`);
process.exit(fails ? 1 : 0);
