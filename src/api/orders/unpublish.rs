//! Unpublication, as the peer does it: by hash, the signer's last order of a resource, or all of them.

use super::publish::authorize;
use crate::api::error::ApiError;
use crate::api::read_json_object;
use crate::api::state::AppState;
use crate::api::validate;
use crate::ids::OrderHash;
use crate::market::PublishError;
use crate::order::OrderKind;
use actix_web::{HttpRequest, HttpResponse, web};
use alloy::primitives::Address;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct Unpublished {
    pub ok: bool,
    /// Hashes of the orders taken out of the book, newest first.
    pub unpublished: Vec<String>,
}

const TARGETS: [&str; 3] = ["unpublish_orderHash", "unpublish_last", "unpublish_all"];

/// The resource field of each kind's unpublication (`app`, ..., a request's `requester`).
pub fn resource_field(kind: OrderKind) -> &'static str {
    match kind {
        OrderKind::App => "app",
        OrderKind::Dataset => "dataset",
        OrderKind::Workerpool => "workerpool",
        OrderKind::Request => "requester",
    }
}

/// What to unpublish, validated as the peer validates it (`target`, then the resource, then `orderHash`).
enum Target {
    Hash(OrderHash),
    Last(Address),
    All(Address),
}

fn unpublish_target(kind: OrderKind, body: &BTreeMap<String, Box<RawValue>>) -> Result<Target, String> {
    let field = |name: &str| validate::Input::json(body.get(name).map(AsRef::as_ref));
    let target = validate::string("target", &field("target"), false)?.unwrap_or_else(|| TARGETS[0].to_owned());
    validate::one_of("target", &target, &TARGETS)?;
    let by_resource = target != TARGETS[0];
    let name = resource_field(kind);
    let resource = validate::address(name, &field(name), by_resource)?;
    let hash = validate::bytes32("orderHash", &field("orderHash"), !by_resource)?;
    Ok(match (target.as_str(), resource, hash) {
        ("unpublish_last", Some(a), _) => Target::Last(a),
        ("unpublish_all", Some(a), _) => Target::All(a),
        (_, _, Some(h)) => Target::Hash(OrderHash(h)),
        _ => return Err(format!("{name} is a required field")),
    })
}

pub async fn unpublish(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
    kind: super::Kind,
) -> Result<HttpResponse, ApiError> {
    let kind = **kind;
    let who = authorize(&state, &req, 1).await?;
    let body = read_json_object(&req, payload, state.limits.body_bytes).await?;
    let target = unpublish_target(kind, &body).map_err(ApiError::BadRequest)?;
    let book = &state.market.book;
    let hashes: Vec<OrderHash> = match target {
        Target::Hash(h) => match book.get(&h) {
            Some(r) if r.kind() == kind && r.signer == who => vec![h],
            Some(r) if r.kind() == kind => return Err(PublishError::NotSigner { signer: r.signer }.into()),
            _ => return Err(PublishError::NotPublished { kind, hash: h }.into()),
        },
        Target::Last(resource) | Target::All(resource) => {
            let last = matches!(target, Target::Last(_));
            let mine = |b: &crate::order::record::Brief, r: &crate::order::record::OrderRecord| {
                b.signer.is(&who, || r.signer)
                    && match b.kind {
                        OrderKind::Request => b.roles.requester.is(&resource, || r.roles().requester),
                        _ => r.asset() == resource,
                    }
            };
            let index = (kind != OrderKind::Request).then_some(resource);
            let mut all = book.query(kind, index, mine, 0, usize::MAX).orders;
            if all.is_empty() {
                let field = resource_field(kind);
                return Err(PublishError::NothingToUnpublish { kind, signer: who, field, address: resource }.into());
            }
            // Newest first, as the peer answers (and as iExec's SDK hands the list to its caller).
            all.sort_by_key(|r| std::cmp::Reverse((r.published_ms, r.seq)));
            if last {
                all.truncate(1);
            }
            all.iter().map(|r| r.hash).collect()
        }
    };
    let unpublisher = (**state).clone();
    let asked = hashes.clone();
    let removed = state.on_main(async move { unpublisher.unpublish(hashes).await }).await?;
    let removed: std::collections::HashSet<OrderHash> = removed.into_iter().collect();
    let unpublished = asked.iter().filter(|h| removed.contains(h)).map(ToString::to_string).collect();
    Ok(HttpResponse::Ok().json(Unpublished { ok: true, unpublished }))
}
