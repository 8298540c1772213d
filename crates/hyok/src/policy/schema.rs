//! The built-in Cedar schema: the entity types, actions and request context hyok sends to
//! the policy engine. `hyok policy schema` prints it; a `[policy] schema = "FILE"` replaces
//! it and must declare at least the same names (start from the printed one).

/// Namespace of every hyok entity type and action.
pub const NAMESPACE: &str = "Hyok";

/// The schema, in Cedar's schema syntax.
pub const BUILTIN: &str = r#"// hyok's policy schema (hyok policy schema prints this).
namespace Hyok {
  // Who asks.
  // A local user or service: [audit] identity, $HYOK_AUDIT_IDENTITY, else $USER.
  entity Identity;
  // An S3 access key id of the gateway ([[gateway.credentials]]).
  entity Credential;
  // An AWS principal calling through KMS into the XKS proxy (requestMetadata.awsPrincipalArn).
  entity Caller = {
    arn: String,
    account: String,   // the ARN's account field, "" when it has none
  };

  // What on.
  // A bucket (local folders: "(local)"); objects are members of their bucket.
  entity Bucket;
  // One object location: "s3://BUCKET/KEY" or "file:///PATH".
  entity Object in [Bucket] = {
    store: String,   // "s3" or "file"
    bucket: String,
    key: String,     // key inside the bucket (absolute path for local files)
  };
  // A configured keyring by name ("keys" when the keys were given as URIs).
  entity Keyring;
  // A key: an XKS external key id, or a key URI for key administration.
  entity Key;

  // The encryption context of a request, one tag per pair:
  // context.encryption_context.hasTag("tenant"), .getTag("tenant") == "acme".
  entity EncryptionContext tags String;

  type Request = {
    encryption_context: EncryptionContext,
    suite: String,        // "0x0478", "" when not known yet
    keyring: String,      // keyring name, "keys" for --key URIs
    region: String,       // destination region, "" when none
    endpoint: String,     // destination endpoint URL, "" when none
    via: String,          // "cli", "gateway", "xks" or "api"
    source_ip?: ipaddr,   // the client's address (servers)
    now: Long,            // seconds since 1970 (UTC)
    hour: Long,           // 0-23, UTC
    weekday: Long,        // 0 = Monday … 6 = Sunday, UTC
    break_glass: Bool,    // HYOK_BREAK_GLASS is set (the reason is in the audit record)
  };

  type XksRequest = {
    kms_key_arn: String,
    kms_operation: String,
    via_service: String,  // requestMetadata.kmsViaService, "" when absent
    vpc: String,          // awsSourceVpc
    vpc_endpoint: String, // awsSourceVpce
    source_ip?: ipaddr,
    now: Long,
    hour: Long,
    weekday: Long,
  };

  action encrypt, decrypt appliesTo {
    principal: [Identity, Credential],
    resource: [Keyring, Object],
    context: Request,
  };
  action put, get, list, delete appliesTo {
    principal: [Identity, Credential],
    resource: [Object],
    context: Request,
  };
  action "key-admin" appliesTo {
    principal: [Identity],
    resource: [Key],
    context: Request,
  };
  action "xks-encrypt", "xks-decrypt" appliesTo {
    principal: [Caller],
    resource: [Key],
    context: XksRequest,
  };
}
"#;
