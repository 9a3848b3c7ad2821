//! Publication: one order as the peer takes it, or a batch of them (Dragon's own). Each write authenticates
//! before it reads its body.

use super::OrderView;
use crate::api::auth::authenticated;
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, Query};
use crate::api::{check_chain, read_json_object};
use crate::ids::OrderHash;
use crate::market::{MarketError, PublishError};
use crate::order::record::OrderRecord;
use crate::order::{AnyOrder, OrderKind};
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Address;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Reads one submission (`{order, orderHash?}`) as the peer validates it, within the size bounds of the market:
/// the order's text is measured before it is read, so an oversized document costs no more than its bytes.
fn parse_submission(
    kind: OrderKind,
    body: &BTreeMap<String, Box<RawValue>>,
    config: &crate::market::MarketConfig,
) -> Result<(AnyOrder, Option<OrderHash>), PublishError> {
    if let Some(raw) = body.get("order")
        && raw.get().len() > config.max_order_bytes
    {
        return Err(PublishError::OrderTooLarge { size: raw.get().len(), limit: config.max_order_bytes });
    }
    let order = validate::signed_order(kind, body.get("order").map(AsRef::as_ref), "order")
        .map_err(PublishError::InvalidOrder)?;
    if let AnyOrder::Request(r) = &order
        && r.params.len() > config.max_params_bytes
    {
        return Err(PublishError::ParamsTooLarge { size: r.params.len(), limit: config.max_params_bytes });
    }
    let claimed =
        validate::bytes32("orderHash", &validate::Input::json(body.get("orderHash").map(AsRef::as_ref)), false)
            .map_err(PublishError::InvalidOrder)?
            .map(OrderHash);
    Ok((order, claimed))
}

/// Checks then publishes orders of one signer; one answer per order, in order.
async fn publish_all(
    state: &AppState,
    kind: OrderKind,
    who: Address,
    bodies: Vec<BTreeMap<String, Box<RawValue>>>,
) -> Result<Vec<Result<Arc<OrderRecord>, PublishError>>, ApiError> {
    let market = state.market.clone();
    let publisher = state.clone();
    let run = async move {
        let parsed = bodies.iter().map(|b| parse_submission(kind, b, &market.config)).collect();
        // One store read for the batch, then the signature checks run concurrently (on the recovery threads).
        let checked: Vec<Result<OrderRecord, PublishError>> = market.check_many(parsed, who).await;
        let mut slots: Vec<Option<Result<Arc<OrderRecord>, PublishError>>> = Vec::with_capacity(checked.len());
        let mut records = Vec::new();
        let mut positions = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, c) in checked.into_iter().enumerate() {
            match c {
                Ok(r) if !seen.insert(r.hash) => slots.push(Some(Err(PublishError::Duplicate(r.hash)))),
                Ok(r) => {
                    positions.push(i);
                    records.push(r);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(Err(e))),
            }
        }
        if !records.is_empty() {
            for (pos, res) in positions.into_iter().zip(publisher.publish(records).await) {
                slots[pos] = Some(res);
            }
        }
        slots.into_iter().map(|s| s.unwrap_or(Err(MarketError::ShuttingDown.into()))).collect::<Vec<_>>()
    };
    state.bg(run).await.ok_or(ApiError::Unavailable("shutting down"))
}

/// `chainId`, then the authorization header, then the per-address rate; the body is read only after.
pub(super) async fn authorize(state: &AppState, req: &HttpRequest, orders: u32) -> Result<Address, ApiError> {
    check_chain(state, &Query::parse(req.query_string()))?;
    let who = authenticated(state, req).await?;
    state.rates.check_address(who, orders)?;
    Ok(who)
}

pub async fn publish(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    kind: super::Kind,
) -> Result<HttpResponse, ApiError> {
    let kind = **kind;
    let who = authorize(&state, &req, 1).await?;
    let body = read_json_object(&req, payload, state.limits.body_bytes).await?;
    let mut answers = publish_all(&state, kind, who, vec![body]).await?;
    let record = answers.pop().unwrap_or(Err(MarketError::ShuttingDown.into()))?;
    Ok(published(&record))
}

