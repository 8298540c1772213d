//! Per-key allow-lists over the request metadata (the specification's optional secondary
//! authorization): `awsPrincipalArn`, `kmsKeyArn`, `kmsViaService`, `awsSourceVpc`,
//! `awsSourceVpce`. A list that is set must match the field (exactly, or by prefix for an
//! entry ending in `*`); a request without the field is refused. `kmsKeyArn` is not checked
//! for GetKeyMetadata requests that carry none (KMS CreateKey runs before the key exists).

use crate::api::RequestMetadata;

/// The allow-lists of one key (`None`: anything).
#[derive(Clone, Debug, Default)]
pub struct AllowLists {
    /// `awsPrincipalArn` values.
    pub aws_principal_arn: Option<Vec<String>>,
    /// `kmsKeyArn` values.
    pub kms_key_arn: Option<Vec<String>>,
    /// `kmsViaService` values.
    pub kms_via_service: Option<Vec<String>>,
    /// `awsSourceVpc` values.
    pub aws_source_vpc: Option<Vec<String>>,
    /// `awsSourceVpce` values.
    pub aws_source_vpce: Option<Vec<String>>,
}

fn matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn check(list: &Option<Vec<String>>, field: &str, value: Option<&str>) -> Result<(), String> {
    let Some(list) = list else { return Ok(()) };
    match value {
        Some(v) if list.iter().any(|p| matches(p, v)) => Ok(()),
        Some(_) => Err(format!("{field} is not in the key's allow-list")),
        None => Err(format!(
            "the request has no {field} and the key has an allow-list for it"
        )),
    }
}

impl AllowLists {
    /// Whether the request may use the key; the rule that refused it otherwise.
    pub fn permits(&self, m: &RequestMetadata, is_metadata: bool) -> Result<(), String> {
        check(
            &self.aws_principal_arn,
            "awsPrincipalArn",
            m.aws_principal_arn.as_deref(),
        )?;
        if !(is_metadata && m.kms_key_arn.is_none()) {
            check(&self.kms_key_arn, "kmsKeyArn", m.kms_key_arn.as_deref())?;
        }
        check(
            &self.kms_via_service,
            "kmsViaService",
            m.kms_via_service.as_deref(),
        )?;
        check(
            &self.aws_source_vpc,
            "awsSourceVpc",
            m.aws_source_vpc.as_deref(),
        )?;
        check(
            &self.aws_source_vpce,
            "awsSourceVpce",
            m.aws_source_vpce.as_deref(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(principal: &str, via: Option<&str>) -> RequestMetadata {
        RequestMetadata {
            aws_principal_arn: Some(principal.into()),
            kms_via_service: via.map(str::to_owned),
            ..RequestMetadata::default()
        }
    }

    #[test]
    fn lists_match_exactly_or_by_prefix() {
        let a = AllowLists {
            aws_principal_arn: Some(vec![
                "arn:aws:iam::111122223333:role/app-*".into(),
                "arn:aws:iam::111122223333:user/Alice".into(),
            ]),
            kms_via_service: Some(vec!["s3.us-east-1.amazonaws.com".into()]),
            ..AllowLists::default()
        };
        let s3 = Some("s3.us-east-1.amazonaws.com");
        assert!(a
            .permits(&meta("arn:aws:iam::111122223333:role/app-7", s3), false)
            .is_ok());
        assert!(a
            .permits(&meta("arn:aws:iam::111122223333:user/Alice", s3), false)
            .is_ok());
        assert!(a
            .permits(&meta("arn:aws:iam::111122223333:user/Alicia", s3), false)
            .is_err());
        assert!(a
            .permits(&meta("arn:aws:iam::111122223333:user/Alice", None), false)
            .is_err());
        assert!(AllowLists::default()
            .permits(&meta("x", None), false)
            .is_ok());
    }

    #[test]
    fn metadata_requests_need_no_key_arn() {
        let a = AllowLists {
            kms_key_arn: Some(vec!["arn:aws:kms:us-east-1:111122223333:key/k".into()]),
            ..AllowLists::default()
        };
        assert!(a.permits(&meta("p", None), true).is_ok());
        assert!(a.permits(&meta("p", None), false).is_err());
    }
}
