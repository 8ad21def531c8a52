//! The PROXY protocol, versions 1 and 2 (HAProxy's "The PROXY protocol", 2020 revision): the
//! header a load balancer sends before anything else on a connection it forwards, naming the
//! client's address. A `proxy_protocol` listener reads it before TLS, WebSocket or MQTT.
//!
//! `parse` is sans-IO and resumable: it looks at the bytes read so far and says "need more",
//! "this header, this long", or what is wrong, and never reads past a header's end. It accepts:
//! - v1: `PROXY TCP4|TCP6 <source> <destination> <source port> <destination port>\r\n` (single
//!   spaces, ports in decimal without sign, at most 107 bytes), or `PROXY UNKNOWN...\r\n`;
//! - v2: the 12-byte signature, version 2, command LOCAL or PROXY, a family and transport byte,
//!   and a body of at most `V2_MAX_BODY` bytes: the addresses (12 bytes for IPv4, 36 for IPv6,
//!   216 for UNIX) and TLVs, which are skipped.
//!
//! LOCAL (v2), UNKNOWN (v1), and the UNSPEC and UNIX families say nothing about an IP client,
//! so the connection keeps its socket's address. `read_header` is the I/O around `parse`, and
//! `Prefixed` gives back the bytes read past the header (the start of a TLS ClientHello, say).
//! What this module does not do: trust decisions (any peer of a `proxy_protocol` listener may
//! send a header; put such a listener where only the load balancer reaches it), TLVs.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The v1 header's prefix.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 header, `\r\n` included (the specification's 107 bytes).
pub(crate) const V1_MAX: usize = 107;
/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v2 body accepted (addresses and TLVs): room for UNIX addresses and common TLVs.
pub(crate) const V2_MAX_BODY: usize = 2048;
/// Longest header of either version.
pub(crate) const MAX_HEADER: usize = 16 + V2_MAX_BODY;

/// What a PROXY header says about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The client's address, as the proxy saw it.
    Source(SocketAddr),
    /// Nothing usable (v2 LOCAL, v1 UNKNOWN, an UNSPEC or UNIX address): keep the socket's.
    Local,
}

/// Why a connection's first bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Neither signature: no PROXY header at all.
    #[error("no PROXY protocol header (the listener has proxy_protocol = true)")]
    Missing,
    /// The connection ended before the header did.
    #[error("the connection ended inside the PROXY header")]
    Truncated,
    /// A v1 header without `\r\n` within 107 bytes.
    #[error("PROXY v1 header longer than 107 bytes")]
    V1TooLong,
    /// A v1 header whose fields are not as the specification writes them.
    #[error("malformed PROXY v1 header")]
    V1Malformed,
    /// A v2 header of another version.
    #[error("PROXY v2 header of an unknown version")]
    V2Version,
    /// A v2 command other than LOCAL and PROXY.
    #[error("PROXY v2 header with an unknown command")]
    V2Command,
    /// A v2 family or transport the specification does not define.
    #[error("PROXY v2 header with an unknown address family or transport")]
    V2Family,
    /// A v2 body longer than `V2_MAX_BODY`.
    #[error("PROXY v2 header longer than the 2048 bytes accepted")]
    V2TooLong,
    /// A v2 body too short for its family's addresses.
    #[error("PROXY v2 header too short for its addresses")]
    V2Short,
}

/// Reads a PROXY header from the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// header and its length in bytes.
pub fn parse(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let start = &buf[..buf.len().min(V2_SIGNATURE.len())];
    if V2_SIGNATURE.starts_with(start) {
        return if buf.len() < V2_SIGNATURE.len() { Ok(None) } else { parse_v2(buf) };
    }
    let start = &buf[..buf.len().min(V1_PREFIX.len())];
    if V1_PREFIX.starts_with(start) {
        return if buf.len() < V1_PREFIX.len() { Ok(None) } else { parse_v1(buf) };
    }
    Err(ProxyError::Missing)
}

