//! A Transit key as a wrapping key: wrap and unwrap (single and batched), the key check
//! before the first wrap, and the mapping of Transit's answers to key-store errors.

use super::*;

/// A Transit key used as a wrapping key.
pub struct VaultTransit {
    pub(super) info: KeyInfo,
    pub(super) name: String,
    pub(super) mount: String,
    pub(super) client: Arc<Client>,
    pub(super) checked: tokio::sync::OnceCell<()>,
}

impl fmt::Debug for VaultTransit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultTransit")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
pub(super) struct EncryptItem<'a> {
    plaintext: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_data: Option<String>,
}

#[derive(Serialize)]
pub(super) struct DecryptItem<'a> {
    ciphertext: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_data: Option<String>,
}

#[derive(Serialize)]
pub(super) struct Batch<T> {
    batch_input: Vec<T>,
}

#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    data: Option<T>,
}

#[derive(Deserialize, Default)]
pub(super) struct EncryptResult {
    ciphertext: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct EncryptData {
    batch_results: Option<Vec<EncryptResult>>,
}

#[derive(Deserialize, Default)]
pub(super) struct DecryptResult {
    plaintext: Option<Secret>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct DecryptData {
    batch_results: Option<Vec<DecryptResult>>,
}

impl VaultTransit {
    /// Build from `vault-transit:NAME?…` plus the environment.
    pub fn from_uri(uri: &KeyUri) -> Result<Self> {
        VaultTransitBuilder::from_env().with_uri(uri)?.build()
    }

    pub(super) fn with_client(client: Arc<Client>, name: String, mount: String) -> Self {
        let mut uri = format!("{SCHEME}:{name}?addr={}&mount={mount}", client.addr);
        if let Some(ns) = &client.namespace {
            uri.push_str("&namespace=");
            uri.push_str(ns);
        }
        Self {
            info: KeyInfo {
                backend: SCHEME,
                uri: uri.into(),
                provider_id: PROVIDER_ID.into(),
                key_name: name.as_str().into(),
            },
            name,
            mount,
            client,
            checked: tokio::sync::OnceCell::new(),
        }
    }

    fn key(&self) -> &str {
        &self.info.uri
    }

    fn owns(&self, edk: &EncryptedDataKey) -> bool {
        edk.provider_id == PROVIDER_ID && edk.provider_info == self.name.as_bytes()
    }

    /// The ciphertext of one of our EDKs, if it is well-formed.
    fn edk_ciphertext<'e>(&self, edk: &'e EncryptedDataKey) -> Result<&'e str> {
        std::str::from_utf8(&edk.ciphertext)
            .ok()
            .filter(|s| s.len() <= MAX_CIPHERTEXT && ciphertext_version(s.as_bytes()).is_some())
            .ok_or_else(|| Error::UnwrapFailed {
                key: self.key().to_owned(),
            })
    }

