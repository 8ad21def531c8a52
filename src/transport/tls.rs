//! TLS for `tls://` and `wss://` listeners: rustls (with the ring provider, TLS 1.2 and 1.3)
//! configured from `[tls]`'s PEM files, optional client certificates verified against
//! `ca_file`, and the Common Name of a verified client certificate for
//! `use_identity_as_username`.
//!
//! The configuration lives behind a lock so that SIGHUP can swap in new files
//! (`TlsFiles::reload`); a handshake takes the configuration current when it starts, so
//! connections already up keep theirs and nothing is dropped.

use std::io;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use x509_cert::der::Decode;

use crate::config::TlsConfig;

/// The `[tls]` files and the rustls configuration last built from them.
#[derive(Debug)]
pub(crate) struct TlsFiles {
    settings: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    /// When the server certificate in force expires, in Unix seconds.
    expiry: RwLock<Option<u64>>,
}

impl TlsFiles {
    /// Reads the certificate chain, the key and the CA bundle that `settings` name. Every
    /// problem names the key and the file: a missing or unreadable file, a file without a PEM
    /// certificate (an empty CA bundle is an error, never "trust nothing" or "trust anyone"), a
    /// key that does not belong to the certificate.
    pub(crate) fn load(settings: &TlsConfig) -> Result<TlsFiles, String> {
        let config = build(settings)?;
        Ok(TlsFiles {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(config)),
            expiry: RwLock::new(certificate_expiry(settings)),
        })
    }

    /// Reads the files again. On success new handshakes use them; on failure the files in force
    /// stay so and the problem is returned.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let config = build(&self.settings)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        *self.expiry.write().unwrap_or_else(PoisonError::into_inner) = certificate_expiry(&self.settings);
        Ok(())
    }

    /// When the server certificate in force expires, in Unix seconds.
    pub(crate) fn not_after(&self) -> Option<u64> {
        *self.expiry.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a verified client certificate's Common Name replaces CONNECT's username.
    pub(crate) fn identity_as_username(&self) -> bool {
        self.settings.use_identity_as_username
    }

    /// Runs the server side of a TLS handshake on `stream` with the configuration now in force,
    /// and returns the stream and the Common Name of the client's certificate, if it presented
    /// one (rustls has verified it against `ca_file` by then).
    pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> io::Result<(TlsStream<S>, Option<String>)> {
        let config = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        let stream = TlsAcceptor::from(config).accept(stream).await?;
        let identity =
            stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(common_name);
        Ok((stream, identity))
    }
}

/// When the first certificate of `cert_file` expires, in Unix seconds.
fn certificate_expiry(settings: &TlsConfig) -> Option<u64> {
    let chain = certificates("tls.cert_file", Path::new(settings.cert_file.as_deref()?)).ok()?;
    let certificate = x509_cert::Certificate::from_der(chain.first()?.as_ref()).ok()?;
    Some(certificate.tbs_certificate().validity().not_after.to_unix_duration().as_secs())
}

/// The Common Name of a DER certificate's subject, if it has one that is a string.
fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let certificate = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let name = certificate.tbs_certificate().subject().common_name().ok()??;
    Some(String::from(name))
}

/// A rustls server configuration from `settings`' files.
fn build(settings: &TlsConfig) -> Result<ServerConfig, String> {
    let (Some(cert_file), Some(key_file)) = (&settings.cert_file, &settings.key_file) else {
        return Err("tls.cert_file and tls.key_file are required".to_owned());
    };
    let chain = certificates("tls.cert_file", Path::new(cert_file))?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        format!("tls.key_file {key_file}: no usable PEM private key (PKCS#8, RSA or EC): {e}")
    })?;
    let provider = Arc::new(ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("[tls]: {e}"))?;
    let builder = match &settings.ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates("tls.ca_file", Path::new(ca_file))? {
                roots.add(certificate).map_err(|e| format!("tls.ca_file {ca_file}: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier =
                if settings.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| format!("tls.ca_file {ca_file}: {e}"))?,
            )
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls.key_file {key_file} with tls.cert_file {cert_file}: {e}"))
}

/// Every certificate of a PEM file; none at all is an error.
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("{key} {shown}: cannot read it: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {shown}: not a PEM certificate file: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{key} {shown}: it holds no PEM certificate"));
    }
    Ok(chain)
}
