//! `/ws`: the feed in iExec's own protocol, socket.io v5 over engine.io v4 (socket.io's `path` = "/ws"), so
//! that clients built on the stock `socket.io-client` 4 work unchanged, over long-polling, over WebSocket, and
//! when they upgrade from the first to the second.
//!
//! An engine.io session is one feed connection: one [`Subscriber`], one bounded queue. Whatever the server sends
//! (events, pings, acknowledgements) goes through that queue, so it stays in order and the slow-consumer rule
//! covers it all. The queue is read by whichever transport holds the session: a long-poll GET, or the
//! WebSocket writer once the client has upgraded (`2probe` / `3probe`, a noop to end the pending poll, `5`).
//!
//! One heartbeat task per session pings at `pingInterval`, closes the session when a pong is `pingTimeout` late,
//! and is the one that releases the subscriber and forgets the session once it is closed.

use super::engineio::{self, EnginePacket, SocketKind};
use super::{AtCapacity, Feed, Outbox, SLOW_CONSUMER, Subscriber, Topic, WireForm};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream};
use bytestring::ByteString;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// How long a goodbye may wait behind data the client has not read yet.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Open engine.io sessions by id, shared by all HTTP workers (a client's requests may land on any of them).
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, Arc<EioSession>>>,
}

impl Sessions {
    fn get(&self, sid: &str) -> Option<Arc<EioSession>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).get(sid).cloned()
    }

    fn insert(&self, session: Arc<EioSession>) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).insert(session.sid.clone(), session);
    }

    fn remove(&self, sid: &str) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(sid);
    }
}

struct EioSession {
    sid: String,
    outbox: Arc<Outbox>,
    // Taken (dropped) by the heartbeat task when the session closes, which frees the slot and the routes.
    subscriber: Mutex<Option<Subscriber>>,
    // The queue's reading side: held by one long-poll GET at a time, or for good by the WebSocket writer.
    downlink: tokio::sync::Mutex<Downlink>,
    websocket: AtomicBool,
    upgrading: AtomicBool,
    // socket.io CONNECT to "/" done: events before it are ignored, as socket.io does.
    connected: AtomicBool,
    pong: Notify,
    // Ends a pending poll with a noop so that the client can finish its upgrade.
    nudge: Notify,
    // A polling client has been told the session is closed.
    farewell: Notify,
}

struct Downlink {
    rx: mpsc::Receiver<ByteString>,
    // A message that did not fit in the last poll response (maxPayload); it goes first next time.
    held: Option<ByteString>,
}

impl EioSession {
    fn push(&self, feed: &Feed, msg: impl Into<ByteString>) {
        self.outbox.push(msg.into(), &feed.inner);
    }

    fn with_subscriber<T>(&self, f: impl FnOnce(&mut Subscriber) -> T) -> Option<T> {
        self.subscriber.lock().unwrap_or_else(PoisonError::into_inner).as_mut().map(f)
    }
}

/// engine.io's own HTTP errors: `{"code": N, "message": "…"}`, which its clients report as they are (answered
/// by `api/error.rs`, with every other error of the server).
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub(crate) enum EioError {
    #[error("Transport unknown")]
    UnknownTransport,
    #[error("Session ID unknown")]
    UnknownSid,
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    #[error("Bad request")]
    BadRequest,
    #[error("Unsupported protocol version")]
    UnsupportedVersion,
    #[error("Too many subscribers: try again later")]
    Full,
    #[error("Too many feed connections from this address")]
    PerIp,
}

impl From<AtCapacity> for EioError {
    fn from(e: AtCapacity) -> Self {
        match e {
            AtCapacity::Full => EioError::Full,
            AtCapacity::PerIp => EioError::PerIp,
        }
    }
}

#[derive(Debug, Deserialize)]
struct EioQuery {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Polling,
    WebSocket,
}

fn parse_query(req: &HttpRequest) -> Result<(Transport, Option<String>), EioError> {
    let q = web::Query::<EioQuery>::from_query(req.query_string()).map_err(|_| EioError::BadRequest)?.into_inner();
    if q.eio.as_deref() != Some("4") {
        return Err(EioError::UnsupportedVersion);
    }
    let transport = match q.transport.as_deref() {
        Some("polling") => Transport::Polling,
        Some("websocket") => Transport::WebSocket,
        _ => return Err(EioError::UnknownTransport),
    };
    Ok((transport, q.sid))
}

