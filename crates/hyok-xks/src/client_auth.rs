//! Mutual TLS: a client certificate must chain to `client_ca` (rustls's WebPKI verifier)
//! *and* carry one of the allowed subject common names — by default
//! `cks.kms.<region>.amazonaws.com` for the regions of the configured stores, the name AWS
//! KMS presents (specification, "Authentication"). A certificate with another name ends the
//! handshake.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Checks the chain with `inner`, then the subject common name.
#[derive(Debug)]
pub struct SubjectCheck {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<String>,
}

impl SubjectCheck {
    /// Require one of `names` as the subject CN of chains `inner` accepts.
    pub fn new(inner: Arc<dyn ClientCertVerifier>, names: Vec<String>) -> Self {
        Self { inner, names }
    }
}

impl ClientCertVerifier for SubjectCheck {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cns = subject_common_names(end_entity).ok_or(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        ))?;
        if cns.iter().any(|cn| self.names.iter().any(|n| n == cn)) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// One DER TLV: (tag, content, rest). Lengths are bounded by the input.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The subject common names (OID 2.5.4.3) of an X.509 certificate.
pub fn subject_common_names(der: &[u8]) -> Option<Vec<String>> {
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // version
    }
    // serial, signature algorithm, issuer, validity
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (0x30, mut subject, _) = tlv(rest)? else {
        return None;
    };
    let mut names = Vec::new();
    while !subject.is_empty() {
        let (0x31, mut set, next) = tlv(subject)? else {
            return None;
        };
        subject = next;
        while !set.is_empty() {
            let (0x30, atv, next) = tlv(set)? else {
                return None;
            };
            set = next;
            let (0x06, oid, value) = tlv(atv)? else {
                return None;
            };
            if oid == [0x55, 0x04, 0x03] {
                let (tag, v, _) = tlv(value)?;
                if matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
                    names.push(String::from_utf8(v.to_vec()).ok()?);
                }
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_input_is_refused_not_panicking() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x02, 0x30, 0x05],
        ] {
            assert_eq!(subject_common_names(bad), None);
        }
    }
}
