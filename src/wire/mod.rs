//! How Dragon writes values for its clients, shared by every layer that answers them (the API, the feed, chain
//! sync's records, the explorer), so that none of them reaches into another to format a date or an error: ISO
//! times as the peer prints them, the JSON error body, and the JSON forms of PoCo values ([`json`]), which
//! orders and amounts share.

pub mod json;

use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub ok: bool,
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: stable across versions.
    pub code: &'static str,
}

/// Unix milliseconds as ISO-8601 UTC with milliseconds (`2024-01-01T00:00:00.000Z`), as the peer prints dates.
pub fn iso_time(ms: i64) -> String {
    let (secs, milli) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_time_matches_known_dates() {
        assert_eq!(super::iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso_time(1_704_067_200_123), "2024-01-01T00:00:00.123Z");
        assert_eq!(super::iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
