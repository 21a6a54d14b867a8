//! Wikibase time values as the strings Conveyor stores.
//!
//! A value looks like `+1952-03-11T00:00:00Z` with a precision: 11 = day, 10 = month,
//! 9 = year, lower = decade, century and coarser (which keep zero month and day).

/// The date at its precision: `YYYY-MM-DD` (11 or finer), `YYYY-MM` (10) or `YYYY`
/// (9 and coarser), with a leading `-` before the common era. A month or day that the
/// precision claims but the value lacks (`00`) lowers the precision instead of
/// producing an impossible date. `None` when the value cannot be read.
pub(crate) fn format_time(time: &str, precision: u64) -> Option<String> {
    let (negative, unsigned) = match time.as_bytes().first()? {
        b'-' => (true, &time[1..]),
        b'+' => (false, &time[1..]),
        _ => (false, time),
    };
    let date = unsigned.split('T').next()?;
    let mut parts = date.split('-');
    let year = number(parts.next()?)?;
    let month = number(parts.next()?)?;
    let day = number(parts.next()?)?;
    if parts.next().is_some() || month > 12 || day > 31 {
        return None;
    }
    let sign = if negative && year > 0 { "-" } else { "" };
    Some(if precision >= 11 && month > 0 && day > 0 {
        format!("{sign}{year:04}-{month:02}-{day:02}")
    } else if precision >= 10 && month > 0 {
        format!("{sign}{year:04}-{month:02}")
    } else {
        format!("{sign}{year:04}")
    })
}

fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn day_month_and_year_precision() {
        assert_eq!(
            format_time("+1952-03-11T00:00:00Z", 11).as_deref(),
            Some("1952-03-11")
        );
        assert_eq!(
            format_time("+1775-12-00T00:00:00Z", 10).as_deref(),
            Some("1775-12")
        );
        assert_eq!(
            format_time("+1564-00-00T00:00:00Z", 9).as_deref(),
            Some("1564")
        );
    }

    #[test]
    fn finer_than_a_day_is_a_day_and_coarser_than_a_year_is_a_year() {
        assert_eq!(
            format_time("+2001-05-11T13:45:00Z", 14).as_deref(),
            Some("2001-05-11")
        );
        assert_eq!(
            format_time("+1850-00-00T00:00:00Z", 8).as_deref(),
            Some("1850")
        );
        assert_eq!(
            format_time("+1801-00-00T00:00:00Z", 7).as_deref(),
            Some("1801")
        );
        // A finer precision than the value holds does not invent a date.
        assert_eq!(
            format_time("+1900-07-00T00:00:00Z", 9).as_deref(),
            Some("1900")
        );
        assert_eq!(
            format_time("+1900-07-00T00:00:00Z", 11).as_deref(),
            Some("1900-07")
        );
        assert_eq!(
            format_time("+1900-00-00T00:00:00Z", 11).as_deref(),
            Some("1900")
        );
    }

    #[test]
    fn years_before_the_common_era_keep_a_minus_and_four_digits() {
        assert_eq!(
            format_time("-0551-00-00T00:00:00Z", 9).as_deref(),
            Some("-0551")
        );
        assert_eq!(
            format_time("-0043-03-15T00:00:00Z", 11).as_deref(),
            Some("-0043-03-15")
        );
        assert_eq!(
            format_time("-13798000000-00-00T00:00:00Z", 3).as_deref(),
            Some("-13798000000")
        );
    }

    #[test]
    fn old_padded_years_and_missing_signs_are_read() {
        assert_eq!(
            format_time("+00000001952-03-11T00:00:00Z", 11).as_deref(),
            Some("1952-03-11")
        );
        assert_eq!(
            format_time("1952-03-11T00:00:00Z", 11).as_deref(),
            Some("1952-03-11")
        );
        assert_eq!(
            format_time("+0050-00-00T00:00:00Z", 9).as_deref(),
            Some("0050")
        );
    }

    #[test]
    fn unreadable_values_are_none_not_panics() {
        for bad in [
            "",
            "+",
            "-",
            "+19x2-03-11T00:00:00Z",
            "+1952-13-01T00:00:00Z",
            "+1952-03",
            "+1952-03-11-01T00Z",
            "+é952-03-11",
            "+99999999999999999999999-01-01T00:00:00Z",
        ] {
            assert_eq!(format_time(bad, 11), None, "{bad}");
        }
    }
}
