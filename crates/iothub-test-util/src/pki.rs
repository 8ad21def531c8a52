//! A throw-away public key infrastructure for TLS tests: a CA, a server certificate for
//! `127.0.0.1` and `localhost`, and client certificates with a chosen Common Name, written as
//! PEM files into a directory of the test's own; plus rustls client configurations that trust
//! the CA, with or without a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::OrFail;

/// PEM files of a CA, a server certificate signed by it, and client certificates.
pub struct TestPki {
    /// The directory the files are in.
    pub dir: PathBuf,
    /// The CA certificate (`tls.ca_file`, and what clients trust).
    pub ca_file: PathBuf,
    /// The server's certificate (`tls.cert_file`).
    pub cert_file: PathBuf,
    /// The server's key (`tls.key_file`).
    pub key_file: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A client certificate and its key, as files.
pub struct ClientCert {
    /// PEM certificate.
    pub cert_file: PathBuf,
    /// PEM key.
    pub key_file: PathBuf,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).or_fail("writing a PEM file");
}

impl TestPki {
    /// A new CA and server certificate in a fresh directory named after `name`.
    pub fn new(name: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("iothub-pki-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).or_fail("the PKI directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).or_fail("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "IoTHub test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().or_fail("a CA key"))
            .or_fail("the CA certificate");
        let ca_file = dir.join("ca.crt");
        write(&ca_file, &issuer.pem());
        let pki = TestPki {
            cert_file: dir.join("server.crt"),
            key_file: dir.join("server.key"),
            ca_file,
            dir,
            issuer,
        };
        pki.server_cert("server");
        pki
    }

    /// Writes a new server certificate and key (for `127.0.0.1` and `localhost`, with `name`
    /// as Common Name) over `cert_file` and `key_file`.
    pub fn server_cert(&self, name: &str) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .or_fail("server parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().or_fail("a server key");
        let cert = params.signed_by(&key, &self.issuer).or_fail("the server certificate");
        write(&self.cert_file, &cert.pem());
        write(&self.key_file, &key.serialize_pem());
    }

    /// A client certificate with Common Name `name`, signed by this CA.
    pub fn client_cert(&self, name: &str) -> ClientCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).or_fail("client parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().or_fail("a client key");
        let cert = params.signed_by(&key, &self.issuer).or_fail("the client certificate");
        let files = ClientCert {
            cert_file: self.dir.join(format!("client-{name}.crt")),
            key_file: self.dir.join(format!("client-{name}.key")),
        };
        write(&files.cert_file, &cert.pem());
        write(&files.key_file, &key.serialize_pem());
        files
    }

    /// The `[tls]` section for these files, with extra lines.
    pub fn tls_toml(&self, extra: &str) -> String {
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\n{extra}",
            self.cert_file.display().to_string(),
            self.key_file.display().to_string(),
            self.ca_file.display().to_string()
        )
    }

    /// A rustls client configuration that trusts this CA and presents `client`, if given.
    pub fn client_config(&self, client: Option<&ClientCert>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_file).or_fail("the CA file") {
            roots.add(cert.or_fail("a CA certificate")).or_fail("trusting the CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .or_fail("TLS versions")
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some(client) => {
                let chain = CertificateDer::pem_file_iter(&client.cert_file)
                    .or_fail("the client certificate")
                    .collect::<Result<Vec<_>, _>>()
                    .or_fail("a client certificate");
                let key = PrivateKeyDer::from_pem_file(&client.key_file).or_fail("the client key");
                builder.with_client_auth_cert(chain, key).or_fail("the client certificate and key")
            }
        };
        Arc::new(config)
    }
}

/// A blocking raw-bytes client over TLS, for exact exchanges. Every read fails the test after
/// [`crate::WAIT`].
pub struct TlsClient {
    /// The TLS stream.
    pub stream: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
}

impl TlsClient {
    /// Connects to `addr` and completes the handshake for server name `127.0.0.1`.
    pub fn connect(addr: std::net::SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsClient> {
        TlsClient::connect_after(addr, config, &[])
    }

    /// Connects to `addr`, sends `prefix` in the clear (a PROXY protocol header, say) and
    /// completes the handshake for server name `127.0.0.1`.
    pub fn connect_after(
        addr: std::net::SocketAddr,
        config: Arc<ClientConfig>,
        prefix: &[u8],
    ) -> std::io::Result<TlsClient> {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(crate::WAIT))?;
        tcp.write_all(prefix)?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").or_fail("a server name");
        let connection = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient { stream })
    }

    /// Sends bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).or_fail("sending over TLS");
        self.stream.flush().or_fail("flushing TLS");
    }

    /// Reads one whole MQTT packet, or the error that ended the stream.
    pub fn read_packet(&mut self) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut packet = vec![0; 2];
        self.stream.read_exact(&mut packet)?;
        let mut len = usize::from(packet[1] & 0x7F);
        let mut shift = 7;
        let mut last = packet[1];
        while last & 0x80 != 0 {
            let mut byte = [0];
            self.stream.read_exact(&mut byte)?;
            last = byte[0];
            packet.push(last);
            len |= usize::from(last & 0x7F) << shift;
            shift += 7;
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        packet.extend(body);
        Ok(packet)
    }
}