fn text_response(body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    // The feed is public and carries no credentials: any page may read it.
    HttpResponse::Ok()
        .content_type("text/plain; charset=UTF-8")
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .body(body)
}

/// GET `/ws/`: a handshake, a long poll, or a WebSocket (new, or the upgrade of a polling session).
pub(super) async fn get(req: HttpRequest, body: web::Payload, feed: web::Data<Feed>) -> HttpResponse {
    let result = match parse_query(&req) {
        Ok((Transport::Polling, None)) => handshake(&feed, client_ip(&req)),
        Ok((Transport::Polling, Some(sid))) => match feed.inner.sessions.get(&sid) {
            Some(session) => Ok(poll(&feed, &session).await),
            None => Err(EioError::UnknownSid),
        },
        Ok((Transport::WebSocket, sid)) => websocket(&req, body, &feed, sid),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| e.error_response())
}

/// POST `/ws/`: packets from a polling client.
pub(super) async fn post(req: HttpRequest, body: web::Payload, feed: web::Data<Feed>) -> HttpResponse {
    let session = match parse_query(&req) {
        Ok((Transport::Polling, Some(sid))) => match feed.inner.sessions.get(&sid) {
            Some(session) => session,
            None => return EioError::UnknownSid.error_response(),
        },
        Ok((Transport::Polling, None)) => return EioError::BadHandshakeMethod.error_response(),
        Ok((Transport::WebSocket, _)) => return EioError::BadRequest.error_response(),
        Err(e) => return e.error_response(),
    };
    if session.websocket.load(Ordering::Acquire) {
        return EioError::BadRequest.error_response();
    }
    let bytes = match body.to_bytes_limited(feed.config().max_payload).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return EioError::BadRequest.error_response(),
        Err(_) => {
            session.outbox.close("payload too large");
            return HttpResponse::PayloadTooLarge().finish();
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        session.outbox.close("invalid payload");
        return EioError::BadRequest.error_response();
    };
    for packet in text.split(engineio::SEPARATOR) {
        if let Err(e) = on_packet(&feed, &session, packet) {
            tracing::debug!(error = e, "feed: bad engine.io packet from a polling client");
            session.outbox.close("protocol error");
            return EioError::BadRequest.error_response();
        }
    }
    HttpResponse::Ok().content_type("text/html").insert_header(("Access-Control-Allow-Origin", "*")).body("ok")
}

/// Other methods on `/ws`.
pub(super) async fn bad_method() -> HttpResponse {
    EioError::BadRequest.error_response()
}

/// The client's address, for the per-address connection bound.
fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

fn open_session(
    feed: &Feed,
    transport: Transport,
    ip: Option<std::net::IpAddr>,
) -> Result<Arc<EioSession>, AtCapacity> {
    let (subscriber, rx) = feed.attach(WireForm::SocketIo, ip)?;
    let session = Arc::new(EioSession {
        sid: random_id(),
        outbox: subscriber.outbox.clone(),
        subscriber: Mutex::new(Some(subscriber)),
        downlink: tokio::sync::Mutex::new(Downlink { rx, held: None }),
        websocket: AtomicBool::new(transport == Transport::WebSocket),
        upgrading: AtomicBool::new(false),
        connected: AtomicBool::new(false),
        pong: Notify::new(),
        nudge: Notify::new(),
        farewell: Notify::new(),
    });
    feed.inner.sessions.insert(session.clone());
    actix_web::rt::spawn(heartbeat(feed.clone(), session.clone()));
    actix_web::rt::spawn(connect_deadline(feed.config().connect_timeout, session.clone()));
    Ok(session)
}

fn open_packet(feed: &Feed, sid: &str, upgrades: &[&str]) -> String {
    let config = feed.config();
    engineio::encode_open(
        sid,
        upgrades,
        config.ping_interval.as_millis(),
        config.ping_timeout.as_millis(),
        config.max_payload,
    )
}

/// Closes a session that did not connect to the socket.io namespace in time: a bare handshake must not hold one
/// of the feed's slots for a whole ping cycle.
async fn connect_deadline(timeout: Duration, session: Arc<EioSession>) {
    tokio::select! {
        _ = session.outbox.closed() => {}
        () = tokio::time::sleep(timeout) => {
            if !session.connected.load(Ordering::Acquire) {
                session.outbox.close("connect timeout");
            }
        }
    }
}

