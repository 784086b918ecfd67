//! Small conversions shared by the readers and writers.

use cix_protocol::catalogue::{is_rfc3339, is_url, BoundingBox};

/// A date or time from a catalogue as an RFC 3339 value the entry accepts: kept as is when
/// valid; an ISO 8601 date-time without zone gets `Z` (noted); anything else is `None`.
pub(crate) fn date(v: &str, notes: &mut Vec<String>, field: &str) -> Option<String> {
    let v = v.trim();
    if is_rfc3339(v) {
        return Some(v.to_string());
    }
    let zoned = format!("{v}Z");
    if v.len() >= 19 && is_rfc3339(&zoned) {
        notes.push(format!("{field}: {v:?} has no time zone; read as UTC"));
        return Some(zoned);
    }
    notes.push(format!(
        "{field}: {:?} is not an RFC 3339 date or time; not kept",
        clip(v)
    ));
    None
}

/// A URL field: kept when it is an absolute URI, noted and dropped otherwise.
pub(crate) fn url(v: &str, notes: &mut Vec<String>, field: &str) -> Option<String> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if is_url(v) {
        Some(v.to_string())
    } else {
        notes.push(format!(
            "{field}: {:?} is not an absolute URL; not kept",
            clip(v)
        ));
        None
    }
}

pub(crate) fn clip(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Degrees as text (`-122.4`) to units of 1e-7 degree, exactly, without floats.
pub(crate) fn degrees(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
        || int.len() > 3
    {
        return None;
    }
    let mut units: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut scale = 1_000_000i64;
    units *= 10_000_000;
    for (i, c) in frac.bytes().enumerate() {
        if i >= 7 {
            break;
        }
        units += i64::from(c - b'0') * scale;
        scale /= 10;
    }
    Some(if neg { -units } else { units })
}

/// Units of 1e-7 degree as the shortest exact decimal text.
pub(crate) fn degrees_text(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let a = units.unsigned_abs();
    let int = a / 10_000_000;
    let frac = a % 10_000_000;
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let f = format!("{frac:07}");
    format!("{sign}{int}.{}", f.trim_end_matches('0'))
}

/// `west,south,east,north` in degrees.
pub(crate) fn bbox_from_list(parts: &[&str]) -> Option<BoundingBox> {
    if parts.len() != 4 {
        return None;
    }
    Some(BoundingBox {
        west: degrees(parts[0])?,
        south: degrees(parts[1])?,
        east: degrees(parts[2])?,
        north: degrees(parts[3])?,
    })
}

/// The WKT polygon DCAT-AP uses for `dcat:bbox`.
pub(crate) fn bbox_wkt(b: &BoundingBox) -> String {
    let (w, s, e, n) = (
        degrees_text(b.west),
        degrees_text(b.south),
        degrees_text(b.east),
        degrees_text(b.north),
    );
    format!("POLYGON(({w} {s},{e} {s},{e} {n},{w} {n},{w} {s}))")
}

/// Reads a `dcat:bbox` WKT polygon (or a `w,s,e,n` list) back into a box: the extremes of
/// its corners.
pub(crate) fn bbox_parse(text: &str) -> Option<BoundingBox> {
    let t = text.trim();
    if let Some(inner) = t
        .strip_prefix("POLYGON")
        .map(str::trim)
        .and_then(|r| r.strip_prefix("(("))
        .and_then(|r| r.strip_suffix("))"))
    {
        let pts: Option<Vec<(i64, i64)>> = inner
            .split(',')
            .map(|p| {
                let mut it = p.split_whitespace();
                let x = degrees(it.next()?)?;
                let y = degrees(it.next()?)?;
                Some((x, y))
            })
            .collect();
        let pts = pts?;
        let first = pts.first()?;
        return Some(BoundingBox {
            west: first.0,
            south: pts.iter().map(|p| p.1).min()?,
            east: pts.get(1)?.0,
            north: pts.iter().map(|p| p.1).max()?,
        });
    }
    let parts: Vec<&str> = t.split(',').collect();
    bbox_from_list(&parts)
}

/// Splits `a, b ,c` into trimmed non-empty parts.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrees_are_exact_both_ways() {
        for (t, u) in [
            ("-122.4194", -1_224_194_000),
            ("47.6", 476_000_000),
            ("0", 0),
            ("-0.0000001", -1),
            ("180", 1_800_000_000),
        ] {
            assert_eq!(degrees(t), Some(u), "{t}");
            assert_eq!(degrees(&degrees_text(u)), Some(u));
        }
        assert_eq!(degrees("abc"), None);
        assert_eq!(degrees("1e5"), None);
    }

    #[test]
    fn bbox_round_trips_through_wkt_even_across_the_antimeridian() {
        for b in [
            BoundingBox {
                west: -1_224_000_000,
                south: 475_000_000,
                east: -1_222_000_000,
                north: 477_000_000,
            },
            BoundingBox {
                west: 1_790_000_000,
                south: -10,
                east: -1_790_000_000,
                north: 10,
            },
        ] {
            assert_eq!(bbox_parse(&bbox_wkt(&b)), Some(b));
        }
    }
}
