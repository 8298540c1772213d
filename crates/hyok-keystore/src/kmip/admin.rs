//! KMIP key lifecycle: create (Create + Activate, with a Name), list (Locate +
//! GetAttributes), destroy (Revoke + Destroy).

use std::sync::Arc;

use async_trait::async_trait;

use super::key::resolve;
use super::proto::{self, tag, value, Operation};
use super::ttlv::Ttlv;
use super::{attributes_from, get_attributes_payload, op_error, KmipClient, SCHEME};
use crate::admin::{Created, KeyAdmin, KeyKind, KeyListing};
use crate::error::{Error, Result};
use crate::uri::{decode, KeyUri};

/// Most keys `list` shows.
const MAX_LIST: i32 = 1000;
/// GetAttributes per request message when listing.
const LIST_BATCH: usize = 32;

/// Key management on a KMIP server.
#[derive(Debug)]
pub struct KmipAdmin {
    client: Arc<KmipClient>,
}

impl KmipAdmin {
    pub(super) fn new(client: Arc<KmipClient>) -> Self {
        Self { client }
    }

    /// Build from `kmip://HOST:PORT/[ID]?…` plus the environment.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        super::KmipBuilder::from_env()?.with_uri(uri)?.build_admin()
    }

    fn label(&self, id: &str) -> String {
        format!("{SCHEME}://{}/{id}", self.client.addr)
    }

    fn target(uri: &KeyUri) -> Result<String> {
        let id = uri
            .path
            .strip_prefix("//")
            .and_then(|r| r.split_once('/'))
            .map(|(_, id)| id)
            .unwrap_or("");
        let id = decode(id, "KMIP key")?;
        if id.is_empty() {
            return Err(Error::Config(
                "kmip: this needs a key: kmip://HOST:PORT/NAME_OR_UNIQUE_ID".into(),
            ));
        }
        Ok(id)
    }

    /// Unique identifiers of the symmetric keys with this name.
    async fn locate_name(&self, key: &str, name: &str) -> Result<Vec<String>> {
        let payload = vec![
            proto::attribute(
                "Object Type",
                Ttlv::enumeration(tag::ATTRIBUTE_VALUE, value::OBJECT_TYPE_SYMMETRIC_KEY),
            ),
            Ttlv {
                tag: tag::ATTRIBUTE,
                value: super::ttlv::Value::Structure(vec![
                    Ttlv::text(tag::ATTRIBUTE_NAME, "Name"),
                    proto::name_value(name),
                ]),
            },
        ];
        let r = self
            .client
            .call_one(key, Operation::Locate, payload, true)
            .await?;
        if !r.ok() {
            return Err(op_error(key, Operation::Locate, &r));
        }
        Ok(uids(r.payload.as_ref()))
    }
}