/// A v1 header, whose prefix `buf` has.
fn parse_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return if buf.len() >= V1_MAX { Err(ProxyError::V1TooLong) } else { Ok(None) };
    };
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..end]).map_err(|_| ProxyError::V1Malformed)?;
    let mut fields = line.split(' ');
    let family = fields.next().ok_or(ProxyError::V1Malformed)?;
    if family == "UNKNOWN" {
        // The rest of the line, whatever it holds, is to be ignored.
        return Ok(Some((ProxyHeader::Local, end + 2)));
    }
    let mut next = || fields.next().ok_or(ProxyError::V1Malformed);
    let (source, destination, source_port, destination_port) = (next()?, next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(ProxyError::V1Malformed);
    }
    let ip = |text: &str| -> Result<IpAddr, ProxyError> {
        let parsed = match family {
            "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => text.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => return Err(ProxyError::V1Malformed),
        };
        parsed.map_err(|_| ProxyError::V1Malformed)
    };
    let port = |text: &str| -> Result<u16, ProxyError> {
        // Digits only: `u16::from_str` would take a sign.
        if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProxyError::V1Malformed);
        }
        text.parse().map_err(|_| ProxyError::V1Malformed)
    };
    let source = SocketAddr::new(ip(source)?, port(source_port)?);
    ip(destination)?;
    port(destination_port)?;
    Ok(Some((ProxyHeader::Source(source), end + 2)))
}

/// A v2 header, whose signature `buf` has.
fn parse_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let Some(&[version_command, family_transport, high, low]) = buf.get(12..16) else {
        // The version byte alone already tells a v1 of another kind from a v2.
        if let Some(&version_command) = buf.get(12) {
            check_version(version_command)?;
        }
        return Ok(None);
    };
    check_version(version_command)?;
    let body_length = usize::from(u16::from_be_bytes([high, low]));
    if body_length > V2_MAX_BODY {
        return Err(ProxyError::V2TooLong);
    }
    let family = family_transport >> 4;
    if family > 3 || family_transport & 0x0F > 2 {
        return Err(ProxyError::V2Family);
    }
    let Some(body) = buf.get(16..16 + body_length) else {
        return Ok(None);
    };
    let length = 16 + body_length;
    let needed = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if body.len() < needed {
        return Err(ProxyError::V2Short);
    }
    // LOCAL: the proxy's own connection (a health check), whatever the addresses say.
    if version_command & 0x0F == 0 {
        return Ok(Some((ProxyHeader::Local, length)));
    }
    let source = match family {
        1 => {
            let ip: [u8; 4] = body[0..4].try_into().map_err(|_| ProxyError::V2Short)?;
            SocketAddr::new(IpAddr::from(ip), u16::from_be_bytes([body[8], body[9]]))
        }
        2 => {
            let ip: [u8; 16] = body[0..16].try_into().map_err(|_| ProxyError::V2Short)?;
            SocketAddr::new(IpAddr::from(ip), u16::from_be_bytes([body[32], body[33]]))
        }
        _ => return Ok(Some((ProxyHeader::Local, length))),
    };
    Ok(Some((ProxyHeader::Source(source), length)))
}

/// Checks a v2 version and command byte: version 2, command LOCAL (0) or PROXY (1).
fn check_version(version_command: u8) -> Result<(), ProxyError> {
    if version_command >> 4 != 2 {
        return Err(ProxyError::V2Version);
    }
    if version_command & 0x0F > 1 {
        return Err(ProxyError::V2Command);
    }
    Ok(())
}

/// Reads the PROXY header at the start of `stream`. Returns it with the bytes read past it,
/// which belong to what follows (TLS, WebSocket or MQTT), or what was wrong; an I/O error is
/// returned as such.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<Result<(ProxyHeader, Bytes), ProxyError>> {
    // On the heap, and only for these listeners, so connection tasks stay small.
    let mut buf = vec![0; MAX_HEADER];
    let mut filled = 0;
    loop {
        match parse(&buf[..filled]) {
            // What follows the header is copied out, so the buffer is not held for the
            // connection's life.
            Ok(Some((header, length))) => {
                return Ok(Ok((header, Bytes::copy_from_slice(&buf[length..filled]))))
            }
            Ok(None) => {}
            Err(error) => return Ok(Err(error)),
        }
        match stream.read(&mut buf[filled..]).await? {
            0 => return Ok(Err(if filled == 0 { ProxyError::Missing } else { ProxyError::Truncated })),
            n => filled += n,
        }
    }
}

