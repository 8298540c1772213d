//! `hyok key new`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use hyok_keystore::admin::{is_store_uri, open_admin, KeyKind as AdminKind};

use crate::args::{KeyDestroyArgs, KeyKind, KeyNewArgs, KeyUriArgs};
use crate::io::create_new;
use crate::Usage;

pub(crate) fn new(a: KeyNewArgs) -> Result<()> {
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
        return Ok(());
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
        }
        KeyKind::EcP256 | KeyKind::EcP384 => {
            return Err(Usage::err(
                "EC keys are created inside a key store (pkcs11:…); local EC keys: use openssl genpkey",
                None,
            ));
        }
        KeyKind::Rsa3072 | KeyKind::Rsa4096 => {
            let bits = if matches!(a.kind, KeyKind::Rsa3072) {
                3072
            } else {
                4096
            };
            let private = PathBuf::from(format!("{}.pem", a.output));
            let public = PathBuf::from(format!("{}.pub.pem", a.output));
            for p in [&private, &public] {
                if p.exists() {
                    return Err(Usage::err(
                        format!("{} already exists", p.display()),
                        Some("refusing to overwrite a key; choose another name"),
                    ));
                }
            }
            let (priv_pem, pub_pem) = hyok_keystore::raw::rsa::generate_pem(bits)?;
            let mut f = create_new(&private, 0o600)?;
            f.write_all(priv_pem.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", private.display()))?;
            let mut f = create_new(&public, 0o644)?;
            f.write_all(pub_pem.as_bytes())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", public.display()))?;
            eprintln!(
                "created RSA-{bits} key pair {} (private, mode 0600) and {} (public)",
                private.display(),
                public.display()
            );
        }
    }
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

pub(crate) fn rotate(a: KeyUriArgs) -> Result<()> {
    let (admin, uri) = open_admin(&a.uri)?;
    let msg = super::runtime()?.block_on(admin.rotate(&uri))?;
    eprintln!("{msg}");
    Ok(())
}

pub(crate) fn destroy(a: KeyDestroyArgs) -> Result<()> {
    if !a.yes {
        return Err(Usage::err(
            format!(
                "destroying {} makes every message that only this key wraps unreadable forever",
                a.uri
            ),
            Some("pass --yes to confirm (crypto-shredding)"),
        ));
    }
    let (admin, uri) = open_admin(&a.uri)?;
    let msg = super::runtime()?.block_on(admin.destroy(&uri))?;
    eprintln!("{msg}; messages wrapped only by this key can no longer be decrypted");
    Ok(())
}
