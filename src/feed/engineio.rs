//! The text forms of engine.io protocol 4 and socket.io protocol 5, the subset a server of events needs: pure
//! functions, no I/O. Binary packets are not supported (the feed carries JSON only).
//!
//! engine.io packet = one type digit + data: `0` open, `1` close, `2` ping, `3` pong, `4` message, `5` upgrade,
//! `6` noop. Long-polling bodies carry several packets separated by the record separator `\x1e`.
//! socket.io packet (inside an engine.io message) = type digit, optional `/namespace,`, optional ack id
//! digits, optional JSON: `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR.

use serde_json::Value;

/// Separates packets in a long-polling body.
pub(super) const SEPARATOR: char = '\x1e';

pub(super) const CLOSE: &str = "1";
pub(super) const PING: &str = "2";
pub(super) const NOOP: &str = "6";
/// socket.io DISCONNECT of the main namespace, inside an engine.io message.
pub(super) const DISCONNECT_MESSAGE: &str = "41";

/// A packet from the client, at the engine.io level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EnginePacket<'a> {
    Close,
    Ping(&'a str),
    Pong(&'a str),
    Message(&'a str),
    Upgrade,
    Noop,
}

pub(super) fn decode_engine(packet: &str) -> Result<EnginePacket<'_>, &'static str> {
    let mut chars = packet.chars();
    let kind = chars.next().ok_or("empty packet")?;
    let data = chars.as_str();
    Ok(match kind {
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping(data),
        '3' => EnginePacket::Pong(data),
        '4' => EnginePacket::Message(data),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        'b' => return Err("binary packets are not supported"),
        _ => return Err("unknown packet type"),
    })
}

/// The open packet that starts a session.
pub(super) fn encode_open(
    sid: &str,
    upgrades: &[&str],
    ping_interval_ms: u128,
    ping_timeout_ms: u128,
    max_payload: usize,
) -> String {
    let body = serde_json::json!({
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    });
    format!("0{body}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SocketKind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
}

/// A socket.io packet from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SocketPacket<'a> {
    pub kind: SocketKind,
    pub namespace: &'a str,
    pub ack: Option<u64>,
    /// The JSON that follows, possibly empty.
    pub data: &'a str,
}

pub(super) fn decode_socket(message: &str) -> Result<SocketPacket<'_>, &'static str> {
    let mut chars = message.chars();
    let kind = match chars.next() {
        Some('0') => SocketKind::Connect,
        Some('1') => SocketKind::Disconnect,
        Some('2') => SocketKind::Event,
        Some('3') => SocketKind::Ack,
        Some('4') => SocketKind::ConnectError,
        Some('5' | '6') => return Err("binary packets are not supported"),
        _ => return Err("unknown socket.io packet type"),
    };
    let mut rest = chars.as_str();
    let mut namespace = "/";
    if rest.starts_with('/') {
        let (nsp, after) = rest.split_once(',').unwrap_or((rest, ""));
        namespace = nsp;
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits == 0 { None } else { Some(rest[..digits].parse().map_err(|_| "ack id out of range")?) };
    Ok(SocketPacket { kind, namespace, ack, data: &rest[digits..] })
}

/// `40{"sid":…}`: the namespace connection is accepted.
pub(super) fn encode_connect(socket_id: &str) -> String {
    format!("40{}", serde_json::json!({ "sid": socket_id }))
}

/// `44/nsp,{"message":…}`: the namespace connection is refused.
pub(super) fn encode_connect_error(namespace: &str, message: &str) -> String {
    let body = serde_json::json!({ "message": message });
    if namespace == "/" { format!("44{body}") } else { format!("44{namespace},{body}") }
}

/// `43<id>[args…]`: the answer to an event the client sent with an acknowledgement callback.
pub(super) fn encode_ack(id: u64, args: &Value) -> String {
    format!("43{id}{args}")
}

/// `42["event",data]`: an event of the main namespace.
pub(super) fn encode_event(event: &str, data: &Value) -> Option<String> {
    let args = serde_json::to_string(&(event, data)).ok()?;
    Some(format!("42{args}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_engine_packets() {
        assert_eq!(decode_engine("3"), Ok(EnginePacket::Pong("")));
        assert_eq!(decode_engine("2probe"), Ok(EnginePacket::Ping("probe")));
        assert_eq!(decode_engine("440"), Ok(EnginePacket::Message("40")));
        assert_eq!(decode_engine("5"), Ok(EnginePacket::Upgrade));
        assert!(decode_engine("").is_err());
        assert!(decode_engine("bAAA").is_err());
        assert!(decode_engine("9").is_err());
    }

    #[test]
    fn decodes_socket_packets() {
        let p = decode_socket(r#"212["join",{"chainId":1,"topic":"orders"}]"#).expect("event");
        assert_eq!((p.kind, p.namespace, p.ack), (SocketKind::Event, "/", Some(12)));
        assert_eq!(p.data, r#"["join",{"chainId":1,"topic":"orders"}]"#);
        let p = decode_socket(r#"0/admin,{"token":"x"}"#).expect("connect");
        assert_eq!((p.kind, p.namespace, p.ack, p.data), (SocketKind::Connect, "/admin", None, r#"{"token":"x"}"#));
        assert_eq!(decode_socket("1").expect("disconnect").kind, SocketKind::Disconnect);
        assert!(decode_socket("5-[]").is_err());
        assert!(decode_socket("2999999999999999999999[]").is_err());
        assert!(decode_socket("").is_err());
    }

    #[test]
    fn encodes_server_packets() {
        assert_eq!(
            encode_event("apporder_unpublished", &json!("0xab")).as_deref(),
            Some(r#"42["apporder_unpublished","0xab"]"#)
        );
        assert_eq!(encode_ack(3, &json!([true])), "433[true]");
        assert_eq!(encode_connect("abc"), r#"40{"sid":"abc"}"#);
        assert_eq!(encode_connect_error("/x", "Invalid namespace"), r#"44/x,{"message":"Invalid namespace"}"#);
        let open = encode_open("s1", &["websocket"], 25000, 20000, 1000);
        let v: Value = serde_json::from_str(&open[1..]).expect("json");
        assert!(open.starts_with('0'));
        assert_eq!(
            v,
            json!({"sid":"s1","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000})
        );
    }
}
