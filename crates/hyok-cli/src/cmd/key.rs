//! `hyok key new`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use zeroize::Zeroizing;

use crate::args::{KeyKind, KeyNewArgs};
use crate::io::create_new;
use crate::Usage;

pub(crate) fn new(a: KeyNewArgs) -> Result<()> {
    const STORE_SCHEMES: [&str; 3] = ["pkcs11:", "vault-transit:", "kmip://"];
    if STORE_SCHEMES.iter().any(|s| a.output.starts_with(s)) {
        return Err(Usage::new(
            format!("this build cannot create keys in {}", a.output),
            Some("create a local key with -o FILE"),
        ));
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
                    return Err(Usage::new(
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
