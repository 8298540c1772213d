// The AWS SDK for Go v2 against `hyok gateway`: the client of the gateway issue's own
// scenario (a Go service storing blobs in S3). Built by gateway_clients.py (go_suite) from
// Debian's golang-github-aws-aws-sdk-go-v2-dev in GOPATH mode; prints one "ok   …" or
// "FAIL …" line per check and exits 1 if any failed.
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

var failures = 0

func check(cond bool, what string, err error) {
	if cond && err == nil {
		fmt.Println("ok  ", what)
		return
	}
	failures++
	if err != nil {
		fmt.Printf("FAIL %s: %v\n", what, err)
	} else {
		fmt.Println("FAIL", what)
	}
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return fmt.Sprint(err)
}

func client(endpoint, key, secret string) *s3.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
		EndpointResolverWithOptions: aws.EndpointResolverWithOptionsFunc(
			func(service, region string, options ...interface{}) (aws.Endpoint, error) {
				return aws.Endpoint{URL: endpoint, HostnameImmutable: true}, nil
			}),
		RetryMaxAttempts: 2,
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

func readAll(out *s3.GetObjectOutput, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func main() {
	endpoint, bucket := os.Getenv("GW_ENDPOINT"), os.Getenv("GW_GO_BUCKET")
	marker := os.Getenv("GW_MARKER")
	c := client(endpoint, os.Getenv("GW_KEY"), os.Getenv("GW_SECRET"))
	ctx := context.Background()

	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	check(true, "CreateBucket", err)
	small := []byte("a blob from a Go service: " + marker + "\n")
	put, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("go/small.txt"), Body: bytes.NewReader(small),
		ContentType: aws.String("text/plain"), Metadata: map[string]string{"service": "go"},
	})
	check(err == nil && aws.ToString(put.ETag) == fmt.Sprintf("%q", fmt.Sprintf("%x", md5.Sum(small))),
		"PutObject: the ETag is the plaintext's MD5", err)
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmSha256} {
		_, err = c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &bucket, Key: aws.String("go/sum-" + string(alg)), Body: bytes.NewReader(small),
			ChecksumAlgorithm: alg,
		})
		check(err == nil, "PutObject with a "+string(alg)+" checksum", err)
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("go/small.txt")})
	check(err == nil && head.ContentLength == int64(len(small)) && head.Metadata["service"] == "go" &&
		aws.ToString(head.ContentType) == "text/plain", "HeadObject: plaintext size, metadata, type", err)
	got, err := readAll(c.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &bucket, Key: aws.String("go/small.txt"), Range: aws.String("bytes=2-5"),
	}))
	check(err == nil && bytes.Equal(got, small[2:6]), "GetObject with a range", err)

	// manager.Uploader: parts of 8 MiB, five at a time, with each checksum the SDK offers
	// by default; manager.Downloader: ranged GETs of 5 MiB in parallel.
	big := make([]byte, 40<<20+12345)
	rand.New(rand.NewSource(7)).Read(big)
	for _, alg := range []types.ChecksumAlgorithm{"", types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c} {
		key := "go/big" + string(alg)
		up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 8 << 20; u.Concurrency = 5 })
		_, err = up.Upload(ctx, &s3.PutObjectInput{
			Bucket: &bucket, Key: &key, Body: bytes.NewReader(big), ChecksumAlgorithm: alg,
		})
		check(err == nil, fmt.Sprintf("manager.Uploader, 40 MiB in 8 MiB parts, checksum %q", alg), err)
		dl := manager.NewDownloader(c, func(d *manager.Downloader) { d.PartSize = 5 << 20; d.Concurrency = 5 })
		buf := manager.NewWriteAtBuffer(nil)
		n, err := dl.Download(ctx, buf, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
		check(err == nil && n == int64(len(big)) && bytes.Equal(buf.Bytes(), big),
			"manager.Downloader: byte-identical", err)
	}
	// A body that cannot seek: the uploader buffers each part.
	up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize = 5 << 20 })
	_, err = up.Upload(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: aws.String("go/stream"), Body: io.MultiReader(bytes.NewReader(big[:17<<20])),
	})
	check(err == nil, "manager.Uploader from a stream (parts of 5 MiB)", err)
	got, err = readAll(c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("go/stream")}))
	check(err == nil && bytes.Equal(got, big[:17<<20]), "and it reads back byte-identical", err)

	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &bucket, Key: aws.String("go/copy.txt"), CopySource: aws.String(bucket + "/go/small.txt"),
	})
	if err == nil {
		got, err = readAll(c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("go/copy.txt")}))
	}
	check(err == nil && bytes.Equal(got, small), "CopyObject", err)

	for i := 0; i < 25; i++ {
		_, err = c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &bucket, Key: aws.String(fmt.Sprintf("go/many/%03d", i)), Body: bytes.NewReader(small),
		})
		if err != nil {
			check(false, "PutObject go/many/…", err)
		}
	}
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{
		Bucket: &bucket, Prefix: aws.String("go/many/"), MaxKeys: 7,
	})
	var ids []types.ObjectIdentifier
	count, sizes := 0, true
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			check(false, "ListObjectsV2 page", err)
			break
		}
		count++
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
			sizes = sizes && o.Size == int64(len(small))
		}
	}
	check(len(ids) == 25 && count == 4 && sizes,
		fmt.Sprintf("ListObjectsV2Paginator: 25 keys of plaintext size in 4 pages (%d in %d)", len(ids), count), nil)
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: ids}})
	check(err == nil && len(del.Deleted) == 25, "DeleteObjects of 25 keys", err)

	presign := s3.NewPresignClient(c)
	get, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("go/small.txt")})
	if err == nil {
		var resp *http.Response
		if resp, err = http.Get(get.URL); err == nil {
			got, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			check(resp.StatusCode == 200 && bytes.Equal(got, small), "a presigned GET", nil)
		}
	}
	check(err == nil, "presigning a GET", err)

	cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String("go/aborted")})
	if err == nil {
		_, err = c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: &bucket, Key: aws.String("go/aborted"), UploadId: cr.UploadId, PartNumber: 1,
			Body: bytes.NewReader(big[:5<<20]),
		})
	}
	if err == nil {
		_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: &bucket, Key: aws.String("go/aborted"), UploadId: cr.UploadId,
		})
	}
	_, err2 := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("go/aborted")})
	check(err == nil && errorCode(err2) == "NotFound", "an aborted upload leaves nothing visible", err)

	wrong := client(endpoint, os.Getenv("GW_KEY"), "not-the-secret")
	_, err = wrong.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket})
	_, err2 = wrong.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("go/small.txt")})
	check(err != nil && errorCode(err2) == "SignatureDoesNotMatch",
		"a wrong secret: SignatureDoesNotMatch ("+errorCode(err2)+")", nil)

	if failures > 0 {
		fmt.Printf("%d checks failed\n", failures)
		os.Exit(1)
	}
}
