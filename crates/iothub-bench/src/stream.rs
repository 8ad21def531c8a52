//! The byte stream under a bench connection, plain TCP or TLS over TCP, split into a reading
//! and a writing half so that a client can wait on both at once.
//!
//! Plain TCP keeps tokio's owned halves, so a run without TLS pays nothing for the option. This
//! module does no MQTT and opens no sockets; `tls.rs` does the TLS handshake.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The reading half of a connection's stream.
#[derive(Debug)]
pub enum Reader {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS over TCP: plaintext out of rustls.
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a connection's stream.
///
/// A write over TLS is reported only once the records that carry it are on the socket, not
/// when rustls has merely buffered them: a client that has nothing more to write would
/// otherwise leave its last PUBACK or PUBLISH inside rustls and wait for an answer forever. To
/// keep that promise across a write that has to wait, the TLS half remembers how many bytes it
/// took, so a caller that sees `Pending` must offer the same bytes again. Every writer in this
/// crate does: it writes from the front of a buffer that it advances only by what a write
/// reported.
#[derive(Debug)]
pub enum Writer {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS over TCP.
    Tls {
        /// The half that encrypts into rustls and writes records to the socket.
        half: WriteHalf<TlsStream<TcpStream>>,
        /// Bytes rustls took whose records are not all on the socket yet.
        taken: usize,
    },
}

/// Splits a plain TCP connection.
pub fn tcp(stream: TcpStream) -> (Reader, Writer) {
    let (reader, writer) = stream.into_split();
    (Reader::Tcp(reader), Writer::Tcp(writer))
}

/// Splits a TLS connection whose handshake is complete.
pub fn tls(stream: TlsStream<TcpStream>) -> (Reader, Writer) {
    let (reader, writer) = tokio::io::split(stream);
    (Reader::Tls(reader), Writer::Tls { half: writer, taken: 0 })
}

impl AsyncRead for Reader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Reader::Tcp(half) => Pin::new(half).poll_read(cx, buf),
            Reader::Tls(half) => Pin::new(half).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Writer {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(half) => Pin::new(half).poll_write(cx, buf),
            Writer::Tls { half, taken } => {
                if *taken == 0 {
                    *taken = ready!(Pin::new(&mut *half).poll_write(cx, buf))?;
                }
                ready!(Pin::new(&mut *half).poll_flush(cx))?;
                Poll::Ready(Ok(std::mem::take(taken)))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(half) => Pin::new(half).poll_flush(cx),
            Writer::Tls { half, .. } => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(half) => Pin::new(half).poll_shutdown(cx),
            Writer::Tls { half, .. } => Pin::new(half).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use iothub_test_util::pki::TestPki;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{crypto::ring, ServerConfig};
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::tls::TlsClient;

    /// A TLS server for `pki`'s certificate on loopback, with a small receive buffer.
    async fn server(pki: &TestPki) -> (tokio::net::TcpListener, TlsAcceptor) {
        let chain =
            CertificateDer::pem_file_iter(&pki.cert_file).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(&pki.key_file).unwrap();
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        (socket.listen(16).unwrap(), TlsAcceptor::from(Arc::new(config)))
    }

    /// Writes in chunks until a write has waited for 200 ms, so the socket is full, and returns
    /// the bytes the writes reported; then reads at the other end until nothing more comes. Every
    /// byte reported written must arrive although nothing writes or flushes afterwards.
    #[tokio::test]
    async fn a_tls_write_is_reported_only_once_its_records_are_on_the_socket() {
        let pki = TestPki::new("bench-stream");
        let (listener, acceptor) = server(&pki).await;
        let address = listener.local_addr().unwrap();
        let accepting = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        });
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let tcp = socket.connect(address).await.unwrap();
        let client = TlsClient::new(&pki.ca_file, "127.0.0.1").unwrap();
        let (_reader, mut writer) = tls(client.connect(tcp).await.unwrap());
        let mut server = accepting.await.unwrap();

        let chunk = vec![0x5A; 1024];
        let mut reported = 0;
        loop {
            match tokio::time::timeout(Duration::from_millis(200), writer.write(&chunk)).await {
                Ok(written) => reported += written.unwrap(),
                Err(_) => break,
            }
            assert!(reported < 64 << 20, "the socket never filled");
        }
        let mut received = 0;
        let mut buf = vec![0; 64 * 1024];
        while let Ok(read) = tokio::time::timeout(Duration::from_millis(500), server.read(&mut buf)).await {
            match read.unwrap() {
                0 => break,
                n => received += n,
            }
        }
        assert!(reported > 0, "nothing was written");
        assert!(received >= reported, "reported {reported} bytes written, {received} arrived");
        writer.shutdown().await.ok();
    }
}
