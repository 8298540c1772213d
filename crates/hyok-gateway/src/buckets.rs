//! The bucket operations: ListBuckets, CreateBucket, HeadBucket, GetBucketLocation,
//! DeleteBucket (what a credential may do to a whole bucket is in `authorize.rs`).

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::access::Patterns;
use crate::authorize::Scope;
use crate::service::{ts, Gateway};

type Answer<T> = S3Result<S3Response<T>>;

/// The buckets the caller's patterns reach.
pub(crate) async fn list(
    g: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> Answer<ListBucketsOutput> {
    let caller = g.caller(&req.credentials)?;
    let candidates: Vec<String> = caller
        .patterns
        .iter()
        .filter_map(|p| p.literal_bucket().map(str::to_owned))
        .collect();
    let buckets = g
        .backend
        .buckets(&candidates)
        .await?
        .into_iter()
        .filter(|(b, _)| caller.patterns.touches_bucket(b))
        .map(|(name, t)| Bucket {
            name: Some(name),
            creation_date: Some(ts(t)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        ..Default::default()
    }))
}

pub(crate) async fn create(
    g: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> Answer<CreateBucketOutput> {
    let b = &req.input.bucket;
    g.authorize_bucket(&req.credentials, b, "create bucket", Scope::WholeBucket)?;
    g.backend.create_bucket(b).await?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{b}")),
    }))
}

/// Authorized for any key of the bucket, and it exists.
async fn existing(
    g: &Gateway,
    creds: &Option<s3s::auth::Credentials>,
    b: &str,
    what: &str,
) -> S3Result<()> {
    g.authorize_bucket(creds, b, what, Scope::AnyKey)?;
    g.backend.require_bucket(b).await
}

pub(crate) async fn head(g: &Gateway, req: S3Request<HeadBucketInput>) -> Answer<HeadBucketOutput> {
    existing(g, &req.credentials, &req.input.bucket, "head bucket").await?;
    Ok(S3Response::new(HeadBucketOutput::default()))
}

pub(crate) async fn location(
    g: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> Answer<GetBucketLocationOutput> {
    existing(g, &req.credentials, &req.input.bucket, "bucket location").await?;
    Ok(S3Response::new(GetBucketLocationOutput::default()))
}

/// Buckets here are unversioned and never were: no status, as S3 answers for a bucket whose
/// versioning was never enabled (tools that check it before writing, such as backup
/// software, then go on).
pub(crate) async fn versioning(
    g: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> Answer<GetBucketVersioningOutput> {
    existing(g, &req.credentials, &req.input.bucket, "bucket versioning").await?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}

/// Delete an empty bucket.
pub(crate) async fn delete(
    g: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> Answer<DeleteBucketOutput> {
    let b = &req.input.bucket;
    g.authorize_bucket(&req.credentials, b, "delete bucket", Scope::WholeBucket)?;
    g.backend.require_bucket(b).await?;
    g.backend.delete_bucket(b).await?;
    Ok(S3Response::new(DeleteBucketOutput::default()))
}
