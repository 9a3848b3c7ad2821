//! What a failed RPC call of the settler means for the proposals it carried: a revert is final (the hub refused
//! the deal, and would again), anything else (no answer, a node's hiccup, no gas money) is retried and the
//! proposals wait.

/// What a failed send means for the proposals it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later; the proposals wait.
    Retryable(String),
    /// The operator account cannot pay for gas: retried, and reported by the health check meanwhile.
    NoGasMoney(String),
    /// The hub refused the deal: the proposal fails with this reason.
    Final(String),
}

/// Sorts an RPC error: a revert is final (with its decoded reason), everything else is retried.
pub fn classify(e: &alloy::contract::Error) -> SendError {
    use alloy::transports::RpcError;
    let alloy::contract::Error::TransportError(t) = e else {
        return SendError::Final(e.to_string());
    };
    match t {
        RpcError::ErrorResp(payload) => {
            if let Some(data) = payload.as_revert_data() {
                return SendError::Final(crate::chain::revert::decode(&data).to_string());
            }
            let m = payload.message.to_lowercase();
            if m.contains("insufficient funds") || m.contains("gas required exceeds allowance") {
                SendError::NoGasMoney(payload.message.to_string())
            } else if m.contains("revert") {
                SendError::Final(payload.message.to_string())
            } else {
                SendError::Retryable(payload.message.to_string())
            }
        }
        other => SendError::Retryable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::sol_types::{Revert, SolError};
    use alloy::transports::{RpcError, TransportErrorKind};

    /// An error answer as a node sends it (the payload type is alloy's, inferred from the variant).
    fn resp(message: &'static str, data: Option<&str>) -> alloy::contract::Error {
        let body = match data {
            Some(d) => serde_json::json!({"code": 3, "message": message, "data": d}),
            None => serde_json::json!({"code": -32000, "message": message}),
        };
        let payload = serde_json::from_value(body).expect("an error payload");
        alloy::contract::Error::TransportError(RpcError::ErrorResp(payload))
    }

    #[test]
    fn reverts_are_final_with_their_decoded_reason_and_the_rest_is_retried() {
        let data = format!("0x{}", alloy::hex::encode(Revert::from("iExecV5-matchOrders-0x60").abi_encode()));
        let SendError::Final(reason) = classify(&resp("execution reverted", Some(&data))) else {
            panic!("a revert with data is final")
        };
        assert!(reason.contains("iExecV5-matchOrders-0x60"), "{reason}");
        assert!(matches!(classify(&resp("execution reverted", None)), SendError::Final(_)));
        assert!(matches!(
            classify(&resp("Insufficient funds for gas * price + value", None)),
            SendError::NoGasMoney(_)
        ));
        assert!(matches!(classify(&resp("nonce too low", None)), SendError::Retryable(_)));
        assert!(matches!(classify(&resp("replacement transaction underpriced", None)), SendError::Retryable(_)));
        let transport = alloy::contract::Error::TransportError(RpcError::Transport(TransportErrorKind::BackendGone));
        assert!(matches!(classify(&transport), SendError::Retryable(_)));
    }
}
