//! Beyond the peer (issue 21): why an order does not match. `GET /{kind}orders/{orderHash}/explain` explains a
//! published order, `POST /explain` a draft (unsigned, never published: a dry run). Both answer the market's
//! [`Explanation`](crate::market::explain::Explanation): the best combinations of the order with counter-orders,
//! each with every condition that blocks it, a stable code and a message with the numbers.

use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::validate::{self, Query};
use crate::api::{check_chain, read_json_object};
use crate::ids::OrderHash;
use crate::market::PublishError;
use crate::market::explain::{Combination, Explanation, Member, Why};
use crate::order::OrderKind;
use crate::order::record::OrderStatus;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

/// One order of a combination.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainMember {
    pub order_hash: String,
    /// nRLC: the seller's price; a request's `workerpoolmaxprice`.
    pub price: u64,
    /// Volume still available to match.
    pub remaining: u64,
}

/// One condition that blocks a combination.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainBlocker {
    /// Stable: `category`, `trust`, `app_price`, `dataset_price`, `workerpool_price`, `tag`, `tee_app`, `app`,
    /// `dataset`, `request_workerpool_restrict`, `{app,dataset,workerpool}_{app,dataset,workerpool,requester}_restrict`,
    /// `track_record` (Dragon's own rule: the request's `dragon_min_track_record`), `volume`, `stake`,
    /// `no_app_order`, `no_dataset_order`, `no_workerpool_order`, `no_request_order`.
    pub code: &'static str,
    /// The PoCo revert code of a rule of `matchOrders` (`iExecV5-matchOrders-0x05` is 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poco: Option<u8>,
    pub message: String,
}

/// The order explained with counter-orders: a member is null when it does not exist (a dataset-less request has
/// no dataset order; a missing order is a blocker).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainCombination {
    pub apporder: Option<ExplainMember>,
    pub datasetorder: Option<ExplainMember>,
    pub workerpoolorder: Option<ExplainMember>,
    pub requestorder: Option<ExplainMember>,
    /// Empty: the engine matches this combination.
    pub blockers: Vec<ExplainBlocker>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainAnswer {
    pub ok: bool,
    /// `app`, `dataset`, `workerpool` or `request`.
    pub kind: &'static str,
    pub order_hash: String,
    /// The order's status; `draft` for `POST /explain`.
    pub status: &'static str,
    /// Volume of the order still available to match.
    pub remaining: u64,
    /// Whether some combination has no blocker: always false for an open order (the engine would have matched
    /// it), true for a draft that would match if published.
    pub matches: bool,
    /// At most 10, fewest blockers first.
    pub combinations: Vec<ExplainCombination>,
}

fn member(m: &Option<Member>) -> Option<ExplainMember> {
    m.as_ref().map(|m| ExplainMember { order_hash: m.hash.to_string(), price: m.price, remaining: m.remaining })
}

fn blocker(w: &Why) -> ExplainBlocker {
    ExplainBlocker { code: w.code, poco: w.poco, message: w.message.clone() }
}

fn combination(c: &Combination) -> ExplainCombination {
    ExplainCombination {
        apporder: member(&c.app),
        datasetorder: member(&c.dataset),
        workerpoolorder: member(&c.workerpool),
        requestorder: member(&c.request),
        blockers: c.blockers.iter().map(blocker).collect(),
    }
}

fn answer(e: &Explanation) -> ExplainAnswer {
    ExplainAnswer {
        ok: true,
        kind: e.kind.as_str(),
        order_hash: e.hash.to_string(),
        status: e.status.map_or("draft", OrderStatus::as_str),
        remaining: e.remaining,
        matches: e.matches,
        combinations: e.combinations.iter().map(combination).collect(),
    }
}

/// `GET /{kind}orders/{orderHash}/explain`: a published order, in any status (an order no longer open has no
/// volume left to match).
pub async fn explain_order(
    state: web::Data<AppState>,
    req: HttpRequest,
    kind: web::Data<OrderKind>,
    hash: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let kind = **kind;
    let q = Query::parse(req.query_string());
    check_chain(&state, &q)?;
    let text = validate::Input::Text(hash.as_str().into());
    let hash =
        OrderHash(validate::bytes32("orderHash", &text, true).map_err(ApiError::BadRequest)?.unwrap_or_default());
    let record = match crate::api::orders::find(&state, hash).await? {
        Some(r) if r.kind() == kind => r,
        _ => return Err(ApiError::NotFound(format!("{kind}order"))),
    };
    let market = state.market.clone();
    let e = state
        .bg(async move { market.explain(&record).await })
        .await
        .ok_or(ApiError::Unavailable("shutting down"))??;
    Ok(HttpResponse::Ok().json(answer(&e)))
}

/// `POST /explain` with `{kind, order}`: a draft, validated as a publication is (without the signature), and
/// explained as if it were published now. Nothing is stored.
pub async fn explain_draft(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_chain(&state, &Query::parse(req.query_string()))?;
    let body = read_json_object(&req, payload, state.limits.body_bytes).await?;
    let kind_input = validate::Input::json(body.get("kind").map(AsRef::as_ref));
    let kind_text = validate::string("kind", &kind_input, true).map_err(ApiError::BadRequest)?.unwrap_or_default();
    let kind = OrderKind::ALL.into_iter().find(|k| k.as_str() == kind_text).ok_or_else(|| {
        ApiError::BadRequest("kind must be one of the following values: app, dataset, workerpool, request".into())
    })?;
    let config = &state.market.config;
    if let Some(raw) = body.get("order")
        && raw.get().len() > config.max_order_bytes
    {
        return Err(PublishError::OrderTooLarge { size: raw.get().len(), limit: config.max_order_bytes }.into());
    }
    let order = validate::draft_order(kind, body.get("order").map(AsRef::as_ref), "order")
        .map_err(|e| ApiError::from(PublishError::InvalidOrder(e)))?;
    if let crate::order::AnyOrder::Request(r) = &order
        && r.params.len() > config.max_params_bytes
    {
        return Err(PublishError::ParamsTooLarge { size: r.params.len(), limit: config.max_params_bytes }.into());
    }
    let market = state.market.clone();
    let e = state
        .bg(async move { market.explain_draft(order).await })
        .await
        .ok_or(ApiError::Unavailable("shutting down"))??;
    Ok(HttpResponse::Ok().json(answer(&e)))
}
