//! Port sets as sorted, disjoint, inclusive intervals: the union and difference the access
//! diff needs, and their text (`22`, `80-89,443`, `*`).

/// A set of ports: sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub(crate) struct PortSet(Vec<(u16, u16)>);

impl PortSet {
    /// The union of some intervals (in any order, overlapping or not).
    pub(crate) fn from_intervals(mut intervals: Vec<(u16, u16)>) -> PortSet {
        intervals.retain(|&(a, b)| a <= b);
        intervals.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(intervals.len());
        for (a, b) in intervals {
            match out.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        PortSet(out)
    }

    /// True for the empty set.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The lowest port, if any.
    pub(crate) fn first(&self) -> Option<u16> {
        self.0.first().map(|&(a, _)| a)
    }

    /// The ports in `self` and not in `other`. O(|self| + |other|).
    pub(crate) fn minus(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let mut j = 0;
        for &(a, b) in &self.0 {
            let mut start = u32::from(a);
            let end = u32::from(b);
            while let Some(&(c, d)) = other.0.get(j) {
                if u32::from(d) < start {
                    j += 1;
                    continue;
                }
                if u32::from(c) > end {
                    break;
                }
                if u32::from(c) > start {
                    out.push((start, u32::from(c) - 1));
                }
                start = u32::from(d) + 1;
                if u32::from(d) >= end {
                    break;
                }
                j += 1;
            }
            if start <= end {
                out.push((start, end));
            }
        }
        PortSet(
            out.into_iter()
                .filter_map(|(a, b)| Some((u16::try_from(a).ok()?, u16::try_from(b).ok()?)))
                .collect(),
        )
    }
}

impl std::fmt::Display for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == [(0, u16::MAX)] {
            return f.write_str("*");
        }
        for (i, &(a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::PortSet;

    fn set(v: &[(u16, u16)]) -> PortSet {
        PortSet::from_intervals(v.to_vec())
    }

    /// The difference, port by port (the reference).
    fn slow_minus(a: &PortSet, b: &PortSet) -> Vec<u16> {
        let has = |s: &PortSet, p: u16| s.0.iter().any(|&(x, y)| x <= p && p <= y);
        (0..=u16::MAX)
            .filter(|&p| has(a, p) && !has(b, p))
            .collect()
    }

    #[test]
    fn union_merges_overlapping_and_adjacent() {
        assert_eq!(
            set(&[(5, 9), (1, 3), (4, 4), (20, 30), (25, 40)]).0,
            vec![(1, 9), (20, 40)]
        );
        assert_eq!(set(&[(0, u16::MAX), (3, 4)]).to_string(), "*");
        assert_eq!(set(&[(22, 22), (80, 89)]).to_string(), "22,80-89");
    }

    #[test]
    fn minus_agrees_with_port_by_port() {
        let cases = [
            (set(&[(0, 100)]), set(&[(10, 20), (30, 30), (100, 200)])),
            (set(&[(0, u16::MAX)]), set(&[(0, 0), (u16::MAX, u16::MAX)])),
            (set(&[(5, 5), (7, 9)]), set(&[(0, 6)])),
            (set(&[(1, 2)]), PortSet::default()),
            (PortSet::default(), set(&[(1, 2)])),
        ];
        for (a, b) in cases {
            let got: Vec<u16> = a.minus(&b).0.iter().flat_map(|&(x, y)| x..=y).collect();
            assert_eq!(got, slow_minus(&a, &b), "{a} minus {b}");
        }
    }
}
