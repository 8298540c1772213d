//! `hyok key new|list|rotate|destroy`. With logging on, new, rotate and destroy leave a
//! record in the audit log, failures included.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use hyok::audit::{AdminOp, AuditSettings, PemSigner, SignatureAlgorithm};
use hyok_keystore::admin::{is_store_uri, open_admin, KeyKind as AdminKind};

use super::audit::Session;
use crate::args::{KeyDestroyArgs, KeyKind, KeyNewArgs, KeyUriArgs};
use crate::io::create_new;
use crate::Usage;

/// What `key new` made: the key's name for the audit record and a description.
struct Made {
    key: String,
    detail: String,
}

pub(crate) fn new(a: KeyNewArgs, audit_file: AuditSettings) -> Result<()> {
    let audit = Session::open(audit_file)?;
    let started = Instant::now();
    let result = new_run(&a);
    let (key, detail) = match &result {
        Ok(m) => (m.key.clone(), Some(m.detail.clone())),
        Err(_) => (a.output.clone(), None),
    };
    audit.key_admin(AdminOp::KeyNew, &key, detail, started, &result);
    audit.finish(result.map(|_| ()))
}

fn new_run(a: &KeyNewArgs) -> Result<Made> {
    if is_store_uri(&a.output) {
        let kind = match a.kind {
            KeyKind::Aes256 => AdminKind::Aes256,
            KeyKind::Rsa3072 => AdminKind::Rsa(3072),
            KeyKind::Rsa4096 => AdminKind::Rsa(4096),
            KeyKind::EcP256 => AdminKind::EcP256,
            KeyKind::EcP384 => AdminKind::EcP384,
        };
        let (admin, uri) = open_admin(&a.output)?;
        let created = super::runtime()?.block_on(admin.create(&uri, kind))?;
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
        KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
            let bits = if matches!(a.kind, KeyKind::Rsa3072) {
                3072
            } else {
                4096
            };
            let (private, public) = pair_paths(&a.output)?;
            let (priv_pem, pub_pem) = hyok_keystore::raw::rsa::generate_pem(bits)?;
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
    for p in [&private, &public] {
        if p.exists() {
            return Err(Usage::err(
                format!("{} already exists", p.display()),
                Some("refusing to overwrite a key; choose another name"),
            ));
        }
    }
    Ok((private, public))
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

pub(crate) fn list(a: KeyUriArgs) -> Result<()> {
    let (admin, uri) = open_admin(&a.uri)?;
    let keys = super::runtime()?.block_on(admin.list(&uri))?;
    if keys.is_empty() {
        eprintln!("no keys");
    }
    for k in keys {
        let attrs: Vec<String> = k
            .attributes
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        println!("{}\t{}\t{}\t{}", k.name, k.id, k.kind, attrs.join(" "));
    }
    Ok(())
}

pub(crate) fn rotate(a: KeyUriArgs, audit_file: AuditSettings) -> Result<()> {
    let audit = Session::open(audit_file)?;
    let started = Instant::now();
    let result = (|| -> Result<String> {
        let (admin, uri) = open_admin(&a.uri)?;
        Ok(super::runtime()?.block_on(admin.rotate(&uri))?)
    })();
    audit.key_admin(
        AdminOp::KeyRotate,
        &a.uri,
        result.as_ref().ok().cloned(),
        started,
        &result,
    );
    let msg = audit.finish(result)?;
    eprintln!("{msg}");
    Ok(())
}

pub(crate) fn destroy(a: KeyDestroyArgs, audit_file: AuditSettings) -> Result<()> {
    if !a.yes {
        return Err(Usage::err(
            format!(
                "destroying {} makes every message that only this key wraps unreadable forever",
                a.uri
            ),
            Some("pass --yes to confirm (crypto-shredding)"),
        ));
    }
    let audit = Session::open(audit_file)?;
    let started = Instant::now();
    let result = (|| -> Result<String> {
        let (admin, uri) = open_admin(&a.uri)?;
        Ok(super::runtime()?.block_on(admin.destroy(&uri))?)
    })();
    audit.key_admin(
        AdminOp::KeyDestroy,
        &a.uri,
        result.as_ref().ok().cloned(),
        started,
        &result,
    );
    let msg = audit.finish(result)?;
    eprintln!("{msg}; messages wrapped only by this key can no longer be decrypted");
    Ok(())
}