/// A stream that yields `prefix` before the stream's own bytes: the bytes read with a PROXY
/// header that belong to what follows it.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    /// Bytes not yet handed to the reader.
    prefix: Bytes,
    /// The stream.
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read first.
    pub(crate) fn new(prefix: Bytes, inner: S) -> Prefixed<S> {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // An empty slice would still hold its allocation.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A v2 header: `command` 0 (LOCAL) or 1 (PROXY), family and transport byte, body.
    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        header.extend(body);
        header
    }

    /// The address block of a v2 header for `source` and `destination`, of one family.
    fn v2_addresses(source: SocketAddr, destination: SocketAddr) -> (u8, Vec<u8>) {
        let mut body = Vec::new();
        let family = match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                body.extend(s.octets());
                body.extend(d.octets());
                0x11
            }
            (s, d) => {
                let six = |ip: IpAddr| match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                body.extend(six(s).octets());
                body.extend(six(d).octets());
                0x21
            }
        };
        body.extend(source.port().to_be_bytes());
        body.extend(destination.port().to_be_bytes());
        (family, body)
    }

    fn source(text: &str) -> ProxyHeader {
        ProxyHeader::Source(text.parse().unwrap())
    }

    #[test]
    fn v1_headers_name_the_source_address() {
        let header = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 1883\r\n";
        assert_eq!(parse(header), Ok(Some((source("192.168.0.1:56324"), header.len()))));
        let mut with_connect = header.to_vec();
        with_connect.extend([0x10, 0x0C]);
        assert_eq!(parse(&with_connect), Ok(Some((source("192.168.0.1:56324"), header.len()))));
        let header = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 8883\r\n";
        assert_eq!(parse(header), Ok(Some((source("[2001:db8::1]:65535"), header.len()))));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(Some((ProxyHeader::Local, 15))));
        assert_eq!(parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), Ok(Some((ProxyHeader::Local, 35))));
    }

    #[test]
    fn v1_headers_are_read_to_their_end_and_no_further() {
        let header = b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n";
        for cut in 0..header.len() {
            assert_eq!(parse(&header[..cut]), Ok(None), "{cut} bytes");
        }
        let longest = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX - 16));
        assert_eq!(longest.len(), V1_MAX);
        assert_eq!(parse(longest.as_bytes()), Ok(Some((ProxyHeader::Local, V1_MAX))));
        let too_long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX - 15));
        assert_eq!(parse(too_long.as_bytes()), Err(ProxyError::V1TooLong));
        assert_eq!(parse(&too_long.as_bytes()[..V1_MAX]), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn malformed_v1_headers_are_refused() {
        for bad in [
            &b"PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n"[..],
            b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2 3\r\n",
            b"PROXY TCP4 10.0.0.1  10.0.0.2 1 2\r\n",
            b"PROXY TCP4 2001:db8::1 10.0.0.2 1 2\r\n",
            b"PROXY TCP6 10.0.0.1 10.0.0.2 1 2\r\n",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 +1 2\r\n",
            b"PROXY TCP4 10.0.0.1 10.0.0.2 65536 2\r\n",
            b"PROXY TCP4 010.0.0.1 10.0.0.2 1 2\r\n",
            b"PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n",
            b"PROXY \xff\r\n",
            b"PROXY \r\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyError::V1Malformed), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"\x10\x0c\x00\x04MQTT"), Err(ProxyError::Missing), "a bare CONNECT");
        assert_eq!(parse(b"PROXX"), Err(ProxyError::Missing));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyError::Missing));
    }

    #[test]
    fn v2_headers_name_the_source_address_and_skip_tlvs() {
        let (family, mut body) =
            v2_addresses("10.1.2.3:4000".parse().unwrap(), "10.0.0.1:1883".parse().unwrap());
        let header = v2(1, family, &body);
        assert_eq!(parse(&header), Ok(Some((source("10.1.2.3:4000"), 28))));
        // A TLV (PP2_TYPE_AUTHORITY) after the addresses is part of the header, and skipped.
        body.extend([0x02, 0x00, 0x03, b'a', b'b', b'c']);
        let header = v2(1, family, &body);
        let mut with_rest = header.clone();
        with_rest.extend(b"\x16\x03\x01");
        assert_eq!(parse(&with_rest), Ok(Some((source("10.1.2.3:4000"), header.len()))));
        let (family, body) =
            v2_addresses("[2001:db8::7]:65000".parse().unwrap(), "[2001:db8::1]:8883".parse().unwrap());
        assert_eq!(parse(&v2(1, family, &body)), Ok(Some((source("[2001:db8::7]:65000"), 52))));
        for cut in 0..header.len() {
            assert_eq!(parse(&header[..cut]), Ok(None), "{cut} bytes");
        }
    }

    #[test]
    fn v2_local_unspec_and_unix_keep_the_socket_address() {
        let (family, body) = v2_addresses("10.1.2.3:4000".parse().unwrap(), "10.0.0.1:1883".parse().unwrap());
        assert_eq!(parse(&v2(0, family, &body)), Ok(Some((ProxyHeader::Local, 28))));
        assert_eq!(parse(&v2(0, 0x00, &[])), Ok(Some((ProxyHeader::Local, 16))));
        assert_eq!(parse(&v2(1, 0x00, &[])), Ok(Some((ProxyHeader::Local, 16))));
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])), Ok(Some((ProxyHeader::Local, 232))));
    }

    #[test]
    fn malformed_v2_headers_are_refused() {
        let (family, body) = v2_addresses("10.1.2.3:4000".parse().unwrap(), "10.0.0.1:1883".parse().unwrap());
        let mut version_1 = v2(1, family, &body);
        version_1[12] = 0x11;
        assert_eq!(parse(&version_1), Err(ProxyError::V2Version));
        assert_eq!(parse(&version_1[..13]), Err(ProxyError::V2Version), "refused from its 13th byte");
        assert_eq!(parse(&v2(2, family, &body)), Err(ProxyError::V2Command));
        assert_eq!(parse(&v2(1, 0x41, &body)), Err(ProxyError::V2Family));
        assert_eq!(parse(&v2(1, 0x13, &body)), Err(ProxyError::V2Family));
        assert_eq!(parse(&v2(1, 0x11, &body[..11])), Err(ProxyError::V2Short));
        assert_eq!(parse(&v2(1, 0x21, &body)), Err(ProxyError::V2Short));
        let mut too_long = v2(1, family, &body);
        too_long[14..16].copy_from_slice(&2049u16.to_be_bytes());
        assert_eq!(parse(&too_long[..16]), Err(ProxyError::V2TooLong), "refused before the body comes");
    }

    #[tokio::test]
    async fn a_header_read_from_a_stream_gives_back_what_follows_it() {
        let mut bytes = b"PROXY TCP4 10.0.0.9 10.0.0.1 5000 1883\r\n".to_vec();
        bytes.extend(b"\x10\x0cMQTT");
        let mut stream = &bytes[..];
        let (header, rest) = read_header(&mut stream).await.unwrap().unwrap();
        assert_eq!(header, source("10.0.0.9:5000"));
        let mut prefixed = Prefixed::new(rest, stream);
        let mut after = Vec::new();
        prefixed.read_to_end(&mut after).await.unwrap();
        assert_eq!(after, b"\x10\x0cMQTT");
        let mut empty: &[u8] = b"";
        assert_eq!(read_header(&mut empty).await.unwrap(), Err(ProxyError::Missing));
        let mut cut: &[u8] = b"PROXY TCP4 10.0";
        assert_eq!(read_header(&mut cut).await.unwrap(), Err(ProxyError::Truncated));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_a_header_never_claims_more_than_it_was_given(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            if let Ok(Some((_, length))) = parse(&bytes) {
                prop_assert!(length <= bytes.len());
                prop_assert!(length <= MAX_HEADER);
            }
        }

        #[test]
        fn arbitrary_bytes_after_a_signature_never_panic(
            v1 in any::<bool>(),
            rest in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut bytes = if v1 { V1_PREFIX.to_vec() } else { V2_SIGNATURE.to_vec() };
            bytes.extend(rest);
            if let Ok(Some((_, length))) = parse(&bytes) {
                prop_assert!(length <= bytes.len());
            }
        }

        #[test]
        fn every_address_survives_either_version_whatever_follows(
            source in any::<SocketAddr>(),
            destination in any::<SocketAddr>(),
            tlvs in proptest::collection::vec(any::<u8>(), 0..64),
            after in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (family, mut body) = v2_addresses(source, destination);
            body.extend(&tlvs);
            let header = v2(1, family, &body);
            let expected = match (source, destination) {
                (SocketAddr::V4(_), SocketAddr::V4(_)) => source,
                _ => SocketAddr::new(
                    match source.ip() {
                        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
                        v6 => v6,
                    },
                    source.port(),
                ),
            };
            let mut bytes = header.clone();
            bytes.extend(&after);
            prop_assert_eq!(parse(&bytes), Ok(Some((ProxyHeader::Source(expected), header.len()))));
            if source.is_ipv4() == destination.is_ipv4() {
                let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
                let line = format!(
                    "PROXY {family} {} {} {} {}\r\n",
                    source.ip(),
                    destination.ip(),
                    source.port(),
                    destination.port()
                );
                let mut bytes = line.clone().into_bytes();
                bytes.extend(&after);
                let source = SocketAddr::new(source.ip(), source.port());
                prop_assert_eq!(parse(&bytes), Ok(Some((ProxyHeader::Source(source), line.len()))));
            }
        }
    }
}
