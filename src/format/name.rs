//! Names of dists and patches (docs/design.md §1): the one place that parses and
//! formats ids (`<name>-<rev>-<date>`), dist file names (`<id>.tar.gz`) and
//! patch file names (`<name>-<fromrev>-<fromdate>_<torev>-<todate>.patch`).
//!
//! Invariants:
//! - parsing goes from the right, so a name may contain `-` (`kernel-X`) and
//!   `_` (`kernel-X86_64`) while revs and dates never do;
//! - `format(parse(s)) == s` for every accepted `s`, and every value built by
//!   the constructors here formats to a string that parses back to it;
//! - errors name the offending part (`rev`, `date`, `name`, …).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// File name suffix of a dist.
pub const DIST_SUFFIX: &str = ".tar.gz";
/// File name suffix of a patch.
pub const PATCH_SUFFIX: &str = ".patch";

fn bad(what: &'static str, input: &str, reason: impl Into<String>) -> Error {
    Error::Name {
        what,
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// The name of a tree: `world`, or `kernel-<CONF>` for a named kernel build.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DistName {
    World,
    /// A named kernel build; the string is the CONF (`GENERIC`, `MYHOST`).
    Kernel(String),
}

impl DistName {
    /// Whether this names a kernel chain.
    pub fn is_kernel(&self) -> bool {
        matches!(self, DistName::Kernel(_))
    }
}

/// Whether `c` may appear in a kernel CONF name.
fn conf_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl FromStr for DistName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s == "world" {
            return Ok(DistName::World);
        }
        match s.strip_prefix("kernel-") {
            Some("") => Err(bad("name", s, "kernel CONF is empty")),
            Some(conf) if !conf.chars().all(conf_char) => Err(bad(
                "name",
                s,
                "kernel CONF may only hold letters, digits and '_'",
            )),
            Some(conf) => Ok(DistName::Kernel(conf.to_string())),
            None => Err(bad("name", s, "expected 'world' or 'kernel-<CONF>'")),
        }
    }
}

impl fmt::Display for DistName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistName::World => f.write_str("world"),
            DistName::Kernel(conf) => write!(f, "kernel-{conf}"),
        }
    }
}

/// A revision: `[0-9A-Za-z.+~]+`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rev(String);

impl Rev {
    /// The rev as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Rev {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(bad("rev", s, "rev is empty"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~')))
        {
            return Err(bad(
                "rev",
                s,
                format!("character {c:?} is not allowed in a rev"),
            ));
        }
        Ok(Rev(s.to_string()))
    }
}

impl fmt::Display for Rev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A calendar date, formatted `YYYYMMDD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

impl Date {
    /// A date from its parts, if it is a real calendar date.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
            .then_some(Date { year, month, day })
    }

    /// The UTC date of a Unix time (seconds).
    pub fn from_unix(secs: i64) -> Date {
        let (year, month, day) = crate::util::time::civil(secs);
        Date {
            year: year as u16,
            month,
            day,
        }
    }

    /// Today's UTC date.
    pub fn today() -> Date {
        Date::from_unix(crate::util::time::unix_now())
    }

    /// Seconds since the Unix epoch at 00:00 UTC of this date.
    pub fn unix_midnight(&self) -> i64 {
        let (y, m, d) = (
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400
    }
}

impl FromStr for Date {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("date", s, "expected 8 digits, YYYYMMDD"));
        }
        let year: u16 = s[0..4].parse().map_err(|_| bad("date", s, "bad year"))?;
        let month: u8 = s[4..6].parse().map_err(|_| bad("date", s, "bad month"))?;
        let day: u8 = s[6..8].parse().map_err(|_| bad("date", s, "bad day"))?;
        Date::new(year, month, day).ok_or_else(|| bad("date", s, "not a calendar date"))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

/// A dist id: `<name>-<rev>-<date>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DistId {
    pub name: DistName,
    pub rev: Rev,
    pub date: Date,
}

