//! One question to the policy engine, in hyok's terms (who, what, on what, in which
//! circumstances), and its translation into a Cedar request and the entities it refers to.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{Context, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};

use crate::{Error, Result};

/// Who asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A local user or service (`Hyok::Identity`).
    Identity(String),
    /// An S3 access key id of the gateway (`Hyok::Credential`).
    Credential(String),
    /// An AWS principal ARN calling the XKS proxy (`Hyok::Caller`).
    Caller(String),
}

/// What is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Encrypt a message (a key store makes or wraps a data key).
    Encrypt,
    /// Decrypt a message (a key store unwraps its data key).
    Decrypt,
    /// Write an object.
    Put,
    /// Read an object.
    Get,
    /// List objects under a prefix.
    List,
    /// Delete an object.
    Delete,
    /// Create, rotate or destroy a key.
    KeyAdmin,
    /// XKS proxy: encrypt with an external key.
    XksEncrypt,
    /// XKS proxy: decrypt with an external key.
    XksDecrypt,
}

impl Action {
    /// Every action, in schema order.
    pub const ALL: [Self; 9] = [
        Self::Encrypt,
        Self::Decrypt,
        Self::Put,
        Self::Get,
        Self::List,
        Self::Delete,
        Self::KeyAdmin,
        Self::XksEncrypt,
        Self::XksDecrypt,
    ];

    /// The action's id in the schema (`Hyok::Action::"ID"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Encrypt => "encrypt",
            Self::Decrypt => "decrypt",
            Self::Put => "put",
            Self::Get => "get",
            Self::List => "list",
            Self::Delete => "delete",
            Self::KeyAdmin => "key-admin",
            Self::XksEncrypt => "xks-encrypt",
            Self::XksDecrypt => "xks-decrypt",
        }
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|a| a.as_str()).collect();
                format!("unknown action {s:?} (one of {})", names.join(", "))
            })
    }
}

/// What it is asked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// An object location.
    Object {
        /// `s3://BUCKET/KEY` or `file:///PATH`.
        url: String,
        /// `s3` or `file`.
        store: String,
        /// Bucket (`(local)` for local folders).
        bucket: String,
        /// Key inside the bucket (the absolute path for local files).
        key: String,
    },
    /// A keyring by name.
    Keyring(String),
    /// A key (XKS external key id, or a key URI).
    Key(String),
}

impl Resource {
    /// The object a store URL names.
    pub fn object(url: &hyok_store::StoreUrl) -> Self {
        let local = url.backend() == hyok_store::Backend::Local;
        Self::Object {
            url: url.to_string(),
            store: if local { "file" } else { "s3" }.to_owned(),
            bucket: if local {
                crate::objects::LOCAL_BUCKET.to_owned()
            } else {
                url.bucket().to_owned()
            },
            key: if local {
                format!("/{}", url.key())
            } else {
                url.key().to_owned()
            },
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Identity(s) => write!(f, "Identity {s:?}"),
            Self::Credential(s) => write!(f, "Credential {s:?}"),
            Self::Caller(s) => write!(f, "Caller {s:?}"),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Object { url, .. } => write!(f, "{url}"),
            Self::Keyring(s) => write!(f, "keyring {s:?}"),
            Self::Key(s) => write!(f, "key {s:?}"),
        }
    }
}

/// The XKS request metadata a decision sees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XksFacts {
    /// `kmsKeyArn`.
    pub kms_key_arn: String,
    /// `kmsOperation`.
    pub kms_operation: String,
    /// `kmsViaService`.
    pub via_service: String,
    /// `awsSourceVpc`.
    pub vpc: String,
    /// `awsSourceVpce`.
    pub vpc_endpoint: String,
}

