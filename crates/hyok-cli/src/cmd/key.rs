//! `hyok key new|list|rotate|destroy`. With logging on, new, rotate and destroy leave a
//! record in the audit log, failures included.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use hyok::audit::{AdminOp, PemSigner, SignatureAlgorithm};
use hyok::keys::KeyKind as AdminKind;
use hyok::Session;

use crate::args::{KeyDestroyArgs, KeyKind, KeyNewArgs, KeyUriArgs};
use crate::io::create_new;
use crate::Usage;
use hyok::text::escape_str;

/// What `key new` made: the key's name for the audit record and a description.
struct Made {
    key: String,
    detail: String,
}

pub(crate) fn new(config: Option<&Path>, a: KeyNewArgs) -> Result<()> {
    if a.output == "-" {
        return Err(Usage::err(
            "key new writes key files: `-o -` (stdout) is not a key file",
            Some("name a file, e.g. -o my.key (aes-256) or -o my-key (rsa-*, ec-*: NAME.pem and NAME.pub.pem)"),
        ));
    }
    let session = super::session(config, None)?;
    let started = Instant::now();
    let result = new_run(&session, &a);
    let (key, detail) = match &result {
        Ok(m) => (m.key.clone(), Some(m.detail.clone())),
        Err(_) => (a.output.clone(), None),
    };
    super::record_admin(&session, AdminOp::KeyNew, &key, detail, started, &result);
    super::finish(session, result.map(|_| ()))
}

fn new_run(session: &Session, a: &KeyNewArgs) -> Result<Made> {
    if session.is_store_uri(&a.output) {
        let kind = match a.kind {
            KeyKind::Aes256 => AdminKind::Aes256,
            KeyKind::Rsa3072 => AdminKind::Rsa(3072),
            KeyKind::Rsa4096 => AdminKind::Rsa(4096),
            KeyKind::EcP256 => AdminKind::EcP256,
            KeyKind::EcP384 => AdminKind::EcP384,
            KeyKind::Mlkem768X25519 => {
                return Err(Usage::err(
                    "mlkem768-x25519 keys are local key files, not kept in a key store",
                    Some("hyok key new mlkem768-x25519 -o NAME writes NAME.key and NAME.pub"),
                ))
            }
        };
        let (admin, uri) = session.key_admin(&a.output)?;
        let created = super::runtime()?
            .block_on(admin.create(&uri, kind))
            .map_err(hyok::Error::from)?;
        println!("{}", created.uri);
        eprintln!("created {}", created.detail);
        return Ok(Made {
            key: created.uri,
            detail: created.detail,
        });
    }
    match a.kind {
        KeyKind::Aes256 => {
            let path = PathBuf::from(&a.output);
            let mut key = Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(&mut key[..])
                .map_err(|_| anyhow::anyhow!("random number generator failed"))?;
            let mut f = create_new(&path, 0o600)?;
            f.write_all(&key[..])
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("created AES-256 key {} (mode 0600)", path.display());
            Ok(Made {
                key: path.display().to_string(),
                detail: "AES-256 key file".into(),
            })
        }
        KeyKind::EcP256 | KeyKind::EcP384 => {
            // Local EC keys sign audit checkpoints (HYOK_AUDIT_KEY=NAME.pem).
            let (alg, name) = match a.kind {
                KeyKind::EcP256 => (SignatureAlgorithm::EcdsaP256Sha256, "P-256"),
                _ => (SignatureAlgorithm::EcdsaP384Sha384, "P-384"),
            };
            let (private, public) = pair_paths(&a.output)?;
            let (priv_pem, pub_pem) = PemSigner::generate_pem(alg).map_err(hyok::Error::from)?;
            write_pair(&private, priv_pem.as_bytes(), &public, pub_pem.as_bytes())?;
            eprintln!(
                "created EC {name} key pair {} (private, mode 0600) and {} (public)",
                private.display(),
                public.display()
            );
            Ok(Made {
                key: private.display().to_string(),
                detail: format!("EC {name} key pair"),
            })
        }
        KeyKind::Mlkem768X25519 => {
            let (private, public) = (
                PathBuf::from(format!("{}.key", a.output)),
                PathBuf::from(format!("{}.pub", a.output)),
            );
            refuse_existing(&[&private, &public])?;
            let (priv_pem, pub_pem) = hyok::keys::generate_pq_escrow_pem()?;
            write_pair(&private, priv_pem.as_bytes(), &public, pub_pem.as_bytes())?;
            eprintln!(
                "created X-Wing (ML-KEM-768 + X25519) escrow key pair {} (private, mode 0600) and {} (public)",
                private.display(),
                public.display()
            );
            Ok(Made {
                key: private.display().to_string(),
                detail: "X-Wing ML-KEM-768 + X25519 key pair".into(),
            })
        }
        KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
            let bits = if matches!(a.kind, KeyKind::Rsa3072) {
                3072
            } else {
                4096
            };
            let (private, public) = pair_paths(&a.output)?;
            let (priv_pem, pub_pem) = hyok::keys::generate_rsa_pem(bits)?;
            write_pair(&private, priv_pem.as_bytes(), &public, pub_pem.as_bytes())?;
            eprintln!(
                "created RSA-{bits} key pair {} (private, mode 0600) and {} (public)",
                private.display(),
                public.display()
            );
            Ok(Made {
                key: private.display().to_string(),
                detail: format!("RSA-{bits} key pair"),
            })
        }
    }
}

