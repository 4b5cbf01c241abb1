//! SSH rule values: the action, the local users, and `checkPeriod` with Go's duration syntax
//! (Tailscale's messages print durations the way Go does, e.g. `168h0m1s`).

use crate::text::quote;

/// The action of an SSH rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SshAction {
    /// `accept`: allow the session.
    Accept,
    /// `check`: allow after the user re-authenticates (periodically).
    Check,
}

impl SshAction {
    /// Read an action (already trimmed). Case-sensitive, as Tailscale is.
    pub fn parse(text: &str) -> Result<SshAction, String> {
        match text {
            "accept" => Ok(SshAction::Accept),
            "check" => Ok(SshAction::Check),
            "" => Err("action must be specified".to_string()),
            other => Err(format!("{} is not a valid action", quote(other))),
        }
    }
}

/// One entry of an SSH rule's `users`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SshUser {
    /// `root`.
    Root,
    /// `autogroup:nonroot`: any local user except root.
    Nonroot,
    /// `localpart:*@domain`: the local part of the connecting user's login, for logins in
    /// `domain`.
    Localpart {
        /// The domain as written.
        domain: String,
    },
    /// Any other name, used as the local user name verbatim (Tailscale accepts odd names
    /// such as `group:foo` or `localpart:` and maps them to themselves).
    Literal(String),
}

impl SshUser {
    /// Read an SSH user (already trimmed). Only `""` and `"*"` are refused.
    pub fn parse(text: &str) -> Result<SshUser, String> {
        match text {
            "" | "*" => Err(format!("user {} is not valid", quote(text))),
            "root" => Ok(SshUser::Root),
            "autogroup:nonroot" => Ok(SshUser::Nonroot),
            _ => match text.strip_prefix("localpart:*@") {
                Some(domain) if !domain.is_empty() => Ok(SshUser::Localpart {
                    domain: domain.to_string(),
                }),
                _ => Ok(SshUser::Literal(text.to_string())),
            },
        }
    }
}

/// `checkPeriod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum CheckPeriod {
    /// `always`: check on every connection.
    Always,
    /// A duration.
    Every(GoDuration),
}

/// A duration in nanoseconds, read and printed as Go's `time.Duration` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct GoDuration(pub i64);

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000;
const MILLISECOND: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

impl GoDuration {
    /// One hour.
    pub const HOUR: GoDuration = GoDuration(HOUR as i64);

