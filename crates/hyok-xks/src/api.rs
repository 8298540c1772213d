//! Request and response bodies of the four operations, with the specification's field
//! rules: required fields, Base64, the 2,048-character ARN limit, the 4,300-byte data
//! minimum, the 8,192-byte AAD minimum, 12/16-byte IVs, 16-byte tags, `ciphertextMetadata`
//! of at most 20 bytes. Unknown fields (future request metadata) are accepted; so are
//! unknown `kmsOperation` values.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{err, ErrorName, XksError};
use crate::framing::MAX_METADATA;

/// Longest ARN (and any other request metadata string) accepted.
pub const MAX_ARN: usize = 2048;
/// Largest plaintext or ciphertext (bytes); the specification requires 4,300.
pub const MAX_DATA: usize = 8192;
/// Largest `additionalAuthenticatedData` (bytes); the specification requires 8,192.
pub const MAX_AAD: usize = 8192;

/// `requestMetadata` (every field optional here; each operation says which it needs).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata {
    /// Principal that called KMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_principal_arn: Option<String>,
    /// VPC of the caller (VPC endpoint requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_source_vpc: Option<String>,
    /// VPC endpoint of the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_source_vpce: Option<String>,
    /// The KMS key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// The KMS API call (any value accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_operation: Option<String>,
    /// The KMS request id (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_request_id: Option<String>,
    /// AWS service that called KMS for the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_via_service: Option<String>,
}

impl RequestMetadata {
    /// Check the fields an operation requires and the length of every field.
    pub fn check(&self, principal: bool, key_arn: bool) -> Result<(), XksError> {
        let fields = [
            ("awsPrincipalArn", &self.aws_principal_arn, principal),
            ("awsSourceVpc", &self.aws_source_vpc, false),
            ("awsSourceVpce", &self.aws_source_vpce, false),
            ("kmsKeyArn", &self.kms_key_arn, key_arn),
            ("kmsOperation", &self.kms_operation, true),
            ("kmsRequestId", &self.kms_request_id, true),
            ("kmsViaService", &self.kms_via_service, false),
        ];
        for (name, value, required) in fields {
            match value {
                None if required => {
                    return Err(err(
                        ErrorName::Validation,
                        format!("requestMetadata.{name} is required"),
                    ))
                }
                Some(v) if v.len() > MAX_ARN => {
                    return Err(err(
                        ErrorName::Validation,
                        format!("requestMetadata.{name} is longer than {MAX_ARN} characters"),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// One line for logs and audit records (values escaped, each cut to 256 characters).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let fields = [
            ("kmsRequestId", &self.kms_request_id),
            ("kmsOperation", &self.kms_operation),
            ("awsPrincipalArn", &self.aws_principal_arn),
            ("kmsKeyArn", &self.kms_key_arn),
            ("kmsViaService", &self.kms_via_service),
            ("awsSourceVpc", &self.aws_source_vpc),
            ("awsSourceVpce", &self.aws_source_vpce),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(name);
                out.push('=');
                out.push_str(&hyok::text::escape_str(&crate::error::printable(v, 256)));
            }
        }
        out
    }
}

/// Body of GetKeyMetadata and GetHealthStatus.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataOnly {
    /// The metadata.
    pub request_metadata: Option<RequestMetadata>,
}

/// Encrypt request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptRequest {
    /// The metadata.
    pub request_metadata: Option<RequestMetadata>,
    /// Base64 plaintext.
    pub plaintext: Option<String>,
    /// Must be `AES_GCM`.
    pub encryption_algorithm: Option<String>,
    /// Base64 AAD.
    pub additional_authenticated_data: Option<String>,
    /// `SHA_256` when a CDIV is wanted.
    pub ciphertext_data_integrity_value_algorithm: Option<String>,
}

/// Decrypt request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptRequest {
    /// The metadata.
    pub request_metadata: Option<RequestMetadata>,
    /// Base64 ciphertext.
    pub ciphertext: Option<String>,
    /// Base64 ciphertext metadata.
    pub ciphertext_metadata: Option<String>,
    /// Must be `AES_GCM`.
    pub encryption_algorithm: Option<String>,
    /// Base64 AAD.
    pub additional_authenticated_data: Option<String>,
    /// Base64 16-byte tag.
    pub authentication_tag: Option<String>,
    /// Base64 12- or 16-byte IV.
    pub initialization_vector: Option<String>,
}

