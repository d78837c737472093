//! TLS trust: system roots, a CA file, a pinned leaf fingerprint, or (warned
//! about) no verification. Every mode builds a rustls `ClientConfig` on the
//! ring provider explicitly, so it works whether or not a process-wide
//! provider was installed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

use super::error::TlsFailure;

/// How the server certificate is verified.
#[derive(Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// The operating system's trust store (default).
    SystemRoots,
    /// Trust anchors from a PEM file (e.g. Proxmox's `pve-root-ca.pem`); host
    /// names are still checked.
    CaFile(PathBuf),
    /// Accept exactly the leaf certificate with this SHA-256 digest (of its
    /// DER encoding), whatever its issuer, name or dates.
    PinnedSha256([u8; 32]),
    /// No verification at all. Must be logged as a warning at every start.
    Insecure,
}

impl fmt::Debug for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsMode::SystemRoots => f.write_str("SystemRoots"),
            TlsMode::CaFile(p) => f.debug_tuple("CaFile").field(p).finish(),
            TlsMode::PinnedSha256(fp) => write!(f, "PinnedSha256({})", format_fingerprint(fp)),
            TlsMode::Insecure => f.write_str("Insecure"),
        }
    }
}

impl TlsMode {
    /// Short description for logs (`test-auth`, startup line).
    pub fn describe(&self) -> String {
        match self {
            TlsMode::SystemRoots => "system trust store".into(),
            TlsMode::CaFile(p) => format!("CA file {}", p.display()),
            TlsMode::PinnedSha256(fp) => format!("pinned SHA-256 {}", format_fingerprint(fp)),
            TlsMode::Insecure => "INSECURE (certificate not verified)".into(),
        }
    }
}

/// Parses `AB:CD:…` (colons optional, any case) into 32 bytes.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    if hex.len() != 64 {
        return Err(format!(
            "a SHA-256 fingerprint has 64 hex digits, found {}",
            hex.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "a SHA-256 fingerprint holds only hex digits and colons".to_string())?;
    }
    Ok(out)
}

/// Formats as upper-case hex pairs joined by `:` (the Proxmox UI's form).
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// SHA-256 of a DER certificate.
pub fn certificate_fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration for a mode. HTTP/1.1 only: Proxmox
/// does not speak HTTP/2, and only HTTP/1 carries reason phrases.
pub fn client_config(mode: &TlsMode) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = match mode {
        TlsMode::SystemRoots => {
            let loaded = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (_added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if roots.is_empty() {
                return Err("no usable certificates in the system trust store".into());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::CaFile(path) => {
            let roots = roots_from_pem_file(path)?;
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            builder.with_webpki_verifier(verifier).with_no_client_auth()
        }
        TlsMode::PinnedSha256(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LeafVerifier {
                pin: Some(*fp),
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        TlsMode::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LeafVerifier {
                pin: None,
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn roots_from_pem_file(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(roots)
}

/// Marker error carried inside rustls' `CertificateError::Other`, so the
/// HTTP layer can recognise a pin mismatch among other TLS failures.
#[derive(Debug)]
pub struct PinMismatch;

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TlsFailure::PIN_MISMATCH)
    }
}

impl std::error::Error for PinMismatch {}

/// Checks only the leaf certificate: with a pin, exactly that certificate is
/// accepted (the pin replaces chain, name and date checks); without one
/// (`insecure: true`) any certificate is. Either way the handshake signature
/// is verified against the presented certificate's key, so with a pin the
/// server must hold the pinned certificate's private key.
#[derive(Debug)]
struct LeafVerifier {
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            Some(pin) if certificate_fingerprint(end_entity.as_ref()) != pin => {
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    rustls::OtherError(Arc::new(PinMismatch)),
                )))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Turns a rustls error into one of the clear operator-facing texts.
pub fn describe_tls_error(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(cert_err) => match cert_err {
            CertificateError::Other(other) if other.0.downcast_ref::<PinMismatch>().is_some() => {
                TlsFailure::PIN_MISMATCH.into()
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsFailure::NOT_TRUSTED.into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsFailure::WRONG_NAME.into()
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsFailure::EXPIRED.into(),
            other => format!("invalid certificate: {other}"),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_round_trip_accepts_colons_and_case() {
        let fp = certificate_fingerprint(b"hello");
        let text = format_fingerprint(&fp);
        assert_eq!(text.len(), 32 * 3 - 1);
        assert_eq!(parse_fingerprint(&text).unwrap(), fp);
        assert_eq!(
            parse_fingerprint(&text.replace(':', "").to_lowercase()).unwrap(),
            fp
        );
        assert!(parse_fingerprint("AB:CD").is_err());
        assert!(parse_fingerprint(&"ZZ".repeat(32)).is_err());
    }

    #[test]
    fn pin_mismatch_is_described_clearly() {
        let err = rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
            Arc::new(PinMismatch),
        )));
        assert_eq!(
            describe_tls_error(&err),
            "certificate fingerprint does not match the pinned fingerprint"
        );
        let err = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(describe_tls_error(&err).starts_with("certificate not trusted"));
    }

    #[test]
    fn every_mode_builds_a_config() {
        for mode in [TlsMode::PinnedSha256([0; 32]), TlsMode::Insecure] {
            let cfg = client_config(&mode).unwrap();
            assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
        let err = client_config(&TlsMode::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"));
    }

    #[test]
    fn debug_shows_pin_as_hex() {
        let dbg = format!("{:?}", TlsMode::PinnedSha256([0xAB; 32]));
        assert!(dbg.starts_with("PinnedSha256(AB:AB"));
    }
}
