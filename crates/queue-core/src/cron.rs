//! Cron expressions with seconds and time zones, and what to fire when ticks were
//! missed. Pure: the clock is an argument (or a [`Clock`]), so tests drive time.
//!
//! Expressions: 6 fields (`sec min hour day-of-month month day-of-week`), 7 with a
//! year, or a classic 5-field expression (`min hour dom month dow`), which gets a
//! `0` seconds field. In 6/7-field expressions the day of week is the `cron` crate's
//! (1-7 = Sunday-Saturday, or names); in 5-field expressions it is classic cron's
//! (0-7, 0 and 7 = Sunday), translated.
//!
//! Time zones and daylight saving: a schedule is evaluated in local wall-clock time
//! of its zone, and each local tick becomes one instant:
//! - a local time that exists once fires at that instant;
//! - a local time that does not exist (the spring-forward gap, e.g. 02:30 in
//!   America/New_York on the second Sunday of March) fires once, at the first
//!   instant after the gap (03:00 local, the moment of the change); several ticks in
//!   the gap fire once together;
//! - a local time that exists twice (the fall-back overlap) fires once, at its first
//!   occurrence; the repeated hour fires nothing again.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Most ticks one schedule fires at once under [`MisfirePolicy::All`].
pub const MAX_CATCH_UP: usize = 1_000;
/// Most candidate local times looked at for one next tick (a second-by-second
/// schedule in a repeated hour skips 3,600).
const MAX_CANDIDATES: usize = 100_000;

/// The time now, injectable for tests.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// An invalid expression or zone, naming the API field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("cronExpression: invalid cron expression `{expression}`: {reason}")]
    Expression { expression: String, reason: String },
    #[error("timezone: unknown time zone `{0}` (use an IANA name such as Asia/Shanghai)")]
    Timezone(String),
}

impl CronError {
    /// The API field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Expression { .. } => "cronExpression",
            Self::Timezone(_) => "timezone",
        }
    }
}

/// A parsed expression in its zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    schedule: cron::Schedule,
    tz: Tz,
}

/// Parses a time zone name.
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    name.parse::<Tz>()
        .map_err(|_| CronError::Timezone(name.to_string()))
}

/// Parses `expression` (5, 6 or 7 fields) in zone `timezone`.
pub fn parse(expression: &str, timezone: &str) -> Result<CronSchedule, CronError> {
    let err = |reason: String| CronError::Expression {
        expression: expression.to_string(),
        reason,
    };
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let normalized = match fields.len() {
        5 => {
            let dow = classic_day_of_week(fields[4]).map_err(err)?;
            format!(
                "0 {} {} {} {} {dow}",
                fields[0], fields[1], fields[2], fields[3]
            )
        }
        6 | 7 => fields.join(" "),
        n => return Err(err(format!("expected 5, 6 or 7 fields, got {n}"))),
    };
    let schedule = cron::Schedule::from_str(&normalized).map_err(|e| err(e.to_string()))?;
    let tz = parse_timezone(timezone)?;
    Ok(CronSchedule { schedule, tz })
}

/// Classic cron's day of week (0-7, Sunday = 0 or 7) in the `cron` crate's (1-7,
/// Sunday = 1). Names and `*` pass through.
fn classic_day_of_week(field: &str) -> Result<String, String> {
    let map = |s: &str| -> Result<Option<u32>, String> {
        if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
            let n: u32 = s.parse().map_err(|_| format!("bad day of week `{s}`"))?;
            if n > 7 {
                return Err(format!("day of week {n} is out of range 0-7"));
            }
            Ok(Some(n))
        } else {
            Ok(None)
        }
    };
    let to_crate = |n: u32| if n == 7 { 1 } else { n + 1 };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let step_suffix = step.map(|s| format!("/{s}")).unwrap_or_default();
        match range.split_once('-') {
            Some((a, b)) => match (map(a)?, map(b)?) {
                (Some(a), Some(7)) if a > 0 => {
                    // `a-7`: a..Saturday plus Sunday.
                    out.push(format!("{}-7{step_suffix}", to_crate(a)));
                    if step.is_none() {
                        out.push("1".into());
                    }
                }
                (Some(a), Some(b)) => out.push(format!(
                    "{}-{}{step_suffix}",
                    to_crate(a),
                    to_crate(b).max(1)
                )),
                _ => out.push(item.to_string()),
            },
            None => match map(range)? {
                Some(n) => out.push(format!("{}{step_suffix}", to_crate(n))),
                None => out.push(item.to_string()),
            },
        }
    }
    Ok(out.join(","))
}

