//! TLS for every connection of a run (`--tls-ca FILE`, `--tls-server-name NAME`): a rustls
//! client with the ring provider, the broker's own TLS stack, trusting only the CA certificates
//! of the file given.
//!
//! Every connection makes a full handshake: session resumption is off, so a connection storm
//! measures what a fleet of new devices costs the broker, the same for every broker. No client
//! certificate is presented.

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::cli::Target;
use crate::error::BenchError;

/// The TLS client side shared by every connection of a run.
#[derive(Debug)]
pub struct TlsClient {
    /// The run's client configuration.
    config: Arc<ClientConfig>,
    /// The name the broker's certificate must hold.
    server_name: ServerName<'static>,
    /// Protocol version and cipher suite of the first completed handshake, for the report.
    negotiated: OnceLock<String>,
}

impl TlsClient {
    /// The TLS client `target` asks for, or `None` for plain TCP.
    pub fn from_target(target: &Target) -> Result<Option<Arc<TlsClient>>, BenchError> {
        match &target.tls_ca {
            None => Ok(None),
            Some(ca) => TlsClient::new(ca, &target.tls_server_name).map(|client| Some(Arc::new(client))),
        }
    }

    /// A client that trusts the certificates of the PEM file `ca` and expects a server
    /// certificate for `server_name` (a DNS name or an IP address).
    pub fn new(ca: &Path, server_name: &str) -> Result<TlsClient, BenchError> {
        let shown = ca.display();
        let mut roots = RootCertStore::empty();
        let certificates = CertificateDer::pem_file_iter(ca)
            .map_err(|e| BenchError::Config(format!("--tls-ca {shown}: {e}")))?;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|e| BenchError::Config(format!("--tls-ca {shown}: {e}")))?;
            roots.add(certificate).map_err(|e| BenchError::Config(format!("--tls-ca {shown}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(BenchError::Config(format!("--tls-ca {shown}: it holds no PEM certificate")));
        }
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| BenchError::Config(format!("--tls-server-name {server_name}: {e}")))?;
        let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| BenchError::Config(format!("TLS versions: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Ok(TlsClient { config: Arc::new(config), server_name, negotiated: OnceLock::new() })
    }

    /// Runs the client side of a handshake over `tcp`.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let connector = TlsConnector::from(Arc::clone(&self.config));
        let stream = connector.connect(self.server_name.clone(), tcp).await?;
        if self.negotiated.get().is_none() {
            let session = stream.get_ref().1;
            let version = session.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
            let suite =
                session.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
            let _ = self.negotiated.set(format!("{version} {suite}"));
        }
        Ok(stream)
    }

    /// Protocol version and cipher suite of the first handshake, e.g.
    /// `TLSv1_3 TLS13_AES_256_GCM_SHA384`; `None` before any completed.
    pub fn negotiated(&self) -> Option<&str> {
        self.negotiated.get().map(String::as_str)
    }
}
