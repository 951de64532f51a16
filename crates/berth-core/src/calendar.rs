//! Times of day on days of the week, in the node's local time (its `TZ` or
//! `/etc/localtime`, as cron and systemd timers read it): the slots of a backup schedule.
//!
//! A slot is the epoch second at which a local time of day (`02:00`) falls on an allowed
//! weekday. Across a daylight-saving change a time that does not exist (02:30 on the spring
//! day) is taken as the kernel's `mktime` normalises it (an hour later), and one that exists
//! twice counts once.

use std::fmt;

/// `HH:MM` times of day and the weekdays they apply on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Minutes after local midnight, sorted, no duplicates.
    pub times: Vec<u16>,
    /// Bit 0 = Sunday … bit 6 = Saturday (as `tm_wday`); all seven when no day was named.
    pub days: u8,
}

pub const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// At most this many times of day per schedule.
pub const MAX_TIMES: usize = 48;

impl Calendar {
    /// `times`: `HH:MM` (24 h) each; `days`: names `mon`…`sun` (none: every day).
    pub fn parse(times: &[String], days: &[String]) -> Result<Calendar, String> {
        if times.is_empty() {
            return Err("a time of day is needed (`--at 02:00`)".into());
        }
        if times.len() > MAX_TIMES {
            return Err(format!("at most {MAX_TIMES} times of day"));
        }
        let mut t = vec![];
        for s in times {
            t.push(parse_hhmm(s)?);
        }
        t.sort_unstable();
        t.dedup();
        let mut mask = 0u8;
        for d in days {
            let d = d.trim().to_ascii_lowercase();
            match DAY_NAMES.iter().position(|n| *n == d) {
                Some(i) => mask |= 1 << i,
                None => {
                    return Err(format!(
                        "{d:?} is not a day: use mon, tue, wed, thu, fri, sat or sun"
                    ))
                }
            }
        }
        if mask == 0 {
            mask = 0x7f;
        }
        Ok(Calendar {
            times: t,
            days: mask,
        })
    }

    /// The times as `HH:MM`.
    pub fn times_hhmm(&self) -> Vec<String> {
        self.times
            .iter()
            .map(|m| format!("{:02}:{:02}", m / 60, m % 60))
            .collect()
    }

    /// The days' names (empty when every day).
    pub fn day_names(&self) -> Vec<String> {
        if self.days == 0x7f {
            return vec![];
        }
        // Monday first, as people read a week.
        [1, 2, 3, 4, 5, 6, 0]
            .iter()
            .filter(|i| self.days & (1 << **i) != 0)
            .map(|i| DAY_NAMES[*i].to_string())
            .collect()
    }

    /// The slots of the local days around `now` (8 days either side), sorted.
    fn slots_around(&self, now: i64) -> Vec<i64> {
        let Some(noon) = local_noon(now) else {
            return vec![];
        };
        let mut out = vec![];
        for d in -8i64..=8 {
            let Some(tm) = localtime(noon + d * 86_400) else {
                continue;
            };
            if self.days & (1 << tm.tm_wday) == 0 {
                continue;
            }
            for m in &self.times {
                let mut t = tm;
                t.tm_hour = (*m / 60) as i32;
                t.tm_min = (*m % 60) as i32;
                t.tm_sec = 0;
                t.tm_isdst = -1;
                // SAFETY: t is a valid, initialised tm.
                let s = unsafe { libc::mktime(&mut t) };
                if s != -1 {
                    out.push(s as i64);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The latest slot at or before `now`.
    pub fn last_at_or_before(&self, now: i64) -> Option<i64> {
        self.slots_around(now).into_iter().rev().find(|s| *s <= now)
    }

    /// The first slot after `now`.
    pub fn next_after(&self, now: i64) -> Option<i64> {
        self.slots_around(now).into_iter().find(|s| *s > now)
    }
}

impl fmt::Display for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.day_names();
        write!(f, "{}", self.times_hhmm().join(","))?;
        if days.is_empty() {
            write!(f, " daily")
        } else {
            write!(f, " on {}", days.join(","))
        }
    }
}

/// `HH:MM` → minutes after midnight.
pub fn parse_hhmm(s: &str) -> Result<u16, String> {
    let bad = || format!("{s:?} is not a time of day: use HH:MM (24 h), e.g. 02:30");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `YYYY-MM-DD HH:MM` in the node's local time.
pub fn local_stamp(t: i64) -> String {
    match localtime(t) {
        Some(tm) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min
        ),
        None => t.to_string(),
    }
}

fn localtime(t: i64) -> Option<libc::tm> {
    let tt = t as libc::time_t;
    // SAFETY: zeroed tm is a valid out-parameter; localtime_r is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::localtime_r(&tt, &mut tm) };
    (!r.is_null()).then_some(tm)
}

/// Local noon of the day of `t` (a time on that day far from any DST change).
fn local_noon(t: i64) -> Option<i64> {
    let mut tm = localtime(t)?;
    tm.tm_hour = 12;
    tm.tm_min = 0;
    tm.tm_sec = 0;
    tm.tm_isdst = -1;
    // SAFETY: valid tm.
    let s = unsafe { libc::mktime(&mut tm) };
    (s != -1).then_some(s as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(t: &[&str], d: &[&str]) -> Calendar {
        Calendar::parse(
            &t.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &d.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    }

    #[test]
    fn parsing_and_refusals() {
        let c = cal(&["2:00", "14:30", "02:00"], &[]);
        assert_eq!(c.times, vec![120, 870]);
        assert_eq!(c.days, 0x7f);
        assert_eq!(c.to_string(), "02:00,14:30 daily");
        let c = cal(&["23:59"], &["Sun", "mon"]);
        assert_eq!(c.day_names(), vec!["mon", "sun"]);
        for bad in [
            "24:00", "12:60", "1200", "12:5", "", ":30", "ab:cd", "-1:00",
        ] {
            assert!(
                Calendar::parse(&[bad.to_string()], &[]).is_err(),
                "{bad:?} taken"
            );
        }
        assert!(Calendar::parse(&[], &[]).is_err());
        assert!(Calendar::parse(&["01:00".into()], &["someday".into()]).is_err());
    }

    // The tests run in the process's own zone (UTC on CI machines); the slot arithmetic
    // is checked relative to what localtime says, so it holds in any zone.
    #[test]
    fn slots_fall_on_the_time_and_the_days() {
        let c = cal(&["02:00", "14:30"], &[]);
        let now = 1_780_000_000i64;
        let last = c.last_at_or_before(now).unwrap();
        let next = c.next_after(now).unwrap();
        assert!(last <= now && next > now);
        assert!(next - last <= 86_400 - 150 * 60 + 3600);
        for s in [last, next] {
            let tm = localtime(s).unwrap();
            let m = tm.tm_hour * 60 + tm.tm_min;
            assert!(m == 120 || m == 870, "{m}");
            assert_eq!(tm.tm_sec, 0);
        }
        // Exactly at a slot: that slot is the last, the next is later.
        assert_eq!(c.last_at_or_before(next), Some(next));
        assert!(c.next_after(next).unwrap() > next);
        // One weekday only: a week between slots.
        let wd = localtime(now).unwrap().tm_wday as usize;
        let c = cal(&["02:00"], &[DAY_NAMES[wd]]);
        let a = c.next_after(now).unwrap();
        let b = c.next_after(a).unwrap();
        assert!((b - a - 7 * 86_400).abs() <= 3600, "{}", b - a);
        assert_eq!(localtime(a).unwrap().tm_wday as usize, wd);
    }
}
