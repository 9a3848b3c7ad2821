//! How the bot prices its workerpool orders: pure functions of what the exchange shows, so that every decision
//! can be tested and explained without a market.

use std::collections::BTreeMap;

/// A pricing strategy, for every category the bot serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// A configured price per category (nRLC).
    Fixed(BTreeMap<u64, u64>),
    /// Follow the book and recent deals, within `[min, max]`.
    Follow(Bounds),
}

/// The bounds and step of the `follow` strategy, in nRLC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
    /// How far below the best competing ask the bot prices.
    pub step: u64,
}

/// What the exchange shows of one category, apart from the bot's own orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MarketView {
    /// The lowest open workerpool order of another pool.
    pub best_ask: Option<u64>,
    /// The highest open request's `workerpoolmaxprice`.
    pub best_bid: Option<u64>,
    /// The price of the category's most recent deal.
    pub last_deal: Option<u64>,
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Fixed(_) => "fixed",
            Strategy::Follow(_) => "follow",
        }
    }

    /// Whether the strategy needs the market (the fixed one does not read it).
    pub fn reads_market(&self) -> bool {
        matches!(self, Strategy::Follow(_))
    }

    /// The price for `category` and why, in words for the log.
    pub fn price(&self, category: u64, market: &MarketView) -> (u64, String) {
        match self {
            Strategy::Fixed(prices) => {
                // Config validation guarantees a price for every served category.
                let p = prices.get(&category).copied().unwrap_or(0);
                (p, format!("fixed price {p}"))
            }
            Strategy::Follow(b) => follow(*b, market),
        }
    }
}

/// Undercut the cheapest competitor by one step; with no competitor, sell at the best bid (the highest price
/// that still fills it); with an empty book, at the last deal's price; with nothing at all, at the maximum.
/// Always within `[min, max]`.
pub fn follow(b: Bounds, m: &MarketView) -> (u64, String) {
    let (raw, why) = if let Some(ask) = m.best_ask {
        (ask.saturating_sub(b.step), format!("undercut the best competing ask {ask} by {}", b.step))
    } else if let Some(bid) = m.best_bid {
        (bid, format!("no competing ask: the best bid {bid}"))
    } else if let Some(d) = m.last_deal {
        (d, format!("empty book: the last deal's price {d}"))
    } else {
        (b.max, "empty book and no deal: the maximum".to_owned())
    };
    if raw < b.min {
        (b.min, format!("{why}, held at the minimum {}", b.min))
    } else if raw > b.max {
        (b.max, format!("{why}, held at the maximum {}", b.max))
    } else {
        (raw, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds { min: 3, max: 20, step: 1 };

    #[test]
    fn follow_undercuts_within_bounds_and_never_below_min() {
        let m = |ask, bid, last| MarketView { best_ask: ask, best_bid: bid, last_deal: last };
        assert_eq!(follow(B, &m(Some(10), Some(4), Some(8))).0, 9);
        assert_eq!(follow(B, &m(Some(3), None, None)).0, 3, "undercutting 3 would go below min");
        assert_eq!(follow(B, &m(Some(0), None, None)).0, 3);
        assert_eq!(follow(B, &m(Some(50), None, None)).0, 20, "never above max");
        assert_eq!(follow(B, &m(None, Some(7), Some(12))).0, 7);
        assert_eq!(follow(B, &m(None, None, Some(12))).0, 12);
        assert_eq!(follow(B, &m(None, None, None)).0, 20);
        let (_, why) = follow(B, &m(Some(2), None, None));
        assert!(why.contains("held at the minimum 3"), "{why}");
    }

    #[test]
    fn fixed_prices_are_per_category() {
        let s = Strategy::Fixed([(0, 5), (1, 9)].into());
        assert_eq!(s.price(1, &MarketView::default()).0, 9);
        assert_eq!(s.price(0, &MarketView { best_ask: Some(1), ..Default::default() }).0, 5);
    }
}