impl CronSchedule {
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first tick strictly after `after`, as an instant (see the module's DST
    /// rules), or None when the expression has no more ticks.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Walk local wall-clock candidates as naive times (the crate on UTC has no
        // gaps or overlaps) and map each to an instant. A candidate not after the
        // local time of `after` maps to an instant not after `after` either (in the
        // repeated hour to its first occurrence), so starting there misses nothing.
        let start = Utc.from_utc_datetime(&after.with_timezone(&self.tz).naive_local());
        for (i, candidate) in self.schedule.after(&start).enumerate() {
            if i >= MAX_CANDIDATES {
                return None;
            }
            let instant = self.instant_of(candidate.naive_utc());
            if instant > after {
                return Some(instant);
            }
        }
        None
    }

    /// The instant at which local time `naive` fires.
    fn instant_of(&self, naive: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => self.end_of_gap(naive),
        }
    }

    /// The first instant whose local time is past `naive`, a time in a gap: the
    /// moment the clocks jumped.
    fn end_of_gap(&self, naive: NaiveDateTime) -> DateTime<Utc> {
        let offset_secs = |t: NaiveDateTime| {
            i64::from(self.tz.offset_from_utc_datetime(&t).fix().local_minus_utc())
        };
        // Bounds: read with the offsets of a day before and after.
        let before = offset_secs(naive - Duration::days(1));
        let after = offset_secs(naive + Duration::days(1));
        let a = naive - Duration::seconds(before.max(after));
        let b = naive - Duration::seconds(before.min(after));
        let (mut lo, mut hi) = (a.and_utc().timestamp(), b.and_utc().timestamp());
        let local_of = |secs: i64| {
            Utc.timestamp_opt(secs, 0)
                .single()
                .map(|t| t.with_timezone(&self.tz).naive_local())
        };
        // Smallest instant in [lo, hi] whose local time is after `naive`.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if local_of(mid).is_some_and(|l| l > naive) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Utc.timestamp_opt(lo, 0)
            .single()
            .unwrap_or_else(|| naive.and_utc())
    }
}

/// What to do with ticks missed while no scheduler ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// One run for all the missed ticks (keyed by the latest of them; none when
    /// an on-time tick runs now anyway).
    #[default]
    Coalesce,
    /// No run for missed ticks; only ticks at most the grace period late fire.
    Skip,
    /// Each missed tick runs once (at most [`MAX_CATCH_UP`], the newest).
    All,
}

impl MisfirePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coalesce => "coalesce",
            Self::Skip => "skip",
            Self::All => "all",
        }
    }
}

impl fmt::Display for MisfirePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MisfirePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "coalesce" => Ok(Self::Coalesce),
            "skip" => Ok(Self::Skip),
            "all" => Ok(Self::All),
            other => Err(format!(
                "unknown misfire policy `{other}`; valid values: coalesce, skip, all"
            )),
        }
    }
}

/// Read from a text column (`scheduled_jobs.misfire_policy`).
impl sqlx::Type<sqlx::Postgres> for MisfirePolicy {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for MisfirePolicy {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(text.parse()?)
    }
}

/// The ticks to fire now and the next tick to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// Ticks to enqueue, oldest first (each one's job key is the tick).
    pub fire: Vec<DateTime<Utc>>,
    /// The first tick after `now` (None: the expression has no more).
    pub next: Option<DateTime<Utc>>,
}

