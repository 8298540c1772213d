//! Test settings shared by the unit tests that talk to the S3 test server (s3s-fs).

/// The test bucket, when the S3 test server's settings are in the environment. Without them
/// the calling test is skipped (a `SKIPPED:` line), unless `HYOK_REQUIRE_SERVICES=1`, which
/// makes a missing service a failure.
pub(crate) fn s3_bucket(test: &str) -> Option<String> {
    match (
        std::env::var("AWS_ENDPOINT_URL"),
        std::env::var("HYOK_TEST_S3_BUCKET"),
    ) {
        (Ok(_), Ok(bucket)) => Some(bucket),
        _ => {
            if std::env::var("HYOK_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
                panic!("{test}: AWS_ENDPOINT_URL / HYOK_TEST_S3_BUCKET required");
            }
            eprintln!("SKIPPED: hyok-store {test}: AWS_ENDPOINT_URL / HYOK_TEST_S3_BUCKET not set");
            None
        }
    }
}

/// A runtime and a fresh folder `s3://BUCKET/store-NAME-NANOS/` of the test bucket for one
/// test (skipped as [`s3_bucket`] says).
pub(crate) fn s3_scratch(test: &str, name: &str) -> Option<(tokio::runtime::Runtime, String)> {
    let bucket = s3_bucket(test)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let rt = tokio::runtime::Runtime::new().unwrap();
    Some((rt, format!("s3://{bucket}/store-{name}-{nanos}/")))
}