    /// Once per process: make sure the key exists and can bind associated data, so a typo
    /// never makes Transit create a new key on encrypt.
    async fn check_key(&self) -> Result<()> {
        self.checked
            .get_or_try_init(|| async {
                let path = format!("{}/keys/{}", self.mount, self.name);
                let reply = self
                    .client
                    .call(self.key(), Method::GET, &path, None, true,)
                    .await;
                let reply = match reply {
                    // A policy without read on MOUNT/keys/NAME: rely on it lacking `create`
                    // on MOUNT/encrypt/NAME too (see the module docs).
                    Err(Error::Denied { .. }) => {
                        tracing::debug!(target: "hyok::vault", "{}: cannot read the key's settings; skipping the existence check", self.key());
                        return Ok(());
                    }
                    other => other?,
                };
                if reply.status == StatusCode::NOT_FOUND {
                    return Err(missing_key_error(self.key(), &self.name, &self.mount, &reply));
                }
                if !reply.status.is_success() {
                    return Err(self.classify(&reply.messages(), reply.status, None));
                }
                #[derive(Deserialize)]
                struct KeyData {
                    #[serde(rename = "type")]
                    kind: String,
                    #[serde(default)]
                    derived: bool,
                }
                let data: Envelope<KeyData> = reply.parse(self.key(), "reading the key")?;
                let data = data.data.ok_or_else(|| Error::Backend {
                    key: self.key().to_owned(),
                    detail: "Vault's answer about the key has no data".into(),
                })?;
                if !matches!(
                    data.kind.as_str(),
                    "aes256-gcm96" | "aes128-gcm96" | "chacha20-poly1305"
                ) {
                    return Err(Error::Unsupported {
                        key: self.key().to_owned(),
                        detail: format!(
                            "Transit key type {} cannot bind the encryption context; use an \
                             aes256-gcm96 key (hyok key new aes-256 -o vault-transit:NAME)",
                            data.kind
                        ),
                    });
                }
                if data.derived {
                    return Err(Error::Unsupported {
                        key: self.key().to_owned(),
                        detail: "derived Transit keys are not supported; create the key \
                                 without derived=true"
                            .into(),
                    });
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Map a failed Transit call to an error class.
    fn classify(&self, msg: &str, status: StatusCode, ciphertext: Option<&str>) -> Error {
        classify(self.key(), &self.name, &self.mount, msg, status, ciphertext)
    }

    fn aad(req: &WrapRequest<'_>) -> Result<Option<String>> {
        let bytes = Zeroizing::new(req.context.serialize()?);
        Ok(if bytes.is_empty() {
            None
        } else {
            Some(B64.encode(&*bytes))
        })
    }

    fn edk(&self, ciphertext: String) -> Result<EncryptedDataKey> {
        if ciphertext_version(ciphertext.as_bytes()).is_none() || ciphertext.len() > MAX_CIPHERTEXT
        {
            return Err(Error::Backend {
                key: self.key().to_owned(),
                detail: "Vault returned a ciphertext that is not vault:vN:…".into(),
            });
        }
        Ok(EncryptedDataKey {
            provider_id: PROVIDER_ID.to_owned(),
            provider_info: self.name.as_bytes().to_vec(),
            ciphertext: ciphertext.into_bytes(),
        })
    }

    fn data_key(&self, plaintext: Option<Secret>, req: &WrapRequest<'_>) -> Result<DataKey> {
        let failed = || Error::UnwrapFailed {
            key: self.key().to_owned(),
        };
        let p = plaintext.ok_or_else(failed)?;
        let bytes = B64.decode(p.expose()).map_err(|_| failed())?;
        let dk = DataKey::new(bytes);
        if dk.len() != req.suite.key_len() {
            return Err(failed());
        }
        Ok(dk)
    }

    async fn encrypt_batch(
        &self,
        items: &[(&DataKey, WrapRequest<'_>)],
    ) -> Result<Vec<Result<EncryptedDataKey>>> {
        self.check_key().await?;
        let mut input = Vec::with_capacity(items.len());
        let mut plain: Vec<Zeroizing<String>> = Vec::with_capacity(items.len());
        for (dk, req) in items {
            plain.push(Zeroizing::new(B64.encode(dk.expose())));
            input.push(Self::aad(req)?);
        }
        let batch = Batch {
            batch_input: plain
                .iter()
                .zip(input)
                .map(|(p, aad)| EncryptItem {
                    plaintext: p.as_str(),
                    associated_data: aad,
                })
                .collect(),
        };
        // Sized up front so that no reallocation leaves a copy of the data keys behind.
        let estimate = 32
            + batch
                .batch_input
                .iter()
                .map(|i| 48 + i.plaintext.len() + i.associated_data.as_ref().map_or(0, String::len))
                .sum::<usize>();
        let mut body = Zeroizing::new(Vec::with_capacity(estimate * 2));
        serde_json::to_writer(&mut *body, &batch).map_err(|e| Error::Backend {
            key: self.key().to_owned(),
            detail: format!("encoding the request: {e}"),
        })?;
        drop(batch);
        let path = format!("{}/encrypt/{}", self.mount, self.name);
        let reply = self
            .client
            .call(self.key(), Method::POST, &path, Some(body), true)
            .await?;
        let results =
            self.batch_results::<EncryptData, _>(&reply, items.len(), |d| d.batch_results)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(EncryptResult {
                    ciphertext: Some(ct),
                    error: None,
                }) => self.edk(ct),
                Ok(r) => Err(self.classify(
                    &one_line(r.error.as_deref().unwrap_or("no ciphertext"), 300),
                    reply.status,
                    None,
                )),
                Err(e) => Err(e),
            })
            .collect())
    }

    async fn decrypt_batch(
        &self,
        items: &[(&str, &WrapRequest<'_>)],
    ) -> Result<Vec<Result<DataKey>>> {
        let mut input = Vec::with_capacity(items.len());
        for (ct, req) in items {
            input.push(DecryptItem {
                ciphertext: ct,
                associated_data: Self::aad(req)?,
            });
        }
        let body =
            serde_json::to_vec(&Batch { batch_input: input }).map_err(|e| Error::Backend {
                key: self.key().to_owned(),
                detail: format!("encoding the request: {e}"),
            })?;
        let path = format!("{}/decrypt/{}", self.mount, self.name);
        let reply = self
            .client
            .call(
                self.key(),
                Method::POST,
                &path,
                Some(Zeroizing::new(body)),
                true,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(missing_key_error(
                self.key(),
                &self.name,
                &self.mount,
                &reply,
            ));
        }
        let results =
            self.batch_results::<DecryptData, _>(&reply, items.len(), |d| d.batch_results)?;
        Ok(results
            .into_iter()
            .zip(items)
            .map(|(r, (ct, req))| match r {
                Ok(DecryptResult {
                    plaintext,
                    error: None,
                }) => self.data_key(plaintext, req),
                Ok(DecryptResult { error: Some(e), .. }) => {
                    Err(self.classify(&one_line(&e, 300), reply.status, Some(ct)))
                }
                Err(e) => Err(e),
            })
            .collect())
    }

    /// Per-item results of a batch call. A call that failed as a whole gives each item the
    /// same error.
    fn batch_results<'r, D, T>(
        &self,
        reply: &'r Reply,
        n: usize,
        results: impl Fn(D) -> Option<Vec<T>>,
    ) -> Result<Vec<Result<T>>>
    where
        D: Deserialize<'r> + Default,
    {
        let parsed: Option<Vec<T>> = serde_json::from_slice::<Envelope<D>>(&reply.body)
            .ok()
            .and_then(|e| e.data)
            .and_then(results);
        match parsed {
            Some(v) if v.len() == n => Ok(v.into_iter().map(Ok).collect()),
            Some(v) => Err(Error::Backend {
                key: self.key().to_owned(),
                detail: format!("Vault answered {} results for {n} batch items", v.len()),
            }),
            None if reply.status.is_success() => Err(Error::Backend {
                key: self.key().to_owned(),
                detail: "Vault's answer has no batch_results".into(),
            }),
            None => {
                let msg = reply.messages();
                Ok((0..n)
                    .map(|_| Err(self.classify(&msg, reply.status, None)))
                    .collect())
            }
        }
    }
}

/// "Key not found", with the mount spelled out when the mount itself is missing.
pub(super) fn missing_key_error(key: &str, name: &str, mount: &str, reply: &Reply) -> Error {
    let msg = reply.messages();
    let detail = if msg.contains("no handler for route") {
        format!("no Transit engine is mounted at {mount}/")
    } else {
        format!("no Transit key {name:?} in mount {mount}/ (hyok does not create Transit keys on encrypt; create it with `hyok key new aes-256 -o vault-transit:{name}`)")
    };
    Error::NotFound {
        key: key.to_owned(),
        detail,
    }
}

/// Map a failed Transit call (its `errors` text and status) to an error class.
pub(super) fn classify(
    key: &str,
    name: &str,
    mount: &str,
    msg: &str,
    status: StatusCode,
    ciphertext: Option<&str>,
) -> Error {
    let lower = msg.to_ascii_lowercase();
    let key = key.to_owned();
    if lower.contains("too old") || lower.contains("disallowed by policy") {
        let version = ciphertext
            .and_then(|c| ciphertext_version(c.as_bytes()))
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        return Error::KeyVersionTooOld {
            key,
            version,
            detail: format!(
                "the Transit key's min_decryption_version is above it; Vault says: {msg}"
            ),
        };
    }
    if lower.contains("authentication failed")
        || lower.contains("invalid ciphertext")
        || lower.contains("could not decode")
        || lower.contains("illegal base64")
    {
        return Error::UnwrapFailed { key };
    }
    if lower.contains("not found") || status == StatusCode::NOT_FOUND {
        let detail = if lower.contains("no handler for route") {
            format!("no Transit engine is mounted at {mount}/")
        } else {
            format!("no Transit key {name:?} in mount {mount}/")
        };
        return Error::NotFound { key, detail };
    }
    if lower.contains("sealed") {
        return Error::Unavailable {
            key,
            detail: format!("Vault is sealed ({msg})"),
        };
    }
    Error::Backend {
        key,
        detail: if msg.is_empty() {
            format!("Vault answered {status}")
        } else {
            format!("Vault answered {status}: {msg}")
        },
    }
}

#[async_trait]
impl KeyStore for VaultTransit {
    fn info(&self) -> &KeyInfo {
        &self.info
    }

    async fn health(&self) -> Vec<crate::health::NodeHealth> {
        self.client.health().await
    }

    async fn wrap(&self, data_key: &DataKey, req: WrapRequest<'_>) -> Result<EncryptedDataKey> {
        let out = self.encrypt_batch(&[(data_key, req)]).await;
        net::single(self.key(), "Vault", out)
    }

    async fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        req: WrapRequest<'_>,
    ) -> Result<Option<DataKey>> {
        if !self.owns(edk) {
            return Ok(None);
        }
        let ct = self.edk_ciphertext(edk)?;
        let mut out = self.decrypt_batch(&[(ct, &req)]).await?;
        match out.pop() {
            Some(r) => r.map(Some),
            None => Err(Error::Backend {
                key: self.key().to_owned(),
                detail: "Vault returned no result".into(),
            }),
        }
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
        let mut out: Vec<Option<Result<Option<DataKey>>>> = Vec::with_capacity(items.len());
        let mut todo: Vec<(usize, (&str, &WrapRequest<'_>))> = Vec::new();
        for (i, (edk, req)) in items.iter().enumerate() {
            if !self.owns(edk) {
                out.push(Some(Ok(None)));
                continue;
            }
            match self.edk_ciphertext(edk) {
                Ok(ct) => {
                    out.push(None);
                    todo.push((i, (ct, req)));
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        net::unwrap_in_chunks(self.key(), out, &todo, MAX_BATCH, |batch| async move {
            self.decrypt_batch(&batch).await
        })
        .await
    }
}