fn uids(payload: Option<&Ttlv>) -> Vec<String> {
    payload
        .map(|p| {
            p.children(tag::UNIQUE_IDENTIFIER)
                .filter_map(|u| u.as_text("Unique Identifier").ok().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl KeyAdmin for KmipAdmin {
    async fn create(&self, uri: &KeyUri, kind: KeyKind) -> Result<Created> {
        let name = Self::target(uri)?;
        let key = self.label(&name);
        if kind != KeyKind::Aes256 {
            return Err(Error::Config(
                "kmip: hyok creates AES-256 keys only (aes-256)".into(),
            ));
        }
        let existing = self.locate_name(&key, &name).await?;
        if !existing.is_empty() {
            return Err(Error::Config(format!(
                "kmip: a key named {name:?} already exists on {} (unique identifier {}); \
                 choose another name",
                self.client.addr,
                existing.join(", ")
            )));
        }
        let template = Ttlv::structure(
            tag::TEMPLATE_ATTRIBUTE,
            vec![
                proto::attribute(
                    "Cryptographic Algorithm",
                    Ttlv::enumeration(tag::ATTRIBUTE_VALUE, value::ALGORITHM_AES),
                ),
                proto::attribute("Cryptographic Length", Ttlv::int(tag::ATTRIBUTE_VALUE, 256)),
                proto::attribute(
                    "Cryptographic Usage Mask",
                    Ttlv::int(
                        tag::ATTRIBUTE_VALUE,
                        value::USAGE_ENCRYPT | value::USAGE_DECRYPT,
                    ),
                ),
                Ttlv {
                    tag: tag::ATTRIBUTE,
                    value: super::ttlv::Value::Structure(vec![
                        Ttlv::text(tag::ATTRIBUTE_NAME, "Name"),
                        proto::name_value(&name),
                    ]),
                },
            ],
        );
        let r = self
            .client
            .call_one(
                &key,
                Operation::Create,
                vec![
                    Ttlv::enumeration(tag::OBJECT_TYPE, value::OBJECT_TYPE_SYMMETRIC_KEY),
                    template,
                ],
                false,
            )
            .await?;
        if !r.ok() {
            return Err(op_error(&key, Operation::Create, &r));
        }
        let uid = r
            .payload
            .as_ref()
            .and_then(|p| p.child(tag::UNIQUE_IDENTIFIER))
            .and_then(|u| u.as_text("Unique Identifier").ok())
            .map(str::to_owned)
            .ok_or_else(|| Error::Backend {
                key: key.clone(),
                detail: "KMIP Create answer has no Unique Identifier".into(),
            })?;
        let r = self
            .client
            .call_one(
                &key,
                Operation::Activate,
                vec![Ttlv::text(tag::UNIQUE_IDENTIFIER, uid.as_str())],
                false,
            )
            .await?;
        if !r.ok() {
            return Err(Error::Backend {
                key,
                detail: format!(
                    "created key {uid} but could not activate it: {}; activate or destroy it on \
                     the server",
                    r.describe()
                ),
            });
        }
        // The URI names the key by its unique identifier: names can be reassigned, ids not.
        let mut uri_text = self.label(&uid);
        let query: Vec<String> = uri
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, QUERY)))
            .collect();
        if !query.is_empty() {
            uri_text.push('?');
            uri_text.push_str(&query.join("&"));
        }
        Ok(Created {
            uri: uri_text,
            detail: format!(
                "KMIP key {name:?} on {}: unique identifier {uid} (AES-256, Active)",
                self.client.addr
            ),
        })
    }

    async fn list(&self, _uri: &KeyUri) -> Result<Vec<KeyListing>> {
        let key = self.label("");
        let payload = vec![
            Ttlv::int(tag::MAXIMUM_ITEMS, MAX_LIST),
            proto::attribute(
                "Object Type",
                Ttlv::enumeration(tag::ATTRIBUTE_VALUE, value::OBJECT_TYPE_SYMMETRIC_KEY),
            ),
        ];
        let r = self
            .client
            .call_one(&key, Operation::Locate, payload, true)
            .await?;
        if !r.ok() {
            return Err(op_error(&key, Operation::Locate, &r));
        }
        let ids = uids(r.payload.as_ref());
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LIST_BATCH) {
            let ops = chunk
                .iter()
                .map(|u| (Operation::GetAttributes, get_attributes_payload(u)))
                .collect();
            let results = self.client.call(&key, ops, true).await?;
            for (uid, r) in chunk.iter().zip(results) {
                let Some(a) = attributes_from(&key, r)? else {
                    continue;
                };
                let kind = match (a.algorithm, a.length) {
                    (Some(value::ALGORITHM_AES), Some(l)) => format!("AES-{l}"),
                    (Some(value::ALGORITHM_AES), None) => "AES".into(),
                    _ => "other".into(),
                };
                let mut attributes = Vec::new();
                if let Some(s) = a.state {
                    attributes.push(("state".to_owned(), proto::state_name(s).to_owned()));
                }
                out.push(KeyListing {
                    name: a.name.unwrap_or_default(),
                    id: uid.clone(),
                    kind,
                    attributes,
                });
            }
        }
        Ok(out)
    }

    async fn rotate(&self, uri: &KeyUri) -> Result<String> {
        let _ = Self::target(uri)?;
        Err(Error::Unsupported {
            key: self.label(&Self::target(uri)?),
            detail: "KMIP keys have no versions in hyok: create a new key (hyok key new aes-256 \
                     -o kmip://…/NEW), encrypt with it, and keep the old key for decrypting"
                .into(),
        })
    }

    async fn destroy(&self, uri: &KeyUri) -> Result<String> {
        let target = Self::target(uri)?;
        let key = self.label(&target);
        let resolved =
            resolve(&self.client, &key, &target)
                .await?
                .ok_or_else(|| Error::NotFound {
                    key: key.clone(),
                    detail: format!(
                        "the KMIP server at {} has no AES key with the name or unique identifier \
                     {target:?}",
                        self.client.addr
                    ),
                })?;
        let uid = resolved.uid;
        if resolved.state == Some(2) {
            let reason = Ttlv::structure(
                tag::REVOCATION_REASON,
                vec![Ttlv::enumeration(
                    tag::REVOCATION_REASON_CODE,
                    value::REVOCATION_CESSATION_OF_OPERATION,
                )],
            );
            let r = self
                .client
                .call_one(
                    &key,
                    Operation::Revoke,
                    vec![Ttlv::text(tag::UNIQUE_IDENTIFIER, uid.as_str()), reason],
                    false,
                )
                .await?;
            if !r.ok() {
                return Err(op_error(&key, Operation::Revoke, &r));
            }
        }
        let r = self
            .client
            .call_one(
                &key,
                Operation::Destroy,
                vec![Ttlv::text(tag::UNIQUE_IDENTIFIER, uid.as_str())],
                false,
            )
            .await?;
        if !r.ok() {
            return Err(op_error(&key, Operation::Destroy, &r));
        }
        Ok(format!(
            "revoked and destroyed KMIP key {uid} on {}",
            self.client.addr
        ))
    }
}

/// Characters escaped in query values we print back.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'&')
    .add(b'#')
    .add(b'%')
    .add(b'+')
    .add(b'?');