impl DistId {
    /// The dist file name, `<id>.tar.gz`.
    pub fn file_name(&self) -> String {
        format!("{self}{DIST_SUFFIX}")
    }

    /// Parse a dist file name (`<id>.tar.gz`); any leading directory is ignored.
    pub fn from_file_name(file: &str) -> Result<DistId> {
        let base = file.rsplit('/').next().unwrap_or(file);
        let id = base
            .strip_suffix(DIST_SUFFIX)
            .ok_or_else(|| bad("dist file name", base, "does not end in .tar.gz"))?;
        id.parse()
    }

    /// The `<rev>-<date>` part, as used on each side of a patch name.
    fn rev_date(&self) -> String {
        format!("{}-{}", self.rev, self.date)
    }
}

/// Split `<rev>-<date>` from the right of `s`, returning (rest, rev, date).
fn split_rev_date<'a>(what: &'static str, s: &'a str) -> Result<(&'a str, Rev, Date)> {
    let (rest, date) = s
        .rsplit_once('-')
        .ok_or_else(|| bad(what, s, "missing '-<date>'"))?;
    let date: Date = date.parse()?;
    let (rest, rev) = rest
        .rsplit_once('-')
        .ok_or_else(|| bad(what, s, "missing '-<rev>'"))?;
    Ok((rest, rev.parse()?, date))
}

impl FromStr for DistId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, rev, date) = split_rev_date("id", s)?;
        Ok(DistId {
            name: name.parse()?,
            rev,
            date,
        })
    }
}

impl fmt::Display for DistId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.name, self.rev, self.date)
    }
}

/// A patch's identity: the dist it applies to and the one it makes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PatchName {
    pub from: DistId,
    pub to: DistId,
}

impl PatchName {
    /// A patch name between two dists of the same name.
    pub fn new(from: DistId, to: DistId) -> Result<PatchName> {
        if from.name != to.name {
            return Err(Error::Mismatch(format!(
                "a patch never crosses names: '{from}' is a {} dist, '{to}' a {} dist",
                from.name, to.name
            )));
        }
        Ok(PatchName { from, to })
    }

    /// The patch file name.
    pub fn file_name(&self) -> String {
        format!("{self}{PATCH_SUFFIX}")
    }

    /// Parse a patch file name; any leading directory is ignored.
    pub fn from_file_name(file: &str) -> Result<PatchName> {
        let base = file.rsplit('/').next().unwrap_or(file);
        base.strip_suffix(PATCH_SUFFIX)
            .ok_or_else(|| bad("patch file name", base, "does not end in .patch"))?
            .parse()
    }
}

impl FromStr for PatchName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (from, to) = s
            .rsplit_once('_')
            .ok_or_else(|| bad("patch name", s, "missing '_' between from and to"))?;
        let prefixed = format!("x-{to}");
        let (empty, to_rev, to_date) = split_rev_date("patch name", &prefixed)?;
        if empty != "x" {
            return Err(bad(
                "patch name",
                s,
                "the part after '_' must be '<rev>-<date>'",
            ));
        }
        let from: DistId = from.parse()?;
        let to = DistId {
            name: from.name.clone(),
            rev: to_rev,
            date: to_date,
        };
        Ok(PatchName { from, to })
    }
}

impl fmt::Display for PatchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.from, self.to.rev_date())
    }
}

macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_via_str!(DistName, Rev, Date, DistId, PatchName);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_world_and_kernel_ids() {
        let id: DistId = "world-6.4.1-20261121".parse().unwrap();
        assert_eq!(id.name, DistName::World);
        assert_eq!(id.rev.as_str(), "6.4.1");
        assert_eq!(id.date.to_string(), "20261121");
        let k: DistId = "kernel-X86_64_GENERIC-7~rc1+g3-20240229".parse().unwrap();
        assert_eq!(k.name, DistName::Kernel("X86_64_GENERIC".into()));
        assert_eq!(k.rev.as_str(), "7~rc1+g3");
    }

    #[test]
    fn patch_names_split_on_the_rightmost_underscore() {
        let p =
            PatchName::from_file_name("dir/kernel-MY_HOST-1-20260101_2-20260102.patch").unwrap();
        assert_eq!(p.from.to_string(), "kernel-MY_HOST-1-20260101");
        assert_eq!(p.to.to_string(), "kernel-MY_HOST-2-20260102");
        assert_eq!(p.file_name(), "kernel-MY_HOST-1-20260101_2-20260102.patch");
    }

    #[test]
    fn errors_name_the_offending_part() {
        let e = "world-1-2-20260101"
            .parse::<DistId>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("name"), "{e}");
        let e = "world-a_b-20260101"
            .parse::<DistId>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("rev"), "{e}");
        let e = "world-1-20261301"
            .parse::<DistId>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("date") && e.contains("calendar"), "{e}");
        let e = "world-1-2026011".parse::<DistId>().unwrap_err().to_string();
        assert!(e.contains("date"), "{e}");
        assert!(DistId::from_file_name("world-1-20260101.tar").is_err());
        assert!(PatchName::new(
            "world-1-20260101".parse().unwrap(),
            "kernel-G-1-20260101".parse().unwrap()
        )
        .is_err());
        assert!("world-1-20230229".parse::<DistId>().is_err());
        assert!("world-1-20240229".parse::<DistId>().is_ok());
    }

    #[test]
    fn unix_dates_round_trip() {
        assert_eq!(Date::from_unix(0).to_string(), "19700101");
        assert_eq!(Date::from_unix(951_782_400).to_string(), "20000229");
        let d: Date = "20261121".parse().unwrap();
        assert_eq!(Date::from_unix(d.unix_midnight()), d);
        assert_eq!(Date::from_unix(d.unix_midnight() + 86_399), d);
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop_oneof![Just("world".to_string()), "kernel-[A-Za-z0-9_]{1,12}"]
    }
    fn arb_id() -> impl Strategy<Value = String> {
        (
            arb_name(),
            "[0-9A-Za-z.+~]{1,10}",
            1970u16..2200,
            1u8..=12,
            1u8..=28,
        )
            .prop_map(|(n, r, y, m, d)| format!("{n}-{r}-{y:04}{m:02}{d:02}"))
    }

    proptest! {
        #[test]
        fn every_valid_id_parses_and_formats_back(s in arb_id()) {
            let id: DistId = s.parse().unwrap();
            prop_assert_eq!(id.to_string(), s.clone());
            let f = id.file_name();
            prop_assert_eq!(DistId::from_file_name(&f).unwrap(), id);
        }

        #[test]
        fn every_valid_patch_name_parses_and_formats_back(
            a in arb_id(), r in "[0-9A-Za-z.+~]{1,10}", y in 1970u16..2200, m in 1u8..=12, d in 1u8..=28
        ) {
            let s = format!("{a}_{r}-{y:04}{m:02}{d:02}");
            let p: PatchName = s.parse().unwrap();
            prop_assert_eq!(p.to_string(), s.clone());
            prop_assert_eq!(p.from.name.clone(), p.to.name.clone());
            prop_assert_eq!(PatchName::from_file_name(&p.file_name()).unwrap(), p);
        }

        #[test]
        fn any_string_parses_or_errors_without_panic(s in "\\PC{0,40}") {
            if let Ok(id) = s.parse::<DistId>() { prop_assert_eq!(id.to_string(), s.clone()); }
            if let Ok(p) = s.parse::<PatchName>() { prop_assert_eq!(p.to_string(), s); }
        }

        #[test]
        fn unix_date_matches_midnight(secs in 0i64..8_000_000_000) {
            let d = Date::from_unix(secs);
            prop_assert!(d.unix_midnight() <= secs && secs < d.unix_midnight() + 86_400);
        }
    }
}