    /// Read a duration as Go's `time.ParseDuration` does (`1h30m`, `-1.5s`, `300ms`, `0`).
    /// Errors carry Go's text, e.g. `time: invalid duration "abc"`.
    pub fn parse(orig: &str) -> Result<GoDuration, String> {
        let invalid = || format!("time: invalid duration {}", quote(orig));
        let mut s = orig;
        let mut neg = false;
        if let Some(rest) = s.strip_prefix('-') {
            neg = true;
            s = rest;
        } else if let Some(rest) = s.strip_prefix('+') {
            s = rest;
        }
        if s == "0" {
            return Ok(GoDuration(0));
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut total: u64 = 0;
        while !s.is_empty() {
            let starts_ok = s
                .bytes()
                .next()
                .is_some_and(|c| c == b'.' || c.is_ascii_digit());
            if !starts_ok {
                return Err(invalid());
            }
            // Integer part.
            let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
            let (int_text, rest) = s.split_at(int_len);
            let mut value: u64 = 0;
            for b in int_text.bytes() {
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                    .filter(|&v| v <= 1 << 63)
                    .ok_or_else(invalid)?;
            }
            s = rest;
            let pre = int_len > 0;
            // Fraction part.
            let mut fraction: u64 = 0;
            let mut scale: f64 = 1.0;
            let mut post = false;
            if let Some(rest) = s.strip_prefix('.') {
                let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
                let (frac_text, rest) = rest.split_at(frac_len);
                let mut overflow = false;
                for b in frac_text.bytes() {
                    if overflow {
                        continue;
                    }
                    match fraction
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                        .filter(|&v| v <= 1 << 63)
                    {
                        Some(v) => {
                            fraction = v;
                            scale *= 10.0;
                        }
                        None => overflow = true,
                    }
                }
                post = frac_len > 0;
                s = rest;
            }
            if !pre && !post {
                return Err(invalid());
            }
            // Unit.
            let unit_len = s
                .char_indices()
                .find(|&(_, c)| c == '.' || c.is_ascii_digit())
                .map_or(s.len(), |(i, _)| i);
            if unit_len == 0 {
                return Err(format!("time: missing unit in duration {}", quote(orig)));
            }
            let (unit_text, rest) = s.split_at(unit_len);
            s = rest;
            let unit = match unit_text {
                "ns" => NANOSECOND,
                "us" | "\u{b5}s" | "\u{3bc}s" => MICROSECOND,
                "ms" => MILLISECOND,
                "s" => SECOND,
                "m" => MINUTE,
                "h" => HOUR,
                _ => {
                    return Err(format!(
                        "time: unknown unit {} in duration {}",
                        quote(unit_text),
                        quote(orig)
                    ))
                }
            };
            if value > (1u64 << 63) / unit {
                return Err(invalid());
            }
            value *= unit;
            if fraction > 0 {
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let extra = (fraction as f64 * (unit as f64 / scale)) as u64;
                value = value.checked_add(extra).ok_or_else(invalid)?;
                if value > 1 << 63 {
                    return Err(invalid());
                }
            }
            total = total.checked_add(value).ok_or_else(invalid)?;
            if total > 1 << 63 {
                return Err(invalid());
            }
        }
        if neg {
            // total <= 2^63, so the negation fits.
            return Ok(GoDuration(0i64.wrapping_sub_unsigned(total)));
        }
        i64::try_from(total).map(GoDuration).map_err(|_| invalid())
    }

    /// True for negative durations.
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

/// Write `v / 10^prec` as a fraction (`.12`), trailing zeros and a zero fraction omitted;
/// returns the fraction text and `v / 10^prec`.
fn fmt_frac(mut v: u64, prec: u32) -> (String, u64) {
    let mut digits = Vec::new();
    let mut print = false;
    for _ in 0..prec {
        let digit = v % 10;
        print = print || digit != 0;
        if print {
            digits.push(char::from(b'0' + u8::try_from(digit).unwrap_or(0)));
        }
        v /= 10;
    }
    if print {
        digits.push('.');
    }
    digits.reverse();
    (digits.into_iter().collect(), v)
}

impl std::fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `168h0m1s`, `-1m0s`, `1.5s`, `300ms`, `0s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let neg = self.0 < 0;
        let u = self.0.unsigned_abs();
        let mut out = String::new();
        if u < SECOND {
            let (prec, unit) = match u {
                0 => return f.write_str("0s"),
                u if u < MICROSECOND => (0, "ns"),
                u if u < MILLISECOND => (3, "\u{b5}s"),
                _ => (6, "ms"),
            };
            let (frac, int) = fmt_frac(u, prec);
            out.push_str(&int.to_string());
            out.push_str(&frac);
            out.push_str(unit);
        } else {
            let (frac, secs) = fmt_frac(u, 9);
            let mins = secs / 60;
            let hours = mins / 60;
            if hours > 0 {
                out.push_str(&format!("{hours}h{}m", mins % 60));
            } else if mins > 0 {
                out.push_str(&format!("{mins}m"));
            }
            out.push_str(&format!("{}{frac}s", secs % 60));
        }
        if neg {
            f.write_str("-")?;
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> GoDuration {
        GoDuration::parse(s).unwrap()
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(d("1h"), GoDuration::HOUR);
        assert_eq!(d("0"), GoDuration(0));
        assert_eq!(d("0s"), GoDuration(0));
        assert_eq!(d("30s").0, 30 * 1_000_000_000);
        assert_eq!(d("-1m").0, -60 * 1_000_000_000);
        assert_eq!(d("1.5h").0, 90 * 60 * 1_000_000_000);
        assert_eq!(d("1h30m").0, 90 * 60 * 1_000_000_000);
        assert_eq!(d("300ms").0, 300_000_000);
        assert_eq!(d("2us").0, 2_000);
        assert_eq!(d("2µs").0, 2_000);
        assert_eq!(d(".5s").0, 500_000_000);
        assert_eq!(d("+5s").0, 5_000_000_000);
    }

    #[test]
    fn refuses_with_go_text() {
        let e = |s: &str| GoDuration::parse(s).unwrap_err();
        assert_eq!(e("abc"), r#"time: invalid duration "abc""#);
        assert_eq!(e(""), r#"time: invalid duration """#);
        assert_eq!(e("1"), r#"time: missing unit in duration "1""#);
        assert_eq!(e("1d"), r#"time: unknown unit "d" in duration "1d""#);
        assert_eq!(e("."), r#"time: invalid duration ".""#);
        assert_eq!(e("-"), r#"time: invalid duration "-""#);
        assert_eq!(
            e("9999999999999999999h"),
            r#"time: invalid duration "9999999999999999999h""#
        );
    }

    #[test]
    fn prints_like_go() {
        let s = |t: &str| d(t).to_string();
        assert_eq!(s("168h0m1s"), "168h0m1s");
        assert_eq!(s("200h"), "200h0m0s");
        assert_eq!(s("-1m"), "-1m0s");
        assert_eq!(s("0s"), "0s");
        assert_eq!(s("1.5s"), "1.5s");
        assert_eq!(s("90s"), "1m30s");
        assert_eq!(s("300ms"), "300ms");
        assert_eq!(s("1500us"), "1.5ms");
        assert_eq!(s("2us"), "2µs");
        assert_eq!(s("7ns"), "7ns");
        assert_eq!(s("1h0m0.25s"), "1h0m0.25s");
    }

    #[test]
    fn actions_and_users() {
        assert_eq!(SshAction::parse("accept"), Ok(SshAction::Accept));
        assert_eq!(SshAction::parse("check"), Ok(SshAction::Check));
        assert_eq!(
            SshAction::parse("Accept").unwrap_err(),
            r#""Accept" is not a valid action"#
        );
        assert_eq!(
            SshAction::parse("").unwrap_err(),
            "action must be specified"
        );
        assert_eq!(SshUser::parse("root"), Ok(SshUser::Root));
        assert_eq!(SshUser::parse("autogroup:nonroot"), Ok(SshUser::Nonroot));
        assert_eq!(
            SshUser::parse("localpart:*@example.com"),
            Ok(SshUser::Localpart {
                domain: "example.com".into()
            })
        );
        assert_eq!(
            SshUser::parse("localpart:*@"),
            Ok(SshUser::Literal("localpart:*@".into()))
        );
        assert_eq!(
            SshUser::parse("localpart:foo@example.com"),
            Ok(SshUser::Literal("localpart:foo@example.com".into()))
        );
        assert_eq!(SshUser::parse("*").unwrap_err(), r#"user "*" is not valid"#);
        assert_eq!(SshUser::parse("").unwrap_err(), r#"user "" is not valid"#);
    }
}