/// `{"ok": true, "published": <the order's view>}`, assembled from the record's listing JSON (made once, kept for listings) rather than
/// serialised again; a unit test checks the bytes are the same.
fn published(record: &OrderRecord) -> HttpResponse {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"ok\":true,\"published\":");
    out.extend_from_slice(&super::shown(record));
    out.push(b'}');
    json_bytes(out)
}

fn json_bytes(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type(actix_web::http::header::ContentType::json()).body(body)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<OrderView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

/// Beyond the peer: up to `batch_orders` publications in one request, one answer per order. The rate per
/// address counts every order, so it is checked once the body says how many there are.
pub async fn publish_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    kind: super::Kind,
) -> Result<HttpResponse, ApiError> {
    let kind = **kind;
    check_chain(&state, &Query::parse(req.query_string()))?;
    let who = authenticated(&state, &req).await?;
    let body = read_json_object(&req, payload, state.limits.body_bytes).await?;
    let orders: Vec<BTreeMap<String, Box<RawValue>>> = match body.get("orders") {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|_| ApiError::BadRequest("orders must be an array of objects {order, orderHash?}".into()))?,
        None => return Err(ApiError::BadRequest("orders is a required field".into())),
    };
    let n = orders.len();
    if n == 0 || n > state.limits.batch_orders {
        return Err(ApiError::BadRequest(format!(
            "orders: between 1 and {} orders per batch",
            state.limits.batch_orders
        )));
    }
    state.rates.check_address(who, n as u32)?;
    let answers = publish_all(&state, kind, who, orders).await?;
    Ok(json_bytes(batch_answer(answers)))
}

/// `{"ok": true, "results": [<one BatchItem per order>]}` as bytes: each published order is its record's listing JSON (made once, kept for listings),
/// each refusal a serialised [`BatchItem`]. A unit test checks this is what serialising those items gives.
fn batch_answer(answers: Vec<Result<Arc<OrderRecord>, PublishError>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + answers.len() * 1024);
    out.extend_from_slice(b"{\"ok\":true,\"results\":[");
    for (i, a) in answers.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match a {
            Ok(r) => {
                out.extend_from_slice(b"{\"ok\":true,\"published\":");
                out.extend_from_slice(&super::shown(&r));
                out.push(b'}');
            }
            Err(e) => {
                let e = ApiError::from(e);
                let item = BatchItem { ok: false, published: None, error: Some(e.to_string()), code: Some(e.code()) };
                // Serialising a struct of strings into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut out, &item);
            }
        }
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::orders::list::tests::record;

    /// The answers' shapes, as serde writes them; the handlers assemble the same bytes.
    #[derive(Debug, Serialize)]
    struct Published {
        ok: bool,
        published: OrderView,
    }

    #[derive(Debug, Serialize)]
    struct BatchAnswer {
        ok: bool,
        results: Vec<BatchItem>,
    }

    fn answers() -> Vec<Result<Arc<OrderRecord>, PublishError>> {
        vec![
            Ok(record(0)),
            Err(PublishError::Duplicate(record(1).hash)),
            Ok(record(2)),
            Err(PublishError::InvalidOrder("order.volume must be greater than or equal to 1".into())),
        ]
    }

    #[test]
    fn answers_assembled_from_shown_json_are_the_serialised_answers() {
        // The serialisation the handlers made before they were assembled from each record's listing JSON.
        let serialised = |a: Result<Arc<OrderRecord>, PublishError>| match a {
            Ok(r) => BatchItem { ok: true, published: Some(OrderView::from(&*r)), error: None, code: None },
            Err(e) => {
                let e = ApiError::from(e);
                BatchItem { ok: false, published: None, error: Some(e.to_string()), code: Some(e.code()) }
            }
        };
        let expected = BatchAnswer { ok: true, results: answers().into_iter().map(serialised).collect() };
        assert_eq!(batch_answer(answers()), serde_json::to_vec(&expected).expect("json"));
        assert_eq!(batch_answer(vec![]), serde_json::to_vec(&BatchAnswer { ok: true, results: vec![] }).expect("json"));

        let r = record(7);
        let one = Published { ok: true, published: OrderView::from(&*r) };
        let body = actix_web::rt::System::new()
            .block_on(async { actix_web::body::to_bytes(published(&r).into_body()).await.expect("body") });
        assert_eq!(body.as_ref(), serde_json::to_vec(&one).expect("json").as_slice());
    }
}
