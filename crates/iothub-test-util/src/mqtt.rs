//! The rumqttc client, a real MQTT 3.1.1 client: [`Mqtt`] drives its event loop on a task of its
//! own and hands the packets over a channel; [`next_event`] polls an event loop the test holds.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnAck, Event, EventLoop, MqttOptions, Packet, Publish};

use crate::{OrFail, WAIT};

/// A rumqttc client whose incoming packets arrive on a channel, driven by a task of its own.
pub struct Mqtt {
    /// The client handle.
    pub client: AsyncClient,
    /// Packets received from the broker.
    incoming: tokio::sync::mpsc::UnboundedReceiver<Packet>,
}

impl Mqtt {
    /// Connects with a clean session and waits for the CONNACK.
    #[allow(clippy::disallowed_methods)] // The client's event loop runs until the test ends.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Mqtt {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(packet) = event {
                    if tx.send(packet).is_err() {
                        return;
                    }
                }
            }
        });
        let mut mqtt = Mqtt { client, incoming: rx };
        let connack = mqtt.next().await;
        assert!(matches!(connack, Packet::ConnAck(_)), "expected CONNACK, got {connack:?}");
        mqtt
    }

    /// The next packet from the broker.
    pub async fn next(&mut self) -> Packet {
        tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .or_fail("timed out waiting for a packet")
            .or_fail("the rumqttc event loop stopped")
    }

    /// The next PUBLISH, skipping acknowledgements and ping responses.
    pub async fn next_publish(&mut self) -> Publish {
        loop {
            match self.next().await {
                Packet::Publish(publish) => return publish,
                Packet::PubAck(_)
                | Packet::PubRec(_)
                | Packet::PubRel(_)
                | Packet::PubComp(_)
                | Packet::PingResp => {}
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).await.or_fail("queueing the SUBSCRIBE");
        loop {
            match self.next().await {
                Packet::SubAck(_) => return,
                Packet::PingResp => {}
                other => panic!("expected SUBACK, got {other:?}"),
            }
        }
    }
}

/// Polls an event loop until `wanted` returns a value, failing after `WAIT` or on a connection
/// error.
#[allow(clippy::disallowed_methods)] // A client-side deadline, not the broker's clock.
pub async fn next_event<T>(eventloop: &mut EventLoop, wanted: impl Fn(&Event) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, eventloop.poll())
            .await
            .or_fail("no expected event in time")
            .or_fail("connection error");
        if let Some(value) = wanted(&event) {
            return value;
        }
    }
}

/// The CONNACK, for [`next_event`].
pub fn incoming_connack(event: &Event) -> Option<ConnAck> {
    match event {
        Event::Incoming(Packet::ConnAck(connack)) => Some(connack.clone()),
        _ => None,
    }
}

/// A SUBACK, for [`next_event`].
pub fn incoming_suback(event: &Event) -> Option<()> {
    matches!(event, Event::Incoming(Packet::SubAck(_))).then_some(())
}

/// A PUBLISH, for [`next_event`].
pub fn incoming_publish(event: &Event) -> Option<Publish> {
    match event {
        Event::Incoming(Packet::Publish(publish)) => Some(publish.clone()),
        _ => None,
    }
}
