//! From the pool's free capacity to the volume offered per category, and from what is offered to what the bot
//! does. Pure: the loop in `mod.rs` feeds it what the pool and the exchange answered.

/// Splits `free` task slots between `n` categories: evenly, the remainder to the first ones, each share capped at
/// `max_volume`. The workers run any category, so the shares must not add up to more than the pool can run: a
/// deal the pool cannot run in time is claimed, and its requester refunded, at the pool's cost.
pub fn split(free: u64, n: usize, max_volume: u64) -> Vec<u64> {
    let n64 = n as u64;
    if n64 == 0 {
        return Vec::new();
    }
    (0..n64).map(|i| (free / n64 + u64::from(i < free % n64)).min(max_volume)).collect()
}

/// The largest volume the owner's free `stake` lets one order at `price` carry: the exchange (and the hub at
/// matching) wants 30% of the price per task in free stake, for the whole remaining volume of each order.
pub fn stake_cap(stake: alloy::primitives::U256, price: u64) -> u64 {
    let per_task = u128::from(price) * 30 / 100;
    if per_task == 0 {
        return u64::MAX;
    }
    let cap = stake / alloy::primitives::U256::from(per_task);
    u64::try_from(cap).unwrap_or(u64::MAX)
}

/// The bot's open order in one category, as the exchange last showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub price: u64,
    pub remaining: u64,
}

/// What to do in one category this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The offer is what it should be (or there is nothing to offer and nothing offered).
    Keep,
    /// First offer, or an offer again after a withdrawal.
    Publish,
    /// The previous offer was consumed: a new one takes its place.
    Renew,
    /// More capacity: a bigger offer replaces the current one.
    Raise,
    /// Less capacity (not none): a smaller offer replaces the current one.
    Lower,
    /// Same volume, new price.
    Reprice,
    /// No capacity: the offer is taken out of the book.
    Withdraw,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Publish => "publish",
            Action::Renew => "renew",
            Action::Raise => "raise",
            Action::Lower => "lower",
            Action::Reprice => "reprice",
            Action::Withdraw => "withdraw",
        }
    }
}

/// Decides from the open offer (`None` when there is none, `consumed` when the last one was filled), the volume
/// the capacity allows, and the strategy's price.
pub fn decide(open: Option<Offer>, consumed: bool, volume: u64, price: u64) -> Action {
    match open.filter(|o| o.remaining > 0) {
        None if volume == 0 => Action::Keep,
        None if consumed => Action::Renew,
        None => Action::Publish,
        Some(_) if volume == 0 => Action::Withdraw,
        Some(o) if o.remaining < volume => Action::Raise,
        Some(o) if o.remaining > volume => Action::Lower,
        Some(o) if o.price != price => Action::Reprice,
        Some(_) => Action::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_never_offers_more_than_free() {
        assert_eq!(split(5, 2, 100), [3, 2]);
        assert_eq!(split(1, 3, 100), [1, 0, 0]);
        assert_eq!(split(7, 1, 4), [4]);
        assert_eq!(split(0, 2, 10), [0, 0]);
        assert!(split(3, 0, 10).is_empty());
    }

    #[test]
    fn the_stake_caps_the_volume_as_the_exchange_checks_it() {
        use alloy::primitives::U256;
        assert_eq!(stake_cap(U256::from(30), 100), 1, "30% of 100 per task");
        assert_eq!(stake_cap(U256::from(29), 100), 0);
        assert_eq!(stake_cap(U256::from(90), 100), 3);
        assert_eq!(stake_cap(U256::ZERO, 3), u64::MAX, "30% of 3 rounds to 0: nothing to lock");
    }

    #[test]
    fn decisions_follow_capacity_consumption_and_price() {
        let o = |price, remaining| Some(Offer { price, remaining });
        assert_eq!(decide(None, false, 0, 5), Action::Keep);
        assert_eq!(decide(None, false, 1, 5), Action::Publish);
        assert_eq!(decide(None, true, 1, 5), Action::Renew);
        assert_eq!(decide(o(5, 0), true, 2, 5), Action::Renew, "a filled offer is no offer");
        assert_eq!(decide(o(5, 1), false, 2, 5), Action::Raise);
        assert_eq!(decide(o(5, 2), false, 1, 5), Action::Lower);
        assert_eq!(decide(o(5, 2), false, 0, 5), Action::Withdraw);
        assert_eq!(decide(o(5, 2), false, 2, 4), Action::Reprice);
        assert_eq!(decide(o(5, 2), false, 2, 5), Action::Keep);
    }
}