fn handshake(feed: &Feed, ip: Option<std::net::IpAddr>) -> Result<HttpResponse, EioError> {
    let session = open_session(feed, Transport::Polling, ip)?;
    Ok(text_response(open_packet(feed, &session.sid, &["websocket"])))
}

/// Pings, watches pongs, and cleans up once the session is closed, whoever closed it.
async fn heartbeat(feed: Feed, session: Arc<EioSession>) {
    let config = feed.config().clone();
    loop {
        tokio::select! {
            _ = session.outbox.closed() => break,
            () = tokio::time::sleep(config.ping_interval) => {}
        }
        session.push(&feed, engineio::PING);
        tokio::select! {
            _ = session.outbox.closed() => break,
            () = session.pong.notified() => {}
            () = tokio::time::sleep(config.ping_timeout) => {
                session.outbox.close("ping timeout");
                break;
            }
        }
    }
    // No more events for it, and its slot is free for someone else.
    drop(session.subscriber.lock().unwrap_or_else(PoisonError::into_inner).take());
    if !session.websocket.load(Ordering::Acquire) {
        // A polling client learns of the close at its next poll: keep the session that long.
        let _ = tokio::time::timeout(config.ping_timeout, session.farewell.notified()).await;
    }
    feed.inner.sessions.remove(&session.sid);
}

enum Wake {
    Message(ByteString),
    Closed(&'static str),
    Nudge,
}

/// What a polling client receives once its session is closed.
fn farewell(reason: &str) -> String {
    // A socket.io DISCONNECT first when the server chose to close, so the client does not reconnect in a loop.
    if reason == SLOW_CONSUMER {
        format!("{}{}{}", engineio::DISCONNECT_MESSAGE, engineio::SEPARATOR, engineio::CLOSE)
    } else {
        engineio::CLOSE.to_string()
    }
}

/// A long poll: waits for at least one packet, then answers with all that are queued (up to maxPayload).
async fn poll(feed: &Feed, session: &EioSession) -> HttpResponse {
    if session.websocket.load(Ordering::Acquire) {
        return EioError::BadRequest.error_response();
    }
    let Ok(mut down) = session.downlink.try_lock() else {
        // Two polls at once: engine.io treats it as a broken client.
        session.outbox.close("overlapping polls");
        return EioError::BadRequest.error_response();
    };
    let wake = match (session.outbox.close_reason(), down.held.take()) {
        (Some(reason), _) => Wake::Closed(reason),
        (None, Some(msg)) => Wake::Message(msg),
        (None, None) => tokio::select! {
            biased;
            reason = session.outbox.closed() => Wake::Closed(reason),
            () = session.nudge.notified() => Wake::Nudge,
            msg = down.rx.recv() => msg.map_or(Wake::Closed("closed"), Wake::Message),
        },
    };
    let first = match wake {
        Wake::Message(msg) => msg,
        Wake::Nudge => return text_response(engineio::NOOP),
        Wake::Closed(reason) => {
            session.farewell.notify_one();
            return text_response(farewell(reason));
        }
    };
    let max = feed.config().max_payload;
    let mut body = String::from(&*first);
    while let Ok(msg) = down.rx.try_recv() {
        if body.len() + 1 + msg.len() > max {
            down.held = Some(msg);
            break;
        }
        body.push(engineio::SEPARATOR);
        body.push_str(&msg);
    }
    text_response(body)
}

/// One engine.io packet from the client, on either transport.
fn on_packet(feed: &Feed, session: &EioSession, packet: &str) -> Result<(), &'static str> {
    match engineio::decode_engine(packet)? {
        EnginePacket::Close => {
            session.outbox.close("client closed");
        }
        EnginePacket::Ping(data) => session.push(feed, format!("3{data}")),
        EnginePacket::Pong(_) => session.pong.notify_one(),
        EnginePacket::Message(message) => on_socket_packet(feed, session, message)?,
        EnginePacket::Upgrade => return Err("upgrade outside of a probe"),
        EnginePacket::Noop => {}
    }
    Ok(())
}