/// The circumstances of a request (Cedar's `context`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Encryption context pairs.
    pub encryption_context: BTreeMap<String, String>,
    /// Suite id (`0x0478`), empty when not known yet.
    pub suite: String,
    /// Keyring name (`keys` for key URIs).
    pub keyring: String,
    /// Destination region.
    pub region: String,
    /// Destination endpoint (without a trailing `/`).
    pub endpoint: String,
    /// Front end: `cli`, `gateway`, `xks` or `api`.
    pub via: String,
    /// The client's address (servers).
    pub source_ip: Option<IpAddr>,
    /// When.
    pub now: SystemTime,
    /// `HYOK_BREAK_GLASS` is set.
    pub break_glass: bool,
    /// XKS request metadata (XKS actions only).
    pub xks: Option<XksFacts>,
}

impl Default for Facts {
    fn default() -> Self {
        Self {
            encryption_context: BTreeMap::new(),
            suite: String::new(),
            keyring: String::new(),
            region: String::new(),
            endpoint: String::new(),
            via: "api".into(),
            source_ip: None,
            now: SystemTime::now(),
            break_glass: false,
            xks: None,
        }
    }
}

/// One question: may `principal` do `action` on `resource` given `facts`?
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// Who.
    pub principal: Principal,
    /// What.
    pub action: Action,
    /// On what.
    pub resource: Resource,
    /// Circumstances.
    pub facts: Facts,
}

struct Types {
    identity: EntityTypeName,
    credential: EntityTypeName,
    caller: EntityTypeName,
    bucket: EntityTypeName,
    object: EntityTypeName,
    keyring: EntityTypeName,
    key: EntityTypeName,
    context: EntityTypeName,
    action: EntityTypeName,
}

static TYPES: LazyLock<Types> = LazyLock::new(|| {
    let t = |n: &str| {
        EntityTypeName::from_str(&format!("{}::{n}", super::schema::NAMESPACE))
            .unwrap_or_else(|_| unreachable!("built-in type names parse"))
    };
    Types {
        identity: t("Identity"),
        credential: t("Credential"),
        caller: t("Caller"),
        bucket: t("Bucket"),
        object: t("Object"),
        keyring: t("Keyring"),
        key: t("Key"),
        context: t("EncryptionContext"),
        action: t("Action"),
    }
});

fn uid(t: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_owned())
}

/// Seconds since 1970, hour of the day and weekday (0 = Monday), in UTC.
fn clock(t: SystemTime) -> (i64, i64, i64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .min(i64::MAX as u64) as i64;
    let days = secs / 86_400;
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    (secs, (secs % 86_400) / 3600, (days + 3) % 7)
}

/// The account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`), or "".
fn arn_account(arn: &str) -> &str {
    let mut parts = arn.splitn(6, ':');
    match (parts.next(), parts.nth(3)) {
        (Some("arn"), Some(account)) => account,
        _ => "",
    }
}

/// The Cedar uid of an action (`Hyok::Action::"put"`).
pub(crate) fn action_uid(a: Action) -> EntityUid {
    uid(&TYPES.action, a.as_str())
}

/// The entity types of hyok's principals.
pub(crate) fn principal_types() -> [EntityTypeName; 3] {
    let ty = &*TYPES;
    [
        ty.identity.clone(),
        ty.credential.clone(),
        ty.caller.clone(),
    ]
}

/// The Cedar uid of a principal.
pub(crate) fn principal_uid(p: &Principal) -> EntityUid {
    let ty = &*TYPES;
    match p {
        Principal::Identity(n) => uid(&ty.identity, n),
        Principal::Credential(n) => uid(&ty.credential, n),
        Principal::Caller(n) => uid(&ty.caller, n),
    }
}

fn internal(e: impl fmt::Display) -> Error {
    Error::Config(format!("policy request: {e}"))
}

