//! Opening MQTT connections for a run: TCP (optionally from a chosen loopback source address),
//! TLS when the run asks for it, CONNECT and CONNACK, SUBSCRIBE and SUBACK, and the read buffer
//! every side decodes from. Each connection speaks the protocol version it was opened with,
//! 3.1.1 or 5.0, in both directions.
//!
//! Each step of set-up is bounded by `SETUP_TIMEOUT`. What a connection does once set up (publish,
//! acknowledge, idle) lives with its scenario; this module has no notion of a run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use iothub_protocol::{decode, Packet, ProtocolVersion, QoS, ReasonCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::cli::Target;
use crate::error::BenchError;
use crate::stream::{self, Reader, Writer};
use crate::tls::TlsClient;
use crate::wire::{self, PacketIds, MAX_PACKET};

/// Longest any single set-up step (TCP connect, TLS and CONNACK, SUBACK) may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Keep-alive every bench client announces, in seconds.
pub const KEEP_ALIVE_SECS: u16 = 60;

/// How long a client stays silent before it sends PINGREQ: three quarters of the keep-alive,
/// so a PINGREQ always arrives within the interval [MQTT-3.1.2-23].
pub const PING_AFTER: Duration = Duration::from_secs(KEEP_ALIVE_SECS as u64 * 3 / 4);

/// An established MQTT connection, split so that reading and writing can wait side by side.
#[derive(Debug)]
pub struct Connection {
    /// Client identifier sent in CONNECT, for messages.
    pub client_id: String,
    /// The protocol version of every packet sent and received.
    pub version: ProtocolVersion,
    /// 5.0 only: the broker's Receive Maximum from CONNACK, the most QoS 1/2 publications it
    /// accepts unacknowledged from this client; `None` when it sent none (no limit but 65,535).
    pub send_quota: Option<u16>,
    /// Receiving half of the stream.
    pub reader: Reader,
    /// Sending half of the stream.
    pub writer: Writer,
    /// Bytes read and not yet decoded.
    pub inbox: BytesMut,
    /// Bytes to make room for before each read.
    pub read_chunk: usize,
}

/// The source address for connection number `index` when `source_ips` loopback addresses
/// (127.0.0.1, 127.0.0.2, ...) are shared round-robin; `None` leaves the choice to the kernel.
pub fn source_address(index: usize, source_ips: u32) -> Option<IpAddr> {
    if source_ips <= 1 {
        return None;
    }
    let offset = u32::try_from(index % source_ips as usize).unwrap_or(0);
    Some(IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + offset)))
}

/// Resolves the broker's address, preferring IPv4. Several source addresses need a loopback
/// broker: they are taken from 127.0.0.0/8.
pub async fn resolve(target: &Target) -> Result<SocketAddr, BenchError> {
    let what = format!("resolving {}:{}", target.host, target.port);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| BenchError::io(&what, e))?
        .collect();
    let broker = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| BenchError::Config(format!("{what}: no address found")))?;
    if target.source_ips > 1 && !(broker.is_ipv4() && broker.ip().is_loopback()) {
        return Err(BenchError::Config(format!(
            "--source-ips needs a broker on an IPv4 loopback address, not {broker}"
        )));
    }
    Ok(broker)
}

