//! Byte sizes as Docker users write them (`512m`, `2g`, `1.5GiB`, a plain number of
//! bytes), so `shm_size` and `memory` read the same as on a `docker run` line.

/// Parses a size the way `docker run --memory` does: a number, then an optional unit
/// `b`, `k`, `m`, `g`, `t` or `p` (powers of 1024, any case, optionally followed by
/// `i` and/or `b`: `2g`, `2gb`, `2GiB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let bad = || {
        format!("invalid size {text:?}; expected a number of bytes or a number with a unit, e.g. 512m, 2g, 1.5GiB")
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    // `b` alone was stripped above; "ib" without a letter is not a unit.
    if unit.is_empty() && t.to_ascii_lowercase().trim_end().ends_with("ib") {
        return Err(bad());
    }
    let bytes = num * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A size for people, in decimal units as storage consoles show them: `7.3 GB`,
/// `512 B`, `1.0 MB` (the one formatter beside the one parser).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::{human, parse_bytes};

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(999), "999 B");
        assert_eq!(human(7_361_003_520), "7.4 GB");
        assert_eq!(human(7_300_000_000), "7.3 GB");
        assert_eq!(human(1_000_000), "1.0 MB");
        assert_eq!(human(999_999), "1.0 MB");
    }

    #[test]
    fn docker_style_sizes() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("2gb"), Ok(2 << 30));
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert_eq!(parse_bytes("64 k"), Ok(64 << 10));
        assert_eq!(parse_bytes("10b"), Ok(10));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes(" 1t "), Ok(1 << 40));
        assert_eq!(parse_bytes("1P"), Ok(1 << 50));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert_eq!(parse_bytes("2MiB"), Ok(2 << 20));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for t in ["99999999999p", "1e400"] {
            assert!(parse_bytes(t).is_err(), "{t:?} accepted");
        }
        let e = parse_bytes("lots").unwrap_err();
        assert!(
            e.contains("invalid size \"lots\"") && e.contains("512m"),
            "{e}"
        );
        for t in ["", "g", "2x", "2gg", "-1g", "1..2g", "2ib", "1e3"] {
            assert!(parse_bytes(t).is_err(), "{t:?} accepted");
        }
    }
}