/// Plans a schedule whose next tick `due` has come (`due <= now`). A tick is late
/// (missed) when it is more than `grace` before `now`.
pub fn plan(
    schedule: &CronSchedule,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    policy: MisfirePolicy,
    grace: Duration,
) -> FirePlan {
    if due > now {
        return FirePlan {
            fire: Vec::new(),
            next: Some(due),
        };
    }
    // Every tick in [due, now], keeping the newest MAX_CATCH_UP.
    let mut ticks = std::collections::VecDeque::new();
    let mut tick = Some(due);
    let mut guard = 0usize;
    while let Some(t) = tick.filter(|t| *t <= now) {
        ticks.push_back(t);
        if ticks.len() > MAX_CATCH_UP {
            ticks.pop_front();
        }
        guard += 1;
        if guard > 10 * MAX_CANDIDATES {
            break;
        }
        tick = schedule.next_after(t);
    }
    let next = schedule.next_after(now);
    // Ticks at most `grace` late are on time and always fire; older ones were
    // missed and follow the policy.
    let first_on_time = ticks.iter().position(|t| now - *t <= grace);
    let on_time: Vec<_> = first_on_time
        .map(|i| ticks.iter().skip(i).copied().collect())
        .unwrap_or_default();
    let latest_missed = match first_on_time {
        Some(0) => None,
        Some(i) => ticks.get(i - 1).copied(),
        None => ticks.back().copied(),
    };
    let fire = match policy {
        // One run for the missed ticks: the on-time runs when there are any,
        // else the latest missed tick.
        MisfirePolicy::Coalesce if on_time.is_empty() => latest_missed.into_iter().collect(),
        MisfirePolicy::Coalesce | MisfirePolicy::Skip => on_time,
        MisfirePolicy::All => ticks.into_iter().collect(),
    };
    FirePlan { fire, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock the test moves.
    struct TestClock(Mutex<DateTime<Utc>>);
    impl Clock for TestClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }
    impl TestClock {
        fn advance(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The first `n` ticks after `from`.
    fn ticks(expr: &str, tz: &str, from: &str, n: usize) -> Vec<DateTime<Utc>> {
        let s = parse(expr, tz).unwrap();
        let mut out = Vec::new();
        let mut t = utc(from);
        for _ in 0..n {
            t = s.next_after(t).unwrap();
            out.push(t);
        }
        out
    }

    fn local(ticks: &[DateTime<Utc>], tz: &str) -> Vec<String> {
        let tz: Tz = tz.parse().unwrap();
        ticks
            .iter()
            .map(|t| {
                t.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn seconds_field_fires_every_two_seconds() {
        let t = ticks("*/2 * * * * *", "UTC", "2026-01-01T00:00:00.500Z", 3);
        assert_eq!(
            t,
            vec![
                utc("2026-01-01T00:00:02Z"),
                utc("2026-01-01T00:00:04Z"),
                utc("2026-01-01T00:00:06Z")
            ]
        );
        // Strictly after: a tick exactly at `after` is not returned.
        let t = ticks("30 * * * * *", "UTC", "2026-01-01T00:00:30Z", 1);
        assert_eq!(t, vec![utc("2026-01-01T00:01:30Z")]);
    }

    #[test]
    fn five_field_expressions_get_a_zero_seconds_field() {
        let t = ticks("*/30 * * * *", "UTC", "2026-01-01T00:00:10Z", 2);
        assert_eq!(
            t,
            vec![utc("2026-01-01T00:30:00Z"), utc("2026-01-01T01:00:00Z")]
        );
        // Classic day of week: 1-5 is Monday-Friday; 2026-01-03 is a Saturday.
        let t = ticks("0 9 * * 1-5", "UTC", "2026-01-02T10:00:00Z", 1);
        assert_eq!(t, vec![utc("2026-01-05T09:00:00Z")]);
        // 0 and 7 are Sunday (2026-01-04).
        for expr in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
            assert_eq!(
                ticks(expr, "UTC", "2026-01-02T10:00:00Z", 1),
                vec![utc("2026-01-04T09:00:00Z")],
                "{expr}"
            );
        }
        // 5-7 is Friday, Saturday, Sunday.
        let t = ticks("0 9 * * 5-7", "UTC", "2026-01-01T10:00:00Z", 4);
        assert_eq!(
            t,
            vec![
                utc("2026-01-02T09:00:00Z"),
                utc("2026-01-03T09:00:00Z"),
                utc("2026-01-04T09:00:00Z"),
                utc("2026-01-09T09:00:00Z")
            ]
        );
    }

    #[test]
    fn ranges_steps_and_lists() {
        // Seconds 10-20 every 5, at minutes 0 and 30.
        let t = ticks("10-20/5 0,30 * * * *", "UTC", "2026-01-01T00:00:00Z", 4);
        assert_eq!(
            t,
            vec![
                utc("2026-01-01T00:00:10Z"),
                utc("2026-01-01T00:00:15Z"),
                utc("2026-01-01T00:00:20Z"),
                utc("2026-01-01T00:30:10Z")
            ]
        );
        // Hours 9-17 every 4: 9, 13, 17.
        let t = ticks("0 0 9-17/4 * * *", "UTC", "2026-01-01T00:00:00Z", 4);
        assert_eq!(
            t,
            vec![
                utc("2026-01-01T09:00:00Z"),
                utc("2026-01-01T13:00:00Z"),
                utc("2026-01-01T17:00:00Z"),
                utc("2026-01-02T09:00:00Z")
            ]
        );
        // A 7-field expression with a year that has passed has no tick.
        let s = parse("0 0 0 1 1 * 2020", "UTC").unwrap();
        assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")), None);
    }

    #[test]
    fn time_zone_shifts_the_instant() {
        // 02:00 in Asia/Shanghai (UTC+8, no DST) is 18:00 UTC the day before.
        let t = ticks("0 0 2 * * *", "Asia/Shanghai", "2026-01-01T00:00:00Z", 1);
        assert_eq!(t, vec![utc("2026-01-01T18:00:00Z")]);
    }

    #[test]
    fn invalid_expressions_and_zones_name_the_field() {
        for expr in [
            "",
            "* * * *",
            "61 * * * * *",
            "x * * * *",
            "* * * * * * * *",
        ] {
            let e = parse(expr, "UTC").unwrap_err();
            assert_eq!(e.field(), "cronExpression", "{expr:?}: {e}");
            assert!(e.to_string().starts_with("cronExpression"), "{e}");
        }
        let e = parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.field(), "timezone");
        assert!(e.to_string().contains("Mars/Olympus"));
    }

    #[test]
    fn spring_forward_new_york_0230_fires_once_at_0300() {
        // 2026-03-08: clocks go from 02:00 EST to 03:00 EDT; 02:30 does not exist.
        let t = ticks(
            "0 30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            3,
        );
        assert_eq!(
            local(&t, "America/New_York"),
            vec![
                "2026-03-08 03:00:00 EDT",
                "2026-03-09 02:30:00 EDT",
                "2026-03-10 02:30:00 EDT"
            ]
        );
        assert_eq!(t[0], utc("2026-03-08T07:00:00Z"));
    }

    #[test]
    fn spring_forward_every_minute_in_the_gap_fires_once_then_continues() {
        // Every 20 minutes from 01:00 to 03:59 local: 02:00, 02:20, 02:40 are in
        // the gap and fire once, together, at 03:00.
        let t = ticks(
            "0 */20 1-3 * * *",
            "America/New_York",
            "2026-03-08T06:30:00Z",
            6,
        );
        assert_eq!(
            local(&t, "America/New_York"),
            vec![
                "2026-03-08 01:40:00 EST",
                "2026-03-08 03:00:00 EDT",
                "2026-03-08 03:20:00 EDT",
                "2026-03-08 03:40:00 EDT",
                "2026-03-09 01:00:00 EDT",
                "2026-03-09 01:20:00 EDT"
            ]
        );
    }

    #[test]
    fn spring_forward_berlin_0230_fires_once_at_0300() {
        // 2026-03-29: Europe/Berlin goes from 02:00 CET to 03:00 CEST.
        let t = ticks("0 30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2);
        assert_eq!(
            local(&t, "Europe/Berlin"),
            vec!["2026-03-29 03:00:00 CEST", "2026-03-30 02:30:00 CEST"]
        );
    }

    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        // 2026-11-01: America/New_York repeats 01:00-02:00 (EDT, then EST).
        let t = ticks(
            "0 30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            2,
        );
        assert_eq!(
            local(&t, "America/New_York"),
            vec!["2026-11-01 01:30:00 EDT", "2026-11-02 01:30:00 EST"]
        );
        // Asked from inside the repeated hour (second pass, EST), it does not fire
        // 01:30 again.
        let s = parse("0 30 1 * * *", "America/New_York").unwrap();
        let second_pass = utc("2026-11-01T06:10:00Z"); // 01:10 EST
        assert_eq!(s.next_after(second_pass), Some(utc("2026-11-02T06:30:00Z")));
        // Europe/Berlin, 2026-10-25: 02:30 exists twice; fires at the CEST one.
        let t = ticks("0 30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2);
        assert_eq!(
            local(&t, "Europe/Berlin"),
            vec!["2026-10-25 02:30:00 CEST", "2026-10-26 02:30:00 CET"]
        );
    }

    #[test]
    fn fall_back_frequent_schedule_keeps_going_after_the_repeated_hour() {
        // Every 30 minutes: 00:30 EDT, 01:00 EDT, 01:30 EDT, (repeated hour: no
        // fires), 02:00 EST.
        let t = ticks(
            "0 0,30 * * * *",
            "America/New_York",
            "2026-11-01T04:00:00Z",
            5,
        );
        assert_eq!(
            local(&t, "America/New_York"),
            vec![
                "2026-11-01 00:30:00 EDT",
                "2026-11-01 01:00:00 EDT",
                "2026-11-01 01:30:00 EDT",
                "2026-11-01 02:00:00 EST",
                "2026-11-01 02:30:00 EST"
            ]
        );
        // Strictly increasing, no duplicates.
        assert!(t.windows(2).all(|w| w[0] < w[1]));
    }

    /// Drives an injected clock second by second from `start` to `end` and counts
    /// fires the way the scheduler does (fire when due, then advance).
    fn fires_between(expr: &str, tz: &str, start: &str, end: &str) -> Vec<DateTime<Utc>> {
        let s = parse(expr, tz).unwrap();
        let clock = TestClock(Mutex::new(utc(start)));
        let mut next = s.next_after(clock.now()).unwrap();
        let mut fired = Vec::new();
        let end = utc(end);
        while clock.now() < end {
            clock.advance(Duration::seconds(1));
            if next <= clock.now() {
                let p = plan(
                    &s,
                    next,
                    clock.now(),
                    MisfirePolicy::Coalesce,
                    Duration::seconds(5),
                );
                fired.extend(p.fire);
                next = p.next.unwrap();
            }
        }
        fired
    }

    #[test]
    fn a_clock_driven_day_across_spring_forward_fires_the_0230_job_once() {
        let fired = fires_between(
            "0 30 2 * * *",
            "America/New_York",
            "2026-03-08T04:00:00Z",
            "2026-03-09T04:00:00Z",
        );
        assert_eq!(fired, vec![utc("2026-03-08T07:00:00Z")]);
    }

    #[test]
    fn a_clock_driven_day_across_fall_back_fires_the_0130_job_once() {
        let fired = fires_between(
            "0 30 1 * * *",
            "America/New_York",
            "2026-11-01T03:00:00Z",
            "2026-11-02T03:00:00Z",
        );
        assert_eq!(fired, vec![utc("2026-11-01T05:30:00Z")]);
    }

    #[test]
    fn misfire_coalesce_skip_and_all_after_downtime() {
        let s = parse("0 * * * * *", "UTC").unwrap();
        let clock = TestClock(Mutex::new(utc("2026-01-01T00:00:00Z")));
        let due = s.next_after(clock.now()).unwrap(); // 00:01
                                                      // The scheduler was down for 5 minutes and 10 seconds.
        clock.advance(Duration::seconds(5 * 60 + 10));
        let now = clock.now();
        let grace = Duration::seconds(5);

        let p = plan(&s, due, now, MisfirePolicy::Coalesce, grace);
        assert_eq!(p.fire, vec![utc("2026-01-01T00:05:00Z")]);
        assert_eq!(p.next, Some(utc("2026-01-01T00:06:00Z")));

        let p = plan(&s, due, now, MisfirePolicy::Skip, grace);
        assert!(p.fire.is_empty());
        assert_eq!(p.next, Some(utc("2026-01-01T00:06:00Z")));

        let p = plan(&s, due, now, MisfirePolicy::All, grace);
        assert_eq!(
            p.fire,
            (1..=5)
                .map(|m| utc(&format!("2026-01-01T00:0{m}:00Z")))
                .collect::<Vec<_>>()
        );
        assert_eq!(p.next, Some(utc("2026-01-01T00:06:00Z")));
    }

    #[test]
    fn misfire_on_time_ticks_fire_under_every_policy() {
        let s = parse("*/2 * * * * *", "UTC").unwrap();
        let due = utc("2026-01-01T00:00:02Z");
        let now = utc("2026-01-01T00:00:02.300Z");
        for policy in [
            MisfirePolicy::Coalesce,
            MisfirePolicy::Skip,
            MisfirePolicy::All,
        ] {
            let p = plan(&s, due, now, policy, Duration::seconds(5));
            assert_eq!(p.fire, vec![due], "{policy}");
            assert_eq!(p.next, Some(utc("2026-01-01T00:00:04Z")));
        }
        // Not due yet: nothing fires.
        let p = plan(
            &s,
            due,
            utc("2026-01-01T00:00:01Z"),
            MisfirePolicy::Coalesce,
            Duration::seconds(5),
        );
        assert!(p.fire.is_empty());
        assert_eq!(p.next, Some(due));
    }

    #[test]
    fn a_short_stall_within_the_grace_loses_no_tick() {
        // The scheduler was held up 2.5 s: both ticks are still on time.
        let s = parse("* * * * * *", "UTC").unwrap();
        let due = utc("2026-01-01T00:00:01Z");
        let now = utc("2026-01-01T00:00:03.500Z");
        for policy in [
            MisfirePolicy::Coalesce,
            MisfirePolicy::Skip,
            MisfirePolicy::All,
        ] {
            let p = plan(&s, due, now, policy, Duration::seconds(5));
            assert_eq!(
                p.fire,
                vec![
                    utc("2026-01-01T00:00:01Z"),
                    utc("2026-01-01T00:00:02Z"),
                    utc("2026-01-01T00:00:03Z")
                ],
                "{policy}"
            );
        }
        // Missed ticks older than the grace coalesce into the on-time ones.
        let now = utc("2026-01-01T00:00:08.500Z");
        let p = plan(&s, due, now, MisfirePolicy::Coalesce, Duration::seconds(2));
        assert_eq!(
            p.fire,
            vec![utc("2026-01-01T00:00:07Z"), utc("2026-01-01T00:00:08Z")]
        );
    }

    #[test]
    fn misfire_all_is_capped() {
        let s = parse("* * * * * *", "UTC").unwrap();
        let due = utc("2026-01-01T00:00:00Z");
        let now = utc("2026-01-01T01:00:00Z");
        let p = plan(&s, due, now, MisfirePolicy::All, Duration::seconds(5));
        assert_eq!(p.fire.len(), MAX_CATCH_UP);
        assert_eq!(p.fire.last(), Some(&now));
    }

    #[test]
    fn misfire_policy_parses() {
        assert_eq!("skip".parse::<MisfirePolicy>(), Ok(MisfirePolicy::Skip));
        assert!("sometimes".parse::<MisfirePolicy>().is_err());
    }
}