fn on_socket_packet(feed: &Feed, session: &EioSession, message: &str) -> Result<(), &'static str> {
    let packet = engineio::decode_socket(message)?;
    if packet.namespace != "/" {
        if packet.kind == SocketKind::Connect {
            session.push(feed, engineio::encode_connect_error(packet.namespace, "Invalid namespace"));
        }
        return Ok(());
    }
    match packet.kind {
        SocketKind::Connect => {
            session.connected.store(true, Ordering::Release);
            session.push(feed, engineio::encode_connect(&random_id()));
        }
        SocketKind::Disconnect => {
            session.connected.store(false, Ordering::Release);
            session.with_subscriber(Subscriber::unsubscribe_all);
        }
        SocketKind::Event if session.connected.load(Ordering::Acquire) => {
            let ok = on_event(session, packet.data);
            if let Some(id) = packet.ack {
                session.push(feed, engineio::encode_ack(id, &json!([ok])));
            }
        }
        SocketKind::Event | SocketKind::Ack | SocketKind::ConnectError => {}
    }
    Ok(())
}

/// `join`, `leave` and `leaveAll`, as the peer names them; true when done (the acknowledgement's argument).
fn on_event(session: &EioSession, data: &str) -> bool {
    let Ok(args) = serde_json::from_str::<Vec<Value>>(data) else { return false };
    let room = args.get(1).and_then(Room::parse);
    match (args.first().and_then(Value::as_str), room) {
        (Some("join"), Some(r)) => {
            session.with_subscriber(|s| s.subscribe(r.chain_id, r.topic, r.category).is_ok()).unwrap_or(false)
        }
        (Some("leave"), Some(r)) => {
            session.with_subscriber(|s| s.unsubscribe(r.chain_id, r.topic, r.category)).is_some()
        }
        (Some("leaveAll"), _) => session.with_subscriber(Subscriber::unsubscribe_all).is_some(),
        _ => false,
    }
}

/// `{chainId, topic, category?}`; ids may come as numbers or decimal strings (JavaScript clients send both).
struct Room {
    chain_id: u64,
    topic: Topic,
    category: Option<u64>,
}

impl Room {
    fn parse(v: &Value) -> Option<Room> {
        fn id(v: &Value) -> Option<u64> {
            v.as_u64().or_else(|| v.as_str()?.parse().ok())
        }
        let topic = match v.get("topic")?.as_str()? {
            "orders" => Topic::Orders,
            "deals" => Topic::Deals,
            "tasks" => Topic::Tasks,
            _ => return None,
        };
        let category = match v.get("category") {
            None | Some(Value::Null) => None,
            Some(c) => Some(id(c)?),
        };
        Some(Room { chain_id: id(v.get("chainId")?)?, topic, category })
    }
}

/// A WebSocket on `/ws/`: a new session (`sid` absent) or the upgrade of a polling one.
fn websocket(
    req: &HttpRequest,
    body: web::Payload,
    feed: &Feed,
    sid: Option<String>,
) -> Result<HttpResponse, EioError> {
    let (session, upgrade) = match sid {
        None => (open_session(feed, Transport::WebSocket, client_ip(req))?, false),
        Some(sid) => {
            let session = feed.inner.sessions.get(&sid).ok_or(EioError::UnknownSid)?;
            if session.websocket.load(Ordering::Acquire) || session.upgrading.swap(true, Ordering::AcqRel) {
                return Err(EioError::BadRequest);
            }
            (session, true)
        }
    };
    let (response, ws, stream) = match actix_ws::handle(req, body) {
        Ok(parts) => parts,
        Err(e) => {
            if upgrade {
                session.upgrading.store(false, Ordering::Release);
            } else {
                session.outbox.close("websocket handshake failed");
            }
            return Ok(e.error_response());
        }
    };
    let stream = stream.max_frame_size(feed.config().max_payload);
    actix_web::rt::spawn(run_websocket(feed.clone(), session, ws, stream, upgrade));
    Ok(response)
}