/// NAME.pem and NAME.pub.pem, refusing to overwrite either.
fn pair_paths(prefix: &str) -> Result<(PathBuf, PathBuf)> {
    let private = PathBuf::from(format!("{prefix}.pem"));
    let public = PathBuf::from(format!("{prefix}.pub.pem"));
    refuse_existing(&[&private, &public])?;
    Ok((private, public))
}

/// Refuse to overwrite any of `paths`.
fn refuse_existing(paths: &[&Path]) -> Result<()> {
    for p in paths {
        if p.exists() {
            return Err(Usage::err(
                format!("{} already exists", p.display()),
                Some("refusing to overwrite a key; choose another name"),
            ));
        }
    }
    Ok(())
}

fn write_pair(private: &Path, priv_pem: &[u8], public: &Path, pub_pem: &[u8]) -> Result<()> {
    let mut f = create_new(private, 0o600)?;
    f.write_all(priv_pem)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", private.display()))?;
    let mut f = create_new(public, 0o644)?;
    f.write_all(pub_pem)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", public.display()))?;
    Ok(())
}

pub(crate) fn list(config: Option<&Path>, a: KeyUriArgs) -> Result<()> {
    let session = super::session(config, None)?;
    let result = list_run(&session, &a);
    super::finish(session, result)
}

fn list_run(session: &Session, a: &KeyUriArgs) -> Result<()> {
    let (admin, uri) = session.key_admin(&a.uri)?;
    let keys = super::runtime()?
        .block_on(admin.list(&uri))
        .map_err(hyok::Error::from)?;
    if keys.is_empty() {
        eprintln!("no keys");
    }
    for k in keys {
        let attrs: Vec<String> = k
            .attributes
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        // Names and attributes come from the store: escaped.
        println!(
            "{}\t{}\t{}\t{}",
            escape_str(&k.name),
            escape_str(&k.id),
            escape_str(&k.kind),
            escape_str(&attrs.join(" "))
        );
    }
    Ok(())
}

/// Run one lifecycle step on the store a URI names and record it.
fn lifecycle(
    config: Option<&Path>,
    uri: &str,
    op: AdminOp,
    step: impl FnOnce(&dyn hyok::keys::KeyAdmin, &hyok::keys::KeyUri) -> Result<String>,
) -> Result<String> {
    let session = super::session(config, None)?;
    let started = Instant::now();
    let result = session
        .key_admin(uri)
        .map_err(anyhow::Error::from)
        .and_then(|(admin, parsed)| step(admin.as_ref(), &parsed));
    super::record_admin(
        &session,
        op,
        uri,
        result.as_ref().ok().cloned(),
        started,
        &result,
    );
    super::finish(session, result)
}

pub(crate) fn rotate(config: Option<&Path>, a: KeyUriArgs) -> Result<()> {
    let msg = lifecycle(config, &a.uri, AdminOp::KeyRotate, |admin, uri| {
        Ok(super::runtime()?
            .block_on(admin.rotate(uri))
            .map_err(hyok::Error::from)?)
    })?;
    eprintln!("{}", escape_str(&msg));
    Ok(())
}

pub(crate) fn destroy(config: Option<&Path>, a: KeyDestroyArgs) -> Result<()> {
    if let Some(loc) = &a.check {
        return super::shred_key::destroy_checked(config, &a, loc);
    }
    if !a.yes {
        return Err(Usage::err(
            format!(
                "destroying {} makes every message that only this key wraps unreadable forever",
                a.uri
            ),
            Some("pass --yes to confirm (crypto-shredding)"),
        ));
    }
    let msg = lifecycle(config, &a.uri, AdminOp::KeyDestroy, |admin, uri| {
        Ok(super::runtime()?
            .block_on(admin.destroy(uri))
            .map_err(hyok::Error::from)?)
    })?;
    eprintln!(
        "{}; messages wrapped only by this key can no longer be decrypted",
        escape_str(&msg)
    );
    Ok(())
}