/// Parse a JSON body (ValidationException when it is not the expected object).
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, XksError> {
    serde_json::from_slice(body).map_err(|e| {
        err(
            ErrorName::Validation,
            format!("the request body is not valid JSON for this operation: {e}"),
        )
    })
}

/// Decode a Base64 field, bounding its decoded size.
pub fn decode(
    field: &str,
    value: &str,
    max: usize,
    bad: ErrorName,
    too_big: ErrorName,
) -> Result<Vec<u8>, XksError> {
    if value.len() > max.div_ceil(3) * 4 {
        return Err(err(
            too_big,
            format!("{field} is larger than the {max} bytes this proxy supports"),
        ));
    }
    let bytes = B64
        .decode(value)
        .map_err(|_| err(bad, format!("{field} is not valid Base64")))?;
    // The length check above lets through up to two bytes more than `max` (Base64 rounds
    // up to whole groups of three).
    if bytes.len() > max {
        return Err(err(
            too_big,
            format!("{field} is larger than the {max} bytes this proxy supports"),
        ));
    }
    Ok(bytes)
}

/// Check `encryptionAlgorithm`.
pub fn check_algorithm(alg: Option<&str>) -> Result<(), XksError> {
    match alg {
        Some("AES_GCM") => Ok(()),
        Some(other) => Err(err(
            ErrorName::UnsupportedOperation,
            format!(
                "encryptionAlgorithm {:?} is not supported (AES_GCM only)",
                crate::error::printable(other, 64)
            ),
        )),
        None => Err(err(
            ErrorName::Validation,
            "encryptionAlgorithm is required",
        )),
    }
}

/// Encrypt answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptResponse {
    /// Base64 ciphertext.
    pub ciphertext: String,
    /// Base64 ciphertext metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertext_metadata: Option<String>,
    /// Base64 IV.
    pub initialization_vector: String,
    /// Base64 tag.
    pub authentication_tag: String,
    /// Base64 CDIV.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertext_data_integrity_value: Option<String>,
}

/// Health answer entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EkmDetail {
    /// Backend id.
    pub id: String,
    /// Backend model.
    pub model: String,
    /// ACTIVE, DEGRADED or UNAVAILABLE.
    pub health_status: &'static str,
}

/// Health answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// Proxies in the fleet (this one).
    pub xks_proxy_fleet_size: u32,
    /// Proxy vendor.
    pub xks_proxy_vendor: String,
    /// Proxy model and version.
    pub xks_proxy_model: String,
    /// Key manager vendor.
    pub ekm_vendor: String,
    /// One entry per backend (1 to 10).
    pub ekm_fleet_details: Vec<EkmDetail>,
}

/// Bounds for decrypt inputs.
pub fn check_metadata_len(m: &[u8]) -> Result<(), XksError> {
    if m.len() > MAX_METADATA {
        return Err(err(
            ErrorName::InvalidCiphertext,
            format!("ciphertextMetadata is longer than {MAX_METADATA} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(len: usize, max: usize) -> Result<Vec<u8>, XksError> {
        let value = B64.encode(vec![7u8; len]);
        decode(
            "field",
            &value,
            max,
            ErrorName::Validation,
            ErrorName::UnsupportedOperation,
        )
    }

    /// Base64 comes in groups of three bytes: a field of `max + 1` or `max + 2` bytes has
    /// as many characters as one of `max` when `max` is not a multiple of three.
    #[test]
    fn a_field_is_never_longer_than_its_bound() {
        for max in [16, MAX_DATA, MAX_AAD, MAX_METADATA] {
            assert_eq!(decoded(max, max).unwrap().len(), max);
            for over in [max + 1, max + 2, max + 3] {
                let e = decoded(over, max).unwrap_err();
                assert_eq!(
                    e.name,
                    ErrorName::UnsupportedOperation,
                    "{over} bytes, bound {max}"
                );
            }
        }
    }
}
