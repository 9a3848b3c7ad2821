//! `/feed`: the feed over a plain WebSocket with JSON messages, for clients that want no socket.io.
//!
//! Client: `{"op":"subscribe"|"unsubscribe","chainId":N,"topic":"orders"|"deals"|"tasks","category":N?}`.
//! Server: events `{"chainId","topic","category","event","data","origin","seq"}`, acknowledgements
//! `{"ok":true,"op",…the subscription…}` and errors `{"error","code"}`. A bad message is answered, never fatal.
//!
//! One task per connection runs two halves: the writer drains the feed queue into the socket, the reader
//! handles client messages and liveness. They are separate futures so that a writer stuck behind a client
//! that does not read can still be interrupted by the slow-consumer close.

use super::{Feed, SLOW_CONSUMER, Subscriber, TooManySubscriptions, Topic, WireForm};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long the close frame may wait behind data the client has not read yet.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

pub(super) fn encode_event(e: &super::Event<'_>) -> Option<String> {
    serde_json::to_string(e).ok()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum ClientMessage {
    Subscribe(Subscription),
    Unsubscribe(Subscription),
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Subscription {
    chain_id: u64,
    topic: Topic,
    #[serde(default)]
    category: Option<u64>,
}

#[derive(Serialize)]
struct Ack {
    ok: bool,
    op: &'static str,
    #[serde(flatten)]
    subscription: Subscription,
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    error: &'a str,
    code: &'static str,
}

fn error_message(error: &str, code: &'static str) -> String {
    serde_json::to_string(&ErrorMessage { error, code }).unwrap_or_default()
}

/// GET `/feed`: upgrades to a WebSocket, or answers 503 when the feed is at its connection limit.
pub(super) async fn handle(
    req: HttpRequest,
    body: web::Payload,
    feed: web::Data<Feed>,
) -> Result<HttpResponse, actix_web::Error> {
    let (subscriber, queue) = match feed.attach(WireForm::Plain, req.peer_addr().map(|a| a.ip())) {
        Ok(attached) => attached,
        // Answered by `api/error.rs`, as every refusal of the server.
        Err(e) => return Err(e.into()),
    };
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let stream = stream.max_frame_size(feed.config().max_payload);
    actix_web::rt::spawn(run(feed.get_ref().clone(), subscriber, queue, session, stream));
    Ok(response)
}

async fn run(
    feed: Feed,
    mut subscriber: Subscriber,
    mut queue: mpsc::Receiver<ByteString>,
    session: Session,
    mut stream: MessageStream,
) {
    let outbox = subscriber.outbox.clone();
    let mut writer_session = session.clone();
    let writer = async {
        tokio::select! {
            reason = outbox.closed() => Some(reason),
            () = async {
                while let Some(msg) = queue.recv().await {
                    if writer_session.text(msg).await.is_err() {
                        return;
                    }
                }
            } => None,
        }
    };
    let reader = read_loop(&feed, &mut subscriber, session.clone(), &mut stream);
    let reason = tokio::select! {
        reason = writer => reason,
        reason = reader => reason,
    };
    // Stop routing events here before the (possibly slow) goodbye.
    drop(subscriber);
    let close = match reason {
        Some(SLOW_CONSUMER) => {
            Some(CloseReason { code: CloseCode::Policy, description: Some(SLOW_CONSUMER.to_string()) })
        }
        Some(other) => Some(CloseReason { code: CloseCode::Away, description: Some(other.to_string()) }),
        None => None,
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, session.close(close)).await;
}

/// Handles client messages until the client leaves or stops answering pings; returns a close reason.
async fn read_loop(
    feed: &Feed,
    subscriber: &mut Subscriber,
    mut session: Session,
    stream: &mut MessageStream,
) -> Option<&'static str> {
    let config = feed.config();
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_seen = Instant::now();
    loop {
        let msg = tokio::select! {
            msg = stream.recv() => msg,
            _ = ping.tick() => {
                if last_seen.elapsed() > config.ping_interval + config.ping_timeout {
                    return Some("ping timeout");
                }
                if session.ping(b"").await.is_err() {
                    return None;
                }
                continue;
            }
        };
        last_seen = Instant::now();
        let reply = match msg {
            None | Some(Ok(Message::Close(_))) => return None,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "feed websocket protocol error");
                return Some("protocol error");
            }
            Some(Ok(Message::Ping(bytes))) => {
                if session.pong(&bytes).await.is_err() {
                    return None;
                }
                continue;
            }
            Some(Ok(Message::Pong(_) | Message::Nop)) => continue,
            Some(Ok(Message::Text(text))) => on_text(subscriber, &text),
            Some(Ok(Message::Binary(_) | Message::Continuation(_))) => {
                error_message("binary messages are not supported: send JSON text", "bad_message")
            }
        };
        if session.text(reply).await.is_err() {
            return None;
        }
    }
}

fn on_text(subscriber: &mut Subscriber, text: &str) -> String {
    let msg: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => return error_message(&format!("invalid message: {e}"), "bad_message"),
    };
    let (op, sub) = match msg {
        ClientMessage::Subscribe(sub) => {
            if let Err(e) = subscriber.subscribe(sub.chain_id, sub.topic, sub.category) {
                let code = match e {
                    TooManySubscriptions::Routes => "too_many_subscriptions",
                    TooManySubscriptions::Categories => "too_many_categories",
                };
                return error_message(&e.to_string(), code);
            }
            ("subscribe", sub)
        }
        ClientMessage::Unsubscribe(sub) => {
            subscriber.unsubscribe(sub.chain_id, sub.topic, sub.category);
            ("unsubscribe", sub)
        }
    };
    serde_json::to_string(&Ack { ok: true, op, subscription: sub }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::FeedConfig;
    use serde_json::Value;

    #[test]
    fn answers_bad_messages_with_errors() {
        let feed = Feed::new(FeedConfig::default());
        let (mut sub, _rx) = feed.attach(WireForm::Plain, None).expect("slot");
        for bad in [
            "not json",
            r#"{"op":"subscribe","chainId":1,"topic":"blocks"}"#,
            r#"{"op":"subscribe","chainId":-1,"topic":"orders"}"#,
            r#"{"op":"dance","chainId":1,"topic":"orders"}"#,
            r#"{"op":"subscribe","topic":"orders"}"#,
            r#"{"op":"subscribe","chainId":1,"topic":"orders","extra":1}"#,
        ] {
            let reply: Value = serde_json::from_str(&on_text(&mut sub, bad)).expect("json");
            assert_eq!(reply["code"], "bad_message", "{bad}");
            assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
        let ok: Value =
            serde_json::from_str(&on_text(&mut sub, r#"{"op":"subscribe","chainId":1,"topic":"deals","category":3}"#))
                .expect("json");
        assert_eq!(ok, serde_json::json!({"ok":true,"op":"subscribe","chainId":1,"topic":"deals","category":3}));
    }
}