/// Opens a TCP connection to `broker`, bound to `source` first if given, with Nagle off.
pub async fn open_tcp(broker: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if broker.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(broker).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads more bytes into `inbox`, keeping at least a quarter of `chunk` free for the read.
/// Returns the number of bytes read; end of stream is an error.
pub async fn read_more(reader: &mut Reader, inbox: &mut BytesMut, chunk: usize) -> std::io::Result<usize> {
    if inbox.capacity() - inbox.len() < chunk / 4 {
        inbox.reserve(chunk);
    }
    match reader.read_buf(inbox).await? {
        0 => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the broker closed the connection")),
        n => Ok(n),
    }
}

/// Decodes the next whole packet in `inbox`, if there is one, in the wire format of `version`.
pub fn next_packet(
    inbox: &mut BytesMut,
    version: ProtocolVersion,
    client_id: &str,
) -> Result<Option<Packet>, BenchError> {
    decode(inbox, version, MAX_PACKET).map_err(|e| BenchError::Broker(format!("{client_id}: {e}")))
}

/// The error for a DISCONNECT from the broker (5.0), with its reason.
pub fn disconnected(client_id: &str, reason: ReasonCode) -> BenchError {
    BenchError::Broker(format!("{client_id}: the broker disconnected: {reason:?} ({:#04x})", reason.value()))
}

impl Connection {
    /// Makes the TLS handshake over `stream` if `tls` is given, then sends a CONNECT in
    /// `version` and waits for a successful CONNACK.
    pub async fn handshake(
        stream: TcpStream,
        tls: Option<&TlsClient>,
        client_id: &str,
        read_chunk: usize,
        version: ProtocolVersion,
    ) -> Result<Connection, BenchError> {
        let (reader, writer) = match tls {
            None => stream::tcp(stream),
            Some(tls) => stream::tls(
                tls.connect(stream)
                    .await
                    .map_err(|e| BenchError::io(format!("{client_id}: TLS handshake"), e))?,
            ),
        };
        let mut connection = Connection {
            client_id: client_id.to_owned(),
            version,
            send_quota: None,
            reader,
            writer,
            inbox: BytesMut::with_capacity(read_chunk),
            read_chunk,
        };
        connection.send(&wire::connect(client_id, KEEP_ALIVE_SECS, version)).await?;
        match connection.receive().await? {
            Packet::ConnAck(ack) if ack.reason_code == ReasonCode::Success => {
                connection.send_quota =
                    ack.properties.as_ref().and_then(|p| p.receive_maximum).map(std::num::NonZeroU16::get);
                Ok(connection)
            }
            Packet::ConnAck(ack) => Err(BenchError::Refused {
                client_id: client_id.to_owned(),
                code: if version == ProtocolVersion::V5 {
                    ack.reason_code.value()
                } else {
                    ack.reason_code.v3_connack_code()
                },
            }),
            other => Err(BenchError::Broker(format!("{client_id}: expected CONNACK, got {}", other.name()))),
        }
    }

    /// Opens TCP, then TLS if `tls` is given, and completes the MQTT handshake in `version`, all
    /// within `SETUP_TIMEOUT`.
    pub async fn establish(
        broker: SocketAddr,
        source: Option<IpAddr>,
        tls: Option<&TlsClient>,
        client_id: &str,
        read_chunk: usize,
        version: ProtocolVersion,
    ) -> Result<Connection, BenchError> {
        let attempt = async {
            let stream = open_tcp(broker, source)
                .await
                .map_err(|e| BenchError::io(format!("{client_id}: connecting to {broker}"), e))?;
            Connection::handshake(stream, tls, client_id, read_chunk, version).await
        };
        tokio::time::timeout(SETUP_TIMEOUT, attempt)
            .await
            .map_err(|_| BenchError::Broker(format!("{client_id}: no CONNACK within {SETUP_TIMEOUT:?}")))?
    }

    /// Subscribes to `filter` at `qos` and waits for a SUBACK that does not refuse it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), BenchError> {
        let packet_id = PacketIds::new().next_id();
        self.send(&wire::subscribe(packet_id, filter, qos)).await?;
        let answer = tokio::time::timeout(SETUP_TIMEOUT, self.receive()).await.map_err(|_| {
            BenchError::Broker(format!("{}: no SUBACK within {SETUP_TIMEOUT:?}", self.client_id))
        })??;
        match answer {
            Packet::SubAck(ack)
                if ack.packet_id == packet_id && ack.reason_codes.iter().all(|c| c.is_success()) =>
            {
                Ok(())
            }
            Packet::SubAck(_) => Err(BenchError::Broker(format!(
                "{}: the broker refused the subscription to {filter}",
                self.client_id
            ))),
            other => {
                Err(BenchError::Broker(format!("{}: expected SUBACK, got {}", self.client_id, other.name())))
            }
        }
    }

    /// Writes one packet and waits until the kernel has it (over TLS, its records).
    pub async fn send(&mut self, packet: &Packet) -> Result<(), BenchError> {
        let mut buf = BytesMut::with_capacity(packet.size(self.version));
        wire::put(packet, self.version, &mut buf)?;
        self.writer
            .write_all(&buf)
            .await
            .map_err(|e| BenchError::io(format!("{}: sending", self.client_id), e))
    }

    /// Reads until one whole packet has arrived and returns it.
    pub async fn receive(&mut self) -> Result<Packet, BenchError> {
        loop {
            if let Some(packet) = next_packet(&mut self.inbox, self.version, &self.client_id)? {
                return Ok(packet);
            }
            read_more(&mut self.reader, &mut self.inbox, self.read_chunk)
                .await
                .map_err(|e| BenchError::io(format!("{}: reading", self.client_id), e))?;
        }
    }

    /// Sends DISCONNECT and closes the socket, ignoring errors: the run is over either way.
    pub async fn close(mut self) {
        let disconnect = wire::disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.send(&disconnect)).await;
        let _ = self.writer.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_rotate_over_loopback() {
        assert_eq!(source_address(5, 1), None);
        assert_eq!(source_address(0, 4), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))));
        assert_eq!(source_address(3, 4), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4))));
        assert_eq!(source_address(4, 4), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))));
        assert_eq!(source_address(300, 1000), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 1, 45))));
    }
}
