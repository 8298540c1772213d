//! A KMIP-managed AES key as a wrapping key: resolving the name to a Unique Identifier,
//! wrap and unwrap (single and batched), and key attributes.

use super::*;

/// What the server says about the key.
#[derive(Clone, Debug)]
pub(super) struct Resolved {
    pub(super) uid: String,
    pub(super) state: Option<u32>,
}

/// A KMIP-managed AES key used as a wrapping key.
pub struct KmipKey {
    pub(super) info: KeyInfo,
    pub(super) target: String,
    pub(super) client: Arc<KmipClient>,
    pub(super) resolved: tokio::sync::OnceCell<Resolved>,
}

impl fmt::Debug for KmipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Pull apart an EDK ciphertext: IV length ‖ IV ‖ encrypted key ‖ tag.
pub(super) fn split_ciphertext(c: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (&iv_len, rest) = c.split_first()?;
    let iv_len = iv_len as usize;
    if !(IV_LEN..=16).contains(&iv_len) || rest.len() < iv_len + TAG_LEN + 1 {
        return None;
    }
    let (iv, rest) = rest.split_at(iv_len);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    Some((iv, ct, tag))
}

impl KmipKey {
    /// Build from `kmip://HOST:PORT/ID?…` plus the environment.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        KmipBuilder::from_env()?.with_uri(uri)?.build()
    }

    fn key(&self) -> &str {
        &self.info.uri
    }

    /// Look the key up once: by Name, else as a Unique Identifier; check it is AES.
    pub(super) async fn resolve(&self) -> Result<&Resolved> {
        self.resolved
            .get_or_try_init(|| async {
                let r = resolve(&self.client, self.key(), &self.target).await?;
                r.ok_or_else(|| Error::NotFound {
                    key: self.key().to_owned(),
                    detail: format!(
                        "the KMIP server at {} has no AES key with the name or unique \
                         identifier {:?}",
                        self.client.addr, self.target
                    ),
                })
            })
            .await
    }

    fn aad(req: &WrapRequest<'_>) -> Result<Zeroizing<Vec<u8>>> {
        Ok(Zeroizing::new(req.context.serialize()?))
    }

    /// An Encrypt request payload: AES-GCM, a 16-byte tag, `iv`, and `aad` when not empty.
    pub(super) fn encrypt_payload(uid: &str, data: &[u8], iv: &[u8], aad: &[u8]) -> Vec<Ttlv> {
        let mut p = vec![
            Ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
            proto::gcm_parameters(),
            Ttlv::bytes(tag::DATA, data),
            Ttlv::bytes(tag::IV_COUNTER_NONCE, iv),
        ];
        if !aad.is_empty() {
            p.push(Ttlv::bytes(
                tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
                aad,
            ));
        }
        p
    }

    /// A Decrypt request payload: the parts of an Encrypt answer and the same `aad`.
    pub(super) fn decrypt_payload(
        uid: &str,
        ct: &[u8],
        iv: &[u8],
        aad: &[u8],
        tag: &[u8],
    ) -> Vec<Ttlv> {
        let mut p = vec![
            Ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
            proto::gcm_parameters(),
            Ttlv::bytes(tag::DATA, ct),
            Ttlv::bytes(tag::IV_COUNTER_NONCE, iv),
        ];
        if !aad.is_empty() {
            p.push(Ttlv::bytes(
                tag::AUTHENTICATED_ENCRYPTION_ADDITIONAL_DATA,
                aad,
            ));
        }
        p.push(Ttlv::bytes(tag::AUTHENTICATED_ENCRYPTION_TAG, tag));
        p
    }

    /// The key, resolved, if it is Active (the only state that may encrypt).
    pub(super) async fn resolve_active(&self) -> Result<&Resolved> {
        let r = self.resolve().await?;
        if r.state != Some(2) {
            return Err(Error::Unsupported {
                key: self.key().to_owned(),
                detail: format!(
                    "KMIP key {} is {}, not Active; only Active keys encrypt",
                    r.uid,
                    r.state
                        .map(proto::state_name)
                        .unwrap_or("in an unknown state")
                ),
            });
        }
        Ok(r)
    }

    async fn encrypt_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Result<Vec<Result<EncryptedDataKey>>> {
        let r = self.resolve_active().await?;
        let mut ivs = Vec::with_capacity(items.len());
        let mut ops = Vec::with_capacity(items.len());
        for (dk, req) in items {
            let mut iv = [0u8; IV_LEN];
            aws_lc_rs::rand::fill(&mut iv).map_err(|_| Error::Backend {
                key: self.key().to_owned(),
                detail: "random IV".into(),
            })?;
            let aad = Self::aad(req)?;
            ops.push((
                Operation::Encrypt,
                Self::encrypt_payload(&r.uid, dk.expose(), &iv, &aad),
            ));
            ivs.push(iv);
        }
        let results = self.client.call(self.key(), ops, true).await?;
        Ok(results
            .into_iter()
            .zip(ivs)
            .zip(items)
            .map(|((res, iv), (dk, _))| self.edk_from(&r.uid, res, &iv, dk.len()))
            .collect())
    }

    fn edk_from(
        &self,
        uid: &str,
        res: BatchResult,
        iv: &[u8],
        key_len: usize,
    ) -> Result<EncryptedDataKey> {
        let (ct, t) = self.gcm_output(&res, iv)?;
        if ct.len() != key_len {
            return Err(Error::Backend {
                key: self.key().to_owned(),
                detail: "KMIP Encrypt answer: unexpected lengths".into(),
            });
        }
        let mut ciphertext = Vec::with_capacity(1 + iv.len() + ct.len() + TAG_LEN);
        ciphertext.push(iv.len() as u8);
        ciphertext.extend_from_slice(iv);
        ciphertext.extend_from_slice(ct);
        ciphertext.extend_from_slice(t);
        Ok(EncryptedDataKey {
            provider_id: PROVIDER_ID.to_owned(),
            provider_info: uid.as_bytes().to_vec(),
            ciphertext,
        })
    }

    /// The ciphertext and 16-byte tag of an Encrypt answer sent with `iv`.
    pub(super) fn gcm_output<'a>(
        &self,
        res: &'a BatchResult,
        iv: &[u8],
    ) -> Result<(&'a [u8], &'a [u8])> {
        if !res.ok() {
            return Err(match res.reason {
                Some(
                    reason::INVALID_FIELD
                    | reason::FEATURE_NOT_SUPPORTED
                    | reason::OPERATION_NOT_SUPPORTED
                    | reason::CRYPTOGRAPHIC_FAILURE,
                ) => Error::Unsupported {
                    key: self.key().to_owned(),
                    detail: format!(
                        "the KMIP server at {} cannot encrypt with AES-GCM, a 16-byte tag and \
                         additional data ({})",
                        self.client.addr,
                        res.describe()
                    ),
                },
                _ => op_error(self.key(), Operation::Encrypt, res),
            });
        }
        let bad = |what: &str| Error::Backend {
            key: self.key().to_owned(),
            detail: format!("KMIP Encrypt answer: {what}"),
        };
        let p = res.payload.as_ref().ok_or_else(|| bad("no payload"))?;
        let ct = p
            .child(tag::DATA)
            .and_then(|d| d.as_bytes("Data").ok())
            .ok_or_else(|| bad("no Data"))?;
        let t = p
            .child(tag::AUTHENTICATED_ENCRYPTION_TAG)
            .and_then(|d| d.as_bytes("Authenticated Encryption Tag").ok())
            .ok_or_else(|| Error::Unsupported {
                key: self.key().to_owned(),
                detail: format!(
                    "the KMIP server at {} returned no GCM tag; it cannot do AES-GCM with \
                         KMIP 1.4 encoding",
                    self.client.addr
                ),
            })?;
        if let Some(server_iv) = p.child(tag::IV_COUNTER_NONCE) {
            if server_iv.as_bytes("IV").ok() != Some(iv) {
                return Err(bad("the server used another IV than the one sent"));
            }
        }
        if t.len() != TAG_LEN {
            return Err(bad("unexpected tag length"));
        }
        Ok((ct, t))
    }

    /// The plaintext of a Decrypt answer; a tag that does not verify is
    /// [`Error::UnwrapFailed`].
    pub(super) fn decrypted<'a>(&self, res: &'a BatchResult) -> Result<&'a [u8]> {
        if !res.ok() {
            return Err(match res.reason {
                // A wrong tag: wrong context or tampered input (PyKMIP says General
                // Failure, others Cryptographic Failure).
                Some(reason::CRYPTOGRAPHIC_FAILURE | reason::GENERAL_FAILURE) => {
                    tracing::debug!(target: "hyok::kmip", "{}: Decrypt failed: {}", self.key(), res.describe());
                    Error::UnwrapFailed {
                        key: self.key().to_owned(),
                    }
                }
                _ => op_error(self.key(), Operation::Decrypt, res),
            });
        }
        res.payload
            .as_ref()
            .and_then(|p| p.child(tag::DATA))
            .and_then(|d| d.as_bytes("Data").ok())
            .ok_or_else(|| Error::Backend {
                key: self.key().to_owned(),
                detail: "KMIP Decrypt answer has no Data".into(),
            })
    }

    async fn decrypt_batch(
        &self,
        uid: &str,
        items: &[(&EncryptedDataKey, &WrapRequest<'_>)],
    ) -> Result<Vec<Result<DataKey>>> {
        let mut ops = Vec::with_capacity(items.len());
        for (edk, req) in items {
            // Callers checked the shape.
            let (iv, ct, t) =
                split_ciphertext(&edk.ciphertext).ok_or_else(|| Error::UnwrapFailed {
                    key: self.key().to_owned(),
                })?;
            let aad = Self::aad(req)?;
            ops.push((
                Operation::Decrypt,
                Self::decrypt_payload(uid, ct, iv, &aad, t),
            ));
        }
        let results = self.client.call(self.key(), ops, true).await?;
        Ok(results
            .into_iter()
            .zip(items)
            .map(|(res, (_, req))| {
                let data = self.decrypted(&res)?;
                if data.len() != req.suite.key_len() {
                    return Err(Error::UnwrapFailed {
                        key: self.key().to_owned(),
                    });
                }
                Ok(DataKey::from_slice(data))
            })
            .collect())
    }
}

/// Find an AES key by name (Locate) or unique identifier; `None` if there is none.
pub(super) async fn resolve(
    client: &KmipClient,
    key: &str,
    target: &str,
) -> Result<Option<Resolved>> {
    let locate = vec![
        proto::attribute(
            "Object Type",
            Ttlv::enumeration(tag::ATTRIBUTE_VALUE, value::OBJECT_TYPE_SYMMETRIC_KEY),
        ),
        Ttlv {
            tag: tag::ATTRIBUTE,
            value: ttlv::Value::Structure(vec![
                Ttlv::text(tag::ATTRIBUTE_NAME, "Name"),
                proto::name_value(target),
            ]),
        },
    ];
    let r = client
        .call_one(key, Operation::Locate, locate, true)
        .await?;
    if !r.ok() {
        return Err(op_error(key, Operation::Locate, &r));
    }
    let uids: Vec<String> = r
        .payload
        .as_ref()
        .map(|p| {
            p.children(tag::UNIQUE_IDENTIFIER)
                .filter_map(|u| u.as_text("Unique Identifier").ok().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let uid = match uids.len() {
        0 => target.to_owned(),
        1 => uids[0].clone(),
        n => {
            return Err(Error::Config(format!(
                "kmip: the name {target:?} matches {n} keys on the server (unique identifiers \
                 {}); use a unique identifier in the key URI",
                uids.join(", ")
            )))
        }
    };
    let attrs = get_attributes(client, key, &uid).await?;
    let Some(attrs) = attrs else {
        return Ok(None);
    };
    if let Some(alg) = attrs.algorithm {
        if alg != value::ALGORITHM_AES {
            return Err(Error::Unsupported {
                key: key.to_owned(),
                detail: format!("KMIP object {uid} is not an AES key"),
            });
        }
    }
    Ok(Some(Resolved {
        uid,
        state: attrs.state,
    }))
}

/// The attributes hyok reads.
#[derive(Debug, Default)]
pub(crate) struct Attributes {
    pub(crate) name: Option<String>,
    pub(crate) algorithm: Option<u32>,
    pub(crate) length: Option<i32>,
    pub(crate) state: Option<u32>,
}

/// GetAttributes for one object; `None` when it does not exist.
pub(crate) async fn get_attributes(
    client: &KmipClient,
    key: &str,
    uid: &str,
) -> Result<Option<Attributes>> {
    let r = client
        .call_one(
            key,
            Operation::GetAttributes,
            get_attributes_payload(uid),
            true,
        )
        .await?;
    attributes_from(key, r)
}

pub(crate) fn get_attributes_payload(uid: &str) -> Vec<Ttlv> {
    vec![
        Ttlv::text(tag::UNIQUE_IDENTIFIER, uid),
        Ttlv::text(tag::ATTRIBUTE_NAME, "Name"),
        Ttlv::text(tag::ATTRIBUTE_NAME, "Cryptographic Algorithm"),
        Ttlv::text(tag::ATTRIBUTE_NAME, "Cryptographic Length"),
        Ttlv::text(tag::ATTRIBUTE_NAME, "State"),
    ]
}

pub(crate) fn attributes_from(key: &str, r: BatchResult) -> Result<Option<Attributes>> {
    if !r.ok() {
        return match r.reason {
            // PyKMIP answers a malformed identifier with Invalid Field.
            Some(reason::ITEM_NOT_FOUND | reason::INVALID_FIELD) => Ok(None),
            _ => Err(op_error(key, Operation::GetAttributes, &r)),
        };
    }
    let mut out = Attributes::default();
    if let Some(p) = &r.payload {
        for (name, v) in proto::attributes_of(p) {
            match name {
                "Name" => {
                    out.name = v
                        .child(tag::NAME_VALUE)
                        .and_then(|n| n.as_text("Name Value").ok())
                        .map(str::to_owned)
                }
                "Cryptographic Algorithm" => out.algorithm = v.as_enum("Algorithm").ok(),
                "Cryptographic Length" => out.length = v.as_int("Length").ok(),
                "State" => out.state = v.as_enum("State").ok(),
                _ => {}
            }
        }
    }
    Ok(Some(out))
}

#[async_trait]
impl KeyStore for KmipKey {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    async fn health(&self) -> Vec<crate::health::NodeHealth> {
        self.client.health(&self.info.uri).await
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let out = self.encrypt_batch(&[(data_key, req)]).await;
        net::single(self.key(), "KMIP server", out)
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        let mut out = self.unwrap_batch(&[(edk, req)]).await;
        out.pop().unwrap_or(Ok(None))
    }

    async fn wrap_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Vec<Result<EncryptedDataKey>> {
        net::in_chunks(self.key(), items, MAX_BATCH, |c| self.encrypt_batch(c)).await
    }

    async fn unwrap_batch(
        &self,
        items: &[(&EncryptedDataKey, WrapRequest<'_>)],
    ) -> Vec<Result<Option<DataKey>>> {
        let mut out: Vec<Option<Result<Option<DataKey>>>> = items.iter().map(|_| None).collect();
        // Only EDKs of this provider need the server; resolve the key once for them.
        let ours: Vec<usize> = (0..items.len())
            .filter(|i| items[*i].0.provider_id == PROVIDER_ID)
            .collect();
        let resolved = if ours.is_empty() {
            None
        } else {
            match self.resolve().await {
                Ok(r) => Some(r),
                Err(e) => {
                    // The server could not tell whether these EDKs are ours: report why, once
                    // in full and then by reference.
                    net::fail_each(
                        self.key(),
                        ours.iter().copied(),
                        e,
                        "same failure",
                        &mut out,
                    );
                    None
                }
            }
        };
        let mut todo: Vec<(usize, (&EncryptedDataKey, &WrapRequest<'_>))> = Vec::new();
        for (i, (edk, req)) in items.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            match resolved {
                Some(r)
                    if edk.provider_id == PROVIDER_ID && edk.provider_info == r.uid.as_bytes() =>
                {
                    if split_ciphertext(&edk.ciphertext).is_some() {
                        todo.push((i, (edk, req)));
                    } else {
                        out[i] = Some(Err(Error::UnwrapFailed {
                            key: self.key().to_owned(),
                        }));
                    }
                }
                _ => out[i] = Some(Ok(None)),
            }
        }
        let uid = resolved.map(|r| r.uid.as_str()).unwrap_or_default();
        net::unwrap_in_chunks(self.key(), out, &todo, MAX_BATCH, |batch| async move {
            self.decrypt_batch(uid, &batch).await
        })
        .await
    }
}