impl Query {
    /// The Cedar request and the entities it refers to.
    pub(crate) fn to_cedar(&self) -> Result<(cedar_policy::Request, Vec<Entity>)> {
        let ty = &*TYPES;
        let mut entities = Vec::with_capacity(4);
        let principal = principal_uid(&self.principal);
        match &self.principal {
            Principal::Caller(arn) => entities.push(
                Entity::new(
                    principal.clone(),
                    [
                        ("arn".to_owned(), s(arn)),
                        ("account".to_owned(), s(arn_account(arn))),
                    ]
                    .into_iter()
                    .collect(),
                    Default::default(),
                )
                .map_err(internal)?,
            ),
            _ => entities.push(Entity::with_uid(principal.clone())),
        }
        let resource = match &self.resource {
            Resource::Object {
                url,
                store,
                bucket,
                key,
            } => {
                let b = uid(&ty.bucket, bucket);
                let o = uid(&ty.object, url);
                entities.push(
                    Entity::new(
                        o.clone(),
                        [
                            ("store".to_owned(), s(store)),
                            ("bucket".to_owned(), s(bucket)),
                            ("key".to_owned(), s(key)),
                        ]
                        .into_iter()
                        .collect(),
                        [b.clone()].into_iter().collect(),
                    )
                    .map_err(internal)?,
                );
                entities.push(Entity::with_uid(b));
                o
            }
            Resource::Keyring(n) => uid(&ty.keyring, n),
            Resource::Key(n) => uid(&ty.key, n),
        };
        if !matches!(self.resource, Resource::Object { .. }) {
            entities.push(Entity::with_uid(resource.clone()));
        }
        let f = &self.facts;
        let (now, hour, weekday) = clock(f.now);
        let mut pairs: Vec<(String, RestrictedExpression)> = vec![
            ("now".into(), RestrictedExpression::new_long(now)),
            ("hour".into(), RestrictedExpression::new_long(hour)),
            ("weekday".into(), RestrictedExpression::new_long(weekday)),
        ];
        if let Some(ip) = f.source_ip {
            pairs.push((
                "source_ip".into(),
                RestrictedExpression::new_ip(ip.to_string()),
            ));
        }
        match &f.xks {
            Some(x) => {
                for (k, v) in [
                    ("kms_key_arn", &x.kms_key_arn),
                    ("kms_operation", &x.kms_operation),
                    ("via_service", &x.via_service),
                    ("vpc", &x.vpc),
                    ("vpc_endpoint", &x.vpc_endpoint),
                ] {
                    pairs.push((k.into(), s(v)));
                }
            }
            None => {
                let ec = uid(&ty.context, "request");
                entities.push(
                    Entity::new_with_tags(
                        ec.clone(),
                        [],
                        [],
                        f.encryption_context.iter().map(|(k, v)| (k.clone(), s(v))),
                    )
                    .map_err(internal)?,
                );
                pairs.push((
                    "encryption_context".into(),
                    RestrictedExpression::new_entity_uid(ec),
                ));
                for (k, v) in [
                    ("suite", &f.suite),
                    ("keyring", &f.keyring),
                    ("region", &f.region),
                    ("endpoint", &f.endpoint),
                    ("via", &f.via),
                ] {
                    pairs.push((k.into(), s(v)));
                }
                pairs.push((
                    "break_glass".into(),
                    RestrictedExpression::new_bool(f.break_glass),
                ));
            }
        }
        let context = Context::from_pairs(pairs).map_err(internal)?;
        let action = action_uid(self.action);
        let request = cedar_policy::Request::new(principal, action, resource, context, None)
            .map_err(internal)?;
        Ok((request, entities))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_counts_utc_hours_and_weekdays() {
        // 2026-12-05 10:30:00 UTC was a Saturday.
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_796_466_600);
        assert_eq!(clock(t), (1_796_466_600, 10, 5));
        assert_eq!(clock(UNIX_EPOCH), (0, 0, 3));
    }

    #[test]
    fn callers_carry_their_account() {
        assert_eq!(
            arn_account("arn:aws:iam::111122223333:role/backup"),
            "111122223333"
        );
        assert_eq!(
            arn_account("arn:aws:iam::111122223333:root"),
            "111122223333"
        );
        assert_eq!(arn_account("s3.amazonaws.com"), "");
        assert_eq!(arn_account("arn:aws"), "");
    }

    #[test]
    fn actions_round_trip_their_names() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        assert!("encrypt-all".parse::<Action>().is_err());
    }
}
