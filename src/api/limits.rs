//! Abuse limits: requests per second per client IP (every route), and order writes per second per
//! authenticated address (each order of a batch counts). Both are GCRA buckets from `governor`, keyed in a
//! concurrent map, so a check is a few atomic operations and never waits.

use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::config::Limits;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use alloy::primitives::Address;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;

#[derive(Debug)]
pub struct RateLimits {
    ip: DefaultKeyedRateLimiter<IpAddr>,
    address: DefaultKeyedRateLimiter<Address>,
    per_ip: u32,
    per_address: u32,
}

impl RateLimits {
    pub fn new(l: &Limits) -> Self {
        let q = |n: u32| Quota::per_second(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        RateLimits {
            ip: RateLimiter::keyed(q(l.per_ip_per_second)),
            address: RateLimiter::keyed(q(l.per_address_per_second)),
            per_ip: l.per_ip_per_second,
            per_address: l.per_address_per_second,
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.ip.check_key(&ip).map_err(|_| ApiError::RateLimited(self.per_ip))
    }

    pub fn check_address(&self, a: Address, n: u32) -> Result<(), ApiError> {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match self.address.check_key_n(&a, n) {
            Ok(Ok(())) => Ok(()),
            _ => Err(ApiError::RateLimited(self.per_address)),
        }
    }

    /// Forgets idle keys (called now and then so the maps do not grow without bound).
    pub fn sweep(&self) {
        self.ip.retain_recent();
        self.address.retain_recent();
    }
}

/// Middleware: the per-IP limit on every request.
pub async fn per_ip(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let (Some(state), Some(peer)) = (req.app_data::<web::Data<AppState>>(), req.peer_addr()) {
        state.rates.check_ip(peer.ip())?;
    }
    next.call(req).await
}