async fn run_websocket(
    feed: Feed,
    session: Arc<EioSession>,
    ws: actix_ws::Session,
    mut stream: MessageStream,
    upgrade: bool,
) {
    let mut ws = ws;
    if upgrade {
        let probed = tokio::time::timeout(feed.config().ping_timeout, probe(&session, &mut ws, &mut stream)).await;
        if !matches!(probed, Ok(true)) {
            // The client stays on polling, as engine.io's does when a probe fails.
            session.upgrading.store(false, Ordering::Release);
            let _ = ws.close(None).await;
            return;
        }
        session.websocket.store(true, Ordering::Release);
    } else if ws.text(open_packet(&feed, &session.sid, &[])).await.is_err() {
        session.outbox.close("transport closed");
        return;
    }

    let mut writer_ws = ws.clone();
    let writer = async {
        let mut down = session.downlink.lock().await;
        if let Some(msg) = down.held.take()
            && writer_ws.text(msg).await.is_err()
        {
            return None;
        }
        tokio::select! {
            reason = session.outbox.closed() => Some(reason),
            () = async {
                while let Some(msg) = down.rx.recv().await {
                    if writer_ws.text(msg).await.is_err() {
                        return;
                    }
                }
            } => None,
        }
    };
    let reader = read_websocket(&feed, &session, ws.clone(), &mut stream);
    let reason = tokio::select! {
        reason = writer => reason,
        reason = reader => reason,
    };
    session.outbox.close(reason.unwrap_or("transport closed"));
    let goodbye = async {
        let close = match reason {
            Some(SLOW_CONSUMER) => {
                let _ = ws.text(engineio::DISCONNECT_MESSAGE).await;
                Some(CloseReason { code: CloseCode::Policy, description: Some(SLOW_CONSUMER.to_string()) })
            }
            Some(other) => Some(CloseReason { code: CloseCode::Away, description: Some(other.to_string()) }),
            None => None,
        };
        let _ = ws.close(close).await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
}

/// The upgrade handshake: `2probe` answered `3probe`, until the client's `5`. Meanwhile the polling side is
/// nudged every 100 ms: the client pauses polling only once its pending poll has returned, and a poll it
/// started just before it saw `3probe` would otherwise hang until the next ping.
async fn probe(session: &EioSession, ws: &mut actix_ws::Session, stream: &mut MessageStream) -> bool {
    let mut nudge = tokio::time::interval(Duration::from_millis(100));
    let mut probed = false;
    loop {
        let msg = tokio::select! {
            msg = stream.recv() => msg,
            _ = nudge.tick(), if probed => {
                session.nudge.notify_one();
                continue;
            }
        };
        let Some(Ok(msg)) = msg else { return false };
        match msg {
            Message::Text(text) if &*text == "2probe" => {
                if ws.text("3probe").await.is_err() {
                    return false;
                }
                probed = true;
                session.nudge.notify_one();
            }
            Message::Text(text) if &*text == "5" && probed => return true,
            Message::Ping(bytes) => {
                if ws.pong(&bytes).await.is_err() {
                    return false;
                }
            }
            Message::Pong(_) | Message::Nop => {}
            _ => return false,
        }
    }
}

/// Reads engine.io packets until the client leaves or breaks the protocol; returns a close reason.
async fn read_websocket(
    feed: &Feed,
    session: &EioSession,
    mut ws: actix_ws::Session,
    stream: &mut MessageStream,
) -> Option<&'static str> {
    loop {
        match stream.recv().await {
            None | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Text(text))) => {
                if let Err(e) = on_packet(feed, session, &text) {
                    tracing::debug!(error = e, "feed: bad engine.io packet on a websocket");
                    return Some("protocol error");
                }
                if let Some(reason) = session.outbox.close_reason() {
                    return Some(reason);
                }
            }
            Some(Ok(Message::Ping(bytes))) => {
                if ws.pong(&bytes).await.is_err() {
                    return None;
                }
            }
            Some(Ok(Message::Pong(_) | Message::Nop)) => {}
            Some(Ok(Message::Binary(_) | Message::Continuation(_))) => return Some("binary packets are not supported"),
            Some(Err(_)) => return Some("protocol error"),
        }
    }
}

/// A session id nobody can guess (it is the only credential of a polling session), from std alone: SipHash
/// with the per-process random keys of `RandomState`, over a counter and the time.
fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut id = String::with_capacity(32);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(nanos);
        id.push_str(&format!("{:016x}", h.finish()));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_accept_numbers_and_strings() {
        let r = Room::parse(&json!({"chainId": "134", "topic": "orders", "category": 2})).expect("room");
        assert_eq!((r.chain_id, r.topic, r.category), (134, Topic::Orders, Some(2)));
        let r = Room::parse(&json!({"chainId": 1, "topic": "deals", "category": null})).expect("room");
        assert_eq!((r.chain_id, r.topic, r.category), (1, Topic::Deals, None));
        assert!(Room::parse(&json!({"chainId": 1, "topic": "blocks"})).is_none());
        assert!(Room::parse(&json!({"topic": "orders"})).is_none());
        assert!(Room::parse(&json!({"chainId": -1, "topic": "orders"})).is_none());
    }

    #[test]
    fn session_ids_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 32));
    }
}
