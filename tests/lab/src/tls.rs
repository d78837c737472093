//! The lab's TLS identity: one self-signed certificate for `127.0.0.1` and
//! `localhost`, generated at start and shared by every listener, so tests can
//! pin its SHA-256 fingerprint or trust its PEM as a CA file.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the lab certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("building the TLS server configuration failed: {0}")]
    Config(#[from] rustls::Error),
}

impl TlsError {
    pub fn label(&self) -> &'static str {
        match self {
            TlsError::Generate(_) => "tls_generate",
            TlsError::Config(_) => "tls_config",
        }
    }
}

/// The generated certificate and its key (the key never leaves this type).
pub struct LabCert {
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
    pem: String,
    fingerprint: [u8; 32],
}

impl std::fmt::Debug for LabCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabCert")
            .field("fingerprint_sha256", &self.fingerprint_sha256())
            .finish_non_exhaustive()
    }
}

impl LabCert {
    /// A fresh self-signed certificate (ECDSA P-256, a few milliseconds).
    pub fn generate() -> Result<LabCert, TlsError> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])?;
        let cert_der = certified.cert.der().clone();
        let fingerprint: [u8; 32] = Sha256::digest(cert_der.as_ref()).into();
        Ok(LabCert {
            pem: certified.cert.pem(),
            key_der: certified.signing_key.serialize_der(),
            cert_der,
            fingerprint,
        })
    }

    /// The certificate in PEM form (usable as a CA file: it is self-signed).
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    pub fn cert_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

    /// SHA-256 of the DER certificate, e.g. `AB:CD:…` (upper-case, colons).
    pub fn fingerprint_sha256(&self) -> String {
        format_fingerprint(&self.fingerprint)
    }

    pub fn fingerprint_bytes(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// A rustls server configuration (ring provider, HTTP/1.1 only via ALPN).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.cert_der.clone()], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// SHA-256 fingerprint of DER bytes as upper-case colon-separated hex.
pub fn fingerprint_of(der: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(der).into();
    format_fingerprint(&digest)
}

fn format_fingerprint(bytes: &[u8; 32]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
