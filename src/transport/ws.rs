//! MQTT over WebSocket (MQTT 5.0 section 6, 3.1.1 section 6): the HTTP upgrade on the
//! listener's path with the `mqtt` subprotocol, then a byte stream over binary frames.
//!
//! - MQTT travels in binary frames only; a text frame closes the connection [MQTT-6.0.0-1].
//! - Packets need not line up with frames: reads return frame payloads as a byte stream and the
//!   decoder reassembles packets across them [MQTT-6.0.0-2].
//! - The subprotocol selected is `mqtt` [MQTT-6.0.0-4]; a client that offers only the old
//!   `mqttv3.1` gets that one back, as Mosquitto does.
//! - A client frame that is not masked closes the connection (RFC 6455 section 5.1).
//! - A frame or message larger than the listener's bound is refused before it is buffered.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Extra room a WebSocket message may take beyond `max_packet_size`: a frame may carry the end
/// of one packet and the start of the next.
const FRAME_SLACK: usize = 64 * 1024;

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 8 * 1024;

/// Largest frame IoTHub writes: a longer write is cut into frames of this size.
const MAX_OUT_FRAME: usize = 64 * 1024;

/// Most bytes tungstenite may hold unsent: one outgoing frame and a pong.
const MAX_WRITE_BUFFER: usize = 2 * MAX_OUT_FRAME;

/// Runs the server side of the WebSocket upgrade on `stream`: the request must be a GET of
/// `path` (404 otherwise); the `mqtt` subprotocol is selected when offered. Frames and messages
/// are bounded by `max_packet_size` plus a little slack.
#[allow(clippy::result_large_err)] // The upgrade callback's error type is tungstenite's.
pub(crate) async fn accept<S>(stream: S, path: &str, max_packet_size: usize) -> io::Result<WebSocket<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = max_packet_size.saturating_add(FRAME_SLACK);
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        .accept_unmasked_frames(false)
        // Small reads, like the TCP path's, rather than 128 KiB per connection.
        .read_buffer_size(READ_BUFFER)
        // Every frame goes out at once; what cannot (a peer that does not read) is bounded: a
        // ping flood gets at most one pong owed, never a growing buffer.
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    let check = |request: &Request, response: Response| upgrade_response(request, response, path);
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config))
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket upgrade failed: {e}")))?;
    Ok(WebSocket { ws, pending: Bytes::new(), sending: 0 })
}

/// The answer to an upgrade request: 404 for another path, else the upgrade with the
/// subprotocol chosen from those the client offered.
#[allow(clippy::result_large_err)] // The callback's type is tungstenite's.
fn upgrade_response(
    request: &Request,
    mut response: Response,
    path: &str,
) -> Result<Response, ErrorResponse> {
    if request.uri().path() != path {
        let mut refusal = ErrorResponse::new(Some(format!("no MQTT endpoint here; it is at {path}\n")));
        *refusal.status_mut() = StatusCode::NOT_FOUND;
        return Err(refusal);
    }
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .fold((false, false), |(mqtt, v31), name| (mqtt || name == "mqtt", v31 || name == "mqttv3.1"));
    let chosen = match offered {
        (true, _) => Some("mqtt"),
        (false, true) => Some("mqttv3.1"),
        (false, false) => None,
    };
    if let Some(chosen) = chosen {
        response.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(chosen));
    }
    Ok(response)
}

/// A WebSocket connection seen as a byte stream: reads yield the payloads of binary frames,
/// each write goes out as one binary frame.
#[derive(Debug)]
pub(crate) struct WebSocket<S> {
    ws: WebSocketStream<S>,
    /// The part of the last binary frame not yet read.
    pending: Bytes,
    /// The length of the frame being flushed, 0 when none is.
    sending: usize,
}

/// A tungstenite error as an I/O error.
fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => io::ErrorKind::BrokenPipe.into(),
        other => io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {other}")),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WebSocket<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                // The peer closed (a Close frame, or the socket): end of stream.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Err(error)) => return Poll::Ready(Err(io_error(error))),
                Some(Ok(Message::Binary(payload))) => self.pending = payload,
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "MQTT in a WebSocket text frame; only binary frames carry MQTT [MQTT-6.0.0-1]",
                    )));
                }
                // Pings are answered by tungstenite on the next read or write.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WebSocket<S> {
    /// Sends `buf` as one binary frame and reports it written only once it is flushed to the
    /// socket, so that no frame waits in tungstenite's buffer for a write that may never come.
    /// While a frame is on its way the call returns `Pending`, and the caller's next call must
    /// pass a buffer that starts with the same bytes (the connection's write buffer only grows
    /// at its end until a write completes); the length reported is that of the frame.
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.sending == 0 {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let frame = &buf[..buf.len().min(MAX_OUT_FRAME)];
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io_error)?;
            Pin::new(&mut self.ws)
                .start_send(Message::Binary(Bytes::copy_from_slice(frame)))
                .map_err(io_error)?;
            self.sending = frame.len();
        }
        debug_assert!(self.sending <= buf.len(), "a retried write must start with the frame on its way");
        ready!(Pin::new(&mut self.ws).poll_flush(cx)).map_err(io_error)?;
        Poll::Ready(Ok(std::mem::take(&mut self.sending)))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(io_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(error) => Poll::Ready(Err(io_error(error))),
        }
    }
}
