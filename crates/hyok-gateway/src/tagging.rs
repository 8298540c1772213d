//! GetObjectTagging: objects here carry no tags (a write's `x-amz-tagging` is accepted and
//! not stored, docs/GATEWAY.md), so an object the caller may read answers an empty tag set.
//! The aws cli v2 asks for the source's tags before every multipart copy between S3
//! locations (`aws s3 cp s3://… s3://…` of 8 MiB and more); NotImplemented failed the copy.
//! Setting tags (PutObjectTagging) still answers NotImplemented: they could not be kept.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use crate::authorize::Scope;
use crate::service::Gateway;

pub(crate) async fn get_object_tagging(
    g: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let i = &req.input;
    let caller = g.authorize_bucket(&req.credentials, &i.bucket, "get", Scope::Read(&i.key))?;
    g.decide(&caller, hyok::policy::Action::Get, &i.bucket, &i.key)?;
    crate::refuse::version(i.version_id.as_deref())?;
    // The object must exist (NoSuchKey otherwise), as on S3.
    g.object_or_404(&i.bucket, &i.key).await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: Vec::new(),
        version_id: None,
    }))
}
