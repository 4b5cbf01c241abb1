//! Port lists (`*`, `22`, `80,443`, `1000-2000`) with Tailscale's own error texts.

use crate::text::quote;

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (>= first).
    pub last: u16,
}

impl PortRange {
    /// Every port, `0-65535` (what `*` means).
    pub const ANY: PortRange = PortRange {
        first: 0,
        last: u16::MAX,
    };

    /// One port.
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// True for `0-65535`.
    pub fn is_any(self) -> bool {
        self == PortRange::ANY
    }

    /// True if `port` is inside.
    pub fn contains(self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_any() {
            f.write_str("*")
        } else if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Why a port list was refused. `Display` gives Tailscale's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    /// An empty element in a comma list.
    EmptyElement {
        /// The whole list.
        list: String,
    },
    /// More than one `-` in a range.
    TooManyDashes {
        /// The range.
        range: String,
    },
    /// The first (or only) number is not a port number.
    InvalidFirst {
        /// The range.
        range: String,
    },
    /// The number after the `-` is not a port number.
    InvalidLast {
        /// The range.
        range: String,
    },
    /// Port 0 as the first port.
    Zero {
        /// The range.
        range: String,
    },
    /// First port above last port.
    Inverted {
        /// The range.
        range: String,
    },
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::EmptyElement { list } => write!(f, "invalid port list: {}", quote(list)),
            PortError::TooManyDashes { range } => {
                write!(f, "port range {}: too many dashes(-)", quote(range))
            }
            PortError::InvalidFirst { range } => {
                write!(f, "port range {}: invalid first integer", quote(range))
            }
            PortError::InvalidLast { range } => {
                write!(f, "port range {}: invalid last integer", quote(range))
            }
            PortError::Zero { range } => write!(
                f,
                "port range {}: first port must be >0, or use '*' for wildcard",
                quote(range)
            ),
            // Tailscale's wording, inverted as it is there, so the message can be searched for.
            PortError::Inverted { range } => {
                write!(
                    f,
                    "port range {}: first port must be >= last port",
                    quote(range)
                )
            }
        }
    }
}

impl std::error::Error for PortError {}

/// A decimal port number as Go's `strconv.ParseUint(s, 10, 16)` reads it.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse a port list: `*`, or comma-separated ports and `first-last` ranges.
pub fn parse_port_list(list: &str) -> Result<Vec<PortRange>, PortError> {
    if list == "*" {
        return Ok(vec![PortRange::ANY]);
    }
    let mut out = Vec::new();
    for piece in list.split(',') {
        if piece.is_empty() {
            return Err(PortError::EmptyElement {
                list: list.to_string(),
            });
        }
        if piece.matches('-').count() > 1 {
            return Err(PortError::TooManyDashes {
                range: piece.to_string(),
            });
        }
        let (first_text, last_text) = match piece.split_once('-') {
            Some((a, b)) => (a, Some(b)),
            None => (piece, None),
        };
        let first = parse_port(first_text).ok_or_else(|| PortError::InvalidFirst {
            range: piece.to_string(),
        })?;
        let last = match last_text {
            Some(t) => parse_port(t).ok_or_else(|| PortError::InvalidLast {
                range: piece.to_string(),
            })?,
            None => first,
        };
        if first == 0 {
            return Err(PortError::Zero {
                range: piece.to_string(),
            });
        }
        if first > last {
            return Err(PortError::Inverted {
                range: piece.to_string(),
            });
        }
        out.push(PortRange { first, last });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    #[test]
    fn reads_every_form() {
        assert_eq!(parse_port_list("*").unwrap(), vec![PortRange::ANY]);
        assert_eq!(parse_port_list("22").unwrap(), vec![r(22, 22)]);
        assert_eq!(
            parse_port_list("22,80-443").unwrap(),
            vec![r(22, 22), r(80, 443)]
        );
        assert_eq!(parse_port_list("1-65535").unwrap(), vec![r(1, 65535)]);
        assert_eq!(parse_port_list("022").unwrap(), vec![r(22, 22)]);
    }

    #[test]
    fn refuses_with_tailscale_text() {
        let e = |s: &str| parse_port_list(s).unwrap_err().to_string();
        assert_eq!(e("ssh"), r#"port range "ssh": invalid first integer"#);
        assert_eq!(e("self"), r#"port range "self": invalid first integer"#);
        assert_eq!(
            e("0"),
            r#"port range "0": first port must be >0, or use '*' for wildcard"#
        );
        assert_eq!(e("80-x"), r#"port range "80-x": invalid last integer"#);
        assert_eq!(
            e("90-80"),
            r#"port range "90-80": first port must be >= last port"#
        );
        assert_eq!(e("1-2-3"), r#"port range "1-2-3": too many dashes(-)"#);
        assert_eq!(e("22,"), r#"invalid port list: "22,""#);
        assert_eq!(e("65536"), r#"port range "65536": invalid first integer"#);
        assert_eq!(e("+22"), r#"port range "+22": invalid first integer"#);
        assert_eq!(e(""), r#"invalid port list: """#);
    }
}
